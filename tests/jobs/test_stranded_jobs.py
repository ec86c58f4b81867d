"""The sweep that starts queued jobs whose start never reached their lane."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import azure.durable_functions as df
import pytest

from duralane.jobs import service
from duralane.jobs.model import JobSpec, parse_job_spec
from duralane.settings import Settings
from duralane.store.sqlite import SqliteStore
from triggers import stranded

RUNNING = SimpleNamespace(runtime_status=df.OrchestrationRuntimeStatus.Running)
ENDED = SimpleNamespace(runtime_status=df.OrchestrationRuntimeStatus.Completed)


class Instances:
    """A durable client that knows some instances and notes each start."""

    def __init__(self, known: dict[str, object], *, down: bool = False) -> None:
        self.known = known
        self.down = down
        self.started: list[str] = []
        self.asked: list[str] = []

    async def get_status(self, instance_id: str) -> object:
        self.asked.append(instance_id)
        if self.down:
            raise ConnectionError("the task hub is unreachable")
        return self.known.get(instance_id)

    async def start_new(self, name: str, instance_id: str, order: dict) -> str:
        assert name == "run_job" and order["job_id"]
        self.started.append(instance_id)
        self.known[instance_id] = RUNNING
        return instance_id


def _spec(job_id: str, lane: str, **extra: str) -> JobSpec:
    body = {"id": job_id, "kind": "http", "lane": lane, **extra}
    body["params"] = {"url": "https://example.com/"}
    return parse_job_spec(json.dumps(body))


@pytest.fixture(autouse=True)
def fresh_sweeps(monkeypatch: pytest.MonkeyPatch) -> None:
    """No sweep goes on from where an earlier test's stopped."""
    monkeypatch.setattr(stranded, "_resume_from", {})


def _sweep(
    tmp_path: Path,
    specs: list[JobSpec],
    client: Instances,
    lane: str,
    minutes_later: float,
    sweeps: int = 1,
) -> list[list[str]]:
    """Submit the specs a second apart, then sweep that many times."""

    async def scenario() -> list[list[str]]:
        store = SqliteStore(tmp_path / "state.sqlite3")
        await store.open()
        try:
            submitted = service.utc_now()
            for n, spec in enumerate(specs):
                await service.submit(store, spec, submitted + timedelta(seconds=n))
            now = submitted + timedelta(minutes=minutes_later)
            settings = Settings()
            return [
                await stranded.start_stranded(store, lane, client, settings, now)  # type: ignore[arg-type]
                for _ in range(sweeps)
            ]
        finally:
            await store.close()

    return asyncio.run(scenario())


def test_a_queued_job_with_no_orchestration_is_started_and_others_are_left(
    tmp_path: Path,
) -> None:
    lost, running, replayed = (
        _spec(f"stranded-{name}-1", "high") for name in ("lost", "running", "replay")
    )
    client = Instances({running.instance_id: RUNNING, replayed.instance_id: ENDED})

    (started,) = _sweep(tmp_path, [lost, running, replayed], client, "high", 1)

    assert started == [lost.id, replayed.id]
    assert client.started == [lost.instance_id, replayed.instance_id]


def test_only_jobs_queued_past_their_lanes_deadline_are_checked(tmp_path: Path) -> None:
    """A low job may wait an hour for its start; one minute in it is not stranded."""
    low, high = _spec("stranded-low-2", "low"), _spec("stranded-high-2", "high")
    client = Instances({})

    (early,) = _sweep(tmp_path, [low, high], client, "low", 1)
    (late,) = _sweep(tmp_path, [], client, "low", 61)

    assert early == []
    assert late == [low.id], "the high job is another lane's sweep"
    assert client.asked == [low.instance_id]


def test_a_lane_that_is_down_stops_the_sweep_until_the_next(tmp_path: Path) -> None:
    specs = [_spec(f"stranded-down-{n}", "normal") for n in range(3)]
    client = Instances({}, down=True)

    (started,) = _sweep(tmp_path, specs, client, "normal", 5)

    assert started == []
    assert client.asked == [specs[0].instance_id], "one refusal is enough"


def test_a_backlog_longer_than_one_sweep_is_walked_over_several(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each sweep goes on from where the last one stopped, then starts over."""
    monkeypatch.setattr(stranded, "SWEEP_PAGE", 2)
    monkeypatch.setattr(stranded, "SWEEP_PAGES", 1)
    specs = [_spec(f"stranded-backlog-{n}", "high") for n in range(5)]
    waiting = specs[0].instance_id  # its orchestration exists: not stranded
    client = Instances({waiting: RUNNING})

    sweeps = _sweep(tmp_path, specs, client, "high", 10, sweeps=5)

    # Each sweep begins at the last job the one before saw (since is
    # inclusive); the fourth reaches the end, so the fifth starts over.
    ids = [spec.id for spec in specs]
    assert sweeps == [[ids[1]], [ids[2]], [ids[3]], [ids[4]], []]
    assert client.asked[-2:] == [specs[0].instance_id, specs[1].instance_id]


def test_a_job_due_later_is_not_late_and_not_asked_about(tmp_path: Path) -> None:
    """Queued for a later runAt, its orchestration waits on a timer: no call."""
    later = (service.utc_now() + timedelta(days=1)).isoformat()
    waiting = _spec("stranded-later-1", "high", runAt=later)
    lost = _spec("stranded-later-2", "high")
    client = Instances({waiting.instance_id: RUNNING})

    (started,) = _sweep(tmp_path, [waiting, lost], client, "high", 10)

    assert started == [lost.id]
    assert client.asked == [lost.instance_id]
