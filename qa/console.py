"""What the command line and the training scripts show on the terminal: progress bars, and the
ML libraries kept quiet. Below the CLI, so scripts need not import it."""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Callable, Iterator


def quiet_libraries() -> None:
    """Silence the ML libraries' own progress bars and deprecation chatter on the terminal."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    import warnings

    warnings.filterwarnings("ignore", category=FutureWarning)


@contextlib.contextmanager
def progress_bar(show: bool = True, desc: str = "embedding", unit: str = "text") -> Iterator[Callable[[int, int], None]]:
    """A ``progress(done, total)`` callback drawing a bar on stderr, closed on exit."""
    from tqdm import tqdm

    bar = None

    def progress(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, unit=unit, desc=desc, disable=not show, file=sys.stderr)
        bar.update(done - bar.n)

    try:
        yield progress
    finally:
        if bar is not None:
            bar.close()
