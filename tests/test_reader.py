"""The reader: the shipped adapter on the real MiniLM, as the answerer runs it (ONNX int8)."""

from __future__ import annotations

import numpy as np
import pytest

from index.embedder import ModelError
from qa.reader import READER_FILE, Reader

QUESTION = "Who did Milley call in China?"
SENTENCES = [
    "The book is set for release in September.",
    "Milley called General Li Zuocheng of the People's Liberation Army twice.",
    "Senator Marco Rubio urged President Biden to fire Milley.",
]

# The sentence before each one in its document ("" where it opens the document).
BEFORE = ["A new book describes the calls.", "", "Milley called Li twice."]


@pytest.fixture(scope="module")
def reader():
    return Reader()


def test_reader_prefers_the_sentence_that_answers(reader):
    scores = reader.score(QUESTION, SENTENCES)
    assert scores.shape == (3,) and np.all(np.isfinite(scores))
    assert int(np.argmax(scores)) == 1
    assert reader.score(QUESTION, []).shape == (0,)


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
    long_question = QUESTION + " And what did the general say about the relations between the two countries?" * 25
    scores = reader.score(long_question, SENTENCES)
    assert scores.shape == (3,) and np.all(np.isfinite(scores))


def test_onnx_reader_matches_the_adapter_as_trained():
    """The merged, exported float32 graph scores as the training-time model with the file's
    tensors loaded into its low-rank modules does (same names, scale, tokens and pooling)."""
    import torch
    from safetensors.numpy import load_file

    from eval.train_reader import build
    from index.embedder import DEFAULT_MODEL, resolve_model
    from qa.reader import ADAPTED, adapter_key, encode_pairs, mean_pool, pair_tokenizer, reader_pair

    _, location, _ = resolve_model(DEFAULT_MODEL)
    tensors = load_file(str(READER_FILE))
    encoder, head = build(location)
    with torch.no_grad():
        for i, layer in enumerate(encoder.encoder.layer):
            for module in ADAPTED:
                low = layer.get_submodule(module)
                low.a.copy_(torch.from_numpy(tensors[adapter_key(i, module, "a")]))
                low.b.copy_(torch.from_numpy(tensors[adapter_key(i, module, "b")]))
        encoder.embeddings.token_type_embeddings.weight.copy_(torch.from_numpy(tensors["token_type"]))
        head.weight.copy_(torch.from_numpy(tensors["head.weight"]))
        head.bias.copy_(torch.from_numpy(tensors["head.bias"]))
        pairs = [reader_pair(QUESTION, s, b) for s, b in zip(SENTENCES, BEFORE)]
        ids, types, mask = (torch.as_tensor(x) for x in encode_pairs(pair_tokenizer(location), pairs))
        hidden = encoder.eval()(input_ids=ids, token_type_ids=types, attention_mask=mask).last_hidden_state
        expected = head(mean_pool(hidden, mask.float())).view(-1).numpy()
    np.testing.assert_allclose(Reader(quantize=False).score(QUESTION, SENTENCES, BEFORE), expected, atol=1e-3)


def test_adapter_for_other_base_weights_is_refused(tmp_path):
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
    with pytest.raises(ModelError, match="missing"):
        Reader(tmp_path / "absent.safetensors")
