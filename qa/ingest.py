"""Read a folder of documents into :class:`~qa.types.Document` values."""

from __future__ import annotations

import itertools
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
# The largest file read as a document (an upload or a file in the folder): parsing and
# indexing time grow with it.
MAX_DOCUMENT_BYTES = 5 * 1024 * 1024
# A date is a few short tokens ("Wednesday, September 15, 2021 10:30 AM"); dateutil's parser is
# quadratic in its input, so a longer candidate is not a date and is never handed to it.
MAX_DATE_TOKENS = 6
MAX_DATE_TOKEN_CHARS = 32
MAX_DATE_CHARS = 64
# No word of prose is this long: a longer run without whitespace (a blob of digits, base64) is
# refused, as segmenting and indexing it would hold the process for long stretches.
MAX_WORD_CHARS = 10_000
_LONG_WORD = re.compile(r"(?<!\S)\S{%d}" % (MAX_WORD_CHARS + 1))  # only from a word's start: linear
# A title is shown in every listing and citation: a longer first line is cut at a word.
MAX_TITLE_CHARS = 300
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
    """Parse the longest run of leading tokens (up to 6) that is a date; return it and its length.

    Tokens longer than :data:`MAX_DATE_TOKEN_CHARS` end the run and a run longer than
    :data:`MAX_DATE_CHARS` is not tried, so the time spent is bounded whatever the line holds.
    """
    tokens = []
    for m in itertools.islice(re.finditer(r"\S+", text), MAX_DATE_TOKENS):
        if len(m.group()) > MAX_DATE_TOKEN_CHARS:
            break
        tokens.append(m)
    for n in range(len(tokens), 0, -1):
        end = tokens[n - 1].end()
        chunk = text[:end].rstrip(",.;")
        if len(chunk) > MAX_DATE_CHARS or not re.search(r"\d", chunk):
            continue
        try:
            return dateparser.parse(chunk, fuzzy=False), end
        except (ValueError, OverflowError):
            continue
    return None


def long_word_at(text: str) -> int | None:
    """Where the first run of more than :data:`MAX_WORD_CHARS` non-space characters starts."""
    step = 1 << 18  # windows, so that no single regex call holds the interpreter for long
    for a in range(0, len(text), step):
        m = _LONG_WORD.search(text, a, a + step + MAX_WORD_CHARS + 1)
        if m:
            return m.start()
    return None


def read_document(path: Path, doc_id: str) -> Document:
    """Read one file as a document (see :func:`parse_document`); refuse one over the size limit."""
    with path.open("rb") as f:
        data = f.read(MAX_DOCUMENT_BYTES + 1)  # never more than the limit in memory; parse_document refuses it
    return parse_document(data, doc_id)


def _short_title(line: str) -> str:
    if len(line) <= MAX_TITLE_CHARS:
        return line
    cut = line[:MAX_TITLE_CHARS]
    return (cut.rsplit(" ", 1)[0] if " " in cut[MAX_TITLE_CHARS // 2:] else cut).rstrip() + "\u2026"


def parse_document(data: bytes, doc_id: str) -> Document:
    """Decode a file's bytes (UTF-8) and read its title and publication date.

    The time it takes is linear in the size: the title and date come from the first lines only.
    """
    if len(data) > MAX_DOCUMENT_BYTES:
        raise IngestError(f"{doc_id}: over the limit of {MAX_DOCUMENT_BYTES} bytes a document; split it into smaller files")
    if b"\x00" in data:
        raise IngestError(f"{doc_id}: looks binary (contains NUL bytes); only UTF-8 text .txt/.md files are supported")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise IngestError(f"{doc_id}: not valid UTF-8 at byte {exc.start}; re-save it as UTF-8") from None
    if text.startswith("\ufeff"):
        text = text[1:]
    at = long_word_at(text)
    if at is not None:
        raise IngestError(f"{doc_id}: a run of over {MAX_WORD_CHARS} characters without a space starts at character {at}; "
                          "that is not text (a blob of digits or encoded data?): remove it")
    title, date = "", None
    head = itertools.islice((ln for ln in text.splitlines() if ln.strip()), _HEAD_LINES)
    for line in head:
        m = _DATE_LINE.match(line)
        parsed = parse_date_prefix(m.group("rest")) if m else None
        if parsed and date is None:
            date = parsed[0].date().isoformat()
            rest = m.group("rest")[parsed[1]:].strip()
            if not title and rest:
                title = _short_title(rest)  # "date 2021-09-17 Headline…": the headline follows the date
            continue
        if not title:
            title = _short_title(line.strip().lstrip("#").strip())
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
