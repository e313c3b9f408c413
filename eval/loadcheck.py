"""Load check of the answer API: concurrent clients ask questions while a document comes and goes.

    python -m eval.loadcheck --docs documents --clients 8 --seconds 60

Without ``--url`` it copies ``--docs`` to a temporary folder and starts ``qa serve`` over the copy
on a free loopback port (rate limit off, a random API key for the writes), so the real folder is
never touched. ``--clients`` clients then replay the conversations of ``--set`` (follow-ups go
through ``conversation_id``, so the server keeps their history) for ``--seconds`` seconds, while a
writer uploads a document, asks about it, deletes it and checks it is gone, over and over.
Beside them two hostile clients upload, with the right key, what must always be refused: a
cross-origin one (``Origin: https://evil.example``, as any web page the user visits could) and an
oversized-name one (names of 300 characters, and 130 x "€": 390 bytes).

Every answer is checked: status 200, the Answer JSON's keys, and each citation verbatim
(``text == document_text[start:end]``, with the text read from the files). It prints throughput,
p50/p95/p99 latency, the error count, the 5xx count over every client, and what the hostile
clients got; it exits 1 on any error, non-verbatim citation, 5xx, or hostile upload accepted or
stored.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from eval.harness import load_set, percentile

ROOT = Path(__file__).resolve().parents[1]
ANSWER_KEYS = {"question", "searched_for", "abstained", "answer", "confidence", "citations", "timings_ms"}
OPTIONAL_KEYS = {"answer_date", "corroboration"}  # present when they apply
UPLOAD_NAME = "loadcheck-observatory.txt"
UPLOAD_TEXT = (
    "The Loadcheck Observatory\n\n"
    "The Loadcheck Observatory was founded by the astronomer Irene Vasquez in 1931. "
    "Its main telescope has a mirror 2.5 metres wide. "
    "The observatory stands on Mount Pellor, 2,100 metres above the sea.\n"
)
UPLOAD_QUESTION = "Who founded the Loadcheck Observatory?"
UPLOAD_ANSWER = "Irene Vasquez"
HOSTILE_ORIGIN = "https://evil.example"
CROSS_ORIGIN_PREFIX = "loadcheck-evil-"
LONG_NAMES = ("n" * 300 + ".txt", "\u20ac" * 130 + ".txt")
FALLBACK_QUESTIONS = ["What is this document about?", "When did it happen?", "Who was involved?", "Where did it take place?"]


@dataclass
class Stats:
    latencies_ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    citations_checked: int = 0
    not_verbatim: list[str] = field(default_factory=list)
    abstained: int = 0
    status_5xx: int = 0

    def error(self, msg: str) -> None:
        if len(self.errors) < 1000:
            self.errors.append(msg)

    def answered(self, status: int) -> None:
        self.status_5xx += status >= 500


@dataclass
class Hostile:
    """What one hostile client sent and got: every request must be refused with a 4xx."""

    codes: Counter[int] = field(default_factory=Counter)
    transport_errors: int = 0

    @property
    def sent(self) -> int:
        return sum(self.codes.values())

    @property
    def refused(self) -> int:
        return sum(n for code, n in self.codes.items() if 400 <= code < 500)

    @property
    def status_5xx(self) -> int:
        return sum(n for code, n in self.codes.items() if code >= 500)


def load_conversations(path: Path | None) -> list[list[str]]:
    """The questions of each conversation of an eval set (JSONL), in order."""
    if path is None or not path.is_file():
        return [[q] for q in FALLBACK_QUESTIONS]
    return [[t.question for t in c.turns] for c in load_set(path)]


def read_texts(folder: Path) -> dict[str, str]:
    """Document texts as the bot sees them (same reader as ingest), keyed by id."""
    from qa.ingest import load_folder

    return {d.id: d.text for d in load_folder(folder).documents}


def check_answer(answer: Any, texts: dict[str, str], stats: Stats, where: str) -> None:
    if not isinstance(answer, dict) or not ANSWER_KEYS <= set(answer) <= ANSWER_KEYS | OPTIONAL_KEYS:
        stats.error(f"{where}: not an Answer JSON: {str(answer)[:200]}")
        return
    stats.abstained += bool(answer["abstained"])
    # Corroborating quotes are verbatim like citations.
    for c in [*answer["citations"], *answer.get("corroboration", [])]:
        stats.citations_checked += 1
        text = texts.get(c["doc"])
        ok = text is not None and text[c["start"]:c["end"]] == c["text"]
        if ok and "answer_start" in c:
            ok = 0 <= c["answer_start"] <= c["answer_end"] <= len(c["text"])
        if not ok:
            stats.not_verbatim.append(f"{where}: {c['doc']}[{c['start']}:{c['end']}] {c['text'][:80]!r}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def client_loop(i: int, http, conversations: list[list[str]], texts: dict[str, str], deadline: float, stats: Stats) -> None:
    n = 0
    while time.monotonic() < deadline:
        questions = conversations[(i * 7 + n) % len(conversations)]
        cid = f"lc-{i}-{n}-{secrets.token_hex(4)}"
        n += 1
        for question in questions:
            if time.monotonic() >= deadline:
                return
            t0 = time.perf_counter()
            try:
                r = await http.post("/api/answer", json={"question": question, "conversation_id": cid})
            except Exception as exc:  # transport errors count as errors, the check goes on
                stats.error(f"client {i}: {type(exc).__name__}: {exc}")
                continue
            stats.latencies_ms.append((time.perf_counter() - t0) * 1000)
            stats.answered(r.status_code)
            if r.status_code != 200:
                stats.error(f"client {i}: {question!r} -> {r.status_code} {r.text[:200]}")
                continue
            check_answer(r.json(), texts, stats, f"client {i} {question!r}")


async def writer_loop(http, key: str, texts: dict[str, str], deadline: float, stats: Stats) -> int:
    """Upload, ask about it, delete, check it is gone; repeat. Returns the cycles completed."""
    headers = {"X-API-Key": key} if key else {}
    cycles = 0
    while time.monotonic() < deadline:
        try:
            r = await http.post("/api/documents", files={"files": (UPLOAD_NAME, UPLOAD_TEXT.encode("utf-8"), "text/plain")}, headers=headers)
            stats.answered(r.status_code)
            if r.status_code != 201:
                stats.error(f"writer upload -> {r.status_code} {r.text[:200]}")
                await asyncio.sleep(0.5)
                continue
            r = await http.post("/api/answer", json={"question": UPLOAD_QUESTION})
            stats.answered(r.status_code)
            a = r.json()
            if r.status_code != 200 or not a.get("citations") or a["citations"][0]["doc"] != UPLOAD_NAME or UPLOAD_ANSWER not in (a.get("answer") or ""):
                stats.error(f"writer: the uploaded document was not the answer: {r.status_code} {r.text[:300]}")
            else:
                check_answer(a, texts, stats, "writer after upload")
            r = await http.delete(f"/api/documents/{UPLOAD_NAME}", headers=headers)
            stats.answered(r.status_code)
            if r.status_code != 200:
                stats.error(f"writer delete -> {r.status_code} {r.text[:200]}")
            r = await http.post("/api/answer", json={"question": UPLOAD_QUESTION})
            stats.answered(r.status_code)
            if r.status_code != 200 or any(c["doc"] == UPLOAD_NAME for c in r.json().get("citations", [])):
                stats.error(f"writer: the deleted document is still answered: {r.status_code} {r.text[:300]}")
            else:
                check_answer(r.json(), texts, stats, "writer after delete")
            cycles += 1
        except Exception as exc:
            stats.error(f"writer: {type(exc).__name__}: {exc}")
        await asyncio.sleep(0.2)
    return cycles


async def hostile_loop(kind: str, http, key: str, deadline: float, stats: Hostile) -> None:
    """Uploads that must be refused, sent with the right key so only their flaw can refuse them:
    ``cross_origin`` from a foreign web page, ``long_name`` with a name over the limit."""
    headers = {"X-API-Key": key} if key else {}
    if kind == "cross_origin":
        headers["Origin"] = HOSTILE_ORIGIN
    n = 0
    while time.monotonic() < deadline:
        n += 1
        name = f"{CROSS_ORIGIN_PREFIX}{n}.txt" if kind == "cross_origin" else LONG_NAMES[n % len(LONG_NAMES)]
        try:
            r = await http.post("/api/documents", files={"files": (name, UPLOAD_TEXT.encode("utf-8"), "text/plain")}, headers=headers)
            stats.codes[r.status_code] += 1
        except Exception:  # counted; the check goes on
            stats.transport_errors += 1
        await asyncio.sleep(0.05)  # a steady trickle beside the load, not a flood


def hostile_report(kind: str, h: Hostile) -> dict[str, Any]:
    return {f"{kind}_sent": h.sent, f"{kind}_refused": h.refused, f"{kind}_codes": dict(sorted(h.codes.items())),
            f"{kind}_transport_errors": h.transport_errors}


async def all_document_ids(http, headers: dict[str, str]) -> list[str]:
    """Every indexed document's id: the listing comes a page at a time."""
    ids: list[str] = []
    offset: int | None = 0
    while offset is not None:
        page = (await http.get("/api/documents", params={"limit": 1000, "offset": offset}, headers=headers)).json()
        ids += [d["id"] for d in page["documents"]]
        offset = page["next_offset"]
    return ids


async def run(url: str, key: str, clients: int, seconds: float, conversations: list[list[str]], texts: dict[str, str]) -> dict[str, Any]:
    import httpx

    texts = {**texts, UPLOAD_NAME: UPLOAD_TEXT}
    limits = httpx.Limits(max_connections=clients + 6, max_keepalive_connections=clients + 6)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as http:
        # A leftover from an interrupted run would make the first upload a 409.
        await http.delete(f"/api/documents/{UPLOAD_NAME}", headers={"X-API-Key": key} if key else {})
        stats, wstats = Stats(), Stats()
        cross, long_names = Hostile(), Hostile()
        t0 = time.monotonic()
        deadline = t0 + seconds
        tasks = [client_loop(i, http, conversations, texts, deadline, stats) for i in range(clients)]
        results = await asyncio.gather(writer_loop(http, key, texts, deadline, wstats),
                                       hostile_loop("cross_origin", http, key, deadline, cross),
                                       hostile_loop("long_name", http, key, deadline, long_names), *tasks)
        elapsed = time.monotonic() - t0
        docs_left = await all_document_ids(http, {"X-API-Key": key} if key else {})
    lat = stats.latencies_ms
    return {
        "url": url, "clients": clients, "seconds": round(elapsed, 1),
        "requests": len(lat), "throughput_rps": round(len(lat) / elapsed, 2),
        "latency_ms_p50": round(percentile(lat, 0.50) or 0, 1),
        "latency_ms_p95": round(percentile(lat, 0.95) or 0, 1),
        "latency_ms_p99": round(percentile(lat, 0.99) or 0, 1),
        "errors": len(stats.errors) + len(wstats.errors),
        "citations_checked": stats.citations_checked + wstats.citations_checked,
        "not_verbatim": len(stats.not_verbatim) + len(wstats.not_verbatim),
        "abstained": stats.abstained,
        "upload_delete_cycles": results[0],
        "upload_left_behind": UPLOAD_NAME in docs_left,
        "status_5xx": stats.status_5xx + wstats.status_5xx + cross.status_5xx + long_names.status_5xx,
        **hostile_report("cross_origin", cross),
        "cross_origin_writes_stored": sum(d.startswith(CROSS_ORIGIN_PREFIX) for d in docs_left),
        **hostile_report("long_name", long_names),
        "long_names_stored": sum(d in LONG_NAMES for d in docs_left),
        "error_samples": (stats.errors + wstats.errors)[:10],
        "not_verbatim_samples": (stats.not_verbatim + wstats.not_verbatim)[:10],
    }


def start_server(
    docs: Path, workdir: Path, key: str, port: int, timeout: float = 300,
    index: Path | None = None, extra_args: Sequence[str] = (),
) -> subprocess.Popen:
    """``qa serve`` over ``docs`` (index ``index``, default ``workdir/index``) on a loopback
    port, rate limit off; returns once ``/readyz`` answers 200. Its output goes to
    ``workdir/server.log``."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "QA_RATE_LIMIT": "0", "QA_API_KEY": key, "PYTHONUNBUFFERED": "1"}
    env.pop("QA_API_KEY_REQUIRED", None)
    log = (workdir / "server.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "qa.cli", "serve", "--docs", str(docs), "--index", str(index or workdir / "index"),
         "--port", str(port), *extra_args],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        wait_ready(f"http://127.0.0.1:{port}", timeout, proc)
    except ServerNotReady as exc:
        proc.kill()
        raise SystemExit(f"loadcheck: {exc}\n{(workdir / 'server.log').read_text()[-2000:]}") from None
    return proc


class ServerNotReady(RuntimeError):
    """A server exited, or did not answer ``/readyz``, before the deadline."""


def wait_ready(url: str, timeout: float = 60.0, proc: subprocess.Popen | None = None) -> None:
    """Poll ``url``/readyz until it answers 200; :class:`ServerNotReady` if ``proc`` exits first
    (with the end of its piped output, if any) or ``timeout`` seconds pass."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            out = proc.stderr or proc.stdout
            raise ServerNotReady(f"the server exited with {proc.returncode}: {out.read()[-2000:] if out else ''}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise ServerNotReady(f"{url} was not ready after {timeout} s")


def hostile_failed(rep: dict[str, Any]) -> bool:
    """Whether a hostile upload got anything but a 4xx (or none was sent), or was stored."""
    return any(rep[f"{k}_sent"] == 0 or rep[f"{k}_refused"] != rep[f"{k}_sent"] or rep[f"{k}_transport_errors"]
               for k in ("cross_origin", "long_name")) or bool(rep["cross_origin_writes_stored"] or rep["long_names_stored"])


def format_report(rep: dict[str, Any]) -> str:
    lines = [
        f"{rep['clients']} clients for {rep['seconds']} s against {rep['url']}",
        f"  answers: {rep['requests']}  throughput: {rep['throughput_rps']} req/s",
        f"  latency ms: p50 {rep['latency_ms_p50']}  p95 {rep['latency_ms_p95']}  p99 {rep['latency_ms_p99']}",
        f"  upload/ask/delete cycles: {rep['upload_delete_cycles']}",
        f"  citations checked verbatim: {rep['citations_checked']}  not verbatim: {rep['not_verbatim']}",
        f"  errors: {rep['errors']}  5xx responses: {rep['status_5xx']}",
        (f"  cross-origin uploads: {rep['cross_origin_sent']} sent, {rep['cross_origin_refused']} refused "
         f"{rep['cross_origin_codes']}, {rep['cross_origin_writes_stored']} stored"),
        (f"  oversized-name uploads: {rep['long_name_sent']} sent, {rep['long_name_refused']} refused "
         f"{rep['long_name_codes']}, {rep['long_names_stored']} stored"),
    ]
    lines += [f"    {e}" for e in rep["error_samples"] + rep["not_verbatim_samples"]]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m eval.loadcheck", description=__doc__.split("\n\n")[0])
    p.add_argument("--docs", default="documents", help="documents folder (served from a temporary copy; with --url, the server's folder, read to check citations)")
    p.add_argument("--clients", type=int, default=8, help="concurrent clients asking questions (default 8)")
    p.add_argument("--seconds", type=float, default=60, help="how long to run (default 60)")
    p.add_argument("--set", default=str(ROOT / "eval" / "seeds.jsonl"), help="eval set whose questions are asked (default eval/seeds.jsonl)")
    p.add_argument("--url", help="use a running server instead of starting one (its rate limit must allow the load)")
    p.add_argument("--api-key", default=os.environ.get("QA_API_KEY", ""), help="with --url: the key for uploads and deletes (default $QA_API_KEY)")
    p.add_argument("--json-out", metavar="FILE", help="also write the report as JSON")
    args = p.parse_args(argv)
    docs = Path(args.docs)
    if not docs.is_dir():
        p.error(f"documents folder {args.docs!r} does not exist")
    if args.clients < 1 or args.seconds <= 0:
        p.error("--clients and --seconds must be positive")
    conversations = load_conversations(Path(args.set) if args.set else None)
    proc = None
    workdir = Path(tempfile.mkdtemp(prefix="qa-loadcheck-"))
    try:
        if args.url:
            url, key, served = args.url.rstrip("/"), args.api_key, docs
        else:
            served = workdir / "docs"
            shutil.copytree(docs, served, ignore=shutil.ignore_patterns(".*"))
            key = secrets.token_hex(16)
            port = free_port()
            print(f"starting qa serve over a copy of {docs} on port {port} ...", file=sys.stderr, flush=True)
            proc = start_server(served, workdir, key, port)
            url = f"http://127.0.0.1:{port}"
        texts = read_texts(served)
        print(f"{args.clients} clients asking {sum(map(len, conversations))} questions in turn for {args.seconds:g} s, "
              f"while {UPLOAD_NAME} is uploaded and deleted ...", file=sys.stderr, flush=True)
        rep = asyncio.run(run(url, key, args.clients, args.seconds, conversations, texts))
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(workdir, ignore_errors=True)
    print(format_report(rep))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(rep, indent=1), encoding="utf-8")
    failed = (rep["errors"] or rep["not_verbatim"] or rep["upload_left_behind"] or not rep["requests"] or rep["status_5xx"]
              or hostile_failed(rep))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
