"""Read a folder of documents into :class:`~qa.types.Document` values."""

from __future__ import annotations

import functools
import itertools
import logging
import os
import re
import stat
import time
import unicodedata
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Callable, Protocol

from dateutil import parser as dateparser

from .types import KINDS, Document

log = logging.getLogger(__name__)

# Control characters: printed as they are, an escape sequence in a file name drives the terminal.
CONTROL_CATEGORIES = frozenset({"Cc"})
# Control, format (bidi overrides, zero-width), surrogate, private-use and line/paragraph
# separator characters: invisible or misleading in a name, so an upload's name may hold none.
HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Zl", "Zp"})


def first_hidden(name: str, categories: frozenset[str] = HIDDEN_CATEGORIES) -> str | None:
    """The first character of ``name`` in one of the Unicode ``categories``, if any."""
    return next((c for c in name if unicodedata.category(c) in categories), None)


SUPPORTED_SUFFIXES = tuple(KINDS)
# The largest file read as a document (an upload or a file in the folder): parsing and
# indexing time grow with it. PDF, Word and web pages carry markup, fonts and images besides
# their text, so they may be larger; the text extracted from any file is held to the first.
MAX_DOCUMENT_BYTES = 5 * 1024 * 1024
MAX_PACKED_BYTES = 16 * 1024 * 1024
# When a read must end (``time.monotonic()``), set in the reading thread by a caller with a time
# limit (the upload API's): its caller has answered by then, and the work would be wasted.
PARSE_DEADLINE: ContextVar[float | None] = ContextVar("parse_deadline", default=None)
# Where a long read has got to ("page 120 of 500"), for a caller that shows it (a folder's).
READ_PROGRESS: ContextVar[Callable[[str], None] | None] = ContextVar("read_progress", default=None)
# A date is a few short tokens ("Wednesday, September 15, 2021 10:30 AM"); dateutil's parser is
# quadratic in its input, so a longer candidate is not a date and is never handed to it.
MAX_DATE_TOKENS = 6
MAX_DATE_TOKEN_CHARS = 32
MAX_DATE_CHARS = 64
_DATE_DEFAULTS = (datetime(2001, 1, 1), datetime(2002, 2, 2))
# No word of prose is this long: a longer run without whitespace (a blob of digits, base64) is
# refused, as segmenting and indexing it would hold the process for long stretches.
MAX_WORD_CHARS = 10_000
_LONG_WORD = re.compile(r"(?<!\S)\S{%d}" % (MAX_WORD_CHARS + 1))  # only from a word's start: linear
# A title is shown in every listing and citation: a longer first line is cut at a word.
MAX_TITLE_CHARS = 300
# How many leading lines may hold the title and the publication date.
_HEAD_LINES = 8
# A line under a title that gives its version ("Version 3, 29 June 2007").
_VERSION_LINE = re.compile(r"\s*Version\s+(\d+(?:\.\d+)*)\b", re.IGNORECASE)
# Front matter longer than this is not looked for; a line that is only an HTML comment is no title.
_FRONT_LINES = 100
_COMMENT_LINE = re.compile(r"\s*<!--.*-->\s*$")
_DATE_LINE = re.compile(r"^\s*(?:published|date|dated|posted|updated)\b\s*:?\s*(?P<rest>.+)$", re.IGNORECASE)


def unlisted(name: str) -> str | None:
    """Why a file of this name is never indexed (a hidden file, or the lock file Word keeps
    beside a document it has open, "~$report.docx"), or None."""
    if name.startswith("."):
        return "hidden; hidden files are never indexed"
    if name.startswith("~$") and name.lower().endswith(".docx"):
        return "the name of a Word lock file (Word keeps one beside a document it has open); such files are never indexed"
    return None


class FileProgress(Protocol):
    """``progress(done, total, detail)``: ``done`` files of ``total`` read, ``detail`` saying where
    in the next one a long read is ("scan.pdf: page 3 of 40"), or None when it is not said."""

    def __call__(self, done: int, total: int, detail: str | None = None, /) -> None: ...


class IngestError(ValueError):
    """A file cannot be read as a document."""


@dataclass
class IngestResult:
    """Documents read, plus the files skipped with the reason (errors; a folder that cannot be
    read is named by its id and a final ``/``) and warnings."""

    documents: list[Document] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    warnings: dict[str, str] = field(default_factory=dict)
    # Files not read because ``skip`` said they are as when last read, and the (size,
    # modification time in ns) of every file seen.
    unchanged: list[str] = field(default_factory=list)
    stats: dict[str, tuple[int, int]] = field(default_factory=dict)


def parse_date_prefix(text: str) -> tuple[str | None, int] | None:
    """Parse the longest run of leading tokens (up to 6) that is a date; return its ISO form, as
    precise as the text ("2020-05-03", "2020-05", "2020"; None without a year), and its length.

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
            # dateutil fills what the text leaves out from its default (today): parse against
            # two defaults, and a part that differs between them was not in the text.
            a, b = (dateparser.parse(chunk, fuzzy=False, default=d) for d in _DATE_DEFAULTS)
        except (ValueError, OverflowError):
            continue
        iso = a.date().isoformat()
        if a.year != b.year:
            return None, end  # "5 May", "2 days ago": no year to place the document in
        return iso if a.day == b.day else iso[:7] if a.month == b.month else iso[:4], end
    return None


def long_word_at(text: str) -> int | None:
    """Where the first run of more than :data:`MAX_WORD_CHARS` non-space characters starts."""
    step = 1 << 18  # windows, so that no single regex call holds the interpreter for long
    for a in range(0, len(text), step):
        m = _LONG_WORD.search(text, a, a + step + MAX_WORD_CHARS + 1)
        if m:
            return m.start()
    return None


def max_bytes(doc_id: str) -> int:
    """The largest file of ``doc_id``'s kind that is read."""
    return MAX_DOCUMENT_BYTES if KINDS.get(Path(doc_id).suffix.lower()) in ("text", "markdown") else MAX_PACKED_BYTES


def read_document(path: Path, doc_id: str, max_pages: int | None = None) -> Document:
    """Read one file as a document (see :func:`parse_document`); refuse one over the size limit."""
    with path.open("rb") as f:
        data = f.read(max_bytes(doc_id) + 1)  # never more than the limit in memory; parse_document refuses it
    return parse_document(data, doc_id, max_pages)


def short_title(line: str) -> str:
    """A title for listings: the line, cut at a word after :data:`MAX_TITLE_CHARS`."""
    if len(line) <= MAX_TITLE_CHARS:
        return line
    cut = line[:MAX_TITLE_CHARS]
    return (cut.rsplit(" ", 1)[0] if " " in cut[MAX_TITLE_CHARS // 2:] else cut).rstrip() + "\u2026"


def versioned(title: str, next_line: str | None) -> str:
    """``title`` ending with the version ``next_line`` gives, unless it says one already:
    "GNU GENERAL PUBLIC LICENSE" over "Version 3, 29 June 2007" is "… Version 3". Two texts
    under one heading are told apart by it; the date is left out."""
    version = _VERSION_LINE.match(next_line) if next_line else None
    return f"{title} Version {version.group(1)}" if version and "version" not in title.lower() else title


def document_title(own: str, text: str) -> str:
    """A document's title: its own (from the file's metadata) or else the text's first non-empty
    line, with the version the next line gives when that first line is the title."""
    lines = [m.group().strip() for m in itertools.islice(re.finditer(r"[^\n]*\S[^\n]*", text), 2)]
    own = own.strip()
    if not lines or own and own.casefold().split() != lines[0].casefold().split():
        return own
    return versioned(own or lines[0], lines[1] if len(lines) > 1 else None)


def reading_at(doc_id: str, where: str) -> None:
    """A reader calls it between pages: ``where`` it is goes to :data:`READ_PROGRESS`, and a read
    that has run past :data:`PARSE_DEADLINE` stops."""
    report = READ_PROGRESS.get()
    if report is not None:
        report(f"{doc_id}: {where}")
    deadline = PARSE_DEADLINE.get()
    if deadline is not None and time.monotonic() > deadline:
        raise IngestError(f"{doc_id}: reading stopped at {where}, past the time allowed for it; split it into smaller files")


def parse_document(data: bytes, doc_id: str, max_pages: int | None = None) -> Document:
    """Read a file's bytes as a document of the kind its suffix names (see :data:`KINDS`).

    ``max_pages`` bounds a PDF's pages (default :data:`qa.formats.pdf.MAX_PAGES`). Whatever the
    format, the extracted text is held to the text limits (size, no endless word).
    """
    limit = max_bytes(doc_id)
    if len(data) > limit:
        raise IngestError(f"{doc_id}: over the limit of {limit} bytes a document of this kind; split it into smaller files")
    kind = KINDS.get(Path(doc_id).suffix.lower(), "text")
    if kind in ("text", "markdown"):
        return parse_text(data, doc_id, kind)
    try:
        if kind == "pdf":
            from .formats.pdf import parse_pdf

            doc = parse_pdf(data, doc_id, max_pages=max_pages)
        elif kind == "docx":
            from .formats.docx import parse_docx

            doc = parse_docx(data, doc_id)
        else:
            from .formats.html import parse_html

            doc = parse_html(data, doc_id)
    except IngestError:
        raise
    except Exception as exc:
        # Whatever a third-party reader raises on a file it cannot handle is that file's problem:
        # it is refused by name (the traceback goes to the log at INFO, not to a terminal that
        # shows the refusal anyway), and the other files are read.
        log.info("reading %s failed", doc_id, exc_info=True)
        raise IngestError(f"{doc_id}: could not be read as {kind} ({type(exc).__name__}: {str(exc)[:200]})") from None
    check_text(doc.text, doc_id)
    return doc


def check_text(text: str, doc_id: str) -> None:
    """Refuse extracted text that is too large or holds an endless word (see the limits above)."""
    if len(text) > MAX_DOCUMENT_BYTES:
        raise IngestError(f"{doc_id}: {len(text)} characters of text; the limit is {MAX_DOCUMENT_BYTES}: split it into smaller files")
    at = long_word_at(text)
    if at is not None:
        raise IngestError(f"{doc_id}: a run of over {MAX_WORD_CHARS} characters without a space starts at character {at}; "
                          "that is not text (a blob of digits or encoded data?): remove it")


def parse_text(data: bytes, doc_id: str, kind: str = "text") -> Document:
    """Decode a plain-text file's bytes (UTF-8, or UTF-16 after its byte-order mark, as Windows
    Notepad saves "Unicode") and read its title and publication date.

    The time it takes is linear in the size: the title and date come from the first lines only.
    """
    encoding = "utf-16" if data[:2] in (b"\xff\xfe", b"\xfe\xff") else "utf-8"
    if encoding == "utf-8" and b"\x00" in data:
        if _utf16_without_mark(data):
            raise IngestError(f"{doc_id}: looks like UTF-16 text without its byte-order mark; re-save it as UTF-8")
        raise IngestError(f"{doc_id}: looks binary (contains NUL bytes); a .txt/.md file must be UTF-8 text")
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise IngestError(f"{doc_id}: not valid {encoding.upper()} at byte {exc.start}; re-save it as UTF-8") from None
    if text.startswith("\ufeff"):
        text = text[1:]
    if "\x00" in text:
        raise IngestError(f"{doc_id}: looks binary (contains NUL characters); a .txt/.md file must be text")
    check_text(text, doc_id)
    title, date = "", None
    lines = text.splitlines()
    front = _front_matter(lines) if kind == "markdown" else 0
    for line in lines[1:front - 1] if front else ():  # the front matter's "title: …" and "date: …" come first
        key, _, value = line.partition(":")
        value = " ".join(value.strip().strip("\"'").split())
        if key.strip().lower() == "title" and not title and any(c.isalnum() for c in value):
            title = short_title(value)
        parsed = parse_date_prefix(value) if key.strip().lower() == "date" and date is None else None
        if parsed:
            date = parsed[0]
    if kind == "markdown":
        # The text a rendered page shows, which citations quote (qa/formats/markdown.py): no
        # front matter, link targets, fences or table rules; the title is its first line.
        from .formats.markdown import markdown_text

        # A file with nothing to render (prose, ATX headings, inline code) keeps its words and lines;
        # as in any block, runs of spaces become one and CR LF line ends LF.
        text = markdown_text("\n".join(lines[front:])) + ("\n" if text.endswith("\n") else "")
        check_text(text, doc_id)  # dropped tags join words: "a<b >a<b >…" renders as one endless word
        lines, front = text.split("\n"), 0
    head = list(itertools.islice((ln for ln in lines[front:] if ln.strip() and not _COMMENT_LINE.match(ln)), _HEAD_LINES))
    for i, line in enumerate(head):
        m = _DATE_LINE.match(line)
        parsed = parse_date_prefix(m.group("rest")) if m else None
        if parsed and date is None:
            date = parsed[0]
            rest = m.group("rest")[parsed[1]:].strip()
            if not title and rest:
                title = short_title(rest)  # "date 2019-05-02 Headline…": the headline follows the date
            continue
        if not title:
            title = short_title(versioned(line.strip().lstrip("#").strip(), head[i + 1] if i + 1 < len(head) else None))
    return Document(id=doc_id, title=title or Path(doc_id).stem, date=date, text=text, kind=kind)


def _utf16_without_mark(data: bytes) -> bool:
    """Do the first bytes read as mostly-Latin UTF-16 text: NUL in every other byte, always the
    same half, and printable characters once decoded in that byte order?"""
    sample = data[:min(len(data), 4096) // 2 * 2]  # whole code units
    even, odd = sample[0::2].count(0), sample[1::2].count(0)
    if len(sample) < 16 or min(even, odd) or max(even, odd) < len(sample) // 4:
        return False
    text = sample.decode("utf-16-le" if odd else "utf-16-be", errors="replace")
    return all(c.isprintable() or c in "\t\n\r\f" for c in text)


def _front_matter(lines: list[str]) -> int:
    """How many leading lines are YAML front matter ("---" … "---" or "..."); 0 if none."""
    if not lines or lines[0].rstrip() != "---":
        return 0
    for i, line in enumerate(itertools.islice(lines, 1, _FRONT_LINES), start=1):
        if line.rstrip() in ("---", "..."):
            return i + 1
    return 0


def iter_files(
    folder: Path, refused: dict[str, str] | None = None, notes: dict[str, str] | None = None,
) -> list[tuple[Path, str, os.stat_result]]:
    """Supported regular files under ``folder``, recursively, with their ids (paths relative to
    it, ``/``-separated) and ``stat``, sorted by id; hidden files and folders are skipped (not
    even walked), and so are Word's lock files (see :func:`unlisted`). A link to a file outside
    ``folder`` (``/etc/passwd``, ``/proc/…``), a name that is not valid UTF-8 or holds control
    characters, and a subfolder that cannot be read (its id ends in ``/``) are not listed but put
    in ``refused`` (id: why), the id printable; a link to a folder, never followed, a link that
    leads nowhere and a pipe, socket or device are put in ``notes``."""
    out = []
    inside = folder.resolve()

    def unreadable(err: OSError) -> None:
        rel = Path(err.filename).relative_to(folder).as_posix() + "/"
        if rel == "./":
            raise IngestError(f"documents folder {folder} cannot be read ({err.strerror})")
        if refused is not None:
            refused[rel] = f"{rel}: the folder cannot be read ({err.strerror}); its files stay as last indexed"

    for root, dirs, files in os.walk(folder, onerror=unreadable):
        rel = Path(root).relative_to(folder).as_posix()
        for d in dirs:
            if not d.startswith(".") and notes is not None and os.path.islink(os.path.join(root, d)):
                linked = d if rel == "." else f"{rel}/{d}"
                notes[linked + "/"] = f"{linked}/: a link to a folder, not followed (move or copy the files in)"
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            path = Path(root, name)
            if unlisted(name) or path.suffix.lower() not in SUPPORTED_SUFFIXES:
                continue
            doc_id = name if rel == "." else f"{rel}/{name}"
            try:
                doc_id.encode("utf-8")
                bad = "holds control characters" if first_hidden(doc_id, CONTROL_CATEGORIES) else ""
                shown = doc_id.encode("unicode_escape").decode("ascii") if bad else doc_id
            except UnicodeEncodeError:  # os.walk keeps undecodable bytes as lone surrogates
                bad = "is not valid UTF-8"
                shown = doc_id.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
            if bad:
                if refused is not None:
                    refused[shown] = f"{shown}: the file name {bad}; rename the file"
                continue
            try:
                st = path.stat()
                outside = path.is_symlink() and not path.resolve().is_relative_to(inside)
            except (OSError, RuntimeError):  # gone since the folder was listed, or a link to nothing
                if notes is not None and path.is_symlink():
                    notes[doc_id] = f"{doc_id}: a link that leads nowhere (a broken link or a loop); not read"
                continue
            if outside:
                if refused is not None:
                    refused[doc_id] = f"{doc_id}: a link to a file outside the documents folder; not read"
                continue
            if stat.S_ISREG(st.st_mode):
                out.append((path, doc_id, st))
            elif notes is not None and not stat.S_ISDIR(st.st_mode):
                notes[doc_id] = f"{doc_id}: not a regular file (a pipe, socket or device); not read"
    out.sort(key=lambda item: item[1])
    return out


def load_folder(
    folder: str | Path, skip: Callable[[str, tuple[int, int]], bool] | None = None, max_pages: int | None = None,
    progress: FileProgress | None = None,
) -> IngestResult:
    """Read every supported file under ``folder``; a bad file is reported, not fatal.

    ``skip(doc_id, (size, mtime_ns))`` may say a file is unchanged since it was last read;
    it is then listed in ``unchanged`` and not read. ``max_pages`` bounds a PDF's pages;
    ``progress(done, total)`` is called before each file (``done`` files read), ``progress(done,
    total, detail)`` between the pages of a long one, and ``progress(total, total)`` at the end.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise IngestError(f"documents folder {folder} does not exist or is not a folder")
    result = IngestResult()
    files = iter_files(folder, result.errors, result.warnings)
    for done, (path, doc_id, st) in enumerate(files):
        if progress is not None:
            progress(done, len(files))
        sig = (st.st_size, st.st_mtime_ns)
        result.stats[doc_id] = sig
        if skip is not None and skip(doc_id, sig):
            result.unchanged.append(doc_id)
            continue
        where = READ_PROGRESS.set(None if progress is None else functools.partial(progress, done, len(files)))
        try:
            doc = read_document(path, doc_id, max_pages)
        except IngestError as exc:
            result.errors[doc_id] = str(exc)
            continue
        except OSError as exc:  # its own text repeats the path, relative to where qa was started
            result.errors[doc_id] = f"{doc_id}: the file cannot be read ({exc.strerror or type(exc).__name__})"
            continue
        finally:
            READ_PROGRESS.reset(where)
        if not doc.text.strip():
            result.warnings[doc_id] = f"{doc_id}: empty file, nothing to index"
        elif doc.warnings:
            result.warnings[doc_id] = "; ".join(doc.warnings)
        result.documents.append(doc)
    if progress is not None and files:
        progress(len(files), len(files))
    return result
