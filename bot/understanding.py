"""Which intent a free-text message means, learned from the `examples:` content declares.

Both models read the same TF-IDF vector of the same features: word unigrams, word bigrams
and the kinds of slot a message mentions (`slot:level`, `slot:role`...), so "what do
seniors make in Berlin" and "pay for a junior in Canada" share the shape that matters.
- `LogisticModel` decides which intent is meant: multinomial logistic regression, trained
  to tell the intents apart (a word that all of salary's examples use but so do
  compare's counts for little), with probabilities that say how sure it is.
- `SimilarityModel` says whether anything fits at all: TF-IDF cosine to each intent's
  centroid. A message unlike every example ("zork the flux capacitor") scores low
  everywhere, where probabilities, which always sum to one, would still pick something.

Training is a few passes of pure Python: well under a second for today's content,
whenever content loads (and on `reload`), with no download and no numerical library.
`bench/understanding.py` compares them with the alternatives that were measured.

`decide` turns the readings into one of three outcomes: answer (a sure reading that
fits), clarify (two or three plausible readings: "did you mean"), or admit (nothing
fits).
"""
from __future__ import annotations

import math
import zlib
from collections import Counter, defaultdict
from dataclasses import dataclass
from functools import lru_cache
from typing import Iterable, Literal, Sequence

Outcome = Literal["answer", "clarify", "admit"]

# Set by measurement: `bench/understanding.py` prints accuracy and confidently-wrong answers
# on the dev set, which moving these trades against each other.
# An answer needs the logistic model this sure of its reading. Its probabilities run low on
# purpose: a few passes of training leave them spread (one in five is already a clear first
# among 56 intents), and the similarity floor below stops a sure reading of nonsense.
ANSWER_PROBABILITY = 0.2
# A reading this probable is offered as a "did you mean" choice.
CHOICE_PROBABILITY = 0.1
# An intent fits when the message's similarity to its examples reaches this, and fits well
# enough to answer at `ANSWER_FIT`; with fewer than two plausible readings and no answer,
# the bot says what the articles do cover.
FIT_FLOOR = 0.07
ANSWER_FIT = 0.10
MAX_CHOICES = 3
# Training: passes over the examples, the first pass's step (later passes take
# step / pass number), and the probability under which a wrong intent is left alone.
EPOCHS = 3
STEP = 3.0
NEGLIGIBLE = 0.05

Vector = dict[str, float]


@dataclass(frozen=True, slots=True)
class Ranked:
    intent: str
    score: float


@dataclass(frozen=True, slots=True)
class Decision:
    outcome: Outcome
    ranking: tuple[Ranked, ...]  # best first: the readings offered, then the rest

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


class TfIdf:
    """Sublinear term frequency times smoothed inverse document frequency, unit length;
    features no example has are dropped."""

    def __init__(self, documents: Sequence[Counter[str]]):
        frequency: Counter[str] = Counter()
        for counts in documents:
            frequency.update(counts.keys())
        total = len(documents)
        self._idf = {f: math.log((1 + total) / (1 + n)) + 1.0 for f, n in frequency.items()}

    def __call__(self, counts: Counter[str]) -> Vector:
        idf = self._idf
        weights = {f: (1.0 + math.log(n)) * idf[f] for f, n in counts.items() if f in idf}
        norm = math.sqrt(sum(w * w for w in weights.values()))
        return {f: w / norm for f, w in weights.items()} if norm else {}


class SimilarityModel:
    """TF-IDF cosine to each intent's centroid (the mean of its examples' vectors): how
    close a message is to what members ask for that intent, pooling all its phrasings.
    An inverted index keeps a message to the centroids that share a feature with it."""

    def __init__(self, examples: Sequence[tuple[str, Vector]]):
        if not examples:
            raise ValueError("an intent model needs examples")
        sums: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        for intent, vector in examples:
            for feature, weight in vector.items():
                sums[intent][feature] += weight
        self._centroids: dict[str, list[tuple[str, float]]] = defaultdict(list)
        for intent, summed in sums.items():
            norm = math.sqrt(sum(w * w for w in summed.values()))
            for feature, weight in summed.items():
                self._centroids[feature].append((intent, weight / norm))

    def rank(self, vector: Vector) -> tuple[Ranked, ...]:
        """Every intent that shares a feature with the message, best first."""
        scores: dict[str, float] = {}
        for feature, weight in vector.items():
            for intent, centroid_weight in self._centroids.get(feature, ()):
                scores[intent] = scores.get(intent, 0.0) + weight * centroid_weight
        ranked = sorted(scores.items(), key=lambda pair: -pair[1])
        return tuple(Ranked(intent, score) for intent, score in ranked)


class LogisticModel:
    """Multinomial logistic regression, trained by stochastic gradient descent in pure Python.

    A feature holds weights only for the intents whose examples use it (the pairs naive
    Bayes would count), so a pass walks each example's features' short lists, and an
    intent a message shares no feature with scores 0 and keeps its share of the
    probability. A wrong intent under `negligible` probability is not pushed down further:
    after the first pass most examples move only their own intent and one or two rivals.
    Each pass takes the examples in an order drawn from their own content (a checksum of
    the pass number, the intent and the features), not from their place in the files:
    the same content trains the same model, and an example added or edited moves only
    itself in the order. With a seeded shuffle instead, one added example changed the
    top reading of 3 of the 247 dev questions, whatever its intent; now none."""

    def __init__(self, examples: Sequence[tuple[str, Vector]], epochs: int = EPOCHS, step: float = STEP,
                 negligible: float = NEGLIGIBLE):
        if not examples:
            raise ValueError("an intent model needs examples")
        self._intents = sorted({intent for intent, _ in examples})
        number = {intent: k for k, intent in enumerate(self._intents)}
        # feature -> (intent numbers, their weights, where each intent number sits in both),
        # for the intents whose examples use the feature; the positions serve training only
        users: dict[str, dict[int, None]] = defaultdict(dict)
        for intent, vector in examples:
            for feature in vector:
                users[feature][number[intent]] = None
        training = {feature: (list(intents), [0.0] * len(intents), {k: at for at, k in enumerate(intents)}) for feature, intents in users.items()}
        rows = [(number[intent], [(*training[feature], value) for feature, value in vector.items()]) for intent, vector in examples]
        identities = [f"{intent}|{' '.join(sorted(vector))}" for intent, vector in examples]
        self._train(rows, identities, epochs, step, negligible)
        # feature -> (intent numbers, their weights): what a message is scored with
        self._weights: dict[str, tuple[list[int], list[float]]] = {feature: (intents, weights) for feature, (intents, weights, _) in training.items()}

    def _train(self, rows: list, identities: list[str], epochs: int, step: float, negligible: float) -> None:
        size = len(self._intents)
        exp = math.exp
        for epoch in range(epochs):
            order = sorted(range(len(rows)), key=lambda n: zlib.crc32(f"{epoch}|{identities[n]}".encode()))
            rate = step / (1 + epoch)
            for want, terms in (rows[n] for n in order):
                scores = [0.0] * size
                for intents, weights, _, value in terms:
                    for k, w in zip(intents, weights):
                        scores[k] += w * value
                top = max(scores)
                odds = [exp(s - top) for s in scores]
                total = sum(odds)
                floor = negligible * total
                # the gradient of the log loss: probability, minus one for the intent wanted
                pushes = {k: o / total for k, o in enumerate(odds) if o > floor}
                pushes[want] = odds[want] / total - 1.0
                for _, weights, position, value in terms:
                    scaled = rate * value
                    for k, gradient in pushes.items():
                        at = position.get(k)
                        if at is not None:
                            weights[at] -= scaled * gradient

    def rank(self, vector: Vector) -> tuple[Ranked, ...]:
        """The intents the message shares a feature with, by probability, best first."""
        scores: dict[int, float] = {}
        for feature, value in vector.items():
            entry = self._weights.get(feature)
            if entry is not None:
                for k, w in zip(entry[0], entry[1]):
                    scores[k] = scores.get(k, 0.0) + w * value
        if not scores:
            return ()
        top = max(0.0, max(scores.values()))
        odds = {k: math.exp(s - top) for k, s in scores.items()}
        total = sum(odds.values()) + math.exp(-top) * (len(self._intents) - len(scores))
        intents = self._intents
        ranked = sorted(odds.items(), key=lambda pair: -pair[1])
        return tuple(Ranked(intents[k], o / total) for k, o in ranked)


class IntentModel:
    """Both models, trained on the same vectors of the same examples."""

    def __init__(self, examples: Sequence[tuple[str, Counter[str]]]):
        self.weigh = TfIdf([counts for _, counts in examples])
        vectors = [(intent, self.weigh(counts)) for intent, counts in examples]
        self.similarity = SimilarityModel(vectors)
        self.logistic = LogisticModel(vectors)

    def read(self, counts: Counter[str]) -> tuple[tuple[Ranked, ...], tuple[Ranked, ...]]:
        """(probabilities, similarities) of the intents, each best first."""
        vector = self.weigh(counts)
        return self.logistic.rank(vector), self.similarity.rank(vector)


def train(examples: Sequence[tuple[str, Counter[str]]]) -> IntentModel:
    """The model for these examples, trained once per process: every `Core` built on the
    same content shares it, and a `reload` that changed no example costs nothing. Training
    is deterministic, so sharing changes no answer."""
    return _trained(tuple((intent, tuple(sorted(counts.items()))) for intent, counts in examples))


@lru_cache(maxsize=4)
def _trained(examples: tuple[tuple[str, tuple[tuple[str, int], ...]], ...]) -> IntentModel:
    return IntentModel([(intent, Counter(dict(counts))) for intent, counts in examples])


def decide(probable: tuple[Ranked, ...], fits: tuple[Ranked, ...]) -> Decision:
    """`probable`: the logistic model's probabilities, best first; `fits`: the similarity
    ranking. Only readings that fit count. The most probable of them is the answer when the
    model is sure of it and it fits well; otherwise two or three are offered, and fewer
    than two plausible readings is an admission."""
    closeness = {r.intent: r.score for r in fits}
    plausible = tuple(r for r in probable if closeness.get(r.intent, 0.0) >= FIT_FLOOR)
    if plausible and plausible[0].score >= ANSWER_PROBABILITY and closeness[plausible[0].intent] >= ANSWER_FIT:
        named = {r.intent for r in plausible}
        return Decision("answer", plausible + tuple(r for r in fits if r.intent not in named))
    choices = tuple(r for r in plausible[:MAX_CHOICES] if r.score >= CHOICE_PROBABILITY) or plausible[:1]
    if len(choices) == 1:  # a lone, unsure reading: offer the closest fits beside it
        choices += tuple(r for r in fits if r.intent != choices[0].intent and r.score >= FIT_FLOOR)[: MAX_CHOICES - 1]
    if len(choices) < 2:
        return Decision("admit", fits)
    offered = {r.intent for r in choices}
    return Decision("clarify", choices + tuple(r for r in plausible if r.intent not in offered))
