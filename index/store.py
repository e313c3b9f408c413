"""The hybrid index: segmented texts, BM25 over passages, MiniLM vectors in faiss.

The index knows texts by id and nothing of what they mean. :class:`HybridIndex` is an immutable
snapshot: built and updated here, searched here (BM25, dense and whole-document legs fused by
RRF). The rest lives by job: value types in :mod:`index.records`, segmenting and embedding new
texts in :mod:`index.build`, the learned re-scoring in :mod:`index.rescore`, the folder on disk
in :mod:`index.persist`, the inverted lists of large indexes in :mod:`index.ann`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from . import persist, rescore
from .ann import Ann
from .bm25 import PARAMS as BM25_PARAMS
from .bm25 import BM25Index, Scored, Terms
from .build import PASSAGE_SIZE, PASSAGE_STRIDE, Segmented, ranges
from .embedder import Embedder
from .fusion import Fused, rrf
from .persist import bm25_params
from .records import (  # noqa: F401 - the index's public names, imported from here
    Entry, Hit, IndexBusy, IndexDamaged, IndexMismatch, IndexMissing, IndexStoreError, Table, VectorBuffer, content_hash,
)
from .rescore import RESCORE_FEATURES, RESCORE_FILE, rescore_weights  # noqa: F401
from .text import TERMS_VERSION

SCHEMA_VERSION = 2
# Each leg is over-fetched before fusion so RRF sees items one leg ranks low.
OVERFETCH = 4
LEGS = ("bm25", "dense", "doc")
DOC_FETCH = 10
# RRF's k: 20 rather than the customary 60 put the answer's passage in the top 5 more often on
# SQuAD training questions (outside the reported sample): 0.930 against 0.925, and first
# 0.750 against 0.746 (800 questions).
RRF_K = 20
# Words a follow-up carries from earlier turns count this much of a question word's IDF, in the
# lexical legs and in the answerer's features: they locate the topic but are not what the new
# question asks.
CONTEXT_WEIGHT = 0.3


def index_params(embedder: Embedder) -> dict[str, Any]:
    """The parameters an index built with ``embedder`` records (and must be opened with)."""
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


def no_rows(params: dict[str, Any]) -> tuple:
    """The arguments of :class:`HybridIndex` after ``entries`` for an index without rows."""
    z = np.zeros(0, dtype=np.int32)
    t = lambda: Table(z, z, z, np.zeros((0, params["dim"]), dtype=np.float32))  # noqa: E731
    vocab: dict[str, int] = {}
    bm25 = bm25_params(params)
    return t(), t(), z, z, params, (BM25Index(Terms.empty(), vocab, **bm25), BM25Index(Terms.empty(), vocab, **bm25))


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
        sentences: Table,
        passages: Table,
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

    @property
    def generation(self) -> str | None:
        """The on-disk generation this snapshot was loaded from or saved as (None: neither)."""
        return self.saved[1][-1][0] if self.saved is not None and self.saved[1] else None

    def doc_sentences(self, doc_row: int) -> tuple[int, int]:
        """Sentence rows ``[first, end)`` of a document."""
        return int(self.s_bounds[doc_row]), int(self.s_bounds[doc_row + 1])

    def sentence_vectors(self, doc_ids: Iterable[str]) -> dict[str, np.ndarray]:
        """The sentence vectors of these documents, by sentence text (ids not held are skipped)."""
        out: dict[str, np.ndarray] = {}
        for doc_id in doc_ids:
            row = self.doc_pos.get(doc_id)
            if row is None:
                continue
            text = self.entries[row].text
            a, b = self.doc_sentences(row)
            vecs = np.asarray(self.sentences.vecs[a:b])
            for i, (start, end) in enumerate(zip(self.sentences.start[a:b].tolist(), self.sentences.end[a:b].tolist())):
                out[text[start:end]] = vecs[i]
        return out

    def doc_facts(self, doc_row: int) -> tuple[int, int, int]:
        """A document's size in characters and in UTF-8 bytes, and its sentence count."""
        e = self.entries[doc_row]
        a, b = self.doc_sentences(doc_row)
        return len(e.text), len(e.text.encode("utf-8")), b - a

    # ----- construction -------------------------------------------------------------
    @classmethod
    def empty(cls, embedder: Embedder) -> "HybridIndex":
        return cls([], *no_rows(index_params(embedder)))

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
        fresh = Segmented(new, params["dim"], embedder, vocab, progress, old.sentence_vectors(drop) if new else None)
        keep = np.asarray(kept, dtype=np.int64)
        n_old = len(keep)
        s_rows = ranges(old.s_bounds[keep], np.diff(old.s_bounds)[keep])
        p_rows = ranges(old.p_bounds[keep], np.diff(old.p_bounds)[keep])
        # Old document rows renumbered 0..n_old-1; new ones follow.
        renumber = np.full(len(old.entries), -1, dtype=np.int64)
        renumber[keep] = np.arange(n_old)
        s_base = len(s_rows)
        # Where each kept old sentence row lands, to re-point passages' first/last.
        s_new_row = np.full(len(old.sentences), -1, dtype=np.int64)
        s_new_row[s_rows] = np.arange(s_base)
        i32 = lambda xs: np.asarray(xs, dtype=np.int32)  # noqa: E731
        cat = np.concatenate

        def table(t: Table, rows: np.ndarray, f: Table) -> Table:
            cols = [i32(cat([renumber[t.doc[rows]], f.doc + n_old])), i32(cat([t.start[rows], f.start])), i32(cat([t.end[rows], f.end]))]
            if len(rows) == len(t):  # only added: the vectors grow in place
                return Table(*cols, *VectorBuffer.extend(t, f.vecs))
            return Table(*cols, np.ascontiguousarray(cat([t.vecs[rows], f.vecs]), dtype=np.float32))

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
        row = self.sentence_holding(doc, start)
        return row if row is not None and int(self.sentences.start[row]) == start else None

    def sentence_holding(self, doc: str, char: int) -> int | None:
        """The row of the first sentence of document ``doc`` ending after character ``char`` (the
        one holding it, or the next after a gap), None past its last sentence or without it."""
        if doc not in self.doc_pos:
            return None
        first, end = self.doc_sentences(self.doc_pos[doc])
        row = first + int(np.searchsorted(self.sentences.end[first:end], char, side="right"))
        return row if row < end else None

    def seq(self, rows):
        """Position of sentence ``rows`` (an int or an array) in their documents (0: first)."""
        return rows - self.s_bounds[self.sentences.doc[rows]]

    def adjacent(self, row: int, other: int) -> bool:
        """Whether sentence row ``other`` is ``row``'s neighbour in its document, as far apart
        in the text as in rows (rows of a candidate view may skip sentences)."""
        s = self.sentences
        return (0 <= other < len(s) and s.doc[other] == s.doc[row]
                and int(self.seq(other)) - int(self.seq(row)) == other - row)

    def sentence_before(self, row: int) -> str:
        """The text of the sentence before ``row`` in its document ("" for a document's first)."""
        return self.sentence_text(row - 1) if self.adjacent(row, row - 1) else ""

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
        order = np.argsort(-(pcos + self.best_sentence_cos(cands, q[0])), kind="stable")[:fetch]
        return cands[order].tolist()

    def best_sentence_cos(self, passages: np.ndarray, qvec: np.ndarray) -> np.ndarray:
        """The cosine of each passage's best-matching sentence."""
        first = self.pass_first[passages].astype(np.int64)
        sizes = self.pass_last[passages].astype(np.int64) - first + 1
        scos = self.sentences.vecs[ranges(first, sizes)] @ qvec.astype(np.float32).reshape(-1)
        return np.maximum.reduceat(scos, np.cumsum(sizes) - sizes)

    def rescore_features(self, lexical: tuple[Scored, Scored], qvec: np.ndarray, ids: np.ndarray) -> np.ndarray:
        """The :data:`~index.rescore.RESCORE_FEATURES` of the candidate passages ``ids``."""
        return rescore.features(self, lexical, qvec, ids)

    def rescore(self, lexical: tuple[Scored, Scored], qvec: np.ndarray, fused: list[Fused]) -> list[Fused]:
        """RRF's candidates in the learned order (see :mod:`index.rescore`); each candidate's
        ``score`` becomes its learned score."""
        return rescore.order(self, lexical, qvec, fused)

    def dense_recall(self, qvecs: np.ndarray, k: int = 10) -> float | None:
        """Share of the exact top ``k`` passages (by vector) that the dense index returns;
        None when the index is exact."""
        if self.ann is None or not len(qvecs):
            return None
        q = np.ascontiguousarray(qvecs, dtype=np.float32)
        _, approx = self.faiss.search(q, k)
        exact = np.argpartition(-(q @ self.passages.vecs.T), k - 1, axis=1)[:, :k]
        return float(np.mean([len(set(a) & set(e)) / k for a, e in zip(approx.tolist(), exact.tolist())]))

    # ----- persistence (index.persist) ---------------------------------------------------
    def save(self, folder: str | os.PathLike[str]) -> None:
        """Write a new generation under ``folder`` and switch ``CURRENT`` to it atomically."""
        persist.save(self, folder)

    @staticmethod
    def read_manifest(folder: str | os.PathLike[str]) -> dict[str, Any]:
        return persist.read_manifest(folder)

    @classmethod
    def load(cls, folder: str | os.PathLike[str], embedder: Embedder) -> "HybridIndex":
        """Open the current generation; raise :class:`IndexMismatch` if built differently."""
        return persist.load(cls, folder, index_params(embedder))
