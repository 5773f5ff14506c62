"""The errors members read as sentences; a leaf module so any layer can raise them."""
from __future__ import annotations


class UserError(Exception):
    """A known failure the member should read as a sentence (bad input, store trouble)."""


class StoreError(UserError):
    """The database can't be used; the message names the path and what to do."""
