"""Term normalisation shared by BM25 and the answerer's lexical features."""

from __future__ import annotations

import re
from functools import lru_cache

import Stemmer

# A soft hyphen, zero-width (non-)joiner or word joiner inside a word leaves it one word
# (web pages put them in long words); a zero-width space is a space, as in Thai.
_JOINERS = "\u00ad\u200c\u200d\u2060"
_WORD = re.compile(r"[^\W_]+(?:['’%s][^\W_]+)*" % _JOINERS, re.UNICODE)
_NO_JOINERS = str.maketrans("", "", _JOINERS)

# Function words carry no topic; question words are kept out of BM25 queries too.
STOPWORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before being
    below between both but by can could did do does doing down during each few for from further had
    has have having he her here hers herself him himself his how i if in into is it its itself just
    me more most my myself no nor not now of off on once only or other our ours ourselves out over own
    same she should so some such than that the their theirs them themselves then there these they this
    those through to too under until up very was we were what when where which while who whom why
    will with would you your yours yourself yourselves s t don also whose""".split()
)
# Bumped when what terms() returns changes, so an index tokenised the old way is rebuilt.
TERMS_VERSION = 3

_stemmer = Stemmer.Stemmer("english")


def words(text: str) -> list[re.Match[str]]:
    """Word tokens of ``text`` with their offsets (apostrophe contractions kept whole)."""
    return list(_WORD.finditer(text))


@lru_cache(maxsize=200_000)
def _stem(word: str) -> str:
    return _stemmer.stemWord(word)


def normalise(word: str) -> str:
    """Lower-case, drop joiners and possessive endings, stem."""
    w = word.lower().translate(_NO_JOINERS).replace("’", "'")
    if w.endswith("'s"):
        w = w[:-2]
    return _stem(w)


def terms(text: str) -> list[str]:
    """Content terms of ``text`` (stopwords removed, stemmed), in order, with repeats."""
    out = []
    for m in _WORD.finditer(text):
        w = m.group().lower().translate(_NO_JOINERS)
        # "what's", "it's", "there's": a function word with a clitic is still a function word.
        if w in STOPWORDS or w[-2:] in ("'s", "’s") and w[:-2] in STOPWORDS:
            continue
        out.append(normalise(w))
    return out
