"""The answer API: FastAPI over one :class:`~qa.bot.Bot`, safe to expose.

``create_app(bot)`` builds the app (there is no module-level app, so tests and the chat page
inject their own bot). Everything lives under ``/api`` plus the probes ``/healthz`` and
``/readyz`` and the OpenAPI description (``/openapi.json``); ``/`` is left free for the chat
page, which can be mounted on the same app later (``gradio.mount_gradio_app(app, blocks,
path="/")``): routes declared here take precedence over a mount at ``/``.

Safety at the edge: request models validate every field and bad input gets a 4xx with a
message (never a 5xx or a stack trace); :class:`~qa.guard.GuardMiddleware` wraps everything
(the chat page too): writes from foreign origins or to foreign host names are refused, bodies
are capped alone and together, slow clients time out, each client is rate limited, an API key
guards the writes (or every route but ``/healthz``), and CORS is closed unless origins are
listed. Uploaded files are parsed once, in worker threads, within a time budget. The Bot's
methods are CPU-bound and synchronous, so they run in worker threads; the model is loaded once
in the Bot and shared by all requests. There are no ``/docs`` or ``/redoc`` pages: they would
load their scripts from a CDN; ``/openapi.json`` describes the API.
"""

from __future__ import annotations

import errno
import hmac
import logging
import sys
import threading
import time
from collections import OrderedDict
from contextlib import asynccontextmanager
from dataclasses import replace as _replace
from functools import partial
from datetime import date
from typing import TYPE_CHECKING, Annotated, Any, Callable, Literal

import anyio
from fastapi import Depends, FastAPI, File, Form, Path, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator
from starlette.exceptions import HTTPException

from .bot import MAX_QUESTION_CHARS, Bot, DocumentError, NoDocumentsError, QuestionError, Turn, check_question, refuse_twins
from .feedback import FeedbackError
from .guard import GuardMiddleware, ParseBudget, RateLimiter
from .ingest import SUPPORTED_SUFFIXES, max_bytes
from .pages import PageError
from .settings import MiB, Settings
from .types import Answer, Document

if TYPE_CHECKING:
    from index.store import HybridIndex

__all__ = ["Conversations", "GuardMiddleware", "MiB", "RateLimiter", "Settings", "create_app"]

log = logging.getLogger(__name__)

MAX_FILES_PER_UPLOAD = 20
# Uploaded files parsed at once (a parse past its time budget still holds its slot).
PARSE_WORKERS = 2
# What the conversation memory keeps of an answer's texts: later turns read only the short
# answer and the top citation's place, never the quoted sentence.
KEPT_CHARS = 1000
# HTTP status for each DocumentError kind (see qa.bot.DocumentError).
DOCUMENT_ERROR_STATUS = {"invalid": 400, "unsupported": 415, "too_large": 413, "exists": 409, "missing": 404}


# ----- request and response models -----------------------------------------------------------
def _valid_unicode(value: str) -> str:
    # JSON may carry lone surrogates ("\ud800"); they cannot be encoded, embedded or echoed.
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("contains invalid Unicode (a lone surrogate); send UTF-8 text") from None
    return value


Text = Annotated[str, AfterValidator(_valid_unicode)]


def _question_ok(value: str) -> str:
    check_question(value)  # its QuestionError is a ValueError: pydantic reports it as a 422
    return value


QuestionText = Annotated[Text, AfterValidator(_question_ok)]


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
    score: float = Field(0.0, allow_inf_nan=False, ge=-1e6, le=1e6)


class CorroborationModel(BaseModel):
    """Another document's verbatim sentence answering the same question, and whether its short
    answer agrees with the answer's."""

    model_config = ConfigDict(extra="ignore")
    doc: Text = Field(max_length=1024)
    title: Text = Field("", max_length=10_000)
    text: Text = Field(max_length=100_000, description="the sentence, verbatim")
    start: int = Field(ge=0)
    end: int = Field(ge=0)
    answer: Text = Field(max_length=100_000, description="its short answer")
    agrees: bool = Field(description="its short answer says the same as the answer (dates, numbers and names normalised)")
    confidence: float = Field(0.0, ge=0.0, le=1.0)
    answer_start: int | None = Field(None, ge=0)
    answer_end: int | None = Field(None, ge=0)
    date: Text | None = Field(None, max_length=64, description="its document's date")
    answer_date: Text | None = Field(None, max_length=64)


class AnswerModel(BaseModel):
    """The Answer JSON (see GUIDE.md), as returned by ``POST /api/answer``."""

    model_config = ConfigDict(extra="ignore")
    question: Text = Field(max_length=MAX_QUESTION_CHARS * 2)
    searched_for: Text | None = Field(None, max_length=MAX_QUESTION_CHARS * 4, description="the follow-up, resolved")
    abstained: bool = False
    answer: Text | None = Field(None, max_length=100_000, description="the short answer; null when abstaining")
    confidence: float = Field(0.0, ge=0.0, le=1.0, description="from 0 to 1")
    citations: list[CitationModel] = Field(default_factory=list, max_length=20)
    timings_ms: dict[Text, Annotated[float, Field(allow_inf_nan=False, ge=0, le=1e9)]] = Field(default_factory=dict, max_length=20)
    answer_date: Text | None = Field(None, max_length=64, description="the short answer as an ISO 8601 date, when it is one")
    corroboration: list[CorroborationModel] = Field(
        default_factory=list, max_length=20, description="other documents' sentences answering the same question, newest first")


class TurnModel(BaseModel):
    """An earlier exchange: the question and the Answer JSON the bot gave."""

    model_config = ConfigDict(extra="ignore")
    question: Text = Field(max_length=MAX_QUESTION_CHARS * 2)
    answer: AnswerModel


class AnswerRequest(BaseModel):
    """A question, with the conversation so far (``history``, or ``conversation_id`` to let
    the server remember it), optionally limited to some documents."""

    model_config = ConfigDict(extra="forbid")
    question: QuestionText = Field(
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
    after: date | None = Field(None, description="only documents dated on or after this day (YYYY-MM-DD)")
    before: date | None = Field(None, description="only documents dated on or before this day (YYYY-MM-DD)")


class SpanModel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    doc: Text = Field(min_length=1, max_length=1024)
    start: int = Field(ge=0)
    end: int = Field(ge=0)


class FeedbackRequest(BaseModel):
    """A user's mark on an answer: right, or wrong with the sentence that answers instead
    (``evidence``, a citation's or closest match's ``doc``/``start``/``end``) or
    ``not_answered`` when the documents do not answer."""

    model_config = ConfigDict(extra="forbid")
    question: QuestionText = Field(description="the question that was answered")
    answer: AnswerModel = Field(description="the Answer JSON being marked")
    history: list[TurnModel] | None = Field(None, max_length=100, description="the turns before it, oldest first")
    docs: list[Annotated[Text, Field(min_length=1, max_length=1024)]] | None = Field(
        None, min_length=1, max_length=1000, description="the documents the conversation was limited to")
    verdict: Literal["right", "wrong"]
    evidence: SpanModel | None = Field(None, description="with `wrong`: the sentence that answers")
    not_answered: bool = Field(False, description="with `wrong`: the documents do not answer the question")

    @model_validator(mode="after")
    def _one_correction(self) -> "FeedbackRequest":
        if self.verdict == "wrong" and (self.evidence is None) == (not self.not_answered):
            raise ValueError("a wrong answer needs either `evidence` (the sentence that answers) or `not_answered: true`")
        if self.verdict == "right" and (self.evidence is not None or self.not_answered):
            raise ValueError("a right answer takes no `evidence` or `not_answered`")
        return self


class FeedbackResult(BaseModel):
    id: str = Field(description="the eval-set conversation the mark became")
    turns: int = Field(description="its turns (the earlier ones replayed, the last scored)")


class DocumentInfo(BaseModel):
    id: str = Field(description="path relative to the corpus folder")
    title: str
    date: str | None = Field(description="publication date (ISO), when the document gives one")
    kind: str = Field(description="what it was read from: text, markdown, pdf, docx or html")
    pages: int | None = Field(None, description="a PDF's page count")
    size: int = Field(description="length of the text in UTF-8 bytes")
    chars: int = Field(description="length of the text in characters")
    sentences: int


class DocumentText(DocumentInfo):
    text: str = Field(description="the extracted text every citation's start/end point into")


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
FEEDBACK_ERROR_STATUS = {"invalid": 422, "missing": 404, "full": 507}


# ----- conversation memory ---------------------------------------------------------------------
def turn_size(turn: Any) -> int:
    """Bytes a stored turn holds (its strings, plus a fixed overhead)."""
    if not isinstance(turn, Turn):
        return sys.getsizeof(turn)
    a = turn.answer
    strings = [turn.question, a.question, a.searched_for, a.answer or ""]
    for c in a.citations:
        strings += [c.doc, c.title, c.text]
    return 512 + sum(sys.getsizeof(x) for x in strings)


def slim_turn(turn: Turn) -> Turn:
    """What a later turn reads of an earlier one: the question, the search, the short answer,
    the confidence and the top citation's place (its quoted text cut short)."""
    a = turn.answer
    top = tuple(_replace(c, title="", text=c.text[:KEPT_CHARS]) for c in a.citations[:1])
    answer = a.answer[:KEPT_CHARS] if a.answer else a.answer
    return Turn(turn.question[:KEPT_CHARS * 4], _replace(a, question=a.question[:KEPT_CHARS * 4], searched_for=a.searched_for[:KEPT_CHARS * 4],
                                                        answer=answer, citations=top, timings_ms={}, passages=(), corroboration=()))


class Conversations:
    """Server-side histories by conversation id: bounded in count, turns, bytes and idle time.

    Past ``max_bytes`` (the sum of ``size(turn)`` over every stored turn) the least recently
    used conversations are forgotten first.
    """

    def __init__(self, max_conversations: int, max_turns: int, ttl_s: float, clock=time.monotonic,
                 max_bytes: int = 64 * MiB, size: Callable[[Any], int] = turn_size) -> None:
        self.max_conversations, self.max_turns, self.ttl_s, self.clock = max_conversations, max_turns, ttl_s, clock
        self.max_bytes, self.size = max_bytes, size
        self.bytes = 0
        self._items: OrderedDict[str, tuple[float, list[tuple[Turn, int]]]] = OrderedDict()
        self._lock = threading.Lock()

    def _drop(self, cid: str) -> None:
        _, turns = self._items.pop(cid)
        self.bytes -= sum(n for _, n in turns)

    def _expire(self, now: float) -> None:
        while self._items:
            cid, (seen, _) = next(iter(self._items.items()))
            if now - seen <= self.ttl_s:
                break
            self._drop(cid)

    def history(self, cid: str) -> list[Turn]:
        with self._lock:
            self._expire(self.clock())
            item = self._items.get(cid)
            return [t for t, _ in item[1]] if item else []

    def append(self, cid: str, turn: Turn) -> None:
        size = self.size(turn)
        with self._lock:
            now = self.clock()
            self._expire(now)
            turns = []
            if cid in self._items:
                turns = self._items[cid][1]
                self._drop(cid)
            turns = (turns + [(turn, size)])[-self.max_turns:]
            while len(turns) > 1 and sum(n for _, n in turns) > self.max_bytes:
                turns.pop(0)  # one conversation alone never holds more than the whole budget
            self._items[cid] = (now, turns)  # most recently used last
            self.bytes += sum(n for _, n in turns)
            while len(self._items) > self.max_conversations or (self.bytes > self.max_bytes and len(self._items) > 1):
                self._drop(next(iter(self._items)))

    def __len__(self) -> int:
        return len(self._items)


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
    conversations = Conversations(settings.max_conversations, settings.max_turns, settings.conversation_ttl_s,
                                  max_bytes=settings.max_conversation_bytes)
    parse_budget = ParseBudget(PARSE_WORKERS, settings.parse_timeout_s)
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
        # Swagger UI and ReDoc load their scripts and fonts from a CDN: off, so nothing leaves
        # the machine; /openapi.json stays for clients and tools.
        docs_url=None,
        redoc_url=None,
    )
    app.state.bot = bot
    app.state.settings = settings
    app.state.conversations = conversations
    app.state.parse_budget = parse_budget  # the chat page's uploads share it

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
        after, before = (d.isoformat() if d else None for d in (req.after, req.before))
        try:
            result = await anyio.to_thread.run_sync(
                partial(bot.ask, req.question, history, req.docs, req.top_k, after, before), limiter=ask_limiter
            )
        except NoDocumentsError as exc:
            raise HTTPException(404, f"{exc}; GET /api/documents lists their dates") from None
        except QuestionError as exc:
            # The bot checks the docs limit against the index it searches; an unknown one is a 404.
            unknown = [d for d in req.docs or () if d not in bot.index.doc_pos]
            if unknown:
                raise HTTPException(404, f"unknown document(s): {', '.join(map(repr, unknown[:10]))}; "
                                    "GET /api/documents lists them") from None
            raise HTTPException(422, str(exc)) from None
        if req.conversation_id is not None:
            conversations.append(req.conversation_id, slim_turn(Turn(result.question, result)))
        headers = {"X-Conversation-Id": req.conversation_id} if req.conversation_id else None
        return JSONResponse(result.to_dict(), headers=headers)

    @app.post("/api/feedback", tags=["answers"], status_code=201, response_model=FeedbackResult, responses=_ERRORS,
              summary="Mark an answer right or wrong; the mark becomes an eval-set conversation",
              dependencies=[Depends(write_access), Depends(ready)])
    async def feedback(req: FeedbackRequest) -> FeedbackResult:
        answer = Answer.from_dict(req.answer.model_dump(exclude_none=True))
        evidence = (req.evidence.doc, req.evidence.start, req.evidence.end) if req.evidence else None
        earlier = [t.question for t in (req.history or [])[-settings.max_turns:]]
        try:
            record = await anyio.to_thread.run_sync(
                partial(bot.record_feedback, req.question, answer, req.verdict, earlier, evidence, req.docs),
                limiter=write_limiter,
            )
        except FeedbackError as exc:
            raise HTTPException(FEEDBACK_ERROR_STATUS[exc.kind], str(exc)) from None
        return FeedbackResult(id=record["id"], turns=len(record["turns"]))

    # ----- documents ------------------------------------------------------------------------
    def describe(doc_ids: list[str] | None = None, idx: HybridIndex | None = None) -> list[DocumentInfo]:
        idx = idx or bot.index  # one snapshot for the whole listing
        rows = range(len(idx.entries)) if doc_ids is None else [idx.doc_pos[d] for d in doc_ids if d in idx.doc_pos]
        out = []
        for i in rows:
            e = idx.entries[i]
            a, b = idx.doc_sentences(i)
            out.append(DocumentInfo(id=e.id, title=e.meta.get("title") or "", date=e.meta.get("date"),
                                    kind=e.meta.get("kind") or "text", pages=e.meta.get("pages"),
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
        files: Annotated[list[UploadFile], File(description=f"one or more {'/'.join(SUPPORTED_SUFFIXES)} files (field `files`)")],
        replace: Annotated[bool, Form(description="replace documents of the same name")] = False,
        replace_query: Annotated[bool, Query(alias="replace", description="same as the form field")] = False,
    ) -> UploadResult:
        replace = replace or replace_query
        if len(files) > MAX_FILES_PER_UPLOAD:
            raise HTTPException(400, f"{len(files)} files in one upload; the limit is {MAX_FILES_PER_UPLOAD}")
        try:
            refuse_twins([f.filename or "" for f in files])
        except DocumentError as exc:
            raise HTTPException(DOCUMENT_ERROR_STATUS.get(exc.kind, 400), str(exc)) from None
        items: list[tuple[str, bytes, Document]] = []
        for f in files:
            name = f.filename or ""
            # Read at most one byte past the limit: the check below refuses it, unread.
            data = await f.read(max_bytes(name) + 1)
            try:
                # Every file is checked (parsed, off the event loop) before any is stored.
                doc = await parse_budget.run(partial(bot.check_upload, name, data, replace=replace))
            except DocumentError as exc:
                raise HTTPException(DOCUMENT_ERROR_STATUS.get(exc.kind, 400), str(exc)) from None
            except TimeoutError:
                raise HTTPException(422, f"{name}: reading the file took longer than {settings.parse_timeout_s:g} s; "
                                         "split it into smaller files") from None
            items.append((doc.id, data, doc))
        try:
            upload = await anyio.to_thread.run_sync(partial(bot.add_documents, items, replace), limiter=write_limiter)
        except DocumentError as exc:
            raise HTTPException(DOCUMENT_ERROR_STATUS.get(exc.kind, 400), str(exc)) from None
        except OSError as exc:
            status = _OS_ERROR_STATUS.get(exc.errno or 0)
            if status is None:
                raise
            raise HTTPException(status, f"the file could not be stored: {exc.strerror}") from None
        return UploadResult(documents=describe([d.id for d in upload.documents]), replaced=list(upload.replaced))

    # Declared before the document route: its {doc:path} would take the page's path too.
    @app.get("/api/documents/{doc:path}/pages/{page}.png", tags=["documents"], response_class=Response,
             summary="A PDF page as an image, with a sentence and its short answer highlighted",
             responses={200: {"content": {"image/png": {}}}, **_ERRORS},
             dependencies=[Depends(read_access), Depends(ready)])
    async def page_image(
        doc: str, page: Annotated[int, Path(ge=1, description="1-based page number")],
        start: Annotated[int | None, Query(ge=0, description="the sentence's start (a citation's `start`)")] = None,
        end: Annotated[int | None, Query(ge=0, description="the sentence's end")] = None,
        answer_start: Annotated[int | None, Query(ge=0, description="the short answer's start, inside the sentence")] = None,
        answer_end: Annotated[int | None, Query(ge=0, description="the short answer's end, inside the sentence")] = None,
    ) -> Response:
        sentence = (start, end) if start is not None and end is not None else None
        answer = None
        if sentence is not None and answer_start is not None and answer_end is not None:
            answer = (start + answer_start, start + answer_end)
        try:
            png = await parse_budget.run(partial(bot.page_png, doc, page, sentence, answer))
        except (DocumentError, PageError) as exc:
            raise HTTPException(409 if exc.kind == "changed" else 404, str(exc)) from None
        except TimeoutError:
            raise HTTPException(503, f"drawing page {page} took longer than {settings.parse_timeout_s:g} s") from None
        return Response(png, media_type="image/png", headers={"Cache-Control": "private, max-age=300"})

    @app.get("/api/documents/{doc:path}", tags=["documents"], response_model=DocumentText,
             summary="One document: its metadata and the extracted text citations point into",
             responses=_ERRORS, dependencies=[Depends(read_access), Depends(ready)])
    async def get_document(doc: str) -> DocumentText:
        idx = bot.index
        if doc not in idx.doc_pos:
            raise HTTPException(404, f"no document {doc!r}; GET /api/documents lists them")
        info = describe([doc], idx)[0]  # the same snapshot: the document cannot vanish in between
        return DocumentText(**info.model_dump(), text=idx.entries[idx.doc_pos[doc]].text)

    @app.delete("/api/documents/{doc:path}", tags=["documents"], response_model=Deleted,
                summary="Delete a document from the folder and the index",
                responses=_ERRORS, dependencies=[Depends(write_access), Depends(ready)])
    async def delete_document(doc: str) -> Deleted:
        try:
            await anyio.to_thread.run_sync(bot.delete_document, doc, limiter=write_limiter)
        except DocumentError as exc:
            raise HTTPException(DOCUMENT_ERROR_STATUS.get(exc.kind, 400), str(exc)) from None
        return Deleted(deleted=doc)

    if settings.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware, allow_origins=list(settings.cors_origins), allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Content-Type", "X-API-Key", "Authorization"], expose_headers=["X-Conversation-Id", "Retry-After"],
        )
    app.add_middleware(GuardMiddleware, settings=settings)  # added last: outermost, before any CORS layer
    return app


# OS errors an upload can meet that are the request's doing, not the server's.
_OS_ERROR_STATUS = {errno.ENAMETOOLONG: 400, errno.EISDIR: 409, errno.ENOTDIR: 409, errno.EEXIST: 409}
