"""The store's half of weekly nudges: subscriptions, leases, weekly claims, sends and
the pending notice. Every statement is here, portable between SQLite and PostgreSQL;
the one that differs (PostgreSQL skips rows another replica has locked) is the
backend's `_skip_locked` clause.

Exactly once, with several schedulers on one database:

1. A nudge is *claimed* before it is sent: a `sends` row (member, ISO week) with status
   'claimed'. `UNIQUE (member_id, iso_week)` makes the insert win or lose atomically.
2. The holder sends, then marks the row `sent` or `failed` (conditional on still holding
   it) and moves `next_due_at` on (conditional on it being unchanged, so a member's
   `nudge on friday` meanwhile wins). A release deletes the claim: the next run retries.
3. A claim still 'claimed' after `STALE_CLAIM` (10 min) was left by a scheduler that died
   between claim and send; a conditional UPDATE on (holder, claimed_at) lets exactly one
   taker win. A live holder can't be overtaken: it starts a send only within
   `HOLD_LIMIT` (5 min) of its claim and each send is cut at `SEND_TIMEOUT` (60 s).
   (Assumes scheduler clocks agree within a few minutes and a process is not frozen for
   minutes mid-send.)
4. What cannot be resolved, and which way it falls: a crash after the platform accepted
   the message but before the `sent` mark commits is taken over and sent again (at
   least once in that window); a send that timed out is marked `failed`, not retried
   (at most once).
5. Leases (`lease_due`) only save work: replicas take disjoint pages of due members; the
   claim still decides who sends. A scheduler killed outright keeps its leases for
   `LEASE`; runs meanwhile count those members as held (`leased_elsewhere`).

A page is claimed, and finished, in a few statements whatever its size (`claim_page`,
`finish_page`); members whose week is not simply free take the one-by-one path.
"""
from __future__ import annotations

import datetime as dt
import logging
from typing import Any, Awaitable, Callable, Iterable, Sequence

from bot.errors import StoreError
from bot.nudge_schedule import (
    FAILURES_BEFORE_PAUSE,
    LEASE,
    MAX_SKIPPED_WEEKS,
    STALE_CLAIM,
    Schedule,
    format_time,
    next_send_after,
    parse_local_time,
    week_key,
    zone_of,
)
from bot.store.nudge_rows import (
    Claim,
    ClaimOutcome,
    DueNudge,
    Finish,
    ProgressRows,
    SendOutcome,
    SendRecord,
    Subscription,
)
from bot.store.sql import Tx, iso, parse_time, split_member

log = logging.getLogger(__name__)
Notice = Callable[[int, dt.datetime, str], str]  # (weeks failed in a row, due, zone) -> the member's notice


_SUB_COLUMNS = "s.weekday, s.local_time, s.timezone, s.next_due_at, s.paused_until, s.consecutive_failures, s.enabled, s.notice"
_DUE_COLUMNS = "m.platform, m.user_id, s.member_id, s.next_due_at, s.weekday, s.local_time, s.timezone"
_BULK = 1_000  # members per statement in `subscribe_many` (within both databases' parameter limits)


def _subscription(member: str, row: tuple) -> Subscription:
    return Subscription(
        member, row[0], parse_local_time(row[1]), row[2], parse_time(row[3]),
        parse_time(row[4]) if row[4] else None, row[5], bool(row[6]), row[7],
    )


def _due(row: tuple) -> DueNudge:
    platform, user, member_id, due, weekday, local_time, tz = row
    return DueNudge(f"{platform}:{user}", member_id, parse_time(due), Schedule(weekday, parse_local_time(local_time), tz))


def _marks(values: int) -> str:
    return ", ".join("?" for _ in range(values))


async def _first_free_due(db: Tx, member_id: int, after: dt.datetime, schedule: Schedule) -> dt.datetime:
    """The next occurrence after `after` whose ISO week has no send yet (a week already
    sent, failed or skipped under an earlier schedule is not nudged twice)."""
    return (await _first_free_dues(db, [(member_id, after, schedule)]))[0]


async def _first_free_dues(db: Tx, wanted: Sequence[tuple[int, dt.datetime, Schedule]]) -> list[dt.datetime]:
    """`_first_free_due` of each (member, after, schedule), one statement a round for them
    all: the weeks already recorded among the candidates, then the next week of those."""
    dues = [next_send_after(after, s.weekday, s.local_time, s.timezone) for _, after, s in wanted]
    pending = list(range(len(wanted)))
    for _ in range(3):
        if not pending:
            break
        weeks = {i: week_key(dues[i], wanted[i][2].timezone) for i in pending}
        ids, keys = sorted({wanted[i][0] for i in pending}), sorted(set(weeks.values()))
        taken = {
            (row[0], row[1])
            for row in await db.execute_fetchall(
                f"SELECT member_id, iso_week FROM sends WHERE member_id IN ({_marks(len(ids))}) AND iso_week IN ({_marks(len(keys))})",
                (*ids, *keys),
            )
        }
        pending = [i for i in pending if (wanted[i][0], weeks[i]) in taken]
        for i in pending:
            schedule = wanted[i][2]
            dues[i] = next_send_after(dues[i], schedule.weekday, schedule.local_time, schedule.timezone)
    return dues


async def _upsert_subscriptions(db: Tx, rows: Sequence[tuple[int, Schedule, dt.datetime]], now: dt.datetime) -> None:
    """Turn on (or change) each (member, schedule, first due): unpaused, failures reset."""
    await db.execute(
        "INSERT INTO subscriptions (member_id, weekday, local_time, timezone, next_due_at, paused_until, consecutive_failures, enabled, notice, updated_at) "
        "VALUES " + ", ".join("(?, ?, ?, ?, ?, NULL, 0, 1, NULL, ?)" for _ in rows) + " ON CONFLICT (member_id) DO UPDATE SET weekday = excluded.weekday, "
        "local_time = excluded.local_time, timezone = excluded.timezone, next_due_at = excluded.next_due_at, paused_until = NULL, "
        "consecutive_failures = 0, enabled = 1, updated_at = excluded.updated_at",
        tuple(p for member_id, s, due in rows for p in (member_id, s.weekday, format_time(s.local_time), s.timezone, iso(due), iso(now))),
    )


class NudgeQueries:
    """The nudge methods of `bot.store.Store` (a mixin: the store brings `_write`, `_read`
    and `_member_id`)."""

    _skip_locked = ""  # PostgreSQL: lock the leased page, skipping rows another replica holds

    _write: Callable[..., Awaitable[Any]]
    _read: Callable[..., Awaitable[list[tuple]]]
    _member_id: Callable[..., Awaitable[int]]

    # --- the member's side ----------------------------------------------------------

    async def subscription(self, member: str) -> Subscription | None:
        rows = await self._read(
            f"SELECT {_SUB_COLUMNS} FROM subscriptions s JOIN members m ON m.id = s.member_id WHERE m.platform = ? AND m.user_id = ?",
            split_member(member),
        )
        return _subscription(member, rows[0]) if rows else None

    async def subscribe(self, member: str, schedule: Schedule, now: dt.datetime, *, member_timezone: str | None = None) -> Subscription:
        """Turn the nudge on (or change it); one transaction, so nothing is saved half.
        `member_timezone` also becomes the member's timezone (streak weeks)."""
        zone_of(schedule.timezone)  # refuse an unknown zone before writing anything

        async def work(db: Tx) -> None:
            member_id = await self._member_id(db, member, now)
            if member_timezone:
                await db.execute("UPDATE members SET timezone = ? WHERE id = ?", (member_timezone, member_id))
            await _upsert_subscriptions(db, [(member_id, schedule, await _first_free_due(db, member_id, now, schedule))], now)

        await self._write(work)
        result = await self.subscription(member)
        if result is None:
            raise StoreError("The nudge was saved but can't be read back; try again.")
        return result

    async def subscribe_many(self, subscriptions: Sequence[tuple[str, Schedule]], now: dt.datetime) -> None:
        """`subscribe` for many members at once (an import; the scale bench and the replica
        test seed thousands), in one transaction of a few statements per thousand. A
        member new to the bot takes their schedule's timezone as their own."""
        wanted = dict(subscriptions)  # one row per member: the last schedule given wins
        for schedule in wanted.values():
            zone_of(schedule.timezone)  # refuse an unknown zone before writing anything
        plan = list(wanted.items())

        async def work(db: Tx) -> None:
            for first in range(0, len(plan), _BULK):
                chunk = plan[first:first + _BULK]
                ids = {
                    (platform, user): member_id
                    for member_id, platform, user in await db.execute_fetchall(
                        "INSERT INTO members (platform, user_id, timezone, created_at, last_seen) VALUES "
                        + ", ".join("(?, ?, ?, ?, ?)" for _ in chunk)
                        + " ON CONFLICT (platform, user_id) DO UPDATE SET last_seen = excluded.last_seen RETURNING id, platform, user_id",
                        tuple(p for member, schedule in chunk for p in (*split_member(member), schedule.timezone, iso(now), iso(now))),
                    )
                }
                members = [(ids[split_member(member)], schedule) for member, schedule in chunk]
                dues = await _first_free_dues(db, [(member_id, now, schedule) for member_id, schedule in members])
                await _upsert_subscriptions(db, [(member_id, schedule, due) for (member_id, schedule), due in zip(members, dues, strict=True)], now)

        await self._write(work)

    async def unsubscribe(self, member: str, now: dt.datetime) -> bool:
        """`nudge off`: False when there was nothing on. A scheduler re-reads `enabled`
        inside its claim transaction, so it takes effect for the next claim."""
        platform, user = split_member(member)

        async def work(db: Tx) -> bool:
            cursor = await db.execute(
                "UPDATE subscriptions SET enabled = 0, updated_at = ? WHERE enabled = 1 AND member_id = "
                "(SELECT id FROM members WHERE platform = ? AND user_id = ?)",
                (iso(now), platform, user),
            )
            return cursor.rowcount > 0

        return await self._write(work)

    async def pause_nudges(self, member: str, until: dt.datetime, now: dt.datetime) -> Subscription | None:
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
            due = await _first_free_due(db, row[0], until, Schedule(row[1], parse_local_time(row[2]), row[3]))
            await db.execute(
                "UPDATE subscriptions SET paused_until = ?, next_due_at = ?, updated_at = ? WHERE member_id = ?",
                (iso(until), iso(due), iso(now), row[0]),
            )
            return True

        return await self.subscription(member) if await self._write(work) else None

    async def take_notice(self, member: str) -> str | None:
        """The member's pending nudge notice, once: it is cleared when returned. One read
        when there is none. When it can't be cleared (a read-only database) it stays
        pending and None comes back, so the reply it would ride on still goes out."""
        platform, user = split_member(member)
        rows = await self._read(
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
            cleared = await self._write(work)
        except StoreError as exc:
            log.warning("the nudge notice of %s stays pending: %s", member, exc)
            return None
        return notice if cleared else None

    # --- the scheduler's side -------------------------------------------------------

    async def due_nudges(self, at: dt.datetime, platforms: Iterable[str] | None = None) -> list[DueNudge]:
        """Active subscriptions due at `at` (earliest first), optionally only for `platforms`."""
        sql = f"SELECT {_DUE_COLUMNS} FROM subscriptions s JOIN members m ON m.id = s.member_id WHERE s.enabled = 1 AND s.next_due_at <= ?"
        params: list[Any] = [iso(at)]
        if platforms is not None:
            names = sorted(set(platforms))
            if not names:
                return []
            sql += f" AND m.platform IN ({_marks(len(names))})"
            params += names
        return [_due(r) for r in await self._read(sql + " ORDER BY s.next_due_at, s.member_id", tuple(params))]

    async def next_due_after(self, after: dt.datetime, platforms: Iterable[str] | None = None) -> dt.datetime | None:
        """The earliest due time strictly after `after`, or None."""
        sql = "SELECT MIN(s.next_due_at) FROM subscriptions s JOIN members m ON m.id = s.member_id WHERE s.enabled = 1 AND s.next_due_at > ?"
        params: list[Any] = [iso(after)]
        if platforms is not None:
            names = sorted(set(platforms))
            if not names:
                return None
            sql += f" AND m.platform IN ({_marks(len(names))})"
            params += names
        rows = await self._read(sql, tuple(params))
        return parse_time(rows[0][0]) if rows and rows[0][0] else None

    async def lease_due(self, at: dt.datetime, me: str, platforms: Iterable[str], *, limit: int) -> list[DueNudge]:
        """Take a page of due subscriptions that no other scheduler holds, for `LEASE`.
        This scheduler may take back its own from an earlier run (a released nudge),
        never one from this run."""
        names = sorted(set(platforms))
        if not names:
            return []
        until = at + LEASE
        free = "(lease_until IS NULL OR lease_until < ? OR (lease_by = ? AND lease_until < ?))"
        free_params = (iso(at), me, iso(until))

        async def work(db: Tx) -> list[DueNudge]:
            # The page is picked once, in a materialized CTE: as an `IN (subquery)`, PostgreSQL
            # may rescan the subquery per row and, skipping the rows just leased, lease them all.
            leased = await db.execute_fetchall(
                f"WITH page AS MATERIALIZED (SELECT s.member_id FROM subscriptions s JOIN members m ON m.id = s.member_id "
                f"WHERE s.enabled = 1 AND s.next_due_at <= ? AND m.platform IN ({_marks(len(names))}) AND {free.replace('lease', 's.lease')} "
                f"ORDER BY s.next_due_at, s.member_id LIMIT ?{self._skip_locked}) "
                f"UPDATE subscriptions SET lease_by = ?, lease_until = ? WHERE member_id IN (SELECT member_id FROM page) "
                f"AND enabled = 1 AND next_due_at <= ? AND {free} RETURNING member_id",
                (iso(at), *names, *free_params, limit, me, iso(until), iso(at), *free_params),
            )
            ids = [row[0] for row in leased]
            if not ids:
                return []
            rows = await db.execute_fetchall(
                f"SELECT {_DUE_COLUMNS} FROM subscriptions s JOIN members m ON m.id = s.member_id WHERE s.member_id IN ({_marks(len(ids))}) "
                "ORDER BY s.next_due_at, s.member_id",
                tuple(ids),
            )
            return [_due(r) for r in rows]

        return await self._write(work)

    async def leased_elsewhere(self, at: dt.datetime, me: str, platforms: Iterable[str]) -> int:
        """Due subscriptions another scheduler's lease still holds: it is sending them, or
        it died and they wait for the lease to run out."""
        names = sorted(set(platforms))
        if not names:
            return 0
        rows = await self._read(
            "SELECT COUNT(*) FROM subscriptions s JOIN members m ON m.id = s.member_id WHERE s.enabled = 1 AND s.next_due_at <= ? "
            f"AND m.platform IN ({_marks(len(names))}) AND s.lease_until >= ? AND s.lease_by <> ?",
            (iso(at), *names, iso(at), me),
        )
        return rows[0][0]

    async def release_leases(self, me: str) -> None:
        """Give up this scheduler's leases (a run is over, or it is stopping)."""

        async def work(db: Tx) -> None:
            await db.execute("UPDATE subscriptions SET lease_by = NULL, lease_until = NULL WHERE lease_by = ?", (me,))

        await self._write(work)

    async def sends(self, member: str | None = None) -> list[SendRecord]:
        """The recorded weeks of one member, or of everyone (by member, then week)."""
        sql = ("SELECT m.platform, m.user_id, s.iso_week, s.status, s.claimed_by, s.due_at, s.finished_at, s.error "
               "FROM sends s JOIN members m ON m.id = s.member_id")
        params: tuple = ()
        if member is not None:
            sql += " WHERE m.platform = ? AND m.user_id = ?"
            params = split_member(member)
        rows = await self._read(sql + " ORDER BY m.platform, m.user_id, s.iso_week", params)
        return [
            SendRecord(f"{platform}:{user}", week, status, holder, parse_time(due), parse_time(done) if done else None, error)
            for platform, user, week, status, holder, due, done, error in rows
        ]

    async def leases(self) -> dict[str, str]:
        """Members whose subscription a scheduler holds a lease on, and which scheduler."""
        rows = await self._read(
            "SELECT m.platform, m.user_id, s.lease_by FROM subscriptions s JOIN members m ON m.id = s.member_id WHERE s.lease_by IS NOT NULL"
        )
        return {f"{platform}:{user}": holder for platform, user, holder in rows}

    async def progress_rows(self, member_ids: Sequence[int]) -> list[ProgressRows]:
        """`ProgressRows` of each member (in order), in one statement for them all."""
        if not member_ids:
            return []
        marks = _marks(len(member_ids))
        rows = await self._read(
            f"SELECT 'p', member_id, kind, item_id, done_at FROM progress WHERE member_id IN ({marks}) "
            f"UNION ALL SELECT 'c', member_id, question_id, NULL, due_at FROM cards WHERE member_id IN ({marks}) "
            f"UNION ALL SELECT 'r', member_id, NULL, NULL, reviewed_at FROM reviews WHERE member_id IN ({marks}) "
            f"UNION ALL SELECT 'm', id, timezone, NULL, NULL FROM members WHERE id IN ({marks})",
            tuple(member_ids) * 4,
        )
        out = {m: ProgressRows({}, {}, "UTC", []) for m in member_ids}
        for tag, member, name, item, at in rows:
            found = out[member]
            if tag == "p":
                found.done.setdefault(name, {})[item] = parse_time(at)
                found.activity.append(parse_time(at))
            elif tag == "c":
                found.cards_due[name] = parse_time(at)
            elif tag == "r":
                found.activity.append(parse_time(at))
            else:
                out[member] = ProgressRows(found.done, found.cards_due, name or "UTC", found.activity)
        return [out[m] for m in member_ids]

    async def claim_nudge(self, nudge: DueNudge, now: dt.datetime, me: str, grace: dt.timedelta) -> Claim:
        """One transaction: skip (too late), claim (insert or stale takeover), or find the
        week already settled or held."""
        return await self._write(lambda db: _claim(db, nudge, now, me, grace))

    async def claim_page(self, nudges: Sequence[DueNudge], now: dt.datetime, me: str, grace: dt.timedelta) -> list[Claim]:
        """`claim_nudge` for a page in one transaction: the subscriptions are re-read and the
        free weeks claimed in one statement each; a member whose week is taken, stale or
        too late goes through `claim_nudge`'s path in the same transaction."""
        if not nudges:
            return []

        async def work(db: Tx) -> list[Claim]:
            ids = [n.member_id for n in nudges]
            current = {
                row[0]: row[1:]
                for row in await db.execute_fetchall(
                    f"SELECT member_id, enabled, next_due_at FROM subscriptions WHERE member_id IN ({_marks(len(ids))})", tuple(ids)
                )
            }
            # Rows are taken in member order, whatever order the page came in: two schedulers
            # claiming overlapping pages in different orders would otherwise each hold a row
            # the other waits for (PostgreSQL reports a deadlock and one page fails).
            in_order = sorted(nudges, key=lambda n: n.member_id)
            fresh = [n for n in in_order if (row := current.get(n.member_id)) and row[0] and row[1] == iso(n.due) and now - n.due <= grace]
            won: set[int] = set()
            if fresh:
                values = ", ".join("(?, ?, ?, 'claimed', ?, ?)" for _ in fresh)
                params = [p for n in fresh for p in (n.member_id, week_key(n.due, n.schedule.timezone), iso(n.due), me, iso(now))]
                won = {
                    row[0]
                    for row in await db.execute_fetchall(
                        f"INSERT INTO sends (member_id, iso_week, due_at, status, claimed_by, claimed_at) VALUES {values} "
                        "ON CONFLICT (member_id, iso_week) DO NOTHING RETURNING member_id",
                        tuple(params),
                    )
                }
            claims: dict[int, Claim] = {}
            for nudge in in_order:
                if nudge.member_id in won:
                    claims[id(nudge)] = Claim(nudge, ClaimOutcome.CLAIMED)
                elif (row := current.get(nudge.member_id)) is None or not row[0] or row[1] != iso(nudge.due):
                    claims[id(nudge)] = Claim(nudge, ClaimOutcome.GONE)
                else:
                    claims[id(nudge)] = await _claim(db, nudge, now, me, grace)
            return [claims[id(nudge)] for nudge in nudges]  # in the page's order

        return await self._write(work)

    async def finish_nudge(self, finish: Finish, me: str, notice: Notice) -> None:
        """Mark the claimed week sent or failed and move the schedule on; or release it."""
        await self.finish_page([finish], me, notice)

    async def finish_page(self, finishes: Sequence[Finish], me: str, notice: Notice) -> None:
        """Record what became of claimed weeks, in one transaction: a sent week moves its
        schedule on in one statement per kind of change; closed DMs, failures and releases
        take a few statements each."""
        if not finishes:
            return

        async def work(db: Tx) -> None:
            ids = [f.nudge.member_id for f in finishes]
            subs = {
                row[0]: row[1:]
                for row in await db.execute_fetchall(
                    f"SELECT member_id, next_due_at, weekday, local_time, timezone, consecutive_failures FROM subscriptions "
                    f"WHERE member_id IN ({_marks(len(ids))})",
                    tuple(ids),
                )
            }
            marks: list[tuple[Finish, str]] = []
            moving: list[tuple[int, dt.datetime, Schedule]] = []  # member, its due, its current schedule
            for finish in finishes:
                nudge = finish.nudge
                week = week_key(nudge.due, nudge.schedule.timezone)
                if finish.outcome is SendOutcome.RELEASE:
                    await db.execute(
                        "DELETE FROM sends WHERE member_id = ? AND iso_week = ? AND status = 'claimed' AND claimed_by = ?", (nudge.member_id, week, me)
                    )
                    continue
                marks.append((finish, week))
                row = subs.get(nudge.member_id)
                if row is None:
                    continue  # the member was forgotten meanwhile
                schedule = Schedule(row[1], parse_local_time(row[2]), row[3])
                if row[0] == iso(nudge.due):
                    moving.append((nudge.member_id, nudge.due, schedule))
                if finish.outcome is SendOutcome.DMS_CLOSED:
                    failures = row[4] + 1
                    await db.execute(
                        "UPDATE subscriptions SET consecutive_failures = ?, notice = ?, enabled = ? WHERE member_id = ?",
                        (failures, notice(failures, nudge.due, schedule.timezone), 0 if failures >= FAILURES_BEFORE_PAUSE else 1, nudge.member_id),
                    )
            await _mark_sends(db, marks, me)
            dues = await _first_free_dues(db, moving)
            await _move_schedules(db, [(member, iso(new), iso(old)) for (member, old, _), new in zip(moving, dues, strict=True)])
            sent = [f.nudge.member_id for f in finishes if f.outcome is SendOutcome.SENT and f.nudge.member_id in subs]
            if sent:  # only the rows that change: an UPDATE writes a row even to set the value it has
                await db.execute(
                    f"UPDATE subscriptions SET consecutive_failures = 0 WHERE member_id IN ({_marks(len(sent))}) AND consecutive_failures <> 0", tuple(sent)
                )

        await self._write(work)


async def _mark_sends(db: Tx, marks: list[tuple[Finish, str]], me: str) -> None:
    """Mark each (still held) claim sent or failed: one UPDATE per outcome, with a VALUES
    list of (member, week, finished_at, error) (typed by CAST: PostgreSQL reads an
    untyped parameter in VALUES as text). The `member_id IN` list lets both databases
    find the rows by the unique key instead of testing every row of `sends`."""
    for status in ("sent", "failed"):
        rows = [(f, week) for f, week in marks if ("sent" if f.outcome is SendOutcome.SENT else "failed") == status]
        if not rows:
            continue
        values = ", ".join("(CAST(? AS BIGINT), ?, ?, ?)" for _ in rows)
        params = [p for f, week in rows for p in (f.nudge.member_id, week, iso(f.at), f.error)]
        updated = await db.execute_fetchall(
            f"WITH done (member_id, iso_week, finished_at, error) AS (VALUES {values}) "
            "UPDATE sends SET status = ?, finished_at = (SELECT d.finished_at FROM done d WHERE d.member_id = sends.member_id AND d.iso_week = sends.iso_week), "
            "error = (SELECT d.error FROM done d WHERE d.member_id = sends.member_id AND d.iso_week = sends.iso_week) "
            f"WHERE member_id IN ({_marks(len(rows))}) AND status = 'claimed' AND claimed_by = ? "
            "AND EXISTS (SELECT 1 FROM done d WHERE d.member_id = sends.member_id AND d.iso_week = sends.iso_week) RETURNING member_id",
            (*params, status, *(f.nudge.member_id for f, _ in rows), me),
        )
        lost = {f.nudge.member_id for f, _ in rows} - {row[0] for row in updated}
        for finish, week in rows:
            if finish.nudge.member_id in lost:
                log.error("nudge claim of %s (week %s) was lost before it was marked %s", finish.nudge.member, week, status)


async def _move_schedules(db: Tx, moves: list[tuple[int, str, str]]) -> None:
    """next_due_at = new where it still is old (a member's change meanwhile wins); found
    by primary key through the `member_id IN` list, not by scanning every subscription."""
    if not moves:
        return
    values = ", ".join("(CAST(? AS BIGINT), ?, ?)" for _ in moves)
    await db.execute(
        f"WITH moved (member_id, next_due, old_due) AS (VALUES {values}) "
        "UPDATE subscriptions SET next_due_at = (SELECT m.next_due FROM moved m WHERE m.member_id = subscriptions.member_id) "
        f"WHERE member_id IN ({_marks(len(moves))}) "
        "AND EXISTS (SELECT 1 FROM moved m WHERE m.member_id = subscriptions.member_id AND m.old_due = subscriptions.next_due_at)",
        (*(p for move in moves for p in move), *(member for member, _, _ in moves)),
    )


async def _claim(db: Tx, nudge: DueNudge, now: dt.datetime, me: str, grace: dt.timedelta) -> Claim:
    row = await (await db.execute(
        "SELECT enabled, next_due_at, weekday, local_time, timezone FROM subscriptions WHERE member_id = ?", (nudge.member_id,)
    )).fetchone()
    if row is None or not row[0] or row[1] != iso(nudge.due):
        return Claim(nudge, ClaimOutcome.GONE)
    schedule = Schedule(row[2], parse_local_time(row[3]), row[4])
    week = week_key(nudge.due, schedule.timezone)
    if now - nudge.due > grace:
        # the next week, or after a long outage the first week not yet too late, computed
        # directly (walking there a week at a time could take ages); an overdue next week
        # comes back to the caller: recorded as skipped as well, or sent if inside the grace
        long_outage = now - nudge.due > grace + dt.timedelta(weeks=MAX_SKIPPED_WEEKS)
        resume_after = now - grace - dt.timedelta(microseconds=1) if long_outage else nudge.due
        due = await _first_free_due(db, nudge.member_id, resume_after, schedule)
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
        return Claim(nudge, ClaimOutcome.SKIPPED if skipped else ClaimOutcome.SETTLED, again)
    cursor = await db.execute(
        "INSERT INTO sends (member_id, iso_week, due_at, status, claimed_by, claimed_at) VALUES (?, ?, ?, 'claimed', ?, ?) "
        "ON CONFLICT (member_id, iso_week) DO NOTHING",
        (nudge.member_id, week, iso(nudge.due), me, iso(now)),
    )
    if cursor.rowcount == 1:
        return Claim(nudge, ClaimOutcome.CLAIMED)
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
                return Claim(nudge, ClaimOutcome.CLAIMED)
        return Claim(nudge, ClaimOutcome.HELD)
    # sent, failed or skipped already (another scheduler, or an earlier schedule): move on
    due = await _first_free_due(db, nudge.member_id, nudge.due, schedule)
    await db.execute("UPDATE subscriptions SET next_due_at = ? WHERE member_id = ? AND next_due_at = ?", (iso(due), nudge.member_id, iso(nudge.due)))
    return Claim(nudge, ClaimOutcome.SETTLED)
