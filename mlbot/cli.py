"""`mlbot`: chat in the terminal, ask one question, run the platforms, check content and the database.

With no subcommand, `mlbot` runs the platforms whose tokens are set, or the console
chat when none are: the one command a newcomer needs.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import io
import json
import sys
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, AsyncIterator, Iterator, TextIO

if TYPE_CHECKING:
    from bot.core import Core
    from bot.replies import Reply
    from bot.settings import Settings

# The composition root's entry point: it imports the rest of mlbot inside the functions
# that run a command, once the arguments are parsed, so `mlbot --help` costs little more
# than argparse and each command imports only what it runs.

# Commands whose parsers live in their own modules: `mlbot --help` lists them with these
# summaries, and a module is imported only when its command is on the command line (see
# `_parse`). The flag: whether the command takes the common options.
LAZY_COMMANDS = {
    "nudges": ("mlbot.nudges_cli", "weekly nudges by hand: preview, due, run --once", True),
    "db": ("mlbot.db_cli", "the database: check its pages, back it up", True),
    "data": ("mlbot.data_cli", "a member's data: export it as JSON, or delete it (requests by e-mail)", False),
}
# What `mlbot run` imports for a platform (its adapter, then /healthz and /metrics), by the
# names pip knows them by; the platform's extra installs them all.
PLATFORM_LIBRARIES = {
    "discord": ("DISCORD_TOKEN", {"discord": "discord.py", "aiohttp": "aiohttp", "prometheus_client": "prometheus-client"}),
    "slack": ("SLACK_BOT_TOKEN", {"slack_bolt": "slack-bolt", "slack_sdk": "slack-sdk", "aiohttp": "aiohttp", "prometheus_client": "prometheus-client"}),
}


def _common(*, top: bool) -> argparse.ArgumentParser:
    """The options every command takes, before or after its name. Only the top level
    holds their defaults: a subcommand's own default would overwrite `mlbot --db X ask`."""

    def default(value: object) -> object:
        return value if top else argparse.SUPPRESS

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--db", default=default(None), help="SQLite file (default: $MLBOT_DB, else the user data directory)")
    common.add_argument("--user", type=_member_name, default=default("console"), help="who is talking, e.g. alice (default: console)")
    common.add_argument("--admin", action="store_true", default=default(False), help="act as an admin (unanswered, stats, reload)")
    common.add_argument("--content", type=Path, default=default(None), help="content directory (default: $MLBOT_CONTENT, else the content/ folder shipped with the bot)")
    return common


def _member_name(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("give a name, e.g. --user alice")
    return text.strip()


def _parser(command: str | None = None) -> argparse.ArgumentParser:
    """The command line. Of LAZY_COMMANDS only `command` gets its real parser; the others
    are stand-ins that list it in the help and take any arguments."""
    common = _common(top=False)
    parser = argparse.ArgumentParser(prog="mlbot", description=__doc__.splitlines()[0], parents=[_common(top=True)])
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("chat", parents=[common], help="chat in the terminal (no credentials needed)")
    ask = sub.add_parser("ask", parents=[common], help='answer one message, or with "-" one per stdin line as JSON')
    ask.add_argument("text", nargs="*", help='the message, or "-" to read lines from stdin')
    ask.add_argument("--attachments", type=Path, metavar="DIR", help="write the replies' files (a salary chart, a data export) into DIR")
    sub.add_parser("run", parents=[common], help="run Discord/Slack (whichever tokens are set) and the nudge scheduler")
    content = sub.add_parser("content", parents=[common], help="content tools")
    content_sub = content.add_subparsers(dest="content_command", required=True)
    check = content_sub.add_parser("check", parents=[common], help="validate content files")
    check.add_argument("directory", nargs="?", type=Path)
    for name, (module, summary, takes_common) in LAZY_COMMANDS.items():
        if name != command:
            sub.add_parser(name, help=summary, add_help=False)
        elif takes_common:
            importlib.import_module(module).add_parser(sub, [common])
        else:
            importlib.import_module(module).add_parser(sub)
    for group in (sub, content_sub):
        _named_by_choices(group)
    return parser


def _named_by_choices(group: argparse.Action) -> None:
    """Errors name a missing or wrong subcommand by its choices, not by the `dest`
    the code reads it from ("required: {check}", not "required: content_command")."""
    group.metavar = "{" + ",".join(group.choices) + "}"


def _parse(argv: list[str] | None) -> argparse.Namespace:
    """Two passes: the first finds the command (a lazy one's stand-in takes any arguments),
    the second parses with that command's real parser and reports any usage error."""
    found, _ = _parser().parse_known_args(argv)
    return _parser(found.command).parse_args(argv)


def _missing_libraries(settings: Settings, *, platforms: bool, database: bool) -> list[str]:
    """What this install lacks for the command (a platform whose token is set, a PostgreSQL
    database), one line each naming the extra that installs it."""
    from bot.store import is_postgres

    needs = []
    if database and is_postgres(settings.db):
        needs.append(("The database is a postgresql:// URL", {"asyncpg": "asyncpg"}, "postgres"))
    for platform in settings.platforms if platforms else []:
        variable, libraries = PLATFORM_LIBRARIES[platform]
        needs.append((f"{variable} is set", libraries, platform))
    lines = []
    for reason, libraries, extra in needs:
        absent = [name for module, name in libraries.items() if importlib.util.find_spec(module) is None]
        if absent:
            lines.append(f"{reason} but {absent[0]} is not installed: pip install 'mlbot[{extra}]' (from a checkout: pip install '.[{extra}]')")
    return lines


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    import asyncio
    import logging

    from bot.content import ContentError, load_content
    from bot.settings import Settings
    from bot.store import StoreError

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = Settings.from_env(db=args.db)
    content_dir = args.content or settings.content_dir
    if args.command == "content":
        return check_content(args.directory or content_dir)
    runs = args.command == "run" or (args.command is None and bool(settings.platforms))
    backup = args.command == "db" and args.db_command == "backup"  # of SQLite only: PostgreSQL gets pointed to pg_dump
    missing = _missing_libraries(settings, platforms=runs, database=not backup)
    for line in missing:
        print(line, file=sys.stderr)
    if missing:
        return 1
    if args.command in ("db", "data"):
        from mlbot import data_cli, db_cli

        try:
            return asyncio.run((db_cli if args.command == "db" else data_cli).run(settings.db, args))
        except StoreError as exc:
            print(exc, file=sys.stderr)
            return 1
    try:
        content = load_content(content_dir)
    except ContentError as exc:
        print("The content has problems; fix them and start again:", file=sys.stderr)
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 1
    try:
        if args.command == "nudges":
            from mlbot import nudges_cli

            return asyncio.run(nudges_cli.run(content, settings.db, args))
        if args.command == "ask":
            return asyncio.run(_ask(content, settings, args, content_dir))
        if runs:
            return asyncio.run(_run(content, settings, content_dir))
        if args.command is None:
            for line in settings.missing_credentials():
                print(f"Not starting {line}", file=sys.stderr)
            print("Starting the console chat instead.", file=sys.stderr)
        asyncio.run(_chat(content, settings, args, content_dir))
        return 0
    except StoreError as exc:
        print(exc, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def check_content(directory: Path | None) -> int:
    from bot.content import ContentError, load_content, problem_summary
    from bot.handlers import build_registry

    try:
        content = load_content(directory, commands={spec.name for spec in build_registry()})
    except ContentError as exc:
        for line in problem_summary(exc.problems):
            print(line)
        print(f"{len(exc.problems)} problem(s) found.", file=sys.stderr)
        return 1
    print(
        f"Content OK: {len(content.roles)} roles, {len(content.bands)} salary bands, {len(content.questions)} practice questions, "
        f"{len(content.courses)} courses, {len(content.path_steps)} path steps, {len(content.faqs)} FAQs."
    )
    return 0


@asynccontextmanager
async def _core(content, settings: Settings, content_dir: Path | None, *, train_now: bool = True) -> AsyncIterator[Core]:
    from bot.core import Core
    from bot.store import open_store

    async with open_store(settings.db) as store:
        yield Core(content, store=store, content_dir=content_dir, train_now=train_now)


async def _chat(content, settings: Settings, args: argparse.Namespace, content_dir: Path | None) -> None:
    from adapters.console import chat

    async with _core(content, settings, content_dir) as core:
        await chat(core, args.user, is_admin=args.admin)


def _as_json(query: str, reply: Reply, files: list[Path]) -> str:
    from bot.replies import render_text

    return json.dumps(
        {"query": query, "command": reply.command, "title": reply.title, "text": render_text(reply), "sources": list(reply.sources), "ephemeral": reply.ephemeral,
         "attachments": [str(f) for f in files]},
        ensure_ascii=False,
    )


def _save(reply: Reply, directory: Path | None) -> list[Path]:
    """Write the reply's attachments into `directory` (`ask --attachments DIR`); their paths."""
    if directory is None:
        return []
    paths = [directory / Path(a.filename).name for a in reply.attachments]
    for path, attachment in zip(paths, reply.attachments):
        path.write_bytes(attachment.data)
    return paths


async def _ask(content, settings: Settings, args: argparse.Namespace, content_dir: Path | None) -> int:
    from bot.messages import Message
    from bot.replies import render_text

    if args.attachments is not None:
        try:
            args.attachments.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            print(f"Cannot write attachments to {args.attachments}: {exc.strerror}", file=sys.stderr)
            return 2
    async with _core(content, settings, content_dir, train_now=False) as core:  # one question: train only if it is free text
        if args.text == ["-"]:
            _reconfigure(sys.stdout, encoding="utf-8")  # JSON is UTF-8 whatever the locale says
            for query in _stdin_lines():
                if not query.strip():
                    continue
                reply = await core.handle(Message("console", args.user, query, is_admin=args.admin))
                print(_as_json(query, reply, _save(reply, args.attachments)), flush=True)
            return 0
        _reconfigure(sys.stdout)  # a strict locale (LC_ALL=C) prints "?" for what it lacks instead of failing
        text = _valid_text(" ".join(args.text))
        reply = await core.handle(Message("console", args.user, text, is_admin=args.admin))
        print(render_text(reply))
        for path in _save(reply, args.attachments):
            print(f"Attachment: {path}")
        return 0


def _stdin_lines() -> Iterator[str]:
    """stdin's lines as text whatever the locale; invalid UTF-8 bytes become U+FFFD."""
    for raw in sys.stdin.buffer:
        yield raw.decode("utf-8", "replace").rstrip("\r\n")


def _valid_text(text: str) -> str:
    """Undo the surrogate escapes Python puts in argv for bytes the locale can't decode."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _reconfigure(stream: TextIO, **options: str) -> None:
    if isinstance(stream, io.TextIOWrapper):
        stream.reconfigure(errors="replace", **options)


async def _run(content, settings: Settings, content_dir: Path | None) -> int:
    if not settings.platforms:
        print("No platform has all the credentials it needs, so there is nothing to run:", file=sys.stderr)
        for line in settings.missing_credentials():
            print(f"- {line}", file=sys.stderr)
        print("Try the bot without any: `mlbot chat` (or `mlbot ask \"salary senior\"`).", file=sys.stderr)
        return 2
    from adapters.ops import PrometheusObserver, use_json_logs
    from mlbot.runner import run_platforms
    from bot.core import Core
    from bot.store import open_store

    use_json_logs()
    async with open_store(settings.db, check=True) as store:  # a damaged file: refuse to start rather than write to it
        await run_platforms(Core(content, store=store, observer=PrometheusObserver(), content_dir=content_dir), settings)
    return 0
