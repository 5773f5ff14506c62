"""Operating `mlbot run`: /healthz, /metrics, JSON logs and a clean stop on SIGTERM.

The ops app is served for real on 127.0.0.1 port 0 and read with a real HTTP client;
metrics come from real `Core.handle` calls and a real Slack client against the fake
Slack; the stop test sends this process a real SIGTERM.
"""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import io
import json
import logging
import os
import signal
import sys
import types
from typing import AsyncIterator, Iterator

import aiohttp
import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from mlbot import runner
from adapters.ops import JsonFormatter, PrometheusObserver, ops_app, use_json_logs
from adapters.slack_app import make_client
from adapters.supervisor import ServiceStatus, State, Supervisor
from bot.commands import CommandSpec, Registry
from bot.core import Core
from bot.request import Request
from bot.handlers import build_registry
from bot.messages import Message
from bot.replies import Reply
from bot.store import open_store
from fakes.slack_server import FakeSlack

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM and loop signal handlers are POSIX")


@contextlib.asynccontextmanager
async def served(app: web.Application) -> AsyncIterator[str]:
    """Serve `app` the way `_serve_ops` does, on a free port; yields the base URL."""
    app_runner = web.AppRunner(app, shutdown_timeout=0.1)
    await app_runner.setup()
    try:
        site = web.TCPSite(app_runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        yield f"http://127.0.0.1:{port}"
    finally:
        await app_runner.cleanup()


async def get(url: str) -> tuple[int, str, str]:
    async with aiohttp.ClientSession() as session:
        async with session.get(url) as response:
            return response.status, response.headers.get("Content-Type", ""), await response.text()


def registry_with(*extra: CommandSpec, replace: dict[str, object] | None = None) -> Registry:
    """The real commands, plus test commands, with some handlers swapped."""
    registry = Registry()
    for spec in build_registry():
        if replace and spec.name in replace:
            spec = dataclasses.replace(spec, handler=replace[spec.name])
        registry.add(spec)
    for spec in extra:
        registry.add(spec)
    return registry


# --- /healthz --------------------------------------------------------------------------


async def test_healthz_follows_the_database_down_and_back_up(store):
    """/healthz is 200 while the database answers, 503 naming it while it is gone, 200 again after."""
    app = ops_app(PrometheusObserver(), {"database": store.ping, "slack": runner._async(lambda: True)})
    async with served(app) as url:
        status, kind, body = await get(f"{url}/healthz")
        assert (status, json.loads(body)) == (200, {"status": "ok", "checks": {"database": "ok", "slack": "ok"}})
        assert kind.startswith("application/json")

        await store.close()  # the connection is gone: the store's own ping now fails
        status, _, body = await get(f"{url}/healthz")
        assert (status, json.loads(body)) == (503, {"status": "unhealthy", "checks": {"database": "failing", "slack": "ok"}})

        await store.open()  # the same store object, reconnected
        status, _, body = await get(f"{url}/healthz")
        assert (status, json.loads(body)) == (200, {"status": "ok", "checks": {"database": "ok", "slack": "ok"}})


async def test_healthz_counts_a_raising_or_hanging_check_as_failing(monkeypatch):
    """A check that raises or never answers makes /healthz 503 instead of an error page or a hang."""
    monkeypatch.setattr("adapters.ops.CHECK_TIMEOUT", 0.01)
    never = asyncio.Event()

    async def raises() -> bool:
        raise ConnectionError("database went away")

    async def hangs() -> bool:
        await never.wait()
        return True

    async with served(ops_app(PrometheusObserver(), {"raises": raises, "hangs": hangs})) as url:
        status, _, body = await get(f"{url}/healthz")
    assert (status, json.loads(body)["checks"]) == (503, {"raises": "failing", "hangs": "failing"})


async def test_healthz_is_degraded_not_unhealthy_while_a_service_restarts_or_reconnects(store):
    """A service restarting after an error, or running with its own check failing, makes
    /healthz "degraded" with that service's state and last error, still HTTP 200: the
    process serves the other platforms and a liveness probe must not restart it."""
    statuses = {
        "discord": ServiceStatus(State.RESTARTING, 2, "LoginFailure: Improper token has been passed."),
        "slack": ServiceStatus(State.RUNNING, 0, None),
        "nudges": ServiceStatus(State.RUNNING, 0, None),
    }
    slack_up = True
    checks = {"database": store.ping, "discord": runner._async(lambda: False), "slack": runner._async(lambda: slack_up)}
    app = ops_app(PrometheusObserver(), checks, {name: (lambda name=name: statuses[name]) for name in statuses})
    async with served(app) as url:
        status, _, body = await get(f"{url}/healthz")
        assert (status, json.loads(body)) == (200, {
            "status": "degraded",
            "checks": {"database": "ok", "discord": "failing", "slack": "ok"},
            "services": {
                "discord": {"status": "restarting", "restarts": 2, "error": "LoginFailure: Improper token has been passed."},
                "slack": {"status": "ok", "restarts": 0},
                "nudges": {"status": "ok", "restarts": 0},
            },
        })

        # Started again and still connecting: degraded, the last error still shown.
        statuses["discord"] = ServiceStatus(State.RUNNING, 3, "LoginFailure: Improper token has been passed.")
        status, _, body = await get(f"{url}/healthz")
        assert (status, json.loads(body)["status"]) == (200, "degraded")
        assert json.loads(body)["services"]["discord"] == {"status": "failing", "restarts": 3, "error": "LoginFailure: Improper token has been passed."}

        # Connected: ok, and the error is no longer shown.
        checks["discord"] = runner._async(lambda: True)
        status, _, body = await get(f"{url}/healthz")
        assert (status, json.loads(body)["status"]) == (200, "ok")
        assert json.loads(body)["services"]["discord"] == {"status": "ok", "restarts": 3}

        # Slack's own check failing, with no error behind it (reconnecting): degraded, no error field.
        slack_up = False
        status, _, body = await get(f"{url}/healthz")
        assert (status, json.loads(body)["status"], json.loads(body)["services"]["slack"]) == (200, "degraded", {"status": "failing", "restarts": 0})


async def test_healthz_is_unhealthy_when_the_database_fails_even_with_a_service_restarting(store):
    """A failing check that belongs to no service (the database, which all of them need) is 503."""
    status_of = {"discord": lambda: ServiceStatus(State.RESTARTING, 1, "ConnectionError: gateway closed")}
    app = ops_app(PrometheusObserver(), {"database": store.ping}, status_of)
    async with served(app) as url:
        await store.close()
        status, _, body = await get(f"{url}/healthz")
        await store.open()
    assert (status, json.loads(body)["status"], json.loads(body)["checks"]) == (503, "unhealthy", {"database": "failing"})
    assert json.loads(body)["services"]["discord"]["error"] == "ConnectionError: gateway closed"


# --- /metrics --------------------------------------------------------------------------


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    """The Prometheus text format parsed by prometheus_client's own parser:
    (sample name, labels) -> value."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_metrics_expose_replies_latency_fallbacks_nudges_and_429s(content, tmp_path, monkeypatch):
    """/metrics shows replies by command, the latency histogram, router fallbacks, nudges and Slack 429s."""
    observer = PrometheusObserver()
    async with open_store(str(tmp_path / "mlbot.sqlite3")) as store:
        core = Core(content, store=store, observer=observer)
        for text in ("salary senior", "role data engineer", "salary entry", "qwertyuiop zxcvbnm"):
            await core.handle(Message("console", "ada", text))
    observer.nudge("sent")
    observer.nudge("sent")
    observer.nudge("failed")
    # slack_sdk sleeps Retry-After plus up to a second of jitter; no jitter here.
    from slack_sdk.http_retry import builtin_async_handlers

    monkeypatch.setattr(builtin_async_handlers, "random", types.SimpleNamespace(random=lambda: 0.0))
    async with FakeSlack() as fake:
        fake.rate_limit("chat.postMessage", retry_after=0)  # once, then ok
        client = make_client("xoxb-test", base_url=fake.api_url, observer=observer)
        answer = await client.chat_postMessage(channel="C1", text="hello")
        assert answer["ok"] and len(fake.calls("chat.postMessage")) == 2

    async with served(ops_app(observer, {})) as url:
        status, kind, text = await get(f"{url}/metrics")
    assert status == 200 and kind.startswith("text/plain")
    got = samples(text)

    def value(name: str, **labels: str) -> float | None:
        return got.get((name, frozenset(labels.items())))

    assert value("mlbot_replies_total", platform="console", command="salary") == 2
    assert value("mlbot_replies_total", platform="console", command="role") == 1
    assert value("mlbot_replies_total", platform="console", command="fallback") == 1
    assert value("mlbot_router_fallbacks_total", platform="console") == 1
    assert value("mlbot_reply_seconds_count", platform="console") == 4
    assert 0 < value("mlbot_reply_seconds_sum", platform="console") < 10
    assert value("mlbot_reply_seconds_bucket", platform="console", le="+Inf") == 4
    buckets = [v for (name, labels), v in got.items() if name == "mlbot_reply_seconds_bucket"]
    assert len(buckets) == 13 and buckets == sorted(buckets)  # 12 bounds + Inf, cumulative
    assert value("mlbot_nudges_total", outcome="sent") == 2
    assert value("mlbot_nudges_total", outcome="failed") == 1
    assert value("mlbot_platform_429_total", platform="slack") == 1


# --- JSON logs -------------------------------------------------------------------------


def record(msg: str, *args: object, exc_info=None) -> logging.LogRecord:
    return logging.LogRecord("mlbot.test", logging.WARNING, __file__, 1, msg, args, exc_info)


def test_json_formatter_writes_one_line_of_json_per_record():
    """A log record becomes one line of JSON with time, level, logger and message."""
    line = JsonFormatter().format(record("started %s on port %d", "ops\nendpoint", 9100))
    assert "\n" not in line
    entry = json.loads(line)
    assert entry.keys() == {"time", "level", "logger", "message"}
    assert entry["level"] == "warning" and entry["logger"] == "mlbot.test"
    assert entry["message"] == "started ops\nendpoint on port 9100"
    assert entry["time"].endswith("Z") and entry["time"][10] == "T"


def test_json_formatter_keeps_the_traceback_of_a_logged_exception():
    """A logged exception carries its traceback, still on one line."""
    try:
        raise KeyError("missing-key")
    except KeyError:
        line = JsonFormatter().format(record("failed", exc_info=sys.exc_info()))
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["message"] == "failed"
    assert entry["traceback"].startswith("Traceback (most recent call last):")
    assert "KeyError: 'missing-key'" in entry["traceback"]


def test_json_formatter_keeps_a_traceback_a_filter_redacted():
    """A token a filter took out of a traceback (the Discord adapter's redactor) stays out of the JSON line."""
    from adapters.discord_app import TokenRedactor

    token = "MTIzNDU2.fake-bot-token.do-not-log"
    try:
        raise ValueError(f"bad header: Bot {token}")
    except ValueError:
        entry = record("login failed", exc_info=sys.exc_info())
    TokenRedactor(token).filter(entry)
    line = JsonFormatter().format(entry)
    assert token not in line and "bad header: Bot [redacted]" in json.loads(line)["traceback"]


async def test_an_error_is_logged_with_its_id_and_without_the_members_words(content):
    """When a reply fails, the JSON log has the error id the member saw, never what the member wrote."""

    async def broken(request: Request) -> Reply:
        raise RuntimeError("salary table unavailable")

    core = Core(content, registry=registry_with(replace={"salary": broken}))
    words = "salary: mine is 87654 and my manager is Grace Hopper"
    stream = io.StringIO()
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    root.handlers = [logging.StreamHandler(stream)]  # as `mlbot run` has after basicConfig
    try:
        use_json_logs()
        reply = await core.handle(Message("console", "ada", words))
    finally:
        root.handlers, level = saved
        root.setLevel(level)

    assert reply.command == "error"
    error_id = reply.text.split("error id ")[1].rstrip(".")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    entry = json.loads(lines[0])
    assert entry["level"] == "error" and entry["logger"] == "bot.core"
    assert error_id in entry["message"]
    assert "RuntimeError: salary table unavailable" in entry["traceback"]
    for secret in ("87654", "Grace", "Hopper", "manager", words):
        assert secret not in lines[0]


# --- SIGTERM ---------------------------------------------------------------------------


class Slow:
    """A `wait` command whose handler holds a reply in flight until released."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.release = asyncio.Event()
        self.order: list[str] = []

    async def handler(self, request: Request) -> Reply:
        self.started.set()
        await self.release.wait()
        self.order.append("reply finished")
        return Reply(text="finished in time")

    def spec(self) -> CommandSpec:
        return CommandSpec(name="wait", summary="wait until released", handler=self.handler)


class Service:
    """A service that runs until cancelled, like the Discord client or the Slack server."""

    def __init__(self, order: list[str]) -> None:
        self.started = asyncio.Event()
        self.order = order

    async def run(self) -> None:
        self.started.set()
        try:
            await asyncio.Event().wait()
        finally:
            self.order.append("service cancelled")


def watch_drain(core: Core) -> asyncio.Event:
    """Set when the runner starts waiting for the replies in flight."""
    draining = asyncio.Event()
    drain = core.drain

    async def watched(timeout: float) -> bool:
        draining.set()
        return await drain(timeout)

    core.drain = watched  # type: ignore[method-assign]
    return draining


@contextlib.contextmanager
def restore_signal_handlers() -> Iterator[None]:
    """`_run_until_stopped` leaves its handlers on the loop; take them off after the test."""
    try:
        yield
    finally:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


@posix_only
async def test_sigterm_lets_the_reply_in_flight_finish_then_stops_the_services(content):
    """On SIGTERM a reply being produced still goes out, then the services stop and run returns."""
    slow = Slow()
    core = Core(content, registry=registry_with(slow.spec()))
    draining = watch_drain(core)
    service = Service(slow.order)
    with restore_signal_handlers():
        in_flight = asyncio.create_task(core.handle(Message("console", "ada", "wait")))
        await slow.started.wait()
        stopped = asyncio.create_task(runner._run_until_stopped([Supervisor("slack", service.run)], core))
        await service.started.wait()  # the runner's signal handlers are in place by now
        assert signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, signal.SIG_IGN, None)

        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.wait_for(draining.wait(), 5)
        assert slow.order == [] and not stopped.done()  # waiting for the reply, services still up

        slow.release.set()
        await asyncio.wait_for(stopped, 5)
    assert slow.order == ["reply finished", "service cancelled"]
    assert (await in_flight).text == "finished in time"


@posix_only
async def test_sigterm_stops_after_the_grace_period_when_a_reply_hangs(content, monkeypatch):
    """A reply that never finishes does not keep the process alive past the grace period."""
    monkeypatch.setattr(runner, "STOP_GRACE", 0.01)
    slow = Slow()
    core = Core(content, registry=registry_with(slow.spec()))
    service = Service(slow.order)
    with restore_signal_handlers():
        in_flight = asyncio.create_task(core.handle(Message("console", "ada", "wait")))
        await slow.started.wait()
        stopped = asyncio.create_task(runner._run_until_stopped([Supervisor("slack", service.run)], core))
        await service.started.wait()
        assert signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, signal.SIG_IGN, None)
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.wait_for(stopped, 5)
    assert slow.order == ["service cancelled"]
    slow.release.set()
    assert (await in_flight).text == "finished in time"


async def test_healthz_follows_a_real_postgresql_outage(postgres_cluster, postgres_url):
    """With PostgreSQL, /healthz turns 503 when the server drops the bot's connections and
    refuses new ones, and 200 again once it accepts them, without restarting the bot."""
    import asyncpg

    name = postgres_url.rsplit("/", 1)[1]
    admin = await asyncpg.connect(postgres_cluster.url)
    try:
        async with open_store(postgres_url) as store, served(ops_app(PrometheusObserver(), {"database": store.ping})) as url:
            assert (await get(f"{url}/healthz"))[0] == 200

            await admin.execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS false")
            await admin.fetch("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name)
            status, _, body = await get(f"{url}/healthz")
            assert (status, json.loads(body)) == (503, {"status": "unhealthy", "checks": {"database": "failing"}})

            await admin.execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS true")
            status, _, body = await get(f"{url}/healthz")
            assert (status, json.loads(body)) == (200, {"status": "ok", "checks": {"database": "ok"}})
    finally:
        await admin.execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS true")
        await admin.close()

