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
from bot.understanding import LogisticModel, Ranked, TfIdf, decide
from test_content import ROOT, content_dir, edit, problems  # noqa: F401  (fixture)

DEV = ROOT / "tests" / "data" / "dev_questions.yaml"
HELD_OUT = [DEV, ROOT / "tests" / "data" / "test_questions.yaml", ROOT / "tests" / "data" / "fresh_questions.yaml"]
# dev (tuned against), test and fresh (never looked at question by question)


@pytest.mark.parametrize("path", HELD_OUT, ids=lambda p: p.stem)
def test_held_out_questions_are_never_training_examples(content, path: Path) -> None:
    """The held-out sets measure phrasings the model never saw: no overlap after normalising."""
    held_out = {phrase(item["q"]) for item in yaml.safe_load(path.read_text())}
    examples = {phrase(e.text): intent for intent, items in content.examples().items() for e in items}
    assert len(held_out) >= 100
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


def test_a_sure_reading_that_fits_is_answered() -> None:
    """A long question scores low and close against every intent by similarity; the
    logistic model's probability says which reading is meant."""
    fits = _ranked(("salary", 0.20), ("compare", 0.19))
    assert decide(_ranked(("salary", 0.45), ("compare", 0.30)), fits).intent == "salary"


def test_two_unsure_readings_are_offered_as_choices() -> None:
    fits = _ranked(("role", 0.40), ("faq:outlook", 0.30), ("salary", 0.05))
    unsure = decide(_ranked(("faq:outlook", 0.18), ("role", 0.15), ("salary", 0.12)), fits)
    assert unsure.outcome == "clarify" and unsure.near() == ["faq:outlook", "role"]  # salary does not fit


def test_a_lone_unsure_reading_is_offered_beside_the_closest_fits() -> None:
    fits = _ranked(("role", 0.40), ("faq:outlook", 0.30))
    unsure = decide(_ranked(("faq:outlook", 0.15), ("role", 0.05)), fits)
    assert unsure.outcome == "clarify" and unsure.near() == ["faq:outlook", "role"]


def test_a_sure_reading_of_something_that_fits_nothing_is_admitted() -> None:
    """Probabilities always pick something, even for gibberish; similarity says nothing fits."""
    fits = _ranked(("scope:course-cost", 0.07), ("role", 0.04))
    assert decide(_ranked(("role", 0.95)), fits).outcome == "admit"


def test_the_logistic_model_learns_which_words_tell_intents_apart() -> None:
    """"senior" is in every example of both intents; "pay" and "day" decide."""
    weigh = TfIdf([Counter({"pay": 1, "senior": 1}), Counter({"earn": 1, "senior": 1}), Counter({"day": 1, "senior": 1})])
    rows = [("salary", {"pay": 1, "senior": 1}), ("salary", {"earn": 1, "senior": 1}), ("role", {"day": 1, "senior": 1})]
    model = LogisticModel([(intent, weigh(Counter(counts))) for intent, counts in rows], epochs=20)
    ranking = model.rank(weigh(Counter({"pay": 1, "senior": 1})))
    assert [r.intent for r in ranking] == ["salary", "role"] and ranking[0].score > 0.8
    assert model.rank(weigh(Counter({"day": 1})))[0].intent == "role"
    assert model.rank(weigh(Counter({"unknown": 1}))) == ()


def test_an_added_example_leaves_the_other_readings_alone(content) -> None:
    """Each training pass orders the examples by their own content, not their place in the
    files: an editor who adds one example changes the model around that example, not the
    answers to unrelated questions at random (a seeded shuffle flipped 3 of the dev set's
    247 top readings for any added example)."""
    router = Core(content).router
    rows = [(intent, router.features(e.text)) for intent, items in content.examples().items() for e in items]
    weigh = TfIdf([counts for _, counts in rows])
    vectors = [(intent, weigh(counts)) for intent, counts in rows]
    questions = [weigh(router.features(item["q"])) for item in yaml.safe_load(DEV.read_text())]

    def readings(model: LogisticModel) -> list[str]:
        return [next(iter(model.rank(q)), Ranked("", 0.0)).intent for q in questions]

    before = readings(LogisticModel(vectors))
    added = vectors[: len(vectors) // 2] + [("scope:age", weigh(router.features("am I too old to start at 52")))] + vectors[len(vectors) // 2 :]
    after = readings(LogisticModel(added))
    assert sum(a != b for a, b in zip(before, after)) <= 1
