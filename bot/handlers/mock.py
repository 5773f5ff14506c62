"""Mock interviews: five practice cards in a row (across topics, or from one), each
revealed and self-graded, then a score per topic, the weakest topic and when the cards
come back.

The grades are practice grades: the same FSRS schedule and review history as `grade`.
The session lives in the store, so a member can stop, come back days later, or reach
another replica, and carry on at the question they were on. Buttons carry the
question id; a grade counts only while its question is the current one, so a double
click grades once.
"""
from __future__ import annotations

import datetime as dt
from collections import Counter
from statistics import mean
from typing import TYPE_CHECKING

from bot.commands import Choice, CommandSpec, Param
from bot.content import Content
from bot.handlers.conversation import command_line, label
from bot.handlers.progress import comes_back, member_zone, pick_card
from bot.replies import Action, Field, Reply
from bot.srs import GRADE_NAMES, parse_grade, schedule
from bot.store import CardState, MockSession
from bot.text import FUNCTION_WORDS, quote, tokens

if TYPE_CHECKING:
    from bot.request import Request

QUESTIONS = 5
MAX_PER_TOPIC = 2  # across topics: the mock covers ground, yet a topic with several due cards shows twice
RIGHT = 3  # good or easy counts as a right answer
STOP, REVEAL = "stop", "reveal"
STOP_WORDS = frozenset({STOP, "end", "quit", "cancel"})  # "stop the mock interview" in free text
# Words members put around the command ("mock interview me on sql, 5 questions please"):
# not a topic they are asking for.
SESSION_WORDS = frozenset("mock interview interviews session round start resume continue question questions quiz test exam practice pls".split())
NO_SESSION = "No mock interview is open. Say `mock` (or `mock sql`, `mock mlops`, ...) to start one."


def pick_questions(content: Content, cards: dict[str, CardState], topic: str | None, now: dt.datetime, rng_choice) -> list[str]:
    """Distinct cards in practice's order (due and likeliest forgotten first, then new,
    then the soonest due), at most `MAX_PER_TOPIC` from a topic when across topics."""
    pool = {q.id for q in content.questions.values() if topic is None or q.topic == topic}
    picked: list[str] = []
    while len(picked) < min(QUESTIONS, len(pool)):
        per_topic = Counter(content.questions[q].topic for q in picked)
        full = {q for q in pool if topic is None and per_topic[content.questions[q].topic] >= MAX_PER_TOPIC}
        exclude = {*picked, *full} if pool - {*picked, *full} else set(picked)
        question_id, _ = pick_card(content, cards, topic, now, rng_choice, exclude=exclude)
        picked.append(question_id)
    return picked


def _position(session: MockSession) -> str:
    return f"question {len(session.grades) + 1}/{len(session.questions)}"


def _question(content: Content, session: MockSession, heading: str, footer: str = "") -> Reply:
    q = content.questions[session.current or ""]
    return Reply(
        title=f"{heading}: {_position(session)} ({content.topics[q.topic].name})",
        text=q.question,
        actions=(Action("Reveal answer", f"mock {REVEAL} {q.id}", "primary"), Action("Stop for now", f"mock {STOP}")),
        footer=(footer + "\n" if footer else "") + "Answer as you would in the interview (out loud or written), then reveal the model answer and grade yourself.",
        sources=content.titles(q.source, q.prompted_by),
        ephemeral=True,
    )


def _unasked_words(req: "Request") -> list[str]:
    """Words of the request that name no topic and belong to no mock request: "mock
    docker" -> ["docker"]. A slash command's `action` was checked against its choices."""
    words = [req.args.get("action", ""), req.args.get("card", ""), *req.route.leftover.split()]
    if len(req.message.text.split()) <= 8:  # in a longer message they are more likely context
        words += req.route.unexplained.split()
    topic_words = {w for e in req.route.entities if e.kind == "topic" for w in e.text.split()}
    return [w for w in dict.fromkeys(words)
            if w and not w.isdigit() and w not in FUNCTION_WORDS and w not in SESSION_WORDS and w not in topic_words]


def _not_a_topic(req: "Request", words: list[str]) -> Reply:
    """Say there are no cards on `words` and offer the topics; when the model reads the
    whole message as something else ("mock interview advice"), offer that first."""
    other = req.core.router.understand(req.message.text, req.route.entities, without={"mock"}).intent
    line = command_line(other, req.route) if other else None
    meant = (Action(label(req.core, other), line, "primary"),) if other and line else ()
    return Reply(
        text=f"I have no practice cards on \u201c{quote(' '.join(words))}\u201d. Pick a topic for a mock interview (`mock` alone gives a mix)"
        + (", or the first option if you meant something else:" if meant else ":"),
        actions=meant + tuple(Action(t.name, f"mock {t.id}") for t in req.content.topics.values()),
        ephemeral=True,
    )


async def _start(req: "Request") -> Reply:
    c, store = req.content, req.store
    topic = req.args.get("topic")
    unasked = _unasked_words(req)
    if topic is None and unasked:
        return _not_a_topic(req, unasked)
    session = await store.mock_session(req.member)
    if session is None:
        cards = {q: s for q, s in (await store.cards(req.member)).items() if q in c.questions}
        questions = pick_questions(c, cards, topic, req.now, req.core.rng.choice)
        session, new = await store.open_mock(req.member, questions, topic, req.now)
        if new:
            scope = c.topics[topic].name if topic else "a mix of topics"
            return _question(c, session, "Mock interview", f"{len(questions)} questions on {scope}, due and weak cards first. `mock stop` ends it; `mock` later carries on.")
    if session.current is None or session.current not in c.questions:
        # Finished by `grade` (typed or its buttons), or content lost the question: score what there is.
        return await _close(req, "Your mock interview is over")
    await store.set_member_field(req.member, "current_card", session.current)
    asked = c.topics[topic].name if topic else None
    note = f"This one is still open; `mock stop` ends it, then `mock {topic}` starts one on {asked}." if asked and topic != session.topic else ""
    return _question(c, session, "Resuming your mock interview", note)


async def _open_at(req: "Request") -> MockSession | Reply:
    """The open session, if the button pressed (its card) is for its current question."""
    session = await req.store.mock_session(req.member)
    if session is None:
        return Reply(text=NO_SESSION, ephemeral=True)
    card = req.args.get("card") or session.current
    if session.current is None or card != session.current:
        return Reply(text=f"You've already graded that question. Say `mock` to carry on where you are ({_position(session) if session.current else 'all answered'}).",
                     actions=(Action("Carry on", "mock", "primary"),), ephemeral=True)
    return session


async def _reveal(req: "Request") -> Reply:
    session = await _open_at(req)
    if isinstance(session, Reply):
        return session
    q = req.content.questions[session.current or ""]
    grades = tuple(Action(name.capitalize(), f"mock {name} {q.id}", "danger" if value == 1 else "secondary") for value, name in GRADE_NAMES.items())
    return Reply(
        title=q.question,
        text=q.answer,
        actions=grades,
        footer=f"Mock interview, {_position(session)}. How well did you know it? Again (1), hard (2), good (3) or easy (4).",
        sources=req.content.titles(q.source, q.prompted_by),
        ephemeral=True,
    )


async def _grade(req: "Request", grade: int) -> Reply:
    session = await _open_at(req)
    if isinstance(session, Reply):
        return session
    question_id = session.current or ""
    state = schedule((await req.store.cards(req.member)).get(question_id), question_id, grade, req.now)
    graded = await req.store.grade_mock(req.member, state, grade, req.now)
    if graded is None:
        return Reply(text="You've already graded that question. Say `mock` to carry on.", ephemeral=True)
    if graded.current is None:
        return await _close(req, "Mock interview done")
    when = comes_back(state.due_at, req.now, member_zone(req.timezone))
    return _question(req.content, graded, "Mock interview", f"Graded {GRADE_NAMES[grade]}: that card comes back {when}.")


async def _stop(req: "Request") -> Reply:
    if await req.store.mock_session(req.member) is None:
        return Reply(text=NO_SESSION, ephemeral=True)
    return await _close(req, "Mock interview stopped")


async def _close(req: "Request", title: str) -> Reply:
    session = await req.store.end_mock(req.member)
    if session is None:  # closed meanwhile (another click, another replica)
        return Reply(text=NO_SESSION, ephemeral=True)
    return await _summary(req, session, title)


async def _summary(req: "Request", session: MockSession, title: str) -> Reply:
    """Score per topic, the weakest topic, and when each graded card comes back."""
    c = req.content
    graded = [(q, g) for q, g in zip(session.questions, session.grades) if q in c.questions]
    if not graded:
        return Reply(title=title, text="No answer was graded, so there is nothing to score.", actions=(Action("Start a new one", "mock", "primary"),), ephemeral=True)
    by_topic: dict[str, list[int]] = {}
    for question_id, grade in graded:
        by_topic.setdefault(c.questions[question_id].topic, []).append(grade)
    fields = [Field(c.topics[t].name, f"{_right(gs)} of {len(gs)} right, mean grade {mean(gs):.1f} of 4") for t, gs in by_topic.items()]
    text = f"{_right([g for _, g in graded])} of {len(graded)} answered right (graded good or easy)"
    text += "." if len(graded) == len(session.questions) else f"; {len(session.questions) - len(graded)} question(s) not reached."
    actions = [Action("Another mock interview", "mock")]
    if len(by_topic) > 1:
        weakest = min(by_topic, key=lambda t: (_right(by_topic[t]) / len(by_topic[t]), mean(by_topic[t])))
        text += f" Weakest topic: {c.topics[weakest].name}."
        actions.insert(0, Action(f"Practise {c.topics[weakest].name}", f"practice {weakest}", "primary"))
    cards = await req.store.cards(req.member)
    zone = member_zone(req.timezone)
    back = sorted((cards[q].due_at, q, g) for q, g in graded if q in cards)
    lines = [f"{quote(c.questions[q].question, 80)} ({c.topics[c.questions[q].topic].name}, {GRADE_NAMES[g]}): {comes_back(due, req.now, zone)}" for due, q, g in back]
    return Reply(
        title=title,
        text=text,
        fields=(*fields, Field("When these cards come back", "\n".join(lines))),
        actions=tuple(actions),
        footer="The grades count as practice: `practice` brings each card back when it is due.",
        ephemeral=True,
    )


def _right(grades: list[int]) -> int:
    return sum(1 for g in grades if g >= RIGHT)


async def mock(req: "Request") -> Reply:
    action = req.args.get("action", "")
    if action == STOP or (action in ("", *SESSION_WORDS) and STOP_WORDS & set(tokens(req.message.text))):
        return await _stop(req)
    if action == REVEAL:
        return await _reveal(req)
    grade = parse_grade(action)
    if grade is not None:
        return await _grade(req, grade)
    return await _start(req)


def _topics(c: Content) -> list[Choice]:
    return [Choice(t.id, t.name) for t in c.topics.values()]


SPECS = [
    CommandSpec("mock", f"A mock interview: {QUESTIONS} questions, graded by you, then your score per topic.", mock,
                params=(Param("topic", "One topic (leave out for a mix)", kind="topic", choices=_topics),
                        Param("action", "`stop` ends your mock interview", choices=lambda c: [Choice(STOP, "Stop my mock interview")]),
                        Param("card", "The question id (the buttons fill it in)")),
                examples=("mock", "mock sql", "mock stop"), personal=True, needs_store=True, group="Your progress"),
]
