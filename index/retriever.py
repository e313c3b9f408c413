"""One interface for the corpus a Bot answers from, wherever it is stored.

A :class:`Retriever` opens the corpus (:meth:`~Retriever.open`: a snapshot listing its
documents), applies updates (:meth:`~Retriever.update`) and answers ``search`` with
:class:`Found`: the best passages as :class:`~index.store.Hit` s and the index whose rows they
name, which is all the answerer reads. :func:`open_retriever` picks one from the backend's name:

* ``faiss``: :class:`LocalRetriever`, the hybrid faiss + BM25 index in a local folder (the
  default); the snapshot holds the whole corpus and searches itself.
* ``milvus``: :class:`MilvusRetriever`, the corpus in Milvus (:mod:`index.milvus`: a Milvus
  Lite file or a server URI); the snapshot lists the documents only, and each search returns a
  :class:`~index.view.CandidateView` of the rows it found.

``tests/test_backends.py`` runs one contract suite against both.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Protocol, Sequence

from .config import DEFAULT_MILVUS_COLLECTION, RETRIEVAL_BACKENDS
from .embedder import Embedder
from .persist import current_generation
from .records import Entry, IndexMismatch, IndexMissing
from .store import LEGS, Hit, HybridIndex, index_params
from .view import Catalogue, vocabulary

if TYPE_CHECKING:
    from .milvus import MilvusStore

log = logging.getLogger(__name__)
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Found:
    """A search's passages, best first, and the index whose rows they (and their sentences) are."""

    index: HybridIndex
    hits: list[Hit]


class Retriever(Protocol):
    name: str
    location: str  # where the corpus is stored: a folder, a Milvus Lite file or a server URI
    shared: bool  # other folders' documents may be stored there too

    def open(self, embedder: Embedder) -> tuple[HybridIndex, str | None]:
        """The corpus as stored, and why it was emptied to be rebuilt (None: it was not)."""

    def stored(self) -> bool:
        """Whether the corpus has been stored at all (an empty one included)."""

    def is_current(self, index: HybridIndex) -> bool:
        """Whether ``index`` is still the newest version (another process may have written)."""

    def update(self, index: HybridIndex, upserts: Sequence[Entry], removals: Sequence[str], embedder: Embedder,
               progress: Progress | None = None) -> HybridIndex:
        """Store ``upserts`` and drop ``removals``; the new snapshot."""

    def revert(self, index: HybridIndex) -> bool:
        """Store ``index`` again, undoing a later update; False when the store cannot (it keeps
        no texts to rebuild from: the caller re-reads the documents instead)."""

    def counts(self, index: HybridIndex) -> dict[str, int]:
        """How many documents, sentences and passages the corpus of ``index`` holds."""

    def search(
        self, index: HybridIndex, query: str, qvec, k: int = 10, docs: Iterable[str] | None = None,
        legs: tuple[str, ...] = LEGS, context: str = "", exclude: Iterable[str] = (), keep: Iterable[tuple[str, int]] = (),
    ) -> Found:
        """The best ``k`` passages of snapshot ``index`` for ``query`` (text) and ``qvec`` (its
        vector), within ``docs`` (None: all), without ``exclude``; ``context``: words a
        follow-up carries, weighed lower; ``keep``: sentences ``(document, start)`` the result's
        index must hold too."""

    def close(self) -> None:
        """Let go of outside resources."""


class LocalRetriever:
    """The hybrid index in ``folder``; a snapshot searches itself."""

    name = "faiss"
    shared = False  # one folder's index: what the folder lacks is removed

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.location = str(folder)

    def open(self, embedder: Embedder) -> tuple[HybridIndex, str | None]:
        try:
            return HybridIndex.load(self.folder, embedder), None
        except IndexMissing:
            return HybridIndex.empty(embedder), None
        except IndexMismatch as exc:  # the caller says it was rebuilt, and why
            return HybridIndex.empty(embedder), str(exc)

    def stored(self) -> bool:
        return current_generation(self.folder) is not None

    def is_current(self, index: HybridIndex) -> bool:
        return index.generation == current_generation(self.folder)

    def update(self, index: HybridIndex, upserts: Sequence[Entry], removals: Sequence[str], embedder: Embedder,
               progress: Progress | None = None) -> HybridIndex:
        out = index.updated(upserts, removals, embedder, progress)
        out.save(self.folder)
        return out

    def revert(self, index: HybridIndex) -> bool:
        index.save(self.folder)
        return True

    def counts(self, index: HybridIndex) -> dict[str, int]:
        return {"documents": len(index.entries), "sentences": len(index.sentences), "passages": len(index.passages)}

    def search(
        self, index: HybridIndex, query: str, qvec, k: int = 10, docs: Iterable[str] | None = None,
        legs: tuple[str, ...] = LEGS, context: str = "", exclude: Iterable[str] = (), keep: Iterable[tuple[str, int]] = (),
    ) -> Found:
        return Found(index, index.search(query, qvec, k=k, docs=docs, legs=legs, context=context, exclude=exclude))

    def close(self) -> None:
        pass


class MilvusRetriever:
    """The corpus in Milvus (see :mod:`index.milvus`); nothing of it is kept in this process."""

    name = "milvus"
    # Several workers' folders may feed one store: a folder removes only documents it had.
    shared = True

    def __init__(self, store: "MilvusStore") -> None:
        self.store = store
        self.location = store.uri
        self._closed = False

    def open(self, embedder: Embedder) -> tuple[HybridIndex, str | None]:
        params = index_params(embedder)
        return Catalogue(params, *self.store.documents(params)), None

    def stored(self) -> bool:
        return True  # open() created the collections

    def is_current(self, index: HybridIndex) -> bool:
        return isinstance(index, Catalogue) and index.store_generation == self.store.generation()

    def update(self, index: HybridIndex, upserts: Sequence[Entry], removals: Sequence[str], embedder: Embedder,
               progress: Progress | None = None) -> HybridIndex:
        stats = self.store.write(index.params, upserts, removals, embedder, progress)
        log.info("Milvus: %d documents written (%d passages), %d removed", len(stats.written), stats.passages, len(stats.removed))
        if not isinstance(index, Catalogue) or index.store_generation != stats.generation - 1:
            return self.open(embedder)[0]  # another writer came between: list the documents again
        changed = {d.id for d in stats.written} | set(stats.removed)
        kept = [d for d in index.records if d.id not in changed]
        return Catalogue(index.params, sorted([*kept, *stats.written], key=lambda d: d.id), stats.generation)

    def revert(self, index: HybridIndex) -> bool:
        return False

    def counts(self, index: HybridIndex) -> dict[str, int]:
        return {"documents": len(index.entries), "sentences": self.store.count("sentences"),
                "passages": self.store.count("passages")}

    def search(
        self, index: HybridIndex, query: str, qvec, k: int = 10, docs: Iterable[str] | None = None,
        legs: tuple[str, ...] = LEGS, context: str = "", exclude: Iterable[str] = (), keep: Iterable[tuple[str, int]] = (),
    ) -> Found:
        view, hits = self.store.search(index.params, query, qvec, vocabulary(query, context), k=k, docs=docs, legs=legs,
                                       context=context, exclude=exclude, keep=keep)
        return Found(view, hits)

    def close(self) -> None:
        if not self._closed:  # a Milvus Lite server is released once
            self._closed = True
            self.store.close()


def open_retriever(backend: str, index_dir: Path, milvus_uri: str | None = None,
                   milvus_collection: str | None = None, rebuild: bool = False) -> Retriever:
    """The retriever for ``backend`` (:data:`~index.config.RETRIEVAL_BACKENDS`). ``index_dir``:
    the local index's folder. With ``milvus``, ``milvus_uri`` is a Milvus Lite file or a server
    URI (default: a Milvus Lite file inside ``index_dir``), and collections built with other
    settings are dropped and made again only with ``rebuild`` (else refused)."""
    if backend not in RETRIEVAL_BACKENDS:
        raise ValueError(f"backend {backend!r}: choose one of {', '.join(RETRIEVAL_BACKENDS)}")
    if backend == "faiss":
        return LocalRetriever(Path(index_dir))
    from .milvus import MilvusStore, default_uri  # pymilvus is loaded only when used

    if milvus_uri is None:
        Path(index_dir).mkdir(parents=True, exist_ok=True)
        milvus_uri = default_uri(index_dir)
    return MilvusRetriever(MilvusStore(milvus_uri, milvus_collection or DEFAULT_MILVUS_COLLECTION, rebuild=rebuild))
