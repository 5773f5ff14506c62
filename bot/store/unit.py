"""A unit of work: the store calls a message makes, committed as one transaction.

`Store.unit()` opens one for the task that calls it, and only that task joins it: a
message handled at the same time (in its own task, as every message is), the nudge
scheduler, or a task started inside the unit keeps its own transactions. The unit's
first write begins the transaction; from then on every write and read of that store in
the task goes through it, so a handler reads what it wrote. The block's end commits all
of it; an exception rolls all of it back. Reads before the first write run on their
own, as outside a unit, so a message that writes nothing holds no transaction.

On SQLite the transaction holds the store's one connection until the unit ends, so the
block must not wait for another task's store call (it would wait for the unit).
"""
from __future__ import annotations

import asyncio
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from contextvars import ContextVar
from typing import Any, AsyncIterator, Awaitable, Callable, Protocol

from bot.store.sql import Tx


class Transactional(Protocol):
    """What a unit needs of its store: a transaction (all of it lands, or none)."""

    def _transaction(self) -> AbstractAsyncContextManager[Tx]: ...


class Unit:
    """One task's open unit of work on one store."""

    def __init__(self, store: Transactional) -> None:
        self.store = store
        self.task = asyncio.current_task()  # a task started inside it copies the context variable, not the unit
        self.writes = 0  # writes made in it so far
        self.tx: Tx | None = None  # the transaction, once the first write began it
        self._open = AsyncExitStack()  # holds the transaction open until the unit ends

    async def write(self, work: Callable[[Tx], Awaitable[Any]]) -> Any:
        if self.tx is None:
            self.tx = await self._open.enter_async_context(self.store._transaction())
        self.writes += 1
        return await work(self.tx)


_CURRENT: ContextVar[Unit | None] = ContextVar("bot.store.unit", default=None)


def current(store: object) -> Unit | None:
    """The calling task's open unit of work on `store`, if any."""
    unit = _CURRENT.get()
    return unit if unit is not None and unit.store is store and unit.task is asyncio.current_task() else None


@asynccontextmanager
async def unit_of_work(store: Transactional) -> AsyncIterator[Unit]:
    """A unit of work on `store` for the calling task (units don't nest)."""
    open_unit = _CURRENT.get()
    if open_unit is not None and open_unit.task is asyncio.current_task():
        raise RuntimeError("a unit of work is already open in this task")
    unit = Unit(store)
    token = _CURRENT.set(unit)
    try:
        async with unit._open:  # commits, or rolls back on the block's exception
            yield unit
    finally:
        _CURRENT.reset(token)
