"""Discord: slash commands generated from the registry, embeds, persistent buttons, DMs.

The adapter decides nothing about answers. A slash command, a button click, a mention or
a DM becomes a `Message`; `Core.handle` answers it; `discord_render.render` turns the
`Reply` into embeds and buttons. Why one slash command per registry entry and not one
`/mlbot` group is explained in `discord_commands`.

Runner rules kept here:
- commands are synced in `setup_hook` (once per process, not on every reconnect like
  `on_ready`) and only when the hash of the generated payloads changed;
- an interaction the core has not answered within `defer_after` seconds is deferred first,
  so the 3-second acknowledgement window is never missed;
- buttons are one `DynamicItem` whose `custom_id` carries the command (numbered when one
  message repeats a command), registered at startup, so buttons sent before a restart
  still work;
- every send uses `AllowedMentions.none()` and carries the reply's files (a chart, a data
  export) on its first message; any exception gives the member an apology with
  an error id and logs the traceback under that id; tokens are redacted from log records.
"""
from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import os
import re
from pathlib import Path
from typing import Any, Iterator

import aiohttp
import discord

from adapters.discord_commands import choice_payloads, command_payloads, focused_option, mention_text, option_values, payload_hash, to_message
from adapters.discord_render import CUSTOM_ID_TEMPLATE, Button, Page, render
from bot.apology import apology, logged_error
from bot.core import Core
from bot.delivery import Delivery
from bot.messages import Message
from bot.replies import Action, Reply
from bot.settings import Settings

log = logging.getLogger(__name__)

NO_MENTIONS = discord.AllowedMentions.none()
CANNOT_DM = 50007  # Discord: "Cannot send messages to this user"
DEFER_AFTER = 2.0  # seconds; Discord drops an interaction not acknowledged within 3
STYLES = {
    "primary": discord.ButtonStyle.primary,
    "secondary": discord.ButtonStyle.secondary,
    "success": discord.ButtonStyle.success,
    "danger": discord.ButtonStyle.danger,
}
STALE_BUTTON = "This button is no longer active. Say `help` (or use `/help`) to see what I can do."
SENT_PRIVATELY = "That answer is personal, so I've sent it to you in a direct message."
CANNOT_SEND_PRIVATELY = "That answer is personal and I can't send you direct messages. Use the slash command for a private answer, or allow DMs from this server."


class ActionButton(discord.ui.DynamicItem[discord.ui.Button], template=CUSTOM_ID_TEMPLATE):
    """A button whose `custom_id` carries its command (see `discord_render.custom_id`): no
    state to lose on restart."""

    def __init__(self, button: Button) -> None:
        super().__init__(discord.ui.Button(label=button.label, style=STYLES[button.action.style], custom_id=button.custom_id))
        self.command = button.action.command

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Item, match: re.Match[str]) -> "ActionButton":
        return cls(Button(Action(getattr(item, "label", None) or "…", match["command"]), match.string))

    async def callback(self, interaction: discord.Interaction) -> None:
        client = interaction.client
        assert isinstance(client, MlBotClient)
        await client.answer_click(interaction, self.command)


def page_kwargs(page: Page, *, edit: bool = False) -> dict[str, Any]:
    """Keyword arguments for sending `page`; `edit` for an edit, which names files `attachments`."""
    kwargs: dict[str, Any] = {"embeds": page.embeds, "allowed_mentions": NO_MENTIONS}
    if page.files:  # a discord.File is read once: build them for each send
        kwargs["attachments" if edit else "files"] = [
            discord.File(io.BytesIO(a.data), filename=a.filename, description=a.description or None) for a in page.files
        ]
    if page.buttons:
        view = discord.ui.View(timeout=None)
        for button in page.buttons:
            view.add_item(ActionButton(button))
        kwargs["view"] = view
    return kwargs


async def send_pages(channel: discord.abc.Messageable, pages: list[Page], *, reference: discord.Message | None = None) -> None:
    for n, page in enumerate(pages):
        await channel.send(**page_kwargs(page), reference=reference if n == 0 else None)


def _may_manage(interaction: discord.Interaction) -> bool:
    """Manage Server in the guild of the interaction (never in DMs): what admin commands need."""
    return interaction.guild_id is not None and interaction.permissions.manage_guild


def _author_may_manage(author: discord.abc.User) -> bool:
    # A member of a guild not (yet) in the cache has no guild to compute permissions from.
    return isinstance(author, discord.Member) and author.guild is not None and author.guild_permissions.manage_guild


class MlBotClient(discord.Client):
    def __init__(self, core: Core, *, sync_state_dir: Path, guild_id: int | None, defer_after: float = DEFER_AFTER, **options: Any) -> None:
        # Guild and DM messages only: no privileged intent. Discord still sends the content
        # of messages that mention the bot and of DMs.
        intents = discord.Intents.none()
        intents.guilds = intents.guild_messages = intents.dm_messages = True
        super().__init__(intents=intents, allowed_mentions=NO_MENTIONS, **options)
        self.core = core
        self.sync_state_dir = sync_state_dir
        self.guild_id = guild_id
        self.defer_after = defer_after

    async def setup_hook(self) -> None:
        self.add_dynamic_items(ActionButton)
        await self.sync_commands()

    # --- command sync ------------------------------------------------------------------

    @property
    def sync_state_file(self) -> Path:
        return self.sync_state_dir / f"discord-commands.{self.guild_id or 'global'}.sha256"

    async def sync_commands(self) -> bool:
        """Upload the generated commands if they changed since the last sync; True if uploaded."""
        assert self.application_id is not None
        payloads = command_payloads(self.core.registry, in_guild=self.guild_id is not None)
        digest = payload_hash(self.application_id, payloads)
        state = self.sync_state_file
        if state.exists() and state.read_text().strip() == digest:
            log.info("Discord commands unchanged (%d), not syncing", len(payloads))
            return False
        try:
            if self.guild_id:
                await self.http.bulk_upsert_guild_commands(self.application_id, self.guild_id, payloads)
            else:
                await self.http.bulk_upsert_global_commands(self.application_id, payloads)
        except discord.HTTPException as exc:
            log.error("Discord command sync failed (HTTP %s, code %s); the previous commands stay", exc.status, exc.code)
            return False
        state.parent.mkdir(parents=True, exist_ok=True)
        partial = state.with_suffix(".tmp")
        partial.write_text(digest + "\n")
        os.replace(partial, state)
        log.info("Synced %d Discord commands %s", len(payloads), f"to guild {self.guild_id}" if self.guild_id else "globally")
        return True

    # --- interactions ------------------------------------------------------------------

    async def on_interaction(self, interaction: discord.Interaction) -> None:
        if interaction.type is discord.InteractionType.application_command:
            await self._guarded(interaction, self._command(interaction))
        elif interaction.type is discord.InteractionType.autocomplete:
            await self._guarded(interaction, self._autocomplete(interaction))
        elif interaction.type is discord.InteractionType.component:
            # Ours are answered by ActionButton; anything else (a retired id) gets a note.
            if not re.fullmatch(CUSTOM_ID_TEMPLATE, str((interaction.data or {}).get("custom_id", ""))):
                await self._guarded(interaction, interaction.response.send_message(STALE_BUTTON, ephemeral=True, allowed_mentions=NO_MENTIONS))

    async def answer_click(self, interaction: discord.Interaction, command: str) -> None:
        message = Message("discord", str(interaction.user.id), text=command, is_admin=_may_manage(interaction))
        await self._guarded(interaction, self._answer(interaction, message, private=True))

    async def _command(self, interaction: discord.Interaction) -> None:
        data = interaction.data or {}
        user_id, is_admin = str(interaction.user.id), _may_manage(interaction)
        spec = self.core.registry.get(str(data.get("name", "")))
        if spec is None:  # a command left over from an older sync: the core explains
            message = Message("discord", user_id, command=str(data.get("name", "")), args=option_values(data), is_admin=is_admin)
        else:
            message = to_message(spec, data, user_id=user_id, is_admin=is_admin)
        await self._answer(interaction, message, private=spec is None or spec.personal)

    async def _autocomplete(self, interaction: discord.Interaction) -> None:
        data = interaction.data or {}
        focused = focused_option(data)
        choices = self.core.complete(str(data.get("name", "")), *focused) if focused else []
        await interaction.response.autocomplete([discord.app_commands.Choice(name=name, value=value) for name, value in choice_payloads(choices)])

    async def _answer(self, interaction: discord.Interaction, message: Message, *, private: bool) -> None:
        """Answer within Discord's 3 s: defer first if the core is slower than `defer_after`.

        A slash command's "thinking…" placeholder is ephemeral when the command is personal
        (`private`); a button click defers without a placeholder, so its answer is free to be
        private or public."""
        work = asyncio.ensure_future(self.core.handle(message))
        placeholder: bool | None = None  # the placeholder's ephemerality, if one was shown
        done, _ = await asyncio.wait({work}, timeout=self.defer_after)
        if not done:
            if interaction.type is discord.InteractionType.component:
                await interaction.response.defer()
            else:
                await interaction.response.defer(ephemeral=private, thinking=True)
                placeholder = private
        await self._send_reply(interaction, await work, placeholder)

    async def _send_reply(self, interaction: discord.Interaction, reply: Reply, placeholder: bool | None) -> None:
        first, *rest = render(reply)
        private = reply.ephemeral
        if not interaction.response.is_done():
            await interaction.response.send_message(**page_kwargs(first), ephemeral=private)
        elif placeholder is None:
            await interaction.followup.send(**page_kwargs(first), ephemeral=private)
        elif placeholder == private:
            await interaction.edit_original_response(**page_kwargs(first, edit=True))
        else:  # a public placeholder must not turn into a private answer, or back
            await interaction.delete_original_response()
            await interaction.followup.send(**page_kwargs(first), ephemeral=private)
        for page in rest:
            await interaction.followup.send(**page_kwargs(page), ephemeral=private)

    async def _guarded(self, interaction: discord.Interaction, work: Any) -> None:
        try:
            await work
        except Exception:
            error_id = logged_error(log, "while answering a Discord %s interaction", interaction.type.name)
            await self._apologise(interaction, error_id)

    async def _apologise(self, interaction: discord.Interaction, error_id: str) -> None:
        try:
            if interaction.type is discord.InteractionType.autocomplete:
                if not interaction.response.is_done():
                    await interaction.response.autocomplete([])
            elif not interaction.response.is_done():
                await interaction.response.send_message(apology(error_id).text, ephemeral=True, allowed_mentions=NO_MENTIONS)
            else:
                await interaction.followup.send(apology(error_id).text, ephemeral=True, allowed_mentions=NO_MENTIONS)
        except Exception:
            log.exception("could not send the apology for error %s", error_id)

    # --- mentions and DMs --------------------------------------------------------------

    async def on_message(self, message: discord.Message) -> None:
        me = self.user
        if me is None or message.author.bot:
            return
        in_dm = isinstance(message.channel, discord.DMChannel)
        if not in_dm and not any(user.id == me.id for user in message.mentions):
            return
        try:
            text = mention_text(message.content, me.id)
            reply = await self.core.handle(Message("discord", str(message.author.id), text=text, is_admin=_author_may_manage(message.author)))
            if reply.ephemeral and not in_dm:
                await self._reply_privately(message, reply)
            else:
                await send_pages(message.channel, render(reply), reference=None if in_dm else message)
        except Exception:
            error_id = logged_error(log, "while answering a Discord message")
            with contextlib.suppress(Exception):
                await message.channel.send(apology(error_id).text, allowed_mentions=NO_MENTIONS)

    async def _reply_privately(self, message: discord.Message, reply: Reply) -> None:
        """Personal data asked for in a channel goes to the member's DMs, never the channel."""
        try:
            await send_pages(await message.author.create_dm(), render(reply))
            note = SENT_PRIVATELY
        except discord.Forbidden:
            note = CANNOT_SEND_PRIVATELY
        await message.channel.send(note, reference=message, allowed_mentions=NO_MENTIONS)


class DiscordSender:
    """`bot.delivery.DirectSender` for weekly nudges: a DM with the rendered reply."""

    platform = "discord"

    def __init__(self, client: discord.Client, *, timeout: float = 30.0) -> None:
        self._client = client
        self._timeout = timeout

    async def send_direct(self, user_id: str, reply: Reply) -> Delivery:
        if self._client.user is None or self._client.is_closed():
            return Delivery.TRANSIENT  # not logged in (yet, or any more)
        try:
            async with asyncio.timeout(self._timeout):
                channel = await self._client.create_dm(discord.Object(int(user_id)))
                await send_pages(channel, render(reply))
        except discord.HTTPException as exc:
            if exc.code == CANNOT_DM:
                return Delivery.DMS_CLOSED
            log.warning("Discord DM failed (HTTP %s, code %s); will retry later", exc.status, exc.code)
            return Delivery.TRANSIENT
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            log.warning("Discord DM failed (%s); will retry later", type(exc).__name__)
            return Delivery.TRANSIENT
        return Delivery.SENT


class TokenRedactor(logging.Filter):
    """Removes the bot token and interaction tokens from every record a handler emits:
    discord.py logs, at debug level, REST paths that carry them and gateway events whose
    `token` field holds them."""

    _TOKENS = re.compile(r"(/(?:webhooks|interactions)/\d+/|['\"]token['\"]:\s*['\"])[\w.-]+")

    def __init__(self, token: str) -> None:
        super().__init__()
        self._token = token

    def _clean(self, text: str) -> str:
        return self._TOKENS.sub(r"\1[redacted]", text.replace(self._token, "[redacted]"))

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = self._clean(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self._clean(record.exc_text)
        return True


@contextlib.contextmanager
def redacted_logs(token: str) -> Iterator[None]:
    """Redact tokens in every handler configured on the root logger while serving."""
    redactor = TokenRedactor(token)
    handlers = list(logging.getLogger().handlers)
    for handler in handlers:
        handler.addFilter(redactor)
    try:
        yield
    finally:
        for handler in handlers:
            handler.removeFilter(redactor)


class ShardedMlBotClient(MlBotClient, discord.AutoShardedClient):
    """The same bot over several gateway shards (`DISCORD_SHARD_COUNT`); a replica runs
    the shards in `DISCORD_SHARD_IDS`, or all of them."""


def build_client(core: Core, settings: Settings, *, sync_state_dir: Path, defer_after: float = DEFER_AFTER, **options: Any) -> MlBotClient:
    """The Discord client; `options` go to `discord.Client` (tests shorten timeouts)."""
    if settings.discord_proxy:
        options["proxy"] = settings.discord_proxy  # REST, gateway and interaction webhooks
    if settings.discord_shard_count:
        options["shard_count"] = settings.discord_shard_count
        if settings.discord_shard_ids:
            options["shard_ids"] = list(settings.discord_shard_ids)
        return ShardedMlBotClient(core, sync_state_dir=sync_state_dir, guild_id=settings.discord_guild_id, defer_after=defer_after, **options)
    return MlBotClient(core, sync_state_dir=sync_state_dir, guild_id=settings.discord_guild_id, defer_after=defer_after, **options)


async def serve_discord(core: Core, settings: Settings, *, sync_state_dir: Path, client: MlBotClient | None = None) -> None:
    """Run until cancelled, then close the connection cleanly. Pass `client` to share it
    with a `DiscordSender` (nudges); otherwise one is built here."""
    token = settings.discord_token
    if not token:
        raise ValueError("DISCORD_TOKEN is not set")
    client = client or build_client(core, settings, sync_state_dir=sync_state_dir)
    with redacted_logs(token):
        async with client:
            await client.start(token)
