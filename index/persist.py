"""The index on disk: generation folders and an atomically swapped ``CURRENT`` file.

A new generation is written beside the old and ``CURRENT`` is swapped atomically, so a reader or
a crash never sees half an index. Texts and vectors are stored in parts, so adding a document to
a large index writes only that document's vectors.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import threading
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from .ann import Ann
from .bm25 import BM25Index, Terms
from .records import Entry, IndexDamaged, IndexMismatch, IndexMissing, IndexStoreError, Table

if TYPE_CHECKING:
    from .store import HybridIndex

# A save that would leave more parts than this rewrites the index as one part.
MAX_PARTS = 16


def bm25_params(params: dict[str, Any]) -> dict[str, float]:
    """The BM25 constructor's parameters from an index's parameters."""
    return {k: v for k, v in params["bm25"].items() if k != "variant"}


def save(index: "HybridIndex", folder: str | os.PathLike[str]) -> None:
    """Write a new generation under ``folder`` and switch ``CURRENT`` to it atomically.

    The documents' texts and vectors are stored in parts: a generation folder holds one
    part (the documents appended since the last save, or all of them) and names the
    earlier generations whose parts it reuses, so adding a document to a large index
    writes only that document's vectors. Spans, terms and the manifest are written whole.
    """
    folder = Path(folder).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    gen = folder / f"gen-{secrets.token_hex(6)}"
    gen.mkdir()  # the umask's permissions, as its files get, so others may read what they may read
    try:
        parts: list[tuple[str, int]] = []
        if index.saved is not None and index.saved[0] == folder and len(index.saved[1]) < MAX_PARTS:
            parts = [p for p in index.saved[1] if (folder / p[0]).is_dir()]
            if len(parts) < len(index.saved[1]):
                parts = []
        done = sum(n for _, n in parts)
        _write_part(index, gen, done)
        parts.append((gen.name, len(index.entries) - done))
        manifest = dict(index.params)
        manifest["documents"] = {e.id: e.sha256 for e in index.entries}
        manifest["counts"] = {"documents": len(index.entries), "sentences": len(index.sentences), "passages": len(index.passages)}
        manifest["parts"] = parts
        np.savez(
            gen / "spans.npz",
            s_doc=index.sentences.doc, s_start=index.sentences.start, s_end=index.sentences.end,
            p_doc=index.passages.doc, p_start=index.passages.start, p_end=index.passages.end,
            p_first=index.pass_first, p_last=index.pass_last,
            **({"ann_lists": index.ann.lists} if index.ann is not None else {}),
            **_terms_arrays("p", index.bm25.rows), **_terms_arrays("d", index.doc_bm25.rows),
        )
        if index.ann is not None:
            np.save(gen / "ann_centroids.npy", index.ann.centroids)
        vocab = sorted(index.bm25.vocab, key=index.bm25.vocab.__getitem__)
        (gen / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
        (gen / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True), encoding="utf-8")
        for p in gen.iterdir():
            _fsync(p)
        _fsync(gen)
        write_atomic(folder / "CURRENT", gen.name.encode("utf-8"), durable=True)
    except BaseException:  # disk full, interrupted: no half-written generation is left behind
        shutil.rmtree(gen, ignore_errors=True)
        raise
    index.saved = (folder, parts)
    live = {name for name, _ in parts}
    for old in folder.glob("gen-*"):
        if old.name not in live:
            shutil.rmtree(old, ignore_errors=True)


def _write_part(index: "HybridIndex", gen: Path, first_doc: int) -> None:
    """Texts and vectors of documents ``first_doc..`` (their rows are contiguous)."""
    s0, p0 = int(index.s_bounds[first_doc]), int(index.p_bounds[first_doc])
    with (gen / "docs.jsonl").open("w", encoding="utf-8") as f:
        for e in index.entries[first_doc:]:
            f.write(json.dumps({"id": e.id, "text": e.text, "meta": e.meta}, ensure_ascii=False) + "\n")
    np.save(gen / "sentence_vecs.npy", index.sentences.vecs[s0:])
    np.save(gen / "passage_vecs.npy", index.passages.vecs[p0:])


def read_manifest(folder: str | os.PathLike[str]) -> dict[str, Any]:
    gen = _current(Path(folder))
    return json.loads((gen / "manifest.json").read_text(encoding="utf-8"))


def load(make: Callable[..., "HybridIndex"], folder: str | os.PathLike[str], expected: dict[str, Any]) -> "HybridIndex":
    """Open the current generation as ``make(entries, sentences, passages, first, last, params,
    bm25, ann)``; raise :class:`IndexMismatch` if built with parameters other than ``expected``,
    :class:`IndexDamaged` if its files cannot be read as an index."""
    gen = _current(Path(folder))
    try:
        return _load(make, Path(folder), gen, expected)
    except (IndexStoreError, PermissionError):
        raise
    except (OSError, ValueError, KeyError, TypeError, IndexError, EOFError, zipfile.BadZipFile) as exc:
        raise IndexDamaged(f"index at {folder} cannot be read ({type(exc).__name__}: {str(exc)[:200]})") from None


def _load(make: Callable[..., "HybridIndex"], folder: Path, gen: Path, expected: dict[str, Any]) -> "HybridIndex":
    manifest = json.loads((gen / "manifest.json").read_text(encoding="utf-8"))
    diffs = [f"{k}: index has {manifest.get(k)!r}, now {v!r}" for k, v in expected.items() if manifest.get(k) != v]
    if diffs:
        raise IndexMismatch(f"index at {folder} was built with other settings ({'; '.join(diffs)})")
    missing = [k for k in ("parts", "documents") if k not in manifest]
    if missing:
        raise IndexMismatch(f"index at {folder} lacks {', '.join(missing)} in its manifest (written by a development build)")
    entries: list[Entry] = []
    s_vecs, p_vecs = [], []
    parts, hashes = manifest["parts"], manifest["documents"]
    for name, _ in parts:
        part = folder / name
        with (part / "docs.jsonl").open(encoding="utf-8") as f:
            for line in f:
                d = json.loads(line)
                entries.append(Entry(d["id"], d["text"], d["meta"], hashes[d["id"]]))
        # Mapped, not read: the answerer touches a few sentence vectors a question, and an
        # update copies what it keeps (a removed generation's file stays readable while mapped).
        s_vecs.append(np.load(part / "sentence_vecs.npy", mmap_mode="r"))
        p_vecs.append(np.load(part / "passage_vecs.npy", mmap_mode="r"))
    params = {k: manifest[k] for k in expected}
    z = np.load(gen / "spans.npz")
    sentences = Table(z["s_doc"], z["s_start"], z["s_end"], _stack(s_vecs, params["dim"]))
    passages = Table(z["p_doc"], z["p_start"], z["p_end"], _stack(p_vecs, params["dim"]))
    if (len(entries), len(sentences.vecs), len(passages.vecs)) != (len(hashes), len(sentences.doc), len(passages.doc)):
        raise ValueError("its parts do not hold what its manifest and spans count")
    vocab = {t: i for i, t in enumerate(json.loads((gen / "vocab.json").read_text(encoding="utf-8")))}
    bm25 = tuple(BM25Index(Terms(z[f"{k}_indptr"], z[f"{k}_ids"], z[f"{k}_counts"]), vocab, **bm25_params(params)) for k in "pd")
    ann = None
    if "ann_lists" in z:
        ann = Ann(np.load(gen / "ann_centroids.npy"), z["ann_lists"])
    out = make(entries, sentences, passages, z["p_first"], z["p_last"], params, bm25, ann)
    out.saved = (folder.resolve(), [(name, n) for name, n in parts])
    return out


def _stack(parts: list[np.ndarray], dim: int) -> np.ndarray:
    return np.concatenate(parts) if len(parts) > 1 else parts[0] if parts else np.zeros((0, dim), dtype=np.float32)


def _terms_arrays(prefix: str, t: Terms) -> dict[str, np.ndarray]:
    return {f"{prefix}_indptr": t.indptr, f"{prefix}_ids": t.ids, f"{prefix}_counts": t.counts}


def current_generation(folder: str | os.PathLike[str]) -> str | None:
    """The name of the generation ``CURRENT`` points at, None when there is none yet."""
    try:
        return (Path(folder) / "CURRENT").read_text(encoding="utf-8").strip() or None
    except FileNotFoundError:
        return None


def _current(folder: Path) -> Path:
    name = current_generation(folder)
    if name is None:
        raise IndexMissing(f"no index at {folder}: build one with `qa index`")
    gen = folder / name
    if not (gen / "manifest.json").is_file():
        raise IndexMissing(f"index at {folder} names generation {name!r}, which is missing: rebuild with `qa index`")
    return gen


def can_write(path: str | os.PathLike[str]) -> bool:
    """Could a file be written at ``path`` (its missing folders made)? Asked before a long run."""
    target = Path(path).absolute()
    folder = target.parent
    while not folder.exists():
        folder = folder.parent
    return not (target.is_dir() or not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK)
                or (target.exists() and not os.access(target, os.W_OK)))


def write_atomic(path: Path, data: bytes, durable: bool = False) -> None:
    """Write ``data`` at ``path`` by way of a temporary file beside it: a reader sees the old file
    or the new one, never half. ``durable`` also syncs the file and the rename to the disk."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    if durable:
        _fsync(path.parent)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
