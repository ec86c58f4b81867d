"""Dispatching across restarts and runtimes, and the API health check."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from duralane.schedules.health import PROBES
from tests.jobs_e2e.support import (
    FINAL,
    TargetServer,
    get_job,
    http_job,
    instant,
    respond,
    unique,
)
from tests.runtime.harness import RuntimeProcess
from tests.schedules_e2e.conftest import start_scheduler
from tests.schedules_e2e.support import create, stored, wait_runs


def _template(url: str) -> dict[str, Any]:
    job = http_job("unused", url)
    del job["id"]
    return job


def test_health_check_alerts_after_n_failures_running(
    app: RuntimeProcess, target: TargetServer
) -> None:
    up = target.route(respond(200))
    down = target.route(respond(503))
    schedule_id = unique("health")
    created = create(
        app,
        {
            "id": schedule_id,
            "healthcheck": {
                "endpoints": [
                    {"name": f"{schedule_id}-up", "url": up},
                    {"name": f"{schedule_id}-down", "url": down},
                ],
                "everySeconds": 1,
                "failureThreshold": 2,
            },
        },
    )
    assert created["schedule"]["job"]["kind"] == "probe"
    assert created["schedule"]["healthcheck"] == {"failureThreshold": 2}
    failing = re.compile(
        rf" (\w+) duralane\.schedules\.health: duralane\.healthcheck\.failing "
        rf"schedule {schedule_id} endpoint {schedule_id}-down failed (\d+) times "
        rf"running \(threshold 2\)"
    )
    match = app.wait_for_log(failing, 60)
    app.post(f"/api/schedules/{schedule_id}/pause")
    assert match.group(1) == "WARNING", match.group(0)
    assert int(match.group(2)) >= 2
    assert not [
        line for line in app.lines if f"endpoint {schedule_id}-up failed" in line
    ]
    app.wait_for_log(
        re.compile(
            rf"duralane\.healthcheck\.result schedule {schedule_id} endpoint "
            rf"{schedule_id}-up ok=True status 200"
        ),
        5,
    )
    # The first failing check alone did not raise the alert.
    app.wait_for_log(
        re.compile(
            rf"duralane\.healthcheck\.result schedule {schedule_id} endpoint "
            rf"{schedule_id}-down ok=False status 503 latency \S+ ms streak 1 "
        ),
        5,
    )

    checks = wait_runs(
        app,
        schedule_id,
        lambda rs: bool(rs) and all(r["status"] in FINAL for r in rs),
        "to finish every check",
    )
    probes = stored(app, PROBES, {"scheduleId": schedule_id})
    results = {
        (p["jobId"], p["endpoint"]): p for p in probes if p["record"] == "result"
    }
    streaks = {p["endpoint"]: p for p in probes if p["record"] == "streak"}
    assert streaks[f"{schedule_id}-up"]["consecutiveFailures"] == 0
    assert streaks[f"{schedule_id}-down"]["consecutiveFailures"] >= 2
    # Every check's results, as stored and as its job shows them over HTTP.
    for check in checks:
        job = get_job(app, check["jobId"])
        shown = job["result"]["results"]
        assert sorted(r["endpoint"] for r in shown) == sorted(streaks)
        for result in shown:
            kept = results[(check["jobId"], result["endpoint"])]
            expected = 200 if result["endpoint"].endswith("-up") else 503
            assert result["status"] == kept["status"] == expected
            assert result["latencyMs"] == kept["latencyMs"] >= 0
            assert instant(result["checkedAt"]) == instant(kept["checkedAt"])


def test_schedules_file_is_applied_idempotently_across_a_restart(
    tmp_path: Path, target: TargetServer
) -> None:
    url = target.route(respond(200))
    declared = [
        {"id": unique("filed"), "job": _template(url), "every": {"seconds": 3600}},
        {
            "id": unique("filed-health"),
            "healthcheck": {"endpoints": [{"name": "api", "url": url}]},
            "paused": True,
        },
    ]
    runtime = start_scheduler(tmp_path / "one", declared)
    try:
        runtime.wait_for_log(re.compile(r"schedules file applied: 2 created"), 30)
        first = {
            d["id"]: runtime.get(f"/api/schedules/{d['id']}").json() for d in declared
        }
    finally:
        runtime.stop()
    runtime = start_scheduler(tmp_path / "one", declared)
    try:
        runtime.wait_for_log(
            re.compile(r"schedules file applied: 0 created, 0 updated, 2 unchanged"), 30
        )
        for item in declared:
            again = runtime.get(f"/api/schedules/{item['id']}").json()
            assert again["schedule"] == first[item["id"]]["schedule"]
            assert again["createdAt"] == first[item["id"]]["createdAt"]
        health = runtime.get(f"/api/schedules/{declared[1]['id']}").json()
        assert health["schedule"]["every"]["seconds"] == 300
        assert health["paused"] is True
    finally:
        runtime.stop()


@pytest.mark.timeout(120)
def test_two_runtimes_over_one_store_start_each_fire_exactly_once(
    tmp_path: Path, target: TargetServer
) -> None:
    # The lease off: this test is about the run ids keeping racing dispatchers
    # to one run per fire; test_dispatcher_lease_e2e covers the lease.
    shared = {
        "DURALANE_SQLITE_PATH": str(tmp_path / "shared.sqlite3"),
        "DURALANE_DISPATCHER_LEASE_SECONDS": "0",
    }
    first = start_scheduler(tmp_path / "a", **shared)
    second = start_scheduler(tmp_path / "b", **shared)
    urls = {}
    try:
        for _ in range(3):
            schedule_id = unique("race")
            urls[schedule_id] = target.route(respond(200))
            create(
                first,
                {
                    "id": schedule_id,
                    "job": _template(urls[schedule_id]),
                    "every": {"seconds": 1},
                    "overlap": "allow",
                    # Every missed fire starts its own run, so a gap in the
                    # fire times below is a fire lost between the runtimes.
                    "misfire": "run_all",
                    "misfireCap": 1000,
                },
            )
        for schedule_id in urls:
            wait_runs(
                second,
                schedule_id,
                lambda rs: len(rs) >= 10,
                "to reach ten fires",
                timeout=60,
            )
        for schedule_id in urls:
            assert first.post(f"/api/schedules/{schedule_id}/pause").status_code == 200

        for schedule_id, url in urls.items():
            fired = wait_runs(
                first,
                schedule_id,
                lambda rs: all(r["status"] == "succeeded" for r in rs),
                "to finish every run",
                timeout=60,
            )
            fire_times = sorted(instant(r["scheduledAt"]) for r in fired)
            span = int((fire_times[-1] - fire_times[0]).total_seconds())
            every_second = [
                fire_times[0] + timedelta(seconds=n) for n in range(span + 1)
            ]
            assert fire_times == every_second, (
                "a fire between the first and the last has no run, or several"
            )
            for run in fired:
                job = get_job(first, run["jobId"])
                assert job["id"] == run["id"] and job["status"] == "succeeded", job
                assert f"schedule={schedule_id}" in job["tags"]
                assert len(job["attempts"]) == 1, job
            jobs = first.get(
                f"/api/jobs?tag=schedule={schedule_id}&pageSize=1000"
            ).json()["items"]
            assert sorted(j["id"] for j in jobs) == sorted(r["id"] for r in fired)
            assert len(target.hits(url)) == len(fired), "a job ran twice"
        logs = (first.log(), second.log())
        assert all("duralane.schedule.fired" in log for log in logs), (
            "both runtimes should have dispatched"
        )
    finally:
        first.stop()
        second.stop()
