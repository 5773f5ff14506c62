"""Pure nudge scheduling: the next UTC instant of a local weekday and time, across DST.

Rules under test: the local time stays fixed across DST; a local time that does not
exist (spring-forward gap) is sent when the clocks jump (02:30 -> 03:00 local); one that
occurs twice (fall-back) is sent once, at its first occurrence.
"""
from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.nudges import next_send_after, resolve_local, week_key

UTC = dt.timezone.utc
MON, SUN = 0, 6


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    ("zone", "now", "weekday", "at", "expected"),
    [
        # Europe/Berlin: CET (+1) until Sun 29 Mar 2026 01:00 UTC, CEST (+2) until Sun 25 Oct 01:00 UTC.
        ("Europe/Berlin", utc(2026, 3, 20, 12), MON, dt.time(9), utc(2026, 3, 23, 8)),
        ("Europe/Berlin", utc(2026, 3, 23, 8), MON, dt.time(9), utc(2026, 3, 30, 7)),  # due now -> next week, now CEST
        ("Europe/Berlin", utc(2026, 10, 20), MON, dt.time(9), utc(2026, 10, 26, 8)),  # back to CET
        ("Europe/Berlin", utc(2026, 10, 12), MON, dt.time(9), utc(2026, 10, 12, 7)),  # same Monday, still CEST
        # America/New_York: EST (-5) until Sun 8 Mar 2026 07:00 UTC, EDT (-4) until Sun 1 Nov 06:00 UTC.
        ("America/New_York", utc(2026, 2, 27), MON, dt.time(9), utc(2026, 3, 2, 14)),
        ("America/New_York", utc(2026, 3, 6), MON, dt.time(9), utc(2026, 3, 9, 13)),
        ("America/New_York", utc(2026, 10, 28), MON, dt.time(9), utc(2026, 11, 2, 14)),
        ("America/New_York", utc(2026, 3, 6), SUN, dt.time(18, 30), utc(2026, 3, 8, 22, 30)),
        # Asia/Kolkata: +05:30 all year, half-hour offset.
        ("Asia/Kolkata", utc(2026, 3, 25), MON, dt.time(9), utc(2026, 3, 30, 3, 30)),
        ("Asia/Kolkata", utc(2026, 10, 28), MON, dt.time(9), utc(2026, 11, 2, 3, 30)),
        ("Asia/Kolkata", utc(2026, 3, 29, 20), MON, dt.time(2, 0), utc(2026, 3, 29, 20, 30)),  # already Monday 01:30 there
        ("Asia/Kolkata", utc(2026, 3, 29, 20), MON, dt.time(1, 0), utc(2026, 4, 5, 19, 30)),  # Monday 01:00 there has passed
        # Australia/Sydney (southern hemisphere): AEDT (+11) until Sun 5 Apr 2026 (16:00 UTC Sat), AEST (+10) until Sun 4 Oct.
        ("Australia/Sydney", utc(2026, 3, 25), MON, dt.time(9), utc(2026, 3, 29, 22)),
        ("Australia/Sydney", utc(2026, 4, 1), MON, dt.time(9), utc(2026, 4, 5, 23)),
        ("Australia/Sydney", utc(2026, 10, 1), MON, dt.time(9), utc(2026, 10, 4, 22)),
    ],
)
def test_local_time_stays_put_across_dst(zone: str, now: dt.datetime, weekday: int, at: dt.time, expected: dt.datetime) -> None:
    """09:00 local is 09:00 local on both sides of a DST change, in every zone."""
    due = next_send_after(now, weekday, at, zone)
    assert due == expected
    local = due.astimezone(ZoneInfo(zone))
    assert (local.weekday(), local.time()) == (weekday, at)


@pytest.mark.parametrize(
    ("zone", "now", "at", "expected", "local_reading"),
    [
        ("Europe/Berlin", utc(2026, 3, 28, 12), dt.time(2, 30), utc(2026, 3, 29, 1), dt.time(3)),
        ("Europe/Berlin", utc(2026, 3, 28, 12), dt.time(2, 0), utc(2026, 3, 29, 1), dt.time(3)),  # the gap's first minute
        ("Europe/Berlin", utc(2026, 3, 28, 12), dt.time(2, 59), utc(2026, 3, 29, 1), dt.time(3)),
        ("America/New_York", utc(2026, 3, 7, 12), dt.time(2, 30), utc(2026, 3, 8, 7), dt.time(3)),
        ("Australia/Sydney", utc(2026, 10, 3, 1), dt.time(2, 30), utc(2026, 10, 3, 16), dt.time(3)),
    ],
)
def test_nonexistent_local_time_is_sent_when_the_clocks_jump(zone, now, at, expected, local_reading) -> None:
    """Sunday 02:30 on the spring-forward night is sent at 03:00 local, the first valid instant after it."""
    due = next_send_after(now, SUN, at, zone)
    assert due == expected
    assert due.astimezone(ZoneInfo(zone)).time() == local_reading
    # and the week after is back to the asked-for local time
    following = next_send_after(due, SUN, at, zone)
    assert following.astimezone(ZoneInfo(zone)).time() == at
    assert dt.timedelta(days=6) < following - due < dt.timedelta(days=8)


@pytest.mark.parametrize(
    ("zone", "now", "at", "first", "next_week"),
    [
        # Berlin 25 Oct 2026: 02:30 happens at 00:30 UTC (CEST) and again at 01:30 UTC (CET).
        ("Europe/Berlin", utc(2026, 10, 24, 12), dt.time(2, 30), utc(2026, 10, 25, 0, 30), utc(2026, 11, 1, 1, 30)),
        # New York 1 Nov 2026: 01:30 happens at 05:30 UTC (EDT) and 06:30 UTC (EST).
        ("America/New_York", utc(2026, 10, 31, 12), dt.time(1, 30), utc(2026, 11, 1, 5, 30), utc(2026, 11, 8, 6, 30)),
        # Sydney 5 Apr 2026: 02:30 happens at 15:30 UTC (AEDT) and 16:30 UTC (AEST) on the 4th.
        ("Australia/Sydney", utc(2026, 4, 3), dt.time(2, 30), utc(2026, 4, 4, 15, 30), utc(2026, 4, 11, 16, 30)),
    ],
)
def test_repeated_local_time_is_sent_once_at_the_first_occurrence(zone, now, at, first, next_week) -> None:
    """On the fall-back night a twice-occurring time is sent once: the second occurrence is not a new due time."""
    due = next_send_after(now, SUN, at, zone)
    assert due == first
    assert due.astimezone(ZoneInfo(zone)).fold == 0
    # asking again from the first occurrence skips the second one, an hour later
    assert next_send_after(due, SUN, at, zone) == next_week
    assert next_send_after(due + dt.timedelta(minutes=1), SUN, at, zone) == next_week


def test_due_instant_itself_is_not_due_again() -> None:
    """Rescheduling from the due instant gives next week, never the same instant."""
    due = utc(2026, 3, 30, 7)
    assert next_send_after(due, MON, dt.time(9), "Europe/Berlin") == utc(2026, 4, 6, 7)
    assert next_send_after(due - dt.timedelta(microseconds=1), MON, dt.time(9), "Europe/Berlin") == due


def test_naive_now_and_bad_weekday_are_refused() -> None:
    """A naive datetime or a weekday outside 0-6 is a programming error, not a silent guess."""
    with pytest.raises(ValueError):
        next_send_after(dt.datetime(2026, 3, 30), MON, dt.time(9), "UTC")
    with pytest.raises(ValueError):
        next_send_after(utc(2026, 3, 30), 7, dt.time(9), "UTC")


def test_week_key_is_the_local_iso_week() -> None:
    """Sunday 23:30 in New York is already Monday in UTC: the week is the member's local one."""
    due = utc(2026, 3, 30, 3, 30)  # Sun 29 Mar 23:30 EDT, Mon 30 Mar in UTC
    assert week_key(due, "America/New_York") == "2026-W13"
    assert week_key(due, "UTC") == "2026-W14"
    assert week_key(utc(2026, 12, 31, 12), "UTC") == "2026-W53"


def test_resolve_local_on_an_ordinary_day() -> None:
    """An ordinary summer day: 09:00 Berlin is 07:00 UTC."""
    assert resolve_local(dt.date(2026, 7, 6), dt.time(9), "Europe/Berlin") == utc(2026, 7, 6, 7)


ZONES = ["Europe/Berlin", "America/New_York", "Asia/Kolkata", "Australia/Sydney"]


@settings(max_examples=300, deadline=None)
@given(
    now=st.datetimes(min_value=dt.datetime(2024, 1, 1), max_value=dt.datetime(2030, 12, 31), timezones=st.just(UTC)),
    zone=st.sampled_from(ZONES),
    weekday=st.integers(0, 6),
    hour=st.integers(0, 23),
    minute=st.sampled_from([0, 15, 30, 45, 59]),
)
def test_next_send_properties(now: dt.datetime, zone: str, weekday: int, hour: int, minute: int) -> None:
    """Always in the future, within a week, on the asked local day and time (or the jump
    out of a gap), first occurrence of a repeated time, and weekly thereafter."""
    at = dt.time(hour, minute)
    due = next_send_after(now, weekday, at, zone)
    assert now < due <= now + dt.timedelta(days=7, hours=1)
    local = due.astimezone(ZoneInfo(zone))
    assert local.weekday() == weekday
    assert local.fold == 0 or local.replace(fold=0).astimezone(UTC) == due
    if local.time() != at:  # only in a gap: sent at the jump, just after the asked time
        naive = dt.datetime.combine(local.date(), at)
        assert naive.replace(tzinfo=ZoneInfo(zone)).astimezone(UTC).astimezone(ZoneInfo(zone)).replace(tzinfo=None) != naive
        assert dt.timedelta(0) < local.replace(tzinfo=None) - naive <= dt.timedelta(hours=1)
    following = next_send_after(due, weekday, at, zone)
    assert dt.timedelta(days=7) - dt.timedelta(hours=1) <= following - due <= dt.timedelta(days=7, hours=1)
