"""Member progress: path steps and courses done, practice cards and reviews (which also
date the study activity behind streaks), open mock interviews, usage for admins, nudge
subscriptions and sends, and conversation state.

- `bot.store.base.Store`: every query, portable SQL; `bot.store.nudges`: the nudge
  queries and their exactly-once contract; `bot.store.migrations`: the schema;
  `bot.store.unit`: a message's unit of work (`Store.unit`), one transaction;
- `bot.store.sqlite.SqliteStore` (the default) and `bot.store.postgres.PostgresStore`
  (`MLBOT_DB=postgresql://...`, for replicas): connections and transactions.

Import from here: `open_store(target)` picks the backend.
"""
from __future__ import annotations

import importlib
from contextlib import asynccontextmanager
from typing import AsyncIterator

from bot.errors import StoreError
from bot.srs import CardState
from bot.store.base import MemberContext, MessageRecord, MockSession, Outcome, Store, Unanswered, Visits
from bot.store.migrations import MIGRATIONS, PERSONAL_TABLES
from bot.store.sql import Tx, iso, parse_time, split_member
from bot.store.sqlite import SqliteStore

__all__ = [
    "MIGRATIONS", "PERSONAL_TABLES", "CardState", "MemberContext", "MessageRecord", "MockSession", "Outcome", "SqliteStore", "Store", "StoreError",
    "Tx", "Unanswered", "Visits", "is_postgres", "iso", "make_store", "open_store", "parse_time", "split_member",
]


def is_postgres(target: str) -> bool:
    return target.startswith(("postgresql://", "postgres://"))


def make_store(target: str) -> Store:
    """A SQLite file path (or `:memory:`), or a `postgresql://` URL."""
    if is_postgres(target):
        # asyncpg is an optional extra: its backend loads only when a URL asks for it
        return importlib.import_module("bot.store.postgres").PostgresStore(target)
    return SqliteStore(target)


@asynccontextmanager
async def open_store(target: str, *, migrate: bool = True, check: bool = False) -> AsyncIterator[Store]:
    store = make_store(target)
    await store.open(migrate=migrate, check=check)
    try:
        yield store
    finally:
        await store.close()
