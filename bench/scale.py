"""Nudge fan-out at scale: N members (default 100,000) due in the same minute, sent
through a fake sender that takes 1 ms per message (`--send-ms`), in one run:

- `scale.sqlite.1`: one scheduler replica on SQLite (a temporary file);
- `scale.pg.1`: one replica on PostgreSQL;
- `scale.pg.3`: three replicas (separate processes) on PostgreSQL, started together.

Each replica is a process running `Scheduler.run_once` once (this file with `--worker`),
`--concurrency` sends at a time, with `RateLimiter({"console": None})` so the fake
platform is not rate-limited; every sender appends the user ids it sent to its own file.
The send-bound ideal of one replica is `concurrency / send time` (400/s at 20 and 50 ms).
Prints one line per figure, `name: value unit`: throughput (members / wall time from the
first replica starting to the last one finishing), duplicates (DMs beyond one per
member, must be 0) and missing members (must be 0) per setup, the CPU the replicas
used (cores busy on average: with PostgreSQL on the same machine, what is left for
more replicas), and the PostgreSQL three-to-one throughput ratio.

PostgreSQL: a throwaway cluster from tests/pg_cluster.py (stopped at the end), or the
server named by MLBOT_TEST_POSTGRES (one fresh database per setup, dropped afterwards).

Run: python bench/scale.py [--members N] [--concurrency C] [--replicas R]
"""
from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from bot.delivery import Delivery  # noqa: E402
from bot.nudge_schedule import Schedule  # noqa: E402
from bot.rate_limit import RateLimiter  # noqa: E402
from bot.replies import Reply  # noqa: E402
from bot.scheduler import Scheduler  # noqa: E402
from bot.store import Store, open_store  # noqa: E402

UTC = dt.timezone.utc
DUE = dt.datetime(2026, 3, 30, 7, 0, tzinfo=UTC)  # every member: Monday 09:00 Europe/Berlin
NOW = DUE + dt.timedelta(seconds=30)


# --- a replica (a separate process) ---------------------------------------------------------


class SlowSender:
    """`seconds` per message; records who it sent to, for the duplicate count."""

    platform = "console"

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.users: list[str] = []

    async def send_direct(self, user_id: str, reply: Reply) -> Delivery:
        await asyncio.sleep(self.seconds)
        self.users.append(user_id)
        return Delivery.SENT


async def replica(target: str, name: str, sync: Path, concurrency: int, send_seconds: float) -> None:
    from bot.content import load_content

    content = load_content()
    sender = SlowSender(send_seconds)
    async with open_store(target) as store:
        (sync / f"ready-{name}").touch()
        while not (sync / "go").exists():  # start together
            await asyncio.sleep(0.001)
        started = time.time()
        cpu_started = time.process_time()
        scheduler = Scheduler(store, content, {"console": sender}, lambda: NOW, RateLimiter({"console": None}),
                              scheduler_id=name, concurrency=concurrency)
        summary = await scheduler.run_once(NOW)
        ended = time.time()
    (sync / f"sent-{name}.txt").write_text("\n".join(sender.users))
    print(json.dumps({"sent": summary.sent, "failed": summary.failed, "skipped": summary.skipped, "held": summary.waiting,
                      "started": started, "ended": ended, "cpu": time.process_time() - cpu_started}))


# --- the bench ------------------------------------------------------------------------------


async def seed(store: Store, members: int) -> None:
    """`members` members subscribed for Monday 09:00 Berlin three days before DUE, so all
    are due at DUE (`Store.subscribe_many`: a few statements per thousand)."""
    berlin = Schedule(0, dt.time(9), "Europe/Berlin")
    await store.subscribe_many([(f"console:u{n:06d}", berlin) for n in range(members)], DUE - dt.timedelta(days=3))


async def run_setup(label: str, target: str, members: int, replicas: int, concurrency: int, send_ms: float) -> dict:
    async with open_store(target) as store:
        await seed(store, members)
    with tempfile.TemporaryDirectory(prefix="mlbot-scale-") as tmp:
        sync = Path(tmp)
        names = [f"{label}-r{n + 1}" for n in range(replicas)]
        procs = [
            subprocess.Popen([sys.executable, __file__, "--worker", target, name, str(sync), str(concurrency), str(send_ms / 1000)],
                             cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for name in names
        ]
        while not all((sync / f"ready-{n}").exists() for n in names):
            if any(p.poll() is not None for p in procs):
                break
            await asyncio.sleep(0.005)
        (sync / "go").touch()
        results = []
        for proc in procs:
            stdout, stderr = await asyncio.to_thread(proc.communicate)
            if proc.returncode != 0:
                raise SystemExit(f"{label}: a replica failed:\n{stderr}")
            results.append(json.loads(stdout.strip().splitlines()[-1]))
        sent = [u for n in names for u in (sync / f"sent-{n}.txt").read_text().split()]
    async with open_store(target) as store:
        statuses = Counter(record.status for record in await store.sends())
    seconds = max(r["ended"] for r in results) - min(r["started"] for r in results)
    return {
        "seconds": seconds,
        "throughput": members / seconds,
        "duplicates": len(sent) - len(set(sent)),
        "missing": members - len(set(sent)),
        "rows_not_sent": sum(n for status, n in statuses.items() if status != "sent") + members - statuses.get("sent", 0),
        "sent_by_replica": [r["sent"] for r in results],
        "cpu_cores": sum(r["cpu"] for r in results) / seconds,
        "cpu_per_nudge": sum(r["cpu"] for r in results) / max(1, sum(r["sent"] for r in results)),
    }


async def fresh_database(server_url: str) -> tuple[str, str]:
    import asyncpg

    name = f"mlbot_scale_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(server_url)
    try:
        await admin.execute(f"CREATE DATABASE {name}")
    finally:
        await admin.close()
    return server_url.rsplit("/", 1)[0] + f"/{name}", name


async def drop_database(server_url: str, name: str) -> None:
    import asyncpg

    admin = await asyncpg.connect(server_url)
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        await admin.close()


def report(label: str, result: dict) -> None:
    print(f"scale.{label}.seconds: {result['seconds']:.1f} s", flush=True)
    print(f"scale.{label}.throughput: {result['throughput']:.0f} nudges/s", flush=True)
    print(f"scale.{label}.duplicates: {result['duplicates']} count", flush=True)
    print(f"scale.{label}.missing: {result['missing'] + result['rows_not_sent']} count", flush=True)
    print(f"scale.{label}.replica_cpu: {result['cpu_cores']:.2f} cores", flush=True)
    print(f"scale.{label}.cpu_per_nudge: {result['cpu_per_nudge'] * 1000:.2f} ms", flush=True)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--concurrency", type=int, default=20, help="sends in flight per replica (run_once's concurrency)")
    parser.add_argument("--replicas", type=int, default=3, help="replicas of the multi-replica PostgreSQL setup")
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument("--send-ms", type=float, default=1.0, help="the fake sender's time per message (a real DM API call takes ~100 ms)")
    args = parser.parse_args()
    import pg_cluster

    print(f"scale.members: {args.members} members", flush=True)
    print(f"scale.concurrency: {args.concurrency} per replica", flush=True)
    print(f"scale.machine_cores: {os.cpu_count()} cores", flush=True)
    print(f"scale.send_time: {args.send_ms:g} ms", flush=True)
    if not args.skip_sqlite:
        with tempfile.TemporaryDirectory(prefix="mlbot-scale-") as tmp:
            report("sqlite.1", await run_setup("sqlite", str(Path(tmp) / "scale.sqlite3"), args.members, 1, args.concurrency, args.send_ms))
    try:
        cluster = pg_cluster.start()
    except pg_cluster.Unavailable as exc:
        print(f"PostgreSQL unavailable, its setups not run: {exc}", file=sys.stderr)
        return
    try:
        results = {}
        for replicas in sorted({1, args.replicas}):
            target, name = await fresh_database(cluster.url)
            try:
                results[replicas] = await run_setup(f"pg{replicas}", target, args.members, replicas, args.concurrency, args.send_ms)
            finally:
                await drop_database(cluster.url, name)
            report(f"pg.{replicas}", results[replicas])
        many = results[args.replicas]
        print(f"scale.pg.{args.replicas}.ratio: {many['throughput'] / results[1]['throughput']:.2f} x")
        print(f"scale.pg.{args.replicas}.sent_per_replica: {'/'.join(str(n) for n in many['sent_by_replica'])} nudges")
    finally:
        cluster.stop()


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        target, name, sync, concurrency, send_seconds = sys.argv[2:7]
        asyncio.run(replica(target, name, Path(sync), int(concurrency), float(send_seconds)))
    else:
        asyncio.run(main())
