"""``qa bench``: index and answer speed on a corpus of realistic size.

The corpus is made of real text: the sentences of a SQuAD-format file (by default the public
benchmark) shuffled with a fixed seed and regrouped into new documents of
``SENTENCES_PER_DOC`` sentences, until the index holds the asked number of passages; the
questions are that file's questions. Reports (as a table and JSON): passages, sentences,
index_s, embed_sentences_per_s, load_s, latency_ms_p50/p95 (full ``Bot.ask``, model loaded),
rss_mb, index_mb and add_one_doc_s (an incremental add to the built index).

``backend="milvus"`` measures the same with retrieval from Milvus (``milvus_uri`` a server, or by
default a Milvus Lite file inside the index folder, so ``index_mb`` includes it and ``milvus_mb``
gives its share); index_s and add_one_doc_s then include keeping the collection in step, and
load_s reconciling it with the index on disk. On a server the collection is
``qa_bench_<passages>`` unless ``milvus_collection`` names another.
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from eval.harness import percentile, squad_questions
from index.segment import Span, make_passages, split_sentences
from index.milvus import LITE_FILENAME
from index.store import PASSAGE_SIZE, PASSAGE_STRIDE
from qa.bot import Bot

SENTENCES_PER_DOC = 10


class TimedEmbedder:
    """Wraps an embedder to count the texts it embeds and the seconds it spends."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name, self.sha256, self.dim = inner.name, inner.sha256, inner.dim
        self.texts = 0
        self.seconds = 0.0

    def embed(self, texts: list[str], progress: bool = False) -> np.ndarray:
        t0 = time.perf_counter()
        out = self.inner.embed(texts)
        self.seconds += time.perf_counter() - t0
        self.texts += len(texts)
        return out


def _passage_count(n_sentences: int) -> int:
    return len(make_passages([Span(i, i + 1) for i in range(n_sentences)], PASSAGE_SIZE, PASSAGE_STRIDE))


def make_corpus(source: Path, passages: int, folder: Path, seed: int = 0) -> int:
    """Write documents holding about ``passages`` passages under ``folder``; return the count."""
    data = json.loads(source.read_text(encoding="utf-8"))
    sentences = []
    for article in data["data"]:
        for para in article["paragraphs"]:
            text = para["context"]
            sentences += [text[s.start:s.end] for s in split_sentences(text)]
    random.Random(seed).shuffle(sentences)
    per_doc = _passage_count(SENTENCES_PER_DOC)
    n_docs = max(1, -(-passages // per_doc))
    folder.mkdir(parents=True, exist_ok=True)
    for d in range(n_docs):
        chunk = [sentences[(d * SENTENCES_PER_DOC + i) % len(sentences)] for i in range(SENTENCES_PER_DOC)]
        (folder / f"doc{d:06d}.txt").write_text(" ".join(chunk) + "\n", encoding="utf-8")
    return n_docs


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _folder_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20


def run(
    source: Path, passages: int, queries: int, workdir: Path, embedder: Any,
    progress: Callable[[int, int], None] | None = None,
    backend: str = "faiss", milvus_uri: str | None = None, milvus_collection: str | None = None,
) -> dict[str, Any]:
    """Build (or reuse) the corpus and index under ``workdir`` and measure; returns the figures."""
    docs, index_dir = workdir / f"docs-{passages}", workdir / f"index-{passages}"
    if not docs.is_dir():
        make_corpus(source, passages, docs)
    timed = TimedEmbedder(embedder)
    options: dict[str, Any] = {"backend": backend}
    if backend == "milvus":
        options.update(milvus_uri=milvus_uri, milvus_collection=milvus_collection or f"qa_bench_{passages}")
    bot = Bot(docs, index_dir=index_dir, embedder=timed, **options)
    t0 = time.perf_counter()
    report = bot.sync(progress)
    index_s = time.perf_counter() - t0
    built = bool(report.added)
    t0 = time.perf_counter()
    bot = Bot(docs, index_dir=index_dir, embedder=timed, **options)
    bot.sync()
    load_s = time.perf_counter() - t0
    idx = bot.index
    qs = [q for _, q, _, _ in squad_questions(source)]
    qs = random.Random(1).sample(qs, min(queries, len(qs)))
    bot.ask(qs[0])  # first call pays one-off costs (kernels, caches)
    lat = []
    for q in qs:
        t0 = time.perf_counter()
        bot.ask(q)
        lat.append((time.perf_counter() - t0) * 1000)
    name = f"bench-added-{int(time.time())}.txt"
    text = "The bench added this document to time an incremental update. It has two sentences."
    t0 = time.perf_counter()
    bot.add_document(name, text.encode("utf-8"))
    add_s = time.perf_counter() - t0
    bot.delete_document(name)
    lite = index_dir / LITE_FILENAME
    return {
        "backend": backend,
        "passages": len(idx.passages),
        "sentences": len(idx.sentences),
        "documents": len(idx.entries),
        "index_s": round(index_s, 2) if built else None,
        "embed_sentences_per_s": round(timed.texts / timed.seconds, 1) if built and timed.seconds else None,
        "load_s": round(load_s, 3),
        "latency_ms_p50": round(percentile(lat, 0.5) or 0.0, 2),
        "latency_ms_p95": round(percentile(lat, 0.95) or 0.0, 2),
        "rss_mb": round(_rss_mb(), 1),
        "index_mb": round(_folder_mb(index_dir), 1),
        "milvus_mb": round(_folder_mb(lite), 1) if backend == "milvus" and milvus_uri is None and lite.exists() else None,
        "add_one_doc_s": round(add_s, 3),
        "queries": len(lat),
        "built_now": built,
    }
