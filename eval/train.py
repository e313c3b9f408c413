"""Learn the answerer's ranker, reader weight, confidence model and abstention threshold from SQuAD.

Usage: ``python -m eval.train ../shared/benchmarks/squad-dev-v1.1.json [--n 6000]``

Held out: the standard report sample (``--sample 1000 --seed 0``) is removed before anything
is drawn, so reported figures are on questions the models never saw. Of the remaining
questions ``--n`` are drawn (seed 1), the *ranker set* (the reader's adapter,
``eval/train_reader.py``, is learned on the same draw); the rest are the *calibration set*.
Each question is asked twice over the whole corpus:

* as it is: candidate sentences overlapping a gold answer span are right, the others wrong;
* over every paragraph but its own: the topic is still there (the rest of the article) but the
  answer usually is not, the near miss a bot must decline ("What did Milley say to Putin?").
  A candidate that still contains a gold answer string is labelled right, and such asks are
  not counted as ones to decline.

The calibration set is asked twice more in *small corpora*, the size of the few documents a
user chats with: each article is split into two corpora of its own (its even and its odd
paragraphs), and each question is asked over the half that holds its paragraph and over the
other half. There the near miss is real: the missing paragraph's words are missing from the
corpus and its statistics, as they are when the user's documents do not answer a question.
(Taking the paragraph out of the hits alone leaves its words in the index, which taught the
confidence model that a question's unknown words raise confidence.)

The ranker is a logistic regression on differences of feature vectors (right minus wrong
sentence of the same question, and the reverse), fit on the ranker set, so it learns to order
sentences within a question. On the calibration set, which neither the ranker nor the reader
saw, the reader scores the ranker's top candidates; its weight is the one that puts a right
sentence first most often over the whole corpus. The confidence model is a logistic regression
on the final top sentence's features, lead and reader score, labelled 1 when that sentence is
right, fit on the calibration asks of both sizes (fit on the small corpora alone, it scored the
same on held-out articles' small-corpus asks and worse on their whole-corpus ones). The
threshold on its probability maximises the expected share of good outcomes when an
``--unanswerable-share`` of questions (default 0.2) have no answer in the documents: right top
sentence on the others, abstention on those.
"""

from __future__ import annotations

import argparse
import json
import pickle
import random
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, TypeVar

import numpy as np

from eval import harness
from qa.answerer import CONFIDENCE_FEATURES, FEATURES, WEIGHTS_FILE, Answerer, Question
from qa.bot import Bot
from index.config import cache_dir
from index.store import HybridIndex
from qa.cli import quiet_libraries

MAX_PAIRS = 30
# Reader weights tried (the reader's logits span a few units; the ranker's scores about ten).
READER_WEIGHTS = np.round(np.arange(0.0, 3.01, 0.1), 2)


@dataclass
class Ask:
    """One question asked over the corpus: its candidates' features, texts and labels."""

    question: str
    feats: np.ndarray
    texts: list[str]
    before: list[str]  # the sentence before each candidate in its document ("" at the start)
    labels: np.ndarray
    near_miss: bool  # asked without the answer's own paragraph
    declined: bool  # a near-miss ask with no right candidate: the bot should abstain


def make_ask(index: HybridIndex, answerer: Answerer, question: str, qvec: np.ndarray, hits: list, answers: list[str],
             spans: list[dict], near_miss: bool) -> Ask | None:
    """One ask: the candidates of ``hits`` with their features and labels (None without any).

    A candidate is right when it overlaps a gold span or, in a ``near_miss`` ask (the answer's
    own paragraph is not among the hits), when it still contains a gold answer string.
    """
    rows, feats = answerer.features(Question(question, index), qvec, index, hits)
    if not rows:
        return None
    labels, texts, before = [], [], []
    for r in rows:
        doc = index.doc_ids[index.sentences.doc[r]]
        a, b = int(index.sentences.start[r]), int(index.sentences.end[r])
        texts.append(index.sentence_text(r))
        before.append(index.sentence_before(r))
        if near_miss:
            right = harness.contains_answer(texts[-1], answers)
        else:
            right = harness.matches(spans, doc, a, b, "")
        labels.append(int(right))
    right_ones = np.array(labels)
    return Ask(question, feats, texts, before, right_ones, near_miss, near_miss and right_ones.sum() == 0)


def collect(bot: Bot, questions: list) -> list[Ask]:
    """The two asks of each question over the whole corpus (see the module docstring)."""
    from tqdm import tqdm

    answerer = Answerer()
    asks = []
    for _, question, answers, spans in tqdm(questions, desc="features", file=sys.stderr):
        qvec = bot.embedder.embed([question])[0]
        gold = spans[0]["doc"]
        everywhere = bot.index.search(question, qvec, k=30)
        # The near miss: the same search with the answer's own paragraph taken out.
        elsewhere = [h for h in everywhere if h.doc != gold][:10]
        for near_miss, hits in ((False, everywhere[:10]), (True, elsewhere)):
            ask = make_ask(bot.index, answerer, question, qvec, hits, answers, spans, near_miss)
            if ask is not None:
                asks.append(ask)
    return asks


def _half(doc: str) -> tuple[str, int]:
    """The article of a SQuAD paragraph document (``a012/p003.txt``) and its half: 0 for the
    even paragraphs, 1 for the odd ones."""
    article, paragraph = doc.split("/")
    return article, int(paragraph[1:4]) % 2


def collect_small(bot: Bot, questions: list) -> list[Ask]:
    """The two asks of each question in small corpora (see the module docstring): one over the
    half of its article that holds its paragraph, one over the other half.

    Each half is a corpus of its own (documents copied under the SQuAD cache, next to the
    whole corpus's index), so its BM25 statistics are a small corpus's and the answer's
    paragraph is truly absent from the other half: its words are missing, as they are for a
    question the user's documents do not answer.
    """
    from tqdm import tqdm

    by_article: dict[str, list] = {}
    for q in questions:
        by_article.setdefault(_half(q[3][0]["doc"])[0], []).append(q)
    root = bot.docs.parent / "halves"
    answerer = Answerer()
    asks = []
    for article, qs in tqdm(sorted(by_article.items()), desc="small corpora", unit="article", file=sys.stderr):
        halves: list[Bot | None] = []
        for h in (0, 1):
            folder = root / f"{article}-{h}"
            sources = [src for src in sorted((bot.docs / article).glob("p*.txt"))
                       if _half(f"{article}/{src.name}")[1] == h]
            for src in sources:
                dst = folder / "docs" / article / src.name
                if not dst.exists():
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(src, dst)
            half = None
            if sources:  # an article of one paragraph has no second half
                half = Bot(folder / "docs", index_dir=folder / "index", embedder=bot.embedder)
                half.sync()
            halves.append(half)
        for _, question, answers, spans in qs:
            own = _half(spans[0]["doc"])[1]
            qvec = bot.embedder.embed([question])[0]
            for near_miss in (False, True):
                half = halves[own ^ near_miss]
                if half is None:
                    continue
                hits = half.index.search(question, qvec, k=10)
                ask = make_ask(half.index, answerer, question, qvec, hits, answers, spans, near_miss)
                if ask is not None:
                    asks.append(ask)
    return asks


Collected = TypeVar("Collected")


def cached_asks(cache: str | None, part: str, make: Callable[[], list[Collected]]) -> list[Collected]:
    """The asks ``part`` (``ranker``, ``calibration`` or ``small``; ``eval.train_locality``
    keeps its question pairs as ``locality``) from ``cache`` (a pickle of all parts collected
    so far), else ``make()``, saved there for the next run (this script's or another's)."""
    path = Path(cache) if cache else None
    stored = pickle.loads(path.read_bytes()) if path and path.exists() else {}
    if part not in stored:
        stored[part] = make()
        if path:
            path.write_bytes(pickle.dumps(stored))
    return stored[part]


def fit_ranker(asks: list[Ask], rng: random.Random) -> np.ndarray:
    from sklearn.linear_model import LogisticRegression

    X, y = [], []
    for ask in asks:
        feats, labels = ask.feats, ask.labels
        if labels.sum() == 0 or labels.sum() == len(labels):
            continue
        pos, neg = np.nonzero(labels)[0], np.nonzero(labels == 0)[0]
        pairs = [(p, n) for p in pos for n in neg]
        for p, n in rng.sample(pairs, min(MAX_PAIRS, len(pairs))):
            X += [feats[p] - feats[n], feats[n] - feats[p]]
            y += [1, 0]
    clf = LogisticRegression(C=1.0, fit_intercept=False, max_iter=5000)
    clf.fit(np.array(X), np.array(y))
    return clf.coef_[0]


def read_asks(asks: list[Ask], rank_w: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per ask: the positions of the ranker's top candidates and the reader's scores for them."""
    from tqdm import tqdm

    answerer = Answerer()
    return [answerer.read(ask.question, ask.feats @ rank_w, ask.texts.__getitem__, ask.before.__getitem__)
            for ask in tqdm(asks, desc="reader", file=sys.stderr)]


def fit_reader_weight(asks: list[Ask], rank_w: np.ndarray, reads) -> tuple[float, dict]:
    """The reader weight that puts a right sentence first most often on answerable asks."""
    accuracy = {}
    for w in READER_WEIGHTS:
        right = [ask.labels[Answerer.final(ask.feats @ rank_w, top, r, w)[1][0]]
                 for ask, (top, r) in zip(asks, reads) if not ask.declined]
        accuracy[float(w)] = float(np.mean(right))
    best = max(accuracy, key=lambda w: (accuracy[w], -w))
    return best, {"top1_without_reader": round(accuracy[0.0], 4), "top1_with_reader": round(accuracy[best], 4)}


def fit_confidence(asks: list[Ask], rank_w: np.ndarray, reads, reader_w: float, unanswerable_share: float):
    from sklearn.linear_model import LogisticRegression

    X, y, declined = [], [], []
    for ask, (read_rows, r) in zip(asks, reads):
        scores, order, read = Answerer.final(ask.feats @ rank_w, read_rows, r, reader_w)
        top = int(order[0])
        X.append(Answerer.confidence_features(ask.feats, scores, top, float(read[top])))
        y.append(int(ask.labels[top] == 1))
        declined.append(ask.declined)
    X, y, declined = np.array(X), np.array(y), np.array(declined)
    clf = LogisticRegression(C=1.0, max_iter=5000)
    clf.fit(X, y)
    p = clf.predict_proba(X)[:, 1]
    best = (0.0, -1.0, {})
    for t in np.linspace(0.01, 0.9, 90):
        answered_right = np.mean((y[~declined] == 1) & (p[~declined] >= t))
        abstained = np.mean(p[declined] < t)
        score = (1 - unanswerable_share) * answered_right + unanswerable_share * abstained
        if score > best[1]:
            best = (float(t), score, {"answerable_right": round(float(answered_right), 4),
                                      "declined_abstained": round(float(abstained), 4),
                                      "top1_right_if_always_answering": round(float(np.mean(y[~declined])), 4)})
    return clf.coef_[0], float(clf.intercept_[0]), best[0], best[2]


def draw(squad: str, n: int) -> tuple[list, list]:
    """The ranker set (``n`` questions outside the report sample, seed 1) and the calibration set (the rest)."""
    held_out = {c.id for c in harness.squad_set(squad, 1000, 0)}
    pool = [q for q in harness.squad_questions(squad) if q[0] not in held_out]
    chosen = random.Random(1).sample(pool, min(n, len(pool)))
    ids = {q[0] for q in chosen}
    return chosen, [q for q in pool if q[0] not in ids]


def squad_bot(squad: str) -> Bot:
    """A bot over the SQuAD file's paragraphs (index cached next to the corpus)."""
    docs = harness.squad_corpus(squad, cache_dir())
    bot = Bot(docs, index_dir=docs.parent / "index")
    bot.sync()
    return bot


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("squad", help="SQuAD-format JSON file")
    ap.add_argument("--n", type=int, default=6000, help="ranker-set questions (default 6000); the rest calibrate")
    ap.add_argument("--unanswerable-share", type=float, default=0.2,
                    help="expected share of questions the documents do not answer (sets the threshold; default 0.2)")
    ap.add_argument("--features-cache", metavar="FILE", help="reuse (or save) the collected features here (pickle)")
    ap.add_argument("--out", default=str(WEIGHTS_FILE), help="weights file to write")
    args = ap.parse_args(argv)
    quiet_libraries()
    bot = squad_bot(args.squad)
    ranker_set, calibration_set = draw(args.squad, args.n)
    asks = cached_asks(args.features_cache, "ranker", lambda: collect(bot, ranker_set))
    calibration = cached_asks(args.features_cache, "calibration", lambda: collect(bot, calibration_set))
    small = cached_asks(args.features_cache, "small", lambda: collect_small(bot, calibration_set))
    rank_w = fit_ranker(asks, random.Random(1))
    reads = read_asks(calibration, rank_w)
    reader_w, reader_fit = fit_reader_weight(calibration, rank_w, reads)
    conf_w, bias, threshold, fit = fit_confidence(calibration + small, rank_w, reads + read_asks(small, rank_w),
                                                  reader_w, args.unanswerable_share)
    out = {
        "source": (f"python -m eval.train {Path(args.squad).name} --n {args.n}: ranker fit on {len(ranker_set)} "
                   "questions outside the --sample 1000 --seed 0 report sample (drawn with seed 1); reader weight "
                   f"on the other {len(calibration_set)}, confidence and threshold on these asked over the whole corpus "
                   "and in small corpora (each article's even or odd paragraphs); each question also asked without its "
                   "own paragraph as a question to decline"),
        "rank": {f: round(float(w), 5) for f, w in zip(FEATURES, rank_w)},
        "reader": reader_w,
        "confidence": {f: round(float(w), 5) for f, w in zip(CONFIDENCE_FEATURES, conf_w)},
        "bias": round(bias, 5),
        "threshold": round(threshold, 4),
        "training": {"ranker_asks": len(asks), "calibration_asks": len(calibration), "small_corpus_asks": len(small),
                     "unanswerable_share": args.unanswerable_share, **reader_fit, **fit},
    }
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    # Run as the importable module, so the cached asks pickle as eval.train.Ask (not __main__.Ask)
    # and eval.train_reader can read the cache this run writes.
    from eval import train

    sys.exit(train.main())
