"""HTML for the chat page: replies and the sources panel. Pure functions, no Gradio.

Every piece of document text goes through :func:`esc` before it is put into HTML, so a document
can never inject markup (or Markdown, or LaTeX: the chatbot renders Markdown around our HTML).
Sentences are located in their documents by the citation's offsets, never by searching for the
sentence text.
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import date
from typing import Callable
from urllib.parse import quote, urlencode

from qa.agreement import ALSO_STATED, DISAGREE
from qa.types import Answer, Citation, Corroboration, Document

# Characters Markdown (or the chatbot's LaTeX/emoji handling) could act on, as numeric entities.
_ESCAPES = str.maketrans({
    **{c: f"&#{ord(c)};" for c in "\\`*_[]{}()#+-!|~$:"},
    "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;",
})
_SPACES = re.compile(r"\s+")
# A blank line, with Windows (CR LF) or classic Mac (lone CR) line ends too, as the segmenter reads them.
_BLANK_LINE = re.compile(r"(?:\r\n|\r(?!\n)|\n)[ \t\f\v]*(?:\r\n|\r(?!\n)|\n)")
# Longest paragraph shown whole in the sources panel; longer ones are cut around the sentence.
MAX_PARAGRAPH_CHARS = 1200
CONTEXT_CHARS = 450

NOT_FOUND = "I could not find this in the documents."


def esc(text: str) -> str:
    """Escape text for HTML that may also pass through a Markdown renderer."""
    return text.translate(_ESCAPES)


def _inline(text: str) -> str:
    """Escaped text on one line (a blank line would end the chatbot's HTML block)."""
    return esc(_SPACES.sub(" ", text))


def pretty_date(value: str | None) -> str:
    """``2019-06-20`` as ``Jun 20, 2019``, ``2019-06`` as ``Jun 2019``; anything else as given."""
    if not value:
        return ""
    if re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", value):
        return f"{date(int(value[:4]), int(value[5:]), 1):%b} {value[:4]}"
    try:
        d = date.fromisoformat(value[:10])
    except ValueError:
        return value
    return f"{d:%b} {d.day}, {d.year}"


def short(text: str, limit: int = 80) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "\u2026"


def _answer_span(c: Citation | Corroboration) -> tuple[int, int] | None:
    if c.answer_start is None or c.answer_end is None:
        return None
    a, b = int(c.answer_start), int(c.answer_end)
    return (a, b) if 0 <= a < b <= len(c.text) else None


def _sentence_html(c: Citation | Corroboration, inline: bool, highlight: bool = True) -> str:
    """The cited sentence, escaped, with the short answer (if any) in a ``<mark>``; ``inline``
    (in a reply), an overlong sentence is cut to some context around the short answer."""
    fmt = _inline if inline else esc
    span = _answer_span(c) if highlight else None
    text = c.text
    lo, hi = _window(text, 0, len(text), *(span or (0, 0))) if inline else (0, len(text))
    pre, post = ("\u2026 " if lo > 0 else ""), (" \u2026" if hi < len(text) else "")
    if span is None:
        return pre + fmt(text[lo:hi]) + post
    a, b = span
    return f'{pre}{fmt(text[lo:a])}<mark class="qa-answer">{fmt(text[a:b])}</mark>{fmt(text[b:hi])}{post}'


def _conf(answer: Answer) -> str:
    return f'<span class="qa-conf" title="how sure the answerer is">confidence {answer.confidence:.0%}</span>'


def _quote(c: Citation | Corroboration, title: str, date: str | None = None, highlight: bool = True) -> str:
    """A quoted sentence (its short answer marked unless ``highlight`` is off), then its title
    and date."""
    when = f", {esc(pretty_date(date))}" if date else ""
    # <bdi>: a right-to-left sentence or title keeps to itself, not pulling in the marks around it.
    return (f'<span class="qa-quote">\u201c<bdi>{_sentence_html(c, inline=True, highlight=highlight)}</bdi>\u201d</span> '
            f'<span class="qa-src">\u2014 <bdi>{_inline(short(title, 70))}</bdi>{when}</span>')


def render_corroboration(answer: Answer, date_of: Callable[[str], str | None] = lambda _: None) -> str:
    """What the other documents say: the disagreeing quotes beside the answer's, then the
    agreeing ones (``date_of``: a document's date). Empty without corroboration."""
    if answer.abstained or not answer.corroboration or not answer.citations:
        return ""
    top = answer.citations[0]
    parts = []
    against = [c for c in answer.corroboration if not c.agrees]
    if against:
        cells = [f'<div class="qa-side"><bdi><strong>{_inline(answer.answer or "")}</strong></bdi> '
                 f'{_quote(top, top.title or top.doc, date_of(top.doc))}</div>']
        cells += [f'<div class="qa-side"><bdi><strong>{_inline(c.answer)}</strong></bdi> {_quote(c, c.title or c.doc, c.date)}</div>'
                  for c in against]
        parts.append(f'<div class="qa-disagree"><div class="qa-corro-head">{esc(DISAGREE)}</div>'
                     f'<div class="qa-sides">{"".join(cells)}</div></div>')
    agreeing = [c for c in answer.corroboration if c.agrees]
    if agreeing:
        items = "".join(f'<div class="qa-also-item">{_quote(c, c.title or c.doc, c.date)}</div>' for c in agreeing)
        parts.append(f'<div class="qa-also"><div class="qa-corro-head">{esc(ALSO_STATED)}:</div>{items}</div>')
    return "".join(parts)


def render_reply(answer: Answer, date_of: Callable[[str], str | None] = lambda _: None) -> str:
    """The chat reply: searched-for line, bold short answer (with its date when it is one),
    numbered quoted sentences, then what the other documents say (:func:`render_corroboration`).

    One HTML block without blank lines, so the chatbot's Markdown renderer leaves it alone.
    """
    parts = ['<div class="qa-reply">']
    if answer.searched_for and answer.searched_for.strip() != answer.question.strip():
        parts.append(f'<div class="qa-searched">searched for: \u201c{_inline(answer.searched_for)}\u201d</div>')
    if answer.abstained:
        parts.append(f'<div class="qa-notfound">{esc(NOT_FOUND)}</div>')
        if answer.citations:
            parts.append('<div class="qa-closest">Closest matches:</div>')
    elif answer.short_answer is not None:
        when = f' <span class="qa-date" title="the date, placed in time">{esc(answer.answer_date)}</span>' if answer.answer_date and answer.answer_date != (answer.answer or "").strip() else ""
        parts.append(f'<div class="qa-short"><bdi><strong>{_inline(answer.answer or "")}</strong></bdi>{when} {_conf(answer)}</div>')
    else:
        parts.append(f'<div class="qa-short qa-nospan">From the documents: {_conf(answer)}</div>')
    for i, c in enumerate(answer.citations, start=1):
        cls = "qa-cite qa-miss" if answer.abstained else "qa-cite"
        parts.append(f'<div class="{cls}"><span class="qa-n">[{i}]</span> '
                     f'{_quote(c, c.title or c.doc, highlight=not answer.abstained)}</div>')
    parts.append(render_corroboration(answer, date_of))
    parts.append("</div>")
    return "".join(parts)


def render_error(message: str) -> str:
    return f'<div class="qa-reply qa-error">{_inline(message)}</div>'


def paragraph_bounds(text: str, start: int, end: int) -> tuple[int, int]:
    """The blank-line-delimited block of ``text`` containing ``[start, end)``, without its
    surrounding whitespace."""
    a = 0
    for m in _BLANK_LINE.finditer(text, 0, start):
        a = m.end()
    m = _BLANK_LINE.search(text, end)
    b = m.start() if m else len(text)
    while a < start and text[a].isspace():
        a += 1
    while b > end and text[b - 1].isspace():
        b -= 1
    return a, b


def _window(text: str, a: int, b: int, start: int, end: int) -> tuple[int, int]:
    """Cut an overlong paragraph ``[a, b)`` to some context around ``[start, end)``, at spaces."""
    if b - a <= MAX_PARAGRAPH_CHARS:
        return a, b
    lo, hi = max(a, start - CONTEXT_CHARS), min(b, end + CONTEXT_CHARS)
    if lo > a:
        space = text.find(" ", lo, start)
        lo = space + 1 if space != -1 else lo
    if hi < b:
        space = text.rfind(" ", end, hi)
        hi = space if space != -1 else hi
    return lo, hi


def page_url(c: Citation, page: int | None = None, api: str = "/api") -> str | None:
    """The API's image of the citation's page (or ``page``) with the sentence and its short
    answer highlighted; None for a citation without a page (not from a PDF)."""
    page = page or c.page
    if page is None:
        return None
    query = {"start": c.start, "end": c.end}
    span = _answer_span(c)
    if span is not None:
        query["answer_start"], query["answer_end"] = span
    return f"{api}/documents/{quote(c.doc)}/pages/{page}.png?{urlencode(query)}"


def _page_figure(c: Citation, miss: bool) -> str:
    """The cited page as an image (the sentence's boxes highlighted, the short answer more
    strongly), a link to it full size, and links to the other pages the sentence runs onto."""
    if miss:  # a closest match has no short answer to show
        c = replace(c, answer_start=None, answer_end=None)
    url = page_url(c) or ""
    links = [f'<a href="{esc(url)}" target="_blank" rel="noopener">open page {c.page} full size</a>']
    for p in sorted({int(b[0]) for b in c.boxes} - {c.page}):
        other = page_url(c, p) or ""
        links.append(f'<a href="{esc(other)}" target="_blank" rel="noopener">continues on page {p}</a>')
    note = " (read by OCR)" if c.ocr else ""
    dot = " \u00b7 "
    return (f'<figure class="qa-page"><a href="{esc(url)}" target="_blank" rel="noopener">'
            f'<img src="{esc(url)}" alt="page {c.page} of {esc(c.doc)}, the cited sentence highlighted" loading="lazy"></a>'
            f'<figcaption>page {c.page}{note}{dot}{dot.join(links)}</figcaption></figure>')


def render_source(i: int, c: Citation, doc: Document | None, miss: bool = False) -> str:
    """One source card: title, date and id, then the sentence highlighted in its paragraph (and,
    from a PDF, on an image of its page)."""
    head = [f'<span class="qa-n">[{i}]</span> <span class="qa-title" dir="auto">{esc(doc.title if doc and doc.title else c.title or c.doc)}</span>']
    meta = []
    if doc and doc.date:
        meta.append(esc(pretty_date(doc.date)))
    meta.append(f'<code>{esc(c.doc)}</code>')
    if c.page is not None:
        meta.append(f"page {c.page}")
    meta.append(f"characters {c.start}\u2013{c.end}")
    cls = "qa-source qa-miss" if miss else "qa-source"
    dot = " \u00b7 "
    # Headings (the panel's h2, a card's h3): a screen reader user moves from source to source by them.
    out = [f'<div class="{cls}"><h3 class="qa-source-head">{"".join(head)}</h3>',
           f'<div class="qa-meta">{dot.join(meta)}</div>']
    if doc is None or doc.text[c.start:c.end] != c.text:
        # The document changed or went away since this answer: show the sentence as cited.
        out.append(f'<p class="qa-para" dir="auto"><mark class="qa-sentence">{_sentence_html(c, inline=False, highlight=not miss)}</mark></p>')
        out.append('<div class="qa-meta">(the document has changed since this answer)</div>')
    else:
        text = doc.text
        pa, pb = paragraph_bounds(text, c.start, c.end)
        a, b = _window(text, pa, pb, c.start, c.end)
        before = ("\u2026 " if a > pa else "") + esc(text[a:c.start])
        after = esc(text[c.end:b]) + (" \u2026" if b < pb else "")
        out.append(f'<p class="qa-para" dir="auto">{before}<mark class="qa-sentence">{_sentence_html(c, inline=False, highlight=not miss)}</mark>{after}</p>')
        if c.page is not None:
            out.append(_page_figure(c, miss))
    out.append("</div>")
    return "".join(out)


def render_sources(answer: Answer | None, lookup: Callable[[str], Document | None]) -> str:
    """The sources panel for one answer; ``lookup(doc_id)`` gives the document (or None)."""
    if answer is None:
        return ('<div class="qa-sources qa-empty">Sources appear here: each quoted sentence inside its '
                'paragraph, with the document\u2019s title and date.</div>')
    if not answer.citations:
        return f'<div class="qa-sources qa-empty">{esc(NOT_FOUND)} No passage came close.</div>'
    heading = "Closest matches" if answer.abstained else "Sources"
    cards = [render_source(i, c, lookup(c.doc), miss=answer.abstained) for i, c in enumerate(answer.citations, start=1)]
    return (f'<div class="qa-sources"><h2 class="qa-sources-for">{heading} for \u201c{esc(short(answer.question, 90))}\u201d</h2>'
            + "".join(cards) + "</div>")
