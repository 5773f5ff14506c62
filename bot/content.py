"""Load and validate `content/*.yaml` into the frozen, typed objects of `bot.content_types`.

Every fact carries the id of the article it comes from (`content/sources.yaml`); a fact
written as a plain string takes its entry's `source`. Loading checks types, required
fields, unknown keys, duplicate ids and every cross-reference, and raises
`ContentError` listing each problem as `file:line: message`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Collection, Sequence

import yaml

from bot.content_types import (
    Background,
    Band,
    Certification,
    CommandIntent,
    Comparison,
    ComparisonRow,
    Content,
    Concept,
    Course,
    Defaults,
    Fact,
    Faq,
    Level,
    NudgeText,
    PathSequence,
    PathStep,
    Place,
    Question,
    Region,
    Resource,
    Role,
    SalaryNote,
    ScopeTopic,
    Section,
    SmallTalk,
    Source,
    Topic,
)
from bot.schema import (
    F,
    Example,
    Context,
    ContentError,
    Invalid,
    Problem,
    boolean,
    date_text,
    ident,
    integer,
    list_of,
    load_file,
    number,
    record,
    ref,
    text,
)
from bot.text import FUNCTION_WORDS, phrase

__all__ = ["Content", "ContentError", "Problem", "load_content", "default_content_dir", "problem_summary"]

MIN_EXAMPLES = 8  # fewer and the intent model can't tell a phrasing from a coincidence


def default_content_dir() -> Path:
    """`content/` beside the package (a source checkout or an editable install)."""
    return Path(__file__).resolve().parent.parent / "content"


# --- specs -------------------------------------------------------------------------


def _fact(node: yaml.Node, ctx: Context) -> dict[str, Any]:
    """A fact is a string (the entry's source applies) or {text, source}."""
    if isinstance(node, yaml.MappingNode):
        return record(dict, {"text": F(text), "source": F(ref("source"))})(node, ctx)
    return {"text": text(node, ctx), "source": None}


_facts = list_of(_fact, min_items=1)


def _alias(node: yaml.Node, ctx: Context) -> str:
    """A name members type; a common function word would match ordinary sentences."""
    value = text(node, ctx)
    if phrase(value) in FUNCTION_WORDS:
        ctx.problem(node, f"alias '{value}' is a common function word: it would match ordinary sentences; use a longer phrase")
        raise Invalid
    return value


def _example(node: yaml.Node, ctx: Context) -> Example:
    value = text(node, ctx)
    return Example(value, ctx.file, node.start_mark.line + 1)


_aliases = F(list_of(_alias), required=False, default=())
_examples = F(list_of(_example, min_items=MIN_EXAMPLES))


def _with_sources(*fact_fields: str):
    """Give plain-string facts their entry's `source`; complain when neither has one."""

    def finish(values: dict[str, Any], node: yaml.Node, ctx: Context) -> None:
        entry_source = values.get("source")
        for name in fact_fields:
            raw = values.get(name)
            if raw is None:
                continue
            many = isinstance(raw, tuple)
            facts = []
            for item in raw if many else (raw,):
                source = item["source"] or entry_source
                if source is None:
                    ctx.problem(node, f"a fact in '{name}' has no source: add 'source' to the entry or the fact")
                    raise Invalid
                facts.append(Fact(item["text"], source))
            values[name] = tuple(facts) if many else facts[0]

    return finish


_SOURCE = F(ref("source"))
_OPTIONAL_SOURCE = F(ref("source"), required=False)

_source = record(Source, {"id": F(ident("source")), "title": F(text), "short": F(text), "published": F(date_text, False)})

_role = record(
    Role,
    {
        "id": F(ident("role")),
        "name": F(text),
        "aliases": _aliases,
        "summary": F(_fact),
        "facts": F(_facts, required=False, default=()),
        "career_changer": F(boolean, required=False, default=False),
        "ml_role": F(boolean, required=False, default=True),
        "source": _SOURCE,
    },
    finish=_with_sources("summary", "facts"),
)

_comparison = record(
    Comparison,
    {
        "id": F(ident("comparison")),
        "title": F(text),
        "columns": F(list_of(text, min_items=1)),
        "rows": F(list_of(record(ComparisonRow, {"role": F(ref("role")), "values": F(list_of(text, min_items=1))}), min_items=2)),
        "source": _SOURCE,
    },
)


_level = record(Level, {"id": F(ident("level")), "name": F(text), "aliases": _aliases, "read_as": _aliases})

_region = record(
    Region,
    {
        "id": F(ident("region")),
        "name": F(text),
        "aliases": _aliases,
        "bands_from": F(ref("region"), required=False),
        "facts": F(_facts, required=False, default=()),
        "source": _OPTIONAL_SOURCE,
    },
    finish=_with_sources("facts"),
)


def _band_finish(values: dict[str, Any], node: yaml.Node, ctx: Context) -> None:
    if values["low"] > values["high"]:
        ctx.problem(node, f"band low {values['low']} is above high {values['high']}")
        raise Invalid
    if None not in (values["years_min"], values["years_max"]) and values["years_min"] > values["years_max"]:
        ctx.problem(node, "band years_min is above years_max")
        raise Invalid


_band = record(
    Band,
    {
        "level": F(ref("level")),
        "region": F(ref("region")),
        "years_min": F(integer, required=False),
        "years_max": F(integer, required=False),
        "low": F(integer),
        "high": F(integer),
        "open_ended": F(boolean, required=False, default=False),
        "currency": F(text),
        "basis": F(text),
        "as_of": F(date_text),
        "source": _SOURCE,
        "note": F(text, required=False),
    },
    finish=_band_finish,
)

_salary_note = record(
    SalaryNote,
    {
        "id": F(ident("salary note")),
        "title": F(text),
        "keywords": F(list_of(_alias), required=False, default=()),
        "facts": F(_facts),
        "source": _OPTIONAL_SOURCE,
        "role": F(ref("role"), required=False),
    },
    finish=_with_sources("facts"),
)

_place = record(
    Place,
    {
        "name": F(text),
        "kind": F(text),
        "region": F(ref("region"), required=False),
        "hub": F(boolean, required=False, default=False),
    },
)

_section = record(
    Section,
    {"id": F(ident("interview section")), "title": F(text), "aliases": _aliases, "facts": F(_facts), "source": _OPTIONAL_SOURCE},
    finish=_with_sources("facts"),
)

_topic = record(Topic, {"id": F(ident("topic")), "name": F(text), "aliases": _aliases, "source": _SOURCE})

_concept = record(Concept, {"id": F(ident("concept")), "aliases": F(list_of(_alias, min_items=1))})

_question = record(
    Question,
    {
        "id": F(ident("question")),
        "topic": F(ref("topic")),
        "tags": F(list_of(text), required=False, default=()),
        "question": F(text),
        "answer": F(text),
        "source": _SOURCE,
        "prompted_by": F(ref("source"), required=False),
    },
)


def _rating(node: yaml.Node, ctx: Context) -> float:
    value = number(node, ctx)
    if not 0 <= value <= 10:
        ctx.problem(node, f"rating {value} is outside 0-10")
        raise Invalid
    return value


_course = record(
    Course,
    {
        "id": F(ident("course")),
        "title": F(text),
        "aliases": _aliases,
        "provider": F(text),
        "by": F(text, required=False),
        "rating": F(_rating),
        "covers": F(text),
        "suits": F(text),
        "path_step": F(ref("path step")),
        "source": _SOURCE,
    },
)

_certification = record(
    Certification, {"id": F(ident("certification")), "name": F(text), "aliases": _aliases, "source": _SOURCE}
)

_resource = record(
    Resource,
    {"id": F(ident("resource")), "name": F(text), "kind": F(text), "aliases": _aliases, "facts": F(_facts), "source": _OPTIONAL_SOURCE},
    finish=_with_sources("facts"),
)

_background = record(
    Background,
    {
        "id": F(ident("background")),
        "name": F(text),
        "aliases": _aliases,
        "courses": F(list_of(ref("course")), required=False, default=()),
        "timeline": F(_facts),
        "advice": F(_facts),
        "source": _OPTIONAL_SOURCE,
    },
    finish=_with_sources("timeline", "advice"),
)

_path_step = record(
    PathStep,
    {
        "id": F(ident("path step")),
        "name": F(text),
        "aliases": _aliases,
        "description": F(text),
        "this_week": F(text),
        "renamed_from": F(list_of(text), required=False, default=()),
        "source": _SOURCE,
    },
)

_sequence = record(
    PathSequence,
    {"id": F(ident("path sequence")), "title": F(text), "aliases": _aliases, "steps": F(list_of(text, min_items=2)), "source": _SOURCE},
)

_faq = record(
    Faq,
    {"id": F(ident("faq")), "question": F(text), "examples": _examples, "facts": F(_facts), "source": _OPTIONAL_SOURCE},
    finish=_with_sources("facts"),
)

def _needs(node: yaml.Node, ctx: Context) -> tuple[tuple[str, int], ...]:
    if not isinstance(node, yaml.MappingNode):
        ctx.problem(node, "expected a mapping of slot kind to how many, like {role: 2}")
        raise Invalid
    return tuple((text(k, ctx), integer(v, ctx)) for k, v in node.value)


_command_intent = record(
    CommandIntent, {"command": F(ident("command intent")), "examples": _examples, "needs": F(_needs, required=False, default=())}
)
_smalltalk = record(SmallTalk, {"id": F(ident("small talk")), "reply": F(text), "examples": _examples})
_scope = record(
    ScopeTopic,
    {
        "id": F(ident("scope topic")),
        "title": F(text),
        "reply": F(text),
        "nearest": F(list_of(text, min_items=1)),
        "examples": _examples,
    },
)

_nudge_text = record(NudgeText, {"id": F(ident("nudge text")), "text": F(text)})


def _file(defaults: dict[str, F] | None = None, **sections: tuple[Any, bool]):
    """A file: a mapping of top-level lists. `sections` maps key -> (item spec, required);
    `defaults`, when given, are the fields of the file's required `defaults:` mapping."""
    fields = {key: F(list_of(spec, min_items=1 if required else 0), required=required, default=()) for key, (spec, required) in sections.items()}
    if defaults is not None:
        fields["defaults"] = F(record(lambda **values: values, defaults))
    return record(lambda **values: values, fields)


FILES: dict[str, Any] = {
    "sources.yaml": _file(sources=(_source, True)),
    "roles.yaml": _file({"role": F(ref("role")), "compare_with": F(ref("role"))}, roles=(_role, True), comparisons=(_comparison, False)),
    "salaries.yaml": _file(
        {"region": F(ref("region")), "overview": F(ref("salary note"), required=False), "hubs": F(ref("salary note"), required=False)},
        levels=(_level, True), regions=(_region, True), bands=(_band, True), notes=(_salary_note, False), places=(_place, False),
    ),
    "interview.yaml": _file({"section": F(ref("interview section"))}, sections=(_section, True)),
    "practice.yaml": _file(topics=(_topic, True), questions=(_question, True), concepts=(_concept, False)),
    "courses.yaml": _file(
        {"certification_caveat": F(ref("faq"), required=False)},
        courses=(_course, True), certifications=(_certification, False), resources=(_resource, False), backgrounds=(_background, False),
    ),
    "path.yaml": _file({"sequence": F(ref("path sequence"), required=False)}, steps=(_path_step, True), sequences=(_sequence, False)),
    "faq.yaml": _file(faqs=(_faq, True)),
    "nudges.yaml": _file(texts=(_nudge_text, True)),
    "intents.yaml": _file(commands=(_command_intent, True), smalltalk=(_smalltalk, False)),
    "scope.yaml": _file(scope=(_scope, True)),
}

REQUIRED_NUDGE_TEXTS = ("greeting", "next-step", "practice-due", "streak", "tip", "manage")


def load_content(directory: Path | None = None, commands: Collection[str] | None = None) -> Content:
    """Read and validate every content file in `directory`; raise `ContentError`.
    `commands`, when given, are the command names intents may declare examples for."""
    directory = Path(directory) if directory is not None else default_content_dir()
    ctx = Context()
    data: dict[str, dict[str, Any]] = {}
    if not directory.is_dir():
        what = "is a file, not a content directory" if directory.exists() else "content directory not found"
        raise ContentError([Problem(str(directory), 1, f"{what} (give the folder that holds {', '.join(list(FILES)[:3])}, ...)")])
    for name, spec in FILES.items():
        path = directory / name
        display = f"{directory.name}/{name}"
        if not path.exists():
            ctx.problems.append(Problem(display, 1, "file is missing", root_cause=True))
            continue
        loaded = load_file(path, spec, ctx, display)
        if loaded is not None:
            data[name] = loaded
    for extra in sorted(p.name for p in directory.glob("*.yaml")):
        if extra not in FILES:
            ctx.problems.append(Problem(f"{directory.name}/{extra}", 1, f"unexpected content file (expected: {', '.join(FILES)})"))
    ctx.check_refs()
    if commands is not None:
        for (kind, name), (file, line) in ctx.ids.items():
            if kind == "command intent" and name not in commands:
                ctx.problems.append(Problem(file, line, f"unknown command '{name}' (known: {', '.join(sorted(commands))})"))
    if ctx.problems or len(data) != len(FILES):
        raise ContentError(ctx.problems)
    return _assemble(data, ctx, directory.name)


def problem_summary(problems: Sequence[Problem], others: int = 10) -> list[str]:
    """What `reload` and `content check` print, in `ContentError` order: every file that
    could not be read, then at most `others` problems, the rest as a count."""
    keep = sum(1 for p in problems if p.root_cause) + others
    lines = [str(p) for p in problems[:keep]]
    if len(problems) > keep:
        lines.append(f"and {len(problems) - keep} more (total {len(problems)})")
    return lines


def _assemble(data: dict[str, dict[str, Any]], ctx: Context, dirname: str) -> Content:
    by_id = lambda items: {item.id: item for item in items}  # noqa: E731
    comparisons = data["roles.yaml"]["comparisons"]
    for comparison in comparisons:
        file, line = ctx.ids[("comparison", comparison.id)]
        for row in comparison.rows:
            if len(row.values) != len(comparison.columns):
                ctx.problems.append(
                    Problem(file, line, f"comparison '{comparison.id}': row '{row.role}' has {len(row.values)} values for {len(comparison.columns)} columns")
                )
    texts = by_id(data["nudges.yaml"]["texts"])
    for needed in REQUIRED_NUDGE_TEXTS:
        if needed not in texts:
            ctx.problems.append(Problem(f"{dirname}/nudges.yaml", 1, f"missing nudge text '{needed}'"))
    content = Content(
        sources=by_id(data["sources.yaml"]["sources"]),
        roles=by_id(data["roles.yaml"]["roles"]),
        comparisons=comparisons,
        levels=by_id(data["salaries.yaml"]["levels"]),
        regions=by_id(data["salaries.yaml"]["regions"]),
        bands=data["salaries.yaml"]["bands"],
        salary_notes=by_id(data["salaries.yaml"]["notes"]),
        sections=by_id(data["interview.yaml"]["sections"]),
        topics=by_id(data["practice.yaml"]["topics"]),
        questions=by_id(data["practice.yaml"]["questions"]),
        concepts=by_id(data["practice.yaml"]["concepts"]),
        courses=by_id(data["courses.yaml"]["courses"]),
        certifications=by_id(data["courses.yaml"]["certifications"]),
        resources=by_id(data["courses.yaml"]["resources"]),
        backgrounds=by_id(data["courses.yaml"]["backgrounds"]),
        path_steps=by_id(data["path.yaml"]["steps"]),
        sequences=data["path.yaml"]["sequences"],
        faqs=by_id(data["faq.yaml"]["faqs"]),
        nudge_texts=texts,
        command_intents={i.command: i for i in data["intents.yaml"]["commands"]},
        smalltalk=by_id(data["intents.yaml"]["smalltalk"]),
        scope=by_id(data["scope.yaml"]["scope"]),
        places={phrase(p.name): p for p in data["salaries.yaml"]["places"]},
        defaults=Defaults(
            role=data["roles.yaml"]["defaults"]["role"],
            compare_with=data["roles.yaml"]["defaults"]["compare_with"],
            region=data["salaries.yaml"]["defaults"]["region"],
            overview=data["salaries.yaml"]["defaults"].get("overview"),
            hubs=data["salaries.yaml"]["defaults"].get("hubs"),
            section=data["interview.yaml"]["defaults"]["section"],
            sequence=data["path.yaml"]["defaults"].get("sequence"),
            certification_caveat=data["courses.yaml"]["defaults"].get("certification_caveat"),
        ),
    )
    tags = {tag for q in content.questions.values() for tag in q.tags}
    for concept in content.concepts.values():
        if concept.id not in tags:
            file, line = ctx.ids[("concept", concept.id)]
            ctx.problems.append(Problem(file, line, f"concept '{concept.id}' is no question's tag: aliases need a tag to point at"))
    ctx.problems.extend(_duplicate_examples(content))
    if ctx.problems:
        raise ContentError(ctx.problems)
    return content


def _duplicate_examples(content: Content) -> list[Problem]:
    """An example under two intents teaches the model both; the same one twice, nothing."""
    problems: list[Problem] = []
    seen: dict[str, tuple[str, Example]] = {}
    for intent, examples in content.examples().items():
        for example in examples:
            key = phrase(example.text)
            first = seen.get(key)
            if first is None:
                seen[key] = (intent, example)
                continue
            where = f"{first[1].file}:{first[1].line}"
            if first[0] == intent:
                problems.append(Problem(example.file, example.line, f"example \"{example.text}\" repeats one at {where}"))
            else:
                problems.append(Problem(example.file, example.line, f"example \"{example.text}\" is also an example of '{first[0]}' ({where}): keep it under one intent"))
    return problems
