"""The neutral event an adapter hands to the core."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping


@dataclass(frozen=True, slots=True)
class Message:
    """One thing a member said or clicked.

    `platform` and `user_id` identify the member (`console:alice`, `discord:123`,
    `slack:T1:U2`). `text` is free text or a command line. A slash command may instead
    give `command` and `args` already parsed; the router is then skipped. `is_admin` is
    set by the adapter from the platform's own roles. `timezone` is the member's IANA
    timezone when the platform knows it (Slack profiles do).
    """

    platform: str
    user_id: str
    text: str = ""
    command: str | None = None
    args: Mapping[str, str] = field(default_factory=dict)
    is_admin: bool = False
    timezone: str | None = None

    @property
    def member_key(self) -> str:
        return f"{self.platform}:{self.user_id}"
