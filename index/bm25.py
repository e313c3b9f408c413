"""BM25 over passages, scoring only the passages that share a term with the query.

Variant: BM25+ as rank-bm25's ``BM25Plus`` defines it (the tests check our scores equal its
``get_batch_scores``). ``BM25Okapi`` gives a zero or negative IDF to any term in half the
passages or more (rank-bm25 issues #29/#39/#43), so in a small corpus such as two news
articles the most on-topic words ("Brunel", "visit") would count for nothing or against a
passage. BM25+ uses ``log((N + 1) / df)``, positive for every term, and its lower bound
``delta`` keeps long passages from being over-penalised.

The texts' terms are held as a sparse matrix (:class:`Terms`, compressed rows of term ids and
counts) with its transpose as postings, so a query costs a few numpy operations over the
postings of its terms, the matrix is saved and loaded as arrays rather than re-tokenised, and
an update re-uses the rows of unchanged texts.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from .text import terms

K1 = 1.2
B = 0.75
DELTA = 0.5
PARAMS = {"variant": "BM25Plus", "k1": K1, "b": B, "delta": DELTA}


@dataclass(frozen=True)
class Terms:
    """Bag of terms per text: row ``i`` holds ``ids[indptr[i]:indptr[i + 1]]`` with ``counts``.

    Term ids index a vocabulary shared by the rows (see :meth:`from_texts`).
    """

    indptr: np.ndarray  # int64, rows + 1
    ids: np.ndarray  # int32
    counts: np.ndarray  # int32

    def __len__(self) -> int:
        return len(self.indptr) - 1

    @classmethod
    def from_texts(cls, texts: list[str], vocab: dict[str, int]) -> "Terms":
        """Tokenise ``texts``; new terms are added to ``vocab`` (term -> id)."""
        indptr = np.zeros(len(texts) + 1, dtype=np.int64)
        ids: list[int] = []
        counts: list[int] = []
        for i, text in enumerate(texts):
            for term, n in Counter(terms(text)).items():
                ids.append(vocab.setdefault(term, len(vocab)))
                counts.append(n)
            indptr[i + 1] = len(ids)
        return cls(indptr, np.asarray(ids, dtype=np.int32), np.asarray(counts, dtype=np.int32))

    @classmethod
    def empty(cls) -> "Terms":
        return cls(np.zeros(1, dtype=np.int64), np.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.int32))

    def take(self, rows: np.ndarray) -> "Terms":
        """The given rows, in that order."""
        rows = np.asarray(rows, dtype=np.int64)
        starts, ends = self.indptr[rows], self.indptr[rows + 1]
        sizes = ends - starts
        indptr = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(sizes, out=indptr[1:])
        # Positions of every kept entry: each row's start repeated, plus 0..size-1.
        pos = np.repeat(starts - indptr[:-1], sizes) + np.arange(indptr[-1])
        return Terms(indptr, self.ids[pos], self.counts[pos])

    @staticmethod
    def concat(parts: list["Terms"]) -> "Terms":
        parts = [p for p in parts if len(p)]
        if not parts:
            return Terms.empty()
        offsets = np.cumsum([0] + [int(p.indptr[-1]) for p in parts[:-1]])
        indptr = np.concatenate([np.zeros(1, dtype=np.int64)] + [p.indptr[1:] + o for p, o in zip(parts, offsets)])
        return Terms(indptr, np.concatenate([p.ids for p in parts]), np.concatenate([p.counts for p in parts]))

    def lengths(self) -> np.ndarray:
        """Terms per text, repeats counted."""
        csum = np.concatenate([[0], np.cumsum(self.counts, dtype=np.int64)])
        return np.diff(csum[self.indptr])


class BM25Index:
    """Sparse leg of the hybrid index.

    Args:
        rows: the texts' terms.
        vocab: term -> id for the ids in ``rows`` (may hold terms no row has any more).
        k1, b, delta: BM25+ parameters (recorded in the index manifest).
    """

    def __init__(
        self, rows: Terms, vocab: dict[str, int], k1: float = K1, b: float = B, delta: float = DELTA,
        postings: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None, lengths: np.ndarray | None = None,
        corpus: "Corpus | None" = None,
    ) -> None:
        """``postings``: ``(term ids, rows, counts)`` of every entry of ``rows`` sorted by term
        then row, and ``lengths`` (terms per row, at least 1), when already known (see
        :meth:`updated`); computed otherwise. ``corpus``: the statistics of a larger corpus that
        ``rows`` are a part of (a store's candidates), used for IDF and length normalisation
        instead of those of ``rows``."""
        self.params = {**PARAMS, "k1": k1, "b": b, "delta": delta}
        self.rows = rows
        self.vocab = vocab
        self.size = n = len(rows)
        self.k1, self.b, self.delta = k1, b, delta
        v = max(len(vocab), 1)
        # rank-bm25 gives an empty text one (empty) term, so its length is 1.
        self.lengths = lengths = np.maximum(rows.lengths(), 1).astype(np.float64) if lengths is None else lengths
        avgdl = (float(lengths.mean()) if n else 1.0) if corpus is None else corpus.avgdl
        self._norm = k1 * (1 - b + b * lengths / avgdl)
        self.df = np.bincount(rows.ids, minlength=v)
        # Document frequencies over the whole corpus: those of ``rows``, or the store's.
        self.corpus_df = self.df if corpus is None else np.asarray(corpus.df, dtype=np.int64)
        self.corpus_size = n if corpus is None else corpus.size
        with np.errstate(divide="ignore"):
            self._idf = np.where(self.corpus_df > 0, np.log((self.corpus_size + 1) / np.maximum(self.corpus_df, 1)), 0.0)
        if postings is None:
            # The transpose, grouped by term id (stable, so rows ascend within a term).
            order = np.argsort(rows.ids, kind="stable")
            row_of = np.repeat(np.arange(n, dtype=np.int32), np.diff(rows.indptr))
            postings = (rows.ids[order], row_of[order], rows.counts[order])
        self._post_terms, self._post_rows, self._post_counts = postings
        self._post_ptr = np.zeros(v + 1, dtype=np.int64)
        np.cumsum(self.df, out=self._post_ptr[1:])

    def updated(self, keep: np.ndarray, new: Terms, vocab: dict[str, int]) -> "BM25Index":
        """The index over rows ``keep`` (old positions, ascending) followed by ``new``'s rows.

        The postings are merged rather than rebuilt: the kept ones stay sorted once renumbered,
        the new rows' are sorted by term, and a stable sort of two sorted runs is linear.
        """
        keep = np.asarray(keep, dtype=np.int64)
        renumber = np.full(self.size, -1, dtype=np.int64)
        renumber[keep] = np.arange(len(keep))
        rows = renumber[self._post_rows]
        alive = rows >= 0
        new_row_of = np.repeat(np.arange(len(keep), len(keep) + len(new)), np.diff(new.indptr))
        order = np.argsort(new.ids, kind="stable")
        terms_ = np.concatenate([self._post_terms[alive], new.ids[order]])
        merged = np.argsort(terms_, kind="stable")
        rows_ = np.concatenate([rows[alive], new_row_of[order]])[merged].astype(np.int32)
        counts = np.concatenate([self._post_counts[alive], new.counts[order]])[merged]
        return BM25Index(
            Terms.concat([self.rows.take(keep), new]), vocab, self.k1, self.b, self.delta,
            postings=(terms_[merged], rows_, counts),
            lengths=np.concatenate([self.lengths[keep], np.maximum(new.lengths(), 1).astype(np.float64)]),
        )

    @classmethod
    def from_texts(cls, texts: list[str], **params: float) -> "BM25Index":
        vocab: dict[str, int] = {}
        return cls(Terms.from_texts(texts, vocab), vocab, **params)

    def _term_id(self, term: str) -> int | None:
        """The id of a normalised term that some text holds (the vocabulary keeps terms of
        removed texts, and a later snapshot's terms may be past this one's arrays)."""
        i = self.vocab.get(term)
        return i if i is not None and i < len(self.corpus_df) and self.corpus_df[i] > 0 else None

    def has(self, term: str) -> bool:
        """Whether some text holds the normalised ``term``."""
        return self._term_id(term) is not None

    def holds(self, row: int, term: str) -> bool:
        """Whether text ``row`` holds the normalised ``term``."""
        i = self._term_id(term)
        if i is None:
            return False
        a, z = self._post_ptr[i], self._post_ptr[i + 1]
        return bool(np.any(self._post_rows[a:z] == row))

    def idf(self, term: str) -> float:
        """IDF of a normalised term (0 for a term the corpus lacks)."""
        i = self._term_id(term)
        return 0.0 if i is None else float(self._idf[i])

    def scored(self, query: str, context: str = "", context_weight: float = 1.0) -> "Scored":
        """Every text's score for ``query``; only texts in the postings of a query term are
        touched, so the cost follows the postings, not the corpus.

        Terms of ``context`` that ``query`` lacks count ``context_weight`` of theirs (a
        follow-up's words carried from earlier turns).
        """
        weights: dict[int, float] = {}
        for text, w in ((query, 1.0), (context, context_weight)):
            for t in terms(text):
                i = self._term_id(t)
                if i is not None:
                    weights.setdefault(i, w)
        scores = np.zeros(self.size)
        held = np.zeros(self.size)
        mass = 0.0
        for i, w in weights.items():
            a, z = self._post_ptr[i], self._post_ptr[i + 1]
            rows, tf = self._post_rows[a:z], self._post_counts[a:z]
            idf = w * float(self._idf[i])
            scores[rows] += idf * tf * (self.k1 + 1) / (self._norm[rows] + tf)
            held[rows] += idf
            mass += idf
        # BM25+'s floor: every query term adds idf * delta to every text, present or not.
        return Scored(scores + self.delta * mass, held, mass)

    def search(
        self, query: str, k: int, allowed: np.ndarray | None = None, context: str = "", context_weight: float = 1.0,
    ) -> list[tuple[int, float]]:
        """Top ``k`` texts for ``query`` (see :meth:`scored` and :meth:`Scored.top`)."""
        return self.scored(query, context, context_weight).top(k, allowed)


@dataclass(frozen=True)
class Corpus:
    """What BM25 needs of a corpus beyond the texts at hand: its size, mean length in terms, and
    each vocabulary term's document frequency (``df[id]``)."""

    size: int
    avgdl: float
    df: np.ndarray


@dataclass(frozen=True)
class Scored:
    """One query's BM25+ scores over all texts, and the IDF of the query terms each text holds
    (each term counted once; ``mass``: the IDF of all the query's known terms)."""

    scores: np.ndarray
    held: np.ndarray
    mass: float

    def coverage(self, rows: np.ndarray) -> np.ndarray:
        """The share (0-1) of the query's IDF mass each text at ``rows`` holds."""
        return self.held[rows] / self.mass if self.mass > 0 else np.zeros(len(rows))

    def top(self, k: int, allowed: np.ndarray | None = None) -> list[tuple[int, float]]:
        """Top ``k`` texts holding a query term as ``(position, score)``, best first (ties:
        lower position first); ``allowed`` (a boolean mask over positions) restricts them."""
        hit = self.held > 0 if allowed is None else (self.held > 0) & allowed
        candidates = np.flatnonzero(hit)
        if not len(candidates):
            return []
        s = self.scores[candidates]
        if len(s) > k:
            part = np.argpartition(-s, k - 1)[:k]
            # argpartition breaks ties arbitrarily: keep all tied with the k-th, then sort.
            kth = s[part].min()
            part = np.flatnonzero(s >= kth)
        else:
            part = np.arange(len(s))
        top = part[np.lexsort((candidates[part], -s[part]))][:k]
        return [(int(candidates[j]), float(s[j])) for j in top]
