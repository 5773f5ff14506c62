"""What a member sees when something broke, and the short id that ties it to the log.

The core and every adapter apologise the same way: the traceback goes to the log under
a new error id, and the member reads the apology with that id (for an admin to find).
"""
from __future__ import annotations

import logging
import uuid

from bot.errors import StoreError
from bot.replies import Reply


def logged_error(log: logging.Logger, context: str, *args: object) -> str:
    """Log the exception being handled as "error <id> <context>" and return the id."""
    error_id = uuid.uuid4().hex[:8]
    log.exception("error %s " + context, error_id, *args)
    return error_id


def apology(error_id: str) -> Reply:
    return Reply(
        text=f"Sorry, something went wrong on my side. If it keeps happening, tell an admin the error id {error_id}.",
        ephemeral=True,
        command="error",
    )


def store_trouble(log: logging.Logger, error: StoreError) -> Reply:
    """A database failure: one log line with the operator's detail under a new error id; the
    member reads a sentence without paths or exception text, and the id."""
    error_id = uuid.uuid4().hex[:8]
    log.warning("error %s: %s", error_id, error)
    return Reply(text=f"{error.member} If it keeps happening, tell an admin the error id {error_id}.", ephemeral=True, command="error")
