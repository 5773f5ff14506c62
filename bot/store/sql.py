"""What every store module shares: the transaction protocol both backends provide, and
how times and member keys are written (ISO-8601 UTC text with microseconds, so they
compare as strings; `platform:user`)."""
from __future__ import annotations

import datetime as dt
from typing import Any, Iterable, Protocol


class Cursor(Protocol):
    rowcount: int

    async def fetchone(self) -> tuple | None: ...

    async def fetchall(self) -> Iterable[tuple]: ...


class Tx(Protocol):
    """A connection inside one transaction: the part of aiosqlite's API the queries use,
    which the PostgreSQL store provides too."""

    async def execute(self, sql: str, parameters: Iterable[Any] = ()) -> Cursor: ...

    async def execute_fetchall(self, sql: str, parameters: Iterable[Any] = ()) -> Iterable[tuple]: ...


def iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.timezone.utc).isoformat(timespec="microseconds")


def parse_time(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


def split_member(key: str) -> tuple[str, str]:
    platform, _, user = key.partition(":")
    if not platform or not user:
        raise ValueError(f"member key '{key}' must look like platform:user")
    return platform, user
