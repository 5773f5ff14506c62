"""The container files, checked without a Docker engine: what the Dockerfile copies,
sets and runs, and how compose.yaml wires the bot to PostgreSQL.

The parts that can run here do run: the image's environment goes through the real
`Settings.from_env`, and the image's HEALTHCHECK command is executed against the real
ops app. Building the image itself needs Docker and is not done here.
"""
from __future__ import annotations

import asyncio
import json
import re
import shlex
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

import pytest
import yaml
from aiohttp import web

from adapters.ops import PrometheusObserver, ops_app
from bot.content import load_content
from bot.settings import Settings
from bot.store import is_postgres

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
SECRETS = ("DISCORD_TOKEN", "SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "SLACK_SIGNING_SECRET")


# --- reading the Dockerfile ------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str
    workdir: str  # WORKDIR in effect when the instruction runs

    def words(self) -> list[str]:
        """The arguments: a JSON array (exec form) or shell words."""
        if self.args.startswith("["):
            return json.loads(self.args)
        return shlex.split(self.args)


def dockerfile() -> list[Instruction]:
    lines, current = [], ""
    for raw in (ROOT / "Dockerfile").read_text().splitlines():
        stripped = raw.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):  # a comment inside a continued instruction
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        lines.append(current + stripped)
        current = ""
    assert not current, "the Dockerfile ends in a line continuation"
    out, workdir = [], "/"
    for line in lines:
        keyword, _, args = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "WORKDIR":
            workdir = str(PurePosixPath(workdir) / args.strip())
        out.append(Instruction(keyword, args.strip(), workdir))
    return out


def of(keyword: str) -> list[Instruction]:
    return [i for i in dockerfile() if i.keyword == keyword]


def image_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for instruction in of("ENV"):
        for word in instruction.words():
            key, sep, value = word.partition("=")
            assert sep, f"use ENV KEY=VALUE, not the legacy form: {instruction.args}"
            env[key] = value
    return env


def copies() -> list[tuple[list[str], str]]:
    """(sources, absolute destination) of every COPY from the build context."""
    out = []
    for instruction in of("COPY"):
        words = [w for w in instruction.words() if not w.startswith("--")]
        assert not any(w.startswith("--from") for w in instruction.words()), "no multi-stage copies expected"
        *sources, dest = words
        out.append((sources, str(PurePosixPath(instruction.workdir) / dest) + ("/" if dest.endswith("/") else "")))
    return out


def image_path(source: str) -> str:
    """Where a file or directory of the checkout ends up in the image."""
    for sources, dest in copies():
        if source in sources:
            if dest.endswith("/") or len(sources) > 1:
                return str(PurePosixPath(dest) / PurePosixPath(source).name)
            return dest
    raise AssertionError(f"the Dockerfile never copies {source}")


def _pattern(pattern: str) -> re.Pattern:
    """A .dockerignore pattern as Docker reads it: anchored at the context root, `*` and
    `?` stay within one path segment, `**` spans any number of segments."""
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out + r"\Z")


def dockerignored(path: str) -> bool:
    """Whether .dockerignore keeps `path` (relative, POSIX) out of the build context
    (last matching pattern wins; a pattern matching a directory excludes what is under it)."""
    parts = PurePosixPath(path).parts
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    ignored = False
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        pattern = line.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        regex = _pattern(pattern.lstrip("!").strip("/"))
        if any(regex.match(prefix) for prefix in prefixes):
            ignored = not negate
    return ignored


# --- the Dockerfile ----------------------------------------------------------------------


def test_image_is_python_3_12_slim():
    """The image starts from the slim Python 3.12 base, the only stage."""
    assert [i.args for i in of("FROM")] == ["python:3.12-slim"]


def test_image_runs_as_a_user_it_creates_not_root():
    """The bot runs as a non-root user the image creates, set before the CMD."""
    instructions = dockerfile()
    users = [i.args for i in instructions if i.keyword == "USER"]
    assert users and users[-1] not in ("root", "0", "0:0")
    user = users[-1].split(":")[0]
    assert any(i.keyword == "RUN" and re.search(rf"\buseradd\b.*\b{user}\b", i.args) for i in instructions)
    keywords = [i.keyword for i in instructions]
    assert max(n for n, k in enumerate(keywords) if k == "USER") < keywords.index("CMD")


def test_image_installs_the_package_as_pyproject_describes_it():
    """`pip install --no-cache-dir` gets pyproject.toml, its readme and every package it lists."""
    installs = [i for i in of("RUN") if "pip install" in i.args]
    assert len(installs) == 1 and "--no-cache-dir" in installs[0].args and " -e " not in installs[0].args
    target, extras = re.fullmatch(r"(.*?)(\[.*\])?", shlex.split(installs[0].args.split("pip install", 1)[1].split("&&")[0])[-1]).groups()
    assert extras == "[all]"  # every platform and PostgreSQL: the image runs what its environment sets
    target = str(PurePosixPath(installs[0].workdir) / target)
    assert image_path("pyproject.toml") == f"{target}/pyproject.toml"
    assert image_path(PYPROJECT["project"]["readme"]) == f"{target}/{PYPROJECT['project']['readme']}"
    for package in {pattern.rstrip("*") for pattern in PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]}:
        assert image_path(package) == f"{target}/{package}"
    assert "mlbot" in PYPROJECT["project"]["scripts"]


def test_image_needs_nothing_the_dockerignore_leaves_out():
    """Every file the Dockerfile copies is in the checkout and in the build context."""
    for sources, _ in copies():
        for source in sources:
            path = ROOT / source
            assert path.exists(), source
            files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
            kept = [f for f in files if not dockerignored(f.relative_to(ROOT).as_posix())]
            assert kept == files, f"{source}: .dockerignore drops {sorted(set(files) - set(kept))}"


def test_dockerignore_keeps_secrets_databases_and_history_out():
    """The build context never carries .env, databases, .git or virtualenvs."""
    for path in (".env", ".env.local", "mlbot.sqlite3", "data/mlbot.sqlite3-wal", ".git/config", ".venv/bin/python",
                 "venv/bin/python", "bot/__pycache__/core.cpython-312.pyc", "mlbot.egg-info/PKG-INFO", "content/x.sqlite3"):
        assert dockerignored(path), path
    assert not dockerignored("content/roles.yaml") and not dockerignored("bot/core.py")


def test_image_content_is_where_mlbot_content_points():
    """MLBOT_CONTENT names the directory the content is copied to, and that content loads."""
    assert image_env()["MLBOT_CONTENT"] == image_path("content")
    assert load_content(ROOT / "content").roles  # what gets copied is valid content


def test_image_environment_gives_the_settings_the_bot_needs():
    """The image's ENV, read by the real Settings: content, a database in the /data volume, both ports."""
    env = image_env()
    settings = Settings.from_env(env)
    assert settings.content_dir == Path(image_path("content"))
    assert PurePosixPath(settings.db).parent == PurePosixPath("/data") and not is_postgres(settings.db)
    assert settings.http_port == 9100 and settings.port == 3000
    assert settings.platforms == []  # no token baked in: they come at run time
    assert not set(SECRETS) & set(env)
    volumes = [v for i in of("VOLUME") for v in i.words()]
    assert "/data" in volumes
    assert any(i.keyword == "RUN" and re.search(r"chown\s+\S+\s+(\S+\s+)*/data\b", i.args) for i in dockerfile())
    exposed = {w.split("/")[0] for i in of("EXPOSE") for w in i.words()}
    assert exposed == {str(settings.port), str(settings.http_port)}


def test_image_runs_mlbot_run_in_exec_form():
    """CMD is `mlbot run` in exec form, so mlbot is PID 1 and gets docker stop's SIGTERM."""
    (cmd,) = of("CMD")
    assert cmd.args.startswith("[") and cmd.words() == ["mlbot", "run"]
    assert not of("ENTRYPOINT")


def healthcheck_command() -> list[str]:
    (check,) = of("HEALTHCHECK")
    options, _, command = check.args.partition("CMD ")
    assert re.search(r"--timeout=\d+s", options) and re.search(r"--interval=\d+s", options)
    words = json.loads(command)
    assert words[0] == "python" and "/healthz" in command
    return [sys.executable, *words[1:]]


@pytest.mark.parametrize("healthy", [True, False])
async def test_image_healthcheck_follows_healthz(healthy):
    """The HEALTHCHECK command exits 0 when /healthz says ok and non-zero when it says unhealthy."""

    async def database() -> bool:
        return healthy

    runner = web.AppRunner(ops_app(PrometheusObserver(), {"database": database}), shutdown_timeout=0.1)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        check = await asyncio.create_subprocess_exec(
            *healthcheck_command(), env={"MLBOT_HTTP_PORT": str(port)},
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )
        code = await asyncio.wait_for(check.wait(), 20)
    finally:
        await runner.cleanup()
    assert (code == 0) is healthy and code in (0, 1)  # Docker reserves other exit codes


async def test_image_healthcheck_fails_when_nothing_listens():
    """The HEALTHCHECK command fails (exit 1) when the ops endpoint is not up."""
    import socket

    with socket.socket() as s:  # a port that was free a moment ago and has no listener
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    check = await asyncio.create_subprocess_exec(
        *healthcheck_command(), env={"MLBOT_HTTP_PORT": str(port)},
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )
    assert await asyncio.wait_for(check.wait(), 20) == 1


# --- compose.yaml ------------------------------------------------------------------------


def compose() -> dict:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


def environment(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.partition("=")[::2] for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def interpolate(value: str, shell: dict[str, str]) -> str:
    """Compose's `${VAR}` / `${VAR:-default}` substitution."""
    def sub(m: re.Match) -> str:
        return shell.get(m["name"]) or (m["default"] or "")

    return re.sub(r"\$\{(?P<name>\w+)(?::-(?P<default>[^}]*))?\}", sub, value)


def test_compose_runs_the_bot_against_its_postgres_service():
    """The bot's MLBOT_DB is a postgresql:// URL with the postgres service's host, user, password and db."""
    services = compose()["services"]
    assert set(services) == {"bot", "postgres"}
    postgres, bot = services["postgres"], services["bot"]
    assert postgres["image"].startswith("postgres:16")
    pg_env = environment(postgres)
    url = urlsplit(environment(bot)["MLBOT_DB"])
    assert is_postgres(environment(bot)["MLBOT_DB"])
    assert (url.scheme, url.hostname, url.port) == ("postgresql", "postgres", 5432)
    assert (url.username, url.password, url.path) == (pg_env["POSTGRES_USER"], pg_env["POSTGRES_PASSWORD"], "/" + pg_env["POSTGRES_DB"])
    assert "ports" not in postgres  # only the bot reaches the database


def test_compose_starts_the_bot_once_postgres_is_ready():
    """The bot waits for postgres's pg_isready healthcheck; the database keeps its data in a volume."""
    data = compose()
    postgres, bot = data["services"]["postgres"], data["services"]["bot"]
    assert bot["depends_on"]["postgres"]["condition"] == "service_healthy"
    test = postgres["healthcheck"]["test"]
    assert "pg_isready" in (test if isinstance(test, str) else " ".join(test))
    volume = postgres["volumes"][0].split(":")
    assert volume[1] == "/var/lib/postgresql/data" and volume[0] in data["volumes"]


def test_bot_state_survives_a_restart_with_postgres(monkeypatch):
    """With MLBOT_DB a URL, the bot's small state files still go to the /data volume compose mounts."""
    from mlbot.runner import state_dir

    env = {**image_env(), **environment(compose()["services"]["bot"])}
    monkeypatch.setenv("XDG_DATA_HOME", env["XDG_DATA_HOME"])  # platformdirs reads the process environment
    assert PurePosixPath(state_dir(Settings.from_env(env))).is_relative_to("/data")
    assert "bot-state:/data" in compose()["services"]["bot"]["volumes"]


def test_compose_builds_this_image_and_publishes_its_ports():
    """The bot is built from this Dockerfile and publishes Slack's port and the ops port."""
    bot = compose()["services"]["bot"]
    assert bot["build"] in (".", {"context": "."})
    env = environment(bot)
    published = {p.rsplit(":", 1)[-1] for p in bot["ports"]}
    assert published == {env["PORT"], env["MLBOT_HTTP_PORT"]} == {"3000", "9100"}
    assert bot["env_file"] == [{"path": ".env", "required": False}]
    assert bot["stop_grace_period"]  # longer than the runner's grace for replies in flight


@pytest.mark.parametrize(
    "shell, platforms",
    [
        ({}, []),
        ({"DISCORD_TOKEN": "discord-token"}, ["discord"]),
        ({"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_APP_TOKEN": "xapp-1"}, ["slack"]),
    ],
)
def test_compose_passes_tokens_through_from_the_environment(shell, platforms):
    """Tokens are never written in compose.yaml: each is `${VAR:-}`, so an unset one is empty and its platform stays off."""
    env = environment(compose()["services"]["bot"])
    for name in (*SECRETS, "DISCORD_GUILD_ID"):
        assert env[name] == f"${{{name}:-}}", name
    settings = Settings.from_env({k: interpolate(v, shell) for k, v in env.items()})
    assert settings.platforms == platforms
    assert settings.http_port == 9100 and is_postgres(settings.db)


def test_the_image_installs_the_postgresql_driver_compose_needs():
    """compose.yaml selects PostgreSQL, so the `[all]` the image installs must bring its driver."""
    extras = PYPROJECT["project"]["optional-dependencies"]
    assert any(re.match(r"asyncpg\b", dep) for dep in extras["postgres"])
    assert extras["all"] == ["mlbot[discord,slack,postgres]"]
