"""Page images of PDFs with the cited sentence (and its short answer) highlighted.

The boxes come from the document's :class:`~qa.layout.Layout` by character offsets; the page is
rendered from the file itself by pypdfium2, after checking the file is the version indexed.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

from .formats.pdf import PDFIUM, bounded_scale, map_boxes, oversized_images, page_matrix
from .layout import Layout

# Pixels per PDF point: 2 gives a letter page 1224 px wide, sharp at full size and on phones...
SCALE = 2.0
# ... but no page image has more pixels than this (an A2 poster at scale 2; 4 bytes each, twice
# over for the highlights): a page of 6,000 points square took 2.25 GB to draw at scale 2.
MAX_PAGE_PIXELS = 8_000_000
# Highlight colours (RGBA): the sentence, and more strongly the short answer inside it.
SENTENCE_FILL = (255, 214, 0, 90)
ANSWER_FILL = (255, 140, 0, 150)
ANSWER_EDGE = (200, 80, 0, 255)


class PageError(ValueError):
    """The page cannot be drawn: ``kind`` is ``missing`` (no such page), ``changed`` or
    ``unreadable`` (pdfium failed to draw it, or its images are too large to draw)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def render_page(
    path: Path, layout: Layout, page: int, sentence: tuple[int, int] | None = None,
    answer: tuple[int, int] | None = None, scale: float = SCALE,
) -> bytes:
    """PNG of ``page`` (1-based) of the PDF at ``path``, with the characters ``sentence`` and
    ``answer`` (offsets into the document's text) highlighted where they fall on this page; drawn
    at ``scale`` pixels a point, or less for a page over :data:`MAX_PAGE_PIXELS`."""
    import pypdfium2 as pdfium
    from PIL import Image, ImageDraw

    if not 1 <= page <= layout.pages:
        raise PageError("missing", f"page {page} does not exist; the document has {layout.pages}")
    try:
        data = path.read_bytes()
    except OSError:
        raise PageError("changed", f"{path.name} is no longer in the documents folder") from None
    if hashlib.sha256(data).hexdigest() != layout.source_sha256:
        raise PageError("changed", f"{path.name} has changed since it was indexed; the index catches up at the next sync")
    width, height = (float(v) for v in layout.sizes[page - 1])
    scale = bounded_scale(width, height, scale, MAX_PAGE_PIXELS)
    with PDFIUM:
        pdf = pdfium.PdfDocument(data)
        try:
            drawn = pdf[page - 1]
            too_large = oversized_images(drawn)
            if too_large:
                raise PageError("unreadable", f"page {page} of {path.name} {too_large}, too large to draw")
            image = drawn.render(scale=scale).to_pil().convert("RGBA")
            to_image = page_matrix(drawn, *image.size)  # boxes are in page space; the page may be turned
        except pdfium.PdfiumError as exc:
            raise PageError("unreadable", f"page {page} of {path.name} cannot be drawn ({exc})") from None
        finally:
            pdf.close()
    overlay = Image.new("RGBA", image.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    for span, fill, edge in ((sentence, SENTENCE_FILL, None), (answer, ANSWER_FILL, ANSWER_EDGE)):
        if span is None:
            continue
        for box in map_boxes(to_image, [b for p, *b in layout.boxes(*span) if p == page]):
            draw.rectangle(box.tolist(), fill=fill, outline=edge, width=2 if edge else 0)
    out = io.BytesIO()
    Image.alpha_composite(image, overlay).convert("RGB").save(out, format="PNG", optimize=False)
    return out.getvalue()
