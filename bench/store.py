"""Store speed: acknowledged progress writes through the store against a bare sqlite3
insert loop with the same durability settings (WAL, synchronous=FULL, one commit per
write), and `progress` reads for one member among 100,000. One `name: value unit` a line.

    python bench/store.py
"""
from __future__ import annotations

import asyncio
import datetime as dt
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.content import load_content  # noqa: E402
from bot.core import Core  # noqa: E402
from bot.messages import Message  # noqa: E402
from bot.store import iso, open_store  # noqa: E402

WRITES = 2000
MEMBERS = 100_000
READS = 2000


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def report(name: str, samples: list[float], elapsed: float | None = None) -> None:
    print(f"{name}.p50: {percentile(samples, 0.5):.0f} us")
    print(f"{name}.p99: {percentile(samples, 0.99):.0f} us")
    if elapsed is not None:
        print(f"{name}.throughput: {len(samples) / elapsed:.0f} writes/s")


async def store_writes(path: Path) -> tuple[list[float], float]:
    now = dt.datetime.now(dt.timezone.utc)
    samples = []
    async with open_store(str(path)) as store:
        start = time.perf_counter()
        for n in range(WRITES):
            t = time.perf_counter_ns()
            await store.mark_done(f"bench:m{n % 100}", "course", f"c{n}", now)
            samples.append((time.perf_counter_ns() - t) / 1000)
        return samples, time.perf_counter() - start


def bare_writes(path: Path) -> tuple[list[float], float]:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = FULL")
    db.execute("CREATE TABLE progress (member TEXT, item TEXT, done_at TEXT, PRIMARY KEY (member, item))")
    samples = []
    start = time.perf_counter()
    for n in range(WRITES):
        t = time.perf_counter_ns()
        db.execute("BEGIN IMMEDIATE")
        db.execute("INSERT INTO progress VALUES (?, ?, ?)", (f"m{n % 100}", f"c{n}", "2026-01-01"))
        db.execute("COMMIT")
        samples.append((time.perf_counter_ns() - t) / 1000)
    elapsed = time.perf_counter() - start
    db.close()
    return samples, elapsed


def populate(path: Path, content) -> None:
    """100,000 members, each with some steps done, cards and reviews."""
    async def create() -> None:
        async with open_store(str(path)):
            pass

    asyncio.run(create())
    db = sqlite3.connect(path)
    stamp = iso(dt.datetime(2026, 11, 1, tzinfo=dt.timezone.utc))
    steps, questions = list(content.path_steps), list(content.questions)
    db.executemany(
        "INSERT INTO members (id, platform, user_id, created_at, last_seen) VALUES (?, 'bench', ?, ?, ?)",
        ((i, f"u{i}", stamp, stamp) for i in range(1, MEMBERS + 1)),
    )
    db.executemany("INSERT INTO progress VALUES (?, 'step', ?, ?)", ((i, steps[j], stamp) for i in range(1, MEMBERS + 1) for j in range(i % 4)))
    db.executemany(
        "INSERT INTO cards (member_id, question_id, state, stability, difficulty, due_at, last_review, reviews, lapses, last_grade) "
        "VALUES (?, ?, 2, 6.0, 3.0, ?, ?, 2, 0, 3)",
        ((i, questions[(i + j) % len(questions)], stamp, stamp) for i in range(1, MEMBERS + 1) for j in range(3)),
    )
    db.executemany("INSERT INTO reviews (member_id, question_id, grade, reviewed_at) VALUES (?, ?, 3, ?)", ((i, questions[i % len(questions)], stamp) for i in range(1, MEMBERS + 1)))
    db.commit()
    db.close()


async def progress_reads(path: Path, content) -> tuple[list[float], list[float]]:
    """The reads behind `progress` alone, and the whole `progress` command through the core."""
    async with open_store(str(path)) as store:
        core = Core(content, store=store)
        reads, whole = [], []
        for n in range(READS):
            key = f"bench:u{1 + (n * 7919) % MEMBERS}"
            t = time.perf_counter_ns()
            await store.done_items(key)
            await store.cards(key)
            await store.review_grades(key)
            await store.activity_times(key)
            await store.timezone(key)
            reads.append((time.perf_counter_ns() - t) / 1000)
            t = time.perf_counter_ns()
            await core.handle(Message("bench", key.split(":", 1)[1], "progress"))
            whole.append((time.perf_counter_ns() - t) / 1000)
        return reads, whole


def main() -> None:
    content = load_content()
    with tempfile.TemporaryDirectory() as tmp:
        samples, elapsed = asyncio.run(store_writes(Path(tmp) / "writes.sqlite3"))
        report("store.write", samples, elapsed)
        floor, floor_elapsed = bare_writes(Path(tmp) / "bare.sqlite3")
        report("store.write.floor", floor, floor_elapsed)
        print(f"store.write.ratio_p50: {percentile(samples, 0.5) / percentile(floor, 0.5):.1f} x")
        populated = Path(tmp) / "members.sqlite3"
        populate(populated, content)
        reads, whole = asyncio.run(progress_reads(populated, content))
        report(f"store.progress_reads.{MEMBERS}_members", reads)
        report(f"core.progress_command.{MEMBERS}_members", whole)


if __name__ == "__main__":
    main()
