import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import DATA, ROOT
from eval import harness
from qa.bot import Bot
from qa.ingest import iter_files

ENV = {**os.environ, "HF_HUB_OFFLINE": "1"}


def test_answer_scores_use_squad_normalisation():
    assert harness.answer_scores("The January 8.", ["january 8"]) == (1.0, 1.0)
    em, f1 = harness.answer_scores("on January 8", ["January 8", "8"])
    assert em == 0.0 and f1 == pytest.approx(0.8)
    assert harness.answer_scores(None, ["x"]) == (0.0, 0.0)


def test_evidence_matching_excerpt_and_span():
    ev = ["the other on  January 8", {"doc": "a.txt", "start": 100, "end": 110}]
    assert harness.matches(ev, "b.txt", 0, 50, "and the other on January 8, two days after")
    assert harness.matches(ev, "b.txt", 0, 5, "other on")  # excerpt contains the citation
    assert harness.matches(ev, "a.txt", 105, 200, "whatever")
    assert not harness.matches(ev, "a.txt", 110, 200, "whatever")  # touching is not overlapping
    assert not harness.matches(ev, "c.txt", 100, 110, "unrelated")


@pytest.mark.parametrize(
    "line, message",
    [
        ("not json", "not JSON"),
        ('{"id": "x"}', "turns"),
        ('{"id": "x", "turns": [{"question": "q", "answerable": true}]}', "no evidence"),
        ('{"id": "x", "turns": [{"question": "q", "evidence": [3]}]}', "neither an excerpt"),
        ('{"id": "x", "docs": "a.txt", "turns": [{"question": "q", "answerable": false}]}', "docs"),
        ('{"id": "x", "turns": [{"question": "q", "scored": false}]}', "no turn is scored"),
        ('{"id": "x", "turns": [{"question": "q", "scored": "no"}, {"question": "r", "answerable": false}]}', "'scored'"),
        # Mistyped fields were scored wrongly (a string's characters taken as excerpts) or crashed mid-run.
        ('{"id": "x", "turns": [{"question": "q", "answers": "January 8", "evidence": ["x"]}]}', "'answers' must be a list of strings"),
        ('{"id": "x", "turns": [{"question": "q", "evidence": "the other on January 8"}]}', "'evidence' must be a list"),
        ('{"id": "x", "turns": [{"question": "q", "evidence": 5}]}', "'evidence' must be a list"),
        ('{"id": "x", "turns": [{"question": "q", "evidence": ["x"], "answerable": "false"}]}', "'answerable' must be true or false"),
        ('{"id": "x", "turns": [{"question": "q", "evidence": [{"doc": "a.txt", "start": "1", "end": 9}]}]}', "neither an excerpt"),
        ('{"id": "x", "turns": [{"question": "q", "evidence": [""]}]}', "neither an excerpt"),
        ('{"id": "x", "turns": [{"question": "  ", "answerable": false}]}', "non-empty string 'question'"),
        ('{"id": "x", "docs": [], "turns": [{"question": "q", "answerable": false}]}', "non-empty list of document ids"),
    ],
)
def test_bad_sets_name_the_line(tmp_path: Path, line: str, message: str):
    f = tmp_path / "set.jsonl"
    f.write_text('{"id": "ok", "turns": [{"question": "q", "answerable": false}]}\n' + line + "\n")
    with pytest.raises(harness.EvalSetError, match=message) as exc:
        harness.load_set(f)
    assert ":2:" in str(exc.value)


def test_seeds_set_shape():
    convs = harness.load_set(ROOT / "eval" / "seeds.jsonl")
    turns = [t for c in convs for t in c.turns]
    assert len(turns) >= 60
    assert sum(1 for c in convs if len(c.turns) > 1) >= 8
    assert sum(1 for t in turns if not t.answerable) >= 10
    texts = [p.read_text(encoding="utf-8") for p in (ROOT / "documents").glob("*.txt")]
    for t in turns:
        for ev in t.evidence:
            assert any(ev in text for text in texts), ev


def test_stories_set_points_into_its_own_corpus():
    convs = harness.load_set(ROOT / "eval" / "stories.jsonl")
    stories = ROOT / "eval" / "stories"
    assert all(c.docs and len(c.turns) >= 14 for c in convs)
    for c in convs:
        text = (stories / c.docs[0]).read_text(encoding="utf-8")
        for t in c.turns:
            assert all(ev in text for ev in t.evidence), t.question


@pytest.mark.parametrize("name, folder", [("manuals", "manuals"), ("licenses", "licenses"), ("licenses-b", "licenses")])
def test_non_news_set_points_into_its_own_corpus(name: str, folder: str):
    """The team's non-news sets (a manual, terms of service and a forum thread; two sets over seven
    software licenses): every excerpt is in one of the set's documents (in the conversation's own,
    where it is limited to some), and near misses make up a fair share of the turns."""
    convs = harness.load_set(ROOT / "eval" / f"{name}.jsonl")
    # Listed as ingest lists a folder, so an index left there by `qa eval --docs eval/<folder>` is skipped.
    texts = {p.name: " ".join(p.read_text(encoding="utf-8").split()) for p, _, _ in iter_files(ROOT / "eval" / folder)}
    turns = [(c, t) for c in convs for t in c.turns]
    assert len(turns) >= 50 and sum(not t.answerable for _, t in turns) >= 12
    for c, t in turns:
        own = [texts[d] for d in c.docs] if c.docs else list(texts.values())
        assert all(any(" ".join(ev.split()) in text for text in own) for ev in t.evidence), t.question


def test_squad_conversion_and_sampling(tmp_path: Path):
    docs = harness.squad_corpus(DATA / "tiny-squad.json", tmp_path)
    assert sorted(p.relative_to(docs).as_posix() for p in docs.rglob("*.txt")) == ["a000/p000.txt", "a000/p001.txt", "a001/p000.txt"]
    qs = harness.squad_questions(DATA / "tiny-squad.json")
    for _, _, answers, spans in qs:
        for a, sp in zip(answers, spans):
            assert (docs / sp["doc"]).read_text(encoding="utf-8")[sp["start"]:sp["end"]] == a
    sample = harness.squad_set(DATA / "tiny-squad.json", 2, 0)
    import random

    assert [c.id for c in sample] == [q[0] for q in random.Random(0).sample(qs, 2)]


def test_run_scores_a_conversation_with_own_history(corpus: Path, tmp_path: Path, embedder):
    bot = Bot(corpus, index_dir=tmp_path / "ix", embedder=embedder)
    f = tmp_path / "set.jsonl"
    f.write_text(json.dumps({"id": "lh", "turns": [
        {"question": "Who built the harbour lighthouse?", "answers": ["Margaret Hale"], "evidence": ["engineer Margaret Hale"]},
        {"question": "When was its lamp converted to electricity?", "answers": ["1952"], "evidence": [{"doc": "lighthouse.md", "start": 0, "end": 10_000}]},
        {"question": "What is the capital of France?", "answers": [], "evidence": [], "answerable": False},
    ]}) + "\n")
    results = harness.run(bot, harness.load_set(f))
    rep = harness.report(results)
    assert [t["turn"] for t in rep["turns"]] == [0, 1, 2]
    assert rep["turns"][0]["hit"] and rep["turns"][0]["answer"]["answer"] == "Margaret Hale"
    assert rep["metrics"]["n_turns"] == 3 and rep["metrics_follow_ups"]["n_turns"] == 2
    assert set(harness.METRIC_NAMES) <= set(rep["metrics"])
    assert rep["turns"][0]["answer"]["passages"]  # retrieved passages kept for re-scoring


def test_unscored_turns_are_asked_but_not_scored(corpus: Path, tmp_path: Path, embedder):
    bot = Bot(corpus, index_dir=tmp_path / "ix", embedder=embedder)
    f = tmp_path / "set.jsonl"
    f.write_text(json.dumps({"id": "fb", "turns": [
        {"question": "Who built the harbour lighthouse?", "scored": False},
        # A follow-up: answered from the lighthouse only because the first turn was asked.
        {"question": "When was its lamp converted to electricity?", "evidence": [{"doc": "lighthouse.md", "start": 0, "end": 10_000}]},
    ]}) + "\n")
    (result,) = harness.run(bot, harness.load_set(f))
    assert result.turn == 1 and result.answer.searched_for != result.gold.question
    metrics = harness.metrics([result])
    assert metrics["n_turns"] == 1 and metrics["answer_f1"] is None  # no gold short answer to score


def test_cli_eval_squad_gate_and_report(tmp_path: Path):
    out = tmp_path / "report.json"
    cmd = [sys.executable, "-m", "qa.cli", "eval", "--squad", str(DATA / "tiny-squad.json"), "--json-out", str(out),
           "--min-sentence-accuracy", "1.01", "--curve", str(tmp_path / "curve.png")]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env={**ENV, "XDG_CACHE_HOME": str(tmp_path / "cache")})
    assert r.returncode == 1, r.stderr  # nothing reaches 1.01: the gate must trip
    assert "below --min-sentence-accuracy" in r.stderr
    rep = json.loads(out.read_text())
    assert rep["metrics"]["n_turns"] == 4 and len(rep["turns"]) == 4
    assert (tmp_path / "curve.png").read_bytes()[:4] == b"\x89PNG"
    assert "sentence_accuracy" in r.stdout
    # The same turns again, against that report: nothing differs.
    again = tmp_path / "again.json"
    cmd = [sys.executable, "-m", "qa.cli", "eval", "--squad", str(DATA / "tiny-squad.json"), "--against", str(out),
           "--json-out", str(again)]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env={**ENV, "XDG_CACHE_HOME": str(tmp_path / "cache")})
    assert r.returncode == 0, r.stderr
    assert f"against {out}: 4 turns of 4 conversations in both runs" in r.stdout
    compared = json.loads(again.read_text())["against"]
    assert compared["report"] == str(out) and compared["paired_turns"] == 4
    assert compared["metrics"]["answered_accuracy"]["difference"] == 0.0
    assert compared["metrics"]["answered_accuracy"]["interval_95"] == [0.0, 0.0]
    # A file that is not a report is refused before anything is run.
    r = subprocess.run(cmd[:-4] + ["--against", str(DATA / "tiny-squad.json")], capture_output=True, text=True, cwd=ROOT,
                       env={**ENV, "XDG_CACHE_HOME": str(tmp_path / "cache")})
    assert r.returncode == 2 and "is not a report of `qa eval --json-out`" in r.stderr
    assert "eval full" not in r.stderr
    # Two saved reports compared without running anything; --report alone is refused.
    saved = [sys.executable, "-m", "qa.cli", "eval", "--report", str(again)]
    r = subprocess.run(saved + ["--against", str(out), "--json-out", str(tmp_path / "cmp.json")], capture_output=True,
                       text=True, cwd=ROOT, env=ENV)
    assert r.returncode == 0 and f"against {out}: 4 turns" in r.stdout and "eval full" not in r.stderr
    assert json.loads((tmp_path / "cmp.json").read_text())["metrics"]["sentence_accuracy"]["difference"] == 0.0
    r = subprocess.run(saved, capture_output=True, text=True, cwd=ROOT, env=ENV)
    assert r.returncode == 2 and "give the other one with --against" in r.stderr


def _report_turn(cid: str, hit: bool, abstained: bool = False, answer: str = "1952", answerable: bool = True) -> dict:
    return {"id": cid, "turn": 0, "hit": hit, "answerable": answerable, "gold_answers": ["1952"] if answerable else [],
            "answer": {"abstained": abstained, "answer": None if abstained else answer}}


def test_compare_runs_pairs_turns_and_bounds_the_difference(tmp_path: Path):
    """``qa eval --against``: the difference over the turns both runs scored, a declined turn
    counted as not answered (its citation still counts for sentence accuracy), an interval that
    holds the difference, and turns better and worse counted."""
    old = {(f"c{i}", 0): _report_turn(f"c{i}", hit=i < 10, answer="1952" if i < 10 else "in the spring") for i in range(20)}
    new = dict(old)
    new[("c10", 0)] = _report_turn("c10", hit=True)  # now right
    new[("c11", 0)] = _report_turn("c11", hit=True, abstained=True)  # right sentence, declined
    new[("c0", 0)] = _report_turn("c0", hit=True, answer="1950")  # right sentence, wrong short answer
    new[("extra", 0)] = _report_turn("extra", hit=True)  # not in the other run: not compared
    out = harness.compare_runs(new, old)
    assert out["paired_turns"] == 20 and out["conversations"] == 20
    answered, sentence, f1 = (out["metrics"][m] for m in ("answered_accuracy", "sentence_accuracy", "answer_f1"))
    assert (answered["this"], answered["against"], answered["difference"]) == (0.55, 0.5, 0.05)
    assert (answered["turns_better"], answered["turns_worse"]) == (1, 0)
    assert sentence["difference"] == 0.1 and sentence["turns_better"] == 2
    assert (f1["turns_better"], f1["turns_worse"]) == (1, 1)
    low, high = answered["interval_95"]
    assert 0.0 <= low <= 0.05 <= high
    assert harness.compare_runs(old, old)["metrics"]["answer_f1"]["interval_95"] == [0.0, 0.0]
    with pytest.raises(harness.EvalSetError, match="none of this run's turns"):
        harness.compare_runs({("x", 0): _report_turn("x", hit=True)}, old)
    bad = tmp_path / "bad.json"
    for turns in ([{"id": "c0", "turn": 0}], [{**old[("c0", 0)], "turn": "0"}], [{**old[("c0", 0)], "answer": "1952"}]):
        bad.write_text(json.dumps({"turns": turns}))
        with pytest.raises(harness.EvalSetError, match="not a report"):
            harness.report_turns(bad)
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"metrics": {}, "turns": list(old.values())}))
    assert harness.report_turns(good) == old


def test_small_corpus_asks_leave_the_answer_out_of_the_other_half(tmp_path: Path, embedder):
    """eval.train's small corpora: each article split into its even and odd paragraphs, each
    question asked over its own half (answerable) and the other half (its paragraph and the
    words only it holds absent from that corpus), skipping a half an article does not have."""
    from eval.train import collect_small

    docs = harness.squad_corpus(DATA / "tiny-squad.json", tmp_path)
    bot = Bot(docs, index_dir=tmp_path / "index", embedder=embedder)
    qs = harness.squad_questions(DATA / "tiny-squad.json")
    asks = collect_small(bot, [(*q, None) for q in qs])
    by_question = {}
    for ask in asks:
        by_question.setdefault(ask.question, []).append(ask)
    # a000 has two paragraphs (two asks per question), a001 one (no other half to decline in).
    assert {q: [a.near_miss for a in v] for q, v in by_question.items()} == {
        "Who built the harbour lighthouse?": [False, True],
        "How tall is the lighthouse?": [False, True],
        "When was the lamp converted to electricity?": [False, True],
        "How many hives are on the library roof?": [False],
    }
    paragraph = {q: (docs / spans[0]["doc"]).read_text(encoding="utf-8") for _, q, _, spans in qs}
    for question, (found, *declined) in by_question.items():
        assert found.labels.any(), question  # its own half holds the answer's sentence
        assert all(t in paragraph[question] for t, right in zip(found.texts, found.labels) if right)
        for ask in declined:
            assert ask.declined and not ask.labels.any()
            assert ask.texts and not any(t in paragraph[question] for t in ask.texts)
    other = docs.parent / "halves" / "a000-1" / "docs"
    assert sorted(p.relative_to(other).as_posix() for p in other.rglob("*.txt")) == ["a000/p001.txt"]


def test_cached_asks_collects_each_part_once(tmp_path: Path):
    from eval.train import cached_asks

    cache, calls = tmp_path / "asks.pkl", []

    def make(part):
        def collect():
            calls.append(part)
            return [part]
        return collect

    assert cached_asks(str(cache), "ranker", make("ranker")) == ["ranker"]
    assert cached_asks(str(cache), "small", make("small")) == ["small"]
    assert cached_asks(str(cache), "ranker", make("ranker")) == ["ranker"]  # read back, not collected
    assert cached_asks(None, "small", make("small")) == ["small"]  # no cache: always collected
    assert calls == ["ranker", "small", "small"]


def test_threshold_is_the_bootstrap_median_of_the_best():
    """eval.train's threshold: on asks where a right answer is held at 0.6-0.9, a wrong one at
    0.2-0.5 and a question to decline at 0.1-0.4, it falls between the top of the questions to
    decline and the bottom of the right answers; the same asks give the same threshold (seeded
    draws), and the fit says how far the draws' choices spread."""
    from eval.train import THRESHOLDS, best_threshold, threshold_objective

    rng = np.random.default_rng(3)
    right, wrong, to_decline = rng.uniform(0.6, 0.9, 300), rng.uniform(0.2, 0.5, 100), rng.uniform(0.1, 0.4, 100)
    p = np.concatenate([right, wrong, to_decline])
    y = np.concatenate([np.ones(300), np.zeros(200)]).astype(int)
    declined = np.concatenate([np.zeros(400, bool), np.ones(100, bool)])
    t, fit = best_threshold(p, y, declined, 0.2)
    assert 0.4 <= t <= 0.6 and t in THRESHOLDS
    assert best_threshold(p, y, declined, 0.2) == (t, fit)
    assert fit["answerable_right"] == 0.75 and fit["declined_abstained"] == 1.0  # every right answered, all declined
    assert fit["objective"] == fit["objective_best"] == round(float(threshold_objective(p, y, declined, 0.2).max()), 4)
    low, high = fit["bootstrap_thresholds_5_95"]
    assert low <= t <= high
    # Nothing to decline: answering everything is best.
    assert best_threshold(p, y, np.zeros(500, bool), 0.0)[0] == THRESHOLDS[0]


def test_a_refit_keeps_the_later_fits_that_still_hold():
    """eval.train keeps the shipped file's yes/no verdict, and its settled turns' rescaling only
    while the confidence model it was fit on is unchanged."""
    from eval.train import still_valid
    from qa.answerer import WEIGHTS_FILE

    shipped = json.loads(WEIGHTS_FILE.read_text(encoding="utf-8"))
    assert still_valid(shipped, shipped) == {"polar": shipped["polar"], "settled": shipped["settled"]}
    refit = {**shipped, "bias": shipped["bias"] + 0.5}
    assert still_valid(shipped, refit) == {"polar": shipped["polar"]}
    assert still_valid({}, refit) == {}


def test_splits_are_fixed_disjoint_and_sized():
    from eval import splits

    units = [f"article {i}" for i in range(50)]
    which = splits.unit_splits(units)
    assert which == splits.unit_splits(list(reversed(units)))  # by the sorted list, not the order given
    assert sorted(which.values()).count("dev") == 5 and sorted(which.values()).count("calib") == 5
    assert splits.unit_splits(units, seed=1) != which
    # A small file still gets a unit of each held-out kind; every question of a unit shares its split.
    by_question = splits.squad_split(DATA / "tiny-squad.json")
    assert set(by_question.values()) <= {"dev", "calib", "train"} and len(by_question) == 4
    assert len({by_question[q] for q in ("q1", "q2", "q3")}) == 1


def test_coqa_conversion_limits_each_story_and_marks_unknown_turns(tmp_path: Path):
    docs = harness.coqa_corpus(DATA / "tiny-coqa.json", tmp_path)
    convs = harness.coqa_set(DATA / "tiny-coqa.json", None, 0)
    assert [c.id for c in convs] == ["lighthouse", "beehives"]
    lighthouse = convs[0]
    assert lighthouse.docs == ("stories/lighthouse.txt",)
    assert [t.answerable for t in lighthouse.turns] == [True, True, True, False]
    text = (docs / lighthouse.docs[0]).read_text(encoding="utf-8")
    span = lighthouse.turns[0].evidence[0]
    assert text[span["start"]:span["end"]] == "in 1871 by the engineer Margaret Hale"
    assert lighthouse.turns[1].answers == ("1871",)
    import random

    sampled = harness.coqa_set(DATA / "tiny-coqa.json", 1, 3)
    assert [c.id for c in sampled] == [random.Random(3).sample(["lighthouse", "beehives"], 1)[0]]


def test_answered_accuracy_counts_declined_turns_as_misses_and_calibration_error_is_measured():
    from qa.types import Answer, Citation

    def result(answerable: bool, hit_top: bool, abstained: bool, confidence: float) -> harness.TurnResult:
        cite = Citation(doc="a.txt", title="", text="x", start=0, end=1, score=1.0)
        answer = Answer(question="q", searched_for="q", abstained=abstained, answer=None if abstained else "x",
                        confidence=confidence, citations=(cite,), timings_ms={"total": 1.0})
        gold = harness.GoldTurn("q", ("x",), ("x",) if answerable else (), answerable)
        hit = (hit_top if answerable else abstained)
        return harness.TurnResult("c", 0, gold, answer, hit, 1 if (answerable and hit_top) else None, True, "")

    results = [result(True, True, False, 0.9), result(True, True, True, 0.1), result(True, False, False, 0.6),
               result(False, False, True, 0.05)]
    m = harness.metrics(results)
    assert m["sentence_accuracy"] == pytest.approx(2 / 3, abs=1e-4)
    assert m["answered_accuracy"] == pytest.approx(1 / 3, abs=1e-4)  # the right but declined turn is a miss
    assert m["declined_answerable"] == pytest.approx(1 / 3, abs=1e-4)
    # bins: 0.9 right (gap 0.1), 0.1 right (gap 0.9), 0.6 wrong (0.6), 0.05 "wrong" (0.05).
    assert m["calibration_error"] == pytest.approx((0.1 + 0.9 + 0.6 + 0.05) / 4, abs=1e-4)


def test_cli_eval_coqa_and_answered_gate(tmp_path: Path):
    out = tmp_path / "report.json"
    cmd = [sys.executable, "-m", "qa.cli", "eval", "--coqa", str(DATA / "tiny-coqa.json"), "--json-out", str(out),
           "--min-answered-accuracy", "1.01", "--details", "none"]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env={**ENV, "XDG_CACHE_HOME": str(tmp_path / "cache")})
    assert r.returncode == 1, r.stderr
    assert "below --min-answered-accuracy" in r.stderr
    rep = json.loads(out.read_text())
    assert rep["metrics"]["n_turns"] == 6 and rep["metrics_follow_ups"]["n_turns"] == 4
    assert all(t["answer"]["citations"][0]["doc"].startswith("stories/lighthouse") for t in rep["turns"][:4]
               if t["answer"]["citations"])
    assert "answered_accuracy" in r.stdout


def test_settled_rescaling_learns_from_turns_after_an_answered_one(tmp_path: Path, embedder):
    """eval.train_settled fits on the bot's own run: the turns after an answered turn of the same
    conversation (declined ones before it do not count), labelled by the top citation."""
    import dataclasses

    import numpy as np

    from eval.train_settled import fit, settled_turns
    from qa.bot import Bot

    bot = Bot(harness.coqa_corpus(DATA / "tiny-coqa.json", tmp_path), index_dir=tmp_path / "index", embedder=embedder)
    bot.sync()
    conversations = harness.coqa_set(DATA / "tiny-coqa.json", None, 0)
    results = harness.run(bot, conversations)
    docs = {c.id: c.docs for c in conversations}
    first_answered = {}
    for k, r in enumerate(results):
        if not r.answer.abstained:
            first_answered.setdefault(r.id, k)
    want = [r for k, r in enumerate(results) if r.id in first_answered and k > first_answered[r.id]]
    assert 3 <= len(want) < len(results)
    assert settled_turns(results, docs) == want
    # A conversation whose first turn was declined settles only after its first answer.
    declined = [dataclasses.replace(results[0], answer=dataclasses.replace(results[0].answer, abstained=True))] + results[1:]
    assert settled_turns(declined, docs)[0] is results[2]
    # Right turns shown low and wrong ones shown high: the fit turns the order round.
    right = [dataclasses.replace(r, rank=1, gold=dataclasses.replace(r.gold, answerable=True),
                                 answer=dataclasses.replace(r.answer, confidence=c)) for r, c in zip(want, (0.1, 0.2))]
    wrong = [dataclasses.replace(r, rank=None, answer=dataclasses.replace(r.answer, confidence=c)) for r, c in zip(want, (0.8, 0.9))]
    scale, _ = fit(right * 5 + wrong * 5)
    assert scale < 0 and np.isfinite(scale)


def test_polar_training_turns_and_gate(tmp_path: Path):
    """The yes/no verdict learns from polar turns answered yes/no, each with its rationale's
    sentence; its gate is the lowest at which the given verdicts are right often enough."""
    import numpy as np

    from eval import splits
    from eval.train_polar import gate_for, polar_turns

    story = "The mill opened in 1901. It never closed on Sundays. The miller sold bread."
    data = {"data": [{"id": sid, "story": story,
                      "questions": [{"input_text": q} for q in ("Did the mill open in 1901?", "Did it close on Sundays?",
                                                                "Who sold bread?", "Was it red or white?")],
                      "answers": [{"input_text": a, "span_start": story.index(r), "span_end": story.index(r) + len(r),
                                   "span_text": r} for a, r in (("yes", "opened in 1901"), ("No", "never closed"),
                                                                ("the miller", "The miller"), ("red", "The mill"))]}
                     for sid in ("a", "b")]}
    path = tmp_path / "coqa.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    split = splits.coqa_split(path)["a"]
    turns = polar_turns(path, split)
    assert [(q.split(" (")[0], b, s, yes) for q, b, s, yes in turns] == [
        ("Did the mill open in 1901?", "", "The mill opened in 1901.", True),
        ("Did it close on Sundays?", "The mill opened in 1901.", "It never closed on Sundays.", False),
    ]
    p = np.array([0.95, 0.9, 0.1, 0.6, 0.55])
    y = np.array([1, 1, 0, 0, 1])
    assert gate_for(p, y, 0.8) == (0.5, 0.8, 1.0)
    assert gate_for(p, y, 1.0) == (0.61, 1.0, 0.6)


def test_sets_with_a_bom_crlf_or_a_line_separator_in_a_string_load(tmp_path: Path):
    f = tmp_path / "set.jsonl"
    lines = ['{"id": "a", "turns": [{"question": "Where\u2028is it?", "answerable": false}]}',
             '{"id": "b", "turns": [{"question": "q", "evidence": ["x\u2029y"]}]}']
    f.write_bytes(("\ufeff" + "\r\n".join(lines) + "\r\n").encode("utf-8"))
    convs = harness.load_set(f)
    assert [c.id for c in convs] == ["a", "b"] and convs[0].turns[0].question == "Where\u2028is it?"
    f.write_bytes(b"\xff\xfe{}\n")
    with pytest.raises(harness.EvalSetError, match="not UTF-8"):
        harness.load_set(f)


def test_cli_eval_refuses_wrong_files_and_options_before_running(tmp_path: Path):
    coqa = tmp_path / "coqa.json"
    coqa.write_text(json.dumps({"data": [{"id": "s", "story": "Ann left.", "questions": [], "answers": []}]}))
    env = {**ENV, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    for args, message in ((["--squad", str(coqa)], "is not a SQuAD-format file"),
                          (["--coqa", str(coqa), "--sample", "3"], "--sample goes with --squad"),
                          (["--coqa", str(coqa), "--json-out", str(coqa / "report.json")], "--json-out"),
                          (["--coqa", str(coqa), "--curve", str(tmp_path)], "--curve")):
        r = subprocess.run([sys.executable, "-m", "qa.cli", "eval", *args], capture_output=True, text=True, cwd=ROOT, env=env)
        assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr, r.stderr
    r = subprocess.run([sys.executable, "-m", "qa.cli", "bench", "--source", str(coqa), "--json-out", str(coqa / "b.json")],
                       capture_output=True, text=True, cwd=ROOT, env=env)
    assert r.returncode == 2 and "--json-out" in r.stderr and "cannot be written" in r.stderr, r.stderr


def test_a_coqa_story_id_cannot_write_outside_the_cache(tmp_path: Path):
    f = tmp_path / "coqa.json"
    f.write_text(json.dumps({"data": [{"id": "../../escaped", "story": "Ann left.", "questions": [], "answers": []}]}))
    with pytest.raises(ValueError, match="not a plain name"):
        harness.coqa_corpus(f, tmp_path / "cache")
    assert not list(tmp_path.rglob("escaped*"))


def test_only_feedback_marks_are_skipped_when_documents_change(tmp_path):
    """A hand-written set stays strict; a mark is replayed only where its span still holds the
    sentence it marked (in ``a.md`` for ``a.txt``), never re-found elsewhere: else it is skipped."""
    texts = {"a.md": "It stands 40 metres tall.", "b.txt": "Other.", "e.pdf": "Intro.\nIt stands\n40 metres tall."}
    span = {"doc": "a.txt", "start": 0, "end": 25}
    kept_text = {"evidence_text": "It stands 40 metres tall."}
    lines = [{"id": "hand", "docs": ["gone.txt"], "turns": [{"question": "q", "evidence": [span]}]},
             {"id": "mark", "docs": ["a.txt"], "turns": [{"question": "q", "evidence": [span]}], "feedback": kept_text},
             {"id": "old-mark", "turns": [{"question": "q", "evidence": [{**span, "doc": "b.txt"}]}], "feedback": {}},
             {"id": "old-moved", "turns": [{"question": "q", "evidence": [span]}], "feedback": {}},
             {"id": "moved", "turns": [{"question": "q", "evidence": [{**span, "doc": "e.txt"}]}], "feedback": kept_text},
             {"id": "edited", "turns": [{"question": "q", "evidence": [span]}],
              "feedback": {"evidence_text": "It stands 50 metres tall."}},
             {"id": "gone", "turns": [{"question": "q", "evidence": [{**span, "doc": "c.txt"}]}],
              "feedback": {"evidence_text": "x"}}]
    f = tmp_path / "set.jsonl"
    f.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    kept, skipped = harness.replayable(harness.load_set(f), texts)
    assert [c.id for c in kept] == ["hand", "mark", "old-mark"]
    assert skipped == {"edited": ["old-moved", "moved", "edited"], "gone": ["gone"]}
    assert kept[0].docs == ("gone.txt",)
    assert kept[1].docs == ("a.md",) and kept[1].turns[0].evidence == ({"doc": "a.md", "start": 0, "end": 25},)
    with pytest.raises(harness.EvalSetError, match="corpus lacks"):
        harness.same_documents(["gone.txt"], texts)


def test_saved_report_comparison_refuses_the_options_of_a_run(tmp_path: Path):
    """``--report`` runs nothing: a gate (or --curve, --compare) given with it is refused, not ignored."""
    report = tmp_path / "r.json"
    report.write_text(json.dumps({"metrics": {}, "turns": [_report_turn("c0", hit=False)]}))
    saved = [sys.executable, "-m", "qa.cli", "eval", "--report", str(report), "--against", str(report)]
    for extra in (["--min-answered-accuracy", "0.9"], ["--min-sentence-accuracy", "0.9"], ["--compare"],
                  ["--curve", str(tmp_path / "c.png")], ["--sample", "5"], ["--split", "dev"]):
        r = subprocess.run(saved + extra, capture_output=True, text=True, cwd=ROOT, env=ENV)
        assert r.returncode == 2 and extra[0] in r.stderr and "Traceback" not in r.stderr, (extra, r.returncode, r.stderr)
    assert not (tmp_path / "c.png").exists()


def test_a_group_without_turns_has_no_latency():
    """The follow-ups of a set of single questions showed a latency of 0.000 ms."""
    m = harness.metrics([])
    assert m["n_turns"] == 0 and m["latency_ms_p50"] is None and m["latency_ms_p95"] is None


def test_a_coqa_story_whose_questions_and_answers_differ_in_count_is_refused(tmp_path: Path):
    """zip() dropped a story's unpaired turns without a word: 11 questions, 9 answers ran 9 turns."""
    data = json.loads((DATA / "tiny-coqa.json").read_text(encoding="utf-8"))
    data["data"][0]["answers"] = data["data"][0]["answers"][:-1]
    f = tmp_path / "coqa.json"
    f.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(ValueError, match="'lighthouse' has 4 questions but 3 answers"):
        harness.coqa_set(f, None, 0)


@pytest.mark.parametrize("line, message", [
    ('{"id": "x", "turns": [{"question": "q", "answer": ["January 8"], "evidence": ["x"]}]}', "turn 0 has 'answer': did you mean 'answers'"),
    ('{"id": "x", "doc": ["a.txt"], "turns": [{"question": "q", "evidence": ["x"]}]}', "has 'doc': did you mean 'docs'"),
    ('{"id": "x", "turns": [{"question": "q", "evidence": ["x"], "answerabel": false}]}', "did you mean 'answerable'"),
])
def test_misspelt_set_fields_are_refused_not_ignored(tmp_path: Path, line: str, message: str):
    """A misspelt field was ignored: "doc" searched every document, "answer" scored no EM or F1."""
    f = tmp_path / "set.jsonl"
    f.write_text('{"id": "ok", "note": "kept", "turns": [{"question": "q", "answerable": false, "source": "me"}]}\n'
                 + line + "\n")
    with pytest.raises(harness.EvalSetError, match=message) as exc:
        harness.load_set(f)
    assert ":2:" in str(exc.value)


@pytest.mark.parametrize("floor", ["nan", "NaN", "inf"])
def test_an_eval_gate_floor_must_be_finite(tmp_path: Path, floor: str):
    """No figure is below NaN, so `--min-answered-accuracy nan` passed every run; refused before the run."""
    r = subprocess.run([sys.executable, "-m", "qa.cli", "eval", str(tmp_path / "missing.jsonl"),
                        "--min-answered-accuracy", floor], capture_output=True, text=True, cwd=ROOT, env=ENV)
    assert r.returncode == 2 and "--min-answered-accuracy" in r.stderr and "not a finite number" in r.stderr, r.stderr


@pytest.mark.parametrize("module, extra", [
    ("train", []), ("train_embedder", ["--out", "emb"]), ("train_locality", []), ("train_polar", []),
    ("train_retrieval", []), ("train_settled", []),
])
def test_training_commands_name_a_missing_data_file(tmp_path: Path, module: str, extra: list[str]):
    """A missing data file gave a FileNotFoundError traceback (train_settled called it not CoQA)."""
    missing = tmp_path / "coqa-stories-367.json"
    if module in ("train", "train_embedder"):
        missing = tmp_path / "squad-dev-v1.1.json"
    r = subprocess.run([sys.executable, "-m", f"eval.{module}", str(missing), *extra],
                       capture_output=True, text=True, cwd=tmp_path, env={**ENV, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 2 and f"{missing}: no such file" in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_a_gate_over_a_set_without_answerable_turns_says_so(tmp_path: Path):
    """The gate said "answered_accuracy None is below …": the set had no answerable turn to score."""
    f = tmp_path / "set.jsonl"
    f.write_text('{"id": "x", "turns": [{"question": "Where is the Eiffel Tower?", "answerable": false}]}\n')
    r = subprocess.run([sys.executable, "-m", "qa.cli", "eval", str(f), "--docs", str(DATA / "corpus"), "--index",
                        str(tmp_path / "index"), "--details", "none", "--min-answered-accuracy", "0.5"],
                       capture_output=True, text=True, cwd=ROOT, env=ENV)
    assert r.returncode == 1, r.stderr
    assert "answered_accuracy has no answerable turn, so it does not meet --min-answered-accuracy 0.5" in r.stderr


def test_evidence_found_in_no_document_is_warned_of(tmp_path: Path):
    """A mistyped excerpt or a span past its document's end made its turn a miss on every run, unsaid."""
    f = tmp_path / "set.jsonl"
    f.write_text('{"id": "typo", "turns": [{"question": "Where is the volcano?", "evidence": ["the volcanoe of nowhere"]}]}\n'
                 '{"id": "span", "turns": [{"question": "Where is the volcano?", '
                 '"evidence": [{"doc": "volcano.txt", "start": 999999, "end": 1000000}]}]}\n')
    r = subprocess.run([sys.executable, "-m", "qa.cli", "eval", str(f), "--docs", str(DATA / "corpus"), "--index",
                        str(tmp_path / "index"), "--details", "none"], capture_output=True, text=True, cwd=ROOT, env=ENV)
    assert r.returncode == 0, r.stderr
    assert "2 answerable turns with evidence found in no document, scored as misses (typo#0, span#0)" in r.stderr
    texts = {"a.txt": "It stands\n50 metres tall."}
    ok = harness.load_set(f)[:1]
    assert harness.unfindable([harness.Conversation("w", (harness.GoldTurn("q", (), ("stands 50  metres",), True),))], texts) == []
    assert harness.unfindable(ok, texts) == ["typo#0"]


def test_eval_json_out_never_overwrites_a_file_the_eval_reads(tmp_path: Path):
    """`--json-out` naming the eval set itself (or a report being compared) wrote the report over it."""
    eval_set = tmp_path / "set.jsonl"
    eval_set.write_text(json.dumps({"id": "c", "turns": [{"question": "Who?", "evidence": ["x"]}]}) + "\n", encoding="utf-8")
    report = tmp_path / "r.json"
    report.write_text("{}", encoding="utf-8")
    before = eval_set.read_bytes()
    for args in ([str(eval_set), "--docs", str(tmp_path), "--json-out", str(eval_set)],
                 ["--report", str(report), "--against", str(eval_set), "--json-out", str(tmp_path / "." / "set.jsonl")]):
        r = subprocess.run([sys.executable, "-m", "qa.cli", "eval", *args], capture_output=True, text=True, cwd=ROOT, env=ENV)
        assert r.returncode == 2 and "is a file this command reads" in r.stderr, r.stderr
    assert eval_set.read_bytes() == before


def test_note_fields_near_a_field_the_set_has_are_kept(tmp_path: Path):
    """'qid' (near 'id'), 'question_id' (near 'question') and 'answer_date' were refused as misspellings."""
    f = tmp_path / "set.jsonl"
    f.write_text(json.dumps({"id": "c", "qid": "56be", "turns": [
        {"question": "When?", "question_id": "56be4d", "answer_date": "2021-01-08", "answers": ["January 8"],
         "evidence": ["the other on January 8"]}]}) + "\n", encoding="utf-8")
    (conv,) = harness.load_set(f)
    assert conv.turns[0].answers == ("January 8",)


def test_eval_json_out_and_curve_may_not_name_one_file(tmp_path: Path):
    """The report was written, said so, then the curve's PNG was drawn over it."""
    r = subprocess.run([sys.executable, "-m", "qa.cli", "eval", str(tmp_path / "set.jsonl"), "--json-out", str(tmp_path / "r"),
                        "--curve", str(tmp_path / "." / "r")], capture_output=True, text=True, cwd=ROOT, env=ENV)
    assert r.returncode == 2 and "--json-out and --curve both name" in r.stderr, r.stderr
