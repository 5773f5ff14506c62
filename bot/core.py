"""The platform-neutral core: a `Message` in, a `Reply` out.

`Core.handle` reads the member's context once (`Store.member_context`: the question the
bot asked them, a notice waiting, their timezone), routes the message once, checks
permissions, and then, in one unit of work (`Store.unit`), records the message
(`Store.record_message`: usage, the miss log, the question dropped, the notice taken)
and runs the command's handler, whose changes commit with the record or not at all. It
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
from typing import Awaitable, Callable, Mapping

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
from bot.store import MemberContext, MessageRecord, Outcome, Store
from bot.suggest import closest, did_you_mean, ranked

log = logging.getLogger(__name__)
MAX_CHOICES = 25  # Discord's autocomplete limit; Slack's external selects allow more
Answer = Callable[[str | None], Awaitable[Reply]]  # the reply, given the notice taken for it (if any)


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _conversation_record(message: Message, route: Route, clear_pending: bool) -> MessageRecord:
    """Clarify and fallback go to the miss log (for the admins' `unanswered`); small talk leaves nothing."""
    if route.command == SMALLTALK:
        return MessageRecord(clear_pending=clear_pending)
    outcome = Outcome.CLARIFY if route.command == CLARIFY else Outcome.FALLBACK
    return MessageRecord(unanswered=message.text, outcome=outcome, near=tuple(route.choices), clear_pending=clear_pending)


class Core:
    def __init__(
        self,
        content: Content,
        *,
        store: Store | None = None,
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
        """One read of the member's context, one routing, then the answer and what the
        message leaves behind in one transaction."""
        context = await self.store.member_context(message.member_key) if self.store is not None else MemberContext()
        route, clear_pending = self._route(message, context)
        if route.command in (FALLBACK, CLARIFY, SMALLTALK):

            async def converse(_: str | None) -> Reply:
                return self._converse(message, route)

            return await self._recorded(message, context, _conversation_record(message, route, clear_pending), converse)
        spec = self.registry.get(route.command)
        assert spec is not None
        if spec.admin and not message.is_admin:

            async def refuse(_: str | None) -> Reply:
                return Reply(text=f"`{spec.name}` is for admins only.", ephemeral=True, command=spec.name)

            return await self._recorded(message, context, MessageRecord(clear_pending=clear_pending), refuse)

        async def run(notice: str | None) -> Reply:
            return await self._run(spec, Request(message, route, dict(route.args), self, context, notice))

        return await self._recorded(message, context, MessageRecord(command=spec.name, clear_pending=clear_pending, take_notice=True), run)

    async def _recorded(self, message: Message, context: MemberContext, record: MessageRecord, answer: Answer) -> Reply:
        """The answer and the record in one unit of work: the handler's changes land with
        the record, or (on any exception) nothing of the message does. If the record
        can't be written, the answer is made without it: reads still answer, and a
        command that saves something says that nothing can be saved. If only the commit
        fails and the handler changed nothing, its answer stands."""
        if self.store is None:
            return await answer(None)
        reply: Reply | None = None
        recorded = changed = False
        try:
            async with self.store.unit() as unit:
                notice = await self.store.record_message(message.member_key, context, record, self.clock())
                recorded, before = True, unit.writes
                reply = await answer(notice)
                changed = unit.writes > before
        except StoreError as exc:
            if recorded and (reply is None or changed):
                raise  # the handler's own change failed: the member reads that nothing was saved
            log.warning("could not record a message of %s: %s", message.member_key, exc)
        return reply if reply is not None else await answer(None)

    async def _run(self, spec: CommandSpec, request: Request) -> Reply:
        """The command's handler; a personal reply made private, and the notice taken for
        the message in the footer unless the handler showed it."""
        reply = await spec.handler(request)
        if spec.personal and not reply.ephemeral:
            reply = dataclasses.replace(reply, ephemeral=True)
        if not reply.command:
            reply = dataclasses.replace(reply, command=spec.name)
        if request.notice and not request.notice_shown:
            reply = dataclasses.replace(reply, footer=f"{reply.footer}\n\n{request.notice}".strip())
        return reply

    def _converse(self, message: Message, route: Route) -> Reply:
        if route.command == SMALLTALK:
            return smalltalk(self, route)
        return clarify(self, route) if route.command == CLARIFY else fallback(self, route, message.text)

    def _route(self, message: Message, context: MemberContext) -> tuple[Route, bool]:
        """The message's route, and whether the question the bot asked (the pending action)
        is dropped: free text answering it goes to it ("yes"/"no"); anything else but the
        question's own buttons ("forget yes") drops it."""
        if message.command is not None:
            spec = self.registry.get(message.command)
            if spec is None:
                raise UserError("Unknown command. Say `help` to see what I can do.")
            return Route(spec.name, self._checked_args(spec, message.args)), False
        pending = context.pending_action
        if pending is not None:
            words = message.text.strip().lower().strip(".!")
            if words in ("yes", "y", "yes please", "confirm", "yes delete", "delete"):
                return Route(pending, {"confirm": "yes"}), False
            if words in ("no", "n", "cancel", "stop", "no thanks"):
                return Route(pending, {"confirm": "no"}), True
            spec = self.registry.get(words.split()[0]) if words else None
            return self.router.route(message.text), spec is None or spec.name != pending
        return self.router.route(message.text), False

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
