"""The probes: ``/healthz`` (the process is alive) and ``/readyz`` (the index is ready)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from index.records import IndexStoreError

from .deps import ServiceDep
from .errors import STORE_UNAVAILABLE
from .schemas import ErrorModel

router = APIRouter(tags=["probes"])


@router.get("/healthz", summary="The process is alive")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


def _not_ready(detail: str) -> JSONResponse:
    return JSONResponse({"status": "not ready", "detail": detail}, status_code=503, headers={"Retry-After": "5"})


@router.get("/readyz", summary="The model is loaded and the index ready", responses={503: {"model": ErrorModel}})
async def readyz(service: ServiceDep) -> JSONResponse:
    if not service.ready:
        return _not_ready(service.error or "loading the index")
    try:
        n = service.bot.counts()
    except IndexStoreError:  # the store went away after start-up (a Milvus server down)
        return _not_ready(STORE_UNAVAILABLE)
    return JSONResponse({"status": "ready", "documents": n["documents"], "sentences": n["sentences"],
                         "model": getattr(service.bot.embedder, "name", "")})
