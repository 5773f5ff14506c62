"""The schema, as ordered migrations both backends run (PostgreSQL translates a few type
names, `bot.store.postgres.migration_ddl`), and the tables that hold a member's data."""
from __future__ import annotations

from bot.store.sql import Tx

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


PERSONAL_TABLES = ("progress", "cards", "reviews", "command_log", "subscriptions", "sends", "unanswered_asks", "mock_sessions")


async def run_script(db: Tx, sql: str) -> None:
    """Run a migration's statements one by one inside the open transaction
    (`executescript` would commit first)."""
    for statement in sql.split(";"):
        if statement.strip():
            await db.execute(statement)
