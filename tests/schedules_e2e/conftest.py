"""Fixtures: the Duralane app on the embedded runtime, and a loopback target."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.jobs_e2e.conftest import LOOPBACK, start_app
from tests.jobs_e2e.support import TargetServer
from tests.runtime.harness import RuntimeProcess


def start_scheduler(
    data_dir: Path, schedules: list[dict[str, Any]] | None = None, **env: str
) -> RuntimeProcess:
    """The app with loopback allowed and its own schedules file (empty by default)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    schedules_file = data_dir / "schedules.json"
    schedules_file.write_text(json.dumps({"schedules": schedules or []}))
    settings = {
        "DURALANE_ALLOWED_TARGETS": LOOPBACK,
        "DURALANE_SCHEDULES_FILE": str(schedules_file),
        **env,
    }
    return start_app(data_dir, settings)


@pytest.fixture(scope="session")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RuntimeProcess]:
    """One app shared by the API tests; each test uses its own schedule ids."""
    runtime = start_scheduler(tmp_path_factory.mktemp("schedules"))
    yield runtime
    runtime.stop()


@pytest.fixture(scope="session")
def target() -> Iterator[TargetServer]:
    """One loopback target server; each test scripts its own fresh paths."""
    server = TargetServer().start()
    yield server
    server.stop()
