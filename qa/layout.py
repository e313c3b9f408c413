"""Where each character of a PDF's extracted text sits on its pages.

A :class:`Layout` is built by the PDF reader beside the text, one row per character of
``Document.text``, so a citation's ``[start, end)`` maps to its page and its boxes by index:
nothing is searched for again. Characters the reader inserted (a space joining two lines, the
blank line between paragraphs) have no box. Coordinates are PDF points with the origin at the
page's bottom left, as PDF readers and pypdfium2 use them.
"""

from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from index.persist import write_atomic

FORMAT_VERSION = 1


@dataclass(frozen=True, eq=False)
class Layout:
    """Per character of the text: ``page`` (1-based; 0 for an inserted character), ``line``
    (a line number unique in the document; -1 for none) and ``box`` (x0, y0, x1, y1).
    Per page: ``sizes`` (width, height in points) and ``ocr`` (read from the image by OCR).
    ``source_sha256`` is the hash of the file's bytes, to tell a page image of another version."""

    page: np.ndarray
    line: np.ndarray
    box: np.ndarray
    sizes: np.ndarray
    ocr: np.ndarray
    source_sha256: str

    def __post_init__(self) -> None:
        n = len(self.page)
        if len(self.line) != n or self.box.shape != (n, 4):
            raise ValueError(f"layout arrays disagree: {n} pages, {len(self.line)} lines, boxes {self.box.shape}")
        if self.sizes.shape != (len(self.ocr), 2):
            raise ValueError(f"layout page arrays disagree: sizes {self.sizes.shape}, ocr {self.ocr.shape}")

    @property
    def pages(self) -> int:
        return len(self.sizes)

    def page_of(self, start: int, end: int) -> int | None:
        """The page of the first placed character in ``[start, end)``."""
        placed = np.flatnonzero(self.page[start:end])
        return int(self.page[start + placed[0]]) if len(placed) else None

    def boxes(self, start: int, end: int) -> list[list[float]]:
        """``[page, x0, y0, x1, y1]`` for each line the characters ``[start, end)`` cover, in
        reading order, each the union of its characters' boxes (rounded outwards to 0.01 pt)."""
        line = self.line[start:end]
        keep = np.flatnonzero(line >= 0)
        if not len(keep):
            return []
        line, box, page = line[keep], self.box[start:end][keep], self.page[start:end][keep]
        cuts = np.flatnonzero(np.diff(line)) + 1
        out = []
        for a, b in zip([0, *cuts], [*cuts, len(line)]):
            x0, y0 = box[a:b, 0].min(), box[a:b, 1].min()
            x1, y1 = box[a:b, 2].max(), box[a:b, 3].max()
            out.append([int(page[a]), _down(x0), _down(y0), _up(x1), _up(y1)])
        return out

    def is_ocr(self, page: int | None) -> bool:
        return page is not None and 1 <= page <= self.pages and bool(self.ocr[page - 1])

    def to_bytes(self) -> bytes:
        buf = io.BytesIO()
        meta = json.dumps({"version": FORMAT_VERSION, "source_sha256": self.source_sha256})
        np.savez_compressed(buf, page=self.page, line=self.line, box=self.box, sizes=self.sizes, ocr=self.ocr,
                            meta=np.frombuffer(meta.encode(), dtype=np.uint8))
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> "Layout":
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            meta = json.loads(z["meta"].tobytes().decode())
            if meta.get("version") != FORMAT_VERSION:
                raise ValueError(f"layout format {meta.get('version')}, expected {FORMAT_VERSION}")
            return cls(page=z["page"], line=z["line"], box=z["box"], sizes=z["sizes"], ocr=z["ocr"],
                       source_sha256=meta["source_sha256"])


def _down(v: float) -> float:
    return round(math.floor(float(v) * 100) / 100, 2)


def _up(v: float) -> float:
    return round(math.ceil(float(v) * 100) / 100, 2)


class LayoutBuilder:
    """Appends text with or without boxes and keeps the :class:`Layout` rows in step."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.page: list[np.ndarray] = []
        self.line: list[np.ndarray] = []
        self.box: list[np.ndarray] = []

    def text(self, s: str) -> None:
        """Append characters the reader inserted (no box)."""
        if s:
            self.parts.append(s)
            self.page.append(np.zeros(len(s), np.int32))
            self.line.append(np.full(len(s), -1, np.int32))
            self.box.append(np.zeros((len(s), 4), np.float32))

    def placed(self, s: str, page: int, line: int, boxes: np.ndarray) -> None:
        """Append characters read from ``page``'s line ``line`` with one box each."""
        if len(s) != len(boxes):
            raise ValueError(f"{len(s)} characters but {len(boxes)} boxes")
        if s:
            self.parts.append(s)
            self.page.append(np.full(len(s), page, np.int32))
            self.line.append(np.full(len(s), line, np.int32))
            self.box.append(np.asarray(boxes, np.float32))

    def build(self, sizes: list[tuple[float, float]], ocr: list[bool], source_sha256: str) -> tuple[str, Layout]:
        def cat(arrays: list[np.ndarray], empty: np.ndarray) -> np.ndarray:
            return np.concatenate(arrays) if arrays else empty

        layout = Layout(
            page=cat(self.page, np.zeros(0, np.int32)), line=cat(self.line, np.zeros(0, np.int32)),
            box=cat(self.box, np.zeros((0, 4), np.float32)),
            sizes=np.asarray(sizes, np.float32).reshape(-1, 2), ocr=np.asarray(ocr, bool), source_sha256=source_sha256,
        )
        return "".join(self.parts), layout


def save_layout(folder: Path, key: str, layout: Layout) -> None:
    """Write ``layout`` as ``folder/key.npz`` (atomically: a reader never sees half a file)."""
    folder.mkdir(parents=True, exist_ok=True)
    write_atomic(folder / f"{key}.npz", layout.to_bytes())


def load_layout(folder: Path, key: str) -> Layout | None:
    try:
        data = (folder / f"{key}.npz").read_bytes()
    except OSError:
        return None
    return Layout.from_bytes(data)
