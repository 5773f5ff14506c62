"""Send rate limits: one token bucket per platform, shared by every send of the process.

A sender signals `Retry-After` by raising (or returning) an object with a `retry_after`
attribute (`RateLimited`), which blocks the whole platform's bucket for that long.
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Awaitable, Callable, Mapping

Sleep = Callable[[float], Awaitable[None]]
# Sends per second and burst, per platform. Discord: DMs to many users trip its
# anti-spam long before the 50/s global limit; Slack: chat.postMessage ~1/s per channel
# and conversations.open (Tier 4) per DM. Console: unlimited.
DEFAULT_RATES: dict[str, tuple[float, float] | None] = {"discord": (5.0, 5.0), "slack": (2.0, 2.0), "console": None}


class RateLimited(Exception):
    """Raised (or returned) by a sender when the platform said `Retry-After`."""

    def __init__(self, retry_after: float):
        super().__init__(f"rate limited: retry after {retry_after:g} s")
        self.retry_after = float(retry_after)


def retry_after_of(value: object) -> float | None:
    seconds = getattr(value, "retry_after", None)
    if isinstance(seconds, (int, float)) and not isinstance(seconds, bool) and seconds >= 0:
        return float(seconds)
    return None


@dataclass
class _Bucket:
    rate: float | None  # tokens per second; None: unlimited
    burst: float
    tokens: float
    stamp: float
    blocked_until: float = 0.0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class RateLimiter:
    """One token bucket per platform, shared by every send of the process. `clock`
    is monotonic seconds, `sleep` an awaitable: both injected in tests."""

    def __init__(
        self,
        rates: Mapping[str, tuple[float, float] | None] | None = None,
        *,
        default: tuple[float, float] | None = (5.0, 5.0),
        clock: Callable[[], float] = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ):
        self._rates = dict(DEFAULT_RATES if rates is None else rates)
        self._default = default
        self.clock = clock
        self.sleep = sleep
        self._buckets: dict[str, _Bucket] = {}

    def _bucket(self, platform: str) -> _Bucket:
        bucket = self._buckets.get(platform)
        if bucket is None:
            spec = self._rates.get(platform, self._default)
            rate, burst = spec if spec is not None else (None, 1.0)
            bucket = self._buckets[platform] = _Bucket(rate, burst, burst, self.clock())
        return bucket

    async def acquire(self, platform: str) -> None:
        """Wait for a token (and for any Retry-After pause), first come first served."""
        bucket = self._bucket(platform)
        async with bucket.lock:
            while True:
                now = self.clock()
                if bucket.rate is not None:
                    bucket.tokens = min(bucket.burst, bucket.tokens + (now - bucket.stamp) * bucket.rate)
                bucket.stamp = now
                wait = bucket.blocked_until - now
                if wait <= 0:
                    if bucket.rate is None:
                        return
                    if bucket.tokens >= 1:
                        bucket.tokens -= 1
                        return
                    wait = (1 - bucket.tokens) / bucket.rate
                await self.sleep(wait)

    async def unpaused(self, platform: str, *, at_most: float) -> bool:
        """Wait out a Retry-After pause without taking a token (a send that holds one);
        False at once when the pause is longer than `at_most` seconds."""
        bucket = self._bucket(platform)
        while (wait := bucket.blocked_until - self.clock()) > 0:
            if wait > at_most:
                return False
            await self.sleep(wait)
        return True

    def refund(self, platform: str) -> None:
        """Give back a token that was not used (the claim went to another scheduler)."""
        bucket = self._bucket(platform)
        bucket.tokens = min(bucket.burst, bucket.tokens + 1)

    def pause(self, platform: str, seconds: float) -> None:
        """The platform said Retry-After: nobody sends there for `seconds`."""
        bucket = self._bucket(platform)
        bucket.blocked_until = max(bucket.blocked_until, self.clock() + seconds)
        bucket.tokens = 0.0
