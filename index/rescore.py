"""The learned order of the hybrid search's candidates: features of each passage, and weights."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .bm25 import Scored
from .fusion import Fused

if TYPE_CHECKING:
    from .store import HybridIndex

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


@functools.cache
def rescore_weights(path: Path = RESCORE_FILE) -> np.ndarray:
    """The re-scoring weights, in :data:`RESCORE_FEATURES` order (read once)."""
    data = json.loads(path.read_text(encoding="utf-8"))["weights"]
    missing = [f for f in RESCORE_FEATURES if f not in data]
    if missing:
        raise ValueError(f"{path}: no weight for {missing}; retrain with `python -m eval.train_retrieval`")
    return np.array([float(data[f]) for f in RESCORE_FEATURES])


def features(index: "HybridIndex", lexical: tuple[Scored, Scored], qvec: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """The :data:`RESCORE_FEATURES` of the candidate passages ``ids`` of ``index`` (one row each)."""
    passages, documents = lexical
    ids = np.asarray(ids, dtype=np.int64)
    doc = index.passages.doc[ids].astype(np.int64)
    out = np.zeros((len(ids), len(RESCORE_FEATURES)))
    if not len(ids):
        return out
    bm25, doc_bm25 = passages.scores[ids], documents.scores[doc]
    out[:, 0] = index.best_sentence_cos(ids, qvec)
    out[:, 1] = index.passages.vecs[ids] @ qvec
    out[:, 2] = bm25 / max(float(bm25.max()), 1e-9)
    out[:, 3] = passages.coverage(ids)
    out[:, 4] = doc_bm25 / max(float(doc_bm25.max()), 1e-9)
    out[:, 5] = documents.coverage(doc)
    out[:, 6] = index.pass_last[ids].astype(np.int64) - index.pass_first[ids] + 1
    return out


def order(index: "HybridIndex", lexical: tuple[Scored, Scored], qvec: np.ndarray, fused: list[Fused]) -> list[Fused]:
    """Order RRF's candidates by the learned linear score of their features (see
    :data:`RESCORE_FEATURES`); each candidate's ``score`` becomes that score."""
    if not fused:
        return fused
    ids = np.fromiter((f.id for f in fused), dtype=np.int64, count=len(fused))
    scores = features(index, lexical, qvec, ids) @ rescore_weights()
    for f, sc in zip(fused, scores):
        f.score = float(sc)
    return [fused[i] for i in np.argsort(-scores, kind="stable")]
