"""The reader: MiniLM reading a question and a sentence together, scoring how well one answers the other.

The embeddings compare a question and a sentence encoded apart; the reader encodes the pair as
one input (``[CLS] question [SEP] end of the sentence before [SEP] sentence [SEP]``), so attention
can line up the question's words with the sentence's, which settles paraphrases that word
overlap and cosine miss, and can see what a pronoun opening the sentence stands for.

It is the packaged all-MiniLM-L6-v2 (verified by sha256, like the embedder's) plus a small
adapter learned by ``eval/train_reader.py`` on SQuAD questions outside the report sample and kept
in ``qa/reader.safetensors``: rank-:data:`RANK` updates ``B @ A`` of the six weight matrices of
each layer, the two segment embeddings, and a linear head over the mean of the output tokens.
The adapter records the sha256 of the base weights it was trained on and is refused on any
other. At load the updates are merged into the weights, and the merged encoder is exported to
ONNX and quantised to int8 once (cached like the embedder's), so answering needs no torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from index.embedder import DEFAULT_MODEL, ModelError, file_sha256, onnx_file, onnx_session, resolve_model, verified_sha256

READER_FILE = Path(__file__).with_name("reader.safetensors")
# The weight matrices of a BERT layer that the adapter updates (module paths inside the layer).
ADAPTED = (
    "attention.self.query", "attention.self.key", "attention.self.value",
    "attention.output.dense", "intermediate.dense", "output.dense",
)
RANK = 8
# The update added to a weight is SCALE * B @ A (LoRA's alpha / rank, with alpha = 2 * rank).
SCALE = 2.0
# The reader also sees the end of the sentence before the candidate (at most this many words),
# where a pronoun's antecedent usually is ("It was built in 1990."). An adapter records the
# number it was trained with (0 for one trained on the sentence alone).
CONTEXT_WORDS = 24
# Question and sentence tokens read together; past it the longer of the two is cut, which is
# the sentence unless the question is very long (a 2,000-character question still gets read).
MAX_TOKENS = 128


def adapter_key(layer: int, module: str, part: str) -> str:
    """The name of one adapter tensor in the file (``part`` is ``a`` or ``b``)."""
    return f"layer.{layer}.{module}.{part}"


def merged_encoder(location: Path, tensors: dict[str, Any]) -> Any:
    """The base transformers encoder at ``location`` with the adapter's updates merged in."""
    import torch
    from transformers import AutoModel

    model = AutoModel.from_pretrained(str(location))
    with torch.no_grad():
        for i, layer in enumerate(model.encoder.layer):
            for module in ADAPTED:
                a = torch.as_tensor(tensors[adapter_key(i, module, "a")], dtype=torch.float32)
                b = torch.as_tensor(tensors[adapter_key(i, module, "b")], dtype=torch.float32)
                layer.get_submodule(module).weight += SCALE * (b @ a)
        model.embeddings.token_type_embeddings.weight.copy_(torch.as_tensor(tensors["token_type"], dtype=torch.float32))
    return model


def pair_tokenizer(location: Path) -> Any:
    """The base model's tokenizer, set to cut the longer of question and sentence to MAX_TOKENS."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(location / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.enable_truncation(MAX_TOKENS, strategy="longest_first")
    return tokenizer


def reader_pair(question: str, sentence: str, before: str = "", context_words: int = CONTEXT_WORDS) -> tuple[str, str]:
    """The reader's two segments: the question, then the end of the sentence ``before`` the
    candidate after a separator (none at a document's start), and the candidate on its own."""
    tail = " ".join(before.split()[-context_words:]) if context_words else ""
    return (f"{question} [SEP] {tail}" if tail else question), sentence


def encode_pairs(tokenizer: Any, pairs: Sequence[tuple[str, str]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Token ids, segment ids and attention mask of (question, sentence) pairs, padded to the longest."""
    encodings = tokenizer.encode_batch(list(pairs))
    width = max(len(e.ids) for e in encodings)
    ids = np.zeros((len(encodings), width), dtype=np.int64)
    types = np.zeros_like(ids)
    mask = np.zeros_like(ids)
    for j, e in enumerate(encodings):
        n = len(e.ids)
        ids[j, :n], types[j, :n], mask[j, :n] = e.ids, e.type_ids, 1
    return ids, types, mask


def mean_pool(hidden: Any, mask: Any) -> Any:
    """Mean of the output vectors over the real tokens (numpy arrays or torch tensors)."""
    return (hidden * mask[..., None]).sum(1) / mask.sum(1)[..., None]


class Reader:
    """Scores (question, sentence) pairs; higher means the sentence more likely answers it.

    Args:
        adapter: the adapter file (default ``qa/reader.safetensors``).
        quantize: run the merged encoder with int8 weights (default) or float32.
    """

    def __init__(self, adapter: Path = READER_FILE, quantize: bool = True) -> None:
        from safetensors import safe_open

        _, location, expected = resolve_model(DEFAULT_MODEL)
        assert isinstance(location, Path)
        base = verified_sha256(location, expected)
        if not adapter.is_file():
            raise ModelError(f"the reader's adapter {adapter} is missing: train it with `python -m eval.train_reader`")
        with safe_open(str(adapter), "np") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
        if meta.get("base_sha256") != base:
            raise ModelError(
                f"{adapter} was trained on base weights {meta.get('base_sha256')!r}, not the installed MiniLM ({base}): "
                "retrain it with `python -m eval.train_reader`"
            )
        self._context_words = int(meta.get("context_words", "0"))
        self._head_w = tensors["head.weight"].reshape(-1).astype(np.float32)
        self._head_b = float(tensors["head.bias"].reshape(-1)[0])
        self._tokenizer = pair_tokenizer(location)
        key = "reader-" + file_sha256(adapter)[:12] + "-" + base[:12]
        # Idle threads sleep rather than spin: answering alternates this session with the
        # embedder's, and spinning threads of one would hold the cores the other needs.
        self._session = onnx_session(onnx_file(key, lambda: merged_encoder(location, tensors), quantize), spinning=False)

    def score(self, question: str, sentences: Sequence[str], before: Sequence[str] | None = None) -> np.ndarray:
        """One score per sentence (a logit: only differences between sentences matter).

        ``before``: the sentence before each one in its document ("" at the start), read as
        context when the adapter was trained with it.
        """
        if not sentences:
            return np.zeros(0, dtype=np.float32)
        before = before if before is not None else [""] * len(sentences)
        pairs = [reader_pair(question, s, b, self._context_words) for s, b in zip(sentences, before)]
        ids, types, mask = encode_pairs(self._tokenizer, pairs)
        hidden = self._session.run(None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": types})[0]
        return mean_pool(hidden, mask.astype(np.float32)) @ self._head_w + self._head_b
