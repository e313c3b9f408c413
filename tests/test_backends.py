"""One contract for every passage retriever: the local hybrid index (faiss + BM25) and Milvus.

The Milvus backend runs for real on a Milvus Lite file in the test's temporary folder.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import DATA, DOCUMENTS, ROOT

from eval.loadcheck import free_port
from index.milvus import MilvusError, MilvusPassages, passage_key, string_literal
from index.retriever import MilvusRetriever, open_retriever
from index.store import LEGS, Entry, Hit, HybridIndex
from qa.bot import Bot

QA = [sys.executable, "-m", "qa.cli"]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1"}
# A document id with both quotes and a backslash: the Milvus filter must quote it properly.
ODD_ID = "odd \"quoted\" keeper's\\notes.txt"
ODD_TEXT = ("The keeper's log of the harbour lighthouse records a storm in 1901. "
            "That winter the lamp burned paraffin and was lit at dusk every day.")


def corpus_entries() -> list[Entry]:
    root = DATA / "corpus"
    return [Entry(p.relative_to(root).as_posix(), p.read_text(encoding="utf-8"), {}) for p in sorted(root.rglob("*.*"))]


class Retriever:
    """A backend under test (``index.retriever.open_retriever``): ``load`` makes it serve a
    snapshot, ``search`` asks it a question in words."""

    def __init__(self, name: str, embedder, tmp_path: Path) -> None:
        self.name, self.embedder = name, embedder
        self.backend = open_retriever(name, tmp_path, str(tmp_path / "milvus.db") if name == "milvus" else None)
        self.index: HybridIndex | None = None

    def load(self, index: HybridIndex) -> None:
        self.index = index
        self.backend.sync(index)

    def search(self, query: str, k: int = 10, docs=None, legs: tuple[str, ...] = LEGS, exclude=()) -> list[Hit]:
        qvec = self.embedder.embed([query])[0]
        return self.backend.search(self.index, query, qvec, k=k, docs=docs, legs=legs, exclude=exclude)


@pytest.fixture(autouse=True)
def stop_lite_servers():
    """Stop the Milvus Lite servers a test started in this process (each test has its own file),
    so idle servers and their clients' keep-alive pings do not pile up over the session."""
    yield
    from milvus_lite import server_manager_instance

    server_manager_instance.release_all()


@pytest.fixture(scope="module")
def base(embedder) -> HybridIndex:
    """The tiny corpus plus the document with the awkward id."""
    return HybridIndex.empty(embedder).updated(corpus_entries() + [Entry(ODD_ID, ODD_TEXT, {})], [], embedder)


@pytest.fixture(params=["faiss", "milvus"])
def retriever(request, embedder, tmp_path: Path) -> Retriever:
    return Retriever(request.param, embedder, tmp_path)


def passage_text(index: HybridIndex, h: Hit) -> str:
    return index.text(int(index.passages.doc[h.passage]), int(index.passages.start[h.passage]), int(index.passages.end[h.passage]))


@pytest.mark.parametrize("question, doc", [
    ("Who was the last keeper to leave the lighthouse tower?", "lighthouse.md"),
    ("How many bees live in each hive in midsummer?", "notes/bees.txt"),
    ("How wide is the crater lake?", "volcano.txt"),
])
def test_right_document_first(retriever: Retriever, base: HybridIndex, question: str, doc: str):
    retriever.load(base)
    hits = retriever.search(question)
    assert hits and hits[0].doc == doc


def test_hits_are_passages_of_the_snapshot(retriever: Retriever, base: HybridIndex):
    retriever.load(base)
    hits = retriever.search("When was the lamp converted to electricity?", k=6)
    assert len(hits) == 6 and len({h.passage for h in hits}) == 6
    for h in hits:
        doc = base.entries[base.doc_pos[h.doc]]
        assert base.doc_ids[int(base.passages.doc[h.passage])] == h.doc
        assert (h.start, h.end) == (int(base.passages.start[h.passage]), int(base.passages.end[h.passage]))
        assert doc.text[h.start:h.end] == passage_text(base, h) and h.end > h.start
        assert set(h.legs) <= set(LEGS)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


@pytest.mark.parametrize("k", [1, 3])
def test_k_is_respected(retriever: Retriever, base: HybridIndex, k: int):
    retriever.load(base)
    assert len(retriever.search("lighthouse honey volcano", k=k)) == k
    everything = retriever.search("lighthouse honey volcano", k=1000)
    assert 0 < len(everything) <= len(base.passages)


def test_docs_limit(retriever: Retriever, base: HybridIndex):
    retriever.load(base)
    q = "Who built the harbour lighthouse?"
    assert retriever.search(q)[0].doc == "lighthouse.md"
    only_odd = retriever.search(q, docs=[ODD_ID])
    assert only_odd and {h.doc for h in only_odd} == {ODD_ID}
    two = retriever.search(q, docs=["volcano.txt", ODD_ID])
    assert two and {h.doc for h in two} <= {"volcano.txt", ODD_ID} and {h.doc for h in two} == {"volcano.txt", ODD_ID}
    assert retriever.search(q, docs=[]) == []
    assert retriever.search(q, docs=["no-such-document.txt"]) == []
    # Corroboration searches every document but the answer's.
    others = retriever.search(q, exclude=["lighthouse.md"])
    assert others and "lighthouse.md" not in {h.doc for h in others}
    assert {h.doc for h in retriever.search(q, docs=["volcano.txt", ODD_ID], exclude=[ODD_ID])} == {"volcano.txt"}
    assert retriever.search(q, docs=[ODD_ID], exclude=[ODD_ID]) == []


def test_single_leg_reports_its_ranks(retriever: Retriever, base: HybridIndex):
    retriever.load(base)
    for leg in ("bm25", "dense"):
        hits = retriever.search("bees on the library roof", k=4, legs=(leg,))
        assert [h.legs for h in hits] == [{leg: r} for r in range(1, len(hits) + 1)] and hits
        assert hits[0].doc == "notes/bees.txt"


def test_update_drops_removed_and_finds_new_text(retriever: Retriever, base: HybridIndex, embedder):
    retriever.load(base)
    assert retriever.search("How wide is the crater lake?")[0].doc == "volcano.txt"
    changed = base.updated(
        [Entry("volcano.txt", "Oolong tea is partly oxidised. It is rolled into small balls before drying.", {})],
        ["notes/bees.txt"], embedder,
    )
    retriever.load(changed)
    top = retriever.search("Which tea is partly oxidised?")[0]
    assert top.doc == "volcano.txt" and "Oolong" in passage_text(changed, top)
    for q in ("How many bees live in each hive?", "Who sells the honey at the market?", "How wide is the crater lake?"):
        hits = retriever.search(q, k=20)
        assert all(h.doc != "notes/bees.txt" for h in hits)
        assert all("crater" not in passage_text(changed, h) for h in hits)
        assert all(passage_text(changed, h) == changed.entries[changed.doc_pos[h.doc]].text[h.start:h.end] for h in hits)


def test_empty_index_returns_nothing(retriever: Retriever, base: HybridIndex, embedder):
    retriever.load(HybridIndex.empty(embedder))
    assert retriever.search("Who built the lighthouse?") == []
    retriever.load(base)
    assert retriever.search("Who built the lighthouse?")
    retriever.load(base.updated([], base.doc_ids, embedder))  # everything removed
    assert retriever.search("Who built the lighthouse?") == []


# ----- Milvus only -----------------------------------------------------------------------
def doc_keys(index: HybridIndex, doc: str) -> set[str]:
    """Milvus keys of one document's passages."""
    text = index.entries[index.doc_pos[doc]].text
    rows = (index.passages.doc == index.doc_pos[doc]).nonzero()[0]
    return {passage_key(doc, int(index.passages.start[r]), int(index.passages.end[r]),
                        text[int(index.passages.start[r]):int(index.passages.end[r])]) for r in rows}


def test_milvus_sync_writes_only_what_changed(base: HybridIndex, embedder, tmp_path: Path):
    uri = str(tmp_path / "milvus.db")
    m = MilvusPassages(uri)
    first = m.sync(base)
    assert first.created and first.upserted == len(base.passages) and first.deleted == 0
    assert m.count() == len(base.passages)
    # A new client on the same file lists what Milvus holds and finds nothing to do.
    again = MilvusPassages(uri).sync(base)
    assert (again.upserted, again.deleted, again.created) == (0, 0, False)
    # Changing one document rewrites its passages only.
    text = base.entries[base.doc_pos["volcano.txt"]].text.replace("400 metres", "350 metres")
    changed = base.updated([Entry("volcano.txt", text, {})], [], embedder)
    old, new = doc_keys(base, "volcano.txt"), doc_keys(changed, "volcano.txt")
    stats = m.sync(changed)
    assert stats.upserted == len(new - old) > 0 and stats.deleted == len(old - new) > 0
    assert m.count() == len(changed.passages)
    top = m.search("How wide is the crater lake?", embedder.embed(["How wide is the crater lake?"])[0], k=1)[0]
    assert "350 metres" in passage_text(changed, top)


def test_milvus_rebuilds_for_another_model_and_refuses_foreign_collections(base: HybridIndex, tmp_path: Path):
    uri = str(tmp_path / "milvus.db")
    MilvusPassages(uri).sync(base)
    other = copy.copy(base)  # the same passages, as if embedded by another model
    other.params = {**base.params, "model_sha256": "0" * 64}
    stats = MilvusPassages(uri).sync(other)
    assert stats.created and stats.upserted == len(base.passages)

    from pymilvus import MilvusClient

    client = MilvusClient(uri)
    client.create_collection("someone_elses", dimension=base.params["dim"])
    with pytest.raises(MilvusError, match="not made by this bot"):
        MilvusPassages(uri, collection="someone_elses").sync(base)
    with pytest.raises(MilvusError, match="collection name"):
        MilvusPassages(uri, collection="bad name; drop")


def test_filter_literal_round_trips_awkward_ids():
    for doc in [ODD_ID, "tab\there.txt", "été/ünï.md", "back\\slash\\"]:
        assert json.loads(string_literal(doc)) == doc and string_literal(doc).startswith('"')


def test_bot_answers_from_milvus(corpus: Path, tmp_path: Path, embedder):
    bot = Bot(corpus, index_dir=tmp_path / "ix", embedder=embedder, backend="milvus")
    bot.sync()
    assert (tmp_path / "ix" / "milvus.db").exists()
    answer = bot.ask("Who built the harbour lighthouse?")
    assert not answer.abstained and answer.answer == "Margaret Hale"
    assert answer.citations[0].doc == "lighthouse.md" and all(p.legs == {} for p in answer.passages)
    assert bot.ask("How many hives are on the roof?", docs=["volcano.txt"]).citations[0].doc == "volcano.txt"

    bot.add_document("tea.txt", b"Green tea is picked in spring. Black tea is fermented longer than green tea.")
    assert bot.ask("Which tea is fermented longer?").citations[0].doc == "tea.txt"
    bot.delete_document("tea.txt")
    assert all(c.doc != "tea.txt" for c in bot.ask("Which tea is fermented longer?").citations)
    assert isinstance(bot.retriever, MilvusRetriever) and bot.retriever.passages.count() == len(bot.index.passages)


def test_cli_reports_milvus_problems_without_traceback(tmp_path: Path):
    port = free_port()  # nothing listens there
    r = subprocess.run(QA + ["ask", "When was the second call?", "--docs", str(DOCUMENTS), "--index", str(tmp_path / "ix"),
                             "--backend", "milvus", "--milvus-uri", f"http://127.0.0.1:{port}"],
                       capture_output=True, text=True, cwd=ROOT, env=ENV)
    assert r.returncode == 2 and "qa: error: cannot connect to Milvus" in r.stderr and "Traceback" not in r.stderr
    r = subprocess.run(QA + ["ask", "hi", "--docs", str(DOCUMENTS), "--milvus-uri", "http://127.0.0.1:1"],
                       capture_output=True, text=True, cwd=ROOT, env=ENV)
    assert r.returncode == 2 and "go with --backend milvus" in r.stderr


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
