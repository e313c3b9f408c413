"""Short answers that are dates, placed in time against their document's own date.

"March 3" in an article dated 2019-06-20 is 2019-03-03; "on Tuesday" is the Tuesday before
it; "April 14" in an article dated 2023-03-02 is 2023-04-14. Parsing is dateparser's, with
``RELATIVE_BASE`` set to the document's date. A document without a date keeps only what the text
itself says: "March 3" is ``--03-03`` (ISO 8601 for a day of a year not given).
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from functools import lru_cache

from dateparser.date import DateDataParser

_MONTH_WORDS = {w.lower() for w in (*calendar.month_name[1:], *calendar.month_abbr[1:])} | {"sept"}
# Only text that names a month, a weekday, a relative day or holds a year or a numeric date is
# handed to the parser: on its own it reads "two" as February and "12" as December.
_DATE_WORDS = _MONTH_WORDS | {w.lower() for w in (*calendar.day_name, *calendar.day_abbr)} | {"yesterday", "today", "tomorrow"}
_YEAR_OR_NUMERIC = re.compile(r"\b(1[0-9]{3}|2[0-9]{3})\b|\b\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}\b")
_WORD = re.compile(r"[A-Za-z]+")
# Two unrelated bases: a part of the result that changes with the base was not in the text.
_PROBES = (dt.datetime(2001, 2, 3), dt.datetime(2012, 11, 27))
# ISO lengths by the precision dateparser reports.
_ISO = {"day": 10, "month": 7, "year": 4}
MAX_CHARS = 60  # longer text is a clause, not a date


@lru_cache(maxsize=256)
def _parser(base: dt.datetime, prefer: str) -> DateDataParser:
    return DateDataParser(languages=["en"], settings={
        "RELATIVE_BASE": base, "PREFER_DATES_FROM": prefer, "RETURN_TIME_AS_PERIOD": True,
    })


def _prefer(text: str) -> str:
    """A day named without its month ("on Tuesday") is the one before the document's date, as
    news reports it; a month and day without a year are of the document's year ("March 3"
    in June, "April 14" in March)."""
    named = {w.group().lower() for w in _WORD.finditer(text)}
    return "past" if not named & _MONTH_WORDS and not any(c.isdigit() for c in text) else "current_period"


def looks_like_date(text: str) -> bool:
    """Does ``text`` name a month, weekday or relative day, or hold a year or numeric date?"""
    return bool(_YEAR_OR_NUMERIC.search(text)) or any(w.group().lower() in _DATE_WORDS for w in _WORD.finditer(text))


def _parse(text: str, base: dt.datetime) -> tuple[dt.datetime, str] | None:
    try:
        data = _parser(base, _prefer(text)).get_date_data(text)
    except OverflowError:  # "Monday" before a document dated 0001-01-01: no such day
        return None
    if data.date_obj is None or data.period not in _ISO:
        return None
    return data.date_obj, data.period


def _iso(date: dt.datetime, period: str) -> str:
    """``date`` in ISO 8601 to ``period``'s precision, the year in four digits (strftime drops the zeros of 0800)."""
    return f"{date.year:04d}-{date.month:02d}-{date.day:02d}"[:_ISO[period]]


def document_date(date: str | None) -> dt.datetime | None:
    """A document's ISO date (``Document.date``) as a datetime; None when absent or unreadable."""
    if not date:
        return None
    try:
        return dt.datetime.fromisoformat(date[:10])
    except ValueError:
        return None


def answer_date(text: str, doc_date: str | None = None) -> str | None:
    """The ISO 8601 date ``text`` names, resolved against ``doc_date`` (the document's ISO
    date), as precise as the text: ``2019-03-03``, ``2019-03``, ``2019``; without a document
    date, the parts the text gives (``--03-03`` for a day without its year). None when ``text``
    is not a date (or only a relative one, "on Tuesday", with no document date to place it)."""
    text = " ".join(text.split())
    if not text or len(text) > MAX_CHARS or not looks_like_date(text):
        return None
    base = document_date(doc_date)
    if base is not None:
        parsed = _parse(text, base)
        return _iso(*parsed) if parsed else None
    probes = [_parse(text, b) for b in _PROBES]
    if any(p is None for p in probes):
        return None
    (a, period), (b, _) = probes  # type: ignore[misc]
    year, month, day = a.year == b.year, a.month == b.month, a.day == b.day
    if period == "day" and month and day:
        # A document dated to its month or year only ("2020-05") still gives the year.
        known = doc_date[:4] if doc_date and re.fullmatch(r"\d{4}(-\d\d)?", doc_date) else None
        return _iso(a, "day") if year else f"{known}-{a:%m-%d}" if known else a.strftime("--%m-%d")
    if period in ("day", "month") and year and month:
        return _iso(a, "month")
    if year and period in ("day", "month", "year"):
        return _iso(a, "year")
    return None


def same_date(a: str, b: str) -> bool:
    """Do two ISO dates (as :func:`answer_date` gives them, possibly partial) agree on every
    part both state? ``2019-03-03`` and ``--03-03`` agree; ``2019-03`` and ``2019-04-05`` do not."""
    def parts(iso: str) -> tuple[str | None, str | None, str | None]:
        if iso.startswith("--"):
            month, day = iso[2:].split("-")
            return None, month, day
        bits = iso.split("-") + [None, None]  # type: ignore[list-item]
        return bits[0], bits[1], bits[2]

    return all(x is None or y is None or x == y for x, y in zip(parts(a), parts(b)))
