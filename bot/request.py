"""What a command handler gets: the `Request`, and the `Bot` state it answers from.

Handlers depend on this module, never on `bot.core`: the core imports the handlers to
dispatch to them, so the handlers see the core only through the `Bot` protocol.
"""
from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Protocol

from bot.errors import UserError

if TYPE_CHECKING:
    from bot.commands import Registry
    from bot.content import Content, Problem
    from bot.messages import Message
    from bot.router import Route, Router
    from bot.store import MemberContext, Store

Clock = Callable[[], dt.datetime]


class Bot(Protocol):
    """The bot's state a handler may read (and `reload`, for the admin command)."""

    content: Content
    store: Store | None
    clock: Clock
    rng: random.Random
    registry: Registry
    router: Router

    def reload(self, directory: Path | None = None) -> list[Problem]: ...


@dataclass
class Request:
    """The message, its route and arguments, the bot's state, and what the core read of
    the member before routing (`context`), which a handler uses instead of asking the
    store again."""

    message: Message
    route: Route
    args: dict[str, str]
    core: Bot
    context: MemberContext
    # A notice taken for this message (a weekly nudge could not reach the member): the
    # core adds it to the reply's footer, unless the handler shows it (`show_notice`).
    notice: str | None = None
    notice_shown: bool = False

    def show_notice(self) -> str | None:
        """The notice taken for this message, for a handler that shows it itself."""
        self.notice_shown = True
        return self.notice

    @property
    def timezone(self) -> str:
        """The member's timezone as stored (UTC when none is)."""
        return self.context.timezone or "UTC"

    @property
    def content(self) -> Content:
        return self.core.content

    @property
    def store(self) -> Store:
        if self.core.store is None:
            raise UserError("Progress tracking is not available here (no database configured).")
        return self.core.store

    @property
    def now(self) -> dt.datetime:
        return self.core.clock()

    @property
    def member(self) -> str:
        return self.message.member_key
