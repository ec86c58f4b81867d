"""The high lane in a runtime process of its own, beside one running the others.

The machine-sized form of Azure's one Function App per lane: both processes
share the app's SQLite store, each runs its lanes' task hubs, and either
front door takes any lane's jobs.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.jobs_e2e.conftest import LOOPBACK
from tests.jobs_e2e.support import (
    TargetServer,
    get_job,
    held_until,
    http_job,
    respond,
    send_message,
    submit,
    unique,
    wait_job,
    wait_state,
)
from tests.runtime.harness import WEBHOOK, RuntimeProcess
from tests.services import free_port


@dataclass
class LaneProcesses:
    rest: RuntimeProcess  # normal and low
    high: RuntimeProcess


def _lane_process(
    data: Path,
    name: str,
    port: int,
    lanes: str,
    peers: dict[str, int],
    **settings: str,
) -> RuntimeProcess:
    """One of the lane runtimes: its own data dir and port, the app's store shared."""
    args = ["--port", str(port)]
    for hub, peer_port in peers.items():
        args += ["--peer", f"{hub}=http://127.0.0.1:{peer_port}"]
    env = {
        "DURALANE_SQLITE_PATH": str(data / "state.sqlite3"),
        "DURALANE_ALLOWED_TARGETS": LOOPBACK,
        "DURALANE_LANE": lanes,
        "DURALANE_DATA_DIR": str(data / name),
        **settings,
    }
    return RuntimeProcess(Path("function_app.py"), data / name, env=env, args=args)


def _high_process(
    data: Path, port: int, rest_port: int, **settings: str
) -> RuntimeProcess:
    peers = {"DuralaneNormal": rest_port, "DuralaneLow": rest_port}
    return _lane_process(data, "high", port, "high", peers, **settings)


def _rest_process(data: Path, port: int, high_port: int) -> RuntimeProcess:
    return _lane_process(data, "rest", port, "normal,low", {"DuralaneHigh": high_port})


@pytest.fixture(scope="module")
def lanes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LaneProcesses]:
    data = tmp_path_factory.mktemp("lane-processes")
    rest_port, high_port = free_port(), free_port()
    rest = _rest_process(data, rest_port, high_port).start()
    high = _high_process(data, high_port, rest_port)
    try:
        high.start()
        yield LaneProcesses(rest, high)
    finally:
        high.stop()
        rest.stop()


def _ran_in(job: dict[str, object], runtime: RuntimeProcess) -> bool:
    assert runtime.process is not None
    return str(job["owner"]).endswith(f":{runtime.process.pid}")


def test_a_high_job_sent_to_the_other_front_door_runs_in_the_high_process(
    lanes: LaneProcesses, target: TargetServer
) -> None:
    job_id = unique("lanes-high")
    job = submit(lanes.rest, http_job(job_id, target.route(respond(200)), lane="high"))

    done = wait_state(lanes.rest, job_id, "succeeded")

    assert _ran_in(done, lanes.high), done["owner"]
    instance = lanes.high.get(
        f"{WEBHOOK}/instances/{job['instanceId']}", params={"taskHub": "DuralaneHigh"}
    )
    assert instance.json()["runtimeStatus"] == "Completed"


def test_a_low_job_sent_to_the_high_front_door_runs_in_the_other_process(
    lanes: LaneProcesses, target: TargetServer
) -> None:
    job_id = unique("lanes-low")
    submit(lanes.high, http_job(job_id, target.route(respond(200)), lane="low"))

    done = wait_state(lanes.high, job_id, "succeeded")

    assert _ran_in(done, lanes.rest), done["owner"]


def test_a_high_job_is_cancelled_from_the_process_that_does_not_run_it(
    lanes: LaneProcesses, target: TargetServer
) -> None:
    """DELETE raises the cancel event through the peer's hub."""
    release = threading.Event()
    url = target.route(held_until(release))
    job_id = unique("lanes-cancel")
    submit(lanes.high, http_job(job_id, url, lane="high"))
    wait_job(lanes.rest, job_id, lambda j: j["status"] == "running", "to start")

    try:
        response = lanes.rest.delete(f"/api/jobs/{job_id}")
        assert response.status_code == 202, response.text
        job = wait_state(lanes.rest, job_id, "cancelled")
    finally:
        release.set()
    assert _ran_in(job, lanes.high)


def test_a_job_whose_lane_runtime_is_down_stays_queued_and_starts_when_sent_again(
    tmp_path: Path, target: TargetServer
) -> None:
    """503 with what to do; the stored job waits; a resubmission starts it."""
    rest_port, high_port = free_port(), free_port()
    rest = _rest_process(tmp_path, rest_port, high_port).start()
    try:
        job_id = unique("lanes-down")
        spec = http_job(job_id, target.route(respond(200)), lane="high")

        refused = rest.post("/api/jobs", json=spec)

        assert refused.status_code == 503, refused.text
        message = refused.json()["error"]
        assert "task hub DuralaneHigh did not answer" in message
        assert "submit it again with the same idempotency key" in message
        assert get_job(rest, job_id)["status"] == "queued"
        assert "Traceback" not in rest.log()

        high = _high_process(tmp_path, high_port, rest_port).start()
        try:
            again = rest.post("/api/jobs", json=spec)
            assert again.status_code == 200, again.text
            done = wait_state(rest, job_id, "succeeded")
            assert _ran_in(done, high)
        finally:
            high.stop()
    finally:
        rest.stop()


def test_a_queue_message_for_a_lane_that_is_down_waits_for_it_to_come_back(
    tmp_path: Path, target: TargetServer
) -> None:
    """Not ten failed deliveries in a few milliseconds and a dead letter."""
    rest_port, high_port = free_port(), free_port()
    rest = _rest_process(tmp_path, rest_port, high_port).start()
    try:
        job_id = unique("lanes-queue")
        spec = http_job(job_id, target.route(respond(200)))
        send_message(rest, "jobs-high", json.dumps(spec).encode(), job_id)
        rest.wait_for_log(re.compile(rf"job {job_id}: lane high did not take"), 30)

        high = _high_process(tmp_path, high_port, rest_port).start()
        try:
            done = wait_state(rest, job_id, "succeeded", timeout=60)
        finally:
            high.stop()
        in_queue = rest.get(
            "/runtime/queues/jobs-high/deadletters", params={"count": 100}
        )
        # The dead-letter trigger would have moved one into the app's store.
        moved = rest.get(f"/api/deadletters/msg-jobs-high-{job_id}")
    finally:
        rest.stop()

    assert _ran_in(done, high)
    assert in_queue.status_code == 200, in_queue.text
    assert job_id not in in_queue.text
    assert moved.status_code == 404, moved.text
    assert f"job {job_id} lane high was queued" not in high.log(), "the sweep did it"


def test_a_queue_message_outlasting_its_retries_leaves_the_start_to_the_sweep(
    tmp_path: Path, target: TargetServer
) -> None:
    """The job is stored, so the message is done: completed, not dead-lettered."""
    rest_port, high_port = free_port(), free_port()
    rest = _rest_process(tmp_path, rest_port, high_port).start()
    try:
        job_id = unique("lanes-outage")
        spec = http_job(job_id, target.route(respond(200)))
        send_message(rest, "jobs-high", json.dumps(spec).encode(), job_id)
        left = rf"job {job_id}: lane high still does not take the start"
        rest.wait_for_log(re.compile(left), 40)
        rest.wait_for_log(re.compile(r"Executed jobs_high .*: Succeeded"), 10)
        pending = rest.get("/runtime/queues/jobs-high/messages", params={"count": 100})
        dead = rest.get("/runtime/queues/jobs-high/deadletters", params={"count": 100})
        assert job_id not in pending.text + dead.text
        assert rest.get(f"/api/deadletters/msg-jobs-high-{job_id}").status_code == 404

        high = _high_process(
            tmp_path, high_port, rest_port, DURALANE_STRANDED_AFTER_SECONDS="0"
        ).start()
        try:
            done = wait_state(rest, job_id, "succeeded", timeout=90)
        finally:
            high.stop()
    finally:
        rest.stop()

    assert _ran_in(done, high)


def test_a_job_stored_while_its_lane_was_down_starts_when_the_lane_is_back(
    tmp_path: Path, target: TargetServer
) -> None:
    """Nobody submits it again: the high runtime's sweep at startup starts it."""
    rest_port, high_port = free_port(), free_port()
    rest = _rest_process(tmp_path, rest_port, high_port).start()
    try:
        job_id = unique("lanes-stranded")
        spec = http_job(job_id, target.route(respond(200)), lane="high")
        assert rest.post("/api/jobs", json=spec).status_code == 503

        high = _high_process(
            tmp_path, high_port, rest_port, DURALANE_STRANDED_AFTER_SECONDS="0"
        ).start()
        try:
            # At least the lane's 1 s deadline after the submission: the
            # startup sweep, or failing that the next one a minute later.
            done = wait_state(rest, job_id, "succeeded", timeout=90)
            swept = rf"job {job_id} lane high was queued with no orchestration"
            high.wait_for_log(re.compile(swept), 10)
        finally:
            high.stop()
    finally:
        rest.stop()

    assert _ran_in(done, high)


def test_a_runtime_told_a_lane_that_does_not_exist_stops_with_one_line(
    tmp_path: Path,
) -> None:
    """A typo would otherwise leave the process serving none of its lanes."""
    runtime = _lane_process(tmp_path, "typo", free_port(), "hgh", {})
    runtime.spawn()

    code = runtime.wait_exit()

    assert code != 0
    assert len(runtime.lines) == 1, runtime.lines
    assert "DURALANE_LANE names 'hgh', which is not a lane" in runtime.lines[0]
