"""New texts turned into index rows: segmented into sentences and passages, tokenised for BM25
and embedded (passage vectors are their sentences' mean)."""

from __future__ import annotations

from typing import Callable, Mapping

import numpy as np

from .bm25 import Terms
from .embedder import Embedder
from .records import Entry, Table
from .segment import make_passages, split_sentences

# Passages of four sentences overlapping by one. On eval.train's 3,570 calibration questions
# (outside the report sample), with the passage score refit on its ranker set for each size, the
# answer's passage was in the search's top 5 for 0.953 with three sentences, 0.957 with four and
# 0.958 with five (the peers index whole SQuAD paragraphs, about five sentences).
PASSAGE_SIZE = 4
PASSAGE_STRIDE = 3
# Sentences one document may hold, each embedded: two to four times the text limit's prose
# (measurements: docs/formats.md, "Hostile files").
MAX_SENTENCES = 100_000


class Unindexable(ValueError):
    """Documents the index cannot hold (more than :data:`MAX_SENTENCES` sentences, or what the
    store cannot take); nothing was embedded. ``refused`` maps each one's id to why."""

    def __init__(self, refused: dict[str, str]) -> None:
        self.refused = refused
        super().__init__("; ".join(refused.values()))


def ranges(starts: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """``concat(arange(start, start + size))`` over the pairs, without a Python loop."""
    starts, sizes = np.asarray(starts, dtype=np.int64), np.asarray(sizes, dtype=np.int64)
    offsets = np.cumsum(sizes) - sizes
    return np.repeat(starts - offsets, sizes) + np.arange(int(sizes.sum()), dtype=np.int64)


def passage_vectors(sentence_vecs: np.ndarray, first: np.ndarray, last: np.ndarray) -> np.ndarray:
    """A passage's vector: the normalised mean of its sentences' vectors (rows first..last).

    Embedding each passage as well as its sentences would run the model over every sentence
    2.3 times (passages of four sentences overlap by one); the mean costs nothing. On the SQuAD
    standard run, with passages of three sentences, it changed sentence_accuracy by -0.2 point
    and passage_recall@5 by -0.9 (0.750 -> 0.748, 0.930 -> 0.921; float32 vectors), for 2.5x
    the indexing rate.
    """
    out = np.zeros((len(first), sentence_vecs.shape[1]), dtype=np.float32)
    for j in range(int((last - first).max(initial=-1)) + 1):
        rows = first + j
        inside = rows <= last
        out[inside] += sentence_vecs[rows[inside]]
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


class Segmented:
    """New texts segmented, tokenised and embedded: their rows, numbered from 0, to append.

    Raises :class:`Unindexable`, naming every text over :data:`MAX_SENTENCES`, before any
    embedding.
    A sentence found word for word in ``known`` (text: vector) takes that vector instead of
    being embedded again: the unchanged sentences of an edited or renamed document.
    """

    def __init__(
        self, entries: list[Entry], dim: int, embedder: Embedder, vocab: dict[str, int],
        progress: Callable[[int, int], None] | None, known: Mapping[str, np.ndarray] | None = None,
    ) -> None:
        cols: dict[str, list[int]] = {k: [] for k in ("s_doc", "s_start", "s_end", "p_doc", "p_start", "p_end", "first", "last")}
        texts: list[str] = []
        p_texts: list[str] = []
        refused: dict[str, str] = {}
        for di, entry in enumerate(entries):
            sents = split_sentences(entry.text)
            if len(sents) > MAX_SENTENCES:
                refused[entry.id] = (f"{entry.id}: {len(sents)} sentences; the limit is {MAX_SENTENCES} a document: "
                                     "split it into smaller files")
            if refused:
                continue  # each text is still checked, but no rows are built: the caller retries without those
            base = len(cols["s_doc"])
            for sp in sents:
                cols["s_doc"].append(di), cols["s_start"].append(sp.start), cols["s_end"].append(sp.end)
                texts.append(entry.text[sp.start:sp.end])
            for p in make_passages(sents, PASSAGE_SIZE, PASSAGE_STRIDE):
                cols["p_doc"].append(di), cols["p_start"].append(p.start), cols["p_end"].append(p.end)
                cols["first"].append(base + p.first), cols["last"].append(base + p.last)
                p_texts.append(entry.text[p.start:p.end])
        if refused:
            raise Unindexable(refused)
        c = {k: np.asarray(v, dtype=np.int32) for k, v in cols.items()}
        vecs = np.zeros((len(texts), dim), dtype=np.float32)
        todo = []
        for i, text in enumerate(texts):
            vec = known.get(text) if known else None
            if vec is None:
                todo.append(i)
            else:
                vecs[i] = vec
        if todo:
            vecs[todo] = embed_batched(embedder, [texts[i] for i in todo], progress)
        self.sentences = Table(c["s_doc"], c["s_start"], c["s_end"], vecs)
        self.passages = Table(c["p_doc"], c["p_start"], c["p_end"], passage_vectors(vecs, c["first"], c["last"]))
        self.first, self.last = c["first"], c["last"]
        self.passage_terms = Terms.from_texts(p_texts, vocab)
        self.doc_terms = Terms.from_texts([e.text for e in entries], vocab)


def embed_batched(embedder: Embedder, texts: list[str], progress: Callable[[int, int], None] | None, chunk: int = 256) -> np.ndarray:
    # Longest first within the call keeps padding low; order is restored after.
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    out = np.zeros((len(texts), embedder.dim), dtype=np.float32)
    done = 0
    if progress:
        progress(0, len(texts))
    for a in range(0, len(order), chunk):
        idx = order[a:a + chunk]
        out[idx] = embedder.embed([texts[i] for i in idx])
        done += len(idx)
        if progress:
            progress(done, len(texts))
    return out
