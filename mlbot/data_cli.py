"""`mlbot data export|delete --user ID`: a member's data, for requests that arrive by e-mail.

- `export`: exactly what `mydata` shows the member, as pure JSON on stdout.
- `delete`: what `forget me` deletes; prints how many records went.

`--user` is the platform's user id (a Slack id with or without its team, `T1:U2` or
`U2`); `--platform` picks one when the id is a member on several platforms. An
unknown user exits 1, saying so on stderr.
"""
from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

from bot.store import Store, is_postgres, open_store


def add_parser(subparsers) -> argparse.ArgumentParser:
    """The subcommands take `--db` like the others, but their `--user` is required and
    has no console default, so they don't share the common options."""
    parser = subparsers.add_parser("data", help="a member's data: export it as JSON, or delete it (requests by e-mail)")
    sub = parser.add_subparsers(dest="data_command", required=True, metavar="{export,delete}")
    for name, text in (("export", "print everything stored about the member as JSON (what `mydata` shows)"),
                       ("delete", "delete everything stored about the member (what `forget me` does)")):
        command = sub.add_parser(name, help=text)
        command.add_argument("--user", required=True, metavar="ID", help="the member's user id on their platform, e.g. 123456789012345678 or U024BE7LH")
        command.add_argument("--platform", help="discord, slack or console, when the id is a member on several")
        command.add_argument("--db", default=argparse.SUPPRESS, help="SQLite file or postgresql:// URL (default: $MLBOT_DB)")
    return parser


async def run(db: str, args: argparse.Namespace) -> int:
    if not is_postgres(db) and not db.startswith("file:") and not Path(db).exists():
        print(f"There is no database at {db}, so nothing is stored about anyone there.", file=sys.stderr)
        return 1
    async with open_store(db) as store:
        key = await _member(store, args.user.strip(), args.platform)
        if key is None:
            return 1
        if args.data_command == "delete":
            rows = await store.forget(key)
            print(f"Deleted {rows} records of {key}.")
            return 0
        from bot.handlers.progress import export_json

        if isinstance(sys.stdout, io.TextIOWrapper):
            sys.stdout.reconfigure(encoding="utf-8")  # JSON is UTF-8 whatever the locale says
        print(export_json(await store.export(key)))
        return 0


async def _member(store: Store, user: str, platform: str | None) -> str | None:
    """The one member key `user` names, or None after saying why not."""
    keys = [k for k in await store.member_keys(user) if platform is None or k.split(":", 1)[0] == platform]
    where = f" on {platform}" if platform else ""
    if not keys:
        print(f"No member with user id {user}{where} is stored: nothing to export or delete.", file=sys.stderr)
        return None
    if len(keys) > 1:
        print(f"User id {user}{where} names {len(keys)} members ({', '.join(keys)}); pick one with --platform, or give the full id (e.g. T1:U2).", file=sys.stderr)
        return None
    return keys[0]
