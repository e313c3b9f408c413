"""Follow-up questions: detect them and rewrite them into a self-contained search, no LLM.

A follow-up ("And the second one?", "What position does he hold?", "In what year?") is
recognised by back-references (third-person pronouns with no name of their own to point to,
"the other one", "that"), a leading "and"/"what about", temporal links ("next", "after that"),
or by having too few content words to stand alone. Its search gets:

* pronouns replaced by the most recent compatible antecedent: the person the previous turn
  answered with (a full name), else the first name in the previous question, skipping one
  the follow-up names itself;
* the previous question's salient words carried along in parentheses, after the question's
  own words, so they add to the lexical overlap and weigh less in the embedding; a follow-up
  without a question word also inherits the previous one ("when"), so it keeps its answer type;
  one that swaps in a name of its own ("And in the MPL?") does not carry the names it replaces.

A question that stands on its own is searched as it is: the previous topic is not dragged in.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

from index.text import STOPWORDS

from .answertype import DATE, NONE, NUMERIC, ORG_WORDS, PERSON, PERSON_NOUNS, ROLE, WH_PHRASE, question_type

_PERSONAL = {"he", "she", "him", "her", "his", "hers", "himself", "herself"}
# Object pronouns seldom mean the clause's own subject: they always look back.
_OBJECTS = {"him", "her", "them"}
_IMPERSONAL = {"it", "its", "they", "them", "their", "theirs", "this", "that", "these", "those", "there"}
_LEAD = re.compile(r"^\s*(and|but|so|also|what about|how about|then)\b", re.IGNORECASE)
_LINKS = re.compile(
    r"\b(the other( one)?|the (first|second|third|last|latter|former|same) one|next|after that|before that|afterwards|then)\b",
    re.IGNORECASE,
)
# Letters of any script, capitals of the Latin, Greek and Cyrillic ones: "Zoë Müller" is one name, not "Zo".
_L = r"[^\W\d_]"
_UP = "[" + "".join(c for c in map(chr, range(0x530)) if c.isupper()) + "]"
_NAME = re.compile(rf"\b{_UP}(?:{_L}|[’'-])*{_L}(?:\s+(?:{_UP}(?:{_L}|[’'-])*{_L}|{_UP}\.))*")
_WORD = re.compile(rf"{_L}(?:{_L}|[’'-])*")
_POSSESSIVE = re.compile(r"['’]s?$")
# Words after "her" that make it the object ("pay her well?", "let her go to"), unless a noun
# follows them ("her first job", "her home town").
_NOT_OWNED = frozenset("""again alone anyway away back best early enough first go home last late later leave
    long much now often once soon stay today tomorrow twice well yesterday""".split())
# Stopwords that stand between an owner and a noun ("her most famous speech"); "own" always does.
_BEFORE_NOUN = frozenset("most only other same very".split())
_HER = re.compile(r"\b[Hh][Ee][Rr]\b(?=\s+(\w+)(?:\s+(\w+))?|)")


def _owned(after: str | None, then: str | None) -> bool:
    """Is "her" followed by ``after`` (then ``then``) possessive ("her job") rather than an object?"""
    if after is None:
        return False
    after = after.lower()
    noun_next = then is not None and then.lower() not in STOPWORDS and then.lower() not in _NOT_OWNED
    if after in STOPWORDS:
        return after == "own" or after in _BEFORE_NOUN and noun_next
    return after not in _NOT_OWNED or noun_next


_ORDINAL_WORDS = {"first", "second", "third", "last", "other", "latter", "former", "next", "earlier", "later"}
_QUESTION_WORDS = _ORDINAL_WORDS | {
    "who", "what", "when", "where", "why", "how", "which", "whom", "whose", "many", "much", "did", "does", "do",
    "say", "said", "what's", "who's", "where's", "according",
}
# Words that open a chat turn ("Tell me more", "Anything else?"): capitalised there, yet no name.
_OPENERS = frozenset("""tell sorry okay ok thanks thank please really yes hmm wait sure anything give show explain
    describe list any else another besides""".split())
# Fewer content words than this and the question cannot stand alone.
_MIN_CONTENT = 3
# At most this many words are carried over from earlier turns.
_MAX_CARRIED = 8


def _base(word: str) -> str:
    return _POSSESSIVE.sub("", word.lower())


def _content(text: str) -> list[str]:
    return [w for w in _WORD.findall(text) if _base(w) not in STOPWORDS and w.lower() not in _QUESTION_WORDS]


def _names(text: str) -> list[str]:
    """Capitalised names in ``text``, question words and function words at their edges dropped."""
    out = []
    for m in _NAME.finditer(text):
        parts = m.group().split()
        while parts and (_base(parts[0]) in STOPWORDS or parts[0].lower() in _QUESTION_WORDS or parts[0].lower() in _OPENERS):
            parts = parts[1:]
        if parts:
            parts[-1] = _POSSESSIVE.sub("", parts[-1])
            out.append(" ".join(parts))
    return [n for n in out if n]


def _antecedents(text: str) -> list[str]:
    """Who a personal pronoun in the next question may point back to, in order of mention.

    A name counts unless it is an acronym ("US"), follows "the" ("the Daily Herald") or holds
    an organisation word; a role ("the deputy director of …", "Which art critic…") counts
    too, as "the <role>", so "What's his name?" can still be rewritten when no name was given.
    """
    found: list[tuple[int, str]] = []
    for m in _NAME.finditer(text):
        name = _names(m.group())
        if not name or name[0].isupper() or ORG_WORDS.search(name[0]):
            continue
        start = m.start() + m.group().find(name[0].split()[0])
        if re.search(r"\bthe\s+$", text[:start], re.IGNORECASE):
            continue
        found.append((start, name[0]))
    toks = list(_WORD.finditer(text))
    for i, t in enumerate(toks):
        if _POSSESSIVE.sub("", t.group().lower()) not in PERSON_NOUNS:
            continue
        j = i
        while j > 0 and i - j < 3 and _base(toks[j - 1].group()) not in STOPWORDS and toks[j - 1].group().lower() not in _QUESTION_WORDS:
            j -= 1
        role = "the " + _POSSESSIVE.sub("", text[toks[j].start():t.end()])
        # A role that opens with a name ("Dutch art critic") replaces that name.
        found = [(s, n) for s, n in found if s != toks[j].start()]
        found.append((toks[j].start(), role))
    return [n for _, n in sorted(found)]


def _core(search: str) -> str:
    """A resolved search without the words it carried from earlier turns."""
    return search.split(" (", 1)[0]


def _own_antecedent(question: str) -> bool:
    """Does a name in the question come before its first subject or possessive pronoun?

    "Where was X when he…" and "X and his…" point back inside the question; an object pronoun
    ("How often did X ring him?") seldom means the clause's own subject, so it looks back.
    """
    pronoun = re.search(r"\b(he|she|his|hers|it|its|they|their)\b", question, re.IGNORECASE)
    names = _names(question[:pronoun.start()]) if pronoun else []
    return bool(names)


def is_follow_up(question: str) -> bool:
    words = {w.lower() for w in _WORD.findall(question)}
    back_reference = bool(words & _OBJECTS) or bool(words & (_PERSONAL | _IMPERSONAL)) and not _own_antecedent(question)
    return bool(
        back_reference
        or _LEAD.search(question)
        or _LINKS.search(question)
        or len(_content(question)) < _MIN_CONTENT and not _names(question)
    )


def search_text(question: str, carried: Sequence[str]) -> str:
    """What a resolved question is searched (and read) as: "question (carried words)"."""
    return f"{question} ({' '.join(carried)})" if carried else question


@dataclass(frozen=True)
class Resolution:
    """A question made self-contained: pronouns resolved, plus words carried from the past."""

    question: str
    carried: tuple[str, ...] = ()
    follow_up: bool = False  # read as depending on the previous turn

    @property
    def searched_for(self) -> str:
        """What the user is shown (and what retrieval searches): "question (carried words)"."""
        return search_text(self.question, self.carried)


def resolve(question: str, history: Sequence[tuple[str, str, str | None]]) -> Resolution:
    """Resolve ``question`` given ``history`` of ``(question, searched_for, answer)``.

    ``answer`` is the bot's short answer (None when it abstained or gave a whole sentence).
    A question that stands alone, or comes first, is returned as it is.
    """
    if not history or not is_follow_up(question):
        return Resolution(question)
    prev_q, prev_search, prev_answer = history[-1]
    prev_core = _core(prev_search)
    kind = question_type(prev_q)
    answered = _names(prev_answer) if prev_answer and kind == PERSON else []
    people = answered if len(answered) == 1 and len(prev_answer.split()) >= 2 else []
    # A pronoun does not mean someone its own question names ("Did Brunel ring him?"): the
    # next antecedent in line does.
    named = {_base(w) for n in _names(question) for w in n.split()}
    person = next((p for p in people + _antecedents(prev_core) if not named & {_base(w) for w in p.split()}), None)
    rewritten = question
    subject = not _own_antecedent(question)
    first = person and re.search(r"\b(he|she|his|hers|him|her)\b" if subject else r"\b(him|her)\b", question, re.IGNORECASE)
    if first:
        # One person is one gender: in "What did he tell her?" only "he" is the antecedent.
        female = first.group(1).lower() in ("she", "hers", "her")
        if subject:
            rewritten = re.sub(r"\bshe\b" if female else r"\bhe\b", person, rewritten, count=1, flags=re.IGNORECASE)
            rewritten = re.sub(r"\bhers\b" if female else r"\bhis\b", f"{person}'s", rewritten, count=1, flags=re.IGNORECASE)
        if female:  # "her job" is hers, "tell her" and "give her the key" are her
            rewritten = _HER.sub(lambda m: person + ("'s" if _owned(m.group(1), m.group(2)) else ""), rewritten, count=1)
        else:
            rewritten = re.sub(r"\bhim\b", person, rewritten, count=1, flags=re.IGNORECASE)
    skip = {_base(w) for w in _WORD.findall(rewritten)}
    # "And in the MPL?", "What about X?": the follow-up asks the last question of a name of its
    # own instead of the names the last question held, so those are not carried.
    if named and _LEAD.search(question):
        skip |= {_base(w) for n in _names(prev_core) for w in n.split()}
    carried: list[str] = []

    def carry(words: list[str]) -> None:
        for w in words:  # "Mayor" after "mayor", "Okafor's" after "Okafor": carried once, first spelling
            if _base(w) not in skip and len(carried) < _MAX_CARRIED:
                carried.append(w)
                skip.add(_base(w))

    # A name answered last turn is what the follow-up is probably about; a date, number or job
    # title is not ("staff writer" says nothing about "And Tom Hale's?").
    if kind not in (DATE, NONE, ROLE, *NUMERIC) and prev_answer and len(prev_answer.split()) <= 6:
        carry(_content(prev_answer))
    carry(_content(prev_core))
    carry(_content(prev_search[len(prev_core):]))
    # "And the second one?" asks what the last question asked: keep its question word.
    if not WH_PHRASE.search(rewritten):
        wh = WH_PHRASE.search(prev_core)
        if wh:
            carried.insert(0, wh.group().lower())
    return Resolution(rewritten, tuple(carried), follow_up=True)
