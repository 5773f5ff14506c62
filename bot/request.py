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
    from bot.store import Store

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
    """The message, its route and arguments, and the bot's state."""

    message: Message
    route: Route
    args: dict[str, str]
    core: Bot

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
