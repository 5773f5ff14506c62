"""Weekly study nudges, as the rest of the bot sees them.

The schedule lives in the database (`subscriptions.next_due_at`, UTC), recomputed from
the member's local weekday and time with zoneinfo after every week, so 09:00
Europe/Berlin stays 09:00 local across DST (`bot.nudge_schedule`: gaps and repeats).
Each concern has its module:

- `bot.nudge_schedule`: pure time maths (local time, DST, ISO week) and the timing rules;
- `bot.nudge_message`: the nudge's text, and the notice after closed DMs;
- `bot.rate_limit`: one token bucket per platform, Retry-After;
- `bot.store.nudges`: every statement about subscriptions, leases, claims and sends,
  and the exactly-once rules they enforce, for SQLite and PostgreSQL alike;
- `bot.scheduler`: the `Scheduler` that leases, claims, sends and marks (the command
  line and the runner build one).

After downtime, a nudge that came due less than `grace` (12 h) ago is sent late; an
older one is recorded as `skipped` (one row per missed week) and the schedule moves on
to the next week, which is sent if it is inside the grace window. After an outage of more
than `MAX_SKIPPED_WEEKS`, one row records the first missed week and the schedule jumps
straight to the first week still inside the grace window (or the next one to come).

Closed DMs are not retried: the week is marked `failed`, the member gets a notice the
next time they talk to the bot (`Store.take_notice`), and after `FAILURES_BEFORE_PAUSE`
weeks in a row the subscription pauses itself (`enabled = 0`) until `nudge on`.

This module keeps the member's side (`subscribe`, `pause`, ...).
"""
from __future__ import annotations

import datetime as dt

from bot.nudge_message import render_nudge, tip_of_week, tip_pool
from bot.nudge_schedule import (
    DEFAULT_GRACE,
    DEFAULT_TIME,
    DEFAULT_WEEKDAY,
    FAILURES_BEFORE_PAUSE,
    STALE_CLAIM,
    WEEKDAYS,
    Schedule,
    format_time,
    next_send_after,
    parse_local_time,
    resolve_local,
    week_key,
    zone_of,
)
from bot.rate_limit import RateLimited, RateLimiter
from bot.store import Store
from bot.store.nudge_rows import DueNudge, Subscription

__all__ = [
    "DEFAULT_GRACE", "DEFAULT_TIME", "DEFAULT_WEEKDAY", "FAILURES_BEFORE_PAUSE", "STALE_CLAIM", "WEEKDAYS", "DueNudge",
    "RateLimited", "RateLimiter", "Schedule", "Subscription", "format_time", "get_subscription", "next_send_after",
    "parse_local_time", "pause", "render_nudge", "resolve_local", "subscribe", "tip_of_week", "tip_pool",
    "unsubscribe", "week_key", "zone_of",
]


async def get_subscription(store: Store, member: str) -> Subscription | None:
    return await store.subscription(member)


async def subscribe(store: Store, member: str, weekday: int, at: dt.time, tz: str, now: dt.datetime, *, member_timezone: str | None = None) -> Subscription:
    """Turn the nudge on (or change it); `member_timezone` also becomes the member's
    timezone (streak weeks)."""
    return await store.subscribe(member, Schedule(weekday, at, tz), now, member_timezone=member_timezone)


async def unsubscribe(store: Store, member: str, now: dt.datetime) -> bool:
    """`nudge off`: False when there was nothing on."""
    return await store.unsubscribe(member, now)


async def pause(store: Store, member: str, until: dt.datetime, now: dt.datetime) -> Subscription | None:
    """Skip every nudge before `until`; None when the member has no active nudge."""
    return await store.pause_nudges(member, until, now)

