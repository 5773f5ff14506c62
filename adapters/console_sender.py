"""The console's `DirectSender`: a nudge for a console member is printed."""
from __future__ import annotations

import sys
from typing import TextIO

from bot.delivery import Delivery
from bot.replies import Reply, render_text


class ConsoleSender:
    platform = "console"

    def __init__(self, stdout: TextIO | None = None):
        self._stdout = stdout

    async def send_direct(self, user_id: str, reply: Reply) -> Delivery:
        out = self._stdout or sys.stdout
        out.write(f"--- DM to console:{user_id} ---\n{render_text(reply)}\n\n")
        out.flush()
        return Delivery.SENT
