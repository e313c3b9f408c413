"""What every route shares, as FastAPI dependencies: the service (bot, settings, limits) and the
access and readiness checks."""

from __future__ import annotations

import hmac
import time
from dataclasses import dataclass, field
from typing import Annotated, Callable, TypeVar

import anyio
from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException

from ..bot import WRITE_DEADLINE, Bot
from ..guard import ParseBudget
from ..settings import Settings
from .conversations import Conversations


class StartupError(Exception):
    """A warm-up failure its ``prepare`` has already told the operator of: /readyz names it, and
    no traceback is logged."""


# Uploaded files parsed at once (a parse past its time budget still holds its slot).
PARSE_WORKERS = 2
# How long a write (upload, delete, feedback) waits for the one before it: an upload of megabytes
# takes minutes to embed, and a client waiting that long has given up while the write still lands.
WRITE_WAIT_S = 30.0
T = TypeVar("T")


@dataclass
class Service:
    """One app's bot and the limits its routes share; ``ready``/``error``: the warm-up's outcome."""

    bot: Bot
    settings: Settings
    conversations: Conversations
    parse_budget: ParseBudget
    ask_limiter: anyio.CapacityLimiter
    write_limiter: anyio.CapacityLimiter  # the Bot takes one writer at a time anyway
    # Brings the index up to date in the warm-up (the command line's, with progress and a
    # report); without one the index is loaded, or built when there is none.
    prepare: Callable[[], object] | None = None
    ready: bool = False
    error: str | None = field(default=None)
    stopping: bool = False  # the app is shutting down: a ``prepare`` under way should stop

    @classmethod
    def create(cls, bot: Bot, settings: Settings, prepare: Callable[[], object] | None = None) -> "Service":
        return cls(
            bot, settings,
            Conversations(settings.max_conversations, settings.max_turns, settings.conversation_ttl_s,
                          max_bytes=settings.max_conversation_bytes),
            ParseBudget(PARSE_WORKERS, settings.parse_timeout_s),
            anyio.CapacityLimiter(settings.workers), anyio.CapacityLimiter(1), prepare,
        )

    async def write(self, fn: Callable[[], T]) -> T:
        """Run ``fn``, a write, in a thread after the writes before it; a 503 when they take over
        :data:`WRITE_WAIT_S` (nothing is written then)."""
        acquired, deadline = False, time.monotonic() + WRITE_WAIT_S
        with anyio.move_on_after(WRITE_WAIT_S):
            await self.write_limiter.acquire()
            acquired = True
        if not acquired:
            raise HTTPException(503, f"another write (an upload, a deletion or a mark) has been at work for over {WRITE_WAIT_S:g} s; "
                                     "nothing was done: try again when it is done", headers={"Retry-After": "30"})

        def bounded() -> T:  # the chat page's writes take the bot's turn too: held to the same wait
            token = WRITE_DEADLINE.set(deadline)
            try:
                return fn()
            finally:
                WRITE_DEADLINE.reset(token)

        try:
            return await anyio.to_thread.run_sync(bounded)
        finally:
            self.write_limiter.release()

    def warm_up(self) -> None:
        """Prepare the index (see :attr:`prepare`) and run the models once."""
        _ = self.prepare() if self.prepare is not None else self.bot.index
        self.bot.embedder.embed(["warm-up"])
        self.bot.answerer.warm_up()


def get_service(request: Request) -> Service:
    return request.app.state.service


ServiceDep = Annotated[Service, Depends(get_service)]
KeyHeader = Annotated[str | None, Depends(APIKeyHeader(name="X-API-Key", auto_error=False, description="the QA_API_KEY"))]
Bearer = Annotated[HTTPAuthorizationCredentials | None,
                   Depends(HTTPBearer(auto_error=False, description="the QA_API_KEY as a bearer token"))]


def _check_key(expected: str | None, key: str | None, creds: HTTPAuthorizationCredentials | None) -> None:
    given = key or (creds.credentials if creds else None)
    if not given:
        raise HTTPException(401, "this endpoint needs the API key: send it as X-API-Key or Authorization: Bearer",
                            headers={"WWW-Authenticate": "Bearer"})
    if not hmac.compare_digest(given.encode("utf-8", "surrogateescape"), (expected or "").encode("utf-8")):
        raise HTTPException(401, "the API key is wrong", headers={"WWW-Authenticate": "Bearer"})


async def read_access(service: ServiceDep, key: KeyHeader, creds: Bearer) -> None:
    """Reads need the key only with ``QA_API_KEY_REQUIRED=1``."""
    if service.settings.api_key_required:
        _check_key(service.settings.api_key, key, creds)


async def write_access(service: ServiceDep, key: KeyHeader, creds: Bearer) -> None:
    """Writes need the key whenever one is set."""
    if service.settings.api_key:
        _check_key(service.settings.api_key, key, creds)


async def ready(service: ServiceDep) -> None:
    """503 with Retry-After until the warm-up is done (or naming why it failed)."""
    if not service.ready:
        detail = ("the index is still loading; retry shortly" if not service.error
                  else f"the index could not be loaded: {service.error}")
        raise HTTPException(503, detail, headers={"Retry-After": "5"})


# The dependencies of a route that reads, and of one that writes.
READ = [Depends(read_access), Depends(ready)]
WRITE = [Depends(write_access), Depends(ready)]
