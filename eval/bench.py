"""``qa bench``: index and answer speed on a corpus of realistic size.

The corpus is made of real text: the sentences of a SQuAD-format file (by default the public
benchmark) shuffled with a fixed seed and regrouped into new documents of
``SENTENCES_PER_DOC`` sentences, until the index holds the asked number of passages; the
questions are that file's questions. Reports (as a table and JSON): passages, sentences,
index_s, index_sentences_per_s (the whole build: reading, segmenting, tokenising, embedding,
saving), embed_sentences_per_s (the model alone), build_peak_rss_mb, load_s, latency_ms_p50/p95
(full ``Bot.ask``, model loaded), rss_mb (after opening the index and answering), index_mb,
add_one_doc_s (median of five incremental adds to the built index, and their max), and which dense index
served (exact, or inverted lists past ``index.ann.ANN_MIN_PASSAGES`` with their recall@10
against an exact scan for the same questions). With ``api_clients``, the same questions are
then asked through ``qa serve`` on loopback by that many concurrent clients (api_latency_ms_p50/
p95, api_answers_per_s, api_errors).

``backend="milvus"`` measures the same with retrieval from Milvus (``milvus_uri`` a server, or by
default a Milvus Lite file inside the index folder, so ``index_mb`` includes it and ``milvus_mb``
gives its share); Milvus is then the store of record and the serving process holds no copy of the
corpus, but a Milvus Lite file's engine runs inside it, so ``rss_mb`` includes Milvus's own
memory unless ``milvus_uri`` names a server. On a server the collections are ``qa_bench_<passages>_*`` unless
``milvus_collection`` names another prefix.
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path
from typing import Any

import numpy as np

from eval.harness import percentile, squad_questions
from index.milvus import LITE_FILENAME
from index.segment import make_passages, split_sentences
from index.store import PASSAGE_SIZE, PASSAGE_STRIDE
from qa.bot import Bot

SENTENCES_PER_DOC = 10


class TimedEmbedder:
    """Wraps an embedder to count the texts it embeds and the seconds it spends."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name, self.sha256, self.dim, self.variant = inner.name, inner.sha256, inner.dim, inner.variant
        self.texts = 0
        self.seconds = 0.0

    def embed(self, texts: list[str], progress: bool = False) -> np.ndarray:
        t0 = time.perf_counter()
        out = self.inner.embed(texts)
        self.seconds += time.perf_counter() - t0
        self.texts += len(texts)
        return out


def make_corpus(source: Path, passages: int, folder: Path, seed: int = 0) -> int:
    """Write documents until they hold at least ``passages`` passages (as the index will
    segment them) under ``folder``; return the number of documents."""
    data = json.loads(source.read_text(encoding="utf-8"))
    sentences = []
    for article in data["data"]:
        for para in article["paragraphs"]:
            text = para["context"]
            sentences += [text[s.start:s.end] for s in split_sentences(text)]
    random.Random(seed).shuffle(sentences)
    folder.mkdir(parents=True, exist_ok=True)
    made = d = 0
    while made < passages:
        chunk = [sentences[(d * SENTENCES_PER_DOC + i) % len(sentences)] for i in range(SENTENCES_PER_DOC)]
        text = " ".join(chunk) + "\n"
        # Joined sentences may segment differently (two merge, one splits): count what the index will.
        made += len(make_passages(split_sentences(text), PASSAGE_SIZE, PASSAGE_STRIDE))
        (folder / f"doc{d:06d}.txt").write_text(text, encoding="utf-8")
        d += 1
    return d


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _folder_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20


def _build(
    docs: Path, index_dir: Path, model: str, embedding: str, show_progress: bool, options: dict[str, Any],
) -> dict[str, Any]:
    """Index ``docs`` (run in a child process, so the parent's memory is that of serving)."""
    import resource

    from index.embedder import load_embedder
    from qa.console import progress_bar, quiet_libraries

    quiet_libraries()
    timed = TimedEmbedder(load_embedder(model, embedding))
    bot = Bot(docs, index_dir=index_dir, embedder=timed, **options)
    t0 = time.perf_counter()
    with progress_bar(show_progress) as progress:
        report = bot.sync(progress)
    return {
        "index_s": time.perf_counter() - t0, "built": bool(report.added), "sentences": bot.counts()["sentences"],
        "texts": timed.texts, "embed_s": timed.seconds, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def run(
    source: Path, passages: int, queries: int, workdir: Path, embedder: Any, show_progress: bool = True,
    adds: int = 5, backend: str = "faiss", milvus_uri: str | None = None, milvus_collection: str | None = None,
    api_clients: int = 0, quantize_reader: bool = True,
) -> dict[str, Any]:
    """Build (or reuse) the corpus and index under ``workdir`` and measure; returns the figures.

    The build runs in a child process (its peak memory is ``build_peak_rss_mb``); this process
    then opens the index, answers ``queries`` questions and adds ``adds`` documents one at a
    time (``add_one_doc_s`` is their median), so ``rss_mb`` is the memory of a serving process.
    ``quantize_reader``: the answering bot's reader runs with int8 weights (else float32).
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    docs, index_dir = workdir / f"docs-{passages}", workdir / f"index-{passages}"
    if not docs.is_dir():
        make_corpus(source, passages, docs)
    options: dict[str, Any] = {"backend": backend}
    if backend == "milvus":
        # The benchmark's own collections, filled from its source: rebuilt for other settings.
        options.update(milvus_uri=milvus_uri, milvus_collection=milvus_collection or f"qa_bench_{passages}", rebuild_store=True)
    # The child exits before this process opens the index (a Milvus Lite file has one user at a time).
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        build = pool.submit(_build, docs, index_dir, embedder.name, embedder.variant, show_progress, options).result()
    built = build["built"]
    t0 = time.perf_counter()
    bot = Bot(docs, index_dir=index_dir, embedder=embedder, quantize_reader=quantize_reader, **options)
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
    # The approximate dense index (large corpora only) against an exact scan, same questions.
    recall = idx.dense_recall(embedder.embed(qs), k=10)
    rss = _rss_mb()
    counts = bot.counts()
    add_s = []
    names = [f"bench-added-{int(time.time())}-{i}.txt" for i in range(adds)]
    for i, name in enumerate(names):
        text = f"The bench added document {i} to time an incremental update. It has two sentences."
        t0 = time.perf_counter()
        bot.add_document(name, text.encode("utf-8"))
        add_s.append(time.perf_counter() - t0)
    for name in names:
        bot.delete_document(name)
    # A Milvus Lite file has one user at a time: the API's server, or the next command (left
    # open, its in-process server races this process's exit).
    bot.close()
    lite = index_dir / LITE_FILENAME
    api: dict[str, Any] = {}
    if api_clients:
        api = _through_api(docs, index_dir, workdir, qs, api_clients, options)
    return {
        "backend": backend,
        "passages": counts["passages"],
        "sentences": counts["sentences"],
        "documents": counts["documents"],
        "index_s": round(build["index_s"], 2) if built else None,
        "index_sentences_per_s": round(build["sentences"] / build["index_s"], 1) if built else None,
        "embed_sentences_per_s": round(build["texts"] / build["embed_s"], 1) if built and build["embed_s"] else None,
        "build_peak_rss_mb": round(build["peak_rss_mb"], 1) if built else None,
        "embedding": idx.params["embedding"],
        "load_s": round(load_s, 3),
        "latency_ms_p50": round(percentile(lat, 0.5) or 0.0, 2),
        "latency_ms_p95": round(percentile(lat, 0.95) or 0.0, 2),
        "rss_mb": round(rss, 1),
        "index_mb": round(_folder_mb(index_dir), 1),
        "milvus_mb": round(_folder_mb(lite), 1) if backend == "milvus" and milvus_uri is None and lite.exists() else None,
        "add_one_doc_s": round(percentile(add_s, 0.5) or 0.0, 3),
        "add_one_doc_s_max": round(max(add_s, default=0.0), 3),
        "adds": len(add_s),
        "dense_index": "milvus FLAT" if backend == "milvus" else "exact" if idx.ann is None else f"ivf nlist={len(idx.ann.centroids)} nprobe={idx.faiss.nprobe}",
        "dense_recall_at_10": None if recall is None else round(recall, 4),
        "queries": len(lat),
        "built_now": built,
        **api,
    }


def _through_api(
    docs: Path, index_dir: Path, workdir: Path, questions: list[str], clients: int, options: dict[str, Any],
) -> dict[str, Any]:
    """The same questions through ``qa serve`` on loopback, ``clients`` at a time."""
    import asyncio

    import httpx

    from eval.loadcheck import free_port, start_server

    extra = ["--backend", options["backend"]]
    if options.get("milvus_uri"):
        extra += ["--milvus-uri", options["milvus_uri"]]
    if options.get("milvus_collection"):
        extra += ["--milvus-collection", options["milvus_collection"]]
    port = free_port()
    proc = start_server(docs, workdir, "", port, index=index_dir, extra_args=extra)
    lat: list[float] = []
    errors = 0

    async def client(mine: list[str], http: httpx.AsyncClient) -> None:
        nonlocal errors
        for q in mine:
            t0 = time.perf_counter()
            r = await http.post("/api/answer", json={"question": q})
            lat.append((time.perf_counter() - t0) * 1000)
            errors += r.status_code != 200

    async def main() -> float:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=120) as http:
            await http.post("/api/answer", json={"question": questions[0]})  # warm-up
            t0 = time.perf_counter()
            await asyncio.gather(*(client(questions[i::clients], http) for i in range(clients)))
            return time.perf_counter() - t0

    try:
        elapsed = asyncio.run(main())
    finally:
        proc.terminate()
        proc.wait(30)
    return {
        "api_clients": clients,
        "api_latency_ms_p50": round(percentile(lat, 0.5) or 0.0, 2),
        "api_latency_ms_p95": round(percentile(lat, 0.95) or 0.0, 2),
        "api_answers_per_s": round(len(lat) / elapsed, 1),
        "api_errors": errors,
    }
