"""Which intent a free-text message means, learned from the `examples:` content declares.

Two models read the same features: word unigrams, word bigrams and the kinds of slot a
message mentions (`slot:level`, `slot:role`...), so "what do seniors make in Berlin" and
"pay for a junior in Canada" share the shape that matters.
- `SimilarityModel` ranks the intents: TF-IDF cosine, a blend of an intent's best
  example's and its centroid's. Its scores are comparable across messages, so they set
  the floors.
- Two opinions check it, each built differently so that its mistakes are not the same
  ones: `BayesModel`, multinomial naive Bayes (word odds per intent rather than
  distances), and `PerceptronModel`, a discriminative linear model (weights learned from
  its own mistakes on the examples).

Training is counting for the first two (tens of milliseconds for today's content) and two
passes over the examples for the perceptron (a few tenths of a second), whenever content
loads (and on `reload`), with no download and no numerical library.
`bench/understanding.py` compares them with the alternatives that were measured.

`decide` turns the readings into one of three outcomes: answer (each opinion allows it:
it agrees, or the ranking is clearly ahead and it is not firmly of another reading),
clarify (two or three close readings: "did you mean"), or admit (nothing fits).
"""
from __future__ import annotations

import math
import random
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Iterable, Literal, Mapping, Sequence

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
# An opinion this sure of another reading turns an answer into a question (the
# posteriors of both run high: 0.9 is "firmly", not "probably").
SURE = 0.9
BAYES_SMOOTHING = 0.1
PERCEPTRON_EPOCHS = 2  # measured: one more pass moved nothing on the dev set and cost 0.15 s
PERCEPTRON_MARGIN = 1.0
PERCEPTRON_TEMPERATURE = 0.1  # scores -> probabilities, comparable with `SURE`
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
        nearest: dict[int, float] = defaultdict(float)
        centroid: dict[str, float] = defaultdict(float)
        for feature, weight in vector.items():
            postings = self._examples.get(feature, ())
            if len(postings) <= self._common:
                for row, example_weight in postings:
                    nearest[row] += weight * example_weight
            for intent, centroid_weight in self._centroids.get(feature, ()):
                centroid[intent] += weight * centroid_weight
        best: dict[str, float] = defaultdict(float)
        for row, score in nearest.items():
            intent = self._intents[row]
            best[intent] = max(best[intent], score)
        blended = {i: self._nearest_weight * best.get(i, 0.0) + (1 - self._nearest_weight) * score for i, score in centroid.items()}
        ranked = sorted(blended.items(), key=lambda pair: -pair[1])
        return tuple(Ranked(intent, round(score, 4)) for intent, score in ranked)


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
        return tuple(Ranked(intent, round(value / total, 4)) for intent, value in ranked)


class PerceptronModel:
    """An averaged multi-class perceptron with a margin on TF-IDF vectors: each example the
    weights score wrongly, or by less than `margin`, moves them toward its intent and away
    from the rival. Averaging the weights over all steps keeps late updates from swinging
    them. Examples are visited in a fixed shuffled order, so a content version always
    trains the same model."""

    def __init__(self, examples: Sequence[tuple[str, Counter[str]]], epochs: int = PERCEPTRON_EPOCHS, margin: float = PERCEPTRON_MARGIN):
        documents = len(examples)
        frequency: Counter[str] = Counter(f for _, counts in examples for f in counts)
        self._idf = {f: math.log((1 + documents) / (1 + n)) + 1.0 for f, n in frequency.items()}
        rows = [(intent, self._vector(counts)) for intent, counts in examples]
        intents = sorted({intent for intent, _ in examples})
        weights: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        summed: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        order = random.Random(0)
        step = 1
        for _ in range(epochs):
            order.shuffle(rows)
            for want, vector in rows:
                scores = self._scores(vector, weights)
                rival = max((i for i in scores if i != want), key=scores.__getitem__, default=None)
                rival = rival or next(i for i in intents if i != want)
                if scores.get(rival, 0.0) + margin > scores.get(want, 0.0):
                    for feature, value in vector.items():
                        weights[feature][want] += value
                        weights[feature][rival] -= value
                        summed[feature][want] += step * value
                        summed[feature][rival] -= step * value
                step += 1
        self._weights = {f: {i: w - summed[f][i] / step for i, w in by_intent.items()} for f, by_intent in weights.items()}

    def _vector(self, counts: Counter[str]) -> dict[str, float]:
        weights = {f: (1.0 + math.log(n)) * self._idf[f] for f, n in counts.items() if f in self._idf}
        norm = math.sqrt(sum(w * w for w in weights.values()))
        return {f: w / norm for f, w in weights.items()} if norm else {}

    @staticmethod
    def _scores(vector: dict[str, float], weights: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
        scores: dict[str, float] = defaultdict(float)
        for feature, value in vector.items():
            for intent, weight in weights.get(feature, {}).items():
                scores[intent] += weight * value
        return scores

    def rank(self, counts: Counter[str]) -> tuple[Ranked, ...]:
        """The intents the message's features weigh for, best first, scored by a softmax of
        their scores at `PERCEPTRON_TEMPERATURE`."""
        scores = self._scores(self._vector(counts), self._weights)
        if not scores:
            return ()
        top = max(scores.values())
        odds = {intent: math.exp((score - top) / PERCEPTRON_TEMPERATURE) for intent, score in scores.items()}
        total = sum(odds.values())
        ranked = sorted(odds.items(), key=lambda pair: -pair[1])
        return tuple(Ranked(intent, round(value / total, 4)) for intent, value in ranked)


class IntentModel:
    """The ranking and its two opinions, trained on the same examples."""

    def __init__(self, examples: Sequence[tuple[str, Counter[str]]]):
        self.similarity = SimilarityModel(examples)
        self.bayes = BayesModel(examples)
        self.perceptron = PerceptronModel(examples)


def decide(ranking: tuple[Ranked, ...], opinions: Sequence[tuple[Ranked, ...]] = ()) -> Decision:
    """`ranking` by similarity; `opinions` other models' probabilities over the same intents.
    An answer needs the ranking's top over `ANSWER_FLOOR` and every opinion to allow it: it
    agrees, or the top leads clearly and the opinion is not `SURE` of another reading. With
    no opinions the lead alone decides. Otherwise the close readings, and the opinions'
    own plausible readings, are offered as "did you mean"."""
    if not ranking or ranking[0].score < CLARIFY_FLOOR:
        return Decision("admit", ranking)
    top = ranking[0]
    runner_up = ranking[1].score if len(ranking) > 1 else 0.0
    leads = top.score - runner_up >= ANSWER_MARGIN * top.score

    def allows(opinion: tuple[Ranked, ...]) -> bool:
        agreed = bool(opinion) and opinion[0].intent == top.intent
        return agreed or (leads and not (opinion and opinion[0].score >= SURE))

    if top.score >= ANSWER_FLOOR and (all(allows(o) for o in opinions) if opinions else leads):
        return Decision("answer", ranking)
    close = tuple(r for r in ranking[:MAX_CHOICES] if r.score >= max(CLARIFY_FLOOR, top.score - CLARIFY_WINDOW))
    by_intent = {r.intent: r for r in ranking}
    others = [by_intent[o[0].intent] for o in opinions if o and o[0].intent in by_intent]
    extra = tuple(dict.fromkeys(r for r in others if r not in close and r.score >= CLARIFY_FLOOR))[: MAX_CHOICES - 1]
    close = close[: MAX_CHOICES - len(extra)] + extra  # each plausible opinion is offered too
    if len(close) < 2:
        return Decision("answer", ranking) if top.score >= ANSWER_FLOOR else Decision("admit", ranking)
    return Decision("clarify", close + tuple(r for r in ranking if r not in close))
