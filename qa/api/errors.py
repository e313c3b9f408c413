"""Every error is a JSON message with the right status, never a stack trace."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from index.records import IndexStoreError

log = logging.getLogger("qa.api")


def describe_validation(errors: list[dict[str, Any]]) -> tuple[int, str, list[dict[str, Any]]]:
    """``(status, one-line message, cleaned errors)`` for pydantic's validation errors."""
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


async def on_validation(request: Request, exc: RequestValidationError) -> JSONResponse:
    raw = list(exc.errors())
    if any(e.get("type") == "missing" and tuple(e.get("loc", ())) == ("body",) for e in raw):
        return JSONResponse({"detail": 'the body is empty: send a JSON object such as {"question": "..."}'}, status_code=422)
    if any(e.get("type") == "model_attributes_type" and tuple(e.get("loc", ())) == ("body",) for e in raw):
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if not (ctype == "application/json" or ctype.endswith("+json")):
            return JSONResponse({"detail": "send the body as JSON with Content-Type: application/json"}, status_code=415)
        return JSONResponse({"detail": 'the body must be a JSON object such as {"question": "..."}'}, status_code=422)
    status, detail, errors = describe_validation(raw)
    body: dict[str, Any] = {"detail": detail}
    if errors:
        body["errors"] = errors
    return JSONResponse(body, status_code=status)


async def on_http(request: Request, exc: HTTPException) -> JSONResponse:
    detail = str(exc.detail)
    if exc.status_code == 400 and detail == "There was an error parsing the body":  # FastAPI's words
        detail = "the body could not be read: send UTF-8 JSON (or multipart/form-data to upload)"
    return JSONResponse({"detail": detail}, status_code=exc.status_code, headers=getattr(exc, "headers", None))


# Said when the store of record cannot be used (a Milvus server down, say): the reason, which
# names where the store is, goes to the log.
STORE_UNAVAILABLE = "the document store cannot be used right now; try again shortly (the server log has the details)"


async def on_store(request: Request, exc: IndexStoreError) -> JSONResponse:
    log.warning("%s %s: %s", request.method, request.url.path, exc)
    return JSONResponse({"detail": STORE_UNAVAILABLE}, status_code=503, headers={"Retry-After": "5"})


async def on_crash(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return JSONResponse({"detail": "internal error; the server log has the details"}, status_code=500)


def install(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(HTTPException, on_http)
    app.add_exception_handler(IndexStoreError, on_store)
    app.add_exception_handler(Exception, on_crash)
