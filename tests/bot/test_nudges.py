"""Weekly nudges against real SQLite files: the schedule, claim-then-send exactly once
(crashes, restarts, racing processes), closed DMs, rate limits, and the `nudge` command.
Time is a fake clock everywhere; no test sleeps for real (the racing processes do, a few
milliseconds per send, to overlap)."""
from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime as dt
import json
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from bot import nudges
from mlbot import nudges_cli
from bot.content import load_content
from bot.core import Core
from bot.delivery import Delivery
from bot.errors import StoreError
from bot.messages import Message
from bot.replies import Reply, render_text
from bot.scheduler import Scheduler, Summary, serve_on_own_connection
from bot.store import open_store

ROOT = Path(__file__).resolve().parents[2]
UTC = dt.timezone.utc
WED = dt.datetime(2026, 3, 25, 12, 0, tzinfo=UTC)  # a Wednesday, CET in Berlin
DUE = dt.datetime(2026, 3, 30, 7, 0, tzinfo=UTC)  # Monday 09:00 CEST, the first nudge after WED
CONTENT = load_content()


class FakeTime:
    """The wall clock (datetime) and the limiter's monotonic clock, advanced only by `sleep`."""

    def __init__(self, start: dt.datetime):
        self.now = start
        self.mono = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> dt.datetime:
        return self.now

    def monotonic(self) -> float:
        return self.mono

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.mono += seconds
        self.now += dt.timedelta(seconds=seconds)


class FakeSender:
    """Records every DM; `script` lists what the next calls do (a Delivery, or an exception to raise)."""

    def __init__(self, platform: str = "console", script: list | None = None, default: Delivery = Delivery.SENT):
        self.platform = platform
        self.script = list(script or [])
        self.default = default
        self.calls: list[str] = []
        self.sent: list[tuple[str, Reply]] = []
        self.hook = None

    async def send_direct(self, user_id: str, reply: Reply) -> Delivery:
        self.calls.append(user_id)
        if self.hook is not None:
            await self.hook(user_id)
        outcome = self.script.pop(0) if self.script else self.default
        if isinstance(outcome, BaseException):
            raise outcome
        if outcome is Delivery.SENT:
            self.sent.append((user_id, reply))
        return outcome


@pytest.fixture
async def env(db_target):
    time = FakeTime(WED)
    async with open_store(db_target) as store:
        core = Core(CONTENT, store=store, clock=time.clock)
        yield core, time, db_target


def limiter(time: FakeTime, rates=None) -> nudges.RateLimiter:
    return nudges.RateLimiter(rates or {"console": (10.0, 10.0)}, clock=time.monotonic, sleep=time.sleep)


async def say(core: Core, text: str, user: str = "alice", **extra) -> Reply:
    return await core.handle(Message("console", user, text, **extra))


async def run(core: Core, time: FakeTime, sender: FakeSender, at: dt.datetime, **options) -> Summary:
    """One `Scheduler.run_once` at `at` (the fake clock set there); `options` are the
    scheduler's fields (limiter, scheduler_id, concurrency, observer)."""
    time.now = at
    options.setdefault("limiter", limiter(time))
    return await Scheduler(core.store, core.content, {sender.platform: sender}, time.clock, **options).run_once(at)


async def sends(core: Core, user: str = "alice") -> list[tuple]:
    return [(r.iso_week, r.status, r.claimed_by, r.error) for r in await core.store.sends(f"console:{user}")]


# --- the schedule -----------------------------------------------------------------------


async def test_weekly_nudge_arrives_at_the_local_time_across_dst(env):
    """Monday 09:00 Berlin arrives at 08:00 UTC in winter and 07:00 UTC after the clocks change, once a week."""
    core, time, _ = env
    time.now = dt.datetime(2026, 3, 18, 12, tzinfo=UTC)
    reply = await say(core, "nudge on monday 9am Europe/Berlin")
    assert "Mon 23 Mar at 09:00 CET" in reply.text
    sender = FakeSender()
    winter = dt.datetime(2026, 3, 23, 8, tzinfo=UTC)
    assert (await run(core, time, sender, winter - dt.timedelta(seconds=1))).sent == 0
    assert (await run(core, time, sender, winter)).sent == 1
    assert (await run(core, time, sender, winter + dt.timedelta(minutes=1))).sent == 0
    assert (await run(core, time, sender, DUE - dt.timedelta(seconds=1))).sent == 0
    assert (await run(core, time, sender, DUE)).sent == 1
    assert [u for u, _ in sender.sent] == ["alice", "alice"]
    assert [(w, s) for w, s, _, _ in await sends(core)] == [("2026-W13", "sent"), ("2026-W14", "sent")]
    sub = await nudges.get_subscription(core.store, "console:alice")
    assert sub.next_due_at == dt.datetime(2026, 4, 6, 7, tzinfo=UTC)


async def test_nudge_content_follows_real_progress(env):
    """Mark the step done and next week's nudge names the next step, with its course; due cards are mentioned."""
    core, time, _ = env
    await say(core, "nudge on")
    sender = FakeSender()
    first_due = (await nudges.get_subscription(core.store, "console:alice")).next_due_at
    await run(core, time, sender, first_due)
    steps = list(core.content.path_steps.values())
    first = render_text(sender.sent[-1][1])
    assert f"Next on your path: {steps[0].name}. This week: {steps[0].this_week}" in first
    assert "You get this every Monday at 09:00 (UTC)" in first
    assert "Interview tip: " in first
    time.now = first_due + dt.timedelta(hours=1)
    assert "Marked done" in (await say(core, f"done {steps[0].id}")).text
    await run(core, time, sender, first_due + dt.timedelta(days=7))
    second = render_text(sender.sent[-1][1])
    assert f"Next on your path: {steps[1].name}." in second
    assert steps[0].name not in second
    assert "Study streak: 1 week(s)" in second
    # a step with a course: the course that serves it is named
    core_ml = next(s for s in steps if any(c.path_step == s.id for c in core.content.courses.values()))
    for step in steps:
        if step.id == core_ml.id:
            break
        await core.store.mark_done("console:alice", "step", step.id, time.now)
    await run(core, time, sender, first_due + dt.timedelta(days=14))
    third = render_text(sender.sent[-1][1])
    course = next(c for c in core.content.courses.values() if c.path_step == core_ml.id)
    assert f"A course for it: {course.title} ({course.provider})" in third
    assert first.split("Interview tip: ")[1][:30] != second.split("Interview tip: ")[1][:30]  # rotates weekly


async def test_tip_rotates_by_iso_week():
    """The tip changes from one ISO week to the next and repeats only after the whole pool."""
    pool = nudges.tip_pool(CONTENT)
    weeks = [nudges.tip_of_week(CONTENT, DUE + dt.timedelta(weeks=n)) for n in range(len(pool))]
    assert len({text for text, _ in weeks}) == len(pool)
    assert nudges.tip_of_week(CONTENT, DUE + dt.timedelta(weeks=len(pool))) == weeks[0]


# --- exactly once -----------------------------------------------------------------------

WORKER = textwrap.dedent(
    """
    import asyncio, datetime as dt, json, os, sys
    sys.path.insert(0, {root!r})
    from bot.content import load_content
    from bot.delivery import Delivery
    from bot.rate_limit import RateLimiter
    from bot.scheduler import Scheduler
    from bot.store import open_store

    db, at, mode, out = sys.argv[1:5]

    class Sender:
        platform = "console"
        async def send_direct(self, user_id, reply):
            if mode == "crash":
                os._exit(9)  # the process dies after claiming, before anything is sent
            with open(out, "a") as f:
                f.write(user_id + "\\n")
            await asyncio.sleep(0.002)
            return Delivery.SENT

    async def main():
        while not os.path.exists(out + ".go"):  # start together
            await asyncio.sleep(0.002)
        async with open_store(db) as store:
            now = dt.datetime.fromisoformat(at)
            scheduler = Scheduler(store, load_content(), {{"console": Sender()}}, lambda: now, RateLimiter({{"console": None}}),
                                  scheduler_id=f"proc-{{os.getpid()}}", concurrency=4)
            s = await scheduler.run_once(now)
        print(json.dumps([s.sent, s.failed, s.skipped, s.waiting]))

    asyncio.run(main())
    """
)


def _worker(tmp_path: Path) -> Path:
    script = tmp_path / "worker.py"
    script.write_text(WORKER.format(root=str(ROOT)))
    return script


async def test_crash_between_claim_and_send_is_resolved_exactly_once(env, tmp_path):
    """A scheduler killed after claiming leaves the week claimed; the next run after the stale limit sends it once."""
    core, time, db = env
    await say(core, "nudge on monday 9am Europe/Berlin")
    out = tmp_path / "out.txt"
    Path(str(out) + ".go").write_text("")
    crashed = subprocess.run([sys.executable, str(_worker(tmp_path)), str(db), DUE.isoformat(), "crash", str(out)],
                             cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert crashed.returncode == 9, crashed.stderr
    [(week, status, holder, _)] = await sends(core)
    assert (week, status) == ("2026-W14", "claimed") and holder.startswith("proc-")
    sender = FakeSender()
    soon = await run(core, time, sender, DUE + dt.timedelta(minutes=1), scheduler_id="B")
    assert (soon.sent, soon.held, sender.calls) == (0, 1, [])  # leased and freshly claimed by the dead scheduler: may still be in flight
    later = await run(core, time, sender, DUE + nudges.STALE_CLAIM + dt.timedelta(minutes=1), scheduler_id="B")
    assert (later.sent, later.failed, later.skipped) == (1, 0, 0)
    again = await run(core, time, sender, DUE + nudges.STALE_CLAIM + dt.timedelta(minutes=2), scheduler_id="C")
    assert again.sent == 0
    assert sender.calls == ["alice"]
    assert [(w, s, h) for w, s, h, _ in await sends(core)] == [("2026-W14", "sent", "B")]


async def test_crash_in_process_leaves_a_claim_the_next_run_resolves(env):
    """Same, in one process: the sender blows up the scheduler (not an ordinary error), the claim survives, one send follows."""
    core, time, _ = env
    await say(core, "nudge on")
    due = (await nudges.get_subscription(core.store, "console:alice")).next_due_at

    class Crash(BaseException):
        pass

    with pytest.raises(BaseException) as caught:
        await run(core, time, FakeSender(script=[Crash()]), due, scheduler_id="A")
    assert caught.group_contains(Crash) if isinstance(caught.value, BaseExceptionGroup) else isinstance(caught.value, Crash)
    assert [s for _, s, _, _ in await sends(core)] == ["claimed"]
    sender = FakeSender()
    summary = await run(core, time, sender, due + dt.timedelta(minutes=11), scheduler_id="B")
    assert summary.sent == 1 and len(sender.sent) == 1


async def test_a_scheduler_stopped_mid_batch_marks_what_it_sent_and_lets_go_of_the_rest(env):
    """Cancelled (SIGTERM, Ctrl-C) while sends are in flight: each send that returned is
    marked sent, unsent claims and its leases are released, so the next run at once sends
    the others, each member exactly once."""
    core, time, _ = env
    members = [f"m{n}" for n in range(8)]
    for member in members:
        await say(core, "nudge on monday 9am Europe/Berlin", user=member)
    sender = FakeSender()

    async def stop_during_the_second_send(user_id: str) -> None:
        if len(sender.calls) == 2:
            stopped.cancel()

    sender.hook = stop_during_the_second_send
    stopped = asyncio.create_task(run(core, time, sender, DUE, scheduler_id="A", concurrency=4))
    with pytest.raises(asyncio.CancelledError):
        await stopped
    first = [user for user, _ in sender.sent]
    assert len(first) >= 2
    rows = [(r.member.split(":")[1], r.status, r.claimed_by) for r in await core.store.sends()]
    assert sorted(rows) == sorted((user, "sent", "A") for user in first)
    assert await core.store.leases() == {}
    rest = await run(core, time, sender, DUE + dt.timedelta(minutes=1), scheduler_id="B")
    assert (rest.sent, rest.held) == (len(members) - len(first), 0)
    await run(core, time, sender, DUE + nudges.STALE_CLAIM + dt.timedelta(minutes=1), scheduler_id="C")
    assert sorted(sender.calls) == members


async def test_run_once_reports_members_held_by_another_schedulers_lease(env, capsys):
    """A scheduler that died holding a lease: `run --once` sends the rest and says `held 1`."""
    core, time, _ = env
    for user in ("alice", "bob"):
        await say(core, "nudge on monday 9am Europe/Berlin", user=user)
    [leased] = await core.store.lease_due(DUE, "dead", ["console"], limit=1)
    assert await nudges_cli.main(_cli(["nudges", "run", "--once", "--at", DUE.isoformat()]), core) == 0
    out = capsys.readouterr().out
    assert f"--- DM to {leased.member} ---" not in out
    assert out.strip().splitlines()[-1] == "sent 1, failed 0, skipped 0, held 1"


SIGTERM_RUN = textwrap.dedent(
    """
    import argparse, asyncio, datetime as dt, sys
    sys.path.insert(0, {root!r})
    from mlbot import nudges_cli
    from bot.content import load_content
    from bot.core import Core
    from bot.delivery import Delivery
    from bot.store import open_store

    class Sender:
        platform = "console"
        async def send_direct(self, user_id, reply):
            if user_id == "bob":
                print("blocked", flush=True)
                await asyncio.Event().wait()
            return Delivery.SENT

    async def main():
        async with open_store(sys.argv[1]) as store:
            args = argparse.Namespace(nudges_command="run", once=True, at=dt.datetime.fromisoformat(sys.argv[2]), grace_hours=12.0)
            return await nudges_cli.main(args, Core(load_content(), store=store), [Sender()])

    sys.exit(asyncio.run(main()))
    """
)


async def test_sigterm_stops_run_once_with_its_leases_and_claims_released(env, tmp_path):
    """`mlbot nudges run` stopped by SIGTERM mid-send exits 143 and leaves nothing held."""
    core, _, db = env
    for user in ("alice", "bob", "carol"):
        await say(core, "nudge on monday 9am Europe/Berlin", user=user)
    script = tmp_path / "sigterm_run.py"
    script.write_text(SIGTERM_RUN.format(root=str(ROOT)))
    proc = subprocess.Popen([sys.executable, str(script), db, DUE.isoformat()], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "blocked"
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 143 and "Traceback" not in stderr, stderr
    assert await core.store.leases() == {}
    statuses = {r.member.split(":")[1]: r.status for r in await core.store.sends()}
    assert statuses.get("bob") == "failed" and "claimed" not in statuses.values()  # bob's DM may have gone out: not sent twice


async def test_two_scheduler_processes_never_send_the_same_nudge_twice(env, tmp_path):
    """Three scheduler processes on one database file, 40 members due at once: each member gets exactly one DM."""
    core, time, db = env
    members = [f"m{n:02d}" for n in range(40)]
    for member in members:
        await say(core, "nudge on monday 9am Europe/Berlin", user=member)
    out = tmp_path / "out.txt"
    script = _worker(tmp_path)
    procs = [subprocess.Popen([sys.executable, str(script), str(db), DUE.isoformat(), "send", str(out)], cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    Path(str(out) + ".go").write_text("")
    results = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 0, stderr
        results.append(json.loads(stdout.strip().splitlines()[-1]))
    delivered = out.read_text().split()
    assert sorted(delivered) == members  # every member once, nobody twice
    assert sum(r[0] for r in results) == 40 and sum(r[1] for r in results) == 0
    assert [r.status for r in await core.store.sends()] == ["sent"] * 40


@pytest.mark.parametrize(
    ("down_for", "sent", "skipped", "weeks", "next_due"),
    [
        (dt.timedelta(hours=11), 1, 0, [("2026-W14", "sent")], DUE + dt.timedelta(days=7)),
        (dt.timedelta(hours=13), 0, 1, [("2026-W14", "skipped")], DUE + dt.timedelta(days=7)),
        (dt.timedelta(days=7, hours=2), 1, 1, [("2026-W14", "skipped"), ("2026-W15", "sent")], DUE + dt.timedelta(days=14)),
        (dt.timedelta(days=14, hours=13), 0, 3, [("2026-W14", "skipped"), ("2026-W15", "skipped"), ("2026-W16", "skipped")], DUE + dt.timedelta(days=21)),
    ],
)
async def test_restart_catches_up_within_grace_and_records_the_rest_as_skipped(env, down_for, sent, skipped, weeks, next_due):
    """Down over the due time: up to 12 h late is still sent; older weeks are recorded as skipped, never sent late."""
    core, time, _ = env
    await say(core, "nudge on monday 9am Europe/Berlin")
    sender = FakeSender()
    summary = await run(core, time, sender, DUE + down_for)  # the first run after the restart
    assert (summary.sent, summary.failed, summary.skipped) == (sent, 0, skipped)
    assert len(sender.sent) == sent
    assert [(w, s) for w, s, _, _ in await sends(core)] == weeks
    assert (await nudges.get_subscription(core.store, "console:alice")).next_due_at == next_due
    if skipped:
        error = (await sends(core))[0][3]
        assert f"{(down_for / dt.timedelta(hours=1)):.1f} h" in error
    again = await run(core, time, sender, DUE + down_for + dt.timedelta(minutes=1))
    assert (again.sent, again.skipped) == (0, 0)


async def test_a_long_outage_jumps_to_the_first_week_still_in_grace(env):
    """Twenty years down: one skipped row for the first missed week, and the schedule is
    computed directly, not walked a week (and a transaction) at a time."""
    core, time, _ = env
    await say(core, "nudge on monday 9am Europe/Berlin")
    back = DUE + dt.timedelta(weeks=20 * 52, hours=5)  # a Monday afternoon in Berlin: that morning's nudge is in grace
    sender = FakeSender()
    summary = await run(core, time, sender, back)
    assert (summary.sent, summary.skipped) == (1, 1)
    rows = await sends(core)
    assert [(w, s) for w, s, _, _ in rows] == [("2026-W14", "skipped"), (nudges.week_key(back, "Europe/Berlin"), "sent")]
    assert "nor were the 1039 weeks after it" in rows[0][3]
    next_due = (await nudges.get_subscription(core.store, "console:alice")).next_due_at
    assert next_due == nudges.next_send_after(back, 0, dt.time(9), "Europe/Berlin") and next_due - back < dt.timedelta(weeks=1)


async def test_run_once_at_the_end_of_the_calendar_finishes(env, capsys):
    """`run --once --at 9999-12-17`: the member's weeks up to then are skipped in one step."""
    core, _, _ = env
    await say(core, "nudge on monday 9am Europe/Berlin")
    assert await nudges_cli.main(_cli(["nudges", "run", "--once", "--at", "9999-12-17T00:00:00+00:00"]), core) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == "sent 0, failed 0, skipped 1"
    assert (await nudges.get_subscription(core.store, "console:alice")).next_due_at.year == 9999


async def test_a_read_only_database_answers_and_leaves_the_nudge_notice_pending(tmp_path):
    """A member with a notice waiting asks something while the database is read-only: the
    answer comes (without the notice, which cannot be marked shown), and the notice waits."""
    path = tmp_path / "ro.sqlite3"
    time = FakeTime(WED)
    async with open_store(str(path)) as store:
        core = Core(CONTENT, store=store, clock=time.clock)
        await say(core, "nudge on monday 9am Europe/Berlin")
        await run(core, time, FakeSender(default=Delivery.DMS_CLOSED), DUE)
    async with open_store(f"file:{path}?mode=ro") as store:
        reply = await say(Core(CONTENT, store=store, clock=time.clock), "salary senior")
        assert reply.command == "salary" and "$220,000" in render_text(reply) and "couldn't deliver" not in reply.footer
    async with open_store(str(path)) as store:
        assert "couldn't deliver your weekly study nudge" in (await say(Core(CONTENT, store=store, clock=time.clock), "salary senior")).footer


# --- member controls ----------------------------------------------------------------------


async def test_pause_and_resume(env):
    """`nudge pause 2 weeks` skips the next two Mondays; `nudge on` resumes at once."""
    core, time, _ = env
    await say(core, "nudge on monday 9am Europe/Berlin")
    reply = await say(core, "nudge pause 2 weeks")
    assert "Mon 13 Apr at 09:00 CEST" in reply.text
    sender = FakeSender()
    for week in (0, 1):
        assert (await run(core, time, sender, DUE + dt.timedelta(weeks=week))).sent == 0
    assert (await run(core, time, sender, DUE + dt.timedelta(weeks=2))).sent == 1
    time.now = DUE + dt.timedelta(weeks=2, hours=1)
    await say(core, "nudge pause 1 week")
    time.now = DUE + dt.timedelta(weeks=2, hours=2)
    reply = await say(core, "nudge on")
    assert "Mon 20 Apr at 09:00 CEST" in reply.text  # resumed: the very next Monday
    assert (await run(core, time, sender, DUE + dt.timedelta(weeks=3))).sent == 1


async def test_nudge_off_takes_effect_before_the_next_tick(env):
    """Turned off while a run is under way (after its page was leased): the member is not
    sent. With one send slot, one member is claimed ahead of the send in flight (bob,
    while alice is sent); carol, who says `nudge off` then, is not claimed."""
    core, time, _ = env
    for user in ("alice", "bob", "carol"):
        await say(core, "nudge on", user=user)
    due = (await nudges.get_subscription(core.store, "console:alice")).next_due_at
    sender = FakeSender()

    async def carol_says_off(user_id: str) -> None:
        if user_id == "alice":
            assert "off" in (await say(core, "nudge off", user="carol")).text

    sender.hook = carol_says_off
    summary = await run(core, time, sender, due, concurrency=1)
    assert sender.calls == ["alice", "bob"] and summary.sent == 2
    for user in ("alice", "bob"):
        await say(core, "nudge off", user=user)
    assert (await run(core, time, sender, due + dt.timedelta(days=7))).sent == 0
    assert "It is off" in (await say(core, "nudge")).text


async def test_closed_dms_are_not_retried_pause_after_three_weeks_and_the_member_is_told(env):
    """DMs closed: one attempt per week, a notice the next time the member talks, paused after three weeks."""
    core, time, _ = env
    await say(core, "nudge on monday 9am Europe/Berlin")
    sender = FakeSender(default=Delivery.DMS_CLOSED)
    summary = await run(core, time, sender, DUE)
    assert (summary.sent, summary.failed) == (0, 1)
    for minutes in (1, 2, 60):
        await run(core, time, sender, DUE + dt.timedelta(minutes=minutes))
    assert len(sender.calls) == 1  # not retried every minute
    time.now = DUE + dt.timedelta(hours=2)
    told = await say(core, "nudge")
    assert "couldn't deliver your weekly study nudge" in told.text
    assert "couldn't deliver" not in (await say(core, "nudge")).text  # shown once
    await run(core, time, sender, DUE + dt.timedelta(weeks=1))
    await run(core, time, sender, DUE + dt.timedelta(weeks=2))
    sub = await nudges.get_subscription(core.store, "console:alice")
    assert (sub.enabled, sub.consecutive_failures) == (False, 3)
    notice = await core.store.take_notice("console:alice")
    assert "3 weeks in a row" in notice and "paused" in notice
    assert await core.store.take_notice("console:alice") is None
    await run(core, time, sender, DUE + dt.timedelta(weeks=3))
    assert len(sender.calls) == 3
    assert [s for _, s, _, _ in await sends(core)] == ["failed"] * 3
    assert "paused itself after 3 weeks" in (await say(core, "nudge")).text
    time.now = DUE + dt.timedelta(weeks=3, hours=1)
    await say(core, "nudge on")
    sub = await nudges.get_subscription(core.store, "console:alice")
    assert (sub.enabled, sub.consecutive_failures) == (True, 0)


async def test_a_delivery_after_failures_resets_the_count(env):
    """Three failures must be in a row: a delivered week starts the count again."""
    core, time, _ = env
    await say(core, "nudge on monday 9am Europe/Berlin")
    sender = FakeSender(script=[Delivery.DMS_CLOSED, Delivery.DMS_CLOSED, Delivery.SENT, Delivery.DMS_CLOSED])
    for week in range(4):
        await run(core, time, sender, DUE + dt.timedelta(weeks=week))
    sub = await nudges.get_subscription(core.store, "console:alice")
    assert (sub.enabled, sub.consecutive_failures) == (True, 1)


# --- rate limits and retries ------------------------------------------------------------------


async def test_retry_after_is_honoured(env):
    """A 429 with Retry-After 30 s: the scheduler waits those 30 s (fake sleep) and sends once; the observer hears it."""
    core, time, _ = env
    await say(core, "nudge on monday 9am Europe/Berlin")
    sender = FakeSender(script=[nudges.RateLimited(30)])
    heard: list[str] = []

    class Observer:
        def nudge(self, outcome: str) -> None:
            heard.append(outcome)

        def rate_limited(self, platform: str) -> None:
            heard.append(f"429 {platform}")

    summary = await run(core, time, sender, DUE, observer=Observer())
    assert summary.sent == 1 and len(sender.calls) == 2 and len(sender.sent) == 1
    assert any(abs(s - 30) < 0.01 for s in time.sleeps)
    assert heard == ["claimed", "429 console", "sent"]


async def test_long_retry_after_and_transient_failures_release_the_claim_for_a_later_tick(env):
    """Retry-After beyond a minute, or a transient error: the claim is released and a later tick (within grace) sends."""
    core, time, _ = env
    await say(core, "nudge on monday 9am Europe/Berlin")
    shared = limiter(time)
    sender = FakeSender(script=[nudges.RateLimited(600), Delivery.TRANSIENT])
    first = await run(core, time, sender, DUE, limiter=shared)
    assert (first.sent, first.waiting) == (0, 1)
    assert await sends(core) == []  # released, not lost
    second = await run(core, time, sender, DUE + dt.timedelta(minutes=1), limiter=shared)
    assert time.sleeps and max(time.sleeps) >= 599  # the shared limiter kept the platform paused
    assert (second.sent, second.waiting) == (0, 1)
    third = await run(core, time, sender, time.now + dt.timedelta(minutes=1), limiter=shared)
    assert third.sent == 1 and len(sender.sent) == 1


async def test_a_large_batch_is_spread_at_the_platform_rate(env):
    """Twelve members due at once at 2 sends/s (burst 2): the sends take about five seconds of (fake) time."""
    core, time, _ = env
    for n in range(12):
        await say(core, "nudge on monday 9am Europe/Berlin", user=f"m{n}")
    sender = FakeSender()
    summary = await run(core, time, sender, DUE, limiter=limiter(time, {"console": (2.0, 2.0)}))
    assert summary.sent == 12
    assert sum(time.sleeps) == pytest.approx(5.0, abs=0.01)


async def test_a_send_already_claimed_waits_out_a_retry_after_that_came_meanwhile(env):
    """One send slot: bob is claimed (his token taken) while alice is sent. Alice's 429
    pauses the platform for 30 s; bob's send waits that out too instead of going at once."""
    core, time, _ = env
    for user in ("alice", "bob"):
        await say(core, "nudge on monday 9am Europe/Berlin", user=user)
    sender = FakeSender(script=[nudges.RateLimited(30)])
    sent_at: list[tuple[str, dt.datetime]] = []

    async def note(user_id: str) -> None:
        sent_at.append((user_id, time.now))

    sender.hook = note
    summary = await run(core, time, sender, DUE, concurrency=1)
    assert summary.sent == 2
    assert [user for user, _ in sent_at] == ["alice", "alice", "bob"]
    assert all(at - DUE >= dt.timedelta(seconds=30) for _, at in sent_at[1:])


async def test_a_long_retry_after_releases_the_members_already_claimed_at_once(env):
    """Alice's 429 says 10 minutes: bob, claimed while she was sent, is released at once
    too (not held for the pause); a later run sends both."""
    core, time, _ = env
    for user in ("alice", "bob"):
        await say(core, "nudge on monday 9am Europe/Berlin", user=user)
    shared = limiter(time)
    sender = FakeSender(script=[nudges.RateLimited(600)])
    first = await run(core, time, sender, DUE, concurrency=1, limiter=shared)
    assert (first.sent, first.waiting) == (0, 2) and sender.calls == ["alice"]
    assert time.sleeps == [] and await sends(core, "alice") == [] and await sends(core, "bob") == []
    later = await run(core, time, sender, DUE + dt.timedelta(minutes=11), concurrency=1, limiter=shared)
    assert later.sent == 2 and sorted(sender.calls) == ["alice", "alice", "bob"]


async def test_the_next_members_are_claimed_while_a_send_is_in_flight(env):
    """The pipeline: while the first sends are in flight, the members after them are
    already claimed (one more per send slot), so a slot never waits for a claim."""
    core, time, _ = env
    members = [f"m{n}" for n in range(6)]
    for member in members:
        await say(core, "nudge on monday 9am Europe/Berlin", user=member)
    sender = FakeSender()
    claimed_during_first_send: list[int] = []

    async def look(user_id: str) -> None:
        if len(sender.calls) == 1:
            await asyncio.sleep(0)  # let the other workers claim
            claimed_during_first_send.append(sum(r.status == "claimed" for r in await core.store.sends()))

    sender.hook = look
    summary = await run(core, time, sender, DUE, concurrency=2)
    assert summary.sent == 6 and sorted(sender.calls) == members
    assert claimed_during_first_send == [4]  # two slots' sends and the two members after them


async def test_serve_carries_on_after_the_database_fails_under_the_workers(env, caplog):
    """A store error inside a run (here: leasing a page) reaches `serve` as a StoreError:
    it logs, sleeps the interval, and the next wake sends."""
    core, time, _ = env
    await say(core, "nudge on monday 9am Europe/Berlin")
    time.now = DUE
    lease_due, failures = core.store.lease_due, [StoreError("the database is locked")]

    async def lease_failing_once(*args, **kwargs):
        if failures:
            raise failures.pop()
        return await lease_due(*args, **kwargs)

    core.store.lease_due = lease_failing_once
    sender = FakeSender()
    await Scheduler(core.store, core.content, {"console": sender}, time.clock, limiter(time)).serve(time.sleep, ticks=2, interval=60)
    assert sender.calls == ["alice"] and time.sleeps[0] == 60
    assert any("could not use the database" in r.getMessage() for r in caplog.records)


async def test_serve_sleeps_until_the_next_due_time_never_busy_polls(env):
    """The loop sleeps until the next due time when it is near, else the bounded interval."""
    core, time, db = env
    time.now = DUE - dt.timedelta(seconds=30)
    await say(core, "nudge on monday 9am Europe/Berlin")
    sender = FakeSender()
    await serve_on_own_connection(Scheduler(core.store, core.content, {"console": sender}, time.clock, limiter(time)), time.sleep, ticks=4, interval=60)
    assert time.sleeps[0] == pytest.approx(30)
    assert time.sleeps[1:] == [60, 60, 60]
    assert len(sender.sent) == 1


async def test_each_wake_logs_what_it_sent_and_when_the_next_check_is(env, caplog):
    """`mlbot nudges run` is never silent for minutes: one line a wake."""
    core, time, _ = env
    time.now = DUE - dt.timedelta(seconds=30)
    await say(core, "nudge on monday 9am Europe/Berlin")
    caplog.set_level("INFO", logger="bot.scheduler")
    await serve_on_own_connection(Scheduler(core.store, core.content, {"console": FakeSender()}, time.clock, limiter(time)), time.sleep, ticks=2, interval=60)
    wakes = [r.getMessage() for r in caplog.records if "next check in" in r.getMessage()]
    assert wakes == ["nudges: sent 0, failed 0, skipped 0; next check in 30 s", "nudges: sent 1, failed 0, skipped 0; next check in 60 s"]


# --- the command ----------------------------------------------------------------------------


async def test_unknown_timezone_or_day_suggests_and_saves_nothing(env):
    """A misspelt timezone or day gets the closest matches, and nothing (not even the valid parts) is saved."""
    core, time, _ = env
    reply = await say(core, "nudge on monday 9am Europe/Berln")
    assert "Europe/Berlin" in render_text(reply)
    reply = await say(core, "nudge me on mondy at 9am")
    assert "Monday" in render_text(reply)
    assert await nudges.get_subscription(core.store, "console:alice") is None
    await say(core, "nudge on friday 18:30 Asia/Kolkata")
    await say(core, "nudge on sunday 9am Mars/Olympus")
    sub = await nudges.get_subscription(core.store, "console:alice")
    assert (sub.weekday, sub.local_time, sub.timezone) == (4, dt.time(18, 30), "Asia/Kolkata")


async def test_a_flood_of_unknown_words_is_bounded_in_work_and_reply(env, monkeypatch):
    """Thousands of unknown words: only the first 600 characters are read, at most 10
    are looked up for suggestions and shown, the rest are counted."""
    from bot.handlers import nudge as nudge_handler

    looked_up: list[str] = []
    real = nudge_handler.closest_timezones
    monkeypatch.setattr(nudge_handler, "closest_timezones", lambda word, limit=3: looked_up.append(word) or real(word, limit))
    core, _, _ = env
    reply = await say(core, "nudge on monday " + " ".join(f"qzx{n}vbk" for n in range(3000)))
    assert reply.title == "Nothing changed" and len(reply.items) == 10 and len(looked_up) <= 10
    assert "more words I didn't understand" in reply.footer and len(render_text(reply)) < 3000
    assert await nudges.get_subscription(core.store, "console:alice") is None
    pause = await say(core, "nudge pause " + "blah " * 3000)
    assert len(pause.items) == 10 and len(render_text(pause)) < 3000


@pytest.mark.parametrize(
    ("text", "weekday", "at", "zone"),
    [
        ("nudge on", 0, dt.time(9), "UTC"),
        ("nudge me on mondays at 9am Europe/Berlin", 0, dt.time(9), "Europe/Berlin"),
        ("nudge on thursday 7:15pm america/new_york", 3, dt.time(19, 15), "America/New_York"),
        ("remind me every friday at 18:30 new york", 4, dt.time(18, 30), "America/New_York"),
        ("weekly reminder sun 8 am Sydney", 6, dt.time(8), "Australia/Sydney"),
        ("nudge on tue at 7 kolkata", 1, dt.time(7), "Asia/Kolkata"),
    ],
)
async def test_free_text_sets_day_time_and_timezone(env, text, weekday, at, zone):
    """Sentences as members type them set the day, the time and the timezone (cities work too)."""
    core, _, _ = env
    reply = await say(core, text)
    assert reply.command == "nudge" and reply.ephemeral
    sub = await nudges.get_subscription(core.store, "console:alice")
    assert (sub.weekday, sub.local_time, sub.timezone, sub.enabled) == (weekday, at, zone, True)


async def test_default_timezone_comes_from_the_slack_profile_and_the_reply_says_which(env):
    """With no timezone given: Slack's profile timezone (stored), else UTC, and the reply says which."""
    core, _, _ = env
    reply = await core.handle(Message("slack", "T1:U2", "nudge on", timezone="Asia/Kolkata"))
    assert "Slack profile" in reply.text and "Mon 30 Mar at 09:00 IST" in reply.text
    assert await core.store.timezone("slack:T1:U2") == "Asia/Kolkata"
    reply = await say(core, "nudge on")
    assert "UTC" in reply.text and "don't know your timezone" in reply.text
    status = await say(core, "nudge")
    assert "Next: Mon 30 Mar at 09:00 UTC" in status.text


async def test_forget_me_and_mydata_cover_nudges(env):
    """`mydata` exports the subscription and its sends; `forget me` deletes them."""
    core, time, _ = env
    await say(core, "nudge on")
    await run(core, time, FakeSender(), (await nudges.get_subscription(core.store, "console:alice")).next_due_at)
    data = await core.store.export("console:alice")
    assert len(data["subscriptions"]) == 1 and len(data["sends"]) == 1
    await core.store.forget("console:alice")
    assert await nudges.get_subscription(core.store, "console:alice") is None and await core.store.sends() == []


# --- operators' CLI ---------------------------------------------------------------------------


def _cli(argv: list[str]) -> argparse.Namespace:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--user", default="console")
    parser = argparse.ArgumentParser(prog="mlbot", parents=[common])
    sub = parser.add_subparsers(dest="command")
    nudges_cli.add_parser(sub, [common])
    return parser.parse_args(argv)


async def test_cli_preview_due_and_run_once(env, capsys):
    """Operators: preview a member's nudge, list who is due, send what is due and read the summary line."""
    core, time, _ = env
    await say(core, "nudge on monday 9am Europe/Berlin")
    assert await nudges_cli.main(_cli(["nudges", "preview", "--user", "alice"]), core) == 0
    out = capsys.readouterr().out
    assert "Your weekly ML study nudge" in out and "Next due 2026-03-30T07:00:00.000000+00:00" in out
    assert await nudges_cli.main(_cli(["nudges", "due", "--at", "2026-03-30T09:00+02:00"]), core) == 0
    out = capsys.readouterr().out
    assert "console:alice" in out and "send" in out and out.strip().endswith("1 due at 2026-03-30T07:00:00.000000+00:00")
    assert await nudges_cli.main(_cli(["nudges", "run", "--once", "--at", "2026-03-30T07:00"]), core) == 0
    out = capsys.readouterr().out
    assert "--- DM to console:alice ---" in out
    assert out.strip().splitlines()[-1] == "sent 1, failed 0, skipped 0"
    assert await nudges_cli.main(_cli(["nudges", "run", "--once", "--at", "2026-03-30T07:05"]), core) == 0
    assert capsys.readouterr().out.strip() == "sent 0, failed 0, skipped 0"


async def test_member_is_told_of_closed_dms_whatever_they_say_next(env):
    """The notice rides on the next reply, whatever the member asks, and only once."""
    core, time, _ = env
    await say(core, "nudge on monday 9am Europe/Berlin")
    await run(core, time, FakeSender(default=Delivery.DMS_CLOSED), DUE)
    first = await say(core, "salary senior")
    assert "couldn't deliver your weekly study nudge" in first.footer and "$220,000" in render_text(first)
    assert "couldn't deliver" not in (await say(core, "salary senior")).footer


async def test_a_scheduler_sends_a_page_in_a_few_transactions_not_a_few_per_member(env):
    """Claims, progress reads and marks of the members in flight together go to the store
    together: 40 due members, 20 at a time, cost a handful of transactions and reads
    (counted by the store's `visits`)."""
    core, time, _ = env
    for n in range(40):
        await nudges.subscribe(core.store, f"console:u{n}", 0, dt.time(9), "Europe/Berlin", WED)
    sender = FakeSender()
    time.now = DUE
    scheduler = Scheduler(core.store, CONTENT, {"console": sender}, time.clock, nudges.RateLimiter({"console": None}),
                          concurrency=20, scheduler_id="one")
    before = dataclasses.replace(core.store.visits)
    summary = await scheduler.run_once(DUE)
    assert summary.sent == 40 and len(set(sender.calls)) == 40
    transactions, reads = core.store.visits.transactions - before.transactions, core.store.visits.reads - before.reads
    assert transactions <= 10 and reads <= 6, (transactions, reads)  # one by one: 2 transactions and 4 reads per member
