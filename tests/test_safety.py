"""Safe to expose (issue 23): each attack of the audit, on a real uvicorn over loopback.

The bots here answer with :class:`OverlapAnswerer` (the real index and embedder, a word-overlap
pick instead of the trained answerer): these tests are about the serving layer, not answer
quality, and it keeps them fast and independent of the model files.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import select
import shutil
import socket
import subprocess
import threading
import time
import unicodedata
from pathlib import Path
from urllib.parse import quote

import httpx
import numpy as np
import pytest

from conftest import DATA
from servers import KEY, ZEBRA, Server, pause_writes, serving

from qa.answerer import Decision
from qa.api import Conversations, Settings, create_app, slim_turn
from qa.bot import MAX_NAME_BYTES, Bot, IndexBusy, Turn
from qa.guard import ParseBudget, TrustedProxies
from qa.types import Citation

OPEN = Settings(rate_limit=0)
EVIL = "https://evil.example"


class OverlapAnswerer:
    """Quotes the sentence of the top passages sharing most words with the question."""

    def warm_up(self) -> None:
        pass

    def answer(self, question, qvec, index, hits, top_k=3, **_):
        words = set(question.lower().split())
        found = []
        for h in hits[:3]:
            pos = index.doc_pos[h.doc]
            first, end = index.doc_sentences(pos)
            starts = index.sentences.start[first:end]
            for row in range(first + int(np.searchsorted(starts, h.start)), end):
                s, e = int(index.sentences.start[row]), int(index.sentences.end[row])
                if s >= h.end:
                    break
                text = index.entries[pos].text[s:e]
                found.append((len(words & set(text.lower().split())), -len(found), Citation(h.doc, index.entries[pos].meta.get("title") or "", text, s, e, 1.0)))
        cites = [c for *_, c in sorted(found, key=lambda f: f[:2], reverse=True)[:top_k]]
        order = list(range(len(hits)))
        return Decision(False, cites[0].text, 0.5, cites, order) if cites else Decision(True, None, 0.0, [], order)


@pytest.fixture(scope="module")
def answerer():
    return OverlapAnswerer()


@pytest.fixture
def start(embedder, answerer, tmp_path):
    """Factory: a server over a fresh copy of the test corpus (``chat=True`` mounts the page)."""
    with contextlib.ExitStack() as stack:
        def _start(settings: Settings = OPEN, chat: bool = False, corpus: Path | None = None) -> Server:
            n = len(list(tmp_path.glob("corpus*")))
            if corpus is None:
                corpus = tmp_path / f"corpus{n}"
                shutil.copytree(DATA / "corpus", corpus)
            bot = Bot(corpus, index_dir=tmp_path / f"index{n}", embedder=embedder, answerer=answerer)
            app = create_app(bot, settings)
            if chat:
                from ui.chat import mount_chat

                app = mount_chat(app, bot)
            url = stack.enter_context(serving(app))
            client = stack.enter_context(httpx.Client(base_url=url, timeout=60))
            return Server(url, client, bot, corpus, app)

        yield _start


def upload(s: Server, name: str, data: bytes = ZEBRA, headers: dict | None = None, **params) -> httpx.Response:
    return s.client.post("/api/documents", files={"files": (name, data)}, headers=headers or {}, params=params)


def raw_upload(s: Server, name: str, data: bytes = ZEBRA) -> httpx.Response:
    """A multipart upload with the file name's bytes as they are (httpx would escape some)."""
    head = ('--b0undary\r\nContent-Disposition: form-data; name="files"; filename="' + name.replace('"', '\\"')
            + '"\r\nContent-Type: text/plain\r\n\r\n').encode("utf-8", "surrogatepass")
    body = head + data + b"\r\n--b0undary--\r\n"
    return s.client.post("/api/documents", content=body, headers={"content-type": "multipart/form-data; boundary=b0undary"})


def visible(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")}


class HealthPoller:
    """Polls /healthz on its own connection every 10 ms, recording each latency."""

    # A stalled event loop holds /healthz for seconds; a busy shared machine delayed one poll
    # 586 ms in a CI run without any stall, so the bound catches stalls, not noise.
    STALL_S = 1.0

    def __init__(self, url: str) -> None:
        self.url, self.latencies, self.statuses = url, [], []
        self._stop, self._ready = threading.Event(), threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as c:
            # The connection is opened before the watch starts (on a loaded machine that alone
            # outlasted a whole upload), and at least one poll is recorded once it has.
            c.get("/healthz")
            self._ready.set()
            while True:
                t0 = time.perf_counter()
                self.statuses.append(c.get("/healthz").status_code)
                self.latencies.append(time.perf_counter() - t0)
                if self._stop.wait(0.01):
                    break

    def __enter__(self) -> "HealthPoller":
        self._thread.start()
        assert self._ready.wait(30), "/healthz did not answer within 30 s"
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(30)


# ----- one upload must not freeze the server -----------------------------------------------------
@pytest.mark.parametrize("digits", [400_000, 1_000_000])
def test_long_digit_date_line_is_answered_fast_and_health_stays_fast(start, digits):
    s = start()
    with HealthPoller(s.url) as health:
        t0 = time.perf_counter()
        r = upload(s, f"digits{digits}.txt", b"date " + b"1" * digits)
        took = time.perf_counter() - t0
    # Refused: a 400,000-character "word" is not text (and would hold the indexer for long).
    assert r.status_code == 400 and "without a space" in r.json()["detail"], r.text
    assert not (s.corpus / f"digits{digits}.txt").exists()
    assert took < 1.0, f"the upload took {took:.2f} s"
    assert health.statuses and set(health.statuses) == {200}
    assert max(health.latencies) < HealthPoller.STALL_S, f"/healthz took up to {max(health.latencies) * 1000:.0f} ms"


def test_a_long_date_line_of_words_is_read_fast_and_indexed(start):
    """Many short digit groups after "date": only the first few are tried as a date. (Embedding
    the line's 4,000-character pieces is timed by `qa bench`, not here.)"""
    from qa.ingest import parse_text

    data = b"date " + b"1111 " * 100_000 + b"\n\nThe groups of ones end here.\n"
    t0 = time.perf_counter()
    doc = parse_text(data, "groups.txt")
    assert time.perf_counter() - t0 < 2 and len(doc.title) <= 301  # the title is cut short
    s = start()
    r = upload(s, "groups.txt", data)
    assert r.status_code == 201 and r.json()["documents"][0]["title"] == doc.title, r.text


def test_a_parse_past_its_budget_is_refused_without_slowing_others(embedder, answerer, tmp_path):
    """A parse that runs long (simulated: a bot whose check sleeps) gets a 422 at the budget."""

    class SlowBot(Bot):
        def check_upload(self, name, data, replace=False):
            time.sleep(3)
            return super().check_upload(name, data, replace)

    corpus = tmp_path / "corpus"
    shutil.copytree(DATA / "corpus", corpus)
    bot = SlowBot(corpus, index_dir=tmp_path / "ix", embedder=embedder, answerer=answerer)
    with serving(create_app(bot, Settings(rate_limit=0, parse_timeout_s=0.5))) as url, httpx.Client(base_url=url, timeout=30) as c:
        with HealthPoller(url) as health:
            t0 = time.perf_counter()
            r = c.post("/api/documents", files={"files": ("slow.txt", ZEBRA)})
            took = time.perf_counter() - t0
        assert r.status_code == 422 and "longer than 0.5 s" in r.json()["detail"], r.text
        assert took < 1.5 and max(health.latencies) < HealthPoller.STALL_S
        assert not (corpus / "slow.txt").exists()


def test_every_file_is_parsed_once_per_upload(start, monkeypatch):
    import qa.bot

    s = start()
    calls = []
    real = qa.bot.parse_document
    monkeypatch.setattr(qa.bot, "parse_document", lambda data, doc_id, *rest: calls.append(doc_id) or real(data, doc_id, *rest))
    r = s.client.post("/api/documents", files=[("files", ("zebra.txt", ZEBRA)), ("files", ("two.md", b"# Two\n\nA second file."))])
    assert r.status_code == 201, r.text
    assert calls == ["zebra.txt", "two.md"]


# ----- no cross-site writes -----------------------------------------------------------------------
def test_foreign_origins_and_hosts_cannot_write(start):
    s = start(Settings(rate_limit=0, api_key=KEY))
    key = {"X-API-Key": KEY}
    before = visible(s.corpus)
    refused = [
        upload(s, "evil.txt", headers={**key, "Origin": EVIL}),
        upload(s, "evil.txt", headers={**key, "Origin": "null"}),
        upload(s, "evil.txt", headers={**key, "Origin": "http://localhost:9999"}),  # another local page
        upload(s, "evil.txt", headers={**key, "Host": "evil.example"}),  # DNS rebinding
        upload(s, "evil.txt", headers={**key, "Host": "evil.example:8000", "Origin": "http://evil.example:8000"}),
        s.client.delete("/api/documents/lighthouse.md", headers={**key, "Origin": EVIL}),
        s.client.post("/api/answer", json={"question": "Who built the lighthouse?"}, headers={"Origin": EVIL}),
    ]
    for r in refused:
        assert r.status_code == 403, r.text
        assert "QA_CORS_ORIGINS" in r.json()["detail"] or "QA_ALLOWED_HOSTS" in r.json()["detail"]
    assert visible(s.corpus) == before
    # Reads from any page still work, without CORS headers; the server's own pages may write.
    r = s.client.get("/api/documents", headers={"Origin": EVIL})
    assert r.status_code == 200 and "access-control-allow-origin" not in r.headers
    assert upload(s, "same.txt", headers={**key, "Origin": s.url}).status_code == 201
    assert upload(s, "local.txt", headers={**key, "Host": "localhost"}).status_code == 201
    assert s.client.delete("/api/documents/same.txt", headers={**key, "Origin": s.url}).status_code == 200


def test_listed_origins_and_hosts_may_write(start):
    s = start(Settings(rate_limit=0, cors_origins=("https://app.example",), allowed_hosts=("qa.example", ".corp.example")))
    r = upload(s, "app.txt", headers={"Origin": "https://app.example"})
    assert r.status_code == 201 and r.headers["access-control-allow-origin"] == "https://app.example"
    assert upload(s, "named.txt", headers={"Host": "qa.example"}).status_code == 201
    assert upload(s, "sub.txt", headers={"Host": "box.corp.example:8080"}).status_code == 201
    assert upload(s, "evil.txt", headers={"Host": "corp.example.evil"}).status_code == 403
    assert upload(s, "evil2.txt", headers={"Origin": EVIL}).status_code == 403


def test_no_cors_for_unlisted_origins_on_any_route_gradio_included(start):
    s = start(chat=True)
    pre = {"Origin": EVIL, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"}
    for path in ("/api/answer", "/api/documents", "/gradio_api/upload", "/gradio_api/queue/join", "/config", "/"):
        r = s.client.options(path, headers=pre)
        assert r.status_code < 500 and not any(k.lower().startswith("access-control-allow") for k in r.headers), (path, r.headers)
        r = s.client.get(path, headers={"Origin": EVIL})
        assert r.status_code < 500 and "access-control-allow-origin" not in r.headers, (path, r.headers)
    r = s.client.post("/gradio_api/upload", files={"files": ("x.txt", b"x")}, headers={"Origin": EVIL})
    assert r.status_code == 403
    r = s.client.post("/gradio_api/upload", files={"files": ("x.txt", b"x")}, headers={"Host": "rebind.example"})
    assert r.status_code == 403


# ----- 4xx, never 5xx, for the audit's inputs ----------------------------------------------------
def test_huge_confidence_in_history_is_a_4xx(start):
    s = start()
    first = s.client.post("/api/answer", json={"question": "Who built the harbour lighthouse?"}).json()
    for bad in (1e308, -1.0, 1.5):
        history = [{"question": "Who built the harbour lighthouse?", "answer": {**first, "confidence": bad}}]
        r = s.client.post("/api/answer", json={"question": "How tall is it?", "history": history})
        assert r.status_code == 422 and "confidence" in r.json()["detail"], r.text
    r = s.client.post("/api/answer", json={"question": "How tall is it?", "history": [{"question": "x", "answer": {**first, "timings_ms": {"t": 1e308}}}]})
    assert r.status_code == 422, r.text
    history = [{"question": "Who built the harbour lighthouse?", "answer": first}]
    assert s.client.post("/api/answer", json={"question": "How tall is it?", "history": history}).status_code == 200


def test_names_are_checked_normalised_and_deletable(start):
    s = start()
    cases = [
        ("a" * 300 + ".txt", 400, "bytes"),
        ("\u20ac" * 130 + ".txt", 400, "bytes"),
        ("evil\u202etxt.md", 400, "U+202E"),
        ("tab\there.txt", 400, "U+0009"),
        ("nul\x00.txt", 400, "U+0000"),
        ("zero\u200bwidth.txt", 400, "U+200B"),
        (" lead.txt", 400, "space"),
    ]
    for name, status, words in cases:
        r = raw_upload(s, name)
        assert r.status_code == status and words in r.json()["detail"], (name, r.text)
    # The longest accepted names (255 bytes, ASCII and multi-byte) upload and delete.
    for name in ("b" * (MAX_NAME_BYTES - 4) + ".txt", "\u00e9" * ((MAX_NAME_BYTES - 4) // 2) + ".txt"):
        assert len(name.encode()) <= MAX_NAME_BYTES
        r = upload(s, name)
        assert r.status_code == 201, r.text
        r = s.client.delete(f"/api/documents/{quote(name)}")
        assert r.status_code == 200, r.text
        assert not (s.corpus / name).exists()
    assert not [p for p in s.corpus.iterdir() if p.name.startswith((".upload-", ".deleting-"))]


def test_unicode_and_case_twins_conflict(start):
    s = start()
    nfd = unicodedata.normalize("NFD", "caf\u00e9.txt")
    r = upload(s, nfd)
    assert r.status_code == 201 and r.json()["documents"][0]["id"] == "caf\u00e9.txt"  # stored in NFC
    assert (s.corpus / "caf\u00e9.txt").exists()
    r = upload(s, "CAF\u00c9.txt", replace="true")
    assert r.status_code == 409 and "letter case or Unicode" in r.json()["detail"]
    r = upload(s, "Lighthouse.md")
    assert r.status_code == 409 and "lighthouse.md" in r.json()["detail"]
    r = s.client.post("/api/documents", files=[("files", ("Dup.txt", ZEBRA)), ("files", ("dup.txt", ZEBRA))])
    assert r.status_code == 400 and "twice" in r.json()["detail"]
    # The same name again in the other Unicode form replaces, reads, and deletes, the NFC one.
    assert upload(s, nfd, replace="true").status_code == 201
    got = s.client.get(f"/api/documents/{quote(nfd)}")
    assert got.status_code == 200 and got.json()["id"] == "caf\u00e9.txt"
    assert s.client.delete(f"/api/documents/{quote(nfd)}").status_code == 200
    assert visible(s.corpus) == {"lighthouse.md", "volcano.txt", "notes/bees.txt"}


def test_a_folder_in_the_way_is_a_conflict_and_the_index_stays_in_step(start):
    s = start()
    (s.corpus / "folder.txt").mkdir()
    for params in ({}, {"replace": "true"}):
        r = upload(s, "folder.txt", **params)
        assert r.status_code == 409 and "folder" in r.json()["detail"], r.text
    listed = {d["id"] for d in s.client.get("/api/documents").json()["documents"]}
    assert listed == {"lighthouse.md", "volcano.txt", "notes/bees.txt"}
    fresh = Bot(s.corpus, index_dir=s.bot.index_dir, embedder=s.bot.embedder, answerer=s.bot.answerer)
    assert set(fresh.index.doc_ids) == listed and not fresh.sync().touched


def test_a_batch_failing_half_way_leaves_folder_and_index_as_they_were(start, monkeypatch, tmp_path):
    s = start(chat=True)
    before = {name: (s.corpus / name).read_bytes() for name in visible(s.corpus)}
    real_replace = os.replace

    def failing_replace(src, dst):
        if Path(dst).name == "zebra.txt":  # the second file of the batch, after the first is in place
            raise OSError(5, "Input/output error")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", failing_replace)
    files = [("files", ("volcano.txt", b"The volcano was renamed.\n")), ("files", ("zebra.txt", ZEBRA))]
    r = s.client.post("/api/documents", files=files, params={"replace": "true"})
    assert r.status_code == 500, r.text
    # The page's upload goes through the same transaction.
    from ui.chat import ChatPage

    for name, data in (("volcano.txt", b"The volcano was renamed.\n"), ("zebra.txt", ZEBRA)):
        (tmp_path / name).write_bytes(data)
    status, _ = ChatPage(s.bot).add_files([str(tmp_path / "volcano.txt"), str(tmp_path / "zebra.txt")], True, None, None)
    assert "Not added" in status and "Nothing was added" in status
    monkeypatch.undo()
    assert {name: (s.corpus / name).read_bytes() for name in visible(s.corpus)} == before
    assert not [p.name for p in s.corpus.iterdir() if p.name.startswith(".")]  # no temporary file left
    fresh = Bot(s.corpus, index_dir=s.bot.index_dir, embedder=s.bot.embedder, answerer=s.bot.answerer)
    assert set(fresh.index.doc_ids) == set(before) and not fresh.sync().touched
    # A bad file beside a good one on the page: nothing is parsed into the folder either.
    (tmp_path / "evil.html").write_text("<script>alert(1)</script>", encoding="utf-8")
    status, _ = ChatPage(s.bot).add_files([str(tmp_path / "zebra.txt"), str(tmp_path / "evil.html")], False, None, None)
    assert "Nothing was added" in status and not (s.corpus / "zebra.txt").exists()
    status, _ = ChatPage(s.bot).add_files([str(tmp_path / "zebra.txt")], False, None, None)
    assert "Added" in status and (s.corpus / "zebra.txt").read_bytes() == ZEBRA


def test_two_writers_over_one_index_keep_both_updates_and_take_turns(embedder, answerer, tmp_path, caplog):
    """Two Bots over the same folder and index (as two processes would be): a writer starts
    from the newest generation on disk, so neither update is lost; the flock lease makes the
    second writer wait for the first, and one that waits too long is told why."""
    corpus = tmp_path / "corpus"
    shutil.copytree(DATA / "corpus", corpus)
    a, b = (Bot(corpus, index_dir=tmp_path / "index", embedder=embedder, answerer=answerer) for _ in range(2))
    assert a.index.generation == b.index.generation  # both opened the same snapshot
    a.add_document("one.txt", b"The first writer added this line about kestrels.\n")
    b.add_document("two.txt", b"The second writer added this line about herons.\n")
    fresh = Bot(corpus, index_dir=tmp_path / "index", embedder=embedder, answerer=answerer)
    assert {"one.txt", "two.txt"} <= set(fresh.index.doc_ids) and not fresh.sync().touched
    assert {"one.txt", "two.txt"} <= set(b.index.doc_ids)
    done = threading.Event()

    def third() -> None:
        b.add_document("three.txt", b"A third line, about wrens.\n")
        done.set()

    with a._writing():  # the lease is held: b's write waits for it
        t = threading.Thread(target=third)
        t.start()
        assert not done.wait(0.5) and not (corpus / "three.txt").exists()
        b_waits = Bot(corpus, index_dir=tmp_path / "index", embedder=embedder, answerer=answerer)
        b_waits.writer_wait_s = 1.5
        with pytest.raises(IndexBusy, match="another process has been writing the index"):
            b_waits.delete_document("one.txt")
        # Past a second, a waiting writer says why it waits (`qa ask` sat silent for up to 10 minutes).
        assert "another process is writing the index; waiting for it (at most 1.5 s)" in caplog.messages
    t.join(60)
    assert done.is_set() and {"one.txt", "two.txt", "three.txt"} <= set(Bot(
        corpus, index_dir=tmp_path / "index", embedder=embedder, answerer=answerer).index.doc_ids)


def test_readers_keep_their_index_while_a_writer_catches_up_with_another_process(start, embedder, answerer, monkeypatch):
    """A writer that finds a newer index written by another process starts from it; readers go
    on with the index they have until the writer's is ready. Before, they waited for the whole
    write, and the API's routes that read the index did so on the event loop: the server froze."""
    s = start()
    before = s.bot.index
    other = Bot(s.corpus, index_dir=s.bot.index_dir, embedder=embedder, answerer=answerer)
    other.add_document("one.txt", b"Another process added this line about kestrels.\n")
    writing, finish = pause_writes(monkeypatch, s.bot)
    writer = threading.Thread(target=s.bot.add_document, args=("two.txt", b"This process added a line about herons.\n"))
    writer.start()
    try:
        assert writing.wait(30)
        t0 = time.perf_counter()
        assert s.client.get("/api/documents").status_code == 200 and s.bot.index is before
        assert time.perf_counter() - t0 < 5  # the write is paused: waiting for it would never end
    finally:
        finish.set()
        writer.join(60)
    assert {"one.txt", "two.txt"} <= set(s.bot.index.doc_ids)


def test_an_upload_while_another_process_writes_too_long_is_a_503(start, embedder, answerer):
    s = start()
    _ = s.bot.index
    s.bot.writer_wait_s = 0.2
    other = Bot(s.corpus, index_dir=s.bot.index_dir, embedder=embedder, answerer=answerer)
    with other._writing():
        r = upload(s, "zebra.txt")
        assert r.status_code == 503 and "another process" in r.json()["detail"] and r.headers["Retry-After"]
        assert str(s.bot.index_dir) not in r.json()["detail"]
    assert upload(s, "zebra.txt").status_code == 201


# ----- memory, bodies, slow clients -----------------------------------------------------------------
def test_conversation_store_is_bounded_in_bytes():
    conv = Conversations(max_conversations=1000, max_turns=20, ttl_s=60, max_bytes=10_000, size=lambda t: 1000)
    for i in range(30):
        conv.append(f"c{i}", i)
    assert conv.bytes <= 10_000 and len(conv) == 10 and conv.history("c29") == [29] and conv.history("c0") == []
    for t in range(15):
        conv.append("one", t)
    assert conv.bytes <= 10_000 and conv.history("one") == list(range(5, 15))


def test_a_stored_turn_does_not_hold_the_quoted_sentence(start):
    s = start()
    sentence = "The giant ledger records that " + " and ".join(f"item {i} cost {i} crowns" for i in range(140)) + "."
    assert 3_500 < len(sentence) < 4_000  # one sentence: longer ones are cut into pieces this long
    assert upload(s, "ledger.txt", ("Ledger\n\n" + sentence + "\n").encode()).status_code == 201
    store = s.app.state.conversations
    for _ in range(3):
        r = s.client.post("/api/answer", json={"question": "What did item 7 cost?", "conversation_id": "big", "docs": ["ledger.txt"]})
        assert r.status_code == 200 and sentence in r.json()["citations"][0]["text"]  # the answer quotes it whole
    # The store does not: it keeps the place of the citation, which is what a follow-up reads.
    from qa.api.conversations import turn_size

    full = Turn("What did item 7 cost?", s.bot.ask("What did item 7 cost?", docs=["ledger.txt"]))
    slim = slim_turn(full)
    assert full.answer.citations[0].text == sentence and len(slim.answer.citations[0].text) <= 1000
    assert len(store.history("big")) == 3 and store.bytes == 3 * turn_size(slim) < turn_size(full)
    assert slim.answer.citations[0].start == full.answer.citations[0].start and not slim.answer.passages


def _partial_body(port: int, path: str, length: int, sent: int, extra_headers: str = "") -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {length}\r\n{extra_headers}\r\n")
    sock.sendall(head.encode() + b" " * sent)
    return sock


def _read_status(sock: socket.socket) -> int:
    data = b""
    while b"\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return int(data.split(b" ", 2)[1]) if data else 0


def test_slow_clients_time_out_and_bodies_in_flight_are_bounded(start):
    mib = 1024 * 1024
    s = start(Settings(rate_limit=0, max_body_bytes=mib, max_upload_bytes=mib, max_inflight_bytes=2 * mib, body_timeout_s=3))
    port = int(s.url.rsplit(":", 1)[1])
    # Two half-sent bodies of 0.9 MB fill the in-flight budget: a third is refused at once.
    held = [_partial_body(port, "/api/answer", mib - 1000, 900_000) for _ in range(2)]
    time.sleep(0.2)
    third = _partial_body(port, "/api/answer", mib - 1000, 400_000)
    third.settimeout(5)
    assert _read_status(third) == 503
    third.close()
    # The stalled ones are answered 408 and let go within the timeout.
    t0 = time.perf_counter()
    for sock in held:
        sock.settimeout(5)
        assert _read_status(sock) == 408
        sock.close()
    assert time.perf_counter() - t0 < 2.5
    # The budget is free again.
    r = s.client.post("/api/answer", json={"question": "Who built the harbour lighthouse?"})
    assert r.status_code == 200


def test_one_client_cannot_hold_the_bodies_in_flight_of_all(start):
    """Slow bodies of one client fill at most an upload and a question's worth of the in-flight
    budget: before, four stalled uploads of one client turned every question away with 503."""
    mib = 1024 * 1024
    s = start(Settings(rate_limit=0, max_body_bytes=mib, max_upload_bytes=mib, max_inflight_bytes=8 * mib,
                       body_timeout_s=3, trusted_proxies=("127.0.0.1",)))
    port = int(s.url.rsplit(":", 1)[1])
    one = "X-Forwarded-For: 10.0.0.1\r\n"
    held = [_partial_body(port, "/api/answer", mib - 1000, 900_000, one) for _ in range(2)]
    time.sleep(0.2)
    third = _partial_body(port, "/api/answer", mib - 1000, 400_000, one)
    third.settimeout(5)
    assert _read_status(third) == 503  # 2.2 MB of this client's, 6 MB of the budget still free
    third.close()
    other = s.client.post("/api/answer", json={"question": "Who built the harbour lighthouse?"},
                          headers={"X-Forwarded-For": "10.0.0.2"})
    assert other.status_code == 200
    for sock in held:
        sock.settimeout(5)
        assert _read_status(sock) == 408
        sock.close()
    again = _partial_body(port, "/api/answer", mib - 1000, 900_000, one)  # its share is free again
    again.settimeout(5)
    assert _read_status(again) == 408
    again.close()


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _closed_by_server(socks: list[socket.socket], trickle: set[int], within: float, since: float | None = None) -> list[float]:
    """Send one header byte every 50 ms on the sockets numbered in ``trickle`` (the others stay
    silent) until the server closes each; return the seconds each took (inf: not within), counted
    from ``since`` (a ``time.perf_counter()`` reading; default now)."""
    t0 = time.perf_counter() if since is None else since
    closed: dict[int, float] = {}
    while len(closed) < len(socks) and time.perf_counter() - t0 < within:
        for i in trickle - closed.keys():
            try:
                socks[i].send(b"x")
            except OSError:
                closed[i] = time.perf_counter() - t0
        open_ = [s for i, s in enumerate(socks) if i not in closed]
        readable, _, _ = select.select(open_, [], [], 0.05)
        for sock in readable:
            try:
                data = sock.recv(4096)
            except OSError:
                data = b""
            if not data:
                closed[socks.index(sock)] = time.perf_counter() - t0
    return [closed.get(i, math.inf) for i in range(len(socks))]


def test_slowloris_and_idle_connections_are_cut_off_and_health_stays_fast(start):
    """Trickled request heads, silent connections and a keep-alive one that trickles its next
    request are all closed by the server within QA_HEADER_TIMEOUT_S, their descriptors freed."""
    s = start(Settings(rate_limit=0, header_timeout_s=1.0, keep_alive_s=5.0))
    port = int(s.url.rsplit(":", 1)[1])
    before = _open_fds()
    # The server's clock starts at each connection, so the times are counted from before the first.
    opened = time.perf_counter()
    socks = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(40)]
    for sock in socks[:30]:  # slowloris: a head that never ends
        sock.sendall(f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nX-Slow: ".encode())
    kept = socks[39]  # one request answered, then the next one trickled on the same connection
    kept.sendall(f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
    assert _read_status(kept) == 200
    kept.sendall(b"GET /healthz HTTP/1.1\r\nX-Slow: ")
    assert _open_fds() >= before + 2 * len(socks)  # both ends of each, in this process
    with HealthPoller(s.url) as health:
        took = _closed_by_server(socks, set(range(30)) | {39}, within=6.0, since=opened)
    assert max(took) < 2.5, f"closed after {sorted(took)[-3:]} s (the limit is 1 s)"
    assert min(took) > 0.5  # by the timeout, not at once
    assert health.statuses and set(health.statuses) == {200}
    assert max(health.latencies) < HealthPoller.STALL_S, f"/healthz took up to {max(health.latencies) * 1000:.0f} ms"
    for sock in socks:
        sock.close()
    time.sleep(0.2)
    assert _open_fds() <= before + 2, "descriptors still held after the server closed the connections"


def test_connections_per_client_are_capped_but_not_for_trusted_proxies(start):
    s = start(Settings(rate_limit=0, max_connections_per_client=5))
    port = int(s.url.rsplit(":", 1)[1])
    time.sleep(0.3)  # the readiness probe's connection is gone
    socks = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(7)]
    took = _closed_by_server(socks, set(), within=0.5)
    assert [t < 0.5 for t in took] == [False] * 5 + [True] * 2, took
    for sock in socks:
        sock.close()
    time.sleep(0.2)
    assert s.client.get("/healthz").status_code == 200  # their slots are free again
    proxied = start(Settings(rate_limit=0, max_connections_per_client=5, trusted_proxies=("127.0.0.0/8",)))
    port = int(proxied.url.rsplit(":", 1)[1])
    socks = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(7)]
    assert all(math.isinf(t) for t in _closed_by_server(socks, set(), within=0.5))
    for sock in socks:
        sock.close()


# ----- the rate limit behind a reverse proxy ----------------------------------------------------------------
def test_forwarded_for_names_the_client_only_from_trusted_proxies(start):
    def get(s: Server, forwarded: str) -> int:
        return s.client.get("/api/documents", headers={"X-Forwarded-For": forwarded}).status_code

    # Untrusted peer: the header is ignored, every request counts against the peer itself.
    direct = start(Settings(rate_limit=2))
    assert [get(direct, "198.51.100.1"), get(direct, "198.51.100.2"), get(direct, "198.51.100.3")] == [200, 200, 429]
    # Loopback is the proxy: each forwarded client has its own budget.
    proxied = start(Settings(rate_limit=2, trusted_proxies=("127.0.0.1", "10.0.0.0/8")))
    assert [get(proxied, "198.51.100.1"), get(proxied, "198.51.100.1"), get(proxied, "198.51.100.1")] == [200, 200, 429]
    assert get(proxied, "198.51.100.2") == 200
    # A client cannot escape its budget by prepending addresses: the rightmost untrusted hop counts.
    assert get(proxied, "203.0.113.9, 198.51.100.1") == 429
    assert get(proxied, "198.51.100.1, 10.1.2.3") == 429  # a trusted inner proxy is skipped


def test_trusted_proxies_pick_the_rightmost_untrusted_hop():
    proxies = TrustedProxies(("10.0.0.0/8", "::1"))
    assert proxies.client("192.0.2.7", ["198.51.100.1"]) == "192.0.2.7"  # not a proxy: header ignored
    assert proxies.client("10.0.0.1", ["203.0.113.9, 198.51.100.1, 10.0.0.2"]) == "198.51.100.1"
    assert proxies.client("10.0.0.1", ["203.0.113.9", "198.51.100.1:4711"]) == "198.51.100.1"  # two header lines, a port
    assert proxies.client("::1", ["[2001:db8::1]:443"]) == "2001:db8::1"
    assert proxies.client("::ffff:10.0.0.1", ["198.51.100.1"]) == "198.51.100.1"  # IPv4-mapped peer
    assert proxies.client("10.0.0.1", []) == "10.0.0.1"
    assert proxies.client("10.0.0.1", ["10.0.0.3, 10.0.0.2"]) == "10.0.0.3"  # all trusted: the leftmost
    assert TrustedProxies(()).client("127.0.0.1", ["198.51.100.1"]) == "127.0.0.1"
    with pytest.raises(ValueError, match="QA_TRUSTED_PROXIES"):
        Settings.from_env({"QA_TRUSTED_PROXIES": "10.0.0.0/8, proxy.example"})
    assert Settings.from_env({"QA_TRUSTED_PROXIES": "10.0.0.0/8, ::1"}).trusted_proxies == ("10.0.0.0/8", "::1")


def test_slow_client_and_pdf_settings_are_read_and_checked():
    s = Settings.from_env({"QA_HEADER_TIMEOUT_S": "2.5", "QA_KEEP_ALIVE_S": "3", "QA_MAX_CONNECTIONS_PER_CLIENT": "7",
                           "QA_MAX_PDF_PAGES": "50"})
    assert (s.header_timeout_s, s.keep_alive_s, s.max_connections_per_client, s.max_pdf_pages) == (2.5, 3.0, 7, 50)
    assert Settings().max_pdf_pages == 2000
    for name, value in (("QA_HEADER_TIMEOUT_S", "0"), ("QA_KEEP_ALIVE_S", "-1"), ("QA_MAX_CONNECTIONS_PER_CLIENT", "0"),
                        ("QA_MAX_PDF_PAGES", "0")):
        with pytest.raises(ValueError, match=name):
            Settings.from_env({name: value})


# ----- the key, the docs pages, the chat page's upload route ------------------------------------------
def test_key_required_covers_every_route_but_healthz(start):
    s = start(Settings(rate_limit=0, api_key=KEY, api_key_required=True))
    c = s.client
    assert c.get("/healthz").status_code == 200
    for path in ("/openapi.json", "/readyz", "/docs", "/redoc", "/api/documents", "/api/nothing"):
        r = c.get(path)
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer", path
    assert c.get("/openapi.json", headers={"X-API-Key": KEY}).status_code == 200
    assert c.get("/readyz", headers={"Authorization": f"Bearer {KEY}"}).status_code == 200


def test_no_docs_pages_and_nothing_from_a_cdn(start):
    s = start(chat=True)
    for path in ("/docs", "/redoc", "/docs/oauth2-redirect"):
        r = s.client.get(path)
        assert r.status_code == 404 and "cdn." not in r.text, path
    spec = s.client.get("/openapi.json")
    assert spec.status_code == 200 and "/api/answer" in spec.json()["paths"]
    page = s.client.get("/")
    assert page.status_code == 200 and "cdn.jsdelivr" not in page.text and "unpkg.com" not in page.text


def test_chat_upload_route_needs_the_key_and_is_rate_limited(start):
    s = start(Settings(rate_limit=3, api_key=KEY), chat=True)
    files = {"files": ("kiln.txt", b"The kiln.")}
    r = s.client.post("/gradio_api/upload", files=files)
    assert r.status_code == 401 and "key" in r.json()["detail"]
    r = s.client.post("/gradio_api/upload", files=files, headers={"Cookie": f"qa_api_key={quote(KEY)}"})
    assert r.status_code == 200, r.text
    r = s.client.post("/gradio_api/upload", files=files, headers={"X-API-Key": KEY})
    assert r.status_code == 200, r.text
    assert s.client.post("/gradio_api/upload", files=files, headers={"X-API-Key": KEY}).status_code == 200
    r = s.client.post("/gradio_api/upload", files=files, headers={"X-API-Key": KEY})
    assert r.status_code == 429
    big = {"files": ("big.txt", b"x" * (17 * 1024 * 1024))}
    s2 = start(Settings(rate_limit=0, api_key=KEY), chat=True)
    assert s2.client.post("/gradio_api/upload", files=big, headers={"X-API-Key": KEY}).status_code == 413


def test_chat_page_uploads_share_the_api_parse_budget(start, tmp_path):
    """The page's upload handler parses within the API's budget: the same slots, the same limit."""
    from ui.chat import ChatPage, mount_chat

    s = start()
    release = threading.Event()
    budget = ParseBudget(1, 0.3)
    page = ChatPage(s.bot, parse_budget=budget)
    doc = tmp_path / "kiln.txt"
    doc.write_bytes(b"The Kiln\n\nThe kiln was built in 1870.\n")
    # An API upload holds the only slot past its time: the page's upload waits at most the limit.
    with pytest.raises(TimeoutError):
        asyncio.run(budget.run(release.wait))
    t0 = time.perf_counter()
    status, _ = page.add_files([str(doc)], False, None, None)
    assert "took longer than 0.3 s" in status and time.perf_counter() - t0 < 1.0
    assert not (s.corpus / "kiln.txt").exists()
    release.set()
    time.sleep(0.05)
    status, _ = page.add_files([str(doc)], False, None, None)
    assert "Added" in status and (s.corpus / "kiln.txt").is_file()
    # Mounted on the API's app, the page gets the app's own budget.
    app = mount_chat(create_app(s.bot, OPEN), s.bot)
    blocks = next(r.app.blocks for r in app.routes if hasattr(getattr(r, "app", None), "blocks"))
    pages = {getattr(f.fn, "__self__", None) for f in blocks.fns.values()}
    assert [p.parse_budget for p in pages if isinstance(p, ChatPage)] == [app.state.parse_budget]


# ----- crash leftovers, file modes ------------------------------------------------------------------
def test_crash_leftovers_are_cleaned_at_start_and_uploads_get_the_usual_mode(start, tmp_path):
    corpus = tmp_path / "corpus-leftovers"
    shutil.copytree(DATA / "corpus", corpus)
    child = subprocess.Popen(["true"])
    child.wait()
    dead = child.pid  # a process that has exited
    for name in (f".upload-{dead}-0a1b2c", f".deleting-{dead}-0a1b2c", f".deleting-{dead}-lighthouse.md"):
        (corpus / name).write_bytes(b"half written")
    old = corpus / ".upload-k3j4h5x8"  # mkstemp's names (before) carried no PID
    old.write_bytes(b"old")
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    live = corpus / f".upload-{os.getppid()}-ffff"  # a live process's upload is left alone
    live.write_bytes(b"in progress")
    s = start(corpus=corpus)
    left = sorted(p.name for p in corpus.iterdir() if p.name.startswith("."))
    assert left == [live.name]
    umask = os.umask(0)
    os.umask(umask)
    assert upload(s, "zebra.txt").status_code == 201
    assert (corpus / "zebra.txt").stat().st_mode & 0o777 == 0o666 & ~umask
    os.chmod(corpus / "zebra.txt", 0o640)
    assert upload(s, "zebra.txt", ZEBRA + b"More.\n", replace="true").status_code == 201
    assert (corpus / "zebra.txt").stat().st_mode & 0o777 == 0o640  # a replaced file keeps its mode


# ----- the load check, with a cross-origin client and an oversized-name client beside it ------------
def test_load_check_with_hostile_clients(start):
    from eval import loadcheck

    s = start()
    texts = loadcheck.read_texts(s.corpus)
    conversations = loadcheck.load_conversations(None) + [["Who built the harbour lighthouse?", "How tall is it?"]]
    rep = asyncio.run(loadcheck.run(s.url, "", 2, 6.0, conversations, texts))
    assert rep["requests"] > 0 and rep["upload_delete_cycles"] >= 1, rep
    assert rep["errors"] == 0 and rep["not_verbatim"] == 0 and rep["status_5xx"] == 0, rep
    assert rep["cross_origin_sent"] > 10 and rep["cross_origin_codes"] == {403: rep["cross_origin_sent"]}, rep
    assert rep["long_name_sent"] > 10 and rep["long_name_codes"] == {400: rep["long_name_sent"]}, rep
    assert rep["cross_origin_writes_stored"] == 0 and rep["long_names_stored"] == 0
    assert not loadcheck.hostile_failed(rep)
    assert not [n for n in visible(s.corpus) if n.startswith((loadcheck.CROSS_ORIGIN_PREFIX, "\u20ac", "nnn"))]


def test_a_server_answers_from_what_another_process_indexed_since(start, embedder, answerer, monkeypatch):
    """`qa index` run beside `qa serve` wrote a newer index that the server never read: it went on
    answering from its own until its next upload, however long that took. The newer one is read
    in a thread of its own, never on a request; an index folder that vanished is not read as empty."""
    import qa.bot

    s = start()
    _ = s.bot.index
    other = Bot(s.corpus, index_dir=s.bot.index_dir, embedder=embedder, answerer=answerer)
    other.add_document("kestrels.txt", b"Kestrels hover over the verges of the motorway to hunt voles.\n")
    monkeypatch.setattr(qa.bot, "NEWER_CHECK_S", 0.0)
    deadline = time.monotonic() + 30
    while "kestrels.txt" not in [d["id"] for d in s.client.get("/api/documents").json()["documents"]]:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    r = s.client.post("/api/answer", json={"question": "What do kestrels hunt over the motorway verges?"}).json()
    assert r["citations"][0]["doc"] == "kestrels.txt" and "voles" in r["citations"][0]["text"]
    shutil.rmtree(s.bot.index_dir)
    for _ in range(20):
        time.sleep(0.05)
        assert "kestrels.txt" in s.bot.index.doc_ids


def test_a_write_behind_a_long_one_is_a_503_not_a_wait_of_minutes(start, monkeypatch):
    """A DELETE sent while a 2 MB upload was embedded was answered 350 s later (a client had long
    given up, and the document was deleted anyway); it now waits at most a while, then is told."""
    import qa.api.deps

    s = start()
    _ = s.bot.index
    monkeypatch.setattr(qa.api.deps, "WRITE_WAIT_S", 0.5)
    writing, finish = pause_writes(monkeypatch, s.bot)
    with httpx.Client(base_url=s.client.base_url, timeout=60) as other:
        first = threading.Thread(target=lambda: other.post("/api/documents", files={"files": ("zebra.txt", ZEBRA)}))
        first.start()
        try:
            assert writing.wait(30)
            r = s.client.delete("/api/documents/volcano.txt")
            assert r.status_code == 503 and "nothing was done" in r.json()["detail"] and r.headers["Retry-After"] == "30"
            assert (s.corpus / "volcano.txt").exists()
        finally:
            finish.set()
            first.join(60)
    assert "zebra.txt" in s.bot.index.doc_ids
    assert s.client.delete("/api/documents/volcano.txt").status_code == 200


def test_a_write_behind_a_chat_page_upload_is_a_503_too(start, monkeypatch):
    """The API's writes waited at most a while only for each other: behind a chat page's upload
    (which takes the bot's turn directly) a DELETE waited it out and then deleted."""
    import qa.api.deps

    s = start()
    _ = s.bot.index
    monkeypatch.setattr(qa.api.deps, "WRITE_WAIT_S", 0.5)
    writing, finish = pause_writes(monkeypatch, s.bot)
    page_upload = threading.Thread(target=lambda: s.bot.add_documents([("zebra.txt", ZEBRA, None)]))
    page_upload.start()
    try:
        assert writing.wait(30)
        started = time.monotonic()
        r = s.client.delete("/api/documents/volcano.txt")
        assert r.status_code == 503 and "nothing was done" in r.json()["detail"] and r.headers["Retry-After"] == "30"
        assert time.monotonic() - started < 10 and (s.corpus / "volcano.txt").exists()
        # It said "has been at work for over 0 s": the bot counted its own thread's wait, not the request's.
        detail = r.json()["detail"]
        assert "over 0 s" not in detail and "longer than this write may wait" in detail, detail
    finally:
        finish.set()
        page_upload.join(60)
    assert "zebra.txt" in s.bot.index.doc_ids and "volcano.txt" in s.bot.index.doc_ids
    assert s.client.delete("/api/documents/volcano.txt").status_code == 200
