"""Nudge fan-out: 10,000 subscribed members due in the same minute, sent through a fake
sender that takes 1 ms per message (asyncio.sleep(0.001)), `CONCURRENCY` at a time.

Prints one line per figure, `name: value unit`:
- the floor: the bare fake-sender loop at the same concurrency (no database);
- the scheduler's total time for the batch, and nudges per second;
- its own overhead per nudge (claim + render + mark, the send excluded): per nudge of
  wall time (total minus floor, divided by the count); p50/p99 in microseconds inside
  the batch (which includes queueing behind the other workers for the one connection);
  and p50/p99 uncontended, from `--solo` more members sent one at a time.

Run: python bench/nudges.py [--members N] [--concurrency C] [--db PATH]
"""
from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot import nudges  # noqa: E402
from bot.content import load_content  # noqa: E402
from bot.delivery import Delivery  # noqa: E402
from bot.replies import Reply  # noqa: E402
from bot.nudge_schedule import Schedule  # noqa: E402
from bot.scheduler import Scheduler  # noqa: E402
from bot.store import open_store  # noqa: E402

UTC = dt.timezone.utc
DUE = dt.datetime(2026, 3, 30, 7, 0, tzinfo=UTC)


class SlowSender:
    def __init__(self, platform: str = "bench") -> None:
        self.platform = platform
        self.sent = 0

    async def send_direct(self, user_id: str, reply: Reply) -> Delivery:
        await asyncio.sleep(0.001)
        self.sent += 1
        return Delivery.SENT


async def floor(members: int, concurrency: int) -> float:
    sender = SlowSender()
    reply = Reply(text="x")
    queue = iter(range(members))

    async def worker() -> None:
        for n in queue:
            await sender.send_direct(str(n), reply)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started


async def seed(store, members: int, platform: str = "bench") -> None:
    """`members` members subscribed for Monday 09:00 Berlin three days before DUE, so all
    are due at DUE (`Store.subscribe_many`)."""
    berlin = Schedule(0, dt.time(9), "Europe/Berlin")
    await store.subscribe_many([(f"{platform}:u{n}", berlin) for n in range(members)], DUE - dt.timedelta(days=3))


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--solo", type=int, default=1_000, help="members sent one at a time, for the uncontended overhead")
    parser.add_argument("--db", help="SQLite file (default: a temporary one)")
    args = parser.parse_args()
    content = load_content()
    with tempfile.TemporaryDirectory() as tmp:
        path = args.db or str(Path(tmp) / "bench.sqlite3")
        async with open_store(path) as store:
            await seed(store, args.members)
            bare = await floor(args.members, args.concurrency)
            sender = SlowSender()
            timing: list[float] = []
            limiter = nudges.RateLimiter({"bench": None})
            now = DUE + dt.timedelta(seconds=30)
            started = time.perf_counter()
            scheduler = Scheduler(store, content, {"bench": sender}, lambda: now, limiter, scheduler_id="bench", concurrency=args.concurrency)
            summary = await scheduler.run_once(now, timing=timing)
            total = time.perf_counter() - started
            # the same work one nudge at a time: the scheduler's own cost without queueing
            # behind the other workers for the shared connection
            await seed(store, args.solo, "solo")
            solo_timing: list[float] = []
            solo = await Scheduler(store, content, {"solo": SlowSender("solo")}, lambda: now, nudges.RateLimiter({"solo": None}),
                                   scheduler_id="bench", concurrency=1).run_once(now, timing=solo_timing)
            assert solo.sent == args.solo, solo
    assert summary.sent == args.members == sender.sent, summary
    def pct(values: list[float], q: float) -> float:
        ordered = sorted(v * 1e6 for v in values)
        return ordered[min(len(ordered) - 1, int(len(ordered) * q))]

    print(f"members: {args.members} nudges")
    print(f"concurrency: {args.concurrency} sends")
    print(f"floor_bare_sender_loop: {bare:.3f} s")
    print(f"scheduler_total: {total:.3f} s")
    print(f"scheduler_throughput: {args.members / total:.0f} nudges/s")
    print(f"overhead_wall_per_nudge: {(total - bare) / args.members * 1e6:.0f} us")
    print(f"overhead_per_nudge_p50_in_batch: {pct(timing, 0.5):.0f} us")
    print(f"overhead_per_nudge_p99_in_batch: {pct(timing, 0.99):.0f} us")
    print(f"overhead_per_nudge_p50_uncontended: {pct(solo_timing, 0.5):.0f} us")
    print(f"overhead_per_nudge_p99_uncontended: {pct(solo_timing, 0.99):.0f} us")
    print(f"summary: {summary.line()}")


if __name__ == "__main__":
    asyncio.run(main())
