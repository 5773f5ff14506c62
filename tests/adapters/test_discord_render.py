"""Reply -> embeds/buttons and registry -> slash commands, without a network."""
from __future__ import annotations

import re

import pytest

from adapters import discord_render as limits
from adapters.discord_commands import (
    MANAGE_GUILD,
    choice_payloads,
    command_payloads,
    focused_option,
    mention_text,
    payload_hash,
    to_message,
)
from adapters.discord_render import Page, custom_id, render
from bot.commands import Choice, CommandSpec, Param
from bot.content import load_content
from bot.core import Core
from bot.handlers.knowledge import help_reply
from bot.replies import Action, Field, Reply


@pytest.fixture(scope="module")
def core() -> Core:
    return Core(load_content())


def sentences(n: int, prefix: str) -> str:
    return " ".join(f"{prefix} sentence number {i} says something useful about careers in machine learning." for i in range(n))


def assert_within_limits(pages: list[Page]) -> None:
    for page in pages:
        assert 1 <= len(page.embeds) <= limits.EMBEDS
        assert sum(len(e) for e in page.embeds) <= limits.EMBED_TOTAL
        for embed in page.embeds:
            d = embed.to_dict()
            assert len(d.get("title", "")) <= limits.TITLE
            assert len(d.get("description", "")) <= limits.DESCRIPTION
            assert len(d.get("fields", [])) <= limits.FIELDS
            for f in d.get("fields", []):
                assert 1 <= len(f["name"]) <= limits.FIELD_NAME and 1 <= len(f["value"]) <= limits.FIELD_VALUE
            assert len(d.get("footer", {}).get("text", "")) <= limits.FOOTER
            assert d.get("title") or d.get("description") or d.get("fields")
        assert len(page.actions) <= limits.BUTTONS


def all_text(pages: list[Page]) -> str:
    parts = []
    for page in pages:
        for embed in page.embeds:
            d = embed.to_dict()
            parts += [d.get("title", ""), d.get("description", "")]
            parts += [f"{f['name']}\n{f['value']}" for f in d.get("fields", [])]
    return "\n".join(parts)


def description_of(text: str) -> str:
    return render(Reply(text=text))[0].embeds[0].description or ""


def test_short_reply_is_one_embed_with_its_source() -> None:
    """A normal answer is one embed: title, text, bullets, and a Source field."""
    pages = render(Reply(title="ML engineer", text="Ships models.", items=("Pipelines.", "Monitoring."), sources=("Article A",)))
    assert len(pages) == 1 and len(pages[0].embeds) == 1
    d = pages[0].embeds[0].to_dict()
    assert d["title"] == "ML engineer"
    assert d["description"] == "Ships models.\n\n• Pipelines.\n• Monitoring."
    assert d["fields"] == [{"name": "Source", "value": "Article A", "inline": False}]
    assert "footer" not in d


def test_several_sources_are_listed_under_sources() -> None:
    d = render(Reply(text="x", sources=("A", "B")))[0].embeds[0].to_dict()
    assert d["fields"][-1] == {"name": "Sources", "value": "A\nB", "inline": False}


@pytest.mark.parametrize("n_items, n_fields, field_size", [(0, 0, 0), (80, 0, 0), (5, 60, 300), (200, 40, 3000), (3, 3, 20000)])
def test_long_reply_is_paged_within_every_limit_and_never_cut_mid_sentence(n_items: int, n_fields: int, field_size: int) -> None:
    """However long the answer, every message Discord gets is within its limits, and every
    sentence arrives whole."""
    text = sentences(150, "Intro")
    items = tuple(sentences(3, f"Item {i}") for i in range(n_items))
    fields = tuple(Field(f"Field {i}", sentences(max(1, field_size // 90), f"F{i}")) for i in range(n_fields))
    reply = Reply(title="A very long answer", text=text, items=items, fields=fields, sources=("Source article",), actions=(Action("Next", "practice"),))
    pages = render(reply)
    assert_within_limits(pages)
    shown = all_text(pages)
    for sentence in re.findall(r"[^.]+\.", text + " ".join(items) + " ".join(f.value for f in fields)):
        assert sentence.strip() in shown
    assert "Source article" in shown
    assert all(not p.actions for p in pages[:-1]) and pages[-1].actions == (Action("Next", "practice"),)
    embeds = [e for p in pages for e in p.embeds]
    if len(embeds) > 1:
        assert [e.footer.text for e in embeds] == [f"Part {i} of {len(embeds)}" for i in range(1, len(embeds) + 1)]


def test_help_entries_stay_whole_when_a_group_spans_several_fields(core: Core) -> None:
    """A help group longer than one field (1,024) continues in the next field between two
    entries, never between a command and its description (the ":" after it)."""
    reply = help_reply(core, "all", admin=True)
    assert any(len(f.value) > limits.FIELD_VALUE for f in reply.fields), "the help has a group that needs two fields"
    pages = render(reply)
    assert_within_limits(pages)
    shown = [line for p in pages for e in p.embeds for f in e.to_dict().get("fields", []) for line in f["value"].split("\n")]
    entries = [line for f in reply.fields for line in f.value.split("\n")]
    assert shown == entries


def test_long_lists_are_split_between_entries_only() -> None:
    """Items and field lines longer together than an embed or a field are split at line
    ends: every entry (a "`command`: what it does. More." line) arrives whole."""
    entries = tuple(f"`command {i}`: does thing {i}. Then it explains at some length why that matters: reasons." for i in range(120))
    pages = render(Reply(title="Commands", items=entries, fields=(Field("All", "\n".join(entries)),)))
    assert_within_limits(pages)
    lines = [line for p in pages for e in p.embeds for line in (e.description or "").split("\n")]
    lines += [line for p in pages for e in p.embeds for f in e.fields for line in (f.value or "").split("\n")]
    for entry in entries:
        assert f"• {entry}" in lines and entry in lines


def test_over_long_title_continues_in_the_description() -> None:
    title = sentences(5, "Title")
    d = render(Reply(title=title))[0].embeds[0].to_dict()
    assert len(d["title"]) <= limits.TITLE
    assert (d["title"] + " " + d["description"]).split() == title.split()


def test_mentions_in_text_are_escaped() -> None:
    """`@everyone`, `@here` and user/role mentions never come back live, even in a field."""
    pages = render(Reply(title="@here", text="Hi @everyone and <@123456789012345678>", fields=(Field("@everyone", "<@&123456789012345678>"),)))
    shown = all_text(pages)
    assert "@everyone" not in shown and "@here" not in shown and "<@123456789012345678>" not in shown and "<@&" not in shown
    assert "@\u200beveryone" in shown


def test_links_are_shown_inert_as_code() -> None:
    """Discord makes a bare URL clickable; a member's link quoted back (the core sends no
    links of its own) is shown as code everywhere, and code spans are left as they are."""
    link = "https://evil.example/free-gpu?x=1"
    reply = Reply(title=f"About {link}", text=f'No match for "see {link}." Try `open http://a.example`.', items=(f'1x "{link}" (last 2026-01-05)',),
                  fields=(Field("Asked", f"hxxp {link}, ftp://files.example/x"),), footer=f"<{link}>")
    shown = all_text(render(reply))
    assert f"`{link}`." in shown and f'"`{link}`"' in shown and "`ftp://files.example/x`" in shown
    assert "`open http://a.example`" in shown
    assert description_of("a stray ` then https://x.example") == "a stray \\` then `https://x.example`"
    assert re.findall(r"\w+://", re.sub(r"`[^`]*`", "", shown)) == []


def test_actions_become_buttons_unless_their_command_cannot_fit_a_custom_id() -> None:
    """Buttons carry `mlbot:<command>` (<= 100 chars); a longer command is offered as text."""
    long = "practice " + "x" * 100
    pages = render(Reply(text="Pick.", actions=(Action("Reveal", "reveal q1", "primary"), Action("Too long", long))))
    assert pages[-1].actions == (Action("Reveal", "reveal q1", "primary"),)
    assert custom_id("reveal q1") == "mlbot:reveal q1"
    assert custom_id(long) is None
    assert f"Options: Too long (`{long}`)" in pages[-1].embeds[0].description
    assert "Next:" not in pages[-1].embeds[0].description, "`next` is a command; the row is named as in the console"


def test_repeated_commands_get_unique_custom_ids_that_carry_the_command() -> None:
    """Discord refuses two equal custom_ids in one message: a repeated command is numbered,
    still read back as the command, within 100 characters (else offered as text); labels
    are cut to 80."""
    near_limit = "course " + "x" * (limits.CUSTOM_ID - len("mlbot:course "))
    actions = (Action("A", "help"), Action("B", "help"), Action("C" * 120, "help"), Action("D", near_limit), Action("E", near_limit))
    page = render(Reply(text="Pick.", actions=actions))[-1]
    ids = [b.custom_id for b in page.buttons]
    assert ids == ["mlbot:help", "mlbot.1:help", "mlbot.2:help", f"mlbot:{near_limit}"]
    assert all(len(i) <= limits.CUSTOM_ID for i in ids)
    assert [re.fullmatch(limits.CUSTOM_ID_TEMPLATE, i)["command"] for i in ids] == ["help"] * 3 + [near_limit]  # type: ignore[index]
    assert [len(b.label) for b in page.buttons] == [1, 1, limits.BUTTON_LABEL, 1] and page.buttons[2].label.endswith("…")
    assert f"E (`{near_limit}`)" in page.embeds[0].description


def test_more_than_25_actions_keep_25_buttons_and_list_the_rest() -> None:
    actions = tuple(Action(f"A{i}", f"cmd {i}") for i in range(30))
    pages = render(Reply(text="Many.", actions=actions))
    assert len(pages[-1].actions) == 25
    assert "A29 (`cmd 29`)" in pages[-1].embeds[0].description


def test_empty_reply_is_still_a_valid_embed() -> None:
    assert_within_limits(render(Reply()))


# --- commands ---------------------------------------------------------------------------


def test_one_slash_command_per_registry_entry_with_typed_autocompleted_options(core: Core) -> None:
    """Generated from the registry: names, short descriptions, options, autocomplete where
    the parameter has content choices, integer years, admin commands hidden by default."""
    payloads = {p["name"]: p for p in command_payloads(core.registry)}
    assert set(payloads) == {spec.name for spec in core.registry}
    for spec in core.registry:
        p = payloads[spec.name]
        assert 1 <= len(p["description"]) <= 100
        assert p["default_member_permissions"] == (str(MANAGE_GUILD) if spec.admin else None)
        required = [o["required"] for o in p["options"]]
        assert required == sorted(required, reverse=True), "required options come first"
        for option in p["options"]:
            param = next(x for x in spec.params if x.name == option["name"])
            assert option.get("autocomplete", False) == (param.choices is not None)
            assert re.fullmatch(r"[-_a-z0-9]{1,32}", option["name"])
    course = payloads["course"]["options"]
    assert course[0] == {"type": 3, "name": "name", "description": "The course", "required": False, "autocomplete": True}
    years = next(o for o in payloads["salary"]["options"] if o["name"] == "years")
    assert years["type"] == 4 and years["min_value"] == 0
    assert {name for name, p in payloads.items() if p["default_member_permissions"]} == {"unanswered", "stats", "reload"}


def test_payload_hash_is_stable_and_follows_changes(core: Core) -> None:
    payloads = command_payloads(core.registry)
    assert payload_hash(1, payloads) == payload_hash(1, command_payloads(core.registry))
    assert payload_hash(2, payloads) != payload_hash(1, payloads)
    changed = [dict(payloads[0], description="Something else")] + payloads[1:]
    assert payload_hash(1, changed) != payload_hash(1, payloads)


def test_slash_options_become_command_and_args(core: Core) -> None:
    spec = core.registry.get("course")
    assert spec is not None
    message = to_message(spec, {"name": "course", "options": [{"name": "name", "type": 3, "value": "ml-regression"}]}, user_id="42", is_admin=True)
    assert (message.platform, message.user_id, message.command, dict(message.args), message.is_admin) == ("discord", "42", "course", {"name": "ml-regression"}, True)
    salary = core.registry.get("salary")
    assert salary is not None
    message = to_message(salary, {"options": [{"name": "years", "type": 4, "value": 3}]}, user_id="42", is_admin=False)
    assert dict(message.args) == {"years": "3"}


async def test_typed_text_that_is_not_a_choice_is_resolved_by_the_core(core: Core) -> None:
    """A member who submits "regresion" without picking a suggestion still gets the course;
    a value too far from any choice gets the closest ones, not an error."""
    spec = core.registry.get("course")
    assert spec is not None
    message = to_message(spec, {"options": [{"name": "name", "type": 3, "value": "regresion"}]}, user_id="42", is_admin=False)
    assert (await core.handle(message)).title == "Machine Learning: Regression"
    wild = to_message(spec, {"options": [{"name": "name", "type": 3, "value": "zzzz"}]}, user_id="42", is_admin=False)
    reply = await core.handle(wild)
    assert "I don't know that name" in reply.text and reply.command == "error"


def test_focused_option_and_choice_payloads() -> None:
    data = {"options": [{"name": "level", "type": 3, "value": "sen"}, {"name": "region", "type": 3, "value": "eur", "focused": True}]}
    assert focused_option(data) == ("region", "eur")
    assert focused_option({"options": []}) is None
    many = [Choice(f"v{i}", f"label {i}") for i in range(40)] + [Choice("x" * 101, "too long a value")]
    pairs = choice_payloads([Choice("a", "L" * 150), *many])
    assert len(pairs) == 25 and len(pairs[0][0]) <= 100 and all(len(v) <= 100 for _, v in pairs)


@pytest.mark.parametrize("content, text", [
    ("<@77> what does an ML engineer do?", "what does an ML engineer do?"),
    ("hey <@!77>   salary senior", "hey salary senior"),
    ("<@78> not me", "<@78> not me"),
])
def test_mention_of_the_bot_is_stripped(content: str, text: str) -> None:
    assert mention_text(content, 77) == text


def test_a_registry_command_with_a_long_summary_gets_a_short_description() -> None:
    async def handler(req):  # pragma: no cover - never called
        raise AssertionError

    spec = CommandSpec("x", "word " * 40, handler, params=(Param("p", "d " * 80, required=True),))
    payload = command_payloads([spec])[0]
    assert len(payload["description"]) <= 100 and payload["description"].endswith("…")
    assert len(payload["options"][0]["description"]) <= 100

