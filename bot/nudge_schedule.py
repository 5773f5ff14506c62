"""Weekly nudge times, pure: when a weekday and local time next comes round in a zone,
across DST, and which ISO week a nudge belongs to.

Rules for clock changes (`next_send_after`):

- a local time that does not exist (spring-forward gap, e.g. 02:30 on the night Berlin
  jumps from 02:00 to 03:00) is sent at the first valid instant after it: the moment the
  clocks jump, which reads 03:00 local;
- a local time that occurs twice (fall-back) is sent once, at its first occurrence
  (`fold=0`).

The timing rules of claims (grace, stale claims, hold limit) live here too, so the store
and the scheduler read the same numbers.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

UTC = dt.timezone.utc
DEFAULT_GRACE = dt.timedelta(hours=12)  # a nudge later than this is skipped, not sent
STALE_CLAIM = dt.timedelta(minutes=10)  # a 'claimed' row older than this is taken over
HOLD_LIMIT = dt.timedelta(minutes=5)  # a holder starts no send later than this after claiming
SEND_TIMEOUT = 60.0  # seconds; HOLD_LIMIT + SEND_TIMEOUT + a margin < STALE_CLAIM
MAX_SKIPPED_WEEKS = 12  # a longer outage is one `skipped` row, not one per week
FAILURES_BEFORE_PAUSE = 3  # weeks in a row with closed DMs before the nudge pauses itself
LEASE = dt.timedelta(minutes=5)  # a page of due subscriptions is one scheduler's for this long

WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
DEFAULT_WEEKDAY = 0
DEFAULT_TIME = dt.time(9, 0)


def zone_of(tz: str | ZoneInfo) -> ZoneInfo:
    return tz if isinstance(tz, ZoneInfo) else ZoneInfo(tz)


def resolve_local(day: dt.date, at: dt.time, tz: str | ZoneInfo) -> dt.datetime:
    """The UTC instant of wall-clock `at` on `day` in `tz`. Twice-occurring times give
    the first occurrence; a time inside a gap gives the instant the clocks jump (the
    first valid instant after it)."""
    zone = zone_of(tz)
    naive = dt.datetime.combine(day, at.replace(tzinfo=None, fold=0))
    first = naive.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if first.astimezone(zone).replace(tzinfo=None) == naive:
        return first
    # In a gap: fold=1 reads it with the offset after the jump (an instant before the
    # transition), fold=0 with the offset before (an instant after it). Bisect for the
    # transition, to the second (zone transitions fall on whole seconds).
    before = int(naive.replace(tzinfo=zone, fold=1).astimezone(UTC).timestamp())
    after = int(first.timestamp())
    if before > after:
        before, after = after, before
    late = dt.datetime.fromtimestamp(after, UTC).astimezone(zone).utcoffset()
    while after - before > 1:
        middle = (before + after) // 2
        if dt.datetime.fromtimestamp(middle, UTC).astimezone(zone).utcoffset() == late:
            after = middle
        else:
            before = middle
    return dt.datetime.fromtimestamp(after, UTC)


def next_send_after(now_utc: dt.datetime, weekday: int, local_time: dt.time, tz: str | ZoneInfo) -> dt.datetime:
    """The first instant strictly after `now_utc` when it is `weekday` (0 = Monday)
    `local_time` in `tz`, in UTC. See the module docstring for gaps and repeats."""
    if now_utc.tzinfo is None:
        raise ValueError("now_utc must be timezone-aware")
    if not 0 <= weekday <= 6:
        raise ValueError(f"weekday must be 0 (Monday) to 6 (Sunday), not {weekday}")
    zone = zone_of(tz)
    local = now_utc.astimezone(zone)
    day = local.date() + dt.timedelta(days=(weekday - local.weekday()) % 7)
    for _ in range(3):
        moment = resolve_local(day, local_time, zone)
        if moment > now_utc:
            return moment
        day += dt.timedelta(days=7)
    raise AssertionError("unreachable: a weekly time always recurs within two weeks")


def week_key(due_utc: dt.datetime, tz: str | ZoneInfo) -> str:
    """The ISO week (in the member's timezone) a nudge due at `due_utc` belongs to."""
    year, week, _ = due_utc.astimezone(zone_of(tz)).isocalendar()
    return f"{year}-W{week:02d}"


def format_time(at: dt.time) -> str:
    return f"{at.hour:02d}:{at.minute:02d}"


def parse_local_time(text: str) -> dt.time:
    hours, _, minutes = text.partition(":")
    return dt.time(int(hours), int(minutes or 0))


@dataclass(frozen=True, slots=True)
class Schedule:
    weekday: int = DEFAULT_WEEKDAY
    local_time: dt.time = DEFAULT_TIME
    timezone: str = "UTC"
