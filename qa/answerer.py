"""The extractive answerer: rank the sentences of the top passages, read the best, pick the short
answer, or abstain.

* the ranker scores each candidate sentence from question-aware features (:data:`FEATURES`);
  it is trained pairwise (right sentence against wrong ones of the same question) on SQuAD;
* the reader (:mod:`qa.reader`, MiniLM fine-tuned to read question and sentence together) reads
  the ranker's top :data:`READ_TOP`; their order is the ranker's score plus the reader's
  "answers" logit times a learned weight (for a follow-up, the ranker's score also holds the
  locality prior: where the candidate sits against the sentence the last turn cited,
  :data:`LOCALITY`). The reader also points at the short answer inside the top sentence, except
  for the question types where the hand-written patterns (:mod:`qa.answertype`) measured better;
* the confidence model turns the top sentence's features, its lead over the runner-up and the
  reader's signals (:data:`CONFIDENCE_FEATURES`) into the probability that it answers the
  question, calibrated across domains. Below the threshold the bot abstains and lists the
  nearest misses.
* a question asking for yes or no (:func:`qa.answertype.is_polar`) is answered "Yes" or "No"
  about the top sentence when :meth:`Model.verdict`, read from the reader's pooled output, is
  sure enough; otherwise it gets the span like any other question.

The ranker, reader weight, confidence model, threshold and the pattern question types are in
``qa/weights.json`` (``eval/train.py``, on the ``calib`` splits of every public training file);
the reader's weights in ``qa/reader.safetensors`` (``eval/train_reader.py``); the locality prior
in ``qa/locality.json`` (``eval/train_locality.py``); the yes/no verdict under ``polar`` in
``qa/weights.json`` (``eval/train_polar.py``), and how a settled turn's confidence is shown under
``settled`` (``eval/train_settled.py``).
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import math
import re
import threading
import unicodedata
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from index.store import CONTEXT_WEIGHT, Hit, HybridIndex
from index.text import STOPWORDS, normalise, terms, words


from .answertype import NONE, Span, find_answer, is_polar, question_type
from .conversation import search_text
from .reader import READER_SHA256, Reader, Reading, scores_of
from .types import Citation

FEATURES = (
    "cos",          # cosine of question and sentence embeddings
    "cos_gap",      # cos minus the best candidate's cos
    "cos_ctx",      # best cosine of the sentence's neighbours
    "cos_pair",     # best cosine of the sentence joined with one neighbour (mean of their vectors)
    "cov",          # share of the question's IDF mass found in the sentence
    "cov_gap",      # cov minus the best candidate's cov
    "lcov",         # cov with term weights sharpened by rarity among the candidates themselves
    "lcov_gap",     # lcov minus the best candidate's lcov
    "lcov_rr",      # 1 / rank of the sentence by lcov among candidates
    "sbm25",        # BM25 of the sentence against the question (length-normalised among candidates)
    "sbm25_rr",     # 1 / rank by sbm25
    "first",        # the sentence opens its document
    "cov_ctx",      # cov over the sentence and its two neighbours
    "cov_prev",     # cov of the previous sentence alone (0 at a document's start)
    "cov_next",     # cov of the next sentence alone
    "anaphoric",    # the sentence opens with a pronoun or demonstrative ("This", "He", "Its")
    "pcos",         # cosine of the question and the best passage holding the sentence
    "bigram",       # share of the question's adjacent term pairs found in the sentence
    "density",      # matched question terms per token of the stretch that holds them
    "novel",        # share of the sentence's terms not in the question (room for an answer)
    "length",       # log of the sentence's term count
    "passage_gap",  # search score of the best passage holding the sentence minus the top passage's
    "passage_rr",   # 1 / rank of that passage
    "type_match",   # holds a span of the expected answer type that is not in the question
    "type_near",    # closeness of that span to the question's words in the sentence
    "type_prev",    # the previous sentence holds such a span (answers often sit next door)
    "typed_q",      # the question expects a typed answer (when/who/how many/where/name)
    "cos_rr",       # 1 / rank of the sentence by cosine among candidates
    "cov_rr",       # 1 / rank of the sentence by cov among candidates
    "miss_max",     # the rarest question term missing from the sentence and its neighbours (IDF, 0-1)
    "oov",          # share of the question's IDF mass in terms the corpus does not hold at all
)
# The confidence model sees the top sentence through a few absolute, question-level signals
# (how much of the question it covers, how close in meaning, whether the expected answer type
# is there) and its lead over the runner-up; a short list keeps it reviewable and general.
CONFIDENCE_FROM = ("cos", "pcos", "cov", "cov_ctx", "lcov", "bigram", "type_match", "typed_q", "miss_max", "oov")
# From the reader: the top sentence's "answers" logit, its lead over the next read sentence's, and
# the logit sum of its best short-answer span (0 when it was not read).
CONFIDENCE_FEATURES = CONFIDENCE_FROM + ("margin", "rank_score", "reader", "reader_lead", "span_score")
# The span score is clipped to this range: a sentence with no token to point at has none.
_SPAN_SCORE = (-10.0, 30.0)
_CONF = [FEATURES.index(f) for f in CONFIDENCE_FROM]
WEIGHTS_FILE = Path(__file__).with_name("weights.json")
# Where a follow-up's candidate sits against the sentence the previous turn cited: that very
# sentence, the next one, the one after, the one before, elsewhere within NEARBY sentences of
# it in its document (about a paragraph), or within FURTHER sentences. Each
# has a weight and a weight per unit of the previous answer's confidence (a citation the bot
# doubted says less about where the conversation is); both are learned
# (``qa/locality.json``, ``eval/train_locality.py``) and add to the ranker's score.
LOCALITY = ("same", "next", "next2", "before", "nearby", "further")
NEARBY, FURTHER = 4, 8
LOCALITY_FILE = Path(__file__).with_name("locality.json")
# A question that names something no document mentions ("…the capital of France?" over news
# about a harbour town, "…the 2030 elections?" over news from 2019) is not answered by them, however
# well its other words match: its confidence is scaled by this factor.
UNKNOWN_SPECIFIC_FACTOR = 0.2
# A specific the corpus's words lack is still known when a candidate document is named by it
# ("BSD" for BSD.txt), its parts are known ("GPLv3": "GPL" and "3"), or it spells the initials
# of capitalised words of a candidate sentence ("FSF": "Free Software Foundation").
_VERSIONED = re.compile(r"([^\W\d_]+?)v?(\d+)", re.IGNORECASE)
_ACRONYM_JOIN = r"[\W_]+(?:(?:of|and|the|for|on|de)[\W_]+){0,2}"
CANDIDATE_PASSAGES = 8
# The reader scores this many of the ranker's best candidates: the right sentence is among the
# top 5 for 0.939 of the SQuAD sample (0.955 for the top 10), and reading the top 3, 5 or 10
# gave the same accuracy on held-out articles.
READ_TOP = 5
# Sentences of the other documents read to corroborate an answer (one reader batch, besides
# those the answer itself read): the ranker's best, wherever they are. Three cost more for the same
# verdicts (docs/agreement.md).
CORROBORATION_READS = 2
_F = {f: i for i, f in enumerate(FEATURES)}
# BM25 parameters of the sentence-level score (the usual defaults).
_K1, _B = 1.2, 0.75
_ANAPHORIC = re.compile(r"^\W*(this|that|these|those|it|its|they|their|them|he|his|she|her|such|there)\b", re.IGNORECASE)


def _no_prior() -> np.ndarray:
    """Locality weights that add nothing (:attr:`Model.locality`)."""
    return np.zeros((2, len(LOCALITY)))


@dataclass(frozen=True)
class Model:
    """Ranker weights, confidence weights and bias, the abstention threshold, and the reader's
    weight in the final order (0: no reader, as in the ``--compare`` ablations)."""

    rank: np.ndarray
    confidence: np.ndarray
    bias: float
    threshold: float
    reader: float = 0.0
    locality: np.ndarray = field(default_factory=_no_prior)
    # Question types (:func:`qa.answertype.question_type`) whose short answer the hand-written
    # patterns pick better than the reader's span head (measured on the calibration questions).
    pattern_kinds: frozenset[str] = frozenset()
    # The threshold for a later turn in a conversation kept to a few documents that answered an
    # earlier turn: fit at the share of later turns real dialogues leave unanswered (CoQA's).
    follow_up_threshold: float | None = None
    # The confidence at which another document's sentence counts as answering a question the
    # corpus has answered: the answer threshold unless the weights say otherwise
    # (``python -m eval.agreement calibrate`` measures what it lets through).
    corroboration_threshold: float = 0.33
    # The yes/no verdict on a polar question's top sentence: logistic weights over the reader's
    # pooled output, its bias, and the probability of the likelier side it must reach
    # (``python -m eval.train_polar``); None: polar questions get their span, no verdict.
    polar: tuple[np.ndarray, float, float] | None = None
    # A settled turn's shown confidence: ``sigmoid(scale * logit(c) + shift)`` of the model's
    # ``c``, fit on real dialogues (``python -m eval.train_settled``); None: shown as it is.
    settled: tuple[float, float] | None = None

    def shown(self, confidence: float) -> float:
        """The confidence shown for a settled turn whose model confidence is ``confidence``."""
        if self.settled is None:
            return confidence
        scale, shift = self.settled
        return _sigmoid(scale * confidence_logit(confidence) + shift)

    def verdict(self, reading: Reading, confidence: float = 1.0) -> str | None:
        """"Yes" or "No" on the sentence ``reading`` read, when the verdict is sure enough; on a
        sentence that is right with probability ``confidence`` (else a coin toss)."""
        if self.polar is None:
            return None
        weight, bias, gate = self.polar
        p = _sigmoid(float(reading.pooled @ weight) + bias)
        sure = confidence * max(p, 1 - p) + (1 - confidence) * 0.5
        return None if sure < gate else "Yes" if p >= 0.5 else "No"

    @classmethod
    def load(cls, path: Path = WEIGHTS_FILE, locality_path: Path | None = LOCALITY_FILE) -> "Model":
        """The shipped weights; ``locality_path=None``: no locality prior (what it is learned on)."""
        data = json.loads(path.read_text(encoding="utf-8"))
        locality = _no_prior()
        if locality_path:
            near = json.loads(locality_path.read_text(encoding="utf-8"))
            for part in ("weights", "by_confidence"):
                if set(near.get(part, ())) != set(LOCALITY):
                    raise ValueError(f"{locality_path}: {part} must weigh {list(LOCALITY)}; "
                                     "retrain with `python -m eval.train_locality`")
            locality = np.array([[near[part][f] for f in LOCALITY] for part in ("weights", "by_confidence")])
        for part, names in (("rank", FEATURES), ("confidence", CONFIDENCE_FEATURES)):
            missing = [f for f in names if f not in data[part]]
            if missing:
                raise ValueError(f"{path}: no {part} weight for {missing}; retrain with `python -m eval.train`")
        if "reader" not in data:
            raise ValueError(f"{path}: no reader weight; retrain with `python -m eval.train`")
        polar = data.get("polar")
        if polar is not None and polar.get("reader_sha256") != READER_SHA256:
            raise ValueError(f"{path}: the yes/no verdict was fit on another reader; refit it with `python -m eval.train_polar`")
        settled = data.get("settled")
        if settled is not None and settled.get("confidence_model") != confidence_fingerprint(data):
            raise ValueError(f"{path}: the settled turns' confidence was fit on another confidence model; "
                             "refit it with `python -m eval.train_settled`")
        return cls(
            np.array([data["rank"][f] for f in FEATURES]),
            np.array([data["confidence"][f] for f in CONFIDENCE_FEATURES]),
            float(data["bias"]), float(data["threshold"]), float(data["reader"]), locality,
            frozenset(data.get("pattern_kinds", ())), data.get("follow_up_threshold"),
            float(data.get("corroboration_threshold", data["threshold"])),
            (np.array(polar["weight"], dtype=np.float32), float(polar["bias"]), float(polar["gate"])) if polar else None,
            (float(settled["scale"]), float(settled["shift"])) if settled else None,
        )


@dataclass(frozen=True)
class Decision:
    """What :meth:`Answerer.answer` decided: abstain or not, the short answer, the confidence,
    the citations, the passage order (positions of the hits, best first) and the reader's
    readings by sentence row (what was read, for :meth:`Answerer.corroborate` to reuse)."""

    abstained: bool
    answer: str | None
    confidence: float
    citations: list[Citation]
    passage_order: list[int]
    read: dict[int, Reading] = field(default_factory=dict)


def confidence_fingerprint(weights: dict[str, Any]) -> str:
    """A digest of what a weights file's confidence reads (its ranker, reader weight, confidence
    weights and bias, and the shipped reader): what a later fit on its output was made for."""
    model = {k: weights[k] for k in ("rank", "reader", "confidence", "bias")}
    return hashlib.sha256(json.dumps([model, READER_SHA256], sort_keys=True).encode()).hexdigest()[:16]


def confidence_logit(confidence: float) -> float:
    """The logit of a confidence, clipped 1e-4 from 0 and 1 (what ``settled`` rescales)."""
    c = min(max(confidence, 1e-4), 1 - 1e-4)
    return math.log(c / (1 - c))


def _docs_of(index: HybridIndex, rows: Sequence[int]) -> set[int]:
    """The document rows of sentence ``rows``."""
    return {int(d) for d in index.sentences.doc[list(rows)]}


def _name_words(index: HybridIndex, doc: int, title: bool) -> set[str]:
    """The normalised words of document ``doc``'s id (its file name), and of its title."""
    entry = index.entries[doc]
    return {normalise(m.group()) for m in words(f"{entry.id} {entry.meta.get('title', '') if title else ''}")}


def _name_parts(text: str) -> tuple[frozenset[str], frozenset[str]]:
    """The normalised words and the numbers of ``text`` ("GPLv2" gives "gpl" and "2"); function
    words, single letters and tokens that mix letters and digits otherwise (hashes) are left out."""
    alpha: set[str] = set()
    nums: set[str] = set()
    for m in words(text):
        w = m.group()
        versioned = _VERSIONED.fullmatch(w)
        if versioned:
            w, number = versioned.groups()
            nums.add(str(int(number)))
        if w.isdecimal():  # not isdigit: "²" is a digit that int() refuses
            nums.add(str(int(w)))
        elif w.isalpha() and len(w) > 1 and w.lower() not in STOPWORDS:
            alpha.add(normalise(w))
    return frozenset(alpha), frozenset(nums)


@lru_cache(maxsize=200_000)
def _file_name_parts(doc_id: str) -> tuple[frozenset[str], frozenset[str]]:
    return _name_parts(Path(doc_id).stem)


def _file_name_terms(doc_id: str) -> frozenset[str]:
    """The words and numbers of a file name, as terms; none for a name without words (a hash,
    ``a000/p001.txt``), which names nothing."""
    alpha, nums = _file_name_parts(doc_id)
    return alpha | nums if alpha else frozenset()


_CLOSERS = "\"'”’)]»*"
# A title names its document, as a file name does, when it is a heading (no closing ".", "!"
# or "?") of two to this many words: a headline never does, nor one word ("Introduction").
MAX_NAMING_TITLE_WORDS = 6
# Initials shorter than this name nothing ("AL" for "Apache License" is too common a pair).
MIN_INITIALS = 3


def _is_initials(word: str) -> bool:
    """Whether ``word`` is written as initials: 3 to 6 capitals ("FSF", "GPL", "LGPL")."""
    return word.isalpha() and word.isupper() and MIN_INITIALS <= len(word) <= MAX_NAMING_TITLE_WORDS


_NOT_NAMING = frozenset({normalise("version")})


@lru_cache(maxsize=200_000)
def _title_parts(title: str) -> tuple[frozenset[str], frozenset[str], frozenset[str]]:
    """The words, numbers and initials by which a heading-like ``title`` names its document:
    "GNU General Public License" gives its four words and the initials "ggpl" and, leaving out
    its first word, "gpl"; "Version" counts as none of its words. Nothing for a sentence, a
    single word or a title longer than :data:`MAX_NAMING_TITLE_WORDS` words."""
    text = title.strip().rstrip(_CLOSERS)
    alpha, nums = _name_parts(text)
    alpha -= _NOT_NAMING
    if text.endswith((".", "!", "?")) or not 2 <= len(alpha) <= MAX_NAMING_TITLE_WORDS:
        return frozenset(), frozenset(), frozenset()
    ordered = [w for m in words(text) if (w := m.group()).isalpha() and len(w) > 1
               and w.lower() not in STOPWORDS and normalise(w) not in _NOT_NAMING]
    initials = {"".join(w[0] for w in ordered).lower(), "".join(w[0] for w in ordered[1:]).lower()}
    return alpha, nums, frozenset(i for i in initials if len(i) >= MIN_INITIALS)


def _initials_in(question: str) -> frozenset[str]:
    """The capitalised initials a question writes ("GPL", "MPL" in "MPL-2.0", "LGPL" in
    "LGPLv3"), lower-cased."""
    found = set()
    for m in words(question):
        versioned = _VERSIONED.fullmatch(m.group())
        w = versioned.group(1) if versioned else m.group()
        if _is_initials(w):
            found.add(w.lower())
    return frozenset(found)


def name_terms(doc_ids: Sequence[str], titles: Sequence[str]) -> frozenset[str]:
    """The terms that name documents ``doc_ids``: their file names' and their ``titles``' (in
    the same order; see :func:`_file_name_terms` and :func:`_title_parts`), initials included."""
    out: frozenset[str] = frozenset()
    for doc_id, title in zip(doc_ids, titles, strict=True):
        alpha, nums, initials = _title_parts(title)
        out |= _file_name_terms(doc_id) | alpha | nums | initials
    return out


class _DocumentNames:
    """A corpus's file names and heading-like titles, each filed under one of its words or its
    initials (so a question looks up only the names that share one with it), with the
    document's position and the numbers its names hold."""

    def __init__(self, doc_ids: Sequence[str], titles: Sequence[str]) -> None:
        self.doc_ids = doc_ids
        self.position: dict[str, int] = {}
        self.numbers: dict[str, frozenset[str]] = {}
        # Each name's words, under the least of them, and whether it is a title; initials under
        # themselves.
        self.by_word: dict[str, list[tuple[str, frozenset[str], bool]]] = {}
        self.by_initials: dict[str, list[str]] = {}
        for pos, (d, title) in enumerate(zip(doc_ids, titles)):
            alpha, nums = _file_name_parts(d)  # cached: an update re-reads only new names
            t_alpha, t_nums, initials = _title_parts(title)
            for name, is_title in ((alpha, False), (t_alpha, True)):
                if name:
                    self.by_word.setdefault(min(name), []).append((d, name, is_title))
            for i in initials:
                self.by_initials.setdefault(i, []).append(d)
            if alpha or t_alpha:
                self.position[d] = pos
                self.numbers[d] = (nums if alpha else frozenset()) | t_nums


# The names of the last few corpora asked, by their id list (replaced, not changed, on update).
_DOCUMENT_NAMES: dict[int, _DocumentNames] = {}
_DOCUMENT_NAMES_LOCK = threading.Lock()


def named_documents(doc_ids: Sequence[str], question: str, titles: Callable[[], Sequence[str]] | None = None) -> list[str]:
    """The documents ``question`` names by file name or title: every word of the name is in it
    ("Under the Apache License, …" names ``Apache-2.0.txt``, and a document titled "Apache
    License", a title only when one of its words is capitalised in the question), or it writes a
    title's initials ("the GPL" for "GNU General Public License");
    where it gives a number that such names hold ("GPL version 3", "GPLv2"), only those holding
    it. A file name without words (a hash, ``a000/p001.txt``) is never named, nor is a title that
    is a sentence, one word or a long headline (see :func:`_title_parts`). ``titles`` gives the
    documents' titles in ``doc_ids`` order; it is called once per corpus (None: no titles)."""
    with _DOCUMENT_NAMES_LOCK:
        names = _DOCUMENT_NAMES.get(id(doc_ids))
        if names is None or names.doc_ids is not doc_ids:
            while len(_DOCUMENT_NAMES) >= 4:
                del _DOCUMENT_NAMES[next(iter(_DOCUMENT_NAMES))]
            names = _DOCUMENT_NAMES[id(doc_ids)] = _DocumentNames(doc_ids, titles() if titles else [""] * len(doc_ids))
    alpha, nums = _name_parts(question)
    # A title's words name it only where the question writes one of them capitalised, as a
    # name ("the Battery Life post"): "How is the battery life?" names no post of that title.
    capitalised = {normalise(m.group()) for m in words(question)[1:] if m.group()[0].isupper()}
    by_words: dict[str, frozenset[str]] = {}
    for w in alpha:
        for d, name, is_title in names.by_word.get(w, ()):
            if name <= alpha and (not is_title or name & capitalised) and len(name) > len(by_words.get(d, ())):
                by_words[d] = name
    # The most specific name wins: "GNU Lesser General Public License" names the document of
    # that title, not also those titled "GNU General Public License".
    found = {d for d, name in by_words.items() if not any(name < other for other in by_words.values())}
    found |= {d for i in _initials_in(question) for d in names.by_initials.get(i, ())}
    named = sorted(found, key=names.position.__getitem__)
    held = nums & frozenset().union(*(names.numbers[d] for d in named))
    return [d for d in named if held <= names.numbers[d]]


def without_names(question: str, names: frozenset[str], carried: Sequence[str] = ()) -> str:
    """``question`` without the words that are among the ``names`` of the documents it names
    (:func:`name_terms`): "What does "convey" mean in the GPL version 3?" over ``GPL-3.txt``
    reads "… mean in the version ?"; the question itself if nothing would be left to read,
    counting the words a follow-up ``carried``."""
    kept, last = [], 0
    for m in words(question):
        alpha, nums = _name_parts(m.group())
        if (alpha or nums) and alpha | nums <= names:
            kept.append(question[last:m.start()])
            last = m.end()
    stripped = " ".join(("".join(kept) + question[last:]).split())
    return stripped if terms(stripped) or carried else question


def echoes_question(asked: set[str], sentence: str, sentence_terms: Sequence[str]) -> bool:
    """Whether ``sentence`` is a fragment (no closing ``.``, ``!`` or ``?``) all of whose terms
    are among the ``asked`` terms (the question's, and its document's file name's): a heading or
    title that repeats the question has no room for its answer ("The Artistic License" for "When
    does the Artistic License expire?")."""
    return sentence.rstrip().rstrip(_CLOSERS)[-1:] not in (".", "!", "?", "…") and set(sentence_terms) <= asked


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(min(x, 50.0), -50.0)))


class Question:
    """A question's terms, weights and expected answer type, computed once per ask.

    ``context`` holds words a follow-up carried from earlier turns; they weigh
    :data:`CONTEXT_WEIGHT` of their IDF (see :meth:`counting_context`) and never define the
    expected answer type's anchors.
    """

    def __init__(self, text: str, index: HybridIndex, context: Sequence[str] = (), names: frozenset[str] = frozenset()) -> None:
        self.text = text
        self.names = names  # the terms that name the documents searched, read away from ``text``
        self.kind = question_type(text)
        if self.kind == NONE and context:
            self.kind = question_type(" ".join(context))  # "And the second one? (when …)"
        own = list(dict.fromkeys(terms(text)))
        carried = [t for t in dict.fromkeys(terms(" ".join(context))) if t not in own]
        self.max_idf = math.log(max(index.bm25.corpus_size, 1) + 1)
        # A term absent from the corpus weighs as much as the rarest possible term.
        self._own_idf = {t: (index.bm25.idf(t) or self.max_idf) for t in own}
        self._carried_idf = {t: (index.bm25.idf(t) or self.max_idf) for t in carried}
        self._absent = {t for t in (*own, *carried) if not index.bm25.has(t)}
        self._weigh(CONTEXT_WEIGHT)
        # Specifics the corpus lacks: capitalised words past the first (names, not the sentence
        # opener) and numbers or years.
        self.unknown_specifics = [
            m.group() for i, m in enumerate(words(text))
            if (i > 0 and m.group()[0].isupper() or any(c.isdigit() for c in m.group()))
            and m.group().lower() not in STOPWORDS and not index.bm25.has(normalise(m.group()))
        ]
        self.bigrams = set(zip(own, own[1:]))
        self._spans: dict[str, tuple[Span, float] | None] = {}

    def _weigh(self, context_weight: float) -> None:
        self.idf = dict(self._own_idf)
        self.idf.update({t: context_weight * w for t, w in self._carried_idf.items()})
        self.mass = sum(self.idf.values()) or 1.0
        self.oov = sum(w for t, w in self.idf.items() if t in self._absent) / self.mass

    def lacks_specifics(self, index: HybridIndex, rows: Sequence[int]) -> bool:
        """Whether a specific the corpus lacks (:attr:`unknown_specifics`) is not known from the
        candidate sentences ``rows`` either: by their documents' file names and titles, by its
        known parts, or as the initials of their capitalised words."""
        if not self.unknown_specifics:
            return False
        names = set().union(*(_name_words(index, d, title=True) for d in _docs_of(index, rows)))
        texts = [index.sentence_text(r) for r in rows]

        def known(word: str) -> bool:
            w = normalise(word)
            return index.bm25.has(w) or w in names

        def named(word: str) -> bool:
            if known(word):
                return True
            parts = _VERSIONED.fullmatch(word)
            if parts:
                return all(named(p) for p in parts.groups())
            if not _is_initials(word):
                return False
            spelled = re.compile(r"\b" + _ACRONYM_JOIN.join(f"{c}[^\\W_]*" for c in word) + r"\b")
            return any(spelled.search(t) for t in texts)

        return not all(named(w) for w in self.unknown_specifics)

    def names_another_document(self, index: HybridIndex, rows: Sequence[int], cited: int) -> bool:
        """Whether the question names, by a word of its file name, a candidate document other
        than the one sentence ``cited`` comes from, while that one neither has the word in its
        name nor holds it ("… of the Apache License?" answered from MPL-2.0.txt)."""
        doc = int(index.sentences.doc[cited])
        own = _name_words(index, doc, title=False)
        others = set().union(*(_name_words(index, d, title=False) for d in _docs_of(index, rows) - {doc}))
        for m in words(self.text):
            parts = _VERSIONED.fullmatch(m.group())
            word = parts.group(1) if parts else m.group()
            if not word[0].isupper() or word.lower() in STOPWORDS:
                continue
            w = normalise(word)
            if w in others and w not in own and not index.doc_bm25.holds(doc, w):
                return True
        return False

    def counting_context(self, context_weight: float) -> "Question":
        """This question with its carried words at ``context_weight`` of their IDF. The answer
        spans found so far are shared: they depend on the text, not on the weights."""
        other = copy.copy(self)
        other._weigh(context_weight)
        return other

    def answer_span(self, sentence: str) -> tuple[Span, float] | None:
        """:func:`find_answer` for this question, once per sentence (the features look at each
        candidate and its previous sentence, and the citation at the top one again)."""
        if sentence not in self._spans:
            self._spans[sentence] = find_answer(self.text, sentence, self.kind)
        return self._spans[sentence]

    def coverage(self, tset: set[str]) -> float:
        return sum(w for t, w in self.idf.items() if t in tset) / self.mass

    def rarest_missing(self, tset: set[str]) -> float:
        return max((w for t, w in self.idf.items() if t not in tset), default=0.0) / self.max_idf

    def density(self, toks: list[str]) -> float:
        pos = [i for i, t in enumerate(toks) if t in self.idf]
        if not pos:
            return 0.0
        return len(set(toks[i] for i in pos)) / (pos[-1] - pos[0] + 1)


# Symbols the tokenizer reads as [UNK] and people write as emoji: pictographs above U+1F000, and
# the older ones (✈ ❤ ☕ ⭐ ✅ ⌚) of the BMP's symbol blocks, but for ♭ ♮ ♯, used as letters ("B♭").
_PICTOGRAPH_BLOCKS = ((0x1F000, 0x1FAFF), (0x2300, 0x23FF), (0x2600, 0x27BF), (0x2B00, 0x2BFF))
_NOTE_SIGNS = "\u266d\u266e\u266f"


def _pictograph(ch: str) -> bool:
    o = ord(ch)
    return ch not in _NOTE_SIGNS and any(lo <= o <= hi for lo, hi in _PICTOGRAPH_BLOCKS) and (
        o >= 0x1F000 or unicodedata.category(ch) == "So")


def _emoji_part(text: str, k: int) -> bool:
    """Whether ``text[k]`` belongs to an emoji sequence: a pictograph, joiner, variation selector,
    keycap, tag, or a symbol joined into one ("♂" in "👷‍♂️")."""
    ch, o = text[k], ord(text[k])
    joined = text[k - 1:k] == "\u200d" or text[k + 1:k + 2] == "\ufe0f"
    return (_pictograph(ch) or 0xE0020 <= o <= 0xE007F or ch in "\u200d\ufe0e\ufe0f\u20e3"
            or ch.isspace() or joined and 0x2000 <= o <= 0x2BFF)


def without_pictographs(sentence: str, span: tuple[int, int]) -> tuple[int, int]:
    """``span`` without emoji at its edges (the tokenizer reads one as [UNK], and the reader's
    span may run onto it); unchanged when nothing else is left of it."""
    a, b = span
    i = a
    while i < b and _emoji_part(sentence, i):
        i += 1
    if any(map(_pictograph, sentence[a:i])):
        a = i
    j = b
    while j > a and _emoji_part(sentence, j - 1):
        j -= 1
    if any(map(_pictograph, sentence[j:b])):
        b = j
    return (a, b) if a < b else span


class Answerer:
    """Ranks candidate sentences and decides whether to answer (see the module docstring)."""

    def __init__(self, model: Model | None = None, reader: Reader | None = None, quantize_reader: bool = True) -> None:
        """``reader``: a loaded reader to use; else one is loaded on first use, with int8 weights
        unless ``quantize_reader`` is False (float32)."""
        self._model = model
        self._reader = reader
        self._quantize_reader = quantize_reader

    @cached_property
    def model(self) -> Model:
        return self._model or Model.load()

    @cached_property
    def reader(self) -> Reader:
        return self._reader or Reader(quantize=self._quantize_reader)

    def warm_up(self) -> None:
        """Load the weights and the reader (if the weights use it) now, not on the first question."""
        if self.model.reader:
            self.reader.read("warm-up", ["warm-up"])

    def read(
        self, question: str, scores: np.ndarray, text: Callable[[int], str], before: Callable[[int], str],
    ) -> tuple[np.ndarray, list[Reading]]:
        """The positions of the ranker's top :data:`READ_TOP` candidates and the reader's
        readings of them (``text(i)``: the text of candidate ``i``; ``before(i)``: the sentence
        before it)."""
        top = self.to_read(scores)
        return top, self.reader.read(question, [text(int(i)) for i in top], [before(int(i)) for i in top])

    def short_span(self, q: Question, sentence: str, reading: Reading | None) -> tuple[int, int] | None:
        """The short answer's span in ``sentence``: the reader's, unless the question's type is
        one the patterns answer better or the sentence was not read; else the patterns'."""
        if reading is not None and reading.span is not None and q.kind not in self.model.pattern_kinds:
            return without_pictographs(sentence, reading.span)
        found = q.answer_span(sentence)
        return (found[0].start, found[0].end) if found else None

    @staticmethod
    def to_read(scores: np.ndarray, n: int = READ_TOP) -> np.ndarray:
        """The positions of the ``n`` best ``scores`` (ties in candidate order): what is read."""
        return np.argsort(-scores, kind="stable")[:n]

    @staticmethod
    def final(
        ranked: np.ndarray, top: np.ndarray | None = None, read: np.ndarray | None = None, weight: float = 0.0,
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(scores, order)`` of the candidates, ``order`` best first.

        Without ``top`` (nothing read) the ranker's scores ``ranked`` are final. Otherwise the
        read candidates ``top`` score ranker plus ``weight`` times their reader score ``read``
        and come first; the others (never read) score -inf and follow in the ranker's order.
        """
        scores = ranked
        if top is not None:
            scores = np.full(len(ranked), -np.inf)
            scores[top] = ranked[top] + weight * read
        return scores, np.lexsort((-ranked, -scores))

    def features(self, q: Question, qvec: np.ndarray, index: HybridIndex, hits: list[Hit]) -> tuple[list[int], np.ndarray]:
        """Candidate sentence rows (from the top passages) and their feature matrix."""
        best: dict[int, tuple[int, float, int]] = {}
        for rank, h in enumerate(hits[:CANDIDATE_PASSAGES], start=1):
            for row in range(int(index.pass_first[h.passage]), int(index.pass_last[h.passage]) + 1):
                best.setdefault(row, (rank, h.score, h.passage))
        texts: dict[int, str] = {}
        toks: dict[int, list[str]] = {}

        def text(row: int) -> str:
            if row not in texts:
                texts[row] = index.sentence_text(row)
            return texts[row]

        def tokens(row: int) -> list[str]:
            if row not in toks:
                toks[row] = terms(text(row))
            return toks[row]

        # A heading that only repeats the question, its document's file name or the names the
        # question was read without, cannot answer it; it stays only if all do.
        asked: dict[int, set[str]] = {}

        def echoes(row: int) -> bool:
            doc = int(index.sentences.doc[row])
            if doc not in asked:
                asked[doc] = set(q.idf) | _file_name_terms(index.entries[doc].id) | q.names
            return echoes_question(asked[doc], text(row), tokens(row))

        rows = sorted(best)
        rows = [r for r in rows if not echoes(r)] or rows
        feats = np.zeros((len(rows), len(FEATURES)))
        if not rows:
            return rows, feats
        sents = index.sentences

        qv = qvec.astype(np.float32)
        top_score = hits[0].score

        toks_set: dict[int, set[str]] = {}
        for i, r in enumerate(rows):
            own = tokens(r)
            tset = toks_set[r] = set(own)
            ctx, ctx_cos, pair_cos = set(tset), 0.0, 0.0
            f = feats[i]
            f[_F["first"]] = float(index.seq(r) == 0)
            for nb, name in ((r - 1, "cov_prev"), (r + 1, "cov_next")):
                if index.adjacent(r, nb):
                    nb_terms = set(tokens(nb))
                    ctx |= nb_terms
                    ctx_cos = max(ctx_cos, float(sents.vecs[nb] @ qv))
                    pair = sents.vecs[nb] + sents.vecs[r]
                    pair_cos = max(pair_cos, float(pair @ qv) / (float(np.linalg.norm(pair)) or 1.0))
                    f[_F[name]] = q.coverage(nb_terms)
            f[_F["cos_pair"]] = pair_cos
            found = q.answer_span(text(r))
            if q.kind != NONE and index.adjacent(r, r - 1):
                f[_F["type_prev"]] = float(q.answer_span(text(r - 1)) is not None)
            rank, passage_score, passage = best[r]
            f[_F["pcos"]] = float(index.passages.vecs[passage] @ qv)
            f[_F["anaphoric"]] = float(bool(_ANAPHORIC.match(text(r))))
            f[_F["cos_ctx"]] = ctx_cos
            f[_F["cov"]] = q.coverage(tset)
            f[_F["cov_ctx"]] = q.coverage(ctx)
            f[_F["bigram"]] = len(q.bigrams & set(zip(own, own[1:]))) / len(q.bigrams) if q.bigrams else 0.0
            f[_F["density"]] = q.density(own)
            f[_F["novel"]] = len(tset - set(q.idf)) / len(tset) if tset else 0.0
            f[_F["length"]] = math.log1p(len(own))
            f[_F["passage_gap"]] = passage_score - top_score
            f[_F["passage_rr"]] = 1.0 / rank
            f[_F["type_match"]] = float(found is not None)
            f[_F["type_near"]] = found[1] if found else 0.0
            f[_F["miss_max"]] = q.rarest_missing(ctx)
        # Local IDF: a question term found in every candidate (the topic) tells them apart less
        # than one found in a single sentence.
        n = len(rows)
        df = {t: sum(1 for r in rows if t in toks_set[r]) for t in q.idf}
        local = {t: q.idf[t] * math.log((n + 1) / (df[t] + 0.5)) for t in q.idf}
        mass = sum(local.values()) or 1.0
        lcov = np.array([sum(w for t, w in local.items() if t in toks_set[r]) / mass for r in rows])
        avg_len = sum(len(toks[r]) for r in rows) / n or 1.0
        sbm = np.zeros(n)
        for i, r in enumerate(rows):
            norm = _K1 * (1 - _B + _B * len(toks[r]) / avg_len)
            for t in q.idf:
                tf = toks[r].count(t)
                if tf:
                    sbm[i] += q.idf[t] * tf * (_K1 + 1) / (tf + norm)
        sbm /= q.mass
        cos = sents.vecs[rows] @ qv
        cov = feats[:, _F["cov"]]
        for name, values in (("cos", cos), ("cov", cov), ("lcov", lcov), ("sbm25", sbm)):
            feats[:, _F[name]] = values
            if f"{name}_gap" in _F:
                feats[:, _F[f"{name}_gap"]] = values - values.max()
            if f"{name}_rr" in _F:
                feats[:, _F[f"{name}_rr"]] = 1.0 / (1 + np.argsort(np.argsort(-values, kind="stable")))
        feats[:, _F["typed_q"]] = float(q.kind != NONE)
        feats[:, _F["oov"]] = q.oov
        return rows, feats

    @staticmethod
    def locality(index: HybridIndex, rows: list[int], previous: int | None) -> np.ndarray:
        """The :data:`LOCALITY` indicators of candidate ``rows`` against sentence ``previous``
        (all 0 without one)."""
        out = np.zeros((len(rows), len(LOCALITY)))
        if previous is None or not rows:
            return out
        at = np.asarray(rows)
        near = index.sentences.doc[at] == index.sentences.doc[previous]
        offset = index.seq(at) - index.seq(previous)
        for col, step in enumerate((0, 1, 2, -1)):
            out[:, col] = near & (offset == step)
        out[:, LOCALITY.index("nearby")] = near & (np.abs(offset) <= NEARBY) & ~out[:, :4].any(axis=1)
        out[:, LOCALITY.index("further")] = near & (np.abs(offset) > NEARBY) & (np.abs(offset) <= FURTHER)
        return out

    @staticmethod
    def prior(near: np.ndarray, confidence: float, weights: np.ndarray) -> np.ndarray:
        """The locality bonus of candidates with indicators ``near`` (:meth:`locality`) after an
        answer of ``confidence``: ``weights`` are the per-indicator weights and the weights per
        unit of confidence (:attr:`Model.locality`)."""
        return near @ (weights[0] + confidence * weights[1])

    @staticmethod
    def confidence_features(feats: np.ndarray, scores: np.ndarray, top: int, readings: dict[int, Reading]) -> np.ndarray:
        """The top sentence's features, its lead over the runner-up and its own score, and the
        reader's signals (:data:`CONFIDENCE_FEATURES`; ``readings`` by candidate position)."""
        runner = np.max(np.delete(scores, top)) if len(scores) > 1 else scores[top] - 1.0
        reading = readings.get(top)
        read = lead = span = 0.0
        if reading is not None:
            read = reading.score
            others = [r.score for i, r in readings.items() if i != top]
            lead = read - max(others) if others else 0.0
            span = float(np.clip(reading.span_score, *_SPAN_SCORE)) if reading.span is not None else _SPAN_SCORE[0]
        return np.concatenate([feats[top, _CONF], [scores[top] - runner, scores[top], read, lead, span]])

    def answer(
        self, question: str, qvec: np.ndarray, index: HybridIndex, hits: list[Hit], top_k: int = 3,
        context: Sequence[str] = (), previous: int | None = None, previous_confidence: float = 0.0,
        settled: bool = False, names: frozenset[str] = frozenset(),
    ) -> Decision:
        """The :class:`Decision` on one question.

        Its passage order lists the positions of ``hits``, best first (see
        :meth:`passage_order`). ``context``: words a follow-up carries from earlier turns (see
        :class:`Question`); ``previous``: the sentence row the previous turn cited, for a
        follow-up, and ``previous_confidence`` that answer's confidence (candidates near it
        gain the learned :data:`LOCALITY` weights). ``settled``: a later turn in a conversation
        kept to a few documents that answered an earlier turn (held to
        :attr:`Model.follow_up_threshold`). ``names``: the terms that name the documents the
        question named, read away from it (:func:`without_names`); a heading made of them and
        the question's words is no candidate.
        """
        q = Question(question, index, context, names)
        rows, feats = self.features(q, qvec, index, hits)
        if not rows:
            return Decision(True, None, 0.0, [], list(range(len(hits))))
        model = self.model
        prior = self.prior(self.locality(index, rows, previous), previous_confidence, model.locality)
        ranked = feats @ model.rank + prior
        readings: dict[int, Reading] = {}
        if model.reader:
            # A follow-up is read as it was searched for: with the words it carried.
            top, top_read = self.read(search_text(q.text, context), ranked, lambda i: index.sentence_text(rows[i]),
                                      lambda i: index.sentence_before(rows[i]))
            readings = {int(i): r for i, r in zip(top, top_read)}
            scores, order = self.final(ranked, top, scores_of(top_read), model.reader)
        else:
            scores, order = self.final(ranked)
        conf_feats = feats
        if context:
            # The confidence model learned from questions that stand alone; a follow-up is judged
            # as the question it was resolved to, its carried words counting in full.
            conf_feats = self.features(q.counting_context(1.0), qvec, index, hits)[1]
        # The sentence is judged on its own merits, as in training: the prior only chose it.
        conf_x = self.confidence_features(conf_feats, scores - prior, int(order[0]), readings)
        confidence = _sigmoid(float(conf_x @ model.confidence + model.bias))
        if q.lacks_specifics(index, rows) or q.names_another_document(index, rows, rows[int(order[0])]):
            confidence *= UNKNOWN_SPECIFIC_FACTOR
        threshold = model.follow_up_threshold if settled and model.follow_up_threshold is not None else model.threshold
        abstained = confidence < threshold
        if settled:
            confidence = model.shown(confidence)
        # A citation's score: its share of the ranker's preference among the candidates.
        share = np.exp(scores - scores.max())
        share /= share.sum()
        citations = [self._cite(index, rows[i], float(share[i])) for i in self._distinct(index, rows, order, top_k)]
        answer = None
        if not abstained and citations:
            reading = readings.get(int(order[0]))
            # Yes or no is said about the cited sentence, which holds no span of it; an unsure
            # verdict leaves the clause the span head marks.
            if is_polar(question) and reading is not None:
                answer = model.verdict(reading, confidence)
            if answer is None:
                span = self.short_span(q, citations[0].text, reading)
                if span is not None:
                    citations[0] = dataclasses.replace(citations[0], answer_start=span[0], answer_end=span[1])
                top = citations[0]
                answer = top.text[top.answer_start:top.answer_end] if top.answer_start is not None else top.text
        return Decision(abstained, answer, confidence, citations, self.passage_order(index, hits, rows, order),
                        {rows[i]: r for i, r in readings.items()})

    @staticmethod
    def _distinct(index: HybridIndex, rows: Sequence[int], order: np.ndarray, k: int) -> list[int]:
        """The first ``k`` of ``order`` whose sentences differ in text: a copy of a document (or a
        repeated line) is cited once, and "Also stated in" names the copy."""
        out, seen = [], set()
        for i in order:
            text = index.sentence_text(rows[int(i)])
            if text not in seen:
                seen.add(text)
                out.append(int(i))
                if len(out) == k:
                    break
        return out

    def corroborate(
        self, question: str, qvec: np.ndarray, index: HybridIndex, hits: list[Hit], context: Sequence[str] = (),
        read: dict[int, Reading] | None = None, reads: int = CORROBORATION_READS,
    ) -> list[tuple[Citation, float]]:
        """Sentences of other documents that answer ``question`` too, with their confidence.

        ``hits`` come from a search that left out the answer's own document. The ranker's best
        ``reads`` candidates are read in one batch (``read``: readings by sentence row already
        made, reused); each document's best read sentence is then judged as if the question had
        been asked of that document alone, by the same confidence model and threshold as an
        answer. Those at or above :attr:`Model.corroboration_threshold` that hold a short
        answer are returned, best first.
        """
        model = self.model
        if not model.reader:
            return []
        q = Question(question, index, context)
        rows, feats = self.features(q, qvec, index, hits)
        if not rows:
            return []
        ranked = feats @ model.rank
        known = dict(read or {})
        todo = [int(i) for i in self.to_read(ranked, reads) if rows[int(i)] not in known]
        if todo:
            fresh = self.reader.read(search_text(q.text, context), [index.sentence_text(rows[i]) for i in todo],
                                     [index.sentence_before(rows[i]) for i in todo])
            known.update({rows[i]: r for i, r in zip(todo, fresh)})
        by_doc: dict[int, list[int]] = {}
        for i, r in enumerate(rows):
            if r in known:
                by_doc.setdefault(int(index.sentences.doc[r]), []).append(i)
        found = []
        for members in by_doc.values():
            at = np.array(members)
            scores = ranked[at] + model.reader * np.array([known[rows[i]].score for i in members])
            best = int(np.argmax(scores))
            readings = {j: known[rows[i]] for j, i in enumerate(members)}
            x = self.confidence_features(feats[at], scores, best, readings)
            confidence = _sigmoid(float(x @ model.confidence + model.bias))
            if q.lacks_specifics(index, [rows[i] for i in members]):
                confidence *= UNKNOWN_SPECIFIC_FACTOR
            if confidence < model.corroboration_threshold:
                continue
            row = rows[members[best]]
            cite = self._cite(index, row, confidence)
            span = self.short_span(q, cite.text, known[row])
            if span is not None:
                found.append((dataclasses.replace(cite, answer_start=span[0], answer_end=span[1]), confidence))
        return sorted(found, key=lambda c: -c[1])

    @staticmethod
    def passage_order(index: HybridIndex, hits: list[Hit], rows: list[int], order: np.ndarray) -> list[int]:
        """Positions of ``hits``: the candidate passages by their best sentence in the final
        ``order`` of ``rows``, then the others in search order.

        The answerer sees each sentence with its question far more closely than the search's
        passage score does; on the SQuAD sample this put the gold passage among the top five
        more often (docs/history.md).
        """
        place = np.empty(len(rows), dtype=np.int64)
        place[order] = np.arange(len(rows))
        at = {r: int(place[i]) for i, r in enumerate(rows)}
        n = min(len(hits), CANDIDATE_PASSAGES)

        def best(j: int) -> int:
            p = hits[j].passage
            # A passage that is only a heading echoing the question has no candidate: it goes last.
            return min((at[r] for r in range(int(index.pass_first[p]), int(index.pass_last[p]) + 1) if r in at),
                       default=len(rows))

        return sorted(range(n), key=best) + list(range(n, len(hits)))

    @staticmethod
    def _cite(index: HybridIndex, row: int, score: float) -> Citation:
        sents = index.sentences
        d, a, b = int(sents.doc[row]), int(sents.start[row]), int(sents.end[row])
        entry = index.entries[d]
        return Citation(doc=entry.id, title=entry.meta.get("title", ""), text=index.sentence_text(row), start=a, end=b, score=score)
