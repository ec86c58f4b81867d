"""The runtime says it is listening only once its episode processes can replay."""

from __future__ import annotations

from pathlib import Path

from tests.runtime.harness import APPS, RuntimeProcess

READINESS_APP = APPS / "readiness" / "readiness_sample_app.py"


def test_listening_is_logged_after_every_episode_process_imported_the_app(
    tmp_path: Path,
) -> None:
    runtime = RuntimeProcess(
        READINESS_APP, tmp_path, env={"DURALANE_ORCHESTRATION_PROCESSES": "2"}
    ).start()
    try:
        lines = runtime.log().splitlines()
    finally:
        runtime.stop()

    imported = [i for i, line in enumerate(lines) if "episode process imported" in line]
    listening = [i for i, line in enumerate(lines) if "listening on" in line]
    assert len(imported) == 2, lines
    assert listening and max(imported) < listening[0], lines
