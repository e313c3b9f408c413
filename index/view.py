"""A candidate view: the part of a stored corpus one question needs, shaped as an index snapshot.

A store that holds the corpus elsewhere (:mod:`index.milvus`) answers a search with records: the
candidate passages, their sentences and the sentence on either side, their documents, and the
corpus's BM25 statistics for the question's terms. :func:`build_view` turns them into a
:class:`CandidateView`, a :class:`~index.store.HybridIndex` over those rows only, so the
re-scoring and the answerer read it as they read the local index: the same features, with the
IDF and length norms of the whole corpus.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from .bm25 import BM25Index, Corpus, Terms
from .persist import bm25_params
from .records import Entry, Table
from .store import HybridIndex, no_rows
from .text import normalise, terms, words

# Term keys are 32-bit (a sparse vector's dimensions in Milvus are below 2**32 - 1).
TERM_KEY_SPACE = 2**32 - 1


def term_key(term: str) -> int:
    """A normalised term's key: the same in every process (not Python's salted ``hash``)."""
    return int.from_bytes(hashlib.blake2b(term.encode("utf-8"), digest_size=4).digest(), "big") % TERM_KEY_SPACE


def term_keys(vocab: dict[str, int]) -> list[int]:
    """The key of each term id of ``vocab``."""
    keys = [0] * len(vocab)
    for term, i in vocab.items():
        keys[i] = term_key(term)
    return keys


def term_counts(t: Terms, keys: list[int], row: int) -> dict[int, int]:
    """Row ``row`` of ``t`` as ``{term key: count}`` (``keys``: :func:`term_keys` of its vocabulary)."""
    a, b = int(t.indptr[row]), int(t.indptr[row + 1])
    out: dict[int, int] = {}
    for i, n in zip(t.ids[a:b].tolist(), t.counts[a:b].tolist()):
        out[keys[i]] = out.get(keys[i], 0) + n
    return out


def vocabulary(query: str, context: str = "") -> list[str]:
    """The normalised terms the answerer may weigh for ``query`` and its carried ``context``:
    their BM25 terms and every word of the query (names it checks the corpus for)."""
    return list(dict.fromkeys([*terms(query), *terms(context), *(normalise(m.group()) for m in words(query))]))


@dataclass(frozen=True, slots=True)
class DocRecord:
    """A stored document without its text: id, text hash and size (characters; ``bytes`` in
    UTF-8), metadata, its terms (``{term key: count}``, ``n_terms`` with repeats) for
    whole-document BM25, and its sentence count."""

    id: str
    sha256: str
    size: int
    meta: dict[str, Any]
    n_terms: int = 0
    terms: dict[int, float] | None = None
    bytes: int = 0
    sentences: int = 0


@dataclass(frozen=True, slots=True)
class PassageRecord:
    """A stored passage: offsets, the positions of its first and last sentence in the document,
    its terms and vector."""

    doc: str
    start: int
    end: int
    first: int
    last: int
    n_terms: int
    terms: dict[int, float]
    vec: np.ndarray


@dataclass(frozen=True, slots=True)
class SentenceRecord:
    """A stored sentence: its position in the document, offsets, text and vector."""

    doc: str
    seq: int
    start: int
    end: int
    text: str
    vec: np.ndarray


@dataclass(frozen=True)
class CorpusStats:
    """The corpus's BM25 statistics: passage and document counts, their mean lengths in terms,
    and ``df[term key] = (passages, documents)`` holding the term, for the terms asked about."""

    passages: int
    passage_avgdl: float
    documents: int
    doc_avgdl: float
    df: dict[int, tuple[int, int]]


class CandidateView(HybridIndex):
    """A :class:`HybridIndex` over some sentences and passages of a larger corpus.

    Rows of a document may skip sentences, so positions come from the store (:meth:`seq`) and
    texts are held per sentence (the documents' full texts are not).
    """

    def __init__(self, *args: Any, seqs: np.ndarray, texts: list[str]) -> None:
        super().__init__(*args)
        self._seqs, self._texts = seqs, texts

    def seq(self, rows):
        return self._seqs[rows]

    def sentence_text(self, row: int) -> str:
        return self._texts[row]

    def text(self, doc_row: int, start: int, end: int) -> str:
        raise NotImplementedError("a candidate view holds sentences, not whole texts")


def build_view(
    params: dict[str, Any], docs: list[DocRecord], passages: list[PassageRecord], sentences: list[SentenceRecord],
    stats: CorpusStats, vocabulary: list[str],
) -> CandidateView:
    """The view over ``passages`` (rows in that order) and ``sentences`` (each passage's, and any
    others to keep, e.g. their neighbours), of the documents ``docs``. ``vocabulary``: the
    normalised terms BM25 may be asked about (the question's and its context's); ``stats``
    gives their corpus frequencies."""
    dim = params["dim"]
    doc_row = {d.id: i for i, d in enumerate(docs)}
    entries = [Entry(d.id, "", d.meta, d.sha256, d.size) for d in docs]
    order = sorted(range(len(sentences)), key=lambda i: (doc_row[sentences[i].doc], sentences[i].seq))
    sents = [sentences[i] for i in order]
    row_of = {(s.doc, s.seq): r for r, s in enumerate(sents)}
    i32 = lambda xs: np.asarray(xs, dtype=np.int32)  # noqa: E731
    vecs = lambda rows: (np.stack([r.vec for r in rows]).astype(np.float32)  # noqa: E731
                         if rows else np.zeros((0, dim), dtype=np.float32))
    s_table = Table(i32([doc_row[s.doc] for s in sents]), i32([s.start for s in sents]), i32([s.end for s in sents]), vecs(sents))
    p_table = Table(i32([doc_row[p.doc] for p in passages]), i32([p.start for p in passages]), i32([p.end for p in passages]),
                    vecs(passages))
    pass_first = i32([row_of[(p.doc, p.first)] for p in passages])
    pass_last = i32([row_of[(p.doc, p.last)] for p in passages])
    vocab = {t: i for i, t in enumerate(dict.fromkeys(vocabulary))}
    keys = [term_key(t) for t in vocab]

    def bm25(rows: list[tuple[dict[int, float], int]], size: int, avgdl: float, which: int) -> BM25Index:
        indptr, ids, counts = [0], [], []
        for held, _ in rows:
            for i, k in enumerate(keys):
                n = held.get(k) if held else None
                if n:
                    ids.append(i)
                    counts.append(int(n))
            indptr.append(len(ids))
        t = Terms(np.asarray(indptr, dtype=np.int64), i32(ids), i32(counts))
        df = np.asarray([stats.df.get(k, (0, 0))[which] for k in keys], dtype=np.int64)
        lengths = np.maximum(np.asarray([n for _, n in rows], dtype=np.float64), 1.0)
        return BM25Index(t, vocab, **bm25_params(params), lengths=lengths, corpus=Corpus(size, max(avgdl, 1.0), df))

    indexes = (bm25([(p.terms, p.n_terms) for p in passages], stats.passages, stats.passage_avgdl, 0),
               bm25([(d.terms or {}, d.n_terms) for d in docs], stats.documents, stats.doc_avgdl, 1))
    return CandidateView(entries, s_table, p_table, pass_first, pass_last, params, indexes,
                         seqs=np.asarray([s.seq for s in sents], dtype=np.int64), texts=[s.text for s in sents])


class Catalogue(HybridIndex):
    """The documents of a store without their rows: what the serving layer lists and checks
    document ids against (search goes to the store)."""

    def __init__(self, params: dict[str, Any], docs: list[DocRecord], generation: int) -> None:
        """``generation``: the store's count of writes when ``docs`` were listed."""
        super().__init__([Entry(d.id, "", d.meta, d.sha256, d.size) for d in docs], *no_rows(params))
        self.records, self.store_generation = docs, generation

    def doc_facts(self, doc_row: int) -> tuple[int, int, int]:
        d = self.records[doc_row]
        return d.size, d.bytes, d.sentences
