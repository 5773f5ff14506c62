"""The Discord adapter end to end: the real discord.py client against a local fake Discord."""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import re
from pathlib import Path
from typing import Any, AsyncIterator

import pytest

from adapters import discord_app
from adapters.discord_app import CANNOT_SEND_PRIVATELY, SENT_PRIVATELY, STALE_BUTTON, DiscordSender, build_client, serve_discord
from bot.commands import CommandSpec, Param, Registry
from bot.content import load_content
from bot.core import Core
from bot.delivery import Delivery
from bot.handlers import build_registry
from bot.messages import Message
from bot.replies import Action, Field, Reply
from bot.settings import Settings
from bot.store import open_store
from bot.understanding import Decision, Ranked
from fakes.discord_server import APP_ID, BOT_ID, CHANNEL_ID, EPHEMERAL, GUILD_ID, MEMBER_ID, FakeDiscord, Interaction, Record

TOKEN = "MTIzNDU2.fake-bot-token.do-not-log"
MANAGE_GUILD = 1 << 5
MESSAGE_CONTENT_INTENT = 1 << 15
CONTENT = load_content()


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    server = FakeDiscord()
    await server.start()
    with server.pointed_at():
        yield server
    await server.close()


@pytest.fixture
async def core(tmp_path: Path) -> AsyncIterator[Core]:
    async with open_store(str(tmp_path / "mlbot.sqlite3")) as store:
        yield Core(CONTENT, store=store)


def settings(tmp_path: Path, guild_id: int | None = None, **env_extra: str) -> Settings:
    env = {"DISCORD_TOKEN": TOKEN, "DISCORD_GUILD_ID": str(guild_id or ""), **env_extra}
    return Settings.from_env(env, db=str(tmp_path / "mlbot.sqlite3"))


@contextlib.asynccontextmanager
async def running(fake: FakeDiscord, core: Core, tmp_path: Path, *, guild_id: int | None = None, env: dict[str, str] | None = None,
                  **options: Any) -> AsyncIterator[discord_app.MlBotClient]:
    """`serve_discord` in a task, connected (READY received); cancelled and closed after."""
    cfg = settings(tmp_path, guild_id, **(env or {}))
    client = build_client(core, cfg, sync_state_dir=tmp_path / "state", **options)
    mark = fake.mark()
    task = asyncio.create_task(serve_discord(core, cfg, sync_state_dir=tmp_path / "state", client=client))
    await fake.wait_for(lambda r: r.path == "op2", after=mark)
    try:
        yield client
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        assert client.is_closed()


def callback_path(interaction: Interaction) -> str:
    return f"/interactions/{interaction.id}/{interaction.token}/callback"


async def interact(fake: FakeDiscord, interaction: Interaction) -> Record:
    """Send an interaction; the first response the bot gives to it."""
    mark = fake.mark()
    await fake.send_interaction(interaction)
    return await fake.wait_for(lambda r: r.path == callback_path(interaction), after=mark)


def embeds_text(body: dict[str, Any]) -> str:
    parts = [body.get("content") or ""]
    for e in body.get("embeds") or []:
        parts += [e.get("title", ""), e.get("description", ""), e.get("footer", {}).get("text", "")]
        parts += [f"{f['name']}\n{f['value']}" for f in e.get("fields", [])]
    return "\n".join(parts)


def assert_member_safe(body: dict[str, Any]) -> None:
    """Within every Discord limit, and nobody can be pinged."""
    assert body["allowed_mentions"]["parse"] == [] and not body["allowed_mentions"].get("replied_user")
    assert len(body.get("content") or "") <= 2000
    embeds = body.get("embeds") or []
    assert len(embeds) <= 10
    total = 0
    for e in embeds:
        assert len(e.get("title", "")) <= 256 and len(e.get("description", "")) <= 4096
        assert len(e.get("fields", [])) <= 25 and len(e.get("footer", {}).get("text", "")) <= 2048
        for f in e.get("fields", []):
            assert len(f["name"]) <= 256 and len(f["value"]) <= 1024
        total += len(e.get("title", "")) + len(e.get("description", "")) + len(e.get("footer", {}).get("text", ""))
        total += sum(len(f["name"]) + len(f["value"]) for f in e.get("fields", []))
    assert total <= 6000
    for row in body.get("components") or []:
        for button in row["components"]:
            assert len(button["custom_id"]) <= 100 and len(button["label"]) <= 80


def message_bodies(fake: FakeDiscord, mark: int = 0) -> list[dict[str, Any]]:
    """Every message the bot created or edited since `mark`."""
    bodies = []
    for r in fake.records[mark:]:
        if r.method == "WS" or r.json is None:
            continue
        if r.path.endswith("/callback") and r.json["type"] in (4, 7):
            bodies.append(r.json["data"])
        elif re.fullmatch(r"/webhooks/\d+/[^/]+(/messages/@original)?", r.path) or re.fullmatch(r"/channels/\d+/messages", r.path):
            bodies.append(r.json)
    return bodies


def custom_ids(message: dict[str, Any]) -> list[str]:
    return [c["custom_id"] for row in message.get("components", []) for c in row["components"]]


# --- slash commands -----------------------------------------------------------------------


async def test_slash_command_is_answered_with_an_embed_that_shows_its_source(fake: FakeDiscord, core: Core, tmp_path: Path) -> None:
    """`/course name:ml-regression` shows the course in an embed, with its article, publicly."""
    async with running(fake, core, tmp_path):
        response = await interact(fake, fake.slash("course", {"name": "ml-regression"}))
    assert response.json["type"] == 4
    body = response.json["data"]
    assert_member_safe(body)
    embed = body["embeds"][0]
    assert embed["title"] == "Machine Learning: Regression"
    assert any(f["name"] == "Source" and "Machine Learning Engineer" in f["value"] for f in embed["fields"])
    assert not body.get("flags", 0) & EPHEMERAL
    identify = next(r for r in fake.records if r.path == "op2")
    assert not identify.json["d"]["intents"] & MESSAGE_CONTENT_INTENT, "works without the privileged intent"
    assert identify.json["d"]["token"] == TOKEN


async def test_autocomplete_offers_content_choices_best_first_and_typo_tolerant(fake: FakeDiscord, core: Core, tmp_path: Path) -> None:
    """Typing "regresion" into /course name offers "Machine Learning: Regression" first."""
    async with running(fake, core, tmp_path):
        typo = await interact(fake, fake.typing("course", "name", "regresion"))
        empty = await interact(fake, fake.typing("course", "name", ""))
        region = await interact(fake, fake.typing("salary", "region", "eurpoe"))
    assert typo.json["type"] == 8
    choices = typo.json["data"]["choices"]
    assert choices[0] == {"name": "Machine Learning: Regression", "value": "ml-regression"}
    assert 1 <= len(empty.json["data"]["choices"]) <= 25
    assert len(empty.json["data"]["choices"]) == min(25, len(CONTENT.courses))
    assert region.json["data"]["choices"][0]["name"] == "Europe"


async def test_typed_value_that_was_not_picked_is_still_understood(fake: FakeDiscord, core: Core, tmp_path: Path) -> None:
    """Submitting "regresion" without picking a suggestion answers with the course, not an error."""
    async with running(fake, core, tmp_path):
        response = await interact(fake, fake.slash("course", {"name": "regresion"}))
    assert response.json["data"]["embeds"][0]["title"] == "Machine Learning: Regression"


async def test_personal_replies_are_ephemeral_and_general_ones_are_not(fake: FakeDiscord, core: Core, tmp_path: Path) -> None:
    """/progress and /mydata are seen only by the member (flags 64); /help by everyone."""
    async with running(fake, core, tmp_path):
        progress = await interact(fake, fake.slash("progress"))
        mydata = await interact(fake, fake.slash("mydata"))
        help_ = await interact(fake, fake.slash("help"))
    assert progress.json["data"]["flags"] & EPHEMERAL
    assert mydata.json["data"]["flags"] & EPHEMERAL
    assert not help_.json["data"].get("flags", 0) & EPHEMERAL
    for body in message_bodies(fake):
        assert_member_safe(body)


async def test_admin_commands_are_hidden_by_default_and_checked_on_use(fake: FakeDiscord, core: Core, tmp_path: Path) -> None:
    """/stats needs Manage Server: hidden by default_member_permissions, refused without it."""
    async with running(fake, core, tmp_path):
        member = await interact(fake, fake.slash("stats"))
        admin = await interact(fake, fake.slash("stats", permissions=MANAGE_GUILD))
        in_dm = await interact(fake, fake.slash("stats", in_guild=False))
    sync = next(r for r in fake.records if r.method == "PUT")
    stats = next(c for c in sync.json if c["name"] == "stats")
    assert stats["default_member_permissions"] == str(MANAGE_GUILD)
    assert "admins only" in embeds_text(member.json["data"]) and member.json["data"]["flags"] & EPHEMERAL
    assert "admins only" not in embeds_text(admin.json["data"]) and admin.json["data"]["embeds"]
    assert "admins only" in embeds_text(in_dm.json["data"])


async def test_a_retired_command_is_answered_not_failed(fake: FakeDiscord, core: Core, tmp_path: Path) -> None:
    """A slash command left over from an older sync gets the core's "unknown command" answer."""
    async with running(fake, core, tmp_path):
        response = await interact(fake, fake.slash("oldcommand"))
    assert response.json["type"] == 4 and "Unknown command" in embeds_text(response.json["data"])


# --- mentions, @everyone, long replies ------------------------------------------------------


async def test_mention_and_dm_are_answered_through_the_router(fake: FakeDiscord, core: Core, tmp_path: Path) -> None:
    """A mention (mention stripped) and a DM get the router's answer; other chatter is ignored."""
    async with running(fake, core, tmp_path):
        mark = fake.mark()
        await fake.dispatch("MESSAGE_CREATE", fake.message_create("what does an ML engineer do?"))  # no mention: ignored
        mention = fake.message_create(f"<@{BOT_ID}> what does an ML engineer do?", mentions_bot=True)
        await fake.dispatch("MESSAGE_CREATE", mention)
        in_channel = await fake.wait_for(lambda r: r.path == f"/channels/{CHANNEL_ID}/messages", after=mark)
        await fake.dispatch("MESSAGE_CREATE", fake.message_create("salary senior europe", in_guild=False))
        in_dm = await fake.wait_for(lambda r: r.path == f"/channels/{MEMBER_ID + 1}/messages", after=mark)
    assert in_channel.json["embeds"][0]["title"] == "Machine learning engineer"
    assert str(in_channel.json["message_reference"]["message_id"]) == mention["id"]
    assert "Senior salaries" in in_dm.json["embeds"][0]["title"]
    assert len(fake.since(mark, "POST", r"^/channels/")) == 2, "the message without a mention got no answer"
    assert_member_safe(in_channel.json)
    assert_member_safe(in_dm.json)


async def test_personal_answer_asked_in_a_channel_goes_to_dms(fake: FakeDiscord, core: Core, tmp_path: Path) -> None:
    """"@bot my progress" in a channel: the data goes to the member's DMs, a note to the channel;
    with DMs closed, only a note (no data) appears in the channel."""
    async with running(fake, core, tmp_path):
        mark = fake.mark()
        await fake.dispatch("MESSAGE_CREATE", fake.message_create(f"<@{BOT_ID}> my progress", mentions_bot=True))
        note = await fake.wait_for(lambda r: r.path == f"/channels/{CHANNEL_ID}/messages", after=mark)
        dm = fake.since(mark, "POST", rf"^/channels/{MEMBER_ID + 1}/messages$")
        mark = fake.mark()
        fake.fail("POST", rf"/channels/{MEMBER_ID + 1}/messages", 403, {"code": 50007, "message": "Cannot send messages to this user"})
        await fake.dispatch("MESSAGE_CREATE", fake.message_create(f"<@{BOT_ID}> my progress", mentions_bot=True))
        closed = await fake.wait_for(lambda r: r.path == f"/channels/{CHANNEL_ID}/messages", after=mark)
    assert len(dm) == 1 and dm[0].json["embeds"]
    assert note.json["content"] == SENT_PRIVATELY and not note.json.get("embeds")
    assert closed.json["content"] == CANNOT_SEND_PRIVATELY and not closed.json.get("embeds")


async def test_everyone_in_a_question_never_comes_back_as_a_live_mention(fake: FakeDiscord, tmp_path: Path) -> None:
    """Whether the core drops it (a mention) or repeats it verbatim (an echo), `@everyone`,
    `@here` and role mentions reach Discord escaped, with no mention allowed."""
    core = Core(CONTENT, registry=stress_registry())
    async with running(fake, core, tmp_path):
        mark = fake.mark()
        await fake.dispatch("MESSAGE_CREATE", fake.message_create(f"<@{BOT_ID}> @everyone what does a data engineer do? @here", mentions_bot=True))
        await fake.wait_for(lambda r: r.path == f"/channels/{CHANNEL_ID}/messages", after=mark)
        echoed = await interact(fake, fake.slash("echo", {"words": "@everyone look <@&123456789012345678> @here"}))
    bodies = message_bodies(fake, mark)
    assert len(bodies) == 2
    for body in bodies:
        assert_member_safe(body)
        text = embeds_text(body)
        assert "@everyone" not in text and "@here" not in text and "<@&" not in text
    assert "@\u200beveryone look" in echoed.json["data"]["embeds"][0]["description"]


def live_links(text: str) -> list[str]:
    """Links Discord would make clickable: any scheme:// outside a code span."""
    return re.findall(r"\w+://\S+", re.sub(r"`[^`]*`", "", text))


async def test_a_members_link_is_quoted_back_inert(fake: FakeDiscord, core: Core, tmp_path: Path) -> None:
    """A link in a question the bot could not answer is shown as code, not as a clickable
    link, both in the "I don't know that one" answer and in the admins' `unanswered` list."""
    async with running(fake, core, tmp_path):
        mark = fake.mark()
        await fake.dispatch("MESSAGE_CREATE", fake.message_create(f"<@{BOT_ID}> zork https://evil.example/free-gpu", mentions_bot=True))
        fallback = await fake.wait_for(lambda r: r.path == f"/channels/{CHANNEL_ID}/messages", after=mark)
        listed = await interact(fake, fake.slash("unanswered", permissions=MANAGE_GUILD))
    for body in (fallback.json, listed.json["data"]):
        text = embeds_text(body)
        assert "`https://evil.example/free-gpu`" in text
        assert live_links(text) == []
    assert "Questions I couldn't answer" in embeds_text(listed.json["data"])


def stress_registry() -> Registry:
    """The real commands plus two that stress the renderer: a very long answer and an echo."""

    async def essay(req: Any) -> Reply:
        text = " ".join(f"Sentence {i} explains one more detail of the machine learning path." for i in range(400))
        fields = tuple(Field(f"Part {i}", " ".join(f"Detail {i}.{j} is a full sentence." for j in range(60))) for i in range(30))
        return Reply(title="A very long answer", text=text, fields=fields, sources=("An article",), actions=(Action("Next", "help"),))

    async def echo(req: Any) -> Reply:
        return Reply(title=f"You said {req.args['words']}", text=req.args["words"], fields=(Field(req.args["words"], req.args["words"]),))

    async def twins(req: Any) -> Reply:
        return Reply(text="Two ways to the same course.", actions=(Action("Regression", "course ml-regression", "primary"),
                                                                   Action("The regression course, " + "really " * 20, "course ml-regression")))

    registry = build_registry()
    registry.add(CommandSpec("essay", "A very long answer.", essay))
    registry.add(CommandSpec("twins", "Two buttons with one command.", twins))
    registry.add(CommandSpec("echo", "Say it back.", echo, params=(Param("words", "What to say", required=True),)))
    return registry


async def test_a_very_long_answer_is_paged_within_every_limit(fake: FakeDiscord, tmp_path: Path) -> None:
    """An answer of ~50,000 characters arrives as several messages, every one accepted by
    Discord's limits, every sentence whole, the source shown and the buttons on the last."""
    core = Core(CONTENT, registry=stress_registry())
    async with running(fake, core, tmp_path):
        interaction = fake.slash("essay")
        await interact(fake, interaction)
        reply = await core.handle(Message("discord", "1", command="essay"))
        expected = sum(1 for _ in discord_app.render(reply)) - 1
        await fake.wait_for(lambda r: r.method == "POST" and r.path == f"/webhooks/{APP_ID}/{interaction.token}" and len(fake.since(0, "POST", "^/webhooks/")) == expected)
    bodies = message_bodies(fake)
    assert len(bodies) == expected + 1 >= 3
    for body in bodies:
        assert_member_safe(body)
    shown = "\n".join(embeds_text(b) for b in bodies)
    for i in range(400):
        assert f"Sentence {i} explains one more detail of the machine learning path." in shown
    assert "An article" in shown
    assert [bool(b.get("components")) for b in bodies] == [False] * expected + [True]


# --- buttons ---------------------------------------------------------------------------


async def test_practice_buttons_work_after_a_restart_and_a_second_click_is_polite(fake: FakeDiscord, core: Core, tmp_path: Path) -> None:
    """Reveal then Good on buttons sent before a restart; clicking Good again gets a polite
    private note instead of "This interaction failed"."""
    async with running(fake, core, tmp_path):
        practice = await interact(fake, fake.slash("practice"))
    assert practice.json["data"]["flags"] & EPHEMERAL
    card = next(m for m in fake.messages.values() if any(c.startswith("mlbot:reveal ") for c in custom_ids(m)))

    async with running(fake, core, tmp_path):  # a new process: nothing in memory
        reveal_id = next(c for c in custom_ids(card) if c.startswith("mlbot:reveal "))
        revealed = await interact(fake, fake.click(card, reveal_id))
        answer = next(m for m in fake.messages.values() if any(c.startswith("mlbot:grade good ") for c in custom_ids(m)))
        good = next(c for c in custom_ids(answer) if c.startswith("mlbot:grade good "))
        first = await interact(fake, fake.click(answer, good))
        second = await interact(fake, fake.click(answer, good))
    assert revealed.json["type"] == 4 and revealed.json["data"]["flags"] & EPHEMERAL
    assert [c.split(" ")[1] for c in custom_ids(revealed.json["data"])] == ["again", "hard", "good", "easy"]
    assert "Graded good" in embeds_text(first.json["data"])
    assert second.json["type"] == 4 and second.json["data"]["flags"] & EPHEMERAL
    assert "error id" not in embeds_text(second.json["data"]) and "Graded" not in embeds_text(second.json["data"])
    assert "practice" in embeds_text(second.json["data"])


async def test_two_buttons_with_the_same_command_are_accepted_and_both_work(fake: FakeDiscord, tmp_path: Path) -> None:
    """Two actions with one command get distinct custom_ids (Discord refuses duplicates) and
    a label cut to 80 characters; clicking the second runs that command."""
    core = Core(CONTENT, registry=stress_registry())
    async with running(fake, core, tmp_path):
        response = await interact(fake, fake.slash("twins"))
        assert response.json["type"] == 4
        message = await fake.wait_for_message(lambda m: len(custom_ids(m)) == 2)
        ids = custom_ids(message)
        clicked = await interact(fake, fake.click(message, ids[1]))
    assert_member_safe(response.json["data"])
    assert len(set(ids)) == 2 and all(i.endswith(":course ml-regression") for i in ids)
    assert clicked.json["data"]["embeds"][0]["title"] == "Machine Learning: Regression"


async def test_clarifying_choices_are_buttons_that_answer_the_choice(fake: FakeDiscord, core: Core, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 14: a mention the core reads three ways gets "Did you mean..." with one button
    per reading, and clicking one answers that reading, with the slots the member gave. The
    model's reading of this one question is pinned (as in test_understanding), so content
    edits cannot turn it into a direct answer; routing, the clarify reply and the click are real."""
    question = "senior salary in europe, or the path"
    understand = core.router.understand

    def ambiguous(text: str, found: Any = ()) -> Decision:
        if text != question:
            return understand(text, found)
        return Decision("clarify", (Ranked("salary", 0.3), Ranked("faq:languages", 0.29), Ranked("path", 0.28)))

    monkeypatch.setattr(core.router, "understand", ambiguous)
    async with running(fake, core, tmp_path):
        mark = fake.mark()
        await fake.dispatch("MESSAGE_CREATE", fake.message_create(f"<@{BOT_ID}> {question}", mentions_bot=True))
        asked = await fake.wait_for(lambda r: r.path == f"/channels/{CHANNEL_ID}/messages", after=mark)
        message = await fake.wait_for_message(lambda m: bool(m["embeds"]) and m["embeds"][0].get("title") == "Did you mean...")
        clarify = await core.handle(Message("discord", str(MEMBER_ID), text=question))
        clicked = [await interact(fake, fake.click(message, custom_id)) for custom_id in custom_ids(message)]
        expected = [await core.handle(Message("discord", str(MEMBER_ID), text=a.command)) for a in clarify.actions]
    assert clarify.command == "clarify" and [a.command.split()[0] for a in clarify.actions] == ["salary", "faq", "path"]
    assert_member_safe(asked.json)
    buttons = [c for row in message["components"] for c in row["components"]]
    assert [b["label"] for b in buttons] == [a.label for a in clarify.actions]
    assert custom_ids(message) == [f"mlbot:{a.command}" for a in clarify.actions]
    assert [e.command for e in expected] == ["salary", "faq", "path"]
    assert "Senior" in expected[0].title and "Europe" in expected[0].title  # the slots ride along
    for response, answer in zip(clicked, expected):
        assert response.json["type"] == 4
        assert response.json["data"]["embeds"] == [e.to_dict() for e in discord_app.render(answer)[0].embeds]


async def test_a_button_from_an_unknown_version_gets_a_note(fake: FakeDiscord, core: Core, tmp_path: Path) -> None:
    """A button whose id is not ours gets a private note instead of "This interaction failed"."""
    message = fake.message_create("old")
    message.update(author={"id": str(BOT_ID), "username": "mlbot", "discriminator": "0", "avatar": None, "bot": True},
                   components=[{"type": 1, "components": [{"type": 2, "style": 1, "label": "Old", "custom_id": "legacy:42"}]}])
    async with running(fake, core, tmp_path):
        response = await interact(fake, fake.click(message, "legacy:42"))
    assert response.json["data"]["content"] == STALE_BUTTON and response.json["data"]["flags"] & EPHEMERAL


# --- command sync ------------------------------------------------------------------------


async def test_commands_are_synced_once_and_not_again_after_a_restart(fake: FakeDiscord, core: Core, tmp_path: Path) -> None:
    """First start uploads the generated set; a restart with the same set uploads nothing; a
    changed registry uploads again."""
    async with running(fake, core, tmp_path):
        pass
    async with running(fake, core, tmp_path):
        pass
    syncs = fake.since(0, "PUT")
    assert [s.path for s in syncs] == [f"/applications/{APP_ID}/commands"]
    assert {c["name"] for c in syncs[0].json} == {spec.name for spec in core.registry}
    assert next(c for c in syncs[0].json if c["name"] == "stats")["contexts"] == [0], "admin commands not offered in DMs"
    assert (tmp_path / "state" / "discord-commands.global.sha256").exists()
    assert fake.identifies == 2

    changed = Core(CONTENT, registry=stress_registry())
    async with running(fake, changed, tmp_path):
        pass
    assert len(fake.since(0, "PUT")) == 2


async def test_guild_id_syncs_to_that_guild(fake: FakeDiscord, core: Core, tmp_path: Path) -> None:
    """With DISCORD_GUILD_ID the commands go to that guild (instantly visible), not globally."""
    async with running(fake, core, tmp_path, guild_id=GUILD_ID):
        pass
    syncs = fake.since(0, "PUT")
    assert [s.path for s in syncs] == [f"/applications/{APP_ID}/guilds/{GUILD_ID}/commands"]
    assert all("contexts" not in c for c in syncs[0].json), "contexts is for global commands only"
    assert (tmp_path / "state" / f"discord-commands.{GUILD_ID}.sha256").exists()


async def test_a_failed_sync_is_retried_at_the_next_start(fake: FakeDiscord, core: Core, tmp_path: Path) -> None:
    """A refused sync (e.g. the daily create limit) keeps the bot answering and is retried next start."""
    fake.fail("PUT", r"/applications/\d+/commands", 400, {"code": 30034, "message": "Max number of daily application command creates has been reached (200)"})
    async with running(fake, core, tmp_path):
        response = await interact(fake, fake.slash("help"))  # still serving
    assert response.json["type"] == 4
    async with running(fake, core, tmp_path):
        pass
    assert len(fake.since(0, "PUT")) == 2


# --- resilience ------------------------------------------------------------------------


async def test_dropped_gateway_connection_resumes_and_keeps_answering(fake: FakeDiscord, core: Core, tmp_path: Path) -> None:
    """After the gateway drops the connection the bot RESUMEs its session and keeps answering."""
    async with running(fake, core, tmp_path):
        await interact(fake, fake.slash("help"))
        mark = fake.mark()
        await fake.drop()
        resume = await fake.wait_for(lambda r: r.path == "op6", after=mark)
        response = await interact(fake, fake.slash("course", {"name": "ml-regression"}))
    assert resume.json["d"]["session_id"] == "session-1" and resume.json["d"]["seq"] >= 2
    assert resume.json["d"]["token"] == TOKEN and resume.query["path"] == "/gateway-resume"
    assert fake.identifies == 1 and fake.resumes == 1
    assert response.json["data"]["embeds"][0]["title"] == "Machine Learning: Regression"


async def test_slow_answers_are_deferred_then_delivered(fake: FakeDiscord, core: Core, tmp_path: Path) -> None:
    """When the core is slower than the defer threshold the interaction is acknowledged first
    ("thinking…"), then the answer replaces the placeholder; a public placeholder is never
    turned into a private answer (it is deleted and the answer sent privately)."""
    release = asyncio.Event()
    handle = core.handle

    async def slow(message: Message) -> Reply:
        await release.wait()
        return await handle(message)

    core.handle = slow  # type: ignore[method-assign]
    async with running(fake, core, tmp_path, defer_after=0.01):
        help_ = fake.slash("help")
        deferred = await interact(fake, help_)
        release.set()
        edited = await fake.wait_for(lambda r: r.method == "PATCH" and help_.token in r.path)
        release.clear()
        stats = fake.slash("stats")  # not personal, but refused privately to a member
        placeholder = await interact(fake, stats)
        release.set()
        private = await fake.wait_for(lambda r: r.method == "POST" and r.path == f"/webhooks/{APP_ID}/{stats.token}")
        release.clear()
        progress = fake.slash("progress")
        private_placeholder = await interact(fake, progress)
        release.set()
        await fake.wait_for(lambda r: r.method == "PATCH" and progress.token in r.path)
    assert deferred.json == {"type": 5}
    assert edited.json["embeds"][0]["title"] == "What I can help with"
    assert_member_safe(edited.json)
    assert placeholder.json == {"type": 5}
    assert fake.since(0, "DELETE", stats.token)
    assert private.json["flags"] & EPHEMERAL and "admins only" in embeds_text(private.json)
    assert private_placeholder.json == {"type": 5, "data": {"flags": EPHEMERAL}}


async def test_an_exception_gives_an_apology_with_an_error_id_that_is_in_the_log(
    fake: FakeDiscord, core: Core, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Anything going wrong gives the member a short private apology with an error id, and the
    log has the traceback under that id (never the exception text in the chat)."""

    def broken(reply: Reply) -> Any:
        raise RuntimeError("renderer exploded")

    monkeypatch.setattr(discord_app, "render", broken)
    caplog.set_level(logging.ERROR, logger="adapters.discord_app")
    async with running(fake, core, tmp_path):
        response = await interact(fake, fake.slash("help"))
        mark = fake.mark()
        await fake.dispatch("MESSAGE_CREATE", fake.message_create(f"<@{BOT_ID}> help", mentions_bot=True))
        in_channel = await fake.wait_for(lambda r: r.path == f"/channels/{CHANNEL_ID}/messages", after=mark)
    ids = []
    for body in (response.json["data"], in_channel.json):
        assert_member_safe(body)
        found = re.search(r"error id ([0-9a-f]{8})", body["content"])
        assert found and "renderer exploded" not in body["content"]
        ids.append(found.group(1))
    assert response.json["data"]["flags"] & EPHEMERAL
    for error_id in ids:
        record = next(r for r in caplog.records if error_id in r.getMessage())
        assert record.exc_info and "renderer exploded" in str(record.exc_info[1])


async def test_tokens_never_appear_in_logs(fake: FakeDiscord, core: Core, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Even at debug level (where discord.py logs REST paths), neither the bot token nor an
    interaction token is written to the log."""
    caplog.set_level(logging.DEBUG)
    async with running(fake, core, tmp_path, defer_after=0.0):
        interaction = fake.slash("help")
        await interact(fake, interaction)
        await fake.wait_for(lambda r: interaction.token in r.path and r.method == "PATCH")
    logged = caplog.text + "".join(str(r.msg) for r in caplog.records)
    assert "/callback" in logged, "the debug log did record the REST calls"
    for secret in (TOKEN, interaction.token):
        at = logged.find(secret)
        assert at == -1, logged[max(0, at - 300): at + 100]


# --- DMs for nudges -----------------------------------------------------------------------


async def test_dm_sender_reports_sent_dms_closed_and_transient(fake: FakeDiscord, core: Core, tmp_path: Path) -> None:
    """50007 is "DMs closed" (don't retry this week); 5xx, an exhausted 429 and a timeout are
    transient; a 429 with Retry-After is waited out and the DM sent."""
    nudge = Reply(title="Your week", text="Next step: Python fundamentals.", actions=(Action("Done", "done python"),), sources=("Article",))
    async with running(fake, core, tmp_path) as client:
        sender = DiscordSender(client, timeout=1.0)
        assert sender.platform == "discord"
        mark = fake.mark()
        sent = await sender.send_direct("111", nudge)
        dm = fake.since(mark, "POST", "^/")
        fake.fail("POST", r"/channels/\d+/messages", 403, {"code": 50007, "message": "Cannot send messages to this user"})
        closed = await sender.send_direct("111", nudge)
        fake.fail("POST", r"/channels/\d+/messages", 503, {"message": "Service Unavailable"})
        unavailable = await sender.send_direct("111", nudge)
        mark = fake.mark()
        fake.fail("POST", r"/channels/\d+/messages", 429, {"message": "You are being rate limited.", "retry_after": 0.01, "global": False}, headers={"Via": "1.1 google"})
        waited = await sender.send_direct("222", nudge)
        retried = fake.since(mark, "POST", r"^/channels/\d+/messages$")
        fake.fail("POST", r"/channels/\d+/messages", 429, {"message": "You are being rate limited.", "retry_after": 0, "global": False}, headers={"Via": "1.1 google"}, times=5)
        exhausted = await sender.send_direct("333", nudge)
        fake.fail("POST", r"/channels/\d+/messages", 0, hang=True)
        timed_out = await DiscordSender(client, timeout=0.05).send_direct("444", nudge)
    assert sent is Delivery.SENT
    assert [r.path for r in dm] == ["/users/@me/channels", "/channels/112/messages"]
    assert dm[0].json == {"recipient_id": 111}
    assert dm[1].json["embeds"][0]["title"] == "Your week" and custom_ids(dm[1].json) == ["mlbot:done python"]
    assert_member_safe(dm[1].json)
    assert closed is Delivery.DMS_CLOSED
    assert unavailable is Delivery.TRANSIENT
    assert waited is Delivery.SENT and len(retried) == 2
    assert exhausted is Delivery.TRANSIENT
    assert timed_out is Delivery.TRANSIENT


async def test_dm_sender_before_login_is_transient(core: Core, tmp_path: Path) -> None:
    """A nudge sent before the client has logged in is retried later, not lost or raised."""
    client = build_client(core, settings(tmp_path), sync_state_dir=tmp_path)
    assert await DiscordSender(client).send_direct("1", Reply(text="hi")) is Delivery.TRANSIENT


async def test_discord_proxy_reaches_the_client(core: Core, tmp_path: Path) -> None:
    """DISCORD_PROXY is handed to discord.py, which sends REST and the gateway through it."""
    proxied = build_client(core, settings(tmp_path, DISCORD_PROXY="http://proxy.internal:3128"), sync_state_dir=tmp_path)
    direct = build_client(core, settings(tmp_path), sync_state_dir=tmp_path)
    sharded = build_client(core, settings(tmp_path, DISCORD_PROXY="http://proxy.internal:3128", DISCORD_SHARD_COUNT="2"), sync_state_dir=tmp_path)
    assert proxied.http.proxy == sharded.http.proxy == "http://proxy.internal:3128"
    assert direct.http.proxy is None


async def test_serve_discord_needs_a_token(core: Core, tmp_path: Path) -> None:
    """Without DISCORD_TOKEN the runner refuses to start with a clear message."""
    cfg = dataclasses.replace(settings(tmp_path), discord_token=None)
    with pytest.raises(ValueError, match="DISCORD_TOKEN"):
        await serve_discord(core, cfg, sync_state_dir=tmp_path)



async def test_shard_count_runs_an_auto_sharded_client_on_this_replicas_shards(fake: FakeDiscord, core: Core, tmp_path: Path) -> None:
    """DISCORD_SHARD_COUNT=2 with DISCORD_SHARD_IDS=1: this replica identifies as shard 1 of 2 and answers."""
    async with running(fake, core, tmp_path, env={"DISCORD_SHARD_COUNT": "2", "DISCORD_SHARD_IDS": "1"}) as client:
        assert isinstance(client, discord_app.ShardedMlBotClient)
        identify = next(r for r in fake.records if r.path == "op2")
        assert identify.json["d"]["shard"] == [1, 2]
        response = await interact(fake, fake.slash("salary", {"level": "senior"}))
    assert "$220,000" in embeds_text(response.json["data"])


# --- attachments --------------------------------------------------------------------------

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


async def test_salary_chart_is_attached_to_the_embed(fake: FakeDiscord, core: Core, tmp_path: Path) -> None:
    """/salary level:senior, a mention and a deferred answer all carry the chart: a PNG shown
    inside the embed (`attachment://`), with the figures in its alt text."""
    release = asyncio.Event()
    release.set()
    handle = core.handle

    async def gated(message: Message) -> Reply:
        await release.wait()
        return await handle(message)

    core.handle = gated  # type: ignore[method-assign]
    async with running(fake, core, tmp_path, defer_after=0.05):
        slash = await interact(fake, fake.slash("salary", {"level": "senior"}))
        mark = fake.mark()
        await fake.dispatch("MESSAGE_CREATE", fake.message_create(f"<@{BOT_ID}> salary staff", mentions_bot=True))
        mention = await fake.wait_for(lambda r: r.path == f"/channels/{CHANNEL_ID}/messages", after=mark)
        release.clear()
        slow = fake.slash("salary", {"level": "entry"})
        await interact(fake, slow)
        release.set()
        edited = await fake.wait_for(lambda r: r.method == "PATCH" and slow.token in r.path)
        stored = await fake.wait_for_message(lambda m: bool(m["attachments"]) and "Entry level" in m["embeds"][0]["title"])
    for record, level, figure in ((slash, "Senior", "$180,000"), (mention, "Staff/Principal", "$200,000"), (edited, "Entry level", "$100,000")):
        body = record.json["data"] if record.path.endswith("/callback") else record.json
        [upload] = record.files
        assert upload.data.startswith(PNG_SIGNATURE) and len(upload.data) > 5_000
        assert upload.filename.endswith(".png")
        assert figure in (upload.description or "") and level in (upload.description or "")
        assert body["embeds"][-1]["image"]["url"] == f"attachment://{upload.filename}"
        assert body["attachments"] == [{"id": 0, "filename": upload.filename, "description": upload.description}]
        assert_member_safe(body)
    [attachment] = stored["attachments"]
    assert fake.files[attachment["id"]] == edited.files[0].data and attachment["content_type"] == "image/png"


async def test_mydata_arrives_as_a_json_file_not_split_json(fake: FakeDiscord, core: Core, tmp_path: Path) -> None:
    """/mydata with a long history: one ephemeral message with `mlbot-data.json`, which parses
    as the whole export; no JSON in the embeds."""
    for n in range(120):
        await core.handle(Message("discord", str(MEMBER_ID), f"practice python {n}"))
    async with running(fake, core, tmp_path):
        mark = fake.mark()
        response = await interact(fake, fake.slash("mydata"))
    [upload] = response.files
    data = json.loads(upload.data)
    assert upload.filename == "mlbot-data.json"
    assert data == await core.store.export(f"discord:{MEMBER_ID}") and len(upload.data) > 4096, "more than one embed would hold"
    body = response.json["data"]
    assert body["flags"] & EPHEMERAL and "{" not in embeds_text(body)
    assert not fake.since(mark, "POST", r"^/webhooks/"), "one message, no followups"
