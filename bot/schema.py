"""A small declarative validator for YAML content that reports `file:line: message`.

PyYAML's composer (the C one when available) keeps the line of every node; the specs
below walk those nodes, build typed values and collect every problem instead of
stopping at the first, so an editor fixes a file in one pass. Cross-references are
collected while walking and checked once every file is read.
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import yaml

try:  # the C composer is several times faster; fall back when libyaml is missing
    from yaml import CSafeLoader as _Loader
except ImportError:  # pragma: no cover - depends on how PyYAML was built
    from yaml import SafeLoader as _Loader  # type: ignore[assignment]

_STR = "tag:yaml.org,2002:str"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_BOOL = "tag:yaml.org,2002:bool"
_NULL = "tag:yaml.org,2002:null"
_TIMESTAMP = "tag:yaml.org,2002:timestamp"
_CONSTRUCTOR = yaml.constructor.SafeConstructor()
ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]*$")


@dataclass(frozen=True, slots=True)
class Problem:
    file: str
    line: int
    message: str
    # A file that could not be read at all: the references into it then fail elsewhere,
    # so it is reported before those knock-on problems.
    root_cause: bool = False

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


@dataclass(frozen=True, slots=True)
class Example:
    """A phrasing a member might type, with where it is written (for `file:line` checks)."""

    text: str
    file: str
    line: int


class ContentError(Exception):
    """Content did not validate; `problems` says where and why, files that could not
    be read first."""

    def __init__(self, problems: list[Problem]):
        self.problems = sorted(problems, key=lambda p: (not p.root_cause, p.file, p.line, p.message))
        super().__init__("\n".join(str(p) for p in self.problems))


@dataclass
class Context:
    """Walking state: the file being read, problems so far, ids and references seen."""

    file: str = ""
    problems: list[Problem] = dataclasses.field(default_factory=list)
    ids: dict[tuple[str, str], tuple[str, int]] = dataclasses.field(default_factory=dict)
    refs: list[tuple[str, str, str, int]] = dataclasses.field(default_factory=list)

    def problem(self, node: yaml.Node, message: str) -> None:
        self.problems.append(Problem(self.file, node.start_mark.line + 1, message))

    def check_refs(self) -> None:
        for kind, value, file, line in self.refs:
            if (kind, value) not in self.ids:
                known = sorted(v for k, v in self.ids if k == kind)
                hint = f" (known: {', '.join(known[:12])}{', ...' if len(known) > 12 else ''})" if known else ""
                self.problems.append(Problem(file, line, f"unknown {kind} '{value}'{hint}"))


class Invalid(Exception):
    """Raised inside a spec after the problem was recorded, to skip the broken value."""


Spec = Callable[[yaml.Node, Context], Any]


def _scalar(node: yaml.Node, ctx: Context, tags: tuple[str, ...], what: str) -> Any:
    if not isinstance(node, yaml.ScalarNode) or node.tag not in tags:
        ctx.problem(node, f"expected {what}, got {_describe(node)}")
        raise Invalid
    return _CONSTRUCTOR.construct_object(node)


def _describe(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    if node.tag == _NULL:
        return "nothing"
    return f"'{node.value}'"


def text(node: yaml.Node, ctx: Context) -> str:
    value = _scalar(node, ctx, (_STR,), "text")
    if not value.strip():
        ctx.problem(node, "expected text, got an empty string")
        raise Invalid
    return value.strip()


def integer(node: yaml.Node, ctx: Context) -> int:
    return int(_scalar(node, ctx, (_INT,), "a whole number"))


def number(node: yaml.Node, ctx: Context) -> float:
    return float(_scalar(node, ctx, (_INT, _FLOAT), "a number"))


def boolean(node: yaml.Node, ctx: Context) -> bool:
    return bool(_scalar(node, ctx, (_BOOL,), "true or false"))


def date_text(node: yaml.Node, ctx: Context) -> str:
    """A date written as 2026-06-30 or 2026-06 (kept as text)."""
    value = str(_scalar(node, ctx, (_STR, _TIMESTAMP, _INT), "a date such as 2026-06-30"))
    if not re.fullmatch(r"\d{4}(-\d{2}(-\d{2})?)?", value):
        ctx.problem(node, f"expected a date such as 2026-06-30, got '{value}'")
        raise Invalid
    return value


def ident(kind: str) -> Spec:
    """An id, unique among ids of its kind."""

    def spec(node: yaml.Node, ctx: Context) -> str:
        value = _scalar(node, ctx, (_STR, _INT), "an id")
        value = str(value)
        if not ID_PATTERN.match(value):
            ctx.problem(node, f"id '{value}' must be lower-case letters, digits and dashes")
            raise Invalid
        key = (kind, value)
        if key in ctx.ids:
            file, line = ctx.ids[key]
            ctx.problem(node, f"duplicate {kind} id '{value}' (first defined at {file}:{line})")
            raise Invalid
        ctx.ids[key] = (ctx.file, node.start_mark.line + 1)
        return value

    return spec


def ref(kind: str) -> Spec:
    """A reference to an id of `kind`, checked after every file is read."""

    def spec(node: yaml.Node, ctx: Context) -> str:
        value = str(_scalar(node, ctx, (_STR, _INT), f"a {kind} id"))
        ctx.refs.append((kind, value, ctx.file, node.start_mark.line + 1))
        return value

    return spec


def list_of(item: Spec, *, min_items: int = 0) -> Spec:
    def spec(node: yaml.Node, ctx: Context) -> tuple:
        if not isinstance(node, yaml.SequenceNode):
            ctx.problem(node, f"expected a list, got {_describe(node)}")
            raise Invalid
        if len(node.value) < min_items:
            ctx.problem(node, f"expected at least {min_items} item(s), got {len(node.value)}")
        out = []
        for child in node.value:
            try:
                out.append(item(child, ctx))
            except Invalid:
                pass
        return tuple(out)

    return spec


@dataclass(frozen=True, slots=True)
class F:
    """A field of a record: its spec, whether it is required, its default."""

    spec: Spec
    required: bool = True
    default: Any = None


def record(
    build: Callable[..., Any],
    fields: dict[str, F],
    *,
    finish: Callable[[dict[str, Any], yaml.Node, Context], None] | None = None,
) -> Spec:
    """A mapping with known keys, built with `build(**values)`.

    `finish` may adjust the values (e.g. give facts their entry's source) or add
    problems before the record is built.
    """

    def spec(node: yaml.Node, ctx: Context) -> Any:
        if not isinstance(node, yaml.MappingNode):
            ctx.problem(node, f"expected a mapping, got {_describe(node)}")
            raise Invalid
        values: dict[str, Any] = {}
        seen: set[str] = set()
        broken = False
        for key_node, value_node in node.value:
            key = key_node.value
            if key in seen:
                ctx.problem(key_node, f"key '{key}' appears twice")
                broken = True
                continue
            seen.add(key)
            if key not in fields:
                ctx.problem(key_node, f"unknown key '{key}' (expected one of: {', '.join(fields)})")
                broken = True
                continue
            try:
                values[key] = fields[key].spec(value_node, ctx)
            except Invalid:
                broken = True
        for name, field in fields.items():
            if name in values:
                continue
            if field.required and name not in seen:
                ctx.problem(node, f"missing required key '{name}'")
                broken = True
            else:
                values[name] = field.default
        if broken:
            raise Invalid
        if finish is not None:
            finish(values, node, ctx)
        return build(**values)

    return spec


def load_file(path: Path, spec: Spec, ctx: Context, display: str) -> Any:
    """Compose `path` and walk it with `spec`; problems go to `ctx`. None when unusable."""
    ctx.file = display
    try:
        node = yaml.compose(path.read_text(encoding="utf-8"), Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        ctx.problems.append(Problem(display, line, f"not valid YAML: {exc.problem or exc.context}", root_cause=True))
        return None
    except (OSError, UnicodeDecodeError) as exc:
        ctx.problems.append(Problem(display, 1, f"cannot read the file: {exc}", root_cause=True))
        return None
    if node is None:
        ctx.problems.append(Problem(display, 1, "the file is empty", root_cause=True))
        return None
    try:
        return spec(node, ctx)
    except Invalid:
        return None
