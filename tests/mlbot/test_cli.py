"""`mlbot` keeps its command-line promises: options work before or after the subcommand,
bad input gets a usage line (exit 2), stdin of any encoding is answered, a database that
can't be opened ends the process promptly, and `db check` / `db backup` guard the data."""
from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from bot.store import open_store

ROOT = Path(__file__).resolve().parents[2]
T0 = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.timezone.utc)


def _env(tmp_path: Path, **extra: str | None) -> dict[str, str]:
    """The environment of a fresh user: no MLBOT_DB, a data directory under tmp_path;
    `extra` sets variables, or with None removes them."""
    env = {k: v for k, v in os.environ.items() if k not in ("MLBOT_DB", "MLBOT_CONTENT")}
    env.update(HOME=str(tmp_path / "home"), XDG_DATA_HOME=str(tmp_path / "data"))
    for key, value in extra.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def mlbot(tmp_path: Path, *args: str, stdin: bytes | None = None, timeout: float = 60, **env: str | None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mlbot", *args], input=stdin, capture_output=True, env=_env(tmp_path, **env), cwd=ROOT, timeout=timeout)


def members(db: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT platform, user_id FROM members ORDER BY id").fetchall()


@pytest.mark.parametrize("where", ["before", "after"])
def test_options_work_before_or_after_the_subcommand(tmp_path: Path, where: str) -> None:
    db = tmp_path / "chosen.sqlite3"
    options = ["--db", str(db), "--user", "bob"]
    argv = [*options, "ask", "done python fundamentals"] if where == "before" else ["ask", *options, "done python fundamentals"]
    run = mlbot(tmp_path, *argv)
    assert run.returncode == 0, run.stderr
    assert b"Marked done" in run.stdout
    assert members(db) == [("console", "bob")]
    assert not (tmp_path / "data").exists()  # nothing went to the default database


@pytest.mark.parametrize(
    ("argv", "problem"),
    [
        (["--user", "", "ask", "hi"], b"argument --user: give a name"),
        (["ask", "--user", "  ", "hi"], b"argument --user: give a name"),
        (["nudges", "due", "--at", "0001-01-01T00:00:00+14:00"], b"argument --at: '0001-01-01T00:00:00+14:00' is not an ISO time"),
        (["nudges", "run", "--once", "--at", "9999-12-31T23:59"], b"is not an ISO time"),
        (["nudges", "due", "--at", "next monday"], b"is not an ISO time"),
        (["nudges", "due", "--grace-hours", "1e300"], b"argument --grace-hours: '1e300' is not a number of hours"),
        (["content"], b"the following arguments are required: {check}"),
        (["nudges"], b"the following arguments are required: {preview,due,run}"),
        (["bogus"], b"invalid choice: 'bogus'"),
    ],
)
def test_bad_command_lines_get_a_usage_line_and_exit_2(tmp_path: Path, argv: list[str], problem: bytes) -> None:
    run = mlbot(tmp_path, "--db", str(tmp_path / "x.sqlite3"), *argv)
    assert run.returncode == 2, run.stderr
    assert run.stderr.startswith(b"usage: mlbot") and problem in run.stderr
    assert b"Traceback" not in run.stderr and b"_command" not in run.stderr


@pytest.mark.parametrize(
    "locale_env",
    [{"LC_ALL": "C"}, {"LC_ALL": "C", "PYTHONCOERCECLOCALE": "0", "PYTHONUTF8": "0"}],
    ids=["C", "C-ascii"],
)
def test_ask_stdin_answers_every_line_as_utf8_json_in_any_locale(tmp_path: Path, locale_env: dict[str, str]) -> None:
    """Invalid bytes are replaced, blank lines skipped, replies with accents (the books
    answer names Aurélien Géron) printed; the output is valid UTF-8, one JSON line each."""
    stdin = b"which books should I read\n\xff\xfe caf\xe9 salary\n\n   \r\nsalary senior\r\n"
    unset = {k: None for k in os.environ if k.startswith(("LANG", "LC_", "PYTHONIOENCODING", "PYTHONUTF8"))}
    run = mlbot(tmp_path, "--db", str(tmp_path / "x.sqlite3"), "ask", "-", stdin=stdin, **{**unset, **locale_env})
    assert run.returncode == 0 and b"Traceback" not in run.stderr, run.stderr
    rows = [json.loads(line) for line in run.stdout.decode("utf-8").splitlines()]
    assert [r["query"] for r in rows] == ["which books should I read", "\ufffd\ufffd caf\ufffd salary", "salary senior"]
    assert "Aurélien Géron" in rows[0]["text"] and rows[1]["command"] == "salary"


def _unopenable(tmp_path: Path, case: str) -> Path:
    if case == "newer schema":
        path = tmp_path / "future.sqlite3"
        with sqlite3.connect(path) as db:
            db.execute("PRAGMA user_version = 999")
    elif case == "open fails":
        path = tmp_path / "link.sqlite3"
        path.symlink_to(tmp_path / "missing" / "db.sqlite3")
    elif case == "directory":
        path = tmp_path / "data"
        path.mkdir()
    else:
        (tmp_path / "file").write_text("x")
        path = tmp_path / "file" / "db.sqlite3"
    return path


@pytest.mark.parametrize("case", ["newer schema", "open fails", "folder is a file", "directory"])
def test_a_database_that_cannot_be_opened_ends_the_process_promptly(tmp_path: Path, case: str) -> None:
    run = mlbot(tmp_path, "--db", str(_unopenable(tmp_path, case)), "ask", "progress", timeout=30)
    assert run.returncode == 1
    assert len(run.stderr.splitlines()) == 1 and run.stderr.rstrip().endswith(b"."), run.stderr  # one sentence
    assert b"Traceback" not in run.stderr and b"Event loop is closed" not in run.stderr
    if case == "directory":
        assert b"data is a directory" in run.stderr


def _database_with_rows(path: Path, count: int = 300) -> None:
    """A real mlbot database with enough progress rows to span many pages."""

    async def fill() -> None:
        async with open_store(str(path)) as store:
            for n in range(count):
                await store.mark_done(f"console:u{n % 20}", "course", f"course-{n}-{'x' * 40}", T0)

    asyncio.run(fill())


def _rows(conn: sqlite3.Connection) -> list[tuple]:
    return conn.execute("SELECT m.user_id, p.kind, p.item_id, p.done_at FROM progress p JOIN members m ON m.id = p.member_id ORDER BY 1, 2, 3").fetchall()


def test_db_backup_copies_a_live_database(tmp_path: Path) -> None:
    """Rows still in the write-ahead log of an open connection are in the copy too."""
    db, copy = tmp_path / "live.sqlite3", tmp_path / "backups" / "copy.sqlite3"
    _database_with_rows(db, 50)
    (tmp_path / "backups").mkdir()
    live = sqlite3.connect(db, isolation_level=None)
    live.execute("INSERT INTO progress SELECT id, 'step', 'python-fundamentals', '2026-03-02T09:00:00+00:00' FROM members")
    assert (db.parent / "live.sqlite3-wal").stat().st_size > 0
    run = mlbot(tmp_path, "--db", str(db), "db", "backup", str(copy))
    assert run.returncode == 0 and b"Backed up" in run.stdout, run.stderr
    with sqlite3.connect(copy) as backup:
        assert backup.execute("PRAGMA quick_check").fetchall() == [("ok",)]
        assert _rows(backup) == _rows(live) and len(_rows(backup)) == 70
    live.close()
    assert mlbot(tmp_path, "--db", str(copy), "db", "check").stdout == f"{copy}: ok\n".encode()


def test_db_check_and_run_refuse_a_corrupted_file(tmp_path: Path) -> None:
    db = tmp_path / "damaged.sqlite3"
    _database_with_rows(db)
    pages = db.stat().st_size // 4096
    garbage = random.Random(1)
    with db.open("r+b") as file:  # two pages in the middle of the progress table; the header stays intact
        file.seek(pages // 2 * 4096)
        file.write(garbage.randbytes(2 * 4096))
    check = mlbot(tmp_path, "--db", str(db), "db", "check")
    assert check.returncode == 1 and check.stdout.strip(), check.stderr
    assert b"is damaged" in check.stderr and b"Traceback" not in check.stderr
    slack = {"SLACK_BOT_TOKEN": "xoxb-1-2-test", "SLACK_SIGNING_SECRET": "s", "PORT": "0", "SLACK_API_URL": "http://127.0.0.1:9/api/"}
    run = mlbot(tmp_path, "--db", str(db), "run", timeout=60, **slack)
    assert run.returncode == 1 and b"failed its integrity check" in run.stderr, run.stderr


def test_db_backup_points_postgres_to_pg_dump(tmp_path: Path) -> None:
    run = mlbot(tmp_path, "--db", "postgresql://bot:s3cret@127.0.0.1:1/mlbot", "db", "backup", str(tmp_path / "x"))
    assert run.returncode == 1 and b"pg_dump" in run.stderr and b"s3cret" not in run.stderr
    assert not (tmp_path / "x").exists()


async def test_db_check_on_postgres_connects(tmp_path: Path, postgres_url: str) -> None:
    run = mlbot(tmp_path, "--db", postgres_url, "db", "check")
    assert run.returncode == 0 and b"PostgreSQL answers" in run.stdout, run.stderr


# --- start-up: parse first, import what the command runs --------------------------------

HEAVY = ("asyncio", "aiosqlite", "yaml", "rapidfuzz", "discord", "slack_bolt", "slack_sdk", "aiohttp", "asyncpg", "prometheus_client")


def _imported_by(tmp_path: Path, argv: list[str], *, hide: tuple[str, ...] = (), **env: str) -> tuple[subprocess.CompletedProcess, set[str]]:
    """Run `main(argv)` in a fresh interpreter, the modules in `hide` made unimportable as
    in an install without their extra: its result, and the modules it imported."""
    script = (
        "import sys\n"
        f"for name in {hide!r}: sys.modules[name] = None\n"
        "from mlbot.cli import main\n"
        "try:\n    code = main(sys.argv[1:])\nexcept SystemExit as exit:\n    code = exit.code\n"
        "print('--modules--', *sorted(sys.modules), sep='\\n')\n"
        "sys.exit(code)\n"
    )
    run = subprocess.run([sys.executable, "-c", script, *argv], capture_output=True, env=_env(tmp_path, **env), cwd=ROOT, timeout=60)
    modules = set(run.stdout.decode().split("--modules--\n", 1)[1].split()) if b"--modules--" in run.stdout else set()
    return run, modules


@pytest.mark.parametrize(("argv", "code"), [(["--help"], 0), (["ask", "--user", "", "hi"], 2), (["ask", "--bogus"], 2)])
def test_help_and_usage_errors_import_no_command_module(tmp_path: Path, argv: list[str], code: int) -> None:
    """`mlbot --help` parses its arguments before anything heavy is imported: no store,
    content, core, nudge or database command, event loop or platform library."""
    run, modules = _imported_by(tmp_path, argv)
    assert run.returncode == code, run.stderr
    assert {m for m in modules if m.startswith(("mlbot", "bot", "adapters"))} == {"mlbot", "mlbot.cli"}
    assert not {m.split(".")[0] for m in modules} & set(HEAVY)


def test_help_lists_the_lazy_commands_as_their_own_parsers_do() -> None:
    """The stand-ins in `mlbot --help` say what the commands' modules say: the help is the
    same whichever of them is built for real."""
    from mlbot.cli import LAZY_COMMANDS, _parser

    top = _parser().format_help()
    assert all(f"    {name} " in top for name in LAZY_COMMANDS)
    for name in LAZY_COMMANDS:
        assert _parser(name).format_help() == top, name


def test_a_lazy_command_gets_its_real_parser(tmp_path: Path) -> None:
    run = mlbot(tmp_path, "nudges", "due", "--help")
    assert run.returncode == 0 and b"usage: mlbot nudges due" in run.stdout and b"--grace-hours" in run.stdout, run.stderr


@pytest.mark.parametrize(
    ("argv", "env", "hide", "line"),
    [
        (["run"], {"DISCORD_TOKEN": "t"}, ("discord",), "DISCORD_TOKEN is set but discord.py is not installed: pip install 'mlbot[discord]'"),
        ([], {"DISCORD_TOKEN": "t"}, ("discord",), "DISCORD_TOKEN is set but discord.py is not installed: pip install 'mlbot[discord]'"),
        (["run"], {"DISCORD_TOKEN": "t"}, ("prometheus_client",), "DISCORD_TOKEN is set but prometheus-client is not installed: pip install 'mlbot[discord]'"),
        (["run"], {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_APP_TOKEN": "xapp-1"}, ("slack_bolt", "aiohttp"), "SLACK_BOT_TOKEN is set but slack-bolt is not installed: pip install 'mlbot[slack]'"),
        (["ask", "progress"], {"MLBOT_DB": "postgresql://bot@127.0.0.1:1/mlbot"}, ("asyncpg",), "The database is a postgresql:// URL but asyncpg is not installed: pip install 'mlbot[postgres]'"),
    ],
    ids=["run-discord", "bare-mlbot-discord", "discord-without-metrics", "slack", "postgres"],
)
def test_a_missing_library_names_the_extra_to_install(tmp_path: Path, argv: list[str], env: dict[str, str], hide: tuple[str, ...], line: str) -> None:
    """With the library hidden as if its extra were not installed, mlbot says which extra
    to install and exits 1 before starting anything."""
    run, _ = _imported_by(tmp_path, argv, hide=hide, **{"MLBOT_DB": str(tmp_path / "x.sqlite3"), **env})
    assert run.returncode == 1, run.stderr
    assert line.encode() in run.stderr and b"Traceback" not in run.stderr, run.stderr
    assert not (tmp_path / "x.sqlite3").exists()  # nothing was opened


# --- slow (one venv, ~30-60 s): a plain `pip install .` from the package index ---------------


def _pip_cannot_reach_an_index(output: str) -> bool:
    return any(sign in output for sign in ("(from versions: none)", "NewConnectionError", "Temporary failure in name resolution", "Network is unreachable"))


def _top_level_packages() -> set[str]:
    """The checkout's top-level packages, as pyproject.toml has setuptools find them."""
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]["include"]
    return {pattern.rstrip("*") for pattern in patterns}


def test_plain_install_is_the_console_and_sqlite_without_platform_libraries(tmp_path: Path) -> None:
    """A fresh venv (no system site-packages) with `pip install .` and no extras answers
    `mlbot ask help`, has none of the platform or PostgreSQL libraries, and `mlbot run`
    with a Discord token names the extra. Installs from a copy, as the Dockerfile does,
    so the build leaves nothing in the checkout."""
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for package in _top_level_packages():
        shutil.copytree(ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    install = subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", str(source)], capture_output=True, text=True, timeout=600)
    if install.returncode != 0 and _pip_cannot_reach_an_index(install.stdout + install.stderr):
        pytest.skip(f"pip cannot reach a package index: {(install.stderr.strip().splitlines() or ['?'])[-1]}")
    assert install.returncode == 0, install.stderr
    env = _env(tmp_path, MLBOT_CONTENT=str(ROOT / "content"), MLBOT_DB=str(tmp_path / "plain.sqlite3"))
    present = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import importlib.util as u; print(*[m for m in ('discord', 'slack_bolt', 'slack_sdk', 'asyncpg') if u.find_spec(m)])"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60, check=True,
    )
    assert present.stdout.strip() == ""
    ask = subprocess.run([str(venv / "bin" / "mlbot"), "ask", "help"], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert ask.returncode == 0, ask.stderr
    assert ask.stdout.encode() == mlbot(tmp_path, "ask", "help", MLBOT_DB=str(tmp_path / "checkout.sqlite3")).stdout  # what the checkout answers
    run = subprocess.run([str(venv / "bin" / "mlbot"), "run"], capture_output=True, text=True, env={**env, "DISCORD_TOKEN": "t"}, cwd=tmp_path, timeout=120)
    assert run.returncode == 1 and "pip install 'mlbot[discord]'" in run.stderr, run.stderr


def test_run_with_half_a_platform_says_what_is_missing_not_that_nothing_is_set(tmp_path: Path) -> None:
    run = mlbot(tmp_path, "run", SLACK_BOT_TOKEN="xoxb-test")
    assert run.returncode == 2
    assert b"No platform credentials are set" not in run.stderr
    assert b"SLACK_BOT_TOKEN is set; also set SLACK_APP_TOKEN" in run.stderr


def test_help_names_the_real_default_content_directory(tmp_path: Path) -> None:
    assert "the content/ folder shipped with the bot" in " ".join(mlbot(tmp_path, "--help").stdout.decode().split())
