"""Passage retrieval from Milvus: one collection holds the passages, their vectors and BM25.

The collection mirrors the passages of a :class:`~index.store.HybridIndex` snapshot. Each row
has a primary key derived from the passage (document id, offsets and text, so an unchanged
passage keeps its key across snapshots and a changed one gets a new key), the document id
(filterable), the offsets, the passage text with an analyzer (Milvus computes its BM25 sparse
vector with a ``BM25`` function) and the passage's MiniLM vector. A search is one Milvus
``hybrid_search``: the dense leg and the BM25 leg, fused by Milvus's ``RRFRanker`` with the same
``k`` as the local index; as there, RRF's over-fetched candidates are then ordered by the fused
score of :meth:`HybridIndex.rescore` (cosines, passage and document BM25 and coverage), computed
on the local snapshot the answerer reads.

What differs from :meth:`HybridIndex.search`:

* No ``doc`` leg (the local index's whole-document BM25): Milvus has no per-document score, so
  only the ``bm25`` and ``dense`` legs are searched.
* Milvus's BM25 is Okapi BM25 over its own analyzer's terms (a standard tokenizer, lower case,
  the same stop words, English stemming), not the local BM25+ over :func:`index.text.terms`.
  Milvus Lite 3.2 accepts the stemmer filter but does not apply it.
* A fused search does not say which rank each leg gave a passage, so hybrid hits carry empty
  ``legs``; a single-leg search (``legs=("bm25",)`` or ``("dense",)``) reports its ranks.

The URI is either a Milvus Lite file (a path ending in ``.db``, embedded in this process: the
tests run it for real) or a Milvus server or cluster (``http://host:19530``), with no other change.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from .bm25 import B, K1
from .config import DEFAULT_MILVUS_COLLECTION
from .fusion import Fused
from .store import LEGS, OVERFETCH, RRF_K, Hit, HybridIndex, IndexStoreError
from .text import STOPWORDS

log = logging.getLogger(__name__)

LITE_FILENAME = "milvus.db"
# Bumped when the collection's layout changes; a collection with another fingerprint is rebuilt.
MILVUS_SCHEMA = 1
FINGERPRINT_PROPERTY = "qa.fingerprint"
ANALYZER = {
    "tokenizer": "standard",
    "filter": ["lowercase", {"type": "stop", "stop_words": sorted(STOPWORDS)}, {"type": "stemmer", "language": "english"}],
}
MAX_TEXT_BYTES = 65_535  # Milvus's VARCHAR limit
MAX_DOC_BYTES = 4_096
BATCH = 512
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,254}")


class MilvusError(IndexStoreError):
    """Milvus cannot be used: client missing, server unreachable, or an operation failed."""


@dataclass(frozen=True, slots=True)
class SyncStats:
    """What :meth:`MilvusPassages.sync` wrote: rows upserted and deleted, and whether the
    collection was (re)created."""

    upserted: int
    deleted: int
    created: bool


def default_uri(index_dir: str | Path) -> str:
    """The Milvus Lite file kept inside an index folder."""
    return str(Path(index_dir) / LITE_FILENAME)


def is_lite(uri: str) -> bool:
    """Whether ``uri`` names a Milvus Lite file rather than a server (pymilvus's own rule)."""
    return uri.endswith(".db") and "://" not in uri


def passage_key(doc: str, start: int, end: int, text: str) -> str:
    """Primary key of a passage: the same passage gets the same key in every snapshot."""
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{doc}\x00{start}\x00{end}\x00".encode("utf-8"))
    h.update(text.encode("utf-8"))
    return h.hexdigest()


def string_literal(value: str) -> str:
    """``value`` as a double-quoted string in a Milvus filter expression.

    JSON's escapes (``\\"``, ``\\\\``, ``\\n``, ``\\uXXXX``) are the ones Milvus's expression
    parser reads, so quotes, backslashes and control characters in a document id cannot end the
    string early. (Milvus Lite 3.2 does not support filter templates, which would avoid this.)
    """
    return json.dumps(value, ensure_ascii=False)


def _truncate_utf8(text: str, limit: int) -> str:
    data = text.encode("utf-8")
    return text if len(data) <= limit else data[:limit].decode("utf-8", errors="ignore")


def _describe(exc: Exception) -> str:
    return getattr(exc, "message", None) or str(exc) or type(exc).__name__


class MilvusPassages:
    """The passages of an index snapshot in one Milvus collection, searched by hybrid search.

    Args:
        uri: a Milvus Lite file (``path/milvus.db``; its folder must exist) or a server URI
            such as ``http://host:19530``.
        collection: the collection's name (letters, digits, underscores). It belongs to this
            index: a collection built with another model or layout is dropped and rebuilt, and one
            not made by this class is refused.
        token: credentials for a server (``user:password`` or an API key), if it needs them.
        timeout: seconds to wait for each call to the server.

    Raises:
        MilvusError: a bad collection name or URI, pymilvus (or milvus-lite for a ``.db`` URI)
            is not installed, or the server cannot be reached.
    """

    def __init__(
        self, uri: str, collection: str = DEFAULT_MILVUS_COLLECTION, token: str | None = None, timeout: float | None = 60.0,
    ) -> None:
        if not isinstance(collection, str) or not _NAME.fullmatch(collection):
            raise MilvusError(f"Milvus collection name {collection!r}: use letters, digits and underscores, starting with a letter")
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
        try:
            self._client = MilvusClient(uri=uri, token=token or "", timeout=timeout)
        except Exception as exc:
            hint = ""
            if is_lite(uri):
                hint = ("; a Milvus Lite file is open in one process at a time: is another qa command using it? "
                        "(to share one collection, run a Milvus server and pass its URI)")
            raise MilvusError(f"cannot connect to Milvus at {uri}: {_describe(exc)}{hint}") from None
        self._lock = threading.Lock()
        self._ready_fingerprint: str | None = None  # the collection exists, loaded, with this fingerprint
        self._known: set[str] | None = None  # keys in the collection after the last good sync
        self._maps: dict[int, tuple[HybridIndex, list[str], dict[str, int]]] = {}  # id(snapshot) -> keys
        self._index: HybridIndex | None = None

    # ----- the collection -----------------------------------------------------------
    @staticmethod
    def fingerprint(index: HybridIndex) -> str:
        """What the collection's content depends on besides the passages themselves: the index's
        whole manifest parameters (model, its weights, embedding variant, dimensions, passage
        layout…), so any change to how vectors are made rebuilds the collection."""
        return json.dumps({
            "milvus_schema": MILVUS_SCHEMA, "index": index.params, "analyzer": ANALYZER, "bm25": {"k1": K1, "b": B},
        }, sort_keys=True, default=str)

    def _ensure_collection(self, index: HybridIndex) -> bool:
        """Create (or rebuild) the collection for ``index``'s settings; True when created."""
        fp = self.fingerprint(index)
        if self._ready_fingerprint == fp:
            return False
        c, name = self._client, self.collection
        created = False
        if c.has_collection(name, timeout=self.timeout):
            props = c.describe_collection(name, timeout=self.timeout).get("properties") or {}
            have = props.get(FINGERPRINT_PROPERTY)
            if have is None:
                raise MilvusError(
                    f"Milvus collection {name!r} at {self.uri} was not made by this bot; "
                    "choose another collection name or drop that one"
                )
            if have != fp:
                log.warning("Milvus collection %s was built with other settings; rebuilding it", name)
                c.drop_collection(name, timeout=self.timeout)
        if not c.has_collection(name, timeout=self.timeout):
            self._create(index.params["dim"], fp)
            created = True
        c.load_collection(name, timeout=self.timeout)
        self._ready_fingerprint = fp
        self._known = set() if created else None
        return created

    def _create(self, dim: int, fp: str) -> None:
        from pymilvus import DataType, Function, FunctionType, MilvusClient

        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("pk", DataType.VARCHAR, is_primary=True, max_length=64)
        schema.add_field("doc", DataType.VARCHAR, max_length=MAX_DOC_BYTES)
        schema.add_field("start", DataType.INT64)
        schema.add_field("end", DataType.INT64)
        schema.add_field("text", DataType.VARCHAR, max_length=MAX_TEXT_BYTES, enable_analyzer=True, analyzer_params=ANALYZER)
        schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
        schema.add_field("dense", DataType.FLOAT_VECTOR, dim=dim)
        schema.add_function(Function(
            name="text_bm25", function_type=FunctionType.BM25, input_field_names=["text"], output_field_names=["sparse"],
        ))
        params = self._client.prepare_index_params()
        # Vectors are L2-normalised, so inner product is cosine; FLAT is exact like faiss's
        # IndexFlatIP (a cluster operator may switch to HNSW for very large collections).
        params.add_index(field_name="dense", index_type="FLAT", metric_type="IP")
        params.add_index(field_name="sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25",
                         params={"bm25_k1": K1, "bm25_b": B})
        self._client.create_collection(
            self.collection, schema=schema, index_params=params, consistency_level="Strong",
            properties={FINGERPRINT_PROPERTY: fp}, timeout=self.timeout,
        )

    def _stored_keys(self) -> set[str]:
        it = self._client.query_iterator(self.collection, batch_size=16_384, filter="", output_fields=["pk"], timeout=self.timeout)
        keys: set[str] = set()
        try:
            while batch := it.next():
                keys.update(row["pk"] for row in batch)
        finally:
            it.close()
        return keys

    def _keys(self, index: HybridIndex) -> tuple[list[str], dict[str, int]]:
        """Each passage row's key, and key -> row, for ``index`` (cached for two snapshots)."""
        with self._lock:
            hit = self._maps.get(id(index))
            if hit is not None and hit[0] is index:
                return hit[1], hit[2]
        ps = index.passages
        keys = []
        for d, s, e in zip(ps.doc.tolist(), ps.start.tolist(), ps.end.tolist()):
            entry = index.entries[d]
            keys.append(passage_key(entry.id, s, e, entry.text[s:e]))
        rows = {k: r for r, k in enumerate(keys)}
        with self._lock:
            if len(self._maps) >= 2:
                self._maps = {i: m for i, m in self._maps.items() if m[0] is self._index}
            self._maps[id(index)] = (index, keys, rows)
        return keys, rows

    # ----- updates ------------------------------------------------------------------
    def sync(self, index: HybridIndex) -> SyncStats:
        """Make the collection hold exactly the passages of ``index``.

        New and changed passages are upserted and passages that are gone are deleted; the
        others are left alone. The collection's keys are listed from Milvus on the first sync
        (and after a failed one); later syncs in this process diff against the last one.
        """
        try:
            created = self._ensure_collection(index)
            keys, rows = self._keys(index)
            if self._known is None:
                self._known = self._stored_keys()
            known = self._known
            new = [k for k in keys if k not in known]
            gone = list(known - rows.keys())
            for a in range(0, len(new), BATCH):
                self._client.upsert(self.collection, [self._row(index, rows[k], k) for k in new[a:a + BATCH]], timeout=self.timeout)
            # Deleted after the upserts, so a search during the update finds the old or the new
            # passages of a document, never neither.
            for a in range(0, len(gone), BATCH):
                self._client.delete(self.collection, ids=gone[a:a + BATCH], timeout=self.timeout)
            if new or gone:
                # Makes the rows searchable through the collection's indexes right away
                # (Milvus Lite otherwise scans its write buffer row by row).
                self._client.flush(self.collection, timeout=self.timeout)
            self._known = set(keys)
            self._index = index
            return SyncStats(len(new), len(gone), created)
        except MilvusError:
            self._known = None
            raise
        except Exception as exc:
            self._known = None
            self._ready_fingerprint = None
            from pymilvus.exceptions import MilvusException

            if isinstance(exc, MilvusException):
                raise MilvusError(f"updating Milvus collection {self.collection!r} at {self.uri} failed: {_describe(exc)}") from None
            raise

    def _row(self, index: HybridIndex, row: int, key: str) -> dict[str, Any]:
        ps = index.passages
        entry = index.entries[int(ps.doc[row])]
        start, end = int(ps.start[row]), int(ps.end[row])
        if len(entry.id.encode("utf-8")) > MAX_DOC_BYTES:
            raise MilvusError(f"document id {entry.id[:80]!r}… is longer than {MAX_DOC_BYTES} bytes, Milvus's limit here")
        return {
            "pk": key, "doc": entry.id, "start": start, "end": end,
            # BM25 of a passage over 64 KB (a pathological "sentence") sees its first 64 KB only.
            "text": _truncate_utf8(entry.text[start:end], MAX_TEXT_BYTES),
            "dense": ps.vecs[row].tolist(),
        }

    def count(self) -> int:
        """Rows in the collection, as Milvus counts them."""
        res = self._client.query(self.collection, filter="", output_fields=["count(*)"], timeout=self.timeout)
        return int(res[0]["count(*)"])

    def close(self) -> None:
        """Close the client; for a Milvus Lite file also stop its embedded server, so another
        process may open the file."""
        self._client.close()
        if is_lite(self.uri):
            from milvus_lite import server_manager_instance

            server_manager_instance.release_server(self.uri)

    # ----- queries ------------------------------------------------------------------
    def search(
        self, query: str, qvec: Any, k: int = 10, docs: Iterable[str] | None = None,
        legs: tuple[str, ...] = LEGS, index: HybridIndex | None = None, context: str = "",
        exclude: Iterable[str] = (),
    ) -> list[Hit]:
        """Hybrid search in Milvus; best ``k`` first, as :meth:`HybridIndex.search` returns them.

        ``query`` feeds the BM25 leg and ``qvec`` the dense leg; ``docs`` limits the search to
        those document ids; ``legs`` picks ``bm25`` and/or ``dense`` (``doc`` has no Milvus
        counterpart and is ignored). Hits name passage rows of ``index`` (default: the snapshot
        last synced); a passage Milvus returns that the snapshot lacks (the collection is being
        updated) is skipped. ``context``: a follow-up's carried words; Milvus's BM25 cannot
        weigh query terms, so they join its query in full, and count :data:`CONTEXT_WEIGHT` in
        the re-scoring. ``exclude``: document ids left out.
        """
        snap = index if index is not None else self._index
        if snap is None:
            raise MilvusError("the Milvus collection has not been synced with an index yet")
        n = len(snap.passages)
        use = [leg for leg in ("bm25", "dense") if leg in legs]
        if n == 0 or k < 1 or not use:
            return []
        expr = ""
        if docs is not None:
            docs = list(dict.fromkeys(docs))
            if not docs:
                return []
            expr = f"doc in [{', '.join(string_literal(d) for d in docs)}]"
        exclude = list(dict.fromkeys(exclude))
        if exclude:
            left_out = f"doc not in [{', '.join(string_literal(d) for d in exclude)}]"
            expr = f"({expr}) and {left_out}" if expr else left_out
        _, rows = self._keys(snap)
        fetch = min(n, max(k * OVERFETCH, 40))
        from pymilvus import AnnSearchRequest, RRFRanker

        vec = [float(x) for x in qvec.reshape(-1)]
        requests = {
            "bm25": AnnSearchRequest(
                data=[f"{query} {context}".strip()], anns_field="sparse", param={"metric_type": "BM25"}, limit=fetch,
                expr=expr or None,
            ),
            "dense": AnnSearchRequest(data=[vec], anns_field="dense", param={"metric_type": "IP"}, limit=fetch, expr=expr or None),
        }
        try:
            if len(use) == 2:
                # Milvus fuses by RRF; its candidates are then ordered like the local index's.
                res = self._client.hybrid_search(
                    self.collection, [requests["bm25"], requests["dense"]], RRFRanker(RRF_K), limit=fetch,
                    output_fields=["pk"], timeout=self.timeout,
                )
            else:
                r = requests[use[0]]
                res = self._client.search(
                    self.collection, data=r.data, anns_field=r.anns_field, search_params=r.param, limit=k,
                    filter=expr, output_fields=["pk"], timeout=self.timeout,
                )
        except Exception as exc:
            from pymilvus.exceptions import MilvusException

            if isinstance(exc, MilvusException):
                raise MilvusError(f"searching Milvus collection {self.collection!r} at {self.uri} failed: {_describe(exc)}") from None
            raise
        found = []
        for rank, h in enumerate(res[0], start=1):
            row = rows.get(h["pk"] if "pk" in h else h["id"])
            if row is None:
                continue
            score = float(h["distance"]) if len(use) == 2 else 1.0 / (RRF_K + rank)
            found.append(Fused(row, score, {} if len(use) == 2 else {use[0]: rank}))
        if len(use) == 2:
            found = snap.rescore(snap.lexical(query, context), qvec, found)
        return snap.hits(found[:k])
