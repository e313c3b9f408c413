"""The ``qa`` command line. Heavy modules (torch, faiss) load only inside the commands."""

from __future__ import annotations

import argparse
import codecs
import contextlib
import errno
import io
import json
import os
import re
import socket
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

from index.config import DEFAULT_MILVUS_COLLECTION, EMBEDDING_BACKENDS, RETRIEVAL_BACKENDS, cache_dir
from index.persist import can_write, write_atomic

from .console import gate_floor, progress_bar, quiet_libraries

if TYPE_CHECKING:
    from .bot import Bot, SyncReport
    from .settings import Settings
    from .types import Answer


class CLIError(Exception):
    """An error to show the user as one line, with exit status 2."""


def count(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse type: a whole number from ``low`` to ``high``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < low or high is not None and value > high:
            raise argparse.ArgumentTypeError(f"{value} is not in {low}..{high if high is not None else ''}")
        return value

    return parse


def settings() -> "Settings":
    """The ``QA_*`` settings, or a :class:`CLIError` naming each bad variable."""
    from .settings import Settings, misspelt

    for warning in misspelt(os.environ):
        print(f"warning: {warning}", file=sys.stderr)
    try:
        return Settings.from_env()
    except ValueError as exc:
        raise CLIError(str(exc)) from None


def _make_bot(args: argparse.Namespace, config: "Settings | None" = None) -> "Bot":
    """The Bot the command line asks for; options given on it win over the ``QA_*`` settings."""
    quiet_libraries()
    from index.embedder import ModelError
    from .bot import Bot

    docs = Path(args.docs)
    if not args.docs or not docs.is_dir():
        where = "DOCS" if args.command == "index" else "--docs DIR"
        why = "is a file, not a folder" if docs.is_file() else "does not exist" if args.docs else "is empty"
        raise CLIError(f"documents folder {args.docs!r} {why} (pass {where})")
    config = config or settings()
    try:
        bot = Bot(args.docs, index_dir=args.index, **_model_options(args, config), max_pdf_pages=config.max_pdf_pages,
                  corroborate=not getattr(args, "no_corroboration", False), **_backend_options(args, config),
                  # Only `qa index` may drop Milvus collections built with other settings.
                  rebuild_store=args.command == "index", quantize_reader=config.quantize_reader)
    except (ModelError, ValueError) as exc:
        raise CLIError(str(exc)) from None
    _OPEN_BOTS.append(bot)
    return bot


# Bots a command made, closed when it ends: before exit, while Milvus Lite's in-process server still runs.
_OPEN_BOTS: list["Bot"] = []


def _close_bots() -> None:
    while _OPEN_BOTS:
        with contextlib.suppress(Exception):  # the command's outcome stands; a store gone meanwhile is no news
            _OPEN_BOTS.pop().close()


def _model_options(args: argparse.Namespace, config: "Settings") -> dict:
    """The embedding model and how it runs, from ``--model``/``--embedding`` or the settings."""
    return {"model": args.model or config.model, "embedding": args.embedding or config.embedding}


def _backend_options(args: argparse.Namespace, config: "Settings") -> dict:
    """The Bot's backend arguments from ``--backend``/``--milvus-uri``/``--milvus-collection``."""
    if args.backend != "milvus":
        if args.milvus_uri or args.milvus_collection:
            raise CLIError("--milvus-uri and --milvus-collection go with --backend milvus")
        if config.milvus_uri:
            print(f"warning: QA_MILVUS_URI is set, but this {args.command} uses the {args.backend} index: "
                  "pass --backend milvus to use Milvus", file=sys.stderr)
        return {"backend": args.backend}
    return {"backend": "milvus", "milvus_uri": args.milvus_uri or config.milvus_uri,
            "milvus_collection": args.milvus_collection}


def backend_args(sp: argparse.ArgumentParser, collection_default: str = DEFAULT_MILVUS_COLLECTION) -> None:
    sp.add_argument("--backend", choices=RETRIEVAL_BACKENDS, default="faiss",
                    help="where the corpus is stored and searched: the local faiss + BM25 index (default) or Milvus collections (the store of record)")
    sp.add_argument("--milvus-uri", default=None, metavar="URI",
                    help="with --backend milvus: a server such as http://host:19530, or a Milvus Lite file "
                         "(default: $QA_MILVUS_URI, else milvus.db inside the index folder)")
    sp.add_argument("--milvus-collection", default=None, metavar="NAME",
                    help=f"with --backend milvus: the collections' name prefix (default {collection_default})")


def _sync(bot: "Bot", show_progress: bool, reread: bool = False, as_is: bool = False,
          stop: Callable[[], bool] | None = None) -> "SyncReport":
    """Bring ``bot``'s index up to date, printing what went wrong and a note when the folder
    holds no document at all; with ``as_is``, an index that cannot be written is used as it is.
    When ``stop()`` turns true the sync ends with :class:`KeyboardInterrupt`, nothing written."""
    from .ingest import SUPPORTED_SUFFIXES

    with progress_bar(show_progress, "reading", "file") as reading, progress_bar(show_progress) as progress:
        report = bot.sync(progress, reading, reread, as_is, stop)
    if report.as_is:
        print(f"warning: {report.as_is}", file=sys.stderr)
    if not bot.index.entries and not report.errors and not report.warnings:
        print(f"note: {bot.docs} holds no {', '.join(SUPPORTED_SUFFIXES)} file (searched recursively, hidden ones "
              "left out)", file=sys.stderr)
    for msg in report.errors.values():  # `qa index` exits 1 for these; the others answer without them
        print(f"not read: {msg}", file=sys.stderr)
    for msg in report.warnings.values():
        print(f"warning: {msg}", file=sys.stderr)
    if report.rebuilt:
        print(f"note: {report.rebuilt}; rebuilt", file=sys.stderr)
    return report


# A document's control characters (a lone CR, an escape sequence) would move the terminal's
# cursor or drive it; each is shown as a space, the line breaks kept.
_SHOWN = {c: " " for c in [*range(32), *range(127, 160)] if chr(c) not in "\n\t"}


def format_answer(answer: "Answer", color: bool = False, date_of: Callable[[str], str | None] | None = None) -> str:
    """A readable answer: the short answer (with its date, when it is one), numbered verbatim
    citations, then the other documents that agree or disagree (``date_of``: a document's date)."""
    from .agreement import ALSO_STATED, DISAGREE

    bold, off = ("\033[1m", "\033[0m") if color else ("**", "**")

    def marked(text: str, a: int | None, b: int | None) -> str:
        text = text.translate(_SHOWN)  # same length: the answer's offsets still hold
        return text if a is None or b is None else text[:a] + bold + text[a:b] + off + text[b:]

    def source(title: str, doc: str, date: str | None) -> str:
        return f"{title or doc}".translate(_SHOWN) + (f", {date}" if date else "")

    def short(text: str) -> str:  # one line, though the answer spans a hard-wrapped line end
        return bold + " ".join(text.translate(_SHOWN).split()) + off

    lines = []
    if answer.searched_for != answer.question:
        lines.append(f"(searched for: {answer.searched_for})")
    if answer.abstained:
        lines.append("I could not find this in the documents.")
        if answer.citations:
            lines.append("Closest matches:")
    else:
        when = f" [{answer.answer_date}]" if answer.answer_date else ""
        lines.append(f"Answer: {short(str(answer.answer))}{when}  (confidence {answer.confidence:.2f})")
    for i, c in enumerate(answer.citations, start=1):
        lines.append(f"[{i}] \u201c{marked(c.text, c.answer_start, c.answer_end)}\u201d")
        lines.append(f"    \u2014 {c.title.translate(_SHOWN)} ({c.doc}, characters {c.start}\u2013{c.end})")
    if answer.corroboration:
        top = answer.citations[0]
        against = [c for c in answer.corroboration if not c.agrees]
        if against:
            lines.append(DISAGREE)
            lines.append(f"  {short(str(answer.answer))} \u2014 {source(top.title, top.doc, date_of(top.doc) if date_of else None)}: "
                         f"\u201c{marked(top.text, top.answer_start, top.answer_end)}\u201d")
            for c in against:
                lines.append(f"  {short(c.answer)} \u2014 {source(c.title, c.doc, c.date)}: "
                             f"\u201c{marked(c.text, c.answer_start, c.answer_end)}\u201d")
        agreeing = [c for c in answer.corroboration if c.agrees]
        if agreeing:
            lines.append(f"{ALSO_STATED}:")
            for c in agreeing:
                lines.append(f"  {source(c.title, c.doc, c.date)}: \u201c{marked(c.text, c.answer_start, c.answer_end)}\u201d")
    return "\n".join(lines)


def counted(n: int, noun: str) -> str:
    """``1 document``, ``2 documents``."""
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def cmd_index(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    bot = _make_bot(args)
    report = _sync(bot, not args.quiet, args.reread)
    n = bot.counts()
    print(
        f"indexed {counted(n['documents'], 'document')}, {counted(n['sentences'], 'sentence')}, "
        f"{counted(n['passages'], 'passage')} "
        f"in {bot.retriever.location} ({len(report.added)} added, {len(report.changed)} changed, "
        f"{len(report.removed)} removed; {time.perf_counter() - t0:.1f} s)"
    )
    return 1 if report.errors else 0


def _print_json(data: object, indent: int | None = None) -> None:
    """JSON on stdout, in \\u escapes where stdout's encoding cannot hold every character."""
    try:
        utf = codecs.lookup(sys.stdout.encoding or "ascii").name.startswith("utf-8")
    except LookupError:
        utf = False
    print(json.dumps(data, ensure_ascii=not utf, indent=indent))


def _ask_one(bot: "Bot", question: str, history: list, as_json: bool) -> "Answer":
    from .bot import QuestionError

    if any("\udc80" <= ch <= "\udcff" for ch in question):  # bytes of the command line or stdin that were not UTF-8
        raise CLIError("the question is not UTF-8 text; type it again")
    try:
        answer = bot.ask(question, history=history)
    except QuestionError as exc:
        raise CLIError(str(exc)) from None
    if as_json:
        _print_json(answer.to_dict(), indent=2)
    else:
        index = bot.index
        print(format_answer(answer, color=sys.stdout.isatty() and not os.environ.get("NO_COLOR"),
                            date_of=lambda d: index.entries[index.doc_pos[d]].meta.get("date")))
    return answer


def _has_documents(bot: "Bot", docs: str) -> None:
    """A :class:`CLIError` when the index holds no document: nothing was searched, nothing is missing."""
    if not bot.index.entries:
        raise CLIError(f"there are no documents to search in {docs}: add some, then ask again")


def cmd_ask(args: argparse.Namespace) -> int:
    bot = _make_bot(args)
    _sync(bot, show_progress=sys.stderr.isatty(), as_is=True)  # indexing a new folder first can take minutes
    _has_documents(bot, args.docs)
    _ask_one(bot, args.question, [], args.json)
    return 0


CHAT_HELP = '"/new" starts over, "/quit" or Ctrl-D quits, Ctrl-C drops an answer being looked for'


def cmd_chat(args: argparse.Namespace) -> int:
    from .bot import Turn

    bot = _make_bot(args)
    _sync(bot, show_progress=sys.stderr.isatty(), as_is=True)
    _has_documents(bot, args.docs)
    n = len(bot.index.entries)
    print(f"Ask about the {n} document{'s' if n != 1 else ''} in {args.docs} ({CHAT_HELP}).")
    history: list[Turn] = []
    typed = sys.stdin.isatty()  # from a file or a pipe, the questions are echoed for the transcript
    if typed and sys.stdout.isatty():  # arrow keys edit the line and recall earlier questions
        with contextlib.suppress(ImportError):
            import readline  # noqa: F401
    if isinstance(sys.stdin, io.TextIOWrapper):  # a line that is not UTF-8 is refused below, not a traceback
        sys.stdin.reconfigure(errors="surrogateescape")
    failed = False
    while True:
        try:
            question = input("\nyou> ").strip()
        except (EOFError, KeyboardInterrupt):
            print()
            return 1 if failed else 0
        if not typed:  # bytes that are not UTF-8 are shown as U+FFFD
            print(question.encode("utf-8", "surrogateescape").decode("utf-8", "replace"))
        if not question:
            continue
        if question in ("/quit", "/exit"):
            return 1 if failed else 0
        if question == "/new":
            history.clear()
            print("(new conversation)")
            continue
        if re.fullmatch(r"/\w+", question):
            print(f"({CHAT_HELP})")
            continue
        try:
            answer = _ask_one(bot, question, history, as_json=False)
        except CLIError as exc:
            print(f"error: {exc}", file=sys.stderr)
            failed = True
            continue
        except KeyboardInterrupt:
            print("(interrupted)")
            continue
        history.append(Turn(question, answer))


def cmd_serve(args: argparse.Namespace) -> int:
    """Run the chat page (``ui.chat``, at ``/``) and the answer API (``qa.api``, under ``/api``)
    with uvicorn; settings come from the ``QA_*`` variables."""
    config = settings()
    taken = _cannot_listen(args.host, args.port)  # said before loading gradio (5 s), the model and the index
    if taken:
        raise CLIError(taken)
    import uvicorn

    from ui.chat import mount_chat  # the page depends on qa, never the reverse: imported here only

    from .api import StartupError, create_app
    from .guard import uvicorn_options

    bot = _make_bot(args, config)
    host = f"[{args.host}]" if ":" in args.host else args.host
    url = f"http://{host}:{args.port}"
    if args.host not in ("127.0.0.1", "localhost", "::1") and not config.api_key:
        print(f"warning: serving on {args.host} without QA_API_KEY: anyone who can reach it may upload and delete documents",
              file=sys.stderr)
    failed: list[int] = []  # the exit status when indexing at start failed or was stopped

    def prepare() -> None:
        """Index the folder while the server already answers /healthz (and /readyz with 503)."""
        try:
            # Stopped by a signal, or by uvicorn's start-up failure (it could not listen).
            _sync(bot, show_progress=True, stop=lambda: server.should_exit or api.state.service.stopping)
        except KeyboardInterrupt:
            if server.should_exit:  # else uvicorn says why it stops
                print("\nqa: interrupted while indexing (an index write is all or nothing: the index is as it was)",
                      file=sys.stderr)
                failed.append(130)
            raise StartupError("stopped while indexing") from None
        except Exception as exc:
            message = _failure(exc)
            failed.append(2 if message else 1)
            server.should_exit = True
            if message is None:
                raise  # a bug: its traceback is logged
            print(f"qa: error: {message}", file=sys.stderr)
            raise StartupError(message) from None
        print(f"Ready: {counted(len(bot.index.entries), 'document')} in {args.docs}", flush=True)

    api = create_app(bot, config, prepare)
    app = mount_chat(api, bot, examples=args.example or ())
    print(f"Chat over the documents in {args.docs}: {url}/\n"
          f"Answer API: {url}/api/answer (OpenAPI: {url}/openapi.json); /readyz is 200 once they are indexed; "
          "Ctrl-C stops", flush=True)

    class Server(uvicorn.Server):
        async def shutdown(self, sockets=None) -> None:
            for route in app.routes:  # an open chat page's event stream ends when Gradio's stop event is set
                stop = getattr(getattr(route, "app", None), "stop_event", None)
                if stop is not None:
                    stop.set()
            await super().shutdown(sockets)

    # Slow clients are bounded below the app too: see qa.guard.uvicorn_options.
    server = Server(uvicorn.Config(app, host=args.host, port=args.port, log_level="warning", **uvicorn_options(config)))
    with contextlib.suppress(KeyboardInterrupt):
        server.run()
    return failed[0] if failed else 0 if server.started else 3  # 3: uvicorn's start-up failure (its message is printed)


def _cannot_listen(host: str, port: int) -> str | None:
    """Why a server could not listen on ``host``:``port`` (in use, an unknown name), or None."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        with socket.socket(family, kind, proto) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn's own socket
            sock.bind(address)
    except OSError as exc:  # socket.gaierror included
        fix = "pass another --port, or stop what listens there" if exc.errno in (errno.EADDRINUSE, errno.EACCES) else \
            "pass another --host: an address or name of this machine (127.0.0.1, 0.0.0.0, ::)"
        return f"cannot listen on {host}:{port} ({exc.strerror or exc}): {fix}"
    return None


def write_json(path: str, data: dict) -> None:
    """``--json-out``: ``data`` as JSON at ``path`` (its folder made if missing), said on stderr."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    write_atomic(Path(path), json.dumps(data, ensure_ascii=False, indent=1).encode("utf-8"))
    print(f"report written to {path}", file=sys.stderr)


def writable(path: str, option: str, reads: Sequence[str | None] = ()) -> None:
    """A :class:`CLIError` when ``option``'s file ``path`` could not be written, or is one of the
    files the command ``reads`` (said before a long run)."""
    if not can_write(path):
        raise CLIError(f"{option} {path!r} cannot be written (a folder, or a path through a file or a read-only folder)")
    if Path(path).exists() and any(other and Path(other).exists() and os.path.samefile(path, other) for other in reads):
        raise CLIError(f"{option} {path!r} is a file this command reads: writing there would lose it")


def cmd_eval(args: argparse.Namespace) -> int:
    if args.report:
        return compare_saved(args)
    if sum(map(bool, (args.set, args.squad, args.coqa))) != 1:
        raise CLIError("give one of: an eval set (SET.jsonl), --squad FILE.json or --coqa FILE.json")
    for option, value, given, needed in (("--sample", args.sample, args.squad, "--squad"), ("--stories", args.stories, args.coqa, "--coqa"),
                                         ("--split", args.split, args.squad or args.coqa, "--squad or --coqa")):
        if value is not None and not given:
            raise CLIError(f"{option} goes with {needed}")
    for option, value in (("--json-out", args.json_out), ("--curve", args.curve)):
        if value:
            writable(value, option, (args.set, args.squad, args.coqa, args.against))
    if args.json_out and args.curve and Path(args.json_out).resolve() == Path(args.curve).resolve():
        raise CLIError(f"--json-out and --curve both name {args.curve!r}: the curve would be drawn over the report; give each its own file")
    quiet_libraries()
    from tqdm import tqdm

    from eval import harness

    try:
        source = args.squad or args.coqa
        if source:
            if not Path(source).is_file():
                raise CLIError(f"{'SQuAD' if args.squad else 'CoQA'} file {source!r} not found")
            try:
                args.docs = str((harness.squad_corpus if args.squad else harness.coqa_corpus)(source, cache_dir()))
                conversations = (harness.squad_set(source, args.sample, args.seed, args.split) if args.squad
                                 else harness.coqa_set(source, args.stories, args.seed, args.split))
            except (ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:  # JSON and Unicode errors too
                raise CLIError(f"{source!r} is not a {'SQuAD' if args.squad else 'CoQA'}-format file "
                               f"({type(exc).__name__}: {exc})") from None
            if args.index is None:
                args.index = str(Path(args.docs).parent / "index")
        else:
            if not Path(args.set).is_file():
                raise CLIError(f"eval set {args.set!r} not found")
            conversations = harness.load_set(args.set)
    except harness.EvalSetError as exc:
        raise CLIError(str(exc)) from None
    try:
        # Read before the run, so a wrong path costs nothing.
        against = harness.report_turns(args.against) if args.against else None
    except harness.EvalSetError as exc:
        raise CLIError(str(exc)) from None
    bot = _make_bot(args)
    _sync(bot, show_progress=True, as_is=True)
    texts = harness.texts_of(bot)
    skipped: dict[str, list[str]] = {}
    if any(c.feedback for c in conversations):  # marks made before the documents changed
        conversations, skipped = harness.replayable(conversations, texts)
    for reason, ids in skipped.items():
        print(f"qa: skipped {len(ids)} feedback mark(s): {harness.SKIP_REASONS[reason]} ({', '.join(ids[:3])}"
              f"{', …' if len(ids) > 3 else ''})", file=sys.stderr)
    if not conversations:
        raise CLIError("no conversation of the set can be replayed on these documents")
    lost = harness.unfindable(conversations, texts)
    if lost:
        print(f"qa: warning: {counted(len(lost), 'answerable turn')} with evidence found in no document, scored as "
              f"misses ({', '.join(lost[:3])}{', …' if len(lost) > 3 else ''})", file=sys.stderr)
    n = sum(len(c.turns) for c in conversations)
    runs = harness.ABLATIONS if args.compare else {"full": None}
    named: dict[str, dict] = {}
    final = None
    for name, setup in runs.items():
        with harness.configured(bot, setup), tqdm(total=n, unit="turn", desc=f"eval {name}", file=sys.stderr) as bar:
            try:
                results = harness.run(bot, conversations, progress=bar.update, texts=texts)
            except harness.EvalSetError as exc:
                raise CLIError(str(exc)) from None
        rep = harness.report(results)
        named[name] = rep["metrics"]
        if name == "full":
            final = (results, rep)
    assert final is not None
    results, rep = final
    if args.details != "none":
        for r in results:
            if args.details == "all" or not r.hit or (r.answer.abstained and r.gold.answerable):
                top = r.answer.citations[0].text if r.answer.citations else "(no citation)"
                mark = "HIT " if r.hit else "MISS"
                print(f"{mark} {r.id}#{r.turn}: {r.gold.question}\n     cited: {top[:160]}\n     why: {r.why}")
        print()
    if not args.compare:
        named = {"all": rep["metrics"], "first turns": rep["metrics_first_turns"], "follow-ups": rep["metrics_follow_ups"]}
    print(harness.format_table(named))
    unpaired = None
    if against is not None:
        try:
            comparison = harness.compare_runs(harness.turns_by_key(rep["turns"]), against)
            rep["against"] = {"report": str(args.against), **comparison}
            print()
            print(harness.format_comparison(comparison, args.against))
        except harness.EvalSetError as exc:
            unpaired = str(exc)  # said after the report is written, so the run is kept
    if args.json_out:
        if args.compare:
            rep["compare"] = named
        write_json(args.json_out, rep)
    if args.curve:
        harness.plot_risk_coverage(results, args.curve, bot.answerer.model.threshold)
        print(f"risk-coverage curve written to {args.curve}", file=sys.stderr)
    failed = unpaired is not None
    if unpaired:
        print(f"qa: {unpaired}", file=sys.stderr)
    for metric, floor in (("sentence_accuracy", args.min_sentence_accuracy), ("answered_accuracy", args.min_answered_accuracy)):
        value = rep["metrics"][metric]
        if floor is not None and (value is None or value < floor):
            said = f"{value} is below" if value is not None else "has no answerable turn, so it does not meet"
            print(f"qa: {metric} {said} --min-{metric.replace('_', '-')} {floor}", file=sys.stderr)
            failed = True
    return int(failed)


def compare_saved(args: argparse.Namespace) -> int:
    """``qa eval --report NEW.json --against OLD.json``: compare two saved reports, running nothing."""
    from eval import harness

    if not args.against:
        raise CLIError("--report compares a saved report: give the other one with --against OLD.json")
    if args.set or args.squad or args.coqa:
        raise CLIError("--report compares two saved reports and runs nothing: leave out the eval set, --squad and --coqa")
    run_only = [option for option, given in (("--min-answered-accuracy", args.min_answered_accuracy is not None),
                                             ("--min-sentence-accuracy", args.min_sentence_accuracy is not None),
                                             ("--compare", args.compare), ("--curve", args.curve),
                                             ("--sample", args.sample), ("--stories", args.stories), ("--split", args.split))
                if given]
    if run_only:
        raise CLIError(f"--report compares two saved reports and runs nothing: leave out {', '.join(run_only)}")
    if args.json_out:
        writable(args.json_out, "--json-out", (args.report, args.against))
    try:
        comparison = harness.compare_runs(harness.report_turns(args.report), harness.report_turns(args.against))
    except harness.EvalSetError as exc:
        raise CLIError(str(exc)) from None
    print(harness.format_comparison(comparison, args.against))
    if args.json_out:
        write_json(args.json_out, {"report": args.report, "against": args.against, **comparison})
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    quiet_libraries()
    from eval import bench, harness
    from index.embedder import ModelError, load_embedder

    source = Path(args.source)
    if not source.is_file():
        raise CLIError(f"source file {args.source!r} not found (a SQuAD-format JSON file; see --source)")
    if args.passages < 1 or args.queries < 1:
        raise CLIError("--passages and --queries must be at least 1")
    if args.json_out:
        writable(args.json_out, "--json-out", (args.source,))
    try:  # checked before the model loads, as the eval's files are
        questions = harness.squad_questions(source)
    except (ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:  # JSON and Unicode errors too
        raise CLIError(f"source file {args.source!r} is not a SQuAD-format file ({type(exc).__name__}: {exc})") from None
    if not questions:
        raise CLIError(f"source file {args.source!r} holds no answerable question to time")
    config = settings()
    options = _backend_options(args, config)
    try:
        model = _model_options(args, config)
        embedder = load_embedder(model["model"], model["embedding"])
    except ModelError as exc:
        raise CLIError(str(exc)) from None
    workdir = Path(args.index) if args.index else cache_dir() / "bench"
    if args.api < 0:
        raise CLIError("--api takes a number of concurrent clients (1 or more)")
    figures = bench.run(source, args.passages, args.queries, workdir, embedder, api_clients=args.api,
                        quantize_reader=config.quantize_reader, **options)
    width = max(len(k) for k in figures) + 2
    for k, v in figures.items():
        print(f"{k.ljust(width)}{'-' if v is None else v}")
    print(f"(index_s: one build; latency_ms: percentiles of {figures['queries']} questions; add_one_doc_s: the median "
          f"of {figures['adds']} adds, add_one_doc_s_max the slowest)")
    if args.json_out:
        write_json(args.json_out, figures)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="qa",
        description="Ask questions about a folder of documents; answers are sentences quoted from them, with citations.",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def model_args(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--model", default=None, help="embedding model: a local folder or name (default: $QA_MODEL or the packaged all-MiniLM-L6-v2)")
        sp.add_argument("--embedding", choices=EMBEDDING_BACKENDS, default=None,
                        help="how to run the model: torch, onnx (float32) or onnx-int8; default $QA_EMBED_BACKEND or auto "
                             "(torch on a CUDA GPU, else onnx-int8)")

    def corpus_args(sp: argparse.ArgumentParser, positional_docs: bool = False) -> None:
        if positional_docs:
            sp.add_argument("docs", metavar="DOCS", help="folder of documents: .pdf .docx .html .txt .md (searched recursively)")
        else:
            sp.add_argument("--docs", default="documents", help="folder of documents: .pdf .docx .html .txt .md (default: documents)")
        sp.add_argument("--index", default=None, help="index folder (default: DOCS/.qa-index)")
        model_args(sp)
        backend_args(sp)
        if not positional_docs:
            sp.add_argument("--no-corroboration", action="store_true",
                            help="do not look in the other documents for sentences that agree or disagree with the answer")

    sp = sub.add_parser("index", help="build or update the index of a documents folder")
    corpus_args(sp, positional_docs=True)
    sp.add_argument("--quiet", action="store_true", help="no progress bar")
    sp.add_argument("--reread", action="store_true",
                    help="read every file again, not only those whose size or modification time changed "
                         "(only sentences whose text is new are embedded)")
    sp.set_defaults(func=cmd_index)

    sp = sub.add_parser("ask", help="answer one question (updates the index first if documents changed)")
    sp.add_argument("question", help="the question, in quotes")
    corpus_args(sp)
    sp.add_argument("--json", action="store_true", help="print the Answer JSON")
    sp.set_defaults(func=cmd_ask)

    sp = sub.add_parser("eval", help="score the bot on an eval set (JSONL), a SQuAD-format or a CoQA-format file")
    sp.add_argument("set", nargs="?", metavar="SET.jsonl", help="eval set: one conversation per line (see GUIDE.md)")
    corpus_args(sp)
    sp.add_argument("--squad", metavar="FILE.json", help="score a SQuAD-format file instead (one document per paragraph)")
    sp.add_argument("--coqa", metavar="FILE.json", help="score a CoQA-format file instead (one document per story, each conversation limited to its story)")
    sp.add_argument("--split", choices=["dev", "calib", "train"], default=None,
                    help="with --squad/--coqa: only the questions of this split of a public training file (eval/splits.py)")
    sp.add_argument("--sample", type=count(1), default=None, metavar="N", help="with --squad: score N questions sampled with --seed")
    sp.add_argument("--stories", type=count(1), default=None, metavar="N", help="with --coqa: score N stories sampled with --seed")
    sp.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    sp.add_argument("--json-out", metavar="FILE", help="write the JSON report (metrics and every turn's Answer)")
    sp.add_argument("--against", metavar="REPORT.json",
                    help="compare with an earlier --json-out report of the same turns: each metric's difference "
                         "with its 95%% interval (paired bootstrap over conversations)")
    sp.add_argument("--report", metavar="NEW.json",
                    help="with --against: compare this saved report instead of running the eval "
                         "(--json-out then writes the comparison)")
    sp.add_argument("--min-sentence-accuracy", type=gate_floor, metavar="X", help="exit 1 when sentence_accuracy is below X")
    sp.add_argument("--min-answered-accuracy", type=gate_floor, metavar="X", help="exit 1 when answered_accuracy is below X")
    sp.add_argument("--compare", action="store_true", help="also run the ablations (BM25 only, dense only, hybrid top sentence, ranker without the reader) side by side")
    sp.add_argument("--curve", metavar="FILE.png", help="draw the risk-coverage curve (accuracy against share answered)")
    sp.add_argument("--details", choices=["misses", "all", "none"], default="misses", help="per-turn lines to print (default: misses)")
    sp.set_defaults(func=cmd_eval)

    sp = sub.add_parser("bench", help="measure indexing and answering speed on a corpus of N passages of real text")
    sp.add_argument("--passages", type=int, default=10_000, help="passages to index (default 10000)")
    sp.add_argument("--queries", type=int, default=200, help="questions to time (default 200)")
    backend_args(sp, collection_default="qa_bench_N, N the passages")
    sp.add_argument("--source", default="../shared/benchmarks/squad-dev-v1.1.json",
                    help="SQuAD-format file whose sentences and questions are used (default: the public benchmark)")
    sp.add_argument("--index", default=None, help="work folder for the corpus and index (default: the cache folder); reused when present")
    model_args(sp)
    sp.add_argument("--api", type=int, default=0, metavar="CLIENTS",
                    help="also ask the same questions through `qa serve` on loopback with CLIENTS concurrent clients")
    sp.add_argument("--json-out", metavar="FILE", help="write the figures as JSON")
    sp.set_defaults(func=cmd_bench)

    sp = sub.add_parser("chat", help="interactive chat in the terminal, with follow-up questions",
                        description=f"Ask one question a line; a follow-up reads the last answer ({CHAT_HELP}).")
    corpus_args(sp)
    sp.set_defaults(func=cmd_chat)

    sp = sub.add_parser("serve", help="run the chat page (at /) and the answer API (under /api; OpenAPI at /openapi.json)")
    corpus_args(sp)
    sp.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    sp.add_argument("--port", type=count(1, 65535), default=7860, help="port (default 7860)")
    sp.add_argument("--example", action="append", metavar="QUESTION",
                    help="an example question shown in the empty chat (repeat for more; default none)")
    sp.set_defaults(func=cmd_serve)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    for stream in (sys.stdout, sys.stderr):  # a quote a non-UTF-8 terminal cannot show is escaped, not a crash
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="backslashreplace")
    args = build_parser().parse_args(argv)

    def fail(message: str) -> int:
        print(f"qa: error: {message}", file=sys.stderr)
        if getattr(args, "json", False):  # a script reading the JSON gets the error there too
            _print_json({"error": message})
        return 2

    try:
        try:
            return int(args.func(args) or 0)
        finally:
            _close_bots()
    except CLIError as exc:
        return fail(str(exc))
    except KeyboardInterrupt:
        print("\nqa: interrupted (an index write is all or nothing: the index is as it was, or whole)", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader of the output has gone (`qa chat … | head -1`)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so exiting flushes nowhere
        return 141
    except Exception as exc:
        message = _failure(exc)
        if message is None:
            raise
        return fail(message)


def _failure(exc: Exception) -> str | None:
    """The one line for an error that names its cause; None for any other (its traceback shows)."""
    if isinstance(exc, OSError):  # the machine's: a full disk, a folder it may not write
        return f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else "")
    # These already name the problem: Milvus failing in any command that indexes or asks
    # (server gone, collection refused), another writer holding the index too long, a
    # documents folder that cannot be read. (Imported here only: they load numpy.)
    from index.milvus import MilvusError
    from index.records import IndexStoreError

    from .ingest import IngestError

    return str(exc) if isinstance(exc, (MilvusError, IndexStoreError, IngestError)) else None


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
