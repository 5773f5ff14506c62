"""Weekly study streaks: consecutive ISO weeks with activity, in the member's timezone."""
from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo


def iso_week(moment: dt.datetime, zone: ZoneInfo) -> tuple[int, int]:
    year, week, _ = moment.astimezone(zone).isocalendar()
    return year, week


def _previous_week(year: int, week: int) -> tuple[int, int]:
    monday = dt.date.fromisocalendar(year, week, 1) - dt.timedelta(days=7)
    y, w, _ = monday.isocalendar()
    return y, w


def weekly_streak(activity: list[dt.datetime], zone: ZoneInfo, now: dt.datetime) -> int:
    """Weeks in a row with activity, counting back from this week. A week with nothing
    yet does not break the streak until it is over, so Monday morning keeps last week's."""
    weeks = {iso_week(moment, zone) for moment in activity}
    current = iso_week(now, zone)
    if current not in weeks:
        current = _previous_week(*current)
    streak = 0
    while current in weeks:
        streak += 1
        current = _previous_week(*current)
    return streak
