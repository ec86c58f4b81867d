"""The dispatcher lease across two runtimes: one fires, the other takes over."""

from __future__ import annotations

import asyncio
import re
import socket
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from duralane.schedules.lease import LEASE_ID, LEASES
from duralane.store import Doc
from duralane.store.sqlite import SqliteStore
from tests.jobs_e2e.support import TargetServer, http_job, respond, unique
from tests.runtime.harness import RuntimeProcess, wait_until
from tests.schedules_e2e.conftest import start_scheduler
from tests.schedules_e2e.support import create, runs, wait_runs

# Three 2 s ticks: the shortest lease allowed, so the takeover comes quickly.
LEASE_SECONDS = "6"


def holder_id(runtime: RuntimeProcess, region: str) -> str:
    """The holder id a runtime's dispatcher uses: host, pid and region."""
    assert runtime.process is not None
    return f"{socket.gethostname()}:{runtime.process.pid}@{region}"


def stored_lease(path: Path) -> Doc:
    """The lease document as the store holds it, read beside the runtimes."""

    async def read() -> Doc:
        store = SqliteStore(path)
        await store.open()
        try:
            return await store.read(LEASES, LEASE_ID)
        finally:
            await store.close()

    return asyncio.run(read())


def fire_times(items: list[dict[str, Any]]) -> list[datetime]:
    """The scheduled instants of a schedule's runs, oldest first."""
    return sorted(
        datetime.fromisoformat(r["scheduledAt"].replace("Z", "+00:00")) for r in items
    )


@pytest.mark.timeout(240)
def test_one_runtime_dispatches_and_the_other_takes_over_when_it_is_killed(
    tmp_path: Path, target: TargetServer
) -> None:
    store_path = tmp_path / "shared.sqlite3"
    shared = {
        "DURALANE_SQLITE_PATH": str(store_path),
        "DURALANE_DISPATCHER_LEASE_SECONDS": LEASE_SECONDS,
    }
    first = start_scheduler(tmp_path / "a", [], REGION_NAME="region-a", **shared)
    second: RuntimeProcess | None = None
    try:
        first_id = holder_id(first, "region-a")
        first_re = re.escape(first_id)
        first.wait_for_log(
            re.compile(rf"lease_acquired dispatcher lease \S+ acquired by {first_re}"),
            30,
        )
        second = start_scheduler(tmp_path / "b", [], REGION_NAME="region-b", **shared)
        second_id = holder_id(second, "region-b")
        url = target.route(respond(200))
        job = http_job("unused", url)
        del job["id"]
        schedule_id = unique("leased")
        create(
            second,
            {
                "id": schedule_id,
                "job": job,
                "every": {"seconds": 1},
                "overlap": "allow",
                "misfire": "run_all",
                "misfireCap": 1000,
            },
        )

        before = wait_runs(second, schedule_id, lambda rs: len(rs) >= 5, "to fire")
        assert stored_lease(store_path)["holder"] == first_id
        assert "duralane.schedule.fired" in first.log()
        assert "duralane.schedule.fired" not in second.log()
        assert "lease_acquired" not in second.log()

        # Kill it between two ticks: a kill in the middle of a start is the
        # unit tests' business (test_dispatcher_lease.py).
        seen = len(first.lines)
        wait_until(
            lambda: any("dispatcher tick:" in line for line in first.lines[seen:]),
            timeout=30,
            what="the holder to finish a tick",
        )
        first.kill()
        fired_before_kill = len(runs(second, schedule_id))
        second.wait_for_log(
            re.compile(
                rf"lease_taken_over dispatcher lease \S+ taken over by "
                rf"{re.escape(second_id)} from {first_re}"
            ),
            60,
        )
        # Were a run left half started (run record, no job), it is taken over
        # once 30 s old; that must happen before the pause stops it.
        wait_runs(
            second,
            schedule_id,
            lambda rs: (
                len(rs) >= fired_before_kill + 5
                and all(r["status"] != "starting" for r in rs)
            ),
            "to keep firing after the takeover, with no run left half started",
            timeout=90,
        )
        assert second.post(f"/api/schedules/{schedule_id}/pause").status_code == 200
        assert stored_lease(store_path)["holder"] == second_id
        assert "duralane.schedule.fired" in second.log()

        def settled(items: list[dict[str, Any]]) -> bool:
            """One job per run and no run half started; a tick may outlast the pause."""
            jobs = second.get(f"/api/jobs?tag=schedule={schedule_id}&pageSize=1000")
            job_ids = sorted(j["id"] for j in jobs.json()["items"])
            return job_ids == sorted(r["id"] for r in items) and all(
                r["status"] != "starting" for r in items
            )

        fired = wait_runs(second, schedule_id, settled, "to settle", timeout=60)
        # Every whole second from the first fire to the last started one run:
        # none lost to the kill, none started twice by the two dispatchers.
        times = fire_times(fired)
        assert len(times) == len(set(times)), "a fire time ran twice"
        expected = [
            times[0] + timedelta(seconds=n)
            for n in range(int((times[-1] - times[0]).total_seconds()) + 1)
        ]
        assert times == expected, f"fires missing: {set(expected) - set(times)}"
        assert fire_times(before) == times[: len(before)]
    finally:
        first.stop()
        if second is not None:
            second.stop()
