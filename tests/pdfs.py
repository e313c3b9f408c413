"""Real PDFs for the tests, drawn line by line with reportlab so line ends and page breaks are
where a test needs them (a hyphen at a line end, a sentence across a page break)."""

from __future__ import annotations

import io

from qa.formats.pdf import PDFIUM

# Two pages of a small report: the first paragraph hyphenates "northern" at a line end and
# keeps the hyphen of "Port-Ellis" at another; the third runs over the page break. Every page
# has a running header and a page-number footer, which must not become sentences.
TITLE = "The Harbour Board Report"
HEADER = "Harbour Board of Port Ellis - annual report"
PAGES = [
    [
        ("title", TITLE),
        ("gap", ""),
        ("line", "The lighthouse of Port Ellis was built by Ada Brunel in 1871 and stands on the north-"),
        ("line", "ern breakwater. Its lamp was converted to electricity in 1923 by the Port-"),
        ("line", "Ellis Electric Company."),
        ("gap", ""),
        ("line", "Fishing boats land their catch at the east quay every morning except Sunday."),
        ("gap", ""),
        ("line", "The keepers logged every ship that entered the harbour, and the logbooks were kept at"),
    ],
    [
        ("line", "the town hall until a fire destroyed them in 1950. A museum now holds the lamp."),
        ("gap", ""),
        ("line", "Visitors may climb the tower on Sundays between May and September."),
    ],
]


def report_pdf(pages: list[list[tuple[str, str]]] = PAGES, title: str = TITLE, running: bool = True,
               encrypt: str | None = None) -> bytes:
    """Draw ``pages`` (``(kind, text)`` lines: ``title``, ``line`` or ``gap``) on letter pages,
    with the title in the metadata, a running header and footer, and optionally a password."""
    from reportlab.lib.pagesizes import letter
    from reportlab.pdfgen.canvas import Canvas

    buf = io.BytesIO()
    kwargs = {}
    if encrypt:
        from reportlab.lib.pdfencrypt import StandardEncryption

        kwargs["encrypt"] = StandardEncryption(encrypt)
    canvas = Canvas(buf, pagesize=letter, **kwargs)
    canvas.setTitle(title)
    for number, lines in enumerate(pages, start=1):
        if running:
            canvas.setFont("Helvetica", 8)
            canvas.drawString(72, 760, HEADER)
            canvas.drawString(500, 30, f"Page {number} of {len(pages)}")
        y = 700.0
        for kind, text in lines:
            if kind == "title":
                canvas.setFont("Helvetica-Bold", 18)
                canvas.drawString(72, y, text)
                y -= 26
            elif kind == "gap":
                y -= 8
            else:
                canvas.setFont("Helvetica", 11)
                canvas.drawString(72, y, text)
                y -= 14
        canvas.showPage()
    canvas.save()
    return buf.getvalue()


def join_pages(first: bytes, second: bytes, pages: list[int]) -> bytes:
    """``first`` followed by the (0-based) ``pages`` of ``second``."""
    import pypdfium2 as pdfium

    with PDFIUM:
        doc, other = pdfium.PdfDocument(first), pdfium.PdfDocument(second)
        try:
            doc.import_pages(other, pages)
            out = io.BytesIO()
            doc.save(out)
        finally:
            other.close()
            doc.close()
    return out.getvalue()


def read_boxes(pdf: bytes, boxes) -> str:
    """The text pypdfium2 reads inside ``boxes`` (``[page, x0, y0, x1, y1]``), whitespace collapsed."""
    import pypdfium2 as pdfium

    with PDFIUM:
        doc = pdfium.PdfDocument(pdf)
        try:
            parts = [doc[p - 1].get_textpage().get_text_bounded(x0, y0, x1, y1) for p, x0, y0, x1, y1 in boxes]
        finally:
            doc.close()
    return " ".join(" ".join(parts).split())


def huge_image_pdf(width: int, height: int, text: str = "") -> bytes:
    """A letter page filled by one white RGB image of ``width`` by ``height`` pixels, with ``text``
    over it: compressed twice, a few kilobytes on disk however large, and built without decoding."""
    import zlib

    row = b"\xff" * (3 * width)
    raw = zlib.compressobj(9, zlib.DEFLATED, -15)  # a block flushed whole can be repeated as it is
    block = raw.compress(row) + raw.flush(zlib.Z_FULL_FLUSH)
    check = 1
    for _ in range(height):
        check = zlib.adler32(row, check)
    stream = zlib.compress(b"\x78\xda" + block * height + b"\x03\x00" + check.to_bytes(4, "big"), 9)
    content = b"q 612 0 0 792 0 0 cm /Im0 Do Q" + (f" BT /F1 12 Tf 72 700 Td ({text}) Tj ET".encode() if text else b"")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 5 0 R "
        b"/Resources << /XObject << /Im0 4 0 R >> /Font << /F1 6 0 R >> >> >>",
        f"<< /Type /XObject /Subtype /Image /Width {width} /Height {height} /ColorSpace /DeviceRGB /BitsPerComponent 8 "
        f"/Filter [/FlateDecode /FlateDecode] /Length {len(stream)} >>\nstream\n".encode() + stream + b"\nendstream",
        f"<< /Length {len(content)} >>\nstream\n".encode() + content + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out, offsets = bytearray(b"%PDF-1.5\n"), []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode() + b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)
