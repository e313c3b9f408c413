"""The chat page: a Gradio Blocks app over one :class:`~qa.bot.Bot`, mounted on the API's app.

``build_chat(bot)`` builds the page; ``mount_chat(app, bot)`` mounts it at ``/`` of the FastAPI
app from :func:`qa.api.create_app` (whose routes, ``/api/...``, ``/docs`` and the probes, keep
precedence). The page calls the Bot in-process; its handlers are synchronous and CPU-bound, so
Gradio runs them in worker threads.

Nothing leaves the machine: the theme uses system fonts (no font files, no Google Fonts), the
footer links, analytics and run history are off, and no external script or image is referenced.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

# Before gradio is imported: it reads these at import time.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402

from qa.api import PARSE_WORKERS  # noqa: E402
from qa.api.schemas import TurnModel  # noqa: E402
from qa.bot import MAX_QUESTION_CHARS, Bot, DocumentError, IndexBusy, QuestionError, Turn, refuse_twins  # noqa: E402
from qa.guard import KEY_COOKIE, ParseBudget  # noqa: E402
from qa.ingest import MAX_DOCUMENT_BYTES, MAX_PACKED_BYTES, SUPPORTED_SUFFIXES, max_bytes  # noqa: E402
from qa.settings import Settings  # noqa: E402
from qa.types import Answer, Document  # noqa: E402

from qa.feedback import FeedbackError  # noqa: E402

from .render import esc, pretty_date, render_error, render_reply, render_sources, short  # noqa: E402

if TYPE_CHECKING:
    from fastapi import FastAPI

log = logging.getLogger(__name__)

MAX_SHOWN = 100  # exchanges kept on the page (and in the session's memory)
INDEXING = "The documents are still being indexed."
SHOWN_REFUSED_CHARS = 200  # of a refused question (too long, invalid), kept and shown with its error
# The conversation kept in the tab's sessionStorage (survives a reload, not the tab), under this key
# and format version; sent back on load, so a third of the request body limit at most (JSON escaping).
SAVED_KEY = "qa-chat-conversation"
SAVED_VERSION = 1
MAX_SAVED_CHARS = 300_000
SYSTEM_FONTS = ("ui-sans-serif", "system-ui", "-apple-system", "Segoe UI", "Roboto", "Helvetica Neue", "Arial", "sans-serif")
MONO_FONTS = ("ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "Liberation Mono", "monospace")

CSS = """
/* The page's own colours, chosen for WCAG AA contrast (4.5:1 for text): the theme's subdued text
   (slate-400) read 2.5:1 on white; the green, amber and accent blue read under 4:1 on the dark theme. */
:root { --qa-subdued: #475569; --qa-num: #1d4ed8; --qa-warn: #b45309; --qa-ok: #15803d; --qa-focus: #1d4ed8; }
.dark { --qa-subdued: #94a3b8; --qa-num: #93c5fd; --qa-warn: #fbbf24; --qa-ok: #4ade80; --qa-focus: #93c5fd; }
/* A keyboard user sees where they are: the theme draws no ring on the question box, checkboxes or radios. */
#qa-question textarea:focus-visible, #qa-key input:focus-visible { outline: 2px solid var(--qa-focus) !important; outline-offset: -2px; }
#qa-chat [data-testid=bot]:focus-visible { outline: 2px solid var(--qa-focus) !important; outline-offset: 2px; }
#qa-picker input:focus-visible, #qa-replace input:focus-visible, #qa-fb-pick input:focus-visible { outline: 2px solid var(--qa-focus) !important; outline-offset: 2px; }
/* min(): a long unbroken word (a URL) in the chat stretched the page past a phone's width. */
.gradio-container { max-width: min(1180px, 100%) !important; margin: 0 auto !important; }
#qa-header h1 { font-size: 1.45rem; margin: .2rem 0 .1rem; }
#qa-header p { margin: 0; color: var(--qa-subdued); font-size: .95rem; }
#qa-chat .qa-reply { line-height: 1.5; }
.qa-searched { font-size: .82em; font-style: italic; color: var(--qa-subdued); margin-bottom: .3em; }
.qa-short { margin-bottom: .35em; }
.qa-short strong { font-size: 1.12em; }
.qa-nospan { font-size: .9em; color: var(--qa-subdued); }
.qa-conf { font-size: .72em; color: var(--qa-subdued); margin-left: .5em; white-space: nowrap; }
.qa-cite { margin: .35em 0 0; }
.qa-date { font-size: .8em; margin-left: .4em; padding: 0 .35em; border-radius: 4px; background: var(--background-fill-secondary); }
.qa-also, .qa-disagree { margin-top: .5em; font-size: .92em; }
.qa-corro-head { font-weight: 600; margin-bottom: .2em; }
.qa-disagree .qa-corro-head { color: var(--qa-warn); }
.qa-sides { display: flex; flex-wrap: wrap; gap: .5em; }
.qa-side { flex: 1 1 14em; border-left: 3px solid #d97706; padding-left: .5em; }
.qa-also-item { border-left: 3px solid #16a34a; padding-left: .5em; margin-top: .2em; }
.qa-fb-done { color: var(--qa-ok); }
.qa-n { font-weight: 600; color: var(--qa-num); margin-right: .15em; }
.qa-src { font-size: .8em; color: var(--qa-subdued); }
.qa-notfound { font-weight: 600; }
.qa-closest { font-size: .85em; color: var(--qa-subdued); margin-top: .3em; }
.qa-miss .qa-quote { color: var(--qa-subdued); }
.qa-error { color: var(--error-text-color, #b91c1c); }
mark.qa-answer { background: #fde68a; color: #111827; font-weight: 600; padding: 0 .15em; border-radius: 3px; }
mark.qa-sentence { background: #dbeafe; color: #111827; padding: .05em 0; border-radius: 2px; }
#qa-sources-panel h2.qa-sources-for { font-size: .8em; font-weight: 400; line-height: 1.5; text-transform: uppercase; letter-spacing: .04em; color: var(--qa-subdued); margin: 0 0 .5em; overflow-wrap: anywhere; }
.qa-source { border: 1px solid var(--border-color-primary); border-radius: 10px; padding: .65em .8em; margin: 0 0 .6em; background: var(--block-background-fill); }
#qa-sources-panel h3.qa-source-head { font-size: 1em; font-weight: 600; line-height: 1.35; margin: 0; color: inherit; }
.qa-meta { font-size: .78em; color: var(--qa-subdued); margin-top: .15em; overflow-wrap: anywhere; }
.qa-meta code { font-size: .95em; }
.qa-para { white-space: pre-line; font-size: .9em; line-height: 1.5; margin: .45em 0 0; overflow-wrap: anywhere; }
.qa-miss mark.qa-sentence { background: #f3f4f6; }
.qa-page { margin: .5em 0 0; }
.qa-page img { display: block; width: 100%; height: auto; border: 1px solid var(--border-color-primary); border-radius: 4px; background: #fff; }
.qa-page figcaption { font-size: .78em; color: var(--qa-subdued); margin-top: .2em; }
.dark mark.qa-answer { background: #a16207; color: #fff; }
.dark mark.qa-sentence { background: #1e3a5f; color: inherit; }
.dark .qa-miss mark.qa-sentence { background: #374151; }
.qa-empty { color: var(--qa-subdued); font-size: .9em; padding: .4em .1em; }
#qa-sources-panel .qa-sources { max-height: 64vh; overflow-y: auto; padding-right: .2em; }
#qa-chat .qa-reply { font-size: .95em; }
.qa-hint { font-size: .8em; color: var(--qa-subdued); margin: .2em 0; }
#qa-status { font-size: .88em; }
#qa-status p { margin: .2em 0; }
#qa-chat .message-row.panel { padding: 12px 14px !important; }
#qa-chat .message-row.panel.user-row { padding-top: 14px !important; }
@media (max-width: 700px) {
  .gradio-container .main { padding: 10px 8px !important; }
  #qa-chat .message-row.panel { padding: 8px 6px !important; }
  #qa-chat .message.bot, #qa-chat .message.user { padding: 4px 6px !important; }
  #qa-header h1 { font-size: 1.2rem; }
  #qa-sources-panel .qa-sources { max-height: none; }
}
"""


# After an answer: scroll the chat (only the chat, not the page) so the latest question is at its
# top and the reply is read from its start, not from its last citation.
SCROLL_TO_LAST_QUESTION = """() => { setTimeout(() => {
  const log = document.querySelector('#qa-chat [role=log]');
  const rows = document.querySelectorAll('#qa-chat .user-row');
  if (!log || !rows.length) return;
  const row = rows[rows.length - 1];
  const top = log.scrollTop + row.getBoundingClientRect().top - log.getBoundingClientRect().top - 4;
  log.scrollTo({top: Math.max(0, top), behavior: 'smooth'});
}, 60); }"""


# The box lost focus while locked: give it back (a keyboard user types on), unless the user has
# since focused something else, or on a touch screen (focus would pop the keyboard over the reply).
FOCUS_QUESTION = """() => { if (matchMedia('(pointer: coarse)').matches) return; let tries = 0; const go = () => {
  const box = document.querySelector('#qa-question textarea');
  if (!box || (document.activeElement && document.activeElement !== document.body)) return;
  if (box.disabled) { if (tries++ < 40) setTimeout(go, 50); return; }
  box.focus({preventScroll: true});
}; setTimeout(go, 0); }"""


# A reply is clicked to bring its sources back, but Gradio's messages take no focus: each reply
# gets a Tab stop and Enter/Space clicks it. Its label (Gradio's: the reply's HTML source, tags
# and all) becomes its text and what Enter does. Kept up as replies come and go.
KEYBOARD_REPLIES = """() => {
  const chat = document.querySelector('#qa-chat');
  if (!chat || chat.dataset.qaKeys) return;
  chat.dataset.qaKeys = '1';
  const mark = () => chat.querySelectorAll('[data-testid=bot].selectable').forEach((m, i) => {
    if (m.tabIndex !== 0) m.tabIndex = 0;
    const label = 'Reply ' + (i + 1) + ' (Enter shows its sources): ' + m.innerText.replace(/\\s+/g, ' ').trim();
    if (m.getAttribute('aria-label') !== label) m.setAttribute('aria-label', label);
  });
  chat.addEventListener('keydown', (e) => {
    const m = e.target.closest && e.target.closest('[data-testid=bot].selectable');
    if (m && e.target === m && (e.key === 'Enter' || e.key === ' ')) { e.preventDefault(); m.click(); }
  });
  new MutationObserver(mark).observe(chat, {childList: true, subtree: true, characterData: true});
  mark();
}"""


# The status lines (uploads, feedback) are live regions: a screen reader reads "Added …" or an
# error out, where a sighted user sees it appear. Set on the element Gradio keeps across updates.
ANNOUNCE = "element.setAttribute('role', 'status'); element.setAttribute('aria-live', 'polite');"


# The key field keeps the key in a same-site cookie: the page's uploads to Gradio's upload route
# carry it there (the API's guard checks it), and no other site's requests ever do.
SET_KEY_COOKIE = """(key) => {
  document.cookie = "%s=" + encodeURIComponent(key || "") + "; path=/; SameSite=Strict";
  return [];
}""" % KEY_COOKIE


# The conversation survives a reload of the tab (F5, a phone reloading a background tab): the page
# keeps it in sessionStorage, which is the tab's own (another tab has its own conversation) and goes
# with the tab. Written after each change ("" removes it); read back on load, sent to the server.
SAVE_CONVERSATION = """(saved) => {
  try { if (saved) sessionStorage.setItem(%(key)s, saved); else sessionStorage.removeItem(%(key)s); }
  catch (e) { try { sessionStorage.removeItem(%(key)s); } catch (_) {} }
  return [];
}"""
READ_CONVERSATION = """(picked, saved) => {
  let kept = "";
  try { kept = sessionStorage.getItem(%(key)s) || ""; } catch (e) {}
  return [picked, kept.length <= %(limit)d ? kept : ""];
}"""


def theme() -> gr.themes.Base:
    """The default theme with system fonts: no font files to fetch, from anywhere."""
    return gr.themes.Default(primary_hue="blue", neutral_hue="slate", font=SYSTEM_FONTS, font_mono=MONO_FONTS)


def _document_lookup(bot: Bot):
    """``doc_id -> Document`` over one snapshot of the index (text for the sources panel), taken
    at the first look-up: a reply without answers reads no index."""
    snapshot: list[Any] = []

    def get(doc_id: str) -> Document | None:
        idx = snapshot[0] if snapshot else snapshot.append(bot.index) or snapshot[0]
        pos = idx.doc_pos.get(doc_id)
        if pos is None:
            return None
        e = idx.entries[pos]
        try:
            text = bot.document_text(doc_id, idx)
        except DocumentError:
            return None
        return Document(e.id, e.meta.get("title") or "", e.meta.get("date"), text)

    return get


def _doc_label(e: Any) -> str:
    title = short(e.meta.get("title") or e.id, 60)
    date = pretty_date(e.meta.get("date"))
    return f"{title} ({date})" if date else title


def _no_documents(_doc_id: str) -> Document | None:
    """A look-up that finds no document: the empty panel's, and the page's while the server still
    brings the index up to date (none is read meanwhile)."""
    return None


def _messages(entries: Sequence[tuple], get: Callable[[str], Document | None]) -> list[dict[str, str]]:
    """The chatbot's messages for ``entries``; ``get`` looks a document up (its date)."""

    def date_of(doc_id: str) -> str | None:
        doc = get(doc_id)
        return doc.date if doc else None

    out: list[dict[str, str]] = []
    for question, answer, error in entries:
        out.append({"role": "user", "content": esc(question)})
        out.append({"role": "assistant", "content": render_reply(answer, date_of) if answer is not None else render_error(error)})
    return out


def dump_conversation(entries: Sequence[tuple], picked: Sequence[str] | None = None,
                      limit: int = MAX_SAVED_CHARS) -> str:
    """The conversation (and the picked documents) as the JSON kept in the browser tab, its
    oldest exchanges left out to fit ``limit`` characters; "" when there is nothing to keep."""
    turns = [{"question": q, "answer": a.to_dict()} if a is not None else {"question": q, "error": e}
             for q, a, e in entries]
    picked = list(picked or [])
    if not turns and not picked:
        return ""
    room = limit - len(json.dumps({"v": SAVED_VERSION, "entries": [], "picked": picked}))
    if room < 0:
        return ""
    kept: list[dict[str, Any]] = []
    for turn in reversed(turns):  # newest first, while they fit (each takes its JSON and a comma)
        room -= len(json.dumps(turn)) + 2
        if room < 0:
            break
        kept.append(turn)
    return json.dumps({"v": SAVED_VERSION, "entries": kept[::-1], "picked": picked})


def load_conversation(saved: str | None) -> tuple[list[tuple], list[str]]:
    """``(entries, picked)`` from :func:`dump_conversation`'s JSON. Raises ValueError for
    anything else (another version, a garbled or tampered value): the caller starts empty.
    Answers are checked as the API checks a client's history (its ``TurnModel``)."""
    data = json.loads(saved or "null")
    if not isinstance(data, dict) or data.get("v") != SAVED_VERSION or not isinstance(data.get("entries"), list):
        raise ValueError("not a saved conversation of this version")
    entries: list[tuple] = []
    for turn in data["entries"][-MAX_SHOWN:]:
        if isinstance(turn, dict) and isinstance(turn.get("error"), str) and isinstance(turn.get("question"), str):
            entries.append((turn["question"][:MAX_QUESTION_CHARS * 2], None, turn["error"]))
            continue
        checked = TurnModel.model_validate(turn)  # a pydantic ValidationError is a ValueError
        entries.append((checked.question, Answer.from_dict(checked.answer.model_dump(exclude_none=True)), None))
    picked = data.get("picked") or []
    if not isinstance(picked, list) or not all(isinstance(d, str) for d in picked):
        raise ValueError("picked is not a list of document ids")
    return entries, picked


NOT_ANSWERED = "none"  # the feedback choice "the documents do not answer this"


def feedback_choices(answer: Answer | None) -> list[tuple[str, str]]:
    """What a user may pick as the sentence that answers instead: the citations (or closest
    matches), the other documents' quotes, or that the documents do not answer."""
    if answer is None:
        return []
    seen, out = set(), []
    for c in (*answer.citations, *answer.corroboration):
        value = f"{c.start}:{c.end}:{c.doc}"
        if value not in seen:
            seen.add(value)
            out.append((f"\u201c{short(c.text, 110)}\u201d \u2014 {short(c.title or c.doc, 40)}", value))
    return out + [("The documents do not answer this", NOT_ANSWERED)]


class ChatPage:
    """The page's event handlers over one Bot (plain methods, so tests can call them directly).

    A conversation is a list of ``(question, Answer | None, error | None)`` kept in the browser
    session's ``gr.State``; the chatbot's messages are rendered from it, never read back. The tab
    keeps a copy for a reload (:func:`dump_conversation`), read back by :meth:`restore`.

    Args:
        bot: answers the questions and stores uploaded documents (``Bot.add_document``: the same
            ingestion path and limits as the API's upload).
        upload_key: when set (the API's ``QA_API_KEY``), adding documents needs it.
        parse_budget: the API's (``app.state.parse_budget``), so the page's uploads are parsed
            in the same threads and time limit as the API's; default: one of the default size.
        max_turns: earlier turns passed to the Bot, as the API's ``QA_MAX_TURNS`` (its default
            when not given).
        ready: false while the server still brings the index up to date (the API's warm-up);
            the page then says so instead of starting an index of its own. Default: ready.
    """

    def __init__(self, bot: Bot, upload_key: str | None = None, parse_budget: ParseBudget | None = None,
                 max_turns: int | None = None, ready: Callable[[], bool] | None = None) -> None:
        self.bot = bot
        self.upload_key = upload_key
        self.ready = ready or (lambda: True)
        if parse_budget is None or max_turns is None:  # the API's defaults, from the environment
            defaults = Settings()
            parse_budget = parse_budget or ParseBudget(PARSE_WORKERS, defaults.parse_timeout_s)
            max_turns = defaults.max_turns if max_turns is None else max_turns
        self.parse_budget, self.max_turns = parse_budget, max_turns

    def documents_update(self, picked: Sequence[str] | None = None, keep: bool = False) -> Any:
        """The picker's choices (every indexed document), keeping the ticks still valid.
        ``keep`` (after an answer, when another page may have added or deleted documents):
        leave the ticks as they are, as the user may have ticked meanwhile, unless one is gone."""
        if not self.ready():
            return gr.update(info=f"{INDEXING} Reload the page then to pick among them.")
        entries = self.bot.index.entries
        ids = {e.id for e in entries}
        update = gr.update(choices=[(_doc_label(e), e.id) for e in entries],
                           info=f"{len(entries)} documents; none ticked means all of them.")
        valid = [d for d in (picked or []) if d in ids]
        if not keep or len(valid) < len(picked or []):
            update["value"] = valid
        return update

    def respond(self, question: str, entries: list[tuple], picked: list[str] | None):
        """Ask; return (question box, chatbot messages, conversation, sources panel)."""
        question = (question or "").strip()
        if not question:
            return gr.update(), gr.update(), entries, gr.update()
        entries = list(entries or [])
        history = [Turn(q, a) for q, a, _ in entries if a is not None][-self.max_turns:]
        docs = None
        answer: Answer | None = None
        error = None
        if not self.ready():
            error = f"{INDEXING} Ask again in a moment."
        elif not self.bot.index.doc_ids:
            error = "There are no documents to search yet: add some with \u201cAdd documents\u201d, then ask again."
        elif picked:
            known = self.bot.index.doc_pos
            docs = [d for d in picked if d in known]
            if not docs:
                error = "The documents you picked are no longer there: pick others, or untick them all to ask every document."
        if error is None:
            try:
                answer = self.bot.ask(question, history=history, docs=docs)
            except QuestionError as exc:
                error = str(exc)
                # Only its opening is kept: every reply sends the whole conversation back.
                question = short(question.encode("utf-8", "backslashreplace").decode("utf-8"), SHOWN_REFUSED_CHARS)
            except Exception:  # the page stays usable; the log has the details
                log.exception("could not answer %r", question)
                error = "Something went wrong while answering; the server log has the details."
        entries = (entries + [(question, answer, error)])[-MAX_SHOWN:]
        get = self._lookup()
        sources = render_sources(answer, get) if answer is not None else gr.update()
        box = "" if answer is not None else gr.update()  # a question not asked stays to be edited
        return box, _messages(entries, get), entries, sources

    def _lookup(self) -> Callable[[str], Document | None]:
        """Documents from the index, once it is ready. Before, a look-up would start an index of
        this page's own beside the warm-up's (a conversation kept in the tab comes back then)."""
        return _document_lookup(self.bot) if self.ready() else _no_documents

    def sources_of(self, entries: list[tuple], message_index: Any):
        """The sources panel for the exchange holding chatbot message ``message_index``."""
        index = message_index[0] if isinstance(message_index, (list, tuple)) and message_index else message_index
        if not isinstance(index, int) or not entries or not 0 <= index // 2 < len(entries) or not self.ready():
            return gr.update()
        answer = entries[index // 2][1]
        return render_sources(answer, _document_lookup(self.bot)) if answer is not None else gr.update()

    @staticmethod
    def new_conversation():
        return "", [], [], render_sources(None, _no_documents)

    def restore(self, picked: list[str] | None, saved: str | None):
        """On load: the conversation the tab kept (see :func:`load_conversation`) and the picker;
        return (picker update, chatbot messages, conversation, sources panel). A value that
        cannot be read back is dropped: the page starts empty rather than breaking."""
        try:
            entries, kept = load_conversation(saved) if saved else ([], [])
            get = self._lookup()
            messages = _messages(entries, get)
            last = next((a for _, a, _ in reversed(entries) if a is not None), None)
            # Still indexing: the panel waits (a click on the reply brings the sources back later).
            sources = render_sources(last if get is not _no_documents else None, get)
        except Exception as exc:  # whatever the stored value holds (an older page's, edited by hand)
            log.info("ignored the conversation kept in the browser: %s", str(exc)[:200])
            entries, kept, messages, sources = [], [], [], render_sources(None, _no_documents)
        return self.documents_update(kept or picked), messages, entries, sources

    def _key_ok(self, key: str | None) -> bool:
        """Writes from the page (uploads, marks) need the API key when one is set."""
        return not self.upload_key or hmac.compare_digest((key or "").encode("utf-8"), self.upload_key.encode("utf-8"))

    @staticmethod
    def feedback_closed():
        """A new question or conversation: the offered sentences belonged to the last answer."""
        return gr.update(visible=False, choices=[], value=None), gr.update(visible=False), ""

    @staticmethod
    def feedback_open(entries: list[tuple]):
        """"Wrong" was pressed: offer the last answer's sentences to pick from."""
        last = next((a for _, a, _ in reversed(entries or []) if a is not None), None)
        if last is None:
            return gr.update(visible=False, choices=[], value=None), gr.update(visible=False), \
                '<p class="qa-hint">Ask a question first.</p>'
        return (gr.update(visible=True, choices=feedback_choices(last), value=None), gr.update(visible=True),
                '<p class="qa-hint">Pick the sentence that answers the question, then send.</p>')

    def send_feedback(self, verdict: str, pick: str | None, entries: list[tuple], picked: list[str] | None,
                      key: str | None):
        """Store the mark on the last answer; return (status HTML, picker update, send button update)."""
        asked = [(q, a) for q, a, _ in entries or [] if a is not None]
        if not asked:
            return '<p class="qa-hint">Ask a question first.</p>', gr.update(), gr.update()
        if not self._key_ok(key):
            return ('<p class="qa-error">Marking answers needs the API key: type it in the Documents panel.</p>',
                    gr.update(), gr.update())
        if not self.ready():  # the mark is checked against the index: none is read before the warm-up's
            return f'<p class="qa-error">Not saved: {INDEXING} Mark it again in a moment.</p>', gr.update(), gr.update()
        question, answer = asked[-1]
        evidence = None
        if verdict == "wrong":
            if not pick:
                return '<p class="qa-error">Pick the sentence that answers, or \u201cThe documents do not answer this\u201d.</p>', \
                    gr.update(), gr.update()
            if pick != NOT_ANSWERED:
                start, end, doc = pick.split(":", 2)
                evidence = (doc, int(start), int(end))
        docs = [d for d in picked or [] if d in self.bot.index.doc_pos] or None
        try:
            self.bot.record_feedback(question, answer, verdict, [q for q, _ in asked[:-1]][-self.max_turns:], evidence, docs)
        except FeedbackError as exc:
            return f'<p class="qa-error">Not saved: {esc(str(exc))}</p>', gr.update(), gr.update()
        return ('<p class="qa-fb-done">Thank you: saved as a test question for the bot.</p>',
                gr.update(visible=False, value=None), gr.update(visible=False))

    def add_files(self, paths: list[str] | str | None, replace: bool, key: str | None, picked: list[str] | None):
        """Store and index uploaded files, all or nothing, as the API does; return (status HTML,
        picker update)."""
        if not paths:
            return gr.update(), gr.update()
        paths = [paths] if isinstance(paths, str) else list(paths)
        if not self._key_ok(key):
            return '<p class="qa-error">Adding documents needs the API key: type it in the field above.</p>', gr.update()
        if not self.ready():
            return f'<p class="qa-error">Not added: {INDEXING} Add them again in a moment.</p>', gr.update()
        items: list[tuple[str, bytes, Document]] = []
        problems: list[str] = []
        try:
            refuse_twins([Path(p).name for p in paths])
        except DocumentError as exc:
            problems.append(esc(str(exc)))
        for p in paths if not problems else ():
            name = Path(p).name
            try:
                if os.path.getsize(p) > max_bytes(name):
                    raise DocumentError("too_large", f"{name} is over the limit of {max_bytes(name)} bytes a file of its kind")
                data = Path(p).read_bytes()
                # Parsed once, within the API's budget (a hostile file cannot hold a thread for long).
                items.append((name, data, self.parse_budget.call(partial(self.bot.check_upload, name, data,
                                                                         replace=bool(replace)))))
            except DocumentError as exc:
                hint = "; tick \u201cReplace same name\u201d to overwrite it" if exc.replaceable else ""
                problems.append(esc(str(exc) + hint))
            except TimeoutError:
                problems.append(f"reading {esc(name)} took longer than {self.parse_budget.timeout_s:g} s; split it into "
                                "smaller files")
        if not problems:
            try:
                upload = self.bot.add_documents(items, replace=bool(replace))
            except (DocumentError, IndexBusy) as exc:  # busy: another write held the index too long
                problems.append(esc(str(exc)))
            except Exception:
                log.exception("could not add %s", ", ".join(name for name, _, _ in items))
                problems.append("the files could not be stored; the server log has the details")
            else:
                added = [f"<p>Added <strong>{esc(short(doc.title or doc.id, 70))}</strong> (<code>{esc(doc.id)}</code>): "
                         "ask about it.</p>" for doc in upload.documents]
                return "".join(added), self.documents_update(picked)
        lines = [f'<p class="qa-error">Not added: {line}</p>' for line in problems]
        if len(paths) > 1:
            lines.append('<p class="qa-error">Nothing was added: the files go in together, or none of them.</p>')
        return "".join(lines), gr.update()


def build_chat(
    bot: Bot,
    examples: Sequence[str] = (),
    upload_key: str | None = None,
    workers: int = 4,
    parse_budget: ParseBudget | None = None,
    max_turns: int | None = None,
    ready: Callable[[], bool] | None = None,
    saved_chars: int = MAX_SAVED_CHARS,
) -> gr.Blocks:
    """The chat page over ``bot``.

    Args:
        bot: answers the questions and stores uploaded documents (see :class:`ChatPage`).
        examples: example questions shown in the empty chat (none by default: good ones depend on
            the corpus; ``qa serve --example`` passes them).
        upload_key: when set (the API's ``QA_API_KEY``), uploading from the page asks for it.
        workers: questions answered at the same time; more wait in Gradio's queue.
        parse_budget: threads and time limit for parsing uploads (see :class:`ChatPage`).
        max_turns: earlier turns a question is read with (see :class:`ChatPage`).
        ready: whether the server's index is ready (see :class:`ChatPage`).
        saved_chars: the most characters of conversation the browser tab keeps for a reload
            (its oldest exchanges are left out); it comes back in one request on load.
    """
    page = ChatPage(bot, upload_key, parse_budget, max_turns, ready)
    save_js = SAVE_CONVERSATION % {"key": json.dumps(SAVED_KEY)}
    read_js = READ_CONVERSATION % {"key": json.dumps(SAVED_KEY), "limit": saved_chars}

    # Asking or starting over also withdraws the sentences offered for the last answer, in the
    # same step: a separate follow-up event could land after the next "wrong" click.
    def ask(question: str, entries: list[tuple], picked: list[str] | None):
        box, messages, entries, sources = page.respond(question, entries, picked)
        return (box, messages, entries, sources, *page.feedback_closed(), page.documents_update(picked, keep=True),
                dump_conversation(entries, picked, saved_chars))

    def ask_example(entries: list[tuple], picked: list[str] | None, evt: gr.SelectData):
        value = evt.value if isinstance(evt.value, dict) else {"text": str(evt.value)}
        _, *rest = ask(value.get("text") or "", entries, picked)
        return (gr.update(), *rest)  # the box never held the example: what is typed there stays

    # While a question is answered the box is locked: a reply would clear what is typed meanwhile,
    # and a second submit is dropped (trigger_mode "once"). Unlocked whatever the answer did.
    def lock():
        return gr.update(interactive=False)

    def unlock():
        return gr.update(interactive=True)

    def start_over(picked: list[str] | None):
        # The ticks stay on the page, so the tab keeps them too (a reload brought back none).
        return (*page.new_conversation(), *page.feedback_closed(), dump_conversation([], picked, saved_chars))

    def picked_changed(entries: list[tuple], picked: list[str] | None):
        return dump_conversation(entries, picked, saved_chars)

    def show_sources(entries: list[tuple], evt: gr.SelectData):
        return page.sources_of(entries, evt.index)

    with gr.Blocks(title="Ask the documents", analytics_enabled=False, delete_cache=(3600, 3600)) as demo:
        entries = gr.State([])
        # What the tab keeps for a reload (see SAVE_CONVERSATION): written from here by the browser.
        saved = gr.Textbox(visible=False, elem_id="qa-saved")
        gr.HTML(
            "<h1>Ask the documents</h1><p>Every answer is a sentence quoted verbatim from the documents, "
            "with its source. When they do not say, the bot says so.</p>",
            elem_id="qa-header", padding=False,
        )
        with gr.Row(equal_height=False):
            with gr.Column(scale=3, min_width=320):
                chatbot = gr.Chatbot(
                    elem_id="qa-chat", label="Conversation", show_label=False, height="64vh", min_height=360, layout="panel",
                    feedback_options=None, latex_delimiters=[], sanitize_html=True, render_markdown=True,
                    buttons=[], autoscroll=False,
                    examples=[{"text": q} for q in examples] or None,
                    placeholder="Ask a question about the documents, or pick an example.",
                )
                question = gr.Textbox(
                    elem_id="qa-question", label="Your question", show_label=False, placeholder="Ask about the documents\u2026",
                    lines=1, max_lines=4, max_length=MAX_QUESTION_CHARS, submit_btn="Ask", autofocus=True,
                )
                with gr.Row(equal_height=True, elem_id="qa-feedback"):
                    new_btn = gr.Button("New conversation", elem_id="qa-new", size="sm", variant="secondary")
                    right_btn = gr.Button("\u2713 Last answer right", elem_id="qa-fb-right", size="sm", variant="secondary")
                    wrong_btn = gr.Button("\u2717 Last answer wrong", elem_id="qa-fb-wrong", size="sm", variant="secondary")
                fb_pick = gr.Radio(label="Which sentence answers the question?", visible=False, elem_id="qa-fb-pick")
                fb_send = gr.Button("Send", visible=False, elem_id="qa-fb-send", size="sm", variant="primary")
                fb_status = gr.HTML("", elem_id="qa-fb-status", padding=False, js_on_load=ANNOUNCE)
            with gr.Column(scale=2, min_width=300):
                sources = gr.HTML(render_sources(None, _no_documents), elem_id="qa-sources-panel", padding=False)
                with gr.Accordion("Documents", open=True, elem_id="qa-documents"):
                    picker = gr.CheckboxGroup(label="Ask only these documents", elem_id="qa-picker")
                    key = gr.Textbox(label="API key (needed to add documents)", type="password",
                                     visible=bool(upload_key), elem_id="qa-key")
                    with gr.Row(equal_height=True):
                        upload = gr.UploadButton(
                            "Add documents", file_types=list(SUPPORTED_SUFFIXES), file_count="multiple",
                            elem_id="qa-upload", size="sm", variant="secondary", scale=1, min_width=130,
                        )
                        replace = gr.Checkbox(label="Replace same name", value=False, elem_id="qa-replace",
                                              scale=1, min_width=130, container=False)
                    status = gr.HTML(
                        f'<p class="qa-hint">PDF, Word (.docx), web pages (.html), .txt or .md; up to '
                        f'{MAX_PACKED_BYTES >> 20} MB each ({MAX_DOCUMENT_BYTES >> 20} MB for text).</p>',
                        elem_id="qa-status", padding=False, js_on_load=ANNOUNCE,
                    )

        outputs = [question, chatbot, entries, sources]
        private = {"api_visibility": "private"}
        feedback = [fb_pick, fb_send, fb_status]
        # The picker is an output (other pages' uploads) but no progress box covers it: it stays tickable.
        asked = [
            question.submit(lock, None, [question], queue=False, **private)
            .then(ask, [question, entries, picker], outputs + feedback + [picker, saved], concurrency_limit=workers,
                  concurrency_id="ask", show_progress_on=outputs + feedback, **private)
            .then(unlock, None, [question], queue=False, **private),
            chatbot.example_select(ask_example, [entries, picker], outputs + feedback + [picker, saved], concurrency_limit=workers,
                                   concurrency_id="ask", show_progress_on=outputs + feedback, **private),
        ]
        for event in asked:
            event.then(None, [saved], None, js=save_js, **private)
            event.then(None, js=SCROLL_TO_LAST_QUESTION, **private)
            event.then(None, js=FOCUS_QUESTION, **private)
        chatbot.select(show_sources, [entries], [sources], **private)
        new_btn.click(start_over, [picker], outputs + feedback + [saved], **private).then(None, [saved], None, js=save_js, **private)
        right_btn.click(partial(page.send_feedback, "right"), [fb_pick, entries, picker, key], [fb_status, fb_pick, fb_send], **private)
        wrong_btn.click(page.feedback_open, [entries], feedback, **private)
        fb_send.click(partial(page.send_feedback, "wrong"), [fb_pick, entries, picker, key], [fb_status, fb_pick, fb_send], **private)
        chatbot.clear(start_over, [picker], outputs + feedback + [saved], **private).then(None, [saved], None, js=save_js, **private)
        key.change(None, [key], None, js=SET_KEY_COOKIE, **private)
        upload.upload(page.add_files, [upload, replace, key, picker], [status, picker], concurrency_limit=1, **private)
        picker.input(picked_changed, [entries, picker], [saved], **private).then(None, [saved], None, js=save_js, **private)
        demo.load(page.restore, [picker, saved], [picker, chatbot, entries, sources], js=read_js, **private)
        demo.load(None, js=KEYBOARD_REPLIES, **private)
    return demo


def mount_chat(
    app: "FastAPI",
    bot: Bot,
    path: str = "/",
    examples: Sequence[str] = (),
    settings: "Settings | None" = None,
) -> "FastAPI":
    """Mount the chat page on ``app`` (from :func:`qa.api.create_app`) at ``path``.

    The API's settings (``app.state.settings`` unless given) carry over: with ``QA_API_KEY`` set,
    uploads from the page ask for the key (Gradio's upload route included); with
    ``QA_API_KEY_REQUIRED=1`` the page itself asks for it (any user name, the key as password).
    The API's guard wraps the page's routes too: foreign origins and host names cannot write,
    bodies are capped, uploads and questions are rate limited, and CORS is closed.
    """
    settings = settings if settings is not None else getattr(app.state, "settings", None)
    api_key = getattr(settings, "api_key", None)
    service = getattr(app.state, "service", None)  # the API's: its warm-up says when the index is ready
    blocks = build_chat(bot, examples=examples, upload_key=api_key, workers=getattr(settings, "workers", 4),
                        parse_budget=getattr(app.state, "parse_budget", None), max_turns=getattr(settings, "max_turns", None),
                        ready=(lambda: service.ready) if service is not None else None,
                        # The kept conversation comes back in one request: within the guard's body limit.
                        saved_chars=min(MAX_SAVED_CHARS, getattr(settings, "max_body_bytes", 3 * MAX_SAVED_CHARS) // 3))
    auth = None
    if api_key and getattr(settings, "api_key_required", False):
        def auth(_user: str, password: str) -> bool:
            return hmac.compare_digest((password or "").encode("utf-8"), api_key.encode("utf-8"))

    return gr.mount_gradio_app(
        app, blocks, path=path, theme=theme(), css=CSS, footer_links=[], run_history=False,
        max_file_size=MAX_PACKED_BYTES, ssr_mode=False, pwa=False, mcp_server=False,
        auth=auth, auth_message="Type the QA_API_KEY as the password (any user name)." if auth else None,
    )
