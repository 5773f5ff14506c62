"""The store in one SQLite file (or `:memory:`), through aiosqlite.

One connection does every read and write, so writes never race inside a process; across
processes `BEGIN IMMEDIATE` plus `busy_timeout` queue writers instead of failing. WAL
with `synchronous=FULL`: a commit the member saw confirmed survives `kill -9` and power
loss. A file SQLite won't write (read-only file or mount, `file:...?mode=ro`) is served
for reading.
"""
from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import time
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from pathlib import Path
from typing import Any, AsyncIterator

import aiosqlite

from bot.errors import StoreError
from bot.store.base import Store
from bot.store.migrations import MIGRATIONS, run_script
from bot.store.sql import Tx

BUSY_TIMEOUT_MS = 5000
log = logging.getLogger(__name__)


class SqliteStore(Store):
    """The store in one SQLite file (or `:memory:`)."""

    def __init__(self, path: str):
        super().__init__()
        self.path = path
        self._db: Tx | None = None
        # One connection serves every coroutine: a transaction must not interleave with
        # another's statements, so writes and reads take turns.
        # A unit of work holds it from its first write to its end.
        self._lock = asyncio.Lock()

    # --- lifecycle --------------------------------------------------------------------

    async def open(self, *, migrate: bool = True, check: bool = False) -> None:
        """Connect, set the pragmas, check and migrate. Any failure closes what was opened,
        so no worker thread outlives it (a live one keeps the process from exiting)."""
        if self.path != ":memory:" and not self._is_uri:
            self._prepare_location()
        try:
            self._db = await self._connect()
            await self._db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            self.read_only = await self._refuses_writes()
            if self.read_only:
                log.warning("The database %s is read-only: answering from it, saving nothing.", self.path)
            else:
                await self._use_wal()
            await self._db.execute("PRAGMA synchronous = FULL")
            await self._db.execute("PRAGMA foreign_keys = ON")
            if check and (problems := await self.quick_check()):
                raise StoreError(
                    f"The database {self.path} failed its integrity check ({problems[0]}; {len(problems)} problem(s) in all), so mlbot won't write to it. "
                    "Restore it from a backup (`mlbot db backup` makes one); `mlbot db check` lists the problems."
                )
            if migrate:
                await self._migrate()
        except BaseException as exc:
            await self.close()
            if isinstance(exc, sqlite3.Error):
                raise self._error(exc) from None
            raise

    def _prepare_location(self) -> None:
        """Create the file's folder; refuse a directory in the file's place."""
        path = Path(self.path)
        try:
            is_dir = path.is_dir()
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise self._error(exc) from None
        if is_dir:
            raise StoreError(f"{self.path} is a directory, not a database file. Point MLBOT_DB or --db at a file, e.g. {path / 'mlbot.sqlite3'}.")

    async def _connect(self) -> aiosqlite.Connection:
        """Open the file first, then hand the connection to aiosqlite: when aiosqlite's own
        open fails, its worker thread reports back after `asyncio.run` may have closed
        the loop ("Event loop is closed"). A connection handed over can't fail to open."""
        conn = await asyncio.to_thread(
            sqlite3.connect, self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False, uri=self._is_uri
        )
        return await aiosqlite.Connection(lambda: conn, iter_chunk_size=64)

    @property
    def _is_uri(self) -> bool:
        """`file:` URIs reach SQLite as such, e.g. `file:/data/mlbot.sqlite3?mode=ro`."""
        return self.path.startswith("file:")

    async def _refuses_writes(self) -> bool:
        """Whether SQLite won't write here (a read-only file, folder or mount, or `mode=ro`):
        rewrite the schema version unchanged, and undo it."""
        db = self._conn
        await db.execute("BEGIN IMMEDIATE")
        try:
            version = (await (await db.execute("PRAGMA user_version")).fetchone())[0]
            await db.execute(f"PRAGMA user_version = {version}")
            return False
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorname.startswith("SQLITE_READONLY"):
                return True
            raise
        finally:
            await self._rollback()

    async def _use_wal(self) -> None:
        """Switch to WAL. Two processes opening a new file at once make SQLite refuse
        the switch at once ("database is locked", no busy wait), so retry for up to the
        busy timeout."""
        deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
        while True:
            try:
                await self._conn.execute("PRAGMA journal_mode = WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.01)

    async def close(self) -> None:
        if self._db is not None:
            db, self._db = self._db, None
            await db.close()

    def _error(self, exc: BaseException) -> StoreError:
        full = "full" in str(exc).lower()
        return StoreError(self._explain(exc), member="I couldn't save that right now; nothing was changed.") if full else StoreError(self._explain(exc))

    def _explain(self, exc: BaseException) -> str:
        text = str(exc).lower()
        if "not a database" in text or "malformed" in text:
            return f"The database file {self.path} is not a SQLite database (or is damaged). Point MLBOT_DB or --db at another file, or move this one away."
        if "full" in text:
            return f"The database {self.path} could not be written: its disk is full (or the file reached its size limit), so nothing was saved. Free some space and try again."
        if "locked" in text or "busy" in text:
            return f"The database {self.path} stayed locked by another process for over {BUSY_TIMEOUT_MS // 1000} s. Try again in a moment; if it persists, stop the other mlbot process."
        if "readonly" in text or "unable to open" in text or "permission" in text or "read-only" in text:
            return f"Can't write the database {self.path}. Check that its folder exists and is writable, or point MLBOT_DB or --db elsewhere."
        return f"The database {self.path} can't be used ({exc}). Point MLBOT_DB or --db at another file."

    async def _migrate(self) -> None:
        db = self._conn
        version = (await (await db.execute("PRAGMA user_version")).fetchone())[0]
        if version > len(MIGRATIONS):
            raise StoreError(
                f"The database {self.path} was made by a newer mlbot (schema {version}, this one knows {len(MIGRATIONS)}). Upgrade mlbot or use another file."
            )
        if self.read_only and version < len(MIGRATIONS):
            raise StoreError(
                f"The database {self.path} is read-only and needs upgrading (schema {version} to {len(MIGRATIONS)}). Open it writable once, or point MLBOT_DB or --db at an upgraded copy."
            )
        for number, (_, sql) in enumerate(MIGRATIONS[version:], start=version + 1):
            await db.execute("BEGIN IMMEDIATE")
            try:
                current = (await (await db.execute("PRAGMA user_version")).fetchone())[0]
                if current < number:  # another process may have migrated meanwhile
                    await run_script(db, sql)
                    await db.execute(f"PRAGMA user_version = {number}")
                await db.execute("COMMIT")
            except BaseException:
                await self._rollback()
                raise

    @property
    def _conn(self) -> aiosqlite.Connection:
        if self._db is None:
            raise StoreError(f"The database {self.path} is not open.")
        return self._db

    @asynccontextmanager
    async def _open_transaction(self) -> AsyncIterator[Tx]:
        """One immediate transaction: all of it lands, or none."""
        db = self._conn
        if self.read_only:
            raise StoreError(
                f"Nothing can be saved right now: the database {self.path} is read-only (reading still works). "
                "Make it writable, or point MLBOT_DB or --db at a writable copy.",
                member="I can't save anything right now (reading still works), so nothing was changed.",
            )
        async with self._lock:
            try:
                await db.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise self._error(exc) from None
            try:
                yield db
                await db.execute("COMMIT")
            except sqlite3.Error as exc:
                await self._rollback()
                log.error("A write to the database %s failed: %s", self.path, exc)
                raise self._error(exc) from None
            except BaseException:
                await self._rollback()
                raise

    async def _rollback(self) -> None:
        """Undo the open transaction, if there still is one: after some errors (disk full,
        I/O) SQLite has rolled back itself, and a second ROLLBACK would fail and hide the
        error that matters."""
        db = self._conn
        if not db.in_transaction:
            return
        try:
            await db.execute("ROLLBACK")
        except sqlite3.Error as exc:
            log.error("Rolling back a failed write to the database %s failed too: %s", self.path, exc)

    async def quick_check(self) -> list[str]:
        """SQLite's `PRAGMA quick_check` (every page and b-tree, not index contents; linear
        in the file's size): the problems found, none when the file is sound."""
        async with self._lock:
            try:
                rows = await self._conn.execute_fetchall("PRAGMA quick_check")
            except sqlite3.DatabaseError as exc:  # damage bad enough stops the check itself
                return [str(exc)]
        problems = [row[0] for row in rows]
        return [] if problems == ["ok"] else problems

    async def backup(self, dest: str) -> None:
        """A consistent copy of the live database at `dest`, by SQLite's online backup API
        (one snapshot; writers in other processes carry on). It is written beside `dest`
        and renamed into place, so `dest` never holds half a copy."""
        target = Path(dest)
        if target.is_dir():
            raise StoreError(f"{dest} is a directory; name the backup file, e.g. {target / 'mlbot-backup.sqlite3'}.")
        if self.path != ":memory:" and target.resolve() == Path(self.path).resolve():
            raise StoreError(f"{dest} is the database itself; name another file for the backup.")
        partial = target.with_name(target.name + ".partial")
        try:
            copy = await asyncio.to_thread(sqlite3.connect, partial, check_same_thread=False)
            try:
                async with self._lock:  # not in the middle of another coroutine's transaction
                    await self._conn.backup(copy)
            finally:
                copy.close()
            os.replace(partial, target)
        except (sqlite3.Error, OSError) as exc:
            partial.unlink(missing_ok=True)
            raise StoreError(f"Can't write the backup {dest} ({exc}). Check that its folder exists and is writable.") from None

    def _turn(self, tx: Tx | None) -> AbstractAsyncContextManager[Any]:
        """The connection's turn for a query: inside a unit of work's transaction the unit
        holds it already; on its own, the query waits for it."""
        return nullcontext() if tx is not None else self._lock

    async def _rows(self, sql: str, params: tuple, tx: Tx | None) -> list[tuple]:
        try:
            async with self._turn(tx):
                return list(await self._conn.execute_fetchall(sql, params))
        except sqlite3.Error as exc:
            raise self._error(exc) from None

    async def _dicts(self, sql: str, params: tuple, tx: Tx | None) -> list[dict[str, Any]]:
        try:
            async with self._turn(tx):
                cursor = await self._conn.execute(sql, params)
                columns = [c[0] for c in cursor.description]
                return [dict(zip(columns, row)) for row in await cursor.fetchall()]
        except sqlite3.Error as exc:
            raise self._error(exc) from None
