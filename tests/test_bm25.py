import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from rank_bm25 import BM25Okapi, BM25Plus

from index.bm25 import BM25Index, Terms
from index.text import terms

TEXTS = [
    "Milley called Li about the election.",
    "Milley spoke to reporters about the book.",
    "The book was written by two journalists.",
    "Milley said the call was routine.",
]


def test_variant_keeps_common_terms_positive():
    idx = BM25Index.from_texts(TEXTS)
    # "milley" is in 3 of 4 passages: Okapi's IDF is negative there, BM25+ keeps it positive.
    okapi = BM25Okapi([terms(t) for t in TEXTS])
    assert math.log((4 - 3 + 0.5) / (3 + 0.5)) < 0  # Okapi's own IDF for it
    assert okapi.idf["milley"] == okapi.epsilon * okapi.average_idf  # rank-bm25 patches it to a floor
    assert idx.idf("milley") == math.log(5 / 3) > 0
    assert idx.params["variant"] == "BM25Plus"
    top = idx.search("What did Milley say?", k=4)
    assert {p for p, _ in top} == {0, 1, 3}


def test_only_candidates_from_postings_are_scored():
    idx = BM25Index.from_texts(TEXTS)
    hits = idx.search("journalists book", k=10)
    assert [p for p, _ in hits][0] == 2
    assert {p for p, _ in hits} == {1, 2}  # passages with neither term are never scored
    assert idx.search("volcano", k=5) == []


def test_holds_names_the_texts_with_a_term():
    idx = BM25Index.from_texts(TEXTS)
    assert [r for r in range(len(TEXTS)) if idx.holds(r, "book")] == [1, 2]
    assert not idx.holds(0, "volcano") and not idx.holds(len(TEXTS), "book")


def test_allowed_mask_restricts_candidates():
    idx = BM25Index.from_texts(TEXTS)
    allowed = np.array([False, True, False, True])
    assert {p for p, _ in idx.search("Milley", 10, allowed)} == {1, 3}


def test_empty_corpus():
    idx = BM25Index.from_texts([])
    assert idx.search("anything", 3) == [] and idx.idf("x") == 0.0


WORDS = ["milley", "call", "china", "general", "book", "election", "troops", "reporters", "secret", "war"]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.lists(st.sampled_from(WORDS), min_size=1, max_size=12), min_size=1, max_size=15),
    st.lists(st.sampled_from(WORDS), min_size=1, max_size=4),
)
def test_scores_equal_rank_bm25(docs, query):
    """Same candidates, scores and order as rank-bm25's BM25Plus.

    The two sum in different orders, so scores agree to about 1e-15 and rows that tie exactly
    in one may differ in the last bit in the other (11 of 3,000 random cases): tied rows may
    come in either order.
    """
    texts = [" ".join(d) for d in docs]
    idx = BM25Index.from_texts(texts)
    ref = BM25Plus([terms(t) for t in texts], k1=idx.k1, b=idx.b, delta=idx.delta)
    q = list(dict.fromkeys(terms(" ".join(query))))
    candidates = [i for i, t in enumerate(texts) if set(terms(t)) & set(q)]
    want = dict(zip(candidates, ref.get_batch_scores(q, candidates)))
    got = idx.search(" ".join(query), k=len(texts))
    rows = [p for p, _ in got]
    assert sorted(rows) == candidates
    assert np.allclose([s for _, s in got], [want[p] for p in rows])
    ranked = [want[p] for p in rows]
    assert all(a >= b - 1e-9 for a, b in zip(ranked, ranked[1:]))


def test_terms_take_and_concat_keep_rows():
    vocab: dict[str, int] = {}
    t = Terms.from_texts(TEXTS, vocab)
    rows = np.array([3, 0])
    picked = Terms.concat([t.take(rows), Terms.from_texts(["Journalists wrote."], vocab)])
    inverse = {i: w for w, i in vocab.items()}

    def bag(terms_: Terms, r: int) -> dict[str, int]:
        a, b = terms_.indptr[r], terms_.indptr[r + 1]
        return {inverse[int(i)]: int(c) for i, c in zip(terms_.ids[a:b], terms_.counts[a:b])}

    assert [bag(picked, r) for r in range(3)] == [bag(t, 3), bag(t, 0), {"journalist": 1, "wrote": 1}]
    assert picked.lengths().tolist() == [4, 4, 2]  # "milley said call routin", "milley call li elect"


def test_context_terms_count_their_weight():
    idx = BM25Index.from_texts(TEXTS)
    whole = idx.scored("book journalists")
    # Weight 1: the same as one query holding both words.
    assert np.allclose(idx.scored("book", "journalists", 1.0).scores, whole.scores)
    # Weight w: BM25+ (floor included) is linear in each term's IDF.
    half = idx.scored("book", "journalists", 0.5)
    assert np.allclose(half.scores, idx.scored("book").scores + 0.5 * idx.scored("journalists").scores)
    assert math.isclose(half.mass, idx.idf(terms("book")[0]) + 0.5 * idx.idf(terms("journalists")[0]))
    # A context word the query already has keeps the query's full weight.
    assert np.allclose(idx.scored("book journalists", "journalists", 0.1).scores, whole.scores)
    # A text holding only context words weighted 0 is no candidate.
    assert {p for p, _ in idx.search("election", 10, context="journalists", context_weight=0.0)} == {0}
    assert {p for p, _ in idx.search("election", 10, context="journalists", context_weight=0.3)} == {0, 2}


def test_function_words_with_a_clitic_are_not_terms():
    # "What's" is "what" + "'s": no topic; a name's possessive keeps the name.
    assert terms("What's his name? It’s there's Milley's call, whose?") == ["name", "milley", "call"]


def test_a_soft_hyphen_or_joiner_inside_a_word_leaves_it_one_word():
    from index.text import words

    # Web pages put soft hyphens into long words; the reader ignores them, so BM25 must too.
    idx = BM25Index.from_texts(["The inter\u00adoper\u00adability tests ran.", "The tests of speed ran."])
    assert [p for p, _ in idx.search("interoperability", k=2)] == [0]
    assert [m.group() for m in words("co\u2060operate now")] == ["co\u2060operate", "now"]
    assert terms("Thai\u200bwords") == terms("Thai words")  # a zero-width space is a space
    assert terms("what\u00ad's new") == terms("what's new") == ["new"]
