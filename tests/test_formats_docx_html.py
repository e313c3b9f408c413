"""Word (.docx) and web page (.html) ingest: text blocks in order, metadata, refusals.

DOCX files are built with python-docx, zips with zipfile; web pages are hand-written with the
boilerplate real pages carry.
"""

from __future__ import annotations

import io
import re
import time
import zipfile
from datetime import datetime, timezone
from pathlib import Path

import docx
import pytest

from conftest import DATA, DOCUMENTS
from eval.formats import article, convert
from index.segment import split_sentences
from qa.formats.docx import MAX_PARAGRAPHS, MAX_UNPACKED_BYTES, MAX_XML_TAGS, MAX_ZIP_ENTRIES, parse_docx
from qa.formats.html import MAX_ELEMENTS, MAX_PARAGRAPH_PIECES, MAX_START_TAGS, MAX_TAG_ATTRIBUTES, parse_html
from qa.ingest import IngestError, load_folder, parse_document, parse_text


def _sentences(doc) -> list[str]:
    """The sentences the segmenter cuts from a parsed document's text."""
    return [doc.text[s.start:s.end] for s in split_sentences(doc.text)]


def _append_run(paragraph, tag: str, **attributes: str) -> None:
    """Append to a python-docx paragraph a run holding one ``w:tag`` element with these ``w:`` attributes."""
    from docx.oxml import OxmlElement
    from docx.oxml.ns import qn

    run, element = OxmlElement("w:r"), OxmlElement(f"w:{tag}")
    for name, value in attributes.items():
        element.set(qn(f"w:{name}"), value)
    run.append(element)
    paragraph._p.append(run)


def _save(word) -> bytes:
    out = io.BytesIO()
    word.save(out)
    return out.getvalue()


def _structured_docx() -> bytes:
    word = docx.Document()
    word.add_heading("Annual report of the harbour", level=1)
    word.add_paragraph("The harbour  handled\t\tmore ships than ever")  # no final period: must not join the next block
    word.add_paragraph("Cargo grew by a fifth.")
    word.add_heading("Highlights", level=2)
    word.add_paragraph("A new crane was installed", style="List Bullet")
    word.add_paragraph("The pier was repaired", style="List Number")
    table = word.add_table(rows=3, cols=3)
    for r, row in enumerate([("Month", "Ships", "Tonnes"), ("May", "40", "9000"), ("June", "45", "9900")]):
        for c, value in enumerate(row):
            table.cell(r, c).text = value
    table.cell(0, 0).merge(table.cell(0, 1)).text = "Month and ships"  # across: read once
    table.cell(1, 2).merge(table.cell(2, 2)).text = "about 9000"  # down: read in its first row only
    inner = table.cell(2, 0).add_table(rows=1, cols=2)
    inner.cell(0, 0).text, inner.cell(0, 1).text = "nested A", "nested B"
    word.add_paragraph("")
    word.add_paragraph("Line one of an address\nline two of it")
    word.add_paragraph("The report ends here.")
    return _save(word)


def test_docx_blocks_in_document_order():
    doc = parse_docx(_structured_docx(), "report.docx")
    assert doc.kind == "docx"
    assert doc.text.split("\n\n") == [
        "Annual report of the harbour",
        "The harbour handled more ships than ever",
        "Cargo grew by a fifth.",
        "Highlights",
        "A new crane was installed",
        "The pier was repaired",
        "Month and ships | Tonnes",
        "May | 40 | about 9000",
        "June | 45",
        "nested A | nested B",
        "Line one of an address\nline two of it",
        "The report ends here.",
    ]
    sentences = _sentences(doc)
    assert "The harbour handled more ships than ever" in sentences  # the segmenter never crosses a block
    assert "A new crane was installed" in sentences


def test_docx_title_from_its_first_line_holds_the_version_under_it():
    word = docx.Document()
    for text in ("ZEPHYR PUBLIC LICENSE", "Version 3, 29 June 2007", "Everyone may copy this license."):
        word.add_paragraph(text)
    assert parse_docx(_save(word), "zpl.docx").title == "ZEPHYR PUBLIC LICENSE Version 3"
    word.core_properties.title = " Zephyr  Public License "  # the file's own title, shown first
    assert parse_docx(_save(word), "zpl.docx").title == "Zephyr  Public License Version 3"
    word.core_properties.title = "Zephyr licence"  # not the first line: it stands as it is
    assert parse_docx(_save(word), "zpl.docx").title == "Zephyr licence"


def test_docx_title_and_date_from_core_properties():
    word = docx.Document()
    word.core_properties.title = "  Quarterly notes  "
    word.core_properties.created = datetime(2022, 3, 31, 23, 30, tzinfo=timezone.utc)
    word.add_paragraph("First paragraph, not the title.")
    doc = parse_docx(_save(word), "notes.docx")
    assert (doc.title, doc.date) == ("Quarterly notes", "2022-03-31")


def test_docx_fallbacks_ignore_the_template_date():
    word = docx.Document()  # python-docx's template: created 2013-12-23, no title
    word.add_paragraph("   ")
    word.add_paragraph("Minutes of the board meeting\nheld in Lisbon")
    word.add_paragraph("Present: all members.")
    doc = parse_docx(_save(word), "minutes.docx")
    assert doc.date is None
    assert doc.title == "Minutes of the board meeting"
    empty = parse_docx(_save(docx.Document()), "folder/blank.docx")
    assert (empty.title, empty.text) == ("blank", "")


def _zip(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return out.getvalue()


def test_docx_zip_bomb_is_refused_before_unpacking():
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        with zipfile.ZipFile(io.BytesIO(_structured_docx())) as real:
            for info in real.infolist():
                zf.writestr(info, real.read(info))
        with zf.open("word/media/padding.bin", "w") as member:
            chunk = bytes(1 << 20)
            for _ in range(MAX_UNPACKED_BYTES // len(chunk) + 1):
                member.write(chunk)
    data = out.getvalue()
    assert len(data) < 1_000_000  # a small file...
    t = time.perf_counter()
    with pytest.raises(IngestError) as err:
        parse_document(data, "bomb.docx")
    assert time.perf_counter() - t < 2  # ...refused from the zip's directory, not by unpacking it
    msg = str(err.value)
    assert msg.startswith("bomb.docx: unpacks to ") and "zip bomb" in msg

    many = _zip({f"x/{i}.xml": b"" for i in range(MAX_ZIP_ENTRIES + 1)})
    with pytest.raises(IngestError, match="many.docx: .*zip bomb"):
        parse_docx(many, "many.docx")


def test_docx_of_too_many_paragraphs_is_refused_before_reading_them():
    """A small file whose body is one-letter paragraphs: 150,000 of them took python-docx a
    minute to read, each a sentence to embed; a million took gigabytes just to hold. The first
    is refused once open, the second while its parts are streamed, before any is parsed."""
    with zipfile.ZipFile(io.BytesIO(_structured_docx())) as real:
        members = {info.filename: real.read(info) for info in real.infolist()}

    def letters(n: int) -> bytes:
        body = members["word/document.xml"].replace(b"<w:body>", b"<w:body>" + b"<w:p><w:r><w:t>a</w:t></w:r></w:p>" * n, 1)
        return _zip({**members, "word/document.xml": body})

    for n, reason in ((150_000, rf"1500\d\d paragraphs \(the limit is {MAX_PARAGRAPHS}\); reading it would take minutes"),
                      (1_000_000, rf"over {MAX_XML_TAGS} XML tags by the end of word/document\.xml; reading it would take gigabytes")):
        data = letters(n)
        assert len(data) < 300_000
        t = time.perf_counter()
        with pytest.raises(IngestError) as err:
            parse_document(data, "letters.docx")
        assert time.perf_counter() - t < 10
        # The count holds the sample's own paragraphs (table cells' included) too.
        assert re.fullmatch(rf"letters\.docx: {reason}: split the document into smaller files", str(err.value))


def test_docx_corrupt_and_unreadable_files():
    real = _structured_docx()
    for data in (b"", b"plain text renamed to .docx", real[: len(real) // 2]):
        with pytest.raises(IngestError, match=r"^bad\.docx: not a Word \.docx file"):
            parse_docx(data, "bad.docx")
    # A zip, but not a Word document (no [Content_Types].xml, no main part).
    with pytest.raises(IngestError, match=r"^other\.docx: not a readable Word \.docx file"):
        parse_docx(_zip({"readme.txt": b"hello"}), "other.docx")
    ole = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(512)
    with pytest.raises(IngestError, match=r"^old\.docx: an old binary Word file \(\.doc\)"):
        parse_docx(ole, "old.docx")
    with pytest.raises(IngestError, match=r"^locked\.docx: a password-protected Word file"):
        parse_docx(ole + "EncryptionInfo".encode("utf-16-le") + bytes(64), "locked.docx")
    with zipfile.ZipFile(io.BytesIO(real)) as zf:
        members = {name: zf.read(name) for name in zf.namelist()}
    members["word/vbaProject.bin"] = b"\x00" * 64
    with pytest.raises(IngestError, match=r"^macro\.docx: a macro-enabled Word file"):
        parse_docx(_zip(members), "macro.docx")
    # A part marked encrypted (the zip's flag bit 0, in its local and central headers).
    sealed = bytearray(real)
    for header, flags_at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        at = sealed.find(header)
        while at != -1:
            sealed[at + flags_at] |= 1
            at = sealed.find(header, at + 4)
    with pytest.raises(IngestError, match=r"^sealed\.docx: a part of the file is encrypted"):
        parse_docx(bytes(sealed), "sealed.docx")


PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Harbour expands its north pier | Coast News</title>
<meta property="og:title" content="Harbour expands its north pier">
<meta property="article:published_time" content="2021-06-04T18:20:00+00:00">
<script>document.title = "Changed by a script";</script>
</head>
<body>
<nav class="menu"><ul><li><a href="/">Home</a></li><li><a href="/sport">Sport</a></li><li><a href="/weather">Weather</a></li></ul></nav>
<div id="cookie-banner" class="cookie-consent">We use cookies to improve your experience. <button>Accept all cookies</button></div>
<main><article>
<h1>Harbour expands its north pier</h1>
<div class="article-body">
<p>The harbour authority   approved the extension of the north pier on Friday, after a year of studies.</p>
<p>The pier will be 120 metres longer<br>and open to cruise ships.</p>
<h2>What changes for fishermen</h2>
<ul><li>Fishing boats keep their berths on the south side.</li><li>The fish market moves to the old customs house.</li></ul>
<table>
<tr><th>Phase</th><th>Start</th></tr>
<tr><td>Dredging</td><td>September 2021</td></tr>
<tr><td>Construction</td><td>March 2022</td></tr>
</table>
<p>Works should end in the summer of 2023, the authority said.</p>
</div>
</article></main>
<footer><p>Copyright 2021 Coast News. All rights reserved.</p><a href="/privacy">Privacy policy</a></footer>
<script>document.querySelector(".article-body").innerHTML = "<p>INJECTED BY SCRIPT</p>";</script>
</body>
</html>
"""


def test_html_main_content_in_order_without_boilerplate():
    doc = parse_html(PAGE.encode(), "pier.html")
    assert doc.kind == "html"
    assert doc.text.split("\n\n") == [
        "Harbour expands its north pier",
        "The harbour authority approved the extension of the north pier on Friday, after a year of studies.",
        "The pier will be 120 metres longer\nand open to cruise ships.",
        "What changes for fishermen",
        "Fishing boats keep their berths on the south side.",
        "The fish market moves to the old customs house.",
        "Phase | Start",
        "Dredging | September 2021",
        "Construction | March 2022",
        "Works should end in the summer of 2023, the authority said.",
    ]
    for boilerplate in ("Home", "Weather", "cookies", "All rights reserved", "Privacy", "INJECTED", "Changed by"):
        assert boilerplate not in doc.text
    assert (doc.title, doc.date) == ("Harbour expands its north pier", "2021-06-04")


def test_html_fallbacks_without_metadata():
    page = ("<html><body><div><p>Notes from the volunteer meeting about the beach cleaning in spring.</p>"
            "<p>Twelve people came and collected forty bags of litter along the shore.</p></div></body></html>")
    doc = parse_html(page.encode(), "notes/meeting.htm")
    assert doc.date is None
    assert doc.title == "Notes from the volunteer meeting about the beach cleaning in spring."
    assert doc.text.endswith("forty bags of litter along the shore.")


def test_html_title_holds_the_version_under_its_heading():
    text = "<p>Everyone may copy this license document, but changing it is not allowed.</p>" * 3
    for head in ("<title>Zephyr Public License</title>", ""):
        page = f"<html><head>{head}</head><body><h1>ZEPHYR PUBLIC LICENSE</h1><p>Version 2, June 1991</p>{text}</body></html>"
        assert parse_html(page.encode(), "zpl.html").title == "ZEPHYR PUBLIC LICENSE Version 2"


def test_html_decodes_by_the_declared_charset():
    page = ('<html><head><meta http-equiv="Content-Type" content="text/html; charset=iso-8859-1">'
            "<title>Caf\u00e9 news</title></head><body><article><p>The caf\u00e9 on the quay serves "
            "\u201cthe best\u201d coffee in town, according to its regulars and to the harbour master.</p>"
            "</article></body></html>")
    doc = parse_html(page.encode("cp1252"), "cafe.html")  # browsers read "iso-8859-1" as windows-1252
    assert "The caf\u00e9 on the quay serves \u201cthe best\u201d coffee" in doc.text
    undeclared = page.replace("charset=iso-8859-1", "").encode("cp1252")
    assert "caf\u00e9 on the quay" in parse_html(undeclared, "cafe2.html").text


def test_a_charset_that_is_no_text_encoding_is_as_if_undeclared():
    """Python knows "hex", "base64", "rot13" as codecs, but they turn bytes into bytes: a page
    declaring one is read as undeclared, and so is one declaring UTF-32 in ASCII."""
    for label in ("hex", "base64", "rot13", "zip", "utf-32"):
        page = (f'<html><head><meta charset="{label}"><title>Pier</title></head><body><article><p>The pier '
                "caf\u00e9 opens at nine every morning, and the ferry to the island leaves from its end.</p>"
                "</article></body></html>")
        assert "The pier caf\u00e9 opens at nine" in parse_html(page.encode("utf-8"), "pier.html").text


def test_html_without_main_text_is_refused():
    page = '<html><head><title>App</title></head><body><div id="root"></div><script>render()</script></body></html>'
    with pytest.raises(IngestError, match=r"^app\.html: no main text found .*scripts"):
        parse_html(page.encode(), "app.html")


def test_html_too_fragmented_is_refused_quickly():
    """Too many elements are counted once parsed; many more tags than that, before parsing."""
    pieces = "<p>" + "<b>x</b> " * MAX_PARAGRAPH_PIECES + "</p>"
    elements = "<div>" + "<span>x</span>" * MAX_ELEMENTS + "</div>"
    tags = "<div>" + "<i>x</i>" * MAX_START_TAGS + "</div>"
    past = len("<html><body><div>") + len("<i>x</i>") * (MAX_START_TAGS - 3)  # the tag past the limit
    for body, reason in ((pieces, "a paragraph made of"), (elements, f"{MAX_ELEMENTS + 3} HTML elements"),
                         (tags, f"over {MAX_START_TAGS} HTML tags by character {past}")):
        t = time.perf_counter()
        with pytest.raises(IngestError, match=f"^big.html: .*{reason}"):
            parse_html(f"<html><body>{body}</body></html>".encode(), "big.html")
        assert time.perf_counter() - t < 10


def test_html_tag_of_too_many_attributes_is_refused_before_parsing():
    """libxml2 and trafilatura are quadratic in one tag's attributes (40,000 took 49 s); an
    inline SVG path of thousands of numbers, or a ">" inside a quoted value, is no such tag."""
    many = " ".join(f"a{i}='x'" for i in range(MAX_TAG_ATTRIBUTES + 1))
    t = time.perf_counter()
    with pytest.raises(IngestError) as err:
        parse_html(f"<html><body><div {many}><p>The vote was held in May.</p></div></body></html>".encode(), "attrs.html")
    assert time.perf_counter() - t < 2
    assert str(err.value) == (f"attrs.html: a tag with {MAX_TAG_ATTRIBUTES + 1} attributes at character 12 (the limit is "
                              f"{MAX_TAG_ATTRIBUTES}); reading it would take minutes: save the page as text (.txt)")
    path = " ".join(["M 10 10 L 20 20"] * 3000)
    page = (f'<html><body><article><h1>Harbour news</h1><svg><path d="{path}"/></svg>'
            f'<p title="a > b" {" ".join(f"data-x{i}=1" for i in range(MAX_TAG_ATTRIBUTES - 2))}>'
            f'{"The new pier opened in May. " * 5}</p></article></body></html>')
    assert "The new pier opened in May." in parse_html(page.encode(), "pier.html").text


def test_html_nesting_too_deep_is_an_ingest_error():
    deep = "<ul><li>item" * 1500 + "</li></ul>" * 1500
    with pytest.raises(IngestError, match=r"^deep\.html: its markup nests too deeply"):
        parse_html(f"<html><body><article><p>{'A first paragraph. ' * 8}</p>{deep}</article></body></html>".encode(),
                   "deep.html")


def test_dispatch_by_suffix_and_folder_errors(tmp_path: Path):
    data = _structured_docx()
    assert parse_document(data, "x.docx").kind == "docx"
    assert parse_document(PAGE.encode(), "x.htm").kind == "html"
    assert parse_document(PAGE.encode(), "X.HTML").title == "Harbour expands its north pier"
    (tmp_path / "report.docx").write_bytes(data)
    (tmp_path / "pier.html").write_bytes(PAGE.encode())
    (tmp_path / "broken.docx").write_bytes(b"PK\x03\x04 truncated")
    result = load_folder(tmp_path)
    assert sorted(d.id for d in result.documents) == ["pier.html", "report.docx"]
    assert list(result.errors) == ["broken.docx"] and "not a Word .docx file" in result.errors["broken.docx"]


def test_sample_files_in_tests_data():
    sample = parse_document((DATA / "sample.docx").read_bytes(), "sample.docx")
    assert (sample.title, sample.date) == ("Harbour Lighthouse: Visitor Notes", "2024-05-02")
    assert sample.text.split("\n\n")[2:7] == [
        "Opening hours", "The tower is open from April to October.", "Guided climbs start every hour from 10:00.",
        "Ticket | Price", "Adult | 6 euros",
    ]
    page = parse_document((DATA / "sample.html").read_bytes(), "sample.html")
    assert (page.title, page.date) == ("Volcano Observatory reopens its visitor centre", "2023-03-14")
    blocks = page.text.split("\n\n")
    assert blocks[0] == "Volcano Observatory reopens its visitor centre"
    assert blocks[-1].startswith("The director said the renovation cost 1.2 million euros")
    assert "Practical information" in blocks and "Rewritten by a script." not in page.text
    assert "cookies" not in page.text and "All rights reserved" not in page.text


@pytest.mark.parametrize("fmt", ["docx", "html"])  # the PDFs: tests/test_formats_pdf.py
def test_converted_seed_articles_keep_every_paragraph(tmp_path: Path, fmt: str):
    written = convert(DOCUMENTS, tmp_path, [fmt])
    assert len(written) == len(list(DOCUMENTS.glob("*.txt")))
    for path in written:
        original = parse_text((DOCUMENTS / path.with_suffix(".txt").name).read_bytes(), path.stem + ".txt")
        doc = parse_document(path.read_bytes(), path.name)
        assert (doc.title, doc.date) == (original.title, original.date)
        blocks = doc.text.split("\n\n")
        assert blocks[0] == original.title
        assert blocks[1:] == article(original).paragraphs
        # Nothing of the text is lost or added: the same words (the headline moves before the date line).
        assert sorted(re.findall(r"\S+", doc.text)) == sorted(re.findall(r"\S+", original.text))


def _wrapped_run(paragraph_or_cell_xml, wrapper: str, text: str, deleted: bool = False):
    from docx.oxml import OxmlElement

    outer = OxmlElement(wrapper)
    if wrapper == "w:sdt":
        inner = OxmlElement("w:sdtContent")
        outer.append(inner)
    else:
        inner = outer
    run, t = OxmlElement("w:r"), OxmlElement("w:delText" if deleted else "w:t")
    t.text = text
    run.append(t)
    inner.append(run)
    paragraph_or_cell_xml.append(outer)
    return outer


def test_docx_reads_revisions_fields_and_content_controls_as_word_shows_them():
    from docx.oxml import OxmlElement
    from docx.oxml.ns import qn

    word = docx.Document()
    p = word.add_paragraph("The keeper was ")
    _wrapped_run(p._p, "w:ins", "John Smith")  # a tracked insertion, not yet accepted
    _wrapped_run(p._p, "w:del", "Ada Brunel", deleted=True)
    p.add_run(" until 1950.")
    p = word.add_paragraph("The report has ")
    _wrapped_run(p._p, "w:fldSimple", "12").set(qn("w:instr"), "NUMPAGES")
    p.add_run(" pages and the pier is ")
    _wrapped_run(p._p, "w:sdt", "200 metres")
    p.add_run(" long.")
    block = OxmlElement("w:sdt")  # a block content control, as templates and cover pages hold
    content = OxmlElement("w:sdtContent")
    block.append(content)
    word.element.body.insert(0, block)
    content.append(word.add_paragraph("Prepared for the Harbour Board.")._p)
    cell = word.add_table(rows=1, cols=2).cell(0, 1)
    word.tables[0].cell(0, 0).text = "Depth"
    cell_block = OxmlElement("w:sdt")
    cell_content = OxmlElement("w:sdtContent")
    cell_block.append(cell_content)
    cell._tc.append(cell_block)
    cell.paragraphs[0].text = "12 metres"
    cell_content.append(cell.paragraphs[0]._p)
    doc = parse_docx(_save(word), "r.docx")
    assert doc.text.split("\n\n") == ["Prepared for the Harbour Board.", "The keeper was John Smith until 1950.",
                                      "The report has 12 pages and the pier is 200 metres long.", "Depth | 12 metres"]


def test_html_footnote_markers_are_not_glued_into_the_sentence():
    page = ("<html><head><title>Lighthouse</title></head><body><article><h1>Lighthouse</h1>"
            "<p>The lighthouse was built by Ada Brunel in 1871.<sup><a href='#fn1'>1</a></sup> Its lamp was converted"
            " to electricity in 1923.<a href='#fn2' class='footnote-ref'><sup>2</sup></a> Its range is 22 miles"
            "<sup class='reference'><a href='#cite_note-3'>[3]</a></sup>.</p>"
            "<p>The lamp room measures 12 m<sup>2</sup> and has a gallery around it on every side of the tower.</p>"
            "<ol><li id='fn1'>Brunel's own notes, 1872.</li></ol></article></body></html>")
    doc = parse_html(page.encode(), "light.html")
    sentences = _sentences(doc)
    assert sentences[1:5] == ["The lighthouse was built by Ada Brunel in 1871.", "Its lamp was converted to electricity in 1923.",
                              "Its range is 22 miles.", "The lamp room measures 12 m2 and has a gallery around it on every side of the tower."]


def test_a_short_page_keeps_its_main_text_without_the_menus():
    """Under 250 characters of main text trafilatura gave every text of the body, the menu and
    footer included, one line each: "Home Visit Shop Opening hours Monday Closed …" became one
    sentence, and "When is the museum open on weekends?" was answered "Tuesday"."""
    menu = "".join(f"<li><a href='/{w.lower()}'>{w}</a></li>" for w in ("Home", "Visit", "Collections", "Shop", "Contact"))
    page = ("<html><head><title>Harbour Museum - Visit</title></head><body><nav><ul>" + menu + "</ul></nav>"
            "<main><h2>Opening hours</h2><table><tr><td>Monday</td><td>Closed</td></tr>"
            "<tr><td>Tuesday to Friday</td><td>10:00 to 17:00</td></tr><tr><td>Weekends</td><td>9:00 to 18:00</td></tr>"
            "</table><p>Tickets cost 8 pounds.</p></main><footer>© 2024 Harbour Museum</footer></body></html>")
    doc = parse_html(page.encode(), "visit.html")
    assert doc.text.split("\n\n") == ["Opening hours", "Monday | Closed", "Tuesday to Friday | 10:00 to 17:00",
                                      "Weekends | 9:00 to 18:00", "Tickets cost 8 pounds."]
    # trafilatura may take a notice for the main text: short of 80% of the page's, the whole body is kept
    notice = ("<div class='notice'>We use cookies to remember your choices and to count visits; by staying on this "
              "site you agree to this. You can change your mind at any time on the privacy page of this site.</div>")
    doc = parse_html(page.replace("<main>", notice + "<main>").encode(), "visit.html")
    assert "9:00 to 18:00" in doc.text and "Tickets cost 8 pounds." in doc.text


def _text_box_run(*paragraphs: str):
    """A run holding a drawing's text box, with the VML copy Word writes beside it for old readers."""
    from docx.oxml import parse_xml

    body = "".join(f"<w:p><w:r><w:t>{text}</w:t></w:r></w:p>" for text in paragraphs)
    box = f"<w:txbxContent>{body}</w:txbxContent>"
    return parse_xml(
        '<w:r xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'
        ' xmlns:mc="http://schemas.openxmlformats.org/markup-compatibility/2006"'
        ' xmlns:wps="http://schemas.microsoft.com/office/word/2010/wordprocessingShape"'
        ' xmlns:v="urn:schemas-microsoft-com:vml"><mc:AlternateContent>'
        f'<mc:Choice Requires="wps"><w:drawing><wps:wsp><wps:txbx>{box}</wps:txbx></wps:wsp></w:drawing></mc:Choice>'
        f'<mc:Fallback><w:pict><v:shape><v:textbox>{box}</v:textbox></v:shape></w:pict></mc:Fallback>'
        '</mc:AlternateContent></w:r>')


def test_docx_reads_text_boxes_once_and_page_breaks_part_words():
    """A text box's paragraphs were not read at all, and a page break inside a paragraph glued
    the words around it ("of the pageThe tower")."""
    from docx.enum.text import WD_BREAK

    word = docx.Document()
    p = word.add_paragraph("The pier ends at the foot of the page")
    p.add_run().add_break(WD_BREAK.PAGE)
    p.add_run("The tower stands beyond it.")
    p._p.append(_text_box_run("Opening hours: 9 to 5.", "Closed on Mondays."))
    word.add_paragraph("The lamp was lit in 1871.")
    row = word.add_table(rows=1, cols=2).rows[0]
    row.cells[0].text = "Depth"
    row.cells[1].text = "12 metres"
    row.cells[1].paragraphs[0]._p.append(_text_box_run("Measured at low tide."))
    doc = parse_docx(_save(word), "t.docx")
    assert doc.text.split("\n\n") == ["The pier ends at the foot of the page\nThe tower stands beyond it.",
                                      "Opening hours: 9 to 5.", "Closed on Mondays.", "The lamp was lit in 1871.",
                                      "Depth | 12 metres", "Measured at low tide."]
    assert _sentences(doc)[:2] == [
        "The pier ends at the foot of the page\nThe tower stands beyond it.", "Opening hours: 9 to 5."]


def test_html_definition_list_terms_stay_with_their_definitions():
    """Each <dt> and <dd> was a block of its own: "How much is admission?" could only cite
    "Adults 8 euros, children free.", a sentence without the word asked about."""
    page = ("<html><head><title>Harbour Museum</title></head><body><article><h1>Harbour Museum</h1>"
            "<p>The museum tells the story of the harbour and its ships since the first pier was built.</p>"
            "<dl><dt>Opening hours</dt><dd>Tuesday to Sunday, 10 am to 5 pm.</dd><dt>Admission:</dt>"
            "<dd>Adults 8 euros, <b>children</b> free.</dd><dt>Closed</dt><dt>Address</dt><dd>12 Quay Street</dd>"
            "<dd>Old Town</dd><dt>Can I park?</dt><dd>Yes, on the quay.</dd><dt>Tours</dt><dd><p>Every hour.</p></dd>"
            "<dt>Prices</dt><dd><dl><dt>Child</dt><dd>free</dd></dl></dd><dt>Shop</dt></dl>"
            "<p>Guided tours start every hour from the main hall.</p></article></body></html>")
    doc = parse_html(page.encode(), "museum.html")
    assert doc.text.split("\n\n")[2:] == [
        "Opening hours: Tuesday to Sunday, 10 am to 5 pm.", "Admission: Adults 8 euros, children free.", "Closed",
        "Address: 12 Quay Street", "Old Town", "Can I park? Yes, on the quay.", "Tours", "Every hour.", "Prices",
        "Child: free", "Shop", "Guided tours start every hour from the main hall."]


def test_docx_tags_are_counted_in_parts_not_named_xml():
    """python-docx parses a part by its content type, whatever its name: a 200 KB file whose main
    part was "word/document.bin" (or styles "word/styles.dat") held 150 MB of tags and took 3-4 GB."""
    with zipfile.ZipFile(io.BytesIO(_structured_docx())) as real:
        members = {info.filename: real.read(info) for info in real.infolist()}
    renamed = {name.replace("document.xml", "document.bin"): data.replace(b"document.xml", b"document.bin")
               for name, data in members.items()}
    body = renamed["word/document.bin"]
    renamed["word/document.bin"] = body.replace(b"<w:body>", b"<w:body>" + b"<w:p/>" * (MAX_XML_TAGS + 1), 1)
    data = _zip(renamed)
    assert len(data) < 300_000
    t = time.perf_counter()
    with pytest.raises(IngestError, match=rf"^bin\.docx: over {MAX_XML_TAGS} XML tags by the end of word/document\.bin;"):
        parse_document(data, "bin.docx")
    assert time.perf_counter() - t < 10
    renamed["word/document.bin"] = body
    assert "Cargo grew by a fifth." in parse_document(_zip(renamed), "bin.docx").text  # a real file so named is read


def test_html_inline_code_stays_in_its_sentence():
    """Inline <code> in a paragraph or list item was a block of its own: "To change it, set" /
    "cache_size" / "in" were three "sentences", and none answered "How do I change the cache size?"."""
    page = ("<html><head><title>Configuring the cache</title></head><body><div role='main'>"
            "<h1>Configuring the cache</h1><p>Tidepool keeps recently used map tiles in a local cache so that "
            "a map can be redrawn without fetching them again from the server.</p>"
            "<p>The cache holds 512 megabytes by default. To change it, set <code>cache_size</code> in "
            "<code>tidepool.toml</code>:</p><pre><code>[cache]\ncache_size = \"2GB\"\n</code></pre>"
            "<ul><li>Set <code>max_age = 0</code> to keep tiles forever.</li></ul></div></body></html>")
    doc = parse_html(page.encode(), "cache.html")
    sentences = _sentences(doc)
    assert "To change it, set cache_size in tidepool.toml:" in sentences
    assert "Set max_age = 0 to keep tiles forever." in sentences
    assert '[cache]\ncache_size = "2GB"' in sentences  # a code block stays a block of its own


def test_html_elements_with_the_hidden_attribute_are_not_read():
    """A browser never shows an element with the ``hidden`` attribute, but its text was indexed
    and could be cited ("the gauge cost 99 million")."""
    page = ("<html><head><title>New tide gauge</title></head><body><article><h1>New tide gauge</h1>"
            "<p>A new tide gauge was installed at the end of the west pier on Monday morning.</p>"
            "<p hidden>An old draft said the gauge cost 99 million euros.</p>"
            "<p>The old gauge, installed in 1962, was read by hand twice a day by the harbour master.</p>"
            "<section hidden='until-found'><p>The new one cost 48,000 euros.</p></section>"
            "</article></body></html>")
    text = parse_html(page.encode(), "gauge.html").text
    assert "99 million" not in text
    assert "The new one cost 48,000 euros." in text  # a collapsed section, which a search opens, is read


def test_html_charset_declared_after_a_long_head_style_is_used():
    """A windows-1251 page whose <meta> came after 9 KB of inline <style> was read as
    windows-1252: every Cyrillic word was mojibake ("Ìàÿê"), as browsers never show it."""
    style = "<style>" + "".join(f".c{i} {{ margin: {i}px }}\n" for i in range(400)) + "</style>"
    page = (f'<html><head><title>Маяк Вестхавен</title>{style}<meta http-equiv="Content-Type" '
            'content="text/html; charset=windows-1251"></head><body><article><h1>Маяк Вестхавен</h1>'
            "<p>Маяк был построен в 1871 году. Его свет был виден за 33 километра в ясную погоду.</p>"
            "<p>The keeper, Ivan Petrov, lived in the tower for thirty years and kept a diary of storms.</p>"
            "</article></body></html>")
    doc = parse_html(page.encode("cp1251"), "late.html")
    assert doc.title == "Маяк Вестхавен"
    assert "Маяк был построен в 1871 году." in doc.text
    utf8 = page.replace("windows-1251", "iso-8859-1").encode("utf-8")  # valid UTF-8 is still read as such
    assert "Маяк был построен" in parse_html(utf8, "late.html").text


def test_html_heading_permalinks_are_not_part_of_headings_or_the_title():
    """Sphinx and MkDocs end each heading with a permalink ("¶", "#"): every such page was titled
    "Expiry¶" and its headings read "Purging tiles#"."""
    page = ('<html><head><meta charset="utf-8"><title>Expiry — Tidepool 2.3 documentation</title></head><body>'
            '<div class="body" role="main"><section id="expiry"><h1>Expiry<a class="headerlink" href="#expiry" '
            'title="Permalink to this heading">¶</a></h1><p>Tiles expire after 7 days unless the maximum age is '
            'set in the configuration file of the server.</p><section id="purge"><h2>Purging tiles<a '
            'class="headerlink" href="#purge">#</a></h2><p>Run the purge command to remove every expired tile '
            'at once. It prints the number of tiles removed.</p><h2><a href="#faq">FAQ</a></h2>'
            '<p>Purged tiles are fetched again from the server when a map needs them.</p></section></section>'
            '</div></body></html>')
    doc = parse_html(page.encode(), "expiry.html")
    assert doc.title == "Expiry"
    blocks = doc.text.split("\n\n")
    assert blocks[0] == "Expiry" and "Purging tiles" in blocks and "FAQ" in blocks  # a link that is a word stays


def test_html_bracketed_editor_marks_do_not_join_sentences():
    """Wikipedia's "[citation needed]" and "[note 1]" were kept, glued after the full stop, so two
    sentences were one: "…in February 2019.[citation needed] No one was injured."."""
    page = ('<html><head><title>Westhaven Lighthouse</title></head><body><div id="content" role="main">'
            '<h1>Westhaven Lighthouse</h1><div class="mw-parser-output"><p>The tower collapsed during Storm '
            'Malik in February 2019.<sup class="noprint Inline-Template">[<i><a href="/wiki/Wikipedia:'
            'Citation_needed" title="Wikipedia:Citation needed">citation needed</a></i>]</sup> No one was '
            'injured. The lamp was converted to electricity in 1932.<sup class="reference"><a href='
            '"#cite_note-a">[note 1]</a></sup> It was lit until the storm.</p><p>The keeper was paid '
            '<sup>[a]</sup> in kind, and the marker text x<sup>[2]</sup> without a link stays.</p></div>'
            '</div></body></html>')
    text = parse_html(page.encode(), "lighthouse.html").text
    sentences = [text[s.start:s.end] for s in split_sentences(text)]
    assert "The tower collapsed during Storm Malik in February 2019." in sentences
    assert "No one was injured." in sentences
    assert "The lamp was converted to electricity in 1932." in sentences
    assert "[a]" in text and "x[2]" in text  # brackets without a link are the author's text


def test_a_docx_with_a_large_uncompressed_image_is_read():
    """Every part's "<" were counted, images too: a 46 KB file holding a plain dark grey TIFF scan
    (9 MB of byte 60, "<") was refused as over 5 million XML tags."""
    from PIL import Image

    image = io.BytesIO()
    Image.new("RGB", (2000, 1500), (60, 60, 60)).save(image, "TIFF")
    image.seek(0)
    word = docx.Document()
    word.add_paragraph("The scan below shows the site plan.")
    word.add_picture(image)
    out = io.BytesIO()
    word.save(out)
    assert "The scan below shows the site plan." in parse_docx(out.getvalue(), "plan.docx").text


@pytest.mark.parametrize("name", ["word/document.xml", "//word/document.xml"])
def test_docx_tags_are_counted_in_a_part_a_malformed_override_calls_binary(name: str):
    """An override python-docx never matches ("word/document.xml" without its slash, or with two)
    declared the main part an image: its tags went uncounted, and python-docx parsed them."""
    with zipfile.ZipFile(io.BytesIO(_structured_docx())) as real:
        members = {info.filename: real.read(info) for info in real.infolist()}
    members["[Content_Types].xml"] = members["[Content_Types].xml"].replace(
        b"</Types>", f'<Override PartName="{name}" ContentType="image/png"/></Types>'.encode())
    assert "Cargo grew by a fifth." in parse_document(_zip(members), "ok.docx").text  # python-docx reads it as XML
    members["word/document.xml"] = members["word/document.xml"].replace(
        b"<w:body>", b"<w:body>" + b"<w:p/>" * (MAX_XML_TAGS + 1), 1)
    with pytest.raises(IngestError, match=rf"^bomb\.docx: over {MAX_XML_TAGS} XML tags by the end of word/document\.xml;"):
        parse_document(_zip(members), "bomb.docx")


def test_html_a_one_line_code_block_in_a_list_item_stays_a_block():
    """A <pre> of one line in a numbered step was read as inline code and glued to the step:
    "Install the package:pip install tidepool"."""
    page = ("<html><head><title>Install guide</title></head><body><div role='main'><h1>Install guide</h1>"
            "<p>Tidepool keeps recently used map tiles in a local cache so that a map can be redrawn without "
            "fetching them again from the server.</p><ol><li>Install the package:<pre><code>pip install tidepool"
            "</code></pre></li><li>Start the server with <code>tidepool serve</code> and wait.</li></ol></div></body></html>")
    doc = parse_html(page.encode(), "install.html")
    sentences = _sentences(doc)
    assert "Install the package:" in sentences and "pip install tidepool" in sentences
    assert "Start the server with tidepool serve and wait." in sentences


def _phpbb_post(n: int, author: str, content: str) -> str:
    return (f"<div class='post bg2' id='p{n}'><div class='postbody'><p class='author'>by {author} &raquo; Mon Mar 04, "
            f"2024 7:1{n} pm</p><div class='content'>{content}</div></div></div>")


def test_html_forum_thread_keeps_each_posts_own_text():
    """A phpBB thread (post text loose in <div class=content>, quotes in <blockquote><cite>) kept
    only the bylines and quotes: every reply's own text was lost, the cite glued to the quote."""
    page = ("<html><head><title>Best bait for sea trout in spring?</title></head><body>"
            "<div class='navbar'>Board index &raquo; Fishing</div><h2>Best bait for sea trout in spring?</h2>"
            + _phpbb_post(1, "oldsalt", "I have been fishing the west pier for twenty years. What bait do you use "
                          "for sea trout in March?")
            + _phpbb_post(2, "fjordfisher", "<blockquote><cite>oldsalt wrote:</cite>What bait do you use for sea trout "
                          "in March?</blockquote>A small silver spoon works best for me in cold water.<br><br>I caught "
                          "a 3 kilo trout on one last spring.")
            + _phpbb_post(3, "mariner", "<blockquote><cite>fjordfisher wrote:</cite>A small silver spoon works best "
                          "for me in cold water.</blockquote>I disagree, shrimp imitations are better in March.")
            + "<div class='footer'>Powered by phpBB</div></body></html>")
    doc = parse_html(page.encode(), "thread.html")
    sentences = _sentences(doc)
    for said in ("I have been fishing the west pier for twenty years.", "A small silver spoon works best for me in cold water.",
                 "I caught a 3 kilo trout on one last spring.", "I disagree, shrimp imitations are better in March."):
        assert said in sentences
    assert "oldsalt wrote:" in sentences and "oldsalt wrote:What" not in doc.text


def test_html_div_only_page_and_loose_menu_links_are_read_as_before():
    """A page laid out in <div>s alone, without a <p>, keeps its text as it was (its menu stays out)."""
    page = ("<html><head><title>Ferry timetable changes</title></head><body><div class='top'><div class='menu'>"
            "<div>Home</div><div>Ferries</div></div></div><div class='page'><div class='heading'>Ferry timetable changes"
            "</div><div class='text'>From 1 June the morning ferry to Lindholm leaves at 6:45 instead of 7:15.</div>"
            "<div class='text'>Tickets bought before the change remain valid for any departure on the same day.</div>"
            "</div><div class='bottom'>Westhaven Harbour Authority</div></body></html>")
    doc = parse_html(page.encode(), "ferry.html")
    assert doc.text == ("Ferry timetable changes\n\nFrom 1 June the morning ferry to Lindholm leaves at 6:45 instead of "
                        "7:15.\n\nTickets bought before the change remain valid for any departure on the same day.")


def test_html_saved_wikipedia_article_reads_without_mediawiki_interface():
    """A saved Wikipedia article: the section "[edit]" links were glued to headings ("History[edit]",
    legacy skin) or stood as blocks ("[edit]", the 2022 skin), and the skip links ("Jump to
    navigation") were read; the infobox and a wikitable still read as rows."""
    edit = ('<span class="mw-editsection"><span class="mw-editsection-bracket">[</span><a href="/w/index.php?title='
            'Westhaven_Lighthouse&amp;action=edit&amp;section={n}" title="Edit section">edit</a><span class='
            '"mw-editsection-bracket">]</span></span>')
    page = ('<html><head><title>Westhaven Lighthouse - Wikipedia</title></head><body class="mediawiki ltr skin-vector">'
            '<div id="content" class="mw-body" role="main"><h1 id="firstHeading">Westhaven Lighthouse</h1>'
            '<div id="bodyContent"><div id="siteSub" class="noprint">From Wikipedia, the free encyclopedia</div>'
            '<a class="mw-jump-link" href="#mw-head">Jump to navigation</a> <a class="mw-jump-link" href="#searchInput">'
            'Jump to search</a><div id="mw-content-text"><div class="mw-parser-output">'
            '<table class="infobox"><tbody><tr><th colspan="2" class="infobox-above">Westhaven Lighthouse</th></tr>'
            '<tr><th scope="row" class="infobox-label">Location</th><td class="infobox-data">Westhaven, <a href="/wiki/'
            'Norland">Norland</a></td></tr><tr><th scope="row" class="infobox-label">Constructed</th><td class='
            '"infobox-data">1871</td></tr></tbody></table>'
            '<p>The <b>Westhaven Lighthouse</b> is a lighthouse on the north pier of Westhaven, Norland. It was designed '
            'by Ada Brunel and first lit in 1871.<sup class="reference"><a href="#cite_note-1">[1]</a></sup></p>'
            f'<h2><span class="mw-headline" id="History">History</span>{edit.format(n=1)}</h2>'
            '<p>Construction began in 1868 after the loss of the schooner Margit on the reef. The lamp was converted to '
            'electricity in 1932.</p>'
            f'<div class="mw-heading mw-heading2"><h2 id="Keepers">Keepers</h2>{edit.format(n=2)}</div>'
            '<table class="wikitable"><tbody><tr><th>Keeper</th><th>From</th><th>To</th></tr><tr><td>Johan Berg</td>'
            '<td>1871</td><td>1902</td></tr></tbody></table><p>The light has been automatic since 1950, when the last '
            'keeper retired.</p></div><div class="printfooter">Retrieved from "<a href="https://en.wikipedia.org/w/'
            'index.php?oldid=1">https://en.wikipedia.org/w/index.php?oldid=1</a>"</div></div><div id="catlinks" '
            'class="catlinks"><a href="/wiki/Help:Category">Categories</a>: <ul><li><a href="/wiki/Category:'
            'Lighthouses_completed_in_1871">Lighthouses completed in 1871</a></li></ul></div></div></div></body></html>')
    doc = parse_html(page.encode(), "lighthouse.html")
    blocks = doc.text.split("\n\n")
    assert "History" in blocks and "Keepers" in blocks
    assert "edit" not in doc.text and "Jump to" not in doc.text and "From Wikipedia" not in doc.text
    assert "Retrieved from" not in doc.text and "Categories" not in doc.text
    assert "Location | Westhaven, Norland" in blocks and "Johan Berg | 1871 | 1902" in blocks


def _vbulletin_post(n: int, user: str, joined: str, posts: str, message: str) -> str:
    return (f'<table id="post{n}" class="tborder" cellpadding="6" width="100%"><tr><td class="thead">03-0{n}-2024, '
            f'07:1{n} PM</td><td class="thead" align="right">#<a href="showpost.php?p={n}">{n}</a></td></tr><tr '
            f'valign="top"><td class="alt2" width="175"><div id="postmenu_{n}"><a class="bigusername" href="member.php'
            f'?u={n}">{user}</a></div><div class="smallfont">Member</div><div class="smallfont">&nbsp;<br /><div>Join '
            f'Date: {joined}</div><div>Posts: {posts}</div></div></td><td class="alt1" id="td_post_{n}"><div id='
            f'"post_message_{n}">{message}</div></td></tr><tr><td class="alt2"><img src="user_offline.gif" alt="offline">'
            f'</td><td class="alt1" align="right"><a href="newreply.php?p={n}"><img src="quote.gif" alt="Reply With Quote">'
            '</a></td></tr></table>')


def test_html_forum_thread_laid_out_in_tables_reads_each_post_apart_from_its_profile():
    """A vBulletin thread (each post a table: a profile cell beside a message cell) glued the profile
    to the message ("Posts: 1,234 | I have been fishing…") and lost the reply holding a quote table;
    a table of figures inside a post still reads as rows."""
    quote = ('<div style="margin:20px"><div class="smallfont">Quote:</div><table cellpadding="6" width="100%"><tr><td '
             'class="alt2"><div>Originally Posted by <strong>oldsalt</strong> <a href="showthread.php?p=1#post1"><img '
             'src="viewpost.gif" alt="View Post"></a></div><div style="font-style:italic">What bait do you use for sea '
             'trout in March?</div></td></tr></table></div>')
    page = ('<html><head><title>Best bait for sea trout in spring? - Westhaven Angling Forum</title></head><body>'
            '<table class="tborder" width="100%"><tr><td class="alt1"><span class="navbar"><a href="index.php">Westhaven '
            'Angling Forum</a></span> &gt; <a href="forumdisplay.php?f=3">Sea fishing</a></td></tr></table><div id="posts">'
            + _vbulletin_post(1, "oldsalt", "Mar 2009", "1,234", "I have been fishing the west pier for twenty years. "
                              "What bait do you use for sea trout in March?")
            + _vbulletin_post(2, "fjordfisher", "Jan 2015", "87", quote + "A small silver spoon works best for me in cold "
                              "water.<br /><br />I caught a 3 kilo trout on one last spring.")
            + _vbulletin_post(3, "mariner", "Jun 2011", "412", "Shrimp imitations are better. My catches last spring:"
                              "<table border='1'><tr><td>Month</td><td>Sea trout</td></tr><tr><td>March</td><td>12</td>"
                              "</tr><tr><td>April</td><td>19</td></tr></table>")
            + '</div><div class="smallfont" align="center">Powered by vBulletin Version 3.8.7</div></body></html>')
    doc = parse_html(page.encode(), "thread.html")
    sentences = _sentences(doc)
    for said in ("I have been fishing the west pier for twenty years.", "A small silver spoon works best for me in cold water.",
                 "I caught a 3 kilo trout on one last spring.", "Shrimp imitations are better."):
        assert said in sentences
    assert not [s for s in sentences if "Posts:" in s and len(s) > len("Posts: 1,234")]
    assert doc.text.index("twenty years") < doc.text.index("silver spoon") < doc.text.index("Shrimp")
    assert "March | 12" in doc.text.split("\n\n") and "April | 19" in doc.text.split("\n\n")


def test_docx_table_rows_and_cells_inside_content_controls_are_read():
    """A repeating section (a content control around table rows, as forms have) and a content
    control or custom XML around a cell lost their text: python-docx reads only a table's own
    rows and a row's own cells, so "May | 40" was not in the text at all."""
    from docx.oxml import OxmlElement

    def wrap(element, tag: str) -> None:
        outer = OxmlElement(tag)
        inner = outer
        if tag == "w:sdt":
            outer.append(OxmlElement("w:sdtPr"))
            inner = OxmlElement("w:sdtContent")
            outer.append(inner)
        element.addprevious(outer)
        inner.append(element)

    word = docx.Document()
    table = word.add_table(rows=4, cols=2)
    for r, row in enumerate([("Month", "Ships"), ("May", "40"), ("June", "45"), ("July", "50")]):
        for c, value in enumerate(row):
            table.cell(r, c).text = value
    trs = table._tbl.tr_lst
    wrap(trs[1], "w:sdt")  # a repeating section's item
    wrap(trs[2], "w:customXml")
    wrap(trs[3].tc_lst[1], "w:sdt")  # a cell's content control
    wrap(trs[0].tc_lst[0], "w:customXml")
    word.add_paragraph("Ships are counted at the quay.")
    doc = parse_docx(_save(word), "form.docx")
    assert doc.text.split("\n\n") == ["Month | Ships", "May | 40", "June | 45", "July | 50", "Ships are counted at the quay."]


def _with_notes(data: bytes, footnotes: dict[str, str], endnotes: dict[str, str]) -> bytes:
    """A .docx with footnotes and endnotes parts as Word writes them (separators first), which
    python-docx cannot make: the parts, their content types and the relationships to them."""
    ns = 'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'

    def part(kind: str, notes: dict[str, str]) -> bytes:
        separators = "".join(f'<w:{kind} w:type="{t}" w:id="{i}"><w:p><w:r><w:{t}/></w:r></w:p></w:{kind}>'
                             for i, t in (("-1", "separator"), ("0", "continuationSeparator")))
        body = "".join(f'<w:{kind} w:id="{i}"><w:p><w:r><w:{kind}Ref/></w:r><w:r><w:t xml:space="preserve"> {text}'
                       f"</w:t></w:r></w:p></w:{kind}>" for i, text in notes.items())
        return f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><w:{kind}s {ns}>{separators}{body}</w:{kind}s>'.encode()

    with zipfile.ZipFile(io.BytesIO(data)) as real:
        members = {info.filename: real.read(info) for info in real.infolist()}
    types, rels = members["[Content_Types].xml"], members["word/_rels/document.xml.rels"]
    for kind, notes in (("footnote", footnotes), ("endnote", endnotes)):
        members[f"word/{kind}s.xml"] = part(kind, notes)
        types = types.replace(b"</Types>", f'<Override PartName="/word/{kind}s.xml" ContentType="application/'
                              f'vnd.openxmlformats-officedocument.wordprocessingml.{kind}s+xml"/></Types>'.encode())
        rels = rels.replace(b"</Relationships>", f'<Relationship Id="rIdN{kind}" Type="http://schemas.openxmlformats.org/'
                            f'officeDocument/2006/relationships/{kind}s" Target="{kind}s.xml"/></Relationships>'.encode())
    members["[Content_Types].xml"], members["word/_rels/document.xml.rels"] = types, rels
    return _zip(members)


def test_docx_footnotes_and_endnotes_are_blocks_after_their_paragraph():
    """Footnotes and endnotes were not read at all: "Who restored the lamp?" had no sentence to
    cite though a note said it. A note is now its own block after the paragraph referring to it,
    read once, and its mark stays out of the sentence."""
    def reference(paragraph, kind: str, note_id: str) -> None:
        _append_run(paragraph, f"{kind}Reference", id=note_id)

    word = docx.Document()
    p = word.add_paragraph("The lamp was lit in 1871.")
    reference(p, "footnote", "1")
    p.add_run(" It was converted to electricity in 1923.")
    reference(p, "endnote", "1")
    row = word.add_table(rows=1, cols=2).rows[0]
    row.cells[0].text, row.cells[1].text = "Height", "32 metres"
    reference(row.cells[1].paragraphs[0], "footnote", "2")
    p = word.add_paragraph("The keeper retired in 1950.")
    reference(p, "footnote", "1")  # a second reference to the same note: read once
    reference(p, "footnote", "9")  # a note the file lacks
    data = _with_notes(_save(word), {"1": "Restored by Ada Brunel in 1990.", "2": "Measured in 1950."},
                       {"1": "Harbour Board records, 1924."})
    doc = parse_docx(data, "notes.docx")
    assert doc.text.split("\n\n") == [
        "The lamp was lit in 1871. It was converted to electricity in 1923.", "Restored by Ada Brunel in 1990.",
        "Harbour Board records, 1924.", "Height | 32 metres", "Measured in 1950.", "The keeper retired in 1950."]
    assert "The lamp was lit in 1871." in _sentences(doc)


def test_docx_symbols_inserted_from_the_symbol_font_are_read():
    """Insert › Symbol writes a w:sym, which was not read: "It freezes at 0°C." became
    "It freezes at 0C." and "a 5 μm filter" "a 5 m filter"."""
    def symbol(paragraph, font: str, char: str) -> None:
        _append_run(paragraph, "sym", font=font, char=char)

    word = docx.Document()
    p = word.add_paragraph("It freezes at 0")
    symbol(p, "Symbol", "F0B0")
    p.add_run("C and boils at 100")
    symbol(p, "Symbol", "00B0")  # some writers leave out Word's private-use offset
    p.add_run("C.")
    p = word.add_paragraph("Use a 5 ")
    symbol(p, "Symbol", "F06D")
    p.add_run("m filter ")
    symbol(p, "Wingdings", "F0E0")  # a picture (an arrow), no character
    p.add_run(" then a ")
    symbol(p, "Arial", "2248")  # a Unicode character from a text font
    p.add_run(" 2 L jar.")
    doc = parse_docx(_save(word), "sym.docx")
    assert doc.text.split("\n\n") == ["It freezes at 0°C and boils at 100°C.", "Use a 5 μm filter then a ≈ 2 L jar."]


def test_docx_notes_referring_to_notes_are_not_followed():
    """Word allows no note inside a note; a file whose 5,000 footnotes each referred to the next
    recursed once per note and failed with a RecursionError instead of reading."""
    word = docx.Document()
    word.add_paragraph("The lamp was lit in 1871.")._p.append(docx.oxml.parse_xml(
        '<w:r xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:footnoteReference w:id="1"/></w:r>'))
    chain = {str(i): f"Note {i}.</w:t></w:r><w:r><w:footnoteReference w:id=\"{i + 1}\"/></w:r><w:r><w:t>"
             for i in range(1, 5001)}
    doc = parse_docx(_with_notes(_save(word), chain, {}), "chain.docx")
    assert doc.text.split("\n\n") == ["The lamp was lit in 1871.", "Note 1."]


def test_docx_paragraphs_joined_with_changes_tracked_are_one_block():
    """Joining two paragraphs with changes tracked deletes the first one's mark (w:pPr/w:rPr/w:del):
    Word shows one paragraph, but each was a block, so "The lamp was lit in 1871." was cut into
    "The lamp was" and "lit in 1871." and could not be cited whole."""
    from docx.oxml import OxmlElement
    from docx.oxml.ns import qn

    def delete_mark(paragraph, tag: str = "w:del") -> None:
        mark = OxmlElement(tag)
        mark.set(qn("w:id"), "7")
        mark.set(qn("w:author"), "Ada")
        paragraph._p.get_or_add_pPr().append(OxmlElement("w:rPr"))
        paragraph._p.pPr[-1].append(mark)

    word = docx.Document()
    delete_mark(word.add_paragraph("The lamp was "))
    word.add_paragraph("lit in 1871.")
    delete_mark(word.add_paragraph("The keeper "), "w:moveFrom")
    word.add_table(rows=1, cols=1).cell(0, 0).text = "Height | 32 metres"  # a table ends the paragraph
    word.add_paragraph("The tower is white.")
    doc = parse_docx(_save(word), "joined.docx")
    assert doc.text.split("\n\n") == ["The lamp was lit in 1871.", "The keeper", "Height | 32 metres", "The tower is white."]
    assert "The lamp was lit in 1871." in _sentences(doc)


def test_docx_paragraphs_of_notes_count_towards_the_paragraph_limit():
    """Notes are read now, so a small file whose one footnote held 110,000 one-letter paragraphs
    would have been read for a minute, each a sentence to embed, under a body far below the limit."""
    word = docx.Document()
    word.add_paragraph("The lamp was lit in 1871.")._p.append(docx.oxml.parse_xml(
        '<w:r xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:footnoteReference w:id="1"/></w:r>'))
    letters = "a</w:t></w:r></w:p>" + "<w:p><w:r><w:t>a</w:t></w:r></w:p>" * 110_000 + "<w:p><w:r><w:t>a"
    data = _with_notes(_save(word), {"1": letters}, {})
    assert len(data) < 300_000
    with pytest.raises(IngestError, match=rf"^notes\.docx: 1100\d\d paragraphs \(the limit is {MAX_PARAGRAPHS}\);"):
        parse_docx(data, "notes.docx")


def test_docx_hidden_text_is_not_read():
    """Text formatted as hidden (Font › Hidden), which Word neither shows nor prints, was quoted;
    a run whose hidden mark is switched off is read."""
    from docx.oxml import OxmlElement
    from docx.oxml.ns import qn

    word = docx.Document()
    p = word.add_paragraph("The gauge cost 48,000 euros.")
    secret = p.add_run(" The old gauge cost 99 million.")
    secret._r.get_or_add_rPr().append(OxmlElement("w:vanish"))
    shown = word.add_paragraph().add_run("It was installed in May.")
    off = OxmlElement("w:vanish")
    off.set(qn("w:val"), "0")
    shown._r.get_or_add_rPr().append(off)
    doc = parse_docx(_save(word), "gauge.docx")
    assert "99 million" not in doc.text
    assert _sentences(doc) == ["The gauge cost 48,000 euros.", "It was installed in May."]


_WM = ('xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main" '
       'xmlns:m="http://schemas.openxmlformats.org/officeDocument/2006/math"')


def _math_run(text: str) -> str:
    return f"<m:r><m:t>{text}</m:t></m:r>"


def test_docx_equations_are_read_in_linear_format():
    """Equations (Office Math) were dropped: "The area is A=πr² square metres." read "The area is
    square metres." and an equation on its own line was no block at all. They read now as Word's
    linear format writes them, in place."""
    r = _math_run
    word = docx.Document()
    p = word.add_paragraph("The area is ")
    p._p.append(docx.oxml.parse_xml(f"<m:oMath {_WM}>{r('A=π')}<m:sSup><m:e>{r('r')}</m:e><m:sup>{r('2')}</m:sup>"
                                    "</m:sSup></m:oMath>"))
    p.add_run(" square metres.")
    display = (f"<m:oMathPara {_WM}><m:oMath>{r('m=')}<m:f><m:num><m:d><m:dPr><m:begChr m:val='['/><m:endChr m:val=']'/>"
               f"</m:dPr><m:e>{r('a+b')}</m:e></m:d></m:num><m:den>{r('2')}</m:den></m:f></m:oMath>"
               f"<m:oMath>{r('S=')}<m:nary><m:naryPr><m:chr m:val='∑'/></m:naryPr><m:sub>{r('i=1')}</m:sub>"
               f"<m:sup>{r('n')}</m:sup><m:e><m:sSub><m:e>{r('x')}</m:e><m:sub>{r('i')}</m:sub></m:sSub></m:e></m:nary>"
               f"</m:oMath></m:oMathPara>")
    word.add_paragraph()._p.append(docx.oxml.parse_xml(display))  # an equation paragraph: a block of its own
    p = word.add_paragraph("The side is ")
    p._p.append(docx.oxml.parse_xml(
        f"<m:oMath {_WM}><m:rad><m:radPr><m:degHide m:val='1'/></m:radPr><m:deg/><m:e>{r('A')}</m:e></m:rad>{r('=')}"
        f"<w:del w:id='1' w:author='Ada'>{r('5')}</w:del><w:ins w:id='2' w:author='Ada'>{r('6')}</w:ins></m:oMath>"))
    p.add_run(" metres.")
    body = word.element.body  # an equation paragraph straight in the body, as some converters write it
    body.insert(len(body) - 1, docx.oxml.parse_xml(f"<m:oMathPara {_WM}><m:oMath>{r('E=m')}<m:sSup><m:e>{r('c')}"
                                                   f"</m:e><m:sup>{r('2')}</m:sup></m:sSup></m:oMath></m:oMathPara>"))
    doc = parse_docx(_save(word), "area.docx")
    assert doc.text.split("\n\n") == ["The area is A=πr^2 square metres.", "m=[a+b]/2\nS=∑_(i=1)^n x_i",
                                      "The side is √A=6 metres.", "E=mc^2"]
    assert "The area is A=πr^2 square metres." in _sentences(doc)


def test_docx_placeholder_text_of_empty_content_controls_is_not_read():
    """An empty content control shows its placeholder ("Click or tap here to enter text.",
    w:showingPlcHdr), which was read as if the author had written it; a filled one is read."""
    def control(text: str, placeholder: str, block: bool = False) -> str:
        content = f"<w:p><w:r><w:t>{text}</w:t></w:r></w:p>" if block else f"<w:r><w:t>{text}</w:t></w:r>"
        return (f"<w:sdt {_WM}><w:sdtPr>{placeholder}<w:text/></w:sdtPr>"
                f"<w:sdtContent>{content}</w:sdtContent></w:sdt>")

    shown, empty = "<w:showingPlcHdr/>", "<w:showingPlcHdr w:val='0'/>"
    word = docx.Document()
    p = word.add_paragraph("Inspector: ")
    p._p.append(docx.oxml.parse_xml(control("Click or tap here to enter text.", shown)))
    p = word.add_paragraph("Harbour: ")
    p._p.append(docx.oxml.parse_xml(control("Brixham", empty)))
    body = word.element.body
    body.insert(len(body) - 1, docx.oxml.parse_xml(control("Click or tap here to enter text.", shown, block=True)))
    row = word.add_table(rows=1, cols=2).rows[0]
    row.cells[0].text = "Depth"
    row.cells[1].paragraphs[0]._p.append(docx.oxml.parse_xml(control("Enter a depth.", shown)))
    word.add_paragraph("The tower is white.")
    doc = parse_docx(_save(word), "form.docx")
    assert "Click or tap" not in doc.text and "Enter a depth" not in doc.text
    assert doc.text.split("\n\n") == ["Inspector:", "Harbour: Brixham", "Depth", "The tower is white."]


def test_docx_phonetic_guides_read_their_base_text_only():
    """East Asian phonetic guides (w:ruby, Home › Phonetic Guide) lost their base text: "東京は日本の首都です。"
    read "は日本の首都です。"; the reading above it (w:rt) is not part of the sentence."""
    word = docx.Document()
    p = word.add_paragraph()
    p._p.append(docx.oxml.parse_xml(
        f"<w:r {_WM}><w:ruby><w:rubyPr><w:rubyAlign w:val='distributeSpace'/><w:hps w:val='10'/></w:rubyPr>"
        "<w:rt><w:r><w:t>とうきょう</w:t></w:r></w:rt><w:rubyBase><w:r><w:t>東京</w:t></w:r></w:rubyBase></w:ruby></w:r>"))
    p.add_run("は日本の首都です。")
    doc = parse_docx(_save(word), "tokyo.docx")
    assert doc.text == "東京は日本の首都です。"


def _titled_page(head: str, body: str) -> bytes:
    text = "<p>" + "The lamp was lit every night by the keeper of the tower. " * 6 + "</p>"
    return f"<html><head>{head}</head><body>{body}<article>{text}</article></body></html>".encode()


def test_html_title_leaves_out_the_site_name_the_page_gives():
    """Titles kept the site's name ("Westhaven Lighthouse - Wikipedia"), shown in every citation,
    or trafilatura guessed one end of the <title> ("Home » Club news", "The Harbour Times")."""
    cases = [  # (head, body before the article, title)
        ('<meta property="og:title" content="Westhaven Lighthouse - Wikipedia">',
         '<h1 id="firstHeading"><span class="mw-page-title-main">Westhaven Lighthouse</span></h1>', "Westhaven Lighthouse"),
        ('<meta property="og:title" content="Tide tables explained | The Harbour Times">'
         '<meta property="og:site_name" content="The Harbour Times">', "", "Tide tables explained"),
        ("<title>The Harbour Times | Tide tables explained</title>", '<a href="/">The Harbour Times</a>',
         "Tide tables explained"),
        ("<title>Home » Club news » AGM minutes</title>", '<h1><a href="/">Westhaven Club</a></h1><h1>AGM minutes</h1>',
         "AGM minutes"),
        # nothing says which part is the site's name: the whole title, never a guessed end ("Rome")
        ("<title>Rome - Paris by night train</title>", "", "Rome - Paris by night train"),
        ("<title>Harbour Lighthouse: Visitor Notes</title>", "", "Harbour Lighthouse: Visitor Notes"),
    ]
    for head, body, title in cases:
        assert parse_html(_titled_page(head, body), "page.html").title == title


def test_html_figure_captions_are_read_as_blocks():
    """trafilatura removes every <figure>, and any element of a "caption" class (WordPress's): a
    caption's facts were never found."""
    text = "<p>" + "The lamp was lit every night by the keeper of the tower. " * 6 + "</p>"
    page = ('<html><head><title>Westhaven Lighthouse</title></head><body><article><h1>Westhaven Lighthouse</h1>'
            f'<div class="entry-content">{text}<figure class="wp-caption"><img src="1905.jpg" alt=""><figcaption '
            'class="wp-caption-text">The lighthouse in 1905, before the lamp was converted</figcaption></figure>'
            '<figure><img src="logo.png"></figure><p>It has been automatic since 1950.</p></div></article></body></html>')
    blocks = parse_html(page.encode(), "lighthouse.html").text.split("\n\n")
    assert blocks[2:] == ["The lighthouse in 1905, before the lamp was converted", "It has been automatic since 1950."]


def test_html_standfirst_and_lead_caption_above_the_article_body_are_read():
    """trafilatura keeps a news article's body container alone: the standfirst under the headline
    and the lead picture's caption, above that container, were lost (the headline was put back)."""
    body = "".join(f"<p>{s}</p>" for s in ("Ferry fares between Westhaven and Lindholm will rise by 8% from 1 June, "
                                           "the operator said on Monday.", "A single ticket will cost 94 kroner, up "
                                           "from 87. Season tickets rise by 6%.") * 2)
    for standfirst in ('<p class="standfirst">Regular passengers face higher costs</p>',
                       '<div class="article-summary"><p>Regular passengers face higher costs</p></div>',
                       '<p itemprop="description">Regular passengers face higher costs</p>',
                       "<p>Regular passengers face higher costs</p>"):  # the page's description, shown
        page = ('<html><head><meta property="og:title" content="Ferry fares to rise by 8% in June"><meta name='
                '"description" content="Regular passengers face  higher costs"></head><body><main><article>'
                f'<h1>Ferry fares to rise by 8% in June</h1>{standfirst}<div class="byline">By Kari Olsen</div>'
                '<figure class="lead-image"><img src="ferry.jpg" alt=""><figcaption>The morning ferry leaving '
                f'Westhaven in 1905</figcaption></figure><div class="article-body">{body}</div>'
                '<ul class="related"><li><p class="card-summary">The pier cost 40 million kroner.</p></li></ul>'
                '</article></main></body></html>')
        blocks = parse_html(page.encode(), "fares.html").text.split("\n\n")
        assert blocks[:4] == ["Ferry fares to rise by 8% in June", "Regular passengers face higher costs",
                              "The morning ferry leaving Westhaven in 1905", "Ferry fares between Westhaven and Lindholm "
                              "will rise by 8% from 1 June, the operator said on Monday."]
        assert "By Kari Olsen" not in blocks and "The pier cost 40 million kroner." not in blocks


def test_a_page_whose_body_sits_in_hundreds_of_nested_containers_reads_its_lead_quickly():
    """Each of the 200 elements after the headline was read whole, looking for a standfirst: with
    the body nested 200 <div>s deep under it, a 2 MB page took 22 s, a 16 MB one minutes."""
    paragraph = "<p>" + "The keepers logged every ship that entered the harbour in the old days. " * 20 + "</p>\n"
    page = ("<html><head><title>Lighthouse</title></head><body><div><h1>The Westhaven Lighthouse</h1></div>"
            "<div class='standfirst'>A keeper's log, read again.</div>"
            + "<div>" * 199 + paragraph * 700 + "</div>" * 199 + "</body></html>").encode()
    t = time.perf_counter()
    doc = parse_html(page, "deep.html")
    assert time.perf_counter() - t < 4
    assert doc.text.startswith("The Westhaven Lighthouse\n\nA keeper's log, read again.\n\nThe keepers logged")


def test_docx_symbols_that_show_nothing_put_no_character_in_the_text():
    """A w:sym's code was taken as any character: a lone surrogate (D800) made text that cannot be
    written as UTF-8 (the answer API's JSON, Milvus's rows) and a control code (0007) a bell."""
    from docx.oxml import OxmlElement
    from docx.oxml.ns import qn

    word = docx.Document()
    p = word.add_paragraph("The lamp ")
    for char in ("D800", "0007"):
        run, sym = OxmlElement("w:r"), OxmlElement("w:sym")
        sym.set(qn("w:font"), "Arial")
        sym.set(qn("w:char"), char)
        run.append(sym)
        p._p.append(run)
    p.add_run(" was lit in 1820.")
    doc = parse_docx(_save(word), "sym.docx")
    assert doc.text == "The lamp was lit in 1820."
    doc.text.encode("utf-8")
