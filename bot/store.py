"""Member progress: path steps and courses done, practice cards and reviews (which
also date the study activity behind streaks), open mock interviews, usage for admins, nudge subscriptions and sends, and conversation state.

`Store` holds every query, in SQL both SQLite and PostgreSQL run (`?` placeholders,
`ON CONFLICT`, `RETURNING`, ISO-8601 UTC text for times); a subclass brings the
connection and transactions. `SqliteStore` (aiosqlite) is the default: one connection
does every read and write, so writes never race inside a process; across processes
`BEGIN IMMEDIATE` plus `busy_timeout` queue writers instead of failing. WAL with
`synchronous=FULL`: a commit the member saw confirmed survives `kill -9` and power
loss. A file SQLite won't write (read-only file or mount, `file:...?mode=ro`) is served
for reading. `bot.store_pg.PostgresStore` serves `MLBOT_DB=postgresql://...` for replicas.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import sqlite3
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable, Iterable

import aiosqlite

from bot.errors import StoreError
from bot.srs import CardState
from bot.store_base import Tx, iso, parse_time, split_member
from bot.store_nudges import NudgeQueries

BUSY_TIMEOUT_MS = 5000
log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Unanswered:
    """A question from the miss log: how often, when last, what the bot did, what came closest."""

    text: str
    count: int
    last_seen: dt.datetime
    outcome: str
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


# Ordered migrations: index + 1 is the schema version they produce. Never edit one that
# has shipped; add a new one.
MIGRATIONS: list[tuple[str, str]] = [
    (
        "members, progress, practice cards, activity, usage",
        """
        CREATE TABLE members (
            id INTEGER PRIMARY KEY,
            platform TEXT NOT NULL,
            user_id TEXT NOT NULL,
            timezone TEXT NOT NULL DEFAULT 'UTC',
            created_at TEXT NOT NULL,
            last_seen TEXT NOT NULL,
            pending_action TEXT,
            current_card TEXT,
            UNIQUE (platform, user_id)
        );
        CREATE TABLE progress (
            member_id INTEGER NOT NULL REFERENCES members(id) ON DELETE CASCADE,
            kind TEXT NOT NULL,
            item_id TEXT NOT NULL,
            done_at TEXT NOT NULL,
            PRIMARY KEY (member_id, kind, item_id)
        );
        CREATE TABLE cards (
            member_id INTEGER NOT NULL REFERENCES members(id) ON DELETE CASCADE,
            question_id TEXT NOT NULL,
            ease REAL NOT NULL,
            interval_days REAL NOT NULL,
            repetitions INTEGER NOT NULL,
            due_at TEXT NOT NULL,
            reviews INTEGER NOT NULL,
            lapses INTEGER NOT NULL,
            last_grade INTEGER,
            PRIMARY KEY (member_id, question_id)
        );
        CREATE TABLE reviews (
            id INTEGER PRIMARY KEY,
            member_id INTEGER NOT NULL REFERENCES members(id) ON DELETE CASCADE,
            question_id TEXT NOT NULL,
            grade INTEGER NOT NULL,
            reviewed_at TEXT NOT NULL
        );
        CREATE INDEX reviews_member ON reviews (member_id, reviewed_at);
        CREATE TABLE activity (
            id INTEGER PRIMARY KEY,
            member_id INTEGER NOT NULL REFERENCES members(id) ON DELETE CASCADE,
            kind TEXT NOT NULL,
            at TEXT NOT NULL
        );
        CREATE INDEX activity_member ON activity (member_id, at);
        CREATE TABLE command_log (
            id INTEGER PRIMARY KEY,
            member_id INTEGER NOT NULL REFERENCES members(id) ON DELETE CASCADE,
            command TEXT NOT NULL,
            at TEXT NOT NULL
        );
        CREATE INDEX command_log_at ON command_log (at);
        CREATE TABLE unanswered (
            text TEXT PRIMARY KEY,
            count INTEGER NOT NULL,
            last_seen TEXT NOT NULL
        );
        """,
    ),
    (
        "weekly nudges: subscriptions and the sends claimed per member and ISO week",
        """
        CREATE TABLE subscriptions (
            member_id INTEGER PRIMARY KEY REFERENCES members(id) ON DELETE CASCADE,
            weekday INTEGER NOT NULL,
            local_time TEXT NOT NULL,
            timezone TEXT NOT NULL,
            next_due_at TEXT NOT NULL,
            paused_until TEXT,
            consecutive_failures INTEGER NOT NULL DEFAULT 0,
            enabled INTEGER NOT NULL DEFAULT 1,
            notice TEXT,
            updated_at TEXT NOT NULL
        );
        CREATE INDEX subscriptions_due ON subscriptions (enabled, next_due_at);
        CREATE TABLE sends (
            member_id INTEGER NOT NULL REFERENCES members(id) ON DELETE CASCADE,
            iso_week TEXT NOT NULL,
            due_at TEXT NOT NULL,
            status TEXT NOT NULL CHECK (status IN ('claimed', 'sent', 'failed', 'skipped')),
            claimed_by TEXT,
            claimed_at TEXT,
            finished_at TEXT,
            error TEXT,
            UNIQUE (member_id, iso_week)
        );
        """,
    ),
    (
        "platform event ids already answered (Slack retries, several replicas behind a load balancer)",
        """
        CREATE TABLE platform_events (
            event_id TEXT PRIMARY KEY,
            seen_at TEXT NOT NULL
        );
        CREATE INDEX platform_events_seen ON platform_events (seen_at);
        """,
    ),
    (
        "nudge leases: replicas take disjoint pages of due subscriptions",
        """
        ALTER TABLE subscriptions ADD COLUMN lease_by TEXT;
        ALTER TABLE subscriptions ADD COLUMN lease_until TEXT
        """,
    ),
    (
        "streaks read progress and reviews, which carry their own times: the activity copy goes",
        """
        DROP TABLE activity
        """,
    ),
    (
        "the miss log says whether the bot admitted or asked back, and which intents came closest",
        """
        ALTER TABLE unanswered ADD COLUMN outcome TEXT;
        ALTER TABLE unanswered ADD COLUMN near TEXT
        """,
    ),
    (
        "who asked each unanswered question, so `mydata` shows it and `forget me` takes it back; older rows stay unlinked",
        """
        CREATE TABLE unanswered_asks (
            member_id INTEGER NOT NULL REFERENCES members(id) ON DELETE CASCADE,
            question TEXT NOT NULL REFERENCES unanswered(text) ON DELETE CASCADE,
            count INTEGER NOT NULL,
            last_asked TEXT NOT NULL,
            PRIMARY KEY (member_id, question)
        );
        CREATE INDEX unanswered_asks_question ON unanswered_asks (question)
        """,
    ),
    # SM-2 to FSRS. Each card keeps its due date; with FSRS aiming at 90 % recall the
    # interval equals the stability, so stability = the SM-2 interval and the card falls
    # due exactly when it did. Difficulty from ease: 2.5 (SM-2's start, a card never
    # graded below good) -> 3 (FSRS gives 2.1 after a first 'good'); each 0.15 of ease
    # lost, about one 'hard', adds a point; clamped to FSRS's 1-10 (ease 1.3 -> 10).
    # Every converted card has passed a review, so it is in the review state (2); its
    # last review is the latest in `reviews`, which stays as it was (grades 1-4 are
    # FSRS's ratings).
    (
        "practice cards scheduled by FSRS: stability, difficulty, state and step replace SM-2's ease and repetitions",
        """
        ALTER TABLE cards ADD COLUMN state INTEGER NOT NULL DEFAULT 2;
        ALTER TABLE cards ADD COLUMN step INTEGER;
        ALTER TABLE cards ADD COLUMN stability REAL;
        ALTER TABLE cards ADD COLUMN difficulty REAL;
        ALTER TABLE cards ADD COLUMN last_review TEXT;
        UPDATE cards SET
            stability = interval_days,
            difficulty = CASE
                WHEN 3 + (2.5 - ease) / 0.15 < 1 THEN 1.0
                WHEN 3 + (2.5 - ease) / 0.15 > 10 THEN 10.0
                ELSE 3 + (2.5 - ease) / 0.15
            END,
            last_review = (
                SELECT MAX(r.reviewed_at) FROM reviews r WHERE r.member_id = cards.member_id AND r.question_id = cards.question_id
            );
        ALTER TABLE cards DROP COLUMN ease;
        ALTER TABLE cards DROP COLUMN interval_days;
        ALTER TABLE cards DROP COLUMN repetitions
        """,
    ),
    (
        "mock interviews: a member's open session (questions in order, grades so far), so it resumes after a break or a restart",
        """
        CREATE TABLE mock_sessions (
            member_id INTEGER PRIMARY KEY REFERENCES members(id) ON DELETE CASCADE,
            topic TEXT,
            questions TEXT NOT NULL,
            grades TEXT NOT NULL,
            started_at TEXT NOT NULL
        )
        """,
    ),
]


_MOCK_COLUMNS = "questions, grades, topic, started_at"


def _mock(row: tuple) -> MockSession:
    questions, grades, topic, started = row
    return MockSession(tuple(questions.split(",")), tuple(int(g) for g in grades.split(",") if g), topic, parse_time(started))


def _mock_grades(grades: Iterable[int]) -> str:
    return ",".join(map(str, grades))


async def _mock_of(db: Tx, member: int) -> MockSession | None:
    rows = list(await db.execute_fetchall(f"SELECT {_MOCK_COLUMNS} FROM mock_sessions WHERE member_id = ?", (member,)))
    return _mock(rows[0]) if rows else None


class Store(NudgeQueries):
    """Every query the bot makes, for any backend. Subclasses implement `open`, `close`,
    `_write` (one transaction: all of `work` lands, or none), `_read` and `_read_dicts`."""

    path: str
    dialect: str  # "sqlite" or "postgresql", for the rare statement that differs
    read_only = False  # the database refuses writes: answer from it, record no usage

    async def open(self, *, migrate: bool = True, check: bool = False) -> None:
        """Connect and bring the schema up to date (`migrate=False` leaves the database as
        it is, for inspecting it). With `check`, first refuse a database whose pages fail
        an integrity check (SQLite's quick_check; PostgreSQL verifies its own pages)."""
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError

    async def _write(self, work: Callable[[Tx], Awaitable[Any]]) -> Any:
        raise NotImplementedError

    async def _read(self, sql: str, params: tuple = ()) -> list[tuple]:
        raise NotImplementedError

    async def _read_dicts(self, sql: str, params: tuple = ()) -> list[dict[str, Any]]:
        raise NotImplementedError

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

    async def pending_action(self, key: str) -> str | None:
        return await self.member_field(key, "pending_action")

    async def set_pending_action(self, key: str, action: str | None) -> None:
        await self.set_member_field(key, "pending_action", action)

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

    async def record_command(self, key: str, command: str, now: dt.datetime) -> None:
        if self.read_only:  # usage counts are not worth refusing an answer over
            return

        async def work(db: Tx) -> None:
            member = await self._member_id(db, key, now)
            await db.execute("INSERT INTO command_log (member_id, command, at) VALUES (?, ?, ?)", (member, command, iso(now)))

        await self._write(work)

    async def record_unanswered(
        self, text: str, now: dt.datetime, *, member: str | None = None, outcome: str = "fallback", near: Iterable[str] = ()
    ) -> None:
        """Count a question the bot could not answer outright (`fallback`) or asked back
        about (`clarify`), normalised, with the intents it came closest to: what an editor
        needs to add the missing example. The admin list never says who asked; the
        member's own count in `unanswered_asks` is theirs, for `mydata` and `forget`."""
        normal = " ".join(text.lower().split())[:200]
        if not normal or self.read_only:
            return
        near_text = ",".join(near)

        async def work(db: Tx) -> None:
            await db.execute(
                "INSERT INTO unanswered (text, count, last_seen, outcome, near) VALUES (?, 1, ?, ?, ?) "
                "ON CONFLICT (text) DO UPDATE SET count = unanswered.count + 1, last_seen = excluded.last_seen, "
                "outcome = excluded.outcome, near = excluded.near",
                (normal, iso(now), outcome, near_text),
            )
            if member is not None:
                await db.execute(
                    "INSERT INTO unanswered_asks (member_id, question, count, last_asked) VALUES (?, ?, 1, ?) "
                    "ON CONFLICT (member_id, question) DO UPDATE SET count = unanswered_asks.count + 1, last_asked = excluded.last_asked",
                    (await self._member_id(db, member, now), normal, iso(now)),
                )

        await self._write(work)

    async def unanswered(self, limit: int) -> list[Unanswered]:
        rows = await self._read(
            "SELECT text, count, last_seen, outcome, near FROM unanswered ORDER BY count DESC, last_seen DESC LIMIT ?", (limit,)
        )
        return [Unanswered(r[0], r[1], parse_time(r[2]), r[3] or "fallback", tuple(filter(None, (r[4] or "").split(",")))) for r in rows]

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


class SqliteStore(Store):
    """The store in one SQLite file (or `:memory:`)."""

    dialect = "sqlite"

    def __init__(self, path: str):
        self.path = path
        self._db: Tx | None = None
        # One connection serves every coroutine: a transaction must not interleave with
        # another's statements, so writes and reads take turns.
        self._lock = asyncio.Lock()

    # --- lifecycle --------------------------------------------------------------------

    async def open(self, *, migrate: bool = True, check: bool = False) -> None:
        """Connect, set the pragmas, check and migrate. Any failure closes what was opened,
        so no worker thread outlives it (a live one keeps the process from exiting)."""
        if self.path != ":memory:" and not self._is_uri:
            self._prepare_location()
        try:
            self._db = await self._connect()
            await self._db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            self.read_only = await self._refuses_writes()
            if self.read_only:
                log.warning("The database %s is read-only: answering from it, saving nothing.", self.path)
            else:
                await self._use_wal()
            await self._db.execute("PRAGMA synchronous = FULL")
            await self._db.execute("PRAGMA foreign_keys = ON")
            if check and (problems := await self.quick_check()):
                raise StoreError(
                    f"The database {self.path} failed its integrity check ({problems[0]}; {len(problems)} problem(s) in all), so mlbot won't write to it. "
                    "Restore it from a backup (`mlbot db backup` makes one); `mlbot db check` lists the problems."
                )
            if migrate:
                await self._migrate()
        except BaseException as exc:
            await self.close()
            if isinstance(exc, sqlite3.Error):
                raise StoreError(self._explain(exc)) from None
            raise

    def _prepare_location(self) -> None:
        """Create the file's folder; refuse a directory in the file's place."""
        path = Path(self.path)
        try:
            is_dir = path.is_dir()
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(self._explain(exc)) from None
        if is_dir:
            raise StoreError(f"{self.path} is a directory, not a database file. Point MLBOT_DB or --db at a file, e.g. {path / 'mlbot.sqlite3'}.")

    async def _connect(self) -> aiosqlite.Connection:
        """Open the file first, then hand the connection to aiosqlite: when aiosqlite's own
        open fails, its worker thread reports back after `asyncio.run` may have closed
        the loop ("Event loop is closed"). A connection handed over can't fail to open."""
        conn = await asyncio.to_thread(
            sqlite3.connect, self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False, uri=self._is_uri
        )
        return await aiosqlite.Connection(lambda: conn, iter_chunk_size=64)

    @property
    def _is_uri(self) -> bool:
        """`file:` URIs reach SQLite as such, e.g. `file:/data/mlbot.sqlite3?mode=ro`."""
        return self.path.startswith("file:")

    async def _refuses_writes(self) -> bool:
        """Whether SQLite won't write here (a read-only file, folder or mount, or `mode=ro`):
        rewrite the schema version unchanged, and undo it."""
        db = self._conn
        await db.execute("BEGIN IMMEDIATE")
        try:
            version = (await (await db.execute("PRAGMA user_version")).fetchone())[0]
            await db.execute(f"PRAGMA user_version = {version}")
            return False
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorname.startswith("SQLITE_READONLY"):
                return True
            raise
        finally:
            await self._rollback()

    async def _use_wal(self) -> None:
        """Switch to WAL. Two processes opening a new file at once make SQLite refuse
        the switch at once ("database is locked", no busy wait), so retry for up to the
        busy timeout."""
        deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
        while True:
            try:
                await self._conn.execute("PRAGMA journal_mode = WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.01)

    async def close(self) -> None:
        if self._db is not None:
            db, self._db = self._db, None
            await db.close()

    def _explain(self, exc: BaseException) -> str:
        text = str(exc).lower()
        if "not a database" in text or "malformed" in text:
            return f"The database file {self.path} is not a SQLite database (or is damaged). Point MLBOT_DB or --db at another file, or move this one away."
        if "full" in text:
            return f"The database {self.path} could not be written: its disk is full (or the file reached its size limit), so nothing was saved. Free some space and try again."
        if "locked" in text or "busy" in text:
            return f"The database {self.path} stayed locked by another process for over {BUSY_TIMEOUT_MS // 1000} s. Try again in a moment; if it persists, stop the other mlbot process."
        if "readonly" in text or "unable to open" in text or "permission" in text or "read-only" in text:
            return f"Can't write the database {self.path}. Check that its folder exists and is writable, or point MLBOT_DB or --db elsewhere."
        return f"The database {self.path} can't be used ({exc}). Point MLBOT_DB or --db at another file."

    async def _migrate(self) -> None:
        db = self._conn
        version = (await (await db.execute("PRAGMA user_version")).fetchone())[0]
        if version > len(MIGRATIONS):
            raise StoreError(
                f"The database {self.path} was made by a newer mlbot (schema {version}, this one knows {len(MIGRATIONS)}). Upgrade mlbot or use another file."
            )
        if self.read_only and version < len(MIGRATIONS):
            raise StoreError(
                f"The database {self.path} is read-only and needs upgrading (schema {version} to {len(MIGRATIONS)}). Open it writable once, or point MLBOT_DB or --db at an upgraded copy."
            )
        for number, (_, sql) in enumerate(MIGRATIONS[version:], start=version + 1):
            await db.execute("BEGIN IMMEDIATE")
            try:
                current = (await (await db.execute("PRAGMA user_version")).fetchone())[0]
                if current < number:  # another process may have migrated meanwhile
                    await _run_script(db, sql)
                    await db.execute(f"PRAGMA user_version = {number}")
                await db.execute("COMMIT")
            except BaseException:
                await self._rollback()
                raise

    @property
    def _conn(self) -> aiosqlite.Connection:
        if self._db is None:
            raise StoreError(f"The database {self.path} is not open.")
        return self._db

    async def _write(self, work: Callable[[Tx], Awaitable[Any]]) -> Any:
        """Run `work` in one immediate transaction: all of it lands, or none."""
        db = self._conn
        if self.read_only:
            raise StoreError(
                f"Nothing can be saved right now: the database {self.path} is read-only (reading still works). "
                "Make it writable, or point MLBOT_DB or --db at a writable copy."
            )
        async with self._lock:
            try:
                await db.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise StoreError(self._explain(exc)) from None
            try:
                result = await work(db)
                await db.execute("COMMIT")
                return result
            except sqlite3.Error as exc:
                await self._rollback()
                log.error("A write to the database %s failed: %s", self.path, exc)
                raise StoreError(self._explain(exc)) from None
            except BaseException:
                await self._rollback()
                raise

    async def _rollback(self) -> None:
        """Undo the open transaction, if there still is one: after some errors (disk full,
        I/O) SQLite has rolled back itself, and a second ROLLBACK would fail and hide the
        error that matters."""
        db = self._conn
        if not db.in_transaction:
            return
        try:
            await db.execute("ROLLBACK")
        except sqlite3.Error as exc:
            log.error("Rolling back a failed write to the database %s failed too: %s", self.path, exc)

    async def quick_check(self) -> list[str]:
        """SQLite's `PRAGMA quick_check` (every page and b-tree, not index contents; linear
        in the file's size): the problems found, none when the file is sound."""
        async with self._lock:
            try:
                rows = await self._conn.execute_fetchall("PRAGMA quick_check")
            except sqlite3.DatabaseError as exc:  # damage bad enough stops the check itself
                return [str(exc)]
        problems = [row[0] for row in rows]
        return [] if problems == ["ok"] else problems

    async def backup(self, dest: str) -> None:
        """A consistent copy of the live database at `dest`, by SQLite's online backup API
        (one snapshot; writers in other processes carry on). It is written beside `dest`
        and renamed into place, so `dest` never holds half a copy."""
        target = Path(dest)
        if target.is_dir():
            raise StoreError(f"{dest} is a directory; name the backup file, e.g. {target / 'mlbot-backup.sqlite3'}.")
        if self.path != ":memory:" and target.resolve() == Path(self.path).resolve():
            raise StoreError(f"{dest} is the database itself; name another file for the backup.")
        partial = target.with_name(target.name + ".partial")
        try:
            copy = await asyncio.to_thread(sqlite3.connect, partial, check_same_thread=False)
            try:
                async with self._lock:  # not in the middle of another coroutine's transaction
                    await self._conn.backup(copy)
            finally:
                copy.close()
            os.replace(partial, target)
        except (sqlite3.Error, OSError) as exc:
            partial.unlink(missing_ok=True)
            raise StoreError(f"Can't write the backup {dest} ({exc}). Check that its folder exists and is writable.") from None

    async def _read(self, sql: str, params: tuple = ()) -> list[tuple]:
        try:
            async with self._lock:
                return list(await self._conn.execute_fetchall(sql, params))
        except sqlite3.Error as exc:
            raise StoreError(self._explain(exc)) from None

    async def _read_dicts(self, sql: str, params: tuple = ()) -> list[dict[str, Any]]:
        try:
            async with self._lock:
                cursor = await self._conn.execute(sql, params)
                columns = [c[0] for c in cursor.description]
                return [dict(zip(columns, row)) for row in await cursor.fetchall()]
        except sqlite3.Error as exc:
            raise StoreError(self._explain(exc)) from None



PERSONAL_TABLES = ("progress", "cards", "reviews", "command_log", "subscriptions", "sends", "unanswered_asks", "mock_sessions")


async def _run_script(db: Tx, sql: str) -> None:
    """Run a migration's statements one by one inside the open transaction
    (`executescript` would commit first)."""
    for statement in sql.split(";"):
        if statement.strip():
            await db.execute(statement)


def is_postgres(target: str) -> bool:
    return target.startswith(("postgresql://", "postgres://"))


def make_store(target: str) -> Store:
    """A SQLite file path (or `:memory:`), or a `postgresql://` URL."""
    if is_postgres(target):
        from bot.store_pg import PostgresStore

        return PostgresStore(target)
    return SqliteStore(target)


@asynccontextmanager
async def open_store(target: str, *, migrate: bool = True, check: bool = False) -> AsyncIterator[Store]:
    store = make_store(target)
    await store.open(migrate=migrate, check=check)
    try:
        yield store
    finally:
        await store.close()
