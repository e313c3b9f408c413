"""Shared fixtures: the real MiniLM model, loaded once per test session, and real corpora."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / "data"
DOCUMENTS = ROOT / "documents"


class CountingEmbedder:
    """The real embedder, counting the texts it embeds (to check incremental updates)."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.name, self.sha256, self.dim, self.variant = inner.name, inner.sha256, inner.dim, inner.variant
        self.count = 0

    def embed(self, texts, progress: bool = False):
        self.count += len(texts)
        return self.inner.embed(texts)


@pytest.fixture(scope="session")
def embedder():
    """The default embedder (ONNX int8 on a CPU-only machine), as `qa` itself loads it."""
    from index.embedder import load_embedder

    return load_embedder()


@pytest.fixture
def counting(embedder):
    return CountingEmbedder(embedder)


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    """A writable copy of the tiny test corpus."""
    dst = tmp_path / "corpus"
    shutil.copytree(DATA / "corpus", dst)
    return dst


@pytest.fixture(scope="session")
def seeds_bot(embedder, tmp_path_factory):
    """A bot over the project's documents/ with its index in a temporary folder."""
    from qa.bot import Bot

    bot = Bot(DOCUMENTS, index_dir=tmp_path_factory.mktemp("seeds-index"), embedder=embedder)
    bot.sync()
    return bot


def tiny_training_file(path: Path) -> None:
    """A SQuAD-format file of 12 made-up articles, each two paragraphs with one question."""
    articles = []
    for n in range(12):
        paragraphs = []
        for p, (thing, year) in enumerate((("bridge", 1900 + n), ("library", 1950 + n))):
            context = f"The town {n} built a {thing} in {year}. Visitors of town {n} like the {thing} very much."
            start = context.index(str(year))
            paragraphs.append({"context": context, "qas": [{
                "id": f"q{n}-{p}", "question": f"When did town {n} build its {thing}?",
                "answers": [{"text": str(year), "answer_start": start}]}]})
        articles.append({"title": f"Town {n}", "paragraphs": paragraphs})
    path.write_text(json.dumps({"version": "1.0", "data": articles}), encoding="utf-8")
