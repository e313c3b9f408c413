import math

from rank_bm25 import BM25Okapi

from index.bm25 import BM25Index
from index.text import terms

TEXTS = [
    "Milley called Li about the election.",
    "Milley spoke to reporters about the book.",
    "The book was written by two journalists.",
    "Milley said the call was routine.",
]


def test_variant_keeps_common_terms_positive():
    idx = BM25Index(TEXTS)
    # "milley" is in 3 of 4 passages: Okapi's IDF is negative there, BM25+ keeps it positive.
    okapi = BM25Okapi([terms(t) for t in TEXTS])
    assert math.log((4 - 3 + 0.5) / (3 + 0.5)) < 0  # Okapi's own IDF for it
    assert okapi.idf["milley"] == okapi.epsilon * okapi.average_idf  # rank-bm25 patches it to a floor
    assert idx.idf("milley") == math.log(5 / 3) > 0
    assert idx.params["variant"] == "BM25Plus"
    top = idx.search("What did Milley say?", k=4)
    assert {p for p, _ in top} == {0, 1, 3}


def test_only_candidates_from_postings_are_scored():
    idx = BM25Index(TEXTS)
    hits = idx.search("journalists book", k=10)
    assert [p for p, _ in hits][0] == 2
    assert {p for p, _ in hits} == {1, 2}  # passages with neither term are never scored
    assert idx.search("volcano", k=5) == []


def test_allowed_mask_restricts_candidates():
    import numpy as np

    idx = BM25Index(TEXTS)
    allowed = np.array([False, True, False, True])
    assert {p for p, _ in idx.search("Milley", 10, allowed)} == {1, 3}


def test_empty_corpus():
    idx = BM25Index([])
    assert idx.search("anything", 3) == [] and idx.idf("x") == 0.0
