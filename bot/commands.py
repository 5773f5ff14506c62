"""The command registry: every command is declared once and drives every surface.

A `CommandSpec` names the command, its summary, typed parameters (with choices drawn
from content so adapters can offer them) and its handler. What free text means a
command is content: the `examples:` in `content/intents.yaml`. Discord slash commands, Slack `/mlbot` subcommands, the console, the
router and `help` are all generated from the registry.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Awaitable, Callable, Iterator, Literal

from bot.replies import Reply

if TYPE_CHECKING:
    from bot.content import Content
    from bot.request import Request


@dataclass(frozen=True, slots=True)
class Choice:
    value: str
    label: str


@dataclass(frozen=True, slots=True)
class Param:
    """A command parameter. `kind` names the entity kind the router fills it from
    (`level`, `region`, `role`, ...); `choices` lists its allowed values for adapters
    (autocomplete); a `rest` parameter takes the remaining free text."""

    name: str
    description: str
    kind: str | None = None
    choices: Callable[["Content"], list[Choice]] | None = None
    required: bool = False
    rest: bool = False
    type: Literal["str", "int"] = "str"


Handler = Callable[["Request"], Awaitable[Reply]]


@dataclass(frozen=True)
class CommandSpec:
    name: str
    summary: str
    handler: Handler
    params: tuple[Param, ...] = ()
    aliases: tuple[str, ...] = ()
    whole: tuple[str, ...] = ()  # messages that, on their own, mean this command ("good" after a reveal)
    examples: tuple[str, ...] = ()
    admin: bool = False
    personal: bool = False  # replies carry personal data: shown privately
    needs_store: bool = False
    group: str = "Learn"

    def usage(self) -> str:
        parts = [self.name]
        for p in self.params:
            parts.append(f"<{p.name}>" if p.required else f"[{p.name}]")
        return " ".join(parts)


class Registry:
    """Commands by name; refuses a name or alias that is already taken."""

    def __init__(self) -> None:
        self._commands: dict[str, CommandSpec] = {}
        self._lookup: dict[str, str] = {}

    def add(self, spec: CommandSpec) -> None:
        for word in (spec.name, *spec.aliases, *spec.whole):
            if word in self._lookup:
                raise ValueError(f"command word '{word}' of '{spec.name}' is already used by '{self._lookup[word]}'")
            if word != word.strip().lower() or not word:
                raise ValueError(f"command word '{word}' must be lower-case and trimmed")
        self._commands[spec.name] = spec
        for word in (spec.name, *spec.aliases, *spec.whole):
            self._lookup[word] = spec.name

    def get(self, word: str) -> CommandSpec | None:
        name = self._lookup.get(word)
        return self._commands[name] if name else None

    def words(self) -> dict[str, str]:
        """Every command word (names and aliases) -> command name."""
        return {w: n for w, n in self._lookup.items() if w not in self._commands[n].whole}

    def whole_message(self, text: str) -> CommandSpec | None:
        """The command a whole message means on its own ("good" -> grade), if any."""
        name = self._lookup.get(text)
        return self._commands[name] if name and text in self._commands[name].whole else None

    def __iter__(self) -> Iterator[CommandSpec]:
        return iter(self._commands.values())
