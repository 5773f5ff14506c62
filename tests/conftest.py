"""Shared fixtures: the real content, a core over a real SQLite file, a settable clock."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from bot.content import Content, load_content
from bot.core import Core
from bot.messages import Message
from bot.replies import Reply, render_text
from bot.store import open_store

ROOT = Path(__file__).resolve().parent.parent


class Clock:
    """A clock tests move by hand."""

    def __init__(self, now: dt.datetime):
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += dt.timedelta(**delta)


@pytest.fixture(scope="session")
def content() -> Content:
    return load_content(ROOT / "content")


@pytest.fixture
def clock() -> Clock:
    return Clock(dt.datetime(2026, 11, 23, 10, 0, tzinfo=dt.timezone.utc))


@pytest.fixture(scope="session")
def postgres_cluster():
    """One throwaway PostgreSQL server for the session, or the reason there is none."""
    import pg_cluster

    try:
        cluster = pg_cluster.start()
    except pg_cluster.Unavailable as exc:
        yield exc
        return
    yield cluster
    cluster.stop()


@pytest.fixture
async def postgres_url(postgres_cluster):
    """A fresh, empty database on the session's server; dropped afterwards."""
    import uuid

    import asyncpg

    from pg_cluster import Unavailable

    if isinstance(postgres_cluster, Unavailable):
        pytest.skip(f"PostgreSQL unavailable: {postgres_cluster}")
    name = f"mlbot_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(postgres_cluster.url)
    try:
        await admin.execute(f"CREATE DATABASE {name}")
    finally:
        await admin.close()
    yield postgres_cluster.url.rsplit("/", 1)[0] + f"/{name}"
    admin = await asyncpg.connect(postgres_cluster.url)
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        await admin.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_target(request, tmp_path) -> str:
    """Where the store lives: every store-backed test runs on both backends."""
    if request.param == "sqlite":
        return str(tmp_path / "mlbot.sqlite3")
    return request.getfixturevalue("postgres_url")


@pytest.fixture
async def store(db_target):
    async with open_store(db_target) as s:
        yield s


@pytest.fixture
def core(content, store, clock) -> Core:
    import random

    return Core(content, store=store, clock=clock, rng=random.Random(7))


@pytest.fixture
def ask(core):
    """Send a message as a member and get the reply's plain text."""

    async def ask(text: str, user: str = "alice", **kw) -> str:
        return render_text(await core.handle(Message("console", user, text, **kw)))

    return ask


@pytest.fixture
def ask_reply(core):
    async def ask_reply(text: str, user: str = "alice", **kw) -> Reply:
        return await core.handle(Message("console", user, text, **kw))

    return ask_reply
