"""The interface through which scheduled messages (weekly nudges) reach a member.

Each adapter implements `DirectSender`; the core never imports a platform library.
"""
from __future__ import annotations

import enum
from typing import Protocol

from bot.replies import Reply


class Delivery(enum.Enum):
    SENT = "sent"
    DMS_CLOSED = "dms_closed"  # the member can't be messaged: don't retry this week
    TRANSIENT = "transient"  # network, 5xx, rate limit exhausted: retry later


class DirectSender(Protocol):
    platform: str

    async def send_direct(self, user_id: str, reply: Reply) -> Delivery:
        """Open a DM with `user_id` and send `reply`, reporting how it went."""
        ...
