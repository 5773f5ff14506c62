"""How well the bot understands questions it was never trained on, and what it costs.

Scores `tests/data/dev_questions.yaml` (held out: never used as training examples, but
looked at while tuning) and `tests/data/test_questions.yaml` (held out and never looked at:
written later, blind to both the examples and the dev set, to check the dev figures generalise). A question counts as correct
when the bot answers it (no "did you mean", no "I don't know") with the expected intent
and every expected slot. "Confidently wrong" is an answer with another intent; "unsure"
is a "did you mean" or an "I don't know", and `asked_with_right_choice` the share of
questions asked back with the expected intent among the choices offered.

Then it compares intent models on the same features and dev set, top-1 accuracy (no
abstaining), with their route p99, training time, import time and install size:
- the bot's two models: logistic regression trained by SGD in pure Python (it picks the
  reading) and TF-IDF cosine to each intent's centroid (it says whether anything fits)
- what the bot used before: a blend of the nearest example's and the centroid's cosine
  (its ranking), with naive Bayes as a second opinion
- nearest example alone
- BM25 over the examples
- an averaged perceptron (pure Python, 5 passes)
- logistic regression (scikit-learn), when scikit-learn is installed
- the keyword router this replaced, with `--old DIR` (a checkout of an older commit)

    python bench/understanding.py [--old DIR] [--content DIR] [--show-fail] [--quick]
"""
from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import subprocess
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402

from bot.content import load_content  # noqa: E402
from bot.core import Core  # noqa: E402
from bot.router import CLARIFY, FALLBACK, Route, Router  # noqa: E402
from bot.understanding import LogisticModel, Ranked, SimilarityModel, TfIdf  # noqa: E402

DEV = ROOT / "tests" / "data" / "dev_questions.yaml"
TEST = ROOT / "tests" / "data" / "test_questions.yaml"
FRESH = ROOT / "tests" / "data" / "fresh_questions.yaml"


@dataclass(frozen=True)
class Prediction:
    outcome: str  # answer | clarify | admit
    intent: str | None
    slots: dict[str, set[str]]
    choices: tuple[str, ...] = ()


def load_dev(path: Path = DEV) -> list[dict]:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def intent_of(route: Route) -> Prediction:
    """The intent and slots a route stands for."""
    slots: dict[str, set[str]] = defaultdict(set)
    for e in route.entities:
        slots[e.kind].add(e.id)
    for key, value in route.args.items():
        slots[key].add(value)
    if route.command == CLARIFY:
        return Prediction("clarify", None, slots, route.choices)
    if route.command == FALLBACK:
        return Prediction("admit", None, slots)
    if route.command == "faq":
        return Prediction("answer", f"faq:{route.args.get('question')}", slots)
    if route.command == "scope":
        return Prediction("answer", f"scope:{route.args.get('topic')}", slots)
    if route.command == "smalltalk":
        return Prediction("answer", f"smalltalk:{route.args.get('kind')}", slots)
    return Prediction("answer", route.command, slots)


def judge(item: dict, p: Prediction) -> str:
    """correct | wrong (answered another intent) | slots (right intent, slot missed) | unsure"""
    if p.outcome != "answer":
        return "unsure"
    if p.intent != item["intent"]:
        return "wrong"
    for key, value in (item.get("slots") or {}).items():
        if str(value).lower() not in p.slots.get(key, set()):
            return "slots"
    return "correct"


def score(items: list[dict], predict: Callable[[str], Prediction], show: bool = False) -> dict[str, float]:
    verdicts = Counter()
    for item in items:
        p = predict(item["q"])
        verdict = judge(item, p)
        verdicts[verdict] += 1
        if p.outcome == "clarify" and item["intent"] in p.choices:
            verdicts["asked_with_right_choice"] += 1
        if show and verdict != "correct":
            print(f"  [{verdict}] want {item['intent']} {item.get('slots') or ''} got {p.outcome} {p.intent} :: {item['q'][:110]}")
    n = len(items)
    return {"accuracy": 100 * verdicts["correct"] / n, "confidently_wrong": 100 * verdicts["wrong"] / n,
            "unsure": 100 * verdicts["unsure"] / n, "slot_misses": 100 * verdicts["slots"] / n,
            "asked_with_right_choice": 100 * verdicts["asked_with_right_choice"] / n}


def p99_us(fn: Callable[[str], object], texts: list[str], rounds: int = 5) -> tuple[float, float]:
    for t in texts:
        fn(t)
    samples = []
    for _ in range(rounds):
        for t in texts:
            start = time.perf_counter_ns()
            fn(t)
            samples.append((time.perf_counter_ns() - start) / 1000)
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[int(0.99 * (len(ordered) - 1))]


# --- alternative intent models over the same features -------------------------------------


class BayesModel:
    """Multinomial naive Bayes over the features present (each counted once), equal priors,
    additive smoothing 0.1: the bot's second opinion before the logistic model."""

    def __init__(self, rows: list[tuple[str, Counter]], smoothing: float = 0.1):
        seen: dict[str, Counter] = defaultdict(Counter)
        vocabulary: set[str] = set()
        for intent, counts in rows:
            seen[intent].update(counts.keys())
            vocabulary.update(counts)
        self._unseen: dict[str, float] = {}
        self._gains: dict[str, list[tuple[str, float]]] = defaultdict(list)
        for intent, counts in seen.items():
            total = sum(counts.values()) + smoothing * len(vocabulary)
            self._unseen[intent] = math.log(smoothing / total)
            for feature, n in counts.items():
                self._gains[feature].append((intent, math.log((n + smoothing) / smoothing)))

    def rank(self, counts: Counter) -> tuple[Ranked, ...]:
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
        return tuple(Ranked(i, v / total) for i, v in sorted(odds.items(), key=lambda pair: -pair[1]))


class OnVectors:
    """A bot model (it reads TF-IDF vectors) behind the candidates' `rank(counts)`."""

    def __init__(self, model, weigh: TfIdf):
        self._model, self._weigh = model, weigh

    def rank(self, counts: Counter) -> tuple[Ranked, ...]:
        return self._model.rank(self._weigh(counts))


class BlendModel:
    """The bot's ranking before the logistic model: TF-IDF cosine blending `nearest_weight`
    of the intent's best-matching example's with the rest of its centroid's. (The bot kept
    an inverted index of the examples; this scans them, so its p99 here is higher.)"""

    def __init__(self, rows: list[tuple[str, Counter]], nearest_weight: float = 0.3):
        self._idf = _idf(rows)
        self._share = nearest_weight
        self._rows = [(intent, _tfidf(counts, self._idf)) for intent, counts in rows]
        self._centroids = SimilarityModel(self._rows)

    def rank(self, counts: Counter) -> tuple[Ranked, ...]:
        q = _tfidf(counts, self._idf)
        best: dict[str, float] = {}
        for intent, vector in self._rows:
            score = sum(w * vector.get(f, 0.0) for f, w in q.items())
            if score > best.get(intent, 0.0):
                best[intent] = score
        centroid = {r.intent: r.score for r in self._centroids.rank(q)}
        blended = {i: self._share * best.get(i, 0.0) + (1 - self._share) * centroid.get(i, 0.0) for i in set(best) | set(centroid)}
        return tuple(Ranked(i, s) for i, s in sorted(blended.items(), key=lambda x: -x[1]))


class BM25Model:
    """Okapi BM25 of the message against each example; an intent takes its best example."""

    def __init__(self, rows: list[tuple[str, Counter]], k1: float = 1.2, b: float = 0.75):
        self._rows = rows
        self._k1, self._b = k1, b
        self._avg = sum(sum(c.values()) for _, c in rows) / len(rows)
        df = Counter(f for _, c in rows for f in c)
        n = len(rows)
        self._idf = {f: math.log(1 + (n - d + 0.5) / (d + 0.5)) for f, d in df.items()}

    def rank(self, counts: Counter) -> tuple[Ranked, ...]:
        best: dict[str, float] = {}
        for intent, doc in self._rows:
            length = sum(doc.values())
            s = 0.0
            for f in counts:
                tf = doc.get(f, 0)
                if tf:
                    s += self._idf[f] * tf * (self._k1 + 1) / (tf + self._k1 * (1 - self._b + self._b * length / self._avg))
            best[intent] = max(best.get(intent, 0.0), s)
        return tuple(Ranked(i, s) for i, s in sorted(best.items(), key=lambda x: -x[1]))


class PerceptronModel:
    """An averaged multi-class perceptron with a margin, in pure Python, on TF-IDF vectors:
    discriminative like logistic regression, without a numerical library."""

    def __init__(self, rows: list[tuple[str, Counter]], epochs: int = 5, margin: float = 1.0, seed: int = 0):
        self._idf = _idf(rows)
        data = [(intent, _tfidf(counts, self._idf)) for intent, counts in rows]
        intents = sorted({intent for intent, _ in rows})
        weights: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        summed: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        shuffle = random.Random(seed).shuffle
        step = 1
        for _ in range(epochs):
            shuffle(data)
            for want, vector in data:
                scores: dict[str, float] = defaultdict(float)
                for f, v in vector.items():
                    for intent, w in weights[f].items():
                        scores[intent] += w * v
                rival = max((i for i in scores if i != want), key=scores.__getitem__, default=None)
                rival = rival or next(i for i in intents if i != want)
                if scores.get(rival, 0.0) + margin > scores.get(want, 0.0):
                    for f, v in vector.items():
                        weights[f][want] += v
                        weights[f][rival] -= v
                        summed[f][want] += step * v
                        summed[f][rival] -= step * v
                step += 1
        self._weights = {f: {i: w - summed[f][i] / step for i, w in by_intent.items()} for f, by_intent in weights.items()}

    def rank(self, counts: Counter) -> tuple[Ranked, ...]:
        scores: dict[str, float] = defaultdict(float)
        for f, v in _tfidf(counts, self._idf).items():
            for intent, w in self._weights.get(f, {}).items():
                scores[intent] += w * v
        return tuple(Ranked(i, s) for i, s in sorted(scores.items(), key=lambda x: -x[1]))


class SklearnLogistic:
    """scikit-learn's logistic regression on the same sparse features."""

    def __init__(self, rows: list[tuple[str, Counter]]):
        from sklearn.feature_extraction import DictVectorizer
        from sklearn.feature_extraction.text import TfidfTransformer
        from sklearn.linear_model import LogisticRegression

        self._vec = DictVectorizer()
        self._tfidf = TfidfTransformer(sublinear_tf=True)
        x = self._tfidf.fit_transform(self._vec.fit_transform([dict(c) for _, c in rows]))
        self._model = LogisticRegression(C=20, max_iter=2000).fit(x, [i for i, _ in rows])

    def rank(self, counts: Counter) -> tuple[Ranked, ...]:
        x = self._tfidf.transform(self._vec.transform([dict(counts)]))
        probs = self._model.predict_proba(x)[0]
        order = probs.argsort()[::-1]
        return tuple(Ranked(self._model.classes_[i], float(probs[i])) for i in order)


def _idf(rows: list[tuple[str, Counter]]) -> dict[str, float]:
    df = Counter(f for _, c in rows for f in c)
    return {f: math.log((1 + len(rows)) / (1 + d)) + 1 for f, d in df.items()}


def _tfidf(counts: Counter, idf: dict[str, float]) -> dict[str, float]:
    return _normalise({f: (1 + math.log(n)) * idf[f] for f, n in counts.items() if f in idf})


def _normalise(v: dict[str, float]) -> dict[str, float]:
    norm = math.sqrt(sum(w * w for w in v.values()))
    return {f: w / norm for f, w in v.items()} if norm else {}


def top1(router: Router, model) -> Callable[[str], Prediction]:
    def predict(text: str) -> Prediction:
        ranking = model.rank(router.features(text))
        found, _ = router.entities(router.normalise(text))
        if not ranking:
            return Prediction("admit", None, {})
        return intent_of(router.intent_route(ranking[0].intent, tuple(found)))

    return predict


def import_ms(module: str, python: str = sys.executable) -> float:
    code = f"import time; t=time.perf_counter(); import {module}; print((time.perf_counter()-t)*1000)"
    runs = [float(subprocess.run([python, "-c", code], capture_output=True, text=True, check=True).stdout) for _ in range(5)]
    return statistics.median(runs)


def package_mb(*names: str) -> float:
    import importlib.util

    total = 0
    for name in names:
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.submodule_search_locations:
            continue
        for folder in spec.submodule_search_locations:
            total += sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file())
    return total / 1e6


OLD_SCRIPT = """
import json, sys
sys.path.insert(0, sys.argv[1])
from bot.content import load_content
from bot.core import Core
router = Core(load_content()).router
for line in sys.stdin:
    text = json.loads(line)
    r = router.route(text)
    print(json.dumps({"command": r.command, "args": r.args, "entities": [[e.kind, e.id] for e in r.entities]}))
"""


def old_router(directory: Path, items: list[dict]) -> Callable[[str], Prediction]:
    """The router of an older checkout, run in its own process (its own `bot` package)."""
    run = subprocess.run([sys.executable, "-c", OLD_SCRIPT, str(directory)], input="\n".join(json.dumps(i["q"]) for i in items),
                         capture_output=True, text=True, check=True, cwd=directory)
    answers = {}
    for item, line in zip(items, run.stdout.splitlines()):
        r = json.loads(line)
        from bot.router import Entity

        route = Route(r["command"], r["args"], tuple(Entity(k, i, 0) for k, i in r["entities"]))
        answers[item["q"]] = intent_of(route)
    return lambda text: answers[text]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", type=Path, help="a checkout whose keyword router to score beside")
    parser.add_argument("--content", type=Path, help="the content directory to train on (default: the bundled one)")
    parser.add_argument("--show-fail", action="store_true", help="list the dev set's misses (never the test set's)")
    parser.add_argument("--quick", action="store_true", help="skip the comparison of candidate models")
    args = parser.parse_args()
    started = time.perf_counter()
    content = load_content(args.content)
    core = Core(content)
    router = core.router
    print(f"understanding.train: {(time.perf_counter() - started) * 1000:.0f} ms (load content + train)")
    dev = load_dev()
    chosen = lambda text: intent_of(router.route(text))  # noqa: E731
    sets = {"dev": dev, **{name: load_dev(path) for name, path in (("test", TEST), ("fresh", FRESH)) if path.exists()}}
    for name, items in sets.items():
        figures = score(items, chosen, show=args.show_fail and name == "dev")
        print(f"understanding.{name}.questions: {len(items)} count")
        for key, value in figures.items():
            print(f"understanding.{name}.{key}: {value:.1f} %")
    median, p99 = p99_us(router.route, [i["q"] for i in dev])
    print(f"understanding.route.p50: {median:.0f} us")
    print(f"understanding.route.p99: {p99:.0f} us")
    floor_median, floor_p99 = p99_us(lambda t: t.lower().split(), [i["q"] for i in dev])
    print(f"understanding.floor.p99: {floor_p99:.1f} us")
    if args.quick:
        return

    rows = [(intent, router.features(e.text)) for intent, items in content.examples().items() for e in items]
    weigh = TfIdf([counts for _, counts in rows])
    vectors = [(intent, weigh(counts)) for intent, counts in rows]
    candidates: dict[str, Callable[[], object]] = {
        "logistic": lambda: OnVectors(LogisticModel(vectors), weigh),
        "centroid": lambda: OnVectors(SimilarityModel(vectors), weigh),
        "blend": lambda: BlendModel(rows),
        "bayes": lambda: BayesModel(rows),
        "nearest": lambda: BlendModel(rows, nearest_weight=1.0),
        "bm25": lambda: BM25Model(rows),
        "perceptron": lambda: PerceptronModel(rows),
    }
    try:
        import sklearn  # noqa: F401

        candidates["logreg"] = lambda: SklearnLogistic(rows)
    except ImportError:
        print("understanding.logreg: skipped (scikit-learn is not installed)")
    for name, build in candidates.items():
        t = time.perf_counter()
        model = build()
        train_ms = (time.perf_counter() - t) * 1000
        predict = top1(router, model)
        result = score(dev, predict)
        _, p99 = p99_us(lambda text: model.rank(router.features(text)), [i["q"] for i in dev], rounds=2)
        print(f"understanding.{name}.top1: {result['accuracy']:.1f} %")
        print(f"understanding.{name}.p99: {p99:.0f} us")
        print(f"understanding.{name}.train: {train_ms:.0f} ms")
    if "logreg" in candidates:
        print(f"understanding.logreg.import: {import_ms('sklearn.linear_model'):.0f} ms")
        print(f"understanding.logreg.install: {package_mb('sklearn', 'scipy', 'numpy', 'joblib', 'threadpoolctl'):.0f} MB")
    print(f"understanding.bot.import: {import_ms('bot.understanding'):.0f} ms")
    if args.old:
        old = score(dev, old_router(args.old, dev))
        for key, value in old.items():
            print(f"understanding.old_router.dev.{key}: {value:.1f} %")


if __name__ == "__main__":
    main()
