"""The reader: the shipped weights on the real MiniLM, as the answerer runs it (ONNX int8)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from index.embedder import ModelError
from qa.reader import MAX_ANSWER_TOKENS, MAX_TAILS, READER_FILE, READER_SHA256, Reader, best_span, reader_pair

QUESTION = "When was the harbour lighthouse built?"
SENTENCES = [
    "The library keeps twelve beehives on its roof.",
    "The harbour lighthouse was built in 1871 by the engineer Margaret Hale.",
    "Its lamp was converted to electricity in 1952.",
]
# The sentence before each one in its document ("" where it opens the document).
BEFORE = ["The city has a library.", "", "The lighthouse stands 31 metres tall."]


@pytest.fixture(scope="module")
def reader():
    return Reader()


def test_reader_prefers_the_sentence_that_answers(reader):
    scores = reader.score(QUESTION, SENTENCES, BEFORE)
    assert scores.shape == (3,) and np.all(np.isfinite(scores))
    assert int(np.argmax(scores)) == 1
    assert reader.score(QUESTION, []).shape == (0,)


def test_short_answer_is_read_as_offsets_into_the_sentence(reader):
    readings = reader.read(QUESTION, SENTENCES, BEFORE)
    right = readings[1]
    assert right.span is not None
    a, b = right.span
    assert 0 <= a < b <= len(SENTENCES[1])
    assert SENTENCES[1][a:b] == "1871"
    who = reader.read("Who built the harbour lighthouse?", SENTENCES[1:2])[0]
    assert "Margaret Hale" in SENTENCES[1][who.span[0]:who.span[1]]


def test_the_sentence_before_tells_what_a_pronoun_stands_for(reader):
    """The reader reads the end of the previous sentence: "It" is the tower the question asks
    about after a sentence about the tower, not after one about a museum."""
    question, sentence = "When was the Eiffel Tower completed?", ["It was completed in 1889 for the World Fair."]
    about_it = reader.score(question, sentence, ["The Eiffel Tower is a wrought-iron lattice tower in Paris."])
    about_else = reader.score(question, sentence, ["The Louvre is the most visited museum in the world."])
    assert about_it[0] > about_else[0] + 1.0


def test_a_question_longer_than_the_reader_input_is_cut_not_refused(reader):
    """The bot accepts 2,000-character questions; the reader reads its first MAX_TOKENS tokens
    (the longer of question and sentence is cut), where cutting only the sentence failed."""
    long_question = QUESTION + " And what did the engineer say about the stone it was built of?" * 30
    readings = reader.read(long_question, SENTENCES)
    assert len(readings) == 3 and all(np.isfinite(r.score) for r in readings)


def test_a_sentence_too_long_to_read_whole_is_read_in_windows(reader):
    """A license-style sentence of about 150 tokens: cut at MAX_TOKENS, the reader never saw its
    last clause; its tail read in windows, the short answer there is found, as offsets into the
    sentence, and the sentences read with it read exactly as they would without it."""
    filler = ", and any other entity that controls, is controlled by, or is under common control with that entity" * 6
    sentence = f"Each party shall keep the notices{filler}, and this permission ends on 28 March 2031."
    question = "On what date does this permission end?"
    assert reader._tokenizer.encode(question, sentence).overflowing  # too long to read whole
    tails = reader._tails((question, sentence))
    assert tails and all(len(w.ids) <= 128 for w in tails)
    read = reader.read(question, [SENTENCES[0], sentence])
    a, b = read[1].span
    assert "28 March 2031" in sentence[a:b] and b - a < 40
    assert read[1].score > read[0].score
    # The first run is the batch read before windows existed: the other sentence's reading is its.
    cut = reader._run(reader._tokenizer.encode_batch([reader_pair(question, SENTENCES[0]), reader_pair(question, sentence)]))
    assert (cut[0].score, cut[0].span) == (read[0].score, read[0].span)
    assert "28 March 2031" not in sentence[cut[1].span[0]:cut[1].span[1]]
    # One that fits has no tail to read; an endless one at most MAX_TAILS; a question that leaves
    # too little room for windows none (the sentence is cut, as before).
    assert reader._tails((QUESTION, SENTENCES[1])) == []
    assert len(reader._tails((question, sentence * 20))) == MAX_TAILS
    wordy = question + " Say which clause, which party and which notice the answer comes from." * 6
    assert reader._tails((wordy, sentence)) == [] and np.isfinite(reader.read(wordy, [sentence])[0].score)


def test_best_span_keeps_start_before_end_within_the_sentence_and_the_length_cap():
    offsets = [(0, 0)] + [(i * 2, i * 2 + 1) for i in range(40)]
    inside = [False] + [True] * 40
    start = np.zeros(41)
    end = np.zeros(41)
    start[30], end[5] = 9.0, 8.0  # the best pair points backwards: refused
    start[10], end[12] = 5.0, 5.0
    (a, b), score = best_span(start, end, offsets, inside)
    assert (a, b) == (offsets[10][0], offsets[12][1]) and score == 10.0
    start[:], end[:] = 0.0, 0.0
    start[1], end[1 + MAX_ANSWER_TOKENS] = 9.0, 9.0  # one token too long
    (a, b), _ = best_span(start, end, offsets, inside)
    assert b - a <= 2 * MAX_ANSWER_TOKENS
    assert best_span(start, end, offsets, [False] * 41) is None


def base_sha256() -> str:
    """The verified MiniLM's sha256."""
    from index.embedder import verified_base

    return verified_base()[1]


def test_onnx_reader_matches_the_model_as_trained(reader):
    """The merged, exported float32 graph reads as the training-time model with the file's
    tensors loaded does (same names, tokens, pooling and heads), so a second training stage
    starts from exactly what ships; the default int8 graph within a logit."""
    import torch

    from eval.train_reader import build
    from index.embedder import verified_base
    from qa.reader import encode_pairs, load_weights, mean_pool, pair_tokenizer, reader_pair

    location, _ = verified_base()
    tensors, meta, _ = load_weights(READER_FILE, base_sha256(), None)
    encoder, rel, span_head = build(location, tensors)  # as a second training stage starts
    with torch.no_grad():
        pairs = [reader_pair(QUESTION, s, b, int(meta["context_words"])) for s, b in zip(SENTENCES, BEFORE)]
        ids, types, mask = (torch.as_tensor(x) for x in encode_pairs(pair_tokenizer(location).encode_batch(pairs)))
        hidden = encoder.eval()(input_ids=ids, token_type_ids=types, attention_mask=mask).last_hidden_state
        expected = rel(mean_pool(hidden, mask.float())).view(-1).numpy()
    np.testing.assert_allclose(Reader(quantize=False).score(QUESTION, SENTENCES, BEFORE), expected, atol=1e-3)
    int8 = reader.score(QUESTION, SENTENCES, BEFORE)
    # Dynamic int8 moves a logit by up to about half a unit here (0.48 on the third sentence).
    assert np.argmax(int8) == np.argmax(expected) and np.allclose(int8, expected, atol=1.0)
    assert not np.allclose(int8, expected, atol=1e-3)


def test_reader_precision_is_a_checked_setting(reader, monkeypatch, tmp_path):
    from conftest import DOCUMENTS
    from qa.cli import _make_bot, build_parser
    from qa.settings import Settings

    monkeypatch.setenv("QA_READER_PRECISION", "float32")
    args = build_parser().parse_args(["ask", "?", "--docs", str(DOCUMENTS), "--index", str(tmp_path)])
    np.testing.assert_array_equal(_make_bot(args).answerer.reader.score(QUESTION, SENTENCES, BEFORE),
                                  Reader(quantize=False).score(QUESTION, SENTENCES, BEFORE))
    with pytest.raises(ValueError, match="QA_READER_PRECISION='fp64': unknown reader precision"):
        Settings.from_env({"QA_READER_PRECISION": "fp64"})


def test_shipped_weights_are_the_recorded_ones_and_say_how_they_were_made():
    from index.embedder import file_sha256

    assert file_sha256(READER_FILE) == READER_SHA256
    from safetensors import safe_open

    with safe_open(str(READER_FILE), "np") as f:
        meta = f.metadata()
    # One stage, or a chain whose later stages each start from the weights of the one before.
    stages = meta["recipe"].split("; then ")
    assert all(s.startswith("python -m eval.train_reader ") for s in stages)
    assert all("--init PREVIOUS" in s for s in stages[1:]) and "--init" not in stages[0]
    assert set(meta["data_sha256"]) and meta["base_sha256"] == base_sha256()
    assert READER_FILE.stat().st_size < 30e6


def test_altered_unknown_or_foreign_weights_are_refused(tmp_path):
    from safetensors import safe_open
    from safetensors.numpy import save_file

    with safe_open(str(READER_FILE), "np") as f:
        meta = dict(f.metadata())
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    meta["base_sha256"] = "0" * 64
    other = tmp_path / "reader.safetensors"
    save_file(tensors, str(other), metadata=meta)
    with pytest.raises(ModelError, match="trained on base weights"):
        Reader(other)
    with pytest.raises(ModelError, match="not the shipped"):
        Reader(other, expected_sha256=READER_SHA256)
    with pytest.raises(ModelError, match="missing"):
        Reader(tmp_path / "absent.safetensors")
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(b"not a safetensors file")
    with pytest.raises(ModelError, match="cannot be read"):
        Reader(corrupt)


def _squad_bot(path, tmp_path, embedder):
    """A bot over ``path``'s paragraphs (as ``qa eval --squad`` builds them) and its gold answers."""
    from eval import harness
    from qa.bot import Bot

    bot = Bot(harness.squad_corpus(path, tmp_path / "docs"), index_dir=tmp_path / "index", embedder=embedder)
    bot.sync()
    return bot, {q: a for _, q, a, _ in harness.squad_questions(path)}


def _ranked_rows(bot, question: str) -> list[int]:
    """The sentences the shipped ranker reads for ``question``, best first."""
    from qa.answerer import Answerer, Question

    qvec = bot.embedder.embed([question])[0]
    rows, feats = Answerer().features(Question(question, bot.index), qvec, bot.index, bot.index.search(question, qvec, k=10))
    return [rows[i] for i in Answerer.to_read(feats @ Answerer().model.rank, len(rows))]


def test_hard_negatives_are_the_wrong_sentences_the_ranker_puts_first(tmp_path, embedder):
    """eval.train_reader --hard-negatives: each question's right sentence (found in the index by
    offset, its short answer marked) against the wrong sentences the shipped ranker ranks highest
    for it, never one that overlaps the gold span or holds the answer."""
    import random

    from eval.train_reader import hard_groups
    from tests.conftest import DATA

    path = DATA / "tiny-squad.json"
    bot, gold = _squad_bot(path, tmp_path, embedder)
    groups = list(hard_groups(path, bot, "calib", random.Random(0), 1, 10))
    assert len(groups) == 3  # the calib split's three questions, each with a wrong sentence to find
    for right, wrong in groups:
        answers = gold[right.question]
        assert right.right and right.sentence[right.span[0]:right.span[1]] == answers[0]
        assert not wrong.right and wrong.span is None and answers[0] not in wrong.sentence
        # the wrong sentence is the ranker's best wrong candidate
        texts = [bot.index.sentence_text(r) for r in _ranked_rows(bot, right.question)]
        assert wrong.sentence == next(t for t in texts if t != right.sentence and answers[0] not in t)


def test_same_document_hard_negatives_come_from_the_right_sentences_document(tmp_path, embedder):
    """--same-document: a question's wrong sentences are the ranker's best wrong candidates within
    the right sentence's own paragraph, never a sentence of another paragraph."""
    import random

    from eval.train_reader import hard_groups
    from tests.conftest import DATA

    # A paragraph of the same title (so the same split) that echoes the first question's words
    # without its answer: the ranker's best wrong sentence, but in another document.
    data = json.loads((DATA / "tiny-squad.json").read_text(encoding="utf-8"))
    data["data"][0]["paragraphs"].append({"context": "Who built the harbour lighthouse is asked on every boat tour.", "qas": []})
    path = tmp_path / "echo-squad.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    bot, gold = _squad_bot(path, tmp_path, embedder)
    index = bot.index
    everywhere = {g[0].question: g[1] for g in hard_groups(path, bot, "calib", random.Random(0), 1, 10)}
    groups = list(hard_groups(path, bot, "calib", random.Random(0), 1, 10, same_document=True))
    assert groups
    moved = 0
    for right, wrong in groups:
        ranked = _ranked_rows(bot, right.question)
        home = next(index.sentences.doc[r] for r in ranked if index.sentence_text(r) == right.sentence)
        same = [index.sentence_text(r) for r in ranked if index.sentences.doc[r] == home]
        assert wrong.sentence == next(t for t in same if t != right.sentence and gold[right.question][0] not in t)
        moved += wrong.sentence != everywhere[right.question].sentence
    assert moved  # on this data the filter changes at least one group


@pytest.mark.parametrize("flag", ["--mix-usual", "--same-document"])
def test_hard_negative_options_need_hard_negatives(capsys, flag):
    """--mix-usual and --same-document change the hard groups; alone they are refused before any work."""
    from eval.train_reader import main
    from tests.conftest import DATA

    with pytest.raises(SystemExit) as exit_:
        main([str(DATA / "tiny-squad.json"), flag])
    assert exit_.value.code == 2
    assert f"{flag} changes the --hard-negatives groups" in capsys.readouterr().err


def test_reader_training_is_repeatable_and_writes_a_reader_file(tmp_path):
    """Two steps of `python -m eval.train_reader` on a made-up public-format file, twice with one
    seed: the same tensors both times (the CPU recipe reproduces its weights), a file the reader
    loads with its recipe and data recorded, and weights moved from the shipped ones it started from."""
    from safetensors.numpy import load_file

    from conftest import tiny_training_file
    from eval.train_reader import main
    from qa.reader import load_weights

    data = tmp_path / "squadshifts-new-wiki-v1.0.json"  # a public training file's name, made-up content
    tiny_training_file(data)
    outs = [tmp_path / "a.safetensors", tmp_path / "b.safetensors"]
    for out in outs:
        assert main([str(data), "--init", str(READER_FILE), "--batch", "4", "--max-steps", "2", "--out", str(out)]) == 0
    first, second = (load_file(str(o)) for o in outs)
    assert first.keys() == second.keys() and all(np.array_equal(first[k], second[k]) for k in first)
    tensors, meta, _ = load_weights(outs[0], base_sha256(), None)
    shipped, _, _ = load_weights(READER_FILE, base_sha256(), READER_SHA256)
    assert meta["recipe"].endswith("python -m eval.train_reader squadshifts-new-wiki-v1.0.json --epochs 1 --batch 4 "
                                   "--lr 0.0001 --negatives 2 --context-words 24 --seed 0 --max-steps 2 --init PREVIOUS --skip-steps 0")
    assert set(json.loads(meta["data_sha256"])) == {data.name}
    assert any(not np.array_equal(tensors[k], shipped[k]) for k in shipped)


def test_reader_training_on_a_gpu_needs_one(capsys):
    """--device cuda is refused, before any work, where torch sees no GPU."""
    import torch

    from eval.train_reader import main
    from tests.conftest import DATA

    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is visible here: the refusal cannot happen")
    with pytest.raises(SystemExit) as exit_:
        main([str(DATA / "tiny-squad.json"), "--device", "cuda"])
    assert exit_.value.code == 2 and "torch sees no CUDA GPU" in capsys.readouterr().err


def test_reader_training_refuses_a_missing_file_or_an_unwritable_out_before_training(tmp_path, capsys):
    """A missing data file was a traceback; an --out under a file failed only after the training."""
    from conftest import tiny_training_file
    from eval.train_reader import main

    data = tmp_path / "squadshifts-new-wiki-v1.0.json"
    for args, said in (([str(tmp_path / "squad-dev-v1.1.json")], "no such file"),
                       ([str(data), "--out", str(data / "r.safetensors")], "its folder cannot be made")):
        with pytest.raises(SystemExit) as exit_:
            main(args)
        assert exit_.value.code == 2 and said in capsys.readouterr().err
        tiny_training_file(data)


def test_reader_training_makes_a_missing_out_folder(tmp_path):
    """--out in a folder not made yet failed after the training, losing it."""
    from conftest import tiny_training_file
    from eval.train_reader import main

    data = tmp_path / "squadshifts-new-wiki-v1.0.json"
    tiny_training_file(data)
    out = tmp_path / "new" / "stage" / "r.safetensors"
    assert main([str(data), "--batch", "4", "--max-steps", "1", "--out", str(out)]) == 0
    assert out.stat().st_size > 0
