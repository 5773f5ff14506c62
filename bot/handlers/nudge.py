"""`nudge`: the member's weekly study nudge: on (with day, time, timezone), off, pause,
and status with the next send in the member's local time.

The free text is parsed here ("nudge me on mondays at 9am Europe/Berlin", "nudge on",
"nudge pause 2 weeks", "remind me every friday at 18:30 berlin"). Anything not
understood is answered with the closest days or timezones and nothing is saved.
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Callable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from bot import nudges
from bot.commands import Choice, CommandSpec, Param
from bot.replies import Action, Reply
from bot.suggest import closest, did_you_mean
from bot.text import MAX_ROUTED_CHARS, quote

if TYPE_CHECKING:
    from bot.request import Request
    from bot.store import Store

_DAY_NAMES = {name.lower(): n for n, name in enumerate(nudges.WEEKDAYS)}
DAYS: dict[str, int] = {
    **_DAY_NAMES,
    **{f"{name}s": n for name, n in _DAY_NAMES.items()},
    **{name[:3]: n for name, n in _DAY_NAMES.items()},
    "tues": 1, "weds": 2, "thur": 3, "thurs": 3,
}
OFF_WORDS = frozenset({"off", "stop", "disable", "unsubscribe", "cancel", "end", "never"})
PAUSE_WORDS = frozenset({"pause", "snooze", "skip", "hold"})
ON_WORDS = frozenset({"on", "start", "enable", "subscribe", "resume", "remind", "yes", "again"})
STATUS_WORDS = frozenset({"status", "when", "next", "info", "show", "settings", "schedule"})
FILLER = frozenset(
    """nudge nudges me on at every each please a an the in weekly week weeks for to my set i want time timezone tz zone
    remind reminder reminders with and send study is it would like can you at on of o clock oclock be get from
    turn reminding nudging hey hi thanks thank us""".split()
)
NUMBERS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10, "twelve": 12}
UNITS = {"week": 7, "weeks": 7, "wk": 7, "wks": 7, "w": 7, "day": 1, "days": 1, "d": 1, "month": 30, "months": 30}
MAX_PAUSE = dt.timedelta(weeks=52)
_TIME = re.compile(r"^(\d{1,2})(?:[:.h](\d{2}))?(am|pm|a\.m\.|p\.m\.)?$")
_AMPM = {"am": "am", "a.m.": "am", "pm": "pm", "p.m.": "pm"}
_DURATION = re.compile(r"^(\d{1,3})(w|wk|wks|d|weeks?|days?)?$")
# A nudge setting fits in a line: like the router, read only the start of a long message,
# and explain (with fuzzy suggestions, the costly part) only the first few words not understood.
MAX_PROBLEMS = 10


@lru_cache(maxsize=1)
def _zones() -> tuple[dict[str, str], dict[str, str]]:
    """Lower-case zone name -> zone; lower-case city (last part, `_` or space) -> zone
    when only one zone has that city."""
    names = {z.lower(): z for z in available_timezones() if not z.startswith(("posix/", "right/")) and z != "localtime"}
    cities: dict[str, str | None] = {}
    for lower, zone in names.items():
        if "/" in lower:
            city = lower.rsplit("/", 1)[1]
            cities[city] = None if city in cities and cities[city] != zone else zone
    return names, {c: z for c, z in cities.items() if z}


def resolve_timezone(text: str) -> str | None:
    """An IANA zone for what the member typed ("Europe/Berlin", "europe/berlin",
    "Berlin", "new_york", "UTC"), or None."""
    names, cities = _zones()
    key = text.strip().lower().replace(" ", "_")
    zone = names.get(key) or cities.get(key)
    if zone is None:
        return None
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        return None
    return zone


def closest_timezones(text: str, limit: int = 3) -> list[str]:
    names, cities = _zones()
    options = {**{z: z for z in names.values()}}
    key = text.replace(" ", "_")
    found = closest(key, options, limit=limit)
    city = closest(key.lower(), {c: c for c in cities}, limit=1, cutoff=70, spelling=True)
    if city and cities[city[0]] not in found:
        found.insert(0, cities[city[0]])
    return found[:limit]


def closest_days(text: str) -> list[str]:
    return [nudges.WEEKDAYS[DAYS[name]] for name in closest(text.lower(), {d: d for d in _DAY_NAMES}, limit=2, spelling=True)]


@dataclass
class Parsed:
    action: str = "status"  # on, off, pause, status
    weekday: int | None = None
    at: dt.time | None = None
    timezone: str | None = None
    pause_for: dt.timedelta | None = None
    problems: list[str] = field(default_factory=list)
    unexplained: int = 0  # problems past MAX_PROBLEMS, counted but not worded
    truncated: bool = False  # the message was longer than what was read

    def problem(self, sentence: Callable[[], str]) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(sentence())
        else:
            self.unexplained += 1


def _words(text: str) -> list[str]:
    words = [w.strip(",;!?()\"'") for w in text.replace(",", " ").split()]
    words = [w.rstrip(".") if not w.lower().endswith(("a.m.", "p.m.")) else w for w in words]
    return [w for w in words if w and not w.startswith("<")]


def _time(hour: str, minute: str | None, suffix: str | None) -> dt.time | None:
    h, m = int(hour), int(minute or 0)
    if suffix:
        if not 1 <= h <= 12:
            return None
        h = h % 12 + (12 if _AMPM[suffix] == "pm" else 0)
    if not (0 <= h <= 23 and 0 <= m <= 59):
        return None
    return dt.time(h, m)


def parse(text: str) -> Parsed:
    """What a `nudge ...` message asks for. Problems name what was not understood."""
    words = _words(text[:MAX_ROUTED_CHARS])
    lower = [w.lower() for w in words]
    while lower and lower[0] in ("nudge", "nudges"):
        words, lower = words[1:], lower[1:]
    out = Parsed(truncated=len(text) > MAX_ROUTED_CHARS)
    if any(w in OFF_WORDS for w in lower):
        out.action = "off"
        return out
    if any(w in PAUSE_WORDS for w in lower):
        out.action = "pause"
        return _parse_pause(out, lower)
    i = 0
    specific = False
    while i < len(words):
        word, low = words[i], lower[i]
        following = lower[i + 1] if i + 1 < len(lower) else ""
        match = _TIME.match(low)
        if low in DAYS:
            out.weekday = DAYS[low]
            specific = True
        elif low in ("noon", "midday"):
            out.at, specific = dt.time(12, 0), True
        elif low == "midnight":
            out.at, specific = dt.time(0, 0), True
        elif match and (match.group(2) or match.group(3) or following in _AMPM or (i and lower[i - 1] == "at")):
            suffix = match.group(3) or (following if following in _AMPM else None)
            at = _time(match.group(1), match.group(2), suffix)
            if at is None:
                out.problem(lambda: f"\"{quote(word)}\" is not a time of day: say e.g. 9am, 18:30 or 7:15pm.")
            else:
                out.at = at
            if following in _AMPM and not match.group(3):
                i += 1
            specific = True
        elif low in ON_WORDS or low in FILLER:
            pass
        elif (zone := resolve_timezone(word)) is not None:
            out.timezone, specific = zone, True
        elif following and (zone := resolve_timezone(f"{word}_{words[i + 1]}")) is not None:
            out.timezone, specific = zone, True
            i += 1
        elif low in STATUS_WORDS:
            out.action = "status"
        else:
            out.problem(lambda: _unknown(word))
        i += 1
    if specific or any(w in ON_WORDS for w in lower):
        out.action = "on"
    return out


def _unknown(word: str) -> str:
    days = closest_days(word) if word.isalpha() else []
    if days:
        return f"I don't know the day \"{quote(word)}\".{did_you_mean(days, joiner=' or ')}"
    zones = closest_timezones(word) if re.search(r"[A-Za-z]", word) else []
    if zones:
        return f"I don't know the timezone \"{quote(word)}\".{did_you_mean(zones)}"
    return f"I didn't understand \"{quote(word)}\": say e.g. `nudge on monday 9am Europe/Berlin`."


def _parse_pause(out: Parsed, lower: list[str]) -> Parsed:
    amount: int | None = None
    days_per = 7
    for n, word in enumerate(lower):
        match = _DURATION.match(word)
        if match:
            amount = int(match.group(1))
            unit = match.group(2) or (lower[n + 1] if n + 1 < len(lower) else "weeks")
            days_per = UNITS.get(unit, 7)
        elif word in NUMBERS and n + 1 < len(lower) and lower[n + 1] in UNITS:
            amount, days_per = NUMBERS[word], UNITS[lower[n + 1]]
        elif word in UNITS or word in PAUSE_WORDS or word in FILLER or word in NUMBERS:
            continue
        else:
            out.problem(lambda: f"I didn't understand \"{quote(word)}\": say e.g. `nudge pause 2 weeks`.")
    span = dt.timedelta(days=(amount if amount is not None else 1) * days_per)
    if span <= dt.timedelta(0) or span > MAX_PAUSE:
        out.problem(lambda: "Pause for 1 day up to 52 weeks, e.g. `nudge pause 2 weeks`; `nudge off` stops it altogether.")
    out.pause_for = span
    return out


# --- the command ------------------------------------------------------------------------


def _when(moment: dt.datetime, tz: str) -> str:
    local = moment.astimezone(ZoneInfo(tz))
    return f"{local:%a %d %b} at {local:%H:%M} {local.tzname()}"


def _every(schedule: nudges.Schedule) -> str:
    return f"every {nudges.WEEKDAYS[schedule.weekday]} at {nudges.format_time(schedule.local_time)} ({schedule.timezone})"


def _text_of(req: "Request") -> str:
    if req.message.command is not None and not req.message.text.strip():
        args = req.args
        parts = [args.get("action", ""), args.get("day", ""), args.get("time", ""), args.get("timezone", "")]
        if args.get("weeks"):
            parts.append(f"{args['weeks']} weeks")
        return " ".join(p for p in parts if p)
    return req.message.text


async def nudge(req: "Request") -> Reply:
    profile_zone = resolve_timezone(req.message.timezone) if req.message.timezone else None
    if profile_zone and profile_zone != req.timezone:
        await req.store.set_member_field(req.member, "timezone", profile_zone)
    notice = req.show_notice()  # at the top, not in the footer
    parsed = parse(_text_of(req))
    if parsed.problems:
        reply = Reply(title="Nothing changed", items=tuple(parsed.problems), footer=_unchanged_footer(parsed), ephemeral=True)
    elif parsed.action == "off":
        reply = await _off(req)
    elif parsed.action == "pause":
        reply = await _pause(req, parsed)
    elif parsed.action == "on":
        reply = await _on(req, parsed, profile_zone)
    else:
        reply = await _status(req)
    if notice:
        reply = Reply(title=reply.title, text=f"{notice}\n\n{reply.text}".strip(), items=reply.items, fields=reply.fields,
                      actions=reply.actions, sources=reply.sources, footer=reply.footer, ephemeral=True)
    return reply


def _unchanged_footer(parsed: Parsed) -> str:
    more = f"And {parsed.unexplained} more words I didn't understand. " if parsed.unexplained else ""
    read = f"I read the first {MAX_ROUTED_CHARS} characters. " if parsed.truncated else ""
    return f"{more}{read}Your nudge settings are as they were. `nudge` shows them."


async def _on(req: "Request", parsed: Parsed, profile_zone: str | None) -> Reply:
    existing = await nudges.get_subscription(req.store, req.member)
    stored_zone = req.timezone  # as it was before this message; a profile zone comes first anyway
    if parsed.timezone:
        zone, why = parsed.timezone, ""
    elif existing is not None:
        zone, why = existing.timezone, " Same timezone as before."
    elif profile_zone:
        zone, why = profile_zone, " The timezone is your Slack profile's."
    elif stored_zone and stored_zone != "UTC":
        zone, why = stored_zone, " The timezone is the one you saved."
    else:
        zone, why = "UTC", " I don't know your timezone, so that's UTC: add yours, e.g. `nudge on monday 9am Europe/Berlin`."
    weekday = parsed.weekday if parsed.weekday is not None else (existing.weekday if existing else nudges.DEFAULT_WEEKDAY)
    at = parsed.at or (existing.local_time if existing else nudges.DEFAULT_TIME)
    sub = await nudges.subscribe(req.store, req.member, weekday, at, zone, req.now, member_timezone=parsed.timezone)
    return Reply(
        title="Weekly study nudge on",
        text=f"I'll DM you your next step {_every(sub.schedule)}.{why}\nThe next one comes {_when(sub.next_due_at, zone)}.",
        actions=(Action("Turn off", "nudge off"), Action("Pause 2 weeks", "nudge pause 2 weeks")),
        footer="Change it with `nudge on <day> <time> <timezone>`, e.g. `nudge on friday 18:30 Europe/Berlin`.",
        ephemeral=True,
    )


async def _off(req: "Request") -> Reply:
    if await nudges.unsubscribe(req.store, req.member, req.now):
        return Reply(text="Weekly nudge off: you won't get it any more. `nudge on` brings it back on the same day and time.", ephemeral=True)
    return Reply(text="Your weekly nudge was already off. `nudge on` starts it (Mondays at 09:00 unless you say otherwise).", ephemeral=True)


async def _pause(req: "Request", parsed: Parsed) -> Reply:
    assert parsed.pause_for is not None
    sub = await nudges.pause(req.store, req.member, req.now + parsed.pause_for, req.now)
    if sub is None:
        return Reply(text="You have no weekly nudge to pause. `nudge on` starts one.", ephemeral=True)
    return Reply(
        title="Weekly nudge paused",
        text=f"No nudges until {_when(sub.paused_until or req.now, sub.timezone)}; the next one comes {_when(sub.next_due_at, sub.timezone)}.",
        actions=(Action("Resume now", "nudge on"),),
        footer="`nudge on` resumes it now, `nudge off` stops it.",
        ephemeral=True,
    )


async def summary_line(store: "Store", member: str, now: dt.datetime) -> str:
    """The nudge setting in one line (the home view)."""
    sub = await nudges.get_subscription(store, member)
    if sub is None:
        return "Off. `nudge on` sends your next step every Monday at 09:00."
    if not sub.enabled:
        return f"Off (was {_every(sub.schedule)}). `nudge on` brings it back."
    paused = f", paused until {_when(sub.paused_until, sub.timezone)}" if sub.paused_until and sub.paused_until > now else ""
    return f"On, {_every(sub.schedule)}{paused}. Next: {_when(sub.next_due_at, sub.timezone)}."


async def _status(req: "Request") -> Reply:
    sub = await nudges.get_subscription(req.store, req.member)
    if sub is None:
        return Reply(
            text="You don't get the weekly study nudge. `nudge on` sends your next step every Monday at 09:00 in your timezone; "
            "or choose, e.g. `nudge on friday 8am Europe/Berlin`.",
            actions=(Action("Nudge me on Mondays", "nudge on", "primary"),),
            ephemeral=True,
        )
    if not sub.enabled:
        why = (
            f"It paused itself after {sub.consecutive_failures} weeks in which I couldn't DM you: allow direct messages from me, then say `nudge on`."
            if sub.consecutive_failures >= nudges.FAILURES_BEFORE_PAUSE
            else "It is off. `nudge on` brings it back."
        )
        return Reply(title="Weekly study nudge", text=f"Your nudge was {_every(sub.schedule)}. {why}", actions=(Action("Turn on", "nudge on", "primary"),), ephemeral=True)
    lines = [f"On, {_every(sub.schedule)}.", f"Next: {_when(sub.next_due_at, sub.timezone)}."]
    if sub.paused_until and sub.paused_until > req.now:
        lines.append(f"Paused until {_when(sub.paused_until, sub.timezone)}.")
    if sub.consecutive_failures:
        lines.append(f"The last {sub.consecutive_failures} nudge(s) couldn't be delivered: allow direct messages from me.")
    return Reply(
        title="Weekly study nudge",
        text="\n".join(lines),
        actions=(Action("Pause 2 weeks", "nudge pause 2 weeks"), Action("Turn off", "nudge off")),
        footer="Change it with `nudge on <day> <time> <timezone>`.",
        ephemeral=True,
    )


def _zone_choices(_content) -> list[Choice]:
    return [Choice(z, z) for z in sorted(_zones()[0].values())]


SPECS = [
    CommandSpec(
        "nudge",
        "Your weekly study nudge by DM: on [day] [time] [timezone], off, pause 2 weeks, or its status.",
        nudge,
        params=(
            Param("action", "on, off, pause or status", choices=lambda c: [Choice(a, a) for a in ("on", "off", "pause", "status")]),
            Param("day", "Day of the week (default Monday)", choices=lambda c: [Choice(d.lower(), d) for d in nudges.WEEKDAYS]),
            Param("time", "Local time, e.g. 9am or 18:30 (default 09:00)"),
            Param("timezone", "Your timezone, e.g. Europe/Berlin", choices=_zone_choices),
            Param("weeks", "With pause: how many weeks"),
        ),
        aliases=("nudges", "reminder"),
        examples=("nudge on", "nudge me on mondays at 9am Europe/Berlin", "nudge pause 2 weeks", "nudge off"),
        personal=True,
        needs_store=True,
        group="Your progress",
    ),
]
