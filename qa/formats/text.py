"""Blocks of extracted text (paragraphs, headings, list items, table rows) joined into one text.

Blocks are separated by a blank line, which the sentence segmenter never crosses, so no
sentence joins two blocks. Inside a block, runs of spaces and tabs become one space and the
line breaks the document has are kept (nothing is re-flowed).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_SPACES = re.compile(r"[^\S\n]+")  # any whitespace but a line break: spaces, tabs, NBSP, CR
_BLANK_LINES = re.compile(r"\n{3,}")


def clean_block(text: str) -> str:
    """One block's text: spaces collapsed, each line trimmed, at most one blank line in a row."""
    lines = (_SPACES.sub(" ", line).strip() for line in text.split("\n"))
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()


def join_blocks(blocks: Iterable[str]) -> str:
    """The document's text: the non-empty cleaned blocks, separated by a blank line."""
    return "\n\n".join(b for b in map(clean_block, blocks) if b)


def table_row(cells: Iterable[str]) -> str:
    """A table row as one block: its non-empty cells joined with `` | ``, a cell's paragraphs
    joined with a space so the row stays one line."""
    return " | ".join(c for c in (_SPACES.sub(" ", cell.replace("\n", " ")).strip() for cell in cells) if c)
