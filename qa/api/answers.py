"""``POST /api/answer`` and ``POST /api/feedback``."""

from __future__ import annotations

from functools import partial

import anyio
from fastapi import APIRouter
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from ..bot import NoDocumentsError, QuestionError, Turn
from ..feedback import FeedbackError
from ..types import Answer
from .conversations import slim_turn
from .deps import READ, WRITE, ServiceDep
from .schemas import ERRORS, FEEDBACK_ERROR_STATUS, AnswerModel, AnswerRequest, FeedbackRequest, FeedbackResult

router = APIRouter(prefix="/api", tags=["answers"])


@router.post("/answer", summary="Answer a question with verbatim citations", response_model=AnswerModel,
             responses=ERRORS, dependencies=READ)
async def answer(req: AnswerRequest, service: ServiceDep) -> JSONResponse:
    if req.history is not None and req.conversation_id is not None:
        raise HTTPException(422, "give either history or conversation_id, not both")
    if req.conversation_id is None:
        history = [Turn(t.question, Answer.from_dict(t.answer.model_dump(exclude_none=True)))
                   for t in (req.history or [])[-service.settings.max_turns:]]
        return await _answer(req, service, history)
    async with service.conversations.turn(req.conversation_id):
        return await _answer(req, service, service.conversations.history(req.conversation_id))


async def _answer(req: AnswerRequest, service: ServiceDep, history: list[Turn]) -> JSONResponse:
    bot, conversations = service.bot, service.conversations
    if not bot.index.doc_ids:  # nothing was searched: not an answer that declines, as the CLI and the page say
        raise HTTPException(404, "there are no documents to search yet: add some with POST /api/documents")
    after, before = (d.isoformat() if d else None for d in (req.after, req.before))
    try:
        result = await anyio.to_thread.run_sync(partial(bot.ask, req.question, history, req.docs, req.top_k, after, before),
                                                limiter=service.ask_limiter)
    except NoDocumentsError as exc:
        raise HTTPException(404, f"{exc}; GET /api/documents lists their dates") from None
    except QuestionError as exc:
        # The bot checks the docs limit against the index it searches; an unknown one is a 404.
        unknown = [d for d in req.docs or () if d not in bot.index.doc_pos]
        if unknown:
            raise HTTPException(404, f"unknown document(s): {', '.join(map(repr, unknown[:10]))}; "
                                "GET /api/documents lists them") from None
        raise HTTPException(422, str(exc)) from None
    if req.conversation_id is not None:
        conversations.append(req.conversation_id, slim_turn(Turn(result.question, result)))
    # How many earlier turns the question was read with: 0 tells a client its conversation was forgotten.
    headers = {"X-Conversation-Id": req.conversation_id, "X-Conversation-Turns": str(len(history))} if req.conversation_id else None
    return JSONResponse(result.to_dict(), headers=headers)


@router.post("/feedback", status_code=201, response_model=FeedbackResult, responses=ERRORS, dependencies=WRITE,
             summary="Mark an answer right or wrong; the mark becomes an eval-set conversation")
async def feedback(req: FeedbackRequest, service: ServiceDep) -> FeedbackResult:
    answer = Answer.from_dict(req.answer.model_dump(exclude_none=True))
    evidence = (req.evidence.doc, req.evidence.start, req.evidence.end) if req.evidence else None
    earlier = [t.question for t in (req.history or [])[-service.settings.max_turns:]]
    try:
        record = await service.write(
            partial(service.bot.record_feedback, req.question, answer, req.verdict, earlier, evidence, req.docs))
    except FeedbackError as exc:
        raise HTTPException(FEEDBACK_ERROR_STATUS[exc.kind], str(exc)) from None
    return FeedbackResult(id=record["id"], turns=len(record["turns"]))
