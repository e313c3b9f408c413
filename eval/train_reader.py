"""Learn the reader's adapter (``qa/reader.safetensors``) from SQuAD questions outside the report sample.

Usage: ``python -m eval.train_reader ../shared/benchmarks/squad-dev-v1.1.json --n 6000 --epochs 2``
(the shipped recipe: about 45 minutes on 2 CPU cores; 22 for one epoch).

The questions are the ranker set of ``eval/train.py`` (``--n`` drawn with seed 1 after removing
the ``--sample 1000 --seed 0`` report sample), asked over the whole corpus. Each becomes a group: the best
right sentence among the candidates, and the ``--negatives`` wrong sentences the current
ranker (``qa/weights.json``) puts highest, the near misses the reader must tell apart, each
read after the end of the sentence before it (``--context-words``). The
loss is the cross-entropy of the right sentence against its group (a softmax over the
reader's scores), so the reader learns to order sentences for a question, as it is used.

Only the adapter is learned (see :mod:`qa.reader`): the base MiniLM stays frozen, which keeps
the file small and the model close to what it was, a guard against memorising the articles.
Afterwards run ``python -m eval.train`` to refit the reader weight and the confidence model.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import random
import sys
from pathlib import Path

import numpy as np

from eval.train import Ask, cached_asks, collect, draw, squad_bot
from qa.answerer import Model
from qa.cli import quiet_libraries
from qa.reader import (
    ADAPTED, CONTEXT_WORDS, RANK, READER_FILE, SCALE, adapter_key, encode_pairs, mean_pool, pair_tokenizer, reader_pair,
)

NEGATIVES = 3
# Wrong sentences are taken from the ranker's best this many.
NEAR = 12


Group = tuple[str, list[tuple[str, str]]]


def groups(asks: list[Ask], rank_w: np.ndarray, rng: random.Random, negatives: int = NEGATIVES) -> list[Group]:
    """``(question, [right sentence, wrong sentences…])`` per ask over the whole corpus that has
    both kinds, each sentence with the one before it (near-miss asks are left out: their
    "right" sentences only contain the answer's words)."""
    out = []
    for ask in asks:
        if ask.near_miss or not ask.labels.any():
            continue
        order = np.argsort(-(ask.feats @ rank_w), kind="stable")
        right = [i for i in order if ask.labels[i]]
        wrong = [i for i in order[:NEAR] if not ask.labels[i]]
        if not wrong:
            continue
        while len(wrong) < negatives:
            wrong.append(rng.choice(wrong))
        out.append((ask.question, [(ask.texts[i], ask.before[i]) for i in [right[0], *wrong[:negatives]]]))
    return out


def build(location: Path):  # type: ignore[no-untyped-def]
    """The base encoder, frozen, with trainable low-rank updates, segment embeddings and head."""
    import torch
    from torch import nn
    from transformers import AutoModel

    class LowRank(nn.Module):
        def __init__(self, base: nn.Linear) -> None:
            super().__init__()
            self.base = base
            self.a = nn.Parameter(torch.randn(RANK, base.in_features) / math.sqrt(base.in_features))
            self.b = nn.Parameter(torch.zeros(base.out_features, RANK))  # starts as the base model

        def forward(self, x):  # type: ignore[no-untyped-def]
            return self.base(x) + SCALE * (x @ self.a.T @ self.b.T)

    encoder = AutoModel.from_pretrained(str(location))
    for p in encoder.parameters():
        p.requires_grad_(False)
    for layer in encoder.encoder.layer:
        for module in ADAPTED:
            parent, _, name = module.rpartition(".")
            holder = layer.get_submodule(parent)
            setattr(holder, name, LowRank(getattr(holder, name)))
    encoder.embeddings.token_type_embeddings.weight.requires_grad_(True)
    head = nn.Linear(encoder.config.hidden_size, 1)
    return encoder, head


def train(location: Path, data: list[Group], batch: int, lr: float, seed: int, context_words: int, epochs: int = 1):  # type: ignore[no-untyped-def]
    import torch
    from tqdm import tqdm

    torch.manual_seed(seed)
    encoder, head = build(location)
    tokenizer = pair_tokenizer(location)
    params = [p for p in list(encoder.parameters()) + list(head.parameters()) if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    per_epoch = math.ceil(len(data) / batch)
    steps = epochs * per_epoch
    warm = max(1, int(0.06 * steps))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min((s + 1) / warm, max(0.0, (steps - s) / (steps - warm))))
    rng = random.Random(seed)
    order: list[Group] = []
    for _ in range(epochs):  # each epoch in its own order
        epoch = list(data)
        rng.shuffle(epoch)
        order += epoch
    encoder.train()
    bar = tqdm(range(0, len(order), batch), desc="reader", file=sys.stderr)
    smooth = None
    for i in bar:
        chunk = order[i:i + batch]
        pairs = [reader_pair(q, s, b, context_words) for q, sents in chunk for s, b in sents]
        ids, types, mask = (torch.as_tensor(x) for x in encode_pairs(tokenizer, pairs))
        hidden = encoder(input_ids=ids, token_type_ids=types, attention_mask=mask).last_hidden_state
        scores = head(mean_pool(hidden, mask.float())).view(len(chunk), -1)
        loss = torch.nn.functional.cross_entropy(scores, torch.zeros(len(chunk), dtype=torch.long))
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        smooth = loss.item() if smooth is None else 0.98 * smooth + 0.02 * loss.item()
        bar.set_postfix(loss=f"{smooth:.3f}")
    return encoder, head


def save(encoder, head, path: Path, meta: dict[str, str]) -> None:  # type: ignore[no-untyped-def]
    from safetensors.numpy import save_file

    tensors = {}
    for i, layer in enumerate(encoder.encoder.layer):
        for module in ADAPTED:
            low = layer.get_submodule(module)
            tensors[adapter_key(i, module, "a")] = low.a.detach().numpy().astype(np.float32)
            tensors[adapter_key(i, module, "b")] = low.b.detach().numpy().astype(np.float32)
    tensors["token_type"] = encoder.embeddings.token_type_embeddings.weight.detach().numpy().astype(np.float32)
    tensors["head.weight"] = head.weight.detach().numpy().astype(np.float32)
    tensors["head.bias"] = head.bias.detach().numpy().astype(np.float32)
    save_file(tensors, str(path), metadata=meta)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("squad", help="SQuAD-format JSON file")
    ap.add_argument("--n", type=int, default=6000, help="training questions, the ranker set of eval.train (default 6000)")
    ap.add_argument("--batch", type=int, default=8, help="questions per step (default 8)")
    ap.add_argument("--lr", type=float, default=5e-4, help="peak learning rate (default 5e-4)")
    ap.add_argument("--seed", type=int, default=0, help="initialisation and order (default 0)")
    ap.add_argument("--epochs", type=int, default=1, help="passes over the questions (default 1)")
    ap.add_argument("--negatives", type=int, default=NEGATIVES, help=f"wrong sentences per question (default {NEGATIVES})")
    ap.add_argument("--context-words", type=int, default=CONTEXT_WORDS,
                    help=f"words of the sentence before each candidate read with it (default {CONTEXT_WORDS}; 0: none)")
    ap.add_argument("--features-cache", metavar="FILE",
                    help="the features pickle of `eval.train --features-cache` (reused, or written for it)")
    ap.add_argument("--out", default=str(READER_FILE), help="adapter file to write")
    args = ap.parse_args(argv)
    quiet_libraries()
    from index.embedder import DEFAULT_MODEL, resolve_model, verified_sha256

    _, location, expected = resolve_model(DEFAULT_MODEL)
    assert isinstance(location, Path)
    base = verified_sha256(location, expected)
    bot = squad_bot(args.squad)
    ranker_set, _ = draw(args.squad, args.n)
    asks = cached_asks(args.features_cache, "ranker", lambda: collect(bot, ranker_set))
    data = groups(asks, Model.load().rank, random.Random(args.seed), args.negatives)
    print(f"{len(data)} groups of 1 right + {args.negatives} wrong sentences", file=sys.stderr)
    encoder, head = train(location, data, args.batch, args.lr, args.seed, args.context_words, args.epochs)
    squad_sha = hashlib.sha256(Path(args.squad).read_bytes()).hexdigest()
    save(encoder, head, Path(args.out), {
        "base_sha256": base,
        "context_words": str(args.context_words),
        "source": (f"python -m eval.train_reader {Path(args.squad).name} --n {args.n} --batch {args.batch} "
                   f"--lr {args.lr} --seed {args.seed} --negatives {args.negatives} --context-words {args.context_words} --epochs {args.epochs}: {len(data)} questions outside the --sample 1000 --seed 0 "
                   "report sample"),
        "squad_sha256": squad_sha,
    })
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
