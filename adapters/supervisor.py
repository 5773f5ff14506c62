"""Keep one service of `mlbot run` (the Discord client, the Slack app, the nudge scheduler,
the ops endpoint) running on its own, so that one failing service never stops the others.

A service is started by a function that returns a fresh coroutine each time (a coroutine
runs once). Services run until cancelled, so raising, or returning, is a failure: the
supervisor logs one ERROR line naming the service and the error (with the traceback the
first time that error is seen in a row), waits, and starts it again. The wait doubles from
`first` up to `cap` and starts over once the service has run `stable_after` seconds.

There is no retry limit. An error that looks permanent (a token rejected at login) costs
one attempt and one log line a minute; one that looks permanent but is not (a platform
outage answering 401s) heals without restarting the process. Cancellation (shutdown)
stops the service at once, also mid-wait, and is never retried.

`status()` is what /healthz shows. `sleep` and `clock` are injected so tests move time
by hand.
"""
from __future__ import annotations

import asyncio
import enum
import logging
import time
import traceback
from dataclasses import dataclass
from typing import Awaitable, Callable

log = logging.getLogger(__name__)

Start = Callable[[], Awaitable[None]]
Sleep = Callable[[float], Awaitable[None]]
BACKOFF_FIRST = 1.0  # seconds before the first restart
BACKOFF_CAP = 60.0  # the longest wait between restarts
STABLE_AFTER = 60.0  # a service that ran this long before failing starts over at BACKOFF_FIRST


class State(enum.Enum):
    RUNNING = "running"
    RESTARTING = "restarting"  # it failed; waiting out the backoff before starting it again


@dataclass(frozen=True)
class ServiceStatus:
    state: State
    restarts: int  # how often it was started again since the process began
    error: str | None  # "Type: message" of the last failure, until it has run STABLE_AFTER seconds since


class Supervisor:
    def __init__(self, name: str, start: Start, *, sleep: Sleep = asyncio.sleep, clock: Callable[[], float] = time.monotonic,
                 scrub: Callable[[str], str] = lambda text: text, first: float = BACKOFF_FIRST, cap: float = BACKOFF_CAP,
                 stable_after: float = STABLE_AFTER) -> None:
        """`scrub` removes secrets (tokens) from error messages before they are logged or shown."""
        self.name = name
        self._start, self._sleep, self._clock, self._scrub = start, sleep, clock, scrub
        self._first, self._cap, self._stable_after = first, cap, stable_after
        self._state = State.RUNNING
        self._started = clock()
        self._restarts = 0
        self._error: str | None = None

    def status(self) -> ServiceStatus:
        recovered = self._state is State.RUNNING and self._clock() - self._started >= self._stable_after
        return ServiceStatus(self._state, self._restarts, None if recovered else self._error)

    async def run(self) -> None:
        """Run the service until cancelled, starting it again after every failure."""
        delay = self._first
        while True:
            self._state, self._started = State.RUNNING, self._clock()
            try:
                await self._start()
            except Exception as exc:  # CancelledError is not an Exception: shutdown passes through
                failure: BaseException | None = exc
                reason = self._scrub(f"{type(exc).__name__}: {exc}")
            else:
                failure, reason = None, "stopped without an error"
            if self._clock() - self._started >= self._stable_after:
                delay = self._first
            self._log(reason, failure, delay, with_traceback=failure is not None and reason != self._error)
            self._state, self._error = State.RESTARTING, reason
            await self._sleep(delay)
            delay = min(self._cap, delay * 2)
            self._restarts += 1

    def _log(self, reason: str, failure: BaseException | None, delay: float, *, with_traceback: bool) -> None:
        """One ERROR record; its traceback, if any, is scrubbed like the message."""
        if not log.isEnabledFor(logging.ERROR):
            return
        record = log.makeRecord(log.name, logging.ERROR, __file__, 0, "%s failed: %s; starting it again in %g s",
                                (self.name, reason, delay), None)
        if with_traceback and failure is not None:
            record.exc_text = self._scrub("".join(traceback.format_exception(failure)).rstrip("\n"))
        log.handle(record)
