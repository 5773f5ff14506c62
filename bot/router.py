"""Free text -> command + arguments.

1. Words are normalised and typo-corrected against the bot's own vocabulary ("salery
   entry levl" reads as "salary entry level"); a function word is never corrected.
2. A command line ("salary senior europe", "practice sql", "faq degree", a button's
   command) is parsed against the registry.
3. Anything else is free text: slots are matched over the content's names and aliases,
   whole words only, and the intent model (`bot.understanding`), trained on the
   `examples:` content declares, reads the message. It answers, asks "did you mean"
   (`clarify`) or admits it doesn't know (`fallback`); either way the route carries the
   intents it came closest to.
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field, replace
from functools import cached_property, lru_cache
from typing import Collection, Iterable

from rapidfuzz import process
from rapidfuzz.distance import OSA

from bot.commands import CommandSpec, Registry
from bot.content import Content
from bot.text import FUNCTION_WORDS, phrase, tokens
from bot.understanding import Decision, IntentModel, Ranked, decide, features, stem, train

FALLBACK = "fallback"
CLARIFY = "clarify"
SMALLTALK = "smalltalk"
_NUMBER_WORDS = {w: n for n, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
    "sixteen seventeen eighteen nineteen twenty".split())}
_YEARS = re.compile(r"\b(\d{1,2}|" + "|".join(_NUMBER_WORDS) + r")\+? ?(?:years?|yrs?|yoe|yr)\b")
_MAX_PHRASE_WORDS = 6
_SHORT_COMMAND_LINE = 3  # "help salary", "practice sql": read as typed, whatever else they resemble

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
    text: str = ""  # the (corrected) words matched, so a command line can name it again


@dataclass(frozen=True)
class Route:
    command: str
    args: dict[str, str] = field(default_factory=dict)
    entities: tuple[Entity, ...] = ()
    choices: tuple[str, ...] = ()  # clarify/fallback: the intents it came closest to, best first
    leftover: str = ""  # words of an explicit command line no parameter explained
    # Free text: words no slot explains and no example of the intent uses ("quiz me on docker"
    # -> "docker"). A handler may read them as a value it does not know.
    unexplained: str = ""

    def ids(self, kind: str) -> list[str]:
        return list(dict.fromkeys(e.id for e in self.entities if e.kind == kind))


class Router:
    def __init__(self, content: Content, registry: Registry):
        self._registry = registry
        self._content = content
        self._words = registry.words()
        self._index: dict[str, list[tuple[str, str]]] = {}
        self._build_index(content)
        self._examples = content.examples()
        self._vocabulary = self._build_vocabulary(self._examples)
        self._by_length: dict[int, list[str]] = {}
        for word in sorted(w for w in self._vocabulary if len(w) >= 3 and w.isalpha()):
            self._by_length.setdefault(len(word), []).append(word)
        self._correct = lru_cache(maxsize=8192)(self._correct_uncached)
        self._needs = {i.command: i.needs for i in content.command_intents.values() if i.needs}

    @cached_property
    def model(self) -> IntentModel:
        """Trained on first use (under a second): a command line such as `mlbot ask help`
        never needs it; `Core` trains it up front for long-running surfaces."""
        return train([(intent, self.features(e.text)) for intent, items in self._examples.items() for e in items])

    def warm(self) -> None:
        """Train the model and index the examples now, so the first question doesn't wait."""
        _ = (self.model, self._intent_words)

    @cached_property
    def _intent_words(self) -> dict[str, frozenset[str]]:
        """The words each intent's examples use; built with the model, not for a command line."""
        return {intent: frozenset(w for e in items for w in self.normalise(e.text)) for intent, items in self._examples.items()}

    # --- vocabulary -------------------------------------------------------------------

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
        self._add_all("level", ((l.id, (l.name, *l.aliases, *l.read_as)) for l in c.levels.values()))
        self._add_all("region", ((r.id, (r.name, *r.aliases)) for r in c.regions.values()))
        self._add_all("place", ((key, (p.name,)) for key, p in c.places.items()))
        self._add_all("salary_note", ((n.id, n.keywords) for n in c.salary_notes.values()))
        self._add_all("section", ((s.id, (s.id, *s.aliases)) for s in c.sections.values()))
        self._add_all("topic", ((t.id, (t.name, *t.aliases)) for t in c.topics.values()))
        self._add_all("course", ((x.id, (x.title, *x.aliases)) for x in c.courses.values()))
        self._add_all("certification", ((x.id, (x.name, *x.aliases)) for x in c.certifications.values()))
        self._add_all("resource", ((x.id, x.aliases) for x in c.resources.values()))
        self._add_all("background", ((b.id, b.aliases) for b in c.backgrounds.values()))
        self._add_all("step", ((s.id, (s.id, s.name, *s.aliases)) for s in c.path_steps.values()))
        self._add_all("sequence", ((s.id, (s.id, s.title, *s.aliases)) for s in c.sequences))
        tags = {tag for q in c.questions.values() for tag in q.tags if tag not in GENERIC_TAGS}
        self._add_all("concept", ((tag, (tag.replace("-", " "),)) for tag in tags))
        self._add_all("concept", ((x.id, x.aliases) for x in c.concepts.values()))

    def _build_vocabulary(self, examples: dict) -> frozenset[str]:
        """Words typo correction may aim at: function words, command words, content names,
        and example words used more than once (a typo written into one example is not a target)."""
        seen: Counter[str] = Counter()
        for items in examples.values():
            for example in items:
                seen.update(set(tokens(example.text)))
        vocabulary = set(FUNCTION_WORDS) | set(self._words) | {w for w, n in seen.items() if n >= 2}
        for key in self._index:
            vocabulary.update(key.split())
        return frozenset(vocabulary)

    # --- reading ----------------------------------------------------------------------

    def _correct_uncached(self, token: str) -> str:
        if token in self._vocabulary or len(token) < 4 or not token.isalpha():
            return token
        if token.endswith("s") and token[:-1] in self._vocabulary:  # "engineers" -> "engineer"
            return token[:-1]
        # One slip (a letter wrong, missing, extra or two swapped) in a word of up to seven
        # letters, two in a longer one: "salery", "roadmpa", "intervew". Real words a step
        # further away stay as typed ("median" is not "mean").
        limit = 1 if len(token) <= 7 else 2
        candidates = [w for n in range(len(token) - limit, len(token) + limit + 1) for w in self._by_length.get(n, ())]
        best = process.extractOne(token, candidates, scorer=OSA.distance, score_cutoff=limit)
        return best[0] if best else token

    def normalise(self, text: str) -> list[str]:
        return [self._correct(t) for t in tokens(text)]

    def entities(self, words: list[str]) -> tuple[list[Entity], set[int]]:
        """Greedy longest-phrase matches, whole words only, and the positions they explain.
        Each kind takes its own longest match, so "portfolio projects" is the path step of
        that name and, by its first word, the interview section "portfolio"."""
        found: list[Entity] = []
        explained: set[int] = set()
        i = 0
        while i < len(words):
            longest = 0
            kinds: set[str] = set()
            for size in range(min(_MAX_PHRASE_WORDS, len(words) - i), 0, -1):
                key = " ".join(words[i : i + size])
                hits = [(kind, ident) for kind, ident in self._index.get(key, ()) if kind not in kinds]
                if hits:
                    found.extend(Entity(kind, ident, i, size, key) for kind, ident in hits)
                    longest = max(longest, size)
                    kinds.update(kind for kind, _ in hits)
            explained.update(range(i, i + longest))
            i += max(longest, 1)
        joined = " ".join(words)
        for match in _YEARS.finditer(joined):
            position = joined[: match.start()].count(" ")
            count = match.group(1)
            found.append(Entity("years", str(_NUMBER_WORDS.get(count, count)), position, 2, match.group(0)))
            explained.update((position, position + 1))
        return found, explained

    def features(self, text: str) -> Counter[str]:
        """What the intent model reads: the words, and one `slot:KIND` per distinct value."""
        words = self.normalise(text)
        found, _ = self.entities(words)
        return self._features(words, found)

    @staticmethod
    def _features(words: list[str], found: Iterable[Entity]) -> Counter[str]:
        return features(words, [kind for kind, _ in dict.fromkeys((e.kind, e.id) for e in found)])

    def understand(self, text: str, found: Iterable[Entity] | None = None, without: Collection[str] = ()) -> Decision:
        """The model's reading, without the intents whose needed slots are missing
        ("compare" with one role named is not a comparison) and those in `without` (a
        handler asking what else the text could mean). `found`: the slots already matched
        in `text`, when the caller has them."""
        words = self.normalise(text)
        found = list(found) if found is not None else self.entities(words)[0]
        have = Counter(kind for kind, _ in {(e.kind, e.id) for e in found})
        counts = self._features(words, found)

        ruled_out = {intent for intent, needs in self._needs.items() if any(have[kind] < n for kind, n in needs)}.union(without)

        def possible(ranking: tuple[Ranked, ...]) -> tuple[Ranked, ...]:
            return tuple(r for r in ranking if r.intent not in ruled_out)

        probable, fits = self.model.read(counts)
        return decide(possible(probable), possible(fits))

    # --- routing ----------------------------------------------------------------------

    def route(self, text: str) -> Route:
        words = self.normalise(text)
        if not words:  # nothing but punctuation or emoji: show what the bot can do
            return Route("help")
        whole = self._registry.whole_message(" ".join(words))
        if whole is not None:
            return Route(whole.name, {p.name: words[0] for p in whole.params[:1]})
        spec = self._registry.get(words[0]) if words[0] in self._words else None
        explicit = self._explicit(spec, words[1:], text.split()[1:]) if spec is not None else None
        # A command line: short, or the command's own name (as buttons send it) with every word
        # read. A sentence that merely starts with an alias ("start a mock interview on system
        # design": "start" is help's) goes to the model like any other.
        if explicit is not None and (len(words) <= _SHORT_COMMAND_LINE or (words[0] == explicit.command and not explicit.leftover)):
            return explicit
        found, explained = self.entities(words)
        decision = self.understand(text, found)
        if explicit is not None and (decision.outcome != "answer" or decision.intent == explicit.command):
            # "quiz me with interview questions": words the command's own examples use are
            # how members ask for it, not a value it failed to read.
            known = self._intent_words.get(explicit.command, frozenset())
            return replace(explicit, leftover=" ".join(w for w in explicit.leftover.split() if w not in known))
        route = self.from_decision(decision, tuple(found))
        known = self._intent_words.get(decision.intent or "", frozenset())
        unexplained = [w for i, w in enumerate(words) if i not in explained and w not in FUNCTION_WORDS and w not in known]
        return replace(route, unexplained=" ".join(unexplained)) if unexplained else route

    def from_decision(self, decision: Decision, found: tuple[Entity, ...]) -> Route:
        near = tuple(decision.near())
        if decision.outcome == "clarify":
            return Route(CLARIFY, entities=found, choices=near)
        if decision.outcome == "admit" or decision.intent is None:
            return Route(FALLBACK, entities=found, choices=near)
        return self.intent_route(decision.intent, found)

    def intent_route(self, intent: str, found: tuple[Entity, ...] = ()) -> Route:
        """The route an intent id means: a command, `faq:ID`, `scope:ID` or `smalltalk:ID`."""
        kind, _, ident = intent.partition(":")
        if kind == "faq":
            return Route("faq", {"question": ident}, found)
        if kind == "scope":
            return Route("scope", {"topic": ident}, found)
        if kind == SMALLTALK:
            return Route(SMALLTALK, {"kind": ident}, found)
        spec = self._registry.get(intent)
        assert spec is not None, intent
        return Route(spec.name, self._fill(spec, list(found)), found)

    def _explicit(self, spec: CommandSpec, rest: list[str], raw: list[str]) -> Route:
        """A command line. Parameters with an entity kind take the entities mentioned;
        the others take the raw words in order (`grade good overfitting-basics`). The
        words no parameter explains are the `leftover`."""
        found, _ = self.entities(rest)
        args = self._fill(spec, found)
        chosen: set[str] = set()
        for param in spec.params:  # a word that is one of a parameter's declared values: `interview questions`
            if param.kind is None or param.choices is None or param.name in args:
                continue
            values = {choice.value for choice in param.choices(self._content)}
            word = next((w for w in rest if w in values or stem(w) in values), None)
            if word is not None:
                args[param.name] = word if word in values else stem(word)
                chosen.add(word)
        positional = [p for p in spec.params if p.kind is None and not p.rest]
        for param, word in zip(positional, raw):
            args[param.name] = word.strip(".,!?\"'").lower()
        rest_param = next((p for p in spec.params if p.rest), None)
        if rest_param is not None and rest and rest_param.name not in args:
            args[rest_param.name] = " ".join(rest)
            return Route(spec.name, args, tuple(found))
        unread = self.normalise(" ".join(raw[len(positional):]))
        _, unread_explained = self.entities(unread)
        leftover = [w for i, w in enumerate(unread) if i not in unread_explained and w not in FUNCTION_WORDS and w not in chosen]
        return Route(spec.name, args, tuple(found), leftover=" ".join(leftover))

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
