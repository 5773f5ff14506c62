"""What members read: facts with their sources, side by side where articles disagree,
and sensible replies to anything, hostile input included."""
from __future__ import annotations

import string

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.core import Core
from bot.messages import Message
from bot.replies import render_text, split_text


async def test_salary_shows_both_articles_side_by_side(ask) -> None:
    text = await ask("what do entry level ML engineers earn?")
    assert "$100,000-$130,000" in text and "$110,000-$135,000" in text
    assert "How to Become a Machine Learning Engineer (2026 Guide)" in text
    assert "Skills, Salary and the Courses" in text


async def test_years_map_to_levels(ask) -> None:
    text = await ask("salary with 3 years of experience")
    assert "Mid level" in text and "$140,000-$170,000" in text


async def test_two_years_shows_where_articles_disagree(ask) -> None:
    text = await ask("I have 2 years experience, what salary?")
    assert "Entry level / Mid level" in text and "draw the line differently" in text


async def test_europe_gives_the_rule_not_invented_figures(ask) -> None:
    text = await ask("what do senior ML engineers earn in Europe?")
    assert "30-50% lower" in text and "no Europe figures" in text


async def test_a_title_without_a_band_is_read_as_a_level_and_said_once(ask) -> None:
    text = await ask("what does a lead ML engineer make in the UK?")
    assert text.count("read as Senior") == 1 and "$180,000-$220,000+" in text
    assert text.count("no United Kingdom figures") == 1 and "no UK salary figures" not in text



async def test_a_hub_city_gets_the_figures_first_and_the_hub_note_after_them(ask) -> None:
    """The city's own figures are what was asked: said missing up front, the US bands, then
    the articles' words about tech hubs as context (one of them is about entry level)."""
    text = await ask("what does a senior ml engineer make in san francisco")
    assert "The articles give no figures for San Francisco; these are their United States figures." in text
    assert text.index("$180,000-$220,000+") < text.index("Pay and demand in US tech hubs") < text.index("Entry-level salaries vary")

async def test_software_engineer_gap(ask) -> None:
    text = await ask("ml engineer vs software engineer pay")
    assert "$30,000" in text and "$155,000" in text


async def test_compare_uses_both_tables(ask) -> None:
    text = await ask("ml engineer vs data scientist")
    assert "ML engineer vs data scientist vs data engineer" in text
    assert "ML engineer vs data scientist vs AI engineer" in text



async def test_ml_engineer_against_software_engineer_is_a_comparison_from_the_articles(ask) -> None:
    """Not salary bands: what sets the two apart, with the role no table covers given by its facts."""
    for question in ("ml engineer vs software engineer", "how do ml engineers and software engineers differ"):
        text = await ask(question)
        assert text.startswith("Machine learning engineer vs Software engineer"), text[:80]
        assert "sits between them and data scientists" in text and "Jupyter notebook" in text
        assert "Core focus:" not in text  # no table sets the two side by side
    listed = await ask("role")
    assert "Software engineer" not in listed  # a neighbouring job, not one of the ML roles

async def test_one_role_against_company_size_answers_with_the_role(ask) -> None:
    text = await ask("what do ML engineers do at startups vs big companies")
    assert "At smaller companies you might own the whole stack" in text


async def test_course_detail(ask) -> None:
    text = await ask("Production Machine Learning Systems")
    assert "9.7" in text and "Coursera" in text and "Production skills" in text



async def test_a_course_asked_for_by_its_topic_is_the_one_shown(ask) -> None:
    """"which course covers deployment" reads as the one course or as the course list,
    since the two differ only by a plural; either way the answer is that course, alone."""
    for question in ("which course covers deployment", "what courses cover deployment"):
        text = await ask(question)
        assert "Production Machine Learning Systems" in text, question
        assert "Structuring Machine Learning Projects" not in text, question

async def test_unknown_course_suggests_closest(ask) -> None:
    text = await ask("course regresion analysis")
    assert "Machine Learning: Regression" in text


async def test_timeline_from_scratch_shows_both_sources(ask) -> None:
    text = await ask("how long if I'm starting from scratch")
    assert "18-24 months" in text and "12-24 months" in text


async def test_unknown_question_admits_it_and_offers_the_nearest(ask) -> None:
    text = await ask("qwertyuiop zxcvbnm")
    assert "couldn't match" in text and "help" in text


async def test_out_of_scope_question_says_so_and_offers_what_is_covered(ask) -> None:
    text = await ask("can you get me a visa sponsorship for the US?")
    assert "don't cover" in text and "Options:" in text


async def test_every_factual_reply_names_a_source(core) -> None:
    for text in ("salary", "role", "compare mle ds", "interview tips", "courses", "certifications", "path", "timeline", "do I need a degree"):
        reply = await core.handle(Message("console", "s", text))
        assert reply.sources, text


async def test_help_is_generated_from_the_registry(core) -> None:
    text = render_text(await core.handle(Message("console", "h", "help all")))
    for spec in core.registry:
        if not spec.admin:
            assert f"`{spec.usage()}`" in text


async def test_first_help_is_short_and_each_example_works(core) -> None:
    reply = await core.handle(Message("console", "h", "help"))
    assert len(reply.actions) == 5 and not reply.fields and "help all" in reply.footer
    for action in reply.actions:
        answer = await core.handle(Message("console", "h", action.command))
        assert answer.command not in ("help", "clarify", "fallback"), action.command


def test_registry_refuses_duplicate_words() -> None:
    import pytest

    from bot.commands import CommandSpec, Registry

    registry = Registry()

    async def handler(req):  # pragma: no cover - never called
        raise AssertionError

    registry.add(CommandSpec("salary", "s", handler, aliases=("pay",)))
    with pytest.raises(ValueError, match="already used"):
        registry.add(CommandSpec("wage", "w", handler, aliases=("pay",)))


async def test_mentions_are_never_echoed(ask) -> None:
    for text in ("@everyone course <!channel> foo", "course @here bar", "role <@U123> x"):
        out = await ask(text)
        assert "@everyone" not in out and "<!channel>" not in out and "@here" not in out and "<@U123>" not in out


HOSTILE = st.one_of(
    st.text(max_size=300),
    st.text(alphabet=string.printable, max_size=200),
    st.sampled_from(["", " ", "\x00\x01\x1b[31m", "🙂" * 500, "a" * 20_000, "**salary**", "`rm -rf`", "@everyone salary", "<!here> help", "Gehalt Senior Europa", "给我工资"]),
)


@settings(max_examples=150, deadline=None)
@given(text=HOSTILE)
def test_any_input_gets_a_reply_and_never_pings(content, text: str) -> None:
    """Empty, huge, control characters, emoji, other languages, markdown: always a reply,
    never an error, and never a live @everyone/@here/<!channel>."""
    import asyncio

    core = Core(content)
    reply = asyncio.run(core.handle(Message("console", "fuzz", text)))
    out = render_text(reply)
    assert out and "went wrong" not in out
    assert "@everyone" not in out and "@here" not in out and "<!channel>" not in out and "<!here>" not in out


@given(st.text(min_size=0, max_size=3000), st.integers(min_value=20, max_value=500))
def test_split_text_keeps_every_word_within_the_limit(text: str, limit: int) -> None:
    chunks = split_text(text, limit)
    assert all(len(c) <= limit for c in chunks)
    assert "".join("".join(c.split()) for c in chunks) == "".join(text.split())  # nothing lost


def test_split_text_prefers_sentence_boundaries() -> None:
    text = "First sentence is here. Second sentence is here. Third one."
    assert split_text(text, 30) == ["First sentence is here.", "Second sentence is here.", "Third one."]


# --- the salary chart -----------------------------------------------------------------------

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _png_size(data: bytes) -> tuple[int, int]:
    """Width and height from the IHDR chunk, which a valid PNG has first."""
    import struct

    assert data[:8] == PNG_SIGNATURE and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


async def test_salary_reply_carries_a_chart_of_both_articles(content) -> None:
    """`salary senior` comes with a PNG of the bands, alt text that says them in words (both
    articles, the region note, the sources) and a text bar chart for terminals."""
    from PIL import Image
    import io

    reply = await Core(content).handle(Message("console", "c", "salary senior"))
    [chart] = reply.attachments
    assert chart.content_type == "image/png" and chart.filename.endswith(".png")
    width, height = _png_size(chart.data)
    assert 600 <= width <= 1200 and 200 <= height <= 1200
    Image.open(io.BytesIO(chart.data)).verify()
    for words in ("Senior", "$180,000-$220,000+ (2026 Guide)", "$170,000-$220,000+ (Skills, Salary and Courses)", "United States", "How to Become a Machine Learning Engineer"):
        assert words in chart.description
    assert len(chart.description) <= 1000 and not reply.text_in_file
    assert chart.text.count("█") > 10 and "$180k-$220k+" in chart.text and "2026 Guide" in chart.text


async def test_articles_that_agree_share_one_bar_and_the_region_note_is_drawn(content) -> None:
    """Mid level, where both articles give $140k-$170k, is one bar naming both; Europe's chart
    says whose bands it shows and what the articles say about Europe."""
    core = Core(content)
    mid = (await core.handle(Message("console", "c", "salary mid"))).attachments[0]
    assert sum("█" in line for line in mid.text.splitlines()) == 1 and "2026 Guide / Skills, Salary and Courses" in mid.text
    europe = (await core.handle(Message("console", "c", "salary senior europe"))).attachments[0]
    assert "no Europe figures" in europe.description and "30-50% lower" in europe.description


async def test_the_chart_is_drawn_once_and_redrawn_when_a_band_changes(content) -> None:
    """Later replies reuse the first drawing's bytes; a content reload that changes a band
    draws anew."""
    import dataclasses

    from bot import charts

    core = Core(content)
    first = (await core.handle(Message("console", "c", "salary senior"))).attachments[0]
    again = (await core.handle(Message("console", "d", "salary senior"))).attachments[0]
    assert again.data is first.data
    bands = tuple(dataclasses.replace(b, high=230_000) if b.level == "senior" else b for b in content.bands)
    changed = (await Core(dataclasses.replace(content, bands=bands)).handle(Message("console", "c", "salary senior"))).attachments[0]
    assert changed.data != first.data and "$230,000" in changed.description
    assert charts.salary_attachment(content, "x", content.regions["us"], []).text  # no bands: still a chart, never an error


def test_ask_attachments_writes_the_chart_png(tmp_path, capsys) -> None:
    """`mlbot ask --attachments DIR "salary senior"` writes the PNG and names it."""
    from mlbot.cli import main

    out = tmp_path / "files"
    assert main(["--db", str(tmp_path / "m.sqlite3"), "ask", "--attachments", str(out), "salary senior"]) == 0
    [png] = out.iterdir()
    data = png.read_bytes()
    assert png.suffix == ".png" and len(data) > 5_000 and _png_size(data)[0] > 0
    printed = capsys.readouterr().out
    assert "$180,000" in printed and f"Attachment: {png}" in printed


async def test_console_chat_draws_the_chart_as_text_bars(content) -> None:
    """`mlbot chat`: the salary answer is followed by its chart in text bars."""
    import io

    from adapters.console import chat

    out = io.StringIO()
    await chat(Core(content), "c", stdin=io.StringIO("salary senior\n"), stdout=out)
    answer, chart = out.getvalue().split("Senior salaries: United States (chart)")
    assert "$180,000" in answer and "█" in chart and "Sources:" in chart


async def test_wording_found_in_review(ask) -> None:
    """Issue 12's wording items, each as the member reads it."""
    path = await ask("path")
    assert "- Step 1, Python fundamentals:" in path and "- 1." not in path
    resources = await ask("resources")
    assert "Online courses: Coursera, Udemy and fast.ai." in resources and "Online course platforms" not in resources
    compare = await ask("compare mle ds")
    assert compare.count("Core focus:") == 1 and compare.count("(ML engineer vs data scientist vs data engineer)") == 0
    nudge = await ask("nudge on monday 9am Europe/Berlin")
    assert "every Monday at 09:00 (Europe/Berlin)." in nudge and "the timezone you gave" not in nudge


async def test_next_says_courses_when_a_step_has_several(ask) -> None:
    await ask("done python fundamentals")
    await ask("done statistics and linear algebra")
    text = await ask("next")  # Core ML algorithms: five courses serve it
    assert "Courses for it:" in text and "A course for it" not in text
