"""Train the reader (``qa/reader.safetensors``) on every public training file's ``train`` split.

Usage (the shipped recipe: one epoch in two stages, then a short third pass; about 2.5 hours on
2 CPU cores in all)::

    python -m eval.train_reader ../shared/benchmarks/*.json --max-steps 1400 --out stage1.safetensors
    python -m eval.train_reader ../shared/benchmarks/*.json --init stage1.safetensors --skip-steps 1400 --lr 5e-5 --out stage2.safetensors
    python -m eval.train_reader ../shared/benchmarks/*.json --init stage2.safetensors --seed 1 --max-steps 600 --lr 2e-5

The second stage starts from the first's weights and reads the batches of the same seeded plan
that the first never reached, with its own warm-up and decay; the third reads 600 batches of a
differently seeded plan at a lower rate.

Each question becomes a group of sentences cut by the product's own segmenter
(:func:`index.segment.split_sentences`), each read as the reader reads it at run time (the
question, the end of the sentence before, the sentence; see :func:`qa.reader.reader_pair`):

* the sentence holding the gold answer's start (right; its short answer marked by character
  offsets, cut at the sentence's end when the answer runs on);
* ``--negatives`` wrong sentences: one from the same paragraph (a near miss on the same topic)
  and the sentence of another paragraph of the same unit that shares most of the question's
  words (the near miss of a question asked without its own paragraph).

A CoQA turn is read as the bot reads a follow-up: resolved against the gold history with
:func:`qa.conversation.resolve` (its carried words in brackets); its right sentence is the one
holding the rationale's start, and its short answer the free-form answer where the sentence
holds it verbatim (no span otherwise: "yes", "no" and paraphrases train only the sentence
score). An "unknown" turn gives a group of wrong sentences only: a question to decline.

``--hard-negatives N`` trains on other groups instead: ``N`` questions of each file against the
wrong sentences the shipped ranker puts first for them (:func:`hard_groups`; measured in
docs/reader.md); ``--same-document`` takes them from the right sentence's own document only, and
``--mix-usual`` adds as many of the usual groups, drawn at random.

The loss adds, per sentence, the binary cross-entropy of "answers the question" (so the score
means the same across questions, which the confidence model uses), per group with a right
sentence the cross-entropy of that sentence against the group (the order), and per right
sentence with a span the start and end cross-entropies over its tokens (the short answer).
The whole encoder is fine-tuned except the word embeddings, which stay the verified base's and
are not shipped (see :mod:`qa.reader`). The files' sha256 and this recipe go in the weights'
metadata. Afterwards run ``python -m eval.train`` to refit the ranker's reader weight and the
confidence model on the ``calib`` splits.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from eval import splits
from index.segment import split_sentences
from qa.conversation import resolve
from qa.reader import (CONTEXT_WORDS, READER_FILE, SHIPPED_PREFIXES, ReaderError, encode_pairs, load_weights, mean_pool,
                       merged_encoder, pair_tokenizer, reader_pair)

NEGATIVES = 2
_POLAR_ANSWERS = ("yes", "no")
_WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class Item:
    """One sentence to read: the question as read, the sentence before, the sentence, whether it
    answers, and the short answer's character span inside it (None: no span to learn)."""

    question: str
    before: str
    sentence: str
    right: bool
    span: tuple[int, int] | None = None


Group = list[Item]


def _content(text: str) -> set[str]:
    return {w.lower() for w in _WORD.findall(text) if len(w) > 2}


class Paragraphs:
    """The sentences of each paragraph of one unit, with the content words of each sentence."""

    def __init__(self, texts: list[str]) -> None:
        self.texts = texts
        self.spans = [split_sentences(t) for t in texts]
        self.words = [[_content(t[s.start:s.end]) for s in spans] for t, spans in zip(texts, self.spans)]

    def sentence(self, p: int, i: int) -> tuple[str, str]:
        """``(sentence before or "", sentence)`` of sentence ``i`` of paragraph ``p``."""
        t, spans = self.texts[p], self.spans[p]
        before = t[spans[i - 1].start:spans[i - 1].end] if i > 0 else ""
        return before, t[spans[i].start:spans[i].end]

    def at(self, p: int, char: int) -> int | None:
        """The sentence of paragraph ``p`` holding character ``char``."""
        for i, s in enumerate(self.spans[p]):
            if s.start <= char < s.end:
                return i
        return None

    def negatives(self, p: int, own: int | None, question: str, rng: random.Random, n: int) -> list[tuple[int, int]]:
        """``n`` wrong sentences: one of paragraph ``p`` other than ``own`` and the others from
        other paragraphs, the ones sharing most of the question's words first."""
        out = []
        same = [i for i in range(len(self.spans[p])) if i != own]
        if same:
            out.append((p, rng.choice(same)))
        q = _content(question)
        others = [(len(q & w), rng.random(), pp, i) for pp in range(len(self.texts)) if pp != p
                  for i, w in enumerate(self.words[pp])]
        others.sort(reverse=True)
        out += [(pp, i) for _, _, pp, i in others[: n - len(out)]]
        while len(out) < n and same:
            out.append((p, rng.choice(same)))
        return out


def _item(paras: Paragraphs, p: int, i: int, question: str, right: bool, span: tuple[int, int] | None = None) -> Item:
    before, sentence = paras.sentence(p, i)
    return Item(question, before, sentence, right, span)


def squad_groups(path: Path, split: splits.Split, rng: random.Random, negatives: int) -> Iterator[Group]:
    """The groups of a SQuAD-format file's questions in ``split``."""
    which = splits.squad_split(path)
    data = json.loads(path.read_text(encoding="utf-8"))
    for article in data["data"]:
        qas = [(pi, qa) for pi, para in enumerate(article["paragraphs"]) for qa in para["qas"]
               if which.get(qa["id"]) == split and qa["answers"]]
        if not qas:
            continue
        paras = Paragraphs([para["context"] for para in article["paragraphs"]])
        for pi, qa in qas:
            ans = qa["answers"][0]
            start, end = ans["answer_start"], ans["answer_start"] + len(ans["text"])
            i = paras.at(pi, start)
            if i is None:
                continue
            s = paras.spans[pi][i]
            span = (start - s.start, min(end, s.end) - s.start)
            group = [_item(paras, pi, i, qa["question"], True, span)]
            group += [_item(paras, pp, j, qa["question"], False) for pp, j in paras.negatives(pi, i, qa["question"], rng, negatives)]
            yield group


def coqa_turns(story: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any], bool]]:
    """Each turn of a CoQA story as the bot reads it: ``(question resolved against the gold
    history, gold answer record, answered "unknown")``."""
    history: list[tuple[str, str, str | None]] = []
    for q, a in zip(story["questions"], story["answers"]):
        asked = resolve(q["input_text"], history).searched_for
        answer = a["input_text"].strip()
        unknown = answer.lower().rstrip(".") == "unknown" or a.get("span_start", -1) < 0
        history.append((q["input_text"], asked, None if unknown else answer))
        yield asked, a, unknown


def rationale_sentence(paras: Paragraphs, answer: dict[str, Any]) -> int | None:
    """The sentence of the story (paragraph 0) holding the start of a CoQA answer's rationale."""
    return paras.at(0, answer["span_start"] + len(answer["span_text"]) - len(answer["span_text"].lstrip()))


def coqa_span(sentence: str, answer: str) -> tuple[int, int] | None:
    """A CoQA free-form answer's span in its rationale's sentence, where the sentence holds it
    verbatim ("yes", "no" and paraphrases have none: they train only the sentence score)."""
    at = sentence.lower().find(answer.lower()) if answer else -1
    return (at, at + len(answer)) if at >= 0 and answer.lower() not in _POLAR_ANSWERS else None


def coqa_groups(path: Path, split: splits.Split, rng: random.Random, negatives: int) -> Iterator[Group]:
    """The groups of a CoQA-format file's turns in ``split`` (see the module docstring)."""
    which = splits.coqa_split(path)
    data = json.loads(path.read_text(encoding="utf-8"))
    stories = [s for s in data["data"] if which[s["id"]] == split]
    # Another story stands in for "the rest of the documents" of a question to decline.
    for n, story in enumerate(stories):
        other = stories[(n + 1) % len(stories)]["story"] if len(stories) > 1 else ""
        paras = Paragraphs([story["story"], other] if other else [story["story"]])
        for asked, a, unknown in coqa_turns(story):
            if unknown:
                picks = paras.negatives(0, None, asked, rng, negatives + 1)
                yield [_item(paras, pp, j, asked, False) for pp, j in picks]
                continue
            i = rationale_sentence(paras, a)
            if i is None:
                continue
            s = paras.spans[0][i]
            span = coqa_span(story["story"][s.start:s.end], a["input_text"].strip())
            group = [_item(paras, 0, i, asked, True, span)]
            group += [_item(paras, pp, j, asked, False) for pp, j in paras.negatives(0, i, asked, rng, negatives)]
            yield group


def load_groups(files: list[Path], split: splits.Split, seed: int, negatives: int) -> tuple[list[Group], dict[str, int]]:
    """All groups of ``split`` from ``files``, and how many each file gave."""
    rng = random.Random(seed)
    out: list[Group] = []
    counts: dict[str, int] = {}
    for path in files:
        data_kind = splits.is_coqa(json.loads(path.read_text(encoding="utf-8")))
        made = list((coqa_groups if data_kind else squad_groups)(path, split, rng, negatives))
        counts[path.name] = len(made)
        out += made
    return out, counts


def hard_groups(path: Path, bot: Any, split: splits.Split, rng: random.Random, negatives: int, sample: int,
                same_document: bool = False) -> Iterator[Group]:
    """Up to ``sample`` questions (or CoQA turns) of ``split``, each grouped with the wrong
    sentences the product itself ranks highest for it: the bot's search over the file's corpus
    (as ``qa eval`` builds it; only the split's own units), then the shipped ranker, the wrong
    ones among its best candidates in its order. These are the sentences the reader has to tell
    apart at run time; the right sentence and its span are those of :func:`squad_groups` and
    :func:`coqa_groups`, located in the index by character offset. ``bot``: a :class:`qa.bot.Bot`
    over the file's corpus (:func:`eval.train.corpus_bot`). With ``same_document`` a question with
    a right sentence takes its wrong ones from that sentence's own document only (its paragraph,
    its story): a similar sentence in another document may be a second report of the same fact."""
    from eval import harness
    from eval.train import make_ask, split_questions
    from qa.answerer import Answerer

    coqa = splits.is_coqa(json.loads(path.read_text(encoding="utf-8")))
    index, answerer = bot.index, Answerer()
    asks = split_questions(path, split)
    units = {sp[0]["doc"].split("/")[0] for *_, sp, _ in asks if sp}
    # SQuAD's splits are by question (its report sample), the other files' by unit.
    own_unit = (lambda doc: True) if splits.FILES.get(path.name) == "squad" else (lambda doc: doc.split("/")[0] in units)
    for _, asked, answers, spans, limit in rng.sample(asks, min(sample, len(asks))):
        qvec = bot.embedder.embed([asked])[0]
        hits = [h for h in index.search(asked, qvec, k=30, docs=limit) if own_unit(h.doc)][:10]
        ask = make_ask(index, answerer, asked, qvec, hits, answers, spans, False)
        if ask is None:
            continue
        gold = None
        if spans:
            d = index.doc_pos.get(spans[0]["doc"])
            if d is None:
                continue
            # The sentence holding the answer's first character (a CoQA rationale may open with spaces).
            piece = index.entries[d].text[spans[0]["start"]:spans[0]["end"]]
            gold = index.sentence_holding(spans[0]["doc"], spans[0]["start"] + len(piece) - len(piece.lstrip()))
            if gold is None:
                continue
        # A sentence elsewhere that holds the answer too may well answer: it is no negative.
        named = [a for a in answers if a.lower() not in _POLAR_ANSWERS]
        wrong = [i for i in Answerer.to_read(ask.feats @ answerer.model.rank, len(ask.labels))
                 if not ask.labels[i] and not harness.contains_answer(ask.texts[i], named)]
        if same_document and gold is not None:
            wrong = [i for i in wrong if index.sentences.doc[ask.rows[i]] == index.sentences.doc[gold]]
        want = negatives if gold is not None else negatives + 1
        if len(wrong) < want:
            continue
        items = [Item(asked, ask.before[i], ask.texts[i], False) for i in wrong[:want]]
        if gold is not None:
            sentence, start = index.sentence_text(gold), int(index.sentences.start[gold])
            if coqa:
                span = coqa_span(sentence, answers[0])
            else:
                span = (spans[0]["start"] - start, min(spans[0]["end"] - start, len(sentence)))
                span = span if 0 <= span[0] < span[1] else None
            items.insert(0, Item(asked, index.sentence_before(gold), sentence, True, span))
        yield items


def token_span(encoding: Any, span: tuple[int, int]) -> tuple[int, int] | None:
    """The first and last token of the sentence segment covering character ``span`` of it."""
    first = last = None
    for t, (seq, (a, b)) in enumerate(zip(encoding.sequence_ids, encoding.offsets)):
        if seq != 1 or b <= a:
            continue
        if first is None and b > span[0]:
            first = t
        if a < span[1]:
            last = t
    if first is None or last is None or last < first:
        return None
    return first, last


def build(location: Path, tensors: dict[str, np.ndarray] | None = None):  # type: ignore[no-untyped-def]
    """The base encoder with every weight but the word embeddings trainable, and the two heads;
    with ``tensors`` (a reader file's, from :func:`qa.reader.load_weights`) they start from its
    weights, as a second stage does."""
    import torch
    from torch import nn
    from transformers import AutoModel

    encoder = merged_encoder(location, tensors) if tensors else AutoModel.from_pretrained(str(location))
    encoder.embeddings.word_embeddings.weight.requires_grad_(False)
    hidden = encoder.config.hidden_size
    rel, span_head = nn.Linear(hidden, 1), nn.Linear(hidden, 2)
    if tensors:
        with torch.no_grad():
            for name, head in (("rel", rel), ("span", span_head)):
                head.weight.copy_(torch.from_numpy(tensors[f"{name}.weight"].astype(np.float32)))
                head.bias.copy_(torch.from_numpy(tensors[f"{name}.bias"].astype(np.float32)))
    return encoder, rel, span_head


def batches(groups: list[Group], batch: int, rng: random.Random) -> list[list[Group]]:
    """Groups in batches of similar length (less padding), the batches in random order."""
    order = sorted(groups, key=lambda g: len(g[0].question) + max(len(i.sentence) + len(i.before) for i in g) + rng.random())
    out = [order[i:i + batch] for i in range(0, len(order), batch)]
    rng.shuffle(out)
    return out


def train(location: Path, data: list[Group], args: argparse.Namespace, log: Any,
          init: dict[str, np.ndarray] | None = None) -> tuple[Any, Any, Any]:
    import torch
    import torch.nn.functional as F
    from tqdm import tqdm

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    encoder, rel, span_head = (m.to(device) for m in build(location, init))
    tokenizer = pair_tokenizer(location)
    params = [p for p in list(encoder.parameters()) + list(rel.parameters()) + list(span_head.parameters()) if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.01)
    rng = random.Random(args.seed)
    plan = [b for _ in range(args.epochs) for b in batches(data, args.batch, rng)]
    if args.max_steps:
        plan = plan[: args.max_steps]
    # A second stage goes on where the first stopped: the same seeded batches, minus those seen.
    plan = plan[args.skip_steps:]
    steps = len(plan)
    warm = max(1, int(0.06 * steps))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min((s + 1) / warm, max(0.0, (steps - s) / max(1, steps - warm))))
    encoder.train()
    smooth: dict[str, float] = {}
    started = time.time()
    for step, chunk in enumerate(tqdm(plan, desc="reader", file=sys.stderr, mininterval=10)):
        items = [it for g in chunk for it in g]
        pairs = [reader_pair(it.question, it.sentence, it.before, args.context_words) for it in items]
        encodings = tokenizer.encode_batch(pairs)
        ids, types, mask = (torch.as_tensor(x, device=device) for x in encode_pairs(encodings))
        hidden = encoder(input_ids=ids, token_type_ids=types, attention_mask=mask).last_hidden_state
        score = rel(mean_pool(hidden, mask.float())).squeeze(-1)
        labels = torch.tensor([float(it.right) for it in items], device=device)
        loss_rel = F.binary_cross_entropy_with_logits(score, labels)
        # Order: the right sentence against its group (groups are the same size within a batch).
        sizes = [len(g) for g in chunk]
        grouped = [j for j, g in enumerate(chunk) if g[0].right]
        loss_rank = torch.tensor(0.0, device=device)
        if grouped and len(set(sizes)) == 1:
            s = score.view(len(chunk), sizes[0])[grouped]
            loss_rank = F.cross_entropy(s, torch.zeros(len(grouped), dtype=torch.long, device=device))
        # Span: start/end over the sentence's tokens of each right sentence with a short answer.
        logits = span_head(hidden)
        outside = (types == 0) | (mask == 0)
        starts, ends, rows = [], [], []
        for j, (it, enc) in enumerate(zip(items, encodings)):
            if it.right and it.span:
                ts = token_span(enc, it.span)
                if ts:
                    rows.append(j)
                    starts.append(ts[0])
                    ends.append(ts[1])
        loss_span = torch.tensor(0.0, device=device)
        if rows:
            sl = logits[rows, :, 0].masked_fill(outside[rows], -1e4)
            el = logits[rows, :, 1].masked_fill(outside[rows], -1e4)
            loss_span = (F.cross_entropy(sl, torch.tensor(starts, device=device))
                         + F.cross_entropy(el, torch.tensor(ends, device=device))) / 2
        loss = loss_rel + loss_rank + loss_span
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        for k, v in (("rel", loss_rel), ("rank", loss_rank), ("span", loss_span)):
            smooth[k] = v.item() if k not in smooth else 0.98 * smooth[k] + 0.02 * v.item()
        if step % 50 == 0:
            log(f"step {step}/{steps} {time.time() - started:.0f}s " + " ".join(f"{k}={v:.3f}" for k, v in smooth.items()))
    return encoder, rel, span_head


def save(encoder: Any, rel: Any, span_head: Any, path: Path, meta: dict[str, str]) -> None:
    """The fine-tuned weights (float16) but the word embeddings, and the heads, with ``meta``."""
    from safetensors.numpy import save_file

    tensors = {f"encoder.{k}": v.detach().cpu().numpy().astype(np.float16)
               for k, v in encoder.state_dict().items() if k.startswith(SHIPPED_PREFIXES)}
    for name, head in (("rel", rel), ("span", span_head)):
        tensors[f"{name}.weight"] = head.weight.detach().cpu().numpy().astype(np.float32)
        tensors[f"{name}.bias"] = head.bias.detach().cpu().numpy().astype(np.float32)
    save_file(tensors, str(path), metadata=meta)


def main(argv: list[str] | None = None) -> int:
    from index.embedder import file_sha256, verified_base
    from index.persist import can_write

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("files", nargs="+", type=Path, help="SQuAD- or CoQA-format files (../shared/benchmarks/*.json)")
    ap.add_argument("--epochs", type=int, default=1, help="passes over the training groups (default 1)")
    ap.add_argument("--batch", type=int, default=16, help="questions per step (default 16)")
    ap.add_argument("--lr", type=float, default=1e-4, help="peak learning rate (default 1e-4)")
    ap.add_argument("--negatives", type=int, default=NEGATIVES, help=f"wrong sentences per question (default {NEGATIVES})")
    ap.add_argument("--context-words", type=int, default=CONTEXT_WORDS,
                    help=f"words of the sentence before each candidate read with it (default {CONTEXT_WORDS})")
    ap.add_argument("--seed", type=int, default=0, help="initialisation, negatives and order (default 0)")
    ap.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    ap.add_argument("--max-steps", type=int, default=0, help="stop after this many steps (0: all; for trials)")
    ap.add_argument("--init", type=Path, default=None, metavar="READER",
                    help="start from this reader file (a second stage; its recipe is kept in the metadata)")
    ap.add_argument("--skip-steps", type=int, default=0, metavar="N",
                    help="leave out the plan's first N batches (those a first stage of --max-steps N trained on)")
    ap.add_argument("--hard-negatives", type=int, default=0, metavar="N",
                    help="train on N questions of each file (Quoref's left out) against the wrong sentences the "
                         "shipped ranker puts first for them (see hard_groups), not on the usual groups")
    ap.add_argument("--mix-usual", action="store_true",
                    help="with --hard-negatives: add as many of the usual groups (same --negatives), drawn at random")
    ap.add_argument("--same-document", action="store_true",
                    help="with --hard-negatives: take a question's wrong sentences from its right sentence's own "
                         "document only (not from other documents, which may report the same fact)")
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                    help="where to train: cpu (the shipped weights' recipe, which it reproduces) or cuda (a GPU: "
                         "faster, the same recipe to float rounding; the metadata says so)")
    ap.add_argument("--out", type=Path, default=READER_FILE, help="weights file to write")
    args = ap.parse_args(argv)
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            ap.error("--device cuda: torch sees no CUDA GPU on this machine (train with --device cpu)")
    for flag, given in (("--mix-usual", args.mix_usual), ("--same-document", args.same_document)):
        if given and not args.hard_negatives:
            ap.error(f"{flag} changes the --hard-negatives groups; give --hard-negatives N")
    try:
        files = splits.training_files(args.files)
    except ValueError as exc:
        ap.error(str(exc))
    try:  # said now, not after hours of training
        args.out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        ap.error(f"--out {args.out}: its folder cannot be made ({exc.strerror})")
    if not can_write(args.out):
        ap.error(f"--out {args.out}: cannot be written (a folder, or a path through a file or a read-only folder)")

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    location, base = verified_base()
    init, first = None, {}
    if args.init:  # checked before training, not after
        try:
            init, first, _ = load_weights(args.init, base, None)
        except ReaderError as exc:
            ap.error(str(exc))
    if args.hard_negatives:
        from eval import train as train_calib

        rng = random.Random(args.seed)
        data, counts = [], {}
        for f in files:
            if splits.FILES[f.name] not in splits.NOISY_SENTENCE_LABELS:
                made = list(hard_groups(f, train_calib.corpus_bot(f), "train", rng, args.negatives, args.hard_negatives,
                                        args.same_document))
                counts[f.name] = len(made)
                data += made
        if args.mix_usual:
            usual, _ = load_groups(files, "train", args.seed, args.negatives)
            # Only full groups: a batch of mixed sizes trains no order (see train).
            usual = [g for g in usual if len(g) == args.negatives + 1]
            counts["usual"] = min(len(data), len(usual))
            data += rng.sample(usual, counts["usual"])
    else:
        data, counts = load_groups(files, "train", args.seed, args.negatives)
    log(f"{len(data)} training groups: {counts}")
    encoder, rel, span_head = train(location, data, args, log, init)
    recipe = " ".join(["python -m eval.train_reader", *(f.name for f in files)] + [
        f"--epochs {args.epochs} --batch {args.batch} --lr {args.lr} --negatives {args.negatives}",
        f"--context-words {args.context_words} --seed {args.seed}" + (f" --max-steps {args.max_steps}" if args.max_steps else "")
        + (f" --hard-negatives {args.hard_negatives}" if args.hard_negatives else "")
        + (" --mix-usual" if args.mix_usual else "") + (" --same-document" if args.same_document else "")
        + (" --device cuda" if args.device == "cuda" else ""),
    ] + ([f"--init PREVIOUS --skip-steps {args.skip_steps}"] if args.init else []))
    if args.init:  # a chain of stages, each starting from the weights the one before it wrote
        recipe = f"{first.get('recipe', '?')}; then {recipe}"
    meta = {
        "base_sha256": base, "context_words": str(args.context_words), "recipe": recipe,
        "data_sha256": json.dumps({f.name: file_sha256(f) for f in files}),
        "groups": json.dumps(counts),
    }
    save(encoder, rel, span_head, args.out, meta)
    log(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
