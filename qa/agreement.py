"""Do two short answers say the same thing? Each is normalised in its own document first:
a date to ISO against the document's date (:mod:`qa.dates`), a number to its value and unit,
a name to its longest form in the document ("Brunel" → "Ada K. Brunel"), anything else to its
words (SQuAD normalisation). Two answers agree when their normal forms match on what both say.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass

from .dates import answer_date, same_date

# A disagreement is a different date, number or name between sentences about the same matter
# (embedding cosine >= SAME_MATTER): set on SQuAD calib for few false alarms (docs/agreement.md).
DISAGREEING_KINDS = frozenset({"date", "number", "name"})
SAME_MATTER = 0.6
# How the chat page and the CLI introduce corroborating quotes.
ALSO_STATED = "Also stated in"
DISAGREE = "The documents disagree:"

_NUMBER_WORDS = {
    w: i for i, w in enumerate(
        "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
        "sixteen seventeen eighteen nineteen twenty".split())
} | {"thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90,
     "once": 1, "twice": 2, "thrice": 3, "single": 1, "double": 2, "dozen": 12, "a": 1, "an": 1}
_SCALES = {"hundred": 1e2, "thousand": 1e3, "million": 1e6, "billion": 1e9, "trillion": 1e12, "m": 1e6, "bn": 1e9, "k": 1e3}
_UNIT_ALIASES = {"%": "percent", "per": "percent", "pct": "percent", "times": "", "time": ""}
# Abbreviations and spellings of one unit, and metric multiples, as (unit, factor): "5 km" is "5,000 metres".
_UNITS = {
    **dict.fromkeys(("km", "kms", "kilometre", "kilometer"), ("metre", 1e3)), "meter": ("metre", 1.0),
    **dict.fromkeys(("cm", "centimetre", "centimeter"), ("metre", 1e-2)),
    **dict.fromkeys(("mm", "millimetre", "millimeter"), ("metre", 1e-3)),
    **dict.fromkeys(("kg", "kgs", "kilo", "kilogram"), ("gram", 1e3)), "tonne": ("gram", 1e6),
    "liter": ("litre", 1.0), **dict.fromkeys(("ml", "millilitre", "milliliter"), ("litre", 1e-3)),
    "g": ("gram", 1.0), "mg": ("gram", 1e-3), **dict.fromkeys(("l", "litre"), ("litre", 1.0)),
    "mi": ("mile", 1.0), "ft": ("foot", 1.0), "feet": ("foot", 1.0), **dict.fromkeys(("hr", "hrs"), ("hour", 1.0)),
}
# A minus sign counts only before a digit and not inside a word ("-5 degrees", not "COVID-19").
_TOKEN = re.compile(r"(?:(?<![\w.-])[-−])?\d[\d,]*(?:\.\d+)?|[A-Za-z]+|[%$€£¥]")
_CURRENCY = {"$": "dollar", "€": "euro", "£": "pound", "¥": "yen", "usd": "dollar", "eur": "euro", "gbp": "pound"}
# A time of day ("2 p.m.", "14:00", "9:30 am"), compared as minutes after midnight.
_CLOCK = re.compile(r"\b(\d{1,2})(?::([0-5]\d))?\s*(?:([ap])\.?\s?m\b\.?)|\b(\d{1,2}):([0-5]\d)\b", re.IGNORECASE)
# A capitalised word or an initial ("A."), as names are written.
_NAME_RUN = re.compile(r"(?:[A-Z][\w'’.-]*\s+)*[A-Z][\w'’-]*")
_ARTICLES = {"a", "an", "the"}
_CONNECTIVES = {"of", "the", "de", "van", "von", "and", "la", "del", "da", "bin", "al"}
_TITLES = {"mr", "mrs", "ms", "dr", "gen", "general", "president", "sir", "prof", "professor", "former", "st"}


def words(text: str) -> list[str]:
    """SQuAD normalisation: lower case, no punctuation or articles, split on white space."""
    text = "".join(" " if c in string.punctuation or c in "’‘“”" else c for c in text.lower())
    return [w for w in text.split() if w not in _ARTICLES]


@dataclass(frozen=True)
class Normal:
    """A short answer's normal form: ``kind`` is ``date``, ``number``, ``name`` or ``text``."""

    kind: str
    value: object
    shown: str  # what a reader is shown for it ("2019-03-03", "Ada K. Brunel", "2 visits")


def number(text: str) -> tuple[float, str] | None:
    """The first number in ``text`` (digits or words, with a scale: "1.5 million", "two dozen",
    "twice") and the word after it as its unit ("" without one)."""
    toks = _TOKEN.findall(text.lower())
    for i, tok in enumerate(toks):
        if tok.lstrip("-−")[:1].isdigit():
            value = float(tok.replace(",", "").replace("−", "-"))
        elif tok in _NUMBER_WORDS and (tok not in ("a", "an") or (i + 1 < len(toks) and toks[i + 1] in _SCALES)):
            value = float(_NUMBER_WORDS[tok])
            # "twenty five", "two hundred"
            if value >= 20 and i + 1 < len(toks) and toks[i + 1] in _NUMBER_WORDS and _NUMBER_WORDS[toks[i + 1]] < 10:
                value += _NUMBER_WORDS[toks[i + 1]]
                i += 1
        else:
            continue
        j = i + 1
        while j < len(toks) and toks[j] in _SCALES:
            value *= _SCALES[toks[j]]
            j += 1
        if i > 0 and toks[i - 1] in ("minus", "negative"):
            value = -value
        unit = toks[j] if j < len(toks) else ""
        unit = _UNIT_ALIASES.get(unit, unit)
        unit = unit.rstrip("s") if len(unit) > 3 else unit
        unit, factor = _UNITS.get(unit, (unit, 1.0))
        if len(unit) <= 2 and (named := {t.rstrip("s") for t in toks[j + 1:j + 3]} & {"dollar", "euro", "pound"}):
            unit = named.pop()  # "1.2 million US dollars", "5 U.S. dollars"
        unit = _CURRENCY.get(toks[i - 1], _CURRENCY.get(unit, unit)) if i > 0 else _CURRENCY.get(unit, unit)
        return value * factor, unit
    return None


def clock(text: str) -> tuple[float, str] | None:
    """The time of day ``text`` starts with as (minutes after midnight, "clock"): "2 p.m." and
    "14:00" are 840. Without a.m. or p.m. an hour of 1 to 12 may be either half of the day: it
    is (minutes after midnight or noon, "clock12"). None when the text's first number is no time."""
    m = _CLOCK.search(text)
    first = re.search(r"\d", text)
    if not m or first is None or first.start() != m.start():  # "250 people by 10:30" is a count
        return None
    hour, minute, half = (int(m[1]), int(m[2] or 0), m[3].lower()) if m[1] else (int(m[4]), int(m[5]), "")
    if hour > (12 if half else 23):
        return None
    if not half and 1 <= hour <= 12:
        return float(hour % 12 * 60 + minute), "clock12"
    return float((hour % 12 + (12 if half == "p" else 0) if half else hour) * 60 + minute), "clock"


def longest_name(answer: str, document: str) -> str:
    """The longest run of capitalised words in ``document`` that holds every capitalised word
    of ``answer`` in order ("Brunel" → "Ada K. Brunel"); ``answer`` itself when none does."""
    caps = [w for w in re.findall(r"[\w'’.-]+", answer) if w[:1].isupper()]
    if not caps:
        return answer
    best = answer
    needle = re.compile(r"\b" + r"\b.*\b".join(re.escape(c) for c in caps) + r"\b")
    for m in _NAME_RUN.finditer(document):
        run = m.group()
        if len(run) > len(best) and needle.search(run) and len(run.split()) <= 6:
            best = run
    return best.strip(" .")


def is_name(answer: str) -> bool:
    """A few words, each capitalised but for connectives ("Bank of England", "Ada Brunel")."""
    ws = answer.split()
    return 0 < len(ws) <= 6 and ws[0][:1].isupper() and all(w[:1].isupper() or w.lower() in _CONNECTIVES for w in ws)


def normalise(answer: str, document: str = "", doc_date: str | None = None) -> Normal:
    """``answer``'s normal form, read in its ``document`` dated ``doc_date`` (ISO)."""
    iso = answer_date(answer, doc_date)
    if iso:
        return Normal("date", iso, iso)
    num = clock(answer) or number(answer)
    if num is not None:
        value, unit = num
        shown = f"{int(value) // 60:02d}:{int(value) % 60:02d}" if unit.startswith("clock") else f"{value:g} {unit}".strip()
        return Normal("number", num, shown)
    if is_name(answer):
        full = longest_name(answer, document) if document else answer
        toks = frozenset(w for w in words(full) if w not in _TITLES and len(w) > 1)
        if toks:
            return Normal("name", toks, full)
    return Normal("text", frozenset(words(answer)), answer)


def may_disagree(a: Normal, b: Normal, similarity: float, same_matter: float = SAME_MATTER) -> bool:
    """Can answers ``a`` and ``b``, from sentences whose embeddings have cosine ``similarity``,
    be shown as disagreeing? Both must be a date, both a number or both a name, and the
    sentences about the same matter."""
    return a.kind == b.kind and a.kind in DISAGREEING_KINDS and similarity >= same_matter


def agrees(a: Normal, b: Normal) -> bool:
    """Do two normalised answers say the same thing?

    Dates agree on every part both give; numbers when their values match and so do their units
    where both have one; names when one's words hold the other's; text when most words are
    shared (token F1 >= 0.5, as a SQuAD answer counts as close).
    """
    if a.kind == b.kind == "date":
        return same_date(str(a.value), str(b.value))
    if a.kind == b.kind == "number":
        (x, ux), (y, uy) = a.value, b.value  # type: ignore[misc]
        if {ux, uy} == {"clock", "clock12"}:  # "10:30" is 10:30 a.m. or p.m.
            x, y, ux, uy = x % 720, y % 720, "clock", "clock"
        same = x == y or abs(x - y) <= 1e-9 * max(abs(x), abs(y), 1.0)  # x == y: two numbers too large for a float
        return same and (not ux or not uy or ux == uy)
    if a.kind == b.kind == "name":
        return a.value <= b.value or b.value <= a.value  # type: ignore[operator]
    if {a.kind, b.kind} & {"date", "number"}:
        return False  # a date or number against words: nothing to match
    x, y = set(a.value), set(b.value)  # type: ignore[call-overload]
    common = len(x & y)
    if not common:
        return False
    precision, recall = common / len(x), common / len(y)
    return 2 * precision * recall / (precision + recall) >= 0.5
