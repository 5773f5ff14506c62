"""Typo-tolerant "did you mean": the closest options to what a member typed.

Every suggestion the bot makes (a command's choices, autocomplete, an unknown role or
course, a day or a timezone) is ranked here, so they all agree on what "close" means.
"""
from __future__ import annotations

from typing import Hashable, Iterable, Mapping, TypeVar

from rapidfuzz import fuzz, process

K = TypeVar("K", bound=Hashable)


def ranked(query: str, options: Mapping[K, str], *, limit: int = 3, cutoff: float = 60, spelling: bool = False) -> list[tuple[K, float]]:
    """Keys of `options` whose text is closest to `query`, with scores 0-100, best first.
    By words (order and partial matches count) unless `spelling`: then the whole
    string's edit similarity, for single words like a day or a city."""
    scorer = fuzz.ratio if spelling else fuzz.WRatio
    return [(key, score) for _, score, key in process.extract(query, options, scorer=scorer, limit=limit, score_cutoff=cutoff)]


def closest(query: str, options: Mapping[K, str], *, limit: int = 3, cutoff: float = 60, spelling: bool = False) -> list[K]:
    """Keys of the options closest to `query`, best first."""
    return [key for key, _ in ranked(query, options, limit=limit, cutoff=cutoff, spelling=spelling)]


def did_you_mean(labels: Iterable[str], *, joiner: str = ", ") -> str:
    """" Did you mean: a, b?" for a reply's end, or "" when there is nothing to offer."""
    labels = list(labels)
    return f" Did you mean: {joiner.join(labels)}?" if labels else ""
