"""Real servers on loopback for the API and page tests: the app on uvicorn in a background thread."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import httpx

KEY = "test-key-0123456789"
ZEBRA = b"The Zebra Farm\n\nThe zebra farm near Oldbridge was opened by Paul Kim in 2003. It keeps 14 zebras.\n"


@dataclass
class Server:
    """A started server: its address, a client on it, the bot behind it, its documents folder and app."""

    url: str
    client: httpx.Client
    bot: Any
    corpus: Path
    app: object = None


def wait_ready(url: str, headers: dict[str, str] | None = None, timeout: float = 60.0) -> None:
    """Poll ``url``/readyz (with ``headers``) until it answers 200."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz", headers=headers, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} was not ready after {timeout} s")


def _bound_socket() -> socket.socket:
    """A socket bound to a free loopback port, for uvicorn to serve on."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@contextlib.contextmanager
def serving(app, wait: bool = True) -> Iterator[str]:
    """Run ``app`` with uvicorn in a background thread on a free loopback port; yields its URL."""
    import uvicorn

    from qa.guard import uvicorn_options
    from qa.settings import Settings

    sock = _bound_socket()
    port = sock.getsockname()[1]
    # The same protocol and timeouts as `qa serve`, from the app's settings.
    settings = getattr(getattr(app, "state", None), "settings", None) or Settings()
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on", **uvicorn_options(settings)))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        if wait:
            # With QA_API_KEY_REQUIRED=1 even /readyz needs the key.
            settings = getattr(getattr(app, "state", None), "settings", None)
            key = getattr(settings, "api_key", None) if getattr(settings, "api_key_required", False) else None
            wait_ready(url, {"X-API-Key": key} if key else None)
        else:
            deadline = time.monotonic() + 10
            while not server.started and time.monotonic() < deadline:
                time.sleep(0.02)
        yield url
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


@contextlib.contextmanager
def serving_copy(embedder, base: Path, settings, source: Path | None = None) -> Iterator[Server]:
    """The API (``settings``) over a copy of ``source`` (default the test corpus) in ``base``,
    indexed with the real model, on a loopback port, with a client."""
    import shutil

    from qa.api import create_app
    from qa.bot import Bot

    corpus = base / "corpus"
    shutil.copytree(source or Path(__file__).parent / "data" / "corpus", corpus)
    bot = Bot(corpus, index_dir=base / "index", embedder=embedder)
    bot.sync()
    with serving(create_app(bot, settings)) as url, httpx.Client(base_url=url, timeout=60) as client:
        yield Server(url, client, bot, corpus)


def pause_writes(monkeypatch: Any, bot: Any) -> tuple[threading.Event, threading.Event]:
    """Writes of ``bot`` stop before they update the index: the first event is set when one is
    there, and it goes on once the second is set."""
    writing, finish = threading.Event(), threading.Event()
    update = bot.retriever.update

    def paused_update(*args, **kwargs):
        writing.set()
        assert finish.wait(30)
        return update(*args, **kwargs)

    monkeypatch.setattr(bot.retriever, "update", paused_update)
    return writing, finish
