"""Users' marks on answers become eval-set conversations (``POST /api/feedback``), and the
answer API's date filters (issue 26): a real uvicorn on loopback, the real model and bot."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import httpx
import pytest

from conftest import ROOT
from servers import KEY, serving_copy

from eval import harness
from eval.loadcheck import free_port, wait_ready
from qa.api import Settings
from qa.feedback import FeedbackStore, conversation
from qa.types import Answer

AUTH = {"X-API-Key": KEY}
QUESTION = "Who built the harbour lighthouse?"


@pytest.fixture(scope="module")
def server(embedder, tmp_path_factory):
    settings = Settings(rate_limit=0, api_key=KEY, max_body_bytes=64 * 1024)
    with serving_copy(embedder, tmp_path_factory.mktemp("feedback"), settings) as s:
        yield s.bot, s.client


def _answer(client, question=QUESTION, **extra):
    r = client.post("/api/answer", json={"question": question, **extra})
    assert r.status_code == 200, r.text
    return r.json()


def test_marks_become_conversations_that_qa_eval_scores(server):
    bot, client = server
    bot.feedback.path.unlink(missing_ok=True)
    first = _answer(client)
    assert not first["abstained"] and first["citations"][0]["doc"] == "lighthouse.md"
    follow = _answer(client, "How tall is it?", history=[{"question": QUESTION, "answer": first}], top_k=3)
    history = [{"question": QUESTION, "answer": first}]
    right = {"question": QUESTION, "answer": first, "verdict": "right"}
    # Wrong, and a closest match is the sentence that answers instead.
    other = follow["citations"][-1]
    wrong = {"question": "How tall is it?", "answer": follow, "history": history, "verdict": "wrong",
             "evidence": {"doc": other["doc"], "start": other["start"], "end": other["end"]}}
    unanswered = {"question": "How tall is it?", "answer": follow, "history": history, "verdict": "wrong",
                  "not_answered": True, "docs": ["lighthouse.md"]}
    ids = []
    for body in (right, wrong, unanswered):
        r = client.post("/api/feedback", json=body, headers=AUTH)
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])
    records = bot.feedback.records()
    assert [rec["id"] for rec in records] == ids
    assert records[1]["turns"][0] == {"question": QUESTION, "scored": False}

    # `qa eval` on the file: each conversation replays its earlier turns and scores the marked one.
    conversations = harness.load_set(bot.feedback.path)
    results = harness.run(bot, conversations)
    assert [(r.id, r.turn) for r in results] == [(ids[0], 0), (ids[1], 1), (ids[2], 1)]
    assert results[0].gold.answerable and results[0].hit  # marked right: the bot still answers it so
    assert results[1].gold.evidence == ({"doc": other["doc"], "start": other["start"], "end": other["end"]},)
    assert not results[2].gold.answerable
    metrics = harness.metrics(results)
    assert metrics["n_turns"] == 3
    cli = subprocess.run([sys.executable, "-m", "qa.cli", "eval", str(bot.feedback.path), "--docs", str(bot.docs),
                          "--index", str(bot.index_dir), "--details", "none"],
                         capture_output=True, text=True, cwd=ROOT, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert cli.returncode == 0, cli.stderr
    assert "n_turns" in cli.stdout and " 3" in cli.stdout.split("n_turns")[1].splitlines()[0]


@pytest.mark.parametrize("body, status", [
    ({"verdict": "wrong"}, 422),                                              # wrong, but nothing picked
    ({"verdict": "wrong", "not_answered": True, "evidence": {"doc": "lighthouse.md", "start": 0, "end": 5}}, 422),
    ({"verdict": "right", "not_answered": True}, 422),
    ({"verdict": "maybe"}, 422),
    ({"verdict": "wrong", "evidence": {"doc": "lighthouse.md", "start": 5, "end": 5}}, 422),
    ({"verdict": "wrong", "evidence": {"doc": "lighthouse.md", "start": 0, "end": 10 ** 7}}, 422),
    ({"verdict": "wrong", "evidence": {"doc": "nowhere.txt", "start": 0, "end": 5}}, 404),
    ({"verdict": "right", "docs": ["nowhere.txt"]}, 404),
    ({"verdict": "right", "question": "   "}, 422),
    ({"verdict": "right", "extra": 1}, 422),
    ({"verdict": "right", "history": [{"question": "x" * 100, "answer": {"question": "y" * 3000}}] * 40}, 413),
])
def test_bad_marks_get_a_4xx_and_nothing_is_written(server, body, status):
    bot, client = server
    before = bot.feedback.path.read_bytes() if bot.feedback.path.exists() else b""
    first = _answer(client)
    r = client.post("/api/feedback", json={"question": QUESTION, "answer": first, **body}, headers=AUTH)
    assert r.status_code == status, r.text
    assert r.json()["detail"]
    after = bot.feedback.path.read_bytes() if bot.feedback.path.exists() else b""
    assert after == before


def test_a_mark_that_eval_could_not_replay_is_refused(server):
    """A right answer's top citation becomes the evidence, and every question is asked again by
    `qa eval`: a made-up citation or a question the bot refuses was stored (201) before."""
    bot, client = server
    before = bot.feedback.path.read_bytes() if bot.feedback.path.exists() else b""
    first = _answer(client)
    top = first["citations"][0]
    cases = [
        ({"answer": {**first, "citations": [{**top, "doc": "nope.txt"}]}}, 404, "unknown document 'nope.txt'"),
        ({"answer": {**first, "citations": [{**top, "end": 999_999_999}]}}, 422, "are not a span of"),
        ({"history": [{"question": "", "answer": first}]}, 422, "turn 1: the question is empty"),
        ({"history": [{"question": "x" * 3000, "answer": first}]}, 422, "turn 1: the question has 3000 characters"),
    ]
    for body, status, detail in cases:
        r = client.post("/api/feedback", json={"question": QUESTION, "answer": first, "verdict": "right", **body},
                        headers=AUTH)
        assert r.status_code == status and detail in r.json()["detail"], r.text
    after = bot.feedback.path.read_bytes() if bot.feedback.path.exists() else b""
    assert after == before


def test_marks_need_the_write_key(server):
    bot, client = server
    first = _answer(client)
    r = client.post("/api/feedback", json={"question": QUESTION, "answer": first, "verdict": "right"})
    assert r.status_code == 401


def test_date_filters_limit_the_documents(server):
    _, client = server
    # lighthouse.md is dated 2019-03-03, notes/... and volcano.txt 2020-11-05 (or undated).
    a = _answer(client, before="2019-12-31")
    assert not a["abstained"] and {c["doc"] for c in a["citations"]} == {"lighthouse.md"}
    b = _answer(client, after="2020-01-01")
    assert "lighthouse.md" not in {c["doc"] for c in b["citations"]}
    r = client.post("/api/answer", json={"question": QUESTION, "after": "2030-01-01"})
    assert r.status_code == 404 and "dated" in r.json()["detail"]
    r = client.post("/api/answer", json={"question": QUESTION, "after": "March 3"})
    assert r.status_code == 422


def test_the_feedback_file_survives_a_kill_mid_write(corpus, tmp_path):
    index_dir = tmp_path / "ix"
    store = FeedbackStore(index_dir / "feedback.jsonl")
    # A big file: each mark rewrites it whole, so a kill lands inside a write.
    filler = conversation("Who built the harbour lighthouse?", Answer(QUESTION, QUESTION, True, None, 0.0, ()),
                          "right")
    filler["feedback"]["note"] = "x" * 4000
    index_dir.mkdir()
    store.path.write_text("".join(json.dumps({**filler, "id": f"filler-{i}"}) + "\n" for i in range(3000)), encoding="utf-8")
    prefilled = len(store.records())
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "QA_RATE_LIMIT": "0", "PYTHONUNBUFFERED": "1"}
    env.pop("QA_API_KEY", None), env.pop("QA_API_KEY_REQUIRED", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "qa.cli", "serve", "--docs", str(corpus), "--index", str(index_dir), "--port", str(port)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    url = f"http://127.0.0.1:{port}"
    acknowledged = []
    stop = threading.Event()
    try:
        wait_ready(url, timeout=90, proc=proc)
        first = httpx.post(f"{url}/api/answer", json={"question": QUESTION}, timeout=60).json()

        def mark() -> None:
            with httpx.Client(base_url=url, timeout=60) as client:
                while not stop.is_set():
                    try:
                        r = client.post("/api/feedback", json={"question": QUESTION, "answer": first, "verdict": "right"})
                    except httpx.TransportError:
                        return
                    if r.status_code == 201:
                        acknowledged.append(r.json()["id"])

        workers = [threading.Thread(target=mark) for _ in range(2)]
        for w in workers:
            w.start()
        deadline = time.monotonic() + 60
        caught = False
        while time.monotonic() < deadline and not caught:
            caught = len(acknowledged) >= 2 and any(index_dir.glob(".feedback.jsonl.*.tmp"))
            time.sleep(0.0005)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        stop.set()
        for w in workers:
            w.join(30)
        assert caught, "no write was caught in progress"
    finally:
        stop.set()
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    # Whole lines only: every record parses, none acknowledged is lost, the filler is intact.
    records = store.records()
    ids = [r["id"] for r in records]
    assert len(records) >= prefilled + len(acknowledged)
    assert set(acknowledged) <= set(ids)
    assert sum(1 for r in records if r["feedback"].get("note")) == prefilled
    assert harness.load_set(store.path)


def test_a_full_feedback_file_refuses_marks_and_keeps_what_it_has(tmp_path):
    from qa.feedback import FeedbackError

    store = FeedbackStore(tmp_path / "feedback.jsonl", max_bytes=2000)
    answer = Answer(QUESTION, QUESTION, True, None, 0.0, ())
    stored = 0
    with pytest.raises(FeedbackError) as exc:
        while True:
            store.append(conversation(QUESTION, answer, "right"))
            stored += 1
    assert exc.value.kind == "full" and "feedback.jsonl, beside the index) is full" in str(exc.value)
    assert str(tmp_path) not in str(exc.value)  # API clients are shown it: no server path
    before = store.path.read_bytes()
    assert stored >= 1 and len(store.records()) == stored and len(before) <= 2000
    with pytest.raises(FeedbackError):
        store.append(conversation(QUESTION, answer, "right"))
    assert store.path.read_bytes() == before
    assert not list(tmp_path.glob(".feedback.jsonl.*.tmp"))  # no temporary file left behind


def test_a_mark_holding_a_line_separator_is_read_back_and_replayed(tmp_path):
    store = FeedbackStore(tmp_path / "feedback.jsonl")
    answer = Answer(QUESTION, QUESTION, True, None, 0.0, ())
    store.append(conversation("Who built\u2028the lighthouse?", answer, "right", earlier=["First\u2029question"]))
    store.append(conversation(QUESTION, answer, "right"))
    assert len(store.records()) == 2
    convs = harness.load_set(store.path)
    assert [len(c.turns) for c in convs] == [2, 1] and convs[0].turns[1].question == "Who built\u2028the lighthouse?"


def test_replaying_marks_after_the_documents_changed(embedder, tmp_path):
    """A mark whose document was renamed to another format keeps scoring; one whose document was
    deleted, or edited so its span no longer holds the marked sentence, is skipped and counted:
    it stopped the whole replay, or scored a right answer as a miss against another sentence."""
    from qa.bot import Bot

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("The harbour lighthouse was built by Thomas Reed in 1871. It stands 40 metres tall.\n")
    (docs / "b.txt").write_text("The volcano last erupted in 1902. Its crater is two kilometres wide.\n")
    (docs / "c.txt").write_text("The old mill grinds wheat every autumn. Its wheel is made of oak.\n")
    bot = Bot(docs, index_dir=tmp_path / "ix", embedder=embedder)
    bot.sync()
    ids = {}
    for name, question, doc, limit in (("moved", "How tall is the lighthouse?", "a.txt", None),
                                       ("reformatted", "How wide is the crater?", "b.txt", ["b.txt"]),
                                       ("rewritten", "What is the wheel made of?", "c.txt", None),
                                       ("gone", "Who built the harbour lighthouse?", "a.txt", ["a.txt", "b.txt"])):
        answer = bot.ask(question, docs=limit)
        text = bot.document_text(doc)
        first = answer.citations[0]
        assert first.doc == doc, (question, first)
        ids[name] = bot.record_feedback(question, answer, "right", docs=limit)["id"]
        assert bot.feedback.records()[-1]["feedback"]["evidence_text"] == text[first.start:first.end]
    (docs / "a.txt").write_text("Visitors come every summer.\nThe harbour lighthouse was built by Thomas Reed in 1871. "
                                "It stands 40 metres tall.\n")
    (docs / "b.txt").rename(docs / "b.md")
    (docs / "c.txt").write_text("The old mill grinds wheat every autumn. Its wheel was rebuilt in pine.\n")
    (docs / "d.txt").write_text("The lighthouse keeper rang the bell at dawn.\n")
    bot.sync()
    conversations, skipped = harness.replayable(harness.load_set(bot.feedback.path),
                                                {d: bot.document_text(d) for d in bot.index.doc_ids})
    # a.txt's sentences moved down a line: they are never searched for, so both its marks are skipped
    assert skipped == {"edited": [ids["moved"], ids["rewritten"], ids["gone"]]}
    assert [r.hit for r in harness.run(bot, conversations)] == [True]  # b.txt, now b.md
    (docs / "a.txt").unlink()
    cli = subprocess.run([sys.executable, "-m", "qa.cli", "eval", str(bot.feedback.path), "--docs", str(docs),
                          "--index", str(tmp_path / "ix"), "--details", "none"],
                         capture_output=True, text=True, cwd=ROOT, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert cli.returncode == 0, cli.stderr
    assert f"skipped 2 feedback mark(s): a document they name is no longer in the corpus" in cli.stderr
    assert "skipped 1 feedback mark(s): their evidence sentence is no longer in its document" in cli.stderr
    assert " 1" in cli.stdout.split("n_turns")[1].splitlines()[0]


def test_evidence_outside_the_conversations_documents_is_refused(server):
    """A conversation limited to some documents is replayed within them: evidence elsewhere could
    never be cited again, so the mark would count as a miss forever."""
    bot, client = server
    before = bot.feedback.path.read_bytes() if bot.feedback.path.exists() else b""
    first = _answer(client)
    top = first["citations"][0]
    other = next(d for d in bot.index.doc_ids if d != top["doc"])
    evidence = {"doc": top["doc"], "start": top["start"], "end": top["end"]}
    for body in ({"verdict": "wrong", "evidence": evidence, "docs": [other]}, {"verdict": "right", "docs": [other]}):
        r = client.post("/api/feedback", json={"question": QUESTION, "answer": first, **body}, headers=AUTH)
        assert r.status_code == 422 and "outside the documents" in r.json()["detail"], r.text
    assert (bot.feedback.path.read_bytes() if bot.feedback.path.exists() else b"") == before
    r = client.post("/api/feedback", json={"question": QUESTION, "answer": first, "verdict": "wrong",
                                           "evidence": evidence, "docs": [other, top["doc"]]}, headers=AUTH)
    assert r.status_code == 201, r.text
