"""The ``qa`` command line. Heavy modules (torch, faiss) load only inside the commands."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:
    from .bot import Bot, SyncReport
    from .types import Answer


class CLIError(Exception):
    """An error to show the user as one line, with exit status 2."""


def _quiet_libraries() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    import warnings

    warnings.filterwarnings("ignore", category=FutureWarning)


def _make_bot(args: argparse.Namespace) -> "Bot":
    _quiet_libraries()
    from index.embedder import ModelError
    from .bot import Bot

    if not Path(args.docs).is_dir():
        raise CLIError(f"documents folder {args.docs!r} does not exist (pass --docs DIR)")
    try:
        return Bot(args.docs, index_dir=args.index, model=args.model)
    except ModelError as exc:
        raise CLIError(str(exc)) from None


def _sync(bot: "Bot", show_progress: bool) -> "SyncReport":
    from tqdm import tqdm

    bar = None

    def progress(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, unit="text", desc="embedding", disable=not show_progress, file=sys.stderr)
        bar.update(done - bar.n)

    try:
        report = bot.sync(progress)
    finally:
        if bar is not None:
            bar.close()
    for msg in list(report.errors.values()) + list(report.warnings.values()):
        print(f"warning: {msg}", file=sys.stderr)
    if report.rebuilt:
        print(f"note: {report.rebuilt}; rebuilt", file=sys.stderr)
    return report


def format_answer(answer: "Answer", color: bool = False) -> str:
    """A readable answer: the short answer, then numbered verbatim citations."""
    bold, off = ("\033[1m", "\033[0m") if color else ("**", "**")
    lines = []
    if answer.searched_for != answer.question:
        lines.append(f"(searched for: {answer.searched_for})")
    if answer.abstained:
        lines.append("I could not find this in the documents.")
        if answer.citations:
            lines.append("Closest matches:")
    else:
        lines.append(f"Answer: {bold}{answer.answer}{off}  (confidence {answer.confidence:.2f})")
    for i, c in enumerate(answer.citations, start=1):
        text = c.text
        if c.answer_start is not None and c.answer_end is not None:
            text = text[:c.answer_start] + bold + text[c.answer_start:c.answer_end] + off + text[c.answer_end:]
        lines.append(f"[{i}] \u201c{text}\u201d")
        lines.append(f"    \u2014 {c.title} ({c.doc}, characters {c.start}\u2013{c.end})")
    return "\n".join(lines)


def cmd_index(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    bot = _make_bot(args)
    report = _sync(bot, not args.quiet)
    idx = bot.index
    print(
        f"indexed {len(idx.entries)} documents, {len(idx.sentences)} sentences, {len(idx.passages)} passages "
        f"in {bot.index_dir} ({len(report.added)} added, {len(report.changed)} changed, "
        f"{len(report.removed)} removed; {time.perf_counter() - t0:.1f} s)"
    )
    return 1 if report.errors else 0


def _ask_one(bot: "Bot", question: str, history: list, as_json: bool) -> "Answer":
    from .bot import QuestionError

    try:
        answer = bot.ask(question, history=history)
    except QuestionError as exc:
        raise CLIError(str(exc)) from None
    if as_json:
        print(json.dumps(answer.to_dict(), ensure_ascii=False, indent=2))
    else:
        print(format_answer(answer, color=sys.stdout.isatty()))
    return answer


def cmd_ask(args: argparse.Namespace) -> int:
    bot = _make_bot(args)
    _sync(bot, show_progress=False)
    _ask_one(bot, args.question, [], args.json)
    return 0


def cmd_chat(args: argparse.Namespace) -> int:
    from .bot import Turn

    bot = _make_bot(args)
    _sync(bot, show_progress=True)
    print(f"Ask about the {len(bot.index.entries)} documents in {args.docs} (\"/new\" starts over, Ctrl-D quits).")
    history: list[Turn] = []
    while True:
        try:
            question = input("\nyou> ").strip()
        except (EOFError, KeyboardInterrupt):
            print()
            return 0
        if not question:
            continue
        if question == "/new":
            history.clear()
            print("(new conversation)")
            continue
        try:
            answer = _ask_one(bot, question, history, as_json=False)
        except CLIError as exc:
            print(f"error: {exc}")
            continue
        history.append(Turn(question, answer))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="qa",
        description="Ask questions about a folder of documents; answers are sentences quoted from them, with citations.",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def corpus_args(sp: argparse.ArgumentParser, positional_docs: bool = False) -> None:
        if positional_docs:
            sp.add_argument("docs", metavar="DOCS", help="folder of .txt/.md documents (searched recursively)")
        else:
            sp.add_argument("--docs", default="documents", help="folder of .txt/.md documents (default: documents)")
        sp.add_argument("--index", default=None, help="index folder (default: DOCS/.qa-index)")
        sp.add_argument("--model", default=None, help="embedding model: a local folder or name (default: $QA_MODEL or the packaged all-MiniLM-L6-v2)")

    sp = sub.add_parser("index", help="build or update the index of a documents folder")
    corpus_args(sp, positional_docs=True)
    sp.add_argument("--quiet", action="store_true", help="no progress bar")
    sp.set_defaults(func=cmd_index)

    sp = sub.add_parser("ask", help="answer one question (updates the index first if documents changed)")
    sp.add_argument("question", help="the question, in quotes")
    corpus_args(sp)
    sp.add_argument("--json", action="store_true", help="print the Answer JSON")
    sp.set_defaults(func=cmd_ask)

    sp = sub.add_parser("chat", help="interactive chat in the terminal, with follow-up questions")
    corpus_args(sp)
    sp.set_defaults(func=cmd_chat)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except CLIError as exc:
        print(f"qa: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
