"""The platform-neutral core: a `Message` in, a `Reply` out.

`Core.handle` routes the message, checks permissions, runs the command's handler and
turns any unexpected exception into a short apology with an error id (the traceback
goes to the log under that id). Adapters call nothing else, except `complete` for
autocomplete and `reload` for the admin content reload.
"""
from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
import random
import time
from pathlib import Path
from typing import TYPE_CHECKING, Mapping

from bot.apology import apology, logged_error, store_trouble
from bot.commands import Choice, CommandSpec, Param, Registry
from bot.content import Content, ContentError, Problem, load_content
from bot.errors import StoreError, UserError
from bot.handlers import build_registry, clarify, fallback, smalltalk
from bot.messages import Message
from bot.observe import Observer
from bot.replies import Reply
from bot.request import Clock, Request
from bot.router import CLARIFY, FALLBACK, SMALLTALK, Route, Router
from bot.suggest import closest, did_you_mean, ranked

if TYPE_CHECKING:
    from bot.store import Store

log = logging.getLogger(__name__)
MAX_CHOICES = 25  # Discord's autocomplete limit; Slack's external selects allow more


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class Core:
    def __init__(
        self,
        content: Content,
        *,
        store: "Store | None" = None,
        clock: Clock = utc_now,
        rng: random.Random | None = None,
        registry: Registry | None = None,
        observer: Observer | None = None,
        content_dir: Path | None = None,
        train_now: bool = True,
    ):
        self.content = content
        self.content_dir = content_dir  # where `reload` reads from (None: content/ of the checkout)
        self.store = store
        self.clock = clock
        self.rng = rng or random.Random()
        self.registry = registry or build_registry()
        self.observer = observer or Observer()
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self.router = Router(content, self.registry)
        if train_now:  # so the first member's question doesn't wait for it
            self.router.warm()

    async def handle(self, message: Message) -> Reply:
        started = time.perf_counter()
        self._in_flight += 1
        self._idle.clear()
        try:
            reply = await self._handle(message)
        except StoreError as exc:
            reply = store_trouble(log, exc)
        except UserError as exc:
            reply = Reply(text=str(exc), ephemeral=True, command="error")
        except Exception:
            reply = apology(logged_error(log, "while handling a %s message", message.platform))
        finally:
            self._in_flight -= 1
            if not self._in_flight:
                self._idle.set()
        self.observer.reply(message.platform, reply.command, time.perf_counter() - started)
        return reply

    async def drain(self, timeout: float) -> bool:
        """Wait until no message is being handled (a clean stop); False on timeout."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
            return True
        except TimeoutError:
            return False

    async def _handle(self, message: Message) -> Reply:
        if message.command is not None:
            spec = self.registry.get(message.command)
            if spec is None:
                raise UserError("Unknown command. Say `help` to see what I can do.")
            route = Route(spec.name, self._checked_args(spec, message.args))
        else:
            route = await self._pending_route(message) or self.router.route(message.text)
        if route.command in (FALLBACK, CLARIFY, SMALLTALK):
            if route.command == SMALLTALK:
                return smalltalk(self, route)
            reply = clarify(self, route) if route.command == CLARIFY else fallback(self, route, message.text)
            if self.store is not None and message.text.strip():
                await self.store.record_unanswered(message.text, self.clock(), member=message.member_key, outcome=route.command, near=route.choices)
            return reply
        spec = self.registry.get(route.command)
        assert spec is not None
        if spec.admin and not message.is_admin:
            return Reply(text=f"`{spec.name}` is for admins only.", ephemeral=True, command=spec.name)
        if self.store is not None:  # before the handler, so `forget me` erases this row too
            await self.store.record_command(message.member_key, spec.name, self.clock())
        reply = await spec.handler(Request(message, route, dict(route.args), self))
        if spec.personal and not reply.ephemeral:
            reply = dataclasses.replace(reply, ephemeral=True)
        if not reply.command:
            reply = dataclasses.replace(reply, command=spec.name)
        if self.store is not None:
            reply = await self._with_notice(message, reply)
        return reply

    async def _with_notice(self, message: Message, reply: Reply) -> Reply:
        """Tell the member, once, about something that happened while they were away
        (a weekly nudge that could not reach them)."""
        notice = await self.store.take_notice(message.member_key)
        if notice is None:
            return reply
        return dataclasses.replace(reply, footer=f"{reply.footer}\n\n{notice}".strip())

    def _checked_args(self, spec: CommandSpec, args: Mapping[str, str]) -> dict[str, str]:
        """Arguments from a slash command, each checked against its parameter: a value a
        member typed instead of picking a suggestion is matched typo-tolerantly, or
        answered with the closest choices."""
        checked: dict[str, str] = {}
        params = {p.name: p for p in spec.params}
        for name, value in args.items():
            param = params.get(name)
            if param is None:
                continue
            value = str(value).strip()
            if param.type == "int" and not value.isdigit():
                raise UserError(f"`{name}` must be a whole number, like 3.")
            if param.choices is not None and value:
                value = self._resolve_choice(spec, param, value)
            checked[name] = value
        return checked

    def _resolve_choice(self, spec: CommandSpec, param: Param, value: str) -> str:
        choices = param.choices(self.content)
        if value in {c.value for c in choices}:
            return value
        if param.kind is not None:  # the router's typo-tolerant reading of the words
            found, _ = self.router.entities(self.router.normalise(value))
            ids = list(dict.fromkeys(e.id for e in found if e.kind == param.kind))
            if len(ids) == 1:
                return ids[0]
        near = ranked(value.lower(), {c.value: f"{c.label} {c.value}".lower() for c in choices})
        if near and near[0][1] >= 80 and (len(near) == 1 or near[0][1] - near[1][1] >= 10):
            return near[0][0]
        by_value = {c.value: c.label for c in choices}
        hint = did_you_mean(by_value[key] for key, _ in near)
        raise UserError(f"I don't know that {param.name} for `{spec.name}`.{hint}")

    async def _pending_route(self, message: Message) -> Route | None:
        """A yes/no answer to a question the bot asked (e.g. `forget me`) goes to it."""
        if self.store is None:
            return None
        pending = await self.store.pending_action(message.member_key)
        if pending is None:
            return None
        words = message.text.strip().lower().strip(".!")
        if words in ("yes", "y", "yes please", "confirm", "yes delete", "delete"):
            return Route(pending, {"confirm": "yes"})
        spec = self.registry.get(words.split()[0]) if words else None
        if spec is not None and spec.name == pending:  # the question's own buttons ("forget yes")
            return None
        await self.store.set_pending_action(message.member_key, None)
        if words in ("no", "n", "cancel", "stop", "no thanks"):
            return Route(pending, {"confirm": "no"})
        return None

    def complete(self, command: str, param: str, partial: str) -> list[Choice]:
        """Autocomplete: the parameter's choices, best match for `partial` first."""
        spec = self.registry.get(command)
        target = next((p for p in spec.params if p.name == param), None) if spec else None
        if target is None or target.choices is None:
            return []
        choices = target.choices(self.content)
        partial = partial.strip().lower()
        if not partial:
            return choices[:MAX_CHOICES]
        labels = {i: f"{c.label} {c.value}".lower() for i, c in enumerate(choices)}
        return [choices[i] for i in closest(partial, labels, limit=MAX_CHOICES, cutoff=50)]

    def reload(self, directory: Path | None = None) -> list[Problem]:
        """Load content again (from where it was loaded first); on any problem keep
        serving the old content."""
        try:
            content = load_content(directory or self.content_dir, commands={spec.name for spec in self.registry})
        except ContentError as exc:
            return exc.problems
        router = Router(content, self.registry)
        router.warm()
        self.content, self.router = content, router
        return []
