"""The nudge scheduler: lease pages of due members, claim, render, send, mark.

A `Scheduler` holds what every run needs (store, content, senders, clock, limiter,
grace, observer, its id); `run_once` sends what is due now, `serve` keeps doing so.
The exactly-once rules are the store's (`bot.store.nudges`); this module decides the
order and what a send's result means:

- Workers take members from one feed (`_Feed`), which leases the next page while the
  current one still has members to start: nobody waits for a lease between pages.
- Sending is pipelined: twice `concurrency` workers prepare members (token, claim,
  progress, render) and mark them afterwards, but only `concurrency` send at a time
  (the send slots). While one member is sent, the next one's claim and the last one's
  mark are in flight, so the slots stay busy with sends. A claim waits for a slot at
  most about one send; the hold limit still bounds it.
- A token is taken *before* claiming, so a claim is never held while waiting for the
  rate limit, and a large batch is spread at the bucket's rate. A member claimed while
  its platform then said Retry-After waits that out first, or is released when it is
  long.
- Claims, progress reads and marks go to the store in groups (`_Batch`): what workers
  ask for while one statement is in flight goes together in the next, so a page costs
  a few statements instead of a dozen per member, and each worker still waits for its
  own claim or mark to commit before it goes on.
- A send that times out or raises unexpectedly may or may not have arrived: `failed`,
  not retried. A `TRANSIENT` result or a long `Retry-After` releases the claim.
- Stopping (SIGTERM or Ctrl-C cancel the run): a send that returned is still marked, a
  claim whose send had not started is released, a send cut off mid-flight is marked
  `failed`, and the run's leases are released, so the next run sends the rest at once.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import socket
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Generic, Iterable, Mapping, TypeVar

from bot.content import Content
from bot.delivery import Delivery, DirectSender
from bot.errors import StoreError
from bot.nudge_message import dms_closed_notice, render_nudge
from bot.nudge_schedule import DEFAULT_GRACE, HOLD_LIMIT, SEND_TIMEOUT
from bot.observe import Observer
from bot.progress_state import MemberProgress, progress_of
from bot.rate_limit import RateLimiter, Sleep, retry_after_of
from bot.replies import Reply
from bot.store import Store, open_store
from bot.store.nudge_rows import Claim, ClaimOutcome, DueNudge, Finish, SendOutcome

log = logging.getLogger(__name__)

Clock = Callable[[], dt.datetime]
MAX_INLINE_RETRY_AFTER = 60.0  # a longer Retry-After releases the claim instead of waiting
MAX_RATE_LIMIT_RETRIES = 3
SERVE_INTERVAL = 60.0  # the scheduler wakes at least this often (new subscriptions, retries)
DEFAULT_CONCURRENCY = 20
PAGE = 200  # subscriptions leased at a time
_NONCE = uuid.uuid4().hex[:8]  # tells apart two processes that reuse a pid on one host

T = TypeVar("T")
R = TypeVar("R")


def default_scheduler_id() -> str:
    """Stable for the life of a process, so its leases and claims stay its own between runs."""
    return f"{socket.gethostname()}:{os.getpid()}:{_NONCE}"


def sender_registry(senders: Mapping[str, DirectSender] | Iterable[DirectSender]) -> dict[str, DirectSender]:
    """Senders by platform; accepts a mapping or the senders themselves."""
    if isinstance(senders, Mapping):
        return dict(senders)
    return {s.platform: s for s in senders}


@dataclass
class Summary:
    sent: int = 0
    failed: int = 0
    skipped: int = 0
    held: int = 0  # due, but another scheduler holds them: its lease on the member or its fresh claim on the week
    waiting: int = 0  # released for a retry by a later run (Retry-After, a transient failure)

    def line(self) -> str:
        held = f", held {self.held}" if self.held else ""
        return f"sent {self.sent}, failed {self.failed}, skipped {self.skipped}{held}"


class SendInterrupted(asyncio.CancelledError):
    """The scheduler was stopped while a send was in flight: it may have arrived."""


async def _settle(write: Awaitable[R]) -> R:
    """Run a write about a send (its claim, its mark, its release) to the end even if the
    scheduler is stopped meanwhile, then let the stop through: a DM that went out is
    recorded, and a claim that committed is known."""
    task = asyncio.ensure_future(write)
    stop: asyncio.CancelledError | None = None
    while not task.done():
        try:
            await asyncio.wait({task})
        except asyncio.CancelledError as exc:
            stop = exc
    if stop is None:
        return task.result()
    if not task.cancelled() and task.exception() is not None:
        log.error("recording a nudge while the scheduler stopped failed: %s", task.exception())
    raise stop


def _first(group: BaseExceptionGroup) -> BaseException:
    """The first exception inside a (possibly nested) exception group."""
    first = group.exceptions[0]
    return _first(first) if isinstance(first, BaseExceptionGroup) else first


class _Feed:
    """A run's due members, a leased page at a time. The next page is leased while the
    current one still has `ahead` members to start, so no worker waits for a lease
    between pages (and a replica holds at most `ahead` members beyond its page)."""

    def __init__(self, lease: Callable[[], Awaitable[list[DueNudge]]], ahead: int):
        self._lease = lease
        self._ahead = ahead
        self._ready: deque[DueNudge] = deque()
        self._leasing: asyncio.Task[None] | None = None
        self._exhausted = False

    async def next(self) -> DueNudge | None:
        """The next member to send to; None when no due member is left to lease."""
        while True:
            leasing = self._leasing
            if leasing is not None and leasing.done():
                leasing.result()  # a lease that landed cleared itself: this one failed, and that stops the worker
            if leasing is None and len(self._ready) <= self._ahead and not self._exhausted:
                self._leasing = asyncio.ensure_future(self._take_page())
            if self._ready:
                return self._ready.popleft()
            if self._leasing is None:
                return None
            await _settle(self._leasing)

    async def _take_page(self) -> None:
        page = await self._lease()
        self._leasing = None
        self._ready.extend(page)
        self._exhausted = not page

    async def settle(self) -> None:
        """Let a lease in flight land, so the run's release that follows covers it."""
        leasing = self._leasing
        if leasing is not None:
            await asyncio.wait({leasing})
            if not leasing.cancelled() and leasing.exception() is not None:
                log.warning("leasing due nudges failed as the run ended: %s", leasing.exception())


class _Batch(Generic[T, R]):
    """Group commit: the items submitted while a write is in flight go together in the
    next one. `submit` returns the item's own result once its write has committed (even
    if the caller is stopped meanwhile, like `_settle`)."""

    def __init__(self, write: Callable[[list[T]], Awaitable[list[R]]]):
        self._write = write
        self._queue: list[tuple[T, asyncio.Future[R]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def submit(self, item: T) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.ensure_future(self._flush())
        return await _settle(future)

    async def _flush(self) -> None:
        await asyncio.sleep(0)  # let the other workers ready at this moment join the batch
        while self._queue:
            batch, self._queue = self._queue, []
            try:
                results = await self._write([item for item, _ in batch])
            except BaseException as exc:  # every waiter hears the failure
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                if not isinstance(exc, Exception):
                    raise
                continue
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)


@dataclass
class Scheduler:
    """One scheduler: the same `scheduler_id` across its runs, so a later run may take
    back a lease or claim of an earlier one. `content` may be a getter (admin reloads)."""

    store: Store
    content: Content | Callable[[], Content]
    senders: dict[str, DirectSender]
    clock: Clock
    limiter: RateLimiter = field(default_factory=RateLimiter)
    grace: dt.timedelta = DEFAULT_GRACE
    observer: Observer = field(default_factory=Observer)
    scheduler_id: str = field(default_factory=default_scheduler_id)
    concurrency: int = DEFAULT_CONCURRENCY

    async def run_once(self, now: dt.datetime, *, timing: list[float] | None = None) -> Summary:
        """Send every nudge due at `now`, earliest first, `concurrency` at a time through
        the shared limiter. `timing`, when given, receives the scheduler's own seconds
        per nudge (claim, progress, render, mark: the send and the wait for a slot excluded)."""
        run = _Run(self, now, timing)
        workers = 2 * max(1, self.concurrency)  # half of them prepare or mark while the other half send
        page = max(PAGE, 5 * self.concurrency)
        feed = _Feed(lambda: self.store.lease_due(now, self.scheduler_id, self.senders, limit=page), ahead=workers)
        try:
            try:
                async with asyncio.TaskGroup() as group:
                    for _ in range(workers):
                        group.create_task(run.work(feed))
            except ExceptionGroup as failed:  # the database failed under the workers: one StoreError, as `serve` expects
                store_errors, others = failed.split(StoreError)
                if store_errors is None or others is not None:
                    raise
                raise _first(store_errors) from failed
            run.summary.held += await self.store.leased_elsewhere(now, self.scheduler_id, self.senders)
        finally:  # also when stopped: what this run did not get to is free for the next one at once
            await _settle(feed.settle())
            await _settle(self.store.release_leases(self.scheduler_id))
        return run.summary

    async def serve(self, sleep: Sleep = asyncio.sleep, *, interval: float = SERVE_INTERVAL, ticks: int | None = None) -> None:
        """Send what is due, then sleep until the next due time or `interval` seconds,
        whichever is sooner (never a busy poll). `ticks` bounds the loop (tests)."""
        tick = 0
        while ticks is None or tick < ticks:
            tick += 1
            try:
                summary = await self.run_once(self.clock())
            except StoreError:
                log.exception("the nudge scheduler could not use the database; trying again in %g s", interval)
                await sleep(interval)
                continue
            delay = await self.seconds_until_next(self.clock(), interval)
            # Each wake says what it did and when the next is, so a quiet scheduler is visibly alive.
            log.info("nudges: %s; next check in %.0f s", summary.line(), delay)
            await sleep(delay)

    async def seconds_until_next(self, now: dt.datetime, interval: float = SERVE_INTERVAL) -> float:
        """How long `serve` sleeps: until the next future due time, at most `interval`
        (nudges due now but held or released are retried after the interval, not in a loop)."""
        wake = await self.store.next_due_after(now, self.senders)
        if wake is None:
            return interval
        return min(interval, max((wake - now).total_seconds(), 0.01))

    def current_content(self) -> Content:
        return self.content() if callable(self.content) else self.content


class _Run:
    """One `run_once`: its claims and marks batched, its send slots, its tally."""

    def __init__(self, scheduler: Scheduler, now: dt.datetime, timing: list[float] | None):
        self.s = scheduler
        self.now = now
        self.content = scheduler.current_content()
        self.timing = timing
        self.summary = Summary()
        me = scheduler.scheduler_id
        self.claims: _Batch[DueNudge, Claim] = _Batch(lambda nudges: scheduler.store.claim_page(nudges, scheduler.clock(), me, scheduler.grace))
        self.finishes: _Batch[Finish, None] = _Batch(self._finish_page)
        self.progress: _Batch[int, MemberProgress] = _Batch(self._progress_page)
        self.slots = asyncio.Semaphore(max(1, scheduler.concurrency))  # sends in flight

    async def _progress_page(self, member_ids: list[int]) -> list[MemberProgress]:
        return [progress_of(self.content, rows, self.now) for rows in await self.s.store.progress_rows(member_ids)]

    async def _finish_page(self, finishes: list[Finish]) -> list[None]:
        await self.s.store.finish_page(finishes, self.s.scheduler_id, dms_closed_notice)
        return [None] * len(finishes)

    async def _finish(self, nudge: DueNudge, outcome: SendOutcome, error: str | None) -> None:
        await self.finishes.submit(Finish(nudge, outcome, error, self.s.clock()))

    async def work(self, feed: _Feed) -> None:
        while (nudge := await feed.next()) is not None:
            await self.process(nudge)

    async def process(self, nudge: DueNudge) -> None:
        """Claim, render, send and mark one member's nudge (and the next week's, when a
        skip makes it due too)."""
        s, limiter = self.s, self.s.limiter
        current: DueNudge | None = nudge
        while current is not None:
            nudge, current = current, None
            stale = s.clock() - nudge.due > s.grace  # skipping needs no token
            if not stale:
                await limiter.acquire(nudge.platform)  # before claiming: never hold a claim while queueing
            started = time.perf_counter()
            claimed_at = s.clock()
            try:
                claim = await self.claims.submit(nudge)
            except asyncio.CancelledError:  # the claim may have committed as the stop came
                await _settle(self._finish(nudge, SendOutcome.RELEASE, None))
                raise
            if claim.outcome is not ClaimOutcome.CLAIMED:
                if not stale:
                    limiter.refund(nudge.platform)
                if claim.outcome is ClaimOutcome.SKIPPED:
                    self.summary.skipped += 1
                    s.observer.nudge("skipped")
                elif claim.outcome is ClaimOutcome.HELD:
                    self.summary.held += 1
                current = claim.again
                continue
            s.observer.nudge("claimed")
            try:
                progress = await self.progress.submit(nudge.member_id)
                reply = render_nudge(self.content, progress, nudge.schedule, nudge.due)
                overhead = time.perf_counter() - started
                async with self.slots:
                    outcome, error = await self._deliver(nudge, reply, claimed_at)
            except SendInterrupted:
                await _settle(self._finish(nudge, SendOutcome.FAILED, "the scheduler stopped mid-send (may have arrived; not retried)"))
                raise
            except asyncio.CancelledError:
                await _settle(self._finish(nudge, SendOutcome.RELEASE, None))
                raise
            started = time.perf_counter()
            await _settle(self._finish(nudge, outcome, error))  # marked even if the scheduler is stopping
            overhead += time.perf_counter() - started
            if self.timing is not None:
                self.timing.append(overhead)
            self._tally(nudge, outcome, error)

    def _tally(self, nudge: DueNudge, outcome: SendOutcome, error: str | None) -> None:
        if outcome is SendOutcome.SENT:
            self.summary.sent += 1
            self.s.observer.nudge("sent")
        elif outcome is SendOutcome.RELEASE:
            self.summary.waiting += 1
            self.s.observer.nudge("released")
            log.info("nudge of %s released for a retry: %s", nudge.member, error)
        else:
            self.summary.failed += 1
            self.s.observer.nudge("failed")

    async def _deliver(self, nudge: DueNudge, reply: Reply, claimed_at: dt.datetime) -> tuple[SendOutcome, str | None]:
        """Send within the claim's hold limit, honouring Retry-After."""
        s, platform = self.s, nudge.platform
        sender = s.senders[platform]
        for attempt in range(MAX_RATE_LIMIT_RETRIES + 1):
            if attempt:
                await s.limiter.acquire(platform)
            elif not await s.limiter.unpaused(platform, at_most=MAX_INLINE_RETRY_AFTER):  # a Retry-After since its token was taken
                return SendOutcome.RELEASE, "rate limited since it was claimed"
            if s.clock() - claimed_at > HOLD_LIMIT:
                return SendOutcome.RELEASE, "claim held too long before sending"
            try:
                async with asyncio.timeout(SEND_TIMEOUT):
                    result: Any = await sender.send_direct(nudge.user_id, reply)
            except TimeoutError:
                return SendOutcome.FAILED, f"no answer from {platform} within {SEND_TIMEOUT:g} s (may have arrived; not retried)"
            except asyncio.CancelledError:
                raise SendInterrupted from None
            except Exception as exc:  # noqa: BLE001 - a sender's bug must not stop the batch
                if retry_after_of(exc) is None:
                    log.exception("sending the nudge of %s failed", nudge.member)
                    return SendOutcome.FAILED, f"{type(exc).__name__} while sending (not retried)"
                result = exc
            if result is Delivery.SENT:
                return SendOutcome.SENT, None
            if result is Delivery.DMS_CLOSED:
                return SendOutcome.DMS_CLOSED, "direct messages closed"
            if result is Delivery.TRANSIENT:
                return SendOutcome.RELEASE, "transient failure"
            wait = retry_after_of(result)
            if wait is None:
                return SendOutcome.FAILED, f"unexpected delivery result {result!r}"
            s.limiter.pause(platform, wait)
            s.observer.rate_limited(platform)
            if wait > MAX_INLINE_RETRY_AFTER:
                return SendOutcome.RELEASE, f"rate limited for {wait:g} s"
        return SendOutcome.RELEASE, "still rate limited"


async def serve_on_own_connection(scheduler: Scheduler, sleep: Sleep = asyncio.sleep, *, interval: float = SERVE_INTERVAL,
                                  ticks: int | None = None) -> None:
    """`serve` with its own connection to a file database, so its transactions never
    interleave with the chat handlers' on the shared one (SQLite's locks order them, as
    between processes). An in-memory database has only the one connection."""
    if scheduler.store.path == ":memory:":
        await scheduler.serve(sleep, interval=interval, ticks=ticks)
        return
    async with open_store(scheduler.store.path) as own:
        scheduler.store = own
        await scheduler.serve(sleep, interval=interval, ticks=ticks)
