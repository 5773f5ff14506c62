"""The errors members read as sentences; a leaf module so any layer can raise them."""
from __future__ import annotations


class UserError(Exception):
    """A known failure the member should read as a sentence (bad input, store trouble)."""


class StoreError(UserError):
    """The database can't be used. `str(error)` is the operator's detail (the path, the cause,
    what to do), for the log and the command line; `member` is the sentence a member reads,
    which names neither."""

    def __init__(self, detail: str, member: str = "I couldn't reach my records right now, so nothing was changed.") -> None:
        super().__init__(detail)
        self.member = member
