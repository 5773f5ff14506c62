"""The Slack adapter: mentions, DMs, `/mlbot`, buttons and App Home, with slack-bolt.

The shape follows slack-bolt's own adapters: pure converters (`to_message` here,
`render` in `adapters.slack_render`) and a thin runner (`build_app`, `serve_slack`).
Every request is acknowledged first and answered afterwards; Slack's retries of an
event are dropped by event id before a listener runs (`EventDeduper`); Web API calls
that get a 429 are retried after `Retry-After`, a 5xx once (`make_client`). Over HTTP,
`http_app` checks the signature before bolt sees a request. Messages written by bots are
never answered. A reply's files (a chart, a data export) are uploaded after its messages,
into the same thread when the answer is public there, else into the member's DM (files
cannot be ephemeral); a failed upload is logged, the answer already went out. Decisions about what to answer, who may run admin commands and what is
personal stay in the core.
"""
from __future__ import annotations

import asyncio
import collections
import datetime as dt
import logging
import re
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Mapping, Protocol

import aiohttp
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.http_retry.async_handler import AsyncRetryHandler
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
)
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from adapters.slack_render import ACTION_PREFIX, plain_text, render, render_home, upload
from bot.apology import apology, logged_error
from bot.core import Core, utc_now
from bot.delivery import Delivery
from bot.messages import Message
from bot.observe import Observer
from bot.replies import Attachment, Reply
from bot.settings import Settings
from bot.store import Store

__all__ = [
    "EventDeduper",
    "MemoryDeduper",
    "Profile",
    "SlackSender",
    "build_app",
    "http_app",
    "make_client",
    "serve_slack",
    "to_message",
]

log = logging.getLogger(__name__)
Sleep = Callable[[float], Awaitable[None]]

PLATFORM = "slack"
SLASH_COMMAND = "/mlbot"
EVENTS_PATH = "/slack/events"
ACTION_ID = re.compile(rf"^{re.escape(ACTION_PREFIX)}\d+$")
RATE_LIMIT_RETRIES = 3
SERVER_ERROR_BACKOFF = 1.0  # seconds before the one retry of a Web API call that got a 5xx
PROFILE_TTL = 300.0  # seconds a users.info answer is trusted (admin role, timezone)

# Errors that mean "this member cannot get a DM from the bot": don't retry this week.
DMS_CLOSED_ERRORS = frozenset({
    "cannot_dm_bot",
    "user_not_found",
    "user_not_visible",
    "user_disabled",
    "not_allowed_token_type",
    "messages_tab_disabled",
    "is_archived",
    "restricted_action",
    "channel_not_found",
})


class CountingRateLimitHandler(AsyncRateLimitErrorRetryHandler):
    """slack_sdk's 429 handler (sleeps Retry-After, then retries), counting each 429."""

    def __init__(self, observer: Observer, **kwargs: Any):
        super().__init__(**kwargs)
        self._observer = observer

    async def can_retry_async(self, *, state, request, response=None, error=None) -> bool:  # type: ignore[override]
        if response is not None and response.status_code == 429:
            self._observer.rate_limited(PLATFORM)
        return await super().can_retry_async(state=state, request=request, response=response, error=error)


class ServerErrorRetryHandler(AsyncRetryHandler):
    """Retries a call that got any 5xx once, `SERVER_ERROR_BACKOFF` seconds later (slack_sdk
    retries none by default; its own handler knows only 500 and 503 and cannot be given a
    sleep). Counts its retry apart from the 429 handler's, which share `state.current_attempt`."""

    _TRIED = "server_error_retries"

    def __init__(self, sleep: Sleep = asyncio.sleep):
        super().__init__(max_retry_count=1)
        self._sleep = sleep

    async def can_retry_async(self, *, state, request, response=None, error=None) -> bool:  # type: ignore[override]
        tried = (state.custom_values or {}).get(self._TRIED, 0)
        return response is not None and 500 <= response.status_code < 600 and tried < self.max_retry_count

    async def prepare_for_next_attempt_async(self, *, state, request, response=None, error=None) -> None:  # type: ignore[override]
        values = state.custom_values = state.custom_values or {}
        values[self._TRIED] = values.get(self._TRIED, 0) + 1
        state.next_attempt_requested = True
        await self._sleep(SERVER_ERROR_BACKOFF)


def retry_handlers(observer: Observer | None = None, sleep: Sleep = asyncio.sleep) -> list[AsyncRetryHandler]:
    return [
        AsyncConnectionErrorRetryHandler(),
        CountingRateLimitHandler(observer or Observer(), max_retry_count=RATE_LIMIT_RETRIES),
        ServerErrorRetryHandler(sleep),
    ]


def make_client(token: str | None, *, base_url: str | None = None, observer: Observer | None = None,
                sleep: Sleep = asyncio.sleep) -> AsyncWebClient:
    """A Web API client that retries connection errors, honours 429 `Retry-After` and retries
    a 5xx once; `base_url` is SLACK_API_URL, if set (with or without its final slash).
    (slack_sdk logs requests at DEBUG with the Authorization header redacted.)"""
    extra = {"base_url": base_url.rstrip("/") + "/"} if base_url else {}
    return AsyncWebClient(token=token, retry_handlers=retry_handlers(observer, sleep), **extra)


# --- pure converters ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Profile:
    """What users.info tells the core about a member."""

    is_admin: bool = False
    timezone: str | None = None


def member_ids(body: Mapping[str, Any]) -> tuple[str, str]:
    """(team id, user id) of whoever sent an event, a slash command or a click."""
    if "event" in body:
        event = body["event"]
        user = event["user"]["id"] if isinstance(event.get("user"), dict) else event["user"]
        return body.get("team_id") or event.get("team", ""), user
    if "command" in body:
        return body["team_id"], body["user_id"]
    team = (body.get("team") or {}).get("id") or body["user"].get("team_id", "")
    return team, body["user"]["id"]


def to_message(body: Mapping[str, Any], *, bot_user_id: str | None = None, profile: Profile = Profile()) -> Message:
    """A mention, a DM, a `/mlbot` command or a button click as the core's `Message`."""
    team, user = member_ids(body)
    if "event" in body:
        text = plain_text(body["event"].get("text", ""), bot_user_id)
    elif "command" in body:
        text = plain_text(body.get("text", ""))
    else:
        text = body["actions"][0]["value"]
    return Message(PLATFORM, f"{team}:{user}", text, is_admin=profile.is_admin, timezone=profile.timezone)


# --- state kept between requests ------------------------------------------------------


class EventDeduper(Protocol):
    """Remembers Slack event ids, so a retried delivery is not answered twice."""

    async def first_time(self, event_id: str) -> bool:
        """True the first time `event_id` is seen (and remember it), False after."""
        ...


class MemoryDeduper:
    """Event ids seen within `ttl` seconds, at most `size` of them (oldest forgotten first).

    For a core without a store; with one, `StoreDeduper` shares the ids between replicas."""

    def __init__(self, *, size: int = 10_000, ttl: float = 3600.0, clock: Callable[[], float] = time.monotonic):
        self._seen: collections.OrderedDict[str, float] = collections.OrderedDict()
        self._size = size
        self._ttl = ttl
        self._clock = clock

    async def first_time(self, event_id: str) -> bool:
        now = self._clock()
        while self._seen and (len(self._seen) >= self._size or next(iter(self._seen.values())) <= now - self._ttl):
            self._seen.popitem(last=False)
        if event_id in self._seen:
            return False
        self._seen[event_id] = now
        return True


class StoreDeduper:
    """Event ids in the database: one answer per event across every replica."""

    def __init__(self, store: Store, clock: Callable[[], dt.datetime] = utc_now):
        self._store = store
        self._clock = clock

    async def first_time(self, event_id: str) -> bool:
        return await self._store.first_time(f"slack:{event_id}", self._clock())


class Profiles:
    """users.info answers, cached briefly; a failed lookup gives a plain member."""

    def __init__(self, client: AsyncWebClient, *, ttl: float = PROFILE_TTL, clock: Callable[[], float] = time.monotonic):
        self._client = client
        self._ttl = ttl
        self._clock = clock
        self._cache: dict[str, tuple[float, Profile]] = {}

    async def get(self, user: str) -> Profile:
        now = self._clock()
        cached = self._cache.get(user)
        if cached and cached[0] > now:
            return cached[1]
        try:
            info = (await self._client.users_info(user=user))["user"]
        except SlackApiError as exc:
            log.warning("users.info failed for %s: %s", user, _api_error(exc))
            return Profile()
        profile = Profile(is_admin=bool(info.get("is_admin") or info.get("is_owner")), timezone=info.get("tz") or None)
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[user] = (now + self._ttl, profile)
        return profile


# --- where an answer goes -----------------------------------------------------------------


class Target(Protocol):
    async def send(self, reply: Reply) -> None: ...


async def upload_files(client: AsyncWebClient, channel: str, attachments: tuple[Attachment, ...], thread_ts: str | None = None) -> bool:
    """Upload `attachments` into `channel` (under `thread_ts`) with files_upload_v2
    (files.getUploadURLExternal, the upload, files.completeUploadExternal). False, logged,
    when Slack refuses (no `files:write` scope, the bot not in the channel)."""
    if not attachments:
        return True
    try:
        await client.files_upload_v2(file_uploads=[upload(a) for a in attachments], channel=channel, thread_ts=thread_ts)
    except SlackClientError as exc:
        reason = _api_error(exc) if isinstance(exc, SlackApiError) else type(exc).__name__
        log.warning("could not upload %s to %s (%s)", ", ".join(a.filename for a in attachments), channel, reason)
        return False
    return True


async def upload_to_dm(client: AsyncWebClient, user: str, attachments: tuple[Attachment, ...]) -> bool:
    if not attachments:
        return True
    channel = (await client.conversations_open(users=user))["channel"]["id"]
    return await upload_files(client, channel, attachments)


@dataclass(frozen=True)
class ChannelTarget:
    """A channel thread or a DM. Personal replies go ephemeral unless the channel is a DM
    (and their files to the DM)."""

    client: AsyncWebClient
    channel: str
    user: str
    thread_ts: str | None = None
    private: bool = False

    async def send(self, reply: Reply) -> None:
        where: dict[str, Any] = {"channel": self.channel}
        if self.thread_ts:
            where["thread_ts"] = self.thread_ts
        ephemeral = reply.ephemeral and not self.private
        for part in render(reply, files_in_dm=ephemeral):
            if ephemeral:
                await self.client.chat_postEphemeral(user=self.user, **where, **part)
            else:
                await self.client.chat_postMessage(**where, **part)
        if ephemeral:
            await upload_to_dm(self.client, self.user, reply.attachments)
        else:
            await upload_files(self.client, self.channel, reply.attachments, self.thread_ts)


@dataclass(frozen=True)
class ResponseUrlTarget:
    """The `response_url` of a slash command or a click: works in any channel, even
    where the bot is not a member; personal replies are ephemeral. Retried as the Web
    API client is (its `retry_handlers`). Files go into `channel` for a public answer
    (the member's DM when the bot may not post there), else into the member's DM."""

    url: str
    client: AsyncWebClient
    user: str
    channel: str | None = None

    async def send(self, reply: Reply) -> None:
        hook = AsyncWebhookClient(self.url, retry_handlers=self.client.retry_handlers)
        visibility = {"response_type": "ephemeral" if reply.ephemeral else "in_channel", "replace_original": False}
        public = not reply.ephemeral and self.channel is not None
        for part in render(reply, files_in_dm=not public):
            response = await hook.send_dict({**part, **visibility})
            if response.status_code != 200:
                raise RuntimeError(f"response_url answered {response.status_code}: {response.body[:200]}")
        if not (public and self.channel and await upload_files(self.client, self.channel, reply.attachments)):
            await upload_to_dm(self.client, self.user, reply.attachments)


@dataclass(frozen=True)
class DirectTarget:
    """The member's DM with the bot (for clicks in App Home, which has no response_url)."""

    client: AsyncWebClient
    user: str

    async def send(self, reply: Reply) -> None:
        channel = (await self.client.conversations_open(users=self.user))["channel"]["id"]
        await ChannelTarget(self.client, channel, self.user, private=True).send(reply)


# --- the app ------------------------------------------------------------------------------


class _Listeners:
    """The bolt listeners: each turns a request into a Message, asks the core, sends the reply."""

    def __init__(self, core: Core, client: AsyncWebClient, deduper: EventDeduper):
        self.core = core
        self.client = client
        self.deduper = deduper
        self.profiles = Profiles(client)

    async def skip_retries(self, body: dict[str, Any], next_: Callable[[], Awaitable[None]]) -> BoltResponse | None:
        """Middleware: an event id seen before is acknowledged and dropped."""
        event_id = body.get("event_id")
        if event_id and not await self.deduper.first_time(event_id):
            log.info("dropped a repeated delivery of event %s", event_id)
            return BoltResponse(status=200, body="")
        await next_()
        return None

    async def mention(self, event: dict[str, Any], body: dict[str, Any], context: AsyncBoltContext) -> None:
        if _from_bot(event) or "user" not in event or event.get("channel", "").startswith("D"):
            return  # a mention in a DM also arrives as message.im, answered there
        thread = event.get("thread_ts") or event["ts"]
        await self._answer(body, context, ChannelTarget(self.client, event["channel"], event["user"], thread))

    async def direct_message(self, event: dict[str, Any], body: dict[str, Any], context: AsyncBoltContext) -> None:
        if _from_bot(event) or event.get("channel_type") != "im" or event.get("subtype") or "user" not in event:
            return  # edits, deletions, joins
        target = ChannelTarget(self.client, event["channel"], event["user"], event.get("thread_ts"), private=True)
        await self._answer(body, context, target)

    async def command(self, ack: AsyncAck, body: dict[str, Any], context: AsyncBoltContext) -> None:
        await ack()
        target = ResponseUrlTarget(body["response_url"], self.client, body["user_id"], body.get("channel_id"))
        await self._answer(body, context, target)

    async def button(self, ack: AsyncAck, body: dict[str, Any], context: AsyncBoltContext) -> None:
        await ack()
        team, user = member_ids(body)
        from_home = (body.get("container") or {}).get("type") == "view"
        url = body.get("response_url")
        channel = (body.get("channel") or {}).get("id")
        target: Target = ResponseUrlTarget(url, self.client, user, channel) if url and not from_home else DirectTarget(self.client, user)
        await self._answer(body, context, target)
        if from_home:
            await self._refresh_home(team, user)

    async def home_opened(self, event: dict[str, Any], body: dict[str, Any]) -> None:
        if event.get("tab", "home") != "home":
            return
        await self._refresh_home(*member_ids(body))

    async def _refresh_home(self, team: str, user: str) -> None:
        """Publish the member's App Home from the core's `home` reply."""
        try:
            profile = await self.profiles.get(user)
            message = Message(PLATFORM, f"{team}:{user}", "home", command="home", is_admin=profile.is_admin, timezone=profile.timezone)
            reply = await self.core.handle(message)
            await self.client.views_publish(user_id=user, view=render_home(reply))
        except Exception:
            logged_error(log, "while publishing App Home")

    async def _answer(self, body: dict[str, Any], context: AsyncBoltContext, target: Target) -> None:
        try:
            profile = await self.profiles.get(member_ids(body)[1])
            reply = await self.core.handle(to_message(body, bot_user_id=context.bot_user_id, profile=profile))
            await target.send(reply)
        except Exception:
            error_id = logged_error(log, "while answering on Slack")
            try:
                await target.send(apology(error_id))
            except Exception:
                log.warning("could not send the apology for error %s", error_id)


def _from_bot(event: Mapping[str, Any]) -> bool:
    """Written by a bot (this one or another): never answered, so two bots cannot loop.
    Slack delivers `app_mention` for bots' messages too."""
    return bool(event.get("bot_id") or event.get("bot_profile") or event.get("subtype") == "bot_message")


def build_app(core: Core, settings: Settings, *, client: AsyncWebClient | None = None, deduper: EventDeduper | None = None) -> AsyncApp:
    """The bolt app with every listener registered; serve it over HTTP or Socket Mode."""
    client = client or make_client(settings.slack_bot_token, base_url=settings.slack_api_url)
    app = AsyncApp(client=client, signing_secret=settings.slack_signing_secret or "")
    deduper = deduper or (StoreDeduper(core.store) if core.store is not None else MemoryDeduper())
    listeners = _Listeners(core, client, deduper)
    app.middleware(listeners.skip_retries)
    app.event("app_mention")(listeners.mention)
    app.event("message")(listeners.direct_message)
    app.event("app_home_opened")(listeners.home_opened)
    app.command(SLASH_COMMAND)(listeners.command)
    app.action(ACTION_ID)(listeners.button)
    return app


def http_app(app: AsyncApp, signing_secret: str, *, path: str = EVENTS_PATH) -> web.Application:
    """The aiohttp application Slack posts events, commands and clicks to.

    Unlike bolt's `app.web_app()`, the signature is checked before bolt sees the request:
    bolt logs a refused request's whole body at INFO (a member's words, a token, or
    whatever a stranger sends), and a refusal here is one line without it. A signed body
    bolt cannot parse gets 400 and one warning, not a 500 with a traceback."""
    verifier = SignatureVerifier(signing_secret)

    def signed(body: str, headers: Mapping[str, str]) -> bool:
        timestamp = headers.get("x-slack-request-timestamp", "")
        return timestamp.isdigit() and verifier.is_valid(body, timestamp, headers.get("x-slack-signature", ""))

    async def handle(request: web.Request) -> web.Response:
        try:
            body = (await request.read()).decode("utf-8")
        except UnicodeDecodeError:
            body = None  # Slack sends UTF-8; slack_sdk's verifier cannot check anything else
        if body is None or not signed(body, request.headers):
            log.warning("refused a request without a valid Slack signature (a stranger, or the wrong SLACK_SIGNING_SECRET)")
            return web.Response(status=401, text="invalid request")
        try:  # bolt parses the body as it builds the request
            bolt_request = AsyncBoltRequest(body=body, query=request.query_string, headers=request.headers)  # type: ignore[arg-type]
        except (ValueError, AttributeError) as exc:  # not JSON, or JSON that is not an object
            log.warning("refused a signed request whose body is not a Slack payload (%s)", type(exc).__name__)
            return web.Response(status=400, text="malformed body")
        return await to_aiohttp_response(await app.async_dispatch(bolt_request))

    web_app = web.Application()
    web_app.router.add_post(path, handle)
    return web_app


async def serve_slack(core: Core, settings: Settings, *, client: AsyncWebClient | None = None, host: str = "0.0.0.0",
                      health: dict[str, Callable[[], Awaitable[bool]]] | None = None) -> None:
    """Run the Slack app until cancelled: Socket Mode when SLACK_APP_TOKEN is set,
    otherwise HTTP on `settings.port` (events, commands and clicks all at /slack/events).
    `health["slack"]` reports whether the Socket Mode connection (or the HTTP listener) is up."""
    app = build_app(core, settings, client=client)
    health = health if health is not None else {}
    if settings.slack_app_token:
        handler = AsyncSocketModeHandler(app, settings.slack_app_token)
        await handler.connect_async()
        health["slack"] = handler.client.is_connected
        log.info("Slack: connected in Socket Mode")
        try:
            await asyncio.Event().wait()
        finally:
            await handler.close_async()
    else:
        runner = web.AppRunner(http_app(app, settings.slack_signing_secret or ""))
        await runner.setup()
        try:
            await web.TCPSite(runner, host, settings.port).start()
            health["slack"] = _listening
            log.info("Slack: listening for HTTP requests on %s:%s%s", host, settings.port, EVENTS_PATH)
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()


async def _listening() -> bool:
    return True


# --- weekly nudges ---------------------------------------------------------------------------


class SlackSender:
    """`bot.delivery.DirectSender` for Slack: opens the member's DM and posts the reply."""

    platform = PLATFORM

    def __init__(self, client: AsyncWebClient):
        self.client = client

    async def send_direct(self, user_id: str, reply: Reply) -> Delivery:
        """`user_id` is `T1:U2`. Once part of a multi-message reply went out, a later
        failure is logged and SENT is reported: sending it all again would repeat it."""
        user = user_id.rpartition(":")[2]
        sent = 0
        try:
            channel = (await self.client.conversations_open(users=user))["channel"]["id"]
            for part in render(reply):
                await self.client.chat_postMessage(channel=channel, **part)
                sent += 1
            await upload_files(self.client, channel, reply.attachments)
        except SlackApiError as exc:
            outcome = Delivery.DMS_CLOSED if _api_error(exc) in DMS_CLOSED_ERRORS else Delivery.TRANSIENT
            log.warning("DM to %s failed (%s, HTTP %s): %s", user, _api_error(exc), exc.response.status_code, outcome.value)
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            outcome = Delivery.TRANSIENT
            log.warning("DM to %s failed: %s", user, type(exc).__name__)
        else:
            return Delivery.SENT
        return Delivery.SENT if sent else outcome


def _api_error(exc: SlackApiError) -> str | None:
    """The `error` of a failed Web API call (None when the body was not JSON, e.g. a 502)."""
    data = exc.response.data
    return data.get("error") if isinstance(data, dict) else None
