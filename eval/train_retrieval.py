"""Learn the hybrid search's re-scoring weights (``index/rescore.json``) from SQuAD.

Usage: ``python -m eval.train_retrieval ../shared/benchmarks/squad-dev-v1.1.json [--n 6000]``

The questions are the ranker set of ``eval/train.py`` (``--n`` drawn with seed 1 from outside
the ``--sample 1000 --seed 0`` report sample). Each is searched over the whole corpus; the
candidates RRF fuses (:meth:`HybridIndex.candidates`) are labelled right when the passage
overlaps a gold answer span. The weights are a listwise logistic regression (softmax over one
question's candidates, the right ones together against all) on the standardised
:data:`~index.store.RESCORE_FEATURES`, turned back into weights of the raw features; a
constant shift does not change the order, so there is no bias.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from eval import harness, splits
from eval.train import corpus_bot, draw
from index.store import RESCORE_FEATURES, RESCORE_FILE, rescore_weights
from qa.bot import Bot
from qa.console import quiet_libraries

L2 = 1e-3


def collect(bot: Bot, questions: list) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(features, right)`` of each question's RRF candidates (questions with none skipped)."""
    from tqdm import tqdm

    index = bot.index
    out = []
    for _, question, _, spans in tqdm(questions, desc="candidates", file=sys.stderr):
        qvec = bot.embedder.embed([question])[0]
        fused, lexical = index.candidates(question, qvec)
        if not fused or lexical is None:
            continue
        ids = np.array([f.id for f in fused])
        right = np.array([harness.matches(spans, h.doc, h.start, h.end, "") for h in index.hits(fused)])
        out.append((index.rescore_features(lexical, qvec, ids), right))
    return out


def fit(lists: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Weights of the raw features maximising the right candidates' softmax share (L2 :data:`L2`)."""
    import torch

    lists = [(x, y) for x, y in lists if y.any()]
    width = max(len(y) for _, y in lists)
    dim = lists[0][0].shape[1]
    x = np.zeros((len(lists), width, dim))
    valid = np.zeros((len(lists), width), dtype=bool)
    right = np.zeros((len(lists), width), dtype=bool)
    for i, (f, y) in enumerate(lists):
        x[i, : len(y)], valid[i, : len(y)], right[i, : len(y)] = f, True, y
    flat = x[valid]
    mu, sd = flat.mean(0), flat.std(0) + 1e-9
    xt = torch.tensor((x - mu) / sd, dtype=torch.float64)
    vt, rt = torch.tensor(valid), torch.tensor(right)
    w = torch.zeros(dim, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w], max_iter=500, line_search_fn="strong_wolfe")

    def loss() -> torch.Tensor:
        opt.zero_grad()
        s = xt @ w
        everything = torch.logsumexp(s.masked_fill(~vt, -torch.inf), 1)
        good = torch.logsumexp(s.masked_fill(~rt, -torch.inf), 1)
        value = (everything - good).mean() + L2 * (w**2).sum()
        value.backward()
        return value

    opt.step(loss)
    return w.detach().numpy() / sd


def recall(lists: list[tuple[np.ndarray, np.ndarray]], weights: np.ndarray, k: int) -> float:
    """Share of the questions whose first right candidate is in the top ``k`` by ``weights``."""
    hits = 0
    for x, y in lists:
        order = np.argsort(-(x @ weights), kind="stable")
        hits += bool(y[order[:k]].any())
    return hits / len(lists)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("squad", type=splits.data_file, help="SQuAD-format JSON file")
    ap.add_argument("--n", type=int, default=6000, help="questions (the ranker set of eval.train; default 6000)")
    ap.add_argument("--out", default=str(RESCORE_FILE), help="weights file to write")
    args = ap.parse_args(argv)
    quiet_libraries()
    bot = corpus_bot(Path(args.squad))
    questions, _ = draw(args.squad, args.n)
    lists = collect(bot, questions)
    weights = fit(lists)
    try:
        before = {f"recall@{k}": round(recall(lists, rescore_weights(), k), 4) for k in (1, 5, 10)}
    except (OSError, ValueError, KeyError):  # no usable weights file yet
        before = {}
    after = {f"recall@{k}": round(recall(lists, weights, k), 4) for k in (1, 5, 10)}
    out = {
        "source": (f"python -m eval.train_retrieval {Path(args.squad).name} --n {args.n}: listwise logistic "
                   f"regression on the RRF candidates of {len(lists)} questions outside the --sample 1000 --seed 0 "
                   "report sample (the ranker set of eval.train, drawn with seed 1)"),
        "weights": {f: round(float(w), 5) for f, w in zip(RESCORE_FEATURES, weights)},
        "training": {"questions": len(lists), "before": before, "after": after},
    }
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
