"""The API's outermost layer: who may write, how much, how fast, and which origins get CORS.

:class:`GuardMiddleware` wraps the whole app, the chat page mounted on it included, so every
route gets the same rules; :class:`ParseBudget` runs the parsing of uploaded files off the
event loop within a time budget; :func:`uvicorn_options` bounds slow clients below the app
(a request head that trickles in, idle connections, connections per client).
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import math
import threading
import time
from concurrent.futures import Future
from http.cookies import SimpleCookie
from typing import Any, Callable, Iterable, TypeVar
from urllib.parse import unquote, urlsplit

import anyio
from fastapi.responses import JSONResponse
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .ingest import PARSE_DEADLINE
from .settings import Settings

T = TypeVar("T")

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# The chat page's key field stores the key in this cookie (SameSite=Strict), so the browser
# sends it with the page's own uploads; another site's requests never carry it.
KEY_COOKIE = "qa_api_key"
# Routes of the API (not of the chat page) that QA_API_KEY_REQUIRED=1 guards besides /api.
API_PAGES = ("/readyz", "/openapi.json", "/docs", "/redoc")
_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


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


class ParseBudget:
    """Run parsing in worker threads: at most ``workers`` at once, each answered within
    ``timeout_s`` (``TimeoutError`` past it). A parse past its time holds its slot until its
    thread ends: a PDF stops at its next page, other readers (bounded by their own limits) run
    to their end; the caller stops waiting at the deadline.

    :meth:`run` awaits it from the event loop (the API's upload); :meth:`call` blocks a worker
    thread (the chat page's upload). Both share the same slots and time limit.
    """

    def __init__(self, workers: int, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self._slots = threading.BoundedSemaphore(workers)

    def _start(self, fn: Callable[..., T], args: tuple[Any, ...], deadline: float) -> Future[T]:
        """Run ``fn(*args)`` in a thread of its own, which releases the slot the caller took.
        Past ``deadline`` a reader that reads page by page stops (:data:`qa.ingest.PARSE_DEADLINE`)."""
        future: Future[T] = Future()

        def work() -> None:
            PARSE_DEADLINE.set(deadline)
            try:
                future.set_result(fn(*args))
            except BaseException as exc:  # noqa: BLE001 - handed to the caller, whatever it is
                future.set_exception(exc)
            finally:
                self._slots.release()  # only when the work really ends

        threading.Thread(target=work, name="qa-parse", daemon=True).start()
        return future

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        deadline = time.monotonic() + self.timeout_s
        with anyio.fail_after(self.timeout_s):
            while not self._slots.acquire(blocking=False):
                await anyio.sleep(0.01)
            future = self._start(fn, args, deadline)
            # Polled: the event loop never blocks, and no pool thread waits on the future.
            while not future.done():
                await anyio.sleep(0.005)
        return future.result()

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        deadline = time.monotonic() + self.timeout_s
        if not self._slots.acquire(timeout=self.timeout_s):
            raise TimeoutError(f"no parse slot was free within {self.timeout_s:g} s")
        return self._start(fn, args, deadline).result(timeout=max(0.0, deadline - time.monotonic()))


def host_name(host: str) -> str:
    """``example.com`` from ``example.com:8000``, ``::1`` from ``[::1]:8000``, lower case."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    if host.count(":") == 1:
        return host.split(":", 1)[0]
    return host.rstrip(".")


def host_allowed(name: str, allowed: tuple[str, ...]) -> bool:
    """Loopback names and IP addresses always (DNS rebinding needs a name of its own); other
    names when listed (``.example.com`` covers its subdomains, ``*`` any)."""
    if not name or name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        pass
    for a in allowed:
        a = a.strip().lower()
        if a == "*" or a == name or (a.startswith(".") and (name.endswith(a) or name == a[1:])):
            return True
    return False


def parse_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address in ``1.2.3.4``, ``1.2.3.4:80``, ``::1`` or ``[::1]:80`` (an IPv4-mapped
    IPv6 address as its IPv4 one), or None."""
    for candidate in (text.strip(), host_name(text)):
        try:
            ip = ipaddress.ip_address(candidate)
        except ValueError:
            continue
        return (ip.ipv4_mapped or ip) if isinstance(ip, ipaddress.IPv6Address) else ip
    return None


class TrustedProxies:
    """The reverse proxies whose ``X-Forwarded-For`` names the client (``QA_TRUSTED_PROXIES``)."""

    def __init__(self, proxies: Iterable[str]) -> None:
        self.networks = tuple(ipaddress.ip_network(p, strict=False) for p in proxies)

    def trusts(self, address: str) -> bool:
        ip = parse_ip(address) if self.networks else None
        return ip is not None and any(ip in net for net in self.networks)

    def client(self, peer: str, forwarded_for: list[str]) -> str:
        """The client behind ``peer``: the peer itself unless it is a trusted proxy; then the
        rightmost ``X-Forwarded-For`` hop that is not one (hops left of it are the client's
        word, which anyone can forge), or the leftmost hop when all are trusted."""
        if not self.trusts(peer):
            return peer
        hops = [h.strip() for value in forwarded_for for h in value.split(",") if h.strip()]
        chosen = next((h for h in reversed(hops) if not self.trusts(h)), hops[0] if hops else peer)
        ip = parse_ip(chosen)
        return str(ip) if ip is not None else chosen[:100]  # one key per address, whatever the port


def guarded_protocol(settings: Settings) -> type[asyncio.Protocol]:
    """uvicorn's HTTP protocol with two more bounds. A request's head must arrive within
    ``header_timeout_s`` of connecting or of the previous response: uvicorn times out neither
    a new connection that trickles its headers (slowloris) nor a keep-alive one that sends a
    byte now and then. And one peer address (trusted proxies aside) may hold at most
    ``max_connections_per_client`` connections; past it a new one is closed at once."""
    from uvicorn.protocols.http.auto import AutoHTTPProtocol

    proxies = TrustedProxies(settings.trusted_proxies)
    header_timeout, per_client = settings.header_timeout_s, settings.max_connections_per_client

    class GuardedProtocol(AutoHTTPProtocol):  # type: ignore[misc, valid-type]
        _head_timer: asyncio.TimerHandle | None = None
        _waiting_after: Any = None  # the request cycle before the head awaited (None: the first)

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)
            peer = self.client[0] if self.client else None
            if peer is not None and not proxies.trusts(peer):
                held = sum(1 for c in self.connections if getattr(c, "client", None) and c.client[0] == peer)
                if held > per_client:
                    transport.close()
                    return
            self._await_head()

        def _await_head(self) -> None:
            self._cancel_head_timer()
            self._waiting_after = self.cycle
            self._head_timer = self.loop.call_later(header_timeout, self._head_timed_out)

        def _cancel_head_timer(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _head_timed_out(self) -> None:
            self._head_timer = None
            # A connection upgraded to a WebSocket has another protocol: not ours to close.
            if self.transport.get_protocol() is self and not self.transport.is_closing():
                self.transport.close()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self._head_timer is not None and self.cycle is not self._waiting_after:
                self._cancel_head_timer()  # the head is in; the body has its own limit (the guard's)

        def on_response_complete(self) -> None:
            super().on_response_complete()
            # Unless a pipelined request has already started the next cycle.
            if not self.transport.is_closing() and self.cycle is not None and self.cycle.response_complete:
                self._await_head()

        def connection_lost(self, exc: Exception | None) -> None:
            self._cancel_head_timer()
            super().connection_lost(exc)

    return GuardedProtocol


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """uvicorn settings for serving the app (``uvicorn.run(app, **uvicorn_options(s))``)."""
    return {
        "http": guarded_protocol(settings),
        "timeout_keep_alive": settings.keep_alive_s,
        # Off: uvicorn would trust X-Forwarded-For from loopback; the guard reads it itself,
        # from QA_TRUSTED_PROXIES only.
        "proxy_headers": False,
        "server_header": False,
    }


def _origin_key(url: str, default_scheme: str = "http") -> tuple[str, str, int] | None:
    try:
        parts = urlsplit(url if "://" in url else f"{default_scheme}://{url}")
        port = parts.port or _DEFAULT_PORTS.get(parts.scheme, 0)
    except ValueError:
        return None
    return (parts.scheme, (parts.hostname or "").lower(), port) if parts.hostname else None


async def send_error(send: Send, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
    response = JSONResponse({"detail": detail}, status_code=status, headers=headers)
    await send({"type": "http.response.start", "status": status, "headers": response.raw_headers})
    await send({"type": "http.response.body", "body": response.body})


class GuardMiddleware:
    """Cross-site and DNS-rebinding refusal for writes, the key where it is required, rate
    limits, byte limits on bodies (per request, per client and all together), slow-client
    timeouts, protective headers, and no CORS headers for origins not listed.

    Bodies are read here, up to the cap, before the app sees them, so an oversized request is
    refused with 413 however it is sent (with a Content-Length or chunked).
    """

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        self.limiter = RateLimiter(settings.rate_limit) if settings.rate_limit else None
        self.cors = {o.rstrip("/").lower() for o in settings.cors_origins}
        self.proxies = TrustedProxies(settings.trusted_proxies)
        self.inflight = 0  # body bytes held by requests in progress (one event loop: no lock)
        # ... and by each client: one may hold an upload and a question at once, so a few slow
        # bodies of one client cannot fill the budget and turn everyone else's questions away.
        self.inflight_by: dict[str, int] = {}
        self.client_share = settings.max_upload_bytes + settings.max_body_bytes

    # ----- who may do what --------------------------------------------------------------------
    def origin_listed(self, origin: str | None) -> bool:
        return origin is not None and ("*" in self.cors or origin.rstrip("/").lower() in self.cors)

    def refuse_write(self, scope: Scope, headers: Headers) -> str | None:
        """Why a write must be refused (a foreign Host or Origin), or None."""
        host = headers.get("host")
        if host is not None and not host_allowed(host_name(host), self.settings.allowed_hosts):
            return (f"writes addressed to host {host_name(host)!r} are refused (a DNS rebinding guard); "
                    "add the name to QA_ALLOWED_HOSTS if the server is reached by it")
        origin = headers.get("origin")
        if origin is None or self.origin_listed(origin):
            return None  # not from a browser page, or from a listed one
        scheme = scope.get("scheme", "http")
        same = host is not None and _origin_key(origin) == _origin_key(host, scheme) and _origin_key(origin) is not None
        if not same:
            return (f"cross-origin write from {origin[:100]!r} refused; "
                    "list the origin in QA_CORS_ORIGINS to allow its pages to write")
        return None

    def key_ok(self, headers: Headers, cookie: bool = False) -> bool:
        key = self.settings.api_key or ""
        given = headers.get("x-api-key")
        auth = headers.get("authorization", "")
        if given is None and auth[:7].lower() == "bearer ":
            given = auth[7:].strip()
        if given is None and cookie and "cookie" in headers:
            try:
                morsel = SimpleCookie(headers["cookie"]).get(KEY_COOKIE)
            except Exception:  # a malformed Cookie header carries no key
                morsel = None
            given = unquote(morsel.value) if morsel is not None else None  # the page URL-encodes it
        return given is not None and hmac.compare_digest(given.encode("utf-8", "surrogateescape"), key.encode("utf-8"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        method: str = scope.get("method", "GET")
        headers = Headers(scope=scope)
        s = self.settings
        if method in WRITE_METHODS:
            why = self.refuse_write(scope, headers)
            if why:
                await send_error(send, 403, why)
                return
        gradio_write = method == "POST" and "/gradio_api/" in path
        is_api = path == "/api" or path.startswith("/api/")
        if s.api_key_required and (is_api or path.startswith(API_PAGES)) and method != "OPTIONS" and not self.key_ok(headers):
            await send_error(send, 401, "this server needs the API key on every route but /healthz: send it as "
                                        "X-API-Key or Authorization: Bearer", {"WWW-Authenticate": "Bearer"})
            return
        if s.api_key and gradio_write and path.endswith("/gradio_api/upload") and not self.key_ok(headers, cookie=True):
            await send_error(send, 401, "uploading documents needs the API key: type it in the page's key field "
                                        "(or send X-API-Key)", {"WWW-Authenticate": "Bearer"})
            return
        peer = scope.get("client")
        client = self.proxies.client(peer[0] if peer else "unknown", headers.getlist("x-forwarded-for"))
        if self.limiter is not None and (is_api or gradio_write) and method != "OPTIONS":
            wait = self.limiter.hit(client)
            if wait:
                seconds = max(1, math.ceil(wait))
                await send_error(send, 429, f"too many requests: the limit is {s.rate_limit} a minute per client; "
                                            f"retry in {seconds} s", {"Retry-After": str(seconds)})
                return
        multipart = headers.get("content-type", "").lower().startswith("multipart/form-data")
        limit = s.max_upload_bytes if multipart else s.max_body_bytes
        length = headers.get("content-length")
        if length is not None:
            if not length.isdigit():
                await send_error(send, 400, "the Content-Length header is not a number")
                return
            if int(length) > limit:
                await send_error(send, 413, f"the request body has {int(length)} bytes; the limit is {limit}")
                return
        held = 0
        try:
            chunks: list[bytes] = []
            total = 0
            # A client that stalls (or drips) holds a connection and its buffer: bounded in time.
            idle = min(10.0, s.body_timeout_s / 3)
            try:
                with anyio.fail_after(s.body_timeout_s):
                    while True:
                        with anyio.fail_after(idle):
                            message = await receive()
                        if message["type"] == "http.disconnect":
                            return
                        body = message.get("body", b"")
                        total += len(body)
                        if total > limit:
                            await send_error(send, 413, f"the request body is over the limit of {limit} bytes")
                            return
                        if self.inflight + len(body) > s.max_inflight_bytes:
                            await send_error(send, 503, "the server is receiving too much at once; retry shortly",
                                             {"Retry-After": "2"})
                            return
                        if self.inflight_by.get(client, 0) + len(body) > self.client_share:
                            await send_error(send, 503, f"this client is sending over {self.client_share} bytes at "
                                                        "once in its requests; retry when they are received",
                                             {"Retry-After": "2"})
                            return
                        self.inflight += len(body)
                        self.inflight_by[client] = self.inflight_by.get(client, 0) + len(body)
                        held += len(body)
                        chunks.append(body)
                        if not message.get("more_body", False):
                            break
            except TimeoutError:
                await send_error(send, 408, f"the request body was not received in time (limit {s.body_timeout_s:g} s, "
                                            f"{idle:g} s between pieces)", {"Connection": "close"})
                return
            await self.app(scope, self._replay(chunks, receive), self._send_with_headers(send, path, headers.get("origin")))
        finally:
            self.inflight -= held
            if held:
                left = self.inflight_by.pop(client) - held
                if left:
                    self.inflight_by[client] = left

    @staticmethod
    def _replay(chunks: list[bytes], receive: Receive) -> Receive:
        body = [b"".join(chunks)]
        chunks.clear()

        async def replay() -> Message:
            if body:
                return {"type": "http.request", "body": body.pop(), "more_body": False}
            return await receive()

        return replay

    def _send_with_headers(self, send: Send, path: str, origin: str | None) -> Send:
        strip_cors = not self.origin_listed(origin)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                raw = [(k, v) for k, v in message.get("headers", [])
                       if not (strip_cors and k.lower().startswith(b"access-control-"))]
                names = {k.lower() for k, _ in raw}
                if b"x-content-type-options" not in names:
                    raw.append((b"x-content-type-options", b"nosniff"))
                if path.startswith("/api") and b"cache-control" not in names:
                    raw.append((b"cache-control", b"no-store"))
                message = {**message, "headers": raw}
            await send(message)

        return send_with_headers
