"""The CLI sends --key (or DURALANE_API_KEY) to a runtime that requires one."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.support import run_cli
from tests.runtime.harness import RuntimeProcess

API_KEY = "cli-test-key"


@pytest.fixture(scope="module")
def keyed_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RuntimeProcess]:
    """The app bound beyond loopback, so every API route needs the key."""
    data_dir = tmp_path_factory.mktemp("duralane-keyed")
    settings = {
        "DURALANE_DATA_DIR": str(data_dir),
        "DURALANE_SQLITE_PATH": str(data_dir / "state.sqlite3"),
        "DURALANE_ALLOWED_TARGETS": "",
        "DURALANE_API_KEY": API_KEY,
    }
    runtime = RuntimeProcess(
        Path("function_app.py"), data_dir, host="0.0.0.0", env=settings
    ).start()
    yield runtime
    runtime.stop()


def test_without_a_key_a_401_is_one_line_and_exit_1(
    capsys: pytest.CaptureFixture[str],
    keyed_app: RuntimeProcess,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("DURALANE_API_KEY", raising=False)

    code, out, err = run_cli(capsys, keyed_app.base_url, "jobs", "list")

    assert (code, out) == (1, "")
    assert err.startswith("duralane: 401: ") and "needs the API key" in err
    assert len(err.strip().splitlines()) == 1

    code, _, err = run_cli(
        capsys, keyed_app.base_url, "deadletters", "list", "--key", "wrong"
    )
    assert code == 1 and err.startswith("duralane: 401: ")


def test_the_key_is_sent_from_the_option_or_the_environment(
    capsys: pytest.CaptureFixture[str],
    keyed_app: RuntimeProcess,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("DURALANE_API_KEY", raising=False)
    code, _, err = run_cli(
        capsys, keyed_app.base_url, "schedules", "list", "--key", API_KEY
    )
    assert (code, err) == (0, "")

    monkeypatch.setenv("DURALANE_API_KEY", API_KEY)
    code, out, err = run_cli(capsys, keyed_app.base_url, "jobs", "list")
    assert (code, out.strip()) == (0, "no jobs"), err
