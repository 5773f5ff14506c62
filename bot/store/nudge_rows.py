"""The nudge rows the store hands out, typed: subscriptions, due nudges, claims and their
outcomes, finished sends, recorded weeks, and the progress rows a nudge reads."""
from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass

from bot.nudge_schedule import Schedule
from bot.store.sql import split_member


@dataclass(frozen=True, slots=True)
class Subscription:
    member: str
    weekday: int
    local_time: dt.time
    timezone: str
    next_due_at: dt.datetime
    paused_until: dt.datetime | None
    consecutive_failures: int
    enabled: bool
    notice: str | None

    @property
    def schedule(self) -> Schedule:
        return Schedule(self.weekday, self.local_time, self.timezone)


@dataclass(frozen=True, slots=True)
class DueNudge:
    member: str
    member_id: int
    due: dt.datetime
    schedule: Schedule

    @property
    def platform(self) -> str:
        return split_member(self.member)[0]

    @property
    def user_id(self) -> str:
        return split_member(self.member)[1]


class ClaimOutcome(enum.Enum):
    CLAIMED = "claimed"  # this scheduler holds the week: send it
    HELD = "held"  # another scheduler's fresh claim holds it
    SETTLED = "settled"  # already sent, failed or skipped: the schedule moved on
    GONE = "gone"  # turned off, changed or handled since the page was read
    SKIPPED = "skipped"  # too late (past the grace): recorded as skipped


@dataclass(frozen=True, slots=True)
class Claim:
    nudge: DueNudge
    outcome: ClaimOutcome
    again: DueNudge | None = None  # after a skip, the next occurrence when it is already due


class SendOutcome(enum.Enum):
    SENT = "sent"
    DMS_CLOSED = "dms_closed"  # marked failed; the member gets a notice, and a pause after a few
    FAILED = "failed"  # delivery unknown or refused: not retried
    RELEASE = "release"  # not sent: the claim goes, the next run retries


@dataclass(frozen=True, slots=True)
class Finish:
    nudge: DueNudge
    outcome: SendOutcome
    error: str | None
    at: dt.datetime


@dataclass(frozen=True, slots=True)
class SendRecord:
    """One (member, ISO week) row of `sends`: claimed, sent, failed or skipped."""

    member: str
    iso_week: str
    status: str
    claimed_by: str | None
    due_at: dt.datetime
    finished_at: dt.datetime | None
    error: str | None


@dataclass(frozen=True, slots=True)
class ProgressRows:
    """What a nudge says about a member, as stored: done items (kind -> item -> when),
    when each practice card is due, the member's timezone, and when they studied."""

    done: dict[str, dict[str, dt.datetime]]
    cards_due: dict[str, dt.datetime]
    timezone: str
    activity: list[dt.datetime]
