"""The Bot: keeps the index in step with the documents folder and answers questions."""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import logging
import os
import secrets
import stat
import threading
import time
import unicodedata
from collections import OrderedDict
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Collection, Iterable, Iterator, Sequence

from index.build import Unindexable
from index.embedder import Embedder, load_embedder
from index.persist import write_atomic
from index.records import WAIT_SAID_S
from index.retriever import Found, Retriever, open_retriever
from index.store import LEGS, Entry, HybridIndex, IndexBusy, IndexStoreError, content_hash  # noqa: F401 - IndexBusy for callers
from index.text import terms, words

from .agreement import SAME_MATTER, Normal, agrees, may_disagree, normalise
from .answerer import Answerer, name_terms, named_documents, without_names
from .conversation import resolve
from .ingest import SUPPORTED_SUFFIXES, FileProgress, IngestError, first_hidden, load_folder, max_bytes, parse_document, unlisted
from .layout import Layout, load_layout, save_layout
from .dates import answer_date
from .feedback import FEEDBACK_FILE, FeedbackError, FeedbackStore, Span, conversation
from .types import Answer, Citation, Corroboration, Document, Retrieved

log = logging.getLogger(__name__)

INDEX_DIRNAME = ".qa-index"
# In the index folder: size, modification time and hash of each file as last read, so a sync
# reads only files whose size or time changed (like git's index).
FILE_STATS = "files.json"
# In the index folder: each PDF's layout (see qa.layout), named by layout_key.
LAYOUTS = "layouts"
# Layouts kept in memory for placing citations and drawing pages.
LAYOUT_CACHE = 32
MAX_QUESTION_CHARS = 2000
# A conversation limited to at most this many documents is "kept to a few documents": every
# later turn there, once an earlier turn was answered, is held to the follow-up threshold
# (fit on all of CoQA's later turns, whether or not they read as follow-ups).
FEW_DOCUMENTS = 3


def is_settled(history: Sequence[Turn], docs: Sequence[str] | None) -> bool:
    """Is the next turn *settled*: in a conversation kept to at most :data:`FEW_DOCUMENTS`
    documents, after an earlier turn was answered there (held to the follow-up threshold)."""
    if docs is None or len(docs) > FEW_DOCUMENTS:
        return False
    return any(not t.answer.abstained and t.answer.citations and t.answer.citations[0].doc in docs for t in history)


class QuestionError(ValueError):
    """The question cannot be asked (empty, too long, unknown document)."""


class NoDocumentsError(QuestionError):
    """No document is left to ask: none is dated within the ``after``/``before`` range."""


# Words that only close or greet a chat turn ("Thanks!", "ok, bye"): such a turn asks nothing, and
# read as a follow-up it was answered with a quote about the last topic.
_PLEASANTRIES = frozenset("thanks thank you thx ty ok okay k bye goodbye cheers".split())
# Greetings and praise are chat too, but also words a question may be about when it asks: "Nice?"
# (the city), "Hello?" (the song).
_GREETINGS = frozenset("great cool nice hi hello hey awesome perfect".split())


def check_question(question: object) -> str:
    """The question stripped, or :class:`QuestionError` saying why it cannot be asked."""
    if not isinstance(question, str) or not question.strip():
        raise QuestionError("the question is empty: ask something about the documents")
    question = question.strip()
    if len(question) > MAX_QUESTION_CHARS:
        raise QuestionError(f"the question has {len(question)} characters; the limit is {MAX_QUESTION_CHARS}")
    if not any(c.isalnum() for c in question):  # "?" or "👍" was answered from the last turn's topic
        raise QuestionError("the question has no words: ask something about the documents")
    chat = _PLEASANTRIES if question.endswith("?") else _PLEASANTRIES | _GREETINGS
    if all(w.group().lower() in chat for w in words(question)):
        raise QuestionError("that reads as chat, not a question: ask something about the documents")
    try:
        question.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate ("\ud800"): it cannot be embedded, stored or sent back
        raise QuestionError("the question holds invalid Unicode (a lone surrogate); type it again") from None
    return question


# The writers' lease: a file in the index folder that one writer at a time holds locked (flock).
WRITER_LOCK = "writer.lock"
WRITER_WAIT_S = 600.0
# When a write must give up waiting for its turn (time.monotonic()), set in the writing thread by
# a caller whose client waits (the API's); every writer, the chat page's too, is held to it.
WRITE_DEADLINE: ContextVar[float | None] = ContextVar("write_deadline", default=None)
# How often a reader looks whether another process (`qa index`, a second server) has written a
# newer index than the one it answers from: one small file read (faiss) or query (Milvus).
NEWER_CHECK_S = 2.0
# What refuses a write to the index folder: the user's permissions, or a read-only file system.
CANNOT_WRITE = (errno.EACCES, errno.EPERM, errno.EROFS)


class DocumentError(ValueError):
    """A document cannot be added or removed. ``kind`` says why, for the API's status code:
    ``invalid`` (bad name or content), ``unsupported`` (file type), ``too_large``, ``exists``,
    ``missing``. ``replaceable``: the same upload with ``replace`` would succeed (each caller
    says how to ask for it)."""

    def __init__(self, kind: str, message: str, replaceable: bool = False) -> None:
        super().__init__(message)
        self.kind = kind
        self.replaceable = replaceable


# A file name's limit on common file systems (ext4, XFS, btrfs, APFS): 255 bytes.
MAX_NAME_BYTES = 255
# Temporary files in the documents folder (hidden, so never indexed): an upload being written
# and a document being deleted. Named ``PREFIX-PID-RANDOM`` so a restart can tell its own.
UPLOAD_PREFIX, DELETING_PREFIX = ".upload-", ".deleting-"
# Temporary files this process is writing now (a second Bot over the same folder keeps off them).
_IN_FLIGHT: set[str] = set()
_IN_FLIGHT_LOCK = threading.Lock()


@dataclass(frozen=True)
class Upload:
    """What :meth:`Bot.add_documents` stored: the documents, and the ids among them that
    replaced a stored file of the same name."""

    documents: tuple[Document, ...]
    replaced: tuple[str, ...]


def clean_name(name: object) -> str:
    """An uploaded file's name in NFC, or :class:`DocumentError` naming what is wrong with it."""
    if not isinstance(name, str) or not name:
        raise DocumentError("invalid", "every uploaded file needs a file name")
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise DocumentError("invalid", f"file name {name!r} is not valid Unicode (a lone surrogate)") from None
    name = unicodedata.normalize("NFC", name)
    hidden = first_hidden(name)
    if hidden is not None:
        label = unicodedata.name(hidden, "a control character")
        raise DocumentError("invalid", f"file name {name[:80]!r} contains U+{ord(hidden):04X} ({label}); "
                                       "control, tab and bidi characters are not allowed in names")
    size = len(name.encode("utf-8"))
    if size > MAX_NAME_BYTES:
        raise DocumentError("invalid", f"file name {name[:40]!r}... is {size} bytes in UTF-8; the limit is {MAX_NAME_BYTES} bytes")
    if name != name.strip():
        raise DocumentError("invalid", f"file name {name!r} starts or ends with a space")
    if name != Path(name).name or "/" in name or "\\" in name or ".." in name or name == ".":
        raise DocumentError("invalid", f"file name {name!r} must be a plain name without folders or '..'")
    why = unlisted(name)
    if why:
        raise DocumentError("invalid", f"file name {name!r} is {why}")
    return name


def name_key(name: str) -> str:
    """What two names that a file system (or a person) may take for the same file share."""
    return unicodedata.normalize("NFC", name).casefold()


def refuse_twins(names: Sequence[str]) -> None:
    """:class:`DocumentError` if two of one upload's file names would name the same document."""
    seen: dict[str, str] = {}
    for name in names:
        doc_id = clean_name(name)
        twin = seen.get(name_key(doc_id))
        if twin is not None:
            same = "" if twin == doc_id else f" (as {twin!r}: the names differ only in letter case or Unicode form)"
            raise DocumentError("invalid", f"{doc_id} is uploaded twice in one request{same}")
        seen[name_key(doc_id)] = doc_id


def _temp_name(prefix: str) -> str:
    return f"{prefix}{os.getpid()}-{secrets.token_hex(8)}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True
    return True


@dataclass
class SyncReport:
    """What :meth:`Bot.sync` changed, and the files it could not read."""

    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    warnings: dict[str, str] = field(default_factory=dict)
    rebuilt: str | None = None
    # Why the index was opened as it is instead (it cannot be written), with ``as_is``.
    as_is: str | None = None

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


def layout_key(doc_id: str, text_sha256: str) -> str:
    """The layout file's name for a document's id and text: a new version gets a new file."""
    return content_hash(f"{doc_id}\0{text_sha256}")[:32]


def _checking(report: Callable[..., None] | None, stop: Callable[[], bool]) -> Callable[..., None]:
    """``report`` (a progress callback, or none) that first raises KeyboardInterrupt once ``stop()``."""
    def call(*args: object) -> None:
        if stop():
            raise KeyboardInterrupt
        if report is not None:
            report(*args)
    return call


def indexed_id(index: HybridIndex, doc_id: str) -> str:
    """``doc_id`` as ``index`` holds it: as given, or in Unicode NFC when only that form is there
    (uploads are stored so; a client may send the other form of the same name)."""
    if doc_id in index.doc_pos:
        return doc_id
    nfc = unicodedata.normalize("NFC", doc_id)
    return nfc if nfc in index.doc_pos else doc_id


def cited_sentence(index: HybridIndex, answer: Answer | None) -> int | None:
    """The sentence row of ``index`` that ``answer``'s top citation quotes (found from its
    document and start offset), None without an answer, a citation or that sentence."""
    if answer is None or not answer.citations:
        return None
    c = answer.citations[0]
    row = index.sentence_at(c.doc, c.start)
    # The document may have changed since: another sentence starting there is not the one cited.
    if row is None or int(index.sentences.end[row]) != c.end or not index.sentence_text(row).startswith(c.text):
        return None
    return row


class Bot:
    """Question answering over one documents folder.

    Args:
        docs: the corpus folder (document ids are paths relative to it).
        index_dir: where the index lives; default ``DOCS/.qa-index``.
        embedder: a loaded embedder to share; default loads MiniLM (``model``).
        model: model setting for the default embedder (see ``index.embedder.resolve_model``).
        embedding: how the default embedder runs (``index.config.EMBEDDING_BACKENDS``; default
            ``auto``). The command line fills both from ``qa.settings.Settings``.
        answerer: the sentence scorer; default uses ``qa/weights.json`` and a reader with int8
            weights, or float32 ones when ``quantize_reader`` is False (the command line fills it
            from ``QA_READER_PRECISION``).
        backend: where the corpus is stored and searched: ``faiss`` (the local hybrid index in
            ``index_dir``) or ``milvus`` (Milvus collections, the store of record: see
            ``index.milvus``; no copy of the corpus is kept in this process or folder).
        milvus_uri: with ``milvus``, a Milvus Lite file or a server URI (``http://host:19530``);
            default a Milvus Lite file inside the index folder.
        milvus_collection: with ``milvus``, the collection's name.
        rebuild_store: with ``milvus``, drop and rebuild collections built with other settings
            (every document stored there, other folders' too); else they are refused.
        max_pdf_pages: the most pages a PDF may have (default ``qa.formats.pdf.MAX_PAGES``).
        corroborate: after answering, look in the other documents (within the question's
            documents filter) for sentences answering the same question and say whether they
            agree (``Answer.corroboration``). A disagreeing sentence is listed only when both
            short answers are dates, numbers or names and it is about the same matter as the
            answer's (embedding cosine >= ``same_matter``; see ``qa.agreement.may_disagree``;
            None lists every disagreement, to measure what the checks keep out).
    """

    def __init__(
        self,
        docs: str | Path,
        index_dir: str | Path | None = None,
        embedder: Embedder | None = None,
        model: str | None = None,
        answerer: Answerer | None = None,
        embedding: str | None = None,
        backend: str = "faiss",
        milvus_uri: str | None = None,
        milvus_collection: str | None = None,
        rebuild_store: bool = False,
        max_pdf_pages: int | None = None,
        corroborate: bool = True,
        same_matter: float | None = SAME_MATTER,
        quantize_reader: bool = True,
    ) -> None:
        self.docs = Path(docs)
        self.corroborate = corroborate
        self.same_matter = same_matter
        self.max_pdf_pages = max_pdf_pages
        self.index_dir = Path(index_dir) if index_dir else default_index_dir(docs)
        if not index_dir and self.index_dir.is_symlink():
            # A folder from elsewhere could point its index at any folder this user may write to.
            raise ValueError(f"the index folder {self.index_dir} is a link to {os.readlink(self.index_dir)}; an index inside "
                             "the documents folder is never written through a link: remove the link, or pass --index DIR")
        if self.index_dir.exists() and not self.index_dir.is_dir():
            raise ValueError(f"the index folder {self.index_dir} is a file, not a folder: move it away, or pass --index DIR")
        self.retriever: Retriever = open_retriever(backend, self.index_dir, milvus_uri, milvus_collection, rebuild_store)
        self.backend = backend
        self.embedder = embedder or load_embedder(model, embedding)
        self.answerer = answerer or Answerer(quantize_reader=quantize_reader)
        self.legs: tuple[str, ...] = LEGS
        self._index: HybridIndex | None = None
        # Another process has written a newer index since ``_index`` was read: the next writer
        # starts from that one, while readers keep ``_index`` until the writer replaces it.
        self._behind = False
        self._checked = time.monotonic()  # when a reader last looked for a newer index on disk
        self._unusable: str | None = None  # why the newer index on disk was last found unusable
        self._newer: threading.Thread | None = None  # the last look for a newer index
        self._lock = threading.Lock()  # one writer thread at a time; readers use the current snapshot
        self.writer_wait_s = WRITER_WAIT_S
        self._layouts: OrderedDict[str, Layout] = OrderedDict()
        self.feedback = FeedbackStore(self.index_dir / FEEDBACK_FILE)

    @contextmanager
    def _writing(self, stop: Callable[[], bool] | None = None) -> Iterator[None]:
        """One writer at a time over the index folder: this process's threads, and every other
        process writing it (the flock lease on ``writer.lock``, waited for at most
        :attr:`writer_wait_s`, or until ``stop()`` is true: :class:`KeyboardInterrupt`). A writer
        then starts from the newest generation on disk, so two processes adding documents one
        after the other keep both. A :data:`WRITE_DEADLINE` set in this thread bounds both waits:
        past it, :class:`IndexBusy` and nothing is written."""
        started = time.monotonic()
        own = started + self.writer_wait_s
        given = WRITE_DEADLINE.get()
        deadline = own if given is None else min(own, given)
        # A caller's deadline counts from its request, not from here: this thread's wait would
        # understate it ("over 0 s" after an API write's 30 s).
        how_long = f"for over {self.writer_wait_s:g} s" if deadline == own else "for longer than this write may wait"
        if not self._lock.acquire(timeout=max(0.0, deadline - started)):
            raise IndexBusy(f"another write (an upload or a deletion) has been at work {how_long}; "
                            "nothing was done: try again when it is done")
        try:
            self.index_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.index_dir / WRITER_LOCK, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                said = False
                while True:
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        break
                    except BlockingIOError:
                        if stop is not None and stop():
                            raise KeyboardInterrupt from None
                        if not said and time.monotonic() - started > WAIT_SAID_S:
                            log.warning("another process is writing the index; waiting for it (at most %g s)", self.writer_wait_s)
                            said = True
                        if time.monotonic() > deadline:
                            raise IndexBusy(f"another process has been writing the index {how_long}; "
                                            "try again when it is done") from None
                        time.sleep(0.05)
                if self._index is not None and not self.retriever.is_current(self._index):
                    self._behind = True
                yield
            finally:
                os.close(fd)  # releases the lease
        finally:
            self._lock.release()

    @property
    def index(self) -> HybridIndex:
        if self._index is None:
            rebuilt = self.sync().rebuilt
            if rebuilt:  # the command line reports its own syncs; a server's log says it here
                log.warning("%s; rebuilt", rebuilt)
        elif time.monotonic() - self._checked > NEWER_CHECK_S and self._lock.acquire(blocking=False):
            self._checked = time.monotonic()
            self._newer = threading.Thread(target=self._read_newer, name="qa-newer-index", daemon=True)
            self._newer.start()
        assert self._index is not None
        return self._index

    def _read_newer(self) -> None:
        """In a thread of its own, holding the writers' lock (released here): answer from the
        index another process has written since. Readers keep theirs meanwhile; a writer of this
        process starts from the newer one itself, so none may be at work."""
        try:
            if self._index is None or self.retriever.is_current(self._index) or not self.retriever.stored():
                return
            index, rebuilt = self.retriever.open(self.embedder)
            if rebuilt:  # one this process cannot use is left to its next write to rebuild
                if rebuilt != self._unusable:
                    log.warning("the index another process wrote cannot be used here (%s); answering from the one "
                                "read before", rebuilt)
                self._unusable = rebuilt
            elif self.retriever.is_current(index):  # not an empty one, read while its generation was replaced
                self._publish(index)
                log.info("answering from the index another process wrote (%d documents)", len(index.entries))
        except Exception as exc:  # the index answered from stays; the next write says what is wrong
            log.warning("could not read the index another process wrote: %s", exc)
        finally:
            self._lock.release()

    def sync(
        self, progress: Callable[[int, int], None] | None = None, read_progress: FileProgress | None = None,
        reread: bool = False, as_is: bool = False, stop: Callable[[], bool] | None = None,
    ) -> SyncReport:
        """Bring the index in step with the folder: add, re-embed changed, drop removed.

        A file is read again when its size or modification time changed, every file with
        ``reread`` (one edited with both kept); either way only sentences whose text is new are
        embedded (those of a replaced, removed or renamed document keep their vectors). A file
        the index refused (too many sentences) is refused again unread until it changes.
        With ``as_is``, an index this process may not write is opened as last written instead
        (the report's ``as_is`` says so), for a command that only asks; else the
        ``PermissionError`` stands (a server must be able to take uploads).
        ``progress(done, total)`` reports embedding progress over the texts to embed,
        ``read_progress(done, total[, detail])`` reading progress over the files (see
        :class:`qa.ingest.FileProgress`). ``stop()`` is asked while waiting for another writer
        and at each step of progress: when true, :class:`KeyboardInterrupt` (nothing written).
        """
        if stop is not None:
            progress, read_progress = _checking(progress, stop), _checking(read_progress, stop)
        try:
            with self._writing(stop):
                return self._sync(progress, read_progress, reread)
        except OSError as exc:
            if exc.errno not in CANNOT_WRITE or not as_is or not self.retriever.stored():
                raise
            report = SyncReport()
            index = self._snapshot(report)
            if report.rebuilt:  # what is on disk cannot be used as it is
                raise
            self._publish(index)
            report.as_is = (f"the index in {self.index_dir} cannot be written ({exc.strerror}): answering from it as "
                            "last written, without the folder's changes since")
            return report

    def _sync(
        self, progress: Callable[[int, int], None] | None, read_progress: FileProgress | None, reread: bool = False,
        forget: Collection[str] = (),
    ) -> SyncReport:
        """:meth:`sync` for a writer holding the lease; ``forget``: documents to drop when their
        files are gone, though the folder's record never held them."""
        report = SyncReport()
        if self._index is None:  # first look at the folder in this process
            self.clean_leftovers()
        current = self._snapshot(report)
        known = {e.id: e.sha256 for e in current.entries}
        seen = self._read_file_stats()

        placed = {e.id for e in current.entries if e.meta.get("kind") == "pdf"}
        # PDFs indexed whose files are gone: one may be back under another name (moved, renamed),
        # and reading it again could mean minutes of OCR.
        gone = {d: seen[d][0] for d in placed if d in seen and not (self.docs / d).exists()}  # id: size
        moved: dict[str, tuple[str, Layout]] = {}
        # Files the index refused (too many sentences…) and unchanged since: not segmented again.
        refusals: dict[str, list] = {}

        def unchanged(doc_id: str, sig: tuple[int, int]) -> bool:
            # Same size and modification time (ns) as when its indexed text was read (and,
            # for a PDF, its layout is there: an index from before layouts reads it again).
            last = seen.get(doc_id)
            if last is not None and len(last) == 5 and last[2] is None:  # refused by the index: so again
                if (last[0], last[1]) == sig and last[4] == self.backend:
                    refusals[doc_id] = last
                    return True
                return False
            if last is None and gone and doc_id.lower().endswith(".pdf"):
                found = self._moved_from(current, doc_id, sig[0], gone)
                if found is not None:
                    moved[doc_id] = found
                    return True
            return (last is not None and (last[0], last[1]) == sig and known.get(doc_id) == last[2]
                    and (doc_id not in placed or self._layout_path(doc_id, last[2]).exists()))

        result = load_folder(self.docs, None if reread else unchanged, self.max_pdf_pages, read_progress)
        report.errors, report.warnings = result.errors, result.warnings
        report.errors.update({d: r[3] for d, r in refusals.items()})
        on_disk = {d.id: d for d in result.documents}
        upserts = []
        for doc_id, doc in on_disk.items():
            entry = Entry(doc.id, doc.text, doc.meta)
            self._save_layout(doc, entry.sha256)
            if doc_id not in known:
                report.added.append(doc_id)
            elif known[doc_id] != entry.sha256:
                report.changed.append(doc_id)
            else:
                continue
            upserts.append(entry)
        for doc_id, (was, layout) in moved.items():  # its text and layout as read under its old name
            old = current.entries[current.doc_pos[was]]
            meta = dict(old.meta)
            if meta.get("title") == Path(was).stem:  # a title that was the file's name follows it
                meta["title"] = Path(doc_id).stem
            save_layout(self.index_dir / LAYOUTS, layout_key(doc_id, old.sha256), layout)
            report.added.append(doc_id)
            upserts.append(Entry(doc_id, old.text, meta))
        # A file that exists but cannot be read now keeps its last good version, and so do the
        # files of a folder that cannot be read.
        present = set(on_disk) | set(result.unchanged)
        closed = tuple(k for k in result.errors if k.endswith("/"))
        report.removed = [d for d in known if d not in present and d not in result.errors and not d.startswith(closed)
                          and (d in seen or d in forget or not self.retriever.shared)]
        while report.touched or not self.retriever.stored():
            try:
                current = self.retriever.update(current, upserts, report.removed, self.embedder, progress)
                break
            except Unindexable as exc:  # refused like unreadable files; the others are indexed
                report.errors.update(exc.refused)
                refusals.update({d: [*result.stats[d], None, why, self.backend] for d, why in exc.refused.items()
                                 if d in result.stats})
                upserts = [e for e in upserts if e.id not in exc.refused]
                report.added = [d for d in report.added if d not in exc.refused]
                report.changed = [d for d in report.changed if d not in exc.refused]
        self._publish(current)
        self._drop_stale_layouts(current)
        stats = {e.id: [*result.stats[e.id], e.sha256] for e in current.entries
                 if e.id in result.stats and e.id in present and e.id not in report.errors}
        stats.update(refusals)
        if stats != seen:
            self._write_file_stats(stats)
        return report

    def _moved_from(
        self, index: HybridIndex, doc_id: str, size: int, gone: dict[str, int],
    ) -> tuple[str, Layout] | None:
        """The gone PDF that ``doc_id`` is byte for byte (its layout keeps the file's hash), and
        its layout, if its text is kept in the index; it is then taken out of ``gone``."""
        digest = None
        for was, was_size in gone.items():
            entry = index.entries[index.doc_pos[was]]
            if was_size != size or len(entry.text) != entry.size:  # Milvus keeps no texts
                continue
            layout = self.layout(was, index)
            if layout is None:
                continue
            try:
                digest = digest or hashlib.sha256((self.docs / doc_id).read_bytes()).hexdigest()
            except OSError:  # read as any new file is, which reports what is wrong
                return None
            if digest == layout.source_sha256:
                del gone[was]
                return was, layout
        return None

    def _read_file_stats(self) -> dict[str, list]:
        """``{id: [size, mtime_ns, sha256]}`` of each file when its indexed text was read, and
        ``[size, mtime_ns, None, why, backend]`` of each the index refused."""
        try:
            data = json.loads((self.index_dir / FILE_STATS).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def _write_file_stats(self, stats: dict[str, list]) -> None:
        self.index_dir.mkdir(parents=True, exist_ok=True)
        write_atomic(self.index_dir / FILE_STATS, json.dumps(stats).encode("utf-8"))

    def check_upload(self, name: str, data: bytes, replace: bool = False) -> Document:
        """The document ``name`` would become, or :class:`DocumentError` saying why it would be
        refused; writes nothing (lets a caller refuse a batch before storing any of it). Pass the
        result to :meth:`add_documents` as the item's third part so the file is parsed once."""
        doc = self._parse_upload(name, data)
        self._refuse_existing(doc.id, self.index, replace)
        return doc

    def add_document(self, name: str, data: bytes, replace: bool = False, parsed: Document | None = None) -> Document:
        """Store one uploaded file and index it, all or nothing (see :meth:`add_documents`)."""
        return self.add_documents([(name, data, parsed)], replace=replace).documents[0]

    def add_documents(self, items: Sequence[tuple[str, bytes, Document | None]], replace: bool = False) -> Upload:
        """Store uploaded files in the folder and index them in one step, all or nothing.

        ``items``: ``(name, data, parsed)``, where ``parsed`` is :meth:`check_upload`'s result
        for the same name and bytes, or None to parse here. Each file is written under a hidden
        temporary name, one new index generation holding all of them is written and switched
        to, and only then are the files renamed into place (a replaced file parked until all
        are). On any failure the folder and the index are left as they were, and readers keep
        answering from the previous snapshot until the new one is complete.
        """
        refuse_twins([name for name, _, _ in items])
        docs = [parsed if parsed is not None and parsed.id == clean_name(name) else self._parse_upload(name, data)
                for name, data, parsed in items]
        ids = [d.id for d in docs]
        with self._writing():
            current = self._snapshot()
            for doc_id in ids:
                self._refuse_existing(doc_id, current, replace)
            replaced = [i for i in ids if i in current.doc_pos and (self.docs / i).is_file()]
            temps = {i: self.docs / _temp_name(UPLOAD_PREFIX) for i in ids}
            parked = {i: self.docs / _temp_name(DELETING_PREFIX) for i in replaced}
            with _IN_FLIGHT_LOCK:
                _IN_FLIGHT.update(p.name for p in (*temps.values(), *parked.values()))
            saved = False
            placed: list[str] = []
            try:
                entries = []
                for doc, (_, data, _) in zip(docs, items):
                    tmp, target = temps[doc.id], self.docs / doc.id
                    # Created like any new file (0666 less the umask), not mkstemp's 0600; a
                    # replaced file keeps its own mode.
                    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
                    with os.fdopen(fd, "wb") as f:
                        f.write(data)
                        f.flush()
                        os.fsync(f.fileno())
                    if target.is_file():
                        os.chmod(tmp, stat.S_IMODE(target.stat().st_mode))
                    entry = Entry(doc.id, doc.text, doc.meta)
                    self._save_layout(doc, entry.sha256)
                    entries.append(entry)
                try:
                    updated = self.retriever.update(current, entries, [], self.embedder)
                except Unindexable as exc:
                    raise DocumentError("too_large", str(exc)) from None
                saved = True
                for doc_id in ids:
                    if doc_id in parked:
                        os.replace(self.docs / doc_id, parked[doc_id])
                    os.replace(temps[doc_id], self.docs / doc_id)
                    placed.append(doc_id)
            except BaseException:
                for doc_id in reversed(ids):  # put back what was moved, newest first
                    if doc_id in placed:
                        (self.docs / doc_id).unlink(missing_ok=True)
                    if doc_id in parked and parked[doc_id].exists():
                        os.replace(parked[doc_id], self.docs / doc_id)
                for tmp in temps.values():
                    tmp.unlink(missing_ok=True)
                if saved:  # the folder did not change: the index on disk must not either
                    self._restore(current, ids)
                raise
            finally:
                with _IN_FLIGHT_LOCK:
                    _IN_FLIGHT.difference_update(p.name for p in (*temps.values(), *parked.values()))
            for p in parked.values():
                p.unlink(missing_ok=True)
            self._publish(updated)
            self._note_read(entries)
        return Upload(tuple(docs), tuple(replaced))

    def _note_read(self, entries: Sequence[Entry]) -> None:
        """Record uploaded files as a sync records what it read: the next sync need not read
        them again, and knows them as this folder's."""
        stats = self._read_file_stats()
        for e in entries:
            try:
                st = (self.docs / e.id).stat()
            except OSError:  # already gone again: the next sync sees to it
                continue
            stats[e.id] = [st.st_size, st.st_mtime_ns, e.sha256]
        self._write_file_stats(stats)

    def _restore(self, index: HybridIndex, written: Sequence[str]) -> None:
        """Put the store back as ``index`` after a failed upload of ``written``."""
        try:
            if not self.retriever.revert(index):
                # The store keeps no texts: read back the folder, as restored, dropping what the
                # upload added (a shared store keeps what a folder never held), from the store as
                # the upload left it.
                self._behind = True
                self._sync(None, None, forget=written)
        except Exception:  # pragma: no cover - the original error matters more; a sync repairs it
            log.exception("could not restore the index after a failed update")

    def delete_document(self, doc_id: str) -> None:
        """Remove a document from the folder and the index, all or nothing."""
        with self._writing():
            current = self._snapshot()
            doc_id = indexed_id(current, doc_id)
            if doc_id not in current.doc_pos:
                raise DocumentError("missing", f"no document {doc_id!r}")
            target = self.docs / doc_id
            # Park the file under a hidden name (ingest skips it) until the index no longer has
            # it; the name does not grow with the document's, so any stored name can be deleted.
            parked = self.docs / _temp_name(DELETING_PREFIX)
            if target.is_file() or target.is_symlink():
                os.replace(target, parked)
            try:
                updated = self.retriever.update(current, [], [doc_id], self.embedder)
            except BaseException:
                if parked.exists():
                    os.replace(parked, target)
                raise
            parked.unlink(missing_ok=True)
            self._publish(updated)

    def _parse_upload(self, name: str, data: bytes) -> Document:
        name = clean_name(name)
        if Path(name).suffix.lower() not in SUPPORTED_SUFFIXES:
            raise DocumentError("unsupported", f"{name}: only {', '.join(SUPPORTED_SUFFIXES)} files are supported")
        if len(data) > max_bytes(name):
            raise DocumentError("too_large", f"{name}: {len(data)} bytes; the limit for this kind of file is {max_bytes(name)}")
        try:
            doc = parse_document(data, name, self.max_pdf_pages)
        except IngestError as exc:
            raise DocumentError("invalid", str(exc)) from None
        if not doc.text.strip():
            raise DocumentError("invalid", f"{name}: the file is empty")
        return doc

    def _refuse_existing(self, doc_id: str, index: HybridIndex, replace: bool) -> None:
        target = self.docs / doc_id
        if (target.exists() or target.is_symlink()) and not target.is_file():
            raise DocumentError("exists", f"{doc_id} is the name of a folder (or another non-file) in the documents folder; "
                                          "choose another name")
        if not replace and (doc_id in index.doc_pos or target.exists()):
            raise DocumentError("exists", f"{doc_id} already exists", replaceable=True)
        key = name_key(doc_id)
        try:
            on_disk = [n for n in os.listdir(self.docs) if not n.startswith(".")]
        except OSError:
            on_disk = []
        twin = next((d for d in [*on_disk, *index.doc_ids] if d != doc_id and name_key(d) == key), None)
        if twin is not None:
            raise DocumentError("exists", f"{doc_id} differs from the existing document {twin!r} only in letter case or "
                                          "Unicode form; use that exact name to replace it, or another name")

    def clean_leftovers(self) -> list[str]:
        """Remove the temporary files a crashed process left in the folder (uploads being
        written, documents being deleted); return their names."""
        removed: list[str] = []
        try:
            entries = list(os.scandir(self.docs))
        except OSError:
            return removed
        for e in entries:
            if not e.name.startswith((UPLOAD_PREFIX, DELETING_PREFIX)) or not e.is_file(follow_symlinks=False):
                continue
            with _IN_FLIGHT_LOCK:
                if e.name in _IN_FLIGHT:
                    continue
            pid = e.name.split("-", 2)[1] if e.name.count("-") >= 2 else ""
            try:
                if pid.isdigit():
                    # Another live process may be writing it; a dead one's (or a reused PID's) is stale.
                    stale = int(pid) == os.getpid() or not _pid_alive(int(pid))
                else:  # an older name without the PID: left an hour, no upload takes that long
                    stale = time.time() - e.stat(follow_symlinks=False).st_mtime > 3600
                if stale:
                    os.unlink(e.path)
                    removed.append(e.name)
            except OSError:
                continue
        if removed:
            log.warning("removed %d temporary file(s) left by an interrupted upload or deletion: %s",
                        len(removed), ", ".join(removed[:5]))
        return removed

    def _layout_path(self, doc_id: str, text_sha256: str) -> Path:
        return self.index_dir / LAYOUTS / f"{layout_key(doc_id, text_sha256)}.npz"

    def _save_layout(self, doc: Document, text_sha256: str) -> None:
        if doc.layout is not None:
            save_layout(self.index_dir / LAYOUTS, layout_key(doc.id, text_sha256), doc.layout)
            self._layouts.pop(layout_key(doc.id, text_sha256), None)

    def _drop_stale_layouts(self, index: HybridIndex) -> None:
        """Remove the layout files of documents (or versions) the index no longer holds."""
        keep = {f"{layout_key(e.id, e.sha256)}.npz" for e in index.entries}
        folder = self.index_dir / LAYOUTS
        for path in folder.glob("*.npz") if folder.is_dir() else ():
            if path.name not in keep:
                path.unlink(missing_ok=True)

    def layout(self, doc_id: str, index: HybridIndex | None = None) -> Layout | None:
        """The layout of ``doc_id`` as indexed (a PDF's), or None."""
        index = index or self.index
        row = index.doc_pos.get(doc_id)
        if row is None or index.entries[row].meta.get("kind") != "pdf":
            return None
        key = layout_key(doc_id, index.entries[row].sha256)
        layout = self._layouts.get(key)
        if layout is None:
            try:
                layout = load_layout(self.index_dir / LAYOUTS, key)
            except ValueError as exc:
                log.warning("layout of %s unreadable (%s); sync the folder to read it again", doc_id, exc)
                return None
            if layout is None:
                return None
            self._layouts[key] = layout
            while len(self._layouts) > LAYOUT_CACHE:
                self._layouts.popitem(last=False)
        return layout

    def place(self, citation: Citation, index: HybridIndex | None = None) -> Citation:
        """``citation`` with its page and boxes when its document is a PDF."""
        layout = self.layout(citation.doc, index)
        if layout is None:
            return citation
        page = layout.page_of(citation.start, citation.end)
        boxes = tuple(tuple(b) for b in layout.boxes(citation.start, citation.end))
        return replace(citation, page=page, boxes=boxes, ocr=layout.is_ocr(page))

    def page_png(
        self, doc_id: str, page: int, sentence: tuple[int, int] | None = None, answer: tuple[int, int] | None = None,
    ) -> bytes:
        """PNG of a PDF's page with the characters ``sentence`` and ``answer`` (offsets into the
        document's text) highlighted; :class:`DocumentError` (``missing``) for an unknown
        document, one that is not a PDF or offsets outside its text, :class:`~qa.pages.PageError`
        for a page it lacks, a file changed since it was indexed or a page pdfium cannot draw."""
        from .pages import render_page

        index = self.index
        doc_id = indexed_id(index, doc_id)
        layout = self.layout(doc_id, index)
        if layout is None:
            known = doc_id in index.doc_pos
            raise DocumentError("missing", f"{doc_id!r} is not a PDF in the index" if known else f"no document {doc_id!r}")
        size = index.entries[index.doc_pos[doc_id]].size
        for span in (sentence, answer):
            if span is not None and not 0 <= span[0] <= span[1] <= size:
                raise DocumentError("missing", f"characters {span[0]}-{span[1]} are outside {doc_id} ({size} characters)")
        return render_page(self.docs / doc_id, layout, page, sentence, answer)

    def close(self) -> None:
        """Let go of outside resources (the Milvus connection, and a Milvus Lite file's server)."""
        if self._newer is not None:  # a look for a newer index would query a closed store
            self._newer.join(timeout=30)
        self.retriever.close()

    def _snapshot(self, report: SyncReport | None = None) -> HybridIndex:
        """The current index for a writer: the newest on disk (not synced with the folder) when
        this process has none or another has written since."""
        return self._index if self._index is not None and not self._behind else self._open(report or SyncReport())

    def _publish(self, index: HybridIndex) -> None:
        """A writer's new index, from now on the one readers use."""
        self._index, self._behind = index, False

    def _open(self, report: SyncReport) -> HybridIndex:
        index, rebuilt = self.retriever.open(self.embedder)
        if rebuilt:
            report.rebuilt = rebuilt
        return index

    def counts(self) -> dict[str, int]:
        """How many documents, sentences and passages the index holds."""
        return self.retriever.counts(self.index)

    def document_text(self, doc_id: str, index: HybridIndex | None = None) -> str:
        """The text of ``doc_id`` as indexed (citations' offsets point into it);
        :class:`DocumentError` for an unknown document, or one whose file is gone or changed
        when the store keeps no texts (Milvus: the file is read again)."""
        index = index or self.index
        pos = index.doc_pos.get(doc_id)
        if pos is None:
            raise DocumentError("missing", f"no document {doc_id!r}")
        entry = index.entries[pos]
        if len(entry.text) == entry.size:
            return entry.text
        try:
            doc = parse_document((self.docs / doc_id).read_bytes(), doc_id, self.max_pdf_pages)
        except OSError as exc:  # its text holds the file's full path, which a client is not shown
            raise DocumentError("missing", f"{doc_id}: its file cannot be read again ({exc.strerror or type(exc).__name__})") from None
        except IngestError as exc:
            raise DocumentError("missing", f"{doc_id}: its file cannot be read again ({exc})") from None
        if content_hash(doc.text) != entry.sha256:
            raise DocumentError("missing", f"{doc_id} changed since it was indexed; sync the folder to index it again")
        return doc.text

    def ask(
        self,
        question: str,
        history: Sequence[Turn] = (),
        docs: Iterable[str] | None = None,
        top_k: int = 3,
        after: str | None = None,
        before: str | None = None,
    ) -> Answer:
        """Answer ``question`` from the current index, optionally limited to ``docs`` and to the
        documents dated within ``after``..``before`` (ISO days, inclusive; see :meth:`dated`)."""
        t0 = time.perf_counter()
        question = check_question(question)
        index = self.index
        if docs is not None:
            docs = list(dict.fromkeys(docs))  # a name twice is one document (the few that settle a conversation)
            unknown = [d for d in docs if d not in index.doc_pos]
            if unknown:
                raise QuestionError(f"unknown document(s) {unknown}; known: {index.doc_ids[:20]}")
        chosen = docs  # the user's own choice: a date range is no sign that the documents answer
        if after and before and after > before:
            raise QuestionError(f"the date range is reversed: {after} is after {before}")
        if after or before:
            docs = self.dated(after, before, docs, index)
            if not docs:
                raise NoDocumentsError(f"no document is dated between {after or 'any day'} and {before or 'any day'}")
        # Resolution reads the last turn only (its search already carries what came before).
        resolved = resolve(question, [(t.question, t.answer.searched_for, t.answer.short_answer) for t in history[-1:]])
        searched_for = resolved.searched_for
        # The carried words help the lexical legs find the topic, at a lower weight; the
        # embedding is of the question itself (pronouns resolved), so they do not pull it back
        # to the last answer.
        qvec = self.embedder.embed([resolved.question])[0]
        context = " ".join(resolved.carried)
        # A follow-up's answer often sits at or just after the sentence the last turn cited.
        last = history[-1].answer if resolved.follow_up else None
        keep = [(last.citations[0].doc, last.citations[0].start)] if last is not None and last.citations else []
        # A question that names documents by file name or title ("Under the GPLv2, …") is searched
        # there: their names' words would otherwise pull in every sentence that repeats them.
        def titles() -> list[str]:  # read once per corpus
            return [e.meta.get("title", "") for e in index.entries]

        named = [d for d in named_documents(index.doc_ids, resolved.question, titles) if docs is None or d in docs]
        found = self._search(index, resolved.question, qvec, named or docs, context, keep=keep)
        # Inside the named documents their name is no sign of an answer: a clause that answers
        # lacks it, a title repeats it. The sentences are ranked and read without it.
        names = name_terms(named, [index.entries[index.doc_pos[d]].meta.get("title", "") for d in named])
        asked = without_names(resolved.question, names, resolved.carried) if named else resolved.question
        view, hits = found.index, found.hits
        previous = cited_sentence(view, last)
        t1 = time.perf_counter()
        settled = is_settled(history, chosen)
        decision = self.answerer.answer(
            asked, qvec, view, hits, top_k=top_k, context=resolved.carried,
            previous=previous, previous_confidence=last.confidence if last else 0.0, settled=settled,
            names=names & frozenset(terms(resolved.question)),
        )
        abstained, answer, citations = decision.abstained, decision.answer, decision.citations
        t2 = time.perf_counter()
        top = citations[0] if citations else None
        spanned = not abstained and top is not None and top.answer_start is not None
        when = answer_date(answer, view.entries[view.doc_pos[top.doc]].meta.get("date")) if spanned else None
        corroboration: tuple[Corroboration, ...] = ()
        timings = {"retrieve": (t1 - t0) * 1000, "answer": (t2 - t1) * 1000}
        if spanned and self.corroborate:
            corroboration = self._corroborate(index, found, resolved.question, qvec, top, docs, resolved.carried, context,
                                              decision.read)
            timings["corroborate"] = (time.perf_counter() - t2) * 1000
        timings["total"] = (time.perf_counter() - t0) * 1000
        return Answer(
            question=question, searched_for=searched_for, abstained=abstained, answer=answer,
            confidence=decision.confidence, citations=tuple(self.place(c, view) for c in citations), timings_ms=timings,
            passages=tuple(Retrieved(h.doc, h.start, h.end, h.score, h.legs) for h in (hits[j] for j in decision.passage_order)),
            answer_date=when, corroboration=corroboration,
        )

    def dated(self, after: str | None = None, before: str | None = None, docs: Iterable[str] | None = None,
              index: HybridIndex | None = None) -> list[str]:
        """The documents (of ``docs``, default all) whose date is within ``after``..``before``
        (ISO dates, both inclusive; a document without a date is left out). A document dated to
        its month or year ("2020-05") is kept when that month or year overlaps the range."""
        index = index or self.index
        out = []
        for doc_id in (docs if docs is not None else index.doc_ids):
            pos = index.doc_pos.get(doc_id)
            date = (index.entries[pos].meta.get("date") or "")[:10] if pos is not None else ""
            if date and (after is None or date >= after[:len(date)]) and (before is None or date <= before[:len(date)]):
                out.append(doc_id)
        return out

    def record_feedback(
        self, question: str, answer: Answer, verdict: str, earlier: Sequence[str] = (),
        evidence: tuple[str, int, int] | None = None, docs: Sequence[str] | None = None,
    ) -> dict:
        """Store a user's mark on ``answer`` as an eval-set conversation in :attr:`feedback`
        (see :mod:`qa.feedback`) and return it. ``evidence``: ``(doc, start, end)`` of the
        sentence that answers, for a wrong answer (None: the documents do not answer). Raises
        :class:`~qa.feedback.FeedbackError` for a question ``qa eval`` could not ask again, or
        evidence (given, or a right answer's top citation) that is no span of an indexed document."""
        for i, q in enumerate((*earlier, question)):
            try:
                check_question(q)
            except QuestionError as exc:
                raise FeedbackError("invalid", f"turn {i + 1}: {exc}") from None
        index = self.index

        def checked(doc: str, start: int, end: int) -> Span:
            pos = index.doc_pos.get(doc)
            if pos is None:
                raise FeedbackError("missing", f"unknown document {doc!r}")
            if not 0 <= start < end <= index.entries[pos].size:
                raise FeedbackError("invalid", f"characters {start}-{end} are not a span of {doc!r}")
            return Span(doc, start, end)

        span = checked(*evidence) if evidence is not None else None
        picked = span
        if verdict == "right" and answer.citations and not answer.abstained:
            top = answer.citations[0]
            picked = checked(top.doc, top.start, top.end)  # it becomes the evidence: it must be a real span
        for d in docs or ():
            if d not in index.doc_pos:
                raise FeedbackError("missing", f"unknown document {d!r}")
        if picked is not None and docs is not None and picked.doc not in docs:  # a replay could never cite it
            raise FeedbackError("invalid", f"the evidence is in {picked.doc!r}, outside the documents the "
                                "conversation is limited to")
        try:
            text = self.document_text(picked.doc, index)[picked.start:picked.end] if picked else None
        except DocumentError:
            text = None
        record = conversation(question, answer, verdict, earlier, span, docs, text)
        self.feedback.append(record)
        return record

    def _search(
        self, index: HybridIndex, question: str, qvec, docs: list[str] | None, context: str, exclude: Sequence[str] = (),
        keep: Sequence[tuple[str, int]] = (),
    ) -> Found:
        """The best 10 passages for ``question`` from the configured backend (within ``docs``,
        without ``exclude``; ``keep``: sentences the result must hold too)."""
        return self.retriever.search(index, question, qvec, k=10, docs=docs, legs=self.legs, context=context,
                                     exclude=exclude, keep=keep)

    def _corroborate(
        self, index: HybridIndex, answered: Found, question: str, qvec, top: Citation, docs: list[str] | None,
        carried: Sequence[str], context: str, read: dict,
    ) -> tuple[Corroboration, ...]:
        """Other documents' sentences answering ``question`` (within ``docs``), each with its
        short answer compared with ``top``'s (cited from ``answered``), newest document first."""
        if len(docs if docs is not None else index.doc_ids) < 2:
            return ()
        mine_view = answered.index
        others = self._search(index, question, qvec, docs, context, exclude=[top.doc])
        view = others.index
        if view is not mine_view:  # the readings already made, by the other view's rows
            s = mine_view.sentences
            read = {row: r for old, r in read.items()
                    if (row := view.sentence_at(mine_view.doc_ids[int(s.doc[old])], int(s.start[old]))) is not None}
        found = self.answerer.corroborate(question, qvec, view, others.hits, context=carried, read=read)
        if not found:
            return ()

        def read_short(c: Citation, where: HybridIndex) -> tuple[str, str | None, Normal]:
            entry = where.entries[where.doc_pos[c.doc]]
            short = c.text[c.answer_start:c.answer_end]
            date = entry.meta.get("date")
            return short, date, normalise(short, entry.text, date)

        mine = read_short(top, mine_view)[2]
        top_vec = mine_view.sentences.vecs[mine_view.sentence_at(top.doc, top.start)]
        out = []
        for c, confidence in found:
            short, date, theirs = read_short(c, view)
            same = agrees(mine, theirs)
            if not same and self.same_matter is not None and not may_disagree(
                    mine, theirs, float(view.sentences.vecs[view.sentence_at(c.doc, c.start)] @ top_vec), self.same_matter):
                continue  # likely answers some other matter, not this one differently
            out.append(Corroboration(
                doc=c.doc, title=c.title, text=c.text, start=c.start, end=c.end, answer=short,
                agrees=same, confidence=confidence, answer_start=c.answer_start, answer_end=c.answer_end,
                date=date, answer_date=answer_date(short, date),
            ))
        # Newest document first; undated ones last, in the reader's order.
        dated = sorted((c for c in out if c.date), key=lambda c: c.date or "", reverse=True)
        return tuple(dated + [c for c in out if not c.date])
