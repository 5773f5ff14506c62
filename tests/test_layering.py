"""The import layering of docs/architecture.md, read from the source with `ast`.

- `bot/` (the core) imports neither the adapters nor the composition root `mlbot/`, and
  the adapters don't import `mlbot/` (only it imports both the core and the adapters);
- no import cycle inside `bot/` (imports under `if TYPE_CHECKING:` don't run, so they
  don't count; importing `bot.a.b` runs `bot/a/__init__.py` too, so that counts);
- no import inside a function in `bot/` (only `mlbot/` defers imports, to start fast);
- SQL only in the store (`bot/store*`): no SQL statement in a string anywhere else;
- no module of `bot/` over 600 lines;
- tests use the store through its public methods only (`store._write` is the store's own).
"""
from __future__ import annotations

import ast
import importlib
import inspect
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CORE, ADAPTERS, COMPOSITION_ROOT = "bot", "adapters", "mlbot"
MAX_LINES = 600
# The core's layers, bottom up (docs/architecture.md). A module imports (at run time)
# only from its own layer or below; a package's entry covers its submodules. A new
# module of bot/ gets a line here, which is where its place in the design is decided.
LAYERS = {
    # basics: types and pure functions every layer may use
    "bot.errors": 0, "bot.messages": 0, "bot.replies": 0, "bot.commands": 0, "bot.request": 0, "bot.apology": 0,
    "bot.delivery": 0, "bot.observe": 0, "bot.settings": 0, "bot.text": 0, "bot.schema": 0, "bot.suggest": 0,
    "bot.srs": 0, "bot.streaks": 0, "bot.nudge_schedule": 0, "bot.rate_limit": 0,
    # the store: every SQL statement, both backends
    "bot.store": 1,
    # content and understanding it
    "bot.content_types": 2, "bot.content": 2, "bot.charts": 2, "bot.understanding": 2, "bot.router": 2,
    # features the handlers and the nudge scheduler share
    "bot.progress_state": 3, "bot.nudge_message": 3, "bot.scheduler": 3, "bot.nudges": 3,
    # the commands
    "bot.handlers": 4,
    # routing a message to a command: the core
    "bot.core": 5,
    "bot": 0,
}
# Statements, not words: "select a course from the list" is English, not SQL.
SQL = re.compile(r"\b(SELECT\b[\s\S]+\bFROM|INSERT\s+INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM|CREATE\s+(TABLE|(UNIQUE\s+)?INDEX)|ALTER\s+TABLE|DROP\s+TABLE|PRAGMA\s+\w+|BEGIN\s+IMMEDIATE)\b")


@dataclass(frozen=True)
class Import:
    module: str  # the module (or package) that runs when this statement runs
    line: int
    at_runtime: bool  # not under `if TYPE_CHECKING:`
    in_function: bool


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def _modules(package: str) -> dict[str, Path]:
    return {_module_name(path): path for path in sorted((ROOT / package).rglob("*.py"))}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imported(module: str, node: ast.Import | ast.ImportFrom) -> list[str]:
    """What the statement imports: `from bot import nudges` is the module `bot.nudges`."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:  # relative: from the package of `module`
        package = module.split(".")
        base = ".".join(package[: len(package) - node.level] + ([base] if base else []))
    known = {**_modules(CORE), **_modules(ADAPTERS), **_modules(COMPOSITION_ROOT)}
    return [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]


@cache
def imports(module: str, path: Path) -> tuple[Import, ...]:
    found: list[Import] = []

    def walk(node: ast.AST, *, runtime: bool, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                found.extend(Import(name, child.lineno, runtime, in_function) for name in _imported(module, child))
            elif isinstance(child, ast.If) and _is_type_checking(child):
                for stmt in child.body:
                    walk(ast.Module(body=[stmt], type_ignores=[]), runtime=False, in_function=in_function)
                for stmt in child.orelse:
                    walk(ast.Module(body=[stmt], type_ignores=[]), runtime=runtime, in_function=in_function)
            else:
                walk(child, runtime=runtime, in_function=in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)))

    walk(ast.parse(path.read_text(), str(path)), runtime=True, in_function=False)
    return tuple(found)


def _runs(name: str, importer: str) -> list[str]:
    """The modules of `bot/` that importing `name` from `importer` runs: `name` and the
    __init__ of its packages, but not the importer's own packages (already imported)."""
    parts, own = name.split("."), importer.split(".")
    ancestors = {".".join(own[:n]) for n in range(1, len(own))}
    chain = (".".join(parts[:n]) for n in range(1, len(parts) + 1))
    return [m for m in chain if m in _modules(CORE) and m not in ancestors and m != importer]


def _core_graph() -> dict[str, set[str]]:
    return {
        module: {m for imp in imports(module, path) if imp.at_runtime for m in _runs(imp.module, module)}
        for module, path in _modules(CORE).items()
    }


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _in_store(module: str) -> bool:
    return module == "bot.store" or module.startswith(("bot.store.", "bot.store_"))


# --- the rules ---------------------------------------------------------------------------


@pytest.mark.parametrize("module", list(_modules(CORE)))
def test_the_core_imports_no_adapter_and_not_the_composition_root(module: str) -> None:
    path = _modules(CORE)[module]
    wrong = [f"{path.relative_to(ROOT)}:{imp.line} imports {imp.module}" for imp in imports(module, path) if imp.module.split(".")[0] in (ADAPTERS, COMPOSITION_ROOT)]
    assert not wrong, "\n".join(wrong)


def _placed(module: str) -> str:
    """The LAYERS entry for a module: itself, or its top package in bot/."""
    return ".".join(module.split(".")[:2])


def _layer(module: str) -> int:
    return LAYERS[_placed(module)]


def test_every_core_module_has_a_layer() -> None:
    unplaced = sorted({_placed(m) for m in _modules(CORE)} - set(LAYERS))
    assert not unplaced, f"give these a layer in LAYERS (and docs/architecture.md): {unplaced}"


def test_the_core_imports_downwards() -> None:
    """The store imports no content, feature, handler or core; handlers never import the
    core; and so on up the layers."""
    wrong = [
        f"{module} (layer {_layer(module)}) imports {target} (layer {_layer(target)})"
        for module, targets in _core_graph().items()
        for target in targets
        if _layer(target) > _layer(module)
    ]
    assert not wrong, "\n".join(sorted(wrong))


def test_no_import_cycle_in_the_core() -> None:
    cycles = _cycles(_core_graph())
    assert not cycles, "import cycles: " + "; ".join(" <-> ".join(c) for c in cycles)


def test_the_adapters_do_not_import_the_composition_root() -> None:
    wrong = [
        f"{path.relative_to(ROOT)}:{imp.line} imports {imp.module}"
        for module, path in _modules(ADAPTERS).items()
        for imp in imports(module, path)
        if imp.module.split(".")[0] == COMPOSITION_ROOT
    ]
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("module", list(_modules(CORE)))
def test_no_import_inside_a_function_in_the_core(module: str) -> None:
    path = _modules(CORE)[module]
    wrong = [f"{path.relative_to(ROOT)}:{imp.line} imports {imp.module} inside a function" for imp in imports(module, path) if imp.in_function]
    assert not wrong, "\n".join(wrong)


def test_sql_only_in_the_store() -> None:
    wrong = []
    for package in (CORE, ADAPTERS, COMPOSITION_ROOT):
        for module, path in _modules(package).items():
            if _in_store(module):
                continue
            tree = ast.parse(path.read_text(), str(path))
            docstrings = {id(node.value) for node in ast.walk(tree) if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)}
            for node in ast.walk(tree):
                if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings and SQL.search(node.value):
                    wrong.append(f"{path.relative_to(ROOT)}:{node.lineno}: {node.value.strip()[:60]!r}")
    assert not wrong, "SQL outside the store:\n" + "\n".join(wrong)


def test_no_core_module_is_over_600_lines() -> None:
    long = {str(path.relative_to(ROOT)): n for path in _modules(CORE).values() if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert not long, f"over {MAX_LINES} lines: {long}"


@cache
def _private_store_methods() -> frozenset[str]:
    """The private methods of the store's classes (`_write`, `_read`, `_member_id`, ...);
    PostgreSQL's only where asyncpg is installed."""
    classes = [importlib.import_module("bot.store").SqliteStore]
    try:
        classes.append(importlib.import_module("bot.store.postgres").PostgresStore)
    except ImportError:
        pass
    return frozenset(
        name for cls in classes for name, value in inspect.getmembers(cls) if name.startswith("_") and not name.startswith("__") and callable(value)
    )


def _names_a_store(node: ast.expr) -> bool:
    """`store`, `core.store`, `pg_store`: an expression that is, by its name, a store."""
    name = node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else ""
    return name.lower().endswith("store")


def _private_store_uses(source: str, filename: str) -> list[tuple[int, str]]:
    return sorted(
        (node.lineno, ast.unparse(node))
        for node in ast.walk(ast.parse(source, filename))
        if isinstance(node, ast.Attribute) and node.attr in _private_store_methods() and _names_a_store(node.value)
    )


def test_tests_use_only_public_store_methods() -> None:
    """What a test checks through the store, members and operators can do too: no test
    calls (or swaps out) a store's private method."""
    wrong = [
        f"{path.relative_to(ROOT)}:{line}: {use}"
        for path in sorted((ROOT / "tests").rglob("*.py"))
        for line, use in _private_store_uses(path.read_text(), str(path.relative_to(ROOT)))
    ]
    assert not wrong, "private store methods in tests:\n" + "\n".join(wrong)


# --- the checker itself --------------------------------------------------------------------


def test_the_checker_sees_cycles_type_checking_and_function_imports(tmp_path: Path) -> None:
    source = (
        "from typing import TYPE_CHECKING\n"
        "import bot.a\n"
        "if TYPE_CHECKING:\n    from bot import b\n"
        "def f():\n    from bot.c import x\n"
    )
    path = tmp_path / "m.py"
    path.write_text(source)
    found = {(i.module, i.at_runtime, i.in_function) for i in imports("bot.m", path)}
    assert {("typing", True, False), ("bot.a", True, False), ("bot", False, False), ("bot.c", True, True)} <= found
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert SQL.search("SELECT member FROM subscriptions WHERE due <= ?") and not SQL.search("select a course from the list")


def test_the_checker_sees_private_store_methods_in_tests() -> None:
    source = (
        "rows = await store._read('SELECT 1')\n"
        "write = core.store._write\n"
        "n = store.visits.reads\n"
        "self._write = write\n"
        "pool = store._pool\n"  # an attribute, not a method
    )
    assert [line for line, _ in _private_store_uses(source, "t.py")] == [1, 2]


@pytest.mark.parametrize("module", ["bot.core", "bot.handlers", "bot.request"])
def test_the_graph_reads_the_real_imports(module: str) -> None:
    """A sanity check that the graph is not empty by mistake: these modules import the core's
    basics at run time."""
    assert "bot.replies" in _core_graph()[module] or "bot.commands" in _core_graph()[module] or "bot.errors" in _core_graph()[module]
