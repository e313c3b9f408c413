"""The answer API, served by a real uvicorn on a loopback port, with the real model and bot."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st
from hypothesis.errors import Unsatisfiable

from conftest import DATA, ROOT
from servers import KEY, ZEBRA, Server, serving, serving_copy

from eval.loadcheck import free_port, wait_ready
from index.build import MAX_SENTENCES
from qa.api import Conversations, RateLimiter, Settings, create_app
from qa.bot import Bot
from qa.ingest import MAX_DOCUMENT_BYTES

OPEN = Settings(rate_limit=0)
ANSWER_KEYS = {"question", "searched_for", "abstained", "answer", "confidence", "citations", "timings_ms"}
# Present when they apply (GUIDE.md): a date answer's ISO date, other documents' quotes.
OPTIONAL_KEYS = {"answer_date", "corroboration"}


@pytest.fixture
def start(embedder, tmp_path):
    """Factory: start a server over a fresh copy of the test corpus with the given settings."""
    with contextlib.ExitStack() as stack:
        def _start(settings: Settings = OPEN, corpus: Path | None = None) -> Server:
            n = len(list(tmp_path.glob("corpus*")))
            if corpus is None:
                corpus = tmp_path / f"corpus{n}"
                shutil.copytree(DATA / "corpus", corpus)
            bot = Bot(corpus, index_dir=tmp_path / f"index{n}", embedder=embedder)
            bot.sync()
            url = stack.enter_context(serving(create_app(bot, settings)))
            client = stack.enter_context(httpx.Client(base_url=url, timeout=60))
            return Server(url, client, bot, corpus)

        yield _start


@pytest.fixture(scope="module")
def ro(embedder, tmp_path_factory):
    """One server for the read-only tests (documents are never changed through it)."""
    with serving_copy(embedder, tmp_path_factory.mktemp("api-ro"), Settings(rate_limit=0, api_key=KEY)) as server:
        yield server


def visible_files(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    }


def assert_verbatim(answer: dict, texts: dict[str, str]) -> None:
    assert ANSWER_KEYS <= set(answer) <= ANSWER_KEYS | OPTIONAL_KEYS
    for c in answer["citations"]:
        assert texts[c["doc"]][c["start"]:c["end"]] == c["text"]
        if "answer_start" in c:
            assert 0 <= c["answer_start"] < c["answer_end"] <= len(c["text"])
    for c in answer.get("corroboration", []):
        assert texts[c["doc"]][c["start"]:c["end"]] == c["text"]
        assert c["text"][c["answer_start"]:c["answer_end"]] == c["answer"]
        assert c["doc"] != answer["citations"][0]["doc"]


def corpus_texts(folder: Path) -> dict[str, str]:
    return {k: v.decode("utf-8") for k, v in visible_files(folder).items()}


# ----- the happy path and the probes -----------------------------------------------------------
def test_answer_happy_path(ro):
    r = ro.client.post("/api/answer", json={"question": "Who built the harbour lighthouse?"})
    assert r.status_code == 200, r.text
    a = r.json()
    assert not a["abstained"] and "Margaret Hale" in a["answer"]
    assert a["citations"][0]["doc"] == "lighthouse.md"
    assert_verbatim(a, corpus_texts(ro.corpus))
    assert r.headers["x-content-type-options"] == "nosniff"
    r = ro.client.post("/api/answer", json={"question": "Who built the harbour lighthouse?", "docs": ["volcano.txt"], "top_k": 1})
    assert r.status_code == 200 and all(c["doc"] == "volcano.txt" for c in r.json()["citations"])
    assert len(r.json()["citations"]) <= 1


def test_probes_openapi_and_documents(ro):
    assert ro.client.get("/healthz").json() == {"status": "ok"}
    r = ro.client.get("/readyz")
    assert r.status_code == 200 and r.json()["documents"] == 3
    # No Swagger UI or ReDoc pages: they load their scripts from a CDN (/openapi.json stays).
    assert ro.client.get("/docs").status_code == 404 and ro.client.get("/redoc").status_code == 404
    spec = ro.client.get("/openapi.json").json()
    assert {"/api/answer", "/api/documents", "/api/documents/{doc}"} <= set(spec["paths"])
    docs = {d["id"]: d for d in ro.client.get("/api/documents").json()["documents"]}
    assert set(docs) == {"lighthouse.md", "volcano.txt", "notes/bees.txt"}
    light = docs["lighthouse.md"]
    assert light["title"] == "The Harbour Lighthouse" and light["date"] == "2019-03-03"
    assert light["size"] == (ro.corpus / "lighthouse.md").stat().st_size
    a, b = ro.bot.index.doc_sentences(ro.bot.index.doc_pos["lighthouse.md"])
    assert light["sentences"] == b - a > 0
    assert ro.client.get("/").status_code == 404  # "/" stays free for the chat page


def test_not_ready_answers_503(embedder, tmp_path):
    bot = Bot(tmp_path / "no-such-folder", index_dir=tmp_path / "ix", embedder=embedder)
    with serving(create_app(bot, OPEN), wait=False) as url:
        deadline = time.monotonic() + 10
        while (r := httpx.get(f"{url}/readyz")).json().get("detail") == "loading the index" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert r.status_code == 503 and "does not exist" in r.json()["detail"]
        assert httpx.get(f"{url}/healthz").status_code == 200
        r = httpx.post(f"{url}/api/answer", json={"question": "anything?"})
        assert r.status_code == 503 and r.headers["retry-after"]


# ----- bad input: a clear 4xx, never a 5xx ------------------------------------------------------
BAD_ANSWER_BODIES = [
    ('{"question": "Who built', 400, "malformed JSON"),
    ("", 422, "body is empty"),
    ("[]", 422, "JSON object"),
    ('"Who built the lighthouse?"', 422, "JSON object"),
    ("{}", 422, "question: Field required"),
    ('{"question": ""}', 422, "empty"),
    ('{"question": "   \\n\\t "}', 422, "empty"),
    (json.dumps({"question": "why " * 501}), 422, "limit is 2000"),
    ('{"question": 42}', 422, "valid string"),
    ('{"question": null}', 422, "valid string"),
    ('{"question": "\\ud800?"}', 422, "Unicode"),
    ('{"question": "why", "top_k": 0}', 422, "top_k"),
    ('{"question": "why", "top_k": 11}', 422, "top_k"),
    ('{"question": "why", "top_k": "many"}', 422, "top_k"),
    ('{"question": "why", "top_k": NaN}', 422, "top_k"),
    ('{"question": "why", "top_k": 3.5}', 422, "top_k"),
    ('{"question": "why", "docs": "lighthouse.md"}', 422, "docs"),
    ('{"question": "why", "docs": []}', 422, "docs"),
    ('{"question": "why", "docs": ["nope.txt"]}', 404, "nope.txt"),
    ('{"question": "why", "docs": ["lighthouse.md", "../etc/passwd"]}', 404, "passwd"),
    ('{"question": "why", "history": [{"question": "x"}]}', 422, "history.0.answer"),
    ('{"question": "why", "history": "none"}', 422, "history"),
    ('{"question": "why", "history": [], "conversation_id": "c1"}', 422, "not both"),
    ('{"question": "why", "conversation_id": "a b/../c"}', 422, "conversation_id"),
    ('{"question": "why", "colour": "blue"}', 422, "colour"),
]


@pytest.mark.parametrize("body,status,message", BAD_ANSWER_BODIES)
def test_bad_questions_get_a_clear_4xx(ro, body, status, message):
    headers = {"content-type": "application/json"} if body else {}
    r = ro.client.post("/api/answer", content=body.encode("utf-8"), headers=headers)
    assert r.status_code == status, r.text
    detail = r.json()["detail"]
    assert message in detail and "Traceback" not in r.text


def test_other_bad_requests(ro):
    c = ro.client
    r = c.post("/api/answer", content=b'{"question": "why"}', headers={"content-type": "text/plain"})
    assert r.status_code == 415
    r = c.post("/api/answer", content=b"\xff\xfe{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400 and "UTF-8 JSON" in r.json()["detail"]
    big = json.dumps({"question": "why", "history": [{"question": "x" * 1000, "answer": {"question": "x"}}] * 2000})
    r = c.post("/api/answer", content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413 and "limit" in r.json()["detail"]
    assert c.get("/api/answer").status_code == 405
    assert c.get("/api/nothing").status_code == 404
    r = c.delete("/api/documents/no-such.txt", headers={"X-API-Key": KEY})
    assert r.status_code == 404 and "no-such.txt" in r.json()["detail"]


def test_upload_refusals_leave_the_folder_and_index_alone(start):
    s = start(Settings(rate_limit=0, max_upload_bytes=MAX_DOCUMENT_BYTES + 64 * 1024))
    before, ids_before = visible_files(s.corpus), set(s.bot.index.doc_ids)

    def up(*files, **params):
        return s.client.post("/api/documents", files=[("files", f) for f in files], params=params)

    cases = [
        (up(("big.txt", b"word " * (MAX_DOCUMENT_BYTES // 5 + 1))), 413),
        (up(("lines.txt", b"a\n\n" * (MAX_SENTENCES + 1))), 413),  # small, but too many sentences to embed
        (up(("paper.pdf", b"%PDF-1.4")), 400),  # a damaged PDF
        (up(("slides.pptx", b"PK\x03\x04")), 415),
        (up(("noext", b"text")), 415),
        (up(("../escape.txt", b"Escape.")), 400),
        (up(("sub/inner.txt", b"Inner.")), 400),
        (up(("..\\escape.txt", b"Escape.")), 400),
        (up(("..", b"x")), 400),
        (up((".hidden.txt", b"Hidden.")), 400),
        (up(("~$report.docx", b"PK\x03\x04")), 400),  # Word's lock file name: a folder sync would drop it
        (up(("lighthouse.md", b"# A new lighthouse\n\nIt was built yesterday.")), 409),
        (up(("latin1.txt", "Caf\u00e9 cr\u00e8me.".encode("latin-1"))), 400),
        (up(("nul.txt", b"binary\x00data")), 400),
        (up(("empty.txt", b"  \n")), 400),
        (up(("twice.txt", b"One."), ("twice.txt", b"Two.")), 400),
        # All or nothing: a good file beside a bad one is not stored either.
        (up(("good.txt", b"Good file.\n\nA fine sentence."), ("bad.pdf", b"x")), 400),
        (s.client.post("/api/documents", data={"replace": "true"}), 422),
        (s.client.post("/api/documents", content=b"garbage", headers={"content-type": "multipart/form-data; boundary=xx"}), 400),
    ]
    for r, status in cases:
        assert r.status_code == status, (status, r.text)
        assert r.json()["detail"] and "Traceback" not in r.text
    # Over the whole-body cap: refused before the app reads it.
    r = up(("huge.txt", b"x" * (MAX_DOCUMENT_BYTES + 128 * 1024)))
    assert r.status_code == 413
    assert visible_files(s.corpus) == before and set(s.bot.index.doc_ids) == ids_before
    assert not [p for p in s.corpus.iterdir() if p.name.startswith(".upload-")]


# ----- access ------------------------------------------------------------------------------------
def test_api_key_protects_writes(start):
    s = start(Settings(rate_limit=0, api_key=KEY))
    c = s.client
    assert c.post("/api/answer", json={"question": "How tall is the lighthouse?"}).status_code == 200
    assert c.get("/api/documents").status_code == 200
    files = {"files": ("zebra.txt", ZEBRA)}
    r = c.post("/api/documents", files=files)
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    assert c.post("/api/documents", files=files, headers={"X-API-Key": "wrong-key-000"}).status_code == 401
    assert c.post("/api/documents", files=files, headers={"Authorization": "Basic abc"}).status_code == 401
    assert c.delete("/api/documents/lighthouse.md").status_code == 401
    assert not (s.corpus / "zebra.txt").exists() and (s.corpus / "lighthouse.md").exists()
    assert c.post("/api/documents", files=files, headers={"X-API-Key": KEY}).status_code == 201
    assert c.delete("/api/documents/zebra.txt", headers={"Authorization": f"Bearer {KEY}"}).status_code == 200


def test_api_key_required_everywhere(start):
    s = start(Settings(rate_limit=0, api_key=KEY, api_key_required=True))
    c = s.client
    assert c.post("/api/answer", json={"question": "How tall is the lighthouse?"}).status_code == 401
    assert c.get("/api/documents").status_code == 401
    assert c.get("/api/documents", headers={"X-API-Key": KEY}).status_code == 200
    r = c.post("/api/answer", json={"question": "How tall is the lighthouse?"}, headers={"Authorization": f"Bearer {KEY}"})
    assert r.status_code == 200
    assert c.get("/healthz").status_code == 200  # the liveness probe stays open; nothing else does
    assert c.get("/readyz").status_code == 401 and c.get("/openapi.json").status_code == 401
    assert c.get("/readyz", headers={"X-API-Key": KEY}).status_code == 200
    with pytest.raises(ValueError, match="QA_API_KEY"):
        Settings(api_key_required=True)
    with pytest.raises(ValueError, match="QA_RATE_LIMIT"):
        Settings.from_env({"QA_RATE_LIMIT": "lots"})
    env = {"QA_API_KEY": KEY, "QA_API_KEY_REQUIRED": "1", "QA_CORS_ORIGINS": "https://a.example, https://b.example", "QA_RATE_LIMIT": "7"}
    got = Settings.from_env(env)
    assert got.api_key_required and got.cors_origins == ("https://a.example", "https://b.example") and got.rate_limit == 7
    assert Settings.from_env({}).cors_origins == ()  # CORS closed by default


def test_rate_limit_per_client(start):
    s = start(Settings(rate_limit=5))
    codes = [s.client.get("/api/documents").status_code for _ in range(7)]
    assert codes[:5] == [200] * 5 and codes[5:] == [429, 429]
    r = s.client.post("/api/answer", json={"question": "why"})
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1 and "limit" in r.json()["detail"]
    assert s.client.get("/healthz").status_code == 200
    limiter = RateLimiter(60, clock=lambda: now)
    now = 0.0
    assert all(limiter.hit("a") == 0 for _ in range(60)) and limiter.hit("a") > 0 and limiter.hit("b") == 0
    now = 1.0
    assert limiter.hit("a") == 0  # one token a second comes back


def test_cors_closed_by_default_and_opened_by_list(ro, start):
    origin = {"Origin": "https://evil.example"}
    r = ro.client.post("/api/answer", json={"question": "why"}, headers=origin)
    assert "access-control-allow-origin" not in r.headers
    pre = {**origin, "Access-Control-Request-Method": "POST"}
    assert "access-control-allow-origin" not in ro.client.options("/api/answer", headers=pre).headers
    s = start(Settings(rate_limit=0, cors_origins=("https://app.example",)))
    r = s.client.options("/api/answer", headers={"Origin": "https://app.example", "Access-Control-Request-Method": "POST"})
    assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "https://app.example"
    r = s.client.post("/api/answer", json={"question": "why"}, headers=origin)
    assert "access-control-allow-origin" not in r.headers


# ----- documents: upload, ask, replace, delete ----------------------------------------------------
def test_upload_then_ask_then_delete(start):
    s = start()
    c = s.client
    r = c.post("/api/documents", files=[("files", ("zebra.txt", ZEBRA, "text/plain")), ("files", ("notes2.md", b"# Notes\n\nNothing to see here."))])
    assert r.status_code == 201, r.text
    stored = {d["id"]: d for d in r.json()["documents"]}
    assert set(stored) == {"zebra.txt", "notes2.md"} and stored["zebra.txt"]["sentences"] >= 2
    assert (s.corpus / "zebra.txt").read_bytes() == ZEBRA
    ids = {d["id"] for d in c.get("/api/documents").json()["documents"]}
    assert {"zebra.txt", "notes2.md", "lighthouse.md"} <= ids

    a = c.post("/api/answer", json={"question": "Who opened the zebra farm?"}).json()
    assert not a["abstained"] and a["answer"] == "Paul Kim" and a["citations"][0]["doc"] == "zebra.txt"
    assert_verbatim(a, corpus_texts(s.corpus))

    new = ZEBRA.replace(b"2003", b"2009")
    r = c.post("/api/documents", files={"files": ("zebra.txt", new)})
    assert r.status_code == 409 and r.json()["detail"] == "zebra.txt already exists; send replace=true to overwrite it"
    r = c.post("/api/documents", files={"files": ("zebra.txt", new)}, data={"replace": "true"})
    assert r.status_code == 201 and r.json()["replaced"] == ["zebra.txt"]
    a = c.post("/api/answer", json={"question": "When was the zebra farm opened?", "docs": ["zebra.txt"]}).json()
    assert "2009" in a["citations"][0]["text"]
    assert_verbatim(a, corpus_texts(s.corpus))

    r = c.delete("/api/documents/zebra.txt")
    assert r.status_code == 200 and r.json() == {"deleted": "zebra.txt"}
    assert not (s.corpus / "zebra.txt").exists()
    assert "zebra.txt" not in {d["id"] for d in c.get("/api/documents").json()["documents"]}
    a = c.post("/api/answer", json={"question": "Who opened the zebra farm?"}).json()
    assert all(cit["doc"] != "zebra.txt" for cit in a["citations"])
    assert c.post("/api/answer", json={"question": "Who opened the zebra farm?", "docs": ["zebra.txt"]}).status_code == 404
    assert c.delete("/api/documents/zebra.txt").status_code == 404
    # A document in a subfolder is deleted by its id.
    assert c.delete("/api/documents/notes/bees.txt").status_code == 200
    assert not (s.corpus / "notes" / "bees.txt").exists()
    # The index on disk agrees with the folder.
    fresh = Bot(s.corpus, index_dir=s.bot.index_dir, embedder=s.bot.embedder)
    assert set(fresh.index.doc_ids) == set(visible_files(s.corpus)) and not fresh.sync().touched


# ----- conversations ---------------------------------------------------------------------------------
def test_conversation_id_keeps_the_history(ro):
    c = ro.client
    first = c.post("/api/answer", json={"question": "Who built the harbour lighthouse?", "conversation_id": "t-1"})
    assert first.status_code == 200 and first.headers["x-conversation-id"] == "t-1"
    assert first.headers["x-conversation-turns"] == "0"
    r = c.post("/api/answer", json={"question": "How tall is it?", "conversation_id": "t-1"})
    follow = r.json()
    assert r.headers["x-conversation-turns"] == "1"  # read with the first turn; 0 would say it was forgotten
    assert follow["searched_for"] != follow["question"] and "lighthouse" in follow["searched_for"].lower()
    assert follow["citations"][0]["doc"] == "lighthouse.md"
    assert_verbatim(follow, corpus_texts(ro.corpus))
    # The same follow-up with the history in the body is resolved the same way.
    history = [{"question": "Who built the harbour lighthouse?", "answer": first.json()}]
    same = c.post("/api/answer", json={"question": "How tall is it?", "history": history}).json()
    assert same["searched_for"] == follow["searched_for"]
    # Another conversation does not see that history.
    alone = c.post("/api/answer", json={"question": "How tall is it?", "conversation_id": "t-2"}).json()
    assert alone["searched_for"] == "How tall is it?"


def test_conversation_memory_is_bounded():
    now = 0.0
    conv = Conversations(max_conversations=3, max_turns=2, ttl_s=60, clock=lambda: now)
    for i in range(5):
        conv.append(f"c{i}", i)  # turns are opaque to the store
    assert len(conv) == 3 and conv.history("c0") == [] and conv.history("c4") == [4]
    for t in range(5):
        conv.append("c4", t)
    assert conv.history("c4") == [3, 4]
    now = 61.0
    assert conv.history("c4") == [] and len(conv) == 0


# ----- property-based: no request the spec allows (or not) gets a 5xx ------------------------------
@pytest.fixture(scope="module")
def fuzz_server(embedder, tmp_path_factory):
    base = tmp_path_factory.mktemp("api-fuzz")
    shutil.copytree(DATA / "corpus", base / "corpus")
    bot = Bot(base / "corpus", index_dir=base / "index", embedder=embedder)
    bot.sync()
    with serving(create_app(bot, Settings(rate_limit=0, api_key=KEY))) as url:
        yield url


@pytest.mark.parametrize("mode", ["positive", "negative"])
def test_openapi_fuzz_never_5xx(fuzz_server, mode):
    """Schemathesis draws requests from the app's own OpenAPI spec (valid ones, then invalid)."""
    from schemathesis import GenerationMode

    schema = schemathesis.openapi.from_url(f"{fuzz_server}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 6
    tested = 0
    for operation in operations:
        @given(case=operation.as_strategy(generation_mode=GenerationMode(mode)))
        @hsettings(max_examples=25, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        def check(case):
            response = case.call(headers={"X-API-Key": KEY}, timeout=60)
            assert response.status_code < 500, f"{case.method} {case.formatted_path}: {response.status_code} {response.text[:500]}"
            assert "Traceback" not in response.text

        try:
            check()
        except Unsatisfiable:
            # Nothing to make invalid in an operation without parameters or body.
            assert mode == "negative" and not operation.body and not operation.query and not operation.path_parameters
            continue
        tested += 1
    assert tested >= 4


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)
answer_bodies = st.fixed_dictionaries(
    {},
    optional={
        "question": st.one_of(st.text(max_size=60), json_values),
        "history": st.one_of(json_values, st.lists(st.fixed_dictionaries({"question": st.text(max_size=20), "answer": json_values}), max_size=2)),
        "conversation_id": st.one_of(st.text(max_size=20), json_values),
        "docs": st.one_of(st.lists(st.sampled_from(["lighthouse.md", "notes/bees.txt", "nope.txt", "", ".."]), max_size=3), json_values),
        "top_k": st.one_of(st.integers(-3, 14), json_values),
    },
)


@given(body=st.one_of(answer_bodies, json_values), raw=st.binary(max_size=40))
@hsettings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
def test_any_answer_body_is_never_5xx(ro, body, raw):
    r = ro.client.post("/api/answer", json=body)
    assert r.status_code == 200 or (400 <= r.status_code < 500 and r.json()["detail"]), r.text
    if r.status_code == 200:
        assert_verbatim(r.json(), corpus_texts(ro.corpus))
    r = ro.client.post("/api/answer", content=raw, headers={"content-type": "application/json"})
    assert 400 <= r.status_code < 500 or r.status_code == 200, r.text


def test_loadcheck_smoke(start):
    """The load check's clients and writer, briefly, against a threaded server."""
    import asyncio

    from eval import loadcheck

    s = start()
    # First (client 0 starts with it): a date answer, whose Answer JSON carries `answer_date`.
    conversations = ([["When was the harbour lighthouse built?"]] + loadcheck.load_conversations(None)
                     + [["Who built the harbour lighthouse?", "How tall is it?"]])
    rep = asyncio.run(loadcheck.run(s.url, "", 2, 2.0, conversations, loadcheck.read_texts(s.corpus)))
    assert rep["requests"] > 0 and rep["upload_delete_cycles"] >= 1, rep
    assert rep["errors"] == 0 and rep["not_verbatim"] == 0 and not rep["upload_left_behind"], rep
    assert rep["citations_checked"] > 0 and rep["latency_ms_p95"] >= rep["latency_ms_p50"] > 0


# ----- the CLI and a crash in the middle of an update ------------------------------------------------
def test_serve_is_listed_and_lazy():
    code = "import sys; from qa.cli import build_parser; build_parser(); print('fastapi' in sys.modules, 'uvicorn' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "False False"
    helptext = subprocess.run([sys.executable, "-m", "qa.cli", "serve", "--help"], capture_output=True, text=True, check=True, cwd=ROOT).stdout
    assert "--port" in helptext and "7860" in helptext


def test_kill_during_upload_leaves_a_loadable_index(embedder, corpus, tmp_path):
    from index.store import HybridIndex

    index_dir = tmp_path / "ix"
    before = visible_files(corpus)
    port = free_port()  # the server binds it next
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "QA_RATE_LIMIT": "0", "PYTHONUNBUFFERED": "1"}
    env.pop("QA_API_KEY", None), env.pop("QA_API_KEY_REQUIRED", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "qa.cli", "serve", "--docs", str(corpus), "--index", str(index_dir), "--port", str(port)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, timeout=90, proc=proc)
        first_gen = (index_dir / "CURRENT").read_text().strip()
        # A big document: embedding it takes a few seconds, then a new generation is written.
        big = "Big report\n\n" + "".join(
            f"Section {i} of the report says that shipment {i} reached the harbour of port {i % 97} on day {i % 28 + 1}. "
            for i in range(300)
        )
        data = big.encode("utf-8")
        result: dict = {}

        def upload() -> None:
            try:
                result["response"] = httpx.post(f"{url}/api/documents", files={"files": ("big.txt", data)}, timeout=120)
            except httpx.TransportError as exc:
                result["error"] = exc

        t = threading.Thread(target=upload)
        t.start()
        # Kill -9 as soon as the new index generation starts being written (or the upload is parked).
        deadline = time.monotonic() + 60
        phase = None
        while time.monotonic() < deadline and phase is None:
            if any(p.name != first_gen for p in index_dir.glob("gen-*")):
                phase = "writing the index"
            elif "response" in result:
                phase = "too late"
            time.sleep(0.001)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        t.join(30)
        assert phase == "writing the index" and "response" not in result, (phase, result)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    out = proc.stdout.read() if proc.stdout else ""
    assert f"http://127.0.0.1:{port}/api/answer" in out

    # The folder holds no half-written visible file: the originals, plus the upload only if whole.
    after = visible_files(corpus)
    assert {k: v for k, v in after.items() if k != "big.txt"} == before
    assert after.get("big.txt", data) == data
    # The index loads, and is either the old generation or the complete new one.
    idx = HybridIndex.load(index_dir, embedder)
    assert set(idx.doc_ids) in (set(before), set(before) | {"big.txt"})
    for i, e in enumerate(idx.entries):
        a, b = idx.doc_sentences(i)
        assert b > a and e.text == (after.get(e.id) or data).decode("utf-8")
    # A restart brings index and folder back in step, and answers.
    bot = Bot(corpus, index_dir=index_dir, embedder=embedder)
    bot.sync()
    assert set(bot.index.doc_ids) == set(visible_files(corpus))
    a = bot.ask("Who built the harbour lighthouse?")
    assert a.citations[0].doc == "lighthouse.md"


def test_openapi_describes_every_field_the_answer_json_can_hold(ro):
    """A PDF citation's `page`, `boxes` and `ocr` were returned but missing from /openapi.json,
    and dropped from a `history` sent back."""
    from qa.api.schemas import AnswerModel
    from qa.types import Answer, Citation, Corroboration

    spec = ro.client.get("/openapi.json").json()["components"]["schemas"]
    cite = Citation("a.pdf", "A", "It rang.", 0, 8, 0.5, 3, 7, page=2, boxes=((2, 72.0, 700.5, 300.0, 712.0),), ocr=True)
    other = Corroboration("b.txt", "B", "It rang.", 0, 8, "rang", True, 0.6, 3, 7, "2021-01-01", "2021-01-02")
    answer = Answer("When?", "When?", False, "rang", 0.7, (cite,), {"total": 1.0}, answer_date="2021-01-02",
                    corroboration=(other,))
    d = answer.to_dict()
    assert set(d) <= set(spec["AnswerModel"]["properties"])
    assert set(d["citations"][0]) == {"doc", "title", "text", "start", "end", "answer_start", "answer_end", "score",
                                      "page", "boxes", "ocr"} <= set(spec["CitationModel"]["properties"])
    assert set(d["corroboration"][0]) <= set(spec["CorroborationModel"]["properties"])
    kept = Answer.from_dict(AnswerModel.model_validate(d).model_dump(exclude_none=True))
    assert kept.citations[0] == cite


def test_requests_on_one_conversation_are_answered_in_turn(start):
    """Two questions sent at once on one conversation_id both read the empty history, and each
    was answered as a first turn: they are answered one after the other now."""
    import threading
    import time

    s = start()
    ask = s.bot.ask

    def slow(*args, **kwargs):
        time.sleep(0.5)
        return ask(*args, **kwargs)

    s.bot.ask = slow
    turns: list[str] = []

    def post(question: str) -> None:
        r = httpx.post(f"{s.url}/api/answer", json={"question": question, "conversation_id": "both"}, timeout=60)
        assert r.status_code == 200, r.text
        turns.append(r.headers["x-conversation-turns"])

    threads = [threading.Thread(target=post, args=(q,)) for q in ("Who built the harbour lighthouse?", "How tall is it?")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(turns) == ["0", "1"]
    assert s.client.post("/api/answer", json={"question": "And when?", "conversation_id": "both"}).headers["x-conversation-turns"] == "2"


def test_origins_and_host_names_that_could_never_match_are_refused_or_normalised(start):
    """`QA_CORS_ORIGINS=https://app.example/` let writes through the guard but never got a CORS
    header (the CORS layer compares strings); `example.com` or a host with a port matched nothing."""
    for name, value in (("QA_CORS_ORIGINS", "example.com"), ("QA_CORS_ORIGINS", "https://app.example/page"),
                        ("QA_ALLOWED_HOSTS", "qa.example.com:8000"), ("QA_ALLOWED_HOSTS", "https://qa.example.com"),
                        ("QA_PARSE_TIMEOUT_S", "1e10")):
        with pytest.raises(ValueError, match=f"{name}='{value}'"):
            Settings.from_env({name: value})
    got = Settings.from_env({"QA_CORS_ORIGINS": "HTTPS://App.Example:443/, http://b.example:8080"}).cors_origins
    assert got == ("https://app.example", "http://b.example:8080")
    s = start(Settings(rate_limit=0, cors_origins=("https://app.example/",)))
    r = s.client.options("/api/answer", headers={"Origin": "https://app.example", "Access-Control-Request-Method": "POST"})
    assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "https://app.example"


def _serve(docs: Path, ix: Path, port: int) -> subprocess.Popen:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "QA_RATE_LIMIT": "0"}
    env.pop("QA_API_KEY", None), env.pop("QA_API_KEY_REQUIRED", None)
    return subprocess.Popen([sys.executable, "-m", "qa.cli", "serve", "--docs", str(docs), "--index", str(ix), "--port", str(port)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _probes_until(url: str, proc: subprocess.Popen, done: Callable[[int, int], bool], timeout: float = 120) -> list[tuple[int, int]]:
    """(/healthz, /readyz) statuses polled from the start (0: no connection) until ``done`` says so."""
    seen, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        pair = []
        for probe in ("/healthz", "/readyz"):
            try:
                pair.append(httpx.get(url + probe, timeout=5).status_code)
            except httpx.TransportError:
                pair.append(0)
        seen.append(tuple(pair))
        if done(*pair):
            return seen
        time.sleep(0.02)
    raise AssertionError(f"no end after {seen[-3:]}; {proc.poll()=}")


def test_ctrl_c_stops_serve_while_a_chat_page_is_open(corpus, tmp_path):
    """uvicorn waits for requests under way, and an open page's Gradio heartbeat stream never
    ends: Ctrl-C (or SIGTERM) left `qa serve` running for as long as a browser tab stayed open."""
    import socket

    port = free_port()
    proc = _serve(corpus, tmp_path / "ix", port)
    try:
        wait_ready(f"http://127.0.0.1:{port}", timeout=90, proc=proc)
        with socket.create_connection(("127.0.0.1", port)) as page:
            page.sendall(b"GET /gradio_api/heartbeat/tab1 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            page.settimeout(10)
            seen = b""
            while b"ALIVE" not in seen:
                chunk = page.recv(4096)
                assert chunk, seen  # closed by the server
                seen += chunk
            proc.send_signal(signal.SIGINT)
            assert proc.wait(30) == 0
        assert "Traceback" not in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_serve_answers_its_probes_while_it_indexes_at_start(corpus, tmp_path):
    """`qa serve` indexed the folder before it listened: /healthz and /readyz refused connections
    for as long as that took (20 s for 200 small files), so a liveness probe would kill it. It
    listens first; /readyz says 503 until the index is ready. (OCR makes the indexing last.)"""
    shutil.copy(DATA / "scanned.pdf", corpus / "scanned.pdf")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = _serve(corpus, tmp_path / "ix", port)
    try:
        seen = _probes_until(url, proc, lambda health, ready: ready == 200)
        assert (200, 503) in seen, seen[-5:]
        r = httpx.post(url + "/api/answer", json={"question": "Who built the harbour lighthouse?"}, timeout=60)
        assert r.status_code == 200 and not r.json()["abstained"], r.text
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0
        assert f"Ready: 4 documents in {corpus}" in proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_ctrl_c_while_serve_indexes_at_start_stops_it_with_nothing_written(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    shutil.copy(DATA / "scanned.pdf", docs / "scanned.pdf")
    port = free_port()
    proc = _serve(docs, tmp_path / "ix", port)
    try:
        seen = _probes_until(f"http://127.0.0.1:{port}", proc, lambda health, ready: health == 200)
        assert seen[-1] == (200, 503)  # indexing: OCR takes seconds
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 130
        assert "interrupted while indexing" in proc.stderr.read()
        assert not (tmp_path / "ix" / "CURRENT").exists()  # no index generation was written
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_an_empty_folder_is_a_404_not_a_declined_answer(start, tmp_path):
    """Over no documents the API answered "I could not find this in the documents" (200,
    abstained) as if they had been searched; the CLI and the chat page say there are none."""
    (tmp_path / "empty").mkdir()
    s = start(corpus=tmp_path / "empty")
    r = s.client.post("/api/answer", json={"question": "Who built the lighthouse?"})
    assert r.status_code == 404 and "no documents to search yet" in r.json()["detail"], r.text
    assert s.client.post("/api/documents", files={"files": ("tea.txt", b"Green tea is picked in spring.")}).status_code == 201
    r = s.client.post("/api/answer", json={"question": "When is green tea picked?"})
    assert r.status_code == 200 and r.json()["citations"][0]["doc"] == "tea.txt", r.text


def test_ctrl_c_stops_serve_waiting_for_another_writer_of_its_index(corpus, tmp_path):
    """A second `qa serve` on an index another process was writing waited for its lease (up to
    600 s) and ignored Ctrl-C all that time: the stop flag was checked only by progress bars."""
    import fcntl

    (tmp_path / "ix").mkdir()
    port = free_port()
    with open(tmp_path / "ix" / "writer.lock", "w") as lease:
        fcntl.flock(lease, fcntl.LOCK_EX)  # another writer holds the index
        proc = _serve(corpus, tmp_path / "ix", port)
        try:
            seen = _probes_until(f"http://127.0.0.1:{port}", proc, lambda health, ready: health == 200)
            assert seen[-1] == (200, 503)
            proc.send_signal(signal.SIGINT)
            assert proc.wait(30) == 130
            err = proc.stderr.read()
            assert "interrupted while indexing" in err and "Traceback" not in err
            assert not (tmp_path / "ix" / "CURRENT").exists()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)


def test_a_warm_up_under_way_is_told_when_the_app_shuts_down(corpus, embedder, tmp_path):
    """When uvicorn could not listen (the port taken after `qa serve` checked it) it shut the app
    down, but the warm-up thread, which cannot be cancelled, went on indexing the whole folder
    (OCR: minutes) and printed "Ready". The service now says it is stopping; `qa serve` reads it."""
    seen: list[bool] = []

    def prepare() -> None:  # as `qa serve`'s: checks for a stop at each step
        deadline = time.monotonic() + 30
        while not app.state.service.stopping and time.monotonic() < deadline:
            time.sleep(0.02)
        seen.append(app.state.service.stopping)

    app = create_app(Bot(corpus, index_dir=tmp_path / "ix", embedder=embedder), Settings(rate_limit=0), prepare)
    started = time.monotonic()
    with serving(app, wait=False) as url:
        assert httpx.get(url + "/readyz", timeout=10).status_code == 503
    assert seen == [True] and time.monotonic() - started < 15


def test_document_listing_comes_in_pages_with_the_total(start, tmp_path):
    corpus = tmp_path / "many"
    corpus.mkdir()
    for i in range(101):
        (corpus / f"note{i:03d}.txt").write_text(f"Note {i}\n\nThe note numbered {i} lists {i} plums.\n", encoding="utf-8")
    s = start(corpus=corpus)
    whole = s.client.get("/api/documents")  # without a limit the list is whole, as clients had it
    assert whole.status_code == 200, whole.text
    everything = whole.json()
    assert (len(everything["documents"]), everything["total"], everything["limit"], everything["next_offset"]) == (101, 101, None, None)
    page = s.client.get("/api/documents", params={"limit": 100}).json()
    assert (len(page["documents"]), page["total"], page["offset"], page["limit"], page["next_offset"]) == (100, 101, 0, 100, 100)
    assert s.client.get("/api/documents", params={"limit": 1000}).json()["documents"] == everything["documents"]
    assert [d["id"] for d in everything["documents"]] == s.bot.index.doc_ids  # index order
    # Following next_offset in pages of 40 gives every document once, in the same order.
    pages, offset = [], 0
    while offset is not None:
        got = s.client.get("/api/documents", params={"limit": 40, "offset": offset}).json()
        assert got["total"] == 101
        pages.append(got["documents"])
        offset = got["next_offset"]
    assert [len(p) for p in pages] == [40, 40, 21]
    assert [d for p in pages for d in p] == everything["documents"]
    # Past the end: an empty page that still says how many there are.
    past = s.client.get("/api/documents", params={"offset": 500, "limit": 100})
    assert past.status_code == 200 and past.json() == {"documents": [], "total": 101, "offset": 500, "limit": 100, "next_offset": None}
    for params, name in (({"limit": 0}, "limit"), ({"limit": 1001}, "limit"), ({"limit": "ten"}, "limit"), ({"offset": -1}, "offset")):
        bad = s.client.get("/api/documents", params=params)
        assert bad.status_code == 422 and bad.json()["detail"].startswith(f"query.{name}: "), (params, bad.text)
    # An upload joins the end of the order: the pages already read stay as they were.
    assert s.client.post("/api/documents", files={"files": ("zebra.txt", ZEBRA)}).status_code == 201
    last = s.client.get("/api/documents", params={"limit": 2, "offset": 100}).json()
    assert [d["id"] for d in last["documents"]] == ["note100.txt", "zebra.txt"] and last["total"] == 102
    assert s.client.get("/api/documents", params={"limit": 40}).json()["documents"] == pages[0]
