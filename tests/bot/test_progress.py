"""Progress, practice, streaks and privacy, through the core and through `mlbot ask`."""
from __future__ import annotations

import asyncio
import datetime as dt
import inspect
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bot.commands import CommandSpec, Registry
from bot.core import Core
from bot.handlers import build_registry
from bot.messages import Message
from bot.replies import Reply, render_text
from bot.store import Store, open_store
from bot.streaks import weekly_streak


async def test_done_then_progress_and_next(ask) -> None:
    assert "Marked done: Python fundamentals" in await ask("done with python fundamentals")
    text = await ask("progress")
    assert "[x] Python fundamentals" in text and "[ ] Statistics and linear algebra" in text
    nxt = await ask("next")
    assert "Next: Statistics and linear algebra" in nxt and "This week" in nxt


async def test_free_text_course_done_and_undo(ask) -> None:
    text = await ask("I finished the regression course")
    if text.startswith("Did you mean"):  # close to `course`: one choice marks it done
        assert "Mark a path step or course done. (done regression course)" in text
        text = await ask("done regression course")
    assert "Marked done: Machine Learning: Regression" in text
    assert "Machine Learning: Regression" in await ask("progress")
    assert "Unmarked" in await ask("undo regression course")


async def test_next_names_the_course_that_serves_the_step(ask) -> None:
    await ask("done python fundamentals")
    await ask("done statistics and linear algebra")
    text = await ask("next")
    assert "Core ML algorithms" in text and "Structuring Machine Learning Projects" in text


async def test_ambiguous_item_asks_which(ask_reply) -> None:
    reply = await ask_reply("done production")
    assert "Which one" in reply.text and len(reply.actions) == 2


async def test_typo_item_resolves(ask) -> None:
    assert "Marked done: Deep learning" in await ask("done deep lerning")


async def test_personal_replies_are_ephemeral(ask_reply) -> None:
    for text in ("progress", "next", "practice", "mydata", "streak"):
        assert (await ask_reply(text)).ephemeral, text
    assert not (await ask_reply("salary")).ephemeral


async def test_practice_reveal_grade_and_double_click(ask_reply, clock) -> None:
    card = await ask_reply("practice sql")
    assert card.text.endswith("?") and card.actions[0].command.startswith("reveal ")
    qid = card.actions[0].command.split()[1]
    revealed = await ask_reply(card.actions[0].command)
    assert [a.label for a in revealed.actions] == ["Again", "Hard", "Good", "Easy"]
    graded = await ask_reply(f"grade good {qid}")
    assert "again in 2 days, on " in graded.text
    second_click = await ask_reply(f"grade good {qid}")
    assert "already graded" in second_click.text and second_click.ephemeral


async def test_grade_without_a_card_says_how_to_get_one(ask) -> None:
    assert "Say `practice`" in await ask("grade good")


async def test_due_weak_cards_come_first(ask_reply, clock) -> None:
    first = await ask_reply("practice sql")
    qid = first.actions[0].command.split()[1]
    await ask_reply("reveal")
    await ask_reply("again")
    clock.advance(days=1, minutes=1)
    again = await ask_reply("practice sql")
    assert again.actions[0].command == f"reveal {qid}" and "due for review" in again.title


async def test_current_card_survives_a_restart(content, store, clock, tmp_path) -> None:
    from bot.core import Core
    from bot.messages import Message
    from bot.store import open_store

    card = await Core(content, store=store, clock=clock).handle(Message("console", "r", "practice"))
    async with open_store(store.path) as reopened:
        revealed = await Core(content, store=reopened, clock=clock).handle(Message("console", "r", "reveal"))
    assert revealed.title == card.text


async def test_quiz_me_on_a_concept_gives_a_card_tagged_with_it(ask_reply, content) -> None:
    for text, tag in (("quiz me on docker", "docker"), ("can you quiz me on concept drift", "drift")):
        card = await ask_reply(text)
        question = next(q for q in content.questions.values() if q.question == card.text)
        assert tag in question.tags, (text, question.id)


async def test_practice_on_an_unknown_topic_says_so_and_lists_the_topics(ask_reply, content) -> None:
    for text in ("practice kubernetes", "quiz me on kubernetes"):
        reply = await ask_reply(text)
        assert "no practice cards on \u201ckubernetes\u201d" in reply.text
        assert {a.command for a in reply.actions} == {f"practice {t}" for t in content.topics}


async def test_help_practice_lists_the_topics(ask, content) -> None:
    text = await ask("help practice")
    assert all(t in text for t in content.topics)


async def test_practice_stats_by_topic(ask) -> None:
    await ask("practice sql")
    await ask("reveal")
    await ask("good")
    text = await ask("practice stats")
    assert "SQL" in text and "1 of" in text and "retention 100%" in text


async def test_a_new_card_graded_easy_comes_back_later_than_good_later_than_hard(ask_reply, store, clock) -> None:
    """FSRS: each grade of a new card gives its own first interval (SM-2 gave hard, good and easy one day each)."""
    due = {}
    for grade in ("hard", "good", "easy"):
        card = await ask_reply("practice sql", user=grade)
        await ask_reply("reveal", user=grade)
        graded = await ask_reply(grade, user=grade)
        assert f"Graded {grade}. You'll see this card again in " in graded.text
        (state,) = (await store.cards(f"console:{grade}")).values()
        assert card.actions[0].command == f"reveal {state.question_id}"
        due[grade] = state.due_at
    assert clock() < due["hard"] < due["good"] < due["easy"]
    assert due["hard"] - clock() < dt.timedelta(days=1) <= due["good"] - clock()


async def test_hard_on_a_new_card_brings_it_back_in_the_session(ask, ask_reply, clock) -> None:
    await ask("practice sql")
    await ask("reveal")
    assert "again in 15 minutes (at 10:15) if you keep practising" in await ask("hard")
    clock.advance(minutes=16)
    assert "(due for review)" in (await ask_reply("practice sql")).title


async def test_practice_stats_counts_cards_due_this_week(ask, clock) -> None:
    for grade in ("good", "easy"):  # due in 2 days, then 8
        await ask("practice sql")
        await ask("reveal")
        await ask(grade)
    text = await ask("practice stats")
    assert "1 card(s) due this week (the next 7 days), 0 of them now, retention 100%." in text
    assert "2 of " in text and "0 due now, 1 due this week, retention 100%" in text
    clock.advance(days=3)  # the easy card is 5 days off now
    assert "2 card(s) due this week (the next 7 days), 1 of them now" in await ask("practice stats")
    clock.advance(days=5)
    assert "2 card(s) due this week (the next 7 days), 2 of them now" in await ask("practice stats")


async def test_streak_counts_iso_weeks(ask, clock) -> None:
    await ask("done python fundamentals")
    clock.advance(days=7)
    await ask("done deep learning")
    assert "2 week(s) in a row" in await ask("streak")
    clock.advance(days=14)
    assert "No streak yet" in await ask("streak")


def test_streak_uses_the_member_timezone_across_dst() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    # Sunday 2026-03-29 is the spring DST change in Berlin. 23:30 UTC on Sunday is
    # already Monday 01:30 in Berlin (a new ISO week there, the same week in UTC).
    sunday_utc = dt.datetime(2026, 3, 29, 23, 30, tzinfo=dt.timezone.utc)
    earlier = dt.datetime(2026, 3, 25, 12, 0, tzinfo=dt.timezone.utc)
    now = dt.datetime(2026, 3, 31, 12, 0, tzinfo=dt.timezone.utc)
    assert weekly_streak([earlier, sunday_utc], berlin, now) == 2
    assert weekly_streak([earlier, sunday_utc], ZoneInfo("UTC"), now) == 1
    # Autumn change (2026-10-25): a week of 169 hours still counts once.
    oct_dates = [dt.datetime(2026, 10, d, 12, tzinfo=dt.timezone.utc) for d in (20, 26)]
    assert weekly_streak(oct_dates, berlin, dt.datetime(2026, 10, 27, tzinfo=dt.timezone.utc)) == 2


async def test_mydata_is_json_of_everything(ask_reply) -> None:
    await ask_reply("done python fundamentals")
    reply = await ask_reply("mydata")
    data = json.loads(reply.text)
    assert data["progress"][0]["item_id"] == "python-fundamentals" and reply.ephemeral


async def test_forget_me_asks_first(ask) -> None:
    await ask("done python fundamentals")
    assert "Reply `yes`" in await ask("forget me")
    assert "nothing was deleted" in await ask("no")
    assert "[x] Python fundamentals" in await ask("progress")


async def test_forget_yes_in_one_go_only_asks(ask) -> None:
    """Confirmation is a separate step by the same member; the button then deletes."""
    await ask("done python fundamentals")
    assert "Reply `yes`" in await ask("forget me yes", user="bob")
    assert "Reply `yes`" in await ask("forget yes")
    assert "[x] Python fundamentals" in await ask("progress")  # and a reply that isn't yes cancels
    assert "Reply `yes`" in await ask("forget yes")
    assert "deleted everything" in await ask("forget yes")  # the button under the question
    assert "[ ] Python fundamentals" in await ask("progress")


async def test_the_keep_it_button_answers_the_question(ask) -> None:
    """After "No, keep it" (`forget no`), a later "yes" is not a confirmation."""
    await ask("done python fundamentals")
    assert "Reply `yes`" in await ask("forget me")
    assert "nothing was deleted" in await ask("forget no")
    assert "deleted everything" not in await ask("yes")
    assert "[x] Python fundamentals" in await ask("progress")


async def test_admin_commands(ask) -> None:
    await ask("flurble wibble zonk", user="u1")
    await ask("Flurble  wibble   ZONK", user="u2")
    assert "admins only" in await ask("unanswered")
    text = await ask("unanswered", is_admin=True)
    assert '2x "flurble wibble zonk"' in text and "u1" not in text
    stats = await ask("stats", is_admin=True)
    assert "Members" in stats and "Top commands" in stats


async def test_renamed_step_keeps_progress(content, store, clock) -> None:
    """Progress stored under an old step id shows under the step that replaced it."""
    import dataclasses

    from bot.handlers.progress import visible_done

    step = content.path_steps["python-fundamentals"]
    renamed = dataclasses.replace(content, path_steps={**content.path_steps, "python-fundamentals": dataclasses.replace(step, renamed_from=("python-basics",))})
    steps, _ = visible_done(renamed, {"step": {"python-basics": clock()}, "course": {"gone-course": clock()}})
    assert steps == ["python-fundamentals"]


def _renamed_core(content, store, clock):
    """A core whose python-fundamentals step was once called python-basics."""
    import dataclasses
    import random

    from bot.core import Core

    step = content.path_steps["python-fundamentals"]
    renamed = dataclasses.replace(content, path_steps={**content.path_steps, "python-fundamentals": dataclasses.replace(step, renamed_from=("python-basics",))})
    return Core(renamed, store=store, clock=clock, rng=random.Random(7))


async def test_undo_by_new_id_removes_the_row_stored_under_the_old_id(content, store, clock) -> None:
    from bot.messages import Message

    core = _renamed_core(content, store, clock)
    await store.mark_done("console:alice", "step", "python-basics", clock())
    reply = await core.handle(Message("console", "alice", "undo python-fundamentals"))
    assert "Unmarked: Python fundamentals" in reply.text
    assert (await store.done_items("console:alice")).get("step", {}) == {}


async def test_done_by_new_id_after_old_id_adds_no_second_row(content, store, clock) -> None:
    from bot.messages import Message

    core = _renamed_core(content, store, clock)
    await store.mark_done("console:alice", "step", "python-basics", clock())
    reply = await core.handle(Message("console", "alice", "done python-fundamentals"))
    assert "already marked done" in reply.text
    assert list((await store.done_items("console:alice"))["step"]) == ["python-basics"]
    assert "Unmarked" in (await core.handle(Message("console", "alice", "undo python-fundamentals"))).text
    assert "[ ] Python fundamentals" in render_text(await core.handle(Message("console", "alice", "progress")))


def _mlbot(db: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, MLBOT_DB=str(db))
    return subprocess.run([sys.executable, "-m", "mlbot", "ask", *args], input=stdin, capture_output=True, text=True, env=env, timeout=60)


def test_cli_contract_across_processes(tmp_path: Path) -> None:
    db = tmp_path / "cli.sqlite3"
    assert "Marked done" in _mlbot(db, "--user", "U", "done python fundamentals").stdout
    assert "[x] Python fundamentals" in _mlbot(db, "--user", "U", "progress").stdout
    assert "Reply `yes`" in _mlbot(db, "--user", "U", "forget me").stdout
    assert "deleted everything" in _mlbot(db, "--user", "U", "yes").stdout
    assert "[ ] Python fundamentals" in _mlbot(db, "--user", "U", "progress").stdout


def test_ask_stdin_json_keeps_conversation_state(tmp_path: Path) -> None:
    run = _mlbot(tmp_path / "s.sqlite3", "--user", "V", "-", stdin="practice sql\nreveal\ngood\nsalary senior\n")
    rows = [json.loads(line) for line in run.stdout.splitlines()]
    assert [r["command"] for r in rows] == ["practice", "reveal", "grade", "salary"]
    assert all({"query", "command", "text", "sources"} <= set(r) for r in rows)
    assert "220,000" in rows[3]["text"] and rows[3]["sources"]


def test_bad_database_is_a_sentence_not_a_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.sqlite3"
    bad.write_text("garbage " * 200)
    run = _mlbot(bad, "progress")
    assert run.returncode == 1 and "is not a SQLite database" in run.stderr and "Traceback" not in run.stderr


async def test_home_shows_progress_next_step_and_nudge_setting(ask) -> None:
    await ask("done python fundamentals")
    assert "Weekly study nudge:\nOff" in await ask("home")
    await ask("nudge on monday 9am Europe/Berlin")
    home = await ask("home")
    assert "1 of 6 steps done" in home and "Statistics and linear algebra" in home
    assert "On, every Monday at 09:00 (Europe/Berlin)" in home


async def test_unanswered_questions_are_the_members_until_forgotten(ask, ask_reply) -> None:
    """`mydata` shows the questions the bot couldn't answer the member; after `forget me`
    one only they asked is off the admin list, and a shared one counts one less."""
    await ask("Flurble wibble zonk")
    await ask("flurble  wibble zonk", user="bob")
    await ask("quibbly snorf gallump")
    data = json.loads((await ask_reply("mydata")).text)
    assert sorted(a["question"] for a in data["unanswered_asks"]) == ["flurble wibble zonk", "quibbly snorf gallump"]
    admin = await ask("unanswered", is_admin=True, user="admin")
    assert '2x "flurble wibble zonk"' in admin and "quibbly snorf gallump" in admin
    assert "alice" not in admin and "bob" not in admin
    await ask("forget me")
    assert "Nothing of yours is left" in await ask("yes")
    admin = await ask("unanswered", is_admin=True, user="admin")
    assert '1x "flurble wibble zonk"' in admin and "quibbly" not in admin
    assert json.loads((await ask_reply("mydata")).text)["unanswered_asks"] == []
    assert json.loads((await ask_reply("mydata", user="bob")).text)["unanswered_asks"][0]["question"] == "flurble wibble zonk"


def _data(db: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, MLBOT_DB=str(db))
    return subprocess.run([sys.executable, "-m", "mlbot", "data", *args], capture_output=True, text=True, env=env, timeout=60)


async def test_data_export_is_mydata_and_delete_is_forget(tmp_path: Path, content, clock) -> None:
    """`mlbot data export|delete --user ID`, for requests by e-mail, on a SQLite file."""
    from bot.core import Core
    from bot.messages import Message
    from bot.store import open_store

    db = tmp_path / "data.sqlite3"
    async with open_store(str(db)) as store:
        core = Core(content, store=store, clock=clock, train_now=False)
        for user, text in (("W", "done python fundamentals"), ("W", "flurble wibble zonk"), ("X", "flurble wibble zonk")):
            await core.handle(Message("console", user, text))
        mydata = (await core.handle(Message("console", "W", "mydata"))).text
    export = _data(db, "export", "--user", "W")
    assert export.returncode == 0 and json.loads(export.stdout) == json.loads(mydata)
    assert [a["question"] for a in json.loads(export.stdout)["unanswered_asks"]] == ["flurble wibble zonk"]

    delete = _data(db, "delete", "--user", "W")
    assert (delete.returncode, delete.stdout) == (0, "Deleted 5 records of console:W.\n")  # progress, 2 commands, 1 ask, the member
    for command in ("export", "delete"):
        gone = _data(db, command, "--user", "W")
        assert (gone.returncode, gone.stdout) == (1, "") and "No member with user id W" in gone.stderr
    assert '1x "flurble wibble zonk"' in _mlbot(db, "--admin", "unanswered").stdout


async def test_data_commands_pick_the_platform(tmp_path: Path, clock) -> None:
    from bot.store import open_store

    db = tmp_path / "data.sqlite3"
    async with open_store(str(db)) as store:
        for key in ("discord:42", "slack:T1:42"):
            await store.mark_done(key, "step", "python-fundamentals", clock())
    both = _data(db, "export", "--user", "42")
    assert both.returncode == 1 and "discord:42, slack:T1:42" in both.stderr and "--platform" in both.stderr
    slack = _data(db, "export", "--user", "42", "--platform", "slack")
    assert slack.returncode == 0 and json.loads(slack.stdout)["members"][0]["user_id"] == "T1:42"
    assert _data(db, "delete", "--user", "T1:42").stdout == "Deleted 2 records of slack:T1:42.\n"
    assert _data(db, "export", "--user", "42").returncode == 0  # only Discord's is left
    assert "No member with user id 42 on slack" in _data(db, "delete", "--user", "42", "--platform", "slack").stderr
    missing = _data(tmp_path / "none.sqlite3", "export", "--user", "42")
    assert missing.returncode == 1 and "There is no database at" in missing.stderr and not (tmp_path / "none.sqlite3").exists()


# --- a message's trip: one read, one transaction ----------------------------------------------


class _CallLog:
    """The real store, logging which of its public methods a message calls."""

    def __init__(self, store: Store) -> None:
        self.store, self.calls = store, []

    def __getattr__(self, name: str):
        value = getattr(self.store, name)
        if name.startswith("_") or not inspect.iscoroutinefunction(value):
            return value

        async def logged(*args, **kwargs):
            self.calls.append(name)
            return await value(*args, **kwargs)

        return logged


async def _visits_of(store: Store, core: Core, message: Message) -> tuple[int, int]:
    """The reads and transactions the store made for one message."""
    reads, transactions = store.visits.reads, store.visits.transactions
    await core.handle(message)
    return store.visits.reads - reads, store.visits.transactions - transactions


async def test_a_plain_question_costs_one_read_and_one_write(content, store, clock) -> None:
    logged = _CallLog(store)
    core = Core(content, store=logged, clock=clock)
    for text in ("salary senior", "Flurble wibble zonk"):  # a command, then one the bot can't answer
        logged.calls = []
        assert await _visits_of(store, core, Message("console", "alice", text)) == (1, 1), text
        assert logged.calls == ["member_context", "record_message"], text


async def test_done_and_its_usage_are_one_transaction(content, store, clock) -> None:
    """The handler's reads and its write join the message's transaction."""
    core = Core(content, store=store, clock=clock)
    assert await _visits_of(store, core, Message("console", "alice", "done python fundamentals")) == (1, 1)
    data = await store.export("console:alice")
    assert [r["command"] for r in data["command_log"]] == ["done"] and [r["item_id"] for r in data["progress"]] == ["python-fundamentals"]


def _with_broken_command() -> Registry:
    """The real commands, and `broken`, which saves a step done and then fails."""

    async def broken(req) -> Reply:
        await req.store.mark_done(req.member, "step", "python-fundamentals", req.now)
        for _ in range(5):  # let a message handled meanwhile run on
            await asyncio.sleep(0)
        raise RuntimeError("the handler broke after its write")

    registry = build_registry()
    registry.add(CommandSpec("broken", "Saves, then breaks.", broken, personal=True, needs_store=True))
    return registry


async def test_a_handler_that_fails_leaves_nothing_of_the_message(content, store, clock) -> None:
    """No usage row and no change for a command that broke: the member gets the apology."""
    core = Core(content, store=store, clock=clock, registry=_with_broken_command())
    reply = await core.handle(Message("console", "new", command="broken"))
    assert reply.command == "error" and "error id" in reply.text
    assert await store.export("console:new") == {}  # not even the member row the message made
    await core.handle(Message("console", "alice", "salary senior"))
    assert (await core.handle(Message("console", "alice", command="broken"))).command == "error"
    data = await store.export("console:alice")
    assert [r["command"] for r in data["command_log"]] == ["salary"] and data["progress"] == []


async def test_two_members_at_once_keep_their_own_transactions(content, store, clock) -> None:
    """Alice's command fails while Bob's `done` is handled: his lands, nothing of hers does."""
    core = Core(content, store=store, clock=clock, registry=_with_broken_command())
    hers, his = await asyncio.gather(
        core.handle(Message("console", "alice", command="broken")), core.handle(Message("console", "bob", "done python fundamentals"))
    )
    assert hers.command == "error" and "Marked done: Python fundamentals" in his.text
    assert await store.export("console:alice") == {}
    assert [r["item_id"] for r in (await store.export("console:bob"))["progress"]] == ["python-fundamentals"]


async def test_a_read_only_database_answers_salary_when_the_usage_write_fails(
    tmp_path: Path, content, clock, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "ro.sqlite3"
    async with open_store(str(path)):
        pass
    async with open_store(f"file:{path}?mode=ro") as store:
        store.read_only = False  # not known to refuse writes: the usage write is tried, and fails
        reply = await Core(content, store=store, clock=clock).handle(Message("console", "alice", "salary senior"))
    assert reply.command == "salary" and "$180,000" in render_text(reply)
    assert [r for r in caplog.records if r.levelname == "WARNING" and "could not record" in r.getMessage()]
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT COUNT(*) FROM command_log").fetchone()[0] == 0
