"""Load and validate `content/*.yaml` into frozen, typed objects.

Every fact carries the id of the article it comes from (`content/sources.yaml`); a fact
written as a plain string takes its entry's `source`. Loading checks types, required
fields, unknown keys, duplicate ids and every cross-reference, and raises
`ContentError` listing each problem as `file:line: message`.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Collection, Sequence

import yaml

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


@dataclass(frozen=True, slots=True)
class Fact:
    text: str
    source: str


@dataclass(frozen=True, slots=True)
class Source:
    id: str
    title: str
    short: str  # a few words, for side-by-side figures
    published: str | None


@dataclass(frozen=True, slots=True)
class Role:
    id: str
    name: str
    aliases: tuple[str, ...]
    summary: Fact
    facts: tuple[Fact, ...]
    career_changer: bool
    source: str


@dataclass(frozen=True, slots=True)
class ComparisonRow:
    role: str
    values: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Comparison:
    id: str
    title: str
    columns: tuple[str, ...]
    rows: tuple[ComparisonRow, ...]
    source: str


@dataclass(frozen=True, slots=True)
class Level:
    id: str
    name: str
    aliases: tuple[str, ...]
    # Titles the articles have no band of their own for, read as this level and said so ("lead").
    read_as: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Region:
    id: str
    name: str
    aliases: tuple[str, ...]
    bands_from: str | None  # a region whose bands apply here (remote -> us)
    facts: tuple[Fact, ...]
    source: str | None


@dataclass(frozen=True, slots=True)
class Band:
    level: str
    region: str
    years_min: int | None  # None: the article gives no years for this level
    years_max: int | None
    low: int
    high: int
    open_ended: bool  # the article writes "$220,000+"
    currency: str
    basis: str
    as_of: str
    source: str
    note: str | None


@dataclass(frozen=True, slots=True)
class SalaryNote:
    id: str
    title: str
    keywords: tuple[str, ...]
    facts: tuple[Fact, ...]
    source: str | None
    role: str | None = None  # shown when a member asks about this role's pay


@dataclass(frozen=True, slots=True)
class Defaults:
    """The ids handlers fall back on, declared in content so a rename is checked, not a crash."""

    role: str  # roles.yaml: the role a question is about when it names none
    compare_with: str  # roles.yaml: the second role when a comparison names one
    region: str  # salaries.yaml: the bands shown with no region, and for regions without figures
    overview: str | None  # salaries.yaml: the note shown when nothing narrows a salary question
    hubs: str | None  # salaries.yaml: the note shown beside a tech-hub city
    section: str  # interview.yaml: the section `interview` shows with none named
    sequence: str | None  # path.yaml: the sequence `path` shows with none named
    certification_caveat: str | None  # courses.yaml: the FAQ whose facts qualify every certificate list


@dataclass(frozen=True, slots=True)
class Section:
    """An interview-advice section (tips, attire, portfolio, ...)."""

    id: str
    title: str
    aliases: tuple[str, ...]
    facts: tuple[Fact, ...]
    source: str | None


@dataclass(frozen=True, slots=True)
class Topic:
    id: str
    name: str
    aliases: tuple[str, ...]
    source: str


@dataclass(frozen=True, slots=True)
class Question:
    id: str
    topic: str
    tags: tuple[str, ...]
    question: str
    answer: str
    source: str
    prompted_by: str | None


@dataclass(frozen=True, slots=True)
class Course:
    id: str
    title: str
    aliases: tuple[str, ...]
    provider: str
    by: str | None
    rating: float
    covers: str
    suits: str
    path_step: str
    source: str


@dataclass(frozen=True, slots=True)
class Certification:
    id: str
    name: str
    aliases: tuple[str, ...]
    source: str


@dataclass(frozen=True, slots=True)
class Resource:
    id: str
    name: str
    kind: str
    aliases: tuple[str, ...]
    facts: tuple[Fact, ...]
    source: str | None


@dataclass(frozen=True, slots=True)
class Background:
    id: str
    name: str
    aliases: tuple[str, ...]
    courses: tuple[str, ...]
    timeline: tuple[Fact, ...]
    advice: tuple[Fact, ...]
    source: str | None


@dataclass(frozen=True, slots=True)
class PathStep:
    id: str
    name: str
    aliases: tuple[str, ...]
    description: str
    this_week: str
    renamed_from: tuple[str, ...]
    source: str


@dataclass(frozen=True, slots=True)
class PathSequence:
    id: str
    title: str
    aliases: tuple[str, ...]
    steps: tuple[str, ...]
    source: str


@dataclass(frozen=True, slots=True)
class Faq:
    id: str
    question: str
    examples: tuple[Example, ...]
    facts: tuple[Fact, ...]
    source: str | None


@dataclass(frozen=True, slots=True)
class CommandIntent:
    """The free-text phrasings of a command (`content/intents.yaml`)."""

    command: str
    examples: tuple[Example, ...]
    needs: tuple[tuple[str, int], ...]  # slot kind -> distinct values the command can't answer without


@dataclass(frozen=True, slots=True)
class SmallTalk:
    id: str
    reply: str
    examples: tuple[Example, ...]


@dataclass(frozen=True, slots=True)
class ScopeTopic:
    """Something the articles don't cover: an honest reply and the nearest covered topics."""

    id: str
    title: str
    reply: str
    nearest: tuple[str, ...]  # command lines offered as choices
    examples: tuple[Example, ...]


@dataclass(frozen=True, slots=True)
class Place:
    """A city or country the articles give no figures for, and what they do cover nearby."""

    name: str
    kind: str
    region: str | None
    hub: bool


@dataclass(frozen=True, slots=True)
class NudgeText:
    id: str
    text: str


@dataclass(frozen=True)
class Content:
    """Everything the bot knows, validated. Lookups by id are dicts built once."""

    sources: dict[str, Source]
    roles: dict[str, Role]
    comparisons: tuple[Comparison, ...]
    levels: dict[str, Level]
    regions: dict[str, Region]
    bands: tuple[Band, ...]
    salary_notes: dict[str, SalaryNote]
    sections: dict[str, Section]
    topics: dict[str, Topic]
    questions: dict[str, Question]
    courses: dict[str, Course]
    certifications: dict[str, Certification]
    resources: dict[str, Resource]
    backgrounds: dict[str, Background]
    path_steps: dict[str, PathStep]
    sequences: tuple[PathSequence, ...]
    faqs: dict[str, Faq]
    nudge_texts: dict[str, NudgeText]
    command_intents: dict[str, CommandIntent]
    smalltalk: dict[str, SmallTalk]
    scope: dict[str, ScopeTopic]
    places: dict[str, Place]  # by phrase of the name
    defaults: Defaults

    def examples(self) -> dict[str, tuple[Example, ...]]:
        """Every free-text intent and its examples: commands by name, `faq:ID`,
        `scope:ID`, `smalltalk:ID`."""
        out: dict[str, tuple[Example, ...]] = {c.command: c.examples for c in self.command_intents.values()}
        out.update((f"faq:{f.id}", f.examples) for f in self.faqs.values())
        out.update((f"scope:{t.id}", t.examples) for t in self.scope.values())
        out.update((f"smalltalk:{t.id}", t.examples) for t in self.smalltalk.values())
        return out

    def titles(self, *source_ids: str | None) -> tuple[str, ...]:
        """Distinct source titles in first-seen order."""
        seen: dict[str, None] = {}
        for sid in source_ids:
            if sid:
                seen.setdefault(self.sources[sid].title, None)
        return tuple(seen)

    def step_renames(self) -> dict[str, str]:
        """Old path-step id -> current id, from `renamed_from`."""
        return {old: step.id for step in self.path_steps.values() for old in step.renamed_from}


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
    "practice.yaml": _file(topics=(_topic, True), questions=(_question, True)),
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
