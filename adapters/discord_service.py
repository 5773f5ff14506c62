"""The Discord client as a service `mlbot run` can start again after it fails.

A discord.py client that has been closed cannot log in again (its HTTP connector stays
closed: "Session is closed", Rapptz/discord.py#9121), so each start after a failure
builds a new client. Nudges (`send_direct`) and /healthz (`ready`) follow the current one.
"""
from __future__ import annotations

from pathlib import Path

from adapters.discord_app import DiscordSender, MlBotClient, build_client, serve_discord
from bot.core import Core
from bot.delivery import Delivery
from bot.replies import Reply
from bot.settings import Settings


class DiscordService:
    platform = "discord"

    def __init__(self, core: Core, settings: Settings, *, sync_state_dir: Path) -> None:
        self._core, self._settings, self._folder = core, settings, sync_state_dir
        self._use(build_client(core, settings, sync_state_dir=sync_state_dir))

    def _use(self, client: MlBotClient) -> None:
        self.client, self._sender = client, DiscordSender(client)

    async def run(self) -> None:
        """Serve until cancelled; `serve_discord` closes the client however it ends."""
        if self.client.is_closed():
            self._use(build_client(self._core, self._settings, sync_state_dir=self._folder))
        await serve_discord(self._core, self._settings, sync_state_dir=self._folder, client=self.client)

    async def ready(self) -> bool:
        return self.client.is_ready() and not self.client.is_closed()

    async def send_direct(self, user_id: str, reply: Reply) -> Delivery:
        return await self._sender.send_direct(user_id, reply)
