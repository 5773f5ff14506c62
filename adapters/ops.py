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


def ops_app(observer: PrometheusObserver, checks: Mapping[str, HealthCheck]) -> web.Application:
    """`/healthz`: 200 when every check passes, else 503, with each check's result as JSON.
    `/metrics`: the Prometheus text format."""

    async def healthz(request: web.Request) -> web.Response:
        results = {name: await _run_check(check) for name, check in checks.items()}
        status = 200 if all(results.values()) else 503
        body = {"status": "ok" if status == 200 else "unhealthy", "checks": {k: "ok" if v else "failing" for k, v in results.items()}}
        return web.json_response(body, status=status)

    async def metrics(request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(observer.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    return app


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
        if record.exc_info:
            entry["traceback"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def use_json_logs(level: int = logging.INFO) -> None:
    root = logging.getLogger()
    for handler in root.handlers:
        handler.setFormatter(JsonFormatter())
    root.setLevel(level)
