"""Server-side conversation memory (``conversation_id``): bounded in count, turns, bytes and time."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import replace as _replace
from typing import Any, Callable

from ..bot import Turn
from ..settings import MiB

# What the conversation memory keeps of an answer's texts: later turns read only the short
# answer and the top citation's place, never the quoted sentence.
KEPT_CHARS = 1000


def turn_size(turn: Any) -> int:
    """Bytes a stored turn holds (its strings, plus a fixed overhead)."""
    if not isinstance(turn, Turn):
        return sys.getsizeof(turn)
    a = turn.answer
    strings = [turn.question, a.question, a.searched_for, a.answer or ""]
    for c in a.citations:
        strings += [c.doc, c.title, c.text]
    return 512 + sum(sys.getsizeof(x) for x in strings)


def slim_turn(turn: Turn) -> Turn:
    """What a later turn reads of an earlier one: the question, the search, the short answer,
    the confidence and the top citation's place (its quoted text cut short)."""
    a = turn.answer
    top = tuple(_replace(c, title="", text=c.text[:KEPT_CHARS]) for c in a.citations[:1])
    answer = a.answer[:KEPT_CHARS] if a.answer else a.answer
    return Turn(turn.question[:KEPT_CHARS * 4], _replace(a, question=a.question[:KEPT_CHARS * 4], searched_for=a.searched_for[:KEPT_CHARS * 4],
                                                        answer=answer, citations=top, timings_ms={}, passages=(), corroboration=()))


class Conversations:
    """Server-side histories by conversation id: bounded in count, turns, bytes and idle time.

    Past ``max_bytes`` (the sum of ``size(turn)`` over every stored turn) the least recently
    used conversations are forgotten first.
    """

    def __init__(self, max_conversations: int, max_turns: int, ttl_s: float, clock=time.monotonic,
                 max_bytes: int = 64 * MiB, size: Callable[[Any], int] = turn_size) -> None:
        self.max_conversations, self.max_turns, self.ttl_s, self.clock = max_conversations, max_turns, ttl_s, clock
        self.max_bytes, self.size = max_bytes, size
        self.bytes = 0
        self._items: OrderedDict[str, tuple[float, list[tuple[Turn, int]]]] = OrderedDict()
        self._lock = threading.Lock()
        self._turns: dict[str, tuple[asyncio.Lock, int]] = {}  # per conversation in use: its lock, its requests

    @contextlib.asynccontextmanager
    async def turn(self, cid: str) -> AsyncIterator[None]:
        """Hold conversation ``cid`` for one request: requests on one conversation are answered one
        at a time, in the order they came, each reading the history the last one left."""
        lock, users = self._turns.get(cid) or (asyncio.Lock(), 0)
        self._turns[cid] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._turns[cid]
            if users == 1:
                del self._turns[cid]
            else:
                self._turns[cid] = (lock, users - 1)

    def _drop(self, cid: str) -> None:
        _, turns = self._items.pop(cid)
        self.bytes -= sum(n for _, n in turns)

    def _expire(self, now: float) -> None:
        while self._items:
            cid, (seen, _) = next(iter(self._items.items()))
            if now - seen <= self.ttl_s:
                break
            self._drop(cid)

    def history(self, cid: str) -> list[Turn]:
        with self._lock:
            self._expire(self.clock())
            item = self._items.get(cid)
            return [t for t, _ in item[1]] if item else []

    def append(self, cid: str, turn: Turn) -> None:
        size = self.size(turn)
        with self._lock:
            now = self.clock()
            self._expire(now)
            turns = []
            if cid in self._items:
                turns = self._items[cid][1]
                self._drop(cid)
            turns = (turns + [(turn, size)])[-self.max_turns:]
            while len(turns) > 1 and sum(n for _, n in turns) > self.max_bytes:
                turns.pop(0)  # one conversation alone never holds more than the whole budget
            self._items[cid] = (now, turns)  # most recently used last
            self.bytes += sum(n for _, n in turns)
            while len(self._items) > self.max_conversations or (self.bytes > self.max_bytes and len(self._items) > 1):
                self._drop(next(iter(self._items)))

    def __len__(self) -> int:
        return len(self._items)
