"""`Store`: every query the bot makes, in SQL both SQLite and PostgreSQL run (`?`
placeholders, `ON CONFLICT`, `RETURNING`, ISO-8601 UTC text for times); a backend
subclass (`bot.store.sqlite`, `bot.store.postgres`) brings the connection and
transactions. The nudge queries are `bot.store.nudges.NudgeQueries`, mixed in here.
Every method is one transaction, or joins the calling task's unit of work
(`Store.unit`, `bot.store.unit`).
"""
from __future__ import annotations

import datetime as dt
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Awaitable, Callable, Iterable

from bot.errors import StoreError
from bot.srs import CardState
from bot.store.migrations import PERSONAL_TABLES
from bot.store.nudges import NudgeQueries
from bot.store.sql import Tx, iso, parse_time, split_member
from bot.store.unit import Unit, current, unit_of_work


class Outcome(StrEnum):
    """What the bot did with a question it could not answer outright."""

    FALLBACK = "fallback"  # said what it covers and offered what came closest
    CLARIFY = "clarify"  # asked back: did you mean ...


@dataclass(frozen=True, slots=True)
class Unanswered:
    """A question from the miss log: how often, when last, what the bot did, what came closest."""

    text: str
    count: int
    last_seen: dt.datetime
    outcome: Outcome
    near: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class MockSession:
    """A mock interview: its questions in order, one grade per question answered so far,
    and the topic asked for (None: across topics)."""

    questions: tuple[str, ...]
    grades: tuple[int, ...]
    topic: str | None
    started_at: dt.datetime

    @property
    def current(self) -> str | None:
        """The question being asked; None once every question is graded."""
        return self.questions[len(self.grades)] if len(self.grades) < len(self.questions) else None


@dataclass(frozen=True, slots=True)
class MemberContext:
    """What the core and the handlers need of a member, read at once before the message
    is routed: their row (None: never seen), the question the bot asked them
    (`pending_action`), a nudge notice waiting to be shown and their timezone (None:
    not known)."""

    member_id: int | None = None
    pending_action: str | None = None
    notice: str | None = None
    timezone: str | None = None


@dataclass(frozen=True, slots=True)
class MessageRecord:
    """What a message leaves behind, written with its handler's changes: the command
    used, or the text the bot could not answer outright (with `outcome` and the intents
    it came `near`); the pending question cleared; the notice taken to be shown."""

    command: str | None = None
    unanswered: str | None = None
    outcome: Outcome = Outcome.FALLBACK
    near: tuple[str, ...] = ()
    clear_pending: bool = False
    take_notice: bool = False


@dataclass(slots=True)
class Visits:
    """How often the store went to the database: reads on their own, and transactions
    (a unit of work is one, however many writes and reads join it). For observability,
    and for the tests that hold a message to one read and one write."""

    reads: int = 0
    transactions: int = 0


_MOCK_COLUMNS = "questions, grades, topic, started_at"


def _mock(row: tuple) -> MockSession:
    questions, grades, topic, started = row
    return MockSession(tuple(questions.split(",")), tuple(int(g) for g in grades.split(",") if g), topic, parse_time(started))


def _mock_grades(grades: Iterable[int]) -> str:
    return ",".join(map(str, grades))


async def _mock_of(db: Tx, member: int) -> MockSession | None:
    rows = list(await db.execute_fetchall(f"SELECT {_MOCK_COLUMNS} FROM mock_sessions WHERE member_id = ?", (member,)))
    return _mock(rows[0]) if rows else None


async def _count_unanswered(db: Tx, normal: str, now: dt.datetime, outcome: Outcome, near: Iterable[str], member: int) -> None:
    """One more ask of `normal` (normalised text) on the admin list, which never says who
    asked, and on the member's own count (theirs, for `mydata` and `forget`)."""
    await db.execute(
        "INSERT INTO unanswered (text, count, last_seen, outcome, near) VALUES (?, 1, ?, ?, ?) "
        "ON CONFLICT (text) DO UPDATE SET count = unanswered.count + 1, last_seen = excluded.last_seen, "
        "outcome = excluded.outcome, near = excluded.near",
        (normal, iso(now), outcome.value, ",".join(near)),
    )
    await db.execute(
        "INSERT INTO unanswered_asks (member_id, question, count, last_asked) VALUES (?, ?, 1, ?) "
        "ON CONFLICT (member_id, question) DO UPDATE SET count = unanswered_asks.count + 1, last_asked = excluded.last_asked",
        (member, normal, iso(now)),
    )


class Store(NudgeQueries):
    """Every query the bot makes, for any backend. Subclasses implement `open`, `close`,
    `_open_transaction` (all of it lands, or none), `_rows` and `_dicts` (a query, in the
    given transaction or on its own)."""

    path: str
    read_only = False  # the database refuses writes: answer from it, record no usage

    def __init__(self) -> None:
        self.visits = Visits()

    async def open(self, *, migrate: bool = True, check: bool = False) -> None:
        """Connect and bring the schema up to date (`migrate=False` leaves the database as
        it is, for inspecting it). With `check`, first refuse a database whose pages fail
        an integrity check (SQLite's quick_check; PostgreSQL verifies its own pages)."""
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError

    def _open_transaction(self) -> AbstractAsyncContextManager[Tx]:
        raise NotImplementedError

    async def _rows(self, sql: str, params: tuple, tx: Tx | None) -> list[tuple]:
        raise NotImplementedError

    async def _dicts(self, sql: str, params: tuple, tx: Tx | None) -> list[dict[str, Any]]:
        raise NotImplementedError

    def unit(self) -> AbstractAsyncContextManager[Unit]:
        """A unit of work for the calling task: the store calls made inside it, by this
        task only, land in one transaction when the block ends, or none of them does."""
        return unit_of_work(self)

    def _transaction(self) -> AbstractAsyncContextManager[Tx]:
        self.visits.transactions += 1
        return self._open_transaction()

    async def _write(self, work: Callable[[Tx], Awaitable[Any]]) -> Any:
        """Run `work` in one transaction (the task's unit of work, if one is open)."""
        unit = current(self)
        if unit is not None:
            return await unit.write(work)
        async with self._transaction() as tx:
            return await work(tx)

    def _joined(self) -> Tx | None:
        """The transaction of the task's unit of work, once a write began it; a read
        outside one counts as a visit of its own."""
        unit = current(self)
        if unit is None or unit.tx is None:
            self.visits.reads += 1
            return None
        return unit.tx

    async def _read(self, sql: str, params: tuple = ()) -> list[tuple]:
        return await self._rows(sql, params, self._joined())

    async def _read_dicts(self, sql: str, params: tuple = ()) -> list[dict[str, Any]]:
        return await self._dicts(sql, params, self._joined())

    async def ping(self) -> bool:
        """True when the database answers a query (for /healthz)."""
        try:
            await self._read("SELECT 1")
            return True
        except StoreError:
            return False

    # --- members ----------------------------------------------------------------------

    async def _member_id(self, db: Tx, key: str, now: dt.datetime | None = None) -> int:
        platform, user = split_member(key)
        stamp = iso(now or dt.datetime.now(dt.timezone.utc))
        rows = await db.execute_fetchall(
            "INSERT INTO members (platform, user_id, created_at, last_seen) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (platform, user_id) DO UPDATE SET last_seen = excluded.last_seen RETURNING id",
            (platform, user, stamp, stamp),
        )
        return next(iter(rows))[0]

    async def _existing_id(self, key: str) -> int | None:
        platform, user = split_member(key)
        rows = await self._read("SELECT id FROM members WHERE platform = ? AND user_id = ?", (platform, user))
        return rows[0][0] if rows else None

    async def member_field(self, key: str, column: str) -> Any:
        if column not in ("timezone", "pending_action", "current_card", "created_at", "last_seen"):
            raise ValueError(column)
        platform, user = split_member(key)
        rows = await self._read(f"SELECT {column} FROM members WHERE platform = ? AND user_id = ?", (platform, user))
        return rows[0][0] if rows else None

    async def set_member_field(self, key: str, column: str, value: Any) -> None:
        if column not in ("timezone", "pending_action", "current_card"):
            raise ValueError(column)

        async def work(db: Tx) -> None:
            member = await self._member_id(db, key)
            await db.execute(f"UPDATE members SET {column} = ? WHERE id = ?", (value, member))

        await self._write(work)

    async def timezone(self, key: str) -> str:
        return await self.member_field(key, "timezone") or "UTC"

    async def set_pending_action(self, key: str, action: str | None) -> None:
        await self.set_member_field(key, "pending_action", action)

    async def member_context(self, key: str) -> MemberContext:
        """The member's `MemberContext`, in one read."""
        platform, user = split_member(key)
        rows = await self._read(
            "SELECT m.id, m.pending_action, s.notice, m.timezone FROM members m LEFT JOIN subscriptions s ON s.member_id = m.id "
            "WHERE m.platform = ? AND m.user_id = ?",
            (platform, user),
        )
        return MemberContext(*rows[0]) if rows else MemberContext()

    async def record_message(self, key: str, context: MemberContext, record: MessageRecord, now: dt.datetime) -> str | None:
        """Write what a message leaves behind (`record`), against the `context` read
        before it; returns the notice if this call took it (None: there was none, another
        message took it, or the database is read-only). A member erased since the context
        was read stays erased: nothing is written. In the message's unit of work
        (`unit`), this is its first write, so the handler's changes land with it."""
        unanswered = " ".join((record.unanswered or "").lower().split())[:200]
        clear_pending = record.clear_pending and context.pending_action is not None
        take_notice = record.take_notice and context.notice is not None
        if self.read_only or not (record.command or unanswered or clear_pending or take_notice):
            return None  # a read-only database answers; the record is not worth refusing it over

        async def work(db: Tx) -> str | None:
            if context.member_id is None:
                member = await self._member_id(db, key, now)
            elif not list(await db.execute_fetchall("UPDATE members SET last_seen = ? WHERE id = ? RETURNING id", (iso(now), context.member_id))):
                return None
            else:
                member = context.member_id
            if record.command:
                await db.execute("INSERT INTO command_log (member_id, command, at) VALUES (?, ?, ?)", (member, record.command, iso(now)))
            if unanswered:
                await _count_unanswered(db, unanswered, now, record.outcome, record.near, member)
            if clear_pending:
                await db.execute("UPDATE members SET pending_action = NULL WHERE id = ? AND pending_action = ?", (member, context.pending_action))
            if take_notice:
                cursor = await db.execute("UPDATE subscriptions SET notice = NULL WHERE member_id = ? AND notice = ?", (member, context.notice))
                if cursor.rowcount > 0:
                    return context.notice
            return None

        return await self._write(work)

    # --- progress ---------------------------------------------------------------------

    async def mark_done(self, key: str, kind: str, item: str, now: dt.datetime) -> bool:
        """Record `item` done; False when it already was."""

        async def work(db: Tx) -> bool:
            member = await self._member_id(db, key, now)
            cursor = await db.execute(
                "INSERT INTO progress (member_id, kind, item_id, done_at) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (member, kind, item, iso(now)),
            )
            return cursor.rowcount == 1

        return await self._write(work)

    async def undo(self, key: str, kind: str, item: str) -> bool:
        async def work(db: Tx) -> bool:
            member = await self._member_id(db, key)
            cursor = await db.execute("DELETE FROM progress WHERE member_id = ? AND kind = ? AND item_id = ?", (member, kind, item))
            return cursor.rowcount > 0

        return await self._write(work)

    async def done_items(self, key: str) -> dict[str, dict[str, dt.datetime]]:
        """kind -> item id -> when it was done."""
        platform, user = split_member(key)
        rows = await self._read(
            "SELECT p.kind, p.item_id, p.done_at FROM progress p JOIN members m ON m.id = p.member_id "
            "WHERE m.platform = ? AND m.user_id = ?",
            (platform, user),
        )
        out: dict[str, dict[str, dt.datetime]] = {}
        for kind, item, at in rows:
            out.setdefault(kind, {})[item] = parse_time(at)
        return out

    async def activity_times(self, key: str) -> list[dt.datetime]:
        """When the member studied: items marked done (an undone one no longer counts)
        and practice cards graded."""
        platform, user = split_member(key)
        rows = await self._read(
            "SELECT p.done_at FROM progress p JOIN members m ON m.id = p.member_id WHERE m.platform = ? AND m.user_id = ? "
            "UNION ALL SELECT r.reviewed_at FROM reviews r JOIN members m ON m.id = r.member_id WHERE m.platform = ? AND m.user_id = ?",
            (platform, user, platform, user),
        )
        return [parse_time(r[0]) for r in rows]

    # --- practice ---------------------------------------------------------------------

    async def cards(self, key: str) -> dict[str, CardState]:
        platform, user = split_member(key)
        rows = await self._read(
            "SELECT c.question_id, c.state, c.step, c.stability, c.difficulty, c.due_at, c.last_review, c.reviews, c.lapses, c.last_grade "
            "FROM cards c JOIN members m ON m.id = c.member_id WHERE m.platform = ? AND m.user_id = ?",
            (platform, user),
        )
        return {
            r[0]: CardState(r[0], r[1], r[2], r[3], r[4], parse_time(r[5]), parse_time(r[6]) if r[6] else None, r[7], r[8], r[9])
            for r in rows
        }

    async def save_review(self, key: str, state: CardState, grade: int, now: dt.datetime, *, expected_card: str) -> bool:
        """Store the new schedule and the review, and clear the current card, atomically.
        False (nothing written) when `expected_card` is no longer the member's current
        card: a double click or a second process got there first. A grade of the
        question an open mock interview is on counts in the mock too."""

        async def work(db: Tx) -> bool:
            member = await self._member_id(db, key, now)
            # Taking the card is the guard: one conditional update wins, even across replicas.
            taken = await db.execute("UPDATE members SET current_card = NULL WHERE id = ? AND current_card = ?", (member, expected_card))
            if taken.rowcount != 1:
                return False
            await self._advance_mock(db, member, state.question_id, grade)
            await self._save_card(db, member, state, grade, now)
            return True

        return await self._write(work)

    async def _save_card(self, db: Tx, member: int, state: CardState, grade: int, now: dt.datetime) -> None:
        await db.execute(
            "INSERT INTO cards (member_id, question_id, state, step, stability, difficulty, due_at, last_review, reviews, lapses, last_grade) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (member_id, question_id) DO UPDATE SET "
            "state = excluded.state, step = excluded.step, stability = excluded.stability, difficulty = excluded.difficulty, "
            "due_at = excluded.due_at, last_review = excluded.last_review, reviews = excluded.reviews, lapses = excluded.lapses, "
            "last_grade = excluded.last_grade",
            (member, state.question_id, state.state, state.step, state.stability, state.difficulty, iso(state.due_at),
             iso(state.last_review) if state.last_review else None, state.reviews, state.lapses, grade),
        )
        await db.execute("INSERT INTO reviews (member_id, question_id, grade, reviewed_at) VALUES (?, ?, ?, ?)", (member, state.question_id, grade, iso(now)))

    # --- mock interviews --------------------------------------------------------------

    async def mock_session(self, key: str) -> MockSession | None:
        platform, user = split_member(key)
        rows = await self._read(
            f"SELECT {_MOCK_COLUMNS} FROM mock_sessions JOIN members m ON m.id = member_id WHERE m.platform = ? AND m.user_id = ?",
            (platform, user),
        )
        return _mock(rows[0]) if rows else None

    async def open_mock(self, key: str, questions: list[str], topic: str | None, now: dt.datetime) -> tuple[MockSession, bool]:
        """Start a mock interview on `questions`, unless one is open: (the open session,
        whether it is new). Its current question becomes the member's current card."""

        async def work(db: Tx) -> tuple[MockSession, bool]:
            member = await self._member_id(db, key, now)
            cursor = await db.execute(
                "INSERT INTO mock_sessions (member_id, topic, questions, grades, started_at) VALUES (?, ?, ?, '', ?) ON CONFLICT DO NOTHING",
                (member, topic, ",".join(questions), iso(now)),
            )
            session = await _mock_of(db, member)
            assert session is not None
            await db.execute("UPDATE members SET current_card = ? WHERE id = ?", (session.current, member))
            return session, cursor.rowcount == 1

        return await self._write(work)

    async def grade_mock(self, key: str, state: CardState, grade: int, now: dt.datetime) -> MockSession | None:
        """Grade the mock interview's current question (`state.question_id`): the review
        is stored as `save_review` stores it, and the next question becomes the current
        card. None (nothing written) when that question is no longer the current one:
        a double click, or a grade that got there first."""

        async def work(db: Tx) -> MockSession | None:
            member = await self._member_id(db, key, now)
            if not await self._advance_mock(db, member, state.question_id, grade):
                return None
            await self._save_card(db, member, state, grade, now)
            session = await _mock_of(db, member)
            assert session is not None
            await db.execute("UPDATE members SET current_card = ? WHERE id = ?", (session.current, member))
            return session

        return await self._write(work)

    async def _advance_mock(self, db: Tx, member: int, question_id: str, grade: int) -> bool:
        """Record `grade` in the open mock interview if `question_id` is its current
        question. The update is conditional on the grades read, so of two grades racing
        (two replicas, a double click) one wins."""
        session = await _mock_of(db, member)
        if session is None or session.current != question_id:
            return False
        cursor = await db.execute(
            "UPDATE mock_sessions SET grades = ? WHERE member_id = ? AND grades = ?",
            (_mock_grades((*session.grades, grade)), member, _mock_grades(session.grades)),
        )
        return cursor.rowcount == 1

    async def end_mock(self, key: str) -> MockSession | None:
        """Close the member's mock interview and return it (None if none was open). Its
        unanswered question stops being the current card."""
        member = await self._existing_id(key)
        if member is None:
            return None

        async def work(db: Tx) -> MockSession | None:
            rows = list(await db.execute_fetchall(f"DELETE FROM mock_sessions WHERE member_id = ? RETURNING {_MOCK_COLUMNS}", (member,)))
            if not rows:
                return None
            session = _mock(rows[0])
            if session.current is not None:
                await db.execute("UPDATE members SET current_card = NULL WHERE id = ? AND current_card = ?", (member, session.current))
            return session

        return await self._write(work)

    async def review_grades(self, key: str) -> list[tuple[str, int]]:
        platform, user = split_member(key)
        return [
            (r[0], r[1])
            for r in await self._read(
                "SELECT r.question_id, r.grade FROM reviews r JOIN members m ON m.id = r.member_id WHERE m.platform = ? AND m.user_id = ?",
                (platform, user),
            )
        ]

    # --- usage and admin --------------------------------------------------------------

    async def unanswered(self, limit: int) -> list[Unanswered]:
        rows = await self._read(
            "SELECT text, count, last_seen, outcome, near FROM unanswered ORDER BY count DESC, last_seen DESC LIMIT ?", (limit,)
        )
        return [Unanswered(r[0], r[1], parse_time(r[2]), Outcome(r[3] or Outcome.FALLBACK), tuple(filter(None, (r[4] or "").split(",")))) for r in rows]

    async def stats(self, since: dt.datetime) -> dict[str, Any]:
        members = (await self._read("SELECT COUNT(*) FROM members"))[0][0]
        active = (await self._read("SELECT COUNT(DISTINCT member_id) FROM command_log WHERE at >= ?", (iso(since),)))[0][0]
        graded = (await self._read("SELECT COUNT(*) FROM reviews"))[0][0]
        top = await self._read("SELECT command, COUNT(*) AS n FROM command_log GROUP BY command ORDER BY n DESC, command LIMIT 10")
        return {"members": members, "active_this_week": active, "cards_graded": graded, "top_commands": [(r[0], r[1]) for r in top]}

    async def first_time(self, event_id: str, now: dt.datetime, *, keep: dt.timedelta = dt.timedelta(hours=2)) -> bool:
        """True exactly once per `event_id`, whichever replica asks first; ids older
        than `keep` are forgotten (platforms stop retrying within minutes)."""

        async def work(db: Tx) -> bool:
            await db.execute("DELETE FROM platform_events WHERE seen_at < ?", (iso(now - keep),))
            cursor = await db.execute("INSERT INTO platform_events (event_id, seen_at) VALUES (?, ?) ON CONFLICT DO NOTHING", (event_id, iso(now)))
            return cursor.rowcount == 1

        return await self._write(work)

    # --- privacy ----------------------------------------------------------------------

    async def member_keys(self, user: str) -> list[str]:
        """The member keys whose user id is `user`, on any platform; a Slack id matches
        with or without its team (`T1:U2` or `U2`)."""
        rows = await self._read("SELECT platform, user_id FROM members WHERE user_id = ? OR user_id LIKE ?", (user, f"%:{user}"))
        return sorted(f"{platform}:{uid}" for platform, uid in rows if uid == user or uid.endswith(f":{user}"))

    async def export(self, key: str) -> dict[str, Any]:
        """Every row stored about the member, as plain JSON-able data."""
        member = await self._existing_id(key)
        if member is None:
            return {}
        out: dict[str, Any] = {}
        for table, where in (("members", "id"), *((t, "member_id") for t in PERSONAL_TABLES)):
            out[table] = await self._read_dicts(f"SELECT * FROM {table} WHERE {where} = ?", (member,))
        return out

    async def forget(self, key: str) -> int:
        """Delete every row of the member; returns how many rows went. Their asks come
        off the unanswered counts, and a question only they asked leaves the admin list."""
        member = await self._existing_id(key)
        if member is None:
            return 0

        async def work(db: Tx) -> int:
            await db.execute(
                "UPDATE unanswered SET count = count - (SELECT a.count FROM unanswered_asks a WHERE a.member_id = ? AND a.question = unanswered.text) "
                "WHERE text IN (SELECT question FROM unanswered_asks WHERE member_id = ?)",
                (member, member),
            )
            total = 0
            for table in PERSONAL_TABLES:
                total += (await db.execute(f"DELETE FROM {table} WHERE member_id = ?", (member,))).rowcount
            total += (await db.execute("DELETE FROM unanswered WHERE count <= 0")).rowcount
            total += (await db.execute("DELETE FROM members WHERE id = ?", (member,))).rowcount
            return total

        return await self._write(work)
