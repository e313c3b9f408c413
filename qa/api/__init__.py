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

The routes live in routers by job (:mod:`.answers`, :mod:`.documents`, :mod:`.health`); what
they share (the bot, the settings, the limits, the access checks) comes in through
:mod:`.deps` as ``Annotated`` dependencies; :mod:`.schemas` holds the request and response
models, :mod:`.conversations` the server-side memory and :mod:`.errors` the error handlers.
"""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from typing import Callable

import anyio
from fastapi import FastAPI

from ..bot import Bot
from ..guard import GuardMiddleware, RateLimiter
from ..settings import MiB, Settings
from . import answers, documents, errors, health
from .conversations import Conversations, slim_turn
from .deps import PARSE_WORKERS, Service, StartupError

__all__ = ["Conversations", "GuardMiddleware", "MiB", "PARSE_WORKERS", "RateLimiter", "Settings", "StartupError", "create_app",
           "slim_turn"]

log = logging.getLogger(__name__)


def create_app(bot: Bot, settings: Settings | None = None, prepare: Callable[[], object] | None = None) -> FastAPI:
    """The answer API over ``bot``. ``settings`` default: :meth:`Settings.from_env`.

    The app warms up on start (loads or builds the index, or runs ``prepare``, then runs the
    models once); ``/readyz`` says 200 when that is done, and the ``/api`` endpoints answer 503
    until then. ``prepare`` may raise :class:`StartupError` for a failure it has reported.
    """
    settings = settings or Settings.from_env()
    service = Service.create(bot, settings, prepare)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        async def run() -> None:
            try:
                await anyio.to_thread.run_sync(service.warm_up)
                service.ready = True
            except StartupError as exc:
                service.error = str(exc)
            except Exception as exc:  # reported by /readyz, logged once here
                log.exception("the answer API could not load its index")
                service.error = f"{type(exc).__name__}: {exc}"

        async with anyio.create_task_group() as tg:
            tg.start_soon(run)
            yield
            service.stopping = True  # a thread cannot be cancelled; the warm-up's prepare reads this
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
    app.state.service = service  # the routes' dependencies read it (see .deps)
    app.state.settings = settings
    app.state.conversations = service.conversations
    app.state.parse_budget = service.parse_budget  # the chat page's uploads share it
    errors.install(app)
    for router in (health.router, answers.router, documents.router):
        app.include_router(router)
    if settings.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware, allow_origins=list(settings.cors_origins), allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Content-Type", "X-API-Key", "Authorization"], expose_headers=["X-Conversation-Id", "Retry-After"],
        )
    app.add_middleware(GuardMiddleware, settings=settings)  # added last: outermost, before any CORS layer
    return app
