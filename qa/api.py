"""The answer API: FastAPI over one :class:`~qa.bot.Bot`, safe to expose.

``create_app(bot)`` builds the app (there is no module-level app, so tests and the chat page
inject their own bot). Everything lives under ``/api`` plus the probes ``/healthz`` and
``/readyz`` and the OpenAPI pages (``/docs``, ``/openapi.json``); ``/`` is left free for the chat
page, which can be mounted on the same app later (``gradio.mount_gradio_app(app, blocks,
path="/")``): routes declared here take precedence over a mount at ``/``.

Safety at the edge: request models validate every field and bad input gets a 4xx with a
message (never a 5xx or a stack trace); bodies are capped (413); each client is rate limited
(429); an API key guards the write endpoints (or all of ``/api``); CORS is closed unless origins
are listed. The Bot's methods are CPU-bound and synchronous, so they run in worker threads; the
model is loaded once in the Bot and shared by all requests.
"""

from __future__ import annotations

import hmac
import logging
import math
import os
import threading
import time
from collections import OrderedDict
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from typing import Annotated, Any, Mapping

import anyio
from fastapi import Depends, FastAPI, File, Form, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .bot import MAX_DOCUMENT_BYTES, MAX_QUESTION_CHARS, Bot, DocumentError, QuestionError, Turn, check_question
from .ingest import SUPPORTED_SUFFIXES
from .types import Answer

log = logging.getLogger(__name__)

MiB = 1024 * 1024
MAX_FILES_PER_UPLOAD = 20
# HTTP status for each DocumentError kind (see qa.bot.DocumentError).
DOCUMENT_ERROR_STATUS = {"invalid": 400, "unsupported": 415, "too_large": 413, "exists": 409, "missing": 404}


# ----- settings ------------------------------------------------------------------------------
def _env_bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{name}={raw!r}: use 1 or 0")


def _env_int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a whole number") from None


_ENV_NAMES = {"rate_limit": "QA_RATE_LIMIT", "max_body_bytes": "QA_MAX_BODY_BYTES", "max_upload_bytes": "QA_MAX_UPLOAD_BYTES",
              "workers": "QA_API_WORKERS"}


@dataclass(frozen=True)
class Settings:
    """How the API guards itself. :meth:`from_env` reads the ``QA_*`` environment variables.

    Args:
        api_key: ``QA_API_KEY``; when set, uploads and deletions need it (header ``X-API-Key``
            or ``Authorization: Bearer KEY``).
        api_key_required: ``QA_API_KEY_REQUIRED=1``: every ``/api`` endpoint needs the key.
        cors_origins: ``QA_CORS_ORIGINS``, comma-separated; empty (the default) allows no
            cross-origin browser calls.
        rate_limit: ``QA_RATE_LIMIT``, requests per minute per client address on ``/api``
            (bursts up to the same number); 0 turns the limit off.
        max_body_bytes: ``QA_MAX_BODY_BYTES``, the largest request body other than uploads.
        max_upload_bytes: ``QA_MAX_UPLOAD_BYTES``, the largest multipart upload body (all
            files together; each file is also held to the Bot's per-document limit).
        max_conversations, max_turns, conversation_ttl_s: bounds of the server-side
            conversation memory (``conversation_id``).
        workers: questions answered at the same time (more wait their turn).
    """

    api_key: str | None = None
    api_key_required: bool = False
    cors_origins: tuple[str, ...] = ()
    rate_limit: int = 120
    max_body_bytes: int = 1 * MiB
    max_upload_bytes: int = 16 * MiB
    max_conversations: int = 1000
    max_turns: int = 20
    conversation_ttl_s: float = 3600.0
    workers: int = 4

    def __post_init__(self) -> None:
        if self.api_key is not None and len(self.api_key) < 8:
            raise ValueError("QA_API_KEY is too short: use at least 8 characters (e.g. `openssl rand -hex 16`)")
        if self.api_key_required and not self.api_key:
            raise ValueError("QA_API_KEY_REQUIRED=1 but QA_API_KEY is not set: set the key, or drop the requirement")
        for name in ("rate_limit", "max_conversations", "max_turns", "workers", "max_body_bytes", "max_upload_bytes"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0 or (value == 0 and name != "rate_limit"):
                label = _ENV_NAMES.get(name, name)
                raise ValueError(f"{label}={value!r} must be a positive whole number" + (" (or 0 to turn it off)" if name == "rate_limit" else ""))
        if "*" in self.cors_origins:
            log.warning("QA_CORS_ORIGINS=* lets any web page call the API from a visitor's browser")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
        """Read the ``QA_*`` variables; raise ``ValueError`` naming the bad one."""
        env = os.environ if env is None else env
        origins = tuple(o.strip() for o in env.get("QA_CORS_ORIGINS", "").split(",") if o.strip())
        return cls(
            api_key=env.get("QA_API_KEY") or None,
            api_key_required=_env_bool(env, "QA_API_KEY_REQUIRED", False),
            cors_origins=origins,
            rate_limit=_env_int(env, "QA_RATE_LIMIT", cls.rate_limit),
            max_body_bytes=_env_int(env, "QA_MAX_BODY_BYTES", cls.max_body_bytes),
            max_upload_bytes=_env_int(env, "QA_MAX_UPLOAD_BYTES", cls.max_upload_bytes),
            workers=_env_int(env, "QA_API_WORKERS", cls.workers),
        )


# ----- request and response models -----------------------------------------------------------
def _valid_unicode(value: str) -> str:
    # JSON may carry lone surrogates ("\ud800"); they cannot be encoded, embedded or echoed.
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("contains invalid Unicode (a lone surrogate); send UTF-8 text") from None
    return value


Text = Annotated[str, AfterValidator(_valid_unicode)]


class CitationModel(BaseModel):
    """A verbatim sentence: ``document_text[start:end] == text``."""

    model_config = ConfigDict(extra="ignore")
    doc: Text = Field(max_length=1024, description="document id: its path relative to the corpus folder")
    title: Text = Field("", max_length=10_000)
    text: Text = Field(max_length=100_000, description="the sentence, verbatim")
    start: int = Field(ge=0)
    end: int = Field(ge=0)
    answer_start: int | None = Field(None, ge=0, description="short answer's offsets inside `text`, when one fits")
    answer_end: int | None = Field(None, ge=0)
    score: float = Field(0.0, allow_inf_nan=False)


class AnswerModel(BaseModel):
    """The Answer JSON (see GUIDE.md), as returned by ``POST /api/answer``."""

    model_config = ConfigDict(extra="ignore")
    question: Text = Field(max_length=MAX_QUESTION_CHARS * 2)
    searched_for: Text | None = Field(None, max_length=MAX_QUESTION_CHARS * 4, description="the follow-up, resolved")
    abstained: bool = False
    answer: Text | None = Field(None, max_length=100_000, description="the short answer; null when abstaining")
    confidence: float = Field(0.0, allow_inf_nan=False)
    citations: list[CitationModel] = Field(default_factory=list, max_length=20)
    timings_ms: dict[Text, float] = Field(default_factory=dict, max_length=20)


class TurnModel(BaseModel):
    """An earlier exchange: the question and the Answer JSON the bot gave."""

    model_config = ConfigDict(extra="ignore")
    question: Text = Field(max_length=MAX_QUESTION_CHARS * 2)
    answer: AnswerModel


class AnswerRequest(BaseModel):
    """A question, with the conversation so far (``history``, or ``conversation_id`` to let
    the server remember it), optionally limited to some documents."""

    model_config = ConfigDict(extra="forbid")
    question: Text = Field(
        description=f"the question (1 to {MAX_QUESTION_CHARS} characters, not only spaces)",
        examples=["Who built the harbour lighthouse?"],
    )
    history: list[TurnModel] | None = Field(
        None, max_length=100,
        description="earlier turns, oldest first, each with the bot's own Answer JSON (the last 20 are used)",
    )
    conversation_id: str | None = Field(
        None, pattern=r"^[A-Za-z0-9._:-]{1,128}$",
        description="let the server keep the history under this id (use a random UUID); "
        "not together with `history`",
    )
    docs: list[Annotated[Text, Field(min_length=1, max_length=1024)]] | None = Field(
        None, min_length=1, max_length=1000, description="limit the answer to these document ids",
    )
    top_k: int = Field(3, ge=1, le=10, description="citations to return (1 to 10)")

    @field_validator("question")
    @classmethod
    def _question(cls, value: str) -> str:
        check_question(value)  # its QuestionError is a ValueError: pydantic reports it as a 422
        return value


class DocumentInfo(BaseModel):
    id: str = Field(description="path relative to the corpus folder")
    title: str
    date: str | None = Field(description="publication date (ISO), when the document gives one")
    size: int = Field(description="length of the text in UTF-8 bytes")
    chars: int = Field(description="length of the text in characters")
    sentences: int


class DocumentList(BaseModel):
    documents: list[DocumentInfo]


class UploadResult(BaseModel):
    documents: list[DocumentInfo] = Field(description="the stored documents, in upload order")
    replaced: list[str] = Field(description="ids among them that replaced an existing document")


class Deleted(BaseModel):
    deleted: str


class ErrorModel(BaseModel):
    detail: str


_ERRORS = {code: {"model": ErrorModel} for code in (400, 401, 404, 409, 413, 415, 422, 429, 503)}


# ----- conversation memory ---------------------------------------------------------------------
class Conversations:
    """Server-side histories by conversation id: bounded in count, turns and idle time."""

    def __init__(self, max_conversations: int, max_turns: int, ttl_s: float, clock=time.monotonic) -> None:
        self.max_conversations, self.max_turns, self.ttl_s, self.clock = max_conversations, max_turns, ttl_s, clock
        self._items: OrderedDict[str, tuple[float, list[Turn]]] = OrderedDict()
        self._lock = threading.Lock()

    def _expire(self, now: float) -> None:
        while self._items:
            cid, (seen, _) = next(iter(self._items.items()))
            if now - seen <= self.ttl_s:
                break
            del self._items[cid]

    def history(self, cid: str) -> list[Turn]:
        with self._lock:
            self._expire(self.clock())
            item = self._items.get(cid)
            return list(item[1]) if item else []

    def append(self, cid: str, turn: Turn) -> None:
        with self._lock:
            now = self.clock()
            self._expire(now)
            turns = self._items.pop(cid, (now, []))[1]
            turns = (turns + [turn])[-self.max_turns:]
            self._items[cid] = (now, turns)  # most recently used last
            while len(self._items) > self.max_conversations:
                self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)


# ----- rate limit, body cap, headers -----------------------------------------------------------
class RateLimiter:
    """Token bucket per client: ``per_minute`` requests a minute, bursts up to the same."""

    def __init__(self, per_minute: int, clock=time.monotonic, max_clients: int = 10_000) -> None:
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self.clock, self.max_clients = clock, max_clients
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def hit(self, key: str) -> float:
        """Take one token; return 0 when allowed, else the seconds to wait."""
        with self._lock:
            now = self.clock()
            tokens, last = self._buckets.get(key, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - last) * self.rate)
            if tokens < 1.0:
                self._buckets[key] = (tokens, now)
                return (1.0 - tokens) / self.rate
            self._buckets[key] = (tokens - 1.0, now)
            if len(self._buckets) > self.max_clients:
                # Forget clients whose bucket has refilled: they lose nothing by it.
                full = [k for k, (t, seen) in self._buckets.items() if t + (now - seen) * self.rate >= self.capacity]
                for k in full:
                    del self._buckets[k]
            return 0.0


async def _send_error(send: Send, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
    response = JSONResponse({"detail": detail}, status_code=status, headers=headers)
    body = response.body
    await send({"type": "http.response.start", "status": status, "headers": response.raw_headers})
    await send({"type": "http.response.body", "body": body})


class GuardMiddleware:
    """Rate limit per client (``/api`` only), cap request bodies, add protective headers.

    Bodies are read here, up to the cap, before the app sees them, so an oversized request is
    refused with 413 however it is sent (with a Content-Length or chunked).
    """

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        self.limiter = RateLimiter(settings.rate_limit) if settings.rate_limit else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        if self.limiter is not None and path.startswith("/api") and scope.get("method") != "OPTIONS":
            client = scope.get("client")
            wait = self.limiter.hit(client[0] if client else "unknown")
            if wait:
                seconds = max(1, math.ceil(wait))
                await _send_error(
                    send, 429,
                    f"too many requests: the limit is {self.settings.rate_limit} a minute per client; retry in {seconds} s",
                    {"Retry-After": str(seconds)},
                )
                return
        headers = Headers(scope=scope)
        multipart = headers.get("content-type", "").lower().startswith("multipart/form-data")
        limit = self.settings.max_upload_bytes if multipart else self.settings.max_body_bytes
        length = headers.get("content-length")
        if length is not None:
            if not length.isdigit():
                await _send_error(send, 400, "the Content-Length header is not a number")
                return
            if int(length) > limit:
                await _send_error(send, 413, f"the request body has {int(length)} bytes; the limit is {limit}")
                return
        chunks: list[bytes] = []
        total = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body = message.get("body", b"")
            total += len(body)
            if total > limit:
                await _send_error(send, 413, f"the request body is over the limit of {limit} bytes")
                return
            chunks.append(body)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                raw = list(message.get("headers", []))
                names = {k.lower() for k, _ in raw}
                if b"x-content-type-options" not in names:
                    raw.append((b"x-content-type-options", b"nosniff"))
                if path.startswith("/api") and b"cache-control" not in names:
                    raw.append((b"cache-control", b"no-store"))
                message = {**message, "headers": raw}
            await send(message)

        await self.app(scope, replay, send_with_headers)


# ----- the app -------------------------------------------------------------------------------
def _describe_validation(errors: list[dict[str, Any]]) -> tuple[int, str, list[dict[str, Any]]]:
    parts, clean = [], []
    for e in errors:
        loc = [str(x) for x in e.get("loc", ()) if x not in ("body",)]
        msg = str(e.get("msg", "invalid"))
        msg = msg.removeprefix("Value error, ")
        if e.get("type") == "json_invalid":
            pos = e.get("loc", ("body", "?"))[-1]
            err = (e.get("ctx") or {}).get("error", "")
            return 400, f"malformed JSON at character {pos}: {err}".rstrip(": "), []
        where = ".".join(loc) or "body"
        parts.append(f"{where}: {msg}")
        clean.append({"loc": loc, "msg": msg, "type": str(e.get("type", ""))})
    return 422, "; ".join(parts[:5]) + (f" (and {len(parts) - 5} more)" if len(parts) > 5 else ""), clean


def create_app(bot: Bot, settings: Settings | None = None) -> FastAPI:
    """The answer API over ``bot``. ``settings`` default: :meth:`Settings.from_env`.

    The app warms up on start (loads or builds the index, runs the models once); ``/readyz``
    says 200 when that is done, and the ``/api`` endpoints answer 503 until then.
    """
    settings = settings or Settings.from_env()
    conversations = Conversations(settings.max_conversations, settings.max_turns, settings.conversation_ttl_s)
    ask_limiter = anyio.CapacityLimiter(settings.workers)
    write_limiter = anyio.CapacityLimiter(1)  # the Bot takes one writer at a time anyway
    state: dict[str, Any] = {"ready": False, "error": None}

    def warm_up() -> None:
        _ = bot.index  # loads the index, or builds it when there is none
        bot.embedder.embed(["warm-up"])
        bot.answerer.warm_up()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        async def run() -> None:
            try:
                await anyio.to_thread.run_sync(warm_up)
                state["ready"] = True
            except Exception as exc:  # reported by /readyz, logged once here
                log.exception("the answer API could not load its index")
                state["error"] = f"{type(exc).__name__}: {exc}"

        async with anyio.create_task_group() as tg:
            tg.start_soon(run)
            yield
            tg.cancel_scope.cancel()

    app = FastAPI(
        title="qa answer API",
        version="1",
        description="Ask questions about a folder of documents; every answer is a sentence quoted "
        "verbatim from them, with its citation (`text == document_text[start:end]`).",
        lifespan=lifespan,
    )
    app.state.bot = bot
    app.state.settings = settings
    app.state.conversations = conversations

    # ----- access ----------------------------------------------------------------------------
    # (Dependencies as defaults, not Annotated: these objects are local to create_app.)
    key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="the QA_API_KEY")
    bearer = HTTPBearer(auto_error=False, description="the QA_API_KEY as a bearer token")

    def _check_key(key: str | None, creds: HTTPAuthorizationCredentials | None) -> None:
        given = key or (creds.credentials if creds else None)
        if not given:
            raise HTTPException(401, "this endpoint needs the API key: send it as X-API-Key or Authorization: Bearer",
                                headers={"WWW-Authenticate": "Bearer"})
        if not hmac.compare_digest(given.encode("utf-8", "surrogateescape"), (settings.api_key or "").encode("utf-8")):
            raise HTTPException(401, "the API key is wrong", headers={"WWW-Authenticate": "Bearer"})

    async def read_access(
        key: str | None = Depends(key_header), creds: HTTPAuthorizationCredentials | None = Depends(bearer),
    ) -> None:
        if settings.api_key_required:
            _check_key(key, creds)

    async def write_access(
        key: str | None = Depends(key_header), creds: HTTPAuthorizationCredentials | None = Depends(bearer),
    ) -> None:
        if settings.api_key:
            _check_key(key, creds)

    async def ready() -> None:
        if not state["ready"]:
            detail = "the index is still loading; retry shortly" if not state["error"] else f"the index could not be loaded: {state['error']}"
            raise HTTPException(503, detail, headers={"Retry-After": "5"})

    # ----- errors: always a JSON message, never a stack trace ---------------------------------
    @app.exception_handler(RequestValidationError)
    async def on_validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        raw = list(exc.errors())
        if any(e.get("type") == "missing" and tuple(e.get("loc", ())) == ("body",) for e in raw):
            return JSONResponse({"detail": 'the body is empty: send a JSON object such as {"question": "..."}'}, status_code=422)
        if any(e.get("type") == "model_attributes_type" and tuple(e.get("loc", ())) == ("body",) for e in raw):
            ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
            if not (ctype == "application/json" or ctype.endswith("+json")):
                return JSONResponse({"detail": "send the body as JSON with Content-Type: application/json"}, status_code=415)
            return JSONResponse({"detail": 'the body must be a JSON object such as {"question": "..."}'}, status_code=422)
        status, detail, errors = _describe_validation(raw)
        body: dict[str, Any] = {"detail": detail}
        if errors:
            body["errors"] = errors
        return JSONResponse(body, status_code=status)

    @app.exception_handler(HTTPException)
    async def on_http(request: Request, exc: HTTPException) -> JSONResponse:
        detail = str(exc.detail)
        if exc.status_code == 400 and detail == "There was an error parsing the body":  # FastAPI's words
            detail = "the body could not be read: send UTF-8 JSON (or multipart/form-data to upload)"
        return JSONResponse({"detail": detail}, status_code=exc.status_code, headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def on_crash(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return JSONResponse({"detail": "internal error; the server log has the details"}, status_code=500)

    # ----- probes ---------------------------------------------------------------------------
    @app.get("/healthz", tags=["probes"], summary="The process is alive")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["probes"], summary="The model is loaded and the index ready",
             responses={503: {"model": ErrorModel}})
    async def readyz() -> JSONResponse:
        if not state["ready"]:
            detail = state["error"] or "loading the index"
            return JSONResponse({"status": "not ready", "detail": detail}, status_code=503, headers={"Retry-After": "5"})
        idx = bot.index
        return JSONResponse({"status": "ready", "documents": len(idx.entries), "sentences": len(idx.sentences),
                             "model": getattr(bot.embedder, "name", "")})

    # ----- answers --------------------------------------------------------------------------
    @app.post("/api/answer", tags=["answers"], summary="Answer a question with verbatim citations",
              response_model=AnswerModel, responses=_ERRORS,
              dependencies=[Depends(read_access), Depends(ready)])
    async def answer(req: AnswerRequest) -> JSONResponse:
        if req.history is not None and req.conversation_id is not None:
            raise HTTPException(422, "give either history or conversation_id, not both")
        if req.conversation_id is not None:
            history = conversations.history(req.conversation_id)
        else:
            history = [
                Turn(t.question, Answer.from_dict(t.answer.model_dump(exclude_none=True)))
                for t in (req.history or [])[-settings.max_turns:]
            ]
        try:
            result = await anyio.to_thread.run_sync(
                partial(bot.ask, req.question, history, req.docs, req.top_k), limiter=ask_limiter
            )
        except QuestionError as exc:
            # The bot checks the docs limit against the index it searches; an unknown one is a 404.
            unknown = [d for d in req.docs or () if d not in bot.index.doc_pos]
            if unknown:
                raise HTTPException(404, f"unknown document(s): {', '.join(map(repr, unknown[:10]))}; "
                                    "GET /api/documents lists them") from None
            raise HTTPException(422, str(exc)) from None
        if req.conversation_id is not None:
            conversations.append(req.conversation_id, Turn(result.question, result))
        headers = {"X-Conversation-Id": req.conversation_id} if req.conversation_id else None
        return JSONResponse(result.to_dict(), headers=headers)

    # ----- documents ------------------------------------------------------------------------
    def describe(doc_ids: list[str] | None = None) -> list[DocumentInfo]:
        idx = bot.index  # one snapshot for the whole listing
        rows = range(len(idx.entries)) if doc_ids is None else [idx.doc_pos[d] for d in doc_ids if d in idx.doc_pos]
        out = []
        for i in rows:
            e = idx.entries[i]
            a, b = idx.doc_sentences(i)
            out.append(DocumentInfo(id=e.id, title=e.meta.get("title") or "", date=e.meta.get("date"),
                                    size=len(e.text.encode("utf-8")), chars=len(e.text), sentences=b - a))
        return out

    @app.get("/api/documents", tags=["documents"], summary="List the indexed documents",
             response_model=DocumentList, responses=_ERRORS, dependencies=[Depends(read_access), Depends(ready)])
    async def list_documents() -> DocumentList:
        return DocumentList(documents=describe())

    @app.post("/api/documents", tags=["documents"], status_code=201, response_model=UploadResult,
              summary="Upload documents (.txt, .md); each is stored and indexed, all or nothing",
              responses=_ERRORS, dependencies=[Depends(write_access), Depends(ready)])
    async def upload_documents(
        files: Annotated[list[UploadFile], File(description=f"one or more UTF-8 {'/'.join(SUPPORTED_SUFFIXES)} files (field `files`)")],
        replace: Annotated[bool, Form(description="replace documents of the same name")] = False,
        replace_query: Annotated[bool, Query(alias="replace", description="same as the form field")] = False,
    ) -> UploadResult:
        replace = replace or replace_query
        if len(files) > MAX_FILES_PER_UPLOAD:
            raise HTTPException(400, f"{len(files)} files in one upload; the limit is {MAX_FILES_PER_UPLOAD}")
        items: list[tuple[str, bytes]] = []
        seen: set[str] = set()
        for f in files:
            name = f.filename or ""
            if name in seen:
                raise HTTPException(400, f"{name} is uploaded twice in one request")
            seen.add(name)
            # Read at most one byte past the limit: the check below refuses it, unread.
            data = await f.read(MAX_DOCUMENT_BYTES + 1)
            try:
                bot.check_upload(name, data, replace=replace)  # every file is checked before any is stored
            except DocumentError as exc:
                raise HTTPException(DOCUMENT_ERROR_STATUS.get(exc.kind, 400), str(exc)) from None
            items.append((name, data))
        try:
            stored, replaced = await anyio.to_thread.run_sync(partial(_store, bot, items, replace), limiter=write_limiter)
        except DocumentError as exc:
            raise HTTPException(DOCUMENT_ERROR_STATUS.get(exc.kind, 400), str(exc)) from None
        return UploadResult(documents=describe(stored), replaced=replaced)

    @app.delete("/api/documents/{doc:path}", tags=["documents"], response_model=Deleted,
                summary="Delete a document from the folder and the index",
                responses=_ERRORS, dependencies=[Depends(write_access), Depends(ready)])
    async def delete_document(doc: str) -> Deleted:
        try:
            await anyio.to_thread.run_sync(bot.delete_document, doc, limiter=write_limiter)
        except DocumentError as exc:
            raise HTTPException(DOCUMENT_ERROR_STATUS.get(exc.kind, 400), str(exc)) from None
        return Deleted(deleted=doc)

    app.add_middleware(GuardMiddleware, settings=settings)
    if settings.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware, allow_origins=list(settings.cors_origins), allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Content-Type", "X-API-Key", "Authorization"], expose_headers=["X-Conversation-Id", "Retry-After"],
        )
    return app


def _store(bot: Bot, items: list[tuple[str, bytes]], replace: bool) -> tuple[list[str], list[str]]:
    """Add every file, or none: on a failure, undo the ones already stored by this request."""
    done: list[tuple[str, bytes | None]] = []
    replaced: list[str] = []
    try:
        for name, data in items:
            previous = None
            target = bot.docs / name
            if name in bot.index.doc_pos and target.is_file():
                previous = target.read_bytes()
                replaced.append(name)
            bot.add_document(name, data, replace=replace)
            done.append((name, previous))
    except BaseException:
        for name, previous in reversed(done):
            try:
                if previous is None:
                    bot.delete_document(name)
                else:
                    bot.add_document(name, previous, replace=True)
            except Exception:  # pragma: no cover - the original error matters more
                log.exception("could not undo the upload of %s", name)
        raise
    return [name for name, _ in done], replaced
