"""A member's progress as the handlers and the weekly nudge both read it: done steps and
courses that still exist, the next step, cards due and the weekly streak.

One module, so `progress`, `next` and the nudge can't disagree about what is done.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bot.content import Content
from bot.store.nudge_rows import ProgressRows
from bot.streaks import weekly_streak

if TYPE_CHECKING:
    from bot.store import Store

STEP, COURSE = "step", "course"


def member_zone(name: str) -> ZoneInfo:
    """The member's zone; an unknown or empty name reads as UTC."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def visible_done(content: Content, done: dict[str, dict[str, dt.datetime]]) -> tuple[list[str], list[str]]:
    """Done step and course ids that still exist; renamed step ids map to their new id.
    Progress on removed items stays stored but is not shown."""
    renames = content.step_renames()
    steps = {renames.get(s, s) for s in done.get(STEP, {})}
    return [s for s in content.path_steps if s in steps], [c for c in content.courses if c in done.get(COURSE, {})]


def next_step_for(content: Content, steps_done: list[str], courses_done: list[str]) -> tuple[str | None, list[str]]:
    """The first undone path step and the not-yet-done courses serving it."""
    for step_id in content.path_steps:
        if step_id not in steps_done:
            return step_id, [x.id for x in content.courses.values() if x.path_step == step_id and x.id not in courses_done]
    return None, []


@dataclass(frozen=True, slots=True)
class MemberProgress:
    steps_done: tuple[str, ...]
    courses_done: tuple[str, ...]
    cards_due: int
    streak: int


def progress_of(content: Content, rows: ProgressRows, now: dt.datetime) -> MemberProgress:
    """What the weekly nudge says about a member's real progress, from their stored rows."""
    steps, courses = visible_done(content, rows.done)
    due = sum(1 for q, at in rows.cards_due.items() if q in content.questions and at <= now)
    streak = weekly_streak(rows.activity, member_zone(rows.timezone), now)
    return MemberProgress(tuple(steps), tuple(courses), due, streak)


async def member_progress(store: "Store", content: Content, member: str, now: dt.datetime) -> MemberProgress:
    """`progress_of` one member, by key (the member may not be stored yet)."""
    cards = await store.cards(member)
    rows = ProgressRows(await store.done_items(member), {q: c.due_at for q, c in cards.items()}, await store.timezone(member),
                        await store.activity_times(member))
    return progress_of(content, rows, now)
