"""The Slack adapter end to end: real slack-bolt and slack_sdk against a fake Slack.

HTTP mode is served with `http_app()` on 127.0.0.1 and gets signed requests as Slack
sends them; Socket Mode connects to the fake's websocket. Assertions are about what a
member would see: where the answer lands, who can see it, and that it comes once.
"""
from __future__ import annotations

import asyncio
import json
import logging
import random
import re
import socket
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator

import pytest
from aiohttp import web

from adapters.slack_app import SERVER_ERROR_BACKOFF, SlackSender, build_app, http_app, make_client, serve_slack
from adapters.slack_render import MAX_BLOCKS, SECTION_LIMIT, render_home
from bot.commands import CommandSpec
from bot.core import Core
from bot.request import Request
from bot.delivery import Delivery
from bot.handlers import build_registry, clarify
from bot.messages import Message
from bot.replies import Reply
from bot.settings import Settings
from bot.understanding import Decision, Ranked
from fakes.slack_server import (
    FakeSlack,
    block_actions,
    direct_message,
    event_callback,
    form_body,
    interactive_body,
    json_body,
    mention,
    post_signed,
    slash_command,
)

SECRET = "test-signing-secret"
BOT_TOKEN = "xoxb-111-222-secretbottoken"
APP_TOKEN = "xapp-1-A1-333-secretapptoken"
PINGS = re.compile(r"<[!@]")
ROOT = Path(__file__).resolve().parents[2]


def settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = dict(db=":memory:", content_dir=None, discord_token=None, discord_guild_id=None,
                                  slack_bot_token=BOT_TOKEN, slack_app_token=None, slack_signing_secret=SECRET, port=0)
    return Settings(**{**values, **overrides})


@pytest.fixture(autouse=True)
def no_retry_jitter(monkeypatch):
    """slack_sdk sleeps Retry-After plus up to 1 s of jitter; keep tests fast."""
    monkeypatch.setattr(random, "random", lambda: 0.0)


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as server:
        yield server


class Gate:
    """Holds the `slow` test command until the test opens it."""

    def __init__(self) -> None:
        self.open = asyncio.Event()


@pytest.fixture
def gate() -> Gate:
    return Gate()


@pytest.fixture
def make_core(content, store, clock, gate):
    """A core over the real content and store, plus three test-only commands."""

    async def whoami(req: Request) -> Reply:
        m = req.message
        return Reply(text=f"member={m.member_key} admin={m.is_admin} tz={m.timezone}", ephemeral=True)

    async def essay(req: Request) -> Reply:
        text = " ".join(f"Paragraph sentence {i} says something true about ML interviews." for i in range(2500))
        return Reply(title="A very long answer", text=text, sources=("The Long Article",))

    async def slow(req: Request) -> Reply:
        await gate.open.wait()
        return Reply(text="Worth the wait.", sources=("Patience Weekly",))

    async def ambiguous(req: Request) -> Reply:
        """The core's own "did you mean" reply for a question with three close readings (as
        tests/bot/test_understanding.py builds it), whatever today's intent model would say."""
        router = req.core.router
        found, _ = router.entities(router.normalise("senior salary in europe, or the path"))
        decision = Decision("clarify", (Ranked("salary", 0.3), Ranked("faq:languages", 0.29), Ranked("path", 0.28)))
        return clarify(req.core, router.from_decision(decision, tuple(found)))

    def make() -> Core:
        registry = build_registry()
        registry.add(CommandSpec("whoami", "Who the adapter says I am.", whoami))
        registry.add(CommandSpec("essay", "A reply longer than one Slack message.", essay))
        registry.add(CommandSpec("slow", "A reply that takes its time.", slow))
        registry.add(CommandSpec("ambiguous", "A question the core reads more than one way.", ambiguous))
        return Core(content, store=store, clock=clock, rng=random.Random(7), registry=registry)

    return make


class HttpSlack:
    """Posts signed requests to the app served over HTTP, as Slack does."""

    def __init__(self, url: str, fake: FakeSlack):
        self.url = url
        self.fake = fake

    async def event(self, event: dict[str, Any], *, event_id: str | None = None, headers: dict[str, str] | None = None) -> int:
        body = json_body(event_callback(event, event_id=event_id))
        status, _ = await post_signed(self.url, body, SECRET, content_type="application/json", headers=headers)
        return status

    async def command(self, text: str, *, user: str = "U2", name: str = "1") -> int:
        body = form_body(slash_command(text, self.fake.response_url(name), user=user))
        status, _ = await post_signed(self.url, body, SECRET, content_type="application/x-www-form-urlencoded")
        return status

    async def click(self, button: dict[str, Any], **kw: Any) -> int:
        body = interactive_body(block_actions(button, **kw))
        status, _ = await post_signed(self.url, body, SECRET, content_type="application/x-www-form-urlencoded")
        return status


class Sleeps(list):
    """An injected `asyncio.sleep` that records how long it was asked to wait, and returns."""

    async def __call__(self, seconds: float) -> None:
        self.append(seconds)


@asynccontextmanager
async def served(core: Core, fake: FakeSlack, *, sleep: Sleeps | None = None) -> AsyncIterator[HttpSlack]:
    """One app instance in HTTP mode; leaving the block stops it (a restart is a new block)."""
    app = build_app(core, settings(), client=make_client(BOT_TOKEN, base_url=fake.api_url, sleep=sleep if sleep is not None else Sleeps()))
    runner = web.AppRunner(http_app(app, SECRET), shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield HttpSlack(f"http://127.0.0.1:{port}/slack/events", fake)
    finally:
        await runner.cleanup()


def section_texts(payload: dict[str, Any]) -> str:
    """Everything a member reads in a message: sections, contexts and the fallback."""
    parts = [payload.get("text", "")]
    for block in payload.get("blocks", []):
        if block["type"] in ("section", "header"):
            parts.append(block["text"]["text"])
        elif block["type"] == "context":
            parts.extend(e["text"] for e in block["elements"])
    return "\n".join(parts)


def buttons(payload: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The message's buttons by label."""
    return {e["text"]["text"]: e for b in payload.get("blocks", []) if b["type"] == "actions" for e in b["elements"]}


# --- mentions, DMs, /mlbot ----------------------------------------------------------------


async def test_mention_is_answered_in_a_thread_under_the_question(make_core, fake):
    """@mlbot with a question in a channel: the answer, with its sources, in the question's thread."""
    async with served(make_core(), fake) as slack:
        assert await slack.event(mention("what do senior ML engineers earn in Europe?", ts="1700000000.000111")) == 200
        [post] = await fake.wait_for("chat.postMessage")
    assert post["channel"] == "C1" and post["thread_ts"] == "1700000000.000111"
    text = section_texts(post)
    assert "$180,000" in text and "Europe" in text
    assert post["blocks"][-1]["type"] == "context" and "Sources:" in post["blocks"][-1]["elements"][0]["text"]


async def test_mention_inside_a_thread_answers_in_that_thread(make_core, fake):
    """A mention in an existing thread keeps the conversation in that thread."""
    async with served(make_core(), fake) as slack:
        await slack.event(mention("interview tips", ts="1700000000.000222", thread_ts="1700000000.000100"))
        [post] = await fake.wait_for("chat.postMessage")
    assert post["thread_ts"] == "1700000000.000100"


async def test_direct_message_is_answered_in_the_dm(make_core, fake):
    """A DM to the bot gets its answer in the same DM, not in a thread."""
    async with served(make_core(), fake) as slack:
        await slack.event(direct_message("ml engineer vs data scientist", channel="DU2"))
        [post] = await fake.wait_for("chat.postMessage")
    assert post["channel"] == "DU2" and "thread_ts" not in post
    assert "Sources:" in section_texts(post)


@pytest.mark.parametrize(
    "event",
    [
        mention("interview tips", user="UOTHERBOT", bot_id="B9"),
        mention("interview tips", user="UOTHERBOT", subtype="bot_message", bot_id="B9"),
        {**mention("interview tips"), "subtype": "bot_message"},
        {**direct_message("interview tips", channel="DU2"), "bot_id": "B9"},
        {**direct_message("interview tips", channel="DU2"), "subtype": "bot_message"},
    ],
    ids=["mention-bot_id", "mention-bot_message", "mention-subtype-only", "dm-bot_id", "dm-bot_message"],
)
async def test_messages_from_bots_are_never_answered(make_core, fake, event):
    """Another bot mentioning @mlbot (or writing to it) gets no answer, so two bots cannot loop."""
    async with served(make_core(), fake) as slack:
        assert await slack.event(event) == 200
        await slack.event(mention("interview tips", ts="1700000000.000999"))  # a barrier: answered after the first
        await fake.wait_for("chat.postMessage")
        await asyncio.sleep(0.05)
    [post] = fake.calls("chat.postMessage")
    assert post["thread_ts"] == "1700000000.000999"
    assert fake.calls("chat.postEphemeral") == []


async def test_slash_command_salary_answers_with_figures_and_source(make_core, fake):
    """`/mlbot salary senior europe` answers in the channel with the figures and a source."""
    async with served(make_core(), fake) as slack:
        assert await slack.command("salary senior europe") == 200
        [response] = await fake.wait_for("response_url")
    assert response["response_type"] == "in_channel"
    text = section_texts(response)
    assert "$180,000-$220,000+" in text and "Sources:" in text


async def test_slash_command_is_acknowledged_before_a_slow_answer(make_core, fake, gate):
    """Slack gets its ack at once; the answer follows when the core is done."""
    async with served(make_core(), fake) as slack:
        started = time.monotonic()
        assert await slack.command("slow") == 200
        assert time.monotonic() - started < 3
        assert fake.calls("response_url") == []
        gate.open.set()
        [response] = await fake.wait_for("response_url")
    assert "Worth the wait." in section_texts(response)


@pytest.mark.parametrize("surface", ["mention", "command", "dm"])
async def test_personal_data_is_never_shown_in_the_channel(make_core, fake, surface):
    """`progress` is private: ephemeral in a channel, or in the DM."""
    async with served(make_core(), fake) as slack:
        if surface == "mention":
            await slack.event(mention("progress"))
            [post] = await fake.wait_for("chat.postEphemeral")
            assert post["user"] == "U2" and post["channel"] == "C1"
            assert fake.calls("chat.postMessage") == []
        elif surface == "command":
            await slack.command("progress")
            [post] = await fake.wait_for("response_url")
            assert post["response_type"] == "ephemeral"
        else:
            await slack.event(direct_message("progress", channel="DU2"))
            [post] = await fake.wait_for("chat.postMessage")
            assert post["channel"] == "DU2"
    assert "Your progress" in section_texts(post)


async def test_very_long_reply_is_sent_in_parts_within_limits(make_core, fake):
    """An answer longer than one message arrives as several, in order, in the same thread."""
    async with served(make_core(), fake) as slack:
        await slack.event(mention("essay", ts="1700000000.000333"))
        await fake.wait_for("chat.postMessage", count=2)
        posts = fake.calls("chat.postMessage")
    assert {p["thread_ts"] for p in posts} == {"1700000000.000333"}
    for post in posts:
        assert len(post["blocks"]) <= MAX_BLOCKS
        assert all(len(b["text"]["text"]) <= SECTION_LIMIT for b in post["blocks"] if b["type"] == "section")
        assert all(b["text"]["text"].endswith("interviews.") for b in post["blocks"] if b["type"] == "section")
    assert "The Long Article" in section_texts(posts[-1])
    assert section_texts(posts[0]).count("Paragraph sentence 0 ") == 1


async def test_channel_ping_in_a_question_is_not_echoed_live(make_core, fake):
    """`<!channel>` in a question reaches neither the router nor the reply."""
    async with served(make_core(), fake) as slack:
        await slack.event(mention("<!channel> <!here> what do senior ML engineers earn in Europe? <@U9>"))
        await fake.wait_for("chat.postMessage")
        await slack.command("<!everyone> salary senior europe")
        await fake.wait_for("response_url")
    for call in fake.log:
        if call.method in ("chat.postMessage", "response_url"):
            dumped = json.dumps(call.payload)
            assert not PINGS.search(dumped), dumped
            assert "$180,000" in dumped


# --- identity, admins, timezone ------------------------------------------------------------


async def test_member_key_admin_and_timezone_come_from_slack(make_core, fake):
    """The core sees `slack:T1:U2`, the member's tz, and admin only for admins/owners (users.info, cached)."""
    fake.users["U3"] = {"is_owner": True, "tz": "America/New_York"}
    async with served(make_core(), fake) as slack:
        await slack.command("whoami", user="U2", name="plain")
        await slack.command("whoami", user="U3", name="owner")
        await slack.command("whoami", user="U3", name="again")
        await fake.wait_for("response_url", count=3)
    texts = {c.path.rsplit("/", 1)[1]: section_texts(c.payload) for c in fake.log if c.method == "response_url"}
    assert "member=slack:T1:U2 admin=False tz=Europe/Berlin" in texts["plain"]
    assert "member=slack:T1:U3 admin=True tz=America/New_York" in texts["owner"]
    assert [c["user"] for c in fake.calls("users.info")] == ["U2", "U3"]


async def test_admin_subcommands_only_for_workspace_admins(make_core, fake):
    """`/mlbot stats` works for a workspace admin; a member is refused by the core."""
    fake.users["UADMIN"] = {"is_admin": True}
    async with served(make_core(), fake) as slack:
        await slack.command("stats", user="UADMIN", name="admin")
        await slack.command("stats", user="U2", name="member")
        await fake.wait_for("response_url", count=2)
    texts = {c.path.rsplit("/", 1)[1]: section_texts(c.payload) for c in fake.log if c.method == "response_url"}
    assert "admins only" not in texts["admin"]
    assert "admins only" in texts["member"]


# --- buttons and App Home --------------------------------------------------------------------


async def test_practice_buttons_work_across_a_restart(make_core, fake):
    """Buttons carry their command, so a new app instance answers clicks on old messages;
    a second click on a grade gets the core's private note."""
    async with served(make_core(), fake) as slack:
        await slack.command("practice sql", name="practice")
        [question] = await fake.wait_for("response_url")
    assert question["response_type"] == "ephemeral"
    reveal = buttons(question)["Reveal answer"]
    assert reveal["value"].startswith("reveal ") and reveal["action_id"].startswith("mlbot:")

    async with served(make_core(), fake) as slack:  # a restart: new app, new core, same store
        assert await slack.click(reveal, response_url=fake.response_url("reveal")) == 200
        answer = (await fake.wait_for("response_url", count=2))[1]
        good = buttons(answer)["Good"]
        await slack.click(good, response_url=fake.response_url("grade1"))
        graded = (await fake.wait_for("response_url", count=3))[2]
        await slack.click(good, response_url=fake.response_url("grade2"))
        again = (await fake.wait_for("response_url", count=4))[3]
    assert answer["response_type"] == "ephemeral" and answer["replace_original"] is False
    assert "Graded good" in section_texts(graded)
    assert again["response_type"] == "ephemeral" and "already graded" in section_texts(again)


async def test_clarifying_choices_are_buttons_that_answer(make_core, fake):
    """Issue 14: "Did you mean..." arrives with one button per reading; a click on one is
    answered with that reading, the member's words (senior, Europe) riding along."""
    core = make_core()
    async with served(core, fake) as slack:
        await slack.event(mention("ambiguous", ts="1700000000.000701"))
        [question] = await fake.wait_for("chat.postMessage")
        choices = buttons(question)
        assert question["thread_ts"] == "1700000000.000701" and "Did you mean" in section_texts(question)
        assert [b["value"].split()[0] for b in choices.values()] == ["salary", "faq", "path"]
        for n, button in enumerate(choices.values()):
            assert await slack.click(button, response_url=fake.response_url(f"choice{n}")) == 200
        await fake.wait_for("response_url", count=3)
    by_choice = {c.path.rsplit("/", 1)[1]: c.payload for c in fake.log if c.method == "response_url"}
    assert sorted(by_choice) == ["choice0", "choice1", "choice2"]
    salary = section_texts(by_choice["choice0"])
    assert "Senior salaries: Europe" in salary and "$180,000" in salary
    for n, button in enumerate(choices.values()):
        expected = await core.handle(Message("slack", "T1:U2", button["value"]))
        assert expected.command in ("salary", "faq", "path") and expected.title
        assert expected.title in section_texts(by_choice[f"choice{n}"])


async def test_app_home_is_published_when_opened(make_core, fake):
    """Opening the App Home publishes the core's `home` reply for that member, with its buttons."""
    core = make_core()
    async with served(core, fake) as slack:
        await slack.event({"type": "app_home_opened", "user": "U2", "channel": "DU2", "tab": "home", "event_ts": "1.2"})
        [publish] = await fake.wait_for("views.publish")
    expected = await core.handle(Message("slack", "T1:U2", "home", command="home", timezone="Europe/Berlin"))
    assert publish["user_id"] == "U2"
    assert publish["view"] == render_home(expected)
    assert publish["view"]["blocks"][0]["text"]["text"] == "Your ML study home"
    assert buttons(publish["view"])


async def test_click_in_app_home_answers_in_the_dm_and_refreshes_home(make_core, fake):
    """App Home has no response_url: a click is answered in the DM and the home view republished."""
    async with served(make_core(), fake) as slack:
        await slack.event({"type": "app_home_opened", "user": "U2", "channel": "DU2", "tab": "home", "event_ts": "1.2"})
        [home] = await fake.wait_for("views.publish")
        practice = buttons(home["view"])["Practice"]
        await slack.click(practice, response_url=None, container={"type": "view", "view_id": "V1"})
        [post] = await fake.wait_for("chat.postMessage")
        await fake.wait_for("views.publish", count=2)
    assert fake.calls("conversations.open")[0]["users"] == "U2"
    assert post["channel"] == "DU2" and "Reveal answer" in buttons(post)


# --- Slack's delivery rules -----------------------------------------------------------------


async def test_bad_signature_or_stale_timestamp_is_refused(make_core, fake):
    """Requests not signed with our secret, or replayed later, get 401 and no answer."""
    async with served(make_core(), fake) as slack:
        body = json_body(event_callback(mention("salary senior europe")))
        bad, _ = await post_signed(slack.url, body, SECRET, content_type="application/json", signature="v0=" + "0" * 64)
        stale, _ = await post_signed(slack.url, body, SECRET, content_type="application/json", timestamp=int(time.time()) - 600)
        other, _ = await post_signed(slack.url, body, "another-secret", content_type="application/json")
    assert (bad, stale, other) == (401, 401, 401)
    assert fake.calls("chat.postMessage") == [] and fake.calls("auth.test") == []


async def test_refused_requests_leave_no_body_text_or_token_in_the_logs(make_core, fake, caplog):
    """A badly signed request, however big, is refused with one body-free line: neither the
    member's words nor the payload's token reach the logs, even at DEBUG."""
    caplog.set_level(logging.DEBUG)
    words = "my-private-question-about-my-salary-zq7"
    payload = event_callback(mention(words))
    payload["token"] = "verification-token-zq7"
    small = json_body(payload)
    big = json_body({**payload, "padding": words * 20_000})  # about 800 kB, under aiohttp's 1 MB cap
    async with served(make_core(), fake) as slack:
        for body in (small, big):
            status, _ = await post_signed(slack.url, body, SECRET, content_type="application/json", signature="v0=" + "0" * 64)
            assert status == 401
            status, _ = await post_signed(slack.url, body, "another-secret", content_type="application/json")
            assert status == 401
    assert "zq7" not in caplog.text
    assert all("zq7" not in str(r.args) for r in caplog.records)
    assert fake.calls("chat.postMessage") == []


@pytest.mark.parametrize(
    "body, content_type, signed, expected",
    [
        ('{"type": "event_callback", "event": ', "application/json", "signed", 400),
        ("[1, 2]", "application/json", "signed", 400),
        ("payload=%7Bnot+json", "application/x-www-form-urlencoded", "signed", 400),
        ('{"type": "event_callback", "event": ', "application/json", "another secret", 401),
        ("payload=%7Bnot+json", "application/x-www-form-urlencoded", "another secret", 401),
        ("{}", "application/json", "timestamp not a number", 401),
        (b'{"text": "\xff\xfe"}', "application/json", "forged", 401),  # not UTF-8: Slack's verifier cannot check it
    ],
)
async def test_a_body_that_is_not_a_slack_payload_gets_400_and_one_warning(make_core, fake, caplog, body, content_type, signed, expected):
    """Malformed JSON, signed or not, is a client error: 400 (401 when unsigned), at most one
    warning and no traceback."""
    caplog.set_level(logging.DEBUG)
    options: dict[str, Any] = {
        "signed": {},
        "another secret": {"secret": "another-secret"},
        "timestamp not a number": {"headers": {"x-slack-request-timestamp": "soon"}},
        "forged": {"signature": "v0=" + "0" * 64},
    }[signed]
    async with served(make_core(), fake) as slack:
        status, _ = await post_signed(slack.url, body, options.pop("secret", SECRET), content_type=content_type, **options)
    assert status == expected
    loud = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(loud) <= 1 and all(r.levelno == logging.WARNING and not r.exc_info for r in loud), [r.getMessage() for r in loud]


async def test_retried_event_is_answered_once(make_core, fake):
    """Slack's retry of an event (same event_id, X-Slack-Retry-Num) gets no second reply."""
    async with served(make_core(), fake) as slack:
        first = mention("interview tips", ts="1700000000.000401")
        assert await slack.event(first, event_id="EvSAME") == 200
        assert await slack.event(first, event_id="EvSAME", headers={"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"}) == 200
        await fake.wait_for("chat.postMessage")
        assert await slack.event(mention("interview tips", ts="1700000000.000402"), event_id="EvOTHER") == 200
        await fake.wait_for("chat.postMessage", count=2)
        await asyncio.sleep(0.05)
    threads = [p["thread_ts"] for p in fake.calls("chat.postMessage")]
    assert sorted(threads) == ["1700000000.000401", "1700000000.000402"]


async def test_rate_limited_reply_is_retried_after_retry_after(make_core, fake):
    """A 429 from chat.postMessage is retried after Retry-After; the member gets the answer once."""
    fake.rate_limit("chat.postMessage", retry_after=0)
    async with served(make_core(), fake) as slack:
        await slack.event(mention("what do senior ML engineers earn in Europe?"))
        attempts = await fake.wait_for("chat.postMessage", count=2)
        await asyncio.sleep(0.05)
    assert len(fake.calls("chat.postMessage")) == 2  # the 429, then the delivered reply
    assert attempts[0] == attempts[1]
    assert fake.calls("chat.postEphemeral") == []  # no apology: nothing was lost


@pytest.mark.parametrize("surface, status", [("mention", 500), ("mention", 503), ("command", 502)])
async def test_one_server_error_is_retried_once_after_a_backoff(make_core, fake, status, surface):
    """A single 5xx from chat.postMessage (or a response_url) is retried after a backoff:
    the member gets the answer, not an apology."""
    method = "chat.postMessage" if surface == "mention" else "response_url"
    fake.server_error(method, status=status)
    sleeps = Sleeps()
    async with served(make_core(), fake, sleep=sleeps) as slack:
        if surface == "mention":
            await slack.event(mention("what do senior ML engineers earn in Europe?"))
        else:
            await slack.command("salary senior europe")
        first, second = await fake.wait_for(method, count=2)
        await asyncio.sleep(0.05)
    assert first == second and "$180,000" in section_texts(second)
    assert len(fake.calls(method)) == 2
    assert sleeps == [SERVER_ERROR_BACKOFF]
    assert fake.calls("chat.postEphemeral") == []  # no apology


async def test_a_second_server_error_gives_the_apology(make_core, fake):
    """5xx is retried once, not forever: a second one ends in the apology."""
    fake.server_error("chat.postMessage", status=503, times=2)
    sleeps = Sleeps()
    async with served(make_core(), fake, sleep=sleeps) as slack:
        await slack.event(mention("interview tips"))
        [apology] = await fake.wait_for("chat.postEphemeral")
    assert "error id" in apology["text"]
    assert len(fake.calls("chat.postMessage")) == 2 and sleeps == [SERVER_ERROR_BACKOFF]


async def test_failure_while_answering_gives_an_apology_with_an_error_id(make_core, fake, caplog):
    """If posting the answer fails, the member gets a short apology whose id is in the log."""
    fake.fail("chat.postMessage", "invalid_blocks")
    async with served(make_core(), fake) as slack:
        with caplog.at_level(logging.ERROR, logger="adapters.slack_app"):
            await slack.event(mention("interview tips"))
            [apology] = await fake.wait_for("chat.postEphemeral")
    error_id = re.search(r"error id ([0-9a-f]{8})", apology["text"]).group(1)
    assert apology["user"] == "U2"
    assert any(error_id in r.getMessage() and r.exc_info for r in caplog.records)


# --- running it ----------------------------------------------------------------------------------


async def test_socket_mode_envelopes_are_acked_answered_and_deduplicated(make_core, fake, caplog):
    """Over Socket Mode every envelope is acked; a mention and /mlbot are answered; a retry is not."""
    caplog.set_level(logging.DEBUG)
    task = asyncio.create_task(serve_slack(make_core(), settings(slack_app_token=APP_TOKEN, slack_signing_secret=None),
                                           client=make_client(BOT_TOKEN, base_url=fake.api_url)))
    try:
        await asyncio.wait_for(fake.socket_connected.wait(), 5)
        event = event_callback(mention("interview tips", ts="1700000000.000501"), event_id="EvSOCKET")
        first = await fake.send_envelope("events_api", event)
        await fake.wait_for_ack(first)
        [post] = await fake.wait_for("chat.postMessage")
        retry = await fake.send_envelope("events_api", event, retry_attempt=1)
        await fake.wait_for_ack(retry)
        command = await fake.send_envelope("slash_commands", slash_command("salary senior europe", fake.response_url("sm")))
        await fake.wait_for_ack(command)
        [response] = await fake.wait_for("response_url")
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert post["thread_ts"] == "1700000000.000501"
    assert "$180,000" in section_texts(response)
    assert len(fake.calls("chat.postMessage")) == 1
    assert fake.calls("apps.connections.open")
    assert "apps.connections.open" in caplog.text  # the client's DEBUG request log was captured
    assert "secretapptoken" not in caplog.text and "secretbottoken" not in caplog.text


async def test_slack_api_url_points_the_app_at_another_web_api(make_core, fake):
    """SLACK_API_URL (GovSlack, a proxy, a fake) is where every Web API call goes: here Socket
    Mode's apps.connections.open and the answer reach the fake with no client passed in."""
    env = {"SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_APP_TOKEN": APP_TOKEN, "SLACK_API_URL": fake.api_url.rstrip("/")}
    task = asyncio.create_task(serve_slack(make_core(), Settings.from_env(env, db=":memory:")))
    try:
        await asyncio.wait_for(fake.socket_connected.wait(), 5)
        await fake.wait_for_ack(await fake.send_envelope("events_api", event_callback(mention("interview tips"))))
        [post] = await fake.wait_for("chat.postMessage")
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert post["channel"] == "C1"
    assert fake.calls("apps.connections.open")


async def test_http_mode_serves_on_the_configured_port(make_core, fake):
    """Without SLACK_APP_TOKEN the app listens on PORT and answers signed requests."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    task = asyncio.create_task(serve_slack(make_core(), settings(port=port), client=make_client(BOT_TOKEN, base_url=fake.api_url), host="127.0.0.1"))
    try:
        slack = HttpSlack(f"http://127.0.0.1:{port}/slack/events", fake)
        for _ in range(100):
            try:
                status = await slack.command("salary senior europe")
                break
            except OSError:
                await asyncio.sleep(0.01)
        assert status == 200
        await fake.wait_for("response_url")
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


# --- the weekly nudge sender -------------------------------------------------------------------


@pytest.mark.parametrize(
    "fault, expected",
    [
        (None, Delivery.SENT),
        (("fail", "conversations.open", "cannot_dm_bot"), Delivery.DMS_CLOSED),
        (("fail", "chat.postMessage", "user_disabled"), Delivery.DMS_CLOSED),
        (("server_error", "chat.postMessage"), Delivery.SENT),  # retried once
        (("server_error", "chat.postMessage", 2), Delivery.TRANSIENT),
        (("rate_limit", "chat.postMessage"), Delivery.TRANSIENT),
    ],
)
async def test_sender_reports_how_a_dm_went(fake, fault, expected):
    """Nudges: sent, closed DMs (don't retry this week) and transient failures (retry later)."""
    if fault and fault[0] == "fail":
        fake.fail(fault[1], fault[2])
    elif fault and fault[0] == "server_error":
        fake.server_error(fault[1], times=fault[2] if len(fault) > 2 else 1)
    elif fault:
        fake.rate_limit(fault[1], times=4)  # more than the client's retries: exhausted
    sender = SlackSender(make_client(BOT_TOKEN, base_url=fake.api_url, sleep=Sleeps()))
    assert sender.platform == "slack"
    outcome = await sender.send_direct("T1:U2", Reply(title="Your week", text="Next: finish the SQL course.", sources=("Path",)))
    assert outcome is expected
    assert fake.calls("conversations.open")[0]["users"] == "U2"
    if expected is Delivery.SENT:
        post = fake.calls("chat.postMessage")[-1]  # after the 5xx, the retry
        assert post["channel"] == "DU2" and "finish the SQL course" in section_texts(post)


async def test_mention_inside_a_dm_is_answered_once(make_core, fake):
    """A DM that mentions the bot may arrive as message.im and app_mention: one answer, in the DM."""
    async with served(make_core(), fake) as slack:
        dm = direct_message("<@UBOT> interview tips", channel="DU2", ts="1700000000.000601")
        await slack.event({**dm, "type": "app_mention"})
        await slack.event(dm)
        await fake.wait_for("chat.postMessage")
        await slack.event(mention("interview tips", ts="1700000000.000602"))  # a barrier: answered after both
        await fake.wait_for("chat.postMessage", count=2)
        await asyncio.sleep(0.05)
    [in_dm, in_channel] = fake.calls("chat.postMessage")
    assert in_dm["channel"] == "DU2" and in_channel["channel"] == "C1"


def test_manifest_subscribes_to_what_the_adapter_handles():
    """slack-manifest.yml: one paste gives the command, events, scopes, home tab and Socket Mode."""
    import yaml

    from adapters.slack_app import SLASH_COMMAND

    manifest = yaml.safe_load((ROOT / "slack-manifest.yml").read_text())
    features, settings_ = manifest["features"], manifest["settings"]
    assert [c["command"] for c in features["slash_commands"]] == [SLASH_COMMAND]
    assert features["app_home"]["home_tab_enabled"] and features["app_home"]["messages_tab_enabled"]
    assert set(settings_["event_subscriptions"]["bot_events"]) == {"app_mention", "message.im", "app_home_opened"}
    assert settings_["interactivity"]["is_enabled"] and settings_["socket_mode_enabled"]
    assert set(manifest["oauth_config"]["scopes"]["bot"]) >= {"app_mentions:read", "chat:write", "commands", "files:write", "im:history", "im:write", "users:read"}


# --- files --------------------------------------------------------------------------------

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


async def test_salary_chart_is_uploaded_into_the_answers_thread(make_core, fake):
    """@mlbot salary senior: the answer in the thread, then the chart uploaded there the way
    files_upload_v2 does it (upload URL, the bytes, completion), with the figures as alt text."""
    async with served(make_core(), fake) as slack:
        await slack.event(mention("salary senior", ts="1700000000.000333"))
        [shared] = await fake.wait_for_files()
    [post] = fake.calls("chat.postMessage")
    assert post["thread_ts"] == "1700000000.000333" and "$180,000" in section_texts(post)
    assert shared.channel == "C1" and shared.thread_ts == "1700000000.000333"
    assert shared.data.startswith(PNG_SIGNATURE) and shared.filename.endswith(".png")
    assert "$180,000" in (shared.alt_txt or "") and "Senior" in (shared.alt_txt or "")
    methods = [c.method for c in fake.log if c.method not in ("auth.test", "users.info")]
    assert methods == ["chat.postMessage", "files.getUploadURLExternal", "upload", "files.completeUploadExternal"]


async def test_slash_command_chart_goes_to_the_channel_or_else_the_dm(make_core, fake, caplog):
    """`/mlbot salary staff`: the chart is shared into the channel; where the bot may not post
    files it goes to the member's DM instead, and a refusal there too is one warning, not an apology."""
    async with served(make_core(), fake) as slack:
        await slack.command("salary staff")
        [in_channel] = await fake.wait_for_files()
        fake.fail("files.completeUploadExternal", "not_in_channel")
        await slack.command("salary entry")
        [_, in_dm] = await fake.wait_for_files(2)
        fake.fail("files.completeUploadExternal", "missing_scope", times=2)
        await slack.command("salary mid")
        await fake.wait_for("files.completeUploadExternal", count=5)
        await fake.wait_for("response_url", count=3)
    assert in_channel.channel == "C1" and "Staff/Principal" in (in_channel.alt_txt or "")
    assert in_dm.channel == "DU2" and "Entry level" in (in_dm.alt_txt or "")
    assert len(fake.files) == 2
    texts = [section_texts(r) for r in fake.calls("response_url")]
    assert all("$" in t for t in texts) and not any("went wrong" in t for t in texts)
    assert any("missing_scope" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)


@pytest.mark.parametrize("surface", ["mention", "command", "dm"])
async def test_mydata_is_one_json_file_in_the_dm(make_core, fake, surface):
    """`mydata` with a long history: no JSON in any message (Slack refuses blocks past ~12k
    characters); the whole export as `mlbot-data.json` in the member's DM, which the answer
    names; in a channel the answer itself stays ephemeral."""
    core = make_core()
    for n in range(150):
        await core.handle(Message("slack", "T1:U2", f"practice python {n}"))
    async with served(core, fake) as slack:
        if surface == "mention":
            await slack.event(mention("mydata"))
            [answer] = await fake.wait_for("chat.postEphemeral")
        elif surface == "command":
            await slack.command("mydata")
            [answer] = await fake.wait_for("response_url")
            assert answer["response_type"] == "ephemeral"
        else:
            await slack.event(direct_message("mydata", channel="DU2"))
            [answer] = await fake.wait_for("chat.postMessage")
        [shared] = await fake.wait_for_files()
    assert shared.channel == "DU2" and shared.filename == "mlbot-data.json" and len(shared.data) > 12_000
    assert json.loads(shared.data) == await core.store.export("slack:T1:U2")
    text = section_texts(answer)
    assert "Everything stored about you" in text and "mlbot-data.json" in text and "{" not in text
    assert fake.calls("chat.postMessage") == ([answer] if surface == "dm" else [])
