"""A local Discord: the REST routes the bot uses and a gateway speaking the real protocol.

The real discord.py client talks to it when `discord.http.Route.BASE` and
`DiscordWebSocket.DEFAULT_GATEWAY` point here (see `pointed_at`). Every REST request and
every gateway frame the client sends is recorded in `records`, in order; `fail` injects an
error response (or a hang) for the next matching requests; `dispatch` sends a gateway event
and `drop` closes the connection the way a network failure would, after which the client
resumes. Messages are checked as Discord checks them: a button's `custom_id` must be unique
in its message and at most 100 characters, its label at most 80 (else 400, code 50035).
Files arrive as discord.py sends them, `multipart/form-data` with `payload_json` and one
`files[n]` part per file, described by `attachments[{id: n, filename, description}]` in the
payload; each is recorded (`Record.files`) and stored on its message as Discord returns it
(a description over 1,024 characters or a file without its `attachments` entry is refused).
JSON responses carry exactly `Content-Type: application/json` (discord.py ignores
a body with a charset suffix), and a 429 needs `Via` to be retried (else it reads as a
Cloudflare ban).
"""
from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import mimetypes
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import aiohttp
import discord
import yarl
from aiohttp import web
from discord.gateway import DiscordWebSocket

API = "/api/v10"
BOT_ID = 900000000000000001
APP_ID = 900000000000000002
GUILD_ID = 900000000000000003
CHANNEL_ID = 900000000000000004
MEMBER_ID = 900000000000000005
OWNER_ID = 900000000000000006
TIMESTAMP = "2026-01-05T10:00:00+00:00"
EPHEMERAL = 64
# Interaction callback types that create (or stand in for) a message.
MESSAGE_CALLBACKS = {4, 5, 7}
CUSTOM_ID, BUTTON_LABEL = 100, 80
ATTACHMENT_DESCRIPTION = 1024
FILE_PART = re.compile(r"files\[(\d+)\]")
BODY = web.RequestKey("body", object)  # the parsed JSON body, for the route handlers
FILES = web.RequestKey("files", list)  # the uploaded files, for the route handlers


@dataclass
class Upload:
    """One file of a multipart request: the `files[index]` part and its `attachments` entry."""

    index: int
    filename: str
    content_type: str
    data: bytes
    description: str | None


@dataclass
class Record:
    """One REST request (`method` GET/POST/...) or one gateway frame (`method` "WS",
    `path` "op<N>") the client sent."""

    method: str
    path: str
    query: dict[str, str]
    json: Any
    files: list[Upload] = field(default_factory=list)


@dataclass
class Fault:
    method: str
    path: re.Pattern[str]
    status: int
    body: Any
    headers: dict[str, str]
    times: int
    hang: bool


@dataclass
class Interaction:
    payload: dict[str, Any]

    @property
    def token(self) -> str:
        return self.payload["token"]

    @property
    def id(self) -> str:
        return self.payload["id"]


def user(user_id: int, *, bot: bool = False) -> dict[str, Any]:
    return {"id": str(user_id), "username": f"user{user_id % 1000}", "discriminator": "0", "global_name": None, "avatar": None, "bot": bot}


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=json.dumps(data).encode(), status=status, headers=headers, content_type="application/json")


async def _multipart(request: web.Request) -> tuple[Any, list[Upload]]:
    """The `payload_json` part and the `files[n]` parts of a multipart request."""
    body: Any = None
    parts: dict[int, tuple[str, str, bytes]] = {}
    reader = await request.multipart()
    async for part in reader:
        if not isinstance(part, aiohttp.BodyPartReader):
            continue
        if part.name == "payload_json":
            body = json.loads(await part.text())
        elif part.name and (match := FILE_PART.fullmatch(part.name)):
            parts[int(match[1])] = (part.filename or "", part.headers.get("Content-Type", ""), bytes(await part.read()))
    described = _attachments(body)
    uploads = [
        Upload(index, filename, content_type, data, (described.get(index) or {}).get("description"))
        for index, (filename, content_type, data) in sorted(parts.items())
    ]
    return body, uploads


def _attachments(body: Any) -> dict[int, dict[str, Any]]:
    """The `attachments` entries of a message body (or an interaction callback's `data`), by id."""
    if not isinstance(body, dict):
        return {}
    data = body.get("data") if isinstance(body.get("data"), dict) else body
    return {int(a["id"]): a for a in data.get("attachments") or [] if str(a.get("id", "")).isdigit()}


def _upload_problem(body: Any, uploads: list[Upload]) -> str | None:
    described = _attachments(body)
    for upload in uploads:
        if upload.index not in described:
            return "ATTACHMENT_NOT_FOUND"
        if len(upload.description or "") > ATTACHMENT_DESCRIPTION:
            return "BASE_TYPE_MAX_LENGTH"
    return None


def _component_problem(body: Any) -> str | None:
    """What Discord would refuse in the buttons of a message body (or an interaction
    callback's `data`), or None."""
    if not isinstance(body, dict):
        return None
    data = body.get("data") if isinstance(body.get("data"), dict) else body
    seen: set[str] = set()
    for row in data.get("components") or []:
        for component in row.get("components", []):
            custom_id = component.get("custom_id") or ""
            if custom_id in seen:
                return "COMPONENT_CUSTOM_ID_DUPLICATED"
            if len(custom_id) > CUSTOM_ID or len(component.get("label") or "") > BUTTON_LABEL:
                return "BASE_TYPE_MAX_LENGTH"
            if custom_id:
                seen.add(custom_id)
    return None


@dataclass
class FakeDiscord:
    records: list[Record] = field(default_factory=list)
    messages: dict[str, dict[str, Any]] = field(default_factory=dict)
    faults: list[Fault] = field(default_factory=list)
    files: dict[str, bytes] = field(default_factory=dict)  # attachment id -> the bytes uploaded

    def __post_init__(self) -> None:
        self._ids = itertools.count(910000000000000000)
        self._changed = asyncio.Condition()
        self._ws: web.WebSocketResponse | None = None
        self._seq = 0
        self._session = 0
        self._originals: dict[str, str] = {}  # interaction token -> message id
        self._release = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.port = 0
        self.identifies = 0
        self.resumes = 0

    # --- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application(middlewares=[self._record_and_fault])
        app.router.add_get("/gateway", self._gateway)
        app.router.add_get("/gateway-resume", self._gateway)
        r = app.router
        r.add_get(f"{API}/users/@me", self._me)
        r.add_get(f"{API}/oauth2/applications/@me", self._application)
        r.add_put(f"{API}/applications/{{app}}/commands", self._commands)
        r.add_put(f"{API}/applications/{{app}}/guilds/{{guild}}/commands", self._commands)
        r.add_post(f"{API}/interactions/{{id}}/{{token}}/callback", self._callback)
        r.add_post(f"{API}/webhooks/{{app}}/{{token}}", self._followup)
        r.add_patch(f"{API}/webhooks/{{app}}/{{token}}/messages/@original", self._edit_original)
        r.add_delete(f"{API}/webhooks/{{app}}/{{token}}/messages/@original", self._delete_original)
        r.add_post(f"{API}/users/@me/channels", self._open_dm)
        r.add_post(f"{API}/channels/{{channel}}/messages", self._channel_message)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def close(self) -> None:
        self._release.set()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.port}{API}"

    @property
    def gateway_url(self) -> yarl.URL:
        return yarl.URL(f"ws://127.0.0.1:{self.port}/gateway")

    @contextlib.contextmanager
    def pointed_at(self) -> Iterator[None]:
        """Send the real discord.py client here; restore its Discord URLs afterwards."""
        base, gateway = discord.http.Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY
        discord.http.Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY = self.api_base, self.gateway_url
        try:
            yield
        finally:
            discord.http.Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY = base, gateway

    # --- recording, waiting, faults ------------------------------------------------------

    async def _record(self, record: Record) -> None:
        async with self._changed:
            self.records.append(record)
            self._changed.notify_all()

    async def wait_for(self, predicate: Callable[[Record], bool], *, after: int = 0, timeout: float = 5.0) -> Record:
        """The first record from index `after` on that matches, waiting for it if needed."""

        async def scan() -> Record:
            async with self._changed:
                while True:
                    for record in self.records[after:]:
                        if predicate(record):
                            return record
                    await self._changed.wait()

        return await asyncio.wait_for(scan(), timeout)

    async def wait_for_message(self, predicate: Callable[[dict[str, Any]], bool], *, timeout: float = 5.0) -> dict[str, Any]:
        """The first stored message that matches, waiting until the bot has created (or
        edited) it: a request is recorded before the route handler stores its message."""

        async def scan() -> dict[str, Any]:
            async with self._changed:
                while True:
                    for message in self.messages.values():
                        if predicate(message):
                            return message
                    await self._changed.wait()

        return await asyncio.wait_for(scan(), timeout)

    async def _stored(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    def mark(self) -> int:
        return len(self.records)

    def since(self, mark: int, method: str | None = None, path: str = "") -> list[Record]:
        return [r for r in self.records[mark:] if (method is None or r.method == method) and re.search(path, r.path)]

    def fail(self, method: str, path: str, status: int, body: Any = None, *, headers: dict[str, str] | None = None, times: int = 1, hang: bool = False) -> None:
        """Answer the next `times` requests matching `method` and `path` (a regex over the
        path after /api/v10) with `status` and `body`, or never answer them (`hang`)."""
        self.faults.append(Fault(method, re.compile(path), status, body, headers or {}, times, hang))

    @web.middleware
    async def _record_and_fault(self, request: web.Request, handler: Callable[[web.Request], Any]) -> web.StreamResponse:
        if not request.path.startswith(API):
            return await handler(request)
        path = request.path[len(API):]
        body: Any = None
        uploads: list[Upload] = []
        if request.can_read_body:
            if request.content_type == "multipart/form-data":
                body, uploads = await _multipart(request)
            else:
                body = await request.json()
        await self._record(Record(request.method, path, dict(request.query), body, uploads))
        for fault in self.faults:
            if fault.times and fault.method == request.method and fault.path.fullmatch(path):
                fault.times -= 1
                if fault.hang:
                    await self._release.wait()
                return _json(fault.body, fault.status, fault.headers)
        problem = _component_problem(body)
        if problem:
            return _json({"code": 50035, "message": "Invalid Form Body", "errors": {"components": {"_errors": [{"code": problem, "message": problem}]}}}, 400)
        problem = _upload_problem(body, uploads)
        if problem:
            return _json({"code": 50035, "message": "Invalid Form Body", "errors": {"attachments": {"_errors": [{"code": problem, "message": problem}]}}}, 400)
        request[BODY] = body
        request[FILES] = uploads
        return await handler(request)

    # --- REST ----------------------------------------------------------------------------

    def _message(self, channel_id: str, body: dict[str, Any], uploads: list[Upload], *, interaction: bool = False) -> dict[str, Any]:
        message = {
            "id": str(next(self._ids)),
            "channel_id": channel_id,
            "author": user(BOT_ID, bot=True),
            "content": body.get("content") or "",
            "timestamp": TIMESTAMP,
            "edited_timestamp": None,
            "tts": False,
            "mention_everyone": False,
            "mentions": [],
            "mention_roles": [],
            "attachments": [self._attachment(channel_id, upload) for upload in uploads],
            "embeds": body.get("embeds") or [],
            "components": body.get("components") or [],
            "pinned": False,
            "type": 20 if interaction else 0,
            "flags": body.get("flags") or 0,
        }
        self.messages[message["id"]] = message
        return message

    def _attachment(self, channel_id: str, upload: Upload) -> dict[str, Any]:
        """A stored file as Discord returns it on its message."""
        attachment_id = str(next(self._ids))
        url = f"http://127.0.0.1:{self.port}/attachments/{channel_id}/{attachment_id}/{upload.filename}"
        self.files[attachment_id] = upload.data
        stored = {"id": attachment_id, "filename": upload.filename, "size": len(upload.data), "url": url, "proxy_url": url,
                  "content_type": mimetypes.guess_type(upload.filename)[0] or upload.content_type}  # Discord goes by the name
        if upload.description is not None:
            stored["description"] = upload.description
        return stored

    async def _me(self, request: web.Request) -> web.Response:
        return _json({**user(BOT_ID, bot=True), "verified": True, "mfa_enabled": False, "flags": 0})

    async def _application(self, request: web.Request) -> web.Response:
        return _json({
            "id": str(APP_ID), "name": "mlbot", "description": "", "icon": None, "bot_public": False,
            "bot_require_code_grant": False, "owner": user(OWNER_ID), "verify_key": "0" * 64, "flags": 0,
        })

    async def _commands(self, request: web.Request) -> web.Response:
        commands = [{**c, "id": str(next(self._ids)), "application_id": str(APP_ID), "version": "1"} for c in request[BODY]]
        return _json(commands)

    async def _callback(self, request: web.Request) -> web.Response:
        body = request[BODY]
        kind = body["type"]
        data = body.get("data") or {}
        info: dict[str, Any] = {"id": request.match_info["id"], "response_message_loading": kind == 5, "response_message_ephemeral": bool(data.get("flags", 0) & EPHEMERAL)}
        if kind not in MESSAGE_CALLBACKS:
            return _json({"interaction": info})
        message = self._message(str(CHANNEL_ID), data, request[FILES], interaction=True)
        self._originals[request.match_info["token"]] = message["id"]
        await self._stored()
        info["response_message_id"] = message["id"]
        return _json({"interaction": info, "resource": {"type": kind, "message": message}})

    async def _followup(self, request: web.Request) -> web.Response:
        message = self._message(str(CHANNEL_ID), request[BODY], request[FILES], interaction=True)
        await self._stored()
        return _json(message)

    async def _edit_original(self, request: web.Request) -> web.Response:
        message_id = self._originals.get(request.match_info["token"])
        if message_id is None:
            return _json({"code": 10008, "message": "Unknown Message"}, 404)
        message = self.messages[message_id]
        body = request[BODY]
        message.update({k: body[k] for k in ("content", "embeds", "components") if k in body})
        if "attachments" in body:  # the files named there, uploaded with this edit
            message["attachments"] = [self._attachment(message["channel_id"], upload) for upload in request[FILES]]
        await self._stored()
        return _json(message)

    async def _delete_original(self, request: web.Request) -> web.Response:
        message_id = self._originals.pop(request.match_info["token"], None)
        self.messages.pop(message_id or "", None)
        return web.Response(status=204)

    async def _open_dm(self, request: web.Request) -> web.Response:
        recipient = int(request[BODY]["recipient_id"])
        return _json({"id": str(recipient + 1), "type": 1, "recipients": [user(recipient)], "last_message_id": None})

    async def _channel_message(self, request: web.Request) -> web.Response:
        message = self._message(request.match_info["channel"], request[BODY], request[FILES])
        await self._stored()
        return _json(message)

    # --- gateway -------------------------------------------------------------------------

    async def _send(self, ws: web.WebSocketResponse, op: int, data: Any, event: str | None = None) -> None:
        frame: dict[str, Any] = {"op": op, "d": data, "s": None, "t": event}
        if op == 0:
            self._seq += 1
            frame["s"] = self._seq
        await ws.send_str(json.dumps(frame))

    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self._ws = ws
        await self._send(ws, 10, {"heartbeat_interval": 45000})
        async for frame in ws:
            payload = json.loads(frame.data)
            op = payload["op"]
            if op == 1:
                await self._send(ws, 11, None)
            elif op == 2:
                self.identifies += 1
                self._session += 1
                self._seq = 0
                ready = {
                    "v": 10, "user": {**user(BOT_ID, bot=True), "verified": True, "mfa_enabled": False, "flags": 0},
                    "guilds": [], "session_id": f"session-{self._session}", "resume_gateway_url": f"ws://127.0.0.1:{self.port}/gateway-resume",
                    "application": {"id": str(APP_ID), "flags": 0},
                }
                if payload["d"].get("shard"):  # Discord echoes the shard a sharded IDENTIFY asked for
                    ready["shard"] = payload["d"]["shard"]
                await self._send(ws, 0, ready, "READY")
            elif op == 6:
                self.resumes += 1
                await self._send(ws, 0, {}, "RESUMED")
            await self._record(Record("WS", f"op{op}", {"path": request.path}, payload))
        return ws

    async def dispatch(self, event: str, data: dict[str, Any]) -> None:
        assert self._ws is not None and not self._ws.closed, "no gateway connection"
        await self._send(self._ws, 0, data, event)

    async def drop(self) -> None:
        """Close the gateway connection as a network failure would (code 4000: resumable)."""
        assert self._ws is not None
        await self._ws.close(code=4000)

    # --- events a member causes --------------------------------------------------------

    def interaction(self, kind: int, data: dict[str, Any], *, user_id: int = MEMBER_ID, in_guild: bool = True, permissions: int = 0, message: dict[str, Any] | None = None) -> Interaction:
        interaction_id = next(self._ids)
        payload: dict[str, Any] = {
            "id": str(interaction_id), "application_id": str(APP_ID), "type": kind, "data": data,
            "token": f"interaction-token-{interaction_id}", "version": 1, "attachment_size_limit": 8 * 1024 * 1024,
            "locale": "en-US", "app_permissions": "0", "entitlements": [], "authorizing_integration_owners": {},
        }
        if in_guild:
            payload["guild_id"] = str(GUILD_ID)
            payload["channel_id"] = str(CHANNEL_ID)
            payload["channel"] = {"id": str(CHANNEL_ID), "type": 0, "guild_id": str(GUILD_ID), "name": "general", "position": 0, "permission_overwrites": [], "nsfw": False, "parent_id": None}
            payload["member"] = {"user": user(user_id), "roles": [], "joined_at": TIMESTAMP, "deaf": False, "mute": False, "flags": 0, "permissions": str(permissions)}
        else:
            payload["channel_id"] = str(user_id + 1)
            payload["channel"] = {"id": str(user_id + 1), "type": 1, "recipients": [user(user_id)]}
            payload["user"] = user(user_id)
        if message is not None:
            payload["message"] = message
        return Interaction(payload)

    def slash(self, name: str, options: dict[str, Any] | None = None, **kw: Any) -> Interaction:
        opts = [{"name": k, "type": 4 if isinstance(v, int) else 3, "value": v} for k, v in (options or {}).items()]
        return self.interaction(2, {"id": str(next(self._ids)), "name": name, "type": 1, "options": opts}, **kw)

    def typing(self, name: str, option: str, partial: str, **kw: Any) -> Interaction:
        """An autocomplete request while the member types `partial` into `option`."""
        return self.interaction(4, {"id": str(next(self._ids)), "name": name, "type": 1, "options": [{"name": option, "type": 3, "value": partial, "focused": True}]}, **kw)

    def click(self, message: dict[str, Any], custom_id: str, **kw: Any) -> Interaction:
        return self.interaction(3, {"custom_id": custom_id, "component_type": 2}, message=message, **kw)

    async def send_interaction(self, interaction: Interaction) -> None:
        await self.dispatch("INTERACTION_CREATE", interaction.payload)

    def message_create(self, content: str, *, author_id: int = MEMBER_ID, in_guild: bool = True, mentions_bot: bool = False) -> dict[str, Any]:
        message = {
            "id": str(next(self._ids)), "channel_id": str(CHANNEL_ID if in_guild else author_id + 1), "author": user(author_id),
            "content": content, "timestamp": TIMESTAMP, "edited_timestamp": None, "tts": False,
            "mention_everyone": False, "mentions": [user(BOT_ID, bot=True)] if mentions_bot else [], "mention_roles": [],
            "attachments": [], "embeds": [], "components": [], "pinned": False, "type": 0, "flags": 0,
        }
        if in_guild:
            message["guild_id"] = str(GUILD_ID)
            message["member"] = {"roles": [], "joined_at": TIMESTAMP, "deaf": False, "mute": False, "flags": 0}
        return message
