"""The command registry as Discord application commands, and interactions back as Messages.

One top-level slash command per `CommandSpec` rather than subcommands of one `/mlbot`
group: Discord sets `default_member_permissions` per top-level command only, so a group
could not hide the admin commands from members while showing the others; top-level
commands also show their own description and options in the `/` picker, and the registry
stays far below Discord's 100-command cap. Pure functions, no network.
"""
from __future__ import annotations

import hashlib
import json
import re
import textwrap
from typing import Any, Iterable, Mapping

from bot.commands import Choice, CommandSpec, Param
from bot.messages import Message

CHAT_INPUT = 1
STRING, INTEGER = 3, 4
GUILD_CONTEXT, BOT_DM_CONTEXT = 0, 1
MANAGE_GUILD = 1 << 5
DESCRIPTION = 100
CHOICE_TEXT = 100
OPTIONS = 25
CHOICES = 25
# Param kinds whose values are whole numbers (the registry has no value type yet).
def _short(text: str, limit: int = DESCRIPTION) -> str:
    return textwrap.shorten(text, limit, placeholder="…") or "-"


def option_payload(param: Param) -> dict[str, Any]:
    option: dict[str, Any] = {
        "type": INTEGER if param.type == "int" else STRING,
        "name": param.name,
        "description": _short(param.description),
        "required": param.required,
    }
    if option["type"] == INTEGER:
        option["min_value"] = 0
    if param.choices is not None:
        option["autocomplete"] = True
    return option


def command_payload(spec: CommandSpec, *, in_guild: bool = False) -> dict[str, Any]:
    """One slash command. `contexts` (no admin commands in DMs) applies to global commands
    only; guild commands never show in DMs."""
    # Discord wants required options first.
    params = sorted(spec.params, key=lambda p: not p.required)[:OPTIONS]
    payload: dict[str, Any] = {
        "type": CHAT_INPUT,
        "name": spec.name,
        "description": _short(spec.summary),
        "options": [option_payload(p) for p in params],
        # Hidden from members by default; checked again on use by the core.
        "default_member_permissions": str(MANAGE_GUILD) if spec.admin else None,
    }
    if not in_guild:
        payload["contexts"] = [GUILD_CONTEXT] if spec.admin else [GUILD_CONTEXT, BOT_DM_CONTEXT]
    return payload


def command_payloads(specs: Iterable[CommandSpec], *, in_guild: bool = False) -> list[dict[str, Any]]:
    return [command_payload(spec, in_guild=in_guild) for spec in specs]


def payload_hash(application_id: int, payloads: list[dict[str, Any]]) -> str:
    """Stable digest of what a sync would upload (to the given application)."""
    blob = json.dumps({"application_id": application_id, "commands": payloads}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


def option_values(data: Mapping[str, Any]) -> dict[str, str]:
    """The options a member filled in, by name, as strings (as the core takes them)."""
    return {o["name"]: str(o["value"]) for o in data.get("options", ()) if "value" in o}


def focused_option(data: Mapping[str, Any]) -> tuple[str, str] | None:
    """The option being typed in an autocomplete interaction, and what is typed so far."""
    for option in data.get("options", ()):
        if option.get("focused"):
            return option["name"], str(option.get("value", ""))
    return None


def to_message(spec: CommandSpec, data: Mapping[str, Any], *, user_id: str, is_admin: bool) -> Message:
    """A slash invocation as a `Message` with the command and its arguments; the core
    checks each argument (a typed value that is not one of the suggestions included)."""
    return Message("discord", user_id, command=spec.name, args=option_values(data), is_admin=is_admin)


def choice_payloads(choices: Iterable[Choice]) -> list[tuple[str, str]]:
    """(name, value) pairs for an autocomplete answer; Discord caps both at 100 characters.
    A value longer than that could not be sent back, so such a choice is left out."""
    return [(_short(c.label, CHOICE_TEXT), c.value) for c in choices if len(c.value) <= CHOICE_TEXT][:CHOICES]


def mention_text(content: str, bot_id: int) -> str:
    """A message that mentions the bot, as the sentence it is (the mention removed)."""
    return " ".join(re.sub(rf"<@!?{bot_id}>", " ", content).split())
