"""Spaced repetition for interview practice: FSRS, the scheduler Anki adopted, through
the `fsrs` library.

Why FSRS: it models each card's memory (stability: days until the chance of recall
falls to 90 %; difficulty: 1-10) and schedules from it, so every grade moves a card
differently. SM-2, used before, gave a new card the same first day whether it was
graded hard, good or easy, which members read as the grade being ignored. The weights
are the library's defaults (fit on millions of Anki reviews); fitting per member needs
far more reviews than a member makes.

Settings: one 10-minute learning step, so 'again' on a new card brings it back in 10
minutes and 'hard' in 15 (later in the same session), while 'good' and 'easy' move it
to days (2 and 8 with the default weights). No fuzzing: the day a member is told is
the one the schedule computes, and a few dozen cards per member pile up on no day.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from fsrs import Card, Rating, Scheduler, State

GRADES = {"again": 1, "hard": 2, "good": 3, "easy": 4}
GRADE_NAMES = {value: name for name, value in GRADES.items()}
_SCHEDULER = Scheduler(learning_steps=(dt.timedelta(minutes=10),), enable_fuzzing=False)


@dataclass(frozen=True, slots=True)
class CardState:
    """A practice card's FSRS schedule and its review counts (the store saves it)."""

    question_id: str
    state: int  # FSRS: 1 learning, 2 review, 3 relearning
    step: int | None  # the learning or relearning step; None in review
    stability: float  # days until the chance of recall falls to 90 %
    difficulty: float  # 1 (easy) to 10 (hard)
    due_at: dt.datetime
    last_review: dt.datetime | None
    reviews: int
    lapses: int
    last_grade: int | None


def parse_grade(word: str) -> int | None:
    word = word.strip().lower()
    if word in GRADES:
        return GRADES[word]
    if word.isdigit() and int(word) in GRADE_NAMES:
        return int(word)
    return None


def _utc(moment: dt.datetime) -> dt.datetime:
    """The library accepts only times whose zone is `timezone.utc` itself."""
    return moment.astimezone(dt.timezone.utc)


def _card(state: CardState) -> Card:
    # A card converted from SM-2 without a review row: it was last seen one interval
    # (its stability) before it fell due.
    last = state.last_review or state.due_at - dt.timedelta(days=state.stability)
    return Card(
        card_id=0,  # the library's id is unused; passing one keeps it from reading the wall clock
        state=State(state.state),
        step=state.step,
        stability=state.stability,
        difficulty=state.difficulty,
        due=_utc(state.due_at),
        last_review=_utc(last),
    )


def schedule(previous: CardState | None, question_id: str, grade: int, now: dt.datetime) -> CardState:
    """The card's state after a review graded `grade` (1-4) at `now`."""
    now = _utc(now)
    card = _card(previous) if previous else Card(card_id=0, due=now)
    card, _ = _SCHEDULER.review_card(card, Rating(grade), now)
    return CardState(
        question_id=question_id,
        state=int(card.state),
        step=card.step,
        stability=card.stability,
        difficulty=card.difficulty,
        due_at=card.due,
        last_review=card.last_review,
        reviews=(previous.reviews if previous else 0) + 1,
        lapses=(previous.lapses if previous else 0) + (grade == GRADES["again"]),
        last_grade=grade,
    )


def retrievability(state: CardState, now: dt.datetime) -> float:
    """The predicted chance (0-1) that the member recalls the card at `now`."""
    return _SCHEDULER.get_card_retrievability(_card(state), _utc(now))
