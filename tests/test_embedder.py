"""The embedding backends: the same model through sentence-transformers/torch and ONNX Runtime."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT, tiny_training_file
from index.embedder import ModelError, OnnxEmbedder, SentenceTransformerEmbedder, load_embedder
from qa.settings import Settings

TEXTS = [
    "When was the second call?",
    "Milley called his Chinese counterpart twice in the final months of the administration.",
    "Bees make honey.",
    "x",
]


@pytest.fixture(scope="module")
def torch_vectors():
    return SentenceTransformerEmbedder().embed(TEXTS)


def test_onnx_float32_matches_torch(torch_vectors):
    onnx = OnnxEmbedder(quantize=False)
    assert onnx.variant == "onnx" and onnx.dim == 384
    assert np.allclose(onnx.embed(TEXTS), torch_vectors, atol=1e-4)


def test_int8_stays_close_to_torch(embedder, torch_vectors):
    vecs = embedder.embed(TEXTS)
    assert vecs.dtype == np.float32 and np.allclose(np.linalg.norm(vecs, axis=1), 1, atol=1e-5)
    cos = (vecs * torch_vectors).sum(axis=1)
    assert cos.min() > 0.97, cos
    # Order inside a batch does not change a text's vector.
    assert np.allclose(embedder.embed(TEXTS[::-1])[::-1], vecs, atol=1e-5)
    assert embedder.embed([]).shape == (0, 384)


def test_default_on_cpu_is_int8_and_choice_is_checked(embedder):
    assert embedder.variant == "onnx-int8"  # these machines have no GPU
    with pytest.raises(ModelError, match="unknown embedding backend 'tensorrt'"):
        load_embedder(backend="tensorrt")
    with pytest.raises(ValueError, match="QA_EMBED_BACKEND='tensorrt': unknown embedding backend"):
        Settings.from_env({"QA_EMBED_BACKEND": "tensorrt"})


def test_damaged_cached_model_is_rebuilt(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    first = OnnxEmbedder(quantize=True)
    [onnx_file] = (tmp_path / "qa-bot" / "onnx").glob("*.onnx")
    reference = first.embed(TEXTS[:2])
    onnx_file.write_bytes(onnx_file.read_bytes()[:1000])  # truncated, e.g. by a full disk
    again = OnnxEmbedder(quantize=True)
    assert np.allclose(again.embed(TEXTS[:2]), reference, atol=1e-6)


def _copy_of_packaged_model(folder, pooling: dict) -> None:
    """The packaged MiniLM's files in ``folder`` (weights linked), with another pooling configuration
    and the token limit kept where current sentence-transformers releases keep it."""
    import shutil

    from index.embedder import resolve_model

    _, location, _ = resolve_model()
    shutil.copytree(location, folder, ignore=shutil.ignore_patterns("model.safetensors"))
    (folder / "model.safetensors").symlink_to(location / "model.safetensors")
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(pooling), encoding="utf-8")
    (folder / "sentence_bert_config.json").write_text(json.dumps({"transformer_task": "feature-extraction"}), encoding="utf-8")
    config = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
    (folder / "tokenizer_config.json").write_text(json.dumps({**config, "model_max_length": 256}), encoding="utf-8")


def test_onnx_reads_a_folder_saved_by_current_sentence_transformers(tmp_path, torch_vectors):
    """Current releases write ``pooling_mode`` and keep the token limit with the tokenizer: the
    ONNX backend reads such a folder (as ``eval.train_embedder`` writes it) like the old form."""
    folder = tmp_path / "model"
    _copy_of_packaged_model(folder, {"embedding_dimension": 384, "pooling_mode": "mean", "include_prompt": True})
    onnx = OnnxEmbedder(str(folder), quantize=False)
    assert onnx.dim == 384 and np.allclose(onnx.embed(TEXTS), torch_vectors, atol=1e-4)
    other = tmp_path / "cls"
    _copy_of_packaged_model(other, {"embedding_dimension": 384, "pooling_mode": "cls"})
    with pytest.raises(ModelError, match="does not use mean pooling"):
        OnnxEmbedder(str(other))


def test_embedder_training_writes_a_model_folder_the_product_reads(tmp_path):
    from eval.train_embedder import main, pairs_of

    data = tmp_path / "squadshifts-new-wiki-v1.0.json"  # a public training file's name, made-up content
    tiny_training_file(data)
    pairs = pairs_of([data], 0)
    assert pairs and all(q.startswith("When did town") and s != neg for q, s, neg in pairs)
    out = tmp_path / "minilm-qa"
    assert main([str(data), "--epochs", "1", "--batch", "4", "--max-steps", "2", "--out", str(out)]) == 0
    meta = json.loads((out / "training.json").read_text(encoding="utf-8"))
    assert meta["recipe"].startswith("python -m eval.train_embedder squadshifts-new-wiki-v1.0.json --epochs 1.0")
    assert meta["pairs"] == len(pairs) and set(meta["data_sha256"]) == {data.name}
    tuned = OnnxEmbedder(str(out), quantize=False)
    assert np.allclose(tuned.embed(TEXTS), SentenceTransformerEmbedder(str(out)).embed(TEXTS), atol=1e-4)
    assert np.abs(tuned.embed(TEXTS) - OnnxEmbedder(quantize=False).embed(TEXTS)).max() > 1e-4  # it was trained
    with pytest.raises(SystemExit):  # an existing folder is not overwritten
        main([str(data), "--out", str(out)])


@pytest.mark.parametrize("name", ["quoref-6500.json", "coqa-stories-367.json", "other.json"])
def test_embedder_training_refuses_files_it_cannot_learn_from(tmp_path, capsys, name):
    from eval.train_embedder import main

    data = {"data": [{"story": "A story.", "questions": [], "answers": []}]} if name.startswith("coqa") else {"data": []}
    path = tmp_path / name
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(SystemExit):
        main([str(path), "--out", str(tmp_path / "out")])
    assert name in capsys.readouterr().err and not (tmp_path / "out").exists()


IDLE_CHECK = """
import time
from index.embedder import OnnxEmbedder
from qa.reader import Reader
embedder, reader = OnnxEmbedder(), Reader()
runs = (lambda: embedder.embed(["Where was the bridge built?"] * 4), lambda: reader.read("When?", ["It was built in 1990."] * 3))
busy = 0.0
for run in runs * 3:
    run()
    before = time.process_time()
    time.sleep(0.3)
    busy = max(busy, time.process_time() - before)
print(busy)
"""


def test_onnx_threads_sleep_between_runs_instead_of_holding_the_cores():
    """Answering alternates the embedder's and the reader's sessions: threads left spinning
    after one run (onnxruntime's default, about 40 ms of CPU here) would slow the next."""
    done = subprocess.run([sys.executable, "-c", IDLE_CHECK], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert float(done.stdout.split()[-1]) < 0.01
