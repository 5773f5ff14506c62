"""Mock interviews through the core, on SQLite and PostgreSQL: five cards, revealed and
self-graded with the buttons, a summary per topic; stop, resume, double clicks."""
from __future__ import annotations

import asyncio
import datetime as dt
import json
import random
from collections import Counter
from zoneinfo import ZoneInfo

from bot.core import Core
from bot.handlers.progress import comes_back
from bot.messages import Message
from bot.replies import Reply

ALICE = "console:alice"


async def answer(ask_reply, question: Reply, grade: str, user: str = "alice") -> tuple[str, Reply]:
    """Reveal the question shown and press a grade button: (question id, the reply)."""
    reveal = question.actions[0]
    assert reveal.label == "Reveal answer" and reveal.command.startswith("mock reveal "), question
    revealed = await ask_reply(reveal.command, user=user)
    assert [a.label for a in revealed.actions] == ["Again", "Hard", "Good", "Easy"]
    button = next(a for a in revealed.actions if a.label.lower() == grade)
    return reveal.command.split()[-1], await ask_reply(button.command, user=user)


async def test_a_full_run_scores_each_topic_names_the_weakest_and_when_cards_return(ask_reply, store, content, clock) -> None:
    await store.set_member_field(ALICE, "timezone", "Asia/Tokyo")
    reply = await ask_reply("mock")
    assert reply.title.startswith("Mock interview: question 1/5") and reply.ephemeral
    weak_topic = content.questions[reply.actions[0].command.split()[-1]].topic
    graded: list[tuple[str, int]] = []
    for n in range(5):
        assert f"question {n + 1}/5" in reply.title
        qid = reply.actions[0].command.split()[-1]
        grade = "again" if content.questions[qid].topic == weak_topic else ("good", "easy")[n % 2]
        qid, reply = await answer(ask_reply, reply, grade)
        graded.append((qid, {"again": 1, "good": 3, "easy": 4}[grade]))
        if n < 4:
            assert f"Graded {grade}: that card comes back in " in reply.footer
    questions = [q for q, _ in graded]
    assert len(set(questions)) == 5
    assert max(Counter(content.questions[q].topic for q in questions).values()) <= 2  # across topics
    assert reply.title == "Mock interview done"
    right = sum(1 for _, g in graded if g >= 3)
    assert f"{right} of 5 answered right" in reply.text
    assert f"Weakest topic: {content.topics[weak_topic].name}." in reply.text
    assert reply.actions[0].command == f"practice {weak_topic}"
    fields = {f.name: f.value for f in reply.fields}
    assert fields[content.topics[weak_topic].name].startswith("0 of ")
    cards = await store.cards(ALICE)
    for qid, _ in graded:  # the scheduler's dates, in the member's timezone
        assert comes_back(cards[qid].due_at, clock.now, ZoneInfo("Asia/Tokyo")) in fields["When these cards come back"]
    assert "in 10 minutes (at 19:10)" in fields["When these cards come back"]  # 'again' at 10:00 UTC is 19:00 in Tokyo
    assert "in 2 days, on Wed 25 Nov" in fields["When these cards come back"]
    # The session is over: `mock` starts a new one.
    assert (await ask_reply("mock")).title.startswith("Mock interview: question 1/5")


async def test_grades_go_to_the_scheduler_and_the_review_history(ask_reply, store, clock) -> None:
    reply = await ask_reply("mock")
    first, reply = await answer(ask_reply, reply, "good")
    second, reply = await answer(ask_reply, reply, "again")
    assert await store.review_grades(ALICE) == [(first, 3), (second, 1)]
    cards = await store.cards(ALICE)
    assert cards[first].reviews == 1 and cards[first].due_at - clock.now == dt.timedelta(days=2)
    assert cards[second].due_at - clock.now == dt.timedelta(minutes=10)
    home = {f.name: f.value for f in (await ask_reply("home")).fields}
    assert "2 cards seen" in home["Practice"] and home["Weekly streak"] == "1 week(s)"  # the same practice record


async def test_stop_then_resume_later_and_after_a_restart(ask_reply, store, content, clock) -> None:
    reply = await ask_reply("mock")
    first, reply = await answer(ask_reply, reply, "good")
    second, reply = await answer(ask_reply, reply, "hard")
    third = reply.actions[0].command.split()[-1]
    clock.advance(days=3)
    await ask_reply("practice")  # another card in between does not lose the interview
    resumed = await ask_reply("mock")
    assert resumed.title.startswith("Resuming your mock interview: question 3/5")
    assert resumed.actions[0].command == f"mock reveal {third}"
    assert (await ask_reply("reveal")).title == content.questions[third].question  # the plain `reveal` shows it too
    restarted = await Core(content, store=store, clock=clock, rng=random.Random(1)).handle(Message("console", "alice", "mock"))
    assert restarted.title.startswith("Resuming your mock interview: question 3/5")
    stopped = await ask_reply("mock stop")
    assert stopped.title == "Mock interview stopped"
    assert "1 of 2 answered right" in stopped.text and "3 question(s) not reached" in stopped.text
    assert {f.name for f in stopped.fields} >= {"When these cards come back"}
    assert "No mock interview is open" in (await ask_reply("mock stop")).text
    assert "There's no practice card to grade" in (await ask_reply("grade good")).text  # the stopped question is let go
    assert (await ask_reply("mock")).title.startswith("Mock interview: question 1/5")
    assert [q for q, _ in await store.review_grades(ALICE)] == [first, second]


async def test_stop_in_free_text(ask_reply) -> None:
    await ask_reply("mock")
    reply = await ask_reply("stop the mock interview please")
    assert reply.title == "Mock interview stopped" and "nothing to score" in reply.text


async def test_a_double_click_grades_once(ask_reply, store) -> None:
    reply = await ask_reply("mock")
    qid, graded = await answer(ask_reply, reply, "good")
    again = await ask_reply(f"mock good {qid}")
    assert "already graded" in again.text and again.ephemeral
    assert "already graded" in (await ask_reply(f"mock reveal {qid}")).text
    assert await store.review_grades(ALICE) == [(qid, 3)]
    assert (await ask_reply("mock")).title.startswith("Resuming your mock interview: question 2/5")


async def test_two_clicks_at_once_grade_once(ask_reply, store) -> None:
    reply = await ask_reply("mock")
    qid = reply.actions[0].command.split()[-1]
    replies = await asyncio.gather(ask_reply(f"mock easy {qid}"), ask_reply(f"mock easy {qid}"))
    assert sorted("already graded" in r.text for r in replies) == [False, True]
    assert await store.review_grades(ALICE) == [(qid, 4)]


async def test_a_typed_grade_counts_once_in_the_mock(ask_reply, store) -> None:
    """`reveal` and `good` typed instead of the buttons grade the mock's question, once."""
    reply = await ask_reply("mock")
    qid = reply.actions[0].command.split()[-1]
    await ask_reply("reveal")
    assert "Graded good" in (await ask_reply("good")).text
    assert "already graded" in (await ask_reply(f"mock good {qid}")).text
    assert await store.review_grades(ALICE) == [(qid, 3)]
    reply = await ask_reply("mock")
    assert reply.title.startswith("Resuming your mock interview: question 2/5")
    for _ in range(3):
        _, reply = await answer(ask_reply, reply, "easy")
    await ask_reply("reveal")
    await ask_reply("hard")  # the last question, typed: `mock` then shows the summary
    done = await ask_reply("mock")
    assert done.title == "Your mock interview is over" and "4 of 5 answered right" in done.text
    assert len(await store.review_grades(ALICE)) == 5


async def test_a_topic_keeps_to_its_cards(ask_reply, content) -> None:
    reply = await ask_reply("mock sql")
    assert "5 questions on SQL" in reply.footer
    seen = []
    for _ in range(5):
        seen.append(reply.actions[0].command.split()[-1])
        _, reply = await answer(ask_reply, reply, "good")
    assert {content.questions[q].topic for q in seen} == {"sql"} and len(set(seen)) == 5
    assert "Weakest topic" not in reply.text and "5 of 5 answered right" in reply.text
    assert [f.name for f in reply.fields][0] == "SQL"


async def test_asking_for_another_topic_while_one_is_open_resumes_it(ask_reply) -> None:
    await ask_reply("mock sql")
    reply = await ask_reply("mock python")
    assert reply.title.startswith("Resuming your mock interview: question 1/5 (SQL)")
    assert "`mock stop` ends it, then `mock python` starts one on Production Python" in reply.footer


async def test_an_unknown_topic_says_so_and_lists_the_topics(ask_reply, content) -> None:
    reply = await ask_reply("mock kubernetes")
    assert "no practice cards on \u201ckubernetes\u201d" in reply.text
    assert {f"mock {t}" for t in content.topics} <= {a.command for a in reply.actions}
    advice = await ask_reply("mock interview advice")  # a command line that is really a question about mock interviews
    assert advice.actions[0].command.startswith("interview ")
    assert (await ask_reply(advice.actions[0].command)).title == "How to prepare for ML engineer interviews"


async def test_free_text_reaches_mock(ask_reply, core) -> None:
    for text in ("can you give me a mock interview", "give me a mock interview on statistics"):
        assert core.router.route(text).command == "mock", text
    reply = await ask_reply("can you give me a mock interview")
    assert reply.title.startswith("Mock interview: question 1/5") and reply.command == "mock"
    other = await ask_reply("give me a mock interview on statistics", user="bob")
    assert "(Statistics and probability)" in other.title


async def test_the_session_is_personal_data(ask_reply) -> None:
    reply = await ask_reply("mock")
    qid = reply.actions[0].command.split()[-1]
    data = json.loads((await ask_reply("mydata")).text)
    assert data["mock_sessions"][0]["questions"].split(",")[0] == qid
    await ask_reply("forget me")
    await ask_reply("yes")
    assert "No mock interview is open" in (await ask_reply("mock stop")).text


async def test_discord_and_slack_reach_it(core, content) -> None:
    from adapters.discord_commands import command_payloads
    from adapters.slack_app import to_message

    (payload,) = [p for p in command_payloads(core.registry) if p["name"] == "mock"]
    assert [o["name"] for o in payload["options"]][:2] == ["topic", "action"]
    slash = await core.handle(Message("discord", "42", command="mock", args={"topic": "SQL"}))
    assert slash.title.startswith("Mock interview: question 1/5 (SQL)")
    assert "Mock interview stopped" in (await core.handle(Message("discord", "42", command="mock", args={"action": "stop"}))).title
    body = {"command": "/mlbot", "text": "mock mlops", "team_id": "T1", "user_id": "U1"}
    slack = await core.handle(to_message(body))
    assert slack.title.startswith("Mock interview: question 1/5 (MLOps and production)")
