"""Settings shared by the index and the CLI (no heavy imports: `qa --help` reads them)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """Derived data kept between runs: SQuAD corpora and indexes, bench corpora, ONNX models."""
    base = os.environ.get("XDG_CACHE_HOME", "")
    # Empty or relative is unset (the XDG spec): else the 100 MB ONNX export lands in the current folder.
    return (Path(base) if os.path.isabs(base) else Path.home() / ".cache") / "qa-bot"


# How the embedding model can run (see index.embedder.load_embedder).
EMBEDDING_BACKENDS = ("auto", "torch", "onnx", "onnx-int8")
# Where passages are retrieved from (see qa.bot.Bot), and the Milvus collection by default.
RETRIEVAL_BACKENDS = ("faiss", "milvus")
DEFAULT_MILVUS_COLLECTION = "qa_corpus"
