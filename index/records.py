"""The index's value types: what goes in (:class:`Entry`), what a search gives (:class:`Hit`),
the column tables the rows live in, and the index's errors."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np


class IndexStoreError(RuntimeError):
    """Base for index problems."""


class IndexMismatch(IndexStoreError):
    """The index on disk was built with other settings (schema, model, parameters)."""


class IndexDamaged(IndexMismatch):
    """The index on disk cannot be read as one (a file truncated, garbled or gone): it is
    rebuilt, as one built with other settings is."""


class IndexMissing(IndexStoreError):
    """No index exists at the given folder."""


class IndexBusy(IndexStoreError):
    """Another writer held the index's lease for longer than this one would wait."""


# A writer that has waited this long for another's lease says so (then waits on).
WAIT_SAID_S = 1.0


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class Entry:
    """A text to index: its id, full text and opaque metadata carried through."""

    id: str
    text: str
    meta: dict[str, Any]
    # Of the text: computed once, or given when already known (the manifest records it).
    sha256: str = field(default="", compare=False)
    # The text's length in characters; given where the text itself is not held (a store's
    # catalogue or candidates lists documents without their texts).
    size: int = field(default=-1, compare=False)

    def __post_init__(self) -> None:
        if not self.sha256:
            object.__setattr__(self, "sha256", content_hash(self.text))
        if self.size < 0:
            object.__setattr__(self, "size", len(self.text))


@dataclass(frozen=True, slots=True)
class Hit:
    """A retrieved passage: fused score and the 1-based rank each leg gave it."""

    passage: int
    doc: str
    start: int
    end: int
    score: float
    legs: dict[str, int]


class Table:
    """Column arrays for one kind of span (sentences or passages) plus their vectors.

    ``vecs`` may be the first rows of a larger buffer (:class:`VectorBuffer`) that later snapshots
    append to in place.
    """

    __slots__ = ("doc", "start", "end", "vecs", "buffer")

    def __init__(
        self, doc: np.ndarray, start: np.ndarray, end: np.ndarray, vecs: np.ndarray, buffer: "VectorBuffer | None" = None,
    ) -> None:
        self.doc, self.start, self.end, self.vecs, self.buffer = doc, start, end, vecs, buffer

    def __len__(self) -> int:
        return len(self.doc)


class VectorBuffer:
    """Vectors with room to grow, shared by successive snapshots.

    A snapshot sees ``rows[:n]``; appending writes past the last row any snapshot has written
    and returns a longer view, so adding a document to a large index copies only its own
    vectors (copying 450 MB of vectors into new memory took 0.6-1.7 s a time on these
    machines). Only the snapshot that wrote last may append in place; any other (an update
    derived from an older snapshot, or after a failed one) gets a fresh copy.
    """

    def __init__(self, rows: np.ndarray, filled: int) -> None:
        self.rows, self.filled = rows, filled

    @staticmethod
    def extend(t: "Table", new: np.ndarray) -> tuple[np.ndarray, "VectorBuffer"]:
        n, k = len(t.vecs), len(new)
        buf = t.buffer
        if buf is None or buf.filled != n or len(buf.rows) < n + k:
            rows = np.empty((max(int((n + k) * 1.25), n + k + 1024), new.shape[1]), dtype=np.float32)
            rows[:n] = t.vecs
            buf = VectorBuffer(rows, n)
        buf.rows[n:n + k] = new
        buf.filled = n + k
        return buf.rows[:n + k], buf
