"""The domain's value types: documents, citations, answers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .layout import Layout

# What a document was read from (``Document.kind``), by file suffix.
KINDS = {".txt": "text", ".md": "markdown", ".pdf": "pdf", ".docx": "docx", ".html": "html", ".htm": "html"}


@dataclass(frozen=True, slots=True)
class Document:
    """One ingested file. ``id`` is its path relative to the corpus folder; ``text`` is the
    extracted text every citation's offsets point into. A PDF's ``layout`` places each
    character of ``text`` on its page."""

    id: str
    title: str
    date: str | None
    text: str
    kind: str = "text"
    layout: "Layout | None" = field(default=None, compare=False, repr=False)
    # What the reader could not read but did not refuse (a scanned page without OCR).
    warnings: tuple[str, ...] = field(default=(), compare=False)

    @property
    def meta(self) -> dict[str, Any]:
        meta: dict[str, Any] = {"title": self.title, "date": self.date, "kind": self.kind}
        if self.layout is not None:
            meta["pages"] = self.layout.pages
        return meta


@dataclass(frozen=True, slots=True)
class Citation:
    """A verbatim sentence: ``document.text[start:end] == text``.

    ``answer_start``/``answer_end`` locate the short answer inside ``text`` when there is one.
    In a PDF, ``page`` is the (1-based) page where the sentence starts and ``boxes`` holds
    ``(page, x0, y0, x1, y1)`` in PDF points for each line it covers; ``ocr`` says the page
    was read from its image.
    """

    doc: str
    title: str
    text: str
    start: int
    end: int
    score: float
    answer_start: int | None = None
    answer_end: int | None = None
    page: int | None = None
    boxes: tuple[tuple[float, ...], ...] = ()
    ocr: bool = False

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Citation":
        return cls(
            doc=d["doc"], title=d.get("title", ""), text=d["text"], start=int(d["start"]), end=int(d["end"]),
            score=float(d.get("score", 0.0)), answer_start=d.get("answer_start"), answer_end=d.get("answer_end"),
            page=d.get("page"), boxes=tuple(tuple(b) for b in d.get("boxes") or ()), ocr=bool(d.get("ocr", False)),
        )

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "doc": self.doc, "title": self.title, "text": self.text,
            "start": self.start, "end": self.end,
        }
        if self.answer_start is not None and self.answer_end is not None:
            d["answer_start"], d["answer_end"] = self.answer_start, self.answer_end
        d["score"] = round(self.score, 4)
        if self.page is not None:
            d["page"], d["boxes"] = self.page, [list(b) for b in self.boxes]
            if self.ocr:
                d["ocr"] = True
        return d


@dataclass(frozen=True, slots=True)
class Corroboration:
    """Another document's verbatim sentence answering the same question, its short answer
    (``text[answer_start:answer_end]``, offsets inside ``text`` as in a citation) and whether
    it says the same as the answer (``agrees``), with the confidence that it answers the
    question. ``date`` is its document's date."""

    doc: str
    title: str
    text: str
    start: int
    end: int
    answer: str
    agrees: bool
    confidence: float = 0.0
    answer_start: int | None = None
    answer_end: int | None = None
    date: str | None = None
    answer_date: str | None = None

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Corroboration":
        return cls(
            doc=d["doc"], title=d.get("title", ""), text=d["text"], start=int(d["start"]), end=int(d["end"]),
            answer=d["answer"], agrees=bool(d["agrees"]), confidence=float(d.get("confidence", 0.0)),
            answer_start=d.get("answer_start"),
            answer_end=d.get("answer_end"), date=d.get("date"), answer_date=d.get("answer_date"),
        )

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "doc": self.doc, "title": self.title, "text": self.text, "start": self.start, "end": self.end,
            "answer": self.answer, "agrees": self.agrees, "confidence": round(self.confidence, 4),
        }
        for name in ("answer_start", "answer_end", "date", "answer_date"):
            if getattr(self, name) is not None:
                d[name] = getattr(self, name)
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
    # The short answer as an ISO 8601 date, when it is one (resolved against its document's date).
    answer_date: str | None = None
    # Other documents' sentences answering the same question, newest document first.
    corroboration: tuple[Corroboration, ...] = ()

    @property
    def short_answer(self) -> str | None:
        """The short answer, if the bot gave one: the span highlighted inside the top citation,
        or a polar question's "Yes"/"No" said about it (not when it abstained, nor when no
        short answer fitted and ``answer`` is the whole sentence)."""
        top = self.citations[0] if self.citations else None
        if self.abstained or not self.answer or top is None:
            return None
        if top.answer_start is None or top.answer_end is None:
            return None if self.answer == top.text else self.answer
        return self.answer

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Answer":
        """Rebuild an Answer from its JSON (e.g. a client's conversation history)."""
        return cls(
            question=d["question"], searched_for=d.get("searched_for", d["question"]),
            abstained=bool(d.get("abstained", False)), answer=d.get("answer"),
            confidence=float(d.get("confidence", 0.0)),
            citations=tuple(Citation.from_dict(c) for c in d.get("citations", [])),
            timings_ms=dict(d.get("timings_ms", {})), answer_date=d.get("answer_date"),
            corroboration=tuple(Corroboration.from_dict(c) for c in d.get("corroboration") or ()),
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
        if self.answer_date is not None:
            out["answer_date"] = self.answer_date
        if self.corroboration:
            out["corroboration"] = [c.to_dict() for c in self.corroboration]
        if with_passages:
            out["passages"] = [p.to_dict() for p in self.passages]
        return out
