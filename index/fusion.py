"""Reciprocal rank fusion of ranked lists, remembering which list found each item."""

from __future__ import annotations

from dataclasses import dataclass, field

RRF_K = 60


@dataclass(slots=True)
class Fused:
    """One fused item: its id, RRF score, and 1-based rank in each list that had it."""

    id: int
    score: float = 0.0
    ranks: dict[str, int] = field(default_factory=dict)


def rrf(ranked: dict[str, list[int]], k: int = RRF_K) -> list[Fused]:
    """Fuse ``{leg name: ids best first}`` by RRF: ``sum 1 / (k + rank)``; best first.

    Ties keep the order in which items were first seen, legs taken in the given order.
    """
    if k < 1:
        raise ValueError(f"RRF k={k}: must be >= 1 (60 is the usual choice)")
    fused: dict[int, Fused] = {}
    for leg, ids in ranked.items():
        for rank, item in enumerate(ids, start=1):
            f = fused.setdefault(item, Fused(item))
            if leg not in f.ranks:
                f.ranks[leg] = rank
                f.score += 1.0 / (k + rank)
    return sorted(fused.values(), key=lambda f: -f.score)
