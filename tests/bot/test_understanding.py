"""What members type is understood from the examples in content, checked like any content,
and kept apart from the held-out dev set."""
from __future__ import annotations

import io
from collections import Counter
from pathlib import Path

import pytest
import yaml

from adapters.console import chat
from bot.core import Core
from bot.messages import Message
from bot.text import phrase
from bot.understanding import BayesModel, Ranked, decide
from test_content import ROOT, content_dir, edit, problems  # noqa: F401  (fixture)

DEV = ROOT / "tests" / "data" / "dev_questions.yaml"
HELD_OUT = [DEV, ROOT / "tests" / "data" / "test_questions.yaml"]  # dev (tuned against) and test (never looked at)


@pytest.mark.parametrize("path", HELD_OUT, ids=lambda p: p.stem)
def test_held_out_questions_are_never_training_examples(content, path: Path) -> None:
    """The held-out sets measure phrasings the model never saw: no overlap after normalising."""
    held_out = {phrase(item["q"]) for item in yaml.safe_load(path.read_text())}
    examples = {phrase(e.text): intent for intent, items in content.examples().items() for e in items}
    assert len(held_out) >= 150
    assert not held_out & set(examples), sorted(held_out & set(examples))[:5]


@pytest.mark.parametrize("path", HELD_OUT, ids=lambda p: p.stem)
def test_held_out_questions_name_known_intents(content, path: Path) -> None:
    known = set(content.examples())
    unknown = [item["intent"] for item in yaml.safe_load(path.read_text()) if item["intent"] not in known]
    assert not unknown


def test_every_intent_has_enough_varied_examples(content) -> None:
    for intent, examples in content.examples().items():
        assert len(examples) >= 8, intent


def test_same_example_under_two_intents_is_a_file_line_error(content, content_dir: Path) -> None:  # noqa: F811
    taken = content.faqs["degree"].examples[0]
    line = edit(content_dir / "intents.yaml", '      - "median pay for machine learning engineers"', f'      - "{taken.text}"')
    wanted = f"content/faq.yaml:{taken.line}: example \"{taken.text}\" is also an example of 'salary' (content/intents.yaml:{line})"
    found = problems(content_dir)
    assert any(p.startswith(wanted) for p in found), found


def test_too_few_examples_is_a_file_line_error(content_dir: Path) -> None:  # noqa: F811
    path = content_dir / "scope.yaml"
    data = path.read_text()
    start = data.index("    examples:", data.index("- id: visa"))
    end = data.index("\n  - id:", start)
    path.write_text(data[:start] + '    examples: ["visa?", "work permit?"]' + data[end:])
    line = data[:start].count("\n") + 1
    assert f"content/scope.yaml:{line}: expected at least 8 item(s), got 2" in problems(content_dir)


def test_function_word_alias_is_a_file_line_error(content_dir: Path) -> None:  # noqa: F811
    line = edit(content_dir / "courses.yaml", "aliases: [software engineer,", "aliases: [it, software engineer,")
    found = problems(content_dir)
    assert any(p.startswith(f"content/courses.yaml:{line}: alias 'it' is a common function word") for p in found), found


def test_unknown_command_intent_is_a_file_line_error(content_dir: Path) -> None:  # noqa: F811
    from bot.content import ContentError, load_content
    from bot.handlers import build_registry

    line = edit(content_dir / "intents.yaml", "  - command: sources", "  - command: sauces")
    with pytest.raises(ContentError) as info:
        load_content(content_dir, commands={s.name for s in build_registry()})
    assert any(str(p).startswith(f"content/intents.yaml:{line}: unknown command 'sauces'") for p in info.value.problems)


def test_function_words_are_never_corrected_into_content(content) -> None:
    """"it" is not the IT background and "worth it" is not a topic: only real slips are fixed."""
    router = Core(content).router
    assert router.normalise("how long does it take") == ["how", "long", "does", "it", "take"]
    assert router.normalise("salery roadmpa intervew") == ["salary", "roadmap", "interview"]
    assert router.normalise("median") == ["median"]
    found, _ = router.entities(router.normalise("how long does it take a complete beginner"))
    assert [e.id for e in found if e.kind == "background"] == ["from-scratch"]


@pytest.mark.parametrize(("text", "intent"), [
    ("thanks!", "smalltalk:thanks"),
    ("ok", "smalltalk:ack"),
    ("can you sponsor my work visa", "scope:visa"),
    ("how much does the coursera regression course cost", "scope:course-cost"),
])
def test_small_talk_and_scope_are_intents(content, text: str, intent: str) -> None:
    router = Core(content).router
    route = router.route(text)
    kind, _, ident = intent.partition(":")
    assert route.command == kind and ident in route.args.values(), route


async def test_thanks_gets_one_line_not_the_help(content) -> None:
    reply = await Core(content).handle(Message("console", "ada", "thank you!"))
    assert reply.command == "smalltalk" and "\n" not in reply.text and not reply.fields


async def test_out_of_scope_says_so_and_offers_working_choices(content) -> None:
    core = Core(content)
    reply = await core.handle(Message("console", "ada", "will a company sponsor my visa if I'm an ML engineer?"))
    assert "don't cover" in reply.text and reply.actions
    for action in reply.actions:  # every offered choice answers when pressed
        answer = await core.handle(Message("console", "ada", action.command))
        assert answer.command not in ("fallback", "clarify", "error"), (action, answer.command)


async def test_clarify_choices_are_buttons_that_answer(content) -> None:
    """Two close readings: up to three choices, each a command line that answers."""
    from bot.handlers import clarify
    from bot.understanding import Decision, Ranked

    core = Core(content)
    found, _ = core.router.entities(core.router.normalise("senior salary in europe, or the path"))
    decision = Decision("clarify", (Ranked("salary", 0.3), Ranked("faq:languages", 0.29), Ranked("path", 0.28)))
    reply = clarify(core, core.router.from_decision(decision, tuple(found)))
    assert [a.command.split()[0] for a in reply.actions] == ["salary", "faq", "path"]
    assert reply.actions[1].label == content.faqs["languages"].question
    answers = [await core.handle(Message("console", "ada", a.command)) for a in reply.actions]
    assert [a.command for a in answers] == ["salary", "faq", "path"]
    assert "Senior" in answers[0].title and "Europe" in answers[0].title  # the slots ride along


async def test_console_takes_a_number_for_an_offered_choice(content) -> None:
    core = Core(content)
    first = await core.handle(Message("console", "ada", "can you sponsor my work visa"))
    stdin = io.StringIO("can you sponsor my work visa\n1\n")
    out = io.StringIO()
    await chat(core, "ada", stdin=stdin, stdout=out)
    expected = await core.handle(Message("console", "ada", first.actions[0].command))
    assert "1. " in out.getvalue() and expected.title in out.getvalue().split("Options:")[-1]


async def test_salary_names_what_the_articles_do_not_cover(content) -> None:
    core = Core(content)
    sydney = await core.handle(Message("console", "ada", "ml engineer salary in sydney"))
    assert sydney.command == "salary" and "no figures for Sydney" in sydney.text
    ds = await core.handle(Message("console", "ada", "how much does a data scientist earn"))
    assert ds.command == "salary" and "no salary figures for data scientist" in ds.text


def _ranked(*pairs: tuple[str, float]) -> tuple[Ranked, ...]:
    return tuple(Ranked(intent, score) for intent, score in pairs)


def test_two_models_agreeing_answer_a_close_call() -> None:
    """A long question scores low and close against every intent; when naive Bayes reads it
    the same way as the similarity ranking, the bot answers instead of asking back."""
    ranking = _ranked(("salary", 0.20), ("compare", 0.19))
    assert decide(ranking).outcome == "clarify"
    assert decide(ranking, _ranked(("salary", 0.7), ("compare", 0.2))).intent == "salary"


def test_a_firm_second_opinion_turns_an_answer_into_a_question_offering_both() -> None:
    ranking = _ranked(("role", 0.40), ("faq:outlook", 0.30), ("salary", 0.05))
    assert decide(ranking).intent == "role"
    doubted = decide(ranking, _ranked(("faq:outlook", 0.95), ("role", 0.04)))
    assert doubted.outcome == "clarify" and doubted.near()[:2] == ["role", "faq:outlook"]
    assert decide(ranking, _ranked(("faq:outlook", 0.6), ("role", 0.3))).intent == "role"  # not firm: the lead stands


def test_a_far_fetched_second_opinion_is_not_offered() -> None:
    """Bayes picks something even for gibberish; a reading the ranking barely scores is no choice to offer."""
    ranking = _ranked(("scope:course-cost", 0.13), ("role", 0.04))
    assert decide(ranking, _ranked(("role", 0.95))).outcome == "admit"


def test_naive_bayes_prefers_the_intent_whose_examples_share_the_words() -> None:
    model = BayesModel([("salary", Counter({"pay": 1, "senior": 1})), ("salary", Counter({"earn": 1})), ("role", Counter({"day": 1, "job": 1}))])
    ranking = model.rank(Counter({"pay": 1, "senior": 1, "job": 1, "senior job": 1}))
    assert [r.intent for r in ranking] == ["salary", "role"]
    assert abs(sum(r.score for r in ranking) - 1.0) < 0.01
    assert model.rank(Counter({"unknown": 1})) == ()
