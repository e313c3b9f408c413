"""The chat page: HTML rendering (fast, no browser) and a real headless Chromium against a real
server (create_app + the chat mounted at /, over a copy of documents/ and the real MiniLM).

The browser test needs Debian's chromium (/usr/bin/chromium) and Python playwright; `make test`
installs both. Without them it is skipped, unless QA_REQUIRE_BROWSER=1 (set by the Makefile)
makes the absence a failure. Screenshots go to artifacts/ui/ (git-ignored), or $QA_ARTIFACTS.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

import pytest

# Gradio's queue trips pandas deprecation warnings that are none of this project's business.
pytestmark = pytest.mark.filterwarnings("ignore:.*(no_silent_downcasting|copy keyword).*")

from conftest import DATA, ROOT
from servers import pause_writes, serving

from eval.loadcheck import free_port, wait_ready
from qa.types import Answer, Citation, Document
from ui.render import esc, paragraph_bounds, render_reply, render_sources

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
ARTIFACTS = Path(os.environ.get("QA_ARTIFACTS") or ROOT / "artifacts" / "ui")
LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}

UPLOAD_NAME = "lighthouse.txt"
UPLOAD_TEXT = (
    "The harbour lighthouse of Port Ellis\n"
    "Published: 2020-05-01\n\n"
    "The harbour lighthouse of Port Ellis was built by the engineer Ada Brunel in 1871.\n\n"
    "Its lamp is lit every evening by the keeper, and it is painted red and white.\n"
)

# How long a browser check waits for the page (an answer on a loaded 2-core machine takes seconds).
EXPECT_TIMEOUT_MS = 30_000


def wired(page) -> None:
    """Wait until the page's events reach the server: its load event has filled the document
    picker. A question typed before that (the page drawn, its scripts not yet bound) is lost."""
    from playwright.sync_api import expect

    expect(page.locator("#qa-picker input[type=checkbox]").first).to_be_attached()


def open_chat(browser, url: str, **options):
    """A new page of ``browser`` (``options``: viewport, colour scheme) on the chat, its events
    wired; returns the page and its question box."""
    page = browser.new_page(**options)
    page.goto(url + "/", wait_until="load")
    box = page.locator("#qa-question textarea")
    box.wait_for()
    wired(page)
    return page, box


# ----- rendering -------------------------------------------------------------------------------
def _cite(doc: Document, start: int, end: int, answer: tuple[int, int] | None = None, score: float = 0.5) -> Citation:
    a, b = answer if answer else (None, None)
    return Citation(doc.id, doc.title, doc.text[start:end], start, end, score, a, b)


DOC = Document(
    "d.txt", "A <b>title</b>", "2021-09-15",
    "Title line\n\nThe call was on May 1. The call was on May 1.\n\nOther paragraph <script>alert(1)</script>.\n",
)


def test_paragraph_bounds_use_the_offsets():
    text = DOC.text
    second = text.index("The call was on May 1.", text.index("The call") + 1)
    a, b = paragraph_bounds(text, second, second + len("The call was on May 1."))
    assert text[a:b] == "The call was on May 1. The call was on May 1."
    a, b = paragraph_bounds(text, 0, 5)
    assert text[a:b] == "Title line"
    s = text.index("Other")
    assert text[slice(*paragraph_bounds(text, s, s + 5))] == "Other paragraph <script>alert(1)</script>."


def test_sources_highlight_the_cited_occurrence_not_the_first_match():
    first = DOC.text.index("The call")
    second = DOC.text.index("The call", first + 1)
    c = _cite(DOC, second, second + 22, answer=(16, 21))
    html = render_sources(Answer("q", "q", False, "May 1", 0.9, (c,)), {DOC.id: DOC}.get)
    # The sentence before the highlight is the first occurrence, left plain.
    assert '.</mark>' in html and "The call was on May 1. <mark" in html.replace("&#32;", " ").replace("&#46;", ".")
    assert '<mark class="qa-answer">May 1</mark>' in html
    assert "Sep 15, 2021" in html and "d.txt" in html.replace("&#95;", "_")
    assert "<b>" not in html and "&lt;b&gt;title&lt;/b&gt;" in html


def test_document_text_is_escaped_everywhere():
    s = DOC.text.index("Other")
    c = _cite(DOC, s, DOC.text.index(".\n", s) + 1)
    answer = Answer("q", "q", False, "Other", 0.5, (c,))
    for html in (render_reply(answer), render_sources(answer, {DOC.id: DOC}.get)):
        assert "<script>" not in html and "&lt;script&gt;" in html
    assert esc("*a* [b](c) $x$ `d`") == "&#42;a&#42; &#91;b&#93;&#40;c&#41; &#36;x&#36; &#96;d&#96;"


def test_reply_layout():
    s = DOC.text.index("The call")
    c1 = _cite(DOC, s, s + 22, answer=(16, 21))
    c2 = _cite(DOC, s + 23, s + 45)
    reply = render_reply(Answer("And then?", "And then? (call)", False, "May 1", 0.42, (c1, c2)))
    assert "searched for" in reply and "<strong>May 1</strong>" in reply
    assert "[1]" in reply and "[2]" in reply and "confidence 42%" in reply
    assert "\n\n" not in reply  # one HTML block for the chatbot's Markdown renderer
    plain = render_reply(Answer("q", "q", False, "May 1", 0.42, (c1,)))
    assert "searched for" not in plain
    missed = render_reply(Answer("q", "q", True, None, 0.1, (c2,)))
    assert "I could not find this in the documents" in missed and "Closest matches" in missed
    assert "<strong>" not in missed
    assert "No passage came close" in render_sources(Answer("q", "q", True, None, 0.0, ()), {}.get)


def test_reply_shows_the_date_and_what_other_documents_say():
    from qa.types import Corroboration

    s = DOC.text.index("The call")
    top = _cite(DOC, s, s + 22, answer=(16, 21))
    other = Corroboration("e.txt", "Other <i>report</i>", "It was on May 2, they said.", 10, 37, "May 2", False,
                          0.8, 10, 15, "2021-09-17", "2021-05-02")
    same = Corroboration("f.txt", "Third", "On May 1 it rang.", 0, 17, "May 1", True, 0.7, 3, 8, None, "2021-05-01")
    reply = render_reply(Answer("When?", "When?", False, "May 1", 0.5, (top,), answer_date="2021-05-01",
                                corroboration=(other, same)), {"d.txt": DOC.date}.get)
    assert '<span class="qa-date"' in reply and "2021&#45;05&#45;01" in reply
    disagree = reply[reply.index("The documents disagree"):reply.index("Also stated in")]
    # Both quotes side by side, each with its short answer marked, its title and its date.
    assert disagree.count('class="qa-side"') == 2
    assert '<mark class="qa-answer">May 2</mark>' in disagree and '<mark class="qa-answer">May 1</mark>' in disagree
    assert "Other &lt;i&gt;report&lt;/i&gt;" in disagree  # a title is escaped like any document text
    assert "Sep 15, 2021" in disagree and "Sep 17, 2021" in disagree
    assert "<i>" not in reply and "\n\n" not in reply
    also = reply[reply.index("Also stated in"):]
    assert "On <mark" in also and "Third" in also
    abstained = render_reply(Answer("q", "q", True, None, 0.1, (top,), corroboration=(other,)))
    assert "disagree" not in abstained


def test_sources_survive_a_changed_document():
    s = DOC.text.index("The call")
    c = _cite(DOC, s, s + 22)
    changed = Document(DOC.id, DOC.title, DOC.date, "something else entirely, much longer than before ...")
    html = render_sources(Answer("q", "q", False, "x", 0.5, (c,)), {DOC.id: changed}.get)
    assert "has changed" in html and "qa-sentence" in html
    assert "has changed" in render_sources(Answer("q", "q", False, "x", 0.5, (c,)), {}.get)


# ----- the page's handlers, called directly ----------------------------------------------------
@pytest.fixture
def page(corpus, embedder, tmp_path):
    from qa.bot import Bot
    from ui.chat import ChatPage

    bot = Bot(corpus, index_dir=tmp_path / "index", embedder=embedder)
    bot.sync()
    return ChatPage(bot, upload_key="s3cret-key")


def test_handlers_answer_follow_up_and_start_over(page):
    box, messages, entries, sources = page.respond("Who built the lighthouse?", [], None)
    assert box == "" and len(messages) == 2 and len(entries) == 1
    answer = entries[0][1]
    assert "<strong>" in messages[1]["content"] and "[1]" in messages[1]["content"]
    assert answer.citations[0].doc in sources.replace("&#95;", "_").replace("&#46;", ".")
    _, messages, entries, _ = page.respond("And when?", entries, None)
    assert len(messages) == 4 and entries[1][1].searched_for != "And when?"
    assert "searched for" in messages[3]["content"]
    # An earlier reply's sources come back when its message is selected.
    assert "Who built the lighthouse?" in page.sources_of(entries, 1)
    assert page.sources_of(entries, 99) == {"__type__": "update"}
    assert page.new_conversation()[1:3] == ([], [])
    # Empty questions do nothing; unanswerable ones say so.
    assert page.respond("   ", entries, None)[2] is entries
    _, messages, _, _ = page.respond("Where is the Eiffel Tower?", [], None)
    assert "I could not find this in the documents" in messages[1]["content"]


def test_a_refused_question_is_kept_short_and_stays_in_the_box(page):
    """The page's text box holds 2,000 characters only in the browser: a posted 250,000 was kept
    whole, and every later reply sent each such turn back (reply k grew to k x 1.25 MB)."""
    from ui.chat import SHOWN_REFUSED_CHARS

    box, messages, entries, _ = page.respond("(" * 250_000, [], None)
    assert box == {"__type__": "update"} and entries[0][1] is None  # not cleared: nothing typed is lost
    assert "250000 characters; the limit is 2000" in messages[1]["content"]
    assert len(entries[0][0]) <= SHOWN_REFUSED_CHARS and len(messages[0]["content"]) < 2_000
    # A lone surrogate cannot be sent back to the browser: it is refused and shown escaped.
    _, messages, entries, _ = page.respond("When was the \ud800 call?", entries, None)
    assert "invalid Unicode" in messages[3]["content"] and entries[1][0] == "When was the \\ud800 call?"
    json.dumps(messages, ensure_ascii=False).encode("utf-8")
    _, messages, entries, _ = page.respond("Who built the lighthouse?", entries, None)
    assert entries[2][1] is not None and len(messages) == 6


def test_handlers_limit_to_picked_documents(page):
    _, _, entries, _ = page.respond("When was it built?", [], ["volcano.txt"])
    assert {c.doc for c in entries[0][1].citations} == {"volcano.txt"}
    _, messages, entries, _ = page.respond("When was it built?", [], ["gone.txt"])
    assert entries[0][1] is None and "no longer there" in messages[1]["content"]
    update = page.documents_update(["volcano.txt", "gone.txt"])
    assert update["value"] == ["volcano.txt"] and ("The Harbour Lighthouse (Mar 3, 2019)", "lighthouse.md") in update["choices"]


def test_handlers_upload_with_the_api_limits(page, tmp_path):
    doc = tmp_path / "up" / "kiln.txt"
    doc.parent.mkdir()
    doc.write_text("The old kiln\n\nThe old kiln was fired for the last time in 1911 by the potter Jonas Webb.\n", encoding="utf-8")
    status, _ = page.add_files([str(doc)], False, "wrong", None)
    assert "API key" in status and not (page.bot.docs / "kiln.txt").exists()
    status, update = page.add_files([str(doc)], False, "s3cret-key", None)
    assert "Added" in status and (page.bot.docs / "kiln.txt").read_bytes() == doc.read_bytes()
    assert "kiln.txt" in [v for _, v in update["choices"]]
    assert "Jonas Webb" in page.respond("Who fired the old kiln last?", [], None)[1][1]["content"]
    status, _ = page.add_files([str(doc)], False, "s3cret-key", None)
    assert "kiln.txt already exists; tick \u201cReplace same name\u201d to overwrite it" in status
    assert "Added" in page.add_files([str(doc)], True, "s3cret-key", None)[0]
    bad = tmp_path / "up" / "evil.html"
    bad.write_text("<script>alert(1)</script>", encoding="utf-8")
    status, _ = page.add_files([str(bad)], False, "s3cret-key", None)
    assert "Not added" in status and "<script>" not in status
    big = tmp_path / "up" / "big.txt"
    big.write_bytes(b"word " * (1024 * 1024 + 1))
    assert "limit" in page.add_files([str(big)], False, "s3cret-key", None)[0]


def test_page_asks_for_the_key_when_the_api_requires_it(corpus, embedder, tmp_path):
    from fastapi.testclient import TestClient

    from qa.api import Settings, create_app
    from qa.bot import Bot
    from ui.chat import mount_chat

    bot = Bot(corpus, index_dir=tmp_path / "index", embedder=embedder)
    app = mount_chat(create_app(bot, Settings(api_key="s3cret-key", api_key_required=True)), bot)
    # A loopback name: writes (the login is one) addressed to another host name are refused.
    with TestClient(app, base_url="http://localhost") as client:
        assert client.get("/config").status_code == 401
        assert client.post("/login", data={"username": "me", "password": "wrong"}).status_code == 400
        assert client.post("/login", data={"username": "me", "password": "s3cret-key"}).status_code == 200
        config = client.get("/config").json()
        key_box = [c for c in config["components"] if c.get("props", {}).get("elem_id") == "qa-key"]
        assert key_box and key_box[0]["props"]["visible"] is True
        assert client.get("/healthz").json() == {"status": "ok"}


def test_qa_stays_free_of_the_page_and_of_gradio():
    code = ("import sys; import qa.cli, qa.api; qa.cli.build_parser(); "
            "print('gradio' in sys.modules, any(m == 'ui' or m.startswith('ui.') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.split() == ["False", "False"]


def test_qa_serve_mounts_the_chat_page(tmp_path):
    import httpx

    docs = tmp_path / "documents"
    docs.mkdir()
    for f in sorted((ROOT / "documents").glob("*.txt")):
        shutil.copyfile(f, docs / f.name)
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "QA_API_KEY": "", "QA_API_KEY_REQUIRED": ""}
    proc = subprocess.Popen(
        [sys.executable, "-m", "qa.cli", "serve", "--docs", str(docs), "--index", str(tmp_path / "index"), "--port", str(port),
         "--example", "Who made the calls?"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, timeout=90, proc=proc)
        page = httpx.get(f"{url}/", timeout=10)
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        config = httpx.get(f"{url}/config", timeout=10).json()
        assert config["title"] == "Ask the documents"
        assert "Who made the calls?" in json.dumps(config)  # --example reaches the empty chat
        r = httpx.post(f"{url}/api/answer", json={"question": "When was the second call?"}, timeout=30)
        assert r.status_code == 200 and r.json()["citations"]
    finally:
        proc.terminate()
        try:
            out, _ = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
    assert f"{url}/" in out


# ----- the page in a real browser --------------------------------------------------------------
def _browser_ready() -> str | None:
    if not Path(CHROMIUM).exists():
        return f"{CHROMIUM} is missing (apt-get install chromium)"
    try:
        import gradio  # noqa: F401
        import playwright.sync_api  # noqa: F401
    except ImportError as exc:
        return f"{exc.name} is not installed"
    return None


def _require_browser() -> None:
    """Skip without chromium and playwright, or fail when QA_REQUIRE_BROWSER=1 (``make test``)."""
    problem = _browser_ready()
    if problem:
        if os.environ.get("QA_REQUIRE_BROWSER") == "1":
            pytest.fail(f"browser test required but {problem}")
        pytest.skip(problem)


@pytest.fixture(scope="module")
def live(embedder, tmp_path_factory):
    """A real uvicorn server on a free loopback port: the API plus the chat at /."""
    _require_browser()

    from qa.api import Settings, create_app
    from qa.bot import Bot
    from ui.chat import mount_chat

    base = tmp_path_factory.mktemp("ui")
    docs = base / "documents"
    docs.mkdir()
    for f in sorted((ROOT / "documents").glob("*.txt")):
        shutil.copyfile(f, docs / f.name)
    bot = Bot(docs, index_dir=base / "index", embedder=embedder)
    bot.sync()
    with serving(mount_chat(create_app(bot, Settings(rate_limit=0)), bot, examples=("When was the second call?",))) as url:
        yield url, bot


def test_chat_routes_leave_the_api_alone(live):
    import httpx

    url, _ = live
    page = httpx.get(f"{url}/", timeout=10)
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "fonts.googleapis" not in page.text
    assert httpx.get(f"{url}/healthz", timeout=5).json() == {"status": "ok"}
    listed = httpx.get(f"{url}/api/documents", timeout=5).json()["documents"]
    assert {d["id"] for d in listed} >= {f.name for f in (ROOT / "documents").glob("*.txt")}


def test_chat_in_a_real_browser(live, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=EXPECT_TIMEOUT_MS)

    url, bot = live
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    expected = bot.ask("When was the second call?")
    top = expected.citations[0]
    requests: list[str] = []

    def keep_local(route):
        # Record every request; refuse anything that would leave the machine.
        if urlparse(route.request.url).hostname in LOOPBACK or route.request.url.startswith(("data:", "blob:")):
            route.continue_()
        else:
            route.abort()

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            # --- desktop: ask, follow up, upload, limit to the upload, start over ------------
            ctx = browser.new_context(viewport={"width": 1280, "height": 900})
            ctx.set_default_timeout(20_000)
            ctx.route("**/*", keep_local)
            ctx.on("request", lambda r: requests.append(r.url))
            page = ctx.new_page()
            page.goto(url + "/", wait_until="load")
            box = page.locator("#qa-question textarea")
            box.wait_for()
            wired(page)
            replies = page.locator("#qa-chat .qa-reply")
            sources = page.locator("#qa-sources-panel")

            box.fill("When was the second call?")
            box.press("Enter")
            expect(replies).to_have_count(1)
            expect(replies.first).to_contain_text("January 8")
            expect(replies.first.locator(".qa-n").first).to_have_text("[1]")
            expect(replies.first.locator("mark.qa-answer").first).to_have_text(top.text[top.answer_start:top.answer_end])
            expect(sources).to_contain_text(top.title[:40])
            expect(sources).to_contain_text(top.doc)
            expect(sources.locator("mark.qa-sentence").first).to_contain_text(top.text[:40])
            page.wait_for_timeout(300)  # let the scroll to the question settle
            page.screenshot(path=str(ARTIFACTS / "chat-desktop.png"))

            box.fill("And the first one?")
            page.locator("#qa-question button.submit-button").click()  # the Ask button
            expect(replies).to_have_count(2)
            expect(replies.nth(1)).to_contain_text("searched for")
            page.wait_for_timeout(300)
            page.screenshot(path=str(ARTIFACTS / "chat-desktop-follow-up.png"), full_page=True)
            expect(page.locator("#qa-sources-panel .qa-sources-for")).to_contain_text("And the first one?")
            replies.first.click()  # an earlier reply brings its own sources back
            expect(page.locator("#qa-sources-panel .qa-sources-for")).to_contain_text("When was the second call?")

            doc = tmp_path / UPLOAD_NAME
            doc.write_text(UPLOAD_TEXT, encoding="utf-8")
            with page.expect_file_chooser() as chooser:
                page.locator("#qa-upload").click()
            chooser.value.set_files(str(doc))
            expect(page.locator("#qa-status")).to_contain_text("Added", timeout=30_000)
            expect(page.locator("#qa-status")).to_contain_text(UPLOAD_NAME)
            assert (bot.docs / UPLOAD_NAME).read_text(encoding="utf-8") == UPLOAD_TEXT
            picker = page.locator("#qa-picker")
            expect(picker).to_contain_text("The harbour lighthouse of Port Ellis")
            picker.get_by_label("The harbour lighthouse of Port Ellis", exact=False).check()

            box.fill("Who built the harbour lighthouse?")
            box.press("Enter")
            expect(replies).to_have_count(3)
            expect(replies.nth(2)).to_contain_text("Ada Brunel")
            expect(sources).to_contain_text(UPLOAD_NAME)
            cards = sources.locator(".qa-source")
            for i in range(cards.count()):  # the picker limits the answer to the upload
                expect(cards.nth(i)).to_contain_text(UPLOAD_NAME)
            page.screenshot(path=str(ARTIFACTS / "chat-desktop-upload.png"), full_page=True)

            page.locator("#qa-new").click()
            expect(replies).to_have_count(0)
            ctx.close()

            # --- phone width: an example question, nothing wider than the screen ----------
            ctx = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2,
                                      is_mobile=True, has_touch=True)
            ctx.set_default_timeout(20_000)
            ctx.route("**/*", keep_local)
            ctx.on("request", lambda r: requests.append(r.url))
            page = ctx.new_page()
            page.goto(url + "/", wait_until="load")
            page.locator("#qa-question textarea").wait_for()
            wired(page)
            page.locator("#qa-chat button.example", has_text="When was the second call?").click()
            replies = page.locator("#qa-chat .qa-reply")
            expect(replies).to_have_count(1)
            expect(replies.first).to_contain_text("January 8")
            page.wait_for_timeout(300)
            assert page.evaluate("document.documentElement.scrollWidth") <= 390 + 1
            page.screenshot(path=str(ARTIFACTS / "chat-phone.png"))
            page.screenshot(path=str(ARTIFACTS / "chat-phone-full.png"), full_page=True)
            ctx.close()
        finally:
            browser.close()

    assert requests, "no request was recorded"
    away = sorted({u for u in requests if urlparse(u).hostname not in LOOPBACK and not u.startswith(("data:", "blob:"))})
    assert not away, f"requests left the machine: {away[:10]}"


def test_feedback_in_a_real_browser(live):
    """Mark an answer wrong, pick the sentence that answers; `qa eval` then scores that turn."""
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=EXPECT_TIMEOUT_MS)

    from eval import harness

    url, bot = live
    bot.feedback.path.unlink(missing_ok=True)
    expected = bot.ask("When was the second call?")
    picked = expected.citations[1]  # the user says the second quote answers, not the first
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(20_000)
            page.goto(url + "/", wait_until="load")
            wired(page)
            box = page.locator("#qa-question textarea")
            box.fill("When was the second call?")
            box.press("Enter")
            expect(page.locator("#qa-chat .qa-reply")).to_have_count(1)
            page.locator("#qa-fb-wrong").click()
            choices = page.locator("#qa-fb-pick label")
            expect(choices.last).to_contain_text("The documents do not answer this")
            expect(choices.nth(1)).to_contain_text(picked.text[:40])
            choices.nth(1).click()
            page.locator("#qa-fb-send").click()
            expect(page.locator("#qa-fb-status")).to_contain_text("saved")
            expect(page.locator("#qa-fb-send")).to_be_hidden()
            page.screenshot(path=str(ARTIFACTS / "chat-feedback.png"), full_page=True)
            # The sentences offered belong to one answer: a new question takes them away.
            page.locator("#qa-fb-wrong").click()
            expect(page.locator("#qa-fb-send")).to_be_visible()
            box.fill("Who did Milley call?")
            box.press("Enter")
            expect(page.locator("#qa-chat .qa-reply")).to_have_count(2)
            expect(page.locator("#qa-fb-send")).to_be_hidden()
            expect(page.locator("#qa-fb-pick")).to_be_hidden()
        finally:
            browser.close()
    (record,) = bot.feedback.records()
    assert record["feedback"]["verdict"] == "wrong"
    conversations = harness.load_set(bot.feedback.path)
    (result,) = harness.run(bot, conversations)
    assert result.gold.question == "When was the second call?"
    assert result.gold.evidence == ({"doc": picked.doc, "start": picked.start, "end": picked.end},)
    # The bot still quotes its first sentence first, which the user said is wrong: a miss.
    assert result.answer.citations[0].start == expected.citations[0].start and not result.hit


def test_upload_with_the_key_in_a_real_browser(embedder, tmp_path):
    """With QA_API_KEY set, the key typed in the page lets its uploads through Gradio's upload
    route (which the API's guard holds to the same key)."""
    _require_browser()
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=EXPECT_TIMEOUT_MS)

    from qa.api import Settings, create_app
    from qa.bot import Bot
    from ui.chat import mount_chat

    docs = tmp_path / "documents"
    docs.mkdir()
    for f in sorted((ROOT / "documents").glob("*.txt")):
        shutil.copyfile(f, docs / f.name)
    bot = Bot(docs, index_dir=tmp_path / "index", embedder=embedder)
    doc = tmp_path / UPLOAD_NAME
    doc.write_text(UPLOAD_TEXT, encoding="utf-8")
    with serving(mount_chat(create_app(bot, Settings(rate_limit=0, api_key="s3cret-key")), bot)) as url, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.set_default_timeout(20_000)
            page.goto(url + "/", wait_until="load")
            page.locator("#qa-question textarea").wait_for()
            wired(page)
            page.locator("#qa-key input").fill("s3cret-key")
            page.locator("#qa-key input").press("Tab")
            with page.expect_file_chooser() as chooser:
                page.locator("#qa-upload").click()
            chooser.value.set_files(str(doc))
            expect(page.locator("#qa-status")).to_contain_text("Added", timeout=30_000)
        finally:
            browser.close()
    assert (docs / UPLOAD_NAME).read_text(encoding="utf-8") == UPLOAD_TEXT


def test_pdf_citation_shows_its_page_highlighted_in_a_real_browser(embedder, tmp_path):
    """A question over a PDF: the sources panel shows the cited page as an image, and the
    highlight is drawn on it where the sentence's boxes are, at desktop and phone width."""
    _require_browser()
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=EXPECT_TIMEOUT_MS)

    from qa.api import Settings, create_app
    from qa.bot import Bot
    from ui.chat import mount_chat

    docs = tmp_path / "documents"
    docs.mkdir()
    shutil.copyfile(DATA / "report.pdf", docs / "report.pdf")
    for f in sorted((ROOT / "documents").glob("*.txt")):
        shutil.copyfile(f, docs / f.name)
    bot = Bot(docs, index_dir=tmp_path / "index", embedder=embedder)
    question = "Who built the lighthouse of Port Ellis?"
    with serving(mount_chat(create_app(bot, Settings(rate_limit=0)), bot)) as url, sync_playwright() as pw:
        top = bot.ask(question).citations[0]
        assert top.doc == "report.pdf" and top.page == 1
        height = float(bot.layout("report.pdf").sizes[0][1])
        _, x0, y0, x1, y1 = top.boxes[0]
        at = ((x0 + x1) / 2 * 2, (height - y0 - 1) * 2)  # low in the first line, in image pixels (scale 2)
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            for name, viewport in (("desktop", {"width": 1280, "height": 900}), ("phone", {"width": 390, "height": 844})):
                page = browser.new_page(viewport=viewport)
                page.set_default_timeout(20_000)
                page.goto(url + "/", wait_until="load")
                box = page.locator("#qa-question textarea")
                box.wait_for()
                wired(page)
                box.fill(question)
                box.press("Enter")
                figure = page.locator("#qa-sources-panel .qa-page").first
                expect(figure).to_contain_text("page 1")
                img = figure.locator("img")
                img.scroll_into_view_if_needed()
                page.wait_for_function("(img) => img.complete && img.naturalWidth > 0", arg=img.element_handle())
                shown = img.bounding_box()
                assert shown and 0 < shown["width"] <= viewport["width"]
                rgb = page.evaluate(
                    """([img, x, y]) => { const c = document.createElement('canvas');
                        c.width = img.naturalWidth; c.height = img.naturalHeight;
                        const g = c.getContext('2d'); g.drawImage(img, 0, 0);
                        return Array.from(g.getImageData(Math.round(x), Math.round(y), 1, 1).data).slice(0, 3); }""",
                    [img.element_handle(), *at])
                assert rgb[0] >= 190 and rgb[2] < 170, rgb  # a highlight (the sentence's yellow or the answer's orange), not white paper or black ink
                assert figure.locator("a", has_text="full size").get_attribute("href") == img.get_attribute("src")
                ARTIFACTS.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(ARTIFACTS / f"chat-pdf-{name}.png"), full_page=True)
                assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"] + 1
                page.close()
        finally:
            browser.close()


def test_right_to_left_text_keeps_to_itself_in_the_reply_and_sources():
    """An Arabic sentence pulled the closing quote and the title's dash into its own run: the
    title was drawn to the left of the quote. Sentences, titles and answers are isolated."""
    doc = Document("ar.txt", "مكتبة الإسكندرية", None, "مكتبة الإسكندرية\n\nافتتحت المكتبة في عام 2002.\n")
    s = doc.text.index("افتتحت")
    a = doc.text[s:].index("2002")
    c = _cite(doc, s, len(doc.text) - 1, answer=(a, a + 4))
    reply = render_reply(Answer("q", "q", False, "2002", 0.9, (c,)))
    assert "\u201c<bdi>افتتحت" in reply and ".</bdi>\u201d" in reply
    assert "\u2014 <bdi>مكتبة الإسكندرية</bdi>" in reply and "<bdi><strong>2002</strong></bdi>" in reply
    sources = render_sources(Answer("q", "q", False, "2002", 0.9, (c,)), {doc.id: doc}.get)
    assert '<span class="qa-title" dir="auto">' in sources and '<p class="qa-para" dir="auto">' in sources


def test_reply_cuts_an_overlong_sentence_around_its_answer():
    """A 16,000-character sentence was quoted whole in the reply (a chat message 5,000 px high);
    the reply shows the answer in some context, the sources panel the whole sentence."""
    long = "The report, " + ", ".join(f"clause {i} about the wall" for i in range(600)) + ", was signed by Ruth Adler."
    doc = Document("long.txt", "Long", None, "Long\n\n" + long + "\n")
    s = doc.text.index("The report")
    a = long.index("Ruth Adler")
    c = _cite(doc, s, s + len(long), answer=(a, a + 10))
    reply = render_reply(Answer("Who signed?", "Who signed?", False, "Ruth Adler", 0.8, (c,)))
    assert len(reply) < 2_000 and "\u201c<bdi>\u2026 " in reply
    assert '<mark class="qa-answer">Ruth Adler</mark> was signed' not in reply
    assert 'signed by <mark class="qa-answer">Ruth Adler</mark>.</bdi>' in reply
    missed = render_reply(Answer("q", "q", True, None, 0.1, (c,)))
    assert len(missed) < 2_000 and "The report, clause 0" in missed and " \u2026</bdi>" in missed
    sources = render_sources(Answer("Who signed?", "Who signed?", False, "Ruth Adler", 0.8, (c,)), {doc.id: doc}.get)
    assert "clause 300 about the wall" in sources  # the panel, where it can be checked, has all of it


def test_a_closest_match_is_not_highlighted_when_its_document_changed():
    s = DOC.text.index("The call")
    c = _cite(DOC, s, s + 22, answer=(16, 21))
    gone = render_sources(Answer("q", "q", True, None, 0.1, (c,)), {}.get)
    assert "has changed" in gone and "qa-answer" not in gone


def test_question_box_is_locked_while_answering_in_a_real_browser(live, monkeypatch):
    """A question typed while the last one was answered was wiped by the reply (which clears the
    box), and its Enter was dropped: the box is locked until the reply, then empty and open. The
    picker, an output of the answer too, is not covered by its progress box: it can be ticked meanwhile."""
    import time

    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=EXPECT_TIMEOUT_MS)
    url, bot = live
    ask = bot.ask

    def slow_ask(*args, **kwargs):
        time.sleep(3)
        return ask(*args, **kwargs)

    monkeypatch.setattr(bot, "ask", slow_ask)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page, box = open_chat(browser, url)
            tick = page.locator("#qa-picker input[type=checkbox]").first
            tick.wait_for()
            box.fill("When was the second call?")
            box.press("Enter")
            expect(box).to_be_disabled(timeout=1_500)
            tick.click(timeout=1_500)
            expect(page.locator("#qa-chat .qa-reply")).to_have_count(1)
            expect(tick).to_be_checked()
            expect(box).to_be_enabled()
            expect(box).to_have_value("")
            box.fill("typed after the reply")
            page.wait_for_timeout(500)
            expect(box).to_have_value("typed after the reply")
        finally:
            browser.close()


def test_the_page_says_when_there_are_no_documents_and_keeps_the_apis_turn_limit(page, embedder, tmp_path):
    """An empty folder answered "I could not find this in the documents"; the page passed 20
    earlier turns whatever QA_MAX_TURNS said, so it could read a follow-up unlike the API."""
    from qa.bot import Bot
    from ui.chat import ChatPage

    (tmp_path / "empty").mkdir()
    empty = ChatPage(Bot(tmp_path / "empty", index_dir=tmp_path / "empty-index", embedder=embedder), max_turns=1)
    box, messages, entries, _ = empty.respond("Who built the lighthouse?", [], None)
    assert "no documents to search yet" in messages[1]["content"] and entries[0][1] is None
    assert box == {"__type__": "update"}  # the question stays in the box for when there are some

    seen: list[int] = []
    ask = page.bot.ask

    def counting(question, history=(), **kwargs):
        seen.append(len(history))
        return ask(question, history=history, **kwargs)

    page.bot.ask = counting
    page.max_turns = 1
    entries = []
    for q in ("Who built the lighthouse?", "And when?", "Where is it?"):
        _, _, entries, _ = page.respond(q, entries, None)
    assert seen[-1] == 1 and ChatPage(page.bot).max_turns == 20  # QA_MAX_TURNS's default


def test_a_year_answer_is_not_shown_twice():
    s = DOC.text.index("The call")
    reply = render_reply(Answer("In what year?", "In what year?", False, "2021", 0.8, (_cite(DOC, s, s + 22),),
                                answer_date="2021"))
    assert 'class="qa-date"' not in reply


def test_the_page_waits_for_the_servers_index_instead_of_starting_its_own(corpus, embedder, tmp_path):
    """`qa serve` indexes in the API's warm-up while it already serves the page: a page opened
    then started a second, unstoppable index of its own behind the first (written even after
    Ctrl-C had stopped the first). Until the warm-up is done the page says so and reads nothing."""
    from qa.bot import Bot
    from ui.chat import ChatPage

    ready = False
    page = ChatPage(Bot(corpus, index_dir=tmp_path / "index", embedder=embedder), ready=lambda: ready)
    (tmp_path / "new.txt").write_text("Herons nest in the reeds by the lake.\n", encoding="utf-8")
    assert "still being indexed" in page.documents_update([])["info"]
    _, messages, entries, _ = page.respond("Who built the lighthouse?", [], None)
    assert "still being indexed" in messages[1]["content"] and entries[0][1] is None
    status, _ = page.add_files([str(tmp_path / "new.txt")], False, None, None)
    assert "still being indexed" in status
    assert page.bot._index is None and not (tmp_path / "index" / "CURRENT").exists()
    ready = True
    _, messages, entries, _ = page.respond("Who built the lighthouse?", [], None)
    assert entries[0][1] is not None and "lighthouse.md" in [doc for _, doc in page.documents_update([])["choices"]]


def test_paragraph_bounds_with_classic_mac_line_ends():
    """Lone CRs end lines as the segmenter reads them: the panel shows the cited paragraph, not all."""
    for nl in ("\r", "\r\n", "\n"):
        text = nl.join(["Mill Notes", "", "The mill was built in 1788.", "Its wheel stopped in 1931.", "",
                        "The granary burned in 1902.", ""])
        s = text.index("Its wheel")
        para = text[slice(*paragraph_bounds(text, s, s + 26))]
        assert para == f"The mill was built in 1788.{nl}Its wheel stopped in 1931."


def test_after_a_reply_the_box_has_focus_and_the_picker_knows_other_pages_uploads_in_a_real_browser(live, tmp_path):
    """The box, locked while answering, lost focus for good: typed keys after a reply went nowhere.
    A page opened before another page's upload never listed the new document in its picker."""
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=EXPECT_TIMEOUT_MS)
    url, bot = live
    doc = tmp_path / "kiln.txt"
    doc.write_text("The old kiln\n\nThe old kiln was fired for the last time in 1911 by the potter Jonas Webb.\n", encoding="utf-8")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            pages = []
            for _ in range(2):
                page, _ = open_chat(browser, url)
                pages.append(page)
            first, second = pages
            with first.expect_file_chooser() as chooser:
                first.locator("#qa-upload").click()
            chooser.value.set_files(str(doc))
            expect(first.locator("#qa-status")).to_contain_text("Added", timeout=30_000)
            box = second.locator("#qa-question textarea")
            box.click()
            second.keyboard.type("Who fired the old kiln last?")
            second.keyboard.press("Enter")
            expect(second.locator("#qa-chat .qa-reply")).to_have_count(1)
            expect(second.locator("#qa-chat .qa-reply").first).to_contain_text("Jonas Webb")
            expect(box).to_be_focused()
            second.keyboard.type("And when?")
            expect(box).to_have_value("And when?")
            expect(second.locator("#qa-picker")).to_contain_text("The old kiln")
        finally:
            browser.close()


def test_a_long_unbroken_word_keeps_the_page_within_a_phone_in_a_real_browser(live):
    """A question holding a long URL stretched the page to 1,180 px at 375 px wide (the chat, its
    box and buttons cut off), and the sources panel's heading ran out of its card."""
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=EXPECT_TIMEOUT_MS)
    url, _ = live
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page, box = open_chat(browser, url, viewport={"width": 375, "height": 740})
            box.fill("When was the second call https://example.org/" + "x" * 300 + " ?")
            box.press("Enter")
            expect(page.locator("#qa-chat .qa-reply")).to_have_count(1)
            heading = page.locator("#qa-sources-panel .qa-sources-for")
            expect(heading).to_contain_text("example")
            assert page.evaluate("document.documentElement.scrollWidth") <= 376
            assert heading.evaluate("e => e.scrollWidth <= e.clientWidth + 1")
        finally:
            browser.close()



def test_the_kept_conversation_reads_back_and_anything_else_is_dropped(page):
    """What the tab keeps for a reload: the same entries back (answers rebuilt and checked as the
    API checks a client's history), the oldest left out to fit, a garbled value refused."""
    from ui.chat import dump_conversation, load_conversation

    _, _, entries, _ = page.respond("Who built the lighthouse?", [], None)
    entries = entries + [("x" * 50, None, "That question is too long.")]
    saved = dump_conversation(entries, ["lighthouse.txt"])
    restored, picked = load_conversation(saved)
    plain = lambda es: [(q, a and a.to_dict(), e) for q, a, e in es]  # noqa: E731 (the JSON rounds scores)
    assert plain(restored) == plain(entries) and picked == ["lighthouse.txt"]
    assert dump_conversation([], None) == ""
    one = len(dump_conversation(entries[:1]))
    assert plain(load_conversation(dump_conversation(entries * 3, limit=one + 10))[0]) == plain(entries[-1:])
    for bad in ("garbage", "[]", '{"v": 0, "entries": []}', '{"v": 1, "entries": [{"question": "q", "answer": 3}]}',
                '{"v": 1, "entries": [{"question": "q", "answer": {"question": "q", "citations": [{"doc": 1}]}}]}'):
        with pytest.raises(ValueError):
            load_conversation(bad)
    picker, messages, restored, _ = page.restore([], "garbage")
    assert (messages, restored) == ([], [])


def test_the_conversation_survives_a_reload_in_a_real_browser(live):
    """Reloading the page (F5, a phone reloading a background tab) emptied the chat, and the next
    follow-up was asked without its history. The tab keeps it (sessionStorage, never the key)."""
    from playwright.sync_api import expect, sync_playwright

    from qa.bot import Turn

    expect.set_options(timeout=EXPECT_TIMEOUT_MS)
    url, bot = live
    first = bot.ask("When was the second call?")
    follow = bot.ask("And the first one?", history=[Turn(first.question, first)])
    assert follow.searched_for != "And the first one?"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()

            def reload() -> None:
                page.reload(wait_until="load")
                page.locator("#qa-question textarea").wait_for()
                wired(page)

            page.goto(url + "/", wait_until="load")
            box = page.locator("#qa-question textarea")
            box.wait_for()
            wired(page)
            replies = page.locator("#qa-chat .qa-reply")
            box.fill("When was the second call?")
            box.press("Enter")
            expect(replies).to_have_count(1)
            expect(replies.first).to_contain_text("January 8")
            page.locator("#qa-picker").get_by_label(first.citations[0].title[:30], exact=False).check()
            # The tick is kept too (after the answer): wait until the tab holds it.
            page.wait_for_function("doc => Object.values(sessionStorage).some(v => (JSON.parse(v).picked || []).includes(doc))",
                                   arg=first.citations[0].doc)

            reload()
            expect(replies).to_have_count(1)
            expect(replies.first).to_contain_text("January 8")
            expect(page.locator("#qa-sources-panel .qa-sources-for")).to_contain_text("When was the second call?")
            expect(page.locator("#qa-picker input:checked")).to_have_count(1)
            box.fill("And the first one?")
            box.press("Enter")
            expect(replies).to_have_count(2)
            expect(replies.nth(1)).to_contain_text(f"searched for: \u201c{follow.searched_for}\u201d")
            assert page.evaluate("localStorage.length") == 0  # nothing outlives the tab

            # Another tab has its own conversation; a garbled kept value leaves the page usable.
            from ui.chat import SAVED_KEY

            key = json.dumps(SAVED_KEY)
            other, _ = open_chat(browser, url)
            expect(other.locator("#qa-chat .qa-reply")).to_have_count(0)
            other.close()
            for bad in ("garbage", '{"v": 1, "entries": [{"question": "q", "answer": {"citations": 5}}]}'):
                page.evaluate(f"sessionStorage.setItem({key}, {json.dumps(bad)})")
                reload()
                expect(replies).to_have_count(0)
            box.fill("When was the second call?")
            box.press("Enter")
            expect(replies).to_have_count(1)

            # "New conversation" forgets the kept one too, but not the ticks, which stay on the page.
            page.locator("#qa-picker").get_by_label(first.citations[0].title[:30], exact=False).check()
            page.wait_for_function("doc => Object.values(sessionStorage).some(v => (JSON.parse(v).picked || []).includes(doc))",
                                   arg=first.citations[0].doc)
            page.locator("#qa-new").click()
            expect(replies).to_have_count(0)
            page.wait_for_function(f"(s => s !== null && JSON.parse(s).entries.length === 0 && JSON.parse(s).picked.length === 1)"
                                   f"(sessionStorage.getItem({key}))")
            reload()
            expect(replies).to_have_count(0)
            expect(page.locator("#qa-picker input:checked")).to_have_count(1)
            page.locator("#qa-picker input:checked").uncheck()
            page.locator("#qa-new").click()
            page.wait_for_function(f"sessionStorage.getItem({key}) === null")
        finally:
            browser.close()


# WCAG contrast of the text each element draws itself, over the colours it is drawn on (flattened
# down to the page's background): [selector, ratio, text] for every visible element of the page's own.
CONTRAST_JS = """() => {
  const rgba = s => { const v = s.match(/[\\d.]+/g).map(Number); return v.length === 3 ? [...v, 1] : v; };
  const lum = c => { const f = x => { x /= 255; return x <= 0.03928 ? x / 12.92 : ((x + 0.055) / 1.055) ** 2.4; };
                     return 0.2126 * f(c[0]) + 0.7152 * f(c[1]) + 0.0722 * f(c[2]); };
  const over = (top, base) => base.map((b, i) => top[i] * top[3] + b * (1 - top[3]));
  const page = rgba(getComputedStyle(document.body).backgroundColor);
  const under = e => { const layers = [];
    for (let n = e; n; n = n.parentElement) { const c = rgba(getComputedStyle(n).backgroundColor);
      if (c[3] > 0) { layers.push(c); if (c[3] >= 1) break; } }
    return layers.reverse().reduce((base, c) => over(c, base), page.slice(0, 3)); };
  const out = [];
  for (const e of document.querySelectorAll('[class*="qa-"], #qa-header p, .qa-reply strong')) {
    if (!e.getClientRects().length || ![...e.childNodes].some(n => n.nodeType === 3 && n.textContent.trim())) continue;
    const bg = under(e), fg = over(rgba(getComputedStyle(e).color), bg);
    const [hi, lo] = [lum(fg), lum(bg)].sort((a, b) => b - a);
    out.push([e.tagName.toLowerCase() + '.' + [...e.classList].join('.'), (hi + 0.05) / (lo + 0.05), e.textContent.trim().slice(0, 40)]);
  }
  return out; }"""


def test_the_pages_own_text_is_readable_in_light_and_dark_in_a_real_browser(live):
    """The theme's subdued grey (slate-400) that the page used for the confidence, the quoted
    document's name, the sources' details and the hints read 2.5:1 on white; the [1] numbers 3.5:1;
    on the dark theme "Thank you: saved" 3.8:1. Every text of the page's own is at least 4.5:1."""
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=EXPECT_TIMEOUT_MS)
    url, _ = live
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            for scheme in ("light", "dark"):
                page, box = open_chat(browser, url, color_scheme=scheme)
                replies = page.locator("#qa-chat .qa-reply")
                for n, question in enumerate(("When was the second call?", "Where is the Eiffel Tower?"), start=1):
                    box.fill(question)
                    box.press("Enter")
                    expect(replies).to_have_count(n)
                page.locator("#qa-fb-right").click()
                expect(page.locator("#qa-fb-status .qa-fb-done")).to_be_visible()
                checked = page.evaluate(CONTRAST_JS)
                drawn = {name.split(".")[1] if "." in name else name for name, _, _ in checked}
                assert {"qa-conf", "qa-src", "qa-n", "qa-meta", "qa-sources-for", "qa-closest", "qa-fb-done", "qa-hint"} <= drawn
                low = [(name, round(ratio, 2), text) for name, ratio, text in checked if ratio < 4.5]
                assert not low, f"{scheme}: {low}"
                page.close()
        finally:
            browser.close()


def test_keyboard_and_screen_reader_use_in_a_real_browser(live):
    """Asked and marked with the keyboard alone. The question box and the checkboxes showed no
    focus at all (the theme removes the outline); the sources panel had no headings to move by;
    "Pick the sentence …" and "Thank you: saved" appeared where a screen reader never read them."""
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=EXPECT_TIMEOUT_MS)
    url, bot = live
    bot.feedback.path.unlink(missing_ok=True)

    def ring(locator) -> bool:
        return locator.evaluate("e => e === document.activeElement && getComputedStyle(e).outlineStyle !== 'none'"
                                " && parseFloat(getComputedStyle(e).outlineWidth) >= 2")

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page, box = open_chat(browser, url, viewport={"width": 1280, "height": 900})
            assert page.evaluate("document.documentElement.lang") == "en"
            page.locator("#qa-header p").click()
            page.keyboard.press("Tab")  # the example question, then the box
            page.keyboard.press("Tab")
            expect(box).to_be_focused()
            assert ring(box), "the focused question box shows no focus ring"
            page.keyboard.type("When was the second call?")
            page.keyboard.press("Enter")
            expect(page.locator("#qa-chat .qa-reply")).to_have_count(1)
            # The reply lands in the chat's live log, so it is read out.
            expect(page.locator("#qa-chat [role=log][aria-live=polite] .qa-reply")).to_have_count(1)
            panel = page.locator("#qa-sources-panel")
            expect(panel.get_by_role("heading", level=2)).to_contain_text("Sources for \u201cWhen was the second call?\u201d")
            expect(panel.get_by_role("heading", level=3)).to_have_count(panel.locator(".qa-source").count())

            expect(box).to_be_focused()
            for _ in range(4):  # Ask, New conversation, right, wrong
                page.keyboard.press("Tab")
            expect(page.locator("#qa-fb-wrong")).to_be_focused()
            page.keyboard.press("Enter")
            status = page.get_by_role("status").filter(has_text="Pick the sentence that answers the question")
            expect(status).to_be_visible()
            page.locator("#qa-fb-send").focus()
            page.keyboard.press("Enter")  # sent before picking: told what to do, out loud
            expect(page.get_by_role("status").filter(has_text="Pick the sentence that answers, or")).to_be_visible()
            first = page.locator("#qa-fb-pick input").first
            first.focus()
            assert ring(first), "the focused radio button shows no focus ring"
            page.keyboard.press("Space")
            expect(first).to_be_checked()
            page.locator("#qa-fb-send").focus()
            page.keyboard.press("Enter")
            expect(page.get_by_role("status").filter(has_text="Thank you: saved")).to_be_visible()

            tick = page.locator("#qa-picker input[type=checkbox]").first
            tick.focus()
            page.keyboard.press("Shift+Tab")
            page.keyboard.press("Tab")  # focused by the keyboard, as :focus-visible needs
            assert ring(tick), "the focused checkbox shows no focus ring"
            page.keyboard.press("Space")
            expect(tick).to_be_checked()
        finally:
            browser.close()
    assert len(bot.feedback.records()) == 1


def test_an_earlier_replys_sources_come_back_by_keyboard_in_a_real_browser(live):
    """A click on an earlier reply brings its sources back, but no reply took focus: with the
    keyboard alone the panel held the last answer's sources for good, and a screen reader named
    each reply by its HTML source ("bot's message: <div class=…")."""
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=EXPECT_TIMEOUT_MS)
    url, _ = live
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page, box = open_chat(browser, url, viewport={"width": 1280, "height": 900})
            replies = page.locator("#qa-chat .qa-reply")
            for n, question in enumerate(("When was the second call?", "Who did Milley call?"), start=1):
                box.fill(question)
                box.press("Enter")
                expect(replies).to_have_count(n)
            heading = page.locator("#qa-sources-panel .qa-sources-for")
            expect(heading).to_contain_text("Who did Milley call?")
            expect(box).to_be_focused()
            page.keyboard.press("Shift+Tab")  # the last reply, then the one before
            page.keyboard.press("Shift+Tab")
            first = page.locator("#qa-chat [data-testid=bot]").first
            expect(first).to_be_focused()
            label = first.get_attribute("aria-label") or ""
            assert label.startswith("Reply 1 (Enter shows its sources): ") and "<" not in label
            assert "confidence" in label and "[1]" in label
            assert first.evaluate("e => getComputedStyle(e).outlineStyle") != "none"
            page.keyboard.press("Enter")
            expect(heading).to_contain_text("When was the second call?")
            page.keyboard.press("Tab")
            page.keyboard.press(" ")
            expect(heading).to_contain_text("Who did Milley call?")
        finally:
            browser.close()


def test_a_conversation_kept_in_the_tab_comes_back_during_the_warm_up_without_an_index(page, corpus, embedder, tmp_path):
    """A reload while the server still brought its index up to date restored the conversation by
    looking its documents up: the page built an index of its own beside the warm-up's (as would a
    click on the restored reply, or a mark on it)."""
    from qa.bot import Bot
    from ui.chat import ChatPage, dump_conversation

    _, _, entries, _ = page.respond("Who built the lighthouse?", [], None)
    assert entries[0][1].citations
    saved = dump_conversation(entries, ["lighthouse.md"])
    fresh = Bot(corpus, index_dir=tmp_path / "fresh-index", embedder=embedder)
    warming = ChatPage(fresh, ready=lambda: False)
    _, messages, restored, sources = warming.restore([], saved)
    assert len(messages) == 2 and "Who built the lighthouse?" in messages[0]["content"] and len(restored) == 1
    assert "Sources appear here" in sources  # the panel waits for the index
    warming.sources_of(restored, 1)
    status, _, _ = warming.send_feedback("right", None, restored, None, None)
    assert "Not saved" in status and "indexed" in status
    warming.respond("Who designed it?", restored, None)
    assert fresh._index is None and not (tmp_path / "fresh-index" / "CURRENT").exists()


def test_a_page_upload_behind_a_long_write_says_to_try_again(page, tmp_path, monkeypatch):
    """Writers wait for each other a bounded time now: a page upload behind a long write was told
    "the files could not be stored; the server log has the details" (and the log got a traceback)."""
    import threading

    bot = page.bot
    bot.writer_wait_s = 0.3
    writing, finish = pause_writes(monkeypatch, bot)
    long_write = threading.Thread(target=lambda: bot.add_documents([("first.txt", b"First\n\nThe first note.\n", None)]))
    long_write.start()
    try:
        assert writing.wait(30)
        f = tmp_path / "zebra.txt"
        f.write_text("Zebras\n\nZebras have black and white stripes.\n", encoding="utf-8")
        status, _ = page.add_files([str(f)], False, "s3cret-key", None)
    finally:
        finish.set()
        long_write.join(60)
    assert "try again when it is done" in status and "server log" not in status, status
    assert "zebra.txt" not in bot.index.doc_ids and "first.txt" in bot.index.doc_ids
