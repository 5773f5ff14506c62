"""Free text -> command + arguments.

Order of trust: an exact command word first ("salary senior europe"), then a sentence
scored against every command's keywords and the content entities it mentions ("what do
senior ML engineers earn in Europe?"). Words are corrected against the bot's own
vocabulary first, so "salery entry levl" reads as "salary entry level". When no command
scores high enough the route is `fallback`, and the core says what it can answer instead
of guessing.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Iterable

from rapidfuzz import fuzz, process

from bot.commands import CommandSpec, Registry
from bot.content import Content
from bot.text import phrase, tokens

FALLBACK = "fallback"
MIN_SCORE = 2
KEYWORD = "keyword"
_YEARS = re.compile(r"\b(\d{1,2})\+? ?(?:years?|yrs?|yoe|yr)\b")
_MAX_PHRASE_WORDS = 6

# Function words and common verbs: never "corrected" into a content word.
STOPWORDS = frozenset(
    """a about above after again against all also am an and any are as at be because been before being
    below between both but by can could did do does doing down during each few for from further had has
    have having he her here hers him his how i if in into is it its itself just me more most my myself no
    nor not now of off on once only or other our ours out over own same she should so some such than that
    the their theirs them then there these they this those through to too under until up very was we were
    what when where which while who whom why will with would you your yours yourself want wants wanted
    need needs know knows tell give show get got go going like would really please thanks thank okay ok
    yes yeah sure hello hi hey good great best better much many long time think should shall may might
    must one two three four five six first next last new old way work works working someone something
    anything everything people person thing things kind sort lot lots bit little big small right left
    well still even just actually ever never always often usually there here today week weeks month
    months year years day days hour hours cats dogs cat dog joke jokes weather funny love hate
    startup startups company companies team teams big large huge tiny corporate enterprise bank banks
    friend friends family money job jobs life world today tomorrow yesterday morning evening night
    city country home office remote hybrid boss manager colleague school college university""".split()
)


# Practice-bank tags too broad to mean "explain this concept" on their own.
GENERIC_TAGS = frozenset(
    "data design features functions interfaces apis pitfalls gotchas performance memory environments "
    "architectures analytics aggregation dependencies testing debugging tabular evaluation metrics".split()
)


@dataclass(frozen=True, slots=True)
class Entity:
    kind: str
    id: str
    position: int
    size: int = 1  # words matched: a longer phrase is stronger evidence


@dataclass(frozen=True)
class Route:
    command: str
    args: dict[str, str] = field(default_factory=dict)
    entities: tuple[Entity, ...] = ()
    guess: str | None = None  # on fallback: the command that came closest
    leftover: str = ""  # words of an explicit command line no parameter explained

    def ids(self, kind: str) -> list[str]:
        return [e.id for e in self.entities if e.kind == kind]


class Router:
    def __init__(self, content: Content, registry: Registry):
        self._registry = registry
        self._commands = list(registry)
        self._words = registry.words()
        self._index: dict[str, list[tuple[str, str]]] = {}
        self._build_index(content)
        vocabulary = set(STOPWORDS) | set(self._words)
        for key in self._index:
            vocabulary.update(key.split())
        self._vocabulary = vocabulary
        self._candidates = sorted(w for w in vocabulary if len(w) >= 3 and w.isalpha())
        self._correct = lru_cache(maxsize=4096)(self._correct_uncached)

    # --- index --------------------------------------------------------------------

    def _add(self, text: str, kind: str, ident: str) -> None:
        key = phrase(text)
        if not key:
            return
        variants = [key] if key.endswith("s") or key[-1].isdigit() else [key, key + "s"]  # "ml engineer(s)"
        for variant in variants:
            if (kind, ident) not in self._index.get(variant, ()):
                self._index.setdefault(variant, []).append((kind, ident))

    def _add_all(self, kind: str, items: Iterable[tuple[str, Iterable[str]]]) -> None:
        for ident, names in items:
            for name in names:
                self._add(name, kind, ident)

    def _build_index(self, c: Content) -> None:
        self._add_all("role", ((r.id, (r.name, *r.aliases)) for r in c.roles.values()))
        self._add_all("level", ((l.id, (l.name, *l.aliases)) for l in c.levels.values()))
        self._add_all("region", ((r.id, (r.name, *r.aliases)) for r in c.regions.values()))
        self._add_all("salary_note", ((n.id, n.keywords) for n in c.salary_notes.values()))
        self._add_all("section", ((s.id, (s.id, *s.aliases)) for s in c.sections.values()))
        self._add_all("topic", ((t.id, (t.name, *t.aliases)) for t in c.topics.values()))
        self._add_all("course", ((x.id, (x.title, *x.aliases)) for x in c.courses.values()))
        self._add_all("certification", ((x.id, (x.name, *x.aliases)) for x in c.certifications.values()))
        self._add_all("resource", ((x.id, x.aliases) for x in c.resources.values()))
        self._add_all("background", ((b.id, b.aliases) for b in c.backgrounds.values()))
        self._add_all("step", ((s.id, (s.id, s.name, *s.aliases)) for s in c.path_steps.values()))
        self._add_all("faq", ((f.id, f.keywords) for f in c.faqs.values()))
        self._add_all("sequence", ((s.id, (s.id, s.title, *s.aliases)) for s in c.sequences))
        tags = {tag for q in c.questions.values() for tag in q.tags if tag not in GENERIC_TAGS}
        self._add_all("concept", ((tag, (tag.replace("-", " "),)) for tag in tags))
        for spec in self._commands:
            for keyword in spec.keywords:
                self._add(keyword, KEYWORD, spec.name)

    # --- routing ------------------------------------------------------------------

    def _correct_uncached(self, token: str) -> str:
        if token in self._vocabulary or len(token) < 4 or not token.isalpha():
            return token
        if token.endswith("s") and token[:-1] in self._vocabulary:  # "engineers" -> "engineer"
            return token[:-1]
        candidates = [w for w in self._candidates if abs(len(w) - len(token)) <= 2]
        # Short words need a closer match: "track" is not a typo of "stack".
        best = process.extractOne(token, candidates, scorer=fuzz.ratio, score_cutoff=85 if len(token) <= 5 else 80)
        return best[0] if best else token

    def normalise(self, text: str) -> list[str]:
        return [self._correct(t) for t in tokens(text)]

    def entities(self, words: list[str]) -> tuple[list[Entity], set[int]]:
        """Greedy longest-phrase matches, and the positions they explain."""
        found: list[Entity] = []
        explained: set[int] = set()
        i = 0
        while i < len(words):
            for size in range(min(_MAX_PHRASE_WORDS, len(words) - i), 0, -1):
                hits = self._index.get(" ".join(words[i : i + size]))
                if hits:
                    found.extend(Entity(kind, ident, i, size) for kind, ident in hits)
                    explained.update(range(i, i + size))
                    i += size
                    break
            else:
                i += 1
        joined = " ".join(words)
        for match in _YEARS.finditer(joined):
            position = joined[: match.start()].count(" ")
            found.append(Entity("years", match.group(1), position, 2))
            explained.update((position, position + 1))
        return found, explained

    def route(self, text: str) -> Route:
        words = self.normalise(text)
        if not words:  # nothing but punctuation or emoji: show what the bot can do
            return Route("help")
        whole = self._registry.whole_message(" ".join(words))
        if whole is not None:
            return Route(whole.name, {p.name: words[0] for p in whole.params[:1]})
        spec = self._registry.get(words[0]) if words[0] in self._words else None
        if spec is not None:
            explicit = self._explicit(spec, words[1:], text.split()[1:])
            if any(p.kind is None for p in spec.params):
                return explicit
            own_kinds = {p.kind for p in spec.params} | {KEYWORD}
            foreign = any(e.kind not in own_kinds for e in explicit.entities)
            if not explicit.leftover and (explicit.args or not foreign):
                return explicit
        found, _ = self.entities(words)
        best = self._best(found)
        if spec is not None and (best.command == FALLBACK or best.command == spec.name):
            return explicit
        return best

    def _explicit(self, spec: CommandSpec, rest: list[str], raw: list[str]) -> Route:
        """A command line. Parameters with an entity kind take the entities mentioned;
        the others take the raw words in order (`grade good overfitting-basics`)."""
        found, explained = self.entities(rest)
        args = self._fill(spec, found)
        positional = [p for p in spec.params if p.kind is None and not p.rest]
        for param, word in zip(positional, raw):
            args[param.name] = word.strip(".,!?\"'").lower()
        leftover = [w for i, w in enumerate(rest) if i not in explained and w not in STOPWORDS]
        rest_param = next((p for p in spec.params if p.rest), None)
        if rest_param is not None and rest and rest_param.name not in args:
            args[rest_param.name] = " ".join(rest)
        return Route(spec.name, args, tuple(found), leftover=" ".join(leftover))

    def _best(self, found: list[Entity]) -> Route:
        distinct: dict[str, int] = {}  # entity kind -> distinct ids mentioned
        bonus: dict[str, int] = {}  # entity kind -> extra words in multi-word matches
        keyword_score: dict[str, int] = {}
        for kind, _ in {(e.kind, e.id) for e in found}:
            distinct[kind] = distinct.get(kind, 0) + 1
        for entity in found:
            if entity.kind == KEYWORD:
                keyword_score[entity.id] = keyword_score.get(entity.id, 0) + 2 + entity.size
            else:
                bonus[entity.kind] = bonus.get(entity.kind, 0) + entity.size - 1
        best: tuple[int, CommandSpec] | None = None
        nearest: tuple[int, CommandSpec] | None = None  # ignoring `requires`: for "did you mean"
        for spec in self._commands:
            keywords = keyword_score.get(spec.name, 0)
            score = self._score(spec, distinct, bonus, keywords)
            if score and (best is None or score > best[0]):
                best = (score, spec)
            loose = self._score(spec, distinct, bonus, keywords, strict=False)
            if loose and (nearest is None or loose > nearest[0]):
                nearest = (loose, spec)
        if best is None or best[0] < MIN_SCORE:
            return Route(FALLBACK, entities=tuple(found), guess=nearest[1].name if nearest else None)
        spec = best[1]
        return Route(spec.name, self._fill(spec, found), tuple(found))

    @staticmethod
    def _score(spec: CommandSpec, distinct: dict[str, int], bonus: dict[str, int], keywords: int, strict: bool = True) -> int:
        """Keyword points (3 for a word, one more per extra word of a phrase), plus the
        command's weight for each distinct entity of a kind it cares about, plus one per
        extra word of those entities. Ties go to the command registered first."""
        if strict and spec.requires and not any(keywords if k == KEYWORD else distinct.get(k) for k in spec.requires):
            return 0
        return keywords + sum(weight * distinct.get(kind, 0) + bonus.get(kind, 0) for kind, weight in spec.signals.items())

    @staticmethod
    def _fill(spec: CommandSpec, found: list[Entity]) -> dict[str, str]:
        args: dict[str, str] = {}
        used: set[int] = set()
        for param in spec.params:
            if param.kind is None:
                continue
            for n, entity in enumerate(found):
                if n not in used and entity.kind == param.kind and entity.id not in {found[u].id for u in used if found[u].kind == param.kind}:
                    args[param.name] = entity.id
                    used.add(n)
                    break
        return args

