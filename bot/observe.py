"""What the core reports about itself (for /metrics), without importing a metrics library.

`mlbot run` plugs in a Prometheus-backed observer; everything else uses `Observer`, which
records nothing.
"""
from __future__ import annotations


class Observer:
    """Receives events from the core, the nudge scheduler and the adapters."""

    def reply(self, platform: str, command: str, seconds: float) -> None:
        """A reply was produced (command is `fallback` when the router was unsure)."""

    def nudge(self, outcome: str) -> None:
        """A nudge was claimed, sent, failed or skipped."""

    def rate_limited(self, platform: str) -> None:
        """A platform answered 429."""
