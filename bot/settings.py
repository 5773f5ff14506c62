"""Settings read from the environment once, in `main()`, never at import."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from platformdirs import user_data_path


def default_db_path() -> Path:
    """`mlbot.sqlite3` in the user's data directory (~/.local/share/mlbot on Linux)."""
    return user_data_path("mlbot", appauthor=False) / "mlbot.sqlite3"


@dataclass(frozen=True)
class Settings:
    db: str
    content_dir: Path | None
    discord_token: str | None
    discord_guild_id: int | None
    slack_bot_token: str | None
    slack_app_token: str | None
    slack_signing_secret: str | None
    port: int
    http_port: int | None = None  # /healthz and /metrics, when set
    discord_shard_count: int | None = None  # total shards across replicas (AutoShardedClient)
    discord_shard_ids: tuple[int, ...] | None = None  # the shards this replica runs (default: all)
    slack_api_url: str | None = None  # the Slack Web API base (GovSlack, a proxy, a fake); default slack.com
    discord_proxy: str | None = None  # HTTP proxy URL for Discord's REST API and gateway

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, *, db: str | None = None) -> "Settings":
        env = os.environ if env is None else env
        guild = env.get("DISCORD_GUILD_ID", "").strip()
        return cls(
            db=db or env.get("MLBOT_DB") or str(default_db_path()),
            content_dir=Path(env["MLBOT_CONTENT"]) if env.get("MLBOT_CONTENT") else None,
            discord_token=env.get("DISCORD_TOKEN") or None,
            discord_guild_id=int(guild) if guild.isdigit() else None,
            slack_bot_token=env.get("SLACK_BOT_TOKEN") or None,
            slack_app_token=env.get("SLACK_APP_TOKEN") or None,
            slack_signing_secret=env.get("SLACK_SIGNING_SECRET") or None,
            port=int(env.get("PORT", "3000") or 3000),
            http_port=int(env["MLBOT_HTTP_PORT"]) if env.get("MLBOT_HTTP_PORT", "").isdigit() else None,
            discord_shard_count=int(env["DISCORD_SHARD_COUNT"]) if env.get("DISCORD_SHARD_COUNT", "").isdigit() else None,
            discord_shard_ids=_int_list(env.get("DISCORD_SHARD_IDS", "")),
            slack_api_url=env.get("SLACK_API_URL") or None,
            discord_proxy=env.get("DISCORD_PROXY") or None,
        )

    @property
    def platforms(self) -> list[str]:
        found = []
        if self.discord_token:
            found.append("discord")
        if self.slack_bot_token and (self.slack_app_token or self.slack_signing_secret):
            found.append("slack")
        return found

    def missing_credentials(self) -> list[str]:
        """One line per platform that can't start, naming the variables it needs."""
        lines = []
        if not self.discord_token:
            lines.append("Discord: set DISCORD_TOKEN (and DISCORD_GUILD_ID to try it in one server).")
        if not self.slack_bot_token:
            lines.append("Slack: set SLACK_BOT_TOKEN and SLACK_APP_TOKEN (Socket Mode) or SLACK_SIGNING_SECRET (HTTP mode on PORT).")
        elif not (self.slack_app_token or self.slack_signing_secret):
            lines.append("Slack: SLACK_BOT_TOKEN is set; also set SLACK_APP_TOKEN (Socket Mode) or SLACK_SIGNING_SECRET (HTTP mode).")
        return lines


def _int_list(text: str) -> tuple[int, ...] | None:
    """"0,2" -> (0, 2); anything else -> None."""
    parts = [p.strip() for p in text.split(",") if p.strip()]
    return tuple(int(p) for p in parts) if parts and all(p.isdigit() for p in parts) else None
