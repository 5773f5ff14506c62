"""The nudge contract of the store, run on SQLite and PostgreSQL alike: a week is claimed
once, leases expire, a claim left by a crash is taken over once, racing schedulers
split the work, and each way a send ends is recorded. Public store methods only."""
from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from bot.nudge_message import dms_closed_notice
from bot.nudge_schedule import FAILURES_BEFORE_PAUSE, LEASE, STALE_CLAIM, Schedule, next_send_after
from bot.store import MemberContext, MessageRecord, Outcome, open_store
from bot.store.nudge_rows import ClaimOutcome, Finish, SendOutcome

SUBSCRIBED = dt.datetime(2026, 3, 25, 12, 0, tzinfo=dt.timezone.utc)  # a Wednesday
BERLIN_MONDAY_9 = Schedule(0, dt.time(9, 0), "Europe/Berlin")
DUE = next_send_after(SUBSCRIBED, 0, dt.time(9, 0), "Europe/Berlin")  # Monday 30 March, 07:00 UTC
GRACE = dt.timedelta(hours=12)


async def _subscribe(store, *users: str) -> None:
    for user in users:
        await store.subscribe(f"console:{user}", BERLIN_MONDAY_9, SUBSCRIBED)


async def _sends(store, user: str) -> list[dict]:
    return [{"status": r.status, "claimed_by": r.claimed_by} for r in await store.sends(f"console:{user}")]


async def test_a_week_is_claimed_once(store) -> None:
    await _subscribe(store, "alice")
    [nudge] = await store.due_nudges(DUE, ["console"])
    assert nudge.due == DUE and nudge.schedule == BERLIN_MONDAY_9
    first = await store.claim_nudge(nudge, DUE, "a", GRACE)
    again = await store.claim_nudge(nudge, DUE, "b", GRACE)
    [page] = await store.claim_page([nudge], DUE, "b", GRACE)
    assert (first.outcome, again.outcome, page.outcome) == (ClaimOutcome.CLAIMED, ClaimOutcome.HELD, ClaimOutcome.HELD)
    assert [(s["status"], s["claimed_by"]) for s in await _sends(store, "alice")] == [("claimed", "a")]


async def test_a_sent_week_moves_the_schedule_and_is_not_claimed_again(store) -> None:
    await _subscribe(store, "alice")
    [nudge] = await store.due_nudges(DUE, ["console"])
    [claim] = await store.claim_page([nudge], DUE, "a", GRACE)
    assert claim.outcome is ClaimOutcome.CLAIMED
    await store.finish_page([Finish(nudge, SendOutcome.SENT, None, DUE)], "a", dms_closed_notice)
    assert (await store.subscription("console:alice")).next_due_at == DUE + dt.timedelta(weeks=1)
    assert (await store.claim_nudge(nudge, DUE, "b", GRACE)).outcome is ClaimOutcome.GONE
    assert [s["status"] for s in await _sends(store, "alice")] == ["sent"]


async def test_a_lease_keeps_others_off_until_it_expires(store) -> None:
    await _subscribe(store, "alice", "bob")
    leased = await store.lease_due(DUE, "a", ["console"], limit=1)
    assert len(leased) == 1
    other = await store.lease_due(DUE, "b", ["console"], limit=10)
    assert {n.member for n in leased + other} == {"console:alice", "console:bob"} and len(other) == 1
    assert await store.lease_due(DUE, "c", ["console"], limit=10) == []
    assert await store.leased_elsewhere(DUE, "c", ["console"]) == 2
    later = DUE + LEASE + dt.timedelta(seconds=1)
    assert len(await store.lease_due(later, "c", ["console"], limit=10)) == 2  # a and b died: their leases ran out
    await store.release_leases("c")
    assert await store.leased_elsewhere(later, "d", ["console"]) == 0


async def test_a_claim_left_by_a_crash_is_taken_over_once_when_stale(store) -> None:
    await _subscribe(store, "alice")
    [nudge] = await store.due_nudges(DUE, ["console"])
    assert (await store.claim_nudge(nudge, DUE, "crashed", GRACE)).outcome is ClaimOutcome.CLAIMED
    # the holder dies between claim and send: a fresh claim still holds
    assert (await store.claim_nudge(nudge, DUE + dt.timedelta(minutes=1), "b", GRACE)).outcome is ClaimOutcome.HELD
    stale = DUE + STALE_CLAIM
    takers = [await store.claim_nudge(nudge, stale, who, GRACE) for who in ("b", "c")]
    assert [t.outcome for t in takers] == [ClaimOutcome.CLAIMED, ClaimOutcome.HELD]
    # the crashed holder's late mark is refused: the claim is b's
    await store.finish_nudge(Finish(nudge, SendOutcome.SENT, None, stale), "crashed", dms_closed_notice)
    assert [(s["status"], s["claimed_by"]) for s in await _sends(store, "alice")] == [("claimed", "b")]
    await store.finish_nudge(Finish(nudge, SendOutcome.SENT, None, stale), "b", dms_closed_notice)
    assert [(s["status"], s["claimed_by"]) for s in await _sends(store, "alice")] == [("sent", "b")]


async def test_racing_schedulers_claim_each_week_once(db_target) -> None:
    users = [f"u{n}" for n in range(30)]
    async with open_store(db_target) as one, open_store(db_target) as two:
        await _subscribe(one, *users)
        page = await one.due_nudges(DUE, ["console"])
        a, b = await asyncio.gather(one.claim_page(page, DUE, "a", GRACE), two.claim_page(list(reversed(page)), DUE, "b", GRACE))
        won = [c.nudge.member for c in a + b if c.outcome is ClaimOutcome.CLAIMED]
        assert sorted(won) == sorted(f"console:{u}" for u in users)
        assert all(c.outcome in (ClaimOutcome.CLAIMED, ClaimOutcome.HELD) for c in a + b)


async def test_a_release_frees_the_week_for_a_retry(store) -> None:
    await _subscribe(store, "alice")
    [nudge] = await store.due_nudges(DUE, ["console"])
    await store.claim_nudge(nudge, DUE, "a", GRACE)
    await store.finish_page([Finish(nudge, SendOutcome.RELEASE, "transient failure", DUE)], "a", dms_closed_notice)
    assert await _sends(store, "alice") == [] and (await store.subscription("console:alice")).next_due_at == DUE
    assert (await store.claim_nudge(nudge, DUE, "b", GRACE)).outcome is ClaimOutcome.CLAIMED


async def test_closed_dms_leave_one_notice_and_pause_after_a_few_weeks(store) -> None:
    await _subscribe(store, "alice")
    for week in range(FAILURES_BEFORE_PAUSE):
        now = DUE + dt.timedelta(weeks=week)
        [nudge] = await store.due_nudges(now, ["console"])
        assert (await store.claim_nudge(nudge, now, "a", GRACE)).outcome is ClaimOutcome.CLAIMED
        await store.finish_page([Finish(nudge, SendOutcome.DMS_CLOSED, "direct messages closed", now)], "a", dms_closed_notice)
        notice = await store.take_notice("console:alice")
        assert notice and "direct messages" in notice
        assert await store.take_notice("console:alice") is None
    sub = await store.subscription("console:alice")
    assert not sub.enabled and sub.consecutive_failures == FAILURES_BEFORE_PAUSE
    assert [s["status"] for s in await _sends(store, "alice")] == ["failed"] * FAILURES_BEFORE_PAUSE


async def test_a_nudge_past_the_grace_is_skipped_and_the_next_week_comes_back_if_due(store) -> None:
    await _subscribe(store, "alice")
    [nudge] = await store.due_nudges(DUE, ["console"])
    late = DUE + dt.timedelta(weeks=1, hours=1)  # the next week is due too, and still inside the grace
    [claim] = await store.claim_page([nudge], late, "a", GRACE)
    assert claim.outcome is ClaimOutcome.SKIPPED and claim.again is not None and claim.again.due == DUE + dt.timedelta(weeks=1)
    assert (await store.claim_nudge(claim.again, late, "a", GRACE)).outcome is ClaimOutcome.CLAIMED
    assert [s["status"] for s in await _sends(store, "alice")] == ["skipped", "claimed"]


async def test_a_change_of_schedule_meanwhile_wins_over_the_mark(store) -> None:
    await _subscribe(store, "alice")
    [nudge] = await store.due_nudges(DUE, ["console"])
    await store.claim_nudge(nudge, DUE, "a", GRACE)
    friday = Schedule(4, dt.time(18, 0), "Europe/Berlin")
    changed = await store.subscribe("console:alice", friday, DUE)
    await store.finish_page([Finish(nudge, SendOutcome.SENT, None, DUE)], "a", dms_closed_notice)
    assert (await store.subscription("console:alice")).next_due_at == changed.next_due_at


async def test_progress_rows_of_a_page_match_the_member_reads(store) -> None:
    await _subscribe(store, "alice", "bob")
    await store.mark_done("console:alice", "step", "python-basics", SUBSCRIBED)
    await store.set_member_field("console:bob", "timezone", "Asia/Tokyo")
    ids = [n.member_id for n in await store.due_nudges(DUE, ["console"])]
    alice, bob = await store.progress_rows(ids)
    assert alice.done == await store.done_items("console:alice") and alice.activity == await store.activity_times("console:alice")
    assert (bob.done, bob.cards_due, bob.timezone, bob.activity) == ({}, {}, "Asia/Tokyo", [])


# --- a message's context and record --------------------------------------------------------


async def test_a_members_context_is_one_read_of_their_row_question_and_notice(store) -> None:
    assert await store.member_context("console:nobody") == MemberContext()
    await _subscribe(store, "alice")
    await store.set_pending_action("console:alice", "forget")
    [nudge] = await store.due_nudges(DUE, ["console"])
    await store.claim_nudge(nudge, DUE, "a", GRACE)
    await store.finish_page([Finish(nudge, SendOutcome.DMS_CLOSED, "direct messages closed", DUE)], "a", dms_closed_notice)
    context = await store.member_context("console:alice")
    assert context.member_id is not None and context.pending_action == "forget"
    assert context.notice and "direct messages" in context.notice


async def test_a_message_record_lands_in_one_write_and_takes_the_notice_once(store) -> None:
    await _subscribe(store, "alice")
    [nudge] = await store.due_nudges(DUE, ["console"])
    await store.claim_nudge(nudge, DUE, "a", GRACE)
    await store.finish_page([Finish(nudge, SendOutcome.DMS_CLOSED, "direct messages closed", DUE)], "a", dms_closed_notice)
    await store.set_pending_action("console:alice", "forget")
    context = await store.member_context("console:alice")
    record = MessageRecord(command="salary", clear_pending=True, take_notice=True)
    assert await store.record_message("console:alice", context, record, DUE) == context.notice
    assert await store.record_message("console:alice", context, record, DUE) is None  # shown once
    after = await store.member_context("console:alice")
    assert after.pending_action is None and after.notice is None
    assert [row["command"] for row in (await store.export("console:alice"))["command_log"]] == ["salary", "salary"]


async def test_a_message_record_counts_an_unanswered_question_and_makes_a_new_member(store) -> None:
    record = MessageRecord(unanswered="Flurble  Wibble", outcome=Outcome.FALLBACK, near=("salary",))
    assert await store.record_message("console:bob", MemberContext(), record, DUE) is None
    [miss] = await store.unanswered(5)
    assert (miss.text, miss.count, miss.outcome, miss.near) == ("flurble wibble", 1, Outcome.FALLBACK, ("salary",))
    assert (await store.member_context("console:bob")).member_id is not None


async def test_a_member_forgotten_during_the_message_stays_forgotten(store) -> None:
    await store.set_pending_action("console:alice", "forget")
    context = await store.member_context("console:alice")
    await store.forget("console:alice")
    assert await store.record_message("console:alice", context, MessageRecord(command="forget"), DUE) is None
    assert await store.member_context("console:alice") == MemberContext()
    assert await store.export("console:alice") == {}


# --- a unit of work -------------------------------------------------------------------------


def _done(rows: dict) -> set[str]:
    return set(rows.get("step", {}))


async def test_a_unit_of_work_lands_whole_and_reads_what_it_wrote(store) -> None:
    before = store.visits.transactions
    async with store.unit():
        assert await store.mark_done("console:alice", "step", "python-basics", SUBSCRIBED)
        assert _done(await store.done_items("console:alice")) == {"python-basics"}  # its own write, not yet committed
        await store.subscribe("console:alice", BERLIN_MONDAY_9, SUBSCRIBED)
    assert store.visits.transactions - before == 1
    assert (await store.subscription("console:alice")).enabled and _done(await store.done_items("console:alice")) == {"python-basics"}


async def test_a_unit_of_work_that_fails_leaves_nothing(store) -> None:
    with pytest.raises(RuntimeError):
        async with store.unit():
            await store.mark_done("console:alice", "step", "python-basics", SUBSCRIBED)
            await store.subscribe("console:alice", BERLIN_MONDAY_9, SUBSCRIBED)
            raise RuntimeError("the handler broke")
    assert await store.member_context("console:alice") == MemberContext() and await store.export("console:alice") == {}


async def test_a_unit_of_work_that_only_reads_holds_no_transaction(store) -> None:
    await store.mark_done("console:alice", "step", "python-basics", SUBSCRIBED)
    before = (store.visits.reads, store.visits.transactions)
    async with store.unit():
        await store.done_items("console:alice")
        await store.member_context("console:alice")
    assert (store.visits.reads - before[0], store.visits.transactions - before[1]) == (2, 0)


async def test_units_of_work_in_two_tasks_keep_their_own_transactions(store) -> None:
    async def message(member: str, fails: bool) -> None:
        async with store.unit():
            await store.mark_done(member, "step", "python-basics", SUBSCRIBED)
            for _ in range(5):  # the other task runs meanwhile
                await asyncio.sleep(0)
            if fails:
                raise RuntimeError("the handler broke")

    failed, landed = await asyncio.gather(message("console:alice", True), message("console:bob", False), return_exceptions=True)
    assert isinstance(failed, RuntimeError) and landed is None
    assert await store.export("console:alice") == {} and _done(await store.done_items("console:bob")) == {"python-basics"}


async def test_a_task_started_inside_a_unit_of_work_keeps_its_own_transaction(store) -> None:
    with pytest.raises(RuntimeError):
        async with store.unit():
            await store.mark_done("console:alice", "step", "python-basics", SUBSCRIBED)
            other = asyncio.create_task(store.mark_done("console:bob", "step", "python-basics", SUBSCRIBED))
            await asyncio.sleep(0)
            raise RuntimeError("the handler broke")
    assert await other
    assert await store.export("console:alice") == {} and _done(await store.done_items("console:bob")) == {"python-basics"}
