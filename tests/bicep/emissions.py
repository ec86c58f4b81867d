"""Which attributes each log event carries, read from the app's Python source.

Application Insights stores a log record's `extra` as customDimensions, so a
Kusto query can read an attribute only from an event whose logging call passes
it. duralane/events.py defines the names; this module finds, with `ast`, what
the code actually emits: every logging call with an `events.<EVENT>` argument,
and the keys of its `extra`. Like the Bicep checks, each check returns a list
of problems, one readable line each.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from tests.bicep.bicep_checks import ATTRIBUTE_READ, REPO

# The packages the Functions worker imports, plus the embedded runtime.
EMITTING_PACKAGES = ("duralane", "activities", "orchestrators", "triggers")
# Code here runs only on one machine; in Azure the Functions host does its work.
EMBEDDED_RUNTIME = "duralane/runtime/"
LOG_METHODS = frozenset(
    {"debug", "info", "warning", "warn", "error", "exception", "critical", "log"}
)


@dataclass(frozen=True)
class Emission:
    """One logging call that emits an event, with the attribute keys of its extra."""

    event: str
    attributes: frozenset[str]
    path: str
    line: int


def event_constants(events_py: Path) -> dict[str, str]:
    """Every NAME = "value" in duralane/events.py, events and ATTR_ keys alike."""
    constants: dict[str, str] = {}
    for node in ast.parse(events_py.read_text()).body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
            for target in node.targets:
                if isinstance(target, ast.Name) and isinstance(node.value.value, str):
                    constants[target.id] = node.value.value
    return constants


def emissions(
    root: Path = REPO, packages: Iterable[str] = EMITTING_PACKAGES
) -> list[Emission]:
    """Every logging call under `packages` that names an event of duralane/events.py."""
    constants = event_constants(root / "duralane" / "events.py")
    found: list[Emission] = []
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            tree = ast.parse(path.read_text(), filename=str(path))
            finder = _EmissionFinder(tree, constants, path.relative_to(root).as_posix())
            finder.visit(tree)
            found += finder.found
    return found


def defined_events(root: Path = REPO) -> set[str]:
    """The event names duralane/events.py defines (its non-ATTR_ constants)."""
    constants = event_constants(root / "duralane" / "events.py")
    return {v for k, v in constants.items() if not k.startswith("ATTR_")}


def attributes_by_event(found: Iterable[Emission]) -> dict[str, set[str]]:
    """Each emitted event with every attribute any of its logging calls passes."""
    carried: dict[str, set[str]] = {}
    for emission in found:
        carried.setdefault(emission.event, set()).update(emission.attributes)
    return carried


class _EmissionFinder(ast.NodeVisitor):
    """Collects the emissions of one module, resolving names the way it binds them.

    `events.X` (or the module imported under another name), names imported
    from duralane.events, module-level aliases such as
    `LEASE_LOST = events.DISPATCHER_LEASE_LOST` and module-level string
    constants all resolve to their values.
    An `extra` resolves when it is a dict literal, a local name assigned one in
    the same function (keys set later by `name[key] = ...` count too), or a
    literal spreading such names; anything else (a helper's return value)
    contributes no attributes.
    """

    def __init__(self, tree: ast.Module, constants: dict[str, str], path: str):
        self.constants = constants
        self.events_values = {
            v for k, v in constants.items() if not k.startswith("ATTR_")
        }
        self.path = path
        self.found: list[Emission] = []
        self.module_names = {"events"}
        self.aliases: dict[str, str] = {}
        self.scopes: list[dict[str, list[ast.expr]]] = [{}]
        self._read_module_bindings(tree)

    def _read_module_bindings(self, tree: ast.Module) -> None:
        for node in tree.body:
            if isinstance(node, ast.ImportFrom) and node.module == "duralane":
                for alias in node.names:
                    if alias.name == "events":
                        self.module_names.add(alias.asname or "events")
            elif isinstance(node, ast.ImportFrom) and node.module == "duralane.events":
                for alias in node.names:
                    if alias.name in self.constants:
                        self.aliases[alias.asname or alias.name] = self.constants[
                            alias.name
                        ]
            elif isinstance(node, ast.Assign) and len(node.targets) == 1:
                target, value = node.targets[0], self._key(node.value)
                if isinstance(target, ast.Name) and value is not None:
                    self.aliases[target.id] = value

    def _constant(self, node: ast.expr) -> str | None:
        """The value of events.NAME, an imported name or an alias; else None."""
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in self.module_names
        ):
            return self.constants.get(node.attr)
        if isinstance(node, ast.Name):
            return self.aliases.get(node.id)
        return None

    def _key(self, node: ast.expr) -> str | None:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value
        return self._constant(node)

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self.scopes.append(_local_dicts(node))
        self.generic_visit(node)
        self.scopes.pop()

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Call(self, node: ast.Call) -> None:
        method = node.func.attr if isinstance(node.func, ast.Attribute) else None
        if method in LOG_METHODS:
            named = {self._constant(arg) for arg in node.args}
            extra = next((k.value for k in node.keywords if k.arg == "extra"), None)
            keys = frozenset(self._attributes(extra, 0) if extra else ())
            for event in sorted(named & self.events_values):
                self.found.append(Emission(event, keys, self.path, node.lineno))
        self.generic_visit(node)

    def _attributes(self, node: ast.expr, depth: int) -> set[str]:
        """The keys an extra expression is known to hold."""
        if depth > 8:
            return set()
        keys: set[str] = set()
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                if key is None:
                    keys |= self._attributes(value, depth + 1)
                elif (name := self._key(key)) is not None:
                    keys.add(name)
        elif isinstance(node, ast.Name):
            for assigned in self.scopes[-1].get(node.id, []):
                keys |= self._attributes(assigned, depth + 1)
        return keys


def _local_dicts(
    function: ast.FunctionDef | ast.AsyncFunctionDef,
) -> dict[str, list[ast.expr]]:
    """Dict literals each local name is given, and keys stored into it by subscript."""
    assigned: dict[str, list[ast.expr]] = {}
    for node in ast.walk(function):
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        else:
            continue
        for target in targets:
            if isinstance(target, ast.Name) and isinstance(value, ast.Dict):
                assigned.setdefault(target.id, []).append(value)
            elif isinstance(target, ast.Subscript) and isinstance(
                target.value, ast.Name
            ):
                stored = ast.Dict(keys=[target.slice], values=[value])
                assigned.setdefault(target.value.id, []).append(stored)
    return assigned


# ---------------------------------------------------------------- queries

# A quoted full event name, or a quoted prefix such as "duralane." or
# "duralane.job." that a query matches many events by.
_EVENT_LITERAL = re.compile(r"[\"'](duralane\.[a-z_.]*)[\"']")
# Tables the Functions host and Application Insights fill in Azure, whatever
# the app logs.
_HOST_TABLES = re.compile(
    r"\b(requests|exceptions|dependencies|customMetrics|availabilityResults)\b"
)


def query_events(query: str, known: Iterable[str]) -> set[str]:
    """The events a query filters on: each quoted name, or all under a quoted prefix."""
    known = set(known)
    named: set[str] = set()
    for literal in _EVENT_LITERAL.findall(query):
        if literal in known:
            named.add(literal)
        else:
            named |= {event for event in known if event.startswith(literal)}
    return named


def query_attribute_problems(
    where: str, query: str, found: Iterable[Emission], defined: Iterable[str]
) -> list[str]:
    """Every customDimensions attribute a query reads comes with an event it reads.

    The events a query reads are the duralane events it quotes, by full name
    or by prefix (`startswith "duralane."` reads them all). An attribute it
    reads must be carried by at least one of them: rows of the other events
    only leave that column empty. A query that quotes no duralane event has no
    event to take an attribute from; the customDimensions of requests,
    dependencies and exceptions rows are the Functions host's, which no name in
    duralane/events.py describes, so reading them fails here as it fails the
    defined-names check. A query that unions those tables with traces
    (job_trace.kql) is judged by the events of its traces. Each event quoted by
    full name must also be emitted by some logging call.
    """
    carried = attributes_by_event(found)
    events = query_events(query, defined)
    quoted = set(_EVENT_LITERAL.findall(query))
    problems = [
        f"{where}: event {name!r} is defined but no logging call emits it"
        for name in sorted(quoted & events - carried.keys())
    ]
    for name in sorted({a or b for a, b in ATTRIBUTE_READ.findall(query)}):
        if not events:
            problems.append(
                f"{where}: reads customDimensions.{name} but no duralane event "
                "to read it from"
            )
        elif not any(name in carried.get(event, set()) for event in events):
            problems.append(
                f"{where}: customDimensions.{name} is emitted with none of "
                + ", ".join(sorted(events))
            )
    return problems


def embedded_only_problems(
    where: str, query: str, found: Iterable[Emission], defined: Iterable[str]
) -> list[str]:
    """An alert that reads only events the embedded runtime emits never fires in Azure.

    Such a query passes when it also reads a table Azure fills on its own
    (requests, exceptions, ...), as the function-failure alert does.
    """
    events = query_events(query, defined)
    if not events or _HOST_TABLES.search(query):
        return []
    paths: dict[str, set[str]] = {}
    for emission in found:
        paths.setdefault(emission.event, set()).add(emission.path)
    in_azure = {
        event
        for event in events
        if any(not p.startswith(EMBEDDED_RUNTIME) for p in paths.get(event, set()))
    }
    if in_azure:
        return []
    return [
        f"{where}: reads only {', '.join(sorted(events))}, which only the embedded "
        f"runtime ({EMBEDDED_RUNTIME}) emits; in Azure it never fires"
    ]
