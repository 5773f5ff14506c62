"""The weekly nudge as a message: next step and course, cards due, streak, a tip of the
week, how to change or stop; and the notice a member gets when it could not reach them.
Every sentence of the nudge comes from content/nudges.yaml."""
from __future__ import annotations

import datetime as dt
import re
from typing import Any
from zoneinfo import ZoneInfo

from bot.content import Content
from bot.nudge_schedule import FAILURES_BEFORE_PAUSE, WEEKDAYS, Schedule, format_time, zone_of
from bot.progress_state import MemberProgress, next_step_for
from bot.replies import Action, Reply


_PLACEHOLDER = re.compile(r"\{(\w+)\}")


def _say(content: Content, text_id: str, **values: Any) -> str | None:
    entry = content.nudge_texts.get(text_id)
    if entry is None:
        return None
    return _PLACEHOLDER.sub(lambda m: str(values[m.group(1)]) if m.group(1) in values else m.group(0), entry.text)


def tip_pool(content: Content) -> list[tuple[str, str | None]]:
    """(text, source id) of the interview tips nudges rotate through: the default section's."""
    sections = [content.sections[content.defaults.section]]
    return [(fact.text, fact.source) for section in sections for fact in getattr(section, "facts", ())]


def tip_of_week(content: Content, moment: dt.datetime, tz: str | ZoneInfo = "UTC") -> tuple[str, str | None] | None:
    """One tip per ISO week, consecutive weeks taking consecutive tips."""
    pool = tip_pool(content)
    if not pool:
        return None
    year, week, _ = moment.astimezone(zone_of(tz)).isocalendar()
    index = dt.date.fromisocalendar(year, week, 1).toordinal() // 7
    return pool[index % len(pool)]


def render_nudge(content: Content, progress: MemberProgress, schedule: Schedule, now: dt.datetime) -> Reply:
    """The weekly DM: next step and its course, cards due, streak, a tip, how to change
    or stop. Every sentence comes from content/nudges.yaml."""
    step_id, course_ids = next_step_for(content, list(progress.steps_done), list(progress.courses_done))
    lines: list[str] = []
    sources: list[str | None] = []
    if step_id is not None:
        step = content.path_steps[step_id]
        lines.append(_say(content, "next-step", step=step.name, step_task=step.this_week) or "")
        sources.append(step.source)
        if course_ids:
            course = content.courses[course_ids[0]]
            line = _say(content, "next-course", course=f"{course.title} ({course.provider})")
            if line:
                lines.append(line)
                sources.append(course.source)
    else:
        lines.append(_say(content, "path-complete") or "")
    items: list[str] = []
    if progress.cards_due:
        items.append(_say(content, "practice-due", due=progress.cards_due) or "")
    items.append(_say(content, "streak", streak=progress.streak) or "")
    tip = tip_of_week(content, now, schedule.timezone)
    if tip is not None:
        items.append(_say(content, "tip", tip=tip[0]) or "")
        sources.append(tip[1])
    actions = [Action("Next step", "next", "primary")]
    if progress.cards_due:
        actions.append(Action("Practice", "practice"))
    actions.append(Action("Stop nudges", "nudge off", "danger"))
    footer = _say(content, "manage", day=WEEKDAYS[schedule.weekday], time=format_time(schedule.local_time), timezone=schedule.timezone) or ""
    return Reply(
        title=_say(content, "greeting") or "",
        text="\n".join(line for line in lines if line),
        items=tuple(item for item in items if item),
        actions=tuple(actions),
        sources=content.titles(*(s for s in sources if s and s in content.sources)),
        footer=footer,
        ephemeral=True,
        command="nudge",
    )


def dms_closed_notice(failures: int, when: dt.datetime, tz: str) -> str:
    """What the member reads after `failures` weeks in a row their DMs were closed."""
    day = when.astimezone(zone_of(tz)).strftime("%a %d %b")
    if failures >= FAILURES_BEFORE_PAUSE:
        return (
            f"I couldn't deliver your weekly study nudge {failures} weeks in a row (last on {day}): your direct messages "
            "from me are closed, so I paused it. Allow direct messages from me, then say `nudge on` to resume."
        )
    return (
        f"I couldn't deliver your weekly study nudge on {day}: your direct messages from me seem to be closed. "
        "Allow them to get it next week, or say `nudge off` to stop it."
    )
