"""The reader: MiniLM reading a question and a candidate sentence together, in one pass saying
whether the sentence answers the question and where its short answer starts and ends.

The embeddings compare a question and a sentence encoded apart; the reader encodes the pair as
one input (``[CLS] question [SEP] end of the sentence before [SEP] sentence [SEP]``), so attention
lines up the question's words with the sentence's and can see what a pronoun opening the
sentence stands for. Two heads sit on its output:

* ``rel``: a logit over the mean of the output tokens, "this sentence answers the question",
  trained as a probability across domains (so it also tells whether the question is answered);
* ``span``: start and end logits per token of the sentence; the short answer is the best
  ``start <= end`` pair within :data:`MAX_ANSWER_TOKENS`, mapped back to character offsets in
  the sentence through the tokenizer's offsets (never searched for by its text).

A sentence too long to read whole beside the question is also read in windows over the part
that does not fit, and reads as its best window (:meth:`Reader.read`).

The weights are the packaged all-MiniLM-L6-v2 (verified by sha256, like the embedder's) with
every tensor but the word embeddings replaced by the fine-tuned ones in
``qa/reader.safetensors`` (float16, written by ``eval/train_reader.py``, which records the base's
sha256, the training files' sha256 and its recipe). The file's own sha256 is checked against
:data:`READER_SHA256` at load. The merged encoder is exported to ONNX once (with int8 weights,
or float32 when ``QA_READER_PRECISION=float32``), cached like the embedder's, so answering
needs no torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from index.embedder import ModelError, file_sha256, onnx_file, onnx_session, verified_base

READER_FILE = Path(__file__).with_name("reader.safetensors")
# sha256 of the shipped weights file; a reader file with another digest is refused.
READER_SHA256 = "0cd66c8a8ce62578e47688f99282e83cf235447db11d62d65dbffc99dda72ea3"
# The encoder tensors the weights file replaces (all but the word embeddings and the unused pooler).
SHIPPED_PREFIXES = ("embeddings.position_embeddings", "embeddings.token_type_embeddings", "embeddings.LayerNorm", "encoder.")
# The reader also sees the end of the sentence before the candidate (at most this many words),
# where a pronoun's antecedent usually is ("It was built in 1990.").
CONTEXT_WORDS = 24
# Question and sentence tokens read together; past it the longer of the two is cut, which is
# the sentence unless the question is very long (a 2,000-character question still gets read).
MAX_TOKENS = 128
# The longest short answer, in tokens (a clause of a "Why?" fits; a whole sentence does not).
MAX_ANSWER_TOKENS = 30
# A sentence longer than MAX_TOKENS allows is also read in at most this many more windows
# (about 130 more tokens), so one endless "sentence" cannot make an answer slow.
MAX_TAILS = 3


class ReaderError(ModelError):
    """The reader's weights file is missing, altered, or was trained on other base weights."""


@dataclass(frozen=True)
class Reading:
    """The reader's verdict on one sentence: the ``score`` (a logit: the sentence answers the
    question), the short answer's character span in the sentence with its logit score
    (``span`` None when the sentence has no token to point at), and ``pooled``, the mean of the
    output vectors that ``score`` and the yes/no verdict are read from."""

    score: float
    span: tuple[int, int] | None
    span_score: float
    pooled: np.ndarray


def scores_of(readings: Sequence[Reading]) -> np.ndarray:
    """The ``rel`` logits of ``readings``, as an array."""
    return np.array([r.score for r in readings], dtype=np.float32)


def pair_tokenizer(location: Path, windows: bool = False) -> Any:
    """The base model's tokenizer, set to cut the longer of question and sentence to MAX_TOKENS;
    with ``windows``, to keep the question whole and split the sentence into windows that
    overlap by MAX_ANSWER_TOKENS (each encoding's ``overflowing``)."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(location / "tokenizer.json"))
    tokenizer.no_padding()
    if windows:
        tokenizer.enable_truncation(MAX_TOKENS, stride=MAX_ANSWER_TOKENS, strategy="only_second")
    else:
        tokenizer.enable_truncation(MAX_TOKENS, strategy="longest_first")
    return tokenizer


def reader_pair(question: str, sentence: str, before: str = "", context_words: int = CONTEXT_WORDS) -> tuple[str, str]:
    """The reader's two segments: the question, then the end of the sentence ``before`` the
    candidate after a separator (none at a document's start), and the candidate on its own."""
    tail = " ".join(before.split()[-context_words:]) if context_words else ""
    return (f"{question} [SEP] {tail}" if tail else question), sentence


def encode_pairs(encodings: Sequence[Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Token ids, segment ids and attention mask of encoded (question, sentence) pairs, padded to the longest."""
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


def best_span(start: np.ndarray, end: np.ndarray, offsets: Sequence[tuple[int, int]], inside: Sequence[bool],
              ) -> tuple[tuple[int, int], float] | None:
    """The character span and logit sum of the best token pair ``start <= end`` (at most
    :data:`MAX_ANSWER_TOKENS` apart) among the tokens marked ``inside`` (the sentence's)."""
    idx = [t for t, ok in enumerate(inside) if ok and offsets[t][1] > offsets[t][0]]
    if not idx:
        return None
    s = np.array([start[t] for t in idx])
    e = np.array([end[t] for t in idx])
    total = s[:, None] + e[None, :]
    pos = np.arange(len(idx))
    gap = pos[None, :] - pos[:, None]
    total[(gap < 0) | (gap >= MAX_ANSWER_TOKENS)] = -np.inf
    i, j = np.unravel_index(int(np.argmax(total)), total.shape)
    return (offsets[idx[i]][0], offsets[idx[j]][1]), float(total[i, j])


def load_weights(path: Path, base_sha256: str, expected_sha256: str | None) -> tuple[dict[str, np.ndarray], dict[str, str], str]:
    """The tensors, metadata and sha256 of a reader weights file, refused when its sha256 is not
    ``expected_sha256`` (None: any) or it was trained on other base weights."""
    from safetensors import SafetensorError, safe_open

    if not path.is_file():
        raise ReaderError(f"the reader's weights {path} are missing: train them with `python -m eval.train_reader`")
    actual = file_sha256(path)
    if expected_sha256 is not None and actual != expected_sha256:
        raise ReaderError(
            f"the reader's weights {path} have sha256 {actual}, not the shipped {expected_sha256}: restore the file "
            "(git checkout qa/reader.safetensors) or, for weights you trained, update qa.reader.READER_SHA256"
        )
    try:
        with safe_open(str(path), "np") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as exc:
        raise ReaderError(f"the reader's weights {path} cannot be read ({exc}): restore or retrain them") from None
    if meta.get("base_sha256") != base_sha256:
        raise ReaderError(
            f"{path} was trained on base weights {meta.get('base_sha256')!r}, not the installed MiniLM ({base_sha256}): "
            "retrain it with `python -m eval.train_reader`"
        )
    needed = {"rel.weight", "rel.bias", "span.weight", "span.bias"}
    if not needed <= set(tensors) or not any(k.startswith("encoder.") for k in tensors):
        raise ReaderError(f"{path} is not a reader weights file (it lacks {sorted(needed - set(tensors)) or 'encoder tensors'})")
    return tensors, meta, actual


def merged_encoder(location: Path, tensors: dict[str, np.ndarray]) -> Any:
    """The base transformers encoder at ``location`` with the fine-tuned tensors put in."""
    import torch
    from transformers import AutoModel

    model = AutoModel.from_pretrained(str(location))
    state = model.state_dict()
    for key, value in tensors.items():
        if key.startswith("encoder."):
            name = key[len("encoder."):]
            if name not in state or tuple(state[name].shape) != value.shape:
                raise ReaderError(f"the reader's tensor {name} does not fit the base model")
            state[name] = torch.as_tensor(value.astype(np.float32))
    model.load_state_dict(state)
    return model


class Reader:
    """Reads (question, sentence) pairs: whether each sentence answers, and its short answer.

    Args:
        weights: the weights file (default ``qa/reader.safetensors``).
        quantize: run the encoder with int8 weights (default; faster) or in float32 (reads
            exactly as trained; the command line's ``QA_READER_PRECISION=float32``).
        expected_sha256: the sha256 the weights file must have (default: :data:`READER_SHA256`
            for the shipped file; another file, such as weights just trained, is checked only
            against the base weights its metadata names).
    """

    def __init__(self, weights: Path = READER_FILE, quantize: bool = True, expected_sha256: str | None = None) -> None:
        location, base = verified_base()
        if expected_sha256 is None and weights == READER_FILE:
            expected_sha256 = READER_SHA256
        tensors, meta, digest = load_weights(weights, base, expected_sha256)
        self._context_words = int(meta.get("context_words", str(CONTEXT_WORDS)))
        self._rel_w = tensors["rel.weight"].reshape(-1).astype(np.float32)
        self._rel_b = float(tensors["rel.bias"].reshape(-1)[0])
        self._span_w = tensors["span.weight"].astype(np.float32).T  # (hidden, 2)
        self._span_b = tensors["span.bias"].astype(np.float32)
        self._tokenizer = pair_tokenizer(location)
        self._window_tokenizer = pair_tokenizer(location, windows=True)
        key = "reader2-" + digest[:12] + "-" + base[:12]
        self._session = onnx_session(onnx_file(key, lambda: merged_encoder(location, tensors), quantize))

    def read(self, question: str, sentences: Sequence[str], before: Sequence[str] | None = None) -> list[Reading]:
        """One :class:`Reading` per sentence; ``before``: the sentence before each one in its
        document ("" at the start), read as context.

        A sentence too long to read whole beside the question is also read in overlapping
        windows over its rest (:meth:`_tails`), in a second run, so that the readings of the
        sentences that fit do not change; it reads as its best window (by ``rel``)."""
        if not sentences:
            return []
        before = before if before is not None else [""] * len(sentences)
        pairs = [reader_pair(question, s, b, self._context_words) for s, b in zip(sentences, before)]
        encodings = self._tokenizer.encode_batch(pairs)
        out = self._run(encodings)
        tails = [(j, enc) for j, whole in enumerate(encodings) if whole.overflowing for enc in self._tails(pairs[j])]
        for (j, _), reading in zip(tails, self._run([enc for _, enc in tails]) if tails else []):
            if reading.score > out[j].score:
                out[j] = reading
        return out

    def _run(self, encodings: Sequence[Any]) -> list[Reading]:
        """The readings of encoded pairs, run as one padded batch."""
        ids, types, mask = encode_pairs(encodings)
        hidden = self._session.run(None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": types})[0]
        pooled = mean_pool(hidden, mask.astype(np.float32))
        scores = pooled @ self._rel_w + self._rel_b
        logits = hidden @ self._span_w + self._span_b
        out = []
        for j, enc in enumerate(encodings):
            inside = [seq == 1 for seq in enc.sequence_ids]
            found = best_span(logits[j, :, 0], logits[j, :, 1], enc.offsets, inside)
            out.append(Reading(float(scores[j]), found[0] if found else None, found[1] if found else float("-inf"), pooled[j]))
        return out

    def _tails(self, pair: tuple[str, str]) -> list[Any]:
        """Windows over the part of a sentence cut off at MAX_TOKENS, the question kept whole in
        each; consecutive windows overlap by MAX_ANSWER_TOKENS, so a short answer lies whole in
        one. At most MAX_TAILS of them, and none when the question leaves too little room."""
        # What is left of MAX_TOKENS for the sentence once the question, [CLS] and two [SEP] are in.
        room = MAX_TOKENS - 3 - len(self._tokenizer.encode(pair[0], add_special_tokens=False).ids)
        if room < 2 * MAX_ANSWER_TOKENS:
            return []
        return list(self._window_tokenizer.encode(*pair).overflowing[:MAX_TAILS])

    def score(self, question: str, sentences: Sequence[str], before: Sequence[str] | None = None) -> np.ndarray:
        """The ``rel`` logit of each sentence (see :meth:`read`)."""
        return scores_of(self.read(question, sentences, before))
