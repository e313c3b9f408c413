"""Every setting the ``QA_*`` environment variables give: one frozen, validated value."""

from __future__ import annotations

import difflib
import ipaddress
import logging
import threading
from typing import Annotated, Any, Mapping
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from index.config import EMBEDDING_BACKENDS

READER_PRECISIONS = ("int8", "float32")
# The settings that take one of a few names: what they name, and the names.
_CHOICES = {"embedding": ("embedding backend", EMBEDDING_BACKENDS), "reader_precision": ("reader precision", READER_PRECISIONS)}

log = logging.getLogger(__name__)

MiB = 1024 * 1024
# Comma-separated in the environment ("a, b"), a tuple in code.
CommaList = Annotated[tuple[str, ...], NoDecode]


def _var(default: Any, name: str, **constraints: Any) -> Any:
    """A field read from the variable ``name`` (also its name in validation errors)."""
    return Field(default, alias=name, **constraints)


class Settings(BaseSettings):
    """Every ``QA_*`` setting, validated: ``Settings()`` reads the environment, keyword
    arguments (by field name) override it, and :meth:`from_env` reads a given mapping.

    Args:
        model: ``QA_MODEL``, the embedding model: a local sentence-transformers folder or a
            name already in the local cache; unset, the packaged all-MiniLM-L6-v2.
        embedding: ``QA_EMBED_BACKEND``, how the model runs (``auto``: torch on a CUDA GPU,
            else ``onnx-int8``; ``torch``; ``onnx``; ``onnx-int8``).
        reader_precision: ``QA_READER_PRECISION``, how the reader runs: ``int8`` weights (the
            default) or ``float32``, which reads exactly as trained and answers more questions
            right (docs/reader.md) at about 1.8 times the answer time on a CPU.
        milvus_uri: ``QA_MILVUS_URI``, with ``--backend milvus``: a server such as
            ``http://host:19530`` or a Milvus Lite file; unset, ``milvus.db`` in the index folder.
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
        max_conversations, max_turns, conversation_ttl_s, max_conversation_bytes:
            ``QA_MAX_CONVERSATIONS``, ``QA_MAX_TURNS``, ``QA_CONVERSATION_TTL_S``,
            ``QA_MAX_CONVERSATION_BYTES``: bounds of the server-side conversation memory
            (``conversation_id``).
        workers: ``QA_API_WORKERS``, questions answered at the same time (more wait their turn).
    """

    model_config = SettingsConfigDict(frozen=True, populate_by_name=True, extra="forbid", env_ignore_empty=True,
                                      str_strip_whitespace=True)

    model: str | None = _var(None, "QA_MODEL")
    embedding: str = _var("auto", "QA_EMBED_BACKEND")
    reader_precision: str = _var("int8", "QA_READER_PRECISION")
    milvus_uri: str | None = _var(None, "QA_MILVUS_URI")
    api_key: str | None = _var(None, "QA_API_KEY")
    api_key_required: bool = _var(False, "QA_API_KEY_REQUIRED")
    cors_origins: CommaList = _var((), "QA_CORS_ORIGINS")
    allowed_hosts: CommaList = _var((), "QA_ALLOWED_HOSTS")
    rate_limit: int = _var(120, "QA_RATE_LIMIT", ge=0)
    trusted_proxies: CommaList = _var((), "QA_TRUSTED_PROXIES")
    max_body_bytes: int = _var(1 * MiB, "QA_MAX_BODY_BYTES", gt=0)
    max_upload_bytes: int = _var(16 * MiB, "QA_MAX_UPLOAD_BYTES", gt=0)
    max_inflight_bytes: int = _var(64 * MiB, "QA_MAX_INFLIGHT_BYTES", gt=0)
    body_timeout_s: float = _var(60.0, "QA_BODY_TIMEOUT_S", gt=0, allow_inf_nan=False)
    header_timeout_s: float = _var(10.0, "QA_HEADER_TIMEOUT_S", gt=0, allow_inf_nan=False)
    keep_alive_s: float = _var(5.0, "QA_KEEP_ALIVE_S", gt=0, allow_inf_nan=False)
    max_connections_per_client: int = _var(100, "QA_MAX_CONNECTIONS_PER_CLIENT", gt=0)
    # Waited for with threading's locks, which refuse a longer timeout (OverflowError).
    parse_timeout_s: float = _var(10.0, "QA_PARSE_TIMEOUT_S", gt=0, le=threading.TIMEOUT_MAX, allow_inf_nan=False)
    max_pdf_pages: int = _var(2000, "QA_MAX_PDF_PAGES", gt=0)
    max_conversations: int = _var(1000, "QA_MAX_CONVERSATIONS", gt=0)
    max_turns: int = _var(20, "QA_MAX_TURNS", gt=0)
    conversation_ttl_s: float = _var(3600.0, "QA_CONVERSATION_TTL_S", gt=0, allow_inf_nan=False)
    max_conversation_bytes: int = _var(64 * MiB, "QA_MAX_CONVERSATION_BYTES", gt=0)
    workers: int = _var(4, "QA_API_WORKERS", gt=0)

    @field_validator("cors_origins", "allowed_hosts", "trusted_proxies", mode="before")
    @classmethod
    def _comma_list(cls, value: Any) -> Any:
        return tuple(x.strip() for x in value.split(",") if x.strip()) if isinstance(value, str) else value

    @field_validator("cors_origins")
    @classmethod
    def _origins(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(_origin(o) for o in value)

    @field_validator("allowed_hosts")
    @classmethod
    def _host_names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for host in value:
            if ("/" in host or ":" in host) and not _is_ip(host.strip("[]")):
                raise ValueError(f"{host!r} is not a host name: write the name alone, such as qa.example.com "
                                 "(no scheme, port or path)")
        return value

    @field_validator("api_key")
    @classmethod
    def _long_enough(cls, value: str | None) -> str | None:
        if value is not None and len(value) < 8:
            raise ValueError("QA_API_KEY is too short: use at least 8 characters (e.g. `openssl rand -hex 16`)")
        return value

    @field_validator("embedding", "reader_precision")
    @classmethod
    def _one_of(cls, value: str, info: ValidationInfo) -> str:
        what, choices = _CHOICES[info.field_name]
        if value not in choices:
            raise ValueError(f"unknown {what} {value!r}: choose one of {', '.join(choices)}")
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for proxy in value:
            try:
                ipaddress.ip_network(proxy, strict=False)
            except ValueError:
                raise ValueError(f"{proxy!r} is not an IP address or network (such as 10.0.0.0/8)") from None
        return value

    @model_validator(mode="after")
    def _consistent(self) -> "Settings":
        if self.api_key_required and not self.api_key:
            raise ValueError("QA_API_KEY_REQUIRED=1 but QA_API_KEY is not set: set the key, or drop the requirement")
        if self.max_inflight_bytes < max(self.max_body_bytes, self.max_upload_bytes):
            raise ValueError(f"QA_MAX_INFLIGHT_BYTES={self.max_inflight_bytes} is below one request's limit "
                             f"({max(self.max_body_bytes, self.max_upload_bytes)}): raise it")
        if "*" in self.cors_origins:
            log.warning("QA_CORS_ORIGINS=* lets any web page call the API, writes included, from a visitor's browser")
        if "*" in self.allowed_hosts:
            log.warning("QA_ALLOWED_HOSTS=* lets any host name through: DNS rebinding is no longer refused")
        return self

    @property
    def quantize_reader(self) -> bool:
        """Does the reader run with int8 weights (``reader_precision``)?"""
        return self.reader_precision == "int8"

    @classmethod
    def variables(cls) -> list[str]:
        """The names of the environment variables read, sorted."""
        return sorted(f.alias for f in cls.model_fields.values())

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
        """The settings of ``env`` (default: the process environment); a ``ValueError`` names
        each bad variable and why."""
        try:
            if env is None:
                return cls()
            names = cls.variables()
            return cls.model_validate({k: v for k, v in env.items() if k in names and v.strip()})
        except ValidationError as exc:
            raise ValueError(describe(exc)) from None


def misspelt(env: Mapping[str, str]) -> list[str]:
    """A warning for each ``QA_*`` variable of ``env`` that is no setting but looks like one
    (``QA_API_KEYS``): it would be ignored, and a mistyped key leaves the server open."""
    names = Settings.variables()
    warnings = []
    for var in sorted(env):
        if var.startswith("QA_") and var not in names:
            near = difflib.get_close_matches(var, names, n=1, cutoff=0.8)
            if near:
                warnings.append(f"{var} is not a setting and does nothing: did you mean {near[0]}?")
    return warnings


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _origin(text: str) -> str:
    """``text`` as browsers send an ``Origin`` (``https://b.example`` for ``HTTPS://B.example:443/``),
    or a ``ValueError``: the CORS layer compares origins as strings."""
    if text == "*":
        return text
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        parts, port = None, None
    if not parts or not parts.scheme or not parts.hostname or parts.path not in ("", "/") or parts.query \
            or parts.fragment or parts.username is not None:
        raise ValueError(f"{text!r} is not an origin: write it as a browser sends it, such as https://app.example.com "
                         "(scheme, host and port, no path)")
    scheme = parts.scheme.lower()
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    default = {"http": 80, "https": 443}.get(scheme)
    return f"{scheme}://{host}" + (f":{port}" if port is not None and port != default else "")


def describe(exc: ValidationError) -> str:
    """One line per bad setting: ``QA_NAME='value': why``."""
    lines = []
    for err in exc.errors(include_url=False):
        name = ".".join(str(x) for x in err["loc"]) or "settings"
        why = err["msg"].removeprefix("Value error, ")
        if not err["loc"] or name == "QA_API_KEY":  # a key is never echoed
            lines.append(why)
        else:
            lines.append(f"{name}={err['input']!r}: {why}")
    return "; ".join(lines)
