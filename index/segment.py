"""Sentence and passage segmentation with exact character offsets.

Sentences come from syntok (a rule-based segmenter that reports token offsets), run over
blocks of text that end at paragraph breaks and at line breaks that end a line on purpose
(headings, list items, short lines). A small post-pass splits boundaries syntok misses when
a sentence ends with no space after it ("signed by [the firm].If we").
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass

from syntok import segmenter as _syntok

# A line this long is not hard-wrapped prose: each line of its paragraph is its own block.
_LONG_LINE = 100
# A "sentence" longer than this is text without sentence ends (a dump, a table flattened): it is
# cut at spaces into pieces no longer, so no citation quotes megabytes (docs/robustness.md).
MAX_SENTENCE_CHARS = 4000
_LAST_SPACE = re.compile(r"\s")
# A numbered item has at most three digits: "1901." at a wrapped line's start ends a sentence on a year.
_LIST_OR_HEADING = re.compile(r"^\s*(#{1,6}\s|[-*+]\s|\d{1,3}[.)]\s|>|\|)")
_HEADING = re.compile(r"^\s*#{1,6}\s")
_LONE_CR = re.compile(r"\r(?!\n)")
_BLANK_LINE = re.compile(r"\n[ \t]*\n")
_UNDERLINE = re.compile(r"^\s*(?:=+|-+)\s*$")
_FENCE = re.compile(r"^\s*(?:```|~~~)")
# ".If" glued: a word (two lowercase letters or a closing bracket) then terminal punctuation,
# then a capitalised word with no space between them.
_GLUED = re.compile(r"(?<=[a-z\]\)]{1}[a-z\]\)\"”’])[.!?][\"”’]?(?=[A-Z][a-z])")
# syntok ends a sentence after an enumeration-like "(c)" before a capital ("Copyright (c) The
# Regents of…"); prose never ends on one without punctuation, so the next sentence joins it.
_OPEN_MARKER = re.compile(r"\([A-Za-z]{1,3}\)$")
# syntok takes the initial "A." for a sentence starter: "Dr. A. Smith" is not two sentences.
_TITLE_END = re.compile(r"(?<![^\s(])(?:Mr|Mrs|Ms|Dr|Prof|Rev|Sr|Jr|St|Sen|Gen|Capt|Col)\.$")
_INITIAL = re.compile(r"[ \t]+[A-Z]\.\s")
# syntok never ends a sentence on a dotted name ("v2.1.3. Upgrade", "config.toml. Restart"); one
# after a word, holding a letter, its last part a version number or a word, is not an abbreviation.
_DOTTED_END = re.compile(r"(?<=\S[ \t])(?=\S*[A-Za-z])\S*\w(?:(?<=\d)\.\d+|\.(?=\d*[^\W\d_])[^\W_]{2,})\.(?=\s+[\"“]?[A-Z][a-z])")


@dataclass(frozen=True, slots=True)
class Span:
    """A half-open character range ``[start, end)`` into a text."""

    start: int
    end: int


@dataclass(frozen=True, slots=True)
class PassageSpan:
    """A passage: consecutive sentences ``first..last`` (inclusive) of one text."""

    start: int
    end: int
    first: int
    last: int


def _blocks(text: str) -> list[Span]:
    """Cut text at blank lines and at deliberate line ends; never inside wrapped prose."""
    blocks: list[Span] = []
    in_fence = False  # a code block may hold blank lines
    for para in re.finditer(r"\S(?:.|\n(?![ \t]*\n))*", text):
        lines = list(re.finditer(r"[^\n]+", para.group()))
        unwrapped = any(len(m.group()) > _LONG_LINE for m in lines) or len(lines) == 1
        current: Span | None = None
        ended = False
        for m in lines:
            s, e = para.start() + m.start(), para.start() + m.end()
            fence = bool(_FENCE.match(m.group()))
            if current is None:
                current = Span(s, e)
            # A list item or heading starts a block; a wrapped item's next lines continue it
            # ("3. You may opt to apply the terms of the ordinary GNU General Public\nLicense…").
            elif (unwrapped or _LIST_OR_HEADING.match(m.group()) or _HEADING.match(text[current.start:current.end])
                  or ended or fence and not in_fence):
                blocks.append(current)
                current = Span(s, e)
            else:
                current = Span(current.start, e)
            # A setext heading's underline or a closing code fence ends its block.
            ended = bool(_UNDERLINE.match(m.group())) or fence and in_fence
            in_fence ^= fence
        if current is not None:
            blocks.append(current)
    return blocks


def _strip(text: str, start: int, end: int) -> Span | None:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return Span(start, end) if end > start else None


def split_sentences(text: str) -> list[Span]:
    """Return sentence spans of ``text``; ``text[s.start:s.end]`` is the sentence, trimmed.

    Windows (CR LF) and classic Mac (CR) line ends are cut as LF ones: the text is segmented
    with LF alone and each span mapped back to ``text``'s offsets. A sentence longer than
    :data:`MAX_SENTENCE_CHARS` is cut into pieces."""
    text = _LONE_CR.sub("\n", text)  # one character for one: offsets unchanged
    if "\r\n" not in text:
        return _split(text)
    crs = [m.start() for m in re.finditer("\r\n", text)]
    # A view offset's original one: plus the CRs dropped before it (the k-th stood at crs[k] - k).
    shifts = [p - k for k, p in enumerate(crs)]

    def orig(i: int) -> int:
        return i + bisect.bisect_right(shifts, i)

    return [Span(orig(s.start), orig(s.end - 1) + 1) for s in _split(text.replace("\r\n", "\n"))]


def _split(text: str) -> list[Span]:
    out: list[Span] = []
    for block in _blocks(text):
        chunk = text[block.start:block.end]
        for paragraph in _syntok.analyze(chunk):
            for sentence in paragraph:
                s = block.start + sentence[0].offset
                e = block.start + sentence[-1].offset + len(sentence[-1].value)
                ends = [m.end() for rx in (_GLUED, _DOTTED_END) for m in rx.finditer(text, s, e)]
                cuts = [s, *sorted(set(ends)), e]
                for a, b in zip(cuts, cuts[1:]):
                    span = _strip(text, a, b)
                    if span is None:
                        continue
                    if not any(ch.isalnum() for ch in text[span.start:span.end]):
                        # A stray closing quote after a space belongs to the sentence before it;
                        # a paragraph without words ("***", a code fence) is no sentence.
                        if out and not _BLANK_LINE.search(text, out[-1].end, span.start):
                            out[-1] = Span(out[-1].start, span.end)
                    elif out and out[-1].start >= block.start and (
                        _ends_on_marker(text, out[-1].start, out[-1].end)
                        or _TITLE_END.search(text, max(out[-1].start, out[-1].end - 5), out[-1].end)
                        and _INITIAL.match(text, out[-1].end)
                    ):
                        out[-1] = Span(out[-1].start, span.end)
                    else:
                        out.append(span)
    return [piece for span in out for piece in _pieces(text, span)]


def _ends_on_marker(text: str, start: int, end: int) -> bool:
    """Does ``text[start:end]`` end with a word, spaces, then "(c)"? Looked for from the end only: a
    sentence these joins keep growing was searched whole each time, quadratic ("(a) " * 40,000: 57 s)."""
    m = _OPEN_MARKER.search(text, max(start, end - 5), end)
    if m is None:
        return False
    i = m.start()
    while i > start and text[i - 1].isspace():
        i -= 1
    return i > start


def _pieces(text: str, span: Span) -> list[Span]:
    """``span`` cut into pieces of at most :data:`MAX_SENTENCE_CHARS`, each at the last space or
    line end in its second half (else at the limit)."""
    out, start = [], span.start
    while span.end - start > MAX_SENTENCE_CHARS:
        limit = start + MAX_SENTENCE_CHARS
        cut = next(_LAST_SPACE.finditer(text[start + MAX_SENTENCE_CHARS // 2:limit][::-1]), None)
        end = limit - cut.start() - 1 if cut else limit
        piece = _strip(text, start, end)
        if piece is not None:
            out.append(piece)
        start = end
    piece = _strip(text, start, span.end)
    return [*out, piece] if piece is not None else out


def make_passages(sentences: list[Span], size: int, stride: int) -> list[PassageSpan]:
    """Overlapping windows of ``size`` consecutive sentences, advancing ``stride`` at a time
    (the index's shape is :data:`index.store.PASSAGE_SIZE` / ``PASSAGE_STRIDE``).

    Every sentence lies in at least one passage; the last window is anchored to the end so
    no tail is lost.
    """
    if size < 1 or not 1 <= stride <= size:
        raise ValueError(f"passage size={size}, stride={stride}: need size >= 1 and 1 <= stride <= size")
    n = len(sentences)
    if n == 0:
        return []
    starts = list(range(0, max(n - size, 0) + 1, stride))
    if starts[-1] + size < n:
        starts.append(n - size)
    return [
        PassageSpan(sentences[i].start, sentences[min(i + size, n) - 1].end, i, min(i + size, n) - 1)
        for i in starts
    ]
