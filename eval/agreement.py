"""Score corroboration: do the other documents' quotes agree or disagree as they should?

``python -m eval.agreement score [SET.jsonl --docs DIR]``: each item of the set names two
documents, a question both answer, each document's answer, and whether they agree
(``eval/agreement.jsonl`` over ``eval/agreement/``, written for the purpose: pairs of short
news reports that agree or disagree on a date, a number or a name). An item is right when the
bot answers from one document with that document's answer, lists the other document with its
answer, and the verdict is the expected one.

``python -m eval.agreement latency FILE.json --sample 1000 --seed 0``: each question asked with
corroboration on and off in turn (alternating which goes first), in one process, so the p50
ratio is measured under the same load.

``python -m eval.agreement calibrate FILE.json --split calib``: over a SQuAD-format file's
questions, every other-document sentence the corroboration step reads and judges, with its
confidence and whether it holds a gold answer: how often a corroboration at each threshold
really answers the question (what :attr:`qa.answerer.Model.corroboration_threshold` is set from).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from index.config import cache_dir
from qa.agreement import DISAGREEING_KINDS, SAME_MATTER, normalise
from qa.answerer import Answerer, Model
from qa.bot import Bot
from qa.console import gate_floor, progress_bar, quiet_libraries

from . import harness

HERE = Path(__file__).parent
DEFAULT_SET = HERE / "agreement.jsonl"
DEFAULT_DOCS = HERE / "agreement"


@dataclass(frozen=True)
class Item:
    id: str
    docs: tuple[str, str]
    question: str
    answers: dict[str, str]  # document id -> its answer
    agrees: bool


def load_items(path: str | Path) -> list[Item]:
    """The agreement set: one JSON object per line (see the module docstring)."""
    items = []
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").split("\n"), start=1):  # "\n" only: U+2028 may sit in a JSON string
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            docs = tuple(obj["docs"])
            if len(docs) != 2 or set(obj["answers"]) != set(docs) or not isinstance(obj["agrees"], bool):
                raise ValueError("needs two docs, an answer for each, and a boolean 'agrees'")
            items.append(Item(obj["id"], docs, obj["question"], dict(obj["answers"]), obj["agrees"]))  # type: ignore[arg-type]
        except KeyError as exc:
            raise ValueError(f"{path}:{n}: no {exc} field") from None
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{path}:{n}: {exc}") from None
    return items


def judge(bot: Bot, item: Item) -> dict[str, Any]:
    """Ask ``item``'s question of its two documents; say whether the verdict is right and why."""
    answer = bot.ask(item.question, docs=list(item.docs))
    out: dict[str, Any] = {"id": item.id, "question": item.question, "expected": item.agrees, "right": False}
    if answer.abstained or not answer.citations:
        return out | {"why": "declined"}
    top = answer.citations[0]
    other = next(d for d in item.docs if d != top.doc) if top.doc in item.docs else None
    out |= {"answer": answer.answer, "doc": top.doc}
    if other is None or not harness.contains_answer(answer.answer or "", [item.answers[top.doc]]):
        return out | {"why": f"answered {answer.answer!r}, not {item.answers.get(top.doc)!r}"}
    theirs = next((c for c in answer.corroboration if c.doc == other), None)
    if theirs is None:
        return out | {"why": f"{other} not listed"}
    out |= {"other": theirs.answer, "agrees": theirs.agrees}
    if not harness.contains_answer(theirs.answer, [item.answers[other]]):
        return out | {"why": f"{other} quoted for {theirs.answer!r}, not {item.answers[other]!r}"}
    if theirs.agrees != item.agrees:
        return out | {"why": "wrong verdict"}
    return out | {"right": True, "why": "right"}


def score(set_path: str | Path = DEFAULT_SET, docs: str | Path = DEFAULT_DOCS, bot: Bot | None = None) -> dict[str, Any]:
    """``{"verdict_accuracy", "n", "items"}`` for an agreement set over ``docs``."""
    items = load_items(set_path)
    if bot is None:
        bot = Bot(docs, index_dir=tempfile.mkdtemp(prefix="qa-agreement-"))
    results = [judge(bot, it) for it in items]
    return {"verdict_accuracy": sum(r["right"] for r in results) / len(results), "n": len(results), "items": results}


def squad_bot(path: str, split: str | None, sample: int | None, seed: int, **options: Any) -> tuple[Bot, list]:
    """A bot over a SQuAD-format file's corpus (cached, as ``qa eval --squad`` builds it) and
    the questions of ``split`` (``sample`` of them, drawn with ``seed``)."""
    corpus = harness.squad_corpus(path, cache_dir())
    return Bot(corpus, index_dir=corpus.parent / "index", **options), harness.squad_set(path, sample, seed, split)


def calibrate(path: str, split: str | None, sample: int | None, seed: int) -> tuple[int, list[dict[str, Any]]]:
    """The questions answered, and every corroboration the bot would make at threshold 0 over
    a SQuAD-format set: its question, confidence, verdict, similarity to the answer's sentence
    and whether it holds a gold answer."""
    model = dataclasses.replace(Model.load(), corroboration_threshold=0.0)
    bot, conversations = squad_bot(path, split, sample, seed, answerer=Answerer(model=model), same_matter=None)
    index = bot.index

    def kind(doc: str, short: str) -> str:
        entry = index.entries[index.doc_pos[doc]]
        return normalise(short, entry.text, entry.meta.get("date")).kind

    rows: list[dict[str, Any]] = []
    answered = 0
    with progress_bar(True, "corroborating", "question") as progress:
        for n, conv in enumerate(conversations, start=1):
            gold = conv.turns[0]
            answer = bot.ask(gold.question)
            progress(n, len(conversations))
            if answer.abstained:
                continue
            answered += 1
            for c in answer.corroboration:
                top = answer.citations[0]
                similarity = float(index.sentences.vecs[index.sentence_at(top.doc, top.start)]
                                   @ index.sentences.vecs[index.sentence_at(c.doc, c.start)])
                kinds = {kind(top.doc, answer.answer or ""), kind(c.doc, c.answer)}
                rows.append({"question": n, "confidence": c.confidence, "agrees": c.agrees, "similarity": similarity,
                             "kinds": "+".join(sorted(kinds)),
                             "holds_answer": harness.contains_answer(c.text, gold.answers)})
    return answered, rows


def latency(path: str, split: str | None, sample: int | None, seed: int) -> dict[str, float]:
    """p50 and p95 answer latency (ms) with corroboration on and off over a SQuAD-format set."""
    import time

    import numpy as np

    bot, conversations = squad_bot(path, split, sample, seed)
    bot.answerer.warm_up()
    times: dict[bool, list[float]] = {True: [], False: []}
    with progress_bar(True, "timing", "question") as progress:
        for n, conv in enumerate(conversations, start=1):
            for on in ((True, False) if n % 2 else (False, True)):
                bot.corroborate = on
                t0 = time.perf_counter()
                bot.ask(conv.turns[0].question)
                times[on].append((time.perf_counter() - t0) * 1000)
            progress(n, len(conversations))
    out = {f"{k}_{name}": float(np.percentile(times[on], q))
           for on, name in ((True, "on"), (False, "off")) for k, q in (("p50", 50), ("p95", 95))}
    out["p50_ratio"] = out["p50_on"] / out["p50_off"]
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m eval.agreement", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    sp = sub.add_parser("score", help="verdict accuracy on an agreement set")
    sp.add_argument("set", nargs="?", default=str(DEFAULT_SET))
    sp.add_argument("--docs", default=str(DEFAULT_DOCS))
    sp.add_argument("--min-accuracy", type=gate_floor, default=None, metavar="X", help="exit 1 below X")
    sp = sub.add_parser("calibrate", help="how often corroborations at each confidence hold the answer")
    sp.add_argument("file", metavar="FILE.json")
    sp.add_argument("--split", choices=["train", "calib", "dev"], default="calib")
    sp.add_argument("--sample", type=int, default=None)
    sp.add_argument("--seed", type=int, default=0)
    sp = sub.add_parser("latency", help="answer latency with corroboration on and off, same run")
    sp.add_argument("file", metavar="FILE.json")
    sp.add_argument("--split", choices=["train", "calib", "dev"], default=None)
    sp.add_argument("--sample", type=int, default=1000)
    sp.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    given = args.set if args.command == "score" else args.file
    if not Path(given).is_file():
        p.error(f"{given}: no such file")
    if args.command == "score":
        try:  # a malformed line is said before the documents are indexed
            load_items(args.set)
        except (ValueError, UnicodeDecodeError) as exc:
            p.error(str(exc))
    quiet_libraries()
    if args.command == "latency":
        figures = latency(args.file, args.split, args.sample, args.seed)
        print(" ".join(f"{k} {v:.2f}" for k, v in figures.items()))
        return 0
    if args.command == "score":
        rep = score(args.set, args.docs)
        for r in rep["items"]:
            print(f"{'RIGHT' if r['right'] else 'WRONG'} {r['id']}: {r['why']}")
        print(f"verdict_accuracy {rep['verdict_accuracy']:.3f} over {rep['n']} items")
        return 1 if args.min_accuracy is not None and rep["verdict_accuracy"] < args.min_accuracy else 0
    answered, rows = calibrate(args.file, args.split, args.sample, args.seed)
    print(f"{answered} questions answered; {len(rows)} corroborations read")
    print("threshold  agreeing  holds_answer  disagreeing  holds_answer  questions_shown_a_disagreement")
    for t in (0.0, 0.05, 0.1, 0.2, 0.33, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9):
        cells = []
        for verdict in (True, False):
            kept = [r for r in rows if r["confidence"] >= t and r["agrees"] == verdict]
            share = sum(r["holds_answer"] for r in kept) / len(kept) if kept else float("nan")
            cells.append(f"{len(kept):8d}  {share:12.3f}")
        shown = len({r["question"] for r in rows if r["confidence"] >= t and not r["agrees"]}) / max(answered, 1)
        print(f"{t:9.2f}  {'  '.join(cells)}  {shown:.3f}")
    threshold = Model.load().corroboration_threshold
    print(f"\nat confidence >= {threshold}: questions shown a disagreement, any kinds, by the similarity it needs")
    for s in (0.0, 0.5, 0.6, 0.65, 0.7, 0.75, 0.8):
        shown = {r["question"] for r in rows if r["confidence"] >= threshold and not r["agrees"] and r["similarity"] >= s}
        print(f"  similarity >= {s:.2f}: {len(shown) / max(answered, 1):.3f}")
    shipped = {r["question"] for r in rows if r["confidence"] >= threshold and not r["agrees"]
               and r["kinds"] in DISAGREEING_KINDS and r["similarity"] >= SAME_MATTER}
    print(f"  the shipped rule (both a date, a number or a name; similarity >= {SAME_MATTER}): "
          f"{len(shipped) / max(answered, 1):.3f}")
    print("\nthe same, by the kinds of the two short answers (date, number, name, text), similarity >= 0 / 0.5 / 0.6 / 0.7")
    for kinds in sorted({r["kinds"] for r in rows}):
        cells = []
        for s in (0.0, 0.5, 0.6, 0.7):
            shown = {r["question"] for r in rows if r["kinds"] == kinds and r["confidence"] >= threshold
                     and not r["agrees"] and r["similarity"] >= s}
            cells.append(f"{len(shown) / max(answered, 1):.3f}")
        print(f"  {kinds:12s} " + "  ".join(cells))
    return 0


if __name__ == "__main__":
    sys.exit(main())
