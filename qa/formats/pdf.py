"""PDF reader: the text of each page in reading order, with every character's box.

pypdfium2 gives the characters of a page's text layer with their boxes and the line breaks it
infers. Lines are joined into paragraphs by their spacing; a word hyphenated at a line end is
joined; lines repeated at the top or bottom of most pages (running headers, footers, page
numbers) are dropped. Two columns of prose drawn line by line across the page are read column
by column, raised footnote marks after a word are left out, and a page's footnotes come after
the paragraph that runs over its page break. A page without a text layer is read from its image
by Tesseract, when it is installed. The result is a :class:`~qa.types.Document` whose
:class:`~qa.layout.Layout` places each character of the text on its page.
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
import re
import shutil
import subprocess
import threading
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..layout import LayoutBuilder
from ..types import Document

# PDFium is not thread-safe: every call into it, from any thread (reading files, drawing page
# images for citations), holds this lock.
PDFIUM = threading.RLock()

# The most pages a PDF may have (QA_MAX_PDF_PAGES overrides it for the server and the CLI).
MAX_PAGES = 2000
# Scanned pages are rendered at this resolution for OCR (Tesseract reads 300 dpi best).
OCR_DPI = 300
# ... but a page is never rendered to more pixels than this (four A4 pages at 300 dpi): a
# 300-byte PDF can declare a page of 5 by 5 metres, which Tesseract cannot read anyway.
MAX_OCR_PIXELS = 36_000_000
OCR_TIMEOUT_S = 120
# No page is rendered whose images hold more pixels than this (a letter page scanned at 600 dpi
# has 34 million): pdfium decodes an image whole to draw it grey, 1.3 GB for 20,000 px square.
MAX_IMAGE_PIXELS = 150_000_000
# A rendered page whose darkest and lightest grey differ by at most this is blank and not OCR'd
# (Tesseract takes about 0.4 s to find nothing on one).
BLANK_CONTRAST = 8
# A line ends its paragraph when the next line is further below than this many times the usual
# line pitch, or changes height (a heading) by more than this share.
PARAGRAPH_GAP = 1.35
HEIGHT_CHANGE = 0.2
# How many lines at each end of a page may be a running header or footer, and on what share of
# the pages a line must repeat to be one.
EDGE_LINES = 2
REPEAT_SHARE = 0.5
_PAGE_NUMBER = re.compile(r"^\s*(page\s*)?[-\u2013]?\s*\d{1,5}\s*[-\u2013]?(\s*(of|/)\s*\d{1,5})?\s*$", re.IGNORECASE)
_TERMINAL = tuple(".!?:;\"”’)")
# A line that starts with a bullet starts a list item, whatever its spacing (U+F0B7 and U+F0A7:
# the Symbol and Wingdings bullets of files saved from Word).
_BULLETS = tuple("•●▪◦‣■□○∙\uf0b7\uf0a7")
_SOFT_HYPHENS = ("\u00ad", "\x02")  # pdfium reports a soft hyphen as U+0002
_LINE_END_HYPHEN = "\ufffe"  # and a hyphen that ends a line it runs into the next as U+FFFE
_SPACES = np.array([c for c in range(0x3001) if chr(c).isspace()], np.uint32)
# Two columns drawn line by line across the page: a gap of at least COLUMN_GAP line heights at
# the same place in at least COLUMN_LINES lines is a gutter when it is at most GUTTER_WIDTH line
# heights wide, the pieces on each side of it hold COLUMN_CHARS characters or more and the left
# ones reach to within COLUMN_FILL of the widest (all medians): prose set in columns, not a table.
COLUMN_GAP = 1.0
GUTTER_WIDTH = 4.0
COLUMN_LINES = 3
COLUMN_CHARS = 20
COLUMN_FILL = 0.75
# A footnote mark drawn raised after a word ("sea level.³ The"): digits ("3", "1,2", "4-6") or
# the usual symbols, at most MARK_HEIGHT of its line's height and raised by MARK_RISE of it.
_MARK = re.compile(r"(\d{1,3}([,\u2013-]\d{1,3})*|[*\u2020\u2021\u00a7\u00b6]{1,3})")
MARK_HEIGHT = 0.8
MARK_RISE = 0.2
# A footnote: a line that starts with a mark ("3 Measured at…", "* In 1998.") at the bottom of
# its page, it and the lines under it at most FOOTNOTE_HEIGHT of the page's body text height.
_NOTE_START = re.compile(r"^(\d{1,3}|[*\u2020\u2021\u00a7\u00b6]{1,3}|[\u00b9\u00b2\u00b3\u2070\u2074-\u2079]{1,3})(\s|(?=[^\W\d_]))")
FOOTNOTE_HEIGHT = 0.85


@dataclass
class _Line:
    page: int  # 1-based
    text: str
    boxes: np.ndarray  # (len(text), 4): x0, y0, x1, y1
    new_paragraph: bool
    upright: np.ndarray | None = None  # the boxes turned so the text runs left to right (see _upright)
    footnote: bool = False  # a footnote at the bottom of its page (see _place_footnotes)

    @property
    def frame(self) -> np.ndarray:
        return self.boxes if self.upright is None else self.upright

    @property
    def height(self) -> float:
        return float(np.median(self.frame[:, 3] - self.frame[:, 1]))


def tesseract() -> str | None:
    """The Tesseract executable, or None when it is not installed."""
    return shutil.which("tesseract")


def parse_pdf(data: bytes, doc_id: str, max_pages: int | None = None) -> Document:
    """Read a PDF's bytes (see the module's docstring); :class:`~qa.ingest.IngestError` when it
    is encrypted, damaged, longer than ``max_pages`` or holds no text."""
    import pypdfium2 as pdfium

    from ..ingest import MAX_DOCUMENT_BYTES, IngestError, document_title, reading_at, short_title

    max_pages = MAX_PAGES if max_pages is None else max_pages
    try:
        with PDFIUM:
            pdf = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        if "password" in str(exc).lower():
            raise IngestError(f"{doc_id}: the PDF is encrypted (password protected); save a copy without the password "
                              "and add that") from None
        raise IngestError(f"{doc_id}: not a readable PDF ({exc}); the file is damaged or not a PDF") from None
    warnings: list[str] = []
    lines, sizes, ocr = [], [], []
    chars = 0
    exe = tesseract()
    try:
        with PDFIUM:
            pages = len(pdf)
            meta = pdf.get_metadata_dict(skip_empty=True)
        if pages > max_pages:
            raise IngestError(f"{doc_id}: {pages} pages; the limit is {max_pages} (QA_MAX_PDF_PAGES): "
                              "split the PDF into smaller files")
        for number in range(1, pages + 1):
            reading_at(doc_id, f"page {number} of {pages}")
            image = None
            with PDFIUM:  # one page at a time, so page images for citations are drawn in between
                page = pdf[number - 1]
                try:
                    sizes.append(page.get_size())
                    page_lines = _text_lines(page, number)
                    too_large = oversized_images(page) if not page_lines and exe is not None else None
                    if too_large:
                        warnings.append(f"{doc_id}: page {number} has no text layer and {too_large}, "
                                        "too large for OCR, so it was not read")
                    elif not page_lines and exe is not None:
                        scale = ocr_scale(*sizes[-1])
                        image = page.render(scale=scale, grayscale=True).to_pil()
                        to_page = np.linalg.inv(np.vstack([page_matrix(page, *image.size), [0, 0, 1]]))[:2]
                        lo, hi = image.getextrema()
                        if hi - lo <= BLANK_CONTRAST:
                            image = None  # a blank page: nothing for Tesseract to read in it
                finally:
                    page.close()
            if not page_lines and exe is None:
                warnings.append(f"{doc_id}: page {number} has no text layer and Tesseract (tesseract-ocr) "
                                "is not installed, so it was not read")
            elif image is not None:  # OCR runs outside the lock: it is a process of its own
                page_lines = _ocr_lines(image, scale, to_page, number, exe, doc_id)
            ocr.append(image is not None and bool(page_lines))
            lines.extend(page_lines)
            chars += sum(len(line.text) for line in page_lines)
            # Checked page by page: a few kilobytes of compressed PDF can hold a text layer of
            # gigabytes, and reading it all before refusing it would take minutes.
            if chars > MAX_DOCUMENT_BYTES:
                raise IngestError(f"{doc_id}: over {MAX_DOCUMENT_BYTES} characters of text by page {number} of {pages}; "
                                  "split it into smaller files")
    except pdfium.PdfiumError as exc:
        raise IngestError(f"{doc_id}: the PDF cannot be read ({exc}); the file is damaged") from None
    finally:
        with PDFIUM:
            pdf.close()
    lines = _place_footnotes(_drop_running_lines(lines, len(sizes)))
    text, layout = _assemble(lines, sizes, ocr, hashlib.sha256(data).hexdigest())
    if not text.strip():
        raise IngestError(f"{doc_id}: no text found in the PDF" + (f" ({'; '.join(warnings)})" if warnings else ""))
    title = short_title(document_title(_meta_title(meta.get("Title", "")), text))
    return Document(id=doc_id, title=title or Path(doc_id).stem, date=_meta_date(meta.get("CreationDate", "")),
                    text=text, kind="pdf", layout=layout, warnings=tuple(warnings))


def _text_lines(page, number: int) -> list[_Line]:
    """The lines of ``page``'s text layer, trimmed, with their characters' boxes."""
    import pypdfium2.raw as raw

    tp = page.get_textpage()
    try:
        n = tp.count_chars()
        if n <= 0:
            return []
        text = tp.get_text_range(0, n)
        if len(text) != n:  # characters outside the BMP: one per index, read one at a time
            text = "".join(chr(raw.FPDFText_GetUnicode(tp, i)) for i in range(n))
        if not text.strip():
            return []
        rect = raw.FS_RECTF()
        boxes = np.empty((n, 4), np.float32)
        for i in range(n):
            # Loose boxes span the font's ascent to descent: one height per line, as a reader highlights.
            raw.FPDFText_GetLooseCharBox(tp, i, rect)
            boxes[i] = (rect.left, rect.bottom, rect.right, rect.top)
    finally:
        tp.close()
    lines: list[_Line] = []
    upright = _upright(text, boxes) if page.get_rotation() else None  # a page drawn turned, to be read turned back
    for keep in _line_spans(text, boxes if upright is None else upright):
        while keep and text[keep[0]].isspace():
            keep.pop(0)
        while keep and text[keep[-1]].isspace():
            keep.pop()
        if keep:
            keep = _without_marks(text, boxes if upright is None else upright, keep)
            line = "".join(text[i] for i in keep).replace(_LINE_END_HYPHEN, "-")
            lines.append(_Line(number, line, boxes[keep], False, None if upright is None else upright[keep]))
    lines = _columns(lines)
    _mark_paragraphs(lines)
    return lines


def _columns(lines: list[_Line]) -> list[_Line]:
    """A page's ``lines`` read column by column where the file draws two columns line by line
    across the page (pdfium then reads "…finished in 1820 by the Tides at Port Ellis…", each
    line of the left column glued to the right's on its baseline): lines are cut at the gutter,
    and between lines that cross it (a title, a table), the left column's pieces come before the
    right's, in each band of lines that reads as prose set in columns (:data:`GUTTER_WIDTH`)."""
    gaps = []  # (line, where its right piece starts, the gap's left and right edges)
    for n, line in enumerate(lines):
        ink = np.array([i for i, ch in enumerate(line.text) if not ch.isspace()])
        frame = line.frame
        wide = np.flatnonzero(frame[ink[1:], 0] - frame[ink[:-1], 2] > COLUMN_GAP * line.height)
        gaps += [(n, int(ink[k + 1]), float(frame[ink[k], 2]), float(frame[ink[k + 1], 0])) for k in wide]
    if len(gaps) < COLUMN_LINES:
        return lines
    spans = np.array([(x0, x1) for _, _, x0, x1 in gaps])
    mids = np.unique(np.round(spans.mean(axis=1)))  # to the point: the places to try
    # The gaps around each place: those begun before it less those ended by it (sorted, not a grid).
    counts = (np.searchsorted(np.sort(spans[:, 0]), mids, side="left")
              - np.searchsorted(np.sort(spans[:, 1]), mids, side="right"))
    extents = [_ink(line) for line in lines]
    for k in np.argsort(-counts, kind="stable")[:8]:
        if counts[k] < COLUMN_LINES:
            break
        gutter = float(mids[k])
        cut = {n: b for n, b, x0, x1 in gaps if x0 < gutter < x1}
        out: list[_Line] = []
        band: list[int] = []
        found = False
        for n in [*range(len(lines)), None]:
            if n is not None and (n in cut or not extents[n][0] < gutter < extents[n][1]):
                band.append(n)
                continue
            if _prose_columns(lines, band, cut):
                pieces = [p for m in band for p in (
                    (_piece(lines[m], 0, cut[m]), _piece(lines[m], cut[m], len(lines[m].text))) if m in cut else (lines[m],))]
                left = [_ink(p)[1] <= gutter for p in pieces]  # no piece crosses the gutter: lines that do end a band
                out += [p for p, is_left in zip(pieces, left) if is_left]
                out += [p for p, is_left in zip(pieces, left) if not is_left]
                found = True
            else:
                out += [lines[m] for m in band]
            if n is not None:
                out.append(lines[n])
            band = []
        if found:
            return out
    return lines


def _ink(line: _Line) -> tuple[float, float]:
    """Where ``line``'s ink begins and ends across the page."""
    frame = line.frame[[i for i, ch in enumerate(line.text) if not ch.isspace()]]
    return float(frame[:, 0].min()), float(frame[:, 2].max())


def _prose_columns(lines: list[_Line], band: list[int], cut: dict[int, int]) -> bool:
    """Do the lines ``band`` of a page, cut at ``cut``, read as two columns of prose: enough of
    them cut, a gutter no wider than :data:`GUTTER_WIDTH` line heights, pieces of
    :data:`COLUMN_CHARS` or more characters and left ones that fill their column (medians)?"""
    rows = [n for n in band if n in cut]
    if (len(rows) < COLUMN_LINES or np.median([len(lines[n].text[:cut[n]].strip()) for n in rows]) < COLUMN_CHARS
            or np.median([len(lines[n].text[cut[n]:].strip()) for n in rows]) < COLUMN_CHARS):
        return False
    lefts = [_ink(_piece(lines[n], 0, cut[n])) for n in rows]
    rights = [_ink(_piece(lines[n], cut[n], len(lines[n].text))) for n in rows]
    width = min(x0 for x0, _ in rights) - max(x1 for _, x1 in lefts)
    widths = np.array([x1 - x0 for x0, x1 in lefts])
    return bool(width <= GUTTER_WIDTH * np.median([lines[n].height for n in rows])
                and np.median(widths) >= COLUMN_FILL * widths.max())


def _piece(line: _Line, start: int, end: int) -> _Line:
    """The characters ``[start, end)`` of ``line``, without spaces at their ends."""
    while line.text[end - 1].isspace():
        end -= 1
    while line.text[start].isspace():
        start += 1
    return _Line(line.page, line.text[start:end], line.boxes[start:end], line.new_paragraph,
                 None if line.upright is None else line.upright[start:end])


def _line_spans(text: str, boxes: np.ndarray) -> list[list[int]]:
    """The characters of each visual line of a page's text. pdfium breaks lines with CR LF but
    runs a line that ends in a hyphen into the next (writing the hyphen as U+FFFE); such a line
    ends after its hyphen, and wherever the text drops to a lower baseline. pdfium also breaks
    at a superscript or subscript; a break whose text goes on along the same line is dropped."""
    lines, current, prev, broke = [], [], -1, False  # prev: the last character with a box
    for i, ch in enumerate(text):
        if ch in "\r\n":
            broke = True
            continue
        if not ch.isspace():
            if prev >= 0 and (not _runs_on(boxes[prev], boxes[i]) if broke else text[prev] == _LINE_END_HYPHEN
                              or _lower_line(boxes[prev], boxes[i]) and not _runs_on(boxes[prev], boxes[i])):
                lines.append(current)
                current = []
            prev, broke = i, False
        current.append(i)
    lines.append(current)
    return lines


def _runs_on(before: np.ndarray, after: np.ndarray) -> bool:
    """Does the box ``after`` follow ``before`` closely on the same line (a raised or lowered
    mark between them, as in "hand¹ in" or "H₂O")?"""
    overlap = min(before[3], after[3]) - max(before[1], after[1])
    height = min(before[3] - before[1], after[3] - after[1])
    return bool(height > 0 and overlap > 0.5 * height and -0.1 * height <= after[0] - before[2] <= 0.5 * height)


def _without_marks(text: str, boxes: np.ndarray, keep: list[int]) -> list[int]:
    """``keep`` (a line's characters) without its footnote marks: a run of raised, smaller
    characters that reads as a mark (:data:`_MARK`), right after a sentence's punctuation or a
    word of three letters or more, and before a space, punctuation or the line's end. Glued in,
    "sea level.³ The" read "sea level.3 The", one sentence with the next; an exponent after a
    number or a unit ("10⁶", "m²", "km²") is kept."""
    frame = boxes[keep]
    heights = frame[:, 3] - frame[:, 1]
    if heights.min() > MARK_HEIGHT * heights.max():  # one size throughout: no mark (most lines)
        return keep
    height, bottom = float(np.median(heights)), float(np.median(frame[:, 1]))
    raised = (heights <= MARK_HEIGHT * height) & (frame[:, 1] >= bottom + MARK_RISE * height)
    if height <= 0 or not raised.any():
        return keep
    drop: set[int] = set()
    j = 0
    while j < len(keep):
        if not raised[j]:
            j += 1
            continue
        end = j
        while end < len(keep) and raised[end]:
            end += 1
        # At a line's start a raised number is a footnote's own ("¹ Measured at…"): kept, so the note is found.
        before = text[keep[j - 1]] if j else "\n"
        word = 0
        while word < min(j, 3) and text[keep[j - 1 - word]].isalpha():  # three letters decide: linear in the line
            word += 1
        after = text[keep[end]] if end < len(keep) else " "
        if (_MARK.fullmatch("".join(text[i] for i in keep[j:end]))
                and (before in ".,;:!?)]\"'\u201d\u2019" or word >= 3) and (after.isspace() or after in ".,;:!?)")):
            drop.update(range(j, end))
        j = end
    return [i for n, i in enumerate(keep) if n not in drop]


def _upright(text: str, boxes: np.ndarray) -> np.ndarray | None:
    """``boxes`` turned by a multiple of 90 degrees so that the page's text runs left to right
    (a landscape page is often drawn turned a quarter); only the layout reads them so. None when
    the text already runs so, or when no direction holds 90% of it (a turned table beside an
    upright caption is read as drawn, each line in its own direction)."""
    codes = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), "<u4")
    breaks = np.cumsum((codes == 10) | (codes == 13))
    ink = np.flatnonzero(~np.isin(codes, _SPACES))
    a, b = ink[:-1], ink[1:]
    a, b = a[breaks[a] == breaks[b]], b[breaks[a] == breaks[b]]  # neighbours on one of pdfium's lines
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    dx, dy = (centres[b] - centres[a]).T
    flat = np.abs(dx) >= np.abs(dy)
    votes = Counter({"right": int((flat & (dx > 0)).sum()), "left": int((flat & (dx < 0)).sum()),
                     "up": int((~flat & (dy > 0)).sum()), "down": int((~flat & (dy < 0)).sum())})
    x0, y0, x1, y1 = boxes.T
    turned = {"up": (y0, -x1, y1, -x0), "down": (-y1, x0, -y0, x1), "left": (-x1, -y1, -x0, -y0)}
    way = max(votes, key=lambda k: (votes[k], k == "right"))
    if way == "right" or votes[way] < 0.9 * sum(votes.values()):
        return None
    return np.stack(turned[way], axis=1)


def _lower_line(before: np.ndarray, after: np.ndarray) -> bool:
    """Does the box ``after`` sit on a line below ``before`` (its top under their middle)?"""
    return bool(after[3] < (before[1] + before[3]) / 2)


def _mark_paragraphs(lines: list[_Line]) -> None:
    """Set ``new_paragraph`` on the lines of one page from their spacing and heights: the usual
    pitch is taken among lines of about the same height, so a title's wider leading is not a gap."""
    if not lines:
        return
    bottoms = [float(np.median(ln.frame[:, 1])) for ln in lines]
    heights = [ln.height for ln in lines]
    pitches = [a - b for a, b in zip(bottoms, bottoms[1:])]

    def similar(h1: float, h2: float) -> bool:
        return abs(h1 - h2) <= HEIGHT_CHANGE * max(h1, h2, 1e-3)

    lines[0].new_paragraph = True
    for i, pitch in enumerate(pitches):
        h = heights[i + 1]
        same = [q for j, q in enumerate(pitches)
                if j != i and q > 0 and similar(heights[j], h) and similar(heights[j + 1], h)]
        usual = float(np.median(same)) if same else 1.2 * h
        # Back up the page: a new column, read on as over a page break, or a box placed out of order.
        column = pitch <= 0 and lines[i + 1].frame[0, 0] >= lines[i].frame[:, 2].max()
        lines[i + 1].new_paragraph = (
            (lines[i].text.endswith(_TERMINAL) if column else pitch <= 0)
            or pitch > PARAGRAPH_GAP * min(usual, 2 * h)
            or not similar(heights[i], h)  # a heading begins or ends
        )


def oversized_images(page) -> str | None:
    """What is too large about the images drawn on ``page`` (inside its forms too), when they
    hold over :data:`MAX_IMAGE_PIXELS` in all; their sizes are read without decoding them."""
    import pypdfium2.raw as raw

    sizes = [obj.get_px_size() for obj in page.get_objects(filter=[raw.FPDF_PAGEOBJ_IMAGE])]
    total = sum(w * h for w, h in sizes)
    if total <= MAX_IMAGE_PIXELS:
        return None
    w, h = max(sizes, key=lambda size: size[0] * size[1])
    return (f"holds images of {total / 1e6:,.0f} million pixels (the largest {w:,} x {h:,}; "
            f"the limit is {MAX_IMAGE_PIXELS / 1e6:,.0f} million)")


def bounded_scale(width: float, height: float, scale: float, max_pixels: float) -> float:
    """``scale`` pixels per point for a page of ``width`` by ``height`` points, or less where the
    image would exceed ``max_pixels`` (a few hundred bytes of PDF can declare a page 5 m wide)."""
    return min(scale, math.sqrt(max_pixels / max(width * height, 1.0)))


def ocr_scale(width: float, height: float) -> float:
    """Pixels per point at which a page is rendered for OCR: :data:`OCR_DPI`, or less for a page
    that would exceed :data:`MAX_OCR_PIXELS`."""
    return bounded_scale(width, height, OCR_DPI / 72, MAX_OCR_PIXELS)


def page_matrix(page, width_px: int, height_px: int) -> np.ndarray:
    """The 2x3 affine map from ``page``'s space (PDF points, as its boxes are) to the pixels of
    the page drawn ``width_px`` by ``height_px``, its /Rotate and crop box included."""
    import ctypes

    import pypdfium2.raw as raw

    fine = 1000  # pdfium answers in whole device pixels: ask on a finer grid
    out = []
    for x, y in ((0.0, 0.0), (100.0, 0.0), (0.0, 100.0)):
        dx, dy = ctypes.c_int(), ctypes.c_int()
        raw.FPDF_PageToDevice(page.raw, 0, 0, width_px * fine, height_px * fine, 0, x, y, dx, dy)
        out.append((dx.value / fine, dy.value / fine))
    (ox, oy), (ax, ay), (bx, by) = out
    return np.array([[(ax - ox) / 100, (bx - ox) / 100, ox], [(ay - oy) / 100, (by - oy) / 100, oy]])


def map_boxes(matrix: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """``boxes`` (x0, y0, x1, y1 rows) through the affine ``matrix``, as boxes again."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    xs = matrix[0, 0] * boxes[:, [0, 2]] + matrix[0, 1] * boxes[:, [1, 3]] + matrix[0, 2]
    ys = matrix[1, 0] * boxes[:, [0, 2]] + matrix[1, 1] * boxes[:, [1, 3]] + matrix[1, 2]
    return np.stack([xs.min(1), ys.min(1), xs.max(1), ys.max(1)], axis=1)


def _ocr_lines(image, scale: float, to_page: np.ndarray, number: int, exe: str, doc_id: str) -> list[_Line]:
    """Read a page without a text layer from its image, rendered at ``scale`` pixels per point
    (:func:`ocr_scale`), with Tesseract; each word's box is spread over its characters, and
    ``to_page`` maps the image's pixels to the page's space (the page may be turned)."""
    from ..ingest import IngestError

    png = io.BytesIO()
    image.save(png, format="PNG")
    try:
        done = subprocess.run([exe, "stdin", "stdout", "--psm", "3", "-l", "eng", "tsv"], input=png.getvalue(),
                              capture_output=True, timeout=OCR_TIMEOUT_S, check=True)
    except subprocess.TimeoutExpired:
        raise IngestError(f"{doc_id}: OCR of page {number} took over {OCR_TIMEOUT_S} s") from None
    except subprocess.CalledProcessError as exc:
        raise IngestError(f"{doc_id}: OCR of page {number} failed: {exc.stderr.decode(errors='replace')[-300:]}") from None
    words: dict[tuple[int, int, int], list[tuple[str, list[float]]]] = {}
    for row in csv.DictReader(io.StringIO(done.stdout.decode("utf-8", errors="replace")), delimiter="\t", quoting=csv.QUOTE_NONE):
        word = (row.get("text") or "").strip()
        if row.get("level") != "5" or not word:
            continue
        left, top, w, h = (int(row[k]) / scale for k in ("left", "top", "width", "height"))
        key = (int(row["block_num"]), int(row["par_num"]), int(row["line_num"]))
        words.setdefault(key, []).append((word, [left, -top - h, left + w, -top]))  # upright, y up
    lines, last_par = [], None
    for (block, par, _), items in words.items():
        text, boxes = "", []
        for word, (x0, y0, x1, y1) in items:
            if text:
                text += " "
                boxes.append([boxes[-1][2], y0, x0, y1])  # the gap between the words
            edges = np.linspace(x0, x1, len(word) + 1)
            text += word
            boxes.extend([edges[i], y0, edges[i + 1], y1] for i in range(len(word)))
        upright = np.asarray(boxes, np.float32)
        pixels = np.stack([upright[:, 0], -upright[:, 3], upright[:, 2], -upright[:, 1]], axis=1) * scale
        placed = map_boxes(to_page, pixels).astype(np.float32)
        lines.append(_Line(number, text, placed, (block, par) != last_par, upright))
        last_par = (block, par)
    return lines


def _drop_running_lines(lines: list[_Line], pages: int) -> list[_Line]:
    """Without the lines near the top or bottom of a page that are a page number ("7", "Page 3
    of 9") or that repeat there on most pages (digits ignored, so "Page 3" matches "Page 4", when
    their numbers stay the same or count the pages: an invoice's "Total 350.00" is kept)."""
    by_page: dict[int, list[int]] = {}
    for i, line in enumerate(lines):
        by_page.setdefault(line.page, []).append(i)

    def key(line: _Line) -> str:
        return re.sub(r"\d+", "#", " ".join(line.text.lower().split()))

    keys = {i: key(lines[i]) for rows in by_page.values() for i in sorted(set(rows[:EDGE_LINES] + rows[-EDGE_LINES:]))}
    found: dict[str, list[_Line]] = {}  # the edge lines alike, in page order
    for i, k in keys.items():
        found.setdefault(k, []).append(lines[i])
    need = max(2, math.ceil(REPEAT_SHARE * pages))
    running = {k for k, group in found.items()
               if pages >= 2 and len({ln.page for ln in group}) >= need and _numbers_follow_pages(group)}
    drop = {i for i, k in keys.items() if k in running or _PAGE_NUMBER.match(lines[i].text)}
    return [line for i, line in enumerate(lines) if i not in drop]


def _place_footnotes(lines: list[_Line]) -> list[_Line]:
    """``lines`` with each page's footnotes marked, and moved after the paragraph that runs on
    from their page to the next: read where drawn, a sentence over a page break was cut by the
    footnotes between its halves, or ran on into the last one. A footnote block is the run of
    lines ending a page that starts with a mark (:data:`_NOTE_START`), lies under the page's
    other lines and is smaller than its body text; each line of it that starts with a mark after
    one that ends a sentence is a note of its own."""
    by_page: dict[int, list[_Line]] = {}
    for line in lines:
        by_page.setdefault(line.page, []).append(line)
    notes: dict[int, int] = {}  # page: where its footnotes start among its lines
    for page, rows in by_page.items():
        sizes = np.array([len(ln.text) for ln in rows], float)
        heights = np.array([ln.height for ln in rows])
        body = float(np.median(np.repeat(heights, sizes.astype(int))))
        start = len(rows)
        while start > 0 and heights[start - 1] <= FOOTNOTE_HEIGHT * body:
            start -= 1
        while start < len(rows) and not _NOTE_START.match(rows[start].text):
            start += 1
        if 0 < start < len(rows) and max(ln.frame[:, 3].max() for ln in rows[start:]) <= min(
                float(ln.frame[:, 1].min()) for ln in rows[:start]):
            notes[page] = start
    if not notes:
        return lines
    out: list[_Line] = []
    pending: list[_Line] = []  # footnotes waiting for the paragraph they sit in to end
    for page, rows in by_page.items():
        start = notes.get(page, len(rows))
        for n, line in enumerate(rows[:start]):
            if pending and n and (line.new_paragraph or line.text.startswith(_BULLETS)):
                out.extend(pending)
                pending = []
            out.append(line)
        for n, line in enumerate(rows[start:]):
            line.footnote = True
            line.new_paragraph = not n or line.new_paragraph or (
                bool(_NOTE_START.match(line.text)) and rows[start + n - 1].text.endswith(_TERMINAL))
        pending.extend(rows[start:])
        if not start or rows[start - 1].text.endswith(_TERMINAL):  # the next page starts a paragraph
            out.extend(pending)
            pending = []
    return out + pending


def _numbers_follow_pages(group: list[_Line]) -> bool:
    """Do the numbers of lines alike but for digits stay the same or count the pages, from each
    page to the next, at least half the time ("Page 3", "Report 2024 | 17"; not "Total 350.00")?"""
    numbers = [re.findall(r"\d+", line.text) for line in group]
    for column in zip(*numbers):
        pairs = list(zip(group, column, group[1:], column[1:]))
        fits = sum(int(b) - int(a) in (0, q.page - p.page) for p, a, q, b in pairs)
        if pairs and 2 * fits < len(pairs):
            return False
    return True


def _assemble(lines: list[_Line], sizes: list[tuple[float, float]], ocr: list[bool], source_sha256: str):
    """Join the lines into the document's text: paragraphs apart by a blank line, the lines of
    one paragraph by a space. A hyphen at a line end joins the next line directly, and is left
    out when it only split a word ("exam-" + "ple"; kept in "Franco-" + "German"), as is a soft
    hyphen. A page's first line continues the paragraph before it unless that one ended a
    sentence."""
    joins: list[tuple[str, bool]] = [("", False)]  # between line n-1 and line n: separator, drop n-1's last character
    # The right edge of the bullet of the list item being read (None outside a list).
    item = lines[0].frame[0, 2] if lines and lines[0].text.startswith(_BULLETS) else None
    for prev, line in zip(lines, lines[1:]):
        bullet = line.text.startswith(_BULLETS)
        # A list item's wrapped lines are indented past its bullet; a line that is not ends the list.
        ends_item = item is not None and not bullet and line.frame[0, 0] < item
        if line.footnote or prev.footnote:  # a footnote is a paragraph; the page's text runs on past it
            new = line.new_paragraph if line.footnote and line.page == prev.page else True
        else:
            new = bullet or ends_item or (line.new_paragraph if line.page == prev.page else prev.text.endswith(_TERMINAL))
        item = line.frame[0, 2] if bullet else None if new else item
        if new:
            joins.append(("\n\n", False))
        elif prev.text.endswith(_SOFT_HYPHENS):
            joins.append(("", True))
        elif re.search(r"[^\W\d_]-$", prev.text):
            joins.append(("", line.text[:1].islower()))
        else:
            joins.append((" ", False))
    out = LayoutBuilder()
    for n, line in enumerate(lines):
        out.text(joins[n][0])
        drop = joins[n + 1][1] if n + 1 < len(lines) else line.text.endswith(_SOFT_HYPHENS)
        end = len(line.text) - 1 if drop else len(line.text)
        out.placed(line.text[:end], line.page, n, line.boxes[:end])
    return out.build(sizes, ocr, source_sha256)


def _meta_title(title: str) -> str:
    """The metadata title, unless it is a placeholder a tool wrote."""
    title = re.sub(r"^Microsoft (Word|PowerPoint) - ", "", title.strip())
    if not title or title.lower() in {"untitled", "(anonymous)", "(unspecified)"} or re.fullmatch(r"[\w-]+\.(docx?|pdf|txt)", title):
        return ""
    return title


def _meta_date(value: str) -> str | None:
    """``D:YYYYMMDD...`` (the PDF date format) as an ISO date."""
    m = re.match(r"D:(\d{4})(\d{2})(\d{2})", value.strip())
    if not m:
        return None
    y, mo, d = (int(g) for g in m.groups())
    if not (1 <= mo <= 12 and 1 <= d <= 31 and 1000 < y < 3000):
        return None
    return f"{y:04d}-{mo:02d}-{d:02d}"
