"""The Bot: keeps the index in step with the documents folder and answers questions."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

from index.embedder import Embedder, SentenceTransformerEmbedder
from index.store import Entry, HybridIndex, IndexMismatch, IndexMissing

from .answerer import Answerer
from .ingest import load_folder
from .types import Answer, Document

log = logging.getLogger(__name__)

INDEX_DIRNAME = ".qa-index"
MAX_QUESTION_CHARS = 2000


class QuestionError(ValueError):
    """The question cannot be asked (empty, too long, unknown document)."""


@dataclass
class SyncReport:
    """What :meth:`Bot.sync` changed, and the files it could not read."""

    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    warnings: dict[str, str] = field(default_factory=dict)
    rebuilt: str | None = None

    @property
    def touched(self) -> bool:
        return bool(self.added or self.changed or self.removed)


@dataclass(frozen=True)
class Turn:
    """An earlier exchange of the conversation: the question and the bot's own answer."""

    question: str
    answer: Answer


def default_index_dir(docs: str | Path) -> Path:
    return Path(docs) / INDEX_DIRNAME


class Bot:
    """Question answering over one documents folder.

    Args:
        docs: the corpus folder (document ids are paths relative to it).
        index_dir: where the index lives; default ``DOCS/.qa-index``.
        embedder: a loaded embedder to share; default loads MiniLM (``model``).
        model: model setting for the default embedder (see ``index.embedder.resolve_model``).
        answerer: the sentence scorer; default uses ``qa/weights.json``.
    """

    def __init__(
        self,
        docs: str | Path,
        index_dir: str | Path | None = None,
        embedder: Embedder | None = None,
        model: str | None = None,
        answerer: Answerer | None = None,
    ) -> None:
        self.docs = Path(docs)
        self.index_dir = Path(index_dir) if index_dir else default_index_dir(docs)
        self.embedder = embedder or SentenceTransformerEmbedder(model)
        self.answerer = answerer or Answerer()
        self._index: HybridIndex | None = None
        self._lock = threading.Lock()  # one writer at a time; readers use the current snapshot

    @property
    def index(self) -> HybridIndex:
        if self._index is None:
            self.sync()
        assert self._index is not None
        return self._index

    def documents(self) -> list[Document]:
        return [Document(e.id, e.meta.get("title", ""), e.meta.get("date"), e.text) for e in self.index.entries]

    def sync(self, progress: Callable[[int, int], None] | None = None) -> SyncReport:
        """Bring the index in step with the folder: add, re-embed changed, drop removed.

        ``progress(done, total)`` reports embedding progress over the texts to embed.
        """
        with self._lock:
            report = SyncReport()
            current = self._index or self._open(report)
            result = load_folder(self.docs)
            report.errors, report.warnings = result.errors, result.warnings
            on_disk = {d.id: d for d in result.documents}
            known = {e.id: e.sha256 for e in current.entries}
            upserts = []
            for doc_id, doc in on_disk.items():
                entry = Entry(doc.id, doc.text, doc.meta)
                if doc_id not in known:
                    report.added.append(doc_id)
                elif known[doc_id] != entry.sha256:
                    report.changed.append(doc_id)
                else:
                    continue
                upserts.append(entry)
            # A file that exists but cannot be read now keeps its last good version.
            report.removed = [d for d in known if d not in on_disk and d not in result.errors]
            if report.touched or self._index is None and not self.index_dir.joinpath("CURRENT").exists():
                current = current.updated(upserts, report.removed, self.embedder, progress)
                current.save(self.index_dir)
            self._index = current
            return report

    def _open(self, report: SyncReport) -> HybridIndex:
        try:
            return HybridIndex.load(self.index_dir, self.embedder)
        except IndexMissing:
            return HybridIndex.empty(self.embedder)
        except IndexMismatch as exc:
            log.warning("%s; rebuilding", exc)
            report.rebuilt = str(exc)
            return HybridIndex.empty(self.embedder)

    def ask(
        self,
        question: str,
        history: Sequence[Turn] = (),
        docs: Iterable[str] | None = None,
        top_k: int = 3,
    ) -> Answer:
        """Answer ``question`` from the current index, optionally limited to ``docs``."""
        t0 = time.perf_counter()
        question = question.strip() if isinstance(question, str) else question
        if not isinstance(question, str) or not question:
            raise QuestionError("the question is empty: ask something about the documents")
        if len(question) > MAX_QUESTION_CHARS:
            raise QuestionError(f"the question has {len(question)} characters; the limit is {MAX_QUESTION_CHARS}")
        index = self.index
        if docs is not None:
            docs = list(docs)
            unknown = [d for d in docs if d not in index.doc_pos]
            if unknown:
                raise QuestionError(f"unknown document(s) {unknown}; known: {index.doc_ids[:20]}")
        searched_for = question
        qvec = self.embedder.embed([searched_for])[0]
        hits = index.search(searched_for, qvec, k=10, docs=docs)
        t1 = time.perf_counter()
        abstained, answer, confidence, citations = self.answerer.answer(searched_for, qvec, index, hits, top_k=top_k)
        t2 = time.perf_counter()
        return Answer(
            question=question, searched_for=searched_for, abstained=abstained, answer=answer,
            confidence=confidence, citations=tuple(citations),
            timings_ms={"retrieve": (t1 - t0) * 1000, "answer": (t2 - t1) * 1000, "total": (t2 - t0) * 1000},
        )
