import json
import os
import subprocess
import sys
from pathlib import Path

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
    r = subprocess.run(QA + ["ask", "hi", "--docs", "/nonexistent"], capture_output=True, text=True, cwd=ROOT, env=ENV)
    assert r.returncode == 2 and "does not exist" in r.stderr


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


def test_nothing_below_the_command_line_imports_it():
    """The flow runs one way: the library, the training and eval scripts never import the CLI
    (eval.bench did, and the CLI imports eval.bench: a circle)."""
    import ast

    offenders = []
    for path in sorted([*ROOT.glob("index/*.py"), *ROOT.glob("qa/**/*.py"), *ROOT.glob("eval/*.py")]):
        if path.name == "cli.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            if any(n == "qa.cli" or n.startswith("qa.cli.") or n == "cli" and getattr(node, "level", 0) for n in names):
                offenders.append(str(path.relative_to(ROOT)))
    assert not offenders, offenders
