"""One contract for every passage retriever: the local hybrid index (faiss + BM25) and Milvus.

The Milvus backend runs for real on a Milvus Lite file in the test's temporary folder.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Iterator

import httpx
import pytest
from conftest import DATA, DOCUMENTS, ROOT

from eval.loadcheck import free_port
from index.milvus import MilvusError, MilvusStore, string_literal
from index.retriever import Found, Retriever, open_retriever
from index.store import LEGS, Entry, Hit, HybridIndex, IndexBusy, index_params
from index.text import terms
from qa.bot import Bot, DocumentError

QA = [sys.executable, "-m", "qa.cli"]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1"}
# A document id with both quotes and a backslash: the Milvus filter must quote it properly.
ODD_ID = "odd \"quoted\" keeper's\\notes.txt"
ODD_TEXT = ("The keeper's log of the harbour lighthouse records a storm in 1901. "
            "That winter the lamp burned paraffin and was lit at dusk every day.")


def corpus_entries() -> list[Entry]:
    root = DATA / "corpus"
    return [Entry(p.relative_to(root).as_posix(), p.read_text(encoding="utf-8"), {}) for p in sorted(root.rglob("*.*"))]


class Backend:
    """A backend under test (``index.retriever.open_retriever``) over a store of its own in the
    test's folder: ``write`` stores documents, ``search`` asks a question in words and keeps the
    index its hits name in ``found``."""

    def __init__(self, name: str, embedder, tmp_path: Path, server: str | None = None) -> None:
        self.name, self.embedder, self.tmp_path = name, embedder, tmp_path
        if server is not None:  # a collection prefix of the test's own on the shared server
            self.uri, self.collection = server, "t" + uuid.uuid4().hex[:12]
        else:
            self.uri, self.collection = str(tmp_path / "milvus.db"), None
        self.retriever = self.reopen()
        self.index, _ = self.retriever.open(embedder)
        self.found: Found | None = None

    def reopen(self) -> Retriever:
        if self.name == "faiss":
            return open_retriever("faiss", self.tmp_path / "ix")
        return open_retriever("milvus", self.tmp_path / "ix", self.uri, self.collection)

    def write(self, upserts: list[Entry], removals: list[str] = ()) -> None:
        self.index = self.retriever.update(self.index, upserts, list(removals), self.embedder)

    def search(self, query: str, k: int = 10, docs=None, legs: tuple[str, ...] = LEGS, exclude=()) -> list[Hit]:
        qvec = self.embedder.embed([query])[0]
        self.found = self.retriever.search(self.index, query, qvec, k=k, docs=docs, legs=legs, exclude=exclude)
        return self.found.hits


@pytest.fixture(autouse=True)
def stop_lite_servers():
    """Stop the Milvus Lite servers a test started in this process (each test has its own file),
    so idle servers and their clients' keep-alive pings do not pile up over the session."""
    yield
    from milvus_lite import server_manager_instance

    server_manager_instance.release_all()


def base_entries() -> list[Entry]:
    """The tiny corpus plus the document with the awkward id."""
    return corpus_entries() + [Entry(ODD_ID, ODD_TEXT, {})]


TEXTS = {e.id: e.text for e in base_entries()}


def start_milvus_server(data: Path) -> tuple[subprocess.Popen, str]:
    """A Milvus server process on loopback: Milvus Lite's own gRPC server (``milvus-lite
    server``), reached by URI like any Milvus server or cluster; the process and its URI."""
    port = free_port()
    proc = subprocess.Popen([str(Path(sys.executable).with_name("milvus-lite")), "server", "--data-dir", str(data),
                             "--host", "127.0.0.1", "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"milvus-lite server did not start: {proc.stderr.read().decode(errors='replace')[-2000:]}")
            time.sleep(0.2)
    return proc, f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def milvus_server(tmp_path_factory) -> Iterator[str]:
    proc, uri = start_milvus_server(tmp_path_factory.mktemp("milvus-server"))
    yield uri
    proc.terminate()
    proc.wait(30)


@pytest.fixture(params=["faiss", "milvus", "milvus-server"])
def backend(request, embedder, tmp_path: Path) -> Backend:
    if request.param == "milvus-server":
        b = Backend("milvus", embedder, tmp_path, server=request.getfixturevalue("milvus_server"))
    else:
        b = Backend(request.param, embedder, tmp_path)
    b.write(base_entries())
    return b


@pytest.mark.parametrize("question, doc", [
    ("Who was the last keeper to leave the lighthouse tower?", "lighthouse.md"),
    ("How many bees live in each hive in midsummer?", "notes/bees.txt"),
    ("How wide is the crater lake?", "volcano.txt"),
])
def test_right_document_first(backend: Backend, question: str, doc: str):
    hits = backend.search(question)
    assert hits and hits[0].doc == doc


def test_hits_are_passages_of_the_index_they_come_with(backend: Backend):
    hits = backend.search("When was the lamp converted to electricity?", k=6)
    idx = backend.found.index
    assert len(hits) == 6 and len({h.passage for h in hits}) == 6
    for h in hits:
        assert idx.doc_ids[int(idx.passages.doc[h.passage])] == h.doc
        assert (h.start, h.end) == (int(idx.passages.start[h.passage]), int(idx.passages.end[h.passage])) and h.end > h.start
        # The passage's sentences, with their offsets and verbatim texts, are there to read.
        rows = range(int(idx.pass_first[h.passage]), int(idx.pass_last[h.passage]) + 1)
        assert int(idx.sentences.start[rows[0]]) == h.start and int(idx.sentences.end[rows[-1]]) == h.end
        for r in rows:
            a, b = int(idx.sentences.start[r]), int(idx.sentences.end[r])
            assert idx.sentence_text(r) == TEXTS[h.doc][a:b] and idx.sentence_at(h.doc, a) == r
        assert set(h.legs) <= set(LEGS)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_neighbours_and_positions_are_the_documents(backend: Backend):
    hits = backend.search("When was the lamp converted to electricity?", k=3)
    idx = backend.found.index
    for h in hits:
        first = int(idx.pass_first[h.passage])
        before = idx.sentence_before(first)
        a = int(idx.sentences.start[first])
        # The sentence before a passage is the document's own (or none for its first).
        assert before == "" if int(idx.seq(first)) == 0 else TEXTS[h.doc][:a].rstrip().endswith(before) and before
        local = HybridIndex.empty(backend.embedder).updated(base_entries(), [], backend.embedder)
        assert int(idx.seq(first)) == int(local.seq(local.sentence_at(h.doc, a)))


@pytest.mark.parametrize("k", [1, 3])
def test_k_is_respected(backend: Backend, k: int):
    assert len(backend.search("lighthouse honey volcano", k=k)) == k
    everything = backend.search("lighthouse honey volcano", k=1000)
    assert 0 < len(everything) <= len(HybridIndex.empty(backend.embedder).updated(base_entries(), [], backend.embedder).passages)


def test_docs_limit(backend: Backend):
    q = "Who built the harbour lighthouse?"
    assert backend.search(q)[0].doc == "lighthouse.md"
    only_odd = backend.search(q, docs=[ODD_ID])
    assert only_odd and {h.doc for h in only_odd} == {ODD_ID}
    two = backend.search(q, docs=["volcano.txt", ODD_ID])
    assert two and {h.doc for h in two} == {"volcano.txt", ODD_ID}
    assert backend.search(q, docs=[]) == []
    assert backend.search(q, docs=["no-such-document.txt"]) == []
    # Corroboration searches every document but the answer's.
    others = backend.search(q, exclude=["lighthouse.md"])
    assert others and "lighthouse.md" not in {h.doc for h in others}
    assert {h.doc for h in backend.search(q, docs=["volcano.txt", ODD_ID], exclude=[ODD_ID])} == {"volcano.txt"}
    assert backend.search(q, docs=[ODD_ID], exclude=[ODD_ID]) == []


def test_single_leg_reports_its_ranks(backend: Backend):
    for leg in ("bm25", "dense"):
        hits = backend.search("bees on the library roof", k=4, legs=(leg,))
        assert [h.legs for h in hits] == [{leg: r} for r in range(1, len(hits) + 1)] and hits
        assert hits[0].doc == "notes/bees.txt"


def test_update_drops_removed_and_finds_new_text(backend: Backend):
    assert backend.search("How wide is the crater lake?")[0].doc == "volcano.txt"
    tea = "Oolong tea is partly oxidised. It is rolled into small balls before drying."
    backend.write([Entry("volcano.txt", tea, {})], ["notes/bees.txt"])
    assert "notes/bees.txt" not in backend.index.doc_pos and backend.index.entries[backend.index.doc_pos["volcano.txt"]].size == len(tea)
    top = backend.search("Which tea is partly oxidised?")[0]
    assert top.doc == "volcano.txt" and tea[top.start:top.end].startswith("Oolong")
    texts = {**TEXTS, "volcano.txt": tea}
    for q in ("How many bees live in each hive?", "Who sells the honey at the market?", "How wide is the crater lake?"):
        hits = backend.search(q, k=20)
        idx = backend.found.index
        assert all(h.doc != "notes/bees.txt" for h in hits)
        for h in hits:
            rows = range(int(idx.pass_first[h.passage]), int(idx.pass_last[h.passage]) + 1)
            assert all(idx.sentence_text(r) == texts[h.doc][int(idx.sentences.start[r]):int(idx.sentences.end[r])] for r in rows)
            assert "crater" not in texts[h.doc][h.start:h.end]


def test_empty_store_returns_nothing(backend: Backend):
    backend.write([], list(TEXTS))  # everything removed
    assert backend.index.doc_ids == [] and backend.search("Who built the lighthouse?") == []
    backend.write(corpus_entries())
    assert backend.search("Who built the lighthouse?")


def test_a_second_process_opens_what_was_stored(backend: Backend):
    backend.retriever.close()
    again, rebuilt = backend.reopen().open(backend.embedder)
    assert rebuilt is None and sorted(again.doc_ids) == sorted(TEXTS)
    assert {e.id: e.sha256 for e in again.entries} == {e.id: e.sha256 for e in base_entries()}
    assert all(again.doc_facts(again.doc_pos[d])[:2] == (len(t), len(t.encode("utf-8"))) for d, t in TEXTS.items())


def test_corpus_statistics_are_the_local_index(backend: Backend, embedder):
    """What the answerer weighs (IDF, corpus size, lengths) is the whole corpus's, whichever store
    holds it; also after an update removed and replaced documents."""
    backend.write([Entry("volcano.txt", TEXTS["volcano.txt"] + " The crater lake is green.", {})], [ODD_ID])
    local = HybridIndex.empty(embedder).updated(
        [e for e in base_entries() if e.id not in ("volcano.txt", ODD_ID)]
        + [Entry("volcano.txt", TEXTS["volcano.txt"] + " The crater lake is green.", {})], [], embedder)
    q = "How wide is the crater lake near the lighthouse keeper's hives?"
    backend.search(q)
    view = backend.found.index
    for mine, theirs in ((view.bm25, local.bm25), (view.doc_bm25, local.doc_bm25)):
        assert mine.corpus_size == theirs.corpus_size
        for t in terms(q):
            assert mine.idf(t) == pytest.approx(theirs.idf(t)) and mine.has(t) == theirs.has(t)
    # The candidates' BM25 scores match the local index's for the same passages.
    lexical, here = view.lexical(q), local.lexical(q)
    for h in backend.found.hits:
        row = next(p for p in range(len(local.passages)) if local.doc_ids[int(local.passages.doc[p])] == h.doc
                   and int(local.passages.start[p]) == h.start)
        assert lexical[0].scores[h.passage] == pytest.approx(here[0].scores[row])
        assert lexical[1].scores[int(view.passages.doc[h.passage])] == pytest.approx(here[1].scores[int(local.passages.doc[row])])


# ----- Milvus only -----------------------------------------------------------------------
def test_milvus_writes_only_what_changed(embedder, tmp_path: Path):
    uri = str(tmp_path / "milvus.db")
    store = MilvusStore(uri)
    params = index_params(embedder)
    local = HybridIndex.empty(embedder).updated(base_entries(), [], embedder)
    first = store.write(params, base_entries(), [], embedder)
    assert first.created and len(first.written) == len(TEXTS) and first.passages == len(local.passages)
    assert (store.count("docs"), store.count("passages"), store.count("sentences")) == (
        len(TEXTS), len(local.passages), len(local.sentences))
    # A new client on the same file finds what Milvus holds (by document hash).
    store.close()
    store = MilvusStore(uri)
    assert {d.id: d.sha256 for d in store.documents(params)[0]} == {e.id: e.sha256 for e in base_entries()}
    # Changing one document rewrites its rows only, and the old version's go.
    text = TEXTS["volcano.txt"].replace("400 metres", "350 metres")
    changed = store.write(params, [Entry("volcano.txt", text, {})], [], embedder)
    assert ([d.id for d in changed.written], changed.removed, changed.created) == (["volcano.txt"], (), False)
    assert changed.generation == first.generation + 1 == store.generation()
    after = local.updated([Entry("volcano.txt", text, {})], [], embedder)
    assert (store.count("passages"), store.count("sentences")) == (len(after.passages), len(after.sentences))
    q = "How wide is the crater lake?"
    view, hits = store.search(params, q, embedder.embed([q])[0], terms(q), k=1)
    assert "350 metres" in text[hits[0].start:hits[0].end]
    removed = store.write(params, [], ["volcano.txt"], embedder)
    assert removed.removed == ("volcano.txt",) and "volcano.txt" not in {d.id for d in store.documents(params)[0]}


def test_milvus_rebuilds_for_another_model_and_refuses_foreign_collections(embedder, tmp_path: Path):
    uri = str(tmp_path / "milvus.db")
    params = index_params(embedder)
    MilvusStore(uri).write(params, base_entries(), [], embedder)
    other = {**params, "embedding": "torch"}  # as if embedded another way
    with pytest.raises(MilvusError, match="built with other settings [(]embedding onnx-int8 there, torch here[)]; only `qa index`"):
        MilvusStore(uri).documents(other)  # a store of record is not dropped by a command that only asks
    assert MilvusStore(uri).count("docs") == len(base_entries())
    store = MilvusStore(uri, rebuild=True)
    assert store.documents(other)[0] == [] and store.ensure(other) is False

    from pymilvus import MilvusClient

    client = MilvusClient(uri)
    client.create_collection("someone_elses_docs", dimension=params["dim"])
    with pytest.raises(MilvusError, match="not made by this bot"):
        MilvusStore(uri, collection="someone_elses").documents(params)
    with pytest.raises(MilvusError, match="collection name"):
        MilvusStore(uri, collection="bad name; drop")


def test_milvus_writers_take_turns_through_the_lease(embedder, tmp_path: Path, monkeypatch, caplog):
    """Two writers (two clients, as two processes on a server would be) never write at once, and
    the term statistics count both; a writer that waits past its limit is told so."""
    import threading
    import time

    import index.milvus as milvus

    uri = str(tmp_path / "milvus.db")
    params = index_params(embedder)
    stores = [MilvusStore(uri, lease=True), MilvusStore(uri, lease=True)]
    stores[0].ensure(params)
    spans: list[tuple[float, float]] = []
    real = milvus.MilvusStore._write

    def slow_write(self, *args, **kwargs):  # widens the window two writers could share
        t0 = time.monotonic()
        time.sleep(0.6)
        try:
            return real(self, *args, **kwargs)
        finally:
            spans.append((t0, time.monotonic()))

    monkeypatch.setattr(milvus.MilvusStore, "_write", slow_write)
    halves = [base_entries()[:2], base_entries()[2:]]
    threads = [threading.Thread(target=st.write, args=(params, half, [], embedder)) for st, half in zip(stores, halves)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(spans) == 2
    (a0, a1), (b0, b1) = sorted(spans)
    assert a1 <= b0, "two writers wrote at once"
    local = HybridIndex.empty(embedder).updated(base_entries(), [], embedder)
    q = "How wide is the crater lake near the lighthouse keeper's hives?"
    view, _ = stores[0].search(params, q, embedder.embed([q])[0], terms(q))
    assert view.bm25.corpus_size == len(local.passages) and view.doc_bm25.corpus_size == len(TEXTS)
    assert all(view.bm25.idf(t) == pytest.approx(local.bm25.idf(t)) for t in terms(q))
    assert stores[0]._read_lease()[0] == 0  # released

    # A lease someone holds (and keeps renewing) makes a writer wait, saying so after a second,
    # then stop with IndexBusy.
    caplog.clear()
    stores[1]._put_lease(12345, time.time() + 3600)
    stores[0].lease_wait_s = 1.5
    with pytest.raises(IndexBusy, match="another writer has held"):
        stores[0].write(params, [Entry("tea.txt", "Green tea is picked in spring.", {})], [], embedder)
    said = [r.getMessage() for r in caplog.records if "another writer holds" in r.getMessage()]
    assert len(said) == 1 and re.search(r"lease runs out in 3\d\d\d s unless renewed\); waiting for it \(at most 1.5 s\)", said[0])
    # An expired one is taken over.
    stores[1]._put_lease(12345, time.time() - 1)
    stores[0].write(params, [Entry("tea.txt", "Green tea is picked in spring.", {})], [], embedder)
    assert "tea.txt" in {d.id for d in stores[0].documents(params)[0]}


def test_filter_literal_round_trips_awkward_ids():
    for doc in [ODD_ID, "tab\there.txt", "été/ünï.md", "back\\slash\\"]:
        assert json.loads(string_literal(doc)) == doc and string_literal(doc).startswith('"')


def test_bot_answers_from_milvus_keeping_no_copy(corpus: Path, tmp_path: Path, embedder):
    bot = Bot(corpus, index_dir=tmp_path / "ix", embedder=embedder, backend="milvus")
    bot.sync()
    assert (tmp_path / "ix" / "milvus.db").exists() and not (tmp_path / "ix" / "CURRENT").exists()
    assert len(bot.index.passages) == 0 and len(bot.index.sentences) == 0  # the corpus is in Milvus only
    answer = bot.ask("Who built the harbour lighthouse?")
    assert not answer.abstained and answer.answer == "Margaret Hale"
    top = answer.citations[0]
    assert top.doc == "lighthouse.md" and all(p.legs == {} for p in answer.passages)
    assert (corpus / top.doc).read_text(encoding="utf-8")[top.start:top.end] == top.text
    assert bot.document_text("lighthouse.md") == (corpus / "lighthouse.md").read_text(encoding="utf-8")
    (corpus / "lighthouse.md").rename(tmp_path / "moved.md")  # Milvus keeps no text: the file is read again
    with pytest.raises(DocumentError) as gone:
        bot.document_text("lighthouse.md")
    assert str(gone.value) == "lighthouse.md: its file cannot be read again (No such file or directory)"  # no path
    (tmp_path / "moved.md").rename(corpus / "lighthouse.md")
    assert bot.ask("How many hives are on the roof?", docs=["volcano.txt"]).citations[0].doc == "volcano.txt"

    tea = b"Green tea is picked in spring. Black tea is fermented longer than green tea."
    bot.add_document("tea.txt", tea)
    assert bot.ask("Which tea is fermented longer?").citations[0].doc == "tea.txt"
    bot.add_document("tea.txt", tea, replace=True)  # the same version again keeps its rows
    assert bot.ask("Which tea is fermented longer?").citations[0].doc == "tea.txt"
    local = HybridIndex.empty(embedder).updated([Entry(d, bot.document_text(d), {}) for d in bot.index.doc_ids], [], embedder)
    assert bot.counts() == {"documents": len(local.entries), "sentences": len(local.sentences), "passages": len(local.passages)}
    bot.delete_document("tea.txt")
    assert all(c.doc != "tea.txt" for c in bot.ask("Which tea is fermented longer?").citations)
    store = bot.retriever.store
    assert store.count("docs") == len(bot.index.doc_ids) == len(list(corpus.rglob("*.*")))


def test_two_workers_on_one_server_see_each_others_writes(corpus: Path, tmp_path: Path, embedder, milvus_server: str):
    opts = {"embedder": embedder, "backend": "milvus", "milvus_uri": milvus_server, "milvus_collection": "w" + uuid.uuid4().hex[:8]}
    one = Bot(corpus, index_dir=tmp_path / "ix1", **opts)
    two = Bot(corpus, index_dir=tmp_path / "ix2", **opts)
    one.sync()
    two.add_document("tea.txt", b"Green tea is picked in spring. Black tea is fermented longer than green tea.")
    assert one.ask("Which tea is fermented longer?").citations[0].doc == "tea.txt"  # searched at once
    one.add_document("coffee.txt", b"Coffee beans are roasted before they are ground.")
    assert {"tea.txt", "coffee.txt"} <= set(one.index.doc_ids)  # its write started from the newest list
    two.delete_document("coffee.txt")
    assert "coffee.txt" not in two.index.doc_ids and not (corpus / "coffee.txt").exists()
    one.close()
    two.close()


def test_failed_upload_leaves_milvus_as_it_was(corpus: Path, tmp_path: Path, embedder, monkeypatch):
    bot = Bot(corpus, index_dir=tmp_path / "ix", embedder=embedder, backend="milvus")
    bot.sync()
    before = {e.id: e.sha256 for e in bot.index.entries}
    real = os.replace

    def failing(src, dst):  # the second file's move into the folder fails (Milvus Lite renames too)
        if Path(dst) == corpus / "volcano.txt" and ".upload-" in str(src):
            raise OSError("disk full")
        return real(src, dst)

    monkeypatch.setattr("qa.bot.os.replace", failing)
    with pytest.raises(OSError, match="disk full"):
        bot.add_documents([("tea.txt", b"Green tea is picked in spring.", None),
                           ("volcano.txt", b"The volcano is now a tea garden.", None)], replace=True)
    monkeypatch.setattr("qa.bot.os.replace", real)
    assert {e.id: e.sha256 for e in bot.index.entries} == before  # put back in this process too
    bot.close()  # a Milvus Lite file is open in one process (here: one client) at a time
    again = Bot(corpus, index_dir=tmp_path / "ix", embedder=embedder, backend="milvus")
    assert {e.id: e.sha256 for e in again.index.entries} == before
    assert again.ask("How wide is the crater lake?").citations[0].doc == "volcano.txt"
    again.close()


@pytest.mark.parametrize("where", ["lite", "server"])
def test_cli_answers_from_milvus_after_the_local_index_is_deleted(tmp_path: Path, where: str, request):
    ix = tmp_path / "ix"
    opts = ["--index", str(ix), "--backend", "milvus"]
    if where == "lite":
        opts += ["--milvus-uri", str(tmp_path / "store.db")]
    else:
        opts += ["--milvus-uri", request.getfixturevalue("milvus_server"), "--milvus-collection", "cli_" + uuid.uuid4().hex[:8]]
    r = subprocess.run(QA + ["index", str(DOCUMENTS), *opts], capture_output=True, text=True, cwd=ROOT, env=ENV)
    assert r.returncode == 0, r.stderr
    answers = []
    for _ in range(2):
        r = subprocess.run(QA + ["ask", "When was the second call?", "--docs", str(DOCUMENTS), "--json", *opts],
                           capture_output=True, text=True,
                           cwd=ROOT, env=ENV)
        assert r.returncode == 0, r.stderr
        answers.append(json.loads(r.stdout))
        shutil.rmtree(ix)
    first, second = answers
    assert not second["abstained"] and second["answer"] == first["answer"]
    top = second["citations"][0]
    assert top == first["citations"][0]
    assert (DOCUMENTS / top["doc"]).read_text(encoding="utf-8")[top["start"]:top["end"]] == top["text"]


def test_cli_reports_milvus_problems_without_traceback(tmp_path: Path):
    port = free_port()  # nothing listens there
    r = subprocess.run(QA + ["ask", "When was the second call?", "--docs", str(DOCUMENTS), "--index", str(tmp_path / "ix"),
                             "--backend", "milvus", "--milvus-uri", f"http://127.0.0.1:{port}"],
                       capture_output=True, text=True, cwd=ROOT, env=ENV)
    assert r.returncode == 2 and "qa: error: cannot connect to Milvus" in r.stderr and "Traceback" not in r.stderr
    r = subprocess.run(QA + ["ask", "why", "--docs", str(DOCUMENTS), "--milvus-uri", "http://127.0.0.1:1"],
                       capture_output=True, text=True, cwd=ROOT, env=ENV)
    assert r.returncode == 2 and "go with --backend milvus" in r.stderr
    (tmp_path / "empty.db").touch()  # not a store: said so, not "is another qa command using it?"
    r = subprocess.run(QA + ["ask", "why", "--docs", str(DOCUMENTS), "--index", str(tmp_path / "ix"), "--backend", "milvus",
                             "--milvus-uri", str(tmp_path / "empty.db")], capture_output=True, text=True, cwd=ROOT, env=ENV)
    assert r.returncode == 2 and "it is a file, not a Milvus Lite store" in r.stderr and "another qa command" not in r.stderr


def test_bench_with_milvus(tmp_path: Path):
    out = tmp_path / "bench.json"
    r = subprocess.run(QA + ["bench", "--backend", "milvus", "--source", str(DATA / "tiny-squad.json"), "--passages", "4",
                             "--queries", "3", "--index", str(tmp_path / "work"), "--json-out", str(out)],
                       capture_output=True, text=True, cwd=ROOT, env=ENV)
    assert r.returncode == 0, r.stderr
    figures = json.loads(out.read_text())
    assert figures["backend"] == "milvus" and figures["built_now"] and figures["queries"] == 3
    assert figures["passages"] >= 4 and figures["milvus_mb"] is not None and figures["latency_ms_p50"] > 0
    lite = tmp_path / "work" / "index-4" / "milvus.db"
    assert sum(p.stat().st_size for p in lite.rglob("*") if p.is_file()) > 0


def test_milvus_takes_a_text_without_terms_and_one_without_sentence_ends(corpus: Path, tmp_path: Path, embedder):
    """An 80 KB "sentence" was refused, over Milvus's 64 KB field; the segmenter now cuts it into
    pieces of at most MAX_SENTENCE_CHARS, on either backend."""
    from index.segment import MAX_SENTENCE_CHARS

    (corpus / "stop.txt").write_text("To be or not to be.", encoding="utf-8")  # stop words only: no terms
    words = ("alpha", "river", "stone", "cloud", "meadow", "lantern")
    (corpus / "huge.txt").write_text(" ".join(words[i % 6] for i in range(12_000)) + ".", encoding="utf-8")
    bot = Bot(corpus, index_dir=tmp_path / "ix", embedder=embedder, backend="milvus")
    report = bot.sync()
    assert {"stop.txt", "huge.txt"} <= set(report.added) and not report.errors
    assert bot.ask("Who built the harbour lighthouse?").answer == "Margaret Hale"
    store = bot.retriever.store
    assert store.count("docs") == len(bot.index.doc_ids) == len(list(corpus.rglob("*.*")))
    cited = bot.ask("alpha river stone cloud meadow lantern", docs=["huge.txt"]).citations
    assert cited and all(len(c.text) <= MAX_SENTENCE_CHARS for c in cited)
    bot.close()


def test_a_worker_removes_from_milvus_only_documents_its_own_folder_had(corpus: Path, tmp_path: Path, embedder):
    """Workers whose folders differ share one store: what one folder lacks may be another's."""
    uri = str(tmp_path / "shared.db")
    other = tmp_path / "other"
    other.mkdir()
    (other / "tea.txt").write_text("Oolong tea is partly oxidised.", encoding="utf-8")
    one = Bot(corpus, index_dir=tmp_path / "ix1", embedder=embedder, backend="milvus", milvus_uri=uri)
    one.sync()
    one.add_document("coffee.txt", b"Coffee beans are roasted before they are ground.")
    one.close()  # a Milvus Lite file is open in one process (here: one client) at a time
    two = Bot(other, index_dir=tmp_path / "ix2", embedder=embedder, backend="milvus", milvus_uri=uri)
    assert two.sync().removed == [] and {"tea.txt", "coffee.txt", "lighthouse.md"} <= set(two.index.doc_ids)
    assert two.ask("Who built the harbour lighthouse?").citations[0].doc == "lighthouse.md"
    (other / "tea.txt").unlink()  # its own file is removed from the store
    assert two.sync().removed == ["tea.txt"]
    two.close()
    one = Bot(corpus, index_dir=tmp_path / "ix1", embedder=embedder, backend="milvus", milvus_uri=uri)
    (corpus / "coffee.txt").unlink()  # an upload counts as the folder's own
    assert one.sync().removed == ["coffee.txt"] and "tea.txt" not in one.index.doc_ids
    one.close()


def test_milvus_sentences_lost_under_a_document_are_named(corpus: Path, tmp_path: Path, embedder):
    bot = Bot(corpus, index_dir=tmp_path / "ix", embedder=embedder, backend="milvus")
    bot.sync()
    store = bot.retriever.store
    store._client.delete(store.names["sentences"], filter='doc == "lighthouse.md"')  # as a damaged store would lose them
    with pytest.raises(MilvusError, match="lack sentences of 'lighthouse.md' [(]damaged[?][)]; drop the collections"):
        bot.ask("Who built the harbour lighthouse?")
    bot.close()


def test_api_answers_503_while_the_milvus_server_is_down(corpus: Path, tmp_path: Path, embedder):
    from qa.api import create_app
    from qa.settings import Settings
    from servers import serving

    proc, uri = start_milvus_server(tmp_path / "data")
    try:
        bot = Bot(corpus, index_dir=tmp_path / "ix", embedder=embedder, backend="milvus", milvus_uri=uri)
        bot.sync()
        with serving(create_app(bot, Settings())) as url:
            assert httpx.post(f"{url}/api/answer", json={"question": "How wide is the crater lake?"}, timeout=60).status_code == 200
            proc.terminate()
            proc.wait(30)
            r = httpx.post(f"{url}/api/answer", json={"question": "How wide is the crater lake?"}, timeout=120)
            ready = httpx.get(f"{url}/readyz", timeout=120)
            for reply in (r, ready):
                assert reply.status_code == 503 and "document store cannot be used" in reply.json()["detail"]
                assert uri not in reply.text and reply.headers["retry-after"] == "5"
        bot.close()
    finally:
        proc.kill()


def test_milvus_repairs_a_write_that_stopped_part_way(corpus: Path, tmp_path: Path, embedder, monkeypatch, caplog):
    import index.milvus as milvus

    bot = Bot(corpus, index_dir=tmp_path / "ix", embedder=embedder, backend="milvus")
    bot.sync()
    real = milvus.MilvusStore._all

    def dropped(self, kind, expr, fields):  # as a writer killed after its document rows, before the replaced rows went
        if "sha ==" in expr:
            raise MilvusError("the connection dropped")
        return real(self, kind, expr, fields)

    monkeypatch.setattr(milvus.MilvusStore, "_all", dropped)
    (corpus / "volcano.txt").write_text("The volcano is now a tea garden. Oolong grows on its slopes.", encoding="utf-8")
    (corpus / "notes" / "bees.txt").unlink()
    with pytest.raises(MilvusError, match="the connection dropped"):
        bot.sync()
    monkeypatch.undo()
    bot.close()
    store, params = MilvusStore(str(tmp_path / "ix" / "milvus.db")), index_params(embedder)
    store.ensure(params)
    files = sorted(p for p in corpus.rglob("*.*"))
    local = HybridIndex.empty(embedder).updated([Entry(p.relative_to(corpus).as_posix(), p.read_text(encoding="utf-8"), {})
                                                 for p in files], [], embedder)
    assert store.count("passages") > len(local.passages)  # the replaced and removed versions' rows are still there
    store.documents(params)  # opening the store repairs it
    store.documents(params)
    assert caplog.text.count("stopped part-way; repairing them") == 1
    assert (store.count("docs"), store.count("passages"), store.count("sentences")) == \
        (len(local.entries), len(local.passages), len(local.sentences))
    q = "What grows on the slopes of the volcano near the hives?"
    view, _ = store.search(params, q, embedder.embed([q])[0], terms(q))
    assert view.bm25.corpus_size == len(local.passages) and view.doc_bm25.corpus_size == len(local.entries)
    assert all(view.bm25.idf(t) == pytest.approx(local.bm25.idf(t)) for t in terms(q))
    assert all(view.doc_bm25.idf(t) == pytest.approx(local.doc_bm25.idf(t)) for t in terms(q))
    store.close()


def test_cli_lets_go_of_the_milvus_lite_file_when_a_command_ends(tmp_path: Path):
    from qa.cli import main

    uri = str(tmp_path / "store.db")
    assert main(["ask", "When was the second call?", "--docs", str(DOCUMENTS), "--index", str(tmp_path / "ix"),
                 "--backend", "milvus", "--milvus-uri", uri, "--json"]) == 0
    # Left open, its in-process server lived until exit, racing that exit's thread shutdown.
    r = subprocess.run([sys.executable, "-c", f"from index.milvus import MilvusStore; MilvusStore({uri!r}).close()"],
                       capture_output=True, text=True, cwd=ROOT, env=ENV)
    assert r.returncode == 0, r.stderr


def test_a_damaged_milvus_lite_file_says_how_to_build_it_again(embedder, tmp_path: Path):
    uri, params = str(tmp_path / "milvus.db"), index_params(embedder)
    store = MilvusStore(uri)
    store.write(params, base_entries(), [], embedder)
    store.close()
    next(Path(uri).glob("collections/*_docs/schema.json")).write_text("garbage{", encoding="utf-8")
    with pytest.raises(MilvusError, match=r"not valid JSON.*; if it is damaged, move .*milvus\.db away and run `qa index`"):
        MilvusStore(uri).documents(params)
