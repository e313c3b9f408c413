import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import DATA, ROOT

KEYS = {"passages", "sentences", "index_s", "index_sentences_per_s", "embed_sentences_per_s", "build_peak_rss_mb",
        "embedding", "load_s", "latency_ms_p50", "latency_ms_p95", "rss_mb", "index_mb", "add_one_doc_s", "add_one_doc_s_max", "dense_index", "dense_recall_at_10"}


def test_bench_builds_then_reuses(tmp_path: Path):
    out = tmp_path / "bench.json"
    cmd = [sys.executable, "-m", "qa.cli", "bench", "--source", str(DATA / "tiny-squad.json"), "--passages", "4",
           "--queries", "3", "--index", str(tmp_path / "work"), "--json-out", str(out)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)
    assert r.returncode == 0, r.stderr
    first = json.loads(out.read_text())
    assert KEYS <= set(first) and first["built_now"] is True
    assert first["passages"] >= 4 and first["sentences"] >= first["passages"]
    assert first["embed_sentences_per_s"] > 0 and first["index_sentences_per_s"] > 0 and first["queries"] == 3
    assert first["embedding"] == "onnx-int8"
    assert first["latency_ms_p95"] >= first["latency_ms_p50"] > 0
    assert first["add_one_doc_s_max"] >= first["add_one_doc_s"] > 0 and first["build_peak_rss_mb"] > 0
    assert first["dense_index"] == "exact" and first["dense_recall_at_10"] is None  # tiny: no inverted lists
    # A second run opens the same index: nothing is built or embedded again.
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)
    second = json.loads(out.read_text())
    assert r.returncode == 0 and second["built_now"] is False and second["index_s"] is None
    assert second["passages"] == first["passages"]
    assert second["adds"] == 5 and "latency_ms: percentiles of 3 questions; add_one_doc_s: the median of 5 adds" in r.stdout
    # The document added to time the incremental update is gone again.
    assert not list((tmp_path / "work").glob("docs-4/bench-added-*"))


def test_bench_through_the_api(tmp_path: Path):
    """--api asks the questions through a real `qa serve` on loopback with concurrent clients."""
    out = tmp_path / "bench.json"
    cmd = [sys.executable, "-m", "qa.cli", "bench", "--source", str(DATA / "tiny-squad.json"), "--passages", "4",
           "--queries", "4", "--index", str(tmp_path / "work"), "--api", "2", "--json-out", str(out)]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert r.returncode == 0, r.stderr
    figures = json.loads(out.read_text())
    assert figures["api_clients"] == 2 and figures["api_errors"] == 0
    assert figures["api_latency_ms_p95"] >= figures["api_latency_ms_p50"] > 0 and figures["api_answers_per_s"] > 0


def test_bench_rejects_a_missing_source(tmp_path: Path):
    r = subprocess.run([sys.executable, "-m", "qa.cli", "bench", "--source", str(tmp_path / "nope.json")],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2 and "not found" in r.stderr


def test_bench_rejects_a_source_that_is_not_squad_format(tmp_path: Path):
    """A CoQA file, a JSONL set or a file without questions was a traceback after the model loaded."""
    empty = tmp_path / "empty.json"
    empty.write_text('{"data": []}', encoding="utf-8")
    for source, said in ((DATA / "tiny-coqa.json", "is not a SQuAD-format file"), (ROOT / "eval" / "seeds.jsonl", "is not a SQuAD-format file"),
                         (empty, "holds no answerable question")):
        r = subprocess.run([sys.executable, "-m", "qa.cli", "bench", "--source", str(source), "--index", str(tmp_path / "w")],
                           capture_output=True, text=True, cwd=ROOT)
        assert r.returncode == 2 and said in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_bench_lets_go_of_the_milvus_lite_file_when_it_ends(tmp_path: Path):
    """The bench's own bot stayed open (only --api closed it): its Milvus Lite server lived until
    exit, racing that exit's thread shutdown, as `qa ask`'s did."""
    from qa.cli import main

    work = tmp_path / "work"
    assert main(["bench", "--source", str(DATA / "tiny-squad.json"), "--passages", "4", "--queries", "2",
                 "--index", str(work), "--backend", "milvus"]) == 0
    uri = str(work / "index-4" / "milvus.db")
    r = subprocess.run([sys.executable, "-c", f"from index.milvus import MilvusStore; MilvusStore({uri!r}).close()"],
                       capture_output=True, text=True, cwd=ROOT, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert r.returncode == 0, r.stderr


def test_bench_json_out_never_overwrites_its_source(tmp_path: Path):
    """`--json-out` naming the SQuAD source wrote the figures over it, as `qa eval`'s did its set."""
    source = tmp_path / "squad.json"
    source.write_bytes((DATA / "tiny-squad.json").read_bytes())
    r = subprocess.run([sys.executable, "-m", "qa.cli", "bench", "--source", str(source), "--passages", "4", "--queries", "2",
                        "--index", str(tmp_path / "work"), "--json-out", str(tmp_path / "." / "squad.json")],
                       capture_output=True, text=True, cwd=ROOT, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert r.returncode == 2 and "is a file this command reads" in r.stderr, r.stderr
    assert source.read_bytes() == (DATA / "tiny-squad.json").read_bytes()
