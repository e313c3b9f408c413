import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import DOCUMENTS, ROOT

QA = [sys.executable, "-m", "qa.cli"]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1"}


def test_help_does_not_import_heavy_modules():
    code = "import sys; from qa.cli import build_parser; build_parser(); print('torch' in sys.modules, 'faiss' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "False False"
    helptext = subprocess.run(QA + ["--help"], capture_output=True, text=True, check=True, cwd=ROOT).stdout
    assert "index" in helptext and "ask" in helptext


def test_argument_errors():
    r = subprocess.run(QA + ["ask"], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2 and "question" in r.stderr
    r = subprocess.run(QA + ["ask", "why", "--docs", "/nonexistent"], capture_output=True, text=True, cwd=ROOT, env=ENV)
    assert r.returncode == 2 and "does not exist" in r.stderr
    # A bad QA_* variable is named, with why, before any model loads.
    bad = {**ENV, "QA_EMBED_BACKEND": "tensorrt", "QA_MAX_PDF_PAGES": "0"}
    r = subprocess.run(QA + ["ask", "why", "--docs", str(DOCUMENTS)], capture_output=True, text=True, cwd=ROOT, env=bad)
    assert r.returncode == 2 and "QA_EMBED_BACKEND='tensorrt'" in r.stderr and "QA_MAX_PDF_PAGES='0'" in r.stderr, r.stderr


def test_mistakes_get_one_line_each_not_a_traceback(tmp_path: Path):
    """Each of these printed a traceback (or a wrong hint) before the command-line audit."""
    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(QA + list(args), capture_output=True, text=True, cwd=ROOT, env=ENV)

    seed = next(DOCUMENTS.glob("*.txt"))
    r = run("index", str(seed))
    assert r.returncode == 2 and f"{str(seed)!r} is a file, not a folder (pass DOCS)" in r.stderr, r.stderr
    r = run("index", "")
    assert r.returncode == 2 and "documents folder '' is empty" in r.stderr  # not the current folder
    (tmp_path / "afile").write_text("x")
    r = run("index", str(DOCUMENTS), "--index", str(tmp_path / "afile" / "sub"), "--quiet")
    assert r.returncode == 2 and r.stderr.startswith("qa: error: Not a directory") and "Traceback" not in r.stderr
    r = run("serve", "--port", "99999")
    assert r.returncode == 2 and "99999 is not in 1..65535" in r.stderr
    r = run("eval", "--squad", "x.json", "--sample", "-1")
    assert r.returncode == 2 and "-1 is not in 1.." in r.stderr
    r = run("ask", "   ", "--docs", str(DOCUMENTS), "--index", str(tmp_path / "ix"), "--json")
    assert r.returncode == 2 and json.loads(r.stdout) == {"error": "the question is empty: ask something about the documents"}
    import socket

    with socket.socket() as busy:  # a port in use is said before the model and index load, and no banner is shown
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        r = run("serve", "--docs", str(DOCUMENTS), "--port", str(port))
    assert r.returncode == 2 and f"cannot listen on 127.0.0.1:{port} (Address already in use)" in r.stderr
    assert "Chat over" not in r.stdout
    (tmp_path / "pictures").mkdir()
    (tmp_path / "pictures" / "cat.png").write_bytes(b"\x89PNG")
    r = run("index", str(tmp_path / "pictures"), "--quiet")
    assert r.returncode == 0 and "holds no .txt" in r.stderr and "indexed 0 documents" in r.stdout


@pytest.mark.parametrize("code, says", [("EACCES", "Permission denied"), ("EROFS", "Read-only file system")])
def test_an_index_that_cannot_be_written_is_asked_as_it_is(tmp_path: Path, monkeypatch, capsys, code: str, says: str):
    """`qa ask` brings the index up to date first, under the writers' lease: on an index it may
    not write (a shared one, or on a read-only file system) it stopped with a traceback. It
    answers from the index as last written now, and says so; `qa index` still says it cannot
    write. (Root may open any file, so the refusal is raised for it here, in-process.)"""
    import errno
    import shutil

    from qa import cli

    docs = tmp_path / "docs"
    shutil.copytree(DOCUMENTS, docs)
    assert cli.main(["index", str(docs), "--quiet"]) == 0
    (docs / "late.txt").write_text("A note added after the index was built, about herons.\n", encoding="utf-8")
    opened = os.open

    def read_only(path, flags, *args, **kwargs):
        if str(path).endswith("writer.lock"):
            raise OSError(getattr(errno, code), says, str(path))
        return opened(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", read_only)
    capsys.readouterr()
    assert cli.main(["ask", "When was the second call?", "--docs", str(docs), "--json"]) == 0
    out = capsys.readouterr()
    assert "the other on January 8" in json.loads(out.out)["citations"][0]["text"]
    assert f"cannot be written ({says}): answering from it as last written" in out.err
    assert cli.main(["index", str(docs), "--quiet"]) == 2
    assert capsys.readouterr().err.startswith(f"qa: error: {says}: ")


def test_reread_sees_an_edit_that_kept_size_and_time(tmp_path: Path):
    docs = tmp_path / "docs"
    docs.mkdir()
    note = docs / "note.txt"
    note.write_text("The ferry leaves at nine in the morning.\n", encoding="utf-8")
    for args in ([], ["--reread"]):
        r = subprocess.run(QA + ["index", str(docs), "--quiet", *args], capture_output=True, text=True, cwd=ROOT, env=ENV)
        assert r.returncode == 0, r.stderr
        if not args:  # the same size and modification time: not read again without --reread
            st = note.stat()
            note.write_text("The ferry leaves at five in the morning.\n", encoding="utf-8")
            os.utime(note, ns=(st.st_atime_ns, st.st_mtime_ns))
            assert "0 changed" in subprocess.run(QA + ["index", str(docs), "--quiet"], capture_output=True, text=True,
                                                 cwd=ROOT, env=ENV).stdout
    assert "(0 added, 1 changed, 0 removed" in r.stdout


def test_index_then_ask_json(tmp_path: Path):
    ix = tmp_path / "ix"
    r = subprocess.run(QA + ["index", str(DOCUMENTS), "--index", str(ix), "--quiet"], capture_output=True, text=True, cwd=ROOT, env=ENV)
    assert r.returncode == 0, r.stderr
    assert "indexed 2 documents" in r.stdout
    r = subprocess.run(
        QA + ["ask", "When was the second call?", "--docs", str(DOCUMENTS), "--index", str(ix), "--json"],
        capture_output=True, text=True, cwd=ROOT, env=ENV,
    )
    assert r.returncode == 0, r.stderr
    answer = json.loads(r.stdout)
    assert not answer["abstained"]
    top = answer["citations"][0]
    assert "the other on January 8" in top["text"]
    assert top["text"][top["answer_start"]:top["answer_end"]] == answer["answer"]
    text = (DOCUMENTS / top["doc"]).read_text(encoding="utf-8")
    assert text[top["start"]:top["end"]] == top["text"]


def test_chat_keeps_going_until_eof(tmp_path: Path):
    r = subprocess.run(
        QA + ["chat", "--docs", str(DOCUMENTS), "--index", str(tmp_path / "ix")],
        input="When was the second call?\n\n/new\n", capture_output=True, text=True, cwd=ROOT, env=ENV,
    )
    assert r.returncode == 0, r.stderr
    assert "January 8" in r.stdout and "(new conversation)" in r.stdout
    assert "you> When was the second call?\n" in r.stdout  # from a pipe, the transcript shows the question
    # A question refused is said on stderr, and the exit status tells a script.
    r = subprocess.run(QA + ["chat", "--docs", str(DOCUMENTS), "--index", str(tmp_path / "ix")],
                       input="x" * 3000 + "\n", capture_output=True, text=True, cwd=ROOT, env=ENV)
    assert r.returncode == 1 and "error: the question has 3000 characters" in r.stderr
    # A reader that stops reading ends the chat quietly.
    shell = f"printf 'When was the first call?\\nAnd the second?\\n' | {sys.executable} -m qa.cli chat --docs {DOCUMENTS} " \
            f"--index {tmp_path / 'ix'} | head -c 10"
    r = subprocess.run(["bash", "-o", "pipefail", "-c", shell], capture_output=True, text=True, cwd=ROOT, env=ENV)
    assert "Traceback" not in r.stderr and r.returncode in (0, 141), r.stderr


def test_nothing_below_the_serving_layer_imports_it():
    """The flow runs one way: the library, the training and eval scripts never import the CLI,
    the API or the chat page (eval.bench imported the CLI, which imports eval.bench: a circle)."""
    import ast

    serving = {"qa.cli", "qa.api", "ui"}
    offenders = []
    for path in sorted([*ROOT.glob("index/*.py"), *ROOT.glob("qa/**/*.py"), *ROOT.glob("eval/*.py")]):
        if path.relative_to(ROOT).as_posix() == "qa/cli.py" or path.parent.relative_to(ROOT).as_posix() == "qa/api":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                relative = node.level and path.parent.name == "qa"
                names = [f"qa.{node.module}" if relative and node.module else node.module or ""]
            else:
                continue
            if any(n == s or n.startswith(s + ".") for n in names for s in serving):
                offenders.append(f"{path.relative_to(ROOT)}: {names}")
    assert not offenders, offenders


def test_a_wheel_built_from_the_repository_answers_a_question(tmp_path):
    """Package data complete: the wheel alone (outside the repository, its dependencies from
    this environment) indexes a folder and answers with a verbatim citation."""
    import shutil

    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(tmp_path / "dist"), str(ROOT)], capture_output=True, text=True)
    assert built.returncode == 0, built.stderr
    (wheel,) = (tmp_path / "dist").glob("qa_bot-*.whl")
    site = tmp_path / "site"
    installed = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
                               capture_output=True, text=True)
    assert installed.returncode == 0, installed.stderr
    docs = tmp_path / "docs"
    shutil.copytree(ROOT / "documents", docs)
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    # Only the installed copy is importable: the repository is neither the working folder nor on the path.
    env = {**os.environ, "PYTHONPATH": str(site), "HF_HUB_OFFLINE": "1", "PYTHONSAFEPATH": "1"}
    code = ("import sys, qa; assert qa.__file__.startswith(sys.argv[1]), qa.__file__; "
            "from qa.cli import main; sys.exit(main(['ask', 'Who did Milley call?', '--docs', sys.argv[2], '--json']))")
    r = subprocess.run([sys.executable, "-c", code, str(site), str(docs)], capture_output=True, text=True,
                       cwd=elsewhere, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    answer = json.loads(r.stdout)
    top = answer["citations"][0]
    assert (docs / top["doc"]).read_text(encoding="utf-8")[top["start"]:top["end"]] == top["text"]
    assert not answer["abstained"] and answer["answer"]


def test_the_lock_pins_every_dependency_with_hashes_and_is_what_runs():
    """``make`` installs requirements.lock with --require-hashes: every package in it carries a
    sha256, every dependency pyproject.toml names is in it, and this environment runs exactly
    those versions (so the suite tests what a fresh machine installs)."""
    import re
    import tomllib
    from importlib.metadata import distributions

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    blocks = re.split(r"\n(?=[A-Za-z0-9])", (ROOT / "requirements.lock").read_text(encoding="utf-8"))
    pins: dict[str, str] = {}
    for block in blocks:
        m = re.match(r"([A-Za-z0-9_.\-]+)==(\S+)", block)
        if m:
            assert "--hash=sha256:" in block, f"{m.group(1)} has no hash"
            pins[canonicalize_name(m.group(1))] = m.group(2)
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    named = [*project["dependencies"], *project["optional-dependencies"]["test"], *project["optional-dependencies"]["train"]]
    for spec in map(Requirement, named):
        name = canonicalize_name(spec.name)
        assert name in pins, f"{spec.name} is not in requirements.lock: run `make lock`"
        assert spec.specifier.contains(pins[name], prereleases=True), f"{spec} but the lock pins {pins[name]}"
    installed = {canonicalize_name(d.metadata["Name"]): d.version for d in distributions()}
    drift = {n: (v, installed.get(n)) for n, v in pins.items() if n in installed and installed[n] != v}
    missing = sorted(n for n in pins if n not in installed and n not in {"pip", "setuptools"})
    assert not drift and not missing, (drift, missing)


def test_no_import_circles_at_module_level():
    """No module imports, at load time, a module that imports it back (directly or through
    others). Imports inside functions or under ``if TYPE_CHECKING`` run later or never, so they
    are not edges; a package's ``__init__`` is a node like any module."""
    import ast

    def name_of(path: Path) -> str:
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)

    modules = {name_of(p): p for d in ("qa", "index", "eval", "ui") for p in (ROOT / d).rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for mod, path in modules.items():
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        edges: set[str] = set()
        for node in ast.parse(path.read_text(encoding="utf-8")).body:  # module level only
            if isinstance(node, ast.Import):
                edges |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(anchor + ([node.module] if node.module else []))
                edges.add(base)
                edges |= {f"{base}.{a.name}" for a in node.names}  # `from . import persist`
        graph[mod] = {e for e in edges if e in modules and e != mod}
    seen: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(mod: str, path: list[str]) -> list[str] | None:
        seen[mod] = 1
        for nxt in sorted(graph[mod]):
            if seen.get(nxt) == 1:
                return path + [mod, nxt]
            if nxt not in seen and (cycle := visit(nxt, path + [mod])):
                return cycle
        seen[mod] = 2
        return None

    assert len(graph) > 40
    for mod in sorted(graph):
        if mod not in seen:
            cycle = visit(mod, [])
            assert cycle is None, " -> ".join(cycle)


def test_chat_commands_bytes_that_are_not_utf8_and_a_redirected_error_output(tmp_path: Path):
    """From the terminal chat's audit: "/quit" and "/help" were asked as questions; a progress bar
    was drawn into a redirected error output; a line that is not UTF-8 stopped the chat with a
    traceback where stdin decodes strictly (a UTF-8 locale other than C.UTF-8)."""
    r = subprocess.run(QA + ["chat", "--docs", str(DOCUMENTS), "--index", str(tmp_path / "ix")],
                       input=b"/help\nWhen was the \xff first call?\n/quit\nWhen was the second call?\n",
                       capture_output=True, cwd=ROOT, env={**ENV, "PYTHONIOENCODING": "utf-8:strict"})
    out, err = r.stdout.decode(), r.stderr.decode()
    assert "Traceback" not in err and r.returncode == 1, err
    assert 'you> /help\n("/new" starts over' in out and "searched for: /help" not in out
    assert "error: the question is not UTF-8 text" in err
    r = subprocess.run([*QA, "ask", b"When was the \xff first call?", "--docs", str(DOCUMENTS), "--index", str(tmp_path / "ix")],
                       capture_output=True, cwd=ROOT, env=ENV)
    assert r.returncode == 2 and b"the question is not UTF-8 text" in r.stderr, r.stderr  # was "a lone surrogate"
    assert "second call" not in out  # /quit ended the chat
    assert "\r" not in err and "reading" not in err


def test_an_empty_folder_is_said_not_answered(tmp_path: Path):
    """`qa ask` over a folder without documents answered "I could not find this in the documents"
    (exit 0, `"abstained": true`), as if the documents had been searched."""
    (tmp_path / "docs").mkdir()
    r = subprocess.run(QA + ["ask", "When was the call?", "--docs", str(tmp_path / "docs"), "--json"],
                       capture_output=True, text=True, cwd=ROOT, env=ENV)
    assert r.returncode == 2 and "no documents to search" in json.loads(r.stdout)["error"], r.stdout


def test_chat_colour_and_ctrl_c_during_an_answer(tmp_path: Path, monkeypatch, capsys):
    """NO_COLOR was ignored on a terminal; Ctrl-C during an answer ended the chat saying an index
    write was interrupted. It drops that answer and the chat goes on."""
    import io

    from qa import cli
    from qa.bot import Bot

    asked = Bot.ask
    calls = []

    def interrupted_once(self, *args, **kwargs):
        calls.append(args)
        if len(calls) == 1:
            raise KeyboardInterrupt
        return asked(self, *args, **kwargs)

    class Typed(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(Bot, "ask", interrupted_once)
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setattr("sys.stdin", io.StringIO("When was the first call?\nWhen was the second call?\n"))
    monkeypatch.setattr("sys.stdout", Typed())
    assert cli.main(["chat", "--docs", str(DOCUMENTS), "--index", str(tmp_path / "ix")]) == 0
    out = sys.stdout.getvalue()
    assert "(interrupted)" in out and "Answer: **" in out and "\033[" not in out and len(calls) == 2


def test_chat_on_a_terminal_edits_the_line(tmp_path: Path):
    """On a terminal the arrow keys went into the question as escape codes ("cal^[[Dl"), which was
    then declined: the line is edited with readline now, and the up arrow recalls a question."""
    import pty
    import select
    import signal

    pid, fd = pty.fork()
    if pid == 0:  # pragma: no cover (the child)
        os.chdir(ROOT)
        os.execve(sys.executable, QA + ["chat", "--docs", str(DOCUMENTS), "--index", str(tmp_path / "ix")], ENV)
    out, keys = b"", [b"When was the first cal\x1b[Dl\x1b[C?\r", b"\x1b[A\r", b"\x04"]
    try:
        while keys and select.select([fd], [], [], 120)[0]:
            out += os.read(fd, 65536)
            if out.rstrip(b"\x1b[?2004h").endswith(b"you> "):
                os.write(fd, keys.pop(0))
        assert not keys, out[-400:]  # else the child is killed below, not waited for
        assert os.waitpid(pid, 0)[1] == 0
    finally:
        with contextlib.suppress(ProcessLookupError, ChildProcessError):
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
    assert out.count(b"Answer: ") == 2 and b"^[[" not in out, out[-400:]


def test_an_answer_on_an_output_that_is_not_utf8(tmp_path: Path, monkeypatch):
    """On a terminal or pipe in ASCII or Latin-1 the quote marks of every reply raised
    UnicodeEncodeError after the answer was found; they are escaped, and JSON uses \\u escapes."""
    import io

    from qa import cli

    ix = str(tmp_path / "ix")
    for encoding, args in (("ascii", []), ("latin-1", ["--json"])):
        out = io.TextIOWrapper(io.BytesIO(), encoding=encoding)
        monkeypatch.setattr("sys.stdout", out)
        assert cli.main(["ask", "When was the first call?", "--docs", str(DOCUMENTS), "--index", ix, *args]) == 0
        out.flush()
        text = out.buffer.getvalue().decode(encoding)
        if args:
            top = json.loads(text)["citations"][0]
            source = (DOCUMENTS / top["doc"]).read_text(encoding="utf-8")
            assert text.isascii() and source[top["start"]:top["end"]] == top["text"]
        else:
            assert "\\u201c" in text and "Answer:" in text


def test_ask_shows_a_documents_control_characters_as_spaces(tmp_path: Path):
    """A lone CR (classic Mac line ends) or an escape sequence inside a quote moved the terminal's
    cursor: "by the harbour crew." was printed over the start of the quote."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "mac.txt").write_bytes(b"Harbour notes\r\rThe lighthouse was painted red in 1954\rby the \x1b[2Jharbour crew.\r")
    r = subprocess.run(QA + ["ask", "When was the lighthouse painted red?", "--docs", str(docs), "--index", str(tmp_path / "ix")],
                       capture_output=True, cwd=ROOT, env=ENV)
    assert r.returncode == 0, r.stderr
    assert b"\r" not in r.stdout and b"\x1b" not in r.stdout
    assert "\u201cThe lighthouse was painted red in **1954** by the  [2Jharbour crew.\u201d" in r.stdout.decode()


def test_serve_refuses_a_bad_host_or_busy_port_quickly_and_says_which(tmp_path: Path):
    """A --host that cannot be bound was told to "pass another --port", and every refusal came
    after gradio's import (5 s); `QA_MODEL` naming a missing folder said "use QA_EMBED_BACKEND=torch"."""
    import socket

    code = ("import sys; from qa.cli import main; rc = main(sys.argv[1:]); "
            "print(rc, 'gradio' in sys.modules, 'torch' in sys.modules)")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = str(busy.getsockname()[1])
        for args, says in ((["--port", port], "pass another --port"), (["--host", "256.1.1.1"], "pass another --host")):
            r = subprocess.run([sys.executable, "-c", code, "serve", "--docs", str(DOCUMENTS), *args],
                               capture_output=True, text=True, cwd=ROOT, env=ENV)
            assert r.stdout.split() == ["2", "False", "False"] and says in r.stderr, r.stderr
    for model, says in (("/nonexistent/model", "does not exist"), (str(next(DOCUMENTS.glob("*.txt"))), "is a file")):
        r = subprocess.run(QA + ["ask", "why", "--docs", str(DOCUMENTS), "--index", str(tmp_path / "ix")],
                           capture_output=True, text=True, cwd=ROOT, env={**ENV, "QA_MODEL": model})
        assert r.returncode == 2 and f"model folder {model!r} {says}: point QA_MODEL" in r.stderr, r.stderr


def test_an_empty_or_relative_cache_home_is_unset(monkeypatch):
    """`XDG_CACHE_HOME=` made the cache `./qa-bot`: `qa ask` exported the 113 MB ONNX model into
    whatever folder it was run from, again in each."""
    from index.config import cache_dir

    for value in ("", "relative/cache"):
        monkeypatch.setenv("XDG_CACHE_HOME", value)
        assert cache_dir() == Path.home() / ".cache" / "qa-bot"
    monkeypatch.setenv("XDG_CACHE_HOME", "/srv/cache")
    assert cache_dir() == Path("/srv/cache/qa-bot")


def test_a_mistyped_setting_is_named_with_the_one_it_looks_like(monkeypatch, capsys):
    """QA_API_KEYS=secret was ignored without a word, leaving the server open to writes."""
    import socket

    from qa.cli import main

    monkeypatch.setenv("QA_API_KEYS", "secret")
    monkeypatch.setenv("QA_REQUIRE_BROWSER", "1")  # no setting's near miss: not ours to judge
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        assert main(["serve", "--docs", str(DOCUMENTS), "--port", str(busy.getsockname()[1])]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "warning: QA_API_KEYS is not a setting and does nothing: did you mean QA_API_KEY?"
    assert "pass another --port" in err[1] and len(err) == 2


def test_a_milvus_uri_without_the_milvus_backend_is_said(capsys):
    import argparse

    from qa.cli import _backend_options
    from qa.settings import Settings

    args = argparse.Namespace(command="ask", backend="faiss", milvus_uri=None, milvus_collection=None)
    assert _backend_options(args, Settings.from_env({"QA_MILVUS_URI": "http://db:19530"})) == {"backend": "faiss"}
    assert capsys.readouterr().err == ("warning: QA_MILVUS_URI is set, but this ask uses the faiss index: "
                                       "pass --backend milvus to use Milvus\n")
    assert _backend_options(args, Settings.from_env({})) == {"backend": "faiss"}
    assert capsys.readouterr().err == ""


def test_a_short_answer_over_a_hard_wrapped_line_is_shown_on_one_line():
    """"January\r\n8", quoted from a hard-wrapped file, printed the answer line over two lines."""
    from qa.cli import format_answer
    from qa.types import Answer, Citation

    text = "The second call was on January\r\n8, two days later."
    cite = Citation("calls.txt", "Calls", text, 0, len(text), 0.9, text.index("January"), text.index(","))
    a = Answer("When was the second call?", "When was the second call?", False, text[cite.answer_start:cite.answer_end],
               0.8, (cite,))
    lines = format_answer(a).splitlines()
    assert lines[0] == "Answer: **January 8**  (confidence 0.80)"
    assert lines[1:3] == ["[1] \u201cThe second call was on **January ", "8**, two days later.\u201d"]  # quoted as written


def test_counts_are_said_in_the_singular_for_one():
    from qa.cli import counted

    assert [counted(n, "document") for n in (0, 1, 2, 12000)] == ["0 documents", "1 document", "2 documents", "12,000 documents"]
