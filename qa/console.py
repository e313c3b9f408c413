"""What the command line and the training scripts show on the terminal: progress bars, and the
ML libraries kept quiet. Below the CLI, so scripts need not import it."""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import sys
import time
from typing import Callable, Iterator


def quiet_libraries() -> None:
    """Silence the ML libraries' own progress bars and deprecation chatter on the terminal."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    import warnings

    warnings.filterwarnings("ignore", category=FutureWarning)


def gate_floor(text: str) -> float:
    """An argparse type: a gate's floor, a finite number (no figure is below NaN: that gate never failed)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text} is not a finite number (give a share such as 0.85)")
    return value


# How often a bar redraws for a new detail alone (a text PDF's pages come every millisecond).
DETAIL_SECONDS = 0.5


@contextlib.contextmanager
def progress_bar(show: bool = True, desc: str = "embedding", unit: str = "text") -> Iterator[Callable[..., None]]:
    """A ``progress(done, total[, detail])`` callback drawing a bar on stderr, closed on exit;
    ``detail`` ("scan.pdf: page 3 of 40") is shown after the bar until a call without one."""
    from tqdm import tqdm

    bar = None
    drawn = 0.0

    def progress(done: int, total: int, detail: str | None = None) -> None:
        nonlocal bar, drawn
        if bar is None:
            bar = tqdm(total=total, unit=unit, desc=desc, disable=not show, file=sys.stderr)
        bar.set_postfix_str(detail or "", refresh=False)
        bar.update(done - bar.n)
        if time.monotonic() - drawn >= DETAIL_SECONDS:
            bar.refresh()
            drawn = time.monotonic()

    try:
        yield progress
    finally:
        if bar is not None:
            bar.close()
