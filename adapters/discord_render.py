"""Reply -> Discord embeds and buttons, within every Discord limit; pure, no network.

A reply becomes one or more `Page`s (one Discord message each). The answer is split into as
many embeds and fields as it needs between whole lines (a help entry or a bullet is never cut
after its ":"), and a single line longer than the limit at sentence boundaries; embeds are
packed into messages under the 6,000-character and 10-embed caps, and buttons ride on the
last page. Attachments ride on the first page, the first image shown inside its last embed
(`attachment://NAME`); a reply whose text is in a file (a data export) sends the file
instead of the text.
Every string is run through `escape_mentions` as a second guard behind
`allowed_mentions=none`, so an `@everyone` typed by a member never comes back live, and
every bare link is shown as code: the core sends no links of its own, so a link is a
member's words quoted back (`unanswered`, "I couldn't match ..."), and Discord would make
it clickable. `bot.text.quote` strips backticks, so quoted text cannot close the code span.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

import discord

from bot.replies import Action, Attachment, Reply, split_text

TITLE = 256
DESCRIPTION = 4096
FIELDS = 25
FIELD_NAME = 256
FIELD_VALUE = 1024
FOOTER = 2048
EMBED_TOTAL = 6000  # all embeds of one message together
EMBEDS = 10
BUTTONS = 25  # 5 rows of 5
BUTTON_LABEL = 80
CUSTOM_ID = 100
ATTACHMENT_DESCRIPTION = 1024  # a file's alt text
# `mlbot:<command>`; a later button with the same command in one message is
# `mlbot.<n>:<command>` (n its position), as Discord refuses a message with two equal ids.
CUSTOM_ID_TEMPLATE = r"mlbot(?:\.\d+)?:(?P<command>.+)"
PART_FOOTER_RESERVE = 16  # room for "Part 12 of 12"
COLOUR = discord.Colour(0x2B7A78)
BLANK = "\u200b"  # Discord refuses empty field names and values
CODE_SPAN = re.compile(r"(`[^`\n]*`)")
LINK = re.compile(r"[a-z][a-z0-9+.-]*://[^\s`\"'<>]*[^\s`\"'<>.,;:!?)]", re.IGNORECASE)


@dataclass(frozen=True)
class Button:
    """An action as a button: its `custom_id` is unique in its message."""

    action: Action
    custom_id: str

    @property
    def label(self) -> str:
        return button_label(self.action.label)


@dataclass
class Page:
    """One Discord message: its embeds, on the first page its files, on the last page its buttons."""

    embeds: list[discord.Embed]
    buttons: tuple[Button, ...] = field(default=())
    files: tuple[Attachment, ...] = field(default=())

    @property
    def actions(self) -> tuple[Action, ...]:
        return tuple(b.action for b in self.buttons)

    def __len__(self) -> int:
        return sum(len(e) for e in self.embeds)


def custom_id(command: str, position: int = 0) -> str | None:
    """The button id that carries `command`, or None when it would not fit Discord's 100.
    `position` (of the button in its message) tells apart a repeated command."""
    value = f"mlbot.{position}:{command}" if position else f"mlbot:{command}"
    return value if len(value) <= CUSTOM_ID and "\n" not in command else None


def button_label(label: str) -> str:
    """A label within Discord's 80 characters (and never empty)."""
    return (label if len(label) <= BUTTON_LABEL else label[: BUTTON_LABEL - 1] + "…") or "…"


def _buttons(actions: tuple[Action, ...]) -> tuple[list[Button], list[Action]]:
    """Up to 25 buttons; the actions that cannot be buttons are offered as text instead."""
    buttons: list[Button] = []
    as_text: list[Action] = []
    commands: set[str] = set()
    for action in actions:
        value = custom_id(action.command, len(buttons) if action.command in commands else 0)
        if value is None or len(buttons) == BUTTONS:
            as_text.append(action)
            continue
        buttons.append(Button(action, value))
        commands.add(action.command)
    return buttons, as_text


def render(reply: Reply) -> list[Page]:
    buttons, as_text = _buttons(reply.actions)
    title, *title_rest = split_text(_clean(reply.title), TITLE) if reply.title else [""]
    parts = [*title_rest, "" if reply.text_in_file else _clean(reply.text), "\n".join(f"• {_clean(i)}" for i in reply.items), _clean(reply.footer)]
    if as_text:
        parts.append("Options: " + " | ".join(f"{_clean(a.label)} (`{discord.utils.escape_mentions(a.command)}`)" for a in as_text))
    body = "\n\n".join(p for p in parts if p.strip())
    descriptions = split_lines(body, DESCRIPTION) if body else []

    fields: list[tuple[str, str]] = []
    for f in reply.fields:
        fields += _field_chunks(_clean(f.name), _clean(f.value))
    if reply.sources:
        fields += _field_chunks("Source" if len(reply.sources) == 1 else "Sources", "\n".join(_clean(s) for s in reply.sources))

    embeds = _embeds(title, descriptions, fields)
    if len(embeds) > 1:
        for n, embed in enumerate(embeds, 1):
            embed.set_footer(text=f"Part {n} of {len(embeds)}")
    pages = _pack(embeds)
    pages[-1].buttons = tuple(buttons)
    pages[0].files = tuple(_attachment(a) for a in reply.attachments)
    image = next((a for a in reply.attachments if a.content_type.startswith("image/")), None)
    if image is not None:
        pages[0].embeds[-1].set_image(url=f"attachment://{image.filename}")
    return pages


def _attachment(attachment: Attachment) -> Attachment:
    """The attachment with its alt text within Discord's limit."""
    if len(attachment.description) <= ATTACHMENT_DESCRIPTION:
        return attachment
    return replace(attachment, description=attachment.description[: ATTACHMENT_DESCRIPTION - 1] + "…")


def split_lines(text: str, limit: int) -> list[str]:
    """Chunks of at most `limit` characters made of whole lines; only a line longer than
    `limit` is split, by `split_text`."""
    chunks: list[str] = []
    current = ""
    for line in text.split("\n"):
        for piece in split_text(line, limit) if len(line) > limit else [line]:
            candidate = f"{current}\n{piece}" if current else piece
            if len(candidate.rstrip()) <= limit:
                current = candidate
                continue
            if current.strip():
                chunks.append(current.rstrip())
            current = piece
    if current.strip():
        chunks.append(current.rstrip())
    return chunks or [""]


def _clean(text: str) -> str:
    """Mentions escaped and links inert outside the code spans already there (a stray
    backtick is escaped, so it cannot pair with the one opening a link's span)."""
    parts = CODE_SPAN.split(discord.utils.escape_mentions(text.strip()))
    return "".join(part if n % 2 else LINK.sub(r"`\g<0>`", part.replace("`", "\\`")) for n, part in enumerate(parts))


def _field_chunks(name: str, value: str) -> list[tuple[str, str]]:
    """A field too long for one Discord field continues in the next ones."""
    name_parts = split_text(name, FIELD_NAME) if name else [BLANK]
    head, overflow = name_parts[0], name_parts[1:]
    value = "\n".join([*overflow, value]) if overflow else value
    chunks = split_lines(value, FIELD_VALUE) if value.strip() else [BLANK]
    more = f"{head} (continued)" if len(head) + 12 <= FIELD_NAME else BLANK
    return [(head if i == 0 else more, chunk or BLANK) for i, chunk in enumerate(chunks)]


def _embeds(title: str, descriptions: list[str], fields: list[tuple[str, str]]) -> list[discord.Embed]:
    budget = EMBED_TOTAL - PART_FOOTER_RESERVE
    embeds: list[discord.Embed] = []
    current = discord.Embed(title=title or None, description=descriptions[0] if descriptions else None, colour=COLOUR)
    for description in descriptions[1:]:
        embeds.append(current)
        current = discord.Embed(description=description, colour=COLOUR)
    for name, value in fields:
        if len(current.fields) == FIELDS or len(current) + len(name) + len(value) > budget:
            embeds.append(current)
            current = discord.Embed(colour=COLOUR)
        current.add_field(name=name, value=value, inline=False)
    embeds.append(current)
    if not (embeds[0].title or embeds[0].description or embeds[0].fields):
        embeds[0].description = BLANK
    return embeds


def _pack(embeds: list[discord.Embed]) -> list[Page]:
    pages: list[Page] = [Page([])]
    for embed in embeds:
        page = pages[-1]
        if page.embeds and (len(page.embeds) == EMBEDS or len(page) + len(embed) > EMBED_TOTAL):
            page = Page([])
            pages.append(page)
        page.embeds.append(embed)
    return pages
