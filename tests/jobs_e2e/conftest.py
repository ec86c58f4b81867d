"""Fixtures: the Duralane app on the embedded runtime, and loopback targets."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.jobs_e2e.support import TargetServer
from tests.runtime.harness import REPO, RuntimeProcess

APP = REPO / "function_app.py"
LOOPBACK = "127.0.0.0/8"


def start_app(data_dir: Path, env: dict[str, str]) -> RuntimeProcess:
    """The app on the embedded runtime with a data dir and settings of its own."""
    # Pin every setting the tests rely on: a local.settings.json next to the app
    # fills in whatever the environment leaves unset, and it allows loopback.
    settings = {
        "DURALANE_DATA_DIR": str(data_dir),
        "DURALANE_SQLITE_PATH": str(data_dir / "state.sqlite3"),
        "DURALANE_ALLOWED_TARGETS": "",
        **env,
    }
    return RuntimeProcess(Path("function_app.py"), data_dir, env=settings).start()


@pytest.fixture(scope="session")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RuntimeProcess]:
    """The app with loopback allow-listed, so jobs can reach test targets."""
    runtime = start_app(
        tmp_path_factory.mktemp("duralane"), {"DURALANE_ALLOWED_TARGETS": LOOPBACK}
    )
    yield runtime
    runtime.stop()


@pytest.fixture(scope="session")
def guarded_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RuntimeProcess]:
    """The app with no allow list, as in Azure: loopback targets are refused."""
    runtime = start_app(tmp_path_factory.mktemp("duralane-guarded"), {})
    yield runtime
    runtime.stop()


@pytest.fixture(scope="session")
def target() -> Iterator[TargetServer]:
    """One loopback target server; each test scripts its own fresh paths."""
    server = TargetServer().start()
    yield server
    server.stop()
