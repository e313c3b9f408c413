"""``qa eval``: read an eval set (or turn a SQuAD file into one), ask the bot, score the answers.

Scoring follows the contract in GUIDE.md. An answerable turn is a hit when the top citation
matches one of its evidence alternatives (a verbatim excerpt, or a span in a document); that
measures the ranking whether or not the bot then chose to abstain, and abstention is scored on
its own by ``abstain_precision`` (abstentions that were right to abstain) and
``abstain_recall`` (unanswerable turns abstained on). An unanswerable turn is a hit when the bot
abstains. ``answer_em``/``answer_f1`` count an abstention as an empty answer, over the
answerable turns that give gold short answers. Multi-turn
conversations feed the bot its own earlier answers, never the gold ones.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import hashlib
import json
import random
import re
import string
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np

from eval import splits
from qa.answerer import CONFIDENCE_FEATURES, FEATURES, Answerer, Model
from qa.bot import Bot, Turn
from index.store import LEGS
from qa.types import Answer

METRIC_NAMES = (
    "answered_accuracy", "declined_answerable", "sentence_accuracy", "sentence_recall@3", "mrr@10", "passage_recall@5", "answer_em", "answer_f1",
    "abstain_precision", "abstain_recall", "calibration_error", "latency_ms_p50", "latency_ms_p95", "n_turns",
)
# Confidence bins of the expected calibration error (equal widths over 0-1).
CALIBRATION_BINS = 10


class EvalSetError(ValueError):
    """The eval set file is malformed (names the line and the problem)."""


@dataclass(frozen=True)
class GoldTurn:
    question: str
    answers: tuple[str, ...]
    evidence: tuple[str | dict[str, Any], ...]
    answerable: bool
    # False: the turn is asked, to rebuild the conversation, but not scored (a feedback
    # record's earlier turns, whose right answers nobody marked).
    scored: bool = True


@dataclass(frozen=True)
class Conversation:
    id: str
    turns: tuple[GoldTurn, ...]
    docs: tuple[str, ...] | None = None
    # A user's mark (qa/feedback.py), and its evidence's sentence as it was marked (None: not kept).
    feedback: bool = False
    evidence_text: str | None = None


@dataclass
class TurnResult:
    id: str
    turn: int
    gold: GoldTurn
    answer: Answer
    hit: bool
    rank: int | None          # 1-based rank of the first matching citation (of 10)
    passage_hit: bool
    why: str

    def to_dict(self) -> dict[str, Any]:
        d = self.answer.to_dict(with_passages=True)
        d["citations"] = d["citations"][:3]
        return {
            "id": self.id, "turn": self.turn, "question": self.gold.question, "answer": d, "hit": self.hit,
            "answerable": self.gold.answerable, "gold_answers": list(self.gold.answers),
            "rank": self.rank, "passage_hit": self.passage_hit, "why": self.why,
        }


# ----- reading sets ------------------------------------------------------------------
CONVERSATION_KEYS = ("id", "turns", "docs", "feedback")
TURN_KEYS = ("question", "answers", "evidence", "answerable", "scored")


def _known_keys(where: str, what: str, obj: dict[str, Any], known: tuple[str, ...]) -> None:
    """:class:`EvalSetError` for a key that is a misspelt known one (ignored, it would change the
    score silently); other extra keys (notes: 'qid', 'question_id', 'answer_date') are allowed."""
    missing = [k for k in known if k not in obj]  # a key near one the object has is not a misspelling of it
    for key in obj:
        if key not in known:
            close = difflib.get_close_matches(str(key).strip().lower(), missing, n=1, cutoff=0.85)
            if close:
                raise EvalSetError(f"{where}: {what}has {key!r}: did you mean {close[0]!r}?")


def load_set(path: str | Path) -> list[Conversation]:
    """Parse a JSONL eval set, validating every field."""
    out, seen = [], set()
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise EvalSetError(f"{path}: not UTF-8 (byte {exc.start}); re-save it as UTF-8") from None
    # Lines end at "\n" only: str.splitlines() also breaks inside strings at U+2028 and its kin.
    for n, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        where = f"{path}:{n}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise EvalSetError(f"{where}: not JSON ({exc.msg})") from None
        if not isinstance(obj, dict) or not isinstance(obj.get("id"), str) or not isinstance(obj.get("turns"), list) or not obj["turns"]:
            raise EvalSetError(f"{where}: need an object with a string 'id' and a non-empty 'turns' list")
        if obj["id"] in seen:
            raise EvalSetError(f"{where}: duplicate conversation id {obj['id']!r}")
        seen.add(obj["id"])
        _known_keys(where, "", obj, CONVERSATION_KEYS)
        docs = obj.get("docs")
        if docs is not None and not (isinstance(docs, list) and docs and all(isinstance(d, str) for d in docs)):
            raise EvalSetError(f"{where}: 'docs' must be a non-empty list of document ids")
        turns = []
        for i, t in enumerate(obj["turns"]):
            if not isinstance(t, dict) or not isinstance(t.get("question"), str) or not t["question"].strip():
                raise EvalSetError(f"{where}: turn {i} needs a non-empty string 'question'")
            _known_keys(where, f"turn {i} ", t, TURN_KEYS)
            scored, answerable = t.get("scored", True), t.get("answerable", True)
            for name, value in (("scored", scored), ("answerable", answerable)):
                if not isinstance(value, bool):
                    raise EvalSetError(f"{where}: turn {i} {name!r} must be true or false, not {value!r}")
            answerable = answerable and scored
            evidence, answers = t.get("evidence", []), t.get("answers", [])
            if not (isinstance(answers, list) and all(isinstance(a, str) for a in answers)):
                raise EvalSetError(f"{where}: turn {i} 'answers' must be a list of strings, not {answers!r}")
            if not isinstance(evidence, list):
                raise EvalSetError(f"{where}: turn {i} 'evidence' must be a list of excerpts and spans, not {evidence!r}")
            for ev in evidence:
                if not (isinstance(ev, str) and ev.strip() or isinstance(ev, dict) and isinstance(ev.get("doc"), str)
                        and all(type(ev.get(k)) is int for k in ("start", "end")) and 0 <= ev["start"] < ev["end"]):
                    raise EvalSetError(f"{where}: turn {i} evidence {ev!r} is neither an excerpt nor a {{doc, start, end}} span "
                                       "(start < end, character offsets)")
            if answerable and not evidence:
                raise EvalSetError(f"{where}: turn {i} is answerable but lists no evidence")
            turns.append(GoldTurn(t["question"], tuple(answers), tuple(evidence), answerable, scored))
        if not any(t.scored for t in turns):
            raise EvalSetError(f"{where}: no turn is scored")
        mark = obj.get("feedback")
        text = mark.get("evidence_text") if isinstance(mark, dict) else None
        out.append(Conversation(obj["id"], tuple(turns), tuple(docs) if docs is not None else None,
                                isinstance(mark, dict), text if isinstance(text, str) and text.strip() else None))
    if not out:
        raise EvalSetError(f"{path}: no conversations")
    return out


_STORY_ID = re.compile(r"\w[\w.-]{0,199}")


def _corpus(path: str | Path, cache: Path, kind: str, documents: Callable[[dict[str, Any]], Iterable[tuple[str, str]]]) -> Path:
    """Write ``documents(data)`` (``(id, text)`` pairs, text verbatim) of a benchmark file once,
    under ``cache/KIND-SHA/docs``."""
    raw = Path(path).read_bytes()
    folder = cache / f"{kind}-{hashlib.sha256(raw).hexdigest()[:12]}" / "docs"
    done = folder / ".complete"
    if done.exists():
        return folder
    for doc, text in documents(json.loads(raw)):
        f = folder / doc
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(text, encoding="utf-8")
    done.write_text("", encoding="utf-8")
    return folder


def squad_corpus(path: str | Path, cache: Path) -> Path:
    """Write one document per SQuAD paragraph (text = the context, verbatim) under ``cache``."""
    return _corpus(path, cache, "squad", lambda data: (
        (squad_doc(ai, pi), para["context"]) for ai, article in enumerate(data["data"])
        for pi, para in enumerate(article["paragraphs"])))


def squad_doc(ai: int, pi: int) -> str:
    return f"a{ai:03d}/p{pi:03d}.txt"


def squad_questions(path: str | Path) -> list[tuple[str, str, list[str], list[dict[str, Any]]]]:
    """All answerable questions in file order: ``(qid, question, answers, spans)``."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    out = []
    for ai, article in enumerate(data["data"]):
        for pi, para in enumerate(article["paragraphs"]):
            for qa in para["qas"]:
                if qa.get("is_impossible") or not qa["answers"]:
                    continue
                answers = [a["text"] for a in qa["answers"]]
                spans = [{"doc": squad_doc(ai, pi), "start": a["answer_start"], "end": a["answer_start"] + len(a["text"])} for a in qa["answers"]]
                out.append((qa["id"], qa["question"], answers, spans))
    return out


def squad_set(path: str | Path, sample: int | None, seed: int, split: str | None = None) -> list[Conversation]:
    """The standard SQuAD set: ``random.Random(seed).sample`` of the answerable questions
    (of one :mod:`eval.splits` split of the file when ``split`` is given)."""
    qs = squad_questions(path)
    if split is not None:
        which = splits.squad_split(path)
        qs = [q for q in qs if which[q[0]] == split]
    if sample is not None and sample < len(qs):
        qs = random.Random(seed).sample(qs, sample)
    return [Conversation(qid, (GoldTurn(q, tuple(a), tuple(sp), True),)) for qid, q, a, sp in qs]


def coqa_doc(story_id: str) -> str:
    # The id becomes a file name: one that could leave the cache ("../x") is refused.
    if not isinstance(story_id, str) or not _STORY_ID.fullmatch(story_id):
        raise ValueError(f"story id {story_id!r} is not a plain name (letters, digits, '_', '-', '.')")
    return f"stories/{story_id}.txt"


def coqa_corpus(path: str | Path, cache: Path) -> Path:
    """Write one document per CoQA story (text = the story, verbatim) under ``cache``."""
    return _corpus(path, cache, "coqa", lambda data: ((coqa_doc(s["id"]), s["story"]) for s in data["data"]))


def coqa_set(path: str | Path, stories: int | None, seed: int, split: str | None = None) -> list[Conversation]:
    """One conversation per CoQA story (``random.Random(seed).sample`` of ``stories`` of them, of
    one :mod:`eval.splits` split when ``split`` is given), limited to its story's document. A
    turn's evidence is its rationale's span; a turn answered "unknown" is unanswerable."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))["data"]
    if split is not None:
        which = splits.coqa_split(path)
        data = [s for s in data if which[s["id"]] == split]
    if stories is not None and stories < len(data):
        data = random.Random(seed).sample(data, stories)
    out = []
    for story in data:
        doc = coqa_doc(story["id"])
        if len(story["questions"]) != len(story["answers"]):  # zip would drop the unpaired turns
            raise ValueError(f"story {story['id']!r} has {len(story['questions'])} questions "
                             f"but {len(story['answers'])} answers")
        turns = []
        for q, a in zip(story["questions"], story["answers"]):
            answer = a["input_text"].strip()
            if answer.lower().rstrip(".") == "unknown" or a.get("span_start", -1) < 0:
                turns.append(GoldTurn(q["input_text"], (), (), False))
                continue
            span = {"doc": doc, "start": a["span_start"], "end": a["span_end"]}
            turns.append(GoldTurn(q["input_text"], (answer,), (span,), True))
        out.append(Conversation(story["id"], tuple(turns), (doc,)))
    return out


# ----- scoring -----------------------------------------------------------------------
def _ws(text: str) -> str:
    return " ".join(text.split())


def matches(evidence: Iterable[str | dict[str, Any]], doc: str, start: int, end: int, text: str) -> bool:
    """Does the span ``doc[start:end]`` (whose text is ``text``) match any evidence alternative?"""
    norm = _ws(text)
    for ev in evidence:
        if isinstance(ev, str):
            e = _ws(ev)
            if e and (e in norm or norm in e):
                return True
        elif ev["doc"] == doc and start < ev["end"] and ev["start"] < end:
            return True
    return False


_PUNCTUATION = frozenset(string.punctuation)


def _squad_normalise(s: str) -> str:
    s = s.lower()
    s = "".join(ch for ch in s if ch not in _PUNCTUATION)
    s = re.sub(r"\b(a|an|the)\b", " ", s)
    return " ".join(s.split())


def contains_answer(text: str, answers: Iterable[str]) -> bool:
    """Does ``text`` contain one of ``answers`` (SQuAD-normalised)?"""
    norm = f" {_squad_normalise(text)} "
    return any(a.strip() and f" {_squad_normalise(a)} " in norm for a in answers)


def answer_scores(prediction: str | None, golds: Iterable[str]) -> tuple[float, float]:
    """SQuAD exact match and token F1 of ``prediction`` against the best gold answer."""
    golds = list(golds)
    if prediction is None or not golds:
        return 0.0, 0.0
    p = _squad_normalise(prediction)
    em = max(float(p == _squad_normalise(g)) for g in golds)
    f1 = 0.0
    for g in golds:
        pt, gt = p.split(), _squad_normalise(g).split()
        common = sum((Counter(pt) & Counter(gt)).values())
        if common:
            prec, rec = common / len(pt), common / len(gt)
            f1 = max(f1, 2 * prec * rec / (prec + rec))
    return em, f1


def score_turn(cid: str, i: int, gold: GoldTurn, answer: Answer, doc_text: Callable[[str], str]) -> TurnResult:
    cits = answer.citations
    ranks = [k for k, c in enumerate(cits, start=1) if matches(gold.evidence, c.doc, c.start, c.end, c.text)]
    rank = ranks[0] if ranks else None
    passage_hit = any(
        matches(gold.evidence, p.doc, p.start, p.end, doc_text(p.doc)[p.start:p.end]) for p in answer.passages[:5]
    )
    if not gold.answerable:
        hit = answer.abstained
        why = "abstained as it should" if hit else f"should have abstained; answered from {cits[0].doc if cits else '?'}"
    else:
        hit = rank == 1
        if hit:
            why = "top citation matches the evidence"
            if answer.abstained:
                why += f", but the bot abstained (confidence {answer.confidence:.2f})"
        elif rank:
            why = f"evidence ranked {rank}, not first"
        elif passage_hit:
            why = "evidence retrieved in a top-5 passage but no sentence of it cited in the top 10"
        else:
            why = "evidence not retrieved in the top 5 passages"
    return TurnResult(cid, i, gold, answer, hit, rank, passage_hit, why)


def percentile(xs: list[float], q: float) -> float | None:
    """The ``q`` quantile of ``xs`` by linear interpolation (None when empty)."""
    if not xs:
        return None
    xs = sorted(xs)
    k = (len(xs) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def calibration_error(results: list[TurnResult]) -> float | None:
    """Expected calibration error of the shown confidence: over :data:`CALIBRATION_BINS` equal
    bins, the turns' share in each bin times the gap between their mean confidence and their
    share right (answerable and the top citation hits)."""
    if not results:
        return None
    conf = np.array([min(max(r.answer.confidence, 0.0), 1.0) for r in results])
    right = np.array([float(r.gold.answerable and r.rank == 1) for r in results])
    bins = np.minimum((conf * CALIBRATION_BINS).astype(int), CALIBRATION_BINS - 1)
    gap = sum(abs(conf[bins == b].mean() - right[bins == b].mean()) * (bins == b).sum()
              for b in range(CALIBRATION_BINS) if (bins == b).any())
    return round(float(gap) / len(results), 4)


def turn_figures(answerable: bool, hit: bool, abstained: bool, answer: str | None, golds: Sequence[str]) -> dict[str, float | None]:
    """One turn's share in ``answered_accuracy``, ``sentence_accuracy``, ``answer_em`` and
    ``answer_f1`` (None where it counts in none): a declined turn is not answered and has no
    short answer; a turn without a gold short answer (a feedback mark that picked only a
    sentence) has no EM or F1."""
    if not answerable:
        return dict.fromkeys(("answered_accuracy", "sentence_accuracy", "answer_em", "answer_f1"))
    em, f1 = answer_scores(None if abstained else answer, golds) if golds else (None, None)
    return {"answered_accuracy": float(hit and not abstained), "sentence_accuracy": float(hit), "answer_em": em, "answer_f1": f1}


def metrics(results: list[TurnResult]) -> dict[str, Any]:
    ans = [r for r in results if r.gold.answerable]
    unans = [r for r in results if not r.gold.answerable]
    abstained = [r for r in results if r.answer.abstained]

    def mean(xs: list[float]) -> float | None:
        return round(sum(xs) / len(xs), 4) if xs else None

    figures = [turn_figures(True, r.hit, r.answer.abstained, r.answer.answer, r.gold.answers) for r in ans]

    def mean_of(name: str) -> float | None:
        return mean([f[name] for f in figures if f[name] is not None])

    lat = [r.answer.timings_ms.get("total", 0.0) for r in results]
    return {
        "answered_accuracy": mean_of("answered_accuracy"),
        "declined_answerable": mean([float(r.answer.abstained) for r in ans]),
        "sentence_accuracy": mean_of("sentence_accuracy"),
        "sentence_recall@3": mean([float(r.rank is not None and r.rank <= 3) for r in ans]),
        "mrr@10": mean([1.0 / r.rank if r.rank else 0.0 for r in ans]),
        "passage_recall@5": mean([float(r.passage_hit) for r in ans]),
        "answer_em": mean_of("answer_em"),
        "answer_f1": mean_of("answer_f1"),
        "abstain_precision": mean([float(not r.gold.answerable) for r in abstained]),
        "abstain_recall": mean([float(r.answer.abstained) for r in unans]),
        "calibration_error": calibration_error(results),
        "latency_ms_p50": round(percentile(lat, 0.5), 2) if lat else None,  # None: no turn in the group
        "latency_ms_p95": round(percentile(lat, 0.95), 2) if lat else None,
        "n_turns": len(results),
    }


# ----- ablations -----------------------------------------------------------------------
def _single(*features: str) -> Callable[[Model], Model]:
    """A scorer that ranks by the sum of ``features``, reads nothing and never abstains."""
    w = np.array([1.0 if f in features else 0.0 for f in FEATURES])
    return lambda shipped: Model(w, np.zeros(len(CONFIDENCE_FEATURES)), 0.0, 0.0)


# name -> (retrieval legs, sentence scorer made from the shipped one); None is the shipped configuration.
Setup = tuple[tuple[str, ...], Callable[[Model], Model]]
ABLATIONS: dict[str, Setup | None] = {
    "bm25 only": (("bm25",), _single("cov")),
    "dense only": (("dense",), _single("cos")),
    "hybrid top sentence": (LEGS, _single("cos_rr", "cov_rr")),
    "ranker, no reader": (LEGS, lambda shipped: dataclasses.replace(shipped, reader=0.0)),
    "full": None,
}


@contextlib.contextmanager
def configured(bot: Bot, setup: Setup | None) -> Iterator[Bot]:
    """Temporarily run ``bot`` with other retrieval legs and sentence scorer."""
    if setup is None:
        yield bot
        return
    legs, answerer = bot.legs, bot.answerer
    bot.legs, bot.answerer = setup[0], Answerer(setup[1](answerer.model))
    try:
        yield bot
    finally:
        bot.legs, bot.answerer = legs, answerer


def plot_risk_coverage(results: list[TurnResult], path: str | Path, threshold: float) -> None:
    """Accuracy of the answered turns against the share answered, sweeping the confidence.

    A turn counts as right when it is answerable and its top citation hits; answering an
    unanswerable turn is wrong. The shipped threshold is marked.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = sorted(((r.answer.confidence, r.gold.answerable and r.rank == 1) for r in results), key=lambda x: -x[0])
    xs, ys, right = [], [], 0
    for i, (_, ok) in enumerate(rows, start=1):
        right += ok
        xs.append(i / len(rows))
        ys.append(right / i)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(xs, ys, label="answerer")
    answered = sum(c >= threshold for c, _ in rows) / max(len(rows), 1)
    ax.axvline(answered, linestyle="--", color="grey", label=f"threshold {threshold:.2f}: answers {answered:.0%}")
    ax.set_xlabel("coverage (share of questions answered)")
    ax.set_ylabel("accuracy of answered questions")
    ax.set_ylim(0, 1.02)
    ax.set_title(f"Risk-coverage over {len(rows)} turns")
    ax.legend(loc="lower left")
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ----- running -----------------------------------------------------------------------
def twin_in(corpus: Iterable[str]) -> Callable[[str], str | None]:
    """``doc -> doc`` when ``corpus`` holds it, else its only id there with the same path and
    another suffix (``a.txt`` -> ``a.pdf``), else None."""
    known = set(corpus)
    by_stem: dict[str, list[str]] = {}
    for d in known:
        by_stem.setdefault(str(Path(d).with_suffix("")), []).append(d)

    def twin(doc: str) -> str | None:
        found = [doc] if doc in known else by_stem.get(str(Path(doc).with_suffix("")), [])
        return found[0] if len(found) == 1 else None

    return twin


def same_documents(wanted: Iterable[str], corpus: Iterable[str]) -> dict[str, str]:
    """Each wanted document id, or the corpus's only id with the same path but another suffix
    (``a.txt`` -> ``a.pdf``), so one set scores the same documents in any format; :class:`EvalSetError`
    naming those that have neither."""
    twin = twin_in(corpus)
    out, missing = {}, []
    for d in wanted:
        found = twin(d)
        if found is None:
            missing.append(d)
        else:
            out[d] = found
    if missing:
        raise EvalSetError(f"the set limits conversations to documents the corpus lacks: {sorted(missing)[:5]}")
    return out


# Why a feedback mark cannot be replayed (qa eval prints how many of each it skipped).
SKIP_REASONS = {
    "gone": "a document they name is no longer in the corpus",
    "edited": "their evidence sentence is no longer in its document as marked",
}


def replayable(conversations: list[Conversation], texts: dict[str, str]) -> tuple[list[Conversation], dict[str, list[str]]]:
    """The conversations to run and, by reason (:data:`SKIP_REASONS`), the ids of feedback marks
    skipped because the documents changed since. A mark's documents are read as
    :func:`same_documents` reads them (``a.txt`` may now be ``a.md``); its evidence span must
    still hold the sentence it marked (never searched for elsewhere). Sets that are not feedback
    are left as they are, and stay strict."""
    out: list[Conversation] = []
    skipped: dict[str, list[str]] = {}
    twin = twin_in(texts)

    def why(span: dict[str, Any], doc: str | None, text: str | None) -> str | None:
        if doc is None:
            return "gone"
        if text is None:  # an older mark: only its document can be checked
            return None if doc == span["doc"] else "edited"
        return None if texts[doc][span["start"]:span["end"]] == text else "edited"

    for conv in conversations:
        if not conv.feedback:
            out.append(conv)
            continue
        docs = None if conv.docs is None else [twin(d) for d in conv.docs]
        reasons = ["gone"] if docs is not None and None in docs else []
        turns = []
        for gold in conv.turns:
            evidence = []
            for ev in gold.evidence:
                if isinstance(ev, dict):
                    doc = twin(ev["doc"])
                    reasons.append(why(ev, doc, conv.evidence_text))
                    ev = {**ev, "doc": doc or ev["doc"]}
                evidence.append(ev)
            turns.append(dataclasses.replace(gold, evidence=tuple(evidence)))
        reason = next((r for r in reasons if r), None)
        if reason:
            skipped.setdefault(reason, []).append(conv.id)
        else:
            out.append(dataclasses.replace(conv, turns=tuple(turns), docs=None if docs is None else tuple(docs)))
    return out, skipped


def unfindable(conversations: list[Conversation], texts: dict[str, str]) -> list[str]:
    """``id#turn`` of each answerable turn none of whose evidence is in the documents (an excerpt
    in no text, whitespace-normalised; a span past its document's end or in none): always a miss."""
    joined = "\n".join(_ws(t) for t in texts.values())

    def found(ev: str | dict[str, Any]) -> bool:
        if isinstance(ev, str):
            return _ws(ev) in joined
        return ev["doc"] in texts and ev["start"] < len(texts[ev["doc"]])

    return [f"{c.id}#{i}" for c in conversations for i, t in enumerate(c.turns)
            if t.answerable and not any(found(ev) for ev in t.evidence)]


def texts_of(bot: Bot) -> dict[str, str]:
    """Every indexed document's text (with Milvus, files are read again: read them once a run)."""
    return {d: bot.document_text(d) for d in bot.index.doc_ids}


def run(bot: Bot, conversations: list[Conversation], progress: Callable[[int], None] | None = None,
        texts: dict[str, str] | None = None) -> list[TurnResult]:
    """Ask every turn, each conversation with its own history of the bot's own answers
    (``texts``: :func:`texts_of` the bot, when the caller has them)."""
    texts = texts if texts is not None else texts_of(bot)
    docs_of = same_documents({d for c in conversations for d in (c.docs or ())}, texts)
    out: list[TurnResult] = []
    for conv in conversations:
        history: list[Turn] = []
        docs = None if conv.docs is None else [docs_of[d] for d in conv.docs]
        for i, gold in enumerate(conv.turns):
            answer = bot.ask(gold.question, history=history, docs=docs, top_k=10)
            if gold.scored:
                out.append(score_turn(conv.id, i, gold, answer, texts.__getitem__))
            history.append(Turn(gold.question, answer))
            if progress:
                progress(1)
    return out


def report(results: list[TurnResult]) -> dict[str, Any]:
    """The JSON report: overall metrics, first turns vs follow-ups, and every turn."""
    return {
        "metrics": metrics(results),
        "metrics_first_turns": metrics([r for r in results if r.turn == 0]),
        "metrics_follow_ups": metrics([r for r in results if r.turn > 0]),
        "turns": [r.to_dict() for r in results],
    }


# ----- comparing two runs ------------------------------------------------------------
# The per-turn figures compared between two reports of the same turns.
PAIRED_METRICS = ("answered_accuracy", "sentence_accuracy", "answer_f1")
COMPARE_DRAWS = 2000


def report_turns(path: str | Path) -> dict[tuple[str, int], dict[str, Any]]:
    """The turns of a JSON report written by ``qa eval --json-out``, by (conversation, turn);
    :class:`EvalSetError` when the file is not such a report."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EvalSetError(f"cannot read the report {str(path)!r}: {exc}") from None
    turns = data.get("turns") if isinstance(data, dict) else None
    needed = ("id", "turn", "hit", "answerable", "answer")
    if not isinstance(turns, list) or not all(
            isinstance(t, dict) and all(k in t for k in needed) and isinstance(t["answer"], dict) and isinstance(t["turn"], int)
            for t in turns):
        raise EvalSetError(f"{str(path)!r} is not a report of `qa eval --json-out` (each turn needs {', '.join(needed)})")
    return turns_by_key(turns)


def turns_by_key(turns: list[dict[str, Any]]) -> dict[tuple[str, int], dict[str, Any]]:
    """Report turns by (conversation, turn), the key two runs' turns are paired on."""
    return {(str(t["id"]), t["turn"]): t for t in turns}


def _turn_figures(turn: dict[str, Any]) -> dict[str, float | None]:
    """One report turn's :func:`turn_figures`."""
    answer = turn["answer"]
    return turn_figures(turn["answerable"], turn["hit"], bool(answer.get("abstained")), answer.get("answer"),
                        turn.get("gold_answers") or [])


def compare_runs(this: dict[tuple[str, int], dict[str, Any]], against: dict[tuple[str, int], dict[str, Any]],
                 seed: int = 0) -> dict[str, Any]:
    """One run's report turns (see :func:`report_turns`) against another's: per metric, both
    figures over the turns both scored, the difference, its 95% interval from a paired bootstrap
    over whole conversations (their turns depend on each other), and how many turns got better
    or worse."""
    pairs = [(_turn_figures(turn), _turn_figures(against[key]), key[0]) for key, turn in this.items() if key in against]
    if not pairs:
        raise EvalSetError("the report compared against holds none of this run's turns (another set or split?)")
    conversations = sorted({cid for *_, cid in pairs})
    where = {c: i for i, c in enumerate(conversations)}
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(conversations), size=(COMPARE_DRAWS, len(conversations)))
    out: dict[str, Any] = {"paired_turns": len(pairs), "conversations": len(conversations), "metrics": {}}
    for metric in PAIRED_METRICS:
        rows = [(new[metric], old[metric], cid) for new, old, cid in pairs if new[metric] is not None and old[metric] is not None]
        if not rows:
            continue
        new = np.array([a for a, _, _ in rows])
        old = np.array([b for _, b, _ in rows])
        conv = np.array([where[c] for *_, c in rows])
        # Per conversation: its turns' summed difference and count, so a draw is two bincounts.
        diff_sum = np.bincount(conv, weights=new - old, minlength=len(conversations))
        count = np.bincount(conv, minlength=len(conversations)).astype(float)
        sampled = diff_sum[draws].sum(axis=1) / np.maximum(count[draws].sum(axis=1), 1.0)
        low, high = np.percentile(sampled, [2.5, 97.5])
        out["metrics"][metric] = {
            "this": round(float(new.mean()), 4), "against": round(float(old.mean()), 4),
            "difference": round(float((new - old).mean()), 4),
            "interval_95": [round(float(low), 4), round(float(high), 4)],
            "turns_better": int(np.sum(new > old)), "turns_worse": int(np.sum(new < old)), "turns": len(rows),
        }
    return out


def format_comparison(comparison: dict[str, Any], name: str) -> str:
    """The comparison as a table: each metric's two figures, difference and its interval."""
    lines = [f"against {name}: {comparison['paired_turns']} turns of {comparison['conversations']} conversations in both runs",
             f"{'metric':<20}{'this':>8}{'against':>9}{'difference':>12}   {'95% interval':<18}{'turns better / worse':>21}"]
    for metric, f in comparison["metrics"].items():
        low, high = f["interval_95"]
        lines.append(f"{metric:<20}{f['this']:>8.3f}{f['against']:>9.3f}{f['difference']:>+12.3f}   "
                     f"[{low:+.3f}, {high:+.3f}]{f['turns_better']:>11} / {f['turns_worse']}")
    return "\n".join(lines)


def format_table(named: dict[str, dict[str, Any]]) -> str:
    """Metrics side by side, one column per named run."""
    names = list(named)
    width = max(len(m) for m in METRIC_NAMES) + 2
    cols = [max(len(n), 8) + 2 for n in names]
    lines = ["metric".ljust(width) + "".join(n.rjust(c) for n, c in zip(names, cols))]
    for m in METRIC_NAMES:
        row = m.ljust(width)
        for n, c in zip(names, cols):
            v = named[n].get(m)
            row += ("-" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v))).rjust(c)
        lines.append(row)
    return "\n".join(lines)
