"""`mlbot nudges preview|due|run`: the nudge scheduler by hand, for operators and checks.

- `preview --user U`: the nudge U would get now (U is `alice` for the console member
  `console:alice`, or a full key such as `slack:T1:U2`), and when it is next due.
- `due --at ISO`: who is due at that instant (read-only), and whether they would be
  sent or skipped (older than the grace window).
- `run --once [--at ISO]`: send what is due (console members: printed), ending with the
  line `sent N, failed N, skipped N` (and `, held N` when another scheduler holds N of
  them). Without `--once` it keeps running (`serve`). SIGTERM stops either like Ctrl-C:
  the DMs sent are marked, the rest are left free for the next run; the exit code is 143.

`--at` takes ISO 8601 (`2026-03-30T07:00`, `2026-03-30T09:00+02:00`); without an
offset it is UTC.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import logging
import signal
import sys
from typing import TYPE_CHECKING, Iterable, Iterator, Mapping

from bot import nudges
from bot.delivery import DirectSender
from bot.progress_state import member_progress
from bot.replies import render_text
from bot.scheduler import Scheduler, sender_registry, serve_on_own_connection
from bot.store.sql import iso

# The scheduler looks up to a week either side of `--at`: keep that inside datetime's range.
EARLIEST = dt.datetime.min.replace(tzinfo=dt.timezone.utc) + dt.timedelta(weeks=2)
LATEST = dt.datetime.max.replace(tzinfo=dt.timezone.utc) - dt.timedelta(weeks=2)
MAX_GRACE_HOURS = 168  # nudges are weekly

if TYPE_CHECKING:
    from bot.core import Core


def add_parser(subparsers, parents: list[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    has_user = any("--user" in getattr(p, "_option_string_actions", {}) for p in parents)
    parser = subparsers.add_parser("nudges", parents=parents, help="weekly nudges by hand: preview, due, run --once")
    sub = parser.add_subparsers(dest="nudges_command", required=True, metavar="{preview,due,run}")
    preview = sub.add_parser("preview", parents=parents, help="the nudge a member would get now")
    if not has_user:
        preview.add_argument("--user", required=True, help="member: alice (console) or platform:id")
    preview.add_argument("--at", type=iso_time, help="render as of this ISO time (default: now)")
    due = sub.add_parser("due", parents=parents, help="who is due at an instant (read-only)")
    due.add_argument("--at", type=iso_time, help="ISO time (default: now)")
    due.add_argument("--grace-hours", type=grace_hours, default=nudges.DEFAULT_GRACE / dt.timedelta(hours=1))
    run = sub.add_parser("run", parents=parents, help="send what is due and print a summary")
    run.add_argument("--once", action="store_true", help="one pass, then exit (without it: keep running)")
    run.add_argument("--at", type=iso_time, help="treat this ISO time as now (default: now)")
    run.add_argument("--grace-hours", type=grace_hours, default=nudges.DEFAULT_GRACE / dt.timedelta(hours=1))
    return parser


def iso_time(text: str) -> dt.datetime:
    """`--at`: an ISO 8601 time as an aware UTC datetime; a bad one is a usage error."""
    try:
        moment = dt.datetime.fromisoformat(text)
        moment = moment.replace(tzinfo=dt.timezone.utc) if moment.tzinfo is None else moment.astimezone(dt.timezone.utc)
    except (ValueError, OverflowError):
        moment = None
    if moment is None or not EARLIEST <= moment <= LATEST:
        raise argparse.ArgumentTypeError(
            f"'{text}' is not an ISO time from {EARLIEST.date()} to {LATEST.date()}; try 2026-03-30T07:00 (UTC) or 2026-03-30T09:00+02:00"
        )
    return moment


def grace_hours(text: str) -> float:
    try:
        hours = float(text)
    except ValueError:
        hours = -1.0
    if not 0 <= hours <= MAX_GRACE_HOURS:  # also refuses nan
        raise argparse.ArgumentTypeError(f"'{text}' is not a number of hours from 0 to {MAX_GRACE_HOURS}")
    return hours


def member_key(user: str) -> str:
    return user if ":" in user else f"console:{user}"


def default_senders() -> dict[str, DirectSender]:
    from adapters.console_sender import ConsoleSender

    return {"console": ConsoleSender()}


async def main(args: argparse.Namespace, core: "Core", senders: Mapping[str, DirectSender] | Iterable[DirectSender] | None = None) -> int:
    store = core.store
    if store is None:
        print("The nudges need a database (MLBOT_DB or --db).")
        return 1
    command = args.nudges_command
    if command == "preview":
        now = getattr(args, "at", None) or core.clock()
        member = member_key(args.user)
        sub = await nudges.get_subscription(store, member)
        schedule = sub.schedule if sub else nudges.Schedule(timezone=await store.timezone(member))
        progress = await member_progress(store, core.content, member, now)
        print(render_text(nudges.render_nudge(core.content, progress, schedule, now)))
        print()
        if sub is None:
            print(f"{member} is not subscribed (the preview uses Monday 09:00 {schedule.timezone}).")
        elif not sub.enabled:
            print(f"{member}'s nudge is off{' (paused itself: DMs closed)' if sub.consecutive_failures >= nudges.FAILURES_BEFORE_PAUSE else ''}.")
        else:
            local = sub.next_due_at.astimezone(nudges.zone_of(sub.timezone))
            print(f"Next due {iso(sub.next_due_at)} ({local:%a %d %b %H:%M %Z}).")
        return 0
    grace = dt.timedelta(hours=args.grace_hours)
    if command == "due":
        at = args.at or core.clock()
        rows = await store.due_nudges(at)
        for row in rows:
            local = row.due.astimezone(nudges.zone_of(row.schedule.timezone))
            late = at - row.due
            action = "send" if late <= grace else f"skip ({late / dt.timedelta(hours=1):.1f} h late)"
            print(f"{row.member}\t{iso(row.due)}\t{local:%a %H:%M %Z}\t{action}")
        print(f"{len(rows)} due at {iso(at)}")
        return 0
    registry = sender_registry(senders) if senders is not None else default_senders()
    with _sigterm_cancels() as terminated:
        try:
            if not args.once:
                logging.getLogger("bot.scheduler").setLevel(logging.INFO)  # one line a wake: sent, and when the next check is
                await serve_on_own_connection(Scheduler(store, core.content, registry, core.clock, grace=grace, observer=core.observer))
                return 0
            at = args.at or core.clock()
            clock = (lambda: at) if args.at else core.clock
            summary = await Scheduler(store, core.content, registry, clock, grace=grace, observer=core.observer).run_once(at)
        except asyncio.CancelledError:
            if not terminated:
                raise
            print("Stopped by SIGTERM: the nudges sent are marked, the rest are left for the next run.", file=sys.stderr)
            return 143
    if summary.waiting:
        print(f"{summary.waiting} waiting for a retry (rate limited or a transient failure)")
    print(summary.line())
    return 0


@contextlib.contextmanager
def _sigterm_cancels() -> Iterator[list[int]]:
    """While inside, SIGTERM cancels the current task (as Ctrl-C does under asyncio.run),
    so the scheduler marks what it sent and releases its leases; the list records it."""
    loop, task = asyncio.get_running_loop(), asyncio.current_task()
    terminated: list[int] = []

    def stop() -> None:
        terminated.append(signal.SIGTERM)
        if task is not None:
            task.cancel()

    try:
        loop.add_signal_handler(signal.SIGTERM, stop)
        installed = True
    except (NotImplementedError, RuntimeError, ValueError):  # no signals here (Windows, not the main thread)
        installed = False
    try:
        yield terminated
    finally:
        if installed:
            loop.remove_signal_handler(signal.SIGTERM)


async def run(content, db: str, args: argparse.Namespace) -> int:
    """`main` with a store opened on `db` and a Core around it (what `mlbot/cli.py` calls)."""
    from bot.core import Core
    from bot.store import open_store

    async with open_store(db) as store:
        return await main(args, Core(content, store=store))
