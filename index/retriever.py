"""One interface for finding passages, whichever store serves them.

A :class:`Retriever` follows the local index (``sync`` after every update) and answers
``search`` with the best passages as :class:`~index.store.Hit` s, each naming a passage row of the
index snapshot it was given. :func:`open_retriever` picks one from the backend's name:

* ``faiss``: :class:`LocalRetriever`, the hybrid faiss + BM25 index itself (the default);
* ``milvus``: :class:`MilvusRetriever`, a Milvus collection (a Milvus Lite file or a server URI)
  kept in step with the index.

``tests/test_backends.py`` runs one contract suite against both.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Protocol

from .config import DEFAULT_MILVUS_COLLECTION, RETRIEVAL_BACKENDS
from .store import LEGS, Hit, HybridIndex

if TYPE_CHECKING:
    from .milvus import MilvusPassages

log = logging.getLogger(__name__)


class Retriever(Protocol):
    name: str

    def sync(self, index: HybridIndex) -> None:
        """Serve the passages of ``index`` (called after every update of the local index)."""

    def search(
        self, index: HybridIndex, query: str, qvec, k: int = 10, docs: Iterable[str] | None = None,
        legs: tuple[str, ...] = LEGS, context: str = "", exclude: Iterable[str] = (),
    ) -> list[Hit]:
        """The best ``k`` passages of snapshot ``index`` for ``query`` (text) and ``qvec`` (its
        vector), within ``docs`` (None: all), without ``exclude``; ``context``: words a
        follow-up carries, weighed lower."""

    def close(self) -> None:
        """Let go of outside resources."""


class LocalRetriever:
    """The hybrid index searches itself: nothing to keep in step."""

    name = "faiss"

    def sync(self, index: HybridIndex) -> None:
        pass

    def search(
        self, index: HybridIndex, query: str, qvec, k: int = 10, docs: Iterable[str] | None = None,
        legs: tuple[str, ...] = LEGS, context: str = "", exclude: Iterable[str] = (),
    ) -> list[Hit]:
        return index.search(query, qvec, k=k, docs=docs, legs=legs, context=context, exclude=exclude)

    def close(self) -> None:
        pass


class MilvusRetriever:
    """A Milvus collection upserted from the index after every update (see :mod:`index.milvus`)."""

    name = "milvus"

    def __init__(self, passages: "MilvusPassages") -> None:
        self.passages = passages
        self._closed = False

    def sync(self, index: HybridIndex) -> None:
        stats = self.passages.sync(index)
        if stats.upserted or stats.deleted:
            log.info("Milvus: %d passages upserted, %d deleted", stats.upserted, stats.deleted)

    def search(
        self, index: HybridIndex, query: str, qvec, k: int = 10, docs: Iterable[str] | None = None,
        legs: tuple[str, ...] = LEGS, context: str = "", exclude: Iterable[str] = (),
    ) -> list[Hit]:
        return self.passages.search(query, qvec, k=k, docs=docs, legs=legs, index=index, context=context,
                                    exclude=exclude)

    def close(self) -> None:
        if not self._closed:  # a Milvus Lite server is released once
            self._closed = True
            self.passages.close()


def open_retriever(backend: str, index_dir: Path, milvus_uri: str | None = None,
                   milvus_collection: str | None = None) -> Retriever:
    """The retriever for ``backend`` (:data:`~index.config.RETRIEVAL_BACKENDS`). With
    ``milvus``, ``milvus_uri`` is a Milvus Lite file or a server URI (default: a Milvus Lite
    file inside ``index_dir``)."""
    if backend not in RETRIEVAL_BACKENDS:
        raise ValueError(f"backend {backend!r}: choose one of {', '.join(RETRIEVAL_BACKENDS)}")
    if backend == "faiss":
        return LocalRetriever()
    from .milvus import MilvusPassages, default_uri  # pymilvus is loaded only when used

    if milvus_uri is None:
        index_dir.mkdir(parents=True, exist_ok=True)
        milvus_uri = default_uri(index_dir)
    return MilvusRetriever(MilvusPassages(milvus_uri, milvus_collection or DEFAULT_MILVUS_COLLECTION))
