"""Markdown read as the text a reader of the rendered page sees, in blocks (see :mod:`qa.formats.text`).

markdown-it-py (CommonMark, with GitHub's tables and strikethrough) parses the source; each
paragraph, heading, list item, table row, code block and footnote becomes a block, so no
sentence joins two of them and no citation quotes markup. What a rendered page does not show
is left out: front matter, link targets and reference definitions, image sources, HTML tags
(not "<Esc>", which is no HTML) and comments, code fences, table separator rows, emphasis
marks, blockquote marks, bullets and footnote marks. Kept because they carry meaning: inline code with its backticks (a citation
reads "run `stow prune`"), an ATX heading's ``#`` marks (the segmenter and the title read them),
an ordered item's number ("2. Run …"), a task's box ("☐ Metrics endpoint") and a paragraph's
own line breaks (nothing is re-flowed).
"""

from __future__ import annotations

import html
import re

from markdown_it import MarkdownIt
from markdown_it.rules_block import StateBlock
from markdown_it.token import Token

from .text import clean_block, table_row

# "[^1]: Source …" starts a footnote (GitHub's syntax, which CommonMark lacks): it is made a
# paragraph of its own, its label left out; "[^1]" in the text is a mark, dropped as a page's
# superscript footnote marks are.
_FOOTNOTE_DEF = re.compile(r"^ {0,3}\[\^[^\]\s]+\]:[ \t]*", re.MULTILINE)
_FOOTNOTE_REF = re.compile(r"\[\^[^\]\[\s]+\]")  # no "[" inside: a search stops at the next mark
_TASK = re.compile(r"^\[([ xX])\][ \t]+")
_TASK_BOX = {" ": "\u2610 ", "x": "\u2611 ", "X": "\u2611 "}
# Raw HTML: comments and scripts go whole; a block-level tag ends a block, <br> a line, and any
# other tag (<b>, <a>, <img>) is dropped from its sentence.
_HTML_DROP = re.compile(r"<!--.*?(?:-->|$)|<(script|style|template)\b.*?(?:</\1\s*>|$)", re.DOTALL | re.IGNORECASE)
_HTML_BREAK = re.compile(r"<br\s*/?>", re.IGNORECASE)
_BLOCK_NAMES = (r"address|article|aside|blockquote|center|dd|details|dialog|div|dl|dt|fieldset|figcaption|figure|"
                r"footer|form|h[1-6]|header|hr|li|main|nav|ol|p|pre|section|summary|table|tbody|td|tfoot|th|thead|tr|ul")
_INLINE_NAMES = (r"a|abbr|b|bdi|bdo|big|br|cite|code|data|del|dfn|em|font|i|img|ins|kbd|mark|picture|q|s|samp|small|"
                 r"source|span|strike|strong|sub|sup|time|tt|u|var|wbr")
_HTML_BLOCK_TAG = re.compile(rf"</?(?:{_BLOCK_NAMES})\b[^<>]*>", re.IGNORECASE)
_HTML_TAG = re.compile(r"</?[A-Za-z][^<>]*>")
# An inline tag of HTML (or a comment) is dropped; "Press <Enter>", "<path>" are words of the text, kept.
_HTML_INLINE_TAG = re.compile(rf"</?(?:{_INLINE_NAMES}|{_BLOCK_NAMES})\b[^>]*>|<!--.*", re.IGNORECASE | re.DOTALL)


MAX_NESTING = 20  # lists and quotes in one another (a list level is two): bounds a hostile file's recursion


def _parser() -> MarkdownIt:
    # No linkify: a bare URL stays the text it is.
    md = MarkdownIt("commonmark", {"html": True, "maxNesting": MAX_NESTING}).enable(["table", "strikethrough"])
    tokenize = md.block.tokenize

    def bounded(state: StateBlock, start: int, end: int) -> None:
        # Past maxNesting markdown-it drops the lines left, the rest of the file after a list ten
        # levels deep among them: say so, and the file is read as written.
        if state.level >= MAX_NESTING and start < end:
            state.env["too_deep"] = True
        tokenize(state, start, end)

    md.block.tokenize = bounded
    return md


def markdown_text(source: str) -> str:
    """The text of Markdown ``source`` (front matter already removed): blocks separated by a
    blank line, each cleaned as :func:`qa.formats.text.clean_block` cleans one; ``source`` as it
    is where it nests deeper than :data:`MAX_NESTING`, which would lose text."""
    env: dict = {}
    tokens = _parser().parse(_FOOTNOTE_DEF.sub("\n", source), env)
    if env.get("too_deep"):
        return source
    blocks: list[str] = []
    prefix = ""  # an ordered item's number, put before the item's first block
    first_in_item = False
    heading = ""  # an ATX heading's marks and a space ("## ")
    row: list[str] | None = None
    for tok in tokens:
        if tok.type == "list_item_open":
            prefix, first_in_item = (f"{tok.info}{tok.markup} " if tok.info else ""), True
        elif tok.type == "list_item_close":
            prefix, first_in_item = "", False
        elif tok.type == "heading_open":
            heading = f"{tok.markup} " if tok.markup.startswith("#") else ""
        elif tok.type == "tr_open":
            row = []
        elif tok.type == "tr_close" and row is not None:
            blocks.append(table_row(row))
            row = None
        elif tok.type == "inline":
            text = _inline(tok.children or [])
            if row is not None:
                row.append(text)
                continue
            if first_in_item:
                task = _TASK.match(text)
                text = _TASK_BOX[task.group(1)] + text[task.end():] if task else text
                text, prefix, first_in_item = prefix + text, "", False
            if text.strip():
                blocks.append(clean_block(heading + text))
            heading = ""
        elif tok.type in ("fence", "code_block"):
            blocks.append(_code(tok.content))
            first_in_item = False
        elif tok.type == "html_block":
            blocks.extend(clean_block(b) for b in _html(tok.content).split("\n\n"))
    return "\n\n".join(b for b in blocks if b)


def _inline(children: list[Token]) -> str:
    """An inline run as shown: text, inline code with its backticks, link and image text (an
    image's alt), line breaks; marks of emphasis, links, footnotes and HTML tags left out."""
    out: list[str] = []
    prose: list[str] = []  # text since the last code span: footnote marks are looked for in it
    shown = False  # any text but images' alt (a paragraph of badges or a diagram alone is dropped)

    def flush() -> None:
        out.append(_FOOTNOTE_REF.sub("", "".join(prose)))
        prose.clear()

    for t in children:
        if t.type in ("text", "text_special"):
            prose.append(t.content)
            shown = shown or bool(t.content.strip())
        elif t.type in ("softbreak", "hardbreak"):
            prose.append("\n")
        elif t.type == "code_inline":
            flush()
            out.append(f"{t.markup}{t.content}{t.markup}")
            shown = True
        elif t.type == "image":
            prose.append(_inline(t.children or []))
        elif t.type == "html_inline":
            tag = t.content.strip()
            prose.append("\n" if _HTML_BREAK.fullmatch(tag) else "" if _HTML_INLINE_TAG.fullmatch(tag) else t.content)
    flush()
    return "".join(out) if shown else ""


def _code(content: str) -> str:
    """A code block's lines as written (indentation kept), without blank lines at its ends."""
    lines = [line.rstrip() for line in content.split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip("\n")


def _html(content: str) -> str:
    """The text of a raw HTML block: tags and comments out, a block-level tag a block break."""
    text = _HTML_DROP.sub("", content)
    text = _HTML_BREAK.sub("\n", text)
    text = _HTML_BLOCK_TAG.sub("\n\n", text)
    return html.unescape(_HTML_TAG.sub("", text))
