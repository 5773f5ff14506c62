"""Pure conversions between Slack payload text and the core's types.

`render(reply)` turns a `Reply` into one or more Slack messages (`{"text", "blocks"}`)
within Block Kit's limits, and `render_home(reply)` into an App Home view. Long answers
are split into several sections, and into several messages when one would exceed 50
blocks, always at paragraph, line or sentence boundaries (`bot.replies.split_text`).
Every string that reaches a `mrkdwn` field is escaped, so member or content text can
never become a ping (`<!channel>`, `<@U1>`) or a link; `plain_text` fields (header,
buttons) are never parsed for mentions by Slack. A button carries its command line as its
value; one too long for a value is offered as text to type instead. Attachments are
uploaded by the app after the messages (`upload`); a reply whose text is in a file (a data
export) names the file instead of sending the text, since Slack refuses messages whose
blocks carry more than about 12,000 characters.

`plain_text(text)` goes the other way: Slack's markup in what a member wrote
(`<@U1|ann>`, `<!here>`, `<https://x|label>`, `&amp;`) becomes plain words for the
router, with the bot's own mention removed.
"""
from __future__ import annotations

import re
from typing import Any

from bot.replies import Action, Attachment, Reply, split_text

SECTION_LIMIT = 3000  # characters of a section's text
CONTEXT_LIMIT = 2000  # characters of one context element
HEADER_LIMIT = 150  # characters of a header's plain text
MAX_BLOCKS = 50  # blocks in a message
MAX_HOME_BLOCKS = 100  # blocks in an App Home view
BUTTONS_PER_BLOCK = 25  # elements of an actions block
BUTTON_LABEL_LIMIT = 75  # characters of a button's plain text
BUTTON_VALUE_LIMIT = 2000  # characters of a button's value, the command line it sends back
FALLBACK_LIMIT = 150  # the notification text; the blocks carry the answer
ALT_TEXT_LIMIT = 1000  # characters of a file's alt text
ACTION_PREFIX = "mlbot:"

Block = dict[str, Any]
SlackMessage = dict[str, Any]

_BROADCAST = re.compile(r"@(channel|here|everyone)\b", re.IGNORECASE)
_MARKUP = re.compile(r"<([^<>]*)>")
_SPACES = re.compile(r"[ \t]+")


def escape(text: str) -> str:
    """Escape Slack's control characters; also break the `@here`-style words that a
    client with `link_names` would turn into a broadcast (a word joiner after `@`)."""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _BROADCAST.sub("@\u2060\\1", text)


def plain_text(text: str, bot_user_id: str | None = None) -> str:
    """What a member typed, without Slack's markup; mentions of the bot are dropped."""

    def replace(match: re.Match[str]) -> str:
        target, _, label = match.group(1).partition("|")
        if target.startswith("@"):
            if bot_user_id and target[1:] == bot_user_id:
                return ""
            return "@" + (label.lstrip("@") or target[1:])
        if target.startswith("#"):
            return "#" + (label or target[1:])
        if target.startswith("!"):
            return label or "@" + target[1:].split("^")[0]
        return label or target.removeprefix("mailto:")

    text = _MARKUP.sub(replace, text)
    text = text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    return "\n".join(_SPACES.sub(" ", line).strip() for line in text.strip().splitlines()).strip()


def render(reply: Reply, *, files_in_dm: bool = False) -> list[SlackMessage]:
    """The reply as Slack messages, usually one. Sources, footer and buttons close the
    last message; every message has a `text` fallback for notifications. `files_in_dm`:
    the attachments go to the member's DM, not under this answer (it is ephemeral, or the
    bot cannot post files where it was asked), and the answer says so."""
    body = _body_blocks(reply) + _file_note(reply, files_in_dm)
    tail = _tail_blocks(reply)
    pages: list[list[Block]] = [body[i:i + MAX_BLOCKS] for i in range(0, len(body), MAX_BLOCKS)] or [[]]
    if len(pages[-1]) + len(tail) > MAX_BLOCKS:
        pages.append([])
    pages[-1].extend(tail)
    fallback = _fallback(reply)
    if len(pages) == 1:
        return [{"text": fallback, "blocks": pages[0]}]
    return [{"text": f"{fallback} ({n}/{len(pages)})", "blocks": page} for n, page in enumerate(pages, 1)]


def render_home(reply: Reply) -> dict[str, Any]:
    """The reply as an App Home view (at most 100 blocks; whole blocks are dropped)."""
    blocks = [block for message in render(reply) for block in message["blocks"]]
    if len(blocks) > MAX_HOME_BLOCKS:
        note = _context("There is more: send me `home` in a direct message to read it all.")
        tail = [b for b in blocks if b["type"] == "actions"][-1:]
        keep = MAX_HOME_BLOCKS - 1 - len(tail)
        blocks = [*(b for b in blocks if b["type"] != "actions")][:keep] + [note] + tail
    return {"type": "home", "blocks": blocks}


def upload(attachment: Attachment) -> dict[str, Any]:
    """One entry of `files_upload_v2(file_uploads=...)`."""
    alt = attachment.description
    if len(alt) > ALT_TEXT_LIMIT:
        alt = alt[: ALT_TEXT_LIMIT - 1] + "…"
    entry: dict[str, Any] = {"content": attachment.data, "filename": attachment.filename, "title": attachment.filename}
    if alt:
        entry["alt_txt"] = alt
    return entry


def _file_note(reply: Reply, files_in_dm: bool) -> list[Block]:
    names = ", ".join(f"`{escape(a.filename)}`" for a in reply.attachments)
    if not names:
        return []
    if files_in_dm:
        return [_context(f"I've sent {names} to our direct messages.")]
    return [_context(f"In the file below: {names}.")] if reply.text_in_file else []


def action_id(index: int) -> str:
    return f"{ACTION_PREFIX}{index}"


def _body_blocks(reply: Reply) -> list[Block]:
    blocks: list[Block] = []
    if reply.title:
        if len(reply.title) <= HEADER_LIMIT:
            blocks.append({"type": "header", "text": {"type": "plain_text", "text": reply.title, "emoji": True}})
        else:
            blocks.extend(_sections(f"*{escape(reply.title)}*"))
    if reply.text and not reply.text_in_file:
        blocks.extend(_sections(escape(reply.text)))
    if reply.items:
        blocks.extend(_sections("\n".join(f"• {escape(item)}" for item in reply.items)))
    for field in reply.fields:
        blocks.extend(_sections(f"*{escape(field.name)}*\n{escape(field.value)}"))
    return blocks


def _tail_blocks(reply: Reply) -> list[Block]:
    blocks: list[Block] = []
    if reply.footer:
        blocks.extend(_context(chunk) for chunk in split_text(escape(reply.footer), CONTEXT_LIMIT))
    if reply.sources:
        label = "Source" if len(reply.sources) == 1 else "Sources"
        text = f"{label}: " + "; ".join(escape(s) for s in reply.sources)
        blocks.extend(_context(chunk) for chunk in split_text(text, CONTEXT_LIMIT))
    too_long = [a for a in reply.actions if len(a.command) > BUTTON_VALUE_LIMIT]
    if too_long:  # Slack would refuse the whole message: offer these as text to type, as Discord does
        blocks.extend(_sections("Options: " + " | ".join(f"{escape(a.label)} (`{escape(a.command)}`)" for a in too_long)))
    # action ids are positions, so two buttons with one command still differ
    actions = [_button(n, action) for n, action in enumerate(reply.actions) if action not in too_long]
    for i in range(0, len(actions), BUTTONS_PER_BLOCK):
        blocks.append({"type": "actions", "elements": actions[i:i + BUTTONS_PER_BLOCK]})
    return blocks


def _sections(mrkdwn: str) -> list[Block]:
    return [
        {"type": "section", "text": {"type": "mrkdwn", "text": chunk, "verbatim": True}}
        for chunk in split_text(mrkdwn, SECTION_LIMIT)
        if chunk
    ]


def _context(mrkdwn: str) -> Block:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": mrkdwn, "verbatim": True}]}


def _button(index: int, action: Action) -> Block:
    label = action.label if len(action.label) <= BUTTON_LABEL_LIMIT else action.label[: BUTTON_LABEL_LIMIT - 1] + "…"
    button: Block = {
        "type": "button",
        "action_id": action_id(index),
        "text": {"type": "plain_text", "text": label, "emoji": True},
        "value": action.command,
    }
    if action.style in ("primary", "success"):
        button["style"] = "primary"
    elif action.style == "danger":
        button["style"] = "danger"
    return button


def _fallback(reply: Reply) -> str:
    """A short first line for notifications and screen readers."""
    lead = reply.title or ("" if reply.text_in_file else reply.text) or next(iter(reply.items), "") or next((f.name for f in reply.fields), "")
    first = split_text(lead, FALLBACK_LIMIT)[0]
    return escape(first if first == lead.strip() else first + " …")
