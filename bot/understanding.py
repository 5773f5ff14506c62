"""Which intent a free-text message means, learned from the `examples:` content declares.

Two models read the same features: word unigrams, word bigrams and the kinds of slot a
message mentions (`slot:level`, `slot:role`...), so "what do seniors make in Berlin" and
"pay for a junior in Canada" share the shape that matters.
- `SimilarityModel` ranks the intents: TF-IDF cosine, a blend of an intent's best
  example's and its centroid's. Its scores are comparable across messages, so they set
  the floors.
- `BayesModel` gives a second opinion: multinomial naive Bayes over the same examples,
  built differently (word odds per intent rather than distances), so its mistakes are
  not the same ones.

Training both is counting: tens of milliseconds for today's content, whenever content
loads (and on `reload`), with no download and no numerical library.
`bench/understanding.py` compares them with the alternatives that were measured.

`decide` turns the readings into one of three outcomes: answer (both models agree, or
the ranking is clearly ahead and the second opinion does not firmly say otherwise),
clarify (two or three close readings: "did you mean"), or admit (nothing fits).
"""
from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Iterable, Literal, Sequence

Outcome = Literal["answer", "clarify", "admit"]

# An answer needs this score and a lead over the next intent of this share of its own score.
# The lead is relative because a long message scores lower against every intent than a
# short one, and a fixed gap would be too strict for the one and too lax for the other.
# Set by measurement: `bench/understanding.py` prints accuracy and confidently-wrong answers
# on the dev set, which moving these trades against each other. Below `CLARIFY_FLOOR`
# nothing is close enough to offer as a "did you mean" choice; choices lie within
# `CLARIFY_WINDOW` of the top.
ANSWER_FLOOR = 0.15
ANSWER_MARGIN = 0.10
CLARIFY_FLOOR = 0.10
CLARIFY_WINDOW = 0.08
MAX_CHOICES = 3
# When the two models disagree, naive Bayes this sure of its own reading turns an answer
# into a question (its posteriors run high: 0.9 is "firmly", not "probably").
BAYES_SURE = 0.9
BAYES_SMOOTHING = 0.1
NEAREST_WEIGHT = 0.3
COMMON_SHARE = 0.05
COMMON_FLOOR = 50


@dataclass(frozen=True, slots=True)
class Ranked:
    intent: str
    score: float


@dataclass(frozen=True, slots=True)
class Decision:
    outcome: Outcome
    ranking: tuple[Ranked, ...]  # best first, one entry per intent that scored

    @property
    def intent(self) -> str | None:
        return self.ranking[0].intent if self.outcome == "answer" else None

    def near(self, limit: int = MAX_CHOICES) -> list[str]:
        """The intents it came closest to, best first."""
        return [r.intent for r in self.ranking[:limit]]


def stem(word: str) -> str:
    """Plural to singular, roughly: "salaries" and "salary", "roles" and "role" count as one."""
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def features(words: Sequence[str], slot_kinds: Iterable[str] = ()) -> Counter[str]:
    """Sparse counts: each word, each pair of neighbouring words, each slot kind."""
    words = [stem(w) for w in words]
    counts: Counter[str] = Counter(words)
    counts.update(f"{a} {b}" for a, b in zip(words, words[1:]))
    counts.update(f"slot:{kind}" for kind in slot_kinds)
    return counts


class SimilarityModel:
    """TF-IDF cosine, blended: `nearest_weight` of the best-matching example's and the rest
    of the intent centroid's (the mean of its examples). The example catches a phrasing
    written almost verbatim; the centroid pools the evidence of all phrasings, which is
    what carries a long, unforeseen question. Inverted indexes keep a message to the
    examples and centroids that share a feature with it."""

    def __init__(self, examples: Sequence[tuple[str, Counter[str]]], nearest_weight: float = NEAREST_WEIGHT):
        if not examples:
            raise ValueError("an intent model needs examples")
        documents = len(examples)
        frequency: Counter[str] = Counter()
        for _, counts in examples:
            frequency.update(counts.keys())
        self._idf = {f: math.log((1 + documents) / (1 + n)) + 1.0 for f, n in frequency.items()}
        self._nearest_weight = nearest_weight
        # A feature in more than this many examples ("ml", "i", "slot:role") says little about
        # which example is nearest, and walking its long list was most of a long message's
        # cost: the nearest-example score skips it, the centroid still counts it. Measured in
        # `bench/understanding.py`: the same dev accuracy at a third of the p99.
        self._common = max(COMMON_FLOOR, int(COMMON_SHARE * documents))
        self._intents = [intent for intent, _ in examples]
        self._examples: dict[str, list[tuple[int, float]]] = defaultdict(list)
        sums: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        for row, (intent, counts) in enumerate(examples):
            for feature, weight in self._vector(counts).items():
                self._examples[feature].append((row, weight))
                sums[intent][feature] += weight
        self._centroids: dict[str, list[tuple[str, float]]] = defaultdict(list)
        for intent, summed in sums.items():
            norm = math.sqrt(sum(w * w for w in summed.values()))
            for feature, weight in summed.items():
                self._centroids[feature].append((intent, weight / norm))

    def _vector(self, counts: Counter[str]) -> dict[str, float]:
        weights = {f: (1.0 + math.log(n)) * self._idf[f] for f, n in counts.items() if f in self._idf}
        norm = math.sqrt(sum(w * w for w in weights.values()))
        return {f: w / norm for f, w in weights.items()} if norm else {}

    def rank(self, counts: Counter[str]) -> tuple[Ranked, ...]:
        """Every intent that shares a feature with the message, best first."""
        vector = self._vector(counts)
        nearest: dict[int, float] = {}
        centroid: dict[str, float] = {}
        common = self._common
        for feature, weight in vector.items():
            postings = self._examples.get(feature, ())
            if len(postings) <= common:
                for row, example_weight in postings:
                    nearest[row] = nearest.get(row, 0.0) + weight * example_weight
            for intent, centroid_weight in self._centroids.get(feature, ()):
                centroid[intent] = centroid.get(intent, 0.0) + weight * centroid_weight
        best: dict[str, float] = {}
        intents = self._intents
        for row, score in nearest.items():
            intent = intents[row]
            if score > best.get(intent, 0.0):
                best[intent] = score
        share = self._nearest_weight
        blended = {i: share * best.get(i, 0.0) + (1 - share) * score for i, score in centroid.items()}
        ranked = sorted(blended.items(), key=lambda pair: -pair[1])
        return tuple(Ranked(intent, score) for intent, score in ranked)


class BayesModel:
    """Multinomial naive Bayes over the features present (each counted once), equal priors
    (an intent with more examples is not likelier to be meant), additive smoothing
    `smoothing`. Each feature stores only its gain over an unseen feature, for the intents
    whose examples use it, so a message walks its own features' short lists."""

    def __init__(self, examples: Sequence[tuple[str, Counter[str]]], smoothing: float = BAYES_SMOOTHING):
        seen: dict[str, Counter[str]] = defaultdict(Counter)
        vocabulary: set[str] = set()
        for intent, counts in examples:
            seen[intent].update(counts.keys())
            vocabulary.update(counts)
        size = len(vocabulary)
        self._unseen: dict[str, float] = {}
        self._gains: dict[str, list[tuple[str, float]]] = defaultdict(list)
        for intent, counts in seen.items():
            total = sum(counts.values()) + smoothing * size
            self._unseen[intent] = math.log(smoothing / total)
            for feature, n in counts.items():
                self._gains[feature].append((intent, math.log((n + smoothing) / smoothing)))

    def rank(self, counts: Counter[str]) -> tuple[Ranked, ...]:
        """Every intent, best first, scored by its posterior probability."""
        known = [f for f in counts if f in self._gains]
        if not known:
            return ()
        log_odds = {intent: unseen * len(known) for intent, unseen in self._unseen.items()}
        for feature in known:
            for intent, gain in self._gains[feature]:
                log_odds[intent] += gain
        top = max(log_odds.values())
        odds = {intent: math.exp(value - top) for intent, value in log_odds.items()}
        total = sum(odds.values())
        ranked = sorted(odds.items(), key=lambda pair: -pair[1])
        return tuple(Ranked(intent, value / total) for intent, value in ranked)


class IntentModel:
    """Both models, trained on the same examples."""

    def __init__(self, examples: Sequence[tuple[str, Counter[str]]]):
        self.similarity = SimilarityModel(examples)
        self.bayes = BayesModel(examples)


def decide(ranking: tuple[Ranked, ...], opinion: tuple[Ranked, ...] = ()) -> Decision:
    """`ranking` by similarity, `opinion` the Bayes posteriors over the same intents (empty:
    the ranking alone decides)."""
    if not ranking or ranking[0].score < CLARIFY_FLOOR:
        return Decision("admit", ranking)
    top = ranking[0].score
    runner_up = ranking[1].score if len(ranking) > 1 else 0.0
    agreed = bool(opinion) and opinion[0].intent == ranking[0].intent
    contested = bool(opinion) and not agreed and opinion[0].score >= BAYES_SURE
    if top >= ANSWER_FLOOR and (agreed or (top - runner_up >= ANSWER_MARGIN * top and not contested)):
        return Decision("answer", ranking)
    close = tuple(r for r in ranking[:MAX_CHOICES] if r.score >= max(CLARIFY_FLOOR, top - CLARIFY_WINDOW))
    if opinion and not agreed and opinion[0].intent not in {r.intent for r in close}:
        other = next((r for r in ranking if r.intent == opinion[0].intent), None)
        if other is not None and other.score >= CLARIFY_FLOOR:  # a plausible second opinion is offered too
            close = close[: MAX_CHOICES - 1] + (other,)
    if len(close) < 2:
        return Decision("answer", ranking) if top >= ANSWER_FLOOR else Decision("admit", ranking)
    return Decision("clarify", close + tuple(r for r in ranking if r not in close))
