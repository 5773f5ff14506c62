"""Weekly study nudges: who is due, what to tell them, claim-then-send.

The schedule lives in the database (`subscriptions.next_due_at`, UTC), recomputed from
the member's local weekday and time with zoneinfo after every week, so 09:00
Europe/Berlin stays 09:00 local across DST. Rules for clock changes
(`next_send_after`):

- a local time that does not exist (spring-forward gap, e.g. 02:30 on the night Berlin
  jumps from 02:00 to 03:00) is sent at the first valid instant after it: the moment the
  clocks jump, which reads 03:00 local;
- a local time that occurs twice (fall-back) is sent once, at its first occurrence
  (`fold=0`).

Exactly once, with several schedulers (threads, processes, hosts) on one database:

1. A nudge is *claimed* before it is sent: `INSERT INTO sends (member_id, iso_week, ...,
   status 'claimed', claimed_by, claimed_at)`. `UNIQUE (member_id, iso_week)` makes the
   insert win or lose atomically, so only one scheduler holds a week's nudge. The week
   is the ISO week of the due instant in the member's timezone.
2. The holder sends, then marks the row `sent` or `failed` (conditional on still holding
   it) and moves `next_due_at` to next week (conditional on it being unchanged, so a
   member's `nudge on friday` meanwhile wins). A `TRANSIENT` delivery deletes the claim
   (releases it): the next tick retries, within the grace window.
3. A claim still `claimed` after `STALE_CLAIM` (10 min) was left by a scheduler that died
   between claim and send. Whoever runs next takes it over with a conditional
   `UPDATE ... WHERE status = 'claimed' AND claimed_by = <old> AND claimed_at = <old>`,
   so exactly one taker wins, and sends. A live holder can't be overtaken: it starts a
   send only within `HOLD_LIMIT` (5 min) of its claim and each send is cut at
   `SEND_TIMEOUT` (60 s), so it is done well before the claim turns stale. (Assumes
   scheduler clocks agree within a few minutes and a process is not frozen for minutes
   mid-send.)
4. What cannot be resolved, and which way it falls: a crash after the platform accepted
   the message but before the `sent` mark commits (milliseconds) is taken over and sent
   again (at least once in that window). A send that times out or raises an unexpected
   error may or may not have arrived, so it is marked `failed` and not retried (at most
   once in that case).
5. Stopping (SIGTERM or Ctrl-C cancel the run): a send that returned is still marked,
   a claim whose send had not started is released, a send cut off mid-flight is marked
   `failed` (it may have arrived, as after a timeout), and the run's leases (see
   `lease_due`) are released, so the next run sends the rest at once. A scheduler killed
   outright keeps its leases for `LEASE`; runs meanwhile count those members as `held`.

After downtime, a nudge that came due less than `grace` (12 h) ago is sent late; an
older one is recorded as `skipped` (one row per missed week) and the schedule moves on
to the next week, which is sent if it is inside the grace window. After an outage of more
than `MAX_SKIPPED_WEEKS`, one row records the first missed week and the schedule jumps
straight to the first week still inside the grace window (or the next one to come).

Closed DMs are not retried: the week is marked `failed`, the member gets a notice the
next time they talk to the bot (`pending_notice`), and after `FAILURES_BEFORE_PAUSE`
weeks in a row the subscription pauses itself (`enabled = 0`) until `nudge on`.

Rate limits: `RateLimiter` keeps one token bucket per platform, shared by every send of
the process; a sender signals `Retry-After` by raising (or returning) an object with a
`retry_after` attribute (`RateLimited`), which blocks the whole platform's bucket for
that long. A token is taken *before* claiming, so a claim is never held while waiting
in line, and a large batch is spread at the bucket's rate over `concurrency` workers.

All SQL here is portable (ON CONFLICT, conditional UPDATE, ISO-8601 text timestamps
compared as strings: `iso()` always writes UTC with microseconds).
"""
from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import re
import socket
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Iterable, Mapping
from zoneinfo import ZoneInfo

from bot.delivery import Delivery, DirectSender
from bot.progress_state import MemberProgress, member_progress, next_step_for
from bot.replies import Action, Reply
from bot.store import Store, StoreError, Tx, iso, open_store, parse_time, split_member

if TYPE_CHECKING:
    from bot.content import Content

log = logging.getLogger(__name__)

UTC = dt.timezone.utc
Clock = Callable[[], dt.datetime]
Sleep = Callable[[float], Awaitable[None]]

DEFAULT_GRACE = dt.timedelta(hours=12)
STALE_CLAIM = dt.timedelta(minutes=10)  # a 'claimed' row older than this is taken over
HOLD_LIMIT = dt.timedelta(minutes=5)  # a holder starts no send later than this after claiming
SEND_TIMEOUT = 60.0  # seconds; HOLD_LIMIT + SEND_TIMEOUT + a margin < STALE_CLAIM
MAX_INLINE_RETRY_AFTER = 60.0  # a longer Retry-After releases the claim instead of waiting
MAX_RATE_LIMIT_RETRIES = 3
MAX_SKIPPED_WEEKS = 12  # a longer outage is one `skipped` row, not one per week
FAILURES_BEFORE_PAUSE = 3
SERVE_INTERVAL = 60.0  # the scheduler wakes at least this often (new subscriptions, retries)
DEFAULT_CONCURRENCY = 20
LEASE = dt.timedelta(minutes=5)  # a page of due subscriptions is this scheduler's for this long
PAGE = 200  # subscriptions leased at a time
# Sends per second and burst, per platform. Discord: DMs to many users trip its
# anti-spam long before the 50/s global limit; Slack: chat.postMessage ~1/s per channel
# and conversations.open (Tier 4) per DM. Console: unlimited.
DEFAULT_RATES: dict[str, tuple[float, float] | None] = {"discord": (5.0, 5.0), "slack": (2.0, 2.0), "console": None}

WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
DEFAULT_WEEKDAY = 0
DEFAULT_TIME = dt.time(9, 0)


# --- pure scheduling ------------------------------------------------------------------


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


# --- rendering ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Schedule:
    weekday: int = DEFAULT_WEEKDAY
    local_time: dt.time = DEFAULT_TIME
    timezone: str = "UTC"


_PLACEHOLDER = re.compile(r"\{(\w+)\}")


def _say(content: "Content", text_id: str, **values: Any) -> str | None:
    entry = content.nudge_texts.get(text_id)
    if entry is None:
        return None
    return _PLACEHOLDER.sub(lambda m: str(values[m.group(1)]) if m.group(1) in values else m.group(0), entry.text)


def tip_pool(content: "Content") -> list[tuple[str, str | None]]:
    """(text, source id) of the interview tips nudges rotate through: the default section's."""
    sections = [content.sections[content.defaults.section]]
    return [(fact.text, fact.source) for section in sections for fact in getattr(section, "facts", ())]


def tip_of_week(content: "Content", moment: dt.datetime, tz: str | ZoneInfo = "UTC") -> tuple[str, str | None] | None:
    """One tip per ISO week, consecutive weeks taking consecutive tips."""
    pool = tip_pool(content)
    if not pool:
        return None
    year, week, _ = moment.astimezone(zone_of(tz)).isocalendar()
    index = dt.date.fromisocalendar(year, week, 1).toordinal() // 7
    return pool[index % len(pool)]


def render_nudge(content: "Content", progress: MemberProgress, schedule: Schedule, now: dt.datetime) -> Reply:
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


# --- subscriptions (member side) ------------------------------------------------------


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


_SUB_SELECT = (
    "SELECT s.weekday, s.local_time, s.timezone, s.next_due_at, s.paused_until, s.consecutive_failures, s.enabled, s.notice "
    "FROM subscriptions s JOIN members m ON m.id = s.member_id WHERE m.platform = ? AND m.user_id = ?"
)


def _subscription(member: str, row: tuple) -> Subscription:
    return Subscription(
        member, row[0], parse_local_time(row[1]), row[2], parse_time(row[3]),
        parse_time(row[4]) if row[4] else None, row[5], bool(row[6]), row[7],
    )


async def get_subscription(store: Store, member: str) -> Subscription | None:
    rows = await store._read(_SUB_SELECT, split_member(member))
    return _subscription(member, rows[0]) if rows else None


async def _first_free_due(db: Tx, member_id: int, after: dt.datetime, weekday: int, at: dt.time, tz: str) -> dt.datetime:
    """The next occurrence after `after` whose ISO week has no send yet (a week already
    sent, failed or skipped under an earlier schedule is not nudged twice)."""
    due = next_send_after(after, weekday, at, tz)
    for _ in range(3):
        row = await (await db.execute("SELECT 1 FROM sends WHERE member_id = ? AND iso_week = ?", (member_id, week_key(due, tz)))).fetchone()
        if row is None:
            break
        due = next_send_after(due, weekday, at, tz)
    return due


async def subscribe(store: Store, member: str, weekday: int, at: dt.time, tz: str, now: dt.datetime, *, member_timezone: str | None = None) -> Subscription:
    """Turn the nudge on (or change it); one transaction, so nothing is saved half.
    `member_timezone` also becomes the member's timezone (streak weeks)."""
    zone_of(tz)  # refuse an unknown zone before writing anything

    async def work(db: Tx) -> None:
        member_id = await store._member_id(db, member, now)
        if member_timezone:
            await db.execute("UPDATE members SET timezone = ? WHERE id = ?", (member_timezone, member_id))
        due = await _first_free_due(db, member_id, now, weekday, at, tz)
        await db.execute(
            "INSERT INTO subscriptions (member_id, weekday, local_time, timezone, next_due_at, paused_until, consecutive_failures, enabled, notice, updated_at) "
            "VALUES (?, ?, ?, ?, ?, NULL, 0, 1, NULL, ?) ON CONFLICT (member_id) DO UPDATE SET weekday = excluded.weekday, "
            "local_time = excluded.local_time, timezone = excluded.timezone, next_due_at = excluded.next_due_at, paused_until = NULL, "
            "consecutive_failures = 0, enabled = 1, updated_at = excluded.updated_at",
            (member_id, weekday, format_time(at), tz, iso(due), iso(now)),
        )

    await store._write(work)
    result = await get_subscription(store, member)
    assert result is not None
    return result


async def unsubscribe(store: Store, member: str, now: dt.datetime) -> bool:
    """`nudge off`: False when there was nothing on. Takes effect for the next tick: a
    scheduler re-reads `enabled` inside its claim transaction."""
    platform, user = split_member(member)

    async def work(db: Tx) -> bool:
        cursor = await db.execute(
            "UPDATE subscriptions SET enabled = 0, updated_at = ? WHERE enabled = 1 AND member_id = "
            "(SELECT id FROM members WHERE platform = ? AND user_id = ?)",
            (iso(now), platform, user),
        )
        return cursor.rowcount > 0

    return await store._write(work)


async def pause(store: Store, member: str, until: dt.datetime, now: dt.datetime) -> Subscription | None:
    """Skip every nudge before `until`; None when the member has no active nudge."""
    platform, user = split_member(member)

    async def work(db: Tx) -> bool:
        row = await (await db.execute(
            "SELECT s.member_id, s.weekday, s.local_time, s.timezone FROM subscriptions s JOIN members m ON m.id = s.member_id "
            "WHERE m.platform = ? AND m.user_id = ? AND s.enabled = 1",
            (platform, user),
        )).fetchone()
        if row is None:
            return False
        due = await _first_free_due(db, row[0], until, row[1], parse_local_time(row[2]), row[3])
        await db.execute(
            "UPDATE subscriptions SET paused_until = ?, next_due_at = ?, updated_at = ? WHERE member_id = ?",
            (iso(until), iso(due), iso(now), row[0]),
        )
        return True

    return await get_subscription(store, member) if await store._write(work) else None


async def pending_notice(store: Store, member: str) -> str | None:
    """A notice for the member (their nudge could not be delivered), once: it is cleared
    when returned. Cheap when there is none (one read). When it cannot be cleared (a
    read-only database) it stays pending and None comes back: the reply it would ride on
    still goes out."""
    platform, user = split_member(member)
    rows = await store._read(
        "SELECT s.member_id, s.notice FROM subscriptions s JOIN members m ON m.id = s.member_id "
        "WHERE m.platform = ? AND m.user_id = ? AND s.notice IS NOT NULL",
        (platform, user),
    )
    if not rows:
        return None
    member_id, notice = rows[0]

    async def work(db: Tx) -> bool:
        cursor = await db.execute("UPDATE subscriptions SET notice = NULL WHERE member_id = ? AND notice = ?", (member_id, notice))
        return cursor.rowcount > 0

    try:
        cleared = await store._write(work)
    except StoreError as exc:
        log.warning("the nudge notice of %s stays pending: %s", member, exc)
        return None
    return notice if cleared else None


def _dms_closed_notice(failures: int, when: dt.datetime, tz: str) -> str:
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


# --- rate limiting --------------------------------------------------------------------


class RateLimited(Exception):
    """Raised (or returned) by a sender when the platform said `Retry-After`."""

    def __init__(self, retry_after: float):
        super().__init__(f"rate limited: retry after {retry_after:g} s")
        self.retry_after = float(retry_after)


def retry_after_of(value: object) -> float | None:
    seconds = getattr(value, "retry_after", None)
    if isinstance(seconds, (int, float)) and not isinstance(seconds, bool) and seconds >= 0:
        return float(seconds)
    return None


@dataclass
class _Bucket:
    rate: float | None  # tokens per second; None: unlimited
    burst: float
    tokens: float
    stamp: float
    blocked_until: float = 0.0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class RateLimiter:
    """One token bucket per platform, shared by every send of the process. `clock`
    is monotonic seconds, `sleep` an awaitable: both injected in tests."""

    def __init__(
        self,
        rates: Mapping[str, tuple[float, float] | None] | None = None,
        *,
        default: tuple[float, float] | None = (5.0, 5.0),
        clock: Callable[[], float] = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ):
        self._rates = dict(DEFAULT_RATES if rates is None else rates)
        self._default = default
        self.clock = clock
        self.sleep = sleep
        self._buckets: dict[str, _Bucket] = {}

    def _bucket(self, platform: str) -> _Bucket:
        bucket = self._buckets.get(platform)
        if bucket is None:
            spec = self._rates.get(platform, self._default)
            rate, burst = spec if spec is not None else (None, 1.0)
            bucket = self._buckets[platform] = _Bucket(rate, burst, burst, self.clock())
        return bucket

    async def acquire(self, platform: str) -> None:
        """Wait for a token (and for any Retry-After pause), first come first served."""
        bucket = self._bucket(platform)
        async with bucket.lock:
            while True:
                now = self.clock()
                if bucket.rate is not None:
                    bucket.tokens = min(bucket.burst, bucket.tokens + (now - bucket.stamp) * bucket.rate)
                bucket.stamp = now
                wait = bucket.blocked_until - now
                if wait <= 0:
                    if bucket.rate is None:
                        return
                    if bucket.tokens >= 1:
                        bucket.tokens -= 1
                        return
                    wait = (1 - bucket.tokens) / bucket.rate
                await self.sleep(wait)

    def refund(self, platform: str) -> None:
        """Give back a token that was not used (the claim went to another scheduler)."""
        bucket = self._bucket(platform)
        bucket.tokens = min(bucket.burst, bucket.tokens + 1)

    def pause(self, platform: str, seconds: float) -> None:
        """The platform said Retry-After: nobody sends there for `seconds`."""
        bucket = self._bucket(platform)
        bucket.blocked_until = max(bucket.blocked_until, self.clock() + seconds)
        bucket.tokens = 0.0


# --- the scheduler ----------------------------------------------------------------------


@dataclass
class Summary:
    sent: int = 0
    failed: int = 0
    skipped: int = 0
    held: int = 0  # due, but another scheduler holds them: its lease on the member or its fresh claim on the week
    waiting: int = 0  # released for a retry by a later run (Retry-After, a transient failure)

    def line(self) -> str:
        held = f", held {self.held}" if self.held else ""
        return f"sent {self.sent}, failed {self.failed}, skipped {self.skipped}{held}"


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


_NONCE = uuid.uuid4().hex[:8]  # tells apart two processes that reuse a pid on one host


def default_scheduler_id() -> str:
    """Stable for the life of a process, so its leases and claims stay its own between runs."""
    return f"{socket.gethostname()}:{os.getpid()}:{_NONCE}"


def sender_registry(senders: Mapping[str, DirectSender] | Iterable[DirectSender]) -> dict[str, DirectSender]:
    """Senders by platform; accepts a mapping or the senders themselves."""
    if isinstance(senders, Mapping):
        return dict(senders)
    return {s.platform: s for s in senders}


async def due_nudges(store: Store, at: dt.datetime, platforms: Iterable[str] | None = None) -> list[DueNudge]:
    """Active subscriptions due at `at` (earliest first), optionally only for `platforms`."""
    sql = (
        "SELECT m.platform, m.user_id, s.member_id, s.next_due_at, s.weekday, s.local_time, s.timezone "
        "FROM subscriptions s JOIN members m ON m.id = s.member_id WHERE s.enabled = 1 AND s.next_due_at <= ?"
    )
    params: list[Any] = [iso(at)]
    if platforms is not None:
        names = sorted(set(platforms))
        if not names:
            return []
        sql += f" AND m.platform IN ({', '.join('?' for _ in names)})"
        params += names
    rows = await store._read(sql + " ORDER BY s.next_due_at, s.member_id", tuple(params))
    return [DueNudge(f"{r[0]}:{r[1]}", r[2], parse_time(r[3]), Schedule(r[4], parse_local_time(r[5]), r[6])) for r in rows]


async def next_wake(store: Store, after: dt.datetime, platforms: Iterable[str] | None = None) -> dt.datetime | None:
    """The earliest due time strictly after `after`, or None."""
    sql = "SELECT MIN(s.next_due_at) FROM subscriptions s JOIN members m ON m.id = s.member_id WHERE s.enabled = 1 AND s.next_due_at > ?"
    params: list[Any] = [iso(after)]
    if platforms is not None:
        names = sorted(set(platforms))
        if not names:
            return None
        sql += f" AND m.platform IN ({', '.join('?' for _ in names)})"
        params += names
    rows = await store._read(sql, tuple(params))
    return parse_time(rows[0][0]) if rows and rows[0][0] else None


CLAIMED, HELD, SETTLED, GONE, SKIPPED = "claimed", "held", "settled", "gone", "skipped"


async def _claim(store: Store, nudge: DueNudge, now: dt.datetime, me: str, grace: dt.timedelta) -> tuple[str, DueNudge | None]:
    """One transaction: skip (too late), claim (insert or stale takeover), or find the
    week already settled or held. Returns the outcome and, after a skip whose next
    occurrence is already due, that nudge."""

    async def work(db: Tx) -> tuple[str, DueNudge | None]:
        row = await (await db.execute(
            "SELECT enabled, next_due_at, weekday, local_time, timezone FROM subscriptions WHERE member_id = ?", (nudge.member_id,)
        )).fetchone()
        if row is None or not row[0] or row[1] != iso(nudge.due):
            return GONE, None  # turned off, changed or handled since the due list was read
        schedule = Schedule(row[2], parse_local_time(row[3]), row[4])
        week = week_key(nudge.due, schedule.timezone)
        if now - nudge.due > grace:
            # the next week, or after a long outage the first week not yet too late, computed
            # directly (walking there a week at a time could take ages); an overdue next week
            # comes back to the caller: recorded as skipped as well, or sent if inside the grace
            long_outage = now - nudge.due > grace + dt.timedelta(weeks=MAX_SKIPPED_WEEKS)
            resume_after = now - grace - dt.timedelta(microseconds=1) if long_outage else nudge.due
            due = await _first_free_due(db, nudge.member_id, resume_after, schedule.weekday, schedule.local_time, schedule.timezone)
            late = f"not sent: due {iso(nudge.due)}, {(now - nudge.due) / dt.timedelta(hours=1):.1f} h before this run (grace {grace})"
            if long_outage:
                late += f"; nor were the {round((due - nudge.due) / dt.timedelta(weeks=1)) - 1} weeks after it (not recorded one by one)"
            cursor = await db.execute(
                "INSERT INTO sends (member_id, iso_week, due_at, status, finished_at, error) VALUES (?, ?, ?, 'skipped', ?, ?) "
                "ON CONFLICT (member_id, iso_week) DO NOTHING",
                (nudge.member_id, week, iso(nudge.due), iso(now), late),
            )
            skipped = cursor.rowcount == 1
            if not skipped:  # an abandoned claim for that week: close it as skipped
                cursor = await db.execute(
                    "UPDATE sends SET status = 'skipped', finished_at = ?, error = ? WHERE member_id = ? AND iso_week = ? "
                    "AND status = 'claimed' AND claimed_at <= ?",
                    (iso(now), late, nudge.member_id, week, iso(now - STALE_CLAIM)),
                )
                skipped = cursor.rowcount == 1
            await db.execute("UPDATE subscriptions SET next_due_at = ? WHERE member_id = ? AND next_due_at = ?", (iso(due), nudge.member_id, iso(nudge.due)))
            again = DueNudge(nudge.member, nudge.member_id, due, schedule) if due <= now else None
            return (SKIPPED if skipped else SETTLED), again
        cursor = await db.execute(
            "INSERT INTO sends (member_id, iso_week, due_at, status, claimed_by, claimed_at) VALUES (?, ?, ?, 'claimed', ?, ?) "
            "ON CONFLICT (member_id, iso_week) DO NOTHING",
            (nudge.member_id, week, iso(nudge.due), me, iso(now)),
        )
        if cursor.rowcount == 1:
            return CLAIMED, None
        status, holder, claimed_at = await (await db.execute(
            "SELECT status, claimed_by, claimed_at FROM sends WHERE member_id = ? AND iso_week = ?", (nudge.member_id, week)
        )).fetchone()
        if status == "claimed":
            if claimed_at is not None and parse_time(claimed_at) <= now - STALE_CLAIM:
                cursor = await db.execute(
                    "UPDATE sends SET claimed_by = ?, claimed_at = ? WHERE member_id = ? AND iso_week = ? AND status = 'claimed' "
                    "AND claimed_by = ? AND claimed_at = ?",
                    (me, iso(now), nudge.member_id, week, holder, claimed_at),
                )
                if cursor.rowcount == 1:
                    log.warning("took over a stale nudge claim of %s (week %s) left by %s", nudge.member, week, holder)
                    return CLAIMED, None
            return HELD, None
        # sent, failed or skipped already (another scheduler, or an earlier schedule): move on
        due = await _first_free_due(db, nudge.member_id, nudge.due, schedule.weekday, schedule.local_time, schedule.timezone)
        await db.execute("UPDATE subscriptions SET next_due_at = ? WHERE member_id = ? AND next_due_at = ?", (iso(due), nudge.member_id, iso(nudge.due)))
        return SETTLED, None

    return await store._write(work)


async def _finish(store: Store, nudge: DueNudge, me: str, outcome: str, error: str | None, now: dt.datetime) -> None:
    """Mark the claimed week sent or failed and move the schedule on; or release it."""

    async def work(db: Tx) -> None:
        row = await (await db.execute(
            "SELECT next_due_at, weekday, local_time, timezone, consecutive_failures FROM subscriptions WHERE member_id = ?", (nudge.member_id,)
        )).fetchone()
        tz = row[3] if row else nudge.schedule.timezone
        week = week_key(nudge.due, nudge.schedule.timezone)
        if outcome == "release":
            await db.execute("DELETE FROM sends WHERE member_id = ? AND iso_week = ? AND status = 'claimed' AND claimed_by = ?", (nudge.member_id, week, me))
            return
        status = "sent" if outcome == "sent" else "failed"
        cursor = await db.execute(
            "UPDATE sends SET status = ?, finished_at = ?, error = ? WHERE member_id = ? AND iso_week = ? AND status = 'claimed' AND claimed_by = ?",
            (status, iso(now), error, nudge.member_id, week, me),
        )
        if cursor.rowcount != 1:
            log.error("nudge claim of %s (week %s) was lost before it was marked %s", nudge.member, week, status)
        if row is None:
            return  # the member was forgotten meanwhile
        if row[0] == iso(nudge.due):
            due = await _first_free_due(db, nudge.member_id, nudge.due, row[1], parse_local_time(row[2]), tz)
            await db.execute("UPDATE subscriptions SET next_due_at = ? WHERE member_id = ? AND next_due_at = ?", (iso(due), nudge.member_id, row[0]))
        if outcome == "sent":
            await db.execute("UPDATE subscriptions SET consecutive_failures = 0 WHERE member_id = ?", (nudge.member_id,))
        elif outcome == "dms_closed":
            failures = row[4] + 1
            await db.execute(
                "UPDATE subscriptions SET consecutive_failures = ?, notice = ?, enabled = ? WHERE member_id = ?",
                (failures, _dms_closed_notice(failures, nudge.due, tz), 0 if failures >= FAILURES_BEFORE_PAUSE else 1, nudge.member_id),
            )

    await store._write(work)


async def _deliver(sender: DirectSender, nudge: DueNudge, reply: Reply, limiter: RateLimiter, clock: Clock, claimed_at: dt.datetime,
                   observer: Any = None) -> tuple[str, str | None]:
    """Send within the claim's hold limit, honouring Retry-After. Outcome: sent,
    dms_closed, failed (delivery unknown or refused: not retried) or release."""
    platform = nudge.platform
    for attempt in range(MAX_RATE_LIMIT_RETRIES + 1):
        if attempt:
            await limiter.acquire(platform)
        if clock() - claimed_at > HOLD_LIMIT:
            return "release", "claim held too long before sending"
        try:
            async with asyncio.timeout(SEND_TIMEOUT):
                result: Any = await sender.send_direct(nudge.user_id, reply)
        except TimeoutError:
            return "failed", f"no answer from {platform} within {SEND_TIMEOUT:g} s (may have arrived; not retried)"
        except asyncio.CancelledError:
            raise SendInterrupted from None
        except Exception as exc:  # noqa: BLE001 - a sender's bug must not stop the batch
            wait = retry_after_of(exc)
            if wait is None:
                log.exception("sending the nudge of %s failed", nudge.member)
                return "failed", f"{type(exc).__name__} while sending (not retried)"
            result = exc
        if result is Delivery.SENT:
            return "sent", None
        if result is Delivery.DMS_CLOSED:
            return "dms_closed", "direct messages closed"
        if result is Delivery.TRANSIENT:
            return "release", "transient failure"
        wait = retry_after_of(result)
        if wait is None:
            return "failed", f"unexpected delivery result {result!r}"
        limiter.pause(platform, wait)
        if observer is not None:
            observer.rate_limited(platform)
        if wait > MAX_INLINE_RETRY_AFTER:
            return "release", f"rate limited for {wait:g} s"
    return "release", "still rate limited"


class SendInterrupted(asyncio.CancelledError):
    """The scheduler was stopped while a send was in flight: it may have arrived."""


async def _settle(write: Awaitable[None]) -> None:
    """Run a write about a send (its mark, its release) to the end even if the scheduler
    is stopped meanwhile, then let the stop through: a DM that went out is recorded."""
    task = asyncio.ensure_future(write)
    stop: asyncio.CancelledError | None = None
    while not task.done():
        try:
            await asyncio.wait({task})
        except asyncio.CancelledError as exc:
            stop = exc
    if stop is None:
        return task.result()
    if not task.cancelled() and task.exception() is not None:
        log.error("recording a nudge while the scheduler stopped failed: %s", task.exception())
    raise stop


async def _process(store: Store, content: "Content", sender: DirectSender, nudge: DueNudge, *, now: dt.datetime, clock: Clock,
                   me: str, grace: dt.timedelta, limiter: RateLimiter, summary: Summary, timing: list[float] | None,
                   observer: Any = None) -> None:
    def observe(outcome: str) -> None:
        if observer is not None:
            observer.nudge(outcome)

    current: DueNudge | None = nudge
    while current is not None:
        nudge, current = current, None
        stale = clock() - nudge.due > grace  # skipping needs no token
        if not stale:
            await limiter.acquire(nudge.platform)  # before claiming: never hold a claim while queueing
        started = time.perf_counter()
        claimed_at = clock()
        try:
            outcome, again = await _claim(store, nudge, claimed_at, me, grace)
        except asyncio.CancelledError:  # the claim may have committed as the stop came
            await _settle(_finish(store, nudge, me, "release", None, clock()))
            raise
        if outcome != CLAIMED:
            if not stale:
                limiter.refund(nudge.platform)
            if outcome == SKIPPED:
                summary.skipped += 1
                observe("skipped")
            elif outcome == HELD:
                summary.held += 1
            current = again
            continue
        observe("claimed")
        try:
            progress = await member_progress(store, content, nudge.member, now)
            reply = render_nudge(content, progress, nudge.schedule, nudge.due)
            overhead = time.perf_counter() - started
            result, error = await _deliver(sender, nudge, reply, limiter, clock, claimed_at, observer)
        except SendInterrupted:
            await _settle(_finish(store, nudge, me, "failed", "the scheduler stopped mid-send (may have arrived; not retried)", clock()))
            raise
        except asyncio.CancelledError:
            await _settle(_finish(store, nudge, me, "release", None, clock()))
            raise
        started = time.perf_counter()
        await _settle(_finish(store, nudge, me, result, error, clock()))  # marked even if the scheduler is stopping
        overhead += time.perf_counter() - started
        if timing is not None:
            timing.append(overhead)
        if result == "sent":
            summary.sent += 1
            observe("sent")
        elif result == "release":
            summary.waiting += 1
            observe("released")
            log.info("nudge of %s released for a retry: %s", nudge.member, error)
        else:
            summary.failed += 1
            observe("failed")


async def run_once(
    store: Store,
    content: "Content",
    senders: Mapping[str, DirectSender] | Iterable[DirectSender],
    now: dt.datetime,
    *,
    grace: dt.timedelta = DEFAULT_GRACE,
    limiter: RateLimiter | None = None,
    clock: Clock | None = None,
    scheduler_id: str | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
    timing: list[float] | None = None,
    observer: Any = None,
) -> Summary:
    """Send every nudge due at `now` on the platforms in `senders`, earliest first,
    `concurrency` at a time through the shared `limiter`. `clock` stamps claims (default:
    `now`); `timing`, when given, receives the scheduler's own seconds per nudge (claim,
    render, mark: the send excluded); `observer` (bot.observe.Observer) hears each
    outcome and each Retry-After."""
    registry = sender_registry(senders)
    clock = clock or (lambda: now)
    limiter = limiter or RateLimiter()
    me = scheduler_id or default_scheduler_id()
    summary = Summary()
    try:
        while page := await lease_due(store, now, me, registry, limit=max(PAGE, 5 * concurrency)):
            queue = iter(page)

            async def worker() -> None:
                for nudge in queue:  # a shared iterator: each nudge goes to exactly one worker
                    await _process(store, content, registry[nudge.platform], nudge, now=now, clock=clock, me=me, grace=grace,
                                   limiter=limiter, summary=summary, timing=timing, observer=observer)

            async with asyncio.TaskGroup() as group:
                for _ in range(max(1, min(concurrency, len(page)))):
                    group.create_task(worker())
        summary.held += await leased_elsewhere(store, now, me, registry)
    finally:  # also when stopped: what this run did not get to is free for the next one at once
        await _settle(release_leases(store, me))
    return summary


async def lease_due(store: Store, at: dt.datetime, me: str, platforms: Iterable[str], *, limit: int) -> list[DueNudge]:
    """Take a page of due subscriptions that no other scheduler holds, so replicas split
    the work instead of all walking the same list. A lease only saves work: the unique
    (member, week) claim still decides who sends. Leases last LEASE; this scheduler may
    take back its own from an earlier run (a released nudge), never one from this run."""
    names = sorted(set(platforms))
    if not names:
        return []
    until = at + LEASE
    free = "(lease_until IS NULL OR lease_until < ? OR (lease_by = ? AND lease_until < ?))"
    free_params = (iso(at), me, iso(until))
    skip_locked = " FOR UPDATE OF s SKIP LOCKED" if store.dialect == "postgresql" else ""
    in_platforms = ", ".join("?" for _ in names)

    async def work(db: Tx) -> list[DueNudge]:
        # The page is picked once, in a materialized CTE: as an `IN (subquery)`, PostgreSQL
        # may rescan the subquery per row and, skipping the rows just leased, lease them all.
        leased = await db.execute_fetchall(
            f"WITH page AS MATERIALIZED (SELECT s.member_id FROM subscriptions s JOIN members m ON m.id = s.member_id "
            f"WHERE s.enabled = 1 AND s.next_due_at <= ? AND m.platform IN ({in_platforms}) AND {free.replace('lease', 's.lease')} "
            f"ORDER BY s.next_due_at, s.member_id LIMIT ?{skip_locked}) "
            f"UPDATE subscriptions SET lease_by = ?, lease_until = ? WHERE member_id IN (SELECT member_id FROM page) "
            f"AND enabled = 1 AND next_due_at <= ? AND {free} RETURNING member_id",
            (iso(at), *names, *free_params, limit, me, iso(until), iso(at), *free_params),
        )
        ids = [row[0] for row in leased]
        if not ids:
            return []
        rows = await db.execute_fetchall(
            "SELECT m.platform, m.user_id, s.member_id, s.next_due_at, s.weekday, s.local_time, s.timezone "
            f"FROM subscriptions s JOIN members m ON m.id = s.member_id WHERE s.member_id IN ({', '.join('?' for _ in ids)}) "
            "ORDER BY s.next_due_at, s.member_id",
            tuple(ids),
        )
        return [DueNudge(f"{r[0]}:{r[1]}", r[2], parse_time(r[3]), Schedule(r[4], parse_local_time(r[5]), r[6])) for r in rows]

    return await store._write(work)


async def leased_elsewhere(store: Store, at: dt.datetime, me: str, platforms: Iterable[str]) -> int:
    """Due subscriptions another scheduler's lease still holds: it is sending them, or it
    died and they wait for the lease to run out (LEASE)."""
    names = sorted(set(platforms))
    if not names:
        return 0
    rows = await store._read(
        "SELECT COUNT(*) FROM subscriptions s JOIN members m ON m.id = s.member_id WHERE s.enabled = 1 AND s.next_due_at <= ? "
        f"AND m.platform IN ({', '.join('?' for _ in names)}) AND s.lease_until >= ? AND s.lease_by <> ?",
        (iso(at), *names, iso(at), me),
    )
    return rows[0][0]


async def release_leases(store: Store, me: str) -> None:
    """Give up this scheduler's leases (a run is over, or it is stopping)."""

    async def work(db: Tx) -> None:
        await db.execute("UPDATE subscriptions SET lease_by = NULL, lease_until = NULL WHERE lease_by = ?", (me,))

    await store._write(work)


async def serve(
    store: Store,
    content: "Content | Callable[[], Content]",
    senders: Mapping[str, DirectSender] | Iterable[DirectSender],
    clock: Clock,
    sleep: Sleep = asyncio.sleep,
    *,
    grace: dt.timedelta = DEFAULT_GRACE,
    limiter: RateLimiter | None = None,
    interval: float = SERVE_INTERVAL,
    scheduler_id: str | None = None,
    ticks: int | None = None,
    own_connection: bool = True,
    observer: Any = None,
) -> None:
    """The scheduler of `mlbot run`: send what is due, then sleep until the next due time
    or `interval` seconds, whichever is sooner (never a busy poll). With a file database
    it uses its own connection, so its transactions never interleave with the chat
    handlers' on the shared one (SQLite's locks order them, as between processes).
    `ticks` bounds the loop (tests)."""
    if own_connection and store.path != ":memory:":
        async with open_store(store.path) as own:
            await serve(own, content, senders, clock, sleep, grace=grace, limiter=limiter, interval=interval,
                        scheduler_id=scheduler_id, ticks=ticks, own_connection=False, observer=observer)
        return
    registry = sender_registry(senders)
    limiter = limiter or RateLimiter(sleep=sleep)
    me = scheduler_id or default_scheduler_id()
    tick = 0
    while ticks is None or tick < ticks:
        tick += 1
        try:
            current = content() if callable(content) else content  # a getter follows admin reloads
            summary = await run_once(store, current, registry, clock(), grace=grace, limiter=limiter, clock=clock, scheduler_id=me,
                                     observer=observer)
            if summary.sent or summary.failed or summary.skipped:
                log.info("nudges: %s", summary.line())
        except StoreError:
            log.exception("the nudge scheduler could not use the database; trying again in %g s", interval)
        await sleep(await seconds_until_next(store, clock(), registry, interval))


async def seconds_until_next(store: Store, now: dt.datetime, platforms: Iterable[str] | None, interval: float = SERVE_INTERVAL) -> float:
    """How long the scheduler sleeps: until the next future due time, at most `interval`
    (nudges due now but held or released are retried after the interval, not in a loop)."""
    wake = await next_wake(store, now, platforms)
    if wake is None:
        return interval
    return min(interval, max((wake - now).total_seconds(), 0.01))
