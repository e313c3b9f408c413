"""Read a folder of documents into :class:`~qa.types.Document` values."""

from __future__ import annotations

import logging
import os
import re
import stat
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Callable

from dateutil import parser as dateparser

from .types import Document

log = logging.getLogger(__name__)

SUPPORTED_SUFFIXES = (".txt", ".md")
# How many leading lines may hold the title and the publication date.
_HEAD_LINES = 8
_DATE_LINE = re.compile(r"^\s*(?:published|date|dated|posted|updated)\b\s*:?\s*(?P<rest>.+)$", re.IGNORECASE)


class IngestError(ValueError):
    """A file cannot be read as a document."""


@dataclass
class IngestResult:
    """Documents read, plus the files skipped with the reason (errors) and warnings."""

    documents: list[Document] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    warnings: dict[str, str] = field(default_factory=dict)
    # Files not read because ``skip`` said they are as when last read, and the (size,
    # modification time in ns) of every file seen.
    unchanged: list[str] = field(default_factory=list)
    stats: dict[str, tuple[int, int]] = field(default_factory=dict)


def parse_date_prefix(text: str) -> tuple[datetime, int] | None:
    """Parse the longest run of leading tokens (up to 6) that is a date; return it and its length."""
    tokens = list(re.finditer(r"\S+", text))[:6]
    for n in range(len(tokens), 0, -1):
        end = tokens[n - 1].end()
        chunk = text[:end].rstrip(",.;")
        if not re.search(r"\d", chunk):
            continue
        try:
            return dateparser.parse(chunk, fuzzy=False), end
        except (ValueError, OverflowError):
            continue
    return None


def read_document(path: Path, doc_id: str) -> Document:
    """Read one file as a document (see :func:`parse_document`)."""
    return parse_document(path.read_bytes(), doc_id)


def parse_document(data: bytes, doc_id: str) -> Document:
    """Decode a file's bytes (UTF-8) and read its title and publication date."""
    if b"\x00" in data:
        raise IngestError(f"{doc_id}: looks binary (contains NUL bytes); only UTF-8 text .txt/.md files are supported")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise IngestError(f"{doc_id}: not valid UTF-8 at byte {exc.start}; re-save it as UTF-8") from None
    if text.startswith("\ufeff"):
        text = text[1:]
    title, date = "", None
    for line in [ln for ln in text.splitlines() if ln.strip()][:_HEAD_LINES]:
        m = _DATE_LINE.match(line)
        parsed = parse_date_prefix(m.group("rest")) if m else None
        if parsed and date is None:
            date = parsed[0].date().isoformat()
            rest = m.group("rest")[parsed[1]:].strip()
            if not title and rest:
                title = rest  # "date 2021-09-17 Headline…": the headline follows the date
            continue
        if not title:
            title = line.strip().lstrip("#").strip()
    return Document(id=doc_id, title=title or Path(doc_id).stem, date=date, text=text)


def iter_files(folder: Path) -> list[tuple[Path, str, os.stat_result]]:
    """Supported regular files under ``folder``, recursively, with their ids (paths relative to
    it, ``/``-separated) and ``stat``, sorted by id; hidden files and folders are skipped (not
    even walked)."""
    out = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        rel = Path(root).relative_to(folder).as_posix()
        for name in files:
            path = Path(root, name)
            if name.startswith(".") or path.suffix.lower() not in SUPPORTED_SUFFIXES:
                continue
            try:
                st = path.stat()
            except OSError:
                continue  # gone (or a broken link) since the folder was listed
            if stat.S_ISREG(st.st_mode):
                out.append((path, name if rel == "." else f"{rel}/{name}", st))
    out.sort(key=lambda item: item[1])
    return out


def load_folder(folder: str | Path, skip: Callable[[str, tuple[int, int]], bool] | None = None) -> IngestResult:
    """Read every supported file under ``folder``; a bad file is reported, not fatal.

    ``skip(doc_id, (size, mtime_ns))`` may say a file is unchanged since it was last read;
    it is then listed in ``unchanged`` and not read.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise IngestError(f"documents folder {folder} does not exist or is not a folder")
    result = IngestResult()
    for path, doc_id, st in iter_files(folder):
        sig = (st.st_size, st.st_mtime_ns)
        result.stats[doc_id] = sig
        if skip is not None and skip(doc_id, sig):
            result.unchanged.append(doc_id)
            continue
        try:
            doc = read_document(path, doc_id)
        except (IngestError, OSError) as exc:
            result.errors[doc_id] = str(exc)
            continue
        if not doc.text.strip():
            result.warnings[doc_id] = f"{doc_id}: empty file, nothing to index"
        result.documents.append(doc)
    return result
