"""Operating `mlbot run`: Prometheus metrics, `/healthz`, and JSON logs.

Kept out of `bot/` so the core never needs prometheus-client or a web server; the core
reports through `bot.observe.Observer`, which `PrometheusObserver` implements.
"""
from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Awaitable, Callable, Mapping

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest

from adapters.supervisor import ServiceStatus, State
from bot.observe import Observer

HealthCheck = Callable[[], Awaitable[bool]]
CHECK_TIMEOUT = 2.0


class PrometheusObserver(Observer):
    """Replies by command, reply latency, router fallbacks, nudge outcomes, platform 429s."""

    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry()
        self.replies = Counter("mlbot_replies_total", "Replies sent, by platform and command", ["platform", "command"], registry=self.registry)
        self.latency = Histogram(
            "mlbot_reply_seconds", "Time to produce a reply in the core", ["platform"], registry=self.registry,
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
        )
        self.fallbacks = Counter("mlbot_router_fallbacks_total", "Messages the router could not answer", ["platform"], registry=self.registry)
        self.nudges = Counter("mlbot_nudges_total", "Nudges by outcome (claimed, sent, failed, skipped)", ["outcome"], registry=self.registry)
        self.limited = Counter("mlbot_platform_429_total", "Rate-limit answers from a platform", ["platform"], registry=self.registry)

    def reply(self, platform: str, command: str, seconds: float) -> None:
        self.replies.labels(platform, command or "unknown").inc()
        self.latency.labels(platform).observe(seconds)
        if command == "fallback":
            self.fallbacks.labels(platform).inc()

    def nudge(self, outcome: str) -> None:
        self.nudges.labels(outcome).inc()

    def rate_limited(self, platform: str) -> None:
        self.limited.labels(platform).inc()


def ops_app(observer: PrometheusObserver, checks: Mapping[str, HealthCheck],
            services: Mapping[str, Callable[[], ServiceStatus]] | None = None) -> web.Application:
    """`/healthz`: the checks' results and the supervised services' states as JSON;
    `/metrics`: the Prometheus text format.

    A check named after a service (`discord`, `slack`) is that service's own: its failing,
    like the service restarting after an error, makes the status "degraded" and the answer
    still 200, because the process keeps serving the other platforms and a liveness probe
    should not restart it over one (the supervisor is already restarting that service).
    Any other failing check (the database, which every service needs) makes it
    "unhealthy" and 503."""
    services = services or {}

    async def healthz(request: web.Request) -> web.Response:
        results = {name: await _run_check(check) for name, check in checks.items()}
        states = {name: service_health(read(), results.get(name, True)) for name, read in services.items()}
        if not all(ok for name, ok in results.items() if name not in services):
            status, word = 503, "unhealthy"
        else:
            status, word = 200, "ok" if all(entry["status"] == "ok" for entry in states.values()) else "degraded"
        body: dict[str, object] = {"status": word, "checks": {k: "ok" if v else "failing" for k, v in results.items()}}
        if states:
            body["services"] = states
        return web.json_response(body, status=status)

    async def metrics(request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(observer.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    return app


def service_health(status: ServiceStatus, check_ok: bool) -> dict[str, object]:
    """A service is "restarting" after an error, "failing" while running with its own check
    failing (connecting, reconnecting), else "ok"; the last error is shown until it is ok."""
    if status.state is State.RESTARTING:
        word = "restarting"
    else:
        word = "ok" if check_ok else "failing"
    entry: dict[str, object] = {"status": word, "restarts": status.restarts}
    if word != "ok" and status.error:
        entry["error"] = status.error
    return entry


async def _run_check(check: HealthCheck) -> bool:
    try:
        return bool(await asyncio.wait_for(check(), CHECK_TIMEOUT))
    except Exception:  # a check that raises or hangs is a failing check
        return False


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, and the traceback if any.
    Log calls in this project never include member text or tokens; the platform
    adapters redact tokens their libraries log."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:  # as a filter left it: the token redactors rewrite it
            entry["traceback"] = record.exc_text
        return json.dumps(entry, ensure_ascii=False)


def use_json_logs(level: int = logging.INFO) -> None:
    root = logging.getLogger()
    for handler in root.handlers:
        handler.setFormatter(JsonFormatter())
    root.setLevel(level)
