"""Spaced repetition for interview practice: SM-2 (Wozniak, 1990).

Why SM-2: its schedule is a short pure function a reviewer can compute by hand (tests
do), it needs no per-member parameter fitting (FSRS does, and is opaque without it), and
with four grades it is finer than Leitner boxes. Members grade Again/Hard/Good/Easy
(1-4), mapped to SM-2 qualities 1, 3, 4, 5.
"""
from __future__ import annotations

import datetime as dt

from bot.store import CardState

GRADES = {"again": 1, "hard": 2, "good": 3, "easy": 4}
GRADE_NAMES = {value: name for name, value in GRADES.items()}
_QUALITY = {1: 1, 2: 3, 3: 4, 4: 5}
NEW_EASE = 2.5
MIN_EASE = 1.3


def parse_grade(word: str) -> int | None:
    word = word.strip().lower()
    if word in GRADES:
        return GRADES[word]
    if word.isdigit() and int(word) in GRADE_NAMES:
        return int(word)
    return None


def schedule(previous: CardState | None, question_id: str, grade: int, now: dt.datetime) -> CardState:
    """The card's state after a review graded `grade` (1-4) at `now`."""
    quality = _QUALITY[grade]
    ease = previous.ease if previous else NEW_EASE
    repetitions = previous.repetitions if previous else 0
    interval = previous.interval_days if previous else 0.0
    lapses = previous.lapses if previous else 0
    if quality < 3:
        repetitions, interval, lapses = 0, 1.0, lapses + 1
    else:
        repetitions += 1
        interval = 1.0 if repetitions == 1 else 6.0 if repetitions == 2 else round(interval * ease, 2)
        ease = max(MIN_EASE, ease + 0.1 - (5 - quality) * (0.08 + (5 - quality) * 0.02))
    return CardState(
        question_id=question_id,
        ease=round(ease, 4),
        interval_days=interval,
        repetitions=repetitions,
        due_at=now + dt.timedelta(days=interval),
        reviews=(previous.reviews if previous else 0) + 1,
        lapses=lapses,
        last_grade=grade,
    )
