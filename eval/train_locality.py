"""Learn the follow-up locality weights (``qa/locality.json``) from SQuAD question sequences.

Usage: ``python -m eval.train_locality ../shared/benchmarks/squad-dev-v1.1.json``

SQuAD's annotators wrote a paragraph's questions one after another, mostly in the order of the
text, and the file keeps an article's paragraphs in order, so consecutive questions on one
article are a conversation's turns: the second is asked after the bot has answered the first,
and where its answer sits against the sentence the bot cited for the first is what a
follow-up's locality prior should capture. The corpus is one document per *article* (its
paragraphs joined, about 200 sentences), as a user's documents are long and mostly on one
topic: a prior learned over one-paragraph documents mostly learns "same paragraph", which in
a SQuAD corpus of 2,067 unrelated paragraphs is a far stronger hint than in a user's few
articles. When the article moves to its next paragraph, so does the conversation, and the pair
says so. The pairs are drawn from the calibration set of ``eval.train`` only (outside the
``--sample 1000 --seed 0`` report sample and the ranker's draw).

For each pair the bot answers the first question (its own citation, right or wrong, as in a
real chat); for the second the answerer's candidates get the indicators of
:data:`qa.answerer.LOCALITY` against that citation, also multiplied by the first answer's
confidence. The reader scores the ranker's top candidates and every candidate the indicators
mark, once; the weights are a conditional logit over those candidates with the answerer's own
score (ranker plus weighted reader) as a fixed offset, so they say how much to move a candidate
for where it sits and nothing else. They are checked by the answerer's exact procedure (the top
:data:`qa.answerer.READ_TOP` by ranker plus prior are read) with two-fold cross-validation by
article before the fit on all pairs is kept.

SQuAD's second questions stand on their own, so the prior learned here is a lower bound for a
real follow-up's; the bot applies it only to questions it reads as follow-ups.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from eval import harness, splits
from eval.train import cached_asks, draw
from index.config import cache_dir
from qa.bot import Bot, cited_sentence
from qa.answerer import LOCALITY, LOCALITY_FILE, READ_TOP, Answerer, Model, Question
from qa.console import quiet_libraries

# The reader also scores this many of the ranker's best candidates beyond those it would read,
# so a prior that lifts a candidate into the read set finds its reader score here.
EXTRA_READ = 5
L2 = 0.1
PARAGRAPH_BREAK = "\n\n"


@dataclass
class Pair:
    article: str
    ranked: np.ndarray  # the ranker's scores of the second question's candidates
    near: np.ndarray  # their locality indicators against the first answer's citation
    confidence: float  # the first answer's confidence
    read: dict[int, float]  # reader scores of the candidates that may be read
    labels: np.ndarray


def article_bot(squad: str) -> tuple[Bot, Callable[[dict], dict]]:
    """A bot over one document per SQuAD article (its paragraphs, verbatim, joined by blank
    lines; index cached) and the map of a paragraph's answer span to its article's."""
    raw = Path(squad).read_bytes()
    folder = cache_dir() / f"squad-articles-{hashlib.sha256(raw).hexdigest()[:12]}"
    offsets: dict[str, tuple[str, int]] = {}
    for ai, article in enumerate(json.loads(raw)["data"]):
        name, at, parts = f"a{ai:03d}.txt", 0, []
        for pi, para in enumerate(article["paragraphs"]):
            offsets[harness.squad_doc(ai, pi)] = (name, at)
            parts.append(para["context"])
            at += len(para["context"]) + len(PARAGRAPH_BREAK)
        path = folder / "docs" / name
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(PARAGRAPH_BREAK.join(parts), encoding="utf-8")
    # Learned without any prior, so the shipped one (or a stale file) plays no part.
    bot = Bot(folder / "docs", index_dir=folder / "index", answerer=Answerer(Model.load(locality_path=None)))
    bot.sync()

    def span(s: dict) -> dict:
        doc, at = offsets[s["doc"]]
        return {"doc": doc, "start": at + s["start"], "end": at + s["end"]}

    return bot, span


def pairs(questions: list) -> list[tuple[tuple, tuple]]:
    """Consecutive questions of the same article, in file order (the second one may be on
    the next paragraph, as a conversation may move on)."""
    return [(a, b) for a, b in zip(questions, questions[1:]) if _article(a) == _article(b)]


def _article(question: tuple) -> str:
    return question[3][0]["doc"].split("/")[0]


def collect(bot: Bot, span: Callable[[dict], dict], chosen: list) -> list[Pair]:
    from tqdm import tqdm

    answerer = bot.answerer
    index = bot.index
    out = []
    for first, second in tqdm(chosen, desc="pairs", file=sys.stderr):
        last = bot.ask(first[1])
        previous = cited_sentence(index, last)
        question, spans = second[1], [span(s) for s in second[3]]
        qvec = bot.embedder.embed([question])[0]
        hits = index.search(question, qvec, k=10)
        rows, feats = answerer.features(Question(question, index), qvec, index, hits)
        if not rows:
            continue
        ranked = feats @ answerer.model.rank
        near = answerer.locality(index, rows, previous)
        may_read = sorted(set(Answerer.to_read(ranked, READ_TOP + EXTRA_READ).tolist())
                          | set(np.nonzero(near.any(axis=1))[0].tolist()))
        scores = answerer.reader.score(question, [index.sentence_text(rows[i]) for i in may_read],
                                       [index.sentence_before(rows[i]) for i in may_read])
        labels = np.array([harness.matches(spans, index.doc_ids[index.sentences.doc[r]], int(index.sentences.start[r]),
                                           int(index.sentences.end[r]), "") for r in rows], dtype=int)
        out.append(Pair(_article(second), ranked, near, last.confidence,
                        dict(zip(may_read, map(float, scores))), labels))
    return out


def coqa_collect(path: str, stories: int | None) -> list[Pair]:
    """Pairs from real dialogues: every answerable later turn of the CoQA file's train-split
    conversations (each limited to its story), resolved and searched as :meth:`Bot.ask` does,
    against the sentence the bot cited for the turn before (its own answers, as in a chat)."""
    from tqdm import tqdm

    from qa.bot import Turn
    from qa.conversation import resolve, search_text

    corpus = harness.coqa_corpus(path, cache_dir())
    # Learned without any prior, so the shipped one (or a stale file) plays no part.
    bot = Bot(corpus, index_dir=corpus.parent / "index", answerer=Answerer(Model.load(locality_path=None)),
              corroborate=False)
    bot.sync()
    answerer, index = bot.answerer, bot.index
    conversations = harness.coqa_set(path, stories, 0, split="train")
    out = []
    for conv in tqdm(conversations, desc="conversations", file=sys.stderr):
        docs = list(conv.docs or ())
        history: list[Turn] = []
        for gold in conv.turns:
            if history and gold.answerable:
                last = history[-1]
                resolved = resolve(gold.question, [(last.question, last.answer.searched_for, last.answer.short_answer)])
                qvec = bot.embedder.embed([resolved.question])[0]
                hits = index.search(resolved.question, qvec, k=10, docs=docs, context=" ".join(resolved.carried))
                q = Question(resolved.question, index, resolved.carried)
                rows, feats = answerer.features(q, qvec, index, hits)
                if rows:
                    ranked = feats @ answerer.model.rank
                    near = answerer.locality(index, rows, cited_sentence(index, last.answer))
                    may_read = sorted(set(Answerer.to_read(ranked, READ_TOP + EXTRA_READ).tolist())
                                      | set(np.nonzero(near.any(axis=1))[0].tolist()))
                    scores = answerer.reader.score(search_text(q.text, resolved.carried),
                                                   [index.sentence_text(rows[i]) for i in may_read],
                                                   [index.sentence_before(rows[i]) for i in may_read])
                    labels = np.array([harness.matches(gold.evidence, index.doc_ids[index.sentences.doc[r]],
                                                       int(index.sentences.start[r]), int(index.sentences.end[r]), "")
                                       for r in rows], dtype=int)
                    out.append(Pair(conv.id, ranked, near, last.answer.confidence,
                                    dict(zip(may_read, map(float, scores))), labels))
            history.append(Turn(gold.question, bot.ask(gold.question, history=history, docs=docs)))
    return out


def design(near: np.ndarray, confidence: float) -> np.ndarray:
    """The prior's inputs for the fit: the indicators, then the indicators times the previous
    confidence, so the flattened 2 x len(LOCALITY) weights of :meth:`Answerer.prior` score them."""
    return np.hstack([near, confidence * near])


def top_right(pair: Pair, w: np.ndarray, reader_w: float) -> bool:
    """Is the answerer's first sentence right with locality weights ``w`` (flattened; its
    exact order)?"""
    ranked = pair.ranked + Answerer.prior(pair.near, pair.confidence, w.reshape(2, -1))
    top = Answerer.to_read(ranked)
    if not all(int(i) in pair.read for i in top):
        raise RuntimeError("a read candidate has no reader score; raise EXTRA_READ")
    read = np.array([pair.read[int(i)] for i in top])
    order = Answerer.final(ranked, top, read, reader_w)[1]
    return bool(pair.labels[order[0]])


def fit(chosen: list[Pair], reader_w: float) -> np.ndarray:
    """Conditional logit over each pair's scored candidates, the answerer's score as offset."""
    from scipy.optimize import minimize

    groups = []
    for p in chosen:
        idx = np.array(sorted(p.read))
        labels = p.labels[idx]
        if labels.sum() == 0:
            continue
        base = p.ranked[idx] + reader_w * np.array([p.read[int(i)] for i in idx])
        groups.append((base, design(p.near[idx], p.confidence), labels.astype(bool)))

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        total, grad = L2 * float(w @ w), 2 * L2 * w
        for base, near, right in groups:
            s = base + near @ w
            m = s.max()
            e = np.exp(s - m)
            z, zr = e.sum(), e[right].sum()
            total -= np.log(zr) - np.log(z)
            grad -= (e[right] @ near[right]) / zr - (e @ near) / z
        return total / len(groups), grad / len(groups)

    # Non-negative: a prior only lifts candidates near the last citation, so whatever it puts
    # in the read set was read when the pairs were collected (the ranker's best, or near ones).
    return minimize(loss, np.zeros(2 * len(LOCALITY)), jac=True, method="L-BFGS-B",
                    bounds=[(0.0, None)] * (2 * len(LOCALITY))).x


def accuracy(chosen: list[Pair], w: np.ndarray, reader_w: float) -> float:
    return float(np.mean([top_right(p, w, reader_w) for p in chosen]))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("squad", type=splits.data_file, help="SQuAD-format JSON file (or, with --coqa, a CoQA-format one)")
    ap.add_argument("--coqa", action="store_true", help="learn from the real dialogues of a CoQA-format file's train split")
    ap.add_argument("--stories", type=int, default=None, metavar="N", help="with --coqa: N train stories drawn with seed 0")
    ap.add_argument("--out", default=str(LOCALITY_FILE), help="weights file to write")
    ap.add_argument("--pairs-cache", metavar="FILE", help="reuse (or save) the collected pairs here (pickle)")
    args = ap.parse_args(argv)
    quiet_libraries()
    if args.coqa:
        data = cached_asks(args.pairs_cache, "locality", lambda: coqa_collect(args.squad, args.stories))
    else:
        bot, span = article_bot(args.squad)
        _, calibration_set = draw(args.squad, 6000)
        data = cached_asks(args.pairs_cache, "locality", lambda: collect(bot, span, pairs(calibration_set)))
    reader_w = Model.load(locality_path=None).reader
    none = np.zeros(2 * len(LOCALITY))
    articles = sorted({p.article for p in data})
    folds = [set(articles[0::2]), set(articles[1::2])]
    held = {"without": [], "with": []}
    for fold in folds:
        train = [p for p in data if p.article not in fold]
        test = [p for p in data if p.article in fold]
        w = fit(train, reader_w)
        held["without"].append(accuracy(test, none, reader_w) * len(test))
        held["with"].append(accuracy(test, w, reader_w) * len(test))
    w = fit(data, reader_w)
    report = {
        "source": (f"python -m eval.train_locality {Path(args.squad).name} --coqa"
                   + (f" --stories {args.stories}" if args.stories else "")
                   + ": conditional logit over each later turn's candidates, the answerer's score as offset, on the "
                   "train-split CoQA conversations (each limited to its story), against the sentence the bot cited the "
                   "turn before" if args.coqa else
                   f"python -m eval.train_locality {Path(args.squad).name}: conditional logit over the second question's "
                   "candidates, the answerer's score as offset, on consecutive questions of one article (one document per "
                   "article) in the calibration set of eval.train (outside the --sample 1000 --seed 0 report sample and the "
                   "ranker's draw)"),
        "weights": {f: round(float(v), 5) for f, v in zip(LOCALITY, w[:len(LOCALITY)])},
        "by_confidence": {f: round(float(v), 5) for f, v in zip(LOCALITY, w[len(LOCALITY):])},
        "training": {
            "pairs": len(data),
            "top1_held_out_without": round(sum(held["without"]) / len(data), 4),
            "top1_held_out_with": round(sum(held["with"]) / len(data), 4),
            "top1_all_without": round(accuracy(data, none, reader_w), 4),
            "top1_all_with": round(accuracy(data, w, reader_w), 4),
            "share_near": {f: round(float(np.mean([p.near[p.labels == 1, j].any() for p in data])), 4)
                           for j, f in enumerate(LOCALITY)},
        },
    }
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(report["weights"]), json.dumps(report["by_confidence"]), json.dumps(report["training"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
