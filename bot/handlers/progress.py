"""Commands about the member's own progress: path, courses, practice, streak, privacy."""
from __future__ import annotations

import datetime as dt
import json
from typing import TYPE_CHECKING, Collection
from zoneinfo import ZoneInfo

from bot.commands import Choice, CommandSpec, Param
from bot.content import Content, problem_summary
from bot.handlers.nudge import summary_line
from bot.progress_state import COURSE, STEP, member_zone, next_step_for, visible_done
from bot.replies import Action, Attachment, Field, Reply
from bot.srs import GRADE_NAMES, parse_grade, retrievability, schedule
from bot.store import CardState, Outcome
from bot.suggest import closest
from bot.streaks import weekly_streak
from bot.text import FUNCTION_WORDS, quote

if TYPE_CHECKING:
    from bot.request import Request

WEEK = dt.timedelta(days=7)


# --- what the member has done ---------------------------------------------------------


async def _practice_summary(req: "Request") -> tuple[int, int, float | None]:
    """Cards seen, cards due now, and retention (share of reviews not graded Again)."""
    cards = {q: c for q, c in (await req.store.cards(req.member)).items() if q in req.content.questions}
    due = sum(1 for c in cards.values() if c.due_at <= req.now)
    grades = [g for q, g in await req.store.review_grades(req.member) if q in req.content.questions]
    retention = sum(1 for g in grades if g > 1) / len(grades) if grades else None
    return len(cards), due, retention


async def member_streak(req: "Request") -> int:
    return weekly_streak(await req.store.activity_times(req.member), member_zone(req.timezone), req.now)


async def progress(req: "Request") -> Reply:
    c = req.content
    steps_done, courses_done = visible_done(c, await req.store.done_items(req.member))
    step_lines = [("[x] " if s in steps_done else "[ ] ") + c.path_steps[s].name for s in c.path_steps]
    seen, due, retention = await _practice_summary(req)
    streak = await member_streak(req)
    practice = f"{seen} of {len(c.questions)} cards seen, {due} due now"
    practice += f", retention {retention:.0%}" if retention is not None else ""
    return Reply(
        title="Your progress",
        text=f"Path: {len(steps_done)} of {len(c.path_steps)} steps done.",
        items=tuple(step_lines),
        fields=(
            Field("Courses done", "\n".join(c.courses[x].title for x in courses_done) or "None yet: `done <course>` records one."),
            Field("Practice", practice),
            Field("Weekly streak", f"{streak} week(s) in a row"),
        ),
        footer="`next` shows what to do this week.",
        ephemeral=True,
    )


async def next_step(req: "Request") -> Reply:
    c = req.content
    steps_done, courses_done = visible_done(c, await req.store.done_items(req.member))
    step_id, course_ids = next_step_for(c, steps_done, courses_done)
    if step_id is None:
        return Reply(
            title="You've done every step of the path",
            text="Keep shipping portfolio work and practising interview questions (`practice`).",
            ephemeral=True,
        )
    step = c.path_steps[step_id]
    fields = [Field("This week (the project's suggestion, not from the articles)", step.this_week)]
    if course_ids:
        fields.append(Field("A course for it" if len(course_ids) == 1 else "Courses for it", "\n".join(f"{c.courses[x].title} ({c.courses[x].provider}, rated {c.courses[x].rating:g})" for x in course_ids)))
    return Reply(
        title=f"Next: {step.name}",
        text=step.description,
        fields=tuple(fields),
        actions=(Action("Mark done", f"done {step.id}", "success"),),
        sources=c.titles(step.source, *(c.courses[x].source for x in course_ids)),
        ephemeral=True,
    )


def _resolve_item(req: "Request") -> tuple[str, str, str] | Reply:
    """(kind, id, name) of the step or course the member named, or a reply asking which."""
    c = req.content
    steps = list(dict.fromkeys(req.route.ids(STEP)))
    courses = list(dict.fromkeys(req.route.ids(COURSE)))
    if "item" in req.args and not steps and not courses:
        value = req.args["item"]
        steps = [value] if value in c.path_steps else []
        courses = [value] if value in c.courses else []
    words = req.message.text.lower().split()
    if steps and courses:
        if "course" in words or "class" in words:
            steps = []
        elif "step" in words:
            courses = []
    if len(steps) + len(courses) == 1:
        return (STEP, steps[0], c.path_steps[steps[0]].name) if steps else (COURSE, courses[0], c.courses[courses[0]].title)
    options = {f"step:{s}": c.path_steps[s].name for s in c.path_steps} | {f"course:{x}": c.courses[x].title for x in c.courses}
    if steps or courses:
        near = [f"step:{s}" for s in steps] + [f"course:{x}" for x in courses]
    else:
        near = closest(req.route.leftover or req.args.get("item", ""), options) if (req.route.leftover or req.args.get("item")) else []
    if not near:
        return Reply(text=f"Which one? Steps: {', '.join(c.path_steps)}. Courses: `courses` lists them.", ephemeral=True)
    verb = req.route.command
    return Reply(
        text="Which one did you mean?",
        actions=tuple(Action(options[key], f"{verb} {key.split(':', 1)[1]}") for key in near[:5]),
        ephemeral=True,
    )


def _former_ids(content: Content, kind: str, item: str) -> tuple[str, ...]:
    """The ids a step was stored under before `renamed_from` renames; progress rows may
    still carry them, so done and undo treat them as the step itself."""
    return content.path_steps[item].renamed_from if kind == STEP else ()


async def done(req: "Request") -> Reply:
    resolved = _resolve_item(req)
    if isinstance(resolved, Reply):
        return resolved
    kind, item, name = resolved
    stored = await req.store.done_items(req.member)
    under_old_id = any(old in stored.get(kind, {}) for old in _former_ids(req.content, kind, item))
    added = not under_old_id and await req.store.mark_done(req.member, kind, item, req.now)
    text = f"Marked done: {name}." if added else f"{name} was already marked done."
    return Reply(text=text + " `progress` shows where you stand, `next` what comes next.", actions=(Action("Undo", f"undo {item}"),), ephemeral=True)


async def undo(req: "Request") -> Reply:
    resolved = _resolve_item(req)
    if isinstance(resolved, Reply):
        return resolved
    kind, item, name = resolved
    removed = False
    for stored_id in (*_former_ids(req.content, kind, item), item):
        removed = await req.store.undo(req.member, kind, stored_id) or removed
    return Reply(text=f"Unmarked: {name}." if removed else f"{name} was not marked done.", ephemeral=True)


async def streak(req: "Request") -> Reply:
    weeks = await member_streak(req)
    text = f"{weeks} week(s) in a row with study activity (weeks in {req.timezone})."
    if weeks == 0:
        text = "No streak yet: mark a step done or grade a practice card this week to start one."
    return Reply(title="Your study streak", text=text, ephemeral=True)


async def home(req: "Request") -> Reply:
    """One screen for an app home tab: where the member stands, what comes next, and
    the nudge setting."""
    c = req.content
    steps_done, courses_done = visible_done(c, await req.store.done_items(req.member))
    step_id, course_ids = next_step_for(c, steps_done, courses_done)
    seen, due, _ = await _practice_summary(req)
    fields = [
        Field("Path", f"{len(steps_done)} of {len(c.path_steps)} steps done, {len(courses_done)} course(s) done"),
        Field("Next step", f"{c.path_steps[step_id].name}: {c.path_steps[step_id].this_week}" if step_id else "Every step done."),
        Field("Practice", f"{seen} cards seen, {due} due now"),
        Field("Weekly streak", f"{await member_streak(req)} week(s)"),
        Field("Weekly study nudge", await summary_line(req.store, req.member, req.now)),
    ]
    actions = [Action("Next step", "next", "primary"), Action("Practice", "practice"), Action("Progress", "progress")]
    return Reply(title="Your ML study home", fields=tuple(fields), actions=tuple(actions), ephemeral=True)


# --- practice -------------------------------------------------------------------------


def pick_card(content: Content, cards: dict[str, CardState], topic: str | None, now: dt.datetime, rng_choice,
              concept: str | None = None, exclude: Collection[str] = ()) -> tuple[str, str]:
    """(question id, why): due cards first, the one the member is likeliest to have
    forgotten (lowest FSRS retrievability) first; then a new card; then the card due
    soonest, as an early review. `concept` keeps to the cards tagged so; `exclude`
    leaves cards out (those a mock interview has picked already)."""
    pool = [q for q in content.questions.values()
            if (topic is None or q.topic == topic) and (concept is None or concept in q.tags) and q.id not in exclude]
    due = sorted((cards[q.id] for q in pool if q.id in cards and cards[q.id].due_at <= now), key=lambda c: (retrievability(c, now), c.due_at))
    if due:
        return due[0].question_id, "due for review"
    new = [q.id for q in pool if q.id not in cards]
    if new:
        return rng_choice(new), "new"
    soonest = min((cards[q.id] for q in pool), key=lambda c: c.due_at)
    return soonest.question_id, "nothing is due, so an early review"


# "quiz me on docker" names an unknown topic; in a longer message the unexplained words
# are more likely the member's context than a topic.
MAX_TOPIC_REQUEST_WORDS = 8


async def practice(req: "Request") -> Reply:
    if req.args.get("mode") == "stats" or "stats" in req.message.text.lower().split()[1:]:
        return await practice_stats(req)
    c = req.content
    topic = req.args.get("topic")
    concept = next(iter(req.route.ids("concept")), None) if topic is None else None
    mode = req.args.get("mode", "")
    asked = req.route.leftover or (mode if mode.isalpha() and mode not in FUNCTION_WORDS else "") or (req.route.unexplained if len(req.message.text.split()) <= MAX_TOPIC_REQUEST_WORDS else "")
    if topic is None and concept is None and asked:
        return Reply(
            text=f"I have no practice cards on \u201c{quote(asked)}\u201d. Pick a topic:",
            actions=tuple(Action(t.name, f"practice {t.id}") for t in c.topics.values()),
            ephemeral=True,
        )
    cards = {q: s for q, s in (await req.store.cards(req.member)).items() if q in c.questions}
    question_id, why = pick_card(c, cards, topic, req.now, req.core.rng.choice, concept)
    await req.store.set_member_field(req.member, "current_card", question_id)
    q = c.questions[question_id]
    return Reply(
        title=f"Practice: {c.topics[q.topic].name} ({why})",
        text=q.question,
        actions=(Action("Reveal answer", f"reveal {q.id}", "primary"),),
        footer="Think it through, then `reveal` and grade yourself: again, hard, good or easy.",
        sources=c.titles(q.source, q.prompted_by),
        ephemeral=True,
    )


async def _current_card(req: "Request", verb: str) -> str | Reply:
    current = await req.store.member_field(req.member, "current_card")
    asked = req.args.get("card")
    if asked and asked != current:
        return Reply(text="You've already graded that card. Say `practice` for the next question.", ephemeral=True)
    if current is None or current not in req.content.questions:
        return Reply(text=f"There's no practice card to {verb}. Say `practice` (or `practice sql`, `practice mlops`, ...) to get one.", ephemeral=True)
    return current


async def reveal(req: "Request") -> Reply:
    current = await _current_card(req, "reveal")
    if isinstance(current, Reply):
        return current
    c = req.content
    q = c.questions[current]
    grades = tuple(Action(name.capitalize(), f"grade {name} {q.id}", "danger" if value == 1 else "secondary") for value, name in GRADE_NAMES.items())
    return Reply(
        title=q.question,
        text=q.answer,
        actions=grades,
        footer="How well did you know it? Grade: again (1), hard (2), good (3), easy (4).",
        sources=c.titles(q.source, q.prompted_by),
        ephemeral=True,
    )


async def grade(req: "Request") -> Reply:
    value = parse_grade(req.args.get("grade", ""))
    words = req.message.text.split()
    if value is None:
        value = next((g for g in map(parse_grade, words[1:]) if g is not None), None)
    if value is None:
        return Reply(text="Grade with again, hard, good or easy (or 1-4), e.g. `grade good`.", ephemeral=True)
    current = await _current_card(req, "grade")
    if isinstance(current, Reply):
        return current
    cards = await req.store.cards(req.member)
    state = schedule(cards.get(current), current, value, req.now)
    if not await req.store.save_review(req.member, state, value, req.now, expected_card=current):
        return Reply(text="You've already graded that card. Say `practice` for the next question.", ephemeral=True)
    topic = req.content.questions[current].topic
    when = comes_back(state.due_at, req.now, member_zone(req.timezone))
    return Reply(
        text=f"Graded {GRADE_NAMES[value]}. You'll see this card again {when}.",
        actions=(Action("Next question", f"practice {topic}", "primary"),),
        ephemeral=True,
    )


def comes_back(due: dt.datetime, now: dt.datetime, zone: ZoneInfo) -> str:
    """When a graded card returns, as the grade reply says it: minutes for a learning
    step (within the session), days for a review."""
    wait, local = due - now, due.astimezone(zone)
    if wait < dt.timedelta(days=1):
        return f"in {max(1, round(wait / dt.timedelta(minutes=1)))} minutes (at {local:%H:%M}) if you keep practising"
    days = round(wait / dt.timedelta(days=1))
    return f"in {days} day{'s' if days != 1 else ''}, on {local:%a %d %b}"


def _retention(grades: list[int]) -> str:
    """Share of reviews graded hard, good or easy (recalled), not FSRS's predicted recall."""
    return f", retention {sum(1 for g in grades if g > 1) / len(grades):.0%}" if grades else ""


async def practice_stats(req: "Request") -> Reply:
    c = req.content
    cards = {q: s for q, s in (await req.store.cards(req.member)).items() if q in c.questions}
    grades = [(q, g) for q, g in await req.store.review_grades(req.member) if q in c.questions]
    fields = []
    for topic in c.topics.values():
        total = sum(1 for q in c.questions.values() if q.topic == topic.id)
        seen = [s for q, s in cards.items() if c.questions[q].topic == topic.id]
        due = sum(1 for s in seen if s.due_at <= req.now)
        week = sum(1 for s in seen if s.due_at <= req.now + WEEK)
        retention = _retention([g for q, g in grades if c.questions[q].topic == topic.id])
        fields.append(Field(topic.name, f"{len(seen)} of {total} seen, {due} due now, {week} due this week{retention}"))
    due_now = sum(1 for s in cards.values() if s.due_at <= req.now)
    due_week = sum(1 for s in cards.values() if s.due_at <= req.now + WEEK)
    overall = f"{due_week} card(s) due this week (the next 7 days), {due_now} of them now{_retention([g for _, g in grades])}."
    return Reply(
        title="Your practice by topic",
        text=overall,
        fields=tuple(fields),
        footer="Retention: the share of your reviews graded hard, good or easy.",
        ephemeral=True,
    )


# --- privacy --------------------------------------------------------------------------


def export_json(data: dict) -> str:
    """A member's stored rows as `mydata` shows them and `mlbot data export` prints them."""
    return json.dumps(data, indent=1, default=str, ensure_ascii=False)


async def mydata(req: "Request") -> Reply:
    data = await req.store.export(req.member)
    if not data:
        return Reply(text="I have nothing stored about you.", ephemeral=True)
    text = export_json(data)
    # The file carries the text: Discord and Slack send one JSON file instead of splitting it across messages.
    export = Attachment("mlbot-data.json", text.encode("utf-8"), "Everything stored about you, as JSON", "application/json", carries_text=True)
    return Reply(title="Everything stored about you", text=text, footer="`forget me` deletes it all.", ephemeral=True, attachments=(export,))


async def forget(req: "Request") -> Reply:
    confirm = req.args.get("confirm")
    # Deleting takes two steps by the same member: "forget yes" typed in one go only asks.
    if confirm == "yes" and req.context.pending_action == "forget":
        rows = await req.store.forget(req.member)
        return Reply(text=f"Done: I deleted everything stored about you ({rows} records). Nothing of yours is left.", ephemeral=True)
    if confirm == "no":  # the "No, keep it" button: the question is answered, a later "yes" deletes nothing
        await req.store.set_pending_action(req.member, None)
        return Reply(text="Okay, nothing was deleted.", ephemeral=True)
    await req.store.set_pending_action(req.member, "forget")
    return Reply(
        text="This deletes your progress, practice history, streak, settings and the questions I couldn't answer you for good. "
        "Reply `yes` to confirm or `no` to keep them.",
        actions=(Action("Yes, delete everything", "forget yes", "danger"), Action("No, keep it", "forget no")),
        ephemeral=True,
    )


# --- admins ---------------------------------------------------------------------------


async def unanswered(req: "Request") -> Reply:
    limit = int(req.args["count"]) if req.args.get("count", "").isdigit() else 10
    limit = next((int(w) for w in req.message.text.split() if w.isdigit()), limit)
    rows = await req.store.unanswered(max(1, min(limit, 50)))
    if not rows:
        return Reply(text="No unanswered questions recorded yet.", ephemeral=True)
    items = tuple(
        f"{row.count}x \"{quote(row.text, 80)}\" (last {row.last_seen:%Y-%m-%d}; {'asked back' if row.outcome is Outcome.CLARIFY else 'no answer'}"
        + (f"; closest: {', '.join(row.near)})" if row.near else ")")
        for row in rows
    )
    return Reply(title="Questions I couldn't answer", items=items, footer="Add the question as an `examples:` line under the intent that should answer it (content/*.yaml), then `reload`.", ephemeral=True)


async def stats(req: "Request") -> Reply:
    data = await req.store.stats(req.now - dt.timedelta(days=7))
    top = ", ".join(f"{name} ({n})" for name, n in data["top_commands"]) or "none yet"
    return Reply(
        title="Bot usage",
        fields=(
            Field("Members", str(data["members"])),
            Field("Active in the last 7 days", str(data["active_this_week"])),
            Field("Practice cards graded", str(data["cards_graded"])),
            Field("Top commands", top),
        ),
        ephemeral=True,
    )


async def reload(req: "Request") -> Reply:
    problems = req.core.reload()
    if problems:
        return Reply(title="Content not reloaded: the old content keeps serving", items=tuple(problem_summary(problems)), ephemeral=True)
    return Reply(text="Content reloaded.", ephemeral=True)


def _items(c: Content) -> list[Choice]:
    return [Choice(s.id, f"Step: {s.name}") for s in c.path_steps.values()] + [Choice(x.id, f"Course: {x.title}") for x in c.courses.values()]


def _topics(c: Content) -> list[Choice]:
    return [Choice(t.id, t.name) for t in c.topics.values()]


PERSONAL = dict(personal=True, needs_store=True, group="Your progress")
ADMIN = dict(admin=True, needs_store=True, group="Admins")

SPECS = [
    CommandSpec("progress", "Your path steps, courses, practice and streak.", progress, aliases=("status",), examples=("progress",), **PERSONAL),
    CommandSpec("next", "Your next path step, its course and one thing to do this week.", next_step, aliases=("todo",), examples=("next",), **PERSONAL),
    CommandSpec("done", "Mark a path step or course done.", done,
                params=(Param("item", "A path step or course", choices=_items, required=True, rest=True),),
                aliases=("finished", "completed", "complete"), examples=("done python fundamentals", "I finished the regression course"), **PERSONAL),
    CommandSpec("undo", "Unmark a path step or course.", undo,
                params=(Param("item", "A path step or course", choices=_items, required=True, rest=True),),
                aliases=("unmark", "undone"), examples=("undo python fundamentals",), **PERSONAL),
    CommandSpec("practice", "An interview question, due and weak cards first (spaced repetition).", practice,
                params=(Param("topic", "Question topic", kind="topic", choices=_topics),
                        Param("mode", "`stats` for your practice statistics", choices=lambda c: [Choice("stats", "My practice stats")])),
                aliases=("quiz", "drill"), examples=("practice sql", "ask me an ML interview question", "practice stats"), **PERSONAL),
    CommandSpec("reveal", "Show the model answer to your current practice card.", reveal,
                params=(Param("card", "The card id"),), aliases=("answer",), **PERSONAL),
    CommandSpec("grade", "Grade your current card: again, hard, good or easy (1-4).", grade,
                params=(Param("grade", "again, hard, good or easy", choices=lambda c: [Choice(n, n) for n in GRADE_NAMES.values()], required=True),
                        Param("card", "The card id")),
                aliases=("rate",), whole=("again", "hard", "good", "easy", "1", "2", "3", "4"), **PERSONAL),
    CommandSpec("home", "Your progress, next step and practice at a glance.", home, examples=("home",), **PERSONAL),
    CommandSpec("streak", "Weeks in a row you studied.", streak, examples=("streak",), **PERSONAL),
    CommandSpec("mydata", "Everything stored about you, as JSON.", mydata, aliases=("my-data", "export"), examples=("mydata",), **PERSONAL),
    CommandSpec("forget", "Delete everything stored about you (asks first).", forget,
                params=(Param("confirm", "yes to confirm"),), aliases=("forget-me", "delete-me"), examples=("forget me",), **PERSONAL),
    CommandSpec("unanswered", "The questions members asked that I couldn't answer.", unanswered,
                params=(Param("count", "How many (default 10)"),), examples=("unanswered 20",), **ADMIN),
    CommandSpec("stats", "Members, weekly activity, cards graded, top commands.", stats, examples=("stats",), **ADMIN),
    CommandSpec("reload", "Reload content; a bad edit keeps the old content serving.", reload, examples=("reload",), admin=True, group="Admins"),
]
