"""Load a function_app.py and index its functions once, as the Python worker does."""

from __future__ import annotations

import importlib
import inspect
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import azure.functions as func

logger = logging.getLogger(__name__)


class AppLoadError(Exception):
    """The app could not be imported or indexed; the message is the one-line cause."""


@dataclass
class FunctionEntry:
    """One indexed function: its trigger, bindings and the callable to invoke."""

    name: str
    trigger_type: str
    trigger: Any
    bindings: list[Any]
    call: Callable[..., Any]
    is_async: bool
    trigger_param: str = ""

    def describe(self) -> str:
        """The host-style startup line naming the function and its trigger."""
        detail = ""
        if self.trigger_type == "httpTrigger":
            methods = ",".join(str(getattr(m, "value", m)) for m in self.methods())
            detail = f" [{methods or 'ALL'}] /api/{self.route()}"
        elif self.trigger_type == "timerTrigger":
            detail = f" schedule={self.trigger.schedule}"
        elif self.trigger_type == "serviceBusTrigger":
            detail = f" queue={self.trigger.queue_name}"
        return f"{self.name}: {self.trigger_type}{detail}"

    def route(self) -> str:
        """The HTTP route, defaulting to the function name as the host does."""
        return str(getattr(self.trigger, "route", None) or self.name).strip("/")

    def methods(self) -> list[Any]:
        """The HTTP methods the function accepts; empty means all."""
        return list(getattr(self.trigger, "methods", None) or [])


@dataclass
class AppIndex:
    """Every function of the app, grouped by how the runtime invokes it."""

    module_name: str
    functions: list[FunctionEntry]
    orchestrators: dict[str, FunctionEntry] = field(default_factory=dict)
    activities: dict[str, FunctionEntry] = field(default_factory=dict)
    http: list[FunctionEntry] = field(default_factory=list)
    timers: list[FunctionEntry] = field(default_factory=list)
    service_bus: list[FunctionEntry] = field(default_factory=list)
    entities: dict[str, FunctionEntry] = field(default_factory=dict)


def load_app(app_path: Path) -> AppIndex:
    """Import the app by its top-level module name and index it."""
    app_path = app_path.resolve()
    if not app_path.is_file():
        raise AppLoadError(f"app file {app_path} does not exist")
    app_dir = str(app_path.parent)
    if app_dir not in sys.path:
        sys.path.insert(0, app_dir)
    module_name = app_path.stem
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise AppLoadError(
            f"importing {app_path.name} failed: {type(exc).__name__}: {exc}"
        ) from exc

    registers = [
        value
        for value in vars(module).values()
        if isinstance(value, func.FunctionRegister)
    ]
    if len(registers) != 1:
        raise AppLoadError(
            f"{app_path.name} must define exactly one FunctionApp or DFApp at module "
            f"level; found {len(registers)}"
        )
    try:
        functions = registers[0].get_functions()
    except Exception as exc:
        raise AppLoadError(f"indexing {app_path.name} failed: {exc}") from exc

    index = AppIndex(module_name=module_name, functions=[])
    for function in functions:
        entry = _entry(function)
        index.functions.append(entry)
        _file(index, entry, function)
    return index


def _entry(function: Any) -> FunctionEntry:
    trigger = function.get_trigger()
    bindings = list(function.get_bindings())
    call = function.get_user_function()
    return FunctionEntry(
        name=function.get_function_name(),
        trigger_type=trigger.type,
        trigger=trigger,
        bindings=bindings,
        call=call,
        is_async=inspect.iscoroutinefunction(call),
        trigger_param=trigger.name,
    )


def _file(index: AppIndex, entry: FunctionEntry, function: Any) -> None:
    """Put a function where the runtime looks for it, under every name it answers to."""
    kind = entry.trigger_type
    python_name = getattr(function.get_user_function(), "__name__", entry.name)
    if kind == "orchestrationTrigger":
        for name in _names(entry.trigger.orchestration, entry.name, python_name):
            index.orchestrators.setdefault(name, entry)
    elif kind == "activityTrigger":
        for name in _names(entry.trigger.activity, entry.name, python_name):
            index.activities.setdefault(name, entry)
    elif kind == "entityTrigger":
        for name in _names(getattr(entry.trigger, "entity_name", None), entry.name):
            index.entities.setdefault(name, entry)
    elif kind == "httpTrigger":
        index.http.append(entry)
    elif kind == "timerTrigger":
        index.timers.append(entry)
    elif kind == "serviceBusTrigger":
        index.service_bus.append(entry)
    else:
        logger.warning(
            "function %s has trigger %s, which the embedded runtime does not run",
            entry.name,
            kind,
        )


def _names(*candidates: str | None) -> list[str]:
    """Override, then function name, then Python name: the SDK sends any of them."""
    return [name for name in dict.fromkeys(candidates) if name]
