import json
import os
from pathlib import Path

import numpy as np
import pytest

from index.store import Entry, HybridIndex, IndexDamaged, IndexMismatch, IndexMissing
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


def test_citation_offsets_lead_back_to_the_sentence_row(embedder):
    from qa.answerer import LOCALITY, Answerer

    text = " ".join(f"{name} is here." for name in ("Alpha", "Beta", "Gamma", "Delta", "Eta", "Theta", "Iota", "Kappa",
                                                    "Lambda", "Mu", "Omega"))
    idx = HybridIndex.empty(embedder).updated(
        [Entry("a.txt", text, {}), Entry("b.txt", "Epsilon is elsewhere.", {})], [], embedder,
    )
    beta = idx.sentence_at("a.txt", text.index("Beta"))
    assert idx.sentence_text(beta) == "Beta is here."
    assert idx.sentence_at("b.txt", 0) == idx.doc_sentences(1)[0]
    # A start inside a sentence, past the text, or in an unknown document is no sentence.
    assert idx.sentence_at("a.txt", text.index("Beta") + 1) is None
    assert idx.sentence_at("a.txt", len(text) + 5) is None
    assert idx.sentence_at("gone.txt", 0) is None
    # Each candidate's place against the previous citation: same, next, next but one,
    # before, elsewhere within four sentences, within eight; nothing further off or in another document.
    rows = [*range(*idx.doc_sentences(0)), idx.doc_sentences(1)[0]]
    near = Answerer.locality(idx, rows, beta)
    named = [LOCALITY[int(np.argmax(row))] if row.any() else None for row in near]
    assert named == ["before", "same", "next", "next2", "nearby", "nearby", *["further"] * 4, None, None]
    assert near.sum(axis=1).max() == 1
    assert not Answerer.locality(idx, rows, None).any()


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


@pytest.mark.parametrize("damage", ["empty manifest", "truncated vectors", "garbled spans", "lost passage vectors",
                                    "a document dropped from the manifest", "a line dropped from the texts"])
def test_a_damaged_index_is_rebuilt_with_a_note(corpus: Path, tmp_path: Path, embedder, damage: str):
    """Before, each of these stopped `qa ask` and `qa index` alike with a traceback, and only
    deleting the index folder by hand got out of it."""
    Bot(corpus, index_dir=tmp_path / "ix", embedder=embedder).sync()
    gen = tmp_path / "ix" / (tmp_path / "ix" / "CURRENT").read_text()
    if damage == "empty manifest":
        (gen / "manifest.json").write_text("")
    elif damage == "truncated vectors":
        data = (gen / "sentence_vecs.npy").read_bytes()
        (gen / "sentence_vecs.npy").write_bytes(data[: len(data) // 2])
    elif damage == "garbled spans":
        (gen / "spans.npz").write_bytes(b"PK\x03\x04" + b"\x00" * 200)
    elif damage == "lost passage vectors":
        (gen / "passage_vecs.npy").unlink()
    elif damage == "a document dropped from the manifest":
        manifest = json.loads((gen / "manifest.json").read_text())
        manifest["documents"].pop("volcano.txt")
        (gen / "manifest.json").write_text(json.dumps(manifest))
    else:
        lines = (gen / "docs.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
        (gen / "docs.jsonl").write_text("".join(lines[:-1]), encoding="utf-8")
    with pytest.raises(IndexDamaged, match="cannot be read"):
        HybridIndex.load(tmp_path / "ix", embedder)
    report = Bot(corpus, index_dir=tmp_path / "ix", embedder=embedder).sync()
    assert report.rebuilt and "cannot be read" in report.rebuilt and len(report.added) == 3
    assert Bot(corpus, index_dir=tmp_path / "ix", embedder=embedder).ask("How wide is the crater lake?").citations


def test_a_generation_folder_is_readable_as_its_files_are(tmp_path: Path, embedder):
    """Generation folders were made 0700 whatever the umask, so another user could read no index."""
    umask = os.umask(0o022)
    try:
        HybridIndex.empty(embedder).updated([Entry("a.txt", "Some text here.", {})], [], embedder).save(tmp_path / "ix")
    finally:
        os.umask(umask)
    gen = tmp_path / "ix" / (tmp_path / "ix" / "CURRENT").read_text()
    assert gen.stat().st_mode & 0o777 == 0o755 and (gen / "manifest.json").stat().st_mode & 0o777 == 0o644


def test_a_save_that_fails_leaves_no_generation_behind(tmp_path: Path, embedder, monkeypatch):
    """A full disk stopped a save half-way, and each try left its partial folder to fill the
    disk further; the index on disk stays the last whole one."""
    import errno

    import index.persist

    one = HybridIndex.empty(embedder).updated([Entry("a.txt", "Some text here.", {})], [], embedder)
    one.save(tmp_path / "ix")
    before = sorted(p.name for p in (tmp_path / "ix").iterdir())

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(index.persist.np, "savez", full)
    two = one.updated([Entry("b.txt", "More text there.", {})], [], embedder)
    with pytest.raises(OSError, match="No space left"):
        two.save(tmp_path / "ix")
    monkeypatch.undo()
    assert sorted(p.name for p in (tmp_path / "ix").iterdir()) == before
    assert HybridIndex.load(tmp_path / "ix", embedder).doc_ids == ["a.txt"]


def test_incremental_add_change_delete(corpus: Path, tmp_path: Path, counting):
    bot = Bot(corpus, index_dir=tmp_path / "ix", embedder=counting)
    first = bot.sync()
    assert sorted(first.added) == ["lighthouse.md", "notes/bees.txt", "volcano.txt"]
    full = counting.count
    # Each sentence is embedded once; passage vectors are means of their sentences' vectors.
    assert full == len(bot.index.sentences)

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
    assert report.changed == ["tea.txt"] and counting.count == 1  # its one sentence
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


def test_an_edited_or_renamed_document_embeds_only_its_new_sentences(corpus: Path, tmp_path: Path, counting):
    bot = Bot(corpus, index_dir=tmp_path / "ix", embedder=counting)
    bot.sync()
    subjects = ("Kettles", "Ferries", "Glaciers", "Violins", "Orchards", "Lanterns", "Tunnels", "Parrots")
    sentences = [f"{s} were counted {n} times in the survey." for n, s in enumerate(subjects, 2)]
    (corpus / "survey.txt").write_text(" ".join(sentences), encoding="utf-8")
    counting.count = 0
    bot.sync()
    assert counting.count == len(sentences)

    # One sentence edited: only it is embedded; the others keep their vectors.
    kept = sentences[5]
    row = bot.index.sentence_at("survey.txt", " ".join(sentences).index(kept))
    before = np.array(bot.index.sentences.vecs[row])
    sentences[2] = "Glaciers melted into the lake beside the village."
    text = " ".join(sentences)
    (corpus / "survey.txt").write_text(text, encoding="utf-8")
    counting.count = 0
    assert bot.sync().changed == ["survey.txt"] and counting.count == 1

    # Moved into a subfolder under another name: nothing embedded, the same vectors, cited by its new name.
    (corpus / "archive").mkdir()
    (corpus / "survey.txt").rename(corpus / "archive" / "census.txt")
    counting.count = 0
    report = bot.sync()
    assert (report.added, report.removed, counting.count) == (["archive/census.txt"], ["survey.txt"], 0)
    assert np.array_equal(bot.index.sentences.vecs[bot.index.sentence_at("archive/census.txt", text.index(kept))], before)
    top = bot.ask("What melted into the lake beside the village?").citations[0]
    assert (top.doc, top.text) == ("archive/census.txt", sentences[2])


def test_leftover_generation_is_ignored(corpus: Path, tmp_path: Path, embedder):
    bot = Bot(corpus, index_dir=tmp_path / "ix", embedder=embedder)
    bot.sync()
    # A crash while writing a new generation leaves a partial folder; CURRENT still names the good one.
    (tmp_path / "ix" / "gen-crashed").mkdir()
    (tmp_path / "ix" / "gen-crashed" / "docs.jsonl").write_text("{broken")
    assert HybridIndex.load(tmp_path / "ix", embedder).doc_ids == bot.index.doc_ids


def test_update_equals_fresh_build(tmp_path: Path, embedder):
    """Removing, replacing and adding documents gives the same index as building the final set."""
    texts = {
        "a.txt": "Alpha rivers flow north. The delta floods in spring. Farmers plant rice there. Boats carry the rice.",
        "b.txt": "Bees make honey. Honey keeps for years.",
        "c.txt": "Copper conducts heat. Pans are made of copper. Cooks like copper pans.",
    }
    idx = HybridIndex.empty(embedder).updated([Entry(k, v, {}) for k, v in texts.items()], [], embedder)
    final = {
        "a.txt": "Alpha rivers flow south now. Nobody plants rice.",
        "c.txt": texts["c.txt"],
        "d.txt": "Dunes move with the wind. Sand covers roads. Camels cross the dunes.",
    }
    updated = idx.updated([Entry("d.txt", final["d.txt"], {}), Entry("a.txt", final["a.txt"], {})], ["b.txt"], embedder)
    fresh = HybridIndex.empty(embedder).updated([Entry(k, v, {}) for k, v in final.items()], [], embedder)
    assert sorted(updated.doc_ids) == sorted(fresh.doc_ids)

    def passages(ix: HybridIndex) -> dict:
        out = {}
        for p in range(len(ix.passages)):
            key = (ix.doc_ids[ix.passages.doc[p]], int(ix.passages.start[p]), int(ix.passages.end[p]))
            first, last = int(ix.pass_first[p]), int(ix.pass_last[p])
            # The passage's sentences belong to its document and span it exactly.
            assert ix.sentences.doc[first] == ix.sentences.doc[last] == ix.passages.doc[p]
            assert (ix.sentences.start[first], ix.sentences.end[last]) == (key[1], key[2])
            out[key] = (p, ix.passages.vecs[p])
        return out

    pu, pf = passages(updated), passages(fresh)
    assert pu.keys() == pf.keys()
    for key in pu:
        # Same passage, same vector up to int8 noise (dynamic quantisation scales activations
        # per batch, so a text's vector shifts slightly with its batch-mates); a passage
        # paired with another's vector would be far below this.
        assert float(pu[key][1] @ pf[key][1]) > 0.98
    for q in ["rice rivers", "copper pans", "dunes wind camels", "honey"]:
        keyed = lambda ix, ps: [(k, round(s, 6)) for p, s in ix.bm25.search(q, 10) for k, (r, _) in ps.items() if r == p]  # noqa: E731
        assert sorted(keyed(updated, pu)) == sorted(keyed(fresh, pf))
        assert updated.doc_bm25.idf("copper") == fresh.doc_bm25.idf("copper") > 0
    assert not updated.bm25.has("honey") and updated.bm25.idf("honey") == 0.0


def test_adding_writes_only_the_new_part(tmp_path: Path, embedder):
    ix = tmp_path / "ix"
    idx = HybridIndex.empty(embedder).updated([Entry("a.txt", "Alpha is first. Beta is second.", {})], [], embedder)
    idx.save(ix)
    first_gen = (ix / "CURRENT").read_text()
    added = idx.updated([Entry("b.txt", "Gamma rays are light.", {})], [], embedder)
    added.save(ix)
    manifest = HybridIndex.read_manifest(ix)
    # The first generation's part is reused (kept on disk), the new one holds only b.txt.
    assert [n for _, n in manifest["parts"]] == [1, 1] and manifest["parts"][0][0] == first_gen
    assert (ix / first_gen / "docs.jsonl").is_file()
    back = HybridIndex.load(ix, embedder)
    assert back.doc_ids == ["a.txt", "b.txt"] and np.allclose(back.sentences.vecs, added.sentences.vecs)
    # Removing a document rewrites one part and drops the old generations.
    removed = back.updated([], ["a.txt"], embedder)
    removed.save(ix)
    manifest = HybridIndex.read_manifest(ix)
    assert [n for _, n in manifest["parts"]] == [1] and sorted(p.name for p in ix.glob("gen-*")) == [manifest["parts"][0][0]]
    again = HybridIndex.load(ix, embedder)
    assert again.doc_ids == ["b.txt"] and again.search("gamma rays", embedder.embed(["gamma rays"])[0], k=1)[0].doc == "b.txt"


def test_large_index_uses_inverted_lists(tmp_path: Path, embedder, monkeypatch):
    """Past ANN_MIN_PASSAGES the dense leg is a faiss IVF index, kept through updates and saves."""
    import faiss

    import index.ann as ann

    monkeypatch.setattr(ann, "ANN_MIN_PASSAGES", 80)
    topics = ["rivers", "bees", "copper", "dunes", "tea", "glass", "owls", "salt", "kites", "moss"]
    entries = [
        Entry(f"{t}{i}.txt", " ".join(f"Fact {j} about {t} number {i}: {t} matter in case {j}." for j in range(9)), {})
        for t in topics for i in range(5)
    ]
    idx = HybridIndex.empty(embedder).updated(entries, [], embedder)
    assert len(idx.passages) >= 80 and idx.ann is not None
    assert isinstance(idx.faiss, faiss.IndexIVFFlat) and idx.faiss.ntotal == len(idx.passages)
    assert len(idx.ann.centroids) == len(idx.passages) // 39
    q = embedder.embed(["Which owls matter?"])
    assert idx.dense_recall(q, k=10) >= 0.5
    idx.save(tmp_path / "ix")
    back = HybridIndex.load(tmp_path / "ix", embedder)
    assert np.array_equal(back.ann.lists, idx.ann.lists) and np.allclose(back.ann.centroids, idx.ann.centroids)
    # An update keeps the centroids and assigns only the new passages.
    new = Entry("volcano.txt", "Volcanoes erupt lava. Lava cools into basalt.", {})
    grown = back.updated([new], ["tea0.txt"], embedder)
    assert np.array_equal(grown.ann.centroids, idx.ann.centroids) and grown.faiss.ntotal == len(grown.passages)
    hit = grown.search("lava basalt volcanoes", embedder.embed(["lava basalt volcanoes"])[0], k=3)[0]
    assert hit.doc == "volcano.txt" and "dense" in hit.legs
    assert all(h.doc != "tea0.txt" for h in grown.search("tea", embedder.embed(["tea"])[0], k=20))
    # A small index stays exact.
    assert HybridIndex.empty(embedder).updated(entries[:2], [], embedder).ann is None


def test_sync_reads_only_files_whose_size_or_time_changed(corpus: Path, tmp_path: Path, embedder):
    bot = Bot(corpus, index_dir=tmp_path / "ix", embedder=embedder)
    bot.sync()
    volcano = corpus / "volcano.txt"
    st = volcano.stat()
    # Same size and time as when it was read: not read again (these bytes would be an error).
    volcano.write_bytes(b"\xff" * st.st_size)
    os.utime(volcano, ns=(st.st_atime_ns, st.st_mtime_ns))
    again = Bot(corpus, index_dir=tmp_path / "ix", embedder=embedder).sync()
    assert not again.touched and not again.errors
    # A new modification time: read, and here refused as not UTF-8 (the indexed text is kept).
    os.utime(volcano, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    third = Bot(corpus, index_dir=tmp_path / "ix", embedder=embedder).sync()
    assert "volcano.txt" in third.errors and not third.removed
    # A lost or damaged stats file only means reading everything again.
    (tmp_path / "ix" / "files.json").write_text("{not json", encoding="utf-8")
    volcano.write_text("Volcanoes vent ash.", encoding="utf-8")
    fourth = Bot(corpus, index_dir=tmp_path / "ix", embedder=embedder).sync()
    assert fourth.changed == ["volcano.txt"] and not fourth.errors


def test_added_vectors_grow_in_place_without_touching_older_snapshots(embedder):
    base = HybridIndex.empty(embedder).updated([Entry("a.txt", "Alpha is first. Beta is second.", {})], [], embedder)
    one = base.updated([Entry("b.txt", "Gamma rays are light.", {})], [], embedder)
    two = one.updated([Entry("c.txt", "Delta flows into the sea.", {})], [], embedder)
    # one and two share a buffer; one still sees only its own rows.
    assert np.shares_memory(one.sentences.vecs, two.sentences.vecs)
    assert len(one.sentences.vecs) == len(one.sentences) < len(two.sentences.vecs) == len(two.sentences)
    before = one.sentences.vecs.copy()
    # Branching from one again must not overwrite two's rows: it gets its own copy.
    other = one.updated([Entry("d.txt", "Epsilon is small.", {})], [], embedder)
    assert not np.shares_memory(other.sentences.vecs, two.sentences.vecs)
    assert np.array_equal(one.sentences.vecs, before)
    q = embedder.embed(["delta sea"])[0]
    assert two.search("delta sea", q, k=1)[0].doc == "c.txt"
    assert other.search("epsilon small", embedder.embed(["epsilon small"])[0], k=1)[0].doc == "d.txt"
    assert all(h.doc != "d.txt" for h in two.search("epsilon small", embedder.embed(["epsilon small"])[0], k=5))


def test_manifest_without_parts_is_a_mismatch(tmp_path: Path, embedder):
    """An index whose manifest lacks a field this version needs is rebuilt, not a crash."""
    HybridIndex.empty(embedder).updated([Entry("a.txt", "Some text here.", {})], [], embedder).save(tmp_path / "ix")
    gen = tmp_path / "ix" / (tmp_path / "ix" / "CURRENT").read_text()
    manifest = json.loads((gen / "manifest.json").read_text())
    del manifest["parts"]
    (gen / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(IndexMismatch, match="parts"):
        HybridIndex.load(tmp_path / "ix", embedder)


def test_hybrid_hits_are_ordered_by_the_learned_rescore(corpus: Path, tmp_path: Path, embedder):
    """Each hit's score is the weighted sum of its features, recomputed here from the texts."""
    from index.store import RESCORE_FEATURES, rescore_weights
    from index.text import terms

    bot = Bot(corpus, index_dir=tmp_path / "ix", embedder=embedder)
    bot.sync()
    ix = bot.index
    q = "How wide is the crater lake of the volcano?"
    qv = embedder.embed([q])[0]
    hits = ix.search(q, qv, k=10)
    assert len(hits) >= 2
    everything = ix.search(q, qv, k=len(ix.passages))  # all of RRF's candidates
    bm25, doc_bm25 = ix.bm25.scored(q).scores, ix.doc_bm25.scored(q).scores
    top_bm25 = max(float(bm25[h.passage]) for h in everything)
    top_doc = max(float(doc_bm25[ix.doc_pos[h.doc]]) for h in everything)
    idf = {t: ix.bm25.idf(t) for t in set(terms(q))}
    doc_idf = {t: ix.doc_bm25.idf(t) for t in set(terms(q))}
    weights = dict(zip(RESCORE_FEATURES, rescore_weights()))
    for h in hits:
        rows = range(int(ix.pass_first[h.passage]), int(ix.pass_last[h.passage]) + 1)
        held = set(terms(ix.text(ix.doc_pos[h.doc], h.start, h.end)))
        doc_held = set(terms(ix.entries[ix.doc_pos[h.doc]].text))
        features = {
            "sentence_cos": max(float(ix.sentences.vecs[r] @ qv) for r in rows),
            "passage_cos": float(ix.passages.vecs[h.passage] @ qv),
            "bm25": float(bm25[h.passage]) / top_bm25,
            "coverage": sum(w for t, w in idf.items() if t in held) / sum(idf.values()),
            "doc_bm25": float(doc_bm25[ix.doc_pos[h.doc]]) / top_doc,
            "doc_coverage": sum(w for t, w in doc_idf.items() if t in doc_held) / sum(doc_idf.values()),
            "sentences": len(rows),
        }
        assert h.score == pytest.approx(sum(weights[f] * v for f, v in features.items()), abs=1e-4)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    # One leg alone keeps that leg's own order (the --compare ablations).
    only_bm25 = ix.search(q, qv, k=5, legs=("bm25",))
    assert [h.passage for h in only_bm25] == [p for p, _ in ix.bm25.search(q, 5)]


def test_a_document_of_too_many_sentences_is_refused_before_embedding(corpus: Path, tmp_path: Path, counting):
    """300 KB of one-letter lines is 100,001 sentences to embed: the file is refused by name,
    nothing of it embedded, and the other files are indexed; it is refused again on the next
    sync, until it is fixed."""
    from index.build import MAX_SENTENCES

    (corpus / "lines.md").write_bytes(b"a\n\n" * (MAX_SENTENCES + 1))
    (corpus / "more.md").write_bytes(b"b\n\n" * (MAX_SENTENCES + 2))
    bot = Bot(corpus, index_dir=tmp_path / "ix", embedder=counting)
    updates = []
    real_update = bot.retriever.update
    bot.retriever.update = lambda *args, **kw: updates.append(1) or real_update(*args, **kw)
    report = bot.sync()
    assert report.errors["more.md"].startswith(f"more.md: {MAX_SENTENCES + 2} sentences")
    assert len(updates) == 2  # both found by the first try, indexed without them by the second
    del bot.retriever.update
    assert sorted(report.added) == ["lighthouse.md", "notes/bees.txt", "volcano.txt"]
    assert report.errors["lines.md"] == f"lines.md: {MAX_SENTENCES + 1} sentences; the limit is {MAX_SENTENCES} a document: split it into smaller files"
    assert counting.count == len(bot.index.sentences) < 100  # the refused file's sentences were never embedded
    again = bot.sync()
    assert "lines.md" in again.errors and not again.touched
    (corpus / "lines.md").write_bytes(b"a\n\n" * 3)
    (corpus / "more.md").unlink()
    assert bot.sync().added == ["lines.md"]
    assert "lines.md" in bot.index.doc_ids


def test_a_refused_file_is_not_segmented_again_until_it_changes(corpus: Path, tmp_path: Path, embedder):
    """Refusing 5 MB of sentences takes 20 s of segmenting: while the file keeps its size and
    time the refusal is repeated from the record, not from reading it (these bytes would be
    another error); a new time, or --reread, reads it again."""
    from index.build import MAX_SENTENCES

    lines = corpus / "lines.md"
    lines.write_bytes(b"a\n\n" * (MAX_SENTENCES + 1))
    refused = f"lines.md: {MAX_SENTENCES + 1} sentences; the limit is {MAX_SENTENCES} a document: split it into smaller files"
    assert Bot(corpus, index_dir=tmp_path / "ix", embedder=embedder).sync().errors == {"lines.md": refused}
    st = lines.stat()
    lines.write_bytes(b"\xff" * st.st_size)
    os.utime(lines, ns=(st.st_atime_ns, st.st_mtime_ns))
    again = Bot(corpus, index_dir=tmp_path / "ix", embedder=embedder).sync()
    assert again.errors == {"lines.md": refused} and not again.touched
    reread = Bot(corpus, index_dir=tmp_path / "ix", embedder=embedder).sync(reread=True)
    assert "not valid UTF-8" in reread.errors["lines.md"]
    lines.write_text("Lines are fixed now.", encoding="utf-8")
    assert Bot(corpus, index_dir=tmp_path / "ix", embedder=embedder).sync().added == ["lines.md"]
