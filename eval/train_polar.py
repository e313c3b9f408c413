"""Fit the yes/no verdict (``polar`` in ``qa/weights.json``) on the CoQA file's ``train`` split.

Usage::

    python -m eval.train_polar ../shared/benchmarks/coqa-stories-367.json

A question that asks for yes or no (:func:`qa.answertype.is_polar`) has no span to highlight:
its short answer is "Yes" or "No", said about the cited sentence. The verdict is a logistic
regression on the reader's pooled output for (question, sentence before, sentence), the
vector its ``rel`` score is read from, so answering costs no second pass. It is fit on the
CoQA ``train`` turns that ask a polar question and were answered "yes" or "no", each read with
its rationale's sentence and resolved against the gold history as the reader was trained
(:func:`eval.train_reader.coqa_turns`). The regularisation is chosen on the ``calib`` split;
the ``dev`` split is only reported. ``gate`` is the lowest probability of the likelier side at
which the ``calib`` verdicts given were right at least ``--min-precision`` of the time; the
answerer weighs that probability by the chance that the cited sentence is right
(:meth:`qa.answerer.Model.verdict`); below the gate the answer is the span head's clause.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from eval import splits
from eval.train_reader import Paragraphs, coqa_turns, rationale_sentence
from index.embedder import file_sha256
from qa.answerer import WEIGHTS_FILE
from qa.answertype import is_polar
from qa.reader import READER_SHA256, Reader

REGULARISATION = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0)
GATES = tuple(np.round(np.arange(0.5, 0.96, 0.01), 2))


def polar_turns(path: Path, split: splits.Split) -> list[tuple[str, str, str, bool]]:
    """``(question as read, sentence before, rationale sentence, answer is yes)`` of each polar
    turn of ``split`` answered "yes" or "no"."""
    which = splits.coqa_split(path)
    out = []
    for story in json.loads(path.read_text(encoding="utf-8"))["data"]:
        if which[story["id"]] != split:
            continue
        paras = Paragraphs([story["story"]])
        for (asked, a, unknown), q in zip(coqa_turns(story), story["questions"]):
            verdict = a["input_text"].strip().lower().rstrip(".!")
            if unknown or verdict not in ("yes", "no") or not is_polar(q["input_text"]):
                continue
            i = rationale_sentence(paras, a)
            if i is not None:
                before, sentence = paras.sentence(0, i)
                out.append((asked, before, sentence, verdict == "yes"))
    return out


def pooled(reader: Reader, turns: list[tuple[str, str, str, bool]]) -> tuple[np.ndarray, np.ndarray]:
    """The reader's pooled output for each turn, and its label (1 = yes)."""
    x = np.stack([reader.read(q, [s], [b])[0].pooled for q, b, s, _ in turns])
    return x, np.array([yes for *_, yes in turns], dtype=np.int64)


def verdicts(p: np.ndarray, y: np.ndarray, gate: float) -> tuple[float, float]:
    """Of the verdicts given at ``gate`` (``max(p, 1 - p) >= gate``): the share right, and the
    share of turns they answer."""
    given = np.maximum(p, 1 - p) >= gate
    right = (p >= 0.5) == (y == 1)
    return (float(right[given].mean()) if given.any() else 0.0), float(given.mean())


def gate_for(p: np.ndarray, y: np.ndarray, min_precision: float) -> tuple[float, float, float]:
    """The lowest gate whose verdicts are right at least ``min_precision`` of the time, with
    that precision and the share of turns it answers (see :func:`verdicts`)."""
    for g in GATES:
        precision, share = verdicts(p, y, g)
        if share and precision >= min_precision:
            return float(g), precision, share
    return 1.0, 0.0, 0.0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m eval.train_polar", description=__doc__.split("\n\n")[0])
    ap.add_argument("coqa", type=splits.data_file, help="the CoQA-format training file")
    ap.add_argument("--min-precision", type=float, default=0.8,
                    help="verdicts are given where the calib split's were right this often (default 0.8)")
    ap.add_argument("--weights", type=Path, default=WEIGHTS_FILE, help="the answerer's weights file to write into")
    args = ap.parse_args(argv)
    from sklearn.linear_model import LogisticRegression

    reader = Reader()
    data = {}
    for split in ("train", "calib", "dev"):
        turns = polar_turns(args.coqa, split)
        print(f"{split}: {len(turns)} polar turns answered yes/no", file=sys.stderr)
        data[split] = pooled(reader, turns)
    (xt, yt), (xc, yc), (xd, yd) = data["train"], data["calib"], data["dev"]

    def accuracy(clf: LogisticRegression, x: np.ndarray, y: np.ndarray) -> float:
        return float((clf.predict(x) == y).mean())

    fits = {c: LogisticRegression(C=c, max_iter=5000).fit(xt, yt) for c in REGULARISATION}
    c = max(REGULARISATION, key=lambda c: accuracy(fits[c], xc, yc))
    clf = fits[c]
    gate, precision, share = gate_for(clf.predict_proba(xc)[:, 1], yc, args.min_precision)
    dev_precision, dev_share = verdicts(clf.predict_proba(xd)[:, 1], yd, gate)
    report = {
        "C": c, "train": len(yt), "calib": len(yc), "dev": len(yd), "yes_share_train": round(float(yt.mean()), 3),
        "accuracy": {"train": round(accuracy(clf, xt, yt), 3), "calib": round(accuracy(clf, xc, yc), 3),
                     "dev": round(accuracy(clf, xd, yd), 3)},
        "gate_calib": {"precision": round(precision, 3), "answered": round(share, 3)},
        "gate_dev": {"precision": round(dev_precision, 3), "answered": round(dev_share, 3)},
        "data_sha256": {args.coqa.name: file_sha256(args.coqa)},
        "recipe": "python -m eval.train_polar " + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    print(json.dumps(report, indent=1), file=sys.stderr)
    weights = json.loads(args.weights.read_text(encoding="utf-8"))
    weights["polar"] = {"weight": [round(float(w), 6) for w in clf.coef_[0]], "bias": round(float(clf.intercept_[0]), 6),
                        "gate": gate, "reader_sha256": READER_SHA256, "training": report}
    args.weights.write_text(json.dumps(weights, indent=1) + "\n", encoding="utf-8")
    print(f"wrote the yes/no verdict into {args.weights}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
