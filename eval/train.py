"""Fit the answerer's reader weight, confidence model, abstention threshold and short-answer
source on the ``calib`` splits of every public training file (:mod:`eval.splits`).

Usage: ``python -m eval.train ../shared/benchmarks/*.json [--fit-ranker]``

The calibration questions were kept from the reader's training (``eval/train_reader.py``), so
its scores on them are what it gives on text it never saw. Each file's calibration units (their
paragraphs, or CoQA stories, one document each) form a corpus of their own, and each question
is asked in it twice:

* as it is: candidate sentences overlapping a gold answer span are right, the others wrong;
* over every document but its own: the topic may still be there but the answer usually is not,
  the near miss a bot must decline. A candidate that still contains a gold answer string is
  labelled right, and such asks are not counted as ones to decline.

SQuAD-format calibration questions are asked twice more in *small corpora*, the size of the few
documents a user chats with: each article split into two corpora of its own (its even and its
odd paragraphs), each question asked over the half that holds its paragraph and over the other
half. There the missing paragraph's words are missing from the corpus and its statistics, as
they are when the user's documents do not answer a question. A CoQA turn is asked as the bot
searches a follow-up (resolved against the gold history by :func:`qa.conversation.resolve`),
within its story; a turn CoQA answers "unknown" is one to decline.

The reader weight is the one that puts a right sentence first most often. The confidence model
is a logistic regression on the final top sentence's features, lead and reader score, labelled 1
when that sentence is right, with the asks to decline weighted to ``--unanswerable-share`` of
the whole, so its probability is calibrated for that mix. The threshold maximises the expected
share of good outcomes at that mix: right top sentence answered, or abstention when there is
nothing to find (the median of that choice over seeded bootstrap draws, as the share is flat
near its top). The follow-up threshold is the same search at the share of follow-ups that real
dialogues leave unanswered (CoQA's train-split "unknown" follow-ups, 0.9%): it holds a follow-up
in a conversation kept to a few documents that answered its last turn. Short answers come from the reader's span head except for the question types
(:func:`qa.answertype.question_type`) where the hand-written patterns scored a higher F1 on the
calibration questions whose top sentence is right.

The ranker is kept from ``qa/weights.json`` unless ``--fit-ranker``: then it is refit as a
logistic regression on differences of feature vectors (right minus wrong sentence of the same
question) over SQuAD ``train``-split questions (``--n`` of them, seed 1).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import pickle
import random
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, TypeVar

import numpy as np

from eval import harness, splits
from qa.answerer import CONFIDENCE_FEATURES, FEATURES, WEIGHTS_FILE, Answerer, Question, confidence_fingerprint
from qa.answertype import find_answer, question_type
from qa.bot import Bot
from qa.conversation import resolve
from index.embedder import file_sha256
from qa.reader import READER_FILE, Reading, scores_of
from index.config import cache_dir
from index.store import HybridIndex
from qa.console import quiet_libraries

MAX_PAIRS = 30
# Reader weights tried (the reader's logits span about ten units, as the ranker's scores do).
READER_WEIGHTS = np.round(np.arange(0.0, 8.01, 0.1), 2)


@dataclass
class Ask:
    """One question asked over the corpus: its candidates' features, texts and labels."""

    question: str
    feats: np.ndarray
    texts: list[str]
    before: list[str]  # the sentence before each candidate in its document ("" at the start)
    labels: np.ndarray
    near_miss: bool  # asked without the answer's own document
    declined: bool  # an ask with no right candidate to find: the bot should abstain
    answers: tuple[str, ...] = ()  # the gold short answers
    domain: str = ""  # the training file's domain (eval.splits.FILES)
    rows: tuple[int, ...] = ()  # each candidate's sentence in the index


# One question to ask: (id, question, gold answers, gold spans, documents it is limited to or None).
Asked = tuple[str, str, list[str], list[dict], "list[str] | None"]


def make_ask(index: HybridIndex, answerer: Answerer, question: str, qvec: np.ndarray, hits: list, answers: list[str],
             spans: list[dict], near_miss: bool, domain: str = "") -> Ask | None:
    """One ask: the candidates of ``hits`` with their features and labels (None without any).

    A candidate is right when it overlaps a gold span or, in a ``near_miss`` ask (the answer's
    own document is not among the hits), when it still contains a gold answer string. An ask
    with no gold span to find (a CoQA "unknown" turn) is one to decline.
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
    to_decline = (near_miss or not spans) and right_ones.sum() == 0
    return Ask(question, feats, texts, before, right_ones, near_miss, to_decline, tuple(answers), domain,
               tuple(int(r) for r in rows))


def collect(bot: Bot, questions: list[Asked], domain: str = "") -> list[Ask]:
    """The two asks of each question (see the module docstring); a question with no gold span
    is asked once, within the documents it is limited to, as one to decline."""
    from tqdm import tqdm

    answerer = Answerer()
    asks = []
    for _, question, answers, spans, limit in tqdm(questions, desc=f"features {domain}".strip(), file=sys.stderr):
        qvec = bot.embedder.embed([question])[0]
        if not spans:
            ask = make_ask(bot.index, answerer, question, qvec, bot.index.search(question, qvec, k=10, docs=limit),
                           answers, spans, True, domain)
            asks += [ask] if ask is not None else []
            continue
        gold = spans[0]["doc"]
        wide = bot.index.search(question, qvec, k=30)
        everywhere = bot.index.search(question, qvec, k=10, docs=limit) if limit else wide
        # The near miss: the search with the answer's own document taken out.
        elsewhere = [h for h in wide if h.doc != gold][:10]
        for near_miss, hits in ((False, everywhere[:10]), (True, elsewhere)):
            ask = make_ask(bot.index, answerer, question, qvec, hits, answers, spans, near_miss, domain)
            if ask is not None:
                asks.append(ask)
    return asks


def _half(doc: str) -> tuple[str, int]:
    """The article of a SQuAD paragraph document (``a012/p003.txt``) and its half: 0 for the
    even paragraphs, 1 for the odd ones."""
    article, paragraph = doc.split("/")
    return article, int(paragraph[1:4]) % 2


def collect_small(bot: Bot, questions: list[Asked], domain: str = "") -> list[Ask]:
    """The two asks of each question in small corpora (see the module docstring): one over the
    half of its article that holds its paragraph, one over the other half.

    Each half is a corpus of its own (documents copied next to the whole corpus's index), so its
    BM25 statistics are a small corpus's and the answer's paragraph is truly absent from the
    other half: its words are missing, as they are for a question the user's documents do not
    answer.
    """
    from tqdm import tqdm

    by_article: dict[str, list] = {}
    for q in questions:
        by_article.setdefault(_half(q[3][0]["doc"])[0], []).append(q)
    root = bot.docs.parent / "halves"
    answerer = Answerer()
    asks = []
    for article, qs in tqdm(sorted(by_article.items()), desc=f"small corpora {domain}".strip(), unit="article", file=sys.stderr):
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
        for _, question, answers, spans, _ in qs:
            own = _half(spans[0]["doc"])[1]
            qvec = bot.embedder.embed([question])[0]
            for near_miss in (False, True):
                half = halves[own ^ near_miss]
                if half is None:
                    continue
                hits = half.index.search(question, qvec, k=10)
                ask = make_ask(half.index, answerer, question, qvec, hits, answers, spans, near_miss, domain)
                if ask is not None:
                    asks.append(ask)
    return asks


Collected = TypeVar("Collected")


def cached_asks(cache: str | None, part: str, make: Callable[[], list[Collected]]) -> list[Collected]:
    """The asks ``part`` (``ranker``, ``calib-<file>``, the readings ``reads-<key>``; ``eval.train_locality`` keeps its
    question pairs as ``locality``) from ``cache`` (a pickle of all parts collected so far), else
    ``make()``, saved there for the next run (this script's or another's)."""
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


Read = tuple[np.ndarray, list[Reading]]


def read_asks(asks: list[Ask], rank_w: np.ndarray) -> list[Read]:
    """Per ask: the positions of the ranker's top candidates and the reader's readings of them."""
    from tqdm import tqdm

    answerer = Answerer()
    return [answerer.read(ask.question, ask.feats @ rank_w, ask.texts.__getitem__, ask.before.__getitem__)
            for ask in tqdm(asks, desc="reader", file=sys.stderr)]


def fit_reader_weight(asks: list[Ask], rank_w: np.ndarray, reads: list[Read]) -> tuple[float, dict]:
    """The reader weight that puts a right sentence first most often on answerable asks."""
    accuracy = {}
    for w in READER_WEIGHTS:
        right = [ask.labels[Answerer.final(ask.feats @ rank_w, top, scores_of(r), w)[1][0]]
                 for ask, (top, r) in zip(asks, reads) if not ask.declined]
        accuracy[float(w)] = float(np.mean(right))
    best = max(accuracy, key=lambda w: (accuracy[w], -w))
    return best, {"top1_without_reader": round(accuracy[0.0], 4), "top1_with_reader": round(accuracy[best], 4)}


Top = tuple[int, np.ndarray, dict[int, Reading]]


def final_tops(asks: list[Ask], rank_w: np.ndarray, reads: list[Read], reader_w: float) -> list[Top]:
    """Per ask: the final top candidate, the final scores and the readings by candidate."""
    out = []
    for ask, (top_rows, r) in zip(asks, reads):
        scores, order = Answerer.final(ask.feats @ rank_w, top_rows, scores_of(r), reader_w)
        out.append((int(order[0]), scores, dict(zip(map(int, top_rows), r))))
    return out


# Thresholds tried, and how many bootstrap draws of the calibration asks vote on one.
THRESHOLDS = np.round(np.linspace(0.01, 0.9, 90), 2)
BOOTSTRAP_DRAWS = 200


def threshold_objective(p: np.ndarray, y: np.ndarray, declined: np.ndarray, share: float) -> np.ndarray:
    """For each of :data:`THRESHOLDS`, the share of good outcomes when ``share`` of the questions
    are ones to decline: right top sentence answered, or abstention when there is nothing to find."""
    answered_right = ((y[~declined] == 1)[None, :] & (p[~declined][None, :] >= THRESHOLDS[:, None])).mean(axis=1)
    abstained = (p[declined][None, :] < THRESHOLDS[:, None]).mean(axis=1)
    return (1 - share) * answered_right + share * abstained


def best_threshold(p: np.ndarray, y: np.ndarray, declined: np.ndarray, share: float) -> tuple[float, dict[str, float]]:
    """The threshold with the most good outcomes (:func:`threshold_objective`), made stable.

    The objective is flat near its top (docs/reader.md), so its argmax on one sample jumps with
    the draw; the median of the argmaxes over seeded bootstrap draws of the asks is kept instead."""
    rng = np.random.default_rng(0)
    votes = sorted(int(np.argmax(threshold_objective(p[draw], y[draw], declined[draw], share)))
                   for draw in (rng.choice(len(p), len(p)) for _ in range(BOOTSTRAP_DRAWS)))
    at = votes[len(votes) // 2]
    t = float(THRESHOLDS[at])
    objective = threshold_objective(p, y, declined, share)
    return t, {"answerable_right": round(float(np.mean((y[~declined] == 1) & (p[~declined] >= t))), 4),
               "declined_abstained": round(float(np.mean(p[declined] < t)), 4),
               "top1_right_if_always_answering": round(float(np.mean(y[~declined])), 4),
               "objective": round(float(objective[at]), 4),
               "objective_best": round(float(objective.max()), 4),
               "bootstrap_thresholds_5_95": [round(float(v), 2) for v in np.percentile(THRESHOLDS[votes], [5, 95])]}


def fit_confidence(asks: list[Ask], tops: list[Top], unanswerable_share: float, follow_up_share: float):
    """The confidence model, its threshold, the follow-up threshold (the same probabilities
    with ``follow_up_share`` of the questions to decline) and the fit's figures."""
    from sklearn.linear_model import LogisticRegression

    X = np.array([Answerer.confidence_features(ask.feats, scores, top, readings) for ask, (top, scores, readings) in zip(asks, tops)])
    y = np.array([int(ask.labels[top] == 1) for ask, (top, *_) in zip(asks, tops)])
    declined = np.array([ask.declined for ask in asks])
    # The asks to decline weigh unanswerable_share of the whole, the others the rest.
    weight = np.where(declined, unanswerable_share / max(declined.sum(), 1), (1 - unanswerable_share) / max((~declined).sum(), 1))
    clf = LogisticRegression(C=1.0, max_iter=5000)
    clf.fit(X, y, sample_weight=weight * len(y))
    p = clf.predict_proba(X)[:, 1]
    threshold, fit = best_threshold(p, y, declined, unanswerable_share)
    follow_up, follow_fit = best_threshold(p, y, declined, follow_up_share)
    return clf.coef_[0], float(clf.intercept_[0]), threshold, follow_up, {**fit, "follow_up": follow_fit}


def follow_up_unanswerable_share(path: Path) -> float:
    """The share of follow-up turns of the CoQA file's train-split stories answered "unknown"."""
    turns = [t for c in harness.coqa_set(path, None, 0, split="train") for t in c.turns[1:]]
    return sum(not t.answerable for t in turns) / max(len(turns), 1)


def pattern_kinds(asks: list[Ask], tops: list[Top]) -> tuple[list[str], dict[str, dict[str, float]]]:
    """The question types whose short answers the patterns give with a higher F1 than the
    reader's span, on answerable asks whose final top sentence is right, and the figures."""
    by_kind: dict[str, list[tuple[float, float]]] = {}
    for ask, (top, _, readings) in zip(asks, tops):
        reading = readings.get(top)
        if ask.declined or not ask.labels[top] or not ask.answers or reading is None:
            continue
        sentence = ask.texts[top]
        kind = question_type(ask.question)
        found = find_answer(ask.question, sentence, kind)
        pattern = sentence[found[0].start:found[0].end] if found else sentence
        reader = sentence[reading.span[0]:reading.span[1]] if reading.span else sentence
        by_kind.setdefault(kind, []).append((harness.answer_scores(reader, ask.answers)[1],
                                             harness.answer_scores(pattern, ask.answers)[1]))
    figures = {k: {"n": len(v), "reader_f1": round(float(np.mean([r for r, _ in v])), 4),
                   "pattern_f1": round(float(np.mean([p for _, p in v])), 4)} for k, v in sorted(by_kind.items())}
    return [k for k, f in figures.items() if f["pattern_f1"] > f["reader_f1"]], figures


def draw(squad: str, n: int) -> tuple[list, list]:
    """The ranker set (``n`` questions outside the report sample, seed 1) and the calibration set (the rest)."""
    held_out = {c.id for c in harness.squad_set(squad, 1000, 0)}
    pool = [q for q in harness.squad_questions(squad) if q[0] not in held_out]
    chosen = random.Random(1).sample(pool, min(n, len(pool)))
    ids = {q[0] for q in chosen}
    return chosen, [q for q in pool if q[0] not in ids]


def corpus_bot(path: Path) -> Bot:
    """A bot over a training file's documents as ``qa eval`` writes them (one per SQuAD paragraph
    or CoQA story; the index cached next to them)."""
    coqa = splits.is_coqa(json.loads(path.read_text(encoding="utf-8")))
    docs = (harness.coqa_corpus if coqa else harness.squad_corpus)(path, cache_dir())
    bot = Bot(docs, index_dir=docs.parent / "index")
    bot.sync()
    return bot


def split_questions(path: Path, split: str) -> list[Asked]:
    """The questions of one split of a training file, CoQA turns resolved against the gold
    history as the bot resolves a follow-up (a CoQA turn limited to its story's document)."""
    data = json.loads(path.read_bytes())
    if not splits.is_coqa(data):
        which = splits.squad_split(path)
        return [(qid, q, a, sp, None) for qid, q, a, sp in harness.squad_questions(path) if which[qid] == split]
    questions: list[Asked] = []
    for conv in harness.coqa_set(path, None, 0, split):
        history: list[tuple[str, str, str | None]] = []
        for i, turn in enumerate(conv.turns):
            asked = resolve(turn.question, history).searched_for
            history.append((turn.question, asked, turn.answers[0] if turn.answers else None))
            questions.append((f"{conv.id}#{i}", asked, list(turn.answers), list(turn.evidence), list(conv.docs or ())))
    return questions


def still_valid(previous: dict, refit: dict) -> dict:
    """The later fits of the ``previous`` weights file that still hold for the ``refit`` one: the
    yes/no verdict (it reads the reader alone; eval/train_polar.py), and the settled turns'
    rescaling when the confidence model it was fit on is unchanged (eval/train_settled.py)."""
    kept = {"polar": previous["polar"]} if "polar" in previous else {}
    settled = previous.get("settled")
    if settled is not None and settled.get("confidence_model") == confidence_fingerprint(refit):
        kept["settled"] = settled
    return kept


def calib_corpus(path: Path) -> tuple[Bot, list[Asked], bool]:
    """A bot over the calibration units of a training file (one document per paragraph or
    story, named as ``qa eval`` names them), its calibration questions, and whether they are
    conversations (CoQA)."""
    data = json.loads(path.read_bytes())
    folder = cache_dir() / f"calib-{file_sha256(path)[:12]}"
    docs = folder / "docs"
    questions = split_questions(path, "calib")
    texts: dict[str, str] = {}
    coqa = splits.is_coqa(data)
    if coqa:
        stories = {s["id"]: s["story"] for s in data["data"]}
        for conv_id in dict.fromkeys(q[0].split("#")[0] for q in questions):
            texts[harness.coqa_doc(conv_id)] = stories[conv_id]
    else:
        which = splits.squad_split(path)
        for ai, article in enumerate(data["data"]):
            if any(which.get(qa["id"]) == "calib" for p in article["paragraphs"] for qa in p["qas"]):
                for pi, para in enumerate(article["paragraphs"]):
                    texts[harness.squad_doc(ai, pi)] = para["context"]
    if not (docs / ".complete").exists():
        for name, text in texts.items():
            (docs / name).parent.mkdir(parents=True, exist_ok=True)
            (docs / name).write_text(text, encoding="utf-8")
        (docs / ".complete").write_text("", encoding="utf-8")
    bot = Bot(docs, index_dir=folder / "index")
    bot.sync()
    return bot, questions, coqa


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    ap.add_argument("files", nargs="+", type=Path, help="the public training files (../shared/benchmarks/*.json)")
    ap.add_argument("--fit-ranker", action="store_true", help="refit the ranker too (on SQuAD train-split questions)")
    ap.add_argument("--n", type=int, default=6000, help="with --fit-ranker: ranker questions (default 6000)")
    ap.add_argument("--unanswerable-share", type=float, default=0.2,
                    help="expected share of questions the documents do not answer (sets the threshold; default 0.2)")
    ap.add_argument("--follow-up-unanswerable-share", type=float, default=None,
                    help="share of follow-ups in a conversation kept to a few documents that those do not answer "
                         "(sets the follow-up threshold; default: measured on the CoQA file's train-split follow-ups)")
    ap.add_argument("--features-cache", metavar="FILE", help="reuse (or save) the collected features here (pickle)")
    ap.add_argument("--collect-only", action="store_true",
                    help="only collect the features into --features-cache (they do not depend on the reader)")
    ap.add_argument("--out", default=str(WEIGHTS_FILE), help="weights file to write")
    args = ap.parse_args(argv)
    if args.collect_only and not args.features_cache:
        ap.error("--collect-only needs --features-cache")
    try:
        files = splits.training_files(args.files)
    except ValueError as exc:
        ap.error(str(exc))
    quiet_libraries()
    previous = json.loads(Path(WEIGHTS_FILE).read_text(encoding="utf-8"))
    ranker_note = previous.get("ranker_source", previous.get("source", ""))
    if args.fit_ranker:
        squad = next((f for f in files if splits.FILES[f.name] == "squad"), None)
        if squad is None:
            ap.error("--fit-ranker needs the SQuAD file")
        which = splits.squad_split(squad)
        pool = [q for q in harness.squad_questions(squad) if which[q[0]] == "train"]
        ranker_set = random.Random(1).sample(pool, min(args.n, len(pool)))
        bot = corpus_bot(squad)
        asks = cached_asks(args.features_cache, "ranker",
                           lambda: collect(bot, [(*q, None) for q in ranker_set], "squad"))
        rank_w = fit_ranker(asks, random.Random(1))
        ranker_note = f"fit on {len(ranker_set)} SQuAD train-split questions (seed 1)"
    else:
        rank_w = np.array([previous["rank"][f] for f in FEATURES])
    calibration: list[Ask] = []
    reads: list[Read] = []
    counts = {}
    # The readings depend on the reader's weights and the ranker's order: cached under both.
    key = hashlib.sha256(file_sha256(READER_FILE).encode() + rank_w.tobytes()).hexdigest()[:16]
    for f in files:
        domain = splits.FILES[f.name]
        if domain in splits.NOISY_SENTENCE_LABELS:
            continue

        def make(f: Path = f, domain: str = domain) -> list[Ask]:
            bot, questions, coqa = calib_corpus(f)
            made = collect(bot, questions, domain)
            if not coqa:
                made += collect_small(bot, questions, domain)
            return made

        made = cached_asks(args.features_cache, f"calib-{f.name}", make)
        counts[domain] = len(made)
        calibration += made
        if not args.collect_only:
            reads += cached_asks(args.features_cache, f"reads-{f.name}-{key}", lambda made=made: read_asks(made, rank_w))
    if args.collect_only:
        print(f"collected {counts} into {args.features_cache}", file=sys.stderr)
        return 0
    reader_w, reader_fit = fit_reader_weight(calibration, rank_w, reads)
    tops = final_tops(calibration, rank_w, reads, reader_w)
    follow_share = args.follow_up_unanswerable_share
    if follow_share is None:
        coqa = next((f for f in files if splits.FILES[f.name] == "coqa"), None)
        if coqa is None:
            ap.error("without the CoQA file, pass --follow-up-unanswerable-share")
        follow_share = follow_up_unanswerable_share(coqa)
    conf_w, bias, threshold, follow_up, fit = fit_confidence(calibration, tops, args.unanswerable_share, follow_share)
    kinds, span_fit = pattern_kinds(calibration, tops)
    out = {
        "source": (f"python -m eval.train {' '.join(f.name for f in files)}{' --fit-ranker' if args.fit_ranker else ''}: "
                   "reader weight, confidence, threshold and short-answer source on the calib splits (eval/splits.py; "
                   "not Quoref's, whose answers sit at their first occurrence, not in the answering sentence), "
                   "each question also asked without its own document as one to decline"),
        "ranker_source": ranker_note,
        "rank": {f: round(float(w), 5) for f, w in zip(FEATURES, rank_w)},
        "reader": reader_w,
        "confidence": {f: round(float(w), 5) for f, w in zip(CONFIDENCE_FEATURES, conf_w)},
        "bias": round(bias, 5),
        "threshold": round(threshold, 4),
        "follow_up_threshold": round(follow_up, 4),
        "pattern_kinds": kinds,
        "training": {"calibration_asks": counts, "unanswerable_share": args.unanswerable_share,
                     "follow_up_unanswerable_share": round(follow_share, 4),
                     "data_sha256": {f.name: file_sha256(f) for f in files},
                     **reader_fit, **fit, "short_answers": span_fit},
    }
    if Path(args.out).is_file():
        out.update(still_valid(json.loads(Path(args.out).read_text(encoding="utf-8")), out))
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    # Run as the importable module, so the cached asks pickle as eval.train.Ask (not __main__.Ask).
    from eval import train

    sys.exit(train.main())
