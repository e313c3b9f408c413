"""Follow-up questions: detect them and rewrite them into a self-contained search, no LLM.

A follow-up ("And the second one?", "What position does he hold?", "In what year?") is
recognised by back-references (third-person pronouns, "the other", "that"), a leading "and" or
"what about", temporal links ("next", "after that"), or by having too few content words to
stand alone. Its search gets:

* pronouns replaced by the most recent compatible entity: a person-like short answer or name
  of the previous turn for he/she/him/her, any entity for it/its/they;
* the salient terms of the previous (resolved) question carried along, after the question's
  own words, so they weigh less in the dense embedding and add to the lexical overlap.

A question that stands on its own is searched as it is: the previous topic is not dragged in.
"""

from __future__ import annotations

import re
from typing import Sequence

from index.text import STOPWORDS

from .answertype import DATE, NONE, NUMBER, PERSON, WH_PHRASE, question_type

_PERSONAL = {"he", "she", "him", "her", "his", "hers", "himself", "herself"}
_IMPERSONAL = {"it", "its", "they", "them", "their", "theirs", "this", "that", "these", "those", "there"}
_LEAD = re.compile(r"^\s*(and|but|so|also|what about|how about|then)\b", re.IGNORECASE)
_LINKS = re.compile(r"\b(the other( one)?|the (first|second|third|last|latter|former|same) one|next|after that|before that|afterwards|then)\b", re.IGNORECASE)
_NAME = re.compile(r"\b[A-Z][a-zA-Z’'-]+(?:\s+(?:[A-Z][a-zA-Z’'-]+|[A-Z]\.))*")
_WORD = re.compile(r"[A-Za-z][A-Za-z’'-]*")
# Fewer content words than this and the question cannot stand alone.
_MIN_CONTENT = 3


def _content(text: str) -> list[str]:
    return [w for w in _WORD.findall(text) if w.lower() not in STOPWORDS and w.lower() not in _QUESTION_WORDS]


_ORDINAL_WORDS = {"first", "second", "third", "last", "other", "latter", "former", "next", "earlier", "later"}
_QUESTION_WORDS = _ORDINAL_WORDS | {"who", "what", "when", "where", "why", "how", "which", "whom", "whose", "many", "much", "did", "does", "do", "say", "said"}


def _names(text: str) -> list[str]:
    """Capitalised names in ``text`` (sentence-initial function words dropped)."""
    out = []
    for m in _NAME.finditer(text):
        words = m.group().split()
        while words and words[0].lower() in STOPWORDS | _QUESTION_WORDS:
            words = words[1:]
        if words:
            out.append(" ".join(words).rstrip("’'s").strip())
    return [n for n in out if n]


def is_follow_up(question: str) -> bool:
    words = {w.lower() for w in _WORD.findall(question)}
    return bool(
        words & (_PERSONAL | _IMPERSONAL)
        or _LEAD.search(question)
        or _LINKS.search(question)
        or len(_content(question)) < _MIN_CONTENT and not _names(question)
    )


def resolve(question: str, history: Sequence[tuple[str, str, str | None]]) -> str:
    """The search for ``question`` given ``history`` of ``(question, searched_for, answer)``.

    ``answer`` is the bot's short answer (None when it abstained or gave a whole sentence).
    Returns ``question`` itself when it stands alone or there is no history.
    """
    if not history or not is_follow_up(question):
        return question
    prev_q, prev_search, prev_answer = history[-1]
    person = None
    if prev_answer and question_type(prev_q) == PERSON and len(prev_answer.split()) <= 6:
        person = prev_answer
    else:
        people = _names(prev_search)
        person = people[0] if people else None
    rewritten = question
    if person:
        rewritten = re.sub(r"\b(he|she|him|her)\b", person, rewritten, count=1, flags=re.IGNORECASE)
        rewritten = re.sub(r"\b(his|hers)\b", f"{person}'s", rewritten, count=1, flags=re.IGNORECASE)
    have = {w.lower() for w in _WORD.findall(rewritten)}
    carried = [w for w in dict.fromkeys(_content(prev_search)) if w.lower() not in have]
    # A name answered last turn is what the follow-up is probably about; a date or number is not.
    named = question_type(prev_q) not in (DATE, NUMBER, NONE)
    if named and prev_answer and len(prev_answer.split()) <= 6 and prev_answer.lower() not in rewritten.lower():
        carried += [w for w in _content(prev_answer) if w.lower() not in have and w not in carried]
    # "And the second one?" asks what the last question asked: keep its question word.
    if not WH_PHRASE.search(rewritten):
        wh = WH_PHRASE.search(prev_search)
        if wh:
            carried.insert(0, wh.group().lower())
    return f"{rewritten} ({' '.join(carried)})" if carried else rewritten
