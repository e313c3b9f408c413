"""The answer API's request and response models: every field validated, every error described."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from ..bot import MAX_QUESTION_CHARS, check_question

# HTTP status for each DocumentError kind (see qa.bot.DocumentError) and FeedbackError kind.
DOCUMENT_ERROR_STATUS = {"invalid": 400, "unsupported": 415, "too_large": 413, "exists": 409, "missing": 404}
FEEDBACK_ERROR_STATUS = {"invalid": 422, "missing": 404, "full": 507}


def _valid_unicode(value: str) -> str:
    # JSON may carry lone surrogates ("\ud800"); they cannot be encoded, embedded or echoed.
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("contains invalid Unicode (a lone surrogate); send UTF-8 text") from None
    return value


Text = Annotated[str, AfterValidator(_valid_unicode)]


def _question_ok(value: str) -> str:
    check_question(value)  # its QuestionError is a ValueError: pydantic reports it as a 422
    return value


QuestionText = Annotated[Text, AfterValidator(_question_ok)]
Coordinate = Annotated[float, Field(allow_inf_nan=False, ge=-1e6, le=1e6)]


class CitationModel(BaseModel):
    """A verbatim sentence: ``document_text[start:end] == text``."""

    model_config = ConfigDict(extra="ignore")
    doc: Text = Field(max_length=1024, description="document id: its path relative to the corpus folder")
    title: Text = Field("", max_length=10_000)
    text: Text = Field(max_length=100_000, description="the sentence, verbatim")
    start: int = Field(ge=0)
    end: int = Field(ge=0)
    answer_start: int | None = Field(None, ge=0, description="short answer's offsets inside `text`, when one fits")
    answer_end: int | None = Field(None, ge=0)
    score: float = Field(0.0, allow_inf_nan=False, ge=-1e6, le=1e6)
    page: int | None = Field(None, ge=1, description="from a PDF: the page (1-based) where the sentence starts")
    boxes: list[Annotated[list[Coordinate], Field(min_length=5, max_length=5)]] | None = Field(
        None, max_length=10_000,
        description="from a PDF: `[page, x0, y0, x1, y1]` in PDF points in the page's own space (origin at the bottom left of an unturned, uncropped page), one per line of the sentence",
    )
    ocr: bool | None = Field(None, description="from a PDF: true when the page was read from its image")


class CorroborationModel(BaseModel):
    """Another document's verbatim sentence answering the same question, and whether its short
    answer agrees with the answer's."""

    model_config = ConfigDict(extra="ignore")
    doc: Text = Field(max_length=1024)
    title: Text = Field("", max_length=10_000)
    text: Text = Field(max_length=100_000, description="the sentence, verbatim")
    start: int = Field(ge=0)
    end: int = Field(ge=0)
    answer: Text = Field(max_length=100_000, description="its short answer")
    agrees: bool = Field(description="its short answer says the same as the answer (dates, numbers and names normalised)")
    confidence: float = Field(0.0, ge=0.0, le=1.0)
    answer_start: int | None = Field(None, ge=0)
    answer_end: int | None = Field(None, ge=0)
    date: Text | None = Field(None, max_length=64, description="its document's date")
    answer_date: Text | None = Field(None, max_length=64)


class AnswerModel(BaseModel):
    """The Answer JSON (see GUIDE.md), as returned by ``POST /api/answer``."""

    model_config = ConfigDict(extra="ignore")
    question: Text = Field(max_length=MAX_QUESTION_CHARS * 2)
    searched_for: Text | None = Field(None, max_length=MAX_QUESTION_CHARS * 4, description="the follow-up, resolved")
    abstained: bool = False
    answer: Text | None = Field(None, max_length=100_000, description=(
        "the short answer (inside the top citation, or \"Yes\"/\"No\" for a yes/no question), else the top "
        "sentence; null when abstaining"))
    confidence: float = Field(0.0, ge=0.0, le=1.0, description="from 0 to 1")
    citations: list[CitationModel] = Field(default_factory=list, max_length=20)
    timings_ms: dict[Text, Annotated[float, Field(allow_inf_nan=False, ge=0, le=1e9)]] = Field(default_factory=dict, max_length=20)
    answer_date: Text | None = Field(None, max_length=64, description="the short answer as an ISO 8601 date, when it is one")
    corroboration: list[CorroborationModel] = Field(
        default_factory=list, max_length=20, description="other documents' sentences answering the same question, newest first")


class TurnModel(BaseModel):
    """An earlier exchange: the question and the Answer JSON the bot gave."""

    model_config = ConfigDict(extra="ignore")
    question: Text = Field(max_length=MAX_QUESTION_CHARS * 2)
    answer: AnswerModel


class AnswerRequest(BaseModel):
    """A question, with the conversation so far (``history``, or ``conversation_id`` to let
    the server remember it), optionally limited to some documents."""

    model_config = ConfigDict(extra="forbid")
    question: QuestionText = Field(
        description=f"the question (1 to {MAX_QUESTION_CHARS} characters, not only spaces)",
        examples=["Who built the harbour lighthouse?"],
    )
    history: list[TurnModel] | None = Field(
        None, max_length=100,
        description="earlier turns, oldest first, each with the bot's own Answer JSON (the last 20 are used)",
    )
    conversation_id: str | None = Field(
        None, pattern=r"^[A-Za-z0-9._:-]{1,128}$",
        description="let the server keep the history under this id (use a random UUID); "
        "not together with `history`",
    )
    docs: list[Annotated[Text, Field(min_length=1, max_length=1024)]] | None = Field(
        None, min_length=1, max_length=1000, description="limit the answer to these document ids",
    )
    top_k: int = Field(3, ge=1, le=10, description="citations to return (1 to 10)")
    after: date | None = Field(None, description="only documents dated on or after this day (YYYY-MM-DD)")
    before: date | None = Field(None, description="only documents dated on or before this day (YYYY-MM-DD)")


class SpanModel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    doc: Text = Field(min_length=1, max_length=1024)
    start: int = Field(ge=0)
    end: int = Field(ge=0)


class FeedbackRequest(BaseModel):
    """A user's mark on an answer: right, or wrong with the sentence that answers instead
    (``evidence``, a citation's or closest match's ``doc``/``start``/``end``) or
    ``not_answered`` when the documents do not answer."""

    model_config = ConfigDict(extra="forbid")
    question: QuestionText = Field(description="the question that was answered")
    answer: AnswerModel = Field(description="the Answer JSON being marked")
    history: list[TurnModel] | None = Field(None, max_length=100, description="the turns before it, oldest first")
    docs: list[Annotated[Text, Field(min_length=1, max_length=1024)]] | None = Field(
        None, min_length=1, max_length=1000, description="the documents the conversation was limited to")
    verdict: Literal["right", "wrong"]
    evidence: SpanModel | None = Field(None, description="with `wrong`: the sentence that answers")
    not_answered: bool = Field(False, description="with `wrong`: the documents do not answer the question")

    @model_validator(mode="after")
    def _one_correction(self) -> "FeedbackRequest":
        if self.verdict == "wrong" and (self.evidence is None) == (not self.not_answered):
            raise ValueError("a wrong answer needs either `evidence` (the sentence that answers) or `not_answered: true`")
        if self.verdict == "right" and (self.evidence is not None or self.not_answered):
            raise ValueError("a right answer takes no `evidence` or `not_answered`")
        return self


class FeedbackResult(BaseModel):
    id: str = Field(description="the eval-set conversation the mark became")
    turns: int = Field(description="its turns (the earlier ones replayed, the last scored)")


class DocumentInfo(BaseModel):
    id: str = Field(description="path relative to the corpus folder")
    title: str
    date: str | None = Field(description="publication date (ISO), when the document gives one")
    kind: str = Field(description="what it was read from: text, markdown, pdf, docx or html")
    pages: int | None = Field(None, description="a PDF's page count")
    size: int = Field(description="length of the text in UTF-8 bytes")
    chars: int = Field(description="length of the text in characters")
    sentences: int


class DocumentText(DocumentInfo):
    text: str = Field(description="the extracted text every citation's start/end point into")


class DocumentList(BaseModel):
    """One page of the indexed documents, in index order (see ``GET /api/documents``)."""

    documents: list[DocumentInfo] = Field(description="this page's documents, in index order")
    total: int = Field(description="documents in the index, all pages together")
    offset: int = Field(description="documents skipped before this page")
    limit: int | None = Field(description="the most documents a page holds; null when the listing was asked whole")
    next_offset: int | None = Field(description="the `offset` of the next page; null on the last page")


class UploadResult(BaseModel):
    documents: list[DocumentInfo] = Field(description="the stored documents, in upload order")
    replaced: list[str] = Field(description="ids among them that replaced an existing document")


class Deleted(BaseModel):
    deleted: str


class ErrorModel(BaseModel):
    detail: str


ERRORS = {code: {"model": ErrorModel} for code in (400, 401, 404, 409, 413, 415, 422, 429, 503)}
