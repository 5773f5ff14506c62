"""`mlbot run` wiring: the platforms named by the environment, the nudge scheduler and the
operations endpoint start together, answer, and stop on SIGTERM."""
from __future__ import annotations

import asyncio
import os
import signal
import socket

import aiohttp

from adapters.ops import PrometheusObserver
from adapters.runner import run_platforms
from bot.core import Core
from bot.settings import Settings
from fakes.slack_server import FakeSlack, form_body, post_signed, slash_command

SECRET = "runner-signing-secret"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def wait_until_up(url: str, *, want: int | None = None) -> int:
    """Poll until `url` answers (with `want`, if given); coordination only, a few ms a try."""
    async with aiohttp.ClientSession() as http:
        for _ in range(1000):
            try:
                async with http.get(url) as response:
                    if want is None or response.status == want:
                        return response.status
            except aiohttp.ClientConnectionError:
                pass
            await asyncio.sleep(0.01)
    raise AssertionError(f"{url} never answered {want or 'at all'}")


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
            assert await wait_until_up(f"http://127.0.0.1:{ops_port}/healthz", want=200) == 200  # database and Slack up
            await wait_until_up(f"http://127.0.0.1:{slack_port}/slack/events")
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
