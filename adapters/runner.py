"""`mlbot run`: every platform whose credentials are set, the nudge scheduler, and the
operations endpoint, in one process; SIGTERM or Ctrl-C stops them cleanly.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from pathlib import Path
from typing import Awaitable, Callable

from bot import nudges
from bot.core import Core, utc_now
from bot.delivery import DirectSender
from bot.settings import Settings

log = logging.getLogger(__name__)
STOP_GRACE = 10.0  # seconds in-flight replies get to finish after SIGTERM


def state_dir(settings: Settings) -> Path:
    """Where small state files (the Discord command hash) live: beside a SQLite
    database, else the user data directory."""
    if "://" not in settings.db:
        return Path(settings.db).resolve().parent
    from platformdirs import user_data_path

    return user_data_path("mlbot", appauthor=False)


async def run_platforms(core: Core, settings: Settings) -> None:
    services: dict[str, Awaitable[None]] = {}
    senders: list[DirectSender] = []
    checks: dict[str, Callable[[], Awaitable[bool]]] = {"database": core.store.ping} if core.store else {}
    if "discord" in settings.platforms:
        from adapters.discord_app import DiscordSender, build_client, serve_discord

        folder = state_dir(settings)
        folder.mkdir(parents=True, exist_ok=True)
        client = build_client(core, settings, sync_state_dir=folder)
        senders.append(DiscordSender(client))
        services["discord"] = serve_discord(core, settings, sync_state_dir=folder, client=client)
        checks["discord"] = _async(lambda: client.is_ready() and not client.is_closed())
    if "slack" in settings.platforms:
        from adapters.slack_app import SlackSender, make_client, serve_slack

        slack_client = make_client(settings.slack_bot_token, base_url=settings.slack_api_url, observer=core.observer)
        senders.append(SlackSender(slack_client))
        checks["slack"] = _async(lambda: False)  # until serve_slack is connected or listening
        services["slack"] = serve_slack(core, settings, client=slack_client, health=checks)
    if core.store is not None and senders:
        services["nudges"] = nudges.serve(core.store, lambda: core.content, senders, utc_now, observer=core.observer)
    if settings.http_port is not None:
        services["ops"] = _serve_ops(core, settings.http_port, checks)
    log.info("starting: %s", ", ".join(services))
    await _run_until_stopped(services, core)


def _async(check: Callable[[], bool]) -> Callable[[], Awaitable[bool]]:
    async def run() -> bool:
        return check()

    return run


async def _serve_ops(core: Core, port: int, checks: dict[str, Callable[[], Awaitable[bool]]]) -> None:
    from aiohttp import web

    from adapters.ops import PrometheusObserver, ops_app

    if not isinstance(core.observer, PrometheusObserver):
        raise RuntimeError("the ops endpoint needs the Prometheus observer")
    runner = web.AppRunner(ops_app(core.observer, checks))
    await runner.setup()
    try:
        await web.TCPSite(runner, "0.0.0.0", port).start()
        log.info("health and metrics on port %s (/healthz, /metrics)", port)
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


async def _run_until_stopped(services: dict[str, Awaitable[None]], core: Core) -> None:
    """Run every service; the first to fail, or SIGTERM/SIGINT, stops them all: replies
    being produced get STOP_GRACE seconds to finish, then the services are cancelled
    (which closes the Discord client and drains the Slack server)."""
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stopping.set)
    tasks = {asyncio.create_task(service, name=name): name for name, service in services.items()}
    waiter = asyncio.create_task(stopping.wait())
    done, _ = await asyncio.wait([*tasks, waiter], return_when=asyncio.FIRST_COMPLETED)
    for task in done:
        if task is not waiter and task.exception() is not None:
            log.error("%s stopped: %s", tasks[task], task.exception())
    log.info("stopping: finishing the replies in flight")
    if not await core.drain(STOP_GRACE):
        log.warning("some replies were still running after %g s", STOP_GRACE)
    for task in tasks:
        task.cancel()
    await asyncio.wait(tasks, timeout=STOP_GRACE)
    waiter.cancel()
