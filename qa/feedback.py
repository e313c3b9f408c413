"""Users' marks on answers, kept as eval-set conversations that ``qa eval`` scores.

A mark says an answer was right, or wrong and which sentence answers instead (or that the
documents do not answer). It becomes one conversation of the eval-set format (GUIDE.md): the
earlier turns are replayed to rebuild the conversation but not scored (``"scored": false``);
the marked turn's evidence is a ``{doc, start, end}`` span. Records go to ``feedback.jsonl``
beside the index; every write replaces the whole file atomically (a temporary file, fsync,
rename), so a process killed mid-write leaves the file as it was or with the new line, never
a partial one.
"""

from __future__ import annotations

import json
import threading
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

from index.persist import write_atomic

from .types import Answer

FEEDBACK_FILE = "feedback.jsonl"
# The file stops taking marks at this size (each write rewrites it whole).
MAX_FEEDBACK_BYTES = 32 * 1024 * 1024
VERDICTS = ("right", "wrong")


class FeedbackError(ValueError):
    """A mark that cannot be stored: ``kind`` is ``invalid`` (the request), ``missing`` (an
    unknown document) or ``full`` (the file)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class Span:
    """A sentence the user picked: ``doc`` and its character offsets."""

    doc: str
    start: int
    end: int


def conversation(
    question: str, answer: Answer, verdict: str, earlier: Sequence[str] = (), evidence: Span | None = None,
    docs: Sequence[str] | None = None, evidence_text: str | None = None,
) -> dict[str, Any]:
    """The eval-set conversation a mark becomes.

    ``verdict`` ``right``: the answer's top citation is the evidence (or, when the bot declined,
    the documents do not answer). ``wrong``: ``evidence`` is the sentence that answers, None
    when the documents do not answer. ``earlier``: the questions asked before, in order.
    ``evidence_text``: the evidence's sentence as indexed (the given one, or a right answer's
    top citation), kept so a replay can tell whether its document was edited since.
    """
    if verdict not in VERDICTS:
        raise FeedbackError("invalid", f"verdict must be one of {VERDICTS}, not {verdict!r}")
    if verdict == "right":
        if evidence is not None:
            raise FeedbackError("invalid", "a right answer's evidence is its own top citation: give none")
        top = answer.citations[0] if answer.citations and not answer.abstained else None
        evidence = Span(top.doc, top.start, top.end) if top else None
    turn: dict[str, Any] = {"question": question, "answerable": evidence is not None}
    if evidence is not None:
        turn["evidence"] = [{"doc": evidence.doc, "start": evidence.start, "end": evidence.end}]
        turn["answers"] = [answer.answer] if verdict == "right" and answer.short_answer else []
    else:
        turn["answers"], turn["evidence"] = [], []
    turns = [{"question": q, "scored": False} for q in earlier] + [turn]
    record: dict[str, Any] = {"id": f"feedback-{uuid.uuid4().hex[:12]}", "turns": turns}
    if docs is not None:
        record["docs"] = list(docs)
    record["feedback"] = {
        "verdict": verdict, "at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "bot_answer": answer.answer, "bot_abstained": answer.abstained,
        "bot_citation": ({"doc": answer.citations[0].doc, "start": answer.citations[0].start,
                          "end": answer.citations[0].end} if answer.citations else None),
    }
    if evidence_text is not None:
        record["feedback"]["evidence_text"] = evidence_text
    return record


class FeedbackStore:
    """The feedback file: one eval-set conversation per line, written atomically."""

    def __init__(self, path: str | Path, max_bytes: int = MAX_FEEDBACK_BYTES) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes
        self._lock = threading.Lock()

    def append(self, record: dict[str, Any]) -> None:
        """Add one record; raise :class:`FeedbackError` ``full`` past :attr:`max_bytes`."""
        line = (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")
        with self._lock:
            old = self.path.read_bytes() if self.path.exists() else b""
            if len(old) + len(line) > self.max_bytes:
                # The message reaches API clients: it names the file, not where the server keeps it.
                raise FeedbackError("full", f"the feedback file ({self.path.name}, beside the index) is full "
                                    f"({len(old)} bytes); move it aside to collect more")
            if old and not old.endswith(b"\n"):
                old += b"\n"
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(self.path, old + line, durable=True)

    def records(self) -> list[dict[str, Any]]:
        """Every stored record, oldest first."""
        if not self.path.exists():
            return []
        # "\n" only: str.splitlines() also breaks at U+2028 and its kin, which JSON strings may hold.
        return [json.loads(line) for line in self.path.read_text(encoding="utf-8").split("\n") if line.strip()]
