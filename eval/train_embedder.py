"""Fine-tune the search's MiniLM to place a question near the sentence that answers it.

Usage (the recipe measured in docs/reader.md; 539 steps, about 3.5 s each on 2 CPU cores)::

    python -m eval.train_embedder ../shared/benchmarks/squad-dev-v1.1.json \\
        ../shared/benchmarks/squadshifts-new-wiki-v1.0.json ../shared/benchmarks/squadshifts-amazon-reviews-v1.0.json \\
        --out minilm-qa
    qa eval --squad ../shared/benchmarks/squadshifts-amazon-reviews-v1.0.json --split dev --model minilm-qa

The pairs are the reader's training groups (:func:`eval.train_reader.load_groups`, ``train``
splits only, ``--negatives 2``): each question with its right sentence, and as a hard negative
the sentence of another paragraph of the same unit (article, product) sharing most of the
question's words: the passage a lexical search confuses with the right one. The loss is the
cross-entropy of each question against every right and hard-negative sentence of its batch
(cosines scaled by :data:`SCALE`), the usual in-batch contrastive objective for bi-encoders.

Every tensor but the word embeddings is fine-tuned, from the verified packaged MiniLM. The
result is a sentence-transformers folder (``--model`` / ``QA_MODEL`` take it, on either
backend) with ``training.json`` in it: the base's sha256, the data files' sha256 and the
recipe. The product's ranker, re-scoring and confidence were fit on the packaged model's
vectors; docs/reader.md measures such a folder with them and refit.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from pathlib import Path

from eval import splits
from eval.train_reader import load_groups
from index.embedder import file_sha256, verified_base

# Cosine to logit: a softmax over cosines in [-1, 1] needs a temperature to be sharp.
SCALE = 20.0
# Sentences and questions are cut to this many tokens while training (the product reads 256).
TRAIN_TOKENS = 96


def pairs_of(files: list[Path], seed: int) -> list[tuple[str, str, str]]:
    """``(question, right sentence, hard negative)`` of every train-split question with both."""
    groups, _ = load_groups(files, "train", seed, 2)
    return [(g[0].question, g[0].sentence, g[-1].sentence) for g in groups if g[0].right and len(g) >= 3]


def train(location: Path, pairs: list[tuple[str, str, str]], args: argparse.Namespace, log) -> object:  # type: ignore[no-untyped-def]
    """The sentence-transformers model at ``location`` after training on ``pairs``."""
    import torch
    import torch.nn.functional as F
    from sentence_transformers import SentenceTransformer
    from tqdm import tqdm

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    model = SentenceTransformer(str(location), device="cpu")
    read_tokens = model.max_seq_length
    model.max_seq_length = TRAIN_TOKENS
    model[0].auto_model.embeddings.word_embeddings.weight.requires_grad_(False)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.01)
    rng = random.Random(args.seed)
    order: list[int] = []
    for _ in range(math.ceil(args.epochs)):
        shuffled = list(range(len(pairs)))
        rng.shuffle(shuffled)
        order += shuffled
    planned = int(len(pairs) * args.epochs) // args.batch
    steps = min(planned, args.max_steps) if args.max_steps else planned  # the schedule stays the full run's
    warm = max(1, planned // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min((s + 1) / warm, max(0.0, (planned - s) / (planned - warm))))

    def embed(texts: list[str]) -> torch.Tensor:
        return F.normalize(model(model.tokenize(texts))["sentence_embedding"], dim=-1)

    model.train()
    smooth, started = 0.0, time.time()
    for step in tqdm(range(steps), desc="embedder", file=sys.stderr, mininterval=10):
        batch = [pairs[i] for i in order[step * args.batch:(step + 1) * args.batch]]
        questions = embed([b[0] for b in batch])
        sentences = embed([b[1] for b in batch] + [b[2] for b in batch])
        loss = F.cross_entropy(SCALE * questions @ sentences.T, torch.arange(len(batch)))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        smooth = loss.item() if step == 0 else 0.98 * smooth + 0.02 * loss.item()
        if step % 20 == 0:
            log(f"step {step}/{steps} loss {smooth:.4f} {time.time() - started:.0f}s")
    model.eval()
    model.max_seq_length = read_tokens  # the folder reads as the packaged model does
    return model


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("files", nargs="+", type=Path, help="SQuAD-format training files (../shared/benchmarks/)")
    ap.add_argument("--epochs", type=float, default=0.75, help="passes over the pairs, a fraction allowed (default 0.75)")
    ap.add_argument("--batch", type=int, default=32, help="questions per step (default 32)")
    ap.add_argument("--lr", type=float, default=3e-5, help="peak learning rate (default 3e-5)")
    ap.add_argument("--seed", type=int, default=0, help="negatives, order and dropout (default 0)")
    ap.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    ap.add_argument("--max-steps", type=int, default=0, help="stop after this many steps of the planned run (0: all; for trials)")
    ap.add_argument("--out", type=Path, required=True, help="model folder to write (sentence-transformers format)")
    args = ap.parse_args(argv)
    try:
        files = splits.training_files(args.files)
    except ValueError as exc:
        ap.error(str(exc))
    for f in files:
        if splits.FILES[f.name] in splits.NOISY_SENTENCE_LABELS:
            ap.error(f"{f}: its answers sit at their first occurrence, not in the answering sentence; leave it out")
        if splits.is_coqa(json.loads(f.read_text(encoding="utf-8"))):
            ap.error(f"{f}: a CoQA file; its conversations are limited to one story, with nothing to search")

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    if args.out.exists() and any(args.out.iterdir()):
        ap.error(f"{args.out} exists and is not empty; name a new folder")
    location, base = verified_base()
    pairs = pairs_of(files, args.seed)
    log(f"{len(pairs)} training pairs")
    model = train(location, pairs, args, log)
    recipe = " ".join(["python -m eval.train_embedder", *(f.name for f in files),
                       f"--epochs {args.epochs} --batch {args.batch} --lr {args.lr} --seed {args.seed}"]
                      + ([f"--max-steps {args.max_steps}"] if args.max_steps else []))
    model.save(str(args.out))
    meta = {"base_sha256": base, "recipe": recipe, "pairs": len(pairs),
            "data_sha256": {f.name: file_sha256(f) for f in files}}
    (args.out / "training.json").write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
    log(f"wrote {args.out} (use it with --model {args.out})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
