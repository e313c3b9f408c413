"""BM25 over passages, scoring only the passages that share a term with the query.

Variant: rank-bm25's ``BM25Plus``. ``BM25Okapi`` gives a zero or negative IDF to any term in
half the passages or more (rank-bm25 issues #29/#39/#43), so in a small corpus such as two
news articles the most on-topic words ("Milley", "call") would count for nothing or against a
passage. BM25+ uses ``log((N + 1) / df)``, positive for every term, and its lower bound
``delta`` keeps long passages from being over-penalised.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
from rank_bm25 import BM25Plus

from .text import terms

K1 = 1.2
B = 0.75
DELTA = 0.5


class BM25Index:
    """Sparse leg of the hybrid index.

    Args:
        texts: passage texts, indexed by position.
        k1, b, delta: BM25+ parameters (recorded in the index manifest).
        tokens: the texts' terms (:func:`index.text.terms`) where already known, so an update
            does not re-tokenise the whole corpus; ``None`` entries are computed.
    """

    def __init__(
        self, texts: list[str], k1: float = K1, b: float = B, delta: float = DELTA,
        tokens: list[list[str] | None] | None = None,
    ) -> None:
        self.params = {"variant": "BM25Plus", "k1": k1, "b": b, "delta": delta}
        self.size = len(texts)
        known = tokens if tokens is not None else [None] * len(texts)
        self.tokens: list[list[str]] = [k if k is not None else terms(t) for t, k in zip(texts, known)]
        corpus = self.tokens
        self.postings: dict[str, list[int]] = defaultdict(list)
        for i, toks in enumerate(corpus):
            for term in set(toks):
                self.postings[term].append(i)
        # rank-bm25 divides by the corpus size: an empty corpus gets no model at all.
        self._bm25 = BM25Plus([t or [""] for t in corpus], k1=k1, b=b, delta=delta) if corpus else None

    def idf(self, term: str) -> float:
        """IDF of a normalised term (0 for a term the corpus lacks)."""
        if self._bm25 is None:
            return 0.0
        return float(self._bm25.idf.get(term, 0.0))

    def search(self, query: str, k: int, allowed: np.ndarray | None = None) -> list[tuple[int, float]]:
        """Top ``k`` passages as ``(position, score)``, best first.

        Only passages in the postings of a query term are scored; ``allowed`` (a boolean mask
        over positions) further restricts them.
        """
        q = [t for t in dict.fromkeys(terms(query)) if t in self.postings]
        if not q or self._bm25 is None:
            return []
        candidates = sorted({i for t in q for i in self.postings[t]})
        if allowed is not None:
            candidates = [i for i in candidates if allowed[i]]
        if not candidates:
            return []
        scores = np.asarray(self._bm25.get_batch_scores(q, candidates))
        top = np.argsort(-scores, kind="stable")[:k]
        return [(candidates[j], float(scores[j])) for j in top]
