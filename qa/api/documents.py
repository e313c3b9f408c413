"""``/api/documents``: list, upload (all or nothing, through :meth:`qa.bot.Bot.add_documents`),
read, draw a PDF page, delete."""

from __future__ import annotations

import errno
from functools import partial
from typing import TYPE_CHECKING, Annotated

import anyio
from fastapi import APIRouter, File, Form, Path, Query, UploadFile
from fastapi.responses import Response
from starlette.exceptions import HTTPException

from ..bot import DocumentError, IndexBusy, indexed_id, refuse_twins
from ..ingest import SUPPORTED_SUFFIXES, max_bytes
from ..pages import PageError
from ..types import Document
from .deps import READ, WRITE, ServiceDep
from .schemas import DOCUMENT_ERROR_STATUS, ERRORS, Deleted, DocumentInfo, DocumentList, DocumentText, UploadResult

if TYPE_CHECKING:
    from index.store import HybridIndex

router = APIRouter(prefix="/api/documents", tags=["documents"])

MAX_FILES_PER_UPLOAD = 20
# The largest page of the listing; without `limit` the listing is whole, as it was before pages.
MAX_PAGE = 1000
# OS errors an upload can meet that are the request's doing, not the server's.
_OS_ERROR_STATUS = {errno.ENAMETOOLONG: 400, errno.EISDIR: 409, errno.ENOTDIR: 409, errno.EEXIST: 409}


def _refused(exc: DocumentError) -> HTTPException:
    hint = "; send replace=true to overwrite it" if exc.replaceable else ""
    return HTTPException(DOCUMENT_ERROR_STATUS.get(exc.kind, 400), str(exc) + hint)


def _busy(exc: IndexBusy) -> HTTPException:
    return HTTPException(503, str(exc), headers={"Retry-After": "30"})


def describe(idx: "HybridIndex", doc_ids: list[str] | None = None) -> list[DocumentInfo]:
    """The documents of one index snapshot (all, or ``doc_ids`` in that order)."""
    rows = range(len(idx.entries)) if doc_ids is None else [idx.doc_pos[d] for d in doc_ids if d in idx.doc_pos]
    out = []
    for i in rows:
        e = idx.entries[i]
        chars, size, sentences = idx.doc_facts(i)
        out.append(DocumentInfo(id=e.id, title=e.meta.get("title") or "", date=e.meta.get("date"),
                                kind=e.meta.get("kind") or "text", pages=e.meta.get("pages"),
                                size=size, chars=chars, sentences=sentences))
    return out


@router.get("", summary="List the indexed documents, a page at a time, in index order",
            response_model=DocumentList, responses=ERRORS, dependencies=READ)
async def list_documents(
    service: ServiceDep,
    limit: Annotated[int | None, Query(ge=1, le=MAX_PAGE, description=f"documents in this page (1 to {MAX_PAGE}; all when left out)")] = None,
    offset: Annotated[int, Query(ge=0, description="documents to skip (a previous page's `next_offset`)")] = 0,
) -> DocumentList:
    idx = service.bot.index  # one snapshot: the page and `total` agree even while documents are added
    total = len(idx.doc_ids)
    end = total if limit is None else min(offset + limit, total)
    return DocumentList(documents=describe(idx, idx.doc_ids[offset:end]), total=total, offset=offset, limit=limit,
                        next_offset=end if end < total else None)


@router.post("", status_code=201, response_model=UploadResult, responses=ERRORS, dependencies=WRITE,
             summary=f"Upload documents ({', '.join(SUPPORTED_SUFFIXES)}); each is stored and indexed, all or nothing")
async def upload_documents(
    service: ServiceDep,
    files: Annotated[list[UploadFile], File(description=f"one or more {'/'.join(SUPPORTED_SUFFIXES)} files (field `files`)")],
    replace: Annotated[bool, Form(description="replace documents of the same name")] = False,
    replace_query: Annotated[bool, Query(alias="replace", description="same as the form field")] = False,
) -> UploadResult:
    bot = service.bot
    replace = replace or replace_query
    if len(files) > MAX_FILES_PER_UPLOAD:
        raise HTTPException(400, f"{len(files)} files in one upload; the limit is {MAX_FILES_PER_UPLOAD}")
    try:
        refuse_twins([f.filename or "" for f in files])
    except DocumentError as exc:
        raise _refused(exc) from None
    items: list[tuple[str, bytes, Document]] = []
    for f in files:
        name = f.filename or ""
        # Read at most one byte past the limit: the check below refuses it, unread.
        data = await f.read(max_bytes(name) + 1)
        try:
            # Every file is checked (parsed, off the event loop) before any is stored.
            doc = await service.parse_budget.run(partial(bot.check_upload, name, data, replace=replace))
        except DocumentError as exc:
            raise _refused(exc) from None
        except TimeoutError:
            raise HTTPException(422, f"{name}: reading the file took longer than {service.settings.parse_timeout_s:g} s; "
                                     "split it into smaller files") from None
        items.append((doc.id, data, doc))
    try:
        upload = await service.write(partial(bot.add_documents, items, replace))
    except DocumentError as exc:
        raise _refused(exc) from None
    except IndexBusy as exc:
        raise _busy(exc) from None
    except OSError as exc:
        status = _OS_ERROR_STATUS.get(exc.errno or 0)
        if status is None:
            raise
        raise HTTPException(status, f"the file could not be stored: {exc.strerror}") from None
    return UploadResult(documents=describe(bot.index, [d.id for d in upload.documents]), replaced=list(upload.replaced))


def _span(first: str, a: int | None, last: str, b: int | None) -> tuple[int, int] | None:
    """A highlight's span from two query parameters: both or neither, in order."""
    if (a is None) != (b is None):
        raise HTTPException(422, f"give {first} and {last} together")
    if a is not None and b is not None and a > b:
        raise HTTPException(422, f"{first} ({a}) is after {last} ({b})")
    return None if a is None or b is None else (a, b)


# Declared before the document route: its {doc:path} would take the page's path too.
@router.get("/{doc:path}/pages/{page}.png", response_class=Response, dependencies=READ,
            summary="A PDF page as an image, with a sentence and its short answer highlighted",
            responses={200: {"content": {"image/png": {}}}, **ERRORS})
async def page_image(
    service: ServiceDep,
    doc: str, page: Annotated[int, Path(ge=1, description="1-based page number")],
    start: Annotated[int | None, Query(ge=0, description="the sentence's start (a citation's `start`)")] = None,
    end: Annotated[int | None, Query(ge=0, description="the sentence's end")] = None,
    answer_start: Annotated[int | None, Query(ge=0, description="the short answer's start, inside the sentence")] = None,
    answer_end: Annotated[int | None, Query(ge=0, description="the short answer's end, inside the sentence")] = None,
) -> Response:
    sentence = _span("start", start, "end", end)
    answer = _span("answer_start", answer_start, "answer_end", answer_end)
    if answer is not None:
        if sentence is None:
            raise HTTPException(422, "answer_start and answer_end count from the sentence's start: give start and end too")
        if answer[1] > sentence[1] - sentence[0]:
            raise HTTPException(422, f"answer_end ({answer[1]}) is past the sentence's end (it has {sentence[1] - sentence[0]} characters)")
        answer = (sentence[0] + answer[0], sentence[0] + answer[1])
    try:
        png = await service.parse_budget.run(partial(service.bot.page_png, doc, page, sentence, answer))
    except (DocumentError, PageError) as exc:
        raise HTTPException({"changed": 409, "unreadable": 422}.get(exc.kind, 404), str(exc)) from None
    except TimeoutError:
        raise HTTPException(503, f"drawing page {page} took longer than {service.settings.parse_timeout_s:g} s") from None
    return Response(png, media_type="image/png", headers={"Cache-Control": "private, max-age=300"})


@router.get("/{doc:path}", response_model=DocumentText, responses=ERRORS, dependencies=READ,
            summary="One document: its metadata and the extracted text citations point into")
async def get_document(doc: str, service: ServiceDep) -> DocumentText:
    idx = service.bot.index
    doc = indexed_id(idx, doc)
    if doc not in idx.doc_pos:
        raise HTTPException(404, f"no document {doc!r}; GET /api/documents lists them")
    info = describe(idx, [doc])[0]  # the same snapshot: the document cannot vanish in between
    try:
        text = await anyio.to_thread.run_sync(service.bot.document_text, doc, idx)  # may read the file again
    except DocumentError as exc:
        raise HTTPException(404, str(exc)) from None
    return DocumentText(**info.model_dump(), text=text)


@router.delete("/{doc:path}", response_model=Deleted, responses=ERRORS, dependencies=WRITE,
               summary="Delete a document from the folder and the index")
async def delete_document(doc: str, service: ServiceDep) -> Deleted:
    try:
        await service.write(partial(service.bot.delete_document, doc))
    except DocumentError as exc:
        raise _refused(exc) from None
    except IndexBusy as exc:
        raise _busy(exc) from None
    return Deleted(deleted=doc)
