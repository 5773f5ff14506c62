"""The store keeps every acknowledged write, survives kill -9, shares a file between
processes, migrates old databases, and explains a bad database in one sentence."""
from __future__ import annotations

import datetime as dt
import os
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from bot.srs import retrievability, schedule
from bot.store import MIGRATIONS, PERSONAL_TABLES, MemberContext, MessageRecord, Outcome, StoreError, iso, open_store

T0 = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.timezone.utc)


def test_fsrs_gives_each_grade_of_a_new_card_its_own_interval() -> None:
    """again and hard stay in the 10-minute learning step; good and easy move to days."""
    waits = {grade: schedule(None, "q", grade, T0).due_at - T0 for grade in (1, 2, 3, 4)}
    assert (waits[1], waits[2]) == (dt.timedelta(minutes=10), dt.timedelta(minutes=15))
    assert dt.timedelta(days=1) <= waits[3] < waits[4]
    easy = schedule(None, "q", 4, T0)
    assert (easy.state, easy.step, easy.reviews, easy.lapses, easy.last_review) == (2, None, 1, 0, T0)


def test_fsrs_intervals_grow_with_good_grades_and_a_lapse_relearns() -> None:
    state = schedule(None, "q", 3, T0)
    intervals = []
    for _ in range(3):
        now = state.due_at
        state = schedule(state, "q", 3, now)
        intervals.append(state.due_at - now)
    assert intervals == sorted(intervals) and intervals[0] < intervals[-1]
    lapse = schedule(state, "q", 1, state.due_at)
    assert (lapse.state, lapse.lapses, lapse.due_at - state.due_at) == (3, 1, dt.timedelta(minutes=10))
    assert lapse.stability < state.stability and lapse.difficulty > state.difficulty


def test_retrievability_falls_as_a_card_waits() -> None:
    state = schedule(None, "q", 3, T0)
    at_due = retrievability(state, state.due_at)
    assert at_due == pytest.approx(0.9, abs=0.02) and retrievability(state, state.due_at + dt.timedelta(days=30)) < at_due


async def test_not_a_database_is_one_sentence(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("this is not sqlite " * 100)
    with pytest.raises(StoreError, match=r"notes.txt is not a SQLite database"):
        async with open_store(str(path)):
            pass


async def test_unwritable_location_is_one_sentence(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StoreError, match="Point MLBOT_DB or --db"):
        async with open_store(str(blocker / "sub" / "db.sqlite3")):
            pass


async def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "future.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 5}")
    with pytest.raises(StoreError, match="newer mlbot"):
        async with open_store(str(path)):
            pass


async def test_migrating_a_first_version_database_loses_nothing(tmp_path: Path) -> None:
    """A database made with only the first migration opens, upgrades and keeps its rows."""
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as db:
        db.executescript(MIGRATIONS[0][1])
        db.execute("PRAGMA user_version = 1")
        db.execute("INSERT INTO members (platform, user_id, created_at, last_seen) VALUES ('console', 'old', '2026-01-01T00:00:00+00:00', '2026-01-01T00:00:00+00:00')")
        db.execute("INSERT INTO progress VALUES (1, 'step', 'python-fundamentals', '2026-01-02T00:00:00+00:00')")
    async with open_store(str(path)) as store:
        assert "python-fundamentals" in (await store.done_items("console:old"))["step"]
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)


SM2_SCHEMA = 7  # the last schema whose cards SM-2 scheduled


async def _sm2_database(target: str, rows: list[str]) -> None:
    """A database at schema SM2_SCHEMA holding `rows` (SQL inserts), on either backend."""
    if target.startswith("postgresql://"):
        import asyncpg

        from bot.store.postgres import migration_ddl

        conn = await asyncpg.connect(target)
        try:
            await conn.execute("CREATE TABLE schema_version (version BIGINT NOT NULL)")
            for number, (_, sql) in enumerate(MIGRATIONS[:SM2_SCHEMA], start=1):
                for statement in migration_ddl(sql).split(";"):
                    if statement.strip():
                        await conn.execute(statement)
                await conn.execute("INSERT INTO schema_version (version) VALUES ($1)", number)
            for row in rows:
                await conn.execute(row)
        finally:
            await conn.close()
        return
    with sqlite3.connect(target) as db:
        for _, sql in MIGRATIONS[:SM2_SCHEMA]:
            db.executescript(sql)
        db.execute(f"PRAGMA user_version = {SM2_SCHEMA}")
        for row in rows:
            db.execute(row)


async def test_sm2_cards_become_fsrs_cards_due_when_they_were(db_target: str) -> None:
    """Migration 8: each SM-2 card keeps its due date and reviews; stability is its interval,
    difficulty follows its ease; the next good review moves it further out."""
    reviewed, due = T0 - dt.timedelta(days=6), T0
    await _sm2_database(db_target, [
        "INSERT INTO members (id, platform, user_id, created_at, last_seen) VALUES (1, 'console', 'old', '2026-01-01T00:00:00+00:00', '2026-01-01T00:00:00+00:00')",
        f"INSERT INTO cards (member_id, question_id, ease, interval_days, repetitions, due_at, reviews, lapses, last_grade) VALUES (1, 'easy-one', 2.5, 6.0, 2, '{iso(due)}', 2, 0, 3)",
        f"INSERT INTO cards (member_id, question_id, ease, interval_days, repetitions, due_at, reviews, lapses, last_grade) VALUES (1, 'hard-one', 1.3, 1.0, 0, '{iso(due)}', 4, 2, 1)",
        f"INSERT INTO reviews (member_id, question_id, grade, reviewed_at) VALUES (1, 'easy-one', 3, '{iso(reviewed - dt.timedelta(days=1))}')",
        f"INSERT INTO reviews (member_id, question_id, grade, reviewed_at) VALUES (1, 'easy-one', 3, '{iso(reviewed)}')",
    ])
    async with open_store(db_target) as store:
        cards = await store.cards("console:old")
        assert len(await store.review_grades("console:old")) == 2
    easy, hard = cards["easy-one"], cards["hard-one"]
    assert (easy.due_at, easy.state, easy.stability, easy.difficulty, easy.last_review) == (due, 2, 6.0, pytest.approx(3.0), reviewed)
    assert (easy.reviews, easy.lapses, easy.last_grade) == (2, 0, 3)
    assert (hard.due_at, hard.stability, hard.difficulty, hard.last_review, hard.lapses) == (due, 1.0, 10.0, None, 2)
    assert retrievability(easy, due) == pytest.approx(0.9, abs=0.02)
    assert schedule(easy, "easy-one", 3, due).due_at - due > dt.timedelta(days=6)
    assert schedule(hard, "hard-one", 3, due).due_at > due


async def test_forget_leaves_no_row_of_the_member(db_target: str, core, clock) -> None:
    from bot.messages import Message

    for text in ("done python fundamentals", "practice", "reveal", "good", "progress"):
        await core.handle(Message("console", "gone", text))
    await core.handle(Message("console", "stays", "done python fundamentals"))
    await core.handle(Message("console", "gone", "forget me"))
    reply = await core.handle(Message("console", "gone", "yes"))
    assert "deleted everything" in reply.text
    assert await core.store.member_keys("gone") == [] and await core.store.export("console:gone") == {}
    for table in PERSONAL_TABLES:  # and no row left behind without its member
        assert await _scalar(db_target, f"SELECT COUNT(*) FROM {table} WHERE member_id NOT IN (SELECT id FROM members)") == 0, table
    assert await _scalar(db_target, "SELECT COUNT(*) FROM progress") == 1  # the other member keeps theirs


async def _scalar(target: str, sql: str):
    """One value, read on a connection of the test's own (never the store's)."""
    from bot.store import is_postgres

    if not is_postgres(target):
        with sqlite3.connect(target) as db:
            return db.execute(sql).fetchone()[0]
    import asyncpg

    conn = await asyncpg.connect(target)
    try:
        return await conn.fetchval(sql)
    finally:
        await conn.close()


WRITER = textwrap.dedent(
    """
    import asyncio, datetime as dt, sys
    from bot.store import open_store

    async def main(path, prefix, count):
        async with open_store(path) as store:
            now = dt.datetime.now(dt.timezone.utc)
            for n in range(count):
                await store.mark_done(f"console:{prefix}{n % 50}", "course", f"c{n}", now)
                print(f"{prefix}{n % 50} c{n}", flush=True)

    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
    """
)


def _writer(path: Path, prefix: str, count: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", WRITER, str(path), prefix, str(count)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.parametrize("run", range(6))
def test_acknowledged_writes_survive_sigkill(tmp_path: Path, run: int) -> None:
    """Every write the child printed as committed is in the database after kill -9."""
    path = tmp_path / "durable.sqlite3"
    child = _writer(path, "m", 1_000_000)
    deadline = time.monotonic() + random.Random(run).uniform(0.4, 1.5)
    acked: list[str] = []
    while time.monotonic() < deadline:
        line = child.stdout.readline()
        if line:
            acked.append(line.split())
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    assert acked, child.stderr.read()
    db = sqlite3.connect(path)
    stored = {(u, i) for u, i in db.execute("SELECT m.user_id, p.item_id FROM progress p JOIN members m ON m.id = p.member_id")}
    missing = [a for a in acked if (a[0], a[1]) not in stored]
    assert not missing


def test_two_processes_write_one_file_without_lock_errors(tmp_path: Path) -> None:
    path = tmp_path / "shared.sqlite3"
    first, second = _writer(path, "a", 1500), _writer(path, "b", 1500)
    out1, err1 = first.communicate(timeout=120)
    out2, err2 = second.communicate(timeout=120)
    assert first.returncode == 0 and second.returncode == 0, err1 + err2
    assert "locked" not in err1 + err2
    db = sqlite3.connect(path)
    assert db.execute("SELECT COUNT(*) FROM progress").fetchone()[0] == 3000


async def test_concurrent_messages_share_one_store(core) -> None:
    """Many members talking at once (normal on Slack) never collide in the store."""
    import asyncio

    from bot.messages import Message

    replies = await asyncio.gather(*(core.handle(Message("slack", f"T1:U{i}", "done python fundamentals")) for i in range(20)))
    assert all("Marked done" in r.text for r in replies)


async def test_an_event_id_is_answered_once_across_replicas(db_target) -> None:
    """Two replicas (two stores on one database) asking about the same event: one wins."""
    async with open_store(db_target) as one, open_store(db_target) as two:
        assert await one.first_time("slack:Ev1", T0)
        assert not await two.first_time("slack:Ev1", T0)
        assert await two.first_time("slack:Ev2", T0)
        assert await one.first_time("slack:Ev1", T0 + dt.timedelta(hours=3))  # long forgotten


def test_processes_opening_a_new_database_at_once_all_succeed(tmp_path: Path) -> None:
    """SQLite refuses a concurrent switch to WAL without waiting; opening retries it."""
    script = textwrap.dedent(
        """
        import asyncio, sys
        from bot.store import open_store

        async def main():
            async with open_store(sys.argv[1]):
                pass

        asyncio.run(main())
        """
    )
    for attempt in range(5):
        path = tmp_path / f"fresh-{attempt}.sqlite3"
        procs = [subprocess.Popen([sys.executable, "-c", script, str(path)], stderr=subprocess.PIPE, text=True) for _ in range(4)]
        errors = [p.communicate(timeout=60)[1] for p in procs]
        assert all(p.returncode == 0 for p in procs), errors


def _aiosqlite_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if "_connection_worker_thread" in t.name or type(t).__module__.startswith("aiosqlite")]


@pytest.mark.parametrize("case", ["newer schema", "unopenable"])
async def test_a_failed_open_leaves_no_connection_thread(tmp_path: Path, case: str) -> None:
    """A live aiosqlite thread would keep the process from exiting after the error."""
    if case == "newer schema":
        path = tmp_path / "future.sqlite3"
        with sqlite3.connect(path) as db:
            db.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    else:
        path = tmp_path / "link.sqlite3"
        path.symlink_to(tmp_path / "missing" / "db.sqlite3")  # SQLite follows it and can't create the file
    before = _aiosqlite_threads()
    with pytest.raises(StoreError):
        async with open_store(str(path)):
            pass
    for thread in _aiosqlite_threads():
        if thread not in before:
            thread.join(timeout=10)  # a stopping thread may take a moment; a leaked one never ends
            assert not thread.is_alive()


async def test_postgres_newer_schema_closes_its_pool(postgres_url: str) -> None:
    import asyncpg

    from bot.store import make_store

    conn = await asyncpg.connect(postgres_url)
    try:
        await conn.execute("CREATE TABLE schema_version (version BIGINT NOT NULL)")
        await conn.execute("INSERT INTO schema_version VALUES ($1)", len(MIGRATIONS) + 1)
    finally:
        await conn.close()
    store = make_store(postgres_url)
    with pytest.raises(StoreError, match="newer mlbot"):
        await store.open()
    assert store._pool is None


async def test_a_directory_is_named_as_one(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    with pytest.raises(StoreError, match=r"data is a directory, not a database file\. .*data/mlbot\.sqlite3"):
        async with open_store(str(tmp_path / "data")):
            pass


FILL_THE_DISK = textwrap.dedent(
    """
    import asyncio, datetime as dt, logging, sys
    from pathlib import Path
    from bot.store import StoreError, open_store

    logging.basicConfig(level=logging.INFO, format="log %(name)s: %(message)s")
    T0 = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.timezone.utc)

    async def main(folder):
        async with open_store(str(folder / "full.sqlite3")) as store:
            filler = folder / "filler"
            with open(filler, "wb", buffering=0) as out:  # take every free byte
                try:
                    while True:
                        out.write(bytes(65536))
                except OSError:
                    pass
            try:
                for n in range(100):
                    await store.mark_done(f"console:u{n}", "course", "c" * 3000, T0)
            except StoreError as exc:
                print(f"refused: {exc}", f"member: {exc.member}", sep="\\n", flush=True)
            filler.unlink()  # space again
            print("after:", await store.mark_done("console:after", "course", "c", T0), flush=True)

    asyncio.run(main(Path(sys.argv[1])))
    """
)


def _on_a_small_disk(folder: Path, *command: str) -> subprocess.CompletedProcess:
    """Run `command` with a 1 MB tmpfs mounted on `folder`, in a mount namespace of its
    own (a user namespace too, so no root is needed where those are allowed)."""
    folder.mkdir(exist_ok=True)
    mount = 'mount -t tmpfs -o size=1m tmpfs "$0" && exec "$@"'
    return subprocess.run(["unshare", "--map-root-user", "--mount", "sh", "-c", mount, str(folder), *command],
                          capture_output=True, text=True, timeout=60)


def test_a_full_disk_is_reported_once_and_the_store_recovers(tmp_path: Path) -> None:
    """On a disk that is really full: SQLite rolls back by itself on SQLITE_FULL, and the
    store's own ROLLBACK must not then fail and hide the real error; once there is space
    again, the store writes."""
    disk = tmp_path / "disk"
    if shutil.which("unshare") is None or _on_a_small_disk(disk, "true").returncode != 0:
        pytest.skip("no small disk here: unshare can't mount a tmpfs (user or mount namespaces not allowed)")
    result = _on_a_small_disk(disk, sys.executable, "-c", FILL_THE_DISK, str(disk))
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    refused, member, after = result.stdout.splitlines()
    assert re.fullmatch(r"refused: The database .*full\.sqlite3 could not be written: its disk is full.*", refused), refused
    assert member == "member: I couldn't save that right now; nothing was changed."  # what a member reads
    failures = [line for line in result.stderr.splitlines() if line.startswith("log bot.store")]
    assert len(failures) == 1 and "database or disk is full" in failures[0], result.stderr
    assert after == "after: True"  # the connection is not stuck in a transaction


async def _seeded(path: Path) -> None:
    async with open_store(str(path)) as store:
        await store.mark_done("console:ro", "step", "python-fundamentals", T0)


async def _answers_reads_and_refuses_writes(target: str, content, caplog: pytest.LogCaptureFixture) -> None:
    """`progress` and `salary` answer; a write fails with a StoreError that is one sentence,
    which the member reads as the reply."""
    from bot.core import Core
    from bot.messages import Message
    from bot.replies import render_text

    async with open_store(target) as store:
        assert store.read_only
        core = Core(content, store=store)
        assert "[x] Python fundamentals" in render_text(await core.handle(Message("console", "ro", "progress")))
        assert "$180,000" in render_text(await core.handle(Message("console", "ro", "salary senior")))
        with pytest.raises(StoreError, match=r"^Nothing can be saved right now: the database .* is read-only \(reading still works\)\. [^.]*\.$"):
            await store.mark_done("console:ro", "step", "statistics", T0)
        refused = await core.handle(Message("console", "ro", "done statistics"))
        assert refused.command == "error" and "reading still works" in refused.text and "error id" in refused.text
        assert str(store.path) not in refused.text  # the path is the operator's: one log line under the id
        error_id = refused.text.rsplit(" ", 1)[-1].rstrip(".")
        assert [r for r in caplog.records if error_id in r.getMessage() and "is read-only" in r.getMessage()]


async def test_a_database_opened_read_only_answers_reads(tmp_path: Path, content, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "ro.sqlite3"
    await _seeded(path)
    await _answers_reads_and_refuses_writes(f"file:{path}?mode=ro", content, caplog)
    with sqlite3.connect(path) as db:  # nothing was written, not even usage counts
        assert db.execute("SELECT COUNT(*) FROM command_log").fetchone()[0] == 0


def _without_root_override() -> list[str]:
    """A command prefix under which file permissions bind: root ignores them unless it
    drops CAP_DAC_OVERRIDE."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: a chmod 444 file stays writable")
    return ["setpriv", "--bounding-set=-dac_override"]


async def test_a_chmod_444_file_answers_reads_and_refuses_writes(tmp_path: Path) -> None:
    path = tmp_path / "ro.sqlite3"
    await _seeded(path)
    path.chmod(0o444)

    def ask(text: str) -> subprocess.CompletedProcess:
        command = [*_without_root_override(), sys.executable, "-m", "mlbot", "ask", "--db", str(path), "--user", "ro", text]
        return subprocess.run(command, capture_output=True, text=True, timeout=60)

    assert "[x] Python fundamentals" in ask("progress").stdout
    assert "$180,000" in ask("salary senior").stdout
    refused = ask("done statistics")
    assert refused.stdout.startswith("I can't save anything right now (reading still works)") and "Traceback" not in refused.stderr
    assert str(path) not in refused.stdout and "is read-only" in refused.stderr  # the detail is the log's
    path.chmod(0o644)
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT item_id FROM progress").fetchall() == [("python-fundamentals",)]


async def _unanswered(store, member: str, text: str, at: dt.datetime) -> None:
    """`text` from `member`, which the bot could not answer, recorded as the core records it."""
    await store.record_message(member, await store.member_context(member), MessageRecord(unanswered=text), at)


async def test_forget_takes_back_the_members_unanswered_questions(store) -> None:
    """Each member's unanswered questions are linked to them: `forget` deletes the links,
    a question only they asked leaves the admin list, and a shared one counts one less.
    (A row from before the links existed stays: see the schema 6 test below.)"""
    hour = dt.timedelta(hours=1)
    await _unanswered(store, "console:a", "only mine", T0)
    await _unanswered(store, "console:a", "Only  Mine", T0 + hour)
    await _unanswered(store, "console:a", "shared", T0)
    await _unanswered(store, "console:b", "shared", T0 + hour)
    asks = (await store.export("console:a"))["unanswered_asks"]
    assert sorted((a["question"], a["count"]) for a in asks) == [("only mine", 2), ("shared", 1)]
    assert {r.text: r.count for r in await store.unanswered(10)} == {"only mine": 2, "shared": 2}

    assert await store.forget("console:a") == 2 + 1 + 1  # two links, "only mine", the member
    assert {r.text: r.count for r in await store.unanswered(10)} == {"shared": 1}
    assert [a["question"] for a in (await store.export("console:b"))["unanswered_asks"]] == ["shared"]
    assert await store.export("console:a") == {}


async def test_the_admin_list_names_no_member(store) -> None:
    import dataclasses

    await store.record_message("discord:42", MemberContext(), MessageRecord(unanswered="flurble wibble zonk", outcome=Outcome.CLARIFY), T0)
    (row,) = await store.unanswered(10)
    assert [f.name for f in dataclasses.fields(row)] == ["text", "count", "last_seen", "outcome", "near"]
    assert "42" not in repr(row) and row.outcome is Outcome.CLARIFY


async def test_schema_6_keeps_its_unanswered_rows_on_both_backends(db_target: str) -> None:
    """A database from before migration 7 upgrades; its unanswered rows, which name no
    member, stay on the admin list, and new asks link to their member."""
    from bot.store import is_postgres

    legacy = "INSERT INTO unanswered (text, count, last_seen, outcome, near) VALUES ('old question', 3, '2026-01-01T00:00:00.000000+00:00', 'fallback', '')"
    if is_postgres(db_target):
        import asyncpg

        from bot.store.postgres import migration_ddl

        conn = await asyncpg.connect(db_target)
        try:
            for _, sql in MIGRATIONS[:6]:
                for statement in migration_ddl(sql).split(";"):
                    if statement.strip():
                        await conn.execute(statement)
            await conn.execute("CREATE TABLE schema_version (version BIGINT NOT NULL)")
            await conn.execute("INSERT INTO schema_version (version) VALUES (6)")
            await conn.execute(legacy)
        finally:
            await conn.close()
    else:
        with sqlite3.connect(db_target) as db:
            for _, sql in MIGRATIONS[:6]:
                db.executescript(sql)
            db.execute("PRAGMA user_version = 6")
            db.execute(legacy)
    async with open_store(db_target) as store:
        await _unanswered(store, "console:c", "old question", T0)
        assert [(r.text, r.count) for r in await store.unanswered(10)] == [("old question", 4)]
        await store.forget("console:c")
        assert [(r.text, r.count) for r in await store.unanswered(10)] == [("old question", 3)]
