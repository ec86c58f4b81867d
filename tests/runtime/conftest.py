"""Fixtures that start sample apps on the embedded runtime as real subprocesses."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.runtime.harness import APPS, RuntimeProcess

ORCHESTRATION_APP = APPS / "orchestrations" / "orchestration_sample_app.py"


@pytest.fixture(scope="session")
def orchestrations(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RuntimeProcess]:
    """One runtime for the orchestration sample app, shared to keep the suite fast."""
    data_dir: Path = tmp_path_factory.mktemp("orchestrations")
    runtime = RuntimeProcess(ORCHESTRATION_APP, data_dir).start()
    yield runtime
    runtime.stop()


@pytest.fixture(scope="session")
def orchestrations_in_process(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RuntimeProcess]:
    """The orchestration sample app with episodes in the runtime's own process."""
    data_dir: Path = tmp_path_factory.mktemp("orchestrations-in-process")
    runtime = RuntimeProcess(
        ORCHESTRATION_APP, data_dir, env={"DURALANE_ORCHESTRATION_PROCESSES": "0"}
    ).start()
    yield runtime
    runtime.stop()
