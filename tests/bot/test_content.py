"""Content loads, and every kind of editing mistake is reported as file:line and a sentence."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bot.content import ContentError, load_content

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def content_dir(tmp_path: Path) -> Path:
    target = tmp_path / "content"
    shutil.copytree(ROOT / "content", target)
    return target


def edit(path: Path, old: str, new: str) -> int:
    """Replace the first `old` with `new`; return the 1-based line where it was."""
    text = path.read_text()
    index = text.index(old)
    path.write_text(text.replace(old, new, 1))
    return text[:index].count("\n") + 1


def problems(directory: Path) -> list[str]:
    with pytest.raises(ContentError) as info:
        load_content(directory)
    return [str(p) for p in info.value.problems]


def test_shipped_content_is_valid_and_complete(content) -> None:
    """The shipped content carries what the issue lists: 40+ questions, 6 courses, 4 certifications."""
    assert len(content.questions) >= 40
    assert len(content.courses) == 6 and len(content.certifications) == 4
    assert {"entry", "mid", "senior", "staff"} <= set(content.levels)
    assert {q.topic for q in content.questions.values()} == set(content.topics)
    assert all(b.source in content.sources for b in content.bands)


def test_every_salary_band_names_its_source_and_basis(content) -> None:
    for band in content.bands:
        assert band.basis and band.as_of and band.currency == "USD"


def test_unknown_key(content_dir: Path) -> None:
    line = edit(content_dir / "roles.yaml", "    name: Data scientist", "    nmae: Data scientist")
    assert f"content/roles.yaml:{line}: unknown key 'nmae' (expected one of: id, name, aliases, summary, facts, career_changer, ml_role, source)" in problems(content_dir)


def test_missing_required_field(content_dir: Path) -> None:
    edit(content_dir / "courses.yaml", "    rating: 9.8\n", "")
    found = problems(content_dir)
    assert any(p.startswith("content/courses.yaml:") and "missing required key 'rating'" in p for p in found), found


def test_wrong_type(content_dir: Path) -> None:
    line = edit(content_dir / "courses.yaml", "rating: 9.8", "rating: high")
    assert f"content/courses.yaml:{line}: expected a number, got 'high'" in problems(content_dir)


def test_duplicate_id(content_dir: Path) -> None:
    line = edit(content_dir / "roles.yaml", "  - id: data-engineer", "  - id: data-scientist")
    assert any(p.startswith(f"content/roles.yaml:{line}: duplicate role id 'data-scientist' (first defined at content/roles.yaml:") for p in problems(content_dir))


def test_broken_cross_reference(content_dir: Path) -> None:
    line = edit(content_dir / "courses.yaml", "path_step: production", "path_step: prodution")
    found = problems(content_dir)
    assert any(p.startswith(f"content/courses.yaml:{line}: unknown path step 'prodution'") for p in found), found


def test_question_with_unknown_topic(content_dir: Path) -> None:
    line = edit(content_dir / "practice.yaml", "topic: sql", "topic: sequel")
    assert any(p.startswith(f"content/practice.yaml:{line}: unknown topic 'sequel'") for p in problems(content_dir))


def test_unknown_source(content_dir: Path) -> None:
    line = edit(content_dir / "salaries.yaml", "source: guide-2026}", "source: glassdoor}")
    assert any(p.startswith(f"content/salaries.yaml:{line}: unknown source 'glassdoor'") for p in problems(content_dir))


def test_yaml_syntax_error(content_dir: Path) -> None:
    edit(content_dir / "faq.yaml", "  - id: phd", "  - id: [phd")
    found = problems(content_dir)
    assert any(p.startswith("content/faq.yaml:") and "not valid YAML" in p for p in found), found


def test_band_low_above_high(content_dir: Path) -> None:
    line = edit(content_dir / "salaries.yaml", "low: 100000, high: 130000", "low: 190000, high: 130000")
    assert f"content/salaries.yaml:{line}: band low 190000 is above high 130000" in problems(content_dir)


def test_several_problems_reported_at_once(content_dir: Path) -> None:
    """An editor fixes everything in one pass: all problems come back, not just the first."""
    edit(content_dir / "courses.yaml", "rating: 9.8", "rating: high")
    edit(content_dir / "roles.yaml", "    name: Data scientist", "    nmae: Data scientist")
    assert len(problems(content_dir)) >= 2


def test_content_check_command_prints_file_line_and_exits_1(content_dir: Path) -> None:
    line = edit(content_dir / "courses.yaml", "rating: 9.8", "rating: high")
    run = subprocess.run([sys.executable, "-m", "mlbot", "content", "check", str(content_dir)], capture_output=True, text=True)
    assert run.returncode == 1
    assert f"content/courses.yaml:{line}: expected a number, got 'high'" in run.stdout
    assert "Traceback" not in run.stdout + run.stderr


def test_bot_refuses_to_start_on_bad_content(content_dir: Path, tmp_path: Path) -> None:
    edit(content_dir / "courses.yaml", "rating: 9.8", "rating: high")
    run = subprocess.run(
        [sys.executable, "-m", "mlbot", "ask", "--content", str(content_dir), "--db", str(tmp_path / "x.sqlite3"), "salary"],
        capture_output=True, text=True,
    )
    assert run.returncode == 1
    assert "content/courses.yaml:" in run.stderr and "Traceback" not in run.stderr


async def test_bad_reload_keeps_old_content(content_dir: Path, content) -> None:
    from bot.core import Core

    core = Core(load_content(content_dir))
    edit(content_dir / "courses.yaml", "rating: 9.8", "rating: high")
    problems_found = core.reload(content_dir)
    assert problems_found and core.content.courses["structuring-ml-projects"].rating == 9.8


async def test_admin_reload_reads_the_directory_the_bot_started_from(content_dir: Path) -> None:
    """`reload` picks up an edit in the bot's own content folder; a broken edit is refused."""
    from bot.core import Core
    from bot.messages import Message
    from bot.replies import render_text

    core = Core(load_content(content_dir), content_dir=content_dir)
    edit(content_dir / "courses.yaml", "rating: 9.8", "rating: 9.9")
    assert "Content reloaded" in render_text(await core.handle(Message("console", "a", "reload", is_admin=True)))
    assert core.content.courses["structuring-ml-projects"].rating == 9.9
    edit(content_dir / "courses.yaml", "rating: 9.9", "rating: lots")
    refused = render_text(await core.handle(Message("console", "a", "reload", is_admin=True)))
    assert "not reloaded" in refused and "courses.yaml" in refused
    assert core.content.courses["structuring-ml-projects"].rating == 9.9


@pytest.mark.parametrize(
    ("file", "old", "new", "expected"),
    [
        ("salaries.yaml", "  - id: us\n", "  - id: usa\n", "unknown region 'us'"),
        ("interview.yaml", "  - id: tips\n", "  - id: advice\n", "unknown interview section 'tips'"),
        ("roles.yaml", "  - id: data-scientist\n", "  - id: datascientist\n", "unknown role 'data-scientist'"),
        ("path.yaml", "  - id: six-step\n", "  - id: six-steps\n", "unknown path sequence 'six-step'"),
    ],
)
def test_renaming_a_default_is_a_file_line_error_not_a_crash(content_dir: Path, file: str, old: str, new: str, expected: str) -> None:
    """The ids handlers fall back on are declared under `defaults:`; renaming one is caught."""
    edit(content_dir / file, old, new)
    found = problems(content_dir)
    assert any(expected in p and f"{file}:" in p for p in found), found


def test_defaults_are_required(content_dir: Path) -> None:
    edit(content_dir / "interview.yaml", "defaults:\n  section: tips", "")
    assert any("interview.yaml" in p and "defaults" in p for p in problems(content_dir))


def _break_sources(content_dir: Path) -> int:
    """An unclosed quote in sources.yaml: every `source:` elsewhere then fails to resolve."""
    edit(content_dir / "sources.yaml", '    short: "2026 Guide"', '    short: "2026 Guide')
    found = problems(content_dir)
    assert len(found) > 20, found
    return len(found)


def test_a_syntax_error_comes_before_its_knock_on_problems(content_dir: Path) -> None:
    _break_sources(content_dir)
    first = problems(content_dir)[0]
    assert first.startswith("content/sources.yaml:") and "not valid YAML: did not find expected key" in first, first


async def test_reload_shows_the_syntax_error_first_and_the_total(content_dir: Path) -> None:
    from bot.core import Core
    from bot.messages import Message

    core = Core(load_content(content_dir), content_dir=content_dir)
    total = _break_sources(content_dir)
    reply = await core.handle(Message("console", "a", "reload", is_admin=True))
    assert "not reloaded" in reply.title
    assert reply.items[0].startswith("content/sources.yaml:") and "not valid YAML" in reply.items[0]
    assert len(reply.items) == 12 and reply.items[-1] == f"and {total - 11} more (total {total})"


def test_content_check_shows_the_syntax_error_first_and_the_total(content_dir: Path) -> None:
    total = _break_sources(content_dir)
    run = subprocess.run([sys.executable, "-m", "mlbot", "content", "check", str(content_dir)], capture_output=True, text=True)
    lines = run.stdout.splitlines()
    assert run.returncode == 1
    assert lines[0].startswith("content/sources.yaml:") and "not valid YAML" in lines[0], lines
    assert len(lines) == 12 and lines[-1] == f"and {total - 11} more (total {total})", lines


def test_a_file_given_as_the_content_directory_is_called_a_file(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("# not content\n")
    assert any("is a file, not a content directory" in p for p in problems(readme))
    assert any("content directory not found" in p for p in problems(tmp_path / "missing"))


def test_a_concept_alias_must_point_at_a_questions_tag(content_dir: Path) -> None:
    line = edit(content_dir / "practice.yaml", "- {id: backpropagation,", "- {id: backpropogation,")
    found = problems(content_dir)
    assert any(p.startswith(f"content/practice.yaml:{line}: concept 'backpropogation' is no question's tag") for p in found), found
