"""The answer API's settings: one frozen value, read from the ``QA_*`` environment variables."""

from __future__ import annotations

import ipaddress
import logging
import os
from dataclasses import dataclass
from typing import Mapping

log = logging.getLogger(__name__)

MiB = 1024 * 1024


def _env_bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{name}={raw!r}: use 1 or 0")


def _env_number(env: Mapping[str, str], name: str, default, kind=int):
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return kind(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a {'whole ' if kind is int else ''}number") from None


def _env_list(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in env.get(name, "").split(",") if x.strip())


_ENV_NAMES = {
    "rate_limit": "QA_RATE_LIMIT", "max_body_bytes": "QA_MAX_BODY_BYTES", "max_upload_bytes": "QA_MAX_UPLOAD_BYTES",
    "workers": "QA_API_WORKERS", "max_inflight_bytes": "QA_MAX_INFLIGHT_BYTES", "body_timeout_s": "QA_BODY_TIMEOUT_S",
    "parse_timeout_s": "QA_PARSE_TIMEOUT_S", "max_conversation_bytes": "QA_MAX_CONVERSATION_BYTES",
    "header_timeout_s": "QA_HEADER_TIMEOUT_S", "keep_alive_s": "QA_KEEP_ALIVE_S",
    "max_connections_per_client": "QA_MAX_CONNECTIONS_PER_CLIENT", "max_pdf_pages": "QA_MAX_PDF_PAGES",
}


@dataclass(frozen=True)
class Settings:
    """How the API guards itself. :meth:`from_env` reads the ``QA_*`` environment variables.

    Args:
        api_key: ``QA_API_KEY``; when set, writes need it (uploads, deletions, and the chat
            page's upload route), sent as ``X-API-Key`` or ``Authorization: Bearer KEY``.
        api_key_required: ``QA_API_KEY_REQUIRED=1``: every route but ``/healthz`` needs the key
            (the chat page asks for it at its login).
        cors_origins: ``QA_CORS_ORIGINS``, comma-separated: the other origins (web pages) that may
            call the API from a browser, writes included; empty (the default) allows none.
        allowed_hosts: ``QA_ALLOWED_HOSTS``, comma-separated host names writes may be addressed
            to besides loopback names (``localhost``) and IP addresses; ``.example.com`` allows
            its subdomains, ``*`` any name. Refusing other names defeats DNS rebinding.
        rate_limit: ``QA_RATE_LIMIT``, requests per minute per client address on ``/api`` and
            the chat page's uploads and questions (bursts up to the same number); 0 turns it off.
        trusted_proxies: ``QA_TRUSTED_PROXIES``, comma-separated addresses or networks
            (``10.0.0.0/8``) of reverse proxies in front of the server. A request from one of
            them is counted against the client its ``X-Forwarded-For`` names (the rightmost
            address that is not itself a trusted proxy); from any other peer the header is
            ignored. Empty (the default): the peer address is the client. Trusted proxies are
            also exempt from ``max_connections_per_client``.
        max_body_bytes: ``QA_MAX_BODY_BYTES``, the largest request body other than uploads.
        max_upload_bytes: ``QA_MAX_UPLOAD_BYTES``, the largest multipart upload body (all
            files together; each file is also held to the per-document limit).
        max_inflight_bytes: ``QA_MAX_INFLIGHT_BYTES``, request bodies held at once, all
            clients together; past it a request is refused with 503 and Retry-After.
        body_timeout_s: ``QA_BODY_TIMEOUT_S``, the time a client has to send a whole body
            (and at most a third of it between two pieces); a slower one gets 408.
        header_timeout_s: ``QA_HEADER_TIMEOUT_S``, the time a client has to send a request's
            head (request line and headers), counted from connecting or from the end of the
            previous response; a slower one (slowloris) is disconnected. The head's size is
            bounded by h11 (16 KiB; past it a 400).
        keep_alive_s: ``QA_KEEP_ALIVE_S``, how long an idle keep-alive connection stays open
            waiting for the next request (uvicorn's ``timeout_keep_alive``).
        max_connections_per_client: ``QA_MAX_CONNECTIONS_PER_CLIENT``, open connections one
            peer address may hold; past it new ones are closed at once.
        parse_timeout_s: ``QA_PARSE_TIMEOUT_S``, the time reading an uploaded file may take.
        max_pdf_pages: ``QA_MAX_PDF_PAGES``, the most pages a PDF may have; a longer one is
            refused.
        max_conversations, max_turns, conversation_ttl_s, max_conversation_bytes: bounds of the
            server-side conversation memory (``conversation_id``); the bytes are
            ``QA_MAX_CONVERSATION_BYTES``.
        workers: questions answered at the same time (more wait their turn).
    """

    api_key: str | None = None
    api_key_required: bool = False
    cors_origins: tuple[str, ...] = ()
    allowed_hosts: tuple[str, ...] = ()
    rate_limit: int = 120
    trusted_proxies: tuple[str, ...] = ()
    max_body_bytes: int = 1 * MiB
    max_upload_bytes: int = 16 * MiB
    max_inflight_bytes: int = 64 * MiB
    body_timeout_s: float = 60.0
    header_timeout_s: float = 10.0
    keep_alive_s: float = 5.0
    max_connections_per_client: int = 100
    parse_timeout_s: float = 10.0
    max_pdf_pages: int = 2000
    max_conversations: int = 1000
    max_turns: int = 20
    conversation_ttl_s: float = 3600.0
    max_conversation_bytes: int = 64 * MiB
    workers: int = 4

    def __post_init__(self) -> None:
        if self.api_key is not None and len(self.api_key) < 8:
            raise ValueError("QA_API_KEY is too short: use at least 8 characters (e.g. `openssl rand -hex 16`)")
        if self.api_key_required and not self.api_key:
            raise ValueError("QA_API_KEY_REQUIRED=1 but QA_API_KEY is not set: set the key, or drop the requirement")
        for name in ("rate_limit", "max_conversations", "max_turns", "workers", "max_body_bytes", "max_upload_bytes",
                     "max_inflight_bytes", "max_conversation_bytes", "max_connections_per_client", "max_pdf_pages"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0 or (value == 0 and name != "rate_limit"):
                label = _ENV_NAMES.get(name, name)
                raise ValueError(f"{label}={value!r} must be a positive whole number" + (" (or 0 to turn it off)" if name == "rate_limit" else ""))
        for name in ("body_timeout_s", "header_timeout_s", "keep_alive_s", "parse_timeout_s", "conversation_ttl_s"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"{_ENV_NAMES.get(name, name)}={value!r} must be a positive number of seconds")
        if self.max_inflight_bytes < max(self.max_body_bytes, self.max_upload_bytes):
            raise ValueError(f"QA_MAX_INFLIGHT_BYTES={self.max_inflight_bytes} is below one request's limit "
                             f"({max(self.max_body_bytes, self.max_upload_bytes)}): raise it")
        for proxy in self.trusted_proxies:
            try:
                ipaddress.ip_network(proxy, strict=False)
            except ValueError:
                raise ValueError(f"QA_TRUSTED_PROXIES: {proxy!r} is not an IP address or network (such as 10.0.0.0/8)") from None
        if "*" in self.cors_origins:
            log.warning("QA_CORS_ORIGINS=* lets any web page call the API, writes included, from a visitor's browser")
        if "*" in self.allowed_hosts:
            log.warning("QA_ALLOWED_HOSTS=* lets any host name through: DNS rebinding is no longer refused")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
        """Read the ``QA_*`` variables; raise ``ValueError`` naming the bad one."""
        env = os.environ if env is None else env
        return cls(
            api_key=env.get("QA_API_KEY") or None,
            api_key_required=_env_bool(env, "QA_API_KEY_REQUIRED", False),
            cors_origins=_env_list(env, "QA_CORS_ORIGINS"),
            allowed_hosts=_env_list(env, "QA_ALLOWED_HOSTS"),
            rate_limit=_env_number(env, "QA_RATE_LIMIT", cls.rate_limit),
            trusted_proxies=_env_list(env, "QA_TRUSTED_PROXIES"),
            max_body_bytes=_env_number(env, "QA_MAX_BODY_BYTES", cls.max_body_bytes),
            max_upload_bytes=_env_number(env, "QA_MAX_UPLOAD_BYTES", cls.max_upload_bytes),
            max_inflight_bytes=_env_number(env, "QA_MAX_INFLIGHT_BYTES", cls.max_inflight_bytes),
            body_timeout_s=_env_number(env, "QA_BODY_TIMEOUT_S", cls.body_timeout_s, float),
            header_timeout_s=_env_number(env, "QA_HEADER_TIMEOUT_S", cls.header_timeout_s, float),
            keep_alive_s=_env_number(env, "QA_KEEP_ALIVE_S", cls.keep_alive_s, float),
            max_connections_per_client=_env_number(env, "QA_MAX_CONNECTIONS_PER_CLIENT", cls.max_connections_per_client),
            parse_timeout_s=_env_number(env, "QA_PARSE_TIMEOUT_S", cls.parse_timeout_s, float),
            max_pdf_pages=_env_number(env, "QA_MAX_PDF_PAGES", cls.max_pdf_pages),
            max_conversation_bytes=_env_number(env, "QA_MAX_CONVERSATION_BYTES", cls.max_conversation_bytes),
            workers=_env_number(env, "QA_API_WORKERS", cls.workers),
        )
