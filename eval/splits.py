"""The public training files and their fixed splits: what the reader trains on, what calibrates
the confidence, and what is held out to report.

Every file in ``../shared/benchmarks/`` is split by *unit* (an article's title, a review
product, a CoQA story), so no paragraph of a dev unit is ever seen in training:

* ``dev``: :data:`DEV_SHARE` of the units, drawn with :data:`SEED`; never trained or tuned on,
  reported with ``qa eval --squad FILE --split dev`` (``--coqa`` for the stories file);
* ``calib``: another :data:`CALIB_SHARE`, kept from the reader, on which the confidence
  model is fit (the reader's scores on questions it never saw, as at run time);
* ``train``: the rest.

SQuAD v1.1 dev is the exception: its report sample (``--sample 1000 --seed 0``) is its held-out
set, and of the other questions :data:`SQUAD_CALIB` (drawn with seed 1) calibrate; the rest train.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path
from typing import Any, Literal

SEED = 0
DEV_SHARE = 0.1
CALIB_SHARE = 0.1
SQUAD_CALIB = 1000
SQUAD_REPORT = (1000, 0)  # --sample, --seed of the standard run

Split = Literal["train", "calib", "dev"]

# File name -> the domain it stands for (a short name used in reports and metadata).
FILES = {
    "squad-dev-v1.1.json": "squad",
    "squadshifts-new-wiki-v1.0.json": "wiki",
    "squadshifts-amazon-reviews-v1.0.json": "reviews",
    "quoref-6500.json": "quoref",
    "coqa-stories-367.json": "coqa",
}

# Domains whose gold spans do not mark the answering sentence: Quoref's answers were placed at
# their first occurrence in the passage, usually a sentence that only names the person. Their
# sentence labels would teach the confidence model that a well-matched sentence is often wrong.
NOISY_SENTENCE_LABELS = frozenset({"quoref"})


def data_file(text: str) -> Path:
    """An argparse type: a data file that exists (said before any model loads)."""
    if not Path(text).is_file():
        raise argparse.ArgumentTypeError(f"{text}: no such file")
    return Path(text)


def training_files(files: list[Path]) -> list[Path]:
    """``files`` in :data:`FILES` order; ValueError naming the first that is not a public training file
    or is missing."""
    for f in files:
        if f.name not in FILES:
            raise ValueError(f"{f}: not one of the public training files {sorted(FILES)}")
        if not Path(f).is_file():
            raise ValueError(f"{f}: no such file")
    return sorted(files, key=lambda f: list(FILES).index(f.name))


def is_coqa(data: dict[str, Any]) -> bool:
    """CoQA files hold stories with question and answer lists; SQuAD files hold articles."""
    return bool(data.get("data")) and "story" in data["data"][0]


def unit_splits(units: list[str], seed: int = SEED) -> dict[str, Split]:
    """``dev``/``calib``/``train`` for each distinct unit, by a seeded shuffle of their sorted list."""
    distinct = sorted(set(units))
    random.Random(seed).shuffle(distinct)
    n_dev = max(1, round(DEV_SHARE * len(distinct)))
    n_calib = max(1, round(CALIB_SHARE * len(distinct)))
    out: dict[str, Split] = {}
    for i, u in enumerate(distinct):
        out[u] = "dev" if i < n_dev else "calib" if i < n_dev + n_calib else "train"
    return out


def squad_split(path: str | Path, seed: int = SEED) -> dict[str, Split]:
    """Question id -> split for a SQuAD-format file (see the module docstring)."""
    from eval import harness

    path = Path(path)
    if FILES.get(path.name) == "squad":
        report = {c.id for c in harness.squad_set(path, *SQUAD_REPORT)}
        pool = [q[0] for q in harness.squad_questions(path) if q[0] not in report]
        calib = set(random.Random(1).sample(pool, min(SQUAD_CALIB, len(pool))))
        return {qid: ("dev" if qid in report else "calib" if qid in calib else "train")
                for qid, *_ in harness.squad_questions(path)}
    data = json.loads(path.read_text(encoding="utf-8"))
    by_unit = unit_splits([a["title"] for a in data["data"]], seed)
    return {qa["id"]: by_unit[a["title"]] for a in data["data"] for p in a["paragraphs"] for qa in p["qas"]}


def coqa_split(path: str | Path, seed: int = SEED) -> dict[str, Split]:
    """Story id -> split for a CoQA-format file."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    return unit_splits([s["id"] for s in data["data"]], seed)
