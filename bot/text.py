"""Text helpers shared by the router and the handlers: normalising what members type,
and quoting it back without letting it ping anyone."""
from __future__ import annotations

import re
import unicodedata

MAX_ROUTED_CHARS = 600  # the router reads the start of a message; a 20 kB paste is not a question

_MENTION = re.compile(r"<[@#!][^>\s]{0,80}>|@(everyone|here|channel)\b", re.IGNORECASE)
_NON_WORD = re.compile(r"[^a-z0-9+#]+")
_APOSTROPHE_S = re.compile(r"['\u2019]s\b")


def tokens(text: str) -> list[str]:
    """Lower-case word tokens: mentions dropped, accents folded, punctuation removed."""
    text = text[:MAX_ROUTED_CHARS]
    text = _MENTION.sub(" ", text)
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    text = _APOSTROPHE_S.sub("", text.lower())
    return [t for t in _NON_WORD.sub(" ", text).split() if t.strip("+#")]


def phrase(text: str) -> str:
    """The normal form of an alias or keyword, comparable with joined `tokens`."""
    return " ".join(tokens(text))


def quote(text: str, limit: int = 60) -> str:
    """A member's words, safe to show back: no mentions, no markup, one line, short."""
    cleaned = _MENTION.sub("", text)
    cleaned = re.sub(r"[<>@*_`~|\\\[\]]", "", cleaned)
    cleaned = " ".join(cleaned.split())
    if len(cleaned) > limit:
        cleaned = cleaned[: limit - 3].rstrip() + "..."
    return cleaned


def money(value: int, currency: str = "USD") -> str:
    symbol = "$" if currency == "USD" else f"{currency} "
    return f"{symbol}{value:,}"
