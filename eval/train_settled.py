"""Fit the confidence shown on settled turns (``settled`` in ``qa/weights.json``) on real dialogues.

Usage: ``python -m eval.train_settled ../shared/benchmarks/coqa-stories-367.json``

A *settled* turn is a later turn of a conversation kept to a few documents, once an earlier turn
was answered there (:func:`qa.bot.is_settled`; held to the follow-up threshold). The
confidence model learned from questions that stand alone, over many documents; in a settled
conversation the same score means a likelier right answer (measured in docs/experiments.md).
So the shown confidence of a settled turn is
rescaled: ``sigmoid(scale * logit(c) + shift)``, a logistic fit of "the top citation is right"
on the logit of the model's confidence, over the settled turns of the bot's own runs through the
CoQA file's ``calib`` stories (kept from the reader; "unknown" turns count as wrong). It moves
no decision on its own turn: declining is still decided on the model's own confidence against
the follow-up threshold; the next turn's locality prior and a yes/no verdict read the shown
one, a probability. Run it after ``python -m eval.train`` (whose refit
drops it) and ``python -m eval.train_polar``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np

from eval import harness, splits
from eval.train import corpus_bot
from index.embedder import file_sha256
from qa.answerer import WEIGHTS_FILE, confidence_fingerprint, confidence_logit
from qa.bot import Turn, is_settled
from qa.console import quiet_libraries

def settled_turns(results: list[harness.TurnResult], docs: dict[str, list[str] | None]) -> list[harness.TurnResult]:
    """The turns of ``results`` (in conversation order) the bot asked as settled
    (:func:`qa.bot.is_settled`), given each conversation's documents by its id in ``docs``."""
    out, history = [], {}
    for r in results:
        earlier = history.setdefault(r.id, [])
        if is_settled(earlier, docs[r.id]):
            out.append(r)
        earlier.append(Turn(r.gold.question, r.answer))
    return out


def fit(results: list[harness.TurnResult]) -> tuple[float, float]:
    """``(scale, shift)`` of the logistic fit of "right" on the logit of the confidence."""
    from sklearn.linear_model import LogisticRegression

    x = np.array([[confidence_logit(r.answer.confidence)] for r in results])
    y = np.array([r.gold.answerable and r.rank == 1 for r in results], dtype=int)
    clf = LogisticRegression(C=1.0).fit(x, y)
    return float(clf.coef_[0][0]), float(clf.intercept_[0])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m eval.train_settled", description=__doc__.split("\n\n")[0])
    ap.add_argument("coqa", type=splits.data_file, help="the CoQA-format training file (../shared/benchmarks/coqa-stories-367.json)")
    ap.add_argument("--weights", type=Path, default=WEIGHTS_FILE, help="the answerer's weights file to write into")
    args = ap.parse_args(argv)
    try:
        coqa = splits.is_coqa(json.loads(args.coqa.read_bytes()))
    except (ValueError, AttributeError):  # not JSON, or not an object
        coqa = False
    if not coqa:
        ap.error(f"{args.coqa}: not a CoQA-format file")
    quiet_libraries()
    from tqdm import tqdm

    bot = corpus_bot(args.coqa)
    # The fit reads the confidence model's own output: any rescaling already shipped is undone.
    model = bot.answerer.model = dataclasses.replace(bot.answerer.model, settled=None)
    conversations = harness.coqa_set(args.coqa, None, 0, "calib")
    with tqdm(total=sum(len(c.turns) for c in conversations), desc="calib turns", unit="turn", file=sys.stderr) as bar:
        results = harness.run(bot, conversations, bar.update)
    turns = settled_turns(results, {c.id: c.docs for c in conversations})
    scale, shift = fit(turns)
    before = harness.calibration_error(turns)
    rescaled = dataclasses.replace(model, settled=(scale, shift))
    shown = [dataclasses.replace(r, answer=dataclasses.replace(r.answer, confidence=rescaled.shown(r.answer.confidence)))
             for r in turns]
    report = {
        "settled_turns": len(turns), "right": round(float(np.mean([r.gold.answerable and r.rank == 1 for r in turns])), 3),
        "mean_confidence": round(float(np.mean([r.answer.confidence for r in turns])), 3),
        "calibration_error": {"before": before, "after": harness.calibration_error(shown)},
        "data_sha256": {args.coqa.name: file_sha256(args.coqa)},
        "recipe": "python -m eval.train_settled " + args.coqa.name,
    }
    print(json.dumps(report, indent=1), file=sys.stderr)
    weights = json.loads(args.weights.read_text(encoding="utf-8"))
    weights["settled"] = {"scale": round(scale, 5), "shift": round(shift, 5),
                          "confidence_model": confidence_fingerprint(weights), "training": report}
    args.weights.write_text(json.dumps(weights, indent=1) + "\n", encoding="utf-8")
    print(f"wrote the settled turns' rescaling into {args.weights}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
