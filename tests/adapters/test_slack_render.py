"""The Slack adapter's pure parts: Block Kit rendering, text conversion, to_message, dedupe."""
from __future__ import annotations

import re

import pytest

from adapters.slack_app import MemoryDeduper, Profile, to_message
from adapters.slack_render import (
    BUTTON_LABEL_LIMIT,
    HEADER_LIMIT,
    MAX_BLOCKS,
    MAX_HOME_BLOCKS,
    SECTION_LIMIT,
    escape,
    plain_text,
    render,
    render_home,
)
from bot.content import load_content
from bot.core import Core
from bot.messages import Message
from bot.replies import Action, Field, Reply

PINGS = re.compile(r"<[!@#]")


def assert_within_limits(message: dict) -> None:
    assert message["text"].strip(), "every message needs a notification fallback"
    assert len(message["blocks"]) <= MAX_BLOCKS
    action_ids = []
    for block in message["blocks"]:
        if block["type"] == "header":
            assert len(block["text"]["text"]) <= HEADER_LIMIT
        elif block["type"] == "section":
            assert 0 < len(block["text"]["text"]) <= SECTION_LIMIT
        elif block["type"] == "context":
            assert all(len(e["text"]) <= 2000 for e in block["elements"])
        elif block["type"] == "actions":
            assert len(block["elements"]) <= 25
            for button in block["elements"]:
                assert len(button["text"]["text"]) <= BUTTON_LABEL_LIMIT
                assert len(button["value"]) <= 2000  # Slack refuses the whole message otherwise
                action_ids.append(button["action_id"])
    assert len(action_ids) == len(set(action_ids))


def mrkdwn_texts(messages: list[dict]) -> list[str]:
    texts = [m["text"] for m in messages]
    for m in messages:
        for block in m["blocks"]:
            if block["type"] == "section":
                texts.append(block["text"]["text"])
            elif block["type"] == "context":
                texts.extend(e["text"] for e in block["elements"])
    return texts


def test_escape_neutralises_pings_and_links():
    """Nothing a member or the content says can become a broadcast, a ping or a link."""
    out = escape("<!channel> <!here|here> <@U123> <https://evil|click> A & B @everyone")
    assert not PINGS.search(out)
    assert "&lt;!channel&gt;" in out and "A &amp; B" in out
    assert "@everyone" not in out and "@\u2060everyone" in out


@pytest.mark.parametrize(
    "slack, plain",
    [
        ("<@UBOT> what do senior ML engineers earn in Europe?", "what do senior ML engineers earn in Europe?"),
        ("<@UBOT>   salary  senior europe ", "salary senior europe"),
        ("ask <@U9|ann> and <!channel> about <#C1|general>", "ask @ann and @channel about #general"),
        ("see <https://example.com|the guide> or <mailto:a@b.c>", "see the guide or a@b.c"),
        ("<!subteam^S1|@mlteam> R &amp; D &lt;3", "@mlteam R & D <3"),
    ],
)
def test_plain_text_reads_slack_markup_as_words(slack, plain):
    """The router gets the sentence the member wrote, without the bot's mention or markup."""
    assert plain_text(slack, "UBOT") == plain


def test_salary_reply_renders_header_text_fields_and_sources():
    """A factual reply shows its title, figures and a Sources line."""
    reply = Reply(
        title="Senior salaries: Europe",
        text="Europe runs 30-50% lower.",
        fields=(Field("Senior", "$180,000-$220,000+"),),
        sources=("Article A", "Article B"),
    )
    [message] = render(reply)
    assert_within_limits(message)
    kinds = [b["type"] for b in message["blocks"]]
    assert kinds == ["header", "section", "section", "context"]
    assert message["text"] == "Senior salaries: Europe"
    assert "*Senior*\n$180,000-$220,000+" in message["blocks"][2]["text"]["text"]
    assert message["blocks"][-1]["elements"][0]["text"] == "Sources: Article A; Article B"


def test_very_long_reply_is_split_at_sentences_within_limits():
    """A huge answer becomes several messages, each within Slack's limits, none cut mid-sentence."""
    sentences = [f"Sentence number {i} explains one more thing about ML careers." for i in range(3000)]
    reply = Reply(
        title="A" * 200,
        text=" ".join(sentences),
        items=tuple(f"Item {i}: " + "word " * 40 for i in range(200)),
        actions=tuple(Action(f"Button {i} " + "x" * 100, f"done step-{i}") for i in range(30)),
        sources=("Article A",),
    )
    messages = render(reply)
    assert len(messages) > 1
    for message in messages:
        assert_within_limits(message)
    assert [m["text"].endswith(f"({n}/{len(messages)})") for n, m in enumerate(messages, 1)] == [True] * len(messages)
    sections = [b["text"]["text"] for m in messages for b in m["blocks"] if b["type"] == "section"]
    text_chunks = [s for s in sections if s.startswith("Sentence")]
    assert all(chunk.endswith("careers.") for chunk in text_chunks)
    assert " ".join(text_chunks) == " ".join(sentences)
    last = messages[-1]["blocks"]
    assert any(b["type"] == "context" and "Article A" in b["elements"][0]["text"] for b in last)
    buttons = [e for b in last if b["type"] == "actions" for e in b["elements"]]
    assert [b["value"] for b in buttons] == [f"done step-{i}" for i in range(30)]
    assert len({b["action_id"] for b in buttons}) == 30
    assert sections[0] == "*" + "A" * 200 + "*"  # too long for a header: shown whole in a section


def test_member_and_content_text_is_escaped_everywhere():
    """`<!channel>` in any part of a reply reaches Slack escaped."""
    evil = "<!channel> <@U1> & <!here>"
    reply = Reply(title=evil, text=evil, items=(evil,), fields=(Field(evil, evil),), footer=evil, sources=(evil,))
    messages = render(reply)
    for text in mrkdwn_texts(messages):
        assert not PINGS.search(text), text
    assert all(t.get("verbatim") for m in messages for b in m["blocks"] if b["type"] == "section" for t in [b["text"]])


def test_buttons_carry_the_command_and_styles():
    """Each action is a button whose value is the core command line."""
    reply = Reply(text="Q?", actions=(Action("Reveal answer", "reveal q1", "primary"), Action("Again", "grade again q1", "danger"), Action("Good", "grade good q1")))
    [message] = render(reply)
    [actions] = [b for b in message["blocks"] if b["type"] == "actions"]
    assert [(e["action_id"], e["value"], e.get("style")) for e in actions["elements"]] == [
        ("mlbot:0", "reveal q1", "primary"),
        ("mlbot:1", "grade again q1", "danger"),
        ("mlbot:2", "grade good q1", None),
    ]


def test_a_command_too_long_for_a_button_is_offered_as_text():
    """Slack refuses a message whose button value exceeds 2,000 characters. That action is
    listed as text to type (as on Discord); the other buttons stay, in order."""
    long_line = "salary " + "senior " * 300  # 2,107 characters
    fits = "faq " + "x" * 1996  # exactly 2,000: still a button
    reply = Reply(text="Pick one.", actions=(Action("Salary", "salary senior"), Action("Everything", long_line), Action("Long FAQ", fits), Action("Path", "path")))
    [message] = render(reply)
    assert_within_limits(message)
    buttons = [e for b in message["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert [b["value"] for b in buttons] == ["salary senior", fits, "path"]
    options = [b["text"]["text"] for b in message["blocks"] if b["type"] == "section" and b["text"]["text"].startswith("Options:")]
    assert options and "Everything" in options[0] and "".join(options).count("senior") == 300


def test_two_buttons_with_the_same_command_have_different_action_ids():
    """Slack refuses an actions block with a repeated action_id: ids are per position, not per command."""
    reply = Reply(text="Q?", actions=(Action("Next step", "next"), Action("Continue", "next"), Action("Next step", "next")))
    [message] = render(reply)
    assert_within_limits(message)
    [actions] = [b for b in message["blocks"] if b["type"] == "actions"]
    assert [e["value"] for e in actions["elements"]] == ["next"] * 3
    assert len({e["action_id"] for e in actions["elements"]}) == 3


def test_home_view_is_within_100_blocks_and_keeps_its_buttons():
    """App Home shows what fits and says where to read the rest."""
    reply = Reply(title="Home", items=tuple("Step. " * 600 for _ in range(120)), actions=(Action("Next", "next"),))
    view = render_home(reply)
    assert view["type"] == "home"
    assert len(view["blocks"]) <= MAX_HOME_BLOCKS
    assert view["blocks"][-1]["type"] == "actions"
    assert "send me `home`" in view["blocks"][-2]["elements"][0]["text"]


async def test_every_registry_command_renders_within_limits():
    """Each `/mlbot <command>` from the registry's examples renders as valid Block Kit."""
    core = Core(load_content())
    for spec in core.registry:
        for example in spec.examples or (spec.name,):
            reply = await core.handle(Message("slack", "T1:U2", example))
            for message in render(reply):
                assert_within_limits(message)


def test_to_message_for_mention_command_and_click():
    """All three surfaces give the same member key `slack:T1:U2`; text reaches the router clean."""
    mention = {"team_id": "T1", "event": {"type": "app_mention", "user": "U2", "text": "<@UBOT> salary senior europe"}}
    command = {"team_id": "T1", "user_id": "U2", "command": "/mlbot", "text": "practice sql"}
    click = {"type": "block_actions", "team": {"id": "T1"}, "user": {"id": "U2", "team_id": "T1"}, "actions": [{"value": "reveal q1"}]}
    profile = Profile(is_admin=True, timezone="Europe/Berlin")
    got = [to_message(body, bot_user_id="UBOT", profile=profile) for body in (mention, command, click)]
    assert [m.member_key for m in got] == ["slack:T1:U2"] * 3
    assert [m.text for m in got] == ["salary senior europe", "practice sql", "reveal q1"]
    assert all(m.is_admin and m.timezone == "Europe/Berlin" and m.command is None for m in got)


async def test_deduper_remembers_within_ttl_and_size():
    """A repeated event id is refused until it expires or is pushed out."""
    now = [0.0]
    deduper = MemoryDeduper(size=3, ttl=60, clock=lambda: now[0])
    assert await deduper.first_time("Ev1")
    assert not await deduper.first_time("Ev1")
    now[0] = 61
    assert await deduper.first_time("Ev1")
    for event in ("Ev2", "Ev3", "Ev4"):
        assert await deduper.first_time(event)
    assert await deduper.first_time("Ev1")  # the oldest was forgotten to stay within size
    assert not await deduper.first_time("Ev4")
