import json
from pathlib import Path

import numpy as np
import pytest

from index.store import Entry, HybridIndex, IndexMismatch, IndexMissing
from qa.bot import Bot


def test_save_load_round_trip(tmp_path: Path, embedder):
    idx = HybridIndex.empty(embedder).updated(
        [Entry("a.txt", "Alpha is first. Beta is second.", {"title": "A"}), Entry("b.txt", "Gamma rays are light.", {})],
        [], embedder,
    )
    idx.save(tmp_path / "ix")
    back = HybridIndex.load(tmp_path / "ix", embedder)
    assert back.doc_ids == ["a.txt", "b.txt"]
    assert np.array_equal(back.sentences.start, idx.sentences.start)
    assert np.allclose(back.passages.vecs, idx.passages.vecs)
    assert back.entries[0].meta == {"title": "A"}
    q = "gamma rays"
    hits = back.search(q, embedder.embed([q])[0], k=2)
    assert hits[0].doc == "b.txt" and set(hits[0].legs) == {"bm25", "dense", "doc"}


def test_manifest_mismatch_is_refused(tmp_path: Path, embedder):
    HybridIndex.empty(embedder).updated([Entry("a.txt", "Some text here.", {})], [], embedder).save(tmp_path / "ix")
    gen = tmp_path / "ix" / (tmp_path / "ix" / "CURRENT").read_text()
    manifest = json.loads((gen / "manifest.json").read_text())
    manifest["model_sha256"] = "0" * 64
    (gen / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(IndexMismatch, match="model_sha256"):
        HybridIndex.load(tmp_path / "ix", embedder)
    with pytest.raises(IndexMissing):
        HybridIndex.load(tmp_path / "nothing", embedder)


def test_bot_rebuilds_on_mismatch(corpus: Path, tmp_path: Path, embedder):
    bot = Bot(corpus, index_dir=tmp_path / "ix", embedder=embedder)
    bot.sync()
    gen = tmp_path / "ix" / (tmp_path / "ix" / "CURRENT").read_text()
    manifest = json.loads((gen / "manifest.json").read_text())
    manifest["schema"] = -1
    (gen / "manifest.json").write_text(json.dumps(manifest))
    report = Bot(corpus, index_dir=tmp_path / "ix", embedder=embedder).sync()
    assert report.rebuilt and "schema" in report.rebuilt
    assert len(report.added) == 3


def test_incremental_add_change_delete(corpus: Path, tmp_path: Path, counting):
    bot = Bot(corpus, index_dir=tmp_path / "ix", embedder=counting)
    first = bot.sync()
    assert sorted(first.added) == ["lighthouse.md", "notes/bees.txt", "volcano.txt"]
    full = counting.count
    assert full == len(bot.index.sentences) + len(bot.index.passages)

    # Nothing changed: nothing embedded, nothing written.
    counting.count = 0
    again = Bot(corpus, index_dir=tmp_path / "ix", embedder=counting).sync()
    assert not again.touched and counting.count == 0

    # Add one document: only its texts are embedded.
    (corpus / "tea.txt").write_text("Green tea is picked in spring. Black tea is fermented longer.", encoding="utf-8")
    counting.count = 0
    report = bot.sync()
    assert report.added == ["tea.txt"] and counting.count < full
    assert bot.ask("Which tea is fermented longer?").citations[0].doc == "tea.txt"

    # Change one: re-embedded, old text gone from answers.
    (corpus / "tea.txt").write_text("Oolong tea is partly oxidised.", encoding="utf-8")
    counting.count = 0
    report = bot.sync()
    assert report.changed == ["tea.txt"] and counting.count == 2  # one sentence + one passage
    top = bot.ask("Which tea is partly oxidised?").citations[0]
    assert top.doc == "tea.txt" and "Oolong" in top.text

    # Delete one: gone from the index and from answers, on disk too.
    (corpus / "tea.txt").unlink()
    report = bot.sync()
    assert report.removed == ["tea.txt"]
    assert "tea.txt" not in HybridIndex.read_manifest(tmp_path / "ix")["documents"]
    assert all(c.doc != "tea.txt" for c in bot.ask("Which tea is partly oxidised?").citations)

    # Vectors of untouched documents were reused, not recomputed.
    fresh = Bot(corpus, index_dir=tmp_path / "fresh", embedder=counting)
    fresh.sync()
    assert np.allclose(fresh.index.sentences.vecs, bot.index.sentences.vecs, atol=1e-5)


def test_leftover_generation_is_ignored(corpus: Path, tmp_path: Path, embedder):
    bot = Bot(corpus, index_dir=tmp_path / "ix", embedder=embedder)
    bot.sync()
    # A crash while writing a new generation leaves a partial folder; CURRENT still names the good one.
    (tmp_path / "ix" / "gen-crashed").mkdir()
    (tmp_path / "ix" / "gen-crashed" / "docs.jsonl").write_text("{broken")
    assert HybridIndex.load(tmp_path / "ix", embedder).doc_ids == bot.index.doc_ids
