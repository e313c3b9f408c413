"""The domain's value types: documents, citations, answers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Document:
    """One ingested file. ``id`` is its path relative to the corpus folder."""

    id: str
    title: str
    date: str | None
    text: str

    @property
    def meta(self) -> dict[str, Any]:
        return {"title": self.title, "date": self.date}


@dataclass(frozen=True, slots=True)
class Citation:
    """A verbatim sentence: ``document.text[start:end] == text``.

    ``answer_start``/``answer_end`` locate the short answer inside ``text`` when there is one.
    """

    doc: str
    title: str
    text: str
    start: int
    end: int
    score: float
    answer_start: int | None = None
    answer_end: int | None = None

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Citation":
        return cls(
            doc=d["doc"], title=d.get("title", ""), text=d["text"], start=int(d["start"]), end=int(d["end"]),
            score=float(d.get("score", 0.0)), answer_start=d.get("answer_start"), answer_end=d.get("answer_end"),
        )

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "doc": self.doc, "title": self.title, "text": self.text,
            "start": self.start, "end": self.end,
        }
        if self.answer_start is not None and self.answer_end is not None:
            d["answer_start"], d["answer_end"] = self.answer_start, self.answer_end
        d["score"] = round(self.score, 4)
        return d


@dataclass(frozen=True, slots=True)
class Retrieved:
    """A passage the search returned, with the rank each retrieval leg gave it."""

    doc: str
    start: int
    end: int
    score: float
    legs: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        return {"doc": self.doc, "start": self.start, "end": self.end, "score": round(self.score, 5), "legs": self.legs}


@dataclass(frozen=True, slots=True)
class Answer:
    """The bot's reply to one question (the Answer JSON of the contract)."""

    question: str
    searched_for: str
    abstained: bool
    answer: str | None
    confidence: float
    citations: tuple[Citation, ...]
    timings_ms: dict[str, float] = field(default_factory=dict)
    passages: tuple[Retrieved, ...] = ()

    @property
    def short_answer(self) -> str | None:
        """The short answer highlighted inside the top citation, if the bot gave one (not when
        it abstained, nor when no short span fitted and ``answer`` is the whole sentence)."""
        top = self.citations[0] if self.citations else None
        if self.abstained or not self.answer or top is None or top.answer_start is None or top.answer_end is None:
            return None
        return self.answer

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Answer":
        """Rebuild an Answer from its JSON (e.g. a client's conversation history)."""
        return cls(
            question=d["question"], searched_for=d.get("searched_for", d["question"]),
            abstained=bool(d.get("abstained", False)), answer=d.get("answer"),
            confidence=float(d.get("confidence", 0.0)),
            citations=tuple(Citation.from_dict(c) for c in d.get("citations", [])),
            timings_ms=dict(d.get("timings_ms", {})),
        )

    def to_dict(self, with_passages: bool = False) -> dict[str, Any]:
        """The Answer JSON; ``with_passages`` adds the retrieved passages (eval reports)."""
        out: dict[str, Any] = {
            "question": self.question,
            "searched_for": self.searched_for,
            "abstained": self.abstained,
            "answer": self.answer,
            "confidence": round(self.confidence, 4),
            "citations": [c.to_dict() for c in self.citations],
            "timings_ms": {k: round(v, 2) for k, v in self.timings_ms.items()},
        }
        if with_passages:
            out["passages"] = [p.to_dict() for p in self.passages]
        return out
