"""Milvus as the store of record: documents, passages, sentences and term statistics.

With the ``milvus`` backend nothing of the corpus is kept in the serving process: four
collections named ``<collection>_<kind>`` hold it, and each question reads only what it needs.

* ``docs``: one row per document: id (the key), text hash and length, metadata, and its terms
  (a sparse vector of term counts keyed by :func:`~index.view.term_key`) for whole-document
  BM25. A document's row is written last and names the version (hash) its other rows belong to,
  so it is the commit: a search keeps only rows of the version the row names.
* ``passages``: offsets, the positions of their first and last sentence, the text (Milvus
  computes its BM25 sparse vector with its own ``BM25`` function for the lexical leg), our own
  term counts and the passage vector (the dense leg).
* ``sentences``: position in the document, offsets, verbatim text and vector.
* ``terms``: per term key, how many passages and documents hold it; the row with key
  :data:`TOTALS` holds the passage and document counts and their summed lengths.

A search is one ``hybrid_search`` over the passages (dense and BM25 legs fused by RRF with the
local index's ``k``), then three reads by key (the candidates' rows, their documents, their
sentences with one on either side, and the question terms' statistics). The records become a
:class:`~index.view.CandidateView` on which the candidates are re-scored, as the local index
re-scores its own, and which the answerer reads.

What differs from the local index (:meth:`HybridIndex.search`):

* No ``doc`` leg: Milvus has no per-document BM25 ranking. Whole-document BM25 still counts in
  the re-scoring, from the documents' stored terms.
* Milvus's BM25 leg is Okapi BM25 over its own analyzer's terms (standard tokenizer, lower case,
  the same stop words; Milvus Lite 3.2 accepts the stemmer filter but does not apply it); the
  re-scoring uses our BM25+ over :func:`index.text.terms` with the corpus's statistics.
* A fused search does not say which rank each leg gave a passage, so hybrid hits carry empty
  ``legs``; a single-leg search reports its ranks.

Writers: one at a time. Each writer embeds its new texts first, then takes a lease (a row of the
terms collection that it claims, waits, and checks it still holds; renewed while it writes) for
reading the old versions, writing rows and counting terms. A Milvus Lite file is opened by one
process at a time, so there the threads of that process are serialised without it.

The URI is either a Milvus Lite file (a path ending in ``.db``, embedded in this process: the
tests run it for real) or a Milvus server or cluster (``http://host:19530``), with no other change.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import random
import re
import secrets
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np

from .bm25 import B, K1
from .build import Segmented, Unindexable
from .config import DEFAULT_MILVUS_COLLECTION
from .embedder import Embedder
from .fusion import Fused
from .records import WAIT_SAID_S, Entry, Hit, IndexBusy, IndexStoreError
from .store import LEGS, OVERFETCH, RRF_K
from .text import STOPWORDS
from .view import CandidateView, CorpusStats, DocRecord, PassageRecord, SentenceRecord, build_view, term_counts, term_key, term_keys

log = logging.getLogger(__name__)

LITE_FILENAME = "milvus.db"
# Bumped when the collections' layout changes; collections with another fingerprint are rebuilt.
MILVUS_SCHEMA = 3
FINGERPRINT_PROPERTY = "qa.fingerprint"
KINDS = ("docs", "passages", "sentences", "terms")
ANALYZER = {
    "tokenizer": "standard",
    "filter": ["lowercase", {"type": "stop", "stop_words": sorted(STOPWORDS)}, {"type": "stemmer", "language": "english"}],
}
MAX_TEXT_BYTES = 65_535  # Milvus's VARCHAR limit
MAX_DOC_BYTES = 4_096
BATCH = 512
# Keys per `in [...]` filter, and the most rows one query returns (Milvus's result window).
KEYS_PER_QUERY = 1_000
QUERY_LIMIT = 16_384
# Keys of the terms rows holding the corpus's totals, the writers' lease and the generation (a
# count of writes, so a process can tell whether its list of documents is current); term keys are >= 0.
TOTALS = -1
LEASE = -2
GENERATION = -3
# The generation row's mark while a write is under way: still there, the write stopped part-way.
WRITING = 1
# A lease not renewed for this long is free; a claim is checked this long after it is written.
LEASE_S = 60.0
LEASE_SETTLE_S = 0.5
LEASE_WAIT_S = 600.0
# What a search returns of each passage: all the view needs.
PASSAGE_FIELDS = ["pk", "doc", "sha", "start", "end", "first", "last", "n_terms", "terms", "dense"]
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,239}")


class MilvusError(IndexStoreError):
    """Milvus cannot be used: client missing, server unreachable, or an operation failed."""


@dataclass(frozen=True, slots=True)
class WriteStats:
    """What :meth:`MilvusStore.write` changed: documents written (their records) and removed,
    rows written, whether the collections were (re)created, and the store's generation after."""

    written: tuple[DocRecord, ...]
    removed: tuple[str, ...]
    passages: int
    sentences: int
    created: bool
    generation: int


def default_uri(index_dir: str | Path) -> str:
    """The Milvus Lite file kept inside an index folder."""
    return str(Path(index_dir) / LITE_FILENAME)


def is_lite(uri: str) -> bool:
    """Whether ``uri`` names a Milvus Lite file rather than a server (pymilvus's own rule)."""
    return uri.endswith(".db") and "://" not in uri


def row_key(*parts: object) -> str:
    """A row's primary key from what identifies it (document, version, position)."""
    h = hashlib.blake2b(digest_size=16)
    for part in parts:
        h.update(str(part).encode("utf-8"))
        h.update(b"\x00")
    return h.hexdigest()


def string_literal(value: str) -> str:
    """``value`` as a double-quoted string in a Milvus filter expression.

    JSON's escapes (``\\"``, ``\\\\``, ``\\n``, ``\\uXXXX``) are the ones Milvus's expression
    parser reads, so quotes, backslashes and control characters in a document id cannot end the
    string early. (Milvus Lite 3.2 does not support filter templates, which would avoid this.)
    """
    return json.dumps(value, ensure_ascii=False)


def _among(field: str, values: Iterable[str | int]) -> str:
    return f"{field} in [{', '.join(string_literal(v) if isinstance(v, str) else str(int(v)) for v in values)}]"


def _truncate_utf8(text: str, limit: int) -> str:
    data = text.encode("utf-8")
    return text if len(data) <= limit else data[:limit].decode("utf-8", errors="ignore")


def _describe(exc: Exception) -> str:
    return getattr(exc, "message", None) or str(exc) or type(exc).__name__


def _differences(have: str, want: str) -> str:
    """The settings two fingerprints differ in: "embedding onnx-int8 there, torch here"."""
    def flat(fp: str) -> dict[str, Any]:
        try:
            data = json.loads(fp)
        except ValueError:
            return {}
        return {**{k: v for k, v in data.items() if k != "index"}, **(data.get("index") or {})}

    a, b = flat(have), flat(want)
    return "; ".join(f"{k} {a.get(k)} there, {b.get(k)} here" for k in sorted(a.keys() | b.keys()) if a.get(k) != b.get(k)) \
        or "another layout"


# Milvus refuses a sparse vector without a nonzero weight (and keys past 2**32 - 2, where
# term keys end): a text without terms (empty, or stop words only) gets a count far below one,
# which weighs nothing in BM25 and is no occurrence to the term statistics.
_NO_TERMS = {0: 1e-30}


class _Tally:
    """Term statistics added up: (passages, documents) holding each term, and the totals
    (passages, documents, passage terms, document terms)."""

    def __init__(self) -> None:
        self.delta: dict[int, list[int]] = {}
        self.totals = [0, 0, 0, 0]

    def count(self, terms: dict[int, float], n_terms: int, which: int, sign: int) -> None:
        for k, v in terms.items():
            if v >= 1:
                self.delta.setdefault(k, [0, 0])[which] += sign
        self.totals[which] += sign
        self.totals[2 + which] += sign * max(int(n_terms), 1)


def _sparse(counts: dict[int, int]) -> dict[int, float]:
    return {k: float(v) for k, v in counts.items()} or dict(_NO_TERMS)


class MilvusStore:
    """A corpus held in Milvus (see the module docstring).

    Args:
        uri: a Milvus Lite file (``path/milvus.db``; its folder must exist) or a server URI
            such as ``http://host:19530``.
        collection: the collections' name prefix (letters, digits, underscores). The
            collections belong to this index: ones built with another model or layout are
            dropped and rebuilt, and one not made by this class is refused.
        token: credentials for a server (``user:password`` or an API key), if it needs them.
        timeout: seconds to wait for each call to the server.
        lease: take the writers' lease before writing (default: for a server, not for a Milvus
            Lite file, which one process at a time can open).

    Raises:
        MilvusError: a bad collection name or URI, pymilvus (or milvus-lite for a ``.db`` URI)
            is not installed, or the server cannot be reached.
    """

    def __init__(
        self, uri: str, collection: str = DEFAULT_MILVUS_COLLECTION, token: str | None = None, timeout: float | None = 60.0,
        lease: bool | None = None, rebuild: bool = False,
    ) -> None:
        if not isinstance(collection, str) or not _NAME.fullmatch(collection):
            raise MilvusError(f"Milvus collection name {collection!r}: use letters, digits and underscores, not starting with a digit")
        if not uri:
            raise MilvusError("Milvus URI is empty: give a Milvus Lite file (path/milvus.db) or a server (http://host:19530)")
        missing = [m for m, pkg in (("pymilvus", "pymilvus"), ("milvus_lite", "milvus-lite")) if importlib.util.find_spec(m) is None
                   and (m == "pymilvus" or is_lite(uri))]
        if missing:
            raise MilvusError(
                f"the Milvus backend needs {' and '.join(missing)}: pip install pymilvus milvus-lite "
                "(both are dependencies of this project; reinstall it)"
            )
        if is_lite(uri) and not Path(uri).resolve().parent.is_dir():
            raise MilvusError(f"Milvus Lite file {uri}: its folder does not exist")
        from pymilvus import MilvusClient

        # pymilvus and Milvus Lite log every failure with a traceback on stderr; failures are
        # raised as MilvusError naming the problem instead.
        for name in ("pymilvus", "milvus_lite"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
        self.uri, self.collection, self.timeout = uri, collection, timeout
        # Whether collections built with other settings may be dropped and made again: a store
        # of record (other workers' documents too) is only rebuilt when asked, by `qa index`.
        self.rebuild = rebuild
        self.lease = not is_lite(uri) if lease is None else lease
        self.lease_wait_s = LEASE_WAIT_S
        self.names = {kind: f"{collection}_{kind}" for kind in KINDS}
        try:
            self._client = MilvusClient(uri=uri, token=token or "", timeout=timeout)
        except Exception as exc:
            hint, lite = "", Path(uri)
            if is_lite(uri) and lite.exists() and not lite.is_dir():  # Milvus Lite keeps a folder under that name
                hint = "; it is a file, not a Milvus Lite store: move it away, or give another path"
            elif is_lite(uri) and not os.access(lite if lite.exists() else lite.parent, os.W_OK):
                hint = "; this user may not write there (a Milvus Lite store is written even to be read)"
            elif is_lite(uri):
                hint = ("; a Milvus Lite file is open in one process at a time: is another qa command using it? "
                        "(to share one collection, run a Milvus server and pass its URI)")
            raise MilvusError(f"cannot connect to Milvus at {uri}: {_describe(exc)}{hint}") from None
        self._lock = threading.Lock()
        self._ready: str | None = None  # the fingerprint the collections were checked against

    def _fail(self, doing: str, exc: Exception) -> MilvusError:
        from pymilvus.exceptions import MilvusException

        if isinstance(exc, MilvusException):
            self._ready = None
            # A damaged Lite file holds only what `qa index` wrote from a folder: building it again loses nothing.
            hint = f"; if it is damaged, move {self.uri} away and run `qa index` to build it again" if is_lite(self.uri) and doing == "opening" else ""
            return MilvusError(f"{doing} the Milvus collections {self.collection}_* at {self.uri} failed: {_describe(exc)}{hint}")
        raise exc

    # ----- the collections ----------------------------------------------------------
    @staticmethod
    def fingerprint(params: dict[str, Any]) -> str:
        """What the stored rows depend on besides the documents: the index parameters (model,
        its weights, embedding variant, dimensions, passage layout, term version…)."""
        return json.dumps({"milvus_schema": MILVUS_SCHEMA, "index": params, "analyzer": ANALYZER, "bm25": {"k1": K1, "b": B}},
                          sort_keys=True, default=str)

    def ensure(self, params: dict[str, Any]) -> bool:
        """Create (or rebuild) the collections for ``params``; True when created."""
        fp = self.fingerprint(params)
        if self._ready == fp:
            return False
        c = self._client
        try:
            present = [k for k in KINDS if c.has_collection(self.names[k], timeout=self.timeout)]
            stale = None
            for kind in present:
                props = c.describe_collection(self.names[kind], timeout=self.timeout).get("properties") or {}
                have = props.get(FINGERPRINT_PROPERTY)
                if have is None:
                    raise MilvusError(f"Milvus collection {self.names[kind]!r} at {self.uri} was not made by this bot; "
                                      "choose another collection name or drop that one")
                if have != fp:
                    stale = have
            # A partial set is an interrupted creation, unless documents were stored in it.
            incomplete = len(present) < len(KINDS) and "docs" in present and self._holds_documents()
            if (stale or incomplete) and not self.rebuild:
                why = (f"were built with other settings ({_differences(stale, fp)})" if stale else
                       f"are incomplete (no {', '.join(self.names[k] for k in KINDS if k not in present)})")
                raise MilvusError(f"the Milvus collections {self.collection}_* at {self.uri} {why}; only `qa index` rebuilds "
                                  "them, dropping every document stored there: run it with these settings, or run this "
                                  "command with the settings they were built with")
            created = bool(stale) or len(present) < len(KINDS)
            if created:
                if stale:
                    log.warning("Milvus collections %s_* were built with other settings (%s); rebuilding them",
                                self.collection, _differences(stale, fp))
                for kind in present:  # a partial set (an interrupted creation) is made again too
                    c.drop_collection(self.names[kind], timeout=self.timeout)
                for kind in KINDS:
                    self._create(kind, params["dim"], fp)
            for kind in KINDS:
                c.load_collection(self.names[kind], timeout=self.timeout)
        except MilvusError:
            raise
        except Exception as exc:
            raise self._fail("opening", exc) from None
        self._ready = fp
        return created

    def _create(self, kind: str, dim: int, fp: str) -> None:
        from pymilvus import DataType, Function, FunctionType, MilvusClient

        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        params = self._client.prepare_index_params()
        if kind == "terms":
            schema.add_field("pk", DataType.INT64, is_primary=True)
            for f in ("pdf", "ddf", "plen", "dlen"):
                schema.add_field(f, DataType.INT64)
            # Milvus wants a vector field in every collection; this one is never searched.
            schema.add_field("unused", DataType.FLOAT_VECTOR, dim=2)
            params.add_index(field_name="unused", index_type="FLAT", metric_type="L2")
        else:
            # Keys are hex digests (pymilvus's own paging and deletes by key cannot quote every
            # document id); the id is a field of its own.
            schema.add_field("pk", DataType.VARCHAR, is_primary=True, max_length=64)
            schema.add_field("sha", DataType.VARCHAR, max_length=64)
            schema.add_field("doc", DataType.VARCHAR, max_length=MAX_DOC_BYTES)
            if kind != "docs":
                schema.add_field("start", DataType.INT64)
                schema.add_field("end", DataType.INT64)
            if kind == "docs":
                schema.add_field("size", DataType.INT64)
                schema.add_field("bytes", DataType.INT64)
                schema.add_field("sentences", DataType.INT64)
                schema.add_field("meta", DataType.JSON)
            if kind == "sentences":
                schema.add_field("seq", DataType.INT64)
                schema.add_field("text", DataType.VARCHAR, max_length=MAX_TEXT_BYTES)
            if kind == "passages":
                schema.add_field("first", DataType.INT64)
                schema.add_field("last", DataType.INT64)
                schema.add_field("text", DataType.VARCHAR, max_length=MAX_TEXT_BYTES, enable_analyzer=True,
                                 analyzer_params=ANALYZER)
                schema.add_field("bm25", DataType.SPARSE_FLOAT_VECTOR)
                schema.add_function(Function(name="text_bm25", function_type=FunctionType.BM25, input_field_names=["text"],
                                             output_field_names=["bm25"]))
                params.add_index(field_name="bm25", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25",
                                 params={"bm25_k1": K1, "bm25_b": B})
            if kind in ("docs", "passages"):
                schema.add_field("n_terms", DataType.INT64)
                schema.add_field("terms", DataType.SPARSE_FLOAT_VECTOR)
                params.add_index(field_name="terms", index_type="SPARSE_INVERTED_INDEX", metric_type="IP")
            if kind in ("passages", "sentences"):
                # Vectors are L2-normalised, so inner product is cosine; FLAT is exact like
                # faiss's IndexFlatIP (a cluster operator may switch to HNSW at scale).
                schema.add_field("dense", DataType.FLOAT_VECTOR, dim=dim)
                params.add_index(field_name="dense", index_type="FLAT", metric_type="IP")
        self._client.create_collection(self.names[kind], schema=schema, index_params=params, consistency_level="Strong",
                                       properties={FINGERPRINT_PROPERTY: fp}, timeout=self.timeout)

    def _query(self, kind: str, expr: str, fields: list[str]) -> list[dict[str, Any]]:
        return self._client.query(self.names[kind], filter=expr, output_fields=fields, limit=QUERY_LIMIT, timeout=self.timeout)

    def _all(self, kind: str, expr: str, fields: list[str]) -> list[dict[str, Any]]:
        """Every row matching ``expr``, however many (paged by primary key)."""
        it = self._client.query_iterator(self.names[kind], batch_size=4_096, filter=expr, output_fields=fields,
                                         timeout=self.timeout)
        rows: list[dict[str, Any]] = []
        try:
            while batch := it.next():
                rows += batch
        finally:
            it.close()
        return rows

    def _by_keys(self, kind: str, field: str, keys: Sequence[str | int], fields: list[str]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for a in range(0, len(keys), KEYS_PER_QUERY):
            out += self._query(kind, _among(field, keys[a:a + KEYS_PER_QUERY]), fields)
        return out

    # ----- what is stored -----------------------------------------------------------
    def documents(self, params: dict[str, Any]) -> tuple[list[DocRecord], int]:
        """Every stored document (without its text or terms), by id, and the generation they
        are of (read first: a write meanwhile makes the list look older, never newer)."""
        self.ensure(params)
        try:
            generation, interrupted = self._state()
            if interrupted and self._repair_if_unheld():
                generation = self.generation()
            rows = self._all("docs", "", ["doc", "sha", "size", "bytes", "sentences", "meta"])
        except Exception as exc:
            raise self._fail("reading", exc) from None
        return sorted((DocRecord(r["doc"], r["sha"], int(r["size"]), dict(r["meta"] or {}), bytes=int(r["bytes"]),
                                 sentences=int(r["sentences"])) for r in rows), key=lambda d: d.id), generation

    def generation(self) -> int:
        """How many writes the collections have seen (0: none)."""
        return self._state()[0]

    def _state(self) -> tuple[int, bool]:
        """The generation, and whether a write is marked as under way (one that never finished,
        if no writer holds the lease): both on the generation row."""
        rows = self._query("terms", f"pk == {GENERATION}", ["pdf", "ddf"])
        return (int(rows[0]["pdf"]), int(rows[0]["ddf"]) == WRITING) if rows else (0, False)

    def _terms_rows(self, rows: Sequence[tuple[int, int, int, int, int]]) -> None:
        """Upsert rows ``(pk, pdf, ddf, plen, dlen)`` of the terms collection (term counts,
        totals, the lease and the generation share its fields)."""
        for a in range(0, len(rows), BATCH):
            self._client.upsert(self.names["terms"], [{"pk": k, "pdf": p, "ddf": d, "plen": pl, "dlen": dl, "unused": [0.0, 0.0]}
                                                      for k, p, d, pl, dl in rows[a:a + BATCH]], timeout=self.timeout)

    def _holds_documents(self) -> bool:
        self._client.load_collection(self.names["docs"], timeout=self.timeout)
        return self.count("docs") > 0

    def count(self, kind: str) -> int:
        """Rows in one collection (``docs``, ``passages``, ``sentences`` or ``terms``)."""
        try:
            res = self._client.query(self.names[kind], filter="", output_fields=["count(*)"], timeout=self.timeout)
        except Exception as exc:
            raise self._fail("counting", exc) from None
        return int(res[0]["count(*)"])

    # ----- updates ------------------------------------------------------------------
    def write(
        self, params: dict[str, Any], upserts: Sequence[Entry], removals: Iterable[str], embedder: Embedder,
        progress: Callable[[int, int], None] | None = None,
    ) -> WriteStats:
        """Store ``upserts`` (added, or replacing a stored version) and drop ``removals``.

        Only the new texts are segmented and embedded. Each new version's sentences and
        passages are written first, then its document row (the commit), then the replaced
        version's rows are deleted; a removed document loses its row first. The term
        statistics are updated last.
        """
        long_ids = {e.id: f"{e.id[:80]}…: the document id is longer than {MAX_DOC_BYTES} bytes, Milvus's limit here"
                    for e in upserts if len(e.id.encode("utf-8")) > MAX_DOC_BYTES}
        if long_ids:
            raise Unindexable(long_ids)
        new = sorted({e.id: e for e in upserts}.values(), key=lambda e: e.id)
        vocab: dict[str, int] = {}
        # The slow part, before the lease; a text of too many sentences refuses its document.
        seg = Segmented(new, params["dim"], embedder, vocab, progress)
        with self._lock:
            try:
                created = self.ensure(params)
                with self._lease() as renew:
                    return self._write(new, list(removals), seg, vocab, renew, created)
            except MilvusError:
                self._ready = None
                raise
            except Exception as exc:
                raise self._fail("updating", exc) from None

    # ----- the writers' lease ---------------------------------------------------------
    def _read_lease(self) -> tuple[int, float]:
        """``(holder, until)``: who holds the lease (0: nobody) and until when (epoch seconds)."""
        rows = self._query("terms", f"pk == {LEASE}", ["ddf", "plen"])
        return (int(rows[0]["ddf"]), int(rows[0]["plen"]) / 1000) if rows else (0, 0.0)

    def _put_lease(self, holder: int, until: float) -> None:
        self._terms_rows([(LEASE, 0, holder, int(until * 1000), 0)])

    @contextmanager
    def _lease(self) -> Iterator[Callable[[], None]]:
        """Hold the writers' lease (a row of the terms collection) while writing; yields a
        function that renews it. Claiming is check, write, wait, check again: two writers that
        both saw it free both write it, and after :data:`LEASE_SETTLE_S` only the last one
        reads itself back (this holds while a claim lands within that time, and while the
        writers' clocks agree to well within :data:`LEASE_S`). A Milvus Lite file has one
        process at a time, so without ``lease=True`` it is not taken there."""
        if not self.lease:
            yield lambda: None
            return
        me = secrets.randbits(62) + 1
        started = time.monotonic()
        deadline, said = started + self.lease_wait_s, False
        while True:
            holder, until = self._read_lease()
            if not said and holder not in (0, me) and time.monotonic() - started > WAIT_SAID_S:
                # A writer that stopped without letting go (killed, say) holds it until it runs out.
                log.warning("another writer holds the Milvus collections %s_* (its lease runs out in %.0f s unless renewed); "
                            "waiting for it (at most %g s)", self.collection, max(until - time.time(), 0), self.lease_wait_s)
                said = True
            if holder in (0, me) or until < time.time():
                self._put_lease(me, time.time() + LEASE_S)
                time.sleep(LEASE_SETTLE_S)
                if self._read_lease()[0] == me:
                    break
            if time.monotonic() > deadline:
                raise IndexBusy(f"another writer has held the Milvus collections {self.collection}_* at {self.uri} for over "
                                f"{self.lease_wait_s:g} s; try again when it is done")
            time.sleep(0.2 + random.random() * 0.3)
        renewed = time.monotonic()

        def renew() -> None:
            nonlocal renewed
            if time.monotonic() - renewed < LEASE_S / 3:
                return
            if self._read_lease()[0] != me:
                raise MilvusError(f"lost the writers' lease on {self.collection}_* at {self.uri} (expired after {LEASE_S:g} s); "
                                  "the update stopped part-way: run it again")
            self._put_lease(me, time.time() + LEASE_S)
            renewed = time.monotonic()

        try:
            yield renew
        finally:
            try:
                if self._read_lease()[0] == me:
                    self._put_lease(0, 0.0)
            except Exception:  # pragma: no cover - the lease expires by itself
                log.warning("could not release the writers' lease on %s_*; it expires in %g s", self.collection, LEASE_S)

    def _write(self, new: list[Entry], removals: list[str], seg: Segmented, vocab: dict[str, int], renew: Callable[[], None],
               created: bool) -> WriteStats:
        wanted = list(dict.fromkeys([*removals, *(e.id for e in new)]))
        old = {r["doc"]: r for r in self._by_keys("docs", "pk", [row_key(d) for d in wanted], ["doc", "sha", "n_terms", "terms"])} \
            if wanted else {}
        generation, interrupted = self._state()
        if interrupted:
            self._repair(renew)
        self._terms_rows([(GENERATION, generation, WRITING, 0, 0)])  # cleared with the term statistics
        tally = _Tally()
        count = tally.count
        c = self._client
        s_rows, p_rows = seg.sentences, seg.passages
        keys = term_keys(vocab)
        s_bounds = np.searchsorted(s_rows.doc, np.arange(len(new) + 1))
        p_bounds = np.searchsorted(p_rows.doc, np.arange(len(new) + 1))
        p_lengths = seg.passage_terms.lengths()
        d_lengths = seg.doc_terms.lengths()
        written = {"sentences": 0, "passages": 0}
        waiting: dict[str, list[dict[str, Any]]] = {"sentences": [], "passages": []}

        def send(kind: str, rows: list[dict[str, Any]], everything: bool) -> None:
            # Rows go in batches across documents; all of them before any document's row.
            waiting[kind] += rows
            while len(waiting[kind]) >= BATCH or everything and waiting[kind]:
                renew()
                c.upsert(self.names[kind], waiting[kind][:BATCH], timeout=self.timeout)
                written[kind] += len(waiting[kind][:BATCH])
                del waiting[kind][:BATCH]

        for di, e in enumerate(new):
            sentences = []
            for r in range(int(s_bounds[di]), int(s_bounds[di + 1])):
                a, b = int(s_rows.start[r]), int(s_rows.end[r])
                text = e.text[a:b]
                seq = r - int(s_bounds[di])
                sentences.append({"pk": row_key(e.id, e.sha256, seq), "sha": e.sha256, "doc": e.id, "start": a, "end": b,
                                  "seq": seq, "text": text, "dense": s_rows.vecs[r].tolist()})
            passages = []
            for r in range(int(p_bounds[di]), int(p_bounds[di + 1])):
                a, b = int(p_rows.start[r]), int(p_rows.end[r])
                terms = term_counts(seg.passage_terms, keys, r)
                count(terms, int(p_lengths[r]), 0, +1)
                passages.append({
                    "pk": row_key(e.id, e.sha256, a, b), "sha": e.sha256, "doc": e.id, "start": a, "end": b,
                    "first": int(seg.first[r]) - int(s_bounds[di]), "last": int(seg.last[r]) - int(s_bounds[di]),
                    # Milvus's BM25 leg sees a passage's first 64 KB (a pathological "sentence").
                    "text": _truncate_utf8(e.text[a:b], MAX_TEXT_BYTES), "n_terms": int(p_lengths[r]),
                    "terms": _sparse(terms), "dense": p_rows.vecs[r].tolist(),
                })
            send("sentences", sentences, False)
            send("passages", passages, False)
        send("sentences", [], True)
        send("passages", [], True)
        version = {e.id: e.sha256 for e in new}
        removed = [d for d in removals if d in old and d not in version]
        for a in range(0, len(removed), BATCH):  # a removed document disappears with its row
            c.delete(self.names["docs"], ids=[row_key(d) for d in removed[a:a + BATCH]], timeout=self.timeout)
        doc_rows = []
        for di, e in enumerate(new):
            terms = term_counts(seg.doc_terms, keys, di)
            count(terms, int(d_lengths[di]), 1, +1)
            doc_rows.append({"pk": row_key(e.id), "doc": e.id, "sha": e.sha256, "size": e.size, "bytes": len(e.text.encode("utf-8")),
                             "sentences": int(s_bounds[di + 1] - s_bounds[di]), "meta": e.meta, "n_terms": int(d_lengths[di]),
                             "terms": _sparse(terms)})
        for a in range(0, len(doc_rows), BATCH):
            c.upsert(self.names["docs"], doc_rows[a:a + BATCH], timeout=self.timeout)
        # The versions now replaced or removed: their rows go, and their terms stop counting.
        for doc_id, row in old.items():
            count(dict(row["terms"]), int(row["n_terms"]), 1, -1)
            expr = f"doc == {string_literal(doc_id)} and sha == {string_literal(row['sha'])}"
            for p in self._all("passages", expr, ["n_terms", "terms"]):
                count(dict(p["terms"]), int(p["n_terms"]), 0, -1)
            if version.get(doc_id) != row["sha"]:  # the same version written again keeps its rows
                for kind in ("passages", "sentences"):
                    c.delete(self.names[kind], filter=expr, timeout=self.timeout)
        generation = self._count_terms(tally.delta, tally.totals)
        if written["sentences"] >= BATCH:
            for kind in KINDS:
                # A large write is sealed into the collections' indexes now (Milvus Lite otherwise
                # scans its write buffer row by row); a small one stays in the buffer.
                c.flush(self.names[kind], timeout=self.timeout)
        records = tuple(DocRecord(r["doc"], r["sha"], r["size"], r["meta"], bytes=r["bytes"], sentences=r["sentences"])
                        for r in doc_rows)
        return WriteStats(records, tuple(removed), written["passages"], written["sentences"], created, generation)

    # ----- a write that stopped part-way ---------------------------------------------
    def _repair_if_unheld(self) -> bool:
        """Repair what a write marked as under way left, unless a writer holds the lease now (a
        write in progress is marked too: that writer repairs first, if it must); True if done."""
        holder, until = self._read_lease() if self.lease else (0, 0.0)
        if holder and until >= time.time():
            return False
        with self._lock, self._lease() as renew:
            if not self._state()[1]:  # finished meanwhile
                return False
            self._repair(renew)
            self._count_terms({}, [0, 0, 0, 0])  # a new generation, no longer marked
        return True

    def _repair(self, renew: Callable[[], None]) -> None:
        """Drop the rows of versions no document row names, and count the term statistics
        again from the rows: what a write stopped between its steps leaves wrong."""
        log.warning("the last write to the Milvus collections %s_* at %s stopped part-way; repairing them",
                    self.collection, self.uri)
        docs = self._all("docs", "", ["doc", "sha", "n_terms", "terms"])
        live = {r["doc"]: r["sha"] for r in docs}
        tally = _Tally()
        for r in docs:
            tally.count(dict(r["terms"]), int(r["n_terms"]), 1, +1)
        for kind in ("passages", "sentences"):
            orphans = []
            for r in self._all(kind, "", ["pk", "doc", "sha", *(["n_terms", "terms"] if kind == "passages" else [])]):
                if live.get(r["doc"]) != r["sha"]:
                    orphans.append(r["pk"])
                elif kind == "passages":
                    tally.count(dict(r["terms"]), int(r["n_terms"]), 0, +1)
            for a in range(0, len(orphans), BATCH):
                renew()
                self._client.delete(self.names[kind], ids=orphans[a:a + BATCH], timeout=self.timeout)
        rows = [(k, d[0], d[1], 0, 0) for k, d in tally.delta.items() if d != [0, 0]]
        rows.append((TOTALS, *tally.totals))
        kept = {r[0] for r in rows}
        gone = [r["pk"] for r in self._all("terms", "pk >= 0", ["pk"]) if r["pk"] not in kept]
        renew()
        self._terms_rows(rows)
        for a in range(0, len(gone), BATCH):
            self._client.delete(self.names["terms"], ids=gone[a:a + BATCH], timeout=self.timeout)

    def _count_terms(self, delta: dict[int, list[int]], totals: list[int]) -> int:
        """Add ``delta`` to the terms' counts and ``totals`` to the totals, and count one more
        generation; the new generation."""
        delta = {k: d for k, d in delta.items() if d != [0, 0]}
        keys = [*delta, TOTALS, GENERATION]
        have = {r["pk"]: r for r in self._by_keys("terms", "pk", keys, ["pk", "pdf", "ddf", "plen", "dlen"])}
        rows = []
        for k in keys:
            r = have.get(k, {"pdf": 0, "ddf": 0, "plen": 0, "dlen": 0})
            if k == TOTALS:
                add = totals
            elif k == GENERATION:
                add = [1, -int(r["ddf"]), 0, 0]  # one more, and no longer being written
            else:
                add = [*delta[k], 0, 0]
            rows.append((k, *(int(r[f]) + a for f, a in zip(("pdf", "ddf", "plen", "dlen"), add))))
        gone = {r[0] for r in rows if r[0] >= 0 and r[1] <= 0 and r[2] <= 0}
        self._terms_rows([r for r in rows if r[0] not in gone])
        for a in range(0, len(gone), BATCH):
            self._client.delete(self.names["terms"], ids=sorted(gone)[a:a + BATCH], timeout=self.timeout)
        return next(r[1] for r in rows if r[0] == GENERATION)

    # ----- queries ------------------------------------------------------------------
    def search(
        self, params: dict[str, Any], query: str, qvec: Any, vocabulary: Sequence[str], k: int = 10,
        docs: Iterable[str] | None = None, legs: tuple[str, ...] = LEGS, context: str = "", exclude: Iterable[str] = (),
        keep: Iterable[tuple[str, int]] = (),
    ) -> tuple[CandidateView, list[Hit]]:
        """The best ``k`` passages for ``query`` (text, for the BM25 leg) and ``qvec`` (its
        vector), within ``docs`` (None: all), without ``exclude``, and the
        :class:`~index.view.CandidateView` they are rows of. ``vocabulary``: the normalised
        terms the answerer will weigh (the question's and its context's). ``keep``: sentences
        to hold in the view too, as ``(document, start)`` (a follow-up's last citation).
        ``context``: a follow-up's carried words; Milvus's BM25 cannot weigh query terms, so
        they join its query in full, and count less in the re-scoring."""
        self.ensure(params)
        use = [leg for leg in ("bm25", "dense") if leg in legs]
        keep = list(keep)
        expr = ""
        if docs is not None:
            docs = list(dict.fromkeys(docs))
            expr = _among("doc", docs) if docs else ""
        exclude = list(dict.fromkeys(exclude))
        if exclude:
            left_out = f"not ({_among('doc', exclude)})"
            expr = f"({expr}) and {left_out}" if expr else left_out
        try:
            found = ([] if (docs is not None and not docs) or k < 1 or not use
                     else self._candidates(f"{query} {context}".strip(), qvec, k, expr, use))
            return self._view(params, query, qvec, vocabulary, k, found, use, context, keep)
        except MilvusError:
            raise
        except Exception as exc:
            raise self._fail("searching", exc) from None

    def _candidates(self, query: str, qvec: Any, k: int, expr: str, use: list[str]) -> list[tuple[float, dict[str, int], dict]]:
        """The searched passages, best first: ``(score, legs' ranks, the passage's row)``."""
        from pymilvus import AnnSearchRequest, RRFRanker

        fetch = max(k * OVERFETCH, 40)
        vec = [float(x) for x in np.asarray(qvec).reshape(-1)]
        requests = {
            "bm25": AnnSearchRequest(data=[query], anns_field="bm25", param={"metric_type": "BM25"}, limit=fetch,
                                     expr=expr or None),
            "dense": AnnSearchRequest(data=[vec], anns_field="dense", param={"metric_type": "IP"}, limit=fetch, expr=expr or None),
        }
        if len(use) == 2:
            res = self._client.hybrid_search(self.names["passages"], [requests["bm25"], requests["dense"]], RRFRanker(RRF_K),
                                             limit=fetch, output_fields=PASSAGE_FIELDS, timeout=self.timeout)
            return [(float(h["distance"]), {}, {f: h[f] for f in PASSAGE_FIELDS}) for h in res[0]]
        r = requests[use[0]]
        res = self._client.search(self.names["passages"], data=r.data, anns_field=r.anns_field, search_params=r.param,
                                  limit=k, filter=expr, output_fields=PASSAGE_FIELDS, timeout=self.timeout)
        return [(1.0 / (RRF_K + rank), {use[0]: rank}, {f: h[f] for f in PASSAGE_FIELDS}) for rank, h in enumerate(res[0], start=1)]

    def _view(
        self, params: dict[str, Any], query: str, qvec: Any, vocabulary: Sequence[str], k: int,
        found: list[tuple[float, dict[str, int], dict]], use: list[str], context: str, keep: list[tuple[str, int]],
    ) -> tuple[CandidateView, list[Hit]]:
        doc_ids = list(dict.fromkeys([*(r["doc"] for *_, r in found), *(d for d, _ in keep)]))
        d_fields = ["doc", "sha", "size", "sentences", "meta", "n_terms", "terms"]
        drows = {r["doc"]: r for r in self._by_keys("docs", "pk", [row_key(d) for d in doc_ids], d_fields)} if doc_ids else {}
        # Rows of a version being replaced or removed right now are left out.
        live = [f for f in found if drows.get(f[2]["doc"], {}).get("sha") == f[2]["sha"]]
        # Each passage's sentences and the one on either side, read by key.
        wanted: set[tuple[str, int]] = set()
        for *_, r in live:
            last = int(drows[r["doc"]]["sentences"]) - 1
            wanted.update((r["doc"], q) for q in range(max(int(r["first"]) - 1, 0), min(int(r["last"]) + 1, last) + 1))
        s_fields = ["doc", "seq", "start", "end", "text", "dense"]
        keys = [row_key(d, drows[d]["sha"], q) for d, q in sorted(wanted)]
        srows = {(r["doc"], int(r["seq"])): r for r in self._by_keys("sentences", "pk", keys, s_fields)} if keys else {}
        for doc, start in keep:  # a follow-up's last citation, found by its offset
            if doc in drows:
                expr = f"doc == {string_literal(doc)} and sha == {string_literal(drows[doc]['sha'])} and start == {int(start)}"
                srows.update({(r["doc"], int(r["seq"])): r for r in self._query("sentences", expr, s_fields)})
        lost = sorted({d for *_, r in live for d, q in ((r["doc"], int(r["first"])), (r["doc"], int(r["last"])))
                       if (d, q) not in srows})
        if lost:  # replaced since it was read, or its rows are damaged: still the same version?
            now = {r["doc"]: r["sha"] for r in self._by_keys("docs", "pk", [row_key(d) for d in lost], ["doc", "sha"])}
            damaged = [d for d in lost if now.get(d) == drows[d]["sha"]]
            if damaged:
                raise MilvusError(f"the Milvus collections {self.collection}_* at {self.uri} lack sentences of {damaged[0]!r} "
                                  "(damaged?); drop the collections and run `qa index` to rebuild them")
            live = [f for f in live if f[2]["doc"] not in lost]
        vocab = list(dict.fromkeys(vocabulary))
        keys = [term_key(t) for t in vocab]
        trows = {r["pk"]: r for r in self._by_keys("terms", "pk", [*keys, TOTALS], ["pk", "pdf", "ddf", "plen", "dlen"])}
        tot = trows.get(TOTALS, {"pdf": 0, "ddf": 0, "plen": 0, "dlen": 0})
        stats = CorpusStats(
            passages=int(tot["pdf"]), passage_avgdl=int(tot["plen"]) / max(int(tot["pdf"]), 1),
            documents=int(tot["ddf"]), doc_avgdl=int(tot["dlen"]) / max(int(tot["ddf"]), 1),
            df={k: (int(trows[k]["pdf"]), int(trows[k]["ddf"])) for k in keys if k in trows},
        )
        in_view = [d for d in doc_ids if d in drows]
        documents = [DocRecord(d, drows[d]["sha"], int(drows[d]["size"]), dict(drows[d]["meta"] or {}), int(drows[d]["n_terms"]),
                               dict(drows[d]["terms"])) for d in in_view]
        passages = [PassageRecord(r["doc"], int(r["start"]), int(r["end"]), int(r["first"]), int(r["last"]), int(r["n_terms"]),
                                  dict(r["terms"]), np.asarray(r["dense"], dtype=np.float32)) for *_, r in live]
        sentences = [SentenceRecord(r["doc"], int(r["seq"]), int(r["start"]), int(r["end"]), r["text"],
                                    np.asarray(r["dense"], dtype=np.float32)) for r in srows.values()]
        view = build_view(params, documents, passages, sentences, stats, vocab)
        fused = [Fused(row, score, ranks) for row, (score, ranks, _) in enumerate(live)]
        if len(use) == 2 and fused:
            fused = view.rescore(view.lexical(query, context), np.asarray(qvec, dtype=np.float32).reshape(-1), fused)
        return view, view.hits(fused[:k])

    def close(self) -> None:
        """Close the client; for a Milvus Lite file also stop its embedded server, so another
        process may open the file."""
        self._client.close()
        if is_lite(self.uri):
            from milvus_lite import server_manager_instance

            server_manager_instance.release_server(self.uri)
