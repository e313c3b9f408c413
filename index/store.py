"""The hybrid index: segmented texts, BM25 over passages, MiniLM vectors in faiss, on disk.

The index knows texts by id and nothing of what they mean. On disk it is a folder holding
generation subfolders and a ``CURRENT`` file naming the complete one; a new generation is
written beside the old and ``CURRENT`` is swapped atomically, so a reader or a crash never
sees half an index.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from .bm25 import PARAMS as BM25_PARAMS
from .bm25 import BM25Index, Scored, Terms
from .embedder import Embedder
from .fusion import Fused, rrf
from .segment import make_passages, split_sentences
from .text import TERMS_VERSION

SCHEMA_VERSION = 2
# Passages of four sentences overlapping by one. On eval.train's 3,570 calibration questions
# (outside the report sample), with the passage score refit on its ranker set for each size, the
# answer's passage was in the search's top 5 for 0.953 with three sentences, 0.957 with four and
# 0.958 with five (the peers index whole SQuAD paragraphs, about five sentences).
PASSAGE_SIZE = 4
PASSAGE_STRIDE = 3
# Each leg is over-fetched before fusion so RRF sees items one leg ranks low.
OVERFETCH = 4
LEGS = ("bm25", "dense", "doc")
DOC_FETCH = 10
# RRF's k: 20 rather than the customary 60 put the answer's passage in the top 5 more often on
# SQuAD training questions (outside the reported sample): 0.930 against 0.925, and first
# 0.750 against 0.746 (800 questions).
RRF_K = 20
# RRF picks the hybrid search's candidates; a linear score over these features of each then
# orders them (weights: RESCORE_FILE, learned by `python -m eval.train_retrieval`). Fusing
# scores rather than ranks keeps how far ahead a leg's first hit is, and none of the features
# needs a leg's rank, so the Milvus backend's candidates are ordered the same way.
RESCORE_FEATURES = (
    "sentence_cos",  # cosine of the passage's best sentence
    "passage_cos",   # cosine of the passage vector (its sentences' mean)
    "bm25",          # passage BM25 / the best candidate's
    "coverage",      # share of the query's IDF mass the passage holds
    "doc_bm25",      # BM25 of the passage's whole document / the best candidate document's
    "doc_coverage",  # share of the query's IDF mass the document holds
    "sentences",     # the passage's sentence count (a document's last passage may be short)
)
RESCORE_FILE = Path(__file__).with_name("rescore.json")
# Words a follow-up carries from earlier turns count this much of a question word's IDF, in the
# lexical legs and in the answerer's features: they locate the topic but are not what the new
# question asks.
CONTEXT_WEIGHT = 0.3
# A save that would leave more parts than this rewrites the index as one part.
MAX_PARTS = 16
# From this many passages on, the dense leg searches inverted lists (faiss IVF, see Ann).
ANN_MIN_PASSAGES = 50_000
ANN_MAX_LISTS = 2048
ANN_NPROBE = 128


class IndexStoreError(RuntimeError):
    """Base for index problems."""


class IndexMismatch(IndexStoreError):
    """The index on disk was built with other settings (schema, model, parameters)."""


class IndexMissing(IndexStoreError):
    """No index exists at the given folder."""


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class Entry:
    """A text to index: its id, full text and opaque metadata carried through."""

    id: str
    text: str
    meta: dict[str, Any]
    # Of the text: computed once, or given when already known (the manifest records it).
    sha256: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if not self.sha256:
            object.__setattr__(self, "sha256", content_hash(self.text))


@dataclass(frozen=True, slots=True)
class Hit:
    """A retrieved passage: fused score and the 1-based rank each leg gave it."""

    passage: int
    doc: str
    start: int
    end: int
    score: float
    legs: dict[str, int]


class _Table:
    """Column arrays for one kind of span (sentences or passages) plus their vectors.

    ``vecs`` may be the first rows of a larger buffer (``_VectorBuffer``) that later snapshots
    append to in place.
    """

    __slots__ = ("doc", "start", "end", "vecs", "buffer")

    def __init__(
        self, doc: np.ndarray, start: np.ndarray, end: np.ndarray, vecs: np.ndarray, buffer: "_VectorBuffer | None" = None,
    ) -> None:
        self.doc, self.start, self.end, self.vecs, self.buffer = doc, start, end, vecs, buffer

    def __len__(self) -> int:
        return len(self.doc)


class _VectorBuffer:
    """Vectors with room to grow, shared by successive snapshots.

    A snapshot sees ``rows[:n]``; appending writes past the last row any snapshot has written
    and returns a longer view, so adding a document to a large index copies only its own
    vectors (copying 450 MB of vectors into new memory took 0.6-1.7 s a time on these
    machines). Only the snapshot that wrote last may append in place; any other (an update
    derived from an older snapshot, or after a failed one) gets a fresh copy.
    """

    def __init__(self, rows: np.ndarray, filled: int) -> None:
        self.rows, self.filled = rows, filled

    @staticmethod
    def extend(t: "_Table", new: np.ndarray) -> tuple[np.ndarray, "_VectorBuffer"]:
        n, k = len(t.vecs), len(new)
        buf = t.buffer
        if buf is None or buf.filled != n or len(buf.rows) < n + k:
            rows = np.empty((max(int((n + k) * 1.25), n + k + 1024), new.shape[1]), dtype=np.float32)
            rows[:n] = t.vecs
            buf = _VectorBuffer(rows, n)
        buf.rows[n:n + k] = new
        buf.filled = n + k
        return buf.rows[:n + k], buf


def _params(embedder: Embedder) -> dict[str, Any]:
    return {
        "schema": SCHEMA_VERSION,
        "model": embedder.name,
        "model_sha256": embedder.sha256,
        "embedding": embedder.variant,
        "dim": embedder.dim,
        "bm25": BM25_PARAMS,
        "terms": TERMS_VERSION,
        "passage_size": PASSAGE_SIZE,
        "passage_stride": PASSAGE_STRIDE,
        "passage_vectors": "mean-of-sentences",
    }


class HybridIndex:
    """An immutable snapshot of the hybrid index; updates return a new snapshot.

    Rows: ``sentences`` and ``passages`` are grouped by document (in ``entries`` order) then
    position; passage ``first/last`` hold global sentence rows, so neighbours of a sentence
    are adjacent rows of the same document. An update keeps the unchanged documents' rows in
    their order and appends the new ones, so it copies arrays rather than re-walking them.
    """

    def __init__(
        self,
        entries: list[Entry],
        sentences: _Table,
        passages: _Table,
        pass_first: np.ndarray,
        pass_last: np.ndarray,
        params: dict[str, Any],
        bm25: tuple[BM25Index, BM25Index],
        ann: Ann | None = None,
    ) -> None:
        """``bm25``: BM25 over the passages and over whole documents (one vocabulary).
        ``ann``: the inverted lists of the passage vectors, for large indexes (see :class:`Ann`)."""
        import faiss

        self.entries = entries
        self.doc_ids = [e.id for e in entries]
        self.doc_pos = {d: i for i, d in enumerate(self.doc_ids)}
        self.sentences = sentences
        self.passages = passages
        self.pass_first = pass_first
        self.pass_last = pass_last
        self.params = params
        # Whole-document BM25 (doc_bm25): a passage whose document is about the question
        # ranks higher even when the question's words are spread over several windows.
        self.bm25, self.doc_bm25 = bm25
        self.ann = ann
        if ann is not None:
            self.faiss = ann.index(passages.vecs)
        else:
            self.faiss = faiss.IndexFlatIP(params["dim"])
            if len(passages):
                self.faiss.add(passages.vecs)
        # Where the leading documents are already on disk: (index folder, [(part, documents)]).
        self.saved: tuple[Path, list[tuple[str, int]]] | None = None
        # Rows of each document: [first, end).
        self.s_bounds = np.searchsorted(sentences.doc, np.arange(len(entries) + 1)).astype(np.int64)
        self.p_bounds = np.searchsorted(passages.doc, np.arange(len(entries) + 1)).astype(np.int64)

    def doc_sentences(self, doc_row: int) -> tuple[int, int]:
        """Sentence rows ``[first, end)`` of a document."""
        return int(self.s_bounds[doc_row]), int(self.s_bounds[doc_row + 1])

    # ----- construction -------------------------------------------------------------
    @classmethod
    def empty(cls, embedder: Embedder) -> "HybridIndex":
        params = _params(embedder)
        z = np.zeros(0, dtype=np.int32)
        t = lambda: _Table(z, z, z, np.zeros((0, params["dim"]), dtype=np.float32))  # noqa: E731
        vocab: dict[str, int] = {}
        bm25 = _bm25_params(params)
        return cls([], t(), t(), z, z, params, (BM25Index(Terms.empty(), vocab, **bm25), BM25Index(Terms.empty(), vocab, **bm25)))

    def updated(
        self,
        upserts: Iterable[Entry],
        removals: Iterable[str],
        embedder: Embedder,
        progress: Callable[[int, int], None] | None = None,
    ) -> "HybridIndex":
        """A new snapshot with ``upserts`` added or replaced and ``removals`` dropped.

        Only new and changed texts are segmented, tokenised and embedded; the rows, terms and
        vectors of the others are reused. ``progress(done, total)`` is called as sentences
        are embedded.
        """
        new = sorted(upserts, key=lambda e: e.id)
        drop = set(removals) | {e.id for e in new}
        # The kept documents' rows stay in their order; the new documents' are appended.
        kept = [i for i, e in enumerate(self.entries) if e.id not in drop]
        old, params = self, self.params
        vocab = dict(old.bm25.vocab)
        fresh = _Segmented(new, params["dim"], embedder, vocab, progress)
        keep = np.asarray(kept, dtype=np.int64)
        n_old = len(keep)
        s_rows = _ranges(old.s_bounds[keep], np.diff(old.s_bounds)[keep])
        p_rows = _ranges(old.p_bounds[keep], np.diff(old.p_bounds)[keep])
        # Old document rows renumbered 0..n_old-1; new ones follow.
        renumber = np.full(len(old.entries), -1, dtype=np.int64)
        renumber[keep] = np.arange(n_old)
        s_base = len(s_rows)
        # Where each kept old sentence row lands, to re-point passages' first/last.
        s_new_row = np.full(len(old.sentences), -1, dtype=np.int64)
        s_new_row[s_rows] = np.arange(s_base)
        i32 = lambda xs: np.asarray(xs, dtype=np.int32)  # noqa: E731
        cat = np.concatenate

        def table(t: _Table, rows: np.ndarray, f: _Table) -> _Table:
            cols = [i32(cat([renumber[t.doc[rows]], f.doc + n_old])), i32(cat([t.start[rows], f.start])), i32(cat([t.end[rows], f.end]))]
            if len(rows) == len(t):  # only added: the vectors grow in place
                return _Table(*cols, *_VectorBuffer.extend(t, f.vecs))
            return _Table(*cols, np.ascontiguousarray(cat([t.vecs[rows], f.vecs]), dtype=np.float32))

        sentences = table(old.sentences, s_rows, fresh.sentences)
        passages = table(old.passages, p_rows, fresh.passages)
        pass_first = i32(cat([s_new_row[old.pass_first[p_rows]], fresh.first + s_base]))
        pass_last = i32(cat([s_new_row[old.pass_last[p_rows]], fresh.last + s_base]))
        bm25 = (old.bm25.updated(p_rows, fresh.passage_terms, vocab), old.doc_bm25.updated(keep, fresh.doc_terms, vocab))
        entries = [old.entries[i] for i in kept] + new
        out = HybridIndex(entries, sentences, passages, pass_first, pass_last, params, bm25, Ann.for_update(old.ann, p_rows, passages.vecs))
        if n_old == len(old.entries):  # only appended: the old parts on disk still hold the first documents
            out.saved = old.saved
        return out

    # ----- queries ------------------------------------------------------------------
    def text(self, doc_row: int, start: int, end: int) -> str:
        return self.entries[doc_row].text[start:end]

    def sentence_text(self, row: int) -> str:
        """The text of sentence ``row``."""
        s = self.sentences
        return self.entries[int(s.doc[row])].text[int(s.start[row]):int(s.end[row])]

    def sentence_at(self, doc: str, start: int) -> int | None:
        """The row of the sentence of document ``doc`` that starts at character ``start`` (as a
        citation gives it), None when the document or that sentence is gone."""
        if doc not in self.doc_pos:
            return None
        first, end = self.doc_sentences(self.doc_pos[doc])
        row = first + int(np.searchsorted(self.sentences.start[first:end], start))
        return row if row < end and int(self.sentences.start[row]) == start else None

    def sentence_before(self, row: int) -> str:
        """The text of the sentence before ``row`` in its document ("" for a document's first)."""
        s = self.sentences
        return self.sentence_text(row - 1) if row > 0 and s.doc[row - 1] == s.doc[row] else ""

    def _doc_rows(self, docs: Iterable[str] | None) -> np.ndarray | None:
        """Rows of the known documents among ``docs`` (ids); None means all."""
        if docs is None:
            return None
        return np.asarray([self.doc_pos[d] for d in docs if d in self.doc_pos], dtype=np.int32)

    def lexical(self, query: str, context: str = "") -> tuple[Scored, Scored]:
        """BM25 of ``query`` over the passages and over whole documents (``context``: words a
        follow-up carries, counted :data:`CONTEXT_WEIGHT` of a question word)."""
        return self.bm25.scored(query, context, CONTEXT_WEIGHT), self.doc_bm25.scored(query, context, CONTEXT_WEIGHT)

    def search(
        self, query: str, qvec: np.ndarray, k: int = 10, docs: Iterable[str] | None = None,
        legs: tuple[str, ...] = LEGS, context: str = "", exclude: Iterable[str] = (),
    ) -> list[Hit]:
        """Hybrid search: each leg over-fetched, fused by RRF, re-scored; best ``k`` first.

        Legs: ``bm25`` (passages), ``dense`` (passage vectors in faiss) and ``doc`` (passages
        of the best BM25 documents, each document's passages in their BM25 order). ``legs``
        picks a subset (for ablations); with both ``bm25`` and ``dense`` the candidates are
        re-scored (:meth:`rescore`). ``context``: words a follow-up carries from earlier
        turns; the lexical legs count them :data:`CONTEXT_WEIGHT` of a question word.
        ``exclude``: document ids left out (of ``docs``, or of all).
        """
        fused, lexical = self.candidates(query, qvec, k, docs, legs, context, exclude)
        if lexical is not None and "bm25" in legs and "dense" in legs:
            fused = self.rescore(lexical, qvec, fused)
        return self.hits(fused[:k])

    def candidates(
        self, query: str, qvec: np.ndarray, k: int = 10, docs: Iterable[str] | None = None,
        legs: tuple[str, ...] = LEGS, context: str = "", exclude: Iterable[str] = (),
    ) -> tuple[list[Fused], tuple[Scored, Scored] | None]:
        """The legs' passages fused by RRF, best first, and the query's BM25 (None when no
        lexical leg ran); :meth:`search` before re-scoring."""
        n = len(self.passages)
        if n == 0:
            return [], None
        doc_rows = self._doc_rows(docs)
        left_out = self._doc_rows(exclude)
        if left_out is not None and len(left_out):
            every = np.arange(len(self.entries), dtype=np.int32) if doc_rows is None else doc_rows
            doc_rows = every[~np.isin(every, left_out)]
        allowed = None if doc_rows is None else np.isin(self.passages.doc, doc_rows)
        fetch = min(n, max(k * OVERFETCH, 40))
        ranked = {}
        lexical = self.lexical(query, context) if {"bm25", "doc"} & set(legs) else None
        sparse = lexical[0].top(fetch, allowed) if lexical is not None else []
        if "bm25" in legs:
            ranked["bm25"] = [i for i, _ in sparse]
        if "dense" in legs:
            ranked["dense"] = self._dense(qvec, fetch, allowed)
        if "doc" in legs and lexical is not None:
            ranked["doc"] = self._by_document(lexical[1], dict(sparse), fetch, doc_rows)
        return rrf(ranked, k=RRF_K), lexical

    def hits(self, fused: Iterable[Fused]) -> list[Hit]:
        """Fused passage rows as :class:`Hit` s (document id, offsets, score, legs' ranks)."""
        ps = self.passages
        return [Hit(f.id, self.doc_ids[int(ps.doc[f.id])], int(ps.start[f.id]), int(ps.end[f.id]), f.score, f.ranks) for f in fused]

    def _by_document(self, doc_scored: Scored, passage_scores: dict[int, float], fetch: int, doc_rows: np.ndarray | None) -> list[int]:
        allowed = None
        if doc_rows is not None:
            allowed = np.zeros(len(self.entries), dtype=bool)
            allowed[doc_rows] = True
        out: list[int] = []
        for d, _ in doc_scored.top(DOC_FETCH, allowed):
            a, b = int(self.p_bounds[d]), int(self.p_bounds[d + 1])
            out += sorted(range(a, b), key=lambda p: -passage_scores.get(p, 0.0))
            if len(out) >= fetch:
                break
        return out[:fetch]

    def _dense(self, qvec: np.ndarray, fetch: int, allowed: np.ndarray | None) -> list[int]:
        """Passages by the cosine of their vector plus that of their best sentence.

        A passage vector is the mean of its sentences' (see :func:`_passage_vectors`), which
        blurs a single matching sentence; re-scoring twice ``fetch`` candidates with their best
        sentence restored passage_recall@5 on the SQuAD standard run (0.919 -> 0.930, the
        figure of separately embedded passages) for a few hundred dot products a question.
        """
        q = np.ascontiguousarray(qvec.reshape(1, -1), dtype=np.float32)
        pool = fetch * 2
        if allowed is None:
            scores, ids = self.faiss.search(q, pool)
            keep = ids[0] >= 0
            cands, pcos = ids[0][keep].astype(np.int64), scores[0][keep]
        else:
            rows = np.nonzero(allowed)[0]
            if len(rows) == 0:
                return []
            all_cos = self.passages.vecs[rows] @ q[0]
            top = np.argsort(-all_cos, kind="stable")[:pool]
            cands, pcos = rows[top], all_cos[top]
        if len(cands) == 0:
            return []
        order = np.argsort(-(pcos + self._best_sentence_cos(cands, q[0])), kind="stable")[:fetch]
        return cands[order].tolist()

    def _best_sentence_cos(self, passages: np.ndarray, qvec: np.ndarray) -> np.ndarray:
        """The cosine of each passage's best-matching sentence."""
        first = self.pass_first[passages].astype(np.int64)
        sizes = self.pass_last[passages].astype(np.int64) - first + 1
        scos = self.sentences.vecs[_ranges(first, sizes)] @ qvec.astype(np.float32).reshape(-1)
        return np.maximum.reduceat(scos, np.cumsum(sizes) - sizes)

    def rescore_features(self, lexical: tuple[Scored, Scored], qvec: np.ndarray, ids: np.ndarray) -> np.ndarray:
        """The :data:`RESCORE_FEATURES` of the candidate passages ``ids`` (one row each)."""
        passages, documents = lexical
        ids = np.asarray(ids, dtype=np.int64)
        doc = self.passages.doc[ids].astype(np.int64)
        out = np.zeros((len(ids), len(RESCORE_FEATURES)))
        if not len(ids):
            return out
        bm25, doc_bm25 = passages.scores[ids], documents.scores[doc]
        out[:, 0] = self._best_sentence_cos(ids, qvec)
        out[:, 1] = self.passages.vecs[ids] @ qvec
        out[:, 2] = bm25 / max(float(bm25.max()), 1e-9)
        out[:, 3] = passages.coverage(ids)
        out[:, 4] = doc_bm25 / max(float(doc_bm25.max()), 1e-9)
        out[:, 5] = documents.coverage(doc)
        out[:, 6] = self.pass_last[ids].astype(np.int64) - self.pass_first[ids] + 1
        return out

    def rescore(self, lexical: tuple[Scored, Scored], qvec: np.ndarray, fused: list[Fused]) -> list[Fused]:
        """Order RRF's candidates by the learned linear score of their features (see
        :data:`RESCORE_FEATURES`); each candidate's ``score`` becomes that score."""
        if not fused:
            return fused
        ids = np.fromiter((f.id for f in fused), dtype=np.int64, count=len(fused))
        scores = self.rescore_features(lexical, qvec, ids) @ rescore_weights()
        for f, sc in zip(fused, scores):
            f.score = float(sc)
        return [fused[i] for i in np.argsort(-scores, kind="stable")]

    def dense_recall(self, qvecs: np.ndarray, k: int = 10) -> float | None:
        """Share of the exact top ``k`` passages (by vector) that the dense index returns;
        None when the index is exact."""
        if self.ann is None or not len(qvecs):
            return None
        q = np.ascontiguousarray(qvecs, dtype=np.float32)
        _, approx = self.faiss.search(q, k)
        exact = np.argpartition(-(q @ self.passages.vecs.T), k - 1, axis=1)[:, :k]
        return float(np.mean([len(set(a) & set(e)) / k for a, e in zip(approx.tolist(), exact.tolist())]))

    # ----- persistence --------------------------------------------------------------
    def save(self, folder: str | os.PathLike[str]) -> None:
        """Write a new generation under ``folder`` and switch ``CURRENT`` to it atomically.

        The documents' texts and vectors are stored in parts: a generation folder holds one
        part (the documents appended since the last save, or all of them) and names the
        earlier generations whose parts it reuses, so adding a document to a large index
        writes only that document's vectors. Spans, terms and the manifest are written whole.
        """
        folder = Path(folder).resolve()
        folder.mkdir(parents=True, exist_ok=True)
        gen = Path(tempfile.mkdtemp(prefix="gen-", dir=folder))
        parts: list[tuple[str, int]] = []
        if self.saved is not None and self.saved[0] == folder and len(self.saved[1]) < MAX_PARTS:
            parts = [p for p in self.saved[1] if (folder / p[0]).is_dir()]
            if len(parts) < len(self.saved[1]):
                parts = []
        done = sum(n for _, n in parts)
        self._write_part(gen, done)
        parts.append((gen.name, len(self.entries) - done))
        manifest = dict(self.params)
        manifest["documents"] = {e.id: e.sha256 for e in self.entries}
        manifest["counts"] = {"documents": len(self.entries), "sentences": len(self.sentences), "passages": len(self.passages)}
        manifest["parts"] = parts
        np.savez(
            gen / "spans.npz",
            s_doc=self.sentences.doc, s_start=self.sentences.start, s_end=self.sentences.end,
            p_doc=self.passages.doc, p_start=self.passages.start, p_end=self.passages.end,
            p_first=self.pass_first, p_last=self.pass_last,
            **({"ann_lists": self.ann.lists} if self.ann is not None else {}),
            **_terms_arrays("p", self.bm25.rows), **_terms_arrays("d", self.doc_bm25.rows),
        )
        if self.ann is not None:
            np.save(gen / "ann_centroids.npy", self.ann.centroids)
        vocab = sorted(self.bm25.vocab, key=self.bm25.vocab.__getitem__)
        (gen / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
        (gen / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True), encoding="utf-8")
        for p in gen.iterdir():
            _fsync(p)
        _fsync(gen)
        tmp = folder / f"CURRENT.{os.getpid()}.tmp"
        tmp.write_text(gen.name, encoding="utf-8")
        _fsync(tmp)
        os.replace(tmp, folder / "CURRENT")
        _fsync(folder)
        self.saved = (folder, parts)
        live = {name for name, _ in parts}
        for old in folder.glob("gen-*"):
            if old.name not in live:
                shutil.rmtree(old, ignore_errors=True)

    def _write_part(self, gen: Path, first_doc: int) -> None:
        """Texts and vectors of documents ``first_doc..`` (their rows are contiguous)."""
        s0, p0 = int(self.s_bounds[first_doc]), int(self.p_bounds[first_doc])
        with (gen / "docs.jsonl").open("w", encoding="utf-8") as f:
            for e in self.entries[first_doc:]:
                f.write(json.dumps({"id": e.id, "text": e.text, "meta": e.meta}, ensure_ascii=False) + "\n")
        np.save(gen / "sentence_vecs.npy", self.sentences.vecs[s0:])
        np.save(gen / "passage_vecs.npy", self.passages.vecs[p0:])

    @staticmethod
    def read_manifest(folder: str | os.PathLike[str]) -> dict[str, Any]:
        gen = _current(Path(folder))
        return json.loads((gen / "manifest.json").read_text(encoding="utf-8"))

    @classmethod
    def load(cls, folder: str | os.PathLike[str], embedder: Embedder) -> "HybridIndex":
        """Open the current generation; raise :class:`IndexMismatch` if built differently."""
        gen = _current(Path(folder))
        manifest = json.loads((gen / "manifest.json").read_text(encoding="utf-8"))
        expected = _params(embedder)
        diffs = [f"{k}: index has {manifest.get(k)!r}, now {v!r}" for k, v in expected.items() if manifest.get(k) != v]
        if diffs:
            raise IndexMismatch(f"index at {folder} was built with other settings ({'; '.join(diffs)}); rebuild it with `qa index`")
        missing = [k for k in ("parts", "documents") if k not in manifest]
        if missing:
            raise IndexMismatch(f"index at {folder} lacks {', '.join(missing)} in its manifest (written by a development build); rebuild it with `qa index`")
        entries: list[Entry] = []
        s_vecs, p_vecs = [], []
        parts, hashes = manifest["parts"], manifest["documents"]
        for name, _ in parts:
            part = Path(folder) / name
            with (part / "docs.jsonl").open(encoding="utf-8") as f:
                for line in f:
                    d = json.loads(line)
                    entries.append(Entry(d["id"], d["text"], d["meta"], hashes[d["id"]]))
            # Mapped, not read: the answerer touches a few sentence vectors a question, and an
            # update copies what it keeps (a removed generation's file stays readable while mapped).
            s_vecs.append(np.load(part / "sentence_vecs.npy", mmap_mode="r"))
            p_vecs.append(np.load(part / "passage_vecs.npy", mmap_mode="r"))
        params = {k: manifest[k] for k in expected}
        z = np.load(gen / "spans.npz")
        sentences = _Table(z["s_doc"], z["s_start"], z["s_end"], _stack(s_vecs, params["dim"]))
        passages = _Table(z["p_doc"], z["p_start"], z["p_end"], _stack(p_vecs, params["dim"]))
        vocab = {t: i for i, t in enumerate(json.loads((gen / "vocab.json").read_text(encoding="utf-8")))}
        bm25 = tuple(BM25Index(Terms(z[f"{k}_indptr"], z[f"{k}_ids"], z[f"{k}_counts"]), vocab, **_bm25_params(params)) for k in "pd")
        ann = None
        if "ann_lists" in z:
            ann = Ann(np.load(gen / "ann_centroids.npy"), z["ann_lists"])
        out = cls(entries, sentences, passages, z["p_first"], z["p_last"], params, bm25, ann)
        out.saved = (Path(folder).resolve(), [(name, n) for name, n in parts])
        return out


def _stack(parts: list[np.ndarray], dim: int) -> np.ndarray:
    return np.concatenate(parts) if len(parts) > 1 else parts[0] if parts else np.zeros((0, dim), dtype=np.float32)


def _bm25_params(params: dict[str, Any]) -> dict[str, float]:
    return {k: v for k, v in params["bm25"].items() if k != "variant"}


def _terms_arrays(prefix: str, t: Terms) -> dict[str, np.ndarray]:
    return {f"{prefix}_indptr": t.indptr, f"{prefix}_ids": t.ids, f"{prefix}_counts": t.counts}


def _current(folder: Path) -> Path:
    try:
        name = (folder / "CURRENT").read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise IndexMissing(f"no index at {folder}: build one with `qa index`") from None
    gen = folder / name
    if not (gen / "manifest.json").is_file():
        raise IndexMissing(f"index at {folder} names generation {name!r}, which is missing: rebuild with `qa index`")
    return gen


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Ann:
    """Inverted lists over the passage vectors: the dense leg's index above ANN_MIN_PASSAGES.

    A flat index compares the question with every passage vector; at 96k passages that is
    150 MB read per question (25 ms here). faiss's IVF compares it with ``nlist`` centroids and
    scans the ``ANN_NPROBE`` nearest lists only: 0.9 ms, finding 97.5% of the exact top 10
    (1,239 lists, 200 SQuAD questions; nprobe 32 / 64 gave 87% / 94%). The centroids are trained once, when the index first
    grows past the threshold, and kept; each passage's list is kept with it, so an update
    assigns only the new passages and opening an index assigns nothing.
    """

    def __init__(self, centroids: np.ndarray, lists: np.ndarray) -> None:
        self.centroids = np.ascontiguousarray(centroids, dtype=np.float32)
        self.lists = np.asarray(lists, dtype=np.int64)

    @classmethod
    def for_update(cls, old: "Ann | None", kept_rows: np.ndarray, vecs: np.ndarray) -> "Ann | None":
        """The lists for ``vecs``: the first ``len(kept_rows)`` are old rows, the rest new."""
        if old is None:
            return cls.train(vecs) if len(vecs) >= ANN_MIN_PASSAGES else None
        new = vecs[len(kept_rows):]
        return cls(old.centroids, np.concatenate([old.lists[kept_rows], old.assign(new)]))

    @classmethod
    def train(cls, vecs: np.ndarray) -> "Ann":
        import faiss

        # About 4 sqrt(n) lists, with at least 39 training points each (faiss's minimum).
        nlist = max(1, min(ANN_MAX_LISTS, int(4 * np.sqrt(len(vecs))), len(vecs) // 39))
        kmeans = faiss.Kmeans(vecs.shape[1], nlist, niter=10, spherical=True, seed=1, max_points_per_centroid=40)
        kmeans.train(vecs)
        ann = cls(kmeans.centroids, np.zeros(0, dtype=np.int64))
        ann.lists = ann.assign(vecs)
        return ann

    def assign(self, vecs: np.ndarray) -> np.ndarray:
        if not len(vecs):
            return np.zeros(0, dtype=np.int64)
        return self._quantizer().search(np.ascontiguousarray(vecs, dtype=np.float32), 1)[1][:, 0].astype(np.int64)

    def _quantizer(self) -> Any:
        import faiss

        q = faiss.IndexFlatIP(self.centroids.shape[1])
        q.add(self.centroids)
        return q

    def index(self, vecs: np.ndarray) -> Any:
        import faiss
        from faiss.contrib.ivf_tools import add_preassigned

        dim, nlist = self.centroids.shape[1], len(self.centroids)
        ivf = faiss.index_factory(dim, f"IVF{nlist},Flat", faiss.METRIC_INNER_PRODUCT)  # owns its quantizer
        ivf.quantizer.add(self.centroids)
        ivf.is_trained = True
        ivf.nprobe = min(ANN_NPROBE, len(self.centroids))
        if len(vecs):
            add_preassigned(ivf, np.ascontiguousarray(vecs, dtype=np.float32), self.lists)
        return ivf


@functools.cache
def rescore_weights(path: Path = RESCORE_FILE) -> np.ndarray:
    """The re-scoring weights, in :data:`RESCORE_FEATURES` order (read once)."""
    data = json.loads(path.read_text(encoding="utf-8"))["weights"]
    missing = [f for f in RESCORE_FEATURES if f not in data]
    if missing:
        raise ValueError(f"{path}: no weight for {missing}; retrain with `python -m eval.train_retrieval`")
    return np.array([float(data[f]) for f in RESCORE_FEATURES])


def _ranges(starts: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """``concat(arange(start, start + size))`` over the pairs, without a Python loop."""
    starts, sizes = np.asarray(starts, dtype=np.int64), np.asarray(sizes, dtype=np.int64)
    offsets = np.cumsum(sizes) - sizes
    return np.repeat(starts - offsets, sizes) + np.arange(int(sizes.sum()), dtype=np.int64)


def _passage_vectors(sentence_vecs: np.ndarray, first: np.ndarray, last: np.ndarray) -> np.ndarray:
    """A passage's vector: the normalised mean of its sentences' vectors (rows first..last).

    Embedding each passage as well as its sentences would run the model over every sentence
    2.3 times (passages of four sentences overlap by one); the mean costs nothing. On the SQuAD
    standard run, with passages of three sentences, it changed sentence_accuracy by -0.2 point
    and passage_recall@5 by -0.9 (0.750 -> 0.748, 0.930 -> 0.921; float32 vectors), for 2.5x
    the indexing rate.
    """
    out = np.zeros((len(first), sentence_vecs.shape[1]), dtype=np.float32)
    for j in range(int((last - first).max(initial=-1)) + 1):
        rows = first + j
        inside = rows <= last
        out[inside] += sentence_vecs[rows[inside]]
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


class _Segmented:
    """New texts segmented, tokenised and embedded: their rows, numbered from 0, to append."""

    def __init__(
        self, entries: list[Entry], dim: int, embedder: Embedder, vocab: dict[str, int],
        progress: Callable[[int, int], None] | None,
    ) -> None:
        cols: dict[str, list[int]] = {k: [] for k in ("s_doc", "s_start", "s_end", "p_doc", "p_start", "p_end", "first", "last")}
        texts: list[str] = []
        p_texts: list[str] = []
        for di, entry in enumerate(entries):
            sents = split_sentences(entry.text)
            base = len(cols["s_doc"])
            for sp in sents:
                cols["s_doc"].append(di), cols["s_start"].append(sp.start), cols["s_end"].append(sp.end)
                texts.append(entry.text[sp.start:sp.end])
            for p in make_passages(sents, PASSAGE_SIZE, PASSAGE_STRIDE):
                cols["p_doc"].append(di), cols["p_start"].append(p.start), cols["p_end"].append(p.end)
                cols["first"].append(base + p.first), cols["last"].append(base + p.last)
                p_texts.append(entry.text[p.start:p.end])
        c = {k: np.asarray(v, dtype=np.int32) for k, v in cols.items()}
        vecs = _embed_batched(embedder, texts, progress) if texts else np.zeros((0, dim), dtype=np.float32)
        self.sentences = _Table(c["s_doc"], c["s_start"], c["s_end"], vecs)
        self.passages = _Table(c["p_doc"], c["p_start"], c["p_end"], _passage_vectors(vecs, c["first"], c["last"]))
        self.first, self.last = c["first"], c["last"]
        self.passage_terms = Terms.from_texts(p_texts, vocab)
        self.doc_terms = Terms.from_texts([e.text for e in entries], vocab)


def _embed_batched(embedder: Embedder, texts: list[str], progress: Callable[[int, int], None] | None, chunk: int = 256) -> np.ndarray:
    # Longest first within the call keeps padding low; order is restored after.
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    out = np.zeros((len(texts), embedder.dim), dtype=np.float32)
    done = 0
    if progress:
        progress(0, len(texts))
    for a in range(0, len(order), chunk):
        idx = order[a:a + chunk]
        out[idx] = embedder.embed([texts[i] for i in idx])
        done += len(idx)
        if progress:
            progress(done, len(texts))
    return out
