"""Core latency and throughput, and the start-up of `mlbot --help` and `mlbot ask "help"`,
against floors measured in the same run (`python -c pass` for start-up, interleaved with
the commands so that load on the machine hits all three alike). Prints one
`name: value unit` line per figure.

    python bench/core.py
"""
from __future__ import annotations

import asyncio
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.content import load_content  # noqa: E402
from bot.core import Core  # noqa: E402
from bot.messages import Message  # noqa: E402
from bot.replies import render_text  # noqa: E402

MESSAGES = [
    "salary", "salary senior europe", "what do senior ML engineers earn in Europe?", "salery entry levl",
    "how much does a junior ml engineer earn", "I have 3 years of experience, what salary can I expect?",
    "ml engineer vs software engineer pay", "remote ml engineer salary", "what does a senior MLE make?",
    "ml engineer vs data scientist", "what does a data engineer do", "what's the job of an ML engineer?",
    "roles for career changers in AI", "compare mle ds", "what is an AI engineer",
    "interview tips", "what to wear to an interview at a startup", "portfolio ideas", "intervew tips pls",
    "what do hiring managers look for", "courses", "regression course", "Production Machine Learning Systems",
    "which course first if I know statistics?", "best courses for a software engineer", "certifications",
    "books to learn machine learning", "roadmap to become an ML engineer", "how long from software engineering to ML",
    "do I need a degree", "best programming language for ML", "pytorch or tensorflow", "is ML engineering a good career?",
    "hello", "help", "tell me a joke about cats", "sources", "how much math do I need",
    "what tools should an ml engineer know", "which industries hire ml engineers",
]


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def core_loop(n: int) -> tuple[list[float], float]:
    core = Core(load_content(), rng=random.Random(1))
    messages = [Message("console", f"m{i % 50}", MESSAGES[i % len(MESSAGES)]) for i in range(n)]
    for m in messages[:200]:  # warm caches as a running bot would be
        render_text(await core.handle(m))
    samples = []
    start = time.perf_counter()
    for m in messages:
        t = time.perf_counter_ns()
        render_text(await core.handle(m))
        samples.append((time.perf_counter_ns() - t) / 1000)
    return samples, time.perf_counter() - start


SALARY = ["salary senior", "salary", "salary entry europe", "salary staff remote", "what do senior ML engineers earn in Europe?"]


async def salary_loop(n: int) -> list[float]:
    """`salary` replies once each chart is drawn (the first reply of each draws it): us each."""
    core = Core(load_content(), rng=random.Random(1))
    messages = [Message("console", "s", SALARY[i % len(SALARY)]) for i in range(n)]
    for m in messages[: len(SALARY)]:
        await core.handle(m)
    samples = []
    for m in messages:
        t = time.perf_counter_ns()
        await core.handle(m)
        samples.append((time.perf_counter_ns() - t) / 1000)
    return samples


async def floor_loop(n: int) -> list[float]:
    table = {text: i for i, text in enumerate(MESSAGES)}
    samples = []
    for i in range(n):
        t = time.perf_counter_ns()
        table.get(MESSAGES[i % len(MESSAGES)])
        samples.append((time.perf_counter_ns() - t) / 1000)
    return samples


def process_times(commands: dict[str, list[str]], runs: int, env: dict[str, str]) -> dict[str, list[float]]:
    """Wall time of each command, `runs` times, taking turns."""
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(runs):
        for name, argv in commands.items():
            t = time.perf_counter()
            subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, env=env)
            times[name].append(time.perf_counter() - t)
    return times


def main() -> None:
    n = 2000
    samples, elapsed = asyncio.run(core_loop(n))
    floor = asyncio.run(floor_loop(n))
    print(f"core.p50: {percentile(samples, 0.50):.0f} us")
    print(f"core.p99: {percentile(samples, 0.99):.0f} us")
    print(f"core.throughput: {n / elapsed:.0f} msg/s")
    print(f"core.floor.p50: {percentile(floor, 0.50):.2f} us")
    print(f"core.floor.p99: {percentile(floor, 0.99):.2f} us")
    salary = asyncio.run(salary_loop(n))
    print(f"core.salary_with_chart.p99: {percentile(salary, 0.99):.0f} us")
    import os

    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, MLBOT_DB=str(Path(tmp) / "bench.sqlite3"))
        commands = {"bare": [sys.executable, "-c", "pass"], "help": [sys.executable, "-m", "mlbot", "--help"],
                    "ask": [sys.executable, "-m", "mlbot", "ask", "help"]}
        medians = {name: statistics.median(times) for name, times in process_times(commands, 15, env).items()}
    print(f"startup.python_pass.median: {medians['bare'] * 1000:.0f} ms")
    print(f"startup.help.median: {medians['help'] * 1000:.0f} ms")
    print(f"startup.help.ratio: {medians['help'] / medians['bare']:.1f} x")
    print(f"startup.ask_help.median: {medians['ask'] * 1000:.0f} ms")
    print(f"startup.ratio: {medians['ask'] / medians['bare']:.1f} x")


if __name__ == "__main__":
    main()
