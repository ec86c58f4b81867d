"""Durability: timers survive a restart, and a SIGKILL loses no orchestration."""

from __future__ import annotations

import json
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from duralane.runtime.episode import Message
from duralane.runtime.history import EventType, event
from duralane.runtime.hubstore import HubStore
from tests.runtime.harness import (
    APPS,
    WEBHOOK,
    RuntimeProcess,
    event_types,
    unique,
    wait_until,
)

DURABILITY_APP = APPS / "durability" / "durability_sample_app.py"
TIMER_CREATED = 10
TIMER_FIRED = 11
CRASH_INSTANCES = 200


def list_instances(runtime: RuntimeProcess, prefix: str, **params: str) -> list[Any]:
    """Every instance whose id starts with a prefix, following continuation tokens."""
    found: list[Any] = []
    token = None
    while True:
        headers: dict[str, str] = {"x-ms-continuation-token": token} if token else {}
        response = runtime.get(
            f"{WEBHOOK}/instances",
            params={"instanceIdPrefix": prefix, "top": "1000", **params},
            headers=headers,
        )
        assert response.status_code == 200, response.text
        found.extend(response.json())
        token = response.headers.get("x-ms-continuation-token")
        if not token:
            return found


def stopped_with_a_timer_pending(
    tmp_path: Path, orchestrator: str, instance: str, seconds: int
) -> RuntimeProcess:
    """A runtime stopped once the instance has created its durable timer."""
    runtime = RuntimeProcess(DURABILITY_APP, tmp_path / "data").start()
    try:
        runtime.start_orchestration(
            orchestrator, instance, {"seconds": seconds, "marker": instance}
        )
        runtime.wait_status(
            instance,
            lambda s: TIMER_CREATED in event_types(s.get("historyEvents", [])),
        )
    finally:
        assert runtime.stop() == 0
    return runtime


def test_timer_pending_across_a_restart_fires_once(tmp_path: Path) -> None:
    """Stopped while a durable timer waits, the restarted runtime fires it once."""
    instance = unique("sleeper")
    runtime = stopped_with_a_timer_pending(
        tmp_path, "sleeper_orchestrator", instance, seconds=2
    )

    runtime.start()
    try:
        status = runtime.wait_done(instance)
    finally:
        runtime.stop()

    assert status["runtimeStatus"] == "Completed"
    assert status["output"] == instance
    assert event_types(status["historyEvents"]).count(TIMER_FIRED) == 1
    records = (runtime.data_dir / "records.log").read_text().splitlines()
    assert records.count(instance) == 1


def test_a_timer_still_fires_after_a_restart_that_found_another_message_due(
    tmp_path: Path,
) -> None:
    """Restarted with an event due and a timer still ahead, the instance takes
    the event at once and the timer when it comes due."""
    instance = unique("both")
    runtime = stopped_with_a_timer_pending(
        tmp_path, "timer_and_event_orchestrator", instance, seconds=3
    )
    # Raised while the runtime is down, as another client of the store could.
    path = runtime.data_dir / "runtime.sqlite3"
    with sqlite3.connect(path) as db:
        (hub,) = db.execute(
            "SELECT hub FROM instances WHERE instance_id=?", (instance,)
        ).fetchone()
    store = HubStore(path)
    now = time.time()
    raised = event(
        EventType.EVENT_RAISED,
        datetime.fromtimestamp(now).astimezone(),
        Name="go",
        Input=json.dumps("now"),
    )
    store.enqueue(hub, [Message(instance, raised, now)])
    store.stop_writer()
    store.close()

    runtime.start()
    try:
        status = runtime.wait_done(instance)
    finally:
        runtime.stop()

    assert status["runtimeStatus"] == "Completed"
    assert status["output"] == instance
    assert event_types(status["historyEvents"]).count(TIMER_FIRED) == 1


@pytest.mark.parametrize("processes", ["2", "0"], ids=["processes", "in-process"])
def test_every_orchestration_completes_after_a_sigkill(
    tmp_path: Path, processes: str
) -> None:
    """Killed mid-run, the runtime resumes every instance from its history."""
    runtime = RuntimeProcess(
        DURABILITY_APP,
        tmp_path / "data",
        env={"DURALANE_ORCHESTRATION_PROCESSES": processes},
    ).start()
    prefix = unique("crash")
    ids = [f"{prefix}-{n:03d}" for n in range(CRASH_INSTANCES)]
    with ThreadPoolExecutor(8) as starters:
        list(
            starters.map(
                lambda pair: runtime.start_orchestration(
                    "crunch_orchestrator", pair[1], pair[0]
                ),
                enumerate(ids),
            )
        )
    wait_until(
        lambda: len(list_instances(runtime, prefix, runtimeStatus="Completed")) >= 10,
        timeout=60,
        what="some instances to complete before the kill",
        detail=runtime.log,
    )
    completed_at_kill = len(list_instances(runtime, prefix, runtimeStatus="Completed"))

    runtime.kill()
    runtime.start()
    try:
        wait_until(
            lambda: (
                len(list_instances(runtime, prefix, runtimeStatus="Completed"))
                == CRASH_INSTANCES
            ),
            timeout=90,
            what=f"all {CRASH_INSTANCES} instances to complete after the restart",
            detail=lambda: str(
                {
                    s: len(list_instances(runtime, prefix, runtimeStatus=s))
                    for s in ("Pending", "Running", "Failed")
                }
            ),
        )
        outputs = {
            i["instanceId"]: i["output"] for i in list_instances(runtime, prefix)
        }
    finally:
        runtime.stop()

    assert completed_at_kill < CRASH_INSTANCES
    for number, instance in enumerate(ids):
        assert outputs[instance] == {"number": number, "total": number * 2 + 10}
