"""`mlbot db check|backup`: look after the database.

- `check`: SQLite's `PRAGMA quick_check` over every page of the file, as it is (no
  migration); prints `ok`, or each problem and exits 1.
- `backup PATH`: a consistent copy of the live database by SQLite's online backup API,
  safe while `mlbot run` serves. For PostgreSQL, `pg_dump` is the tool.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bot.store import SqliteStore, is_postgres, open_store


def add_parser(subparsers, parents: list[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("db", parents=parents, help="the database: check its pages, back it up")
    sub = parser.add_subparsers(dest="db_command", required=True, metavar="{check,backup}")
    sub.add_parser("check", parents=parents, help="check every page (SQLite quick_check); exit 1 on damage")
    backup = sub.add_parser("backup", parents=parents, help="copy the live SQLite database to PATH")
    backup.add_argument("path", metavar="PATH", help="the backup file to write (replaced if it exists)")
    return parser


async def run(db: str, args: argparse.Namespace) -> int:
    if is_postgres(db):
        return await _postgres(db, args.db_command)
    if not db.startswith("file:") and not Path(db).exists():  # a `file:` URI: SQLite says
        print(f"There is no database at {db} yet (mlbot creates it on first use).", file=sys.stderr)
        return 1
    async with open_store(db, migrate=False) as store:
        assert isinstance(store, SqliteStore)
        if args.db_command == "backup":
            await store.backup(args.path)
            print(f"Backed up {db} to {args.path}.")
            return 0
        problems = await store.quick_check()
    if not problems:
        print(f"{db}: ok")
        return 0
    for problem in problems:
        print(problem)
    print(f"{db} is damaged ({len(problems)} problem(s)). Restore it from a backup; keep this file for inspection.", file=sys.stderr)
    return 1


async def _postgres(url: str, command: str) -> int:
    from bot.store.postgres import redacted

    if command == "backup":
        print(f"`mlbot db backup` copies SQLite files; for PostgreSQL use pg_dump, e.g. pg_dump --format=custom --file=mlbot.dump '{redacted(url)}'", file=sys.stderr)
        return 1
    async with open_store(url, migrate=False):
        pass
    print(f"{redacted(url)}: PostgreSQL answers; it verifies its own pages as it reads them, and pg_amcheck checks them all.")
    return 0
