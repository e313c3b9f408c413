"""Learn the answerer's ranker, confidence model and abstention threshold from SQuAD.

Usage: ``python -m eval.train ../shared/benchmarks/squad-dev-v1.1.json [--n 3000]``

Held out: the standard report sample (``--sample 1000 --seed 0``) is removed before anything
is drawn, so reported figures are on questions the models never saw. From the remaining
questions ``--n`` are drawn (seed 1); each is asked twice:

* over the whole corpus: candidate sentences overlapping a gold answer span are right, the
  others wrong;
* over every paragraph but its own: the topic is still there (the rest of the article) but the
  answer usually is not, the near miss a bot must decline ("What did Milley say to Putin?").
  A candidate that still contains a gold answer string is labelled right, and such asks are
  not counted as ones to decline.

The ranker is a logistic regression on differences of feature vectors (right minus wrong
sentence of the same question, and the reverse), so it learns to order sentences within a
question. The confidence model is a logistic regression on the top sentence's features and its
lead, labelled 1 when that sentence is right. The threshold on its probability maximises the
expected share of good outcomes when a ``--unanswerable-share`` of questions (default 0.2)
have no answer in the documents: right top sentence on the others, abstention on those.
"""

from __future__ import annotations

import argparse
import json
import pickle
import random
import sys
from pathlib import Path

import numpy as np

from eval import harness
from qa.answerer import CONFIDENCE_FEATURES, FEATURES, WEIGHTS_FILE, Answerer, Question
from qa.bot import Bot
from index.config import cache_dir
from qa.cli import quiet_libraries

MAX_PAIRS = 30


def collect(bot: Bot, questions: list) -> list[tuple[np.ndarray, np.ndarray, bool]]:
    """Per ask: candidate feature matrix, right/wrong labels, and whether it is a decline ask."""
    from tqdm import tqdm

    index = bot.index
    answerer = Answerer()
    asks = []
    for _, question, answers, spans in tqdm(questions, desc="features", file=sys.stderr):
        qvec = bot.embedder.embed([question])[0]
        gold = spans[0]["doc"]
        everywhere = index.search(question, qvec, k=30)
        # The near miss: the same search with the answer's own paragraph taken out.
        elsewhere = [h for h in everywhere if h.doc != gold][:10]
        for near_miss, hits in ((False, everywhere[:10]), (True, elsewhere)):
            rows, feats = answerer.features(Question(question, index), qvec, index, hits)
            if not rows:
                continue
            labels = []
            for r in rows:
                doc = index.doc_ids[index.sentences.doc[r]]
                a, b = int(index.sentences.start[r]), int(index.sentences.end[r])
                if near_miss:
                    right = harness.contains_answer(index.text(int(index.sentences.doc[r]), a, b), answers)
                else:
                    right = harness.matches(spans, doc, a, b, "")
                labels.append(int(right))
            labels = np.array(labels)
            asks.append((feats, labels, near_miss and labels.sum() == 0))
    return asks


def fit_ranker(asks, rng: random.Random) -> np.ndarray:
    from sklearn.linear_model import LogisticRegression

    X, y = [], []
    for feats, labels, declined in asks:
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


def fit_confidence(asks, rank_w: np.ndarray, unanswerable_share: float):
    from sklearn.linear_model import LogisticRegression

    X, y, declined = [], [], []
    for feats, labels, dec in asks:
        scores = feats @ rank_w
        top = int(np.argmax(scores))
        X.append(Answerer.confidence_features(feats, scores, top))
        y.append(int(labels[top] == 1))
        declined.append(dec)
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


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("squad", help="SQuAD-format JSON file")
    ap.add_argument("--n", type=int, default=3000, help="training questions (default 3000)")
    ap.add_argument("--unanswerable-share", type=float, default=0.2,
                    help="expected share of questions the documents do not answer (sets the threshold; default 0.2)")
    ap.add_argument("--features-cache", metavar="FILE", help="reuse (or save) the collected features here (pickle)")
    ap.add_argument("--out", default=str(WEIGHTS_FILE), help="weights file to write")
    args = ap.parse_args(argv)
    quiet_libraries()
    docs = harness.squad_corpus(args.squad, cache_dir())
    bot = Bot(docs, index_dir=docs.parent / "index")
    bot.sync()
    held_out = {c.id for c in harness.squad_set(args.squad, 1000, 0)}
    pool = [q for q in harness.squad_questions(args.squad) if q[0] not in held_out]
    rng = random.Random(1)
    questions = rng.sample(pool, min(args.n, len(pool)))
    cache = Path(args.features_cache) if args.features_cache else None
    if cache and cache.exists():
        asks = pickle.loads(cache.read_bytes())
    else:
        asks = collect(bot, questions)
        if cache:
            cache.write_bytes(pickle.dumps(asks))
    rank_w = fit_ranker(asks, rng)
    conf_w, bias, threshold, fit = fit_confidence(asks, rank_w, args.unanswerable_share)
    out = {
        "source": (f"python -m eval.train {Path(args.squad).name} --n {args.n}: {len(questions)} questions "
                   "outside the --sample 1000 --seed 0 report sample (drawn with seed 1), each also asked "
                   "over another article as a question to decline"),
        "rank": {f: round(float(w), 5) for f, w in zip(FEATURES, rank_w)},
        "confidence": {f: round(float(w), 5) for f, w in zip(CONFIDENCE_FEATURES, conf_w)},
        "bias": round(bias, 5),
        "threshold": round(threshold, 4),
        "training": {"asks": len(asks), "unanswerable_share": args.unanswerable_share, **fit},
    }
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
