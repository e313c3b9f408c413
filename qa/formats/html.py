"""Web page (.html/.htm) reader: the main content, without navigation, banners and footers.

trafilatura finds the main content and the page's title and date (from its metadata: og:title,
article:published_time, JSON-LD and the like). It parses the markup and never runs scripts.
Each paragraph, heading, list item, quote and table row of the content it keeps is a block of
the text (see :mod:`qa.formats.text`); so are figure captions and a news article's standfirst,
which it leaves out. The title loses the site's name where the page names its site.
"""

from __future__ import annotations

import codecs
import re
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

import lxml.html
import trafilatura
from lxml import etree
from trafilatura.settings import set_date_params, use_config
from trafilatura.xpaths import BODY_XPATH

from ..ingest import IngestError, document_title, short_title
from ..types import Document
from .text import clean_block, join_blocks, table_row

# The charset a page declares (<meta charset> or http-equiv Content-Type), looked for where the
# HTML standard's prescan looks: the first 1024 bytes (a few more, for pages with long heads).
_CHARSET = re.compile(rb"<meta[^>]*?charset\s*=\s*[\"']?\s*([A-Za-z0-9._:-]+)", re.IGNORECASE)
_PRESCAN_BYTES = 4096
# Where a later declaration is still looked for: the head, up to <body> (at most this far).
_LATE_CHARSET_BYTES = 1 << 20
_BODY = re.compile(rb"<body[\s>]", re.IGNORECASE)
_BOMS = ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be"))
# Characters an XML tree cannot hold (trafilatura's output is one); no text has them.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
# Browsers read these labels as windows-1252 (the WHATWG Encoding standard); Python's codecs
# of the same name lack its characters 0x80-0x9f (curly quotes, dashes).
_AS_CP1252 = {"iso-8859-1", "iso8859-1", "latin1", "latin-1", "l1", "us-ascii", "ascii", "cp819", "ibm819"}
# trafilatura's search for the main content grows faster than linearly with the number of
# elements, and quadratically with the pieces of text in one paragraph (an XPath over every
# paragraph's text): past these a page takes minutes. Measured here: 100,000 tiny paragraphs
# ~19 s; a 16 MiB page of real paragraphs has ~52,000 elements and reads in ~8 s; a real
# paragraph has tens of pieces, 5,000 of them take ~0.3 s.
MAX_ELEMENTS = 100_000
# Parsing alone costs ~0.25 GB a million elements: a page of more start tags than this (counted
# in the source, comments and scripts too, hence the margin) is refused before it is parsed.
MAX_START_TAGS = 2 * MAX_ELEMENTS
MAX_PARAGRAPH_PIECES = 5_000
# Attributes one tag may carry: libxml2 and trafilatura are quadratic in them (docs/formats.md,
# "Hostile files"); real tags carry a handful.
MAX_TAG_ATTRIBUTES = 2_000
# A start tag up to its closing ">" (quoted values may hold one), and the quoted values in it.
_START_TAG = re.compile(r"""<[A-Za-z](?:[^<>"']|"[^"]*"|'[^']*')*""")
_QUOTED = re.compile(r""""[^"]*"|'[^']*'""")
# Elements of trafilatura's output that sit inside a block's text; any other one is a block of
# its own (or holds blocks), so its text never runs on into a neighbour's sentence.
_INLINE = frozenset({"hi", "ref", "del", "span", "lb"})
# Containers whose loose text trafilatura drops beside blocks, and the block elements it is beside.
_LOOSE_TEXT_PARENTS = ("div", "td", "th", "section", "article", "main", "blockquote", "center")
_BLOCK_TAGS = frozenset({"p", "div", "blockquote", "ul", "ol", "dl", "table", "pre", "hr", "h1", "h2", "h3", "h4", "h5",
                         "h6", "section", "article", "aside", "nav", "header", "footer", "main", "form", "fieldset",
                         "figure", "details", "address", "center", "menu"})
# trafilatura's MIN_EXTRACTED_SIZE (settings.cfg): a main text shorter is replaced by the body's.
SHORT_MAIN_TEXT = 250
_SHORT_PAGE_CONFIG = use_config()
_SHORT_PAGE_CONFIG.set("DEFAULT", "MIN_EXTRACTED_SIZE", "1")
_AROUND_CONTENT = frozenset({"nav", "header", "footer", "aside", "script", "style", "noscript", "template", "form"})
# A footnote marker's text at most ("12", "[34]", "†"); a longer linked superscript is kept.
_NOTE_MARKER_CHARS = 5
# An editor's linked mark in brackets ("[citation needed]", "[note 2]", "[when?]"), glued too.
_BRACKETED_MARKER = re.compile(r"\[[^\[\]]{1,30}\]")
# MediaWiki's (Wikipedia's) interface inside and around an article, by the class and id names of
# its published skins and templates: section "[edit]" links, skip links, the "From Wikipedia" line,
# citation back-links, message boxes, navigation boxes, the contents box, categories, "Retrieved
# from". "noprint" marks what its print style hides: not part of the article.
_MEDIAWIKI_CLASSES = ("mw-editsection", "mw-jump-link", "mw-jump", "mw-cite-backlink", "noprint", "navbox", "catlinks",
                      "printfooter", "toc", "ambox", "ombox", "tmbox", "imbox", "cmbox", "fmbox", "mw-indicators")
_MEDIAWIKI_IDS = ("siteSub", "contentSub", "jump-to-nav", "catlinks", "toc", "mw-navigation")
# Table parts that make a table hold data (Readability's `_isDataTable` signs, less <th>, which
# old boards use for their "Author | Message" header); a row-header <th> beside a <td> is one too.
_DATA_TABLE_PARTS = ("caption", "thead", "tfoot", "colgroup", "col")
# Containers that lay out a region (a profile's lines, a post's parts); a data table's cell may
# hold paragraphs and lists (Google Docs and Word export a two-line cell as two <p>), rarely these.
_LAYOUT_BLOCKS = frozenset({"div", "section", "article", "aside", "nav", "header", "footer", "form", "fieldset", "center"})


# What joins a page's title to its site's name or a breadcrumb ("Lighthouse - Wikipedia", "Home » News
# » AGM"): trafilatura's separators, and phpBB's "::", spaced on both sides.
_TITLE_SEPARATOR = re.compile(r"\s+(?:::|[-–—|·•»«›‹/~*⋆⁄<>:])\s+")
# A title with more parts or characters than these is left as it is (each split of it is tried
# against the <h1>s).
_MAX_TITLE_PARTS = 12
_MAX_TITLE_CHARS = 2_000
# A standfirst's class (the summary under a headline: "standfirst", "article-summary", "dek",
# "entry-subtitle"), as a whole class name or its last part.
_STANDFIRST_CLASS = re.compile(r"(?:^|[-_])(?:standfirst|dek|summary|subtitle|sub-?headline|lede|intro|excerpt)$")
# Meta tags holding a page's summary, which a standfirst often repeats word for word.
_DESCRIPTION_META = ("description", "og:description", "twitter:description")
# Elements after a headline looked at for its standfirst and lead picture's caption.
_LEAD_ELEMENTS = 200
# A standfirst or caption is a few sentences; an element holding more (the article's container) is
# skipped unread: reading the text of each of those elements cost 200 times the page's text.
_LEAD_CHARS = 5_000
# Meta tags in which a page names its site.
_SITE_NAME_META = ("og:site_name", "application-name", "apple-mobile-web-app-title")
# Where a link to the site's home page points (its logo, the first breadcrumb).
_HOME_PATHS = frozenset({"", "/", "./", "/index.html", "/index.htm", "/index.php", "index.html", "index.htm", "index.php"})


def parse_html(data: bytes, doc_id: str) -> Document:
    """Read a web page's bytes as a document (kind ``"html"``)."""
    page = decode(data)
    _check_tags(page, doc_id)
    tree = parse_tree(page)
    if tree is None:
        raise IngestError(f"{doc_id}: an empty web page (no markup, no text); nothing to read")
    _check_size(tree, doc_id)
    _drop_note_markers(tree)
    _drop_mediawiki_interface(tree)
    _unroll_layout_tables(tree)
    _drop_hidden(tree)
    _drop_permalinks(tree)
    _inline_code(tree)
    _separate_quote_cites(tree)
    captions = _read_figure_captions(tree)
    _wrap_loose_text(tree)
    _unmark_repeated_content(tree)
    try:
        found = _extract(tree)
    except RecursionError:  # trafilatura walks nested lists recursively
        raise IngestError(f"{doc_id}: its markup nests too deeply to read (hundreds of lists or sections inside "
                          "each other); save the page as text (.txt)") from None
    blocks = _blocks(found.body) if found is not None and found.body is not None else []
    if found is not None:
        found.title = _without_site_name(tree, found.title)
    h1, headline = _headline(tree, found.title if found is not None else None) or (None, None)
    if h1 is not None and headline not in map(clean_block, blocks):
        # trafilatura keeps the article's body container, which often leaves out the <h1> above
        # it; the headline is the article's first block, as in a .txt or .docx of it.
        # Its standfirst and lead picture's caption, between it and that container, are read after it.
        blocks[:0] = [headline, *_lead(tree, h1, blocks, captions)]
    text = join_blocks(blocks)
    if not text:
        # trafilatura has already fallen back to its baseline extraction (all paragraphs, then
        # the whole body) by then, so nothing would find text (a page built by scripts).
        raise IngestError(f"{doc_id}: no main text found in this web page (if its text is filled in by scripts, "
                          "which are never run, save the page from the browser as 'Web Page, Complete' or as text)")
    title = document_title(found.title or "", text) or Path(doc_id).stem
    return Document(id=doc_id, title=short_title(title), date=found.date or None, text=text, kind="html")


def parse_tree(page: str) -> lxml.html.HtmlElement | None:
    """The page's element tree (None when it is empty), parsed as trafilatura does but from text
    decoded here, so trafilatura neither guesses the encoding again nor unpacks gzip'd bytes."""
    # Without huge_tree, libxml2 stops reading after ~10 MB of text (one long inline script
    # suffices) and silently drops the rest of the page; ingest already holds pages to 16 MiB.
    parser = lxml.html.HTMLParser(encoding="utf-8", huge_tree=True, remove_comments=True, remove_pis=True,
                                  collect_ids=False, default_doctype=False)
    try:
        return lxml.html.fromstring(_NOT_XML.sub("", page).encode("utf-8"), parser=parser)
    except etree.ParserError:  # "Document is empty"
        return None


def _check_tags(page: str, doc_id: str) -> None:
    """Refuse a page of more than :data:`MAX_START_TAGS` tags or a tag with more than
    :data:`MAX_TAG_ATTRIBUTES` attributes, before parsing; one regex pass over the page (0.3 s
    for 16 MB), counting attributes only in tags too long to be harmless."""
    for count, m in enumerate(_START_TAG.finditer(page), 1):
        if count > MAX_START_TAGS:
            raise IngestError(f"{doc_id}: over {MAX_START_TAGS} HTML tags by character {m.start()} (the limit is "
                              f"{MAX_ELEMENTS} elements); parsing it would take gigabytes: split the page, or save it "
                              "as text (.txt)")
        if m.end() - m.start() > 4 * MAX_TAG_ATTRIBUTES:
            attributes = len(_QUOTED.sub(" ", m.group()).split()) - 1  # the names, less the tag's own
            if attributes > MAX_TAG_ATTRIBUTES:
                raise IngestError(f"{doc_id}: a tag with {attributes} attributes at character {m.start()} (the limit is "
                                  f"{MAX_TAG_ATTRIBUTES}); reading it would take minutes: save the page as text (.txt)")


def _check_size(tree: etree._Element, doc_id: str) -> None:
    """Refuse a page too fragmented to read in bounded time (see :data:`MAX_ELEMENTS`)."""
    elements = sum(1 for _ in tree.iter())
    if elements > MAX_ELEMENTS:
        raise IngestError(f"{doc_id}: {elements} HTML elements (the limit is {MAX_ELEMENTS}); reading it would take "
                          "minutes: split the page, or save it as text (.txt)")
    for p in tree.iter("p"):
        pieces = sum(1 for _ in p.itertext())
        if pieces > MAX_PARAGRAPH_PIECES:
            raise IngestError(f"{doc_id}: a paragraph made of {pieces} pieces of markup (the limit is "
                              f"{MAX_PARAGRAPH_PIECES}); reading it would take minutes: save the page as text (.txt)")


def _extract(tree: lxml.html.HtmlElement):
    """trafilatura's main content. On a page whose text outside menus, headers and footers is
    short, trafilatura swaps its main text (under MIN_EXTRACTED_SIZE) for every text of the body,
    menus included, one line each; there the main text is kept when it holds 80% of that text
    (trafilatura may pick one notice of a short page as its main text)."""
    def extract(config=None):
        return trafilatura.bare_extraction(tree, with_metadata=True, include_comments=False, include_tables=True,
                                           date_extraction_params=set_date_params(extensive=False), config=config)

    content = _content_chars(tree, stop=2 * SHORT_MAIN_TEXT)
    if content < 2 * SHORT_MAIN_TEXT:
        found = extract(_SHORT_PAGE_CONFIG)
        got = len("".join("".join(found.body.itertext()).split())) if found is not None and found.body is not None else 0
        if got and 5 * got >= 4 * content:
            return found
    return extract()


def _content_chars(tree: lxml.html.HtmlElement, stop: int) -> int:
    """Characters (not spaces) of the page's body outside menus, headers, footers and scripts,
    counted up to ``stop``."""
    body = tree.find(".//body")
    walker = etree.iterwalk(body if body is not None else tree, events=("start", "end"))
    count = 0
    for event, e in walker:
        if event == "end":  # also for a skipped element: its tail is the page's
            count += len("".join((e.tail or "").split()))
        elif e.tag in _AROUND_CONTENT:
            walker.skip_subtree()
        else:
            count += len("".join((e.text or "").split()))
        if count >= stop:
            break
    return count


def _drop_note_markers(tree: lxml.html.HtmlElement) -> None:
    """Remove footnote and citation markers: a short superscript linked to a place in the page
    ("1871.<sup><a href="#fn1">1</a></sup> Its") or a linked one in brackets ("[citation needed]");
    trafilatura would glue them to the text ("1871.1 Its")."""
    for sup in list(tree.iter("sup")):
        parent, text = sup.getparent(), sup.text_content().strip()
        marker = parent if parent is not None and parent.tag == "a" and parent.text_content().strip() == text else sup
        link = marker if marker.tag == "a" else sup.find(".//a")
        if link is not None and ((link.get("href") or "").startswith("#") and len(text) <= _NOTE_MARKER_CHARS
                                 or _BRACKETED_MARKER.fullmatch(text)):
            marker.drop_tree()


def _drop_mediawiki_interface(tree: lxml.html.HtmlElement) -> None:
    """On a page MediaWiki made (a saved Wikipedia article), remove its interface: see
    :data:`_MEDIAWIKI_CLASSES`. Its "[edit]" links were glued to headings ("History[edit]") or
    stood as blocks, and its skip links ("Jump to navigation") were read as text."""
    if not tree.xpath("//*[contains(concat(' ', normalize-space(@class), ' '), ' mw-parser-output ')]"
                      " | //body[contains(concat(' ', normalize-space(@class), ' '), ' mediawiki ')]"):
        return
    classes = " | ".join(f"//*[contains(concat(' ', normalize-space(@class), ' '), ' {c} ')]" for c in _MEDIAWIKI_CLASSES)
    ids = " | ".join(f"//*[@id='{i}']" for i in _MEDIAWIKI_IDS)
    for e in tree.xpath(f"{classes} | {ids}"):
        if e.getparent() is not None and e.tag != "body":
            e.drop_tree()


def _unroll_layout_tables(tree: lxml.html.HtmlElement) -> None:
    """Make a table that lays out a page (a forum thread's posts: a profile cell beside a message
    cell, as vBulletin and old phpBB and SMF boards draw them) <div>s, so each cell reads as blocks
    of its own. trafilatura read such a row as one line ("Posts: 1,234 | I have been fishing…"),
    and left a table nested in a cell (a quote) for later, which lost or moved the text around it.
    Each table's own rows and cells are reached directly, so nested tables cost no more than flat
    ones (libxml2 nests up to 2,048 deep)."""
    cells: set[etree._Element] = set()
    for table in list(tree.iter("table")):
        rows = _own_rows(table)
        own = [c for row in rows for c in row if c.tag in ("td", "th")]
        if _is_layout_table(table, own):
            for e in [*(sec for sec in table if sec.tag in ("thead", "tbody", "tfoot")), *rows, *own, table]:
                e.tag = "div"
            cells.update(own)
    if not cells:
        return
    # A cell's text, loose or in its <div>s, is made paragraphs: on a page without <p> (an old
    # board) trafilatura otherwise fell back to the whole page as one block, menus included.
    # A link without words (vBulletin's "View Post" arrow in a quote) made trafilatura take a short
    # post for links alone and drop it: such links go (no image is read). One walk of the page.
    inside, found = 0, []
    for event, e in etree.iterwalk(tree, events=("start", "end")):
        if e in cells:
            inside += 1 if event == "start" else -1
        if event == "start" and inside and e.tag in ("a", "div"):
            found.append(e)
    for e in found:
        if e.tag == "a" and not e.text_content().strip():
            e.drop_tree()
    for e in found:
        if e.tag == "div":
            _wrap_runs(e)


def _own_rows(table: etree._Element) -> list[etree._Element]:
    """A table's own rows: its <tr> children and those of its <thead>, <tbody> and <tfoot>."""
    return [r for child in table for r in ([child] if child.tag == "tr" else child if child.tag in ("thead", "tbody", "tfoot")
                                           else []) if r.tag == "tr"]


def _is_layout_table(table: etree._Element, cells: list[etree._Element]) -> bool:
    """Does ``table`` (of these own ``cells``) lay out a page rather than hold data? Yes when its
    role says so, or when, without a data table's parts (:data:`_DATA_TABLE_PARTS`, a row header
    beside data), one of its cells holds a table or two containers (:data:`_LAYOUT_BLOCKS`)."""
    if (table.get("role") or "").strip().lower() in ("presentation", "none"):
        return True
    if table.get("summary") or any(child.tag in _DATA_TABLE_PARTS for child in table):
        return False
    if any(c.tag == "th" and c.getnext() is not None and c.getnext().tag == "td" for c in cells):
        return False
    return any(sum(child.tag in _LAYOUT_BLOCKS for child in c) >= 2 or c.find(".//table") is not None for c in cells)


def _drop_hidden(tree: lxml.html.HtmlElement) -> None:
    """Remove elements with the ``hidden`` attribute, which browsers never show (trafilatura keeps
    them); ``hidden="until-found"`` is a collapsed section the browser's search opens, so it stays,
    and so does a ``<body hidden>`` that a page's script shows once loaded."""
    for e in tree.xpath("//*[@hidden]"):
        if e.get("hidden").strip().lower() != "until-found" and e.getparent() is not None and e.tag != "body":
            e.drop_tree()


def _drop_permalinks(tree: lxml.html.HtmlElement) -> None:
    """Remove a heading's permalink: a link to a place in the page whose text is a mark, not a
    word ("Expiry<a href="#expiry">¶</a>", Sphinx's and MkDocs'); it was glued to the heading."""
    for a in tree.xpath("//h1//a | //h2//a | //h3//a | //h4//a | //h5//a | //h6//a | //dt//a"):
        text = a.text_content().strip()
        if (a.get("href") or "").startswith("#") and len(text) <= 2 and not any(c.isalnum() for c in text):
            a.drop_tree()


def _inline_code(tree: lxml.html.HtmlElement) -> None:
    """Make <code> outside a <pre> a <span>: trafilatura makes both a <code>, a block, which cut
    "set <code>cache_size</code> in" into three; a <pre>'s one line in a list item stays a block."""
    for code in tree.xpath("//code[not(ancestor::pre)]"):
        code.tag = "span"


def _separate_quote_cites(tree: lxml.html.HtmlElement) -> None:
    """Make a quote's leading <cite> ("<blockquote><cite>oldsalt wrote:</cite>What bait…", phpBB's)
    a paragraph of its own; trafilatura glued it to the quote ("oldsalt wrote:What bait")."""
    for cite in tree.xpath("//blockquote/cite | //blockquote/div/cite"):
        parent = cite.getparent()
        if parent.index(cite) == 0 and not (parent.text or "").strip() and (cite.tail or "").strip():
            cite.tag = "p"


def _wrap_loose_text(tree: lxml.html.HtmlElement) -> None:
    """Wrap each run of text and inline elements that sits directly in a container beside block
    elements ("<div class=content><blockquote>…</blockquote>Reply text<br>more</div>", a forum
    post's) in a <p>: trafilatura drops such text on a page with enough <p> text. A run of links
    alone (a menu) is left as it was. One pass over the elements."""
    parents = list(tree.iter(*_LOOSE_TEXT_PARENTS))
    repeated = Counter((e.tag, e.get("class")) for e in parents if e.get("class"))
    for parent in parents:
        if not any(child.tag in _BLOCK_TAGS for child in parent):
            # a post's text alone in its <div class=content>, beside its byline's <p>, once a post
            up = parent.getparent()
            if repeated[parent.tag, parent.get("class")] < 2 or up is None or not any(e.tag == "p" for e in up):
                continue
        _wrap_runs(parent)


def _wrap_runs(parent: etree._Element) -> None:
    """Wrap each run of text and inline elements directly in ``parent`` in a <p>: runs end at a
    block element and at "<br><br>"; a run of links alone (a menu) is left as it was."""
    runs: list[tuple[etree._Element | None, list[etree._Element]]] = [(None, [])]
    for child in parent:
        if child.tag in _BLOCK_TAGS:
            runs.append((child, []))
        elif child.tag == "br" and runs[-1][1] and runs[-1][1][-1].tag == "br" and not (runs[-1][1][-1].tail or "").strip():
            runs.append((child, []))  # "<br><br>" ends a paragraph
        else:
            runs[-1][1].append(child)
    for before, inline in runs:
        text = parent.text if before is None else before.tail
        if not _loose_words(text, inline):
            continue
        p = etree.Element("p")
        p.text = text
        if before is None:
            parent.text = None
            parent.insert(0, p)
        else:
            before.tail = None
            before.addnext(p)
        p.extend(inline)


def _unmark_repeated_content(tree: lxml.html.HtmlElement) -> None:
    """trafilatura reads the first element that looks like an article's body ("<div class=content>")
    alone; a forum thread repeats it once a post. Remove the class from such repeated ones."""
    for expr in BODY_XPATH:
        found = next(iter(expr(tree)), None)
        if found is None:
            continue
        cls = found.get("class")
        if cls:
            peers = [e for e in tree.iter(found.tag) if e.get("class") == cls]
            if len(peers) > 1:
                for e in peers:
                    del e.attrib["class"]
        return


def _read_figure_captions(tree: lxml.html.HtmlElement) -> set[etree._Element]:
    """Make a <figure> that has a <figcaption> a <div> and its caption a paragraph: trafilatura
    removes every <figure>, and captions hold facts ("The lighthouse in 1905, before the lamp was
    converted"). Their classes go too: trafilatura drops any element of a "caption" class.
    Returns the captions."""
    captions = set()
    for caption in list(tree.iter("figcaption")):
        figure = caption.getparent()
        if figure is None or figure.tag != "figure" or not caption.text_content().strip():
            continue
        figure.tag, caption.tag = "div", "p"
        for e in (figure, caption):
            for name in ("class", "id"):
                e.attrib.pop(name, None)
        captions.add(caption)
    return captions


def _lead(tree: lxml.html.HtmlElement, h1: etree._Element, blocks: list[str], captions: set[etree._Element]) -> list[str]:
    """The standfirst and picture captions between the headline's ``h1`` and the first block read
    (trafilatura keeps the article's body container alone): elements of a standfirst's class
    (:data:`_STANDFIRST_CLASS`) or ``itemprop="description"``, or whose text is the page's
    description; not inside menus, asides or forms."""
    kept = set(map(clean_block, blocks))
    described = _meta_contents(tree, _DESCRIPTION_META)
    out: list[str] = []
    for e in h1.xpath(f"following::*[position() <= {_LEAD_ELEMENTS}]"):
        text = _short_text(e, _LEAD_CHARS)
        if text is None:
            continue
        text = clean_block(text)
        if not text:
            continue
        if text in kept:
            break  # the body read starts here
        if text in out or any(a.tag in _AROUND_CONTENT or a in captions for a in e.iterancestors()):
            continue
        classes = (e.get("class") or "").lower().split()
        if (e in captions or any(_STANDFIRST_CLASS.search(c) for c in classes) or e.get("itemprop") == "description"
                or " ".join(text.split()) in described):
            out.append(text)
    return out


def _short_text(e: etree._Element, limit: int) -> str | None:
    """``e``'s text (as ``text_content``), or None once it passes ``limit`` characters, unread past it."""
    parts, size = [], 0
    for t in e.itertext():
        parts.append(t)
        size += len(t)
        if size > limit:
            return None
    return "".join(parts)


def _without_site_name(tree: lxml.html.HtmlElement, title: str | None) -> str | None:
    """The page's title without its site's name or breadcrumb ("Westhaven Lighthouse - Wikipedia"):
    the part an <h1> shows, else the title less the ends that the page names as its site (meta
    tags, the text of a link to its home page). Unchanged when the page says neither."""
    if not title:
        return title
    page_title = tree.find(".//head//title")
    whole = " ".join(page_title.text_content().split()) if page_title is not None else ""
    if any(len(t) > _MAX_TITLE_CHARS or len(_TITLE_SEPARATOR.findall(t)) >= _MAX_TITLE_PARTS for t in (title, whole)):
        return title  # no title and site name (each split is tried, on copies of the whole)
    # trafilatura took one end of the <title> ("Home » Club news" of "Home » Club news » AGM
    # minutes", "Rome" of "Rome - Paris by night train"), guessing: decide from the whole.
    split = whole != title and any(whole == title + sep + rest or whole == rest + sep + title
                                   for sep, rest in _ends(whole))
    source = whole if split else title
    parts = _TITLE_SEPARATOR.split(source)
    if len(parts) < 2:
        return source
    seps = _TITLE_SEPARATOR.findall(source)
    sites = _site_names(tree)
    h1s = {" ".join(h1.text_content().split()).casefold() for h1 in tree.iter("h1") if not _links_home(h1)}
    # the <h1> shows a run of the parts at one end (the rest is the site's name or a breadcrumb)
    for i in range(1, len(parts)):
        for start, end in ((i, len(parts)), (0, i)):
            text = _joined(start, end, parts, seps)
            if text.casefold() in h1s and text.casefold() not in sites:
                return text
    start, end = 0, len(parts)
    while end - start > 1 and parts[start].casefold() in sites:
        start += 1
    while end - start > 1 and parts[end - 1].casefold() in sites:
        end -= 1
    return _joined(start, end, parts, seps) if (start, end) != (0, len(parts)) else source


def _ends(title: str) -> list[tuple[str, str]]:
    """Each separator of a title with the text on its far side, at both ends."""
    out = []
    for m in _TITLE_SEPARATOR.finditer(title):
        out += [(m.group(), title[m.end():]), (m.group(), title[:m.start()])]
    return out


def _joined(start: int, end: int, parts: list[str], seps: list[str]) -> str:
    """A title's ``parts[start:end]`` joined by the separators they had between them."""
    return "".join(parts[k] + (seps[k] if k < end - 1 else "") for k in range(start, end))


def _site_names(tree: lxml.html.HtmlElement) -> set[str]:
    """The names a page gives its site (casefolded): in its meta tags, and as the text (or image
    alt) of a link to its home page (a logo, a breadcrumb's first step)."""
    names = {name.casefold() for name in _meta_contents(tree, _SITE_NAME_META)}
    for a in tree.iter("a"):
        if _is_home(a.get("href")):
            alts = [img.get("alt") or "" for img in a.iter("img")]
            names.update(" ".join(t.split()).casefold() for t in (a.text_content(), *alts) if t.strip())
    return names


def _meta_contents(tree: lxml.html.HtmlElement, keys: tuple[str, ...]) -> set[str]:
    """The contents, whitespace collapsed, of the head's <meta> tags named (``name`` or
    ``property``) one of ``keys``."""
    return {" ".join(m.get("content").split()) for m in tree.iterfind(".//head/meta[@content]")
            if {(m.get(a) or "").strip().lower() for a in ("name", "property")} & set(keys)}


def _is_home(href: str | None) -> bool:
    """Does a link point to its site's home page ("/", "index.php", "https://example.org/")?"""
    if href is None:
        return False
    try:
        url = urlsplit(href.strip())
    except ValueError:  # "http://[oops": no link home
        return False
    return not url.query and not url.fragment and url.path in _HOME_PATHS and bool(url.path or url.netloc)


def _links_home(h1: etree._Element) -> bool:
    """Is an <h1> a site's logo: all of its text a link to the home page?"""
    text = h1.text_content().strip()
    return any(_is_home(a.get("href")) and a.text_content().strip() == text for a in h1.iter("a"))


def _loose_words(text: str | None, inline: list[etree._Element]) -> bool:
    """Does a run hold words outside links (its text, its elements' tails, inline non-links')?
    Separators between links ("Home | Ferries") are no words."""
    def words(t: str | None) -> bool:
        return any(c.isalnum() for c in t or "")

    if words(text) or any(words(e.tail) for e in inline):
        return True
    return any(e.tag != "a" and e.find(".//a") is None and words(e.text_content()) for e in inline)


def _headline(tree: etree._Element, title: str | None) -> tuple[etree._Element, str] | None:
    """The page's <h1> that shows its title (from its metadata), and its text, whitespace
    collapsed; None when no <h1> does (a site's logo in an <h1> is not the headline)."""
    if not title:
        return None
    want = " ".join(title.split()).casefold()
    for h1 in tree.iter("h1"):
        text = " ".join(h1.text_content().split())
        if text.casefold() == want:
            return h1, text
    return None


def decode(data: bytes) -> str:
    """The page's text: by its byte-order mark, else by the charset it declares, else UTF-8
    when it is valid UTF-8, else windows-1252 (what browsers assume for an undeclared page)."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return data[len(bom):].decode(encoding, errors="replace")
    encoding = _declared(data, _PRESCAN_BYTES)
    if encoding is not None:
        return data.decode(encoding, errors="replace")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        # Declared past the prescan (after a long <style> in the head): browsers still switch to
        # it while parsing the head. Valid UTF-8 is read as such, as before.
        head = _BODY.search(data, 0, _LATE_CHARSET_BYTES)
        late = _declared(data, head.start() if head else _LATE_CHARSET_BYTES)
        return data.decode(late or "cp1252", errors="replace")


def _declared(data: bytes, end: int) -> str | None:
    """The text encoding the first <meta> charset in ``data[:end]`` names, or None (none, an
    unknown label, or one that cannot be: see below)."""
    m = _CHARSET.search(data, 0, end)
    if not m:
        return None
    label = m.group(1).decode("ascii").lower()
    try:
        info = codecs.lookup("cp1252" if label in _AS_CP1252 else label)
    except LookupError:
        return None  # an unknown label: decide as for an undeclared page
    # Python's byte-to-byte codecs ("hex", "zip", "rot13") are no text encoding, nor is a
    # wider one (a meta tag readable as ASCII is not UTF-16 or UTF-32): as if undeclared.
    encoding = info.name if info._is_text_encoding else None
    return encoding if encoding is not None and not encoding.startswith(("utf-16", "utf-32")) else None


# Marks where a definition list's term ended in a block: its definition follows on the same line.
_TERM_END = "\x00"


def _blocks(body: etree._Element) -> list[str]:
    """The blocks of trafilatura's output in document order: each block element's own inline
    text, split where a block inside it starts and ends; one per table row; a definition
    list's term with its definition. Walked without recursion, as lists may nest deeper than
    Python's stack."""
    out: list[str] = []
    buf: list[str] = []

    def flush() -> None:
        if buf:
            out.append(_joined_term("".join(buf)))
            buf.clear()

    term = False  # the last event ended a term, which a definition starting now joins
    walker = etree.iterwalk(body, events=("start", "end"))
    for event, e in walker:
        if event == "start":
            if e.tag == "row":
                flush()
                out.append(table_row(_flat(cell) for cell in e))
                walker.skip_subtree()
            elif e.tag == "lb":
                buf.append("\n")
            else:
                if e.tag not in _INLINE and not (term and _item(e, "dd-")):
                    flush()
                buf.append(e.text or "")
            term = False
        else:
            term = _item(e, "dt-") and bool("".join(buf).strip())
            if term:
                buf.append(_TERM_END)
            elif e.tag not in _INLINE:
                flush()
            if e is not body:
                buf.append(e.tail or "")
    flush()
    return out


def _item(e: etree._Element, rend: str) -> bool:
    """Is ``e`` a list item trafilatura marks ``rend`` ("dt-" for a term, "dd-" a definition)?"""
    return e.tag == "item" and e.get("rend", "").startswith(rend)


def _joined_term(block: str) -> str:
    """A block's term and definition as one line ("Admission: Adults 8 euros"); a term whose
    definition did not follow it stands alone."""
    term, _, definition = block.partition(_TERM_END)
    if not definition.strip():
        return term + definition
    term = term.rstrip()
    return term + (" " if term.endswith((".", "?", "!", ":", ";")) else ": ") + definition.lstrip()


def _flat(cell: etree._Element) -> str:
    """A table cell's text on one line: its blocks (a nested table's cells too) and line breaks
    become spaces."""
    parts: list[str] = []
    for event, e in etree.iterwalk(cell, events=("start", "end")):
        block = e.tag not in _INLINE or e.tag == "lb"
        if event == "start":
            parts += [" " if block else "", e.text or ""]
        else:
            parts += [" " if block else "", "" if e is cell else e.tail or ""]
    return "".join(parts)
