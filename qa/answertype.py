"""Expected answer type of a question, and candidate answer spans of that type in a sentence.

Pattern based, no model: dates and times, numbers and quantities, capitalised names (for
people, organisations and places) and job titles. Nothing here knows any particular document.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from index.text import STOPWORDS, normalise, words

DATE, NUMBER, PERSON, PLACE, ENTITY, NONE = "date", "number", "person", "place", "entity", "none"
# Numbers of a particular sort: an age ("How old…") and a span of time or distance ("How long…").
AGE, DURATION = "age", "duration"
NUMERIC = (NUMBER, AGE, DURATION)
# A job or title ("What is X's role at the firm?", "What position does X play?"): "staff writer".
ROLE = "role"

_MONTHS = (
    r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?|"
    r"Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)\.?"
)
_DAYS = r"(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday)"
_NUMWORD = (
    r"(?:zero|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|"
    r"fifteen|sixteen|seventeen|eighteen|nineteen|twenty|thirty|forty|fifty|sixty|seventy|eighty|"
    r"ninety|hundred|thousand|million|billion|trillion|dozen|half|twice|once)"
)
_NUM = rf"(?:[$€£¥]\s?)?\d+(?:,\d{{3}})*(?:\.\d+)?(?:\s?%|\s(?:percent|per cent))?|{_NUMWORD}(?:[\s-]{_NUMWORD})*"
_YEAR = re.compile(r"(?:1[5-9]|20)\d{2}")
_YEAR_BEFORE = re.compile(r"\b(?:in|since|until|by|from|of)\s$", re.IGNORECASE)
_QUANT_PREFIX = r"(?:(?:more|less|fewer) than|over|under|about|around|nearly|almost|at least|at most|up to|some|approximately|roughly)\s"

_YEAR_OR_DECADE = r"\b(?:1[0-9]|20)\d{2}s?\b"
_DATE_PATTERNS = [
    rf"\b{_MONTHS}\s\d{{1,2}}(?:st|nd|rd|th)?(?:,?\s\d{{4}})?",
    rf"\b\d{{1,2}}(?:st|nd|rd|th)?\s(?:of\s)?{_MONTHS}(?:,?\s\d{{4}})?",
    rf"\b{_MONTHS},?\s\d{{4}}\b",
    rf"\b(?:(?:early|mid|late)[\s-])?{_MONTHS}(?![\w’'])",
    r"\b\d{4}-\d{2}-\d{2}\b",
    _YEAR_OR_DECADE,
    rf"\b{_DAYS}\b",
    r"\b\d{1,2}(?::\d{2})?\s?(?:a\.m\.|p\.m\.|am|pm|AM|PM)",
    r"\b(?:the\s)?\d{1,2}(?:st|nd|rd|th)\scentury\b",
    r"\b(?:last|next|this|that)\s(?:week|month|year|spring|summer|autumn|fall|winter)\b",
    r"\b(?:yesterday|today|tomorrow)\b",
]
_DATE_RE = re.compile("|".join(f"(?:{p})" for p in _DATE_PATTERNS))
# (?<!\w), not \b: a currency sign opens the number ("$5 million"), and there is no word
# boundary between it and the space before it.
_NUMBER_RE = re.compile(rf"(?<!\w)(?:{_QUANT_PREFIX})?(?:{_NUM})(?:\s(?!of\b|the\b|and\b|to\b|in\b)[a-z]+)?\b", re.IGNORECASE)
# A run of capitalised words, allowing "of"/"the"/"de"… and hyphens inside.
_NAME_RE = re.compile(
    r"\b(?:[A-Z][\w’'.-]*[\w])(?:\s(?:(?:of|the|de|van|von|al|for|and)\s)?(?:[A-Z][\w’'.-]*[\w]|[A-Z]\.))*"
)
ORG_WORDS = re.compile(
    r"\b(?:Post|Times|News|Journal|Staff|Committee|Commission|Council|Party|Ministry|Department|University|"
    r"Institute|Army|Force|Forces|Association|Company|Corporation|Inc|Ltd|Bank|Agency|Office|House|Court|Church|"
    r"School|College|Union|Organization|Organisation|Administration|Government|Congress|Senate)\b"
)
_UNITS = re.compile(
    r"(?:second|minute|hour|day|night|week|month|year|decade|century|centuries|millennium|millennia|"
    r"mile|kilometre|kilometer|km|metre|meter|m|mi|foot|feet|ft|inch|inches|yard|light-year)s?",
    re.IGNORECASE,
)
# An age: "aged 68", "at the age of 68", "68 years old", "a 68-year-old", or ", 68," after a name.
_AGE_BEFORE = re.compile(r"\b(?:aged|age of|at age)\s$", re.IGNORECASE)
_AGE_AFTER = re.compile(r"^(?:[\s-]+years?)?[\s-]+old\b", re.IGNORECASE)
# "four days before the vote" places something in time rather than measuring how long it
# lasted: it answers "How long before…?" but not "How long did it last?".
_OFFSET_AFTER = re.compile(r"^\s+(?:after|before|later|earlier|ago|since|until|prior)\b", re.IGNORECASE)
_ASKS_OFFSET = re.compile(r"\bhow long (?:after|before|ago|since|until|prior|earlier|later)\b", re.IGNORECASE)
# "Who/Whom did/will/has <subject> <verb>…?": the answer is the verb's object.
_OBJECT_QUESTION = re.compile(r"(?:who|whom)\s+(?:did|does|do|will|would|can|could|should|might|may|has|have|had)\b", re.IGNORECASE)
# "Who does the article say promised…?" asks for the subject of the reported clause instead.
_REPORTING = re.compile(r"\b(?:say|said|think|believe|claim|report|suggest|expect|feel|know|hope|fear)\b", re.IGNORECASE)
# Capitalised at a sentence's start, these open it rather than name anyone ("Instead, …").
_OPENERS = frozenset(
    "instead another often even like unlike strictly meanwhile thus hence still yet later earlier today "
    "overall finally although though despite since according besides moreover furthermore however "
    "therefore indeed perhaps many several every".split()
)
# Nationality, region and faith adjectives: capitalised, but no answer to "Who…?" on their own.
_DEMONYMS = frozenset(
    "American British English French German Italian Spanish Portuguese Russian Soviet Chinese Japanese "
    "Korean Indian Pakistani Muslim Christian Catholic Protestant Jewish Arab Persian Greek Roman European "
    "African Asian Canadian Mexican Australian Irish Scottish Welsh Dutch Polish Swedish Norwegian Danish "
    "Turkish Egyptian Israeli Iranian Iraqi Brazilian Mongol Mongolian Western Eastern Northern Southern "
    "US U.S UK".split()
)
_PLACE_HINT = re.compile(r"\b(?:in|at|from|to|near|into|across|outside|inside)\s(?:the\s)?$", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Span:
    start: int
    end: int
    kind: str


WH_PHRASE = re.compile(r"\b(when|what|which|who|whom|whose|where|why|how|in what|on what|at what|since when)\b", re.IGNORECASE)


_AUXILIARY = (
    r"(?:is|are|was|were|am|do|does|did|has|have|had|can|could|will|would|shall|should|may|might|must)(?:n['’]t)?"
    r"|can['’]t|won['’]t"
)
# A question to answer "yes" or "no": it opens (after "and", "so"…) with an auxiliary verb and
# does not ask to be told something ("Can you name one?").
_POLAR = re.compile(
    rf"^\W*(?:(?:and|but|so|then|also|well|ok|okay|now|oh)\W+)*(?:{_AUXILIARY})\b"
    r"(?!\s+(?:you|anyone|we)\s+(?:name|tell|list|say|give|describe|explain|find)\b)",
    re.IGNORECASE,
)


def is_polar(question: str) -> bool:
    """Does ``question`` ask for yes or no? Not when it offers alternatives ("Was it red or blue?")."""
    return bool(_POLAR.match(question)) and not re.search(r"\bor\b", question, re.IGNORECASE)


def question_type(question: str) -> str:
    """The kind of short answer the question asks for (``none`` for why/how/yes-no...).

    Only the first wh-phrase counts: "What did he do when she left?" asks "what", and the
    "Who" of "Doctor Who" after a leading "Which" is a name, not the question word.
    """
    m = WH_PHRASE.search(question)
    # "Was he in prison when he died?" asks yes or no: its "when" is no question word.
    if not m or is_polar(question):
        return NONE
    q = question[m.start():].strip().lower()
    if re.match(r"(when|since when|(in |on |at )?(what|which) (year|date|day|month|time|century|decade|period|era|season)s?\b|how long ago)", q):
        return DATE
    if re.match(r"how old\b|(at )?(what|which) age\b", q):
        return AGE
    if re.match(r"how long\b", q):
        return DURATION
    if re.match(r"how (many|much|far|big|large|tall|often|high|few|wide|deep|heavy|fast)\b|(what|which) (number|percentage|proportion|amount|size|population)\b", q):
        return NUMBER
    if re.match(r"(who|whom|whose)\b", q) or _asks_for(q, PERSON_NOUNS):
        return PERSON
    if _asks_role(q):
        return ROLE
    if re.match(r"where\b|(in |at )?(what|which) (country|city|state|place|town|region|continent|location|venue|county|province|island|river)\b", q):
        return PLACE
    if re.match(r"(what|which)\b.*\b(name|called|named|title)\b", q) or _asks_for(q, ENTITY_NOUNS):
        return ENTITY
    return NONE


# Nouns that make "which/what <noun>" ask for a person or a named thing ("Which senator voted…",
# "What news agency reported…"). General English, nothing from any particular document.
PERSON_NOUNS = frozenset(
    "senator president leader official spokesman spokeswoman spokesperson minister author authors writer "
    "professor expert commentator analyst player players king queen emperor empress ruler scientist chairman "
    "director actor actress singer governor mayor judge journalist reporter editor aide soldier officer "
    "commander coach quarterback pope bishop pharaoh prince princess explorer inventor composer artist "
    "poet philosopher politician candidate founder ceo member members person people man woman engineer "
    "doctor physician lawyer admiral secretary ambassador diplomat monarch chancellor prime".split()
)
ENTITY_NOUNS = frozenset(
    "organization organisation company firm group agency party newspaper paper magazine publication book "
    "novel team club university college school network channel outlet broadcaster film movie show series "
    "album song band brand ship institution council committee court ministry department army church "
    "religion language award prize treaty law act event war battle".split()
)

ROLE_NOUNS = PERSON_NOUNS | ENTITY_NOUNS

# Jobs and titles (general English, singular): the head of a ROLE answer ("senior staff
# reporter", "chairman of the Board of Trustees", "linebacker").
_NOT_TITLES = {"authors", "man", "members", "people", "person", "player", "players", "prime", "woman"}
ROLE_TITLES = (PERSON_NOUNS - _NOT_TITLES) | frozenset(
    "chairwoman chairperson premier architect economist sociologist historian priest pastor "
    "clergyman preacher theologian rabbi imam monk nun missionary cardinal archbishop novelist "
    "painter sculptor physicist chemist biologist mathematician astronomer electrician draftsman "
    "consultant superintendent manager co-chair vice-president deputy assistant clerk accountant "
    "banker merchant farmer nurse surgeon dentist pharmacist pilot sailor captain colonel lieutenant "
    "sergeant marshal detective inspector linebacker receiver kicker punter cornerback pitcher "
    "catcher goalkeeper midfielder striker referee umpire producer presenter anchor correspondent "
    "columnist critic publisher entertainer comedian dancer musician pianist violinist guitarist "
    "drummer conductor rapper designer photographer programmer researcher scholar lecturer teacher "
    "dean principal rector provost treasurer trustee executive lawmaker legislator congressman "
    "congresswoman councillor councilman commissioner attorney prosecutor solicitor barrister "
    "magistrate sheriff adviser advisor counsellor counselor envoy consul staffer apprentice "
    "labourer laborer servant chef tailor carpenter blacksmith miner digger schoolteacher "
    "headteacher headmaster headmistress librarian shopkeeper storekeeper bookkeeper firefighter "
    "policeman policewoman fisherman postman mechanic plumber janitor waiter waitress "
    "baker butcher cashier nanny housekeeper veterinarian midwife paramedic psychologist "
    "psychiatrist therapist astronaut translator interpreter illustrator cartoonist filmmaker "
    "screenwriter playwright lyricist songwriter broadcaster statistician surveyor geologist "
    "botanist zoologist archaeologist anthropologist linguist footballer cricketer athlete general "
    "chief head chair".split()
)
# Titles that are also everyday adjectives or nouns ("general consensus", "head start"): a role
# only before a name, "of", punctuation or the end, or inside a longer title ("chief electrician").
_LOOSE_TITLES = frozenset("general chief head member chair principal executive assistant deputy anchor".split())
# Verbs that introduce a title without modifying it ("became editor").
_NOT_MODIFIERS = frozenset("became become becomes becoming remain remains remained serve serves make makes made".split())
_ROLE_WORD = re.compile(r"[A-Za-z][A-Za-z-]*")
_OF_THE = re.compile(r"\s+of\s+(?:the\s+)?")
# "What position does X play/hold?", "What job did X have?", "What profession was X?"
_ROLE_ASKED = re.compile(
    r"(what|which) (positions?|jobs?|occupations?|professions?|roles?) (does|did|do|was|is|were|has|had|will|would)\b"
)
# "What is X's role at…?", "What was Tesla's fathers occupation?" (not "X's position on…", a stance).
_ROLE_OF_SOMEONE = re.compile(
    r"(what|which)(['’]s| is| was| are| were| would be| will be)? (\S+ ){0,4}?(\S+['’]s?|his|her|their) "
    r"(\w+ )?(positions?|jobs?|occupations?|professions?|roles?)\b(?! on\b)"
)


def _asks_role(q: str) -> bool:
    """Does ``q`` (lower case, from its wh-word) ask for someone's job or title?

    "What role did X play in…" asks what X did, not X's title; "What is the role of teachers…"
    asks for a description and "the position of the satellite" for a place, so "the … of" counts
    only for an occupation, profession or job.
    """
    if re.search(r"\broles?\b.*\bplay", q):
        return False
    return bool(
        _ROLE_ASKED.match(q) or _ROLE_OF_SOMEONE.match(q)
        or re.match(r"(what|which) (is|was|are|were) the (occupation|profession|job)s? of\b", q)
        or re.match(r"what (does|did) .+ do for a living\b", q)
    )


def _singular(word: str) -> str:
    w = word.lower()
    for suffix, repl in (("ies", "y"), ("men", "man"), ("s", "")):
        if w.endswith(suffix) and w[: -len(suffix)] + repl in ROLE_TITLES:
            return w[: -len(suffix)] + repl
    return w


def _role_spans(sentence: str) -> list[Span]:
    """Job titles in ``sentence``: a title word with the modifiers before it ("staff writer",
    "Deputy Director") and an "of …" name after it ("chairman of the Board of Trustees")."""
    toks = list(_ROLE_WORD.finditer(sentence))
    heads = [_singular(t.group()) for t in toks]
    found = []
    for i, t in enumerate(toks):
        head = heads[i]
        if head not in ROLE_TITLES:
            continue
        if t.group()[0].isupper() and head != t.group().lower():
            continue  # "Institute of Radio Engineers", "Royal Engineers": a name, not someone's title
        nxt = toks[i + 1] if i + 1 < len(toks) else None
        joined = nxt is not None and sentence[t.end():nxt.start()].strip() == ""
        if joined and heads[i + 1] in ROLE_TITLES:
            continue  # "chief electrician": the title is the next word's
        if (t.group().lower() in _LOOSE_TITLES and joined and nxt.group().islower()
                and nxt.group() not in ("of", "for", "to", "at", "in")):
            continue  # "general consensus"
        start, j = t.start(), i
        while j > 0 and i - j < 3:
            prev = toks[j - 1]
            low = prev.group().lower()
            if sentence[prev.end():toks[j].start()] not in (" ", "-") or low in STOPWORDS or low in _NOT_MODIFIERS:
                break
            if low.endswith(("ly", "ed")):
                break  # "later became editor", "was appointed director": verbs and adverbs
            # Capitalised words lead a capitalised title ("Deputy Director"), not a lower-case one.
            if prev.group()[0].isupper() != t.group()[0].isupper():
                break
            j -= 1
            start = prev.start()
        end = t.end()
        of = _OF_THE.match(sentence, end)
        if of:
            name = _NAME_RE.match(sentence, of.end())
            if name:
                end = _trim(sentence, name.start(), name.end())[1]
        found.append(Span(start, end, ROLE))
    return found


def _asks_for(q: str, nouns: frozenset[str]) -> bool:
    """Does ``q`` (lower case, from its wh-word) open with "what/which", up to two modifiers,
    then one of ``nouns``?

    The modifiers must be content words ("Which Dutch art critic"), so "What did
    the president say?" is not a question about which president.
    """
    toks = re.findall(r"[a-z][a-z’'-]*", q)
    if not toks or toks[0] not in ("what", "which"):
        return False
    for tok in toks[1:4]:
        if tok in nouns:
            return True
        if tok in STOPWORDS:
            return False
    return False


def _dedupe(spans: list[Span]) -> list[Span]:
    spans.sort(key=lambda s: (s.start, -(s.end - s.start)))
    out: list[Span] = []
    for s in spans:
        if out and s.start < out[-1].end:
            continue
        out.append(s)
    return out


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    for suffix in ("’s", "'s"):
        if text.endswith(suffix, start, end) and end - start > len(suffix):
            end -= len(suffix)
    while end > start and text[end - 1] in ".,;:’'\"”":
        end -= 1
    return start, end


def candidates(sentence: str, kind: str, offsets: bool = True) -> list[Span]:
    """Spans of ``sentence`` that could answer a question of ``kind``, in text order.

    ``offsets=False``: a duration followed by "before/after/ago…" is an offset, not a duration.
    """
    found: list[Span] = []
    if kind == DATE:
        found = [Span(*_trim(sentence, m.start(), m.end()), DATE) for m in _DATE_RE.finditer(sentence)]
    elif kind in NUMERIC:
        for m in _NUMBER_RE.finditer(sentence):
            s, e = _trim(sentence, m.start(), m.end())
            if _YEAR.fullmatch(sentence[s:e]) and _YEAR_BEFORE.search(sentence[max(0, s - 8):s]):
                continue  # "in 2019" dates something; it is no amount
            found_words = sentence[s:e].split()
            if found_words[-1].lower() in STOPWORDS and len(found_words) > 1:
                # Cut at the last run of any whitespace: "ten\nit" is "ten", not an empty span.
                e = s + len(sentence[s:e].rsplit(None, 1)[0])
            if kind != NUMBER:
                e = _fitting_end(kind, sentence, s, e, offsets)
                if e is None:
                    continue
            found.append(Span(s, e, kind))
    elif kind == ROLE:
        found = _role_spans(sentence)
    elif kind in (PERSON, PLACE, ENTITY):
        for m in _NAME_RE.finditer(sentence):
            s, e = _trim(sentence, m.start(), m.end())
            text = sentence[s:e]
            first = text.split()[0].lower()
            # A capitalised sentence opener that is a function word or a linking adverb is no name.
            if first in STOPWORDS or first in _OPENERS:
                rest = text.split(maxsplit=1)
                if len(rest) < 2:
                    continue
                s = s + len(text) - len(rest[1])
                text = rest[1]
            if _DATE_RE.fullmatch(text) or text.lower() in STOPWORDS:
                continue
            if kind == PERSON and text in _DEMONYMS:
                continue  # "British", "Soviet": who someone is, not a name
            found.append(Span(s, e, kind))
        if kind == PLACE:
            # Prefer names introduced by a locative preposition.
            found = [sp for sp in found if _PLACE_HINT.search(sentence[max(0, sp.start - 12):sp.start])] or found
    return _dedupe(found)


def _fitting_end(kind: str, sentence: str, start: int, end: int, offsets: bool = True) -> int | None:
    """Where the number at ``sentence[start:end]`` (with the word after it, if any) ends when
    it is an age or a duration, as ``kind`` asks; None when it is not (nor, without
    ``offsets``, when a duration is an offset: "four days before the vote")."""
    text = sentence[start:end]
    if kind == DURATION:
        if not _UNITS.fullmatch(text.split()[-1]) or not offsets and _OFFSET_AFTER.match(sentence[end:]):
            return None
        return end
    if _AGE_BEFORE.search(sentence[max(0, start - 12):start]) or _AGE_AFTER.match(sentence[end:]):
        return end
    # "Ada Brunel, 68, said…": a small bare number set off by commas after a name.
    number = re.match(r"\d{1,3}", text)
    if number and sentence[start - 2:start] == ", " and sentence[start + number.end():start + number.end() + 1] == ",":
        return start + number.end() if int(number.group()) < 130 else None
    return None


# A question asking for one part of a date, and that part in a date.
_DATE_PARTS = [
    (re.compile(r"\b(?:what|which)\s+years?\b", re.IGNORECASE), re.compile(_YEAR_OR_DECADE)),
    (re.compile(r"\b(?:what|which)\s+months?\b", re.IGNORECASE), re.compile(rf"\b{_MONTHS}(?![\w’'])")),
    (re.compile(r"\b(?:what|which)\s+day of the week\b|\bweekday\b", re.IGNORECASE), re.compile(rf"\b{_DAYS}\b")),
]
_HOW_MANY = re.compile(r"\bhow\s+(?:many|much)\s+([a-z]+)", re.IGNORECASE)
_ORDINALS = {"first": 0, "earlier": 0, "earliest": 0, "initial": 0, "second": 1, "other": -1, "latter": -1,
             "later": -1, "last": -1, "latest": -1, "final": -1, "third": 2, "fourth": 3}


def find_answer(question: str, sentence: str, kind: str) -> tuple[Span, float] | None:
    """The best candidate of ``kind`` in ``sentence`` and its closeness to the question's words.

    Candidates made only of question words are dropped (they restate the question). An
    ordinal in the question ("the second visit") picks the candidate in that position; else the
    candidate nearest the question's words in the sentence wins. Closeness is 1 next to a
    question word, falling with the distance (0 when no question word is in the sentence).
    """
    if kind == NONE:
        return None
    # A role word the question asks about ("Which senator…") is part of the answer's name
    # ("Senator Ada Brunel"), not a sign that the candidate restates the question; when the
    # question asks for a job, one it names ("Though trained as a lawyer…") is no answer.
    qterms = {
        normalise(m.group()) for m in words(question)
        if m.group().lower() not in STOPWORDS and (kind == ROLE or m.group().lower() not in ROLE_NOUNS)
    }
    # "How many days…": an amount of the thing counted ("two days") answers it; its unit
    # echoes the question without being the question's subject.
    counted = _HOW_MANY.search(question) if kind == NUMBER else None
    unit = normalise(counted.group(1)) if counted else None
    fresh, echoing, of_unit = [], [], []
    for c in candidates(sentence, kind, offsets=bool(_ASKS_OFFSET.search(question))):
        cterms = {normalise(m.group()) for m in words(sentence[c.start:c.end]) if m.group().lower() not in STOPWORDS}
        if cterms and cterms <= qterms:
            continue  # restates the question
        if unit in cterms:
            of_unit.append(c)
        (echoing if cterms & qterms else fresh).append(c)
    # A candidate sharing words with the question is usually its subject, not its answer.
    cands = of_unit or fresh or echoing
    if kind == DATE:
        # "In what year…" over "on March 3, 2019": the part of the date that was asked for.
        part = next((found for asks, found in _DATE_PARTS if asks.search(question)), None)
        if part:
            found = [part.search(sentence, c.start, c.end) for c in cands]
            cands = [Span(m.start(), m.end(), DATE) for m in found if m] or cands
    if not cands:
        return None
    if len(cands) > 1:
        for w in re.findall(r"[a-z]+", question.lower()):
            if w in _ORDINALS:
                i = _ORDINALS[w]
                if -len(cands) <= i < len(cands):
                    return cands[i], 1.0
    toks = words(sentence)
    anchors = [m.start() for m in toks if m.group().lower() not in STOPWORDS and normalise(m.group()) in qterms]
    if not anchors:
        return cands[0], 0.0
    # "Who did Brunel visit?" asks for the object of its verb: in the sentence, the person after
    # the question's lower-case words ("…visits to … Tom Hale"), not one before them.
    after = None
    if kind == PERSON and _OBJECT_QUESTION.match(question.strip()) and not _REPORTING.search(question):
        verbs = {normalise(m.group()) for m in words(question) if m.group().islower() and m.group() not in STOPWORDS}
        verbs &= qterms
        after = min((m.end() for m in toks if m.group().islower() and normalise(m.group()) in verbs), default=None)

    def closeness(c: Span) -> float:
        near = min(min(abs(a - c.start), abs(a - c.end)) for a in anchors)
        return 1.0 / (1.0 + near / 10.0)

    def score(c: Span) -> float:
        s = closeness(c)
        if kind == PERSON:
            text = sentence[c.start:c.end]
            # Full names (two or more capitalised words, not an organisation) are likelier answers.
            s += 0.5 * (len(text.split()) > 1 and not ORG_WORDS.search(text))
            s += 0.5 * (after is not None and c.start > after)
        return s

    best = max(cands, key=score)
    return best, closeness(best)
