"""`mlbot run`: every platform whose credentials are set, the nudge scheduler, and the
operations endpoint, in one process; a service that fails is started again (see
`adapters.supervisor`) while the others keep serving; SIGTERM or Ctrl-C stops them all.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from pathlib import Path
from typing import Awaitable, Callable, Iterable, Mapping
from urllib.parse import urlsplit

from adapters.supervisor import ServiceStatus, Sleep, Start, Supervisor
from bot.core import Core, utc_now
from bot.delivery import DirectSender
from bot.scheduler import Scheduler, sender_registry, serve_on_own_connection
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


async def run_platforms(core: Core, settings: Settings, *, sleep: Sleep = asyncio.sleep, clock: Callable[[], float] = time.monotonic) -> None:
    """Each service runs under its own `Supervisor`: one that fails is started again
    after a backoff (`sleep` and `clock` time it) while the others keep serving."""
    services: dict[str, Start] = {}
    senders: list[DirectSender] = []
    checks: dict[str, Callable[[], Awaitable[bool]]] = {"database": core.store.ping} if core.store else {}
    if "discord" in settings.platforms:
        from adapters.discord_service import DiscordService

        folder = state_dir(settings)
        folder.mkdir(parents=True, exist_ok=True)
        discord = DiscordService(core, settings, sync_state_dir=folder)
        senders.append(discord)
        services["discord"] = discord.run
        checks["discord"] = discord.ready
    if "slack" in settings.platforms:
        from adapters.slack_app import SlackSender, make_client, serve_slack

        slack_client = make_client(settings.slack_bot_token, base_url=settings.slack_api_url, observer=core.observer)
        senders.append(SlackSender(slack_client))
        checks["slack"] = _async(lambda: False)  # until serve_slack is connected or listening
        services["slack"] = lambda: serve_slack(core, settings, client=slack_client, health=checks)
    if core.store is not None and senders:
        store = core.store
        services["nudges"] = lambda: serve_on_own_connection(
            Scheduler(store, lambda: core.content, sender_registry(senders), utc_now, observer=core.observer)
        )
    scrub = _scrubber(settings)
    supervisors = {name: Supervisor(name, start, sleep=sleep, clock=clock, scrub=scrub) for name, start in services.items()}
    if settings.http_port is not None:
        port, statuses = settings.http_port, {name: s.status for name, s in supervisors.items()}
        supervisors["ops"] = Supervisor("ops", lambda: _serve_ops(core, port, checks, statuses), sleep=sleep, clock=clock, scrub=scrub)
    log.info("starting: %s", ", ".join(supervisors))
    await _run_until_stopped(supervisors.values(), core)


def _async(check: Callable[[], bool]) -> Callable[[], Awaitable[bool]]:
    async def run() -> bool:
        return check()

    return run


def _scrubber(settings: Settings) -> Callable[[str], str]:
    """Replaces the tokens and the database password in error text."""
    password = urlsplit(settings.db).password if "://" in settings.db else None
    candidates = (settings.discord_token, settings.slack_bot_token, settings.slack_app_token, settings.slack_signing_secret, password)
    secrets = [secret for secret in candidates if secret]

    def scrub(text: str) -> str:
        for secret in secrets:
            text = text.replace(secret, "[redacted]")
        return text

    return scrub


async def _serve_ops(core: Core, port: int, checks: dict[str, Callable[[], Awaitable[bool]]],
                     services: Mapping[str, Callable[[], ServiceStatus]]) -> None:
    from aiohttp import web

    from adapters.ops import PrometheusObserver, ops_app

    if not isinstance(core.observer, PrometheusObserver):
        raise RuntimeError("the ops endpoint needs the Prometheus observer")
    runner = web.AppRunner(ops_app(core.observer, checks, services))
    await runner.setup()
    try:
        await web.TCPSite(runner, "0.0.0.0", port).start()
        log.info("health and metrics on port %s (/healthz, /metrics)", port)
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


async def _run_until_stopped(supervisors: Iterable[Supervisor], core: Core) -> None:
    """Run every supervised service until SIGTERM/SIGINT (or, should it ever happen, a
    supervisor itself ending): replies being produced get STOP_GRACE seconds to finish,
    then the services are cancelled (which closes the Discord client and drains the
    Slack server). Cancelling this cancels them at once."""
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stopping.set)
    tasks = {asyncio.create_task(s.run(), name=s.name): s.name for s in supervisors}
    waiter = asyncio.create_task(stopping.wait())
    try:
        done, _ = await asyncio.wait([*tasks, waiter], return_when=asyncio.FIRST_COMPLETED)
        for task in done - {waiter}:
            log.error("%s supervisor stopped: %s", tasks[task], "cancelled" if task.cancelled() else task.exception())
        log.info("stopping: finishing the replies in flight")
        if not await core.drain(STOP_GRACE):
            log.warning("some replies were still running after %g s", STOP_GRACE)
    finally:  # also when this is cancelled: no service outlives the runner
        waiter.cancel()
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=STOP_GRACE)
