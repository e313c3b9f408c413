"""Convert a folder of plain-text articles into other formats, to score ingest of each format.

Each ``.txt`` file of SRC_DIR (a title line, a date line such as ``Published: …`` or
``date …``, then paragraphs separated by blank lines; read with :func:`qa.ingest.parse_text`)
becomes ``OUT_DIR/<format>/<stem><suffix>`` for each format asked:

- ``docx``: a Word file made with python-docx: the title as a Title paragraph, then one
  paragraph per paragraph (or head line) of the text; core properties title and created set.
- ``html``: a realistic news page: <title>, og:title and article:published_time in its head, a
  navigation bar, a cookie banner, the article in <article> (<h1>, one <p> per paragraph), a
  footer and scripts that would change the text if anything ran them.

- ``pdf``: a text-layer PDF made with reportlab: the title in a Title style, one paragraph per
  paragraph, title and date in the file's metadata, a running header and a page-number footer.
- ``scanned``: the same PDF as 200 dpi page images without a text layer, read back by OCR.

Then ``qa eval eval/seeds.jsonl --docs OUT_DIR/<format> --json-out R.json`` scores the bot over
that format, to compare with the same over SRC_DIR; ``check R.json OUT_DIR/pdf`` verifies every
PDF citation of the report against the PDF itself (its page, and the text pypdfium2 reads inside
its boxes), and ``speed DIR`` measures how fast a folder's PDFs are read, with and without the
embedding.
"""

from __future__ import annotations

import argparse
import html
import io
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path

from qa.ingest import parse_text
from qa.types import Document


@dataclass(frozen=True)
class Article:
    """A text document as an article: its title, date and paragraphs (the head's lines other
    than the title, such as the date line, each a paragraph of their own)."""

    title: str
    date: str | None
    paragraphs: list[str]


def article(doc: Document) -> Article:
    """Split a plain-text document into its title and paragraphs."""
    blocks = [b.strip() for b in re.split(r"\n[ \t]*\n", doc.text) if b.strip()]
    paragraphs: list[str] = []
    if blocks:
        # The first block is the head (title, date line, caption): one line each, not wrapped prose.
        for line in (ln.strip() for ln in blocks[0].splitlines()):
            if not line or line.lstrip("#").strip() == doc.title:
                continue
            if line.endswith(doc.title):  # "date 2019-05-02 Headline": the date stays, the headline is the <h1>
                line = line[: -len(doc.title)].strip()
            paragraphs.append(line)
    paragraphs += [" ".join(ln.strip() for ln in b.splitlines()) for b in blocks[1:]]
    return Article(doc.title, doc.date, paragraphs)


def to_docx(doc: Document) -> bytes:
    """The document as a Word .docx file."""
    import docx

    art = article(doc)
    word = docx.Document()
    word.core_properties.title = art.title
    if art.date:
        word.core_properties.created = datetime.combine(date.fromisoformat(art.date), datetime.min.time(), timezone.utc)
    word.add_paragraph(art.title, style="Title")
    for p in art.paragraphs:
        word.add_paragraph(p)
    out = io.BytesIO()
    word.save(out)
    return out.getvalue()


def to_html(doc: Document) -> bytes:
    """The document as a news site's web page, with the usual boilerplate around the article."""
    art = article(doc)
    e = html.escape
    published = f'<meta property="article:published_time" content="{e(art.date)}T08:00:00+00:00">' if art.date else ""
    body = "\n".join(f"<p>{e(p)}</p>" for p in art.paragraphs)
    page = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{e(art.title)} | The Daily Planet</title>
<meta property="og:title" content="{e(art.title)}">
<meta property="og:type" content="article">
<meta property="og:site_name" content="The Daily Planet">
{published}
<script>window.dataLayer = window.dataLayer || []; dataLayer.push({{"event": "pageview"}});</script>
</head>
<body>
<header class="site-header">
<a class="logo" href="/">The Daily Planet</a>
<nav class="main-nav"><ul>
<li><a href="/">Home</a></li><li><a href="/world">World</a></li><li><a href="/politics">Politics</a></li>
<li><a href="/business">Business</a></li><li><a href="/opinion">Opinion</a></li><li><a href="/subscribe">Subscribe</a></li>
</ul></nav>
</header>
<div id="cookie-banner" class="cookie-consent" role="dialog">
<p>We use cookies and similar technologies to personalise content and ads and to analyse our traffic.
By clicking "Accept all" you agree to our use of cookies.</p>
<button>Accept all</button> <button>Manage preferences</button>
</div>
<main>
<article class="article">
<h1>{e(art.title)}</h1>
<div class="article-body">
{body}
</div>
</article>
<aside class="related"><h2>Most read</h2><ul>
<li><a href="/a1">Markets close higher as investors weigh rate outlook</a></li>
<li><a href="/a2">Ten recipes for a quick weeknight dinner</a></li>
</ul></aside>
</main>
<footer class="site-footer">
<p>&copy; 2021 The Daily Planet. All rights reserved.</p>
<ul><li><a href="/privacy">Privacy policy</a></li><li><a href="/terms">Terms of use</a></li><li><a href="/contact">Contact us</a></li></ul>
</footer>
<script>document.querySelector("h1").textContent = "Breaking: this headline was rewritten by a script";
document.body.insertAdjacentHTML("beforeend", "<p>Injected by a script: never part of the article.</p>");</script>
</body>
</html>
"""
    return page.encode("utf-8")


def to_pdf(doc: Document) -> bytes:
    """The document as a text-layer PDF (reportlab), dated by its metadata."""
    import os
    from xml.sax.saxutils import escape

    from reportlab.lib.pagesizes import letter
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.platypus import Paragraph, SimpleDocTemplate

    art = article(doc)
    styles = getSampleStyleSheet()

    def running(canvas, template) -> None:
        canvas.saveState()
        canvas.setFont("Helvetica", 8)
        canvas.drawString(template.leftMargin, letter[1] - 40, f"The Daily Planet \u00b7 {art.title[:70]}")
        canvas.drawRightString(letter[0] - template.rightMargin, 30, f"Page {template.page}")
        canvas.restoreState()

    flow = [Paragraph(escape(art.title), styles["Title"])] + [Paragraph(escape(p), styles["BodyText"]) for p in art.paragraphs]
    out = io.BytesIO()
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if art.date:  # reportlab stamps CreationDate from SOURCE_DATE_EPOCH when it is set
        os.environ["SOURCE_DATE_EPOCH"] = str(int(datetime.combine(date.fromisoformat(art.date), datetime.min.time(),
                                                                   timezone.utc).timestamp()))
    try:
        SimpleDocTemplate(out, pagesize=letter, title=art.title, author="", topMargin=60, bottomMargin=50).build(
            flow, onFirstPage=running, onLaterPages=running)
    finally:
        if epoch is None:
            os.environ.pop("SOURCE_DATE_EPOCH", None)
        else:
            os.environ["SOURCE_DATE_EPOCH"] = epoch
    return out.getvalue()


def image_only(pdf: bytes, dpi: int = 200) -> bytes:
    """The PDF's pages as images without a text layer, as a scanner makes them."""
    import pypdfium2 as pdfium

    from qa.formats.pdf import PDFIUM

    with PDFIUM:
        doc = pdfium.PdfDocument(pdf)
        try:
            images = [page.render(scale=dpi / 72, grayscale=True).to_pil() for page in doc]
        finally:
            doc.close()
    out = io.BytesIO()
    images[0].save(out, format="PDF", save_all=True, append_images=images[1:], resolution=dpi)
    return out.getvalue()


def to_scanned_pdf(doc: Document) -> bytes:
    """The PDF of :func:`to_pdf` as 200 dpi page images only, read back by OCR."""
    return image_only(to_pdf(doc))


CONVERTERS: dict[str, Callable[[Document], bytes]] = {"docx": to_docx, "html": to_html, "pdf": to_pdf, "scanned": to_scanned_pdf}
SUFFIXES = {"docx": ".docx", "html": ".html", "pdf": ".pdf", "scanned": ".pdf"}


def convert(src: Path, out: Path, formats: Sequence[str]) -> list[Path]:
    """Write every ``.txt`` file of ``src`` in each of ``formats`` under ``out/<format>/``."""
    written = []
    for path in sorted(src.glob("*.txt")):
        doc = parse_text(path.read_bytes(), path.name)
        for fmt in formats:
            target = out / fmt / (path.stem + SUFFIXES[fmt])
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(CONVERTERS[fmt](doc))
            written.append(target)
    return written


def check_citations(report: Path, folder: Path) -> dict[str, int]:
    """Check every PDF citation of an eval report against its PDF in ``folder``: its ``page`` is
    the page of its first box and that box's text (read by pypdfium2) starts the sentence; the
    text inside all its boxes is the sentence (whitespace and line-end hyphens aside). Citations
    from pages read by OCR have no text layer to read back: they are only counted."""
    import json

    import pypdfium2 as pdfium

    from qa.formats.pdf import PDFIUM

    def letters(text: str) -> str:
        return re.sub(r"[\s\-\ufffe\x02]+", "", text)

    counts = {"citations": 0, "ocr_citations": 0, "pdf_citations": 0, "page_right": 0, "boxes_read_back": 0}
    pdfs: dict[str, pdfium.PdfDocument] = {}
    with PDFIUM:
        try:
            for turn in json.loads(report.read_text(encoding="utf-8"))["turns"]:
                for c in turn["answer"]["citations"]:
                    counts["citations"] += 1
                    if not c.get("boxes"):
                        continue
                    if c.get("ocr"):
                        counts["ocr_citations"] += 1
                        continue
                    counts["pdf_citations"] += 1
                    if c["doc"] not in pdfs:
                        pdfs[c["doc"]] = pdfium.PdfDocument(str(folder / c["doc"]))
                    pdf = pdfs[c["doc"]]
                    read = [pdf[b[0] - 1].get_textpage().get_text_bounded(*b[1:]) for b in c["boxes"]]
                    counts["page_right"] += c["page"] == c["boxes"][0][0] and letters(c["text"]).startswith(letters(read[0]))
                    counts["boxes_read_back"] += letters("".join(read)) == letters(c["text"])
        finally:
            for pdf in pdfs.values():
                pdf.close()
    return counts


def ingest_speed(folder: Path, repeat: int = 3) -> dict[str, float]:
    """Pages read per second from ``folder``'s PDFs (median of ``repeat`` runs), and with the
    embedding of a fresh index included (one run)."""
    import statistics
    import tempfile
    import time

    from qa.bot import Bot
    from qa.ingest import load_folder

    runs, pages = [], 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        docs = [d for d in load_folder(folder).documents if d.layout is not None]
        runs.append(time.perf_counter() - t0)
        pages = sum(d.layout.pages for d in docs)
    ocr_pages = sum(int(d.layout.ocr.sum()) for d in docs)
    with tempfile.TemporaryDirectory() as index:
        bot = Bot(folder, index_dir=index)
        bot.embedder.embed(["warm-up"])
        t0 = time.perf_counter()
        bot.sync()
        indexed = time.perf_counter() - t0
    read = statistics.median(runs)
    return {"pdfs": len(docs), "pages": pages, "ocr_pages": ocr_pages, "read_s": round(read, 3),
            "pages_per_s": round(pages / read, 1), "s_per_page": round(read / max(pages, 1), 3),
            "indexed_s": round(indexed, 3), "pages_per_s_with_embedding": round(pages / indexed, 1)}


def main(argv: Sequence[str] | None = None) -> int:
    import json

    p = argparse.ArgumentParser(prog="python -m eval.formats", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sp = sub.add_parser("convert", help="write the .txt files of SRC_DIR in other formats")
    sp.add_argument("src", type=Path, metavar="SRC_DIR", help="folder of .txt documents (e.g. documents)")
    sp.add_argument("out", type=Path, metavar="OUT_DIR", help="where the files are written, as OUT_DIR/<format>/<stem>.<ext>")
    sp.add_argument("--to", default=",".join(CONVERTERS),
                    help=f"comma-separated formats to write, of {', '.join(CONVERTERS)} (default: all)")
    sp = sub.add_parser("check", help="verify the PDF citations of a `qa eval --json-out` report against the PDFs")
    sp.add_argument("report", type=Path, metavar="REPORT.json")
    sp.add_argument("docs", type=Path, metavar="DOCS", help="the folder the report was run over")
    sp = sub.add_parser("speed", help="pages per second reading the PDFs of a folder, without and with the embedding")
    sp.add_argument("docs", type=Path, metavar="DOCS")
    args = p.parse_args(argv)
    if args.command in ("check", "speed") and not args.docs.is_dir():
        p.error(f"{args.docs} is not a folder")
    if args.command == "check":
        if not args.report.is_file():
            p.error(f"{args.report}: no such file")
        try:
            counts = check_citations(args.report, args.docs)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            p.error(f"{args.report}: not a `qa eval --json-out` report ({exc})")
        print(json.dumps(counts))
        return 0 if counts["page_right"] == counts["boxes_read_back"] == counts["pdf_citations"] else 1
    if args.command == "speed":
        print(json.dumps(ingest_speed(args.docs)))
        return 0
    formats = [f.strip() for f in args.to.split(",") if f.strip()]
    unknown = [f for f in formats if f not in CONVERTERS]
    if unknown:
        p.error(f"unknown format(s) {', '.join(unknown)}; choose among {', '.join(CONVERTERS)}")
    if not args.src.is_dir():
        p.error(f"{args.src} is not a folder")
    for path in convert(args.src, args.out, formats):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
