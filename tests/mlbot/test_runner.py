"""`mlbot run` wiring: the platforms named by the environment, the nudge scheduler and the
operations endpoint start together, answer, and stop on SIGTERM; a service that fails is
started again after a growing wait while the others keep serving. The supervisors' sleep
and clock are injected: no test waits for a backoff in real time."""
from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket

import aiohttp
import pytest

from mlbot import runner
from adapters.ops import PrometheusObserver
from mlbot.runner import run_platforms
from adapters.supervisor import ServiceStatus, State, Supervisor
from bot.core import Core
from bot.settings import Settings
from fakes.slack_server import FakeSlack, form_body, post_signed, slash_command

SECRET = "runner-signing-secret"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def wait_until_up(url: str) -> None:
    """Poll until `url` answers at all; coordination only, a few ms a try."""
    async with aiohttp.ClientSession() as http:
        for _ in range(1000):
            try:
                async with http.get(url):
                    return
            except aiohttp.ClientConnectionError:
                pass
            await asyncio.sleep(0.01)
    raise AssertionError(f"{url} never answered")


async def test_run_serves_slack_health_metrics_and_stops_on_sigterm(content, store) -> None:
    """Slack in HTTP mode and /healthz + /metrics come up from the environment alone; a
    signed /mlbot is answered; SIGTERM stops everything and run_platforms returns."""
    async with FakeSlack() as fake:
        slack_port, ops_port = free_port(), free_port()
        settings = Settings.from_env(
            {"SLACK_BOT_TOKEN": "xoxb-1-2-runner", "SLACK_SIGNING_SECRET": SECRET, "PORT": str(slack_port), "MLBOT_HTTP_PORT": str(ops_port),
             "SLACK_API_URL": fake.api_url},
            db=store.path,
        )
        core = Core(content, store=store, observer=PrometheusObserver())
        running = asyncio.create_task(run_platforms(core, settings))
        try:
            await wait_until_up(f"http://127.0.0.1:{ops_port}/healthz")
            await wait_until_up(f"http://127.0.0.1:{slack_port}/slack/events")
            assert (await healthz(f"http://127.0.0.1:{ops_port}/healthz"))["status"] == "ok"  # database and Slack up
            body = form_body(slash_command("salary senior", fake.response_url("1")))
            status, _ = await post_signed(f"http://127.0.0.1:{slack_port}/slack/events", body, SECRET, content_type="application/x-www-form-urlencoded")
            assert status == 200
            await fake.wait_for("response_url")
            async with aiohttp.ClientSession() as http:
                async with http.get(f"http://127.0.0.1:{ops_port}/metrics") as response:
                    metrics = await response.text()
            assert 'mlbot_replies_total{command="salary",platform="slack"} 1.0' in metrics
        finally:
            if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None) or running.done():
                running.cancel()  # the runner never got as far as its signal handler: don't kill pytest
            else:
                os.kill(os.getpid(), signal.SIGTERM)
            await asyncio.wait_for(asyncio.gather(running, return_exceptions=True), 30)
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
        assert running.done() and not running.cancelled() and running.exception() is None


# --- supervision: a failing service is started again, the others keep serving -------------


class Backoff:
    """The supervisors' injected sleep and clock. Each wait is recorded and, when `hold`,
    lasts until the test ends it; the clock moves only by the waits or by hand."""

    def __init__(self, *, hold: bool = True) -> None:
        self.now = 0.0
        self.delays: list[float] = []
        self.hold = hold
        self._waits: asyncio.Queue[asyncio.Future[None]] = asyncio.Queue()

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.delays.append(seconds)
        if self.hold:
            over = asyncio.get_running_loop().create_future()
            await self._waits.put(over)
            await over
        else:
            await asyncio.sleep(0)  # let the other services run between failures
        self.now += seconds

    async def waiting(self) -> asyncio.Future[None]:
        """The next backoff a supervisor is in; set its result to end it."""
        return await asyncio.wait_for(self._waits.get(), 5)


class Flaky:
    """A service that raises the given errors, one per start, then runs until cancelled."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.starts = 0
        self.running = asyncio.Event()
        self.cancelled = False

    async def run(self) -> None:
        self.starts += 1
        if self.errors:
            raise self.errors.pop(0)
        self.running.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled = True
            raise


async def healthz(url: str) -> dict:
    async with aiohttp.ClientSession() as http:
        async with http.get(url) as response:
            assert response.status == 200
            return await response.json()


async def test_a_failing_service_is_restarted_with_growing_waits_while_the_others_keep_serving(content) -> None:
    """Discord raises twice then connects: Slack is never restarted, the ops endpoint keeps
    answering and says "degraded" with the error while Discord waits 1 s, then 2 s, and
    "ok" once it runs again; cancelling the runner stops every service."""
    backoff = Backoff()
    discord, slack = Flaky(ConnectionError("gateway closed"), ConnectionError("gateway closed")), Flaky()
    supervisors = [Supervisor(name, service.run, sleep=backoff.sleep, clock=backoff.clock) for name, service in (("discord", discord), ("slack", slack))]
    port = free_port()
    statuses = {s.name: s.status for s in supervisors}
    ops = Supervisor("ops", lambda: runner._serve_ops(Core(content, observer=PrometheusObserver()), port, {}, statuses), sleep=backoff.sleep, clock=backoff.clock)
    stopped = asyncio.create_task(runner._run_until_stopped([*supervisors, ops], Core(content)))
    url = f"http://127.0.0.1:{port}/healthz"
    try:
        first = await backoff.waiting()
        await wait_until_up(url)
        assert await healthz(url) == {"status": "degraded", "checks": {}, "services": {
            "discord": {"status": "restarting", "restarts": 0, "error": "ConnectionError: gateway closed"},
            "slack": {"status": "ok", "restarts": 0},
        }}
        first.set_result(None)
        second = await backoff.waiting()
        assert (await healthz(url))["services"]["discord"] == {"status": "restarting", "restarts": 1, "error": "ConnectionError: gateway closed"}
        second.set_result(None)
        await asyncio.wait_for(discord.running.wait(), 5)
        assert await healthz(url) == {"status": "ok", "checks": {}, "services": {
            "discord": {"status": "ok", "restarts": 2}, "slack": {"status": "ok", "restarts": 0},
        }}
        assert backoff.delays == [1.0, 2.0]
        assert (discord.starts, slack.starts) == (3, 1) and slack.running.is_set()
    finally:
        stopped.cancel()
        await asyncio.wait_for(asyncio.gather(stopped, return_exceptions=True), 5)
    assert discord.cancelled and slack.cancelled
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.ClientConnectionError):
            await http.get(url)  # the ops endpoint is closed too


async def test_shutdown_during_a_backoff_stops_everything_at_once(content) -> None:
    """Cancelling the runner while a service waits to be restarted ends the wait and the
    other services; the failed service is not started again."""
    backoff = Backoff()
    broken, healthy = Flaky(ConnectionError("refused")), Flaky()
    stopped = asyncio.create_task(runner._run_until_stopped(
        [Supervisor("slack", broken.run, sleep=backoff.sleep, clock=backoff.clock), Supervisor("nudges", healthy.run)], Core(content)))
    wait = await backoff.waiting()
    await asyncio.wait_for(healthy.running.wait(), 5)
    stopped.cancel()
    await asyncio.wait_for(asyncio.gather(stopped, return_exceptions=True), 5)
    assert wait.cancelled() and healthy.cancelled and broken.starts == 1


async def test_the_wait_doubles_up_to_a_minute_and_starts_over_after_a_stable_run() -> None:
    """A service failing at once over and over waits 1, 2, 4 ... 60, 60 s; one that ran a
    minute before failing waits 1 s again; its error is not shown once it has run a minute."""
    backoff = Backoff(hold=False)
    script = ["fail"] * 8 + ["run a minute, then fail", "fail"]
    errors_while_stable: list[str | None] = []
    finished = asyncio.Event()

    async def service() -> None:
        step = script.pop(0) if script else "run"
        if step == "run":
            finished.set()
            await asyncio.Event().wait()
        if step.startswith("run a minute"):
            backoff.now += 60
            errors_while_stable.append(supervisor.status().error)
        raise TimeoutError("login timed out")

    supervisor = Supervisor("discord", service, sleep=backoff.sleep, clock=backoff.clock)
    task = asyncio.create_task(supervisor.run())
    try:
        await asyncio.wait_for(finished.wait(), 5)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert backoff.delays == [1, 2, 4, 8, 16, 32, 60, 60, 1, 2]
    assert errors_while_stable == [None]
    assert supervisor.status() == ServiceStatus(State.RUNNING, 10, "TimeoutError: login timed out")


async def test_each_failure_is_one_error_line_with_its_traceback_only_when_the_error_changes(caplog) -> None:
    """One ERROR line per failure names the service and the error; the traceback comes with
    the first of a run of identical errors only; tokens never appear, nor a clean return's traceback."""
    settings = Settings.from_env({"DISCORD_TOKEN": "MTIz.secret-token", "SLACK_BOT_TOKEN": "xoxb-secret", "SLACK_SIGNING_SECRET": "s3cret"})
    backoff = Backoff(hold=False)

    async def returns() -> None:
        return None

    discord = Flaky(PermissionError("token MTIz.secret-token rejected"), PermissionError("token MTIz.secret-token rejected"),
                    OSError("address in use"))
    starts = iter([discord.run, discord.run, discord.run, returns, discord.run])
    supervisor = Supervisor("discord", lambda: next(starts)(), sleep=backoff.sleep, clock=backoff.clock, scrub=runner._scrubber(settings))
    caplog.set_level(logging.ERROR, logger="adapters.supervisor")
    task = asyncio.create_task(supervisor.run())
    try:
        await asyncio.wait_for(discord.running.wait(), 5)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    lines = [(r.levelname, r.getMessage(), r.exc_text is not None) for r in caplog.records]
    assert lines == [
        ("ERROR", "discord failed: PermissionError: token [redacted] rejected; starting it again in 1 s", True),
        ("ERROR", "discord failed: PermissionError: token [redacted] rejected; starting it again in 2 s", False),
        ("ERROR", "discord failed: OSError: address in use; starting it again in 4 s", True),
        ("ERROR", "discord failed: stopped without an error; starting it again in 8 s", False),
    ]
    assert "secret-token" not in caplog.text and caplog.text.count("Traceback (most recent call last)") == 2
    assert supervisor.status().restarts == 4


async def test_discord_rejected_at_login_is_restarted_while_slack_keeps_answering(content, store, tmp_path) -> None:
    """`mlbot run` with Discord and Slack: Discord's first login is refused (401). Slack still
    answers a slash command, /healthz says degraded with the login error; after the backoff
    the same Discord client logs in again and connects, and /healthz says ok."""
    from fakes.discord_server import FakeDiscord

    discord_fake = FakeDiscord()
    await discord_fake.start()
    discord_fake.fail("GET", "/users/@me", 401, {"message": "401: Unauthorized", "code": 0})
    backoff = Backoff()
    async with FakeSlack() as slack_fake:
        slack_port, ops_port = free_port(), free_port()
        settings = Settings.from_env(
            {"DISCORD_TOKEN": "MTIz.runner-token", "SLACK_BOT_TOKEN": "xoxb-1-2-runner", "SLACK_SIGNING_SECRET": SECRET,
             "PORT": str(slack_port), "MLBOT_HTTP_PORT": str(ops_port), "SLACK_API_URL": slack_fake.api_url},
            db=store.path,
        )
        core = Core(content, store=store, observer=PrometheusObserver())
        url = f"http://127.0.0.1:{ops_port}/healthz"
        with discord_fake.pointed_at():
            running = asyncio.create_task(run_platforms(core, settings, sleep=backoff.sleep, clock=backoff.clock))
            try:
                wait = await backoff.waiting()
                await wait_until_up(f"http://127.0.0.1:{slack_port}/slack/events")
                body = form_body(slash_command("salary senior", slack_fake.response_url("1")))
                status, _ = await post_signed(f"http://127.0.0.1:{slack_port}/slack/events", body, SECRET, content_type="application/x-www-form-urlencoded")
                assert status == 200
                await slack_fake.wait_for("response_url")
                await wait_until_up(url)
                health = await healthz(url)
                assert health["status"] == "degraded" and health["checks"]["discord"] == "failing"
                assert health["services"]["discord"] == {"status": "restarting", "restarts": 0, "error": "LoginFailure: Improper token has been passed."}
                assert health["services"]["slack"] == {"status": "ok", "restarts": 0}

                mark = discord_fake.mark()
                wait.set_result(None)
                await discord_fake.wait_for(lambda r: r.path == "op2", after=mark)  # identified on the gateway
                for _ in range(500):  # READY follows IDENTIFY; coordination only
                    health = await healthz(url)
                    if health["status"] == "ok":
                        break
                    await asyncio.sleep(0.01)
                assert health == {"status": "ok", "checks": {"database": "ok", "discord": "ok", "slack": "ok"}, "services": {
                    "discord": {"status": "ok", "restarts": 1}, "slack": {"status": "ok", "restarts": 0}, "nudges": {"status": "ok", "restarts": 0},
                }}
                assert backoff.delays == [1.0]
            finally:
                running.cancel()
                await asyncio.wait_for(asyncio.gather(running, return_exceptions=True), 30)
                await discord_fake.close()
