"""Commands that answer from content: roles, salaries, interviews, courses, the path."""
from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING

from bot.charts import salary_attachment
from bot.commands import Choice, CommandSpec, Param
from bot.content_types import Band, Content, Fact
from bot.replies import Action, Field, Reply
from bot.suggest import closest, did_you_mean
from bot.text import money, quote

if TYPE_CHECKING:
    from bot.request import Bot, Request



def facts_reply(title: str, facts: tuple[Fact, ...], content: Content, **kw: object) -> Reply:
    return Reply(title=title, items=tuple(f.text for f in facts), sources=content.titles(*(f.source for f in facts)), **kw)  # type: ignore[arg-type]


def _unknown(kind: str, leftover: str, options: dict[str, str], hint: str) -> Reply:
    near = closest(leftover, options)
    text = f"I don't know a {kind} called \"{quote(leftover)}\".{did_you_mean(options[k] for k in near)}"
    return Reply(text=f"{text} {hint}")


# --- roles ---------------------------------------------------------------------------


async def role(req: "Request") -> Reply:
    c = req.content
    role_id = req.args.get("name")
    if role_id is None and req.route.leftover:
        return _unknown("role", req.route.leftover, {r.id: r.name for r in c.roles.values()}, "Say `role` for the list.")
    if role_id is None:
        lines = [f"{r.name}: {r.summary.text}" for r in c.roles.values() if r.ml_role and not r.career_changer]
        changers = ", ".join(r.name for r in c.roles.values() if r.ml_role and r.career_changer)
        return Reply(
            title="ML roles",
            items=tuple(lines),
            text=f"Most accessible to career changers: {changers}. Ask `role <name>` or `compare <role> <role>`.",
            sources=c.titles(*(r.summary.source for r in c.roles.values())),
        )
    r = c.roles[role_id]
    facts = (r.summary, *r.facts)
    return Reply(title=r.name, text=r.summary.text, items=tuple(f.text for f in r.facts), sources=c.titles(*(f.source for f in facts)))


COMPARED_FACTS = 4  # a role's facts shown in a comparison no table covers


async def compare(req: "Request") -> Reply:
    c = req.content
    ids = list(dict.fromkeys(req.route.ids("role") or [req.args[k] for k in ("first", "second") if k in req.args]))
    default, partner = c.defaults.role, c.defaults.compare_with
    if ids == [default]:  # "ML engineers at startups vs big companies": the role itself answers
        req.args["name"] = default
        return await role(req)
    if len(ids) == 1:
        ids = [default, ids[0]]
    if not ids:
        ids = [default, partner]
    fields: list[Field] = []
    sources: list[str] = []
    tabled: set[str] = set()
    for table in c.comparisons:  # one field per table; each column once, the roles side by side under it
        rows = sorted((row for row in table.rows if row.role in ids), key=lambda row: ids.index(row.role))
        if len(rows) < 2:  # a table with one of the roles compares nothing
            continue
        lines = [f"{column}:\n" + "\n".join(f"  {c.roles[row.role].name}: {row.values[n]}" for row in rows) for n, column in enumerate(table.columns)]
        fields.append(Field(table.title, "\n".join(lines)))
        sources.append(table.source)
        tabled.update(row.role for row in rows)
    for i in ids:  # a role no table sets beside the others speaks through its own facts
        if i not in tabled and c.roles[i].facts:
            fields.append(Field(c.roles[i].name, "\n".join(f.text for f in c.roles[i].facts[:COMPARED_FACTS])))
            sources.extend(f.source for f in c.roles[i].facts[:COMPARED_FACTS])
    summaries = [f"{c.roles[i].name}: {c.roles[i].summary.text}" for i in ids]
    return Reply(
        title=" vs ".join(c.roles[i].name for i in ids),
        text="\n".join(summaries),
        fields=tuple(fields),
        sources=c.titles(*sources, *(c.roles[i].summary.source for i in ids)),
    )


# --- salaries ------------------------------------------------------------------------


def _band_line(band: Band, c: Content) -> str:
    high = money(band.high, band.currency) + ("+" if band.open_ended else "")
    if band.years_min is None:
        years = "years not stated"
    elif band.years_max is None:
        years = f"{band.years_min}+ yrs"
    else:
        years = f"{band.years_min}-{band.years_max} yrs"
    note = f"; {band.note}" if band.note else ""
    return f"{money(band.low, band.currency)}-{high} ({years}; {band.basis}, {band.as_of}{note}): {c.sources[band.source].short}"


def levels_for_years(years: int, bands: tuple[Band, ...]) -> list[str]:
    """Level ids whose bands include `years` of experience, in level order."""
    found: dict[str, None] = {}
    for band in bands:
        if band.years_min is None or years < band.years_min:
            continue
        if band.years_max is None or years <= band.years_max:
            found.setdefault(band.level, None)
    return list(found)


def _coverage(req: "Request", c: Content, region_ids: list[str], note_ids: list[str]) -> list[str]:
    """Say once what the articles don't give figures for (a place, another role), and
    pick the region and notes that come closest. Mutates `region_ids` and `note_ids`."""
    said: list[str] = []
    for entity in req.route.entities:
        level = c.levels.get(entity.id) if entity.kind == "level" else None
        if level is not None and entity.text in level.read_as:
            said.append(f"The articles have no band for \u201c{entity.text}\u201d; read as {level.name}.")
    places = [c.places[key] for key in req.route.ids("place") if key in c.places]
    # "San Francisco" is also an alias of the US region: a region only counts as named
    # when its words are not the place's own.
    at_place = {e.position for e in req.route.entities if e.kind == "place"}
    if places and not any(e.kind == "region" and e.position not in at_place for e in req.route.entities):
        place = places[0]
        if place.region:
            if place.region not in region_ids:
                region_ids.append(place.region)
            said.append(f"The articles give no figures for {place.name}; these are their {c.regions[place.region].name} figures.")
        else:
            said.append(f"The articles give no figures for {place.name}; the {c.regions[c.defaults.region].name} bands for reference.")
        if place.hub and c.defaults.hubs:
            note_ids.append(c.defaults.hubs)
    others = [r for r in req.route.ids("role") if r != c.defaults.role]
    if others and c.defaults.role not in req.route.ids("role"):
        names = ", ".join(c.roles[r].name.lower() for r in others)
        said.append(f"The articles give no salary figures for {names}; what they say about ML engineer pay:")
        note_ids.extend(n.id for n in c.salary_notes.values() if n.role in others and n.id not in note_ids)
    return said


async def salary(req: "Request") -> Reply:
    c = req.content
    level_ids = list(dict.fromkeys(req.route.ids("level"))) or ([req.args["level"]] if "level" in req.args else [])
    region_ids = list(dict.fromkeys(req.route.ids("region"))) or ([req.args["region"]] if "region" in req.args else [])
    note_ids = list(dict.fromkeys(req.route.ids("salary_note")))
    years = req.args.get("years")
    preface = _coverage(req, c, region_ids, note_ids)
    if years is not None and not level_ids:
        level_ids = levels_for_years(int(years), c.bands)
        if level_ids:
            names = " / ".join(c.levels[l].name for l in level_ids)
            preface.append(f"{years} years of experience falls in: {names}" + (" (the articles draw the line differently)." if len(level_ids) > 1 else "."))
    region = c.regions[region_ids[0]] if region_ids else c.regions[c.defaults.region]
    band_region = region.bands_from or region.id
    shown_facts: list[Fact] = list(region.facts)
    # The tech-hub note is context for a city's figures, not the answer: it follows them.
    context = [c.salary_notes[n] for n in dict.fromkeys(note_ids) if n == c.defaults.hubs]
    for note_id in dict.fromkeys(note_ids):
        if note_id != c.defaults.hubs:
            shown_facts.extend(c.salary_notes[note_id].facts)
    if not level_ids and not region_ids and not note_ids and years is None:
        shown_facts[:0] = c.salary_notes[c.defaults.overview].facts if c.defaults.overview else ()
    bands = [b for b in c.bands if b.region == band_region and (not level_ids or b.level in level_ids)]
    reference = ""
    if not bands:
        fallback = c.regions[c.defaults.region]
        bands = [b for b in c.bands if b.region == (fallback.bands_from or fallback.id) and (not level_ids or b.level in level_ids)]
        reference = f"The articles give no {region.name} figures; the {fallback.name} bands for reference:"
    by_level: dict[str, list[Band]] = defaultdict(list)
    for band in bands:
        by_level[band.level].append(band)
    fields = tuple(Field(c.levels[level].name, "\n".join(_band_line(b, c) for b in level_bands)) for level, level_bands in by_level.items())
    fields += tuple(Field(note.title, "\n".join(f.text for f in note.facts)) for note in context)
    title_level = " / ".join(c.levels[l].name for l in level_ids) if level_ids else "ML engineer"
    text_parts = preface + [f.text for f in shown_facts] + ([reference] if reference else [])
    title = f"{title_level} salaries: {region.name}"
    return Reply(
        title=title,
        text="\n".join(dict.fromkeys(text_parts)),
        fields=fields,
        sources=c.titles(*(f.source for f in shown_facts), *(b.source for b in bands), *(f.source for note in context for f in note.facts)),
        attachments=(salary_attachment(c, title, region, bands, reference),) if bands else (),
    )


# --- interviews ----------------------------------------------------------------------

QUESTION_SECTION = "question"


async def interview(req: "Request") -> Reply:
    c = req.content
    section_id = req.args.get("section") or c.defaults.section
    if section_id == QUESTION_SECTION:
        return interview_question(req)
    section = c.sections[section_id]
    other = ", ".join(f"`interview {s}`" for s in c.sections if s != section_id)
    practice = f"`practice {req.args['topic']}`" if "topic" in req.args else "`practice [topic]`"
    return facts_reply(section.title, section.facts, c, footer=f"More: {other}. Drill questions: {practice}.")


def interview_question(req: "Request") -> Reply:
    c = req.content
    topic = req.args.get("topic")
    pool = [q for q in c.questions.values() if topic is None or q.topic == topic]
    q = req.core.rng.choice(pool)
    return Reply(
        title=f"Interview question ({c.topics[q.topic].name})",
        text=q.question,
        fields=(Field("Model answer", q.answer),),
        sources=c.titles(q.source, q.prompted_by),
    )


async def explain(req: "Request") -> Reply:
    """A concept from the practice bank: the question that covers it best, answered."""
    c = req.content
    concepts = set(req.route.ids("concept")) or ({req.args["concept"]} if "concept" in req.args else set())
    scored = [(len(concepts & set(q.tags)), q) for q in c.questions.values()]
    best, q = max(scored, key=lambda pair: pair[0])
    if best == 0:
        return Reply(text="I don't have that concept in the practice bank. Say `practice` for a question, or `help`.")
    return Reply(
        title=q.question,
        text=q.answer,
        footer=f"More like this: `practice {q.topic}`.",
        sources=c.titles(q.source, q.prompted_by),
    )


# --- courses -------------------------------------------------------------------------


def _course_line(course_id: str, c: Content) -> str:
    x = c.courses[course_id]
    by = f", {x.by}" if x.by else ""
    return f"{x.title} ({x.provider}{by}), rated {x.rating:g} on {x.provider}"


async def course(req: "Request") -> Reply:
    c = req.content
    course_id = req.args.get("name")
    if course_id is None and req.route.leftover and "background" not in req.args:
        return _unknown("course", req.route.leftover, {x.id: x.title for x in c.courses.values()}, "Say `courses` for the list.")
    if course_id is None:
        return await courses(req)
    x = c.courses[course_id]
    step = c.path_steps[x.path_step]
    fields = [Field("Provider", x.provider + (f" ({x.by})" if x.by else "")), Field("Rating", f"{x.rating:g} on {x.provider}")]
    fields += [Field("What it covers", x.covers), Field("Who it suits", x.suits), Field("Path step", step.name)]
    return Reply(title=x.title, fields=tuple(fields), sources=c.titles(x.source))


async def courses(req: "Request") -> Reply:
    c = req.content
    background_id = req.args.get("background")
    if background_id:
        b = c.backgrounds[background_id]
        items = tuple(_course_line(i, c) for i in b.courses)
        facts = (*b.advice, *b.timeline)
        return Reply(
            title=f"Courses for a {b.name.lower()} background",
            text="\n".join(f.text for f in facts),
            items=items,
            sources=c.titles(*(f.source for f in facts), *(c.courses[i].source for i in b.courses)),
        )
    named = req.route.ids("course")
    if named:  # "which courses cover deployment": the courses those words name
        asked = ", ".join(dict.fromkeys(f"\u201c{e.text}\u201d" for e in req.route.entities if e.kind == "course"))
        return Reply(
            title=f"Courses for {asked}",
            items=tuple(f"{_course_line(i, c)}: {c.courses[i].covers}" for i in named),
            footer="More on one: `course <name>`. All of them: `courses`.",
            sources=c.titles(*(c.courses[i].source for i in named)),
        )
    ranked = sorted(c.courses.values(), key=lambda x: -x.rating)
    backgrounds = ", ".join(f"`courses for {b.id}`" for b in c.backgrounds.values())
    return Reply(
        title="Top-rated courses for ML engineers",
        items=tuple(f"{_course_line(x.id, c)}: {x.covers}" for x in ranked),
        footer=f"Which first? Try {backgrounds}. Also `certifications` and `resources`.",
        sources=c.titles(*(x.source for x in ranked)),
    )


async def certifications(req: "Request") -> Reply:
    c = req.content
    certs = list(c.certifications.values())
    caveat = c.faqs[c.defaults.certification_caveat].facts if c.defaults.certification_caveat else ()  # certificates alone are not enough
    return Reply(
        title="Certifications that can boost your career",
        items=tuple(x.name for x in certs),
        text="\n".join(f.text for f in caveat),
        sources=c.titles(*(x.source for x in certs), *(f.source for f in caveat)),
    )


async def resources(req: "Request") -> Reply:
    c = req.content
    chosen = [c.resources[req.args["name"]]] if "name" in req.args else list(c.resources.values())
    items = tuple(f"{r.name}: {' '.join(f.text for f in r.facts)}" for r in chosen)
    return Reply(title="Learning resources and programmes", items=items, sources=c.titles(*(f.source for r in chosen for f in r.facts)))


# --- path, timelines, faq ------------------------------------------------------------


async def path(req: "Request") -> Reply:
    c = req.content
    sequence_id = req.args.get("sequence")
    if sequence_id and sequence_id != c.defaults.sequence:
        seq = next(s for s in c.sequences if s.id == sequence_id)
        return Reply(title=seq.title, items=seq.steps, sources=c.titles(seq.source))
    serving: dict[str, list[str]] = defaultdict(list)
    for x in c.courses.values():
        serving[x.path_step].append(x.title)
    items = []
    for n, step in enumerate(c.path_steps.values(), 1):
        line = f"Step {n}, {step.name}: {step.description}"
        if serving[step.id]:
            line += f" Courses: {', '.join(serving[step.id])}."
        items.append(line)
    others = ", ".join(f"`path {s.id}`" for s in c.sequences if s.id != c.defaults.sequence)
    return Reply(
        title="The learning path to ML engineer",
        items=tuple(items),
        footer=f"Other versions: {others}. How long it takes: `timeline`. Track it with `done <step>` and `next`.",
        sources=c.titles(*(s.source for s in c.path_steps.values()), *(x.source for x in c.courses.values())),
    )


async def timeline(req: "Request") -> Reply:
    c = req.content
    chosen = [c.backgrounds[req.args["background"]]] if "background" in req.args else list(c.backgrounds.values())
    fields = tuple(Field(b.name, "\n".join(f.text for f in b.timeline)) for b in chosen)
    hours = c.faqs.get("study-hours")
    hour_facts = hours.facts if hours else ()
    return Reply(
        title="How long it takes to become an ML engineer",
        fields=fields,
        text="\n".join(f.text for f in hour_facts),
        sources=c.titles(*(f.source for b in chosen for f in b.timeline), *(f.source for f in hour_facts)),
    )


async def faq(req: "Request") -> Reply:
    c = req.content
    faq_id = req.args.get("question")
    if faq_id is None:
        return Reply(title="Frequently asked questions", items=tuple(f"{f.question} (`faq {f.id}`)" for f in c.faqs.values()))
    entry = c.faqs[faq_id]
    return facts_reply(entry.question, entry.facts, c)


async def sources(req: "Request") -> Reply:
    c = req.content
    return Reply(
        title="Where the answers come from",
        items=tuple(s.title + (f" ({s.published})" if s.published else "") for s in c.sources.values()),
        text="Every factual answer names its article. Salary figures are shown as each article states them.",
    )


async def help_command(req: "Request") -> Reply:
    return help_reply(req.core, req.args.get("command"), admin=req.message.is_admin)


def _listed(param: Param, content: Content) -> str:
    """A parameter's allowed values, for `help practice` and the like."""
    values = [choice.value for choice in param.choices(content)] if param.choices else []
    return f" ({', '.join(values)})" if values else ""


# The first `help` shows one example of each of these; `help all` lists every command.
FIRST_HELP = ("salary", "role", "path", "interview", "practice")


def help_reply(core: "Bot", command: str | None = None, *, admin: bool = False) -> Reply:
    if command is None:
        return _first_help(core)
    if command != "all":
        spec = core.registry.get(command)
        if spec is not None:
            lines = [f"`{spec.usage()}`: {spec.summary}"]
            lines += [f"{p.name}: {p.description}" + _listed(p, core.content) for p in spec.params]
            if spec.aliases:
                lines.append("Also: " + ", ".join(spec.aliases))
            return Reply(title=f"help {spec.name}", items=tuple(lines), footer="Examples: " + "; ".join(spec.examples) if spec.examples else "")
    groups: dict[str, list[str]] = defaultdict(list)
    for spec in core.registry:
        if spec.admin and not admin:
            continue
        if spec.needs_store and core.store is None:
            continue
        groups[spec.group].append(f"`{spec.usage()}`: {spec.summary}")
    return Reply(
        title="What I can help with",
        text="Ask in plain words or use a command.",
        fields=tuple(Field(group, "\n".join(lines)) for group, lines in groups.items()),
    )


def _first_help(core: "Bot") -> Reply:
    """Five things to try, each a button: short enough to read at a glance."""
    specs = [core.registry.get(name) for name in FIRST_HELP]
    examples = [spec.examples[0] for spec in specs if spec is not None and spec.examples and (core.store is not None or not spec.needs_store)]
    return Reply(
        title="What I can help with",
        text="Ask in plain words about ML engineer roles, salaries, the learning path, courses and interviews. For example:",
        actions=tuple(Action(example, example) for example in examples),
        footer="`help all` lists every command; `help <command>` explains one.",
    )


# --- registry ------------------------------------------------------------------------


def _role_choices(c: Content) -> list[Choice]:
    return [Choice(r.id, r.name) for r in c.roles.values()]


def _background_choices(c: Content) -> list[Choice]:
    return [Choice(b.id, b.name) for b in c.backgrounds.values()]


SPECS = [
    CommandSpec(
        "help",
        "What I can do, or how to use one command.",
        help_command,
        params=(Param("command", "A command name"),),
        aliases=("commands", "menu", "start"),
        examples=("help salary",),
        group="Learn",
    ),
    CommandSpec(
        "salary",
        "Salary bands by level and region, with their sources.",
        salary,
        params=(
            Param("level", "Seniority", kind="level", choices=lambda c: [Choice(l.id, l.name) for l in c.levels.values()]),
            Param("region", "Where", kind="region", choices=lambda c: [Choice(r.id, r.name) for r in c.regions.values()]),
            Param("years", "Years of experience", kind="years", type="int"),
        ),
        aliases=("salaries", "pay"),
        examples=("what do senior ML engineers earn in Europe?", "salary entry", "salary with 3 years"),
    ),
    CommandSpec(
        "role",
        "What a role does: ML engineer, data scientist, data engineer, AI engineer, ...",
        role,
        params=(Param("name", "The role", kind="role", choices=_role_choices),),
        aliases=("roles",),
        examples=("what does an ML engineer do?", "role data engineer"),
    ),
    CommandSpec(
        "compare",
        "Two roles side by side.",
        compare,
        params=(
            Param("first", "A role", kind="role", choices=_role_choices),
            Param("second", "Another role", kind="role", choices=_role_choices),
        ),
        aliases=("vs",),
        examples=("ml engineer vs data scientist",),
    ),
    CommandSpec(
        "interview",
        "Interview prep: tips, what hiring managers want, attire, portfolio, challenges, a question.",
        interview,
        params=(
            Param("section", "tips, hiring, attire, portfolio, challenges or question", kind="section", choices=lambda c: [Choice(s.id, s.title) for s in c.sections.values()] + [Choice(QUESTION_SECTION, "A practice question")]),
            Param("topic", "Question topic", kind="topic", choices=lambda c: [Choice(t.id, t.name) for t in c.topics.values()]),
        ),
        aliases=("interviews",),
        examples=("interview tips", "what to wear to an interview at a startup", "portfolio ideas"),
    ),
    CommandSpec(
        "course",
        "One course in detail: provider, rating, what it covers, who it suits.",
        course,
        params=(
            Param("name", "The course", kind="course", choices=lambda c: [Choice(x.id, x.title) for x in c.courses.values()]),
            Param("background", "Your background", kind="background", choices=_background_choices),
        ),
        examples=("regression course", "which course first if I know statistics?"),
    ),
    CommandSpec(
        "courses",
        "The top-rated courses, or the ones for your background.",
        courses,
        params=(Param("background", "Your background", kind="background", choices=_background_choices),),
        examples=("courses for software-engineering",),
    ),
    CommandSpec(
        "certifications",
        "The certifications worth knowing.",
        certifications,
        aliases=("certs", "certification"),
        examples=("certifications",),
    ),
    CommandSpec(
        "resources",
        "Books, communities, bootcamps and self-paced programmes.",
        resources,
        params=(Param("name", "A resource", kind="resource", choices=lambda c: [Choice(r.id, r.name) for r in c.resources.values()]),),
        aliases=("resource",),
        examples=("books and communities",),
    ),
    CommandSpec(
        "path",
        "The learning path, step by step, with the courses for each step.",
        path,
        params=(Param("sequence", "Which version of the path", kind="sequence", choices=lambda c: [Choice(s.id, s.title) for s in c.sequences]),),
        aliases=("roadmap",),
        examples=("roadmap to become an ML engineer",),
    ),
    CommandSpec(
        "timeline",
        "How long it takes, by background.",
        timeline,
        params=(Param("background", "Your background", kind="background", choices=_background_choices),),
        aliases=("howlong",),
        examples=("how long from software engineering to ML?",),
    ),
    CommandSpec(
        "faq",
        "Frequently asked questions: degree, PhD, maths, languages, frameworks, outlook.",
        faq,
        params=(Param("question", "The question", choices=lambda c: [Choice(f.id, f.question) for f in c.faqs.values()]),),
        examples=("do I need a degree?", "best programming language for ML"),
    ),
    CommandSpec(
        "explain",
        "An ML concept explained, from the interview practice bank (overfitting, drift, precision/recall, ...).",
        explain,
        params=(Param("concept", "The concept", kind="concept", choices=lambda c: [Choice(t, t.replace("-", " ")) for t in sorted({t for q in c.questions.values() for t in q.tags})]),),
        aliases=("define",),
        examples=("what is data drift?", "precision vs recall"),
    ),
    CommandSpec(
        "sources",
        "The articles the answers come from.",
        sources,
        aliases=("references",),
        examples=("sources",),
    ),
]
