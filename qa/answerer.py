"""The extractive answerer: rank the sentences of the top passages, pick a short span, or abstain.

Each candidate sentence gets question-aware features (see :data:`FEATURES`); a linear model
over them (weights in ``qa/weights.json``, learned by ``eval/train.py`` from the public
benchmark) gives its score, and the logistic of the top score is the answer's confidence.
Below the calibrated threshold the bot abstains and lists the nearest misses.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from index.store import Hit, HybridIndex
from index.text import STOPWORDS, normalise, terms, words

from .answertype import NONE, candidates, pick_span, question_type
from .types import Citation

FEATURES = (
    "cos",          # cosine of question and sentence embeddings
    "cos_gap",      # cosine minus the best candidate's cosine
    "cov",          # share of the question's IDF mass found in the sentence
    "cov_gap",      # cov minus the best candidate's cov
    "cov_ctx",      # the same over the sentence and its two neighbours
    "bigram",       # share of the question's adjacent term pairs found in the sentence
    "passage_rrf",  # fused score of the best passage holding the sentence, relative to the top one
    "passage_rr",   # 1 / rank of that passage
    "type_match",   # the sentence holds a span of the expected answer type not in the question
    "typed_q",      # the question expects a typed answer (when/who/how many/where/name)
    "cos_rr",       # 1 / rank of the sentence by cosine among candidates
    "cov_rr",       # 1 / rank of the sentence by cov among candidates
)
WEIGHTS_FILE = Path(__file__).with_name("weights.json")
CANDIDATE_PASSAGES = 6


@dataclass(frozen=True)
class Model:
    """Linear scorer and abstention threshold on its logistic."""

    weights: np.ndarray
    bias: float
    threshold: float

    @classmethod
    def load(cls, path: Path = WEIGHTS_FILE) -> "Model":
        data = json.loads(path.read_text(encoding="utf-8"))
        missing = [f for f in FEATURES if f not in data["weights"]]
        if missing:
            raise ValueError(f"{path}: no weight for features {missing}; retrain with eval/train.py")
        return cls(np.array([data["weights"][f] for f in FEATURES]), float(data["bias"]), float(data["threshold"]))


@dataclass(frozen=True, slots=True)
class Scored:
    row: int
    score: float
    features: np.ndarray


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


class Question:
    """A question's terms, weights and expected answer type, computed once per ask."""

    def __init__(self, text: str, index: HybridIndex) -> None:
        self.text = text
        self.kind = question_type(text)
        self.terms = list(dict.fromkeys(terms(text)))
        n = max(len(index.passages), 1)
        # A term absent from the corpus weighs as much as the rarest possible term.
        self.idf = {t: (index.bm25.idf(t) or math.log(n + 1)) for t in self.terms}
        self.mass = sum(self.idf.values()) or 1.0
        self.bigrams = set(zip(self.terms, self.terms[1:]))

    def coverage(self, tset: set[str]) -> float:
        return sum(w for t, w in self.idf.items() if t in tset) / self.mass


class Answerer:
    """Scores candidate sentences with :class:`Model` over :data:`FEATURES`."""

    def __init__(self, model: Model | None = None) -> None:
        self._model = model

    @cached_property
    def model(self) -> Model:
        return self._model or Model.load()

    def features(self, q: Question, qvec: np.ndarray, index: HybridIndex, hits: list[Hit]) -> tuple[list[int], np.ndarray]:
        """Candidate sentence rows from the top passages and their feature matrix."""
        best: dict[int, tuple[int, float]] = {}
        for rank, h in enumerate(hits[:CANDIDATE_PASSAGES], start=1):
            for row in range(int(index.pass_first[h.passage]), int(index.pass_last[h.passage]) + 1):
                best.setdefault(row, (rank, h.score))
        rows = sorted(best)
        if not rows:
            return [], np.zeros((0, len(FEATURES)))
        top_rrf = hits[0].score or 1.0
        sents = index.sentences
        cache: dict[int, set[str]] = {}

        def tset(row: int) -> set[str]:
            if row not in cache:
                cache[row] = set(terms(index.text(int(sents.doc[row]), int(sents.start[row]), int(sents.end[row]))))
            return cache[row]

        cos = sents.vecs[rows] @ qvec.astype(np.float32)
        cov = np.array([q.coverage(tset(r)) for r in rows])
        feats = np.zeros((len(rows), len(FEATURES)))
        for i, r in enumerate(rows):
            d = sents.doc[r]
            ctx = set(tset(r))
            for nb in (r - 1, r + 1):
                if 0 <= nb < len(sents) and sents.doc[nb] == d:
                    ctx |= tset(nb)
            toks = terms(index.text(int(d), int(sents.start[r]), int(sents.end[r])))
            pairs = set(zip(toks, toks[1:]))
            rank, rrf = best[r]
            text = index.text(int(d), int(sents.start[r]), int(sents.end[r]))
            feats[i, FEATURES.index("cov_ctx")] = q.coverage(ctx)
            feats[i, FEATURES.index("bigram")] = len(q.bigrams & pairs) / len(q.bigrams) if q.bigrams else 0.0
            feats[i, FEATURES.index("passage_rrf")] = rrf / top_rrf
            feats[i, FEATURES.index("passage_rr")] = 1.0 / rank
            feats[i, FEATURES.index("type_match")] = float(q.kind != NONE and pick_span(q.text, text, q.kind) is not None)
        feats[:, FEATURES.index("typed_q")] = float(q.kind != NONE)
        feats[:, FEATURES.index("cos")] = cos
        feats[:, FEATURES.index("cos_gap")] = cos - cos.max()
        feats[:, FEATURES.index("cov")] = cov
        feats[:, FEATURES.index("cov_gap")] = cov - cov.max()
        feats[:, FEATURES.index("cos_rr")] = 1.0 / (1 + np.argsort(np.argsort(-cos, kind="stable")))
        feats[:, FEATURES.index("cov_rr")] = 1.0 / (1 + np.argsort(np.argsort(-cov, kind="stable")))
        return rows, feats

    def rank(self, q: Question, qvec: np.ndarray, index: HybridIndex, hits: list[Hit]) -> list[Scored]:
        rows, feats = self.features(q, qvec, index, hits)
        if not rows:
            return []
        scores = feats @ self.model.weights + self.model.bias
        order = np.argsort(-scores, kind="stable")
        return [Scored(rows[i], float(scores[i]), feats[i]) for i in order]

    def answer(
        self, question: str, qvec: np.ndarray, index: HybridIndex, hits: list[Hit], top_k: int = 3
    ) -> tuple[bool, str | None, float, list[Citation]]:
        """``(abstained, short answer, confidence, citations)`` for one question."""
        q = Question(question, index)
        ranked = self.rank(q, qvec, index, hits)
        if not ranked:
            return True, None, 0.0, []
        confidence = _sigmoid(ranked[0].score)
        abstained = confidence < self.model.threshold
        citations = []
        for i, s in enumerate(ranked[:top_k]):
            citations.append(self._cite(index, s, q if (i == 0 and not abstained) else None))
        answer = None
        if not abstained:
            top = citations[0]
            answer = top.text[top.answer_start:top.answer_end] if top.answer_start is not None else top.text
        return abstained, answer, confidence, citations

    @staticmethod
    def _cite(index: HybridIndex, s: Scored, q: Question | None) -> Citation:
        sents = index.sentences
        d, a, b = int(sents.doc[s.row]), int(sents.start[s.row]), int(sents.end[s.row])
        entry = index.entries[d]
        text = entry.text[a:b]
        span = pick_span(q.text, text, q.kind) if q is not None else None
        return Citation(
            doc=entry.id, title=entry.meta.get("title", ""), text=text, start=a, end=b,
            score=_sigmoid(s.score),
            answer_start=span.start if span else None, answer_end=span.end if span else None,
        )
