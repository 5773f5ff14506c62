"""A fake Slack on 127.0.0.1: the Web API, response URLs and a Socket Mode websocket.

Point the real client at it with `AsyncWebClient(base_url=fake.api_url)`. Every call is
recorded with its payload (`fake.calls("chat.postMessage")`), and tests wait for calls
with `await fake.wait_for(...)` instead of sleeping. Errors can be injected per method:
`fail` (an API error such as `cannot_dm_bot`), `rate_limit` (429 with an integer
`Retry-After`) and `server_error` (5xx). Socket Mode: `apps.connections.open` hands out
`ws://.../link`; the fake sends `hello`, then whatever envelopes the test sends, and
records the acks. Files go the way slack_sdk's `files_upload_v2` sends them:
`files.getUploadURLExternal` (filename, length) hands out `/upload/<file id>`, the bytes are
POSTed there (recorded as a call `upload`), and `files.completeUploadExternal` shares them
into `channel_id` (and `thread_ts`); `fake.files` holds the completed uploads. A length
that differs from the bytes sent, or a completion naming a file never uploaded, fails as
Slack fails it.

The helpers at the bottom build payloads as Slack sends them, and `post_signed` signs
them with the signing secret for an app served over HTTP.
"""
from __future__ import annotations

import asyncio
import itertools
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable
from urllib.parse import urlencode

import aiohttp
from aiohttp import web
from slack_sdk.signature import SignatureVerifier

TEAM_ID = "T1"
BOT_USER_ID = "UBOT"


@dataclass
class Call:
    method: str  # a Web API method, or "response_url"
    payload: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    path: str = ""


@dataclass
class SharedFile:
    """A file shared by files.completeUploadExternal."""

    id: str
    filename: str
    title: str | None
    alt_txt: str | None
    data: bytes
    channel: str | None
    thread_ts: str | None


@dataclass
class _Upload:
    filename: str
    length: int
    alt_txt: str | None
    data: bytes | None = None


@dataclass
class _Fault:
    status: int
    body: dict[str, Any]
    headers: dict[str, str]
    times: int


class FakeSlack:
    def __init__(self) -> None:
        self.log: list[Call] = []
        self.acks: list[dict[str, Any]] = []
        self.users: dict[str, dict[str, Any]] = {}
        self.files: list[SharedFile] = []
        self._uploads: dict[str, _Upload] = {}
        self._file_ids = itertools.count(1)
        self.socket_connected = asyncio.Event()
        self._faults: dict[str, list[_Fault]] = {}
        self._changed = asyncio.Condition()
        self._sockets: set[web.WebSocketResponse] = set()
        self._ts = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self.port = 0

    # --- lifecycle -------------------------------------------------------------------

    async def __aenter__(self) -> "FakeSlack":
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._api)
        app.router.add_post("/response/{name}", self._response_url)
        app.router.add_post("/upload/{file_id}", self._upload)
        app.router.add_get("/link", self._socket)
        self._runner = web.AppRunner(app, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def __aexit__(self, *exc: object) -> None:
        for ws in list(self._sockets):
            await ws.close()
        assert self._runner is not None
        await self._runner.cleanup()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        return f"{self.url}/api/"

    def response_url(self, name: str = "1") -> str:
        return f"{self.url}/response/{name}"

    # --- what happened ---------------------------------------------------------------

    def calls(self, method: str) -> list[dict[str, Any]]:
        return [c.payload for c in self.log if c.method == method]

    async def wait_for(self, method: str, count: int = 1, timeout: float = 5.0) -> list[dict[str, Any]]:
        """The payloads of `method` once at least `count` calls came in."""
        await self._wait(lambda: len(self.calls(method)) >= count, timeout)
        return self.calls(method)

    async def wait_for_files(self, count: int = 1, timeout: float = 5.0) -> list[SharedFile]:
        """The shared files once at least `count` were completed."""
        await self._wait(lambda: len(self.files) >= count, timeout)
        return self.files

    async def wait_for_ack(self, envelope_id: str, timeout: float = 5.0) -> dict[str, Any]:
        await self._wait(lambda: any(a.get("envelope_id") == envelope_id for a in self.acks), timeout)
        return next(a for a in self.acks if a.get("envelope_id") == envelope_id)

    async def _wait(self, ready: Callable[[], bool], timeout: float) -> None:
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(ready), timeout)

    async def _record(self, call: Call) -> None:
        async with self._changed:
            self.log.append(call)
            self._changed.notify_all()

    # --- faults ------------------------------------------------------------------------

    def fail(self, method: str, error: str, *, times: int = 1) -> None:
        self._faults.setdefault(method, []).append(_Fault(200, {"ok": False, "error": error}, {}, times))

    def rate_limit(self, method: str, *, retry_after: int = 0, times: int = 1) -> None:
        body = {"ok": False, "error": "ratelimited"}
        self._faults.setdefault(method, []).append(_Fault(429, body, {"Retry-After": str(retry_after)}, times))

    def server_error(self, method: str, *, status: int = 500, times: int = 1) -> None:
        self._faults.setdefault(method, []).append(_Fault(status, {"ok": False, "error": "internal_error"}, {}, times))

    def _fault(self, method: str) -> web.Response | None:
        faults = self._faults.get(method)
        if not faults:
            return None
        fault = faults[0]
        fault.times -= 1
        if fault.times <= 0:
            faults.pop(0)
        return _json(fault.body, status=fault.status, headers=fault.headers)

    # --- endpoints -------------------------------------------------------------------

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        payload = await _payload(request)
        await self._record(Call(method, payload, dict(request.headers), request.path))
        fault = self._fault(method)
        if fault is not None:
            return fault
        return _json(self._answer(method, payload))

    def _answer(self, method: str, payload: dict[str, Any]) -> dict[str, Any]:
        ts = f"{int(time.time())}.{next(self._ts):06d}"
        if method == "auth.test":
            return {"ok": True, "url": "https://fake.slack.com/", "team": "Fake", "user": "mlbot",
                    "team_id": TEAM_ID, "user_id": BOT_USER_ID, "bot_id": "BBOT", "is_enterprise_install": False}
        if method == "chat.postMessage":
            return {"ok": True, "channel": payload.get("channel"), "ts": ts,
                    "message": {"text": payload.get("text"), "ts": ts, "thread_ts": payload.get("thread_ts")}}
        if method == "chat.postEphemeral":
            return {"ok": True, "message_ts": ts}
        if method == "conversations.open":
            return {"ok": True, "channel": {"id": "D" + str(payload.get("users", "")).split(",")[0]}}
        if method == "views.publish":
            return {"ok": True, "view": {"id": "V1", **(payload.get("view") or {})}}
        if method == "users.info":
            user = payload.get("user", "")
            return {"ok": True, "user": {"id": user, "team_id": TEAM_ID, "is_admin": False, "is_owner": False,
                                         "tz": "Europe/Berlin", **self.users.get(user, {})}}
        if method == "apps.connections.open":
            return {"ok": True, "url": f"ws://127.0.0.1:{self.port}/link"}
        if method == "files.getUploadURLExternal":
            return self._upload_url(payload)
        if method == "files.completeUploadExternal":
            return self._complete_upload(payload)
        return {"ok": True}

    def _upload_url(self, payload: dict[str, Any]) -> dict[str, Any]:
        length = str(payload.get("length", ""))
        if not payload.get("filename") or not length.isdigit():
            return {"ok": False, "error": "invalid_arguments"}
        file_id = f"F{next(self._file_ids):08d}"
        self._uploads[file_id] = _Upload(str(payload["filename"]), int(length), payload.get("alt_txt"))
        return {"ok": True, "upload_url": f"{self.url}/upload/{file_id}", "file_id": file_id}

    def _complete_upload(self, payload: dict[str, Any]) -> dict[str, Any]:
        files = payload.get("files")
        if not isinstance(files, list) or not files:
            return {"ok": False, "error": "invalid_arguments"}
        shared = []
        for entry in files:
            pending = self._uploads.get(entry.get("id", ""))
            if pending is None or pending.data is None or len(pending.data) != pending.length:
                return {"ok": False, "error": "file_not_found" if pending is None or pending.data is None else "file_upload_size_mismatch"}
            shared.append(SharedFile(entry["id"], pending.filename, entry.get("title"), pending.alt_txt, pending.data,
                                     payload.get("channel_id"), payload.get("thread_ts")))
        for item in shared:
            del self._uploads[item.id]
        self.files.extend(shared)
        return {"ok": True, "files": [{"id": f.id, "name": f.filename, "title": f.title} for f in shared]}

    async def _upload(self, request: web.Request) -> web.Response:
        """The upload URL: the file's bytes as the raw body (what slack_sdk sends)."""
        file_id = request.match_info["file_id"]
        data = await request.read()
        await self._record(Call("upload", {"file_id": file_id, "length": len(data)}, dict(request.headers), request.path))
        pending = self._uploads.get(file_id)
        if pending is None:
            return web.Response(status=404, text="not found")
        pending.data = data
        return web.Response(text=f"OK - {len(data)}")

    async def _response_url(self, request: web.Request) -> web.Response:
        payload = await _payload(request)
        await self._record(Call("response_url", payload, dict(request.headers), request.path))
        fault = self._fault("response_url")
        return fault if fault is not None else web.Response(text="ok")

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self._sockets.add(ws)
        await ws.send_str(json.dumps({"type": "hello", "num_connections": 1, "debug_info": {"host": "fake"}}))
        self.socket_connected.set()
        try:
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.TEXT:
                    async with self._changed:
                        self.acks.append(json.loads(msg.data))
                        self._changed.notify_all()
        finally:
            self._sockets.discard(ws)
        return ws

    async def send_envelope(self, kind: str, payload: dict[str, Any], *, retry_attempt: int = 0) -> str:
        """Send a Socket Mode envelope (`events_api`, `slash_commands`, `interactive`)."""
        envelope_id = uuid.uuid4().hex
        envelope = {"envelope_id": envelope_id, "type": kind, "payload": payload,
                    "accepts_response_payload": kind != "events_api",
                    "retry_attempt": retry_attempt, "retry_reason": "timeout" if retry_attempt else ""}
        for ws in list(self._sockets):
            await ws.send_str(json.dumps(envelope))
        return envelope_id


def _json(body: dict[str, Any], *, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=json.dumps(body).encode(), status=status, headers=headers, content_type="application/json")


async def _payload(request: web.Request) -> dict[str, Any]:
    """GET params, a form or a JSON body as one dict; JSON-in-form fields decoded."""
    payload: dict[str, Any] = dict(request.query)
    if request.can_read_body:
        if request.content_type == "application/json":
            payload.update(await request.json())
        else:
            payload.update(await request.post())
    for key in ("blocks", "view", "files"):
        if isinstance(payload.get(key), str):
            payload[key] = json.loads(payload[key])
    return payload


# --- payloads as Slack sends them ------------------------------------------------------


def event_callback(event: dict[str, Any], *, event_id: str | None = None, team_id: str = TEAM_ID) -> dict[str, Any]:
    return {"token": "verification", "team_id": team_id, "api_app_id": "A1", "type": "event_callback",
            "event": event, "event_id": event_id or "Ev" + uuid.uuid4().hex[:10], "event_time": int(time.time()),
            "authorizations": [{"team_id": team_id, "user_id": BOT_USER_ID, "is_bot": True}]}


def mention(text: str, *, user: str = "U2", channel: str = "C1", ts: str = "1700000000.000100", **extra: Any) -> dict[str, Any]:
    return {"type": "app_mention", "user": user, "text": f"<@{BOT_USER_ID}> {text}", "ts": ts, "channel": channel,
            "event_ts": ts, **extra}


def direct_message(text: str, *, user: str = "U2", channel: str = "DU2", ts: str = "1700000000.000200") -> dict[str, Any]:
    return {"type": "message", "channel_type": "im", "user": user, "text": text, "ts": ts, "channel": channel, "event_ts": ts}


def slash_command(text: str, response_url: str, *, user: str = "U2", channel: str = "C1", team_id: str = TEAM_ID) -> dict[str, str]:
    return {"token": "verification", "team_id": team_id, "team_domain": "fake", "channel_id": channel,
            "channel_name": "general", "user_id": user, "user_name": "ann", "command": "/mlbot", "text": text,
            "api_app_id": "A1", "response_url": response_url, "trigger_id": "1.2.3"}


def block_actions(button: dict[str, Any], *, response_url: str | None, user: str = "U2", channel: str = "C1",
                  container: dict[str, Any] | None = None, team_id: str = TEAM_ID) -> dict[str, Any]:
    """A click on `button` (a block from a rendered message), as Slack posts it."""
    payload: dict[str, Any] = {
        "type": "block_actions", "team": {"id": team_id, "domain": "fake"},
        "user": {"id": user, "username": "ann", "team_id": team_id}, "api_app_id": "A1", "token": "verification",
        "container": container or {"type": "message", "message_ts": "1700000000.000300", "channel_id": channel},
        "trigger_id": "1.2.3", "channel": {"id": channel, "name": "general"},
        "actions": [{"type": "button", "action_id": button["action_id"], "block_id": "b1", "text": button["text"],
                     "value": button["value"], "action_ts": "1700000001.000000"}],
    }
    if response_url:
        payload["response_url"] = response_url
    return payload


async def post_signed(url: str, body: str | bytes, secret: str, *, content_type: str, timestamp: int | None = None,
                      headers: dict[str, str] | None = None, signature: str | None = None) -> tuple[int, str]:
    """POST `body` as Slack does, signed with `secret` (or with the given bad `signature`)."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    signed = signature or SignatureVerifier(secret).generate_signature(timestamp=ts, body=body)
    all_headers = {"content-type": content_type, "x-slack-request-timestamp": ts, "x-slack-signature": signed, **(headers or {})}
    async with aiohttp.ClientSession() as session:
        async with session.post(url, data=body.encode() if isinstance(body, str) else body, headers=all_headers) as response:
            return response.status, await response.text()


def json_body(payload: dict[str, Any]) -> str:
    return json.dumps(payload)


def form_body(fields: dict[str, str]) -> str:
    return urlencode(fields)


def interactive_body(payload: dict[str, Any]) -> str:
    return urlencode({"payload": json.dumps(payload)})
