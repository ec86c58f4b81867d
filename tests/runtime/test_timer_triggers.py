"""Timer triggers: NCRONTAB with seconds, %SETTING%, TimeSpan, startup and past due."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.runtime.harness import APPS, RuntimeProcess, wait_until

TIMER_APP = APPS / "timers" / "timer_sample_app.py"


def fires(data_dir: Path, name: str) -> list[dict[str, Any]]:
    """Every recorded fire of one timer function, oldest first."""
    path = data_dir / "timer-fires.jsonl"
    if not path.exists():
        return []
    lines = [json.loads(line) for line in path.read_text().splitlines() if line]
    return [line for line in lines if line["name"] == name]


def wait_fires(runtime: RuntimeProcess, name: str, count: int) -> list[dict]:
    """Wait until a timer function has fired at least count times."""
    wait_until(
        lambda: len(fires(runtime.data_dir, name)) >= count,
        timeout=15,
        what=f"{count} fires of {name}",
        detail=runtime.log,
    )
    return fires(runtime.data_dir, name)


@pytest.fixture(scope="module")
def timers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RuntimeProcess]:
    runtime = RuntimeProcess(TIMER_APP, tmp_path_factory.mktemp("timers")).start()
    yield runtime
    runtime.stop()


def test_ncrontab_with_seconds_fires_every_second(timers: RuntimeProcess) -> None:
    """'* * * * * *' fires once a second, on time, so never past due."""
    recorded = wait_fires(timers, "every_second", 3)

    assert not any(fire["past_due"] for fire in recorded[:3])


def test_schedule_from_an_app_setting_is_resolved(timers: RuntimeProcess) -> None:
    """%TIMER_SCHEDULE% is read from local.settings.json and then fires."""
    wait_fires(timers, "from_setting", 2)


def test_timespan_schedule_fires_on_its_interval(timers: RuntimeProcess) -> None:
    """'00:00:01' is a one-second TimeSpan, not a cron expression."""
    wait_fires(timers, "timespan", 2)


def test_run_on_startup_fires_once_at_start(timers: RuntimeProcess) -> None:
    """A yearly timer with run_on_startup fires right away, exactly once."""
    wait_fires(timers, "on_startup", 1)
    wait_fires(timers, "every_second", len(fires(timers.data_dir, "every_second")) + 2)

    assert len(fires(timers.data_dir, "on_startup")) == 1


def test_occurrence_missed_while_down_fires_past_due_on_restart(
    tmp_path: Path,
) -> None:
    """Stopped across a scheduled second, the runtime fires once with past_due."""
    runtime = RuntimeProcess(TIMER_APP, tmp_path / "data").start()
    wait_fires(runtime, "every_second", 1)
    assert runtime.stop() == 0
    before = len(fires(runtime.data_dir, "every_second"))
    stopped = time.time()
    # Downtime is the point: let several occurrences pass with nothing running.
    wait_until(lambda: time.time() > stopped + 4, timeout=10, what="downtime")

    runtime.start()
    try:
        recorded = wait_fires(runtime, "every_second", before + 2)
    finally:
        runtime.stop()

    assert recorded[before]["past_due"] is True
    assert recorded[before + 1]["past_due"] is False
