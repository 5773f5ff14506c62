"""Replies about the conversation itself: "did you mean", "the articles don't cover
that", small talk. Each choice is an action whose command line the router parses as
typed, so it works as a Discord or Slack button and as a number in the console."""
from __future__ import annotations

from typing import TYPE_CHECKING

from bot.commands import Choice, CommandSpec, Param
from bot.replies import Action, Reply
from bot.text import quote

if TYPE_CHECKING:
    from bot.request import Bot, Request
    from bot.router import Route

MAX_LABEL = 70
WHAT_I_COVER = "I answer from four articles about becoming an ML engineer: roles, salaries, interview prep, courses, the learning path and how long it takes."


def label(core: "Bot", intent: str) -> str:
    """What a choice reads as: the FAQ's question, the scope topic, the command's summary."""
    kind, _, ident = intent.partition(":")
    c = core.content
    if kind == "faq" and ident in c.faqs:
        text = c.faqs[ident].question
    elif kind == "scope" and ident in c.scope:
        text = c.scope[ident].title
    else:
        spec = core.registry.get(intent)
        text = spec.summary if spec is not None else intent
    return text if len(text) <= MAX_LABEL else text[: MAX_LABEL - 1].rstrip() + "…"


def command_line(intent: str, route: "Route") -> str | None:
    """The command line that answers `intent` with the slots the member gave."""
    kind, _, ident = intent.partition(":")
    if kind == "smalltalk":
        return None
    if kind in ("faq", "scope"):
        return f"{kind} {ident}"
    slots = " ".join(dict.fromkeys(e.text for e in route.entities if e.text))
    return f"{intent} {slots}".strip()


def choices(core: "Bot", route: "Route") -> tuple[Action, ...]:
    actions: list[Action] = []
    for n, intent in enumerate(route.choices):
        line = command_line(intent, route)
        if line is not None:
            actions.append(Action(label(core, intent), line, "primary" if n == 0 else "secondary"))
    return tuple(actions)


def clarify(core: "Bot", route: "Route") -> Reply:
    return Reply(
        title="Did you mean...",
        text="I can read that more than one way. Pick one, or ask again in other words.",
        actions=choices(core, route),
        command="clarify",
    )


def fallback(core: "Bot", route: "Route", text: str) -> Reply:
    actions = choices(core, route)
    closest = " These come closest:" if actions else " Say `help` for what I can do."
    return Reply(
        title="I don't know that one",
        text=f"I couldn't match \"{quote(text)}\" to anything the articles cover. {WHAT_I_COVER}{closest}",
        actions=actions,
        command="fallback",
    )


def smalltalk(core: "Bot", route: "Route") -> Reply:
    entry = core.content.smalltalk.get(route.args.get("kind", ""))
    return Reply(text=entry.reply if entry else "Say `help` to see what I can do.", command="smalltalk")


async def scope(req: "Request") -> Reply:
    """Something the articles don't cover: say so, then offer what they do say."""
    c = req.content
    topic = c.scope.get(req.args.get("topic", ""))
    if topic is None:
        titles = "; ".join(t.title for t in c.scope.values())
        return Reply(title="What the articles don't cover", text=f"{titles}. {WHAT_I_COVER}")
    actions = tuple(Action(_nearest_label(req.core, line), line, "primary" if n == 0 else "secondary") for n, line in enumerate(topic.nearest))
    return Reply(title=topic.title, text=f"{topic.reply} Closest in the articles:", actions=actions)


def _nearest_label(core: "Bot", line: str) -> str:
    word, _, rest = line.partition(" ")
    if word in ("faq", "scope") and rest:
        return label(core, f"{word}:{rest}")
    spec = core.registry.get(word)
    if spec is None:
        return line
    return label(core, spec.name) if not rest else f"{spec.name.capitalize()}: {rest}"


SPECS = [
    CommandSpec(
        "scope",
        "What the articles don't cover (visas, prices, specific employers, ...), and the nearest topic they do.",
        scope,
        params=(Param("topic", "The topic", choices=lambda c: [Choice(t.id, t.title) for t in c.scope.values()]),),
        examples=("scope visa",),
    ),
]
