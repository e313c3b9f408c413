"""Real servers on loopback for the API and page tests: a uvicorn thread, or a process to wait for."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import threading
import time
from typing import Iterator

import httpx


def bound_socket() -> socket.socket:
    """A socket bound to a free loopback port (hand it to uvicorn, or close it to free the port)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


def wait_ready(url: str, timeout: float = 60.0, proc: subprocess.Popen | None = None) -> None:
    """Poll ``url``/readyz until it answers 200; fail early if ``proc`` exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            out = proc.stderr or proc.stdout
            raise AssertionError(f"server exited with {proc.returncode}: {out.read()[-2000:] if out else ''}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"{url} did not become ready in {timeout} s")


@contextlib.contextmanager
def serving(app, wait: bool = True) -> Iterator[str]:
    """Run ``app`` with uvicorn in a background thread on a free loopback port; yields its URL."""
    import uvicorn

    sock = bound_socket()
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on", proxy_headers=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        if wait:
            wait_ready(url)
        else:
            deadline = time.monotonic() + 10
            while not server.started and time.monotonic() < deadline:
                time.sleep(0.02)
        yield url
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
