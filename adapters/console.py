"""The embedded default: a terminal chat over the same core, no credentials needed."""
from __future__ import annotations

import asyncio
import sys
from typing import TextIO

from bot.core import Core
from bot.messages import Message
from bot.replies import Action, render_attachments_text, render_text

PROMPT = "you> "
GOODBYE = ("quit", "exit", "bye", ":q")


async def chat(core: Core, user: str, *, is_admin: bool = False, stdin: TextIO | None = None, stdout: TextIO | None = None) -> None:
    stdin = stdin or sys.stdin
    stdout = stdout or sys.stdout
    interactive = stdin.isatty()
    if interactive:
        stdout.write("ML career bot: ask about roles, salaries, interviews, courses, your path. `help` lists commands, `quit` leaves.\n")
    options: tuple[Action, ...] = ()
    while True:
        if interactive:
            stdout.write(PROMPT)
            stdout.flush()
        line = await asyncio.to_thread(stdin.readline)
        if not line:
            break
        text = line.strip()
        if not text:
            continue
        if text.lower() in GOODBYE:
            break
        if text.isdigit() and 1 <= int(text) <= len(options):  # a numbered option of the last reply
            text = options[int(text) - 1].command
        reply = await core.handle(Message("console", user, text, is_admin=is_admin))
        options = reply.actions
        stdout.write(render_text(reply) + "\n\n")
        if reply.attachments:
            stdout.write(render_attachments_text(reply) + "\n\n")
        stdout.flush()
