"""The reply model every surface renders, and the plain-text renderer.

A `Reply` is platform-neutral: adapters turn it into embeds (Discord), Block Kit (Slack)
or plain text (console, `mlbot ask`). Its `attachments` are files (a chart, a data export):
Discord attaches them, Slack uploads them, `mlbot ask --attachments DIR` writes them, and
the console prints each one's `text` or names it. `Action.command` is a command line the core
understands, so a button needs no server-side state: the adapter stores the command in
the button's id and sends it back as a `Message` when clicked.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

ActionStyle = Literal["primary", "secondary", "success", "danger"]


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    value: str


@dataclass(frozen=True, slots=True)
class Action:
    """A button: `label` is shown, `command` is routed back to the core when pressed."""

    label: str
    command: str
    style: ActionStyle = "secondary"


@dataclass(frozen=True, slots=True)
class Attachment:
    """A file sent with a reply. `description` is its alt text (what a screen reader says,
    at most 1,000 characters); `text` is how a terminal shows it (a text bar chart), if it
    can. `carries_text` means the file holds the reply's `text` (a data export): surfaces
    that attach files send the file instead of that text, so long JSON is never split
    across messages."""

    filename: str
    data: bytes
    description: str = ""
    content_type: str = "application/octet-stream"
    text: str = ""
    carries_text: bool = False


@dataclass(frozen=True, slots=True)
class Reply:
    """What the core answers. `sources` are article titles; `ephemeral` marks personal data."""

    title: str = ""
    text: str = ""
    fields: tuple[Field, ...] = ()
    items: tuple[str, ...] = ()
    actions: tuple[Action, ...] = ()
    sources: tuple[str, ...] = ()
    ephemeral: bool = False
    command: str = ""
    footer: str = ""
    attachments: tuple[Attachment, ...] = ()

    @property
    def text_in_file(self) -> bool:
        """True when an attachment holds the text (surfaces that attach files skip it)."""
        return any(a.carries_text for a in self.attachments)


def render_attachments_text(reply: Reply) -> str:
    """The attachments for a terminal: each one's text rendering, or its name."""
    return "\n\n".join(a.text or f"[attached: {a.filename}]" for a in reply.attachments)


def render_text(reply: Reply) -> str:
    """Plain text for terminals and `mlbot ask`: title, text, bullets, fields, numbered
    options (the console takes the number), sources."""
    parts: list[str] = []
    if reply.title:
        parts.append(reply.title)
    if reply.text:
        parts.append(reply.text)
    if reply.items:
        parts.append("\n".join(f"- {item}" for item in reply.items))
    for f in reply.fields:
        parts.append(f"{f.name}:\n{f.value}")
    if reply.actions:
        parts.append("Options:\n" + "\n".join(f"{n}. {a.label}" + (f" ({a.command})" if a.command != a.label else "") for n, a in enumerate(reply.actions, 1)))
    if reply.footer:
        parts.append(reply.footer)
    if reply.sources:
        parts.append("Source: " + "; ".join(reply.sources))
    return "\n\n".join(parts)


_SENTENCE_END = re.compile(r"(?<=[.!?:])\s+|\n")


def split_text(text: str, limit: int) -> list[str]:
    """Split `text` into chunks of at most `limit` characters, at paragraph, line or
    sentence boundaries where possible, so a long answer is paged, never cut mid-sentence.
    A single sentence longer than `limit` is split at the last space before the limit."""
    if limit <= 0:
        raise ValueError("limit must be positive")
    chunks: list[str] = []
    current = ""
    for piece in _pieces(text, limit):
        candidate = f"{current}{piece}" if current else piece.lstrip()
        if len(candidate.rstrip()) <= limit:
            current = candidate
            continue
        if current.strip():
            chunks.append(current.rstrip())
        current = piece.lstrip()
    if current.strip():
        chunks.append(current.rstrip())
    return chunks or [""]


def _pieces(text: str, limit: int) -> list[str]:
    """Sentences (with their trailing whitespace), each at most `limit` characters."""
    pieces: list[str] = []
    start = 0
    for match in _SENTENCE_END.finditer(text):
        pieces.append(text[start:match.end()])
        start = match.end()
    if start < len(text):
        pieces.append(text[start:])
    out: list[str] = []
    for piece in pieces:
        while len(piece) > limit:
            cut = piece.rfind(" ", 0, limit)
            if cut <= 0:
                cut = limit
            out.append(piece[:cut] + " ")
            piece = piece[cut:].lstrip()
        out.append(piece)
    return out
