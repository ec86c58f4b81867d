"""Read local.settings.json and host.json the way the Functions host does."""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

DEFAULT_HUB = "DuralaneHub"
TIMESPAN = re.compile(r"^(?:(\d+)\.)?(\d{1,2}):(\d{2}):(\d{2})(?:\.(\d+))?$")


class ConfigError(Exception):
    """A settings or host.json value that cannot be used, with the key named."""


@dataclass(frozen=True)
class QueueSettings:
    """Service Bus queue properties the embedded queues apply."""

    max_delivery_count: int = 10
    lock_duration: timedelta = timedelta(seconds=60)
    duplicate_detection_window: timedelta = timedelta(minutes=10)
    max_concurrent_calls: int = 16


@dataclass(frozen=True)
class HubSettings:
    """One task hub's name, the worker slots reserved for it and its priority."""

    name: str
    max_activities: int
    max_orchestrations: int
    # Higher is served first at the resources all hubs share: the store's
    # writer and the episode processes. 0 unless taskHubs[].priority says.
    priority: int = 0


@dataclass(frozen=True)
class HostConfig:
    """The parts of host.json the embedded runtime honours."""

    hub_name: str = DEFAULT_HUB
    max_concurrent_activities: int = 16
    max_concurrent_orchestrations: int = 16
    queues: QueueSettings = field(default_factory=QueueSettings)
    per_queue: dict[str, QueueSettings] = field(default_factory=dict)
    # Extra task hubs with reserved capacity, from extensions.duralane.taskHubs.
    hubs: tuple[HubSettings, ...] = ()
    # extensions.duralane.orchestrationProcesses; None means one per core.
    orchestration_processes: int | None = None
    # extensions.duralane.fastTimestamps: false turns off the fast history
    # timestamp parse (see duralane.runtime.episode.install_fast_timestamps).
    fast_timestamps: bool = True

    def queue(self, name: str) -> QueueSettings:
        """Settings for one queue: its own block, else the shared one."""
        return self.per_queue.get(name, self.queues)


# DURALANE_LOG_TAG: a tag in every log line of a runtime and its episode
# processes, so runtimes sharing a terminal (make run-lanes) can be told apart.
LOG_TAG_SETTING = "DURALANE_LOG_TAG"


def log_format() -> str:
    """The runtime's log line format, with its tag when one is set."""
    tag = os.environ.get(LOG_TAG_SETTING, "").strip()
    where = f"[{tag}] " if tag else ""
    return f"%(asctime)s %(levelname)s {where}%(name)s: %(message)s"


def parse_timespan(text: str, key: str) -> timedelta:
    """Parse a .NET TimeSpan ("00:05:00", "1.02:00:00") or ISO-8601-free seconds."""
    match = TIMESPAN.match(text.strip())
    if not match:
        raise ConfigError(f"{key}: '{text}' is not a TimeSpan like 00:05:00")
    days, hours, minutes, seconds, fraction = match.groups()
    total = timedelta(
        days=int(days or 0),
        hours=int(hours),
        minutes=int(minutes),
        seconds=int(seconds),
    )
    if fraction:
        total += timedelta(seconds=float(f"0.{fraction}"))
    return total


def load_local_settings(app_dir: Path) -> dict[str, str]:
    """Put local.settings.json Values into the environment; existing variables win."""
    path = app_dir / "local.settings.json"
    if not path.is_file():
        return {}
    try:
        values = json.loads(path.read_text()).get("Values", {})
    except json.JSONDecodeError as exc:
        raise ConfigError(f"local.settings.json is not valid JSON: {exc}") from exc
    applied = {}
    for key, value in values.items():
        if key not in os.environ:
            os.environ[key] = str(value)
            applied[key] = str(value)
    return applied


def load_host_config(app_dir: Path) -> HostConfig:
    """Read host.json; a missing file means the host's defaults."""
    path = app_dir / "host.json"
    if not path.is_file():
        return HostConfig()
    try:
        document = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ConfigError(f"host.json is not valid JSON: {exc}") from exc
    extensions = document.get("extensions", {})
    durable = extensions.get("durableTask", {})
    service_bus = extensions.get("serviceBus", {})
    duralane = extensions.get("duralane", {})

    queues = _queue_settings(service_bus, QueueSettings(), "extensions.serviceBus")
    per_queue = {
        name: _queue_settings(block, queues, f"extensions.duralane.queues.{name}")
        for name, block in duralane.get("queues", {}).items()
    }
    hubs = tuple(
        HubSettings(
            name=_setting(hub, "name", str, "extensions.duralane.taskHubs[]"),
            max_activities=_count(
                hub,
                "maxConcurrentActivityFunctions",
                8,
                "extensions.duralane.taskHubs[]",
            ),
            max_orchestrations=_count(
                hub,
                "maxConcurrentOrchestratorFunctions",
                8,
                "extensions.duralane.taskHubs[]",
            ),
            priority=hub_priority(hub.get("priority", 0), hub.get("name")),
        )
        for hub in duralane.get("taskHubs", [])
    )
    return HostConfig(
        hub_name=resolve_setting_reference(str(durable.get("hubName", DEFAULT_HUB))),
        max_concurrent_activities=_count(
            durable, "maxConcurrentActivityFunctions", 16, "extensions.durableTask"
        ),
        max_concurrent_orchestrations=_count(
            durable, "maxConcurrentOrchestratorFunctions", 16, "extensions.durableTask"
        ),
        queues=queues,
        per_queue=per_queue,
        hubs=hubs,
        orchestration_processes=process_count(
            duralane.get("orchestrationProcesses"),
            "host.json extensions.duralane.orchestrationProcesses",
        ),
        fast_timestamps=switch(
            duralane.get("fastTimestamps", True),
            "host.json extensions.duralane.fastTimestamps",
        ),
    )


def switch(value: Any, where: str) -> bool:
    """An on/off setting: JSON true or false, nothing else."""
    if not isinstance(value, bool):
        raise ConfigError(f"{where} is {value!r}; it must be true or false")
    return value


def process_count(value: Any, where: str) -> int | None:
    """A count of episode processes: a whole number, 0 meaning in-process."""
    if value is None:
        return None
    try:
        count = int(value)
    except (TypeError, ValueError):
        count = -1
    if count < 0:
        raise ConfigError(
            f"{where} is {value!r}; it must be a whole number of processes "
            "(0 runs orchestrator episodes in the runtime's own process)"
        )
    return count


def hub_priority(value: Any, hub: Any) -> int:
    """A task hub's priority: a whole number, higher served first."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(
            f"host.json extensions.duralane.taskHubs[] '{hub}': priority is "
            f"{value!r}; it must be a whole number (higher is served first)"
        )
    return value


def _queue_settings(
    block: dict[str, Any], base: QueueSettings, where: str
) -> QueueSettings:
    handler = block.get("messageHandlerOptions", {})
    concurrent = block.get("maxConcurrentCalls", handler.get("maxConcurrentCalls"))
    calls = {"maxConcurrentCalls": concurrent} if concurrent else {}
    lock = block.get("lockDuration")
    window = block.get("duplicateDetectionHistoryTimeWindow")
    return QueueSettings(
        max_delivery_count=_count(
            block, "maxDeliveryCount", base.max_delivery_count, where
        ),
        lock_duration=(
            parse_timespan(lock, f"{where}.lockDuration")
            if lock
            else base.lock_duration
        ),
        duplicate_detection_window=(
            parse_timespan(window, f"{where}.duplicateDetectionHistoryTimeWindow")
            if window
            else base.duplicate_detection_window
        ),
        max_concurrent_calls=_count(
            calls, "maxConcurrentCalls", base.max_concurrent_calls, where
        ),
    )


def _count(block: dict[str, Any], key: str, default: int, where: str) -> int:
    """A limit of at least 1 from host.json; anything else names the key and value."""
    value = block.get(key, default)
    try:
        count = int(value) if not isinstance(value, bool | float) else -1
    except (TypeError, ValueError):
        count = -1
    if count < 1:
        raise ConfigError(
            f"host.json {where}.{key} is {value!r}; it must be a whole number of "
            "at least 1"
        )
    return count


def _setting(block: dict[str, Any], key: str, kind: type, where: str) -> Any:
    if key not in block:
        raise ConfigError(f"{where}: '{key}' is required")
    return kind(block[key])


def resolve_setting_reference(value: str) -> str:
    """Replace a %SETTING% reference by the app setting, as bindings do."""
    match = re.fullmatch(r"%([^%]+)%", value.strip())
    if not match:
        return value
    name = match.group(1)
    if name not in os.environ:
        raise ConfigError(f"app setting '{name}' referenced as %{name}% is not set")
    return os.environ[name]
