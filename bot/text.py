"""Text helpers shared by the router and the handlers: normalising what members type,
and quoting it back without letting it ping anyone."""
from __future__ import annotations

import re
import unicodedata

MAX_ROUTED_CHARS = 600
# English function words and the commonest verbs: never a name of anything in content, and
# never "corrected" by typo tolerance into a content word.
FUNCTION_WORDS = frozenset(
    """a about above after again against all also am an and any are as at be because been before being
    below between both but by can could did do does doing down during each few for from further had has
    have having he her here hers him his how i if im in into is it its itself just me more most my myself
    no nor not now of off on once only or other our ours out over own same she should so some such than
    that the their theirs them then there these they this those through to too under until up very was we
    were what when where which while who whom why will with would you your yours yourself ive id ill dont
    want wants need needs know get got go going like really please thank thanks okay ok yes yeah sure
    hello hi hey much many long time think shall may might must one two three first next last new way
    thing things lot lots bit little well still even actually ever never always often usually""".split()
)  # the router reads the start of a message; a 20 kB paste is not a question

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
