"""The content's typed model: frozen objects for what `content/*.yaml` holds, and `Content`,
everything the bot knows. `bot.content` loads and validates them; the rest only reads them.
"""
from __future__ import annotations

from dataclasses import dataclass

from bot.schema import Example


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
    ml_role: bool = True  # False: a neighbouring job to compare with (software engineer), not listed as an ML role


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
class Concept:
    """Other names members use for a practice-bank tag ("backprop" for backpropagation)."""

    id: str  # a tag some question carries
    aliases: tuple[str, ...]


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
    concepts: dict[str, Concept]
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
