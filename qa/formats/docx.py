"""Word (.docx) reader: paragraphs, headings, list items and table rows, in document order.

The file is checked as a zip before python-docx opens it (a corrupt file, an encrypted or
old binary Word file, a macro-enabled one, or one that would unpack to an absurd size each get
a clear error). Each paragraph and each table row is a block of the text (see
:mod:`qa.formats.text`), a text box's after the paragraph it is anchored in, a footnote's or
endnote's after the paragraph referring to it; an equation is read in Word's linear format
("A=πr^2"); headers, footers, comments and empty content controls' placeholder text are not read.
Title and date come from the file's core properties when it has them.
"""

from __future__ import annotations

import io
import unicodedata
import zipfile
import zlib
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import docx
from docx.opc.constants import RELATIONSHIP_TYPE as RT
from docx.opc.exceptions import PackageNotFoundError
from docx.oxml import parse_xml
from docx.oxml.ns import qn
from docx.table import Table
from lxml import etree

from ..ingest import IngestError, document_title, short_title
from ..types import Document
from .text import join_blocks, table_row

# What a .docx may unpack to, and how many files it may hold; more is refused as a possible
# zip bomb (a few KB that unpack to gigabytes). Real documents, images included, stay far below.
MAX_UNPACKED_BYTES = 200 * 1024 * 1024
MAX_ZIP_ENTRIES = 10_000
# Paragraphs (table cells' and notes' included) a body may hold: a thousand-page report has some 50,000.
MAX_PARAGRAPHS = 100_000
# XML tags ("<") in the package's parts, counted while streaming them, before python-docx holds
# them all as trees (docs/formats.md, "Hostile files"); a formatted paragraph is 20-60 tags.
MAX_XML_TAGS = 5_000_000
# python-docx's own blank template carries this creation date (and author "python-docx"), so a
# file made from it without setting ``created`` says nothing about its date.
_TEMPLATE_CREATED = datetime(2013, 12, 23, 23, 15, tzinfo=timezone.utc)
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_ENCRYPTION_INFO = "EncryptionInfo".encode("utf-16-le")  # a stream name in an encrypted OOXML file


def parse_docx(data: bytes, doc_id: str) -> Document:
    """Read a Word .docx file's bytes as a document (kind ``"docx"``)."""
    _check_package(data, doc_id)
    try:
        word = docx.Document(io.BytesIO(data))
        notes = _notes(word)  # their paragraphs are read too, so count towards the limit
        paragraphs = sum(1 for root in [word.element.body, *notes.values()] for _ in root.iter(qn("w:p")))
        if paragraphs > MAX_PARAGRAPHS:
            raise IngestError(f"{doc_id}: {paragraphs} paragraphs (the limit is {MAX_PARAGRAPHS}); reading it would take "
                              "minutes: split the document into smaller files")
        blocks = list(_blocks(word.element.body, word, notes))
        props = word.core_properties
        title, created = props.title or "", props.created
    except IngestError:
        raise
    except (PackageNotFoundError, KeyError, ValueError, etree.LxmlError, zipfile.BadZipFile, zlib.error, EOFError) as exc:
        raise _unreadable(doc_id, exc) from None
    text = join_blocks(blocks)
    title = document_title(title, text) or Path(doc_id).stem
    return Document(id=doc_id, title=short_title(title), date=_created_date(created), text=text, kind="docx")


def _unreadable(doc_id: str, exc: Exception) -> IngestError:
    return IngestError(f"{doc_id}: not a readable Word .docx file ({exc}); open it in Word and save it again as .docx")


def _check_package(data: bytes, doc_id: str) -> None:
    """Refuse what is not a .docx zip, or a zip that would unpack to too much, before parsing."""
    if data.startswith(_OLE_MAGIC):
        if _ENCRYPTION_INFO in data:
            raise IngestError(f"{doc_id}: a password-protected Word file; open it in Word, remove the password "
                              "(File › Info › Protect Document) and save it again")
        raise IngestError(f"{doc_id}: an old binary Word file (.doc) named .docx; open it in Word and save it as .docx")
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, zlib.error, EOFError, ValueError) as exc:
        raise IngestError(f"{doc_id}: not a Word .docx file ({exc}); open it in Word and save it again as .docx") from None
    with zf:
        infos = zf.infolist()
        unpacked = sum(info.file_size for info in infos)
        if len(infos) > MAX_ZIP_ENTRIES or unpacked > MAX_UNPACKED_BYTES:
            raise IngestError(f"{doc_id}: unpacks to {unpacked} bytes in {len(infos)} files (the limits are "
                              f"{MAX_UNPACKED_BYTES} bytes and {MAX_ZIP_ENTRIES} files); refused as a possible zip bomb: "
                              "if it is a real document, remove large embedded objects or split it")
        if any(info.filename == "word/vbaProject.bin" for info in infos):
            raise IngestError(f"{doc_id}: a macro-enabled Word file (it holds word/vbaProject.bin); macros are never run, "
                              "but such a file is not read: save it in Word as a plain .docx (Word Document)")
        _count_tags(zf, infos, doc_id)


def _count_tags(zf: zipfile.ZipFile, infos: list[zipfile.ZipInfo], doc_id: str) -> None:
    """Refuse a package whose XML parts hold more than :data:`MAX_XML_TAGS` tags ("<"), streaming
    them (parts declared binary, see :func:`_binary_parts`, are skipped); an XML part that unpacks
    to more than its declared size fails its CRC here, before python-docx inflates it whole."""
    tags, binary = 0, set()
    try:  # the content types first: python-docx parses a part by its declared type, whatever its name
        for info in sorted(infos, key=lambda i: i.filename != _CONTENT_TYPES):
            if info.filename in binary:
                continue
            with zf.open(info) as part:
                while chunk := part.read(1 << 20):
                    tags += chunk.count(b"<")
            if tags > MAX_XML_TAGS:
                raise IngestError(f"{doc_id}: over {MAX_XML_TAGS} XML tags by the end of {info.filename}; reading it "
                                  "would take gigabytes: split the document into smaller files")
            if info.filename == _CONTENT_TYPES:
                binary = _binary_parts(zf.read(info), [i.filename for i in infos])
    except RuntimeError:  # zipfile's "File … is encrypted, password required for extraction"
        raise IngestError(f"{doc_id}: a part of the file is encrypted; open it in Word and save it again without a password") from None
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as exc:
        raise _unreadable(doc_id, exc) from None


_CONTENT_TYPES = "[Content_Types].xml"
_CT = "{http://schemas.openxmlformats.org/package/2006/content-types}"


def _binary_parts(types: bytes, names: list[str]) -> set[str]:
    """The parts declared of a type that is not XML (images, fonts): python-docx never parses them."""
    try:  # as python-docx parses: no entities resolved, nothing fetched
        root = etree.fromstring(types, etree.XMLParser(resolve_entities=False, no_network=True))
    except etree.LxmlError:
        return set()
    defaults = {e.get("Extension", "").lower(): e.get("ContentType", "") for e in root.iter(_CT + "Default")}
    # As python-docx looks a part up: "/word/document.xml" only ("word/…", "//word/…" name no part).
    overrides = {e.get("PartName", "")[1:].lower(): e.get("ContentType", "") for e in root.iter(_CT + "Override")
                 if e.get("PartName", "").startswith("/")}
    out = set()
    for name in names:
        kind = overrides.get(name.lower(), defaults.get(name.rpartition(".")[2].lower() if "." in name else ""))
        if kind and not kind.split(";")[0].strip().lower().endswith("xml") and not name.endswith(".rels"):
            out.add(name)
    return out


def _created_date(created: datetime | None) -> str | None:
    """The creation date (ISO, UTC) unless absent or python-docx's template's."""
    if created is None:
        return None
    if created.tzinfo is None:
        created = created.replace(tzinfo=timezone.utc)  # core properties are written in UTC
    return None if created == _TEMPLATE_CREATED else created.astimezone(timezone.utc).date().isoformat()


# Elements around paragraphs and tables (content controls, custom XML) read through; python-docx
# reads only a container's direct w:p and w:tbl, and a paragraph's direct w:r and w:hyperlink.
_BLOCK_WRAPPERS = frozenset(qn(t) for t in ("w:sdt", "w:sdtContent", "w:customXml"))
# Inside a paragraph: what Word does not show as its text (deleted revisions, properties, the
# fallback copy of a drawing, a phonetic guide's reading above its base text); every other run
# (inserted revisions, fields, content controls, a phonetic guide's base) is.
_NOT_SHOWN = frozenset([*(qn(t) for t in ("w:del", "w:moveFrom", "w:pPr", "w:rt")),
                        "{http://schemas.openxmlformats.org/markup-compatibility/2006}Fallback"])
# What python-docx reads as a run's text, and symbols; a soft hyphen (w:softHyphen) is not shown.
_RUN_TEXT = frozenset(qn(t) for t in ("w:br", "w:cr", "w:noBreakHyphen", "w:ptab", "w:sym", "w:t", "w:tab"))
_TEXT_BOX = qn("w:txbxContent")
_M = "{http://schemas.openxmlformats.org/officeDocument/2006/math}"
_MATH = frozenset([_M + "oMath", _M + "oMathPara"])  # an equation in a line, and equations on lines of their own
_DELETED_MARK = "w:pPr/w:rPr/w:del | w:pPr/w:rPr/w:moveFrom"  # a paragraph mark removed as a tracked change


_NOTE_REFERENCES = {qn("w:footnoteReference"): qn("w:footnote"), qn("w:endnoteReference"): qn("w:endnote")}
_NOTE_PARTS = {RT.FOOTNOTES: qn("w:footnote"), RT.ENDNOTES: qn("w:endnote")}
Notes = dict[tuple[str, str], etree._Element]  # (w:footnote or w:endnote, its w:id) -> the note


def _notes(word: docx.document.Document) -> Notes:
    """The document's footnotes and endnotes by kind and id (python-docx does not read them)."""
    notes: Notes = {}
    for rel in word.part.rels.values():
        tag = _NOTE_PARTS.get(rel.reltype)
        if tag is None or rel.is_external:
            continue
        # With python-docx's own parser (no entities resolved), as it reads the body; the part's tags were counted.
        root = parse_xml(rel.target_part.blob)
        notes.update(((tag, note.get(qn("w:id"), "")), note) for note in root.iterchildren(tag))
    return notes


def _block_elements(parent: etree._Element,
                    tags: tuple[str, ...] = (qn("w:p"), qn("w:tbl"), _M + "oMathPara")) -> Iterator[etree._Element]:
    """The w:p, w:tbl and m:oMathPara (equations outside a paragraph) elements (or ``tags``) of a
    body, cell or table in order, through content controls."""
    for child in parent:
        if child.tag in tags:
            yield child
        elif child.tag in _BLOCK_WRAPPERS and not _placeholder(child):
            yield from _block_elements(child, tags)


def _placeholder(element: etree._Element) -> bool:
    """Is it an empty content control showing its placeholder ("Click or tap here to enter text.")?"""
    return element.tag == qn("w:sdt") and _on(element.find(f"{qn('w:sdtPr')}/{qn('w:showingPlcHdr')}"))


def _on(flag: etree._Element | None) -> bool:
    """Is an on/off property (w:vanish, w:showingPlcHdr) present and not switched off?"""
    return flag is not None and flag.get(qn("w:val"), "true").lower() not in ("0", "false", "off")


def _paragraph_text(p: etree._Element, notes: Notes) -> tuple[str, list[etree._Element]]:
    """A paragraph's text as Word shows it, and what is read after it in order: the text boxes
    anchored in it and the notes it refers to (each taken out of ``notes``, so read once)."""
    parts, after = [], []
    walker = etree.iterwalk(p, events=("start",))
    for _, e in walker:
        if e.tag == qn("w:r") and _hidden(e):
            walker.skip_subtree()
        elif e.tag == qn("w:r") and e.find(qn("w:ruby")) is not None:
            continue  # a phonetic guide: its base's runs are read inside it, its reading (w:rt) is not
        elif e.tag in _MATH:
            parts.append(_math_text(e))
            walker.skip_subtree()
        elif e.tag == qn("w:r"):
            parts.append(_run_text(e))
            after.extend(_text_boxes(e))
            for ref in e.iterchildren(*_NOTE_REFERENCES):  # the mark is left out of the sentence, as on web pages
                note = notes.pop((_NOTE_REFERENCES[ref.tag], ref.get(qn("w:id"), "")), None)
                if note is not None:
                    after.append(note)
            walker.skip_subtree()
        elif e.tag in _NOT_SHOWN or _placeholder(e):
            walker.skip_subtree()
    return "".join(parts), after


def _hidden(run: etree._Element) -> bool:
    """Is the run formatted as hidden text (w:vanish), which Word neither shows nor prints?"""
    return _on(run.find(f"{qn('w:rPr')}/{qn('w:vanish')}"))


def _run_text(run: etree._Element) -> str:
    """The text of a run (w:r), or of an equation's (m:r), whose text is m:t."""
    parts = []
    for e in run:
        if e.tag == qn("w:br"):
            parts.append("\n")  # python-docx reads a page or column break as "", which glued two words
        elif e.tag == qn("w:sym"):
            parts.append(_symbol(e))
        elif e.tag == _M + "t":
            parts.append(e.text or "")
        elif e.tag in _RUN_TEXT:
            parts.append(str(e))
    return "".join(parts)


# Word's Symbol font by its code (Word writes U+F020-U+F0FF, its private-use copy): Greek
# letters, degree, plus-minus, arrows... Other symbol fonts (Wingdings) are pictures, no text.
_SYMBOL_FONT = {
    **dict(zip(range(0x20, 0x7F), " !∀#∃%&∋()∗+,−./0123456789:;<=>?≅ΑΒΧΔΕΦΓΗΙϑΚΛΜΝΟΠΘΡΣΤΥςΩΞΨΖ[∴]⊥_"
                                  " αβχδεφγηιϕκλμνοπθρστυϖωξψζ{|}∼")),  # 0x60, a radical's extender: a space
    **dict(zip(range(0xA0, 0xE6), "€ϒ′≤⁄∞ƒ♣♦♥♠↔←↑→↓°±″≥×∝∂•÷≠≡≈…|―↵ℵℑℜ℘⊗⊕∅∩∪⊃⊇⊄⊂⊆∈∉∠∇®©™∏√⋅¬∧∨⇔⇐⇑⇒⇓◊〈®©™∑")),
    0xF1: "〉", 0xF2: "∫",
}


def _symbol(sym: etree._Element) -> str:
    """The character a w:sym shows (Insert › Symbol), or "" for a symbol font's picture."""
    try:
        code = int(sym.get(qn("w:char"), ""), 16)
    except ValueError:
        return ""
    if sym.get(qn("w:font"), "").strip().lower() == "symbol" and code >> 8 in (0, 0xF0):
        return _SYMBOL_FONT.get(code & 0xFF, "")
    # Private use, control codes and lone surrogates show nothing (a surrogate cannot even be stored as UTF-8).
    return "" if not 0 < code <= 0x10FFFF or unicodedata.category(chr(code)) in ("Co", "Cc", "Cs") else chr(code)


# Structures read nested this deep; deeper (a hostile file), only their text in order.
MAX_MATH_DEPTH = 20


def _math_text(e: etree._Element, depth: int = 0) -> str:
    """An equation (Office Math) in Word's linear format, as Equation › Linear shows it:
    "A=πr^2", "(a+b)/2", "x_i", "√(x+1)", "∑_(i=1)^n x_i"; other structures (matrices,
    accents, boxes) read as their text in order."""
    if depth > MAX_MATH_DEPTH:
        return "".join(t.text or "" for t in e.iter(_M + "t"))
    tag = e.tag[len(_M):] if e.tag.startswith(_M) else ""

    def arg(name: str, group: bool = False) -> str:
        child = e.find(_M + name)
        text = "" if child is None else _math_text(child, depth + 1)
        # One letter, digit run or bracketed group needs no brackets of its own: "x^2", "(a+b)/2".
        return f"({text})" if group and len(text) > 1 and not text.isalnum() and not _bracketed(text) else text

    def prop(name: str, default: str) -> str:
        val = e.find(f"{_M}{tag}Pr/{_M}{name}")
        return default if val is None else val.get(_M + "val", "")

    if tag == "r" or e.tag == qn("w:r"):  # an equation's run, or ordinary text in it
        return "" if _hidden(e) else _run_text(e)
    if tag == "oMathPara":
        return "\n".join(_math_text(m, depth + 1) for m in e.iterchildren(_M + "oMath"))
    if tag == "f":
        return arg("num", True) + "/" + arg("den", True)
    if tag in ("sSup", "sSub", "sSubSup", "sPre"):
        scripts = (f"_{arg('sub', True)}" if e.find(_M + "sub") is not None else "") + \
                  (f"^{arg('sup', True)}" if e.find(_M + "sup") is not None else "")
        return scripts + arg("e", True) if tag == "sPre" else arg("e", True) + scripts
    if tag == "rad":
        degree = arg("deg")
        return {"": "√", "2": "√", "3": "∛", "4": "∜"}.get(degree, f"{degree}√") + arg("e", True)
    if tag == "d":
        separator = prop("sepChr", "|")
        inner = separator.join(_math_text(x, depth + 1) for x in e.iterchildren(_M + "e"))
        return prop("begChr", "(") + inner + prop("endChr", ")")
    if tag == "nary":
        sub, sup = arg("sub", True), arg("sup", True)
        return prop("chr", "∫") + (f"_{sub}" if sub else "") + (f"^{sup}" if sup else "") + " " + arg("e")
    if tag == "func":
        name, argument = arg("fName"), arg("e")
        return name + ("" if _bracketed(argument) else " ") + argument
    if tag in ("limLow", "limUpp"):
        return arg("e") + ("_" if tag == "limLow" else "^") + arg("lim", True)
    out = []
    for child in e:
        if child.tag in _NOT_SHOWN or _placeholder(child) or child.tag.endswith("Pr"):
            continue
        out.append(_math_text(child, depth + 1))
    return "".join(out)


def _bracketed(text: str) -> bool:
    """Is the whole text one bracketed group: "(a+b)", not "(a)+(b)"?"""
    level = 0
    for i, char in enumerate(text):
        level += (char in "([{") - (char in ")]}")
        if level <= 0 and i < len(text) - 1:
            return False
    return len(text) > 1 and level == 0 and text[-1] in ")]}"


def _text_boxes(run: etree._Element) -> Iterator[etree._Element]:
    """The outermost text boxes of a run, once: not the fallback copy Word keeps beside a drawing."""
    walker = etree.iterwalk(run, events=("start",))
    for _, e in walker:
        if e.tag == _TEXT_BOX:
            yield e
            walker.skip_subtree()
        elif e.tag in _NOT_SHOWN:
            walker.skip_subtree()


def _blocks(parent: etree._Element, owner: object, notes: Notes) -> Iterator[str]:
    """The text blocks of a body, cell, text box or note in order: one per paragraph (then those
    of its text boxes and notes), one per table row."""
    texts: list[str] = []  # a paragraph whose mark is deleted, and the one it joins, as Word shows them
    after: list[etree._Element] = []

    def paragraph() -> Iterator[str]:
        yield "".join(texts)
        for box in after:
            yield from _blocks(box, owner, _inner_notes(box, notes))
        texts.clear()
        after.clear()

    for element in _block_elements(parent):
        if element.tag == qn("w:tbl"):
            yield from paragraph()
            yield from _table_blocks(Table(element, owner), notes)
        else:
            text, boxes = _paragraph_text(element, notes)
            texts.append(text)
            after.extend(boxes)
            # Two paragraphs joined with changes tracked: one sentence was cut in two blocks.
            if element.tag != qn("w:p") or not element.xpath(_DELETED_MARK):
                yield from paragraph()
    yield from paragraph()


def _inner_notes(container: etree._Element, notes: Notes) -> Notes:
    """The notes a text box or note may refer to: none inside a note (Word allows no notes in a
    note), so a file whose notes refer to one another in a long chain cannot recurse deeply."""
    return notes if container.tag == _TEXT_BOX else {}


def _unwrap(parent: etree._Element, tag: str) -> None:
    """Put the ``tag`` elements that content controls or custom XML hold directly under
    ``parent``, in place: python-docx reads only a table's own w:tr and a row's own w:tc."""
    for child in list(parent):
        if child.tag in _BLOCK_WRAPPERS:
            for inner in list(_block_elements(child, (tag,))):
                child.addprevious(inner)
            parent.remove(child)


def _table_blocks(table: Table, notes: Notes) -> Iterator[str]:
    """One block per row, then the blocks of any table, text box or note in that row's cells."""
    # A repeating section (a content control around rows, as forms have) lost its rows.
    _unwrap(table._tbl, qn("w:tr"))
    for tr in table._tbl.tr_lst:
        _unwrap(tr, qn("w:tc"))
    # python-docx repeats a merged cell at every grid position it spans (across and down);
    # its <w:tc> element is the same, so each is read once, where it first appears.
    seen: set = set()
    for row in table.rows:
        cells, nested = [], []
        for cell in row.cells:
            if cell._tc in seen:
                continue
            seen.add(cell._tc)
            parts = []
            for element in _block_elements(cell._tc):
                if element.tag == qn("w:tbl"):
                    nested.append(_table_blocks(Table(element, cell), notes))
                else:
                    text, after = _paragraph_text(element, notes)
                    parts.append(text)
                    nested.extend(_blocks(box, cell, _inner_notes(box, notes)) for box in after)
            cells.append(" ".join(parts))
        yield table_row(cells)
        for inner in nested:
            yield from inner
