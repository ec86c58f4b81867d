"""A high-lane job is urgent from its submission until its first attempt starts."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import azure.durable_functions as df
import pytest

import activities.jobs as job_activities
import triggers.api as api
import triggers.submission as submission
from duralane.jobs import service
from duralane.jobs.lanes import lane_priority
from duralane.jobs.model import JobSpec, parse_job_spec
from duralane.store import RecordNotFound
from duralane.store.sqlite import SqliteStore
from duralane.urgency import Urgency
from tests.clocks import CountingClock


class NotingStarts:
    """A durable client that notes how much was urgent when each start came."""

    def __init__(self, urgency: Urgency, *, fail_from: int | None = None) -> None:
        self.urgency = urgency
        # Starts from this one on (the first is 1) find the task hub unreachable.
        self.fail_from = fail_from
        self.urgent_at_start: list[int] = []

    async def start_new(self, name: str, instance_id: str, payload: object) -> str:
        self.urgent_at_start.append(self.urgency.in_flight())
        if self.fail_from is not None and len(self.urgent_at_start) >= self.fail_from:
            raise ConnectionError("the task hub is unreachable")
        return instance_id

    async def get_status(self, instance_id: str) -> object:
        return {"instanceId": instance_id}  # it exists: a resubmission starts nothing


@pytest.fixture
def urgency(monkeypatch: pytest.MonkeyPatch) -> Urgency:
    """A fresh Urgency in place of the process's, for submission and attempts."""
    fresh = Urgency(switch_seconds=None)
    monkeypatch.setattr(submission, "urgent_work", fresh)
    monkeypatch.setattr(job_activities, "urgent_work", fresh)
    monkeypatch.delenv("DURALANE_LANE", raising=False)
    return fresh


def _spec(job_id: str, lane: str, **extra: Any) -> JobSpec:
    body = {"id": job_id, "kind": "http", "lane": lane, **extra}
    body["params"] = {"url": "https://example.com/"}
    return parse_job_spec(json.dumps(body))


def _submit(
    tmp_path: Path, specs: list[JobSpec], client: NotingStarts
) -> list[service.Submission]:
    async def scenario() -> list[service.Submission]:
        store = SqliteStore(tmp_path / "state.sqlite3")
        await store.open()
        try:
            return [
                await submission.submit_and_start(store, spec, client)  # type: ignore[arg-type]
                for spec in specs
            ]
        finally:
            await store.close()

    return asyncio.run(scenario())


def test_a_high_job_stays_urgent_until_its_first_attempt_is_recorded(
    tmp_path: Path, urgency: Urgency, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = NotingStarts(urgency)
    urgent_when_the_job_ran: list[int] = []

    async def scenario() -> None:
        store = SqliteStore(tmp_path / "state.sqlite3")
        await store.open()

        async def our_store() -> SqliteStore:
            return store

        async def run_job(*args: Any, **kwargs: Any) -> dict[str, Any]:
            urgent_when_the_job_ran.append(urgency.in_flight())
            return {"status": 200}

        monkeypatch.setattr(service, "get_store", our_store)
        monkeypatch.setattr(job_activities, "run_job", run_job)
        spec = _spec("urg-high-1", "high")
        await submission.submit_and_start(store, spec, client)  # type: ignore[arg-type]
        assert urgency.in_flight() == 1, "the start has not been recorded yet"

        attempt = job_activities.run_attempt._function.get_user_function()
        payload = {"jobId": spec.id, "lane": "high", "attempt": 1, "run": 1}
        outcome = await attempt(payload)
        await store.close()
        assert outcome["ok"], outcome

    asyncio.run(scenario())

    assert client.urgent_at_start == [1]
    assert urgent_when_the_job_ran == [0]
    assert urgency.in_flight() == 0


@pytest.mark.parametrize("lane", ["normal", "low"])
def test_other_lanes_are_never_urgent(
    tmp_path: Path, urgency: Urgency, lane: str
) -> None:
    client = NotingStarts(urgency)

    _submit(tmp_path, [_spec(f"urg-{lane}-1", lane)], client)

    assert client.urgent_at_start == [0]
    assert urgency.in_flight() == 0


def test_a_high_job_due_later_is_not_urgent_yet(
    tmp_path: Path, urgency: Urgency
) -> None:
    client = NotingStarts(urgency)
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()

    _submit(tmp_path, [_spec("urg-later-1", "high", runAt=later)], client)

    assert client.urgent_at_start == [0]


def test_a_process_serving_another_lane_does_not_hold_for_high_jobs(
    tmp_path: Path, urgency: Urgency, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In Azure each lane is its own app; the low app runs no high attempts."""
    monkeypatch.setenv("DURALANE_LANE", "low")
    client = NotingStarts(urgency)

    _submit(tmp_path, [_spec("urg-elsewhere-1", "high")], client)

    assert client.urgent_at_start == [0]


@pytest.mark.parametrize(
    ("lanes", "urgent"), [("normal,low", 0), ("low, high", 1), ("high", 1)]
)
def test_a_process_holds_for_high_jobs_only_if_it_serves_the_high_lane(
    tmp_path: Path,
    urgency: Urgency,
    monkeypatch: pytest.MonkeyPatch,
    lanes: str,
    urgent: int,
) -> None:
    """A runtime leaving the high lane to a peer process names the lanes it keeps."""
    monkeypatch.setenv("DURALANE_LANE", lanes)
    client = NotingStarts(urgency)

    _submit(tmp_path, [_spec(f"urg-lanes-{urgent}-{len(lanes)}", "high")], client)

    assert client.urgent_at_start == [urgent]


def test_a_resubmission_of_a_started_job_is_not_urgent(
    tmp_path: Path, urgency: Urgency
) -> None:
    """The job exists and has started: submitting it again starts nothing."""
    client = NotingStarts(urgency)
    spec = _spec("urg-again-1", "high")
    _submit(tmp_path, [spec], client)
    urgency.end(spec.instance_id)  # as run_attempt does once it has begun

    (again,) = _submit(tmp_path, [spec], client)

    assert not again.created
    assert client.urgent_at_start == [1], "only the first submission starts"
    assert urgency.in_flight() == 0


def test_a_resubmission_while_the_first_is_starting_keeps_it_urgent(
    tmp_path: Path, urgency: Urgency
) -> None:
    client = NotingStarts(urgency)
    spec = _spec("urg-again-2", "high")

    first, second = _submit(tmp_path, [spec, spec], client)

    assert first.created and not second.created
    assert urgency.in_flight() == 1, "the second call ended the first's urgency"


def test_a_high_submission_whose_start_fails_leaves_nothing_urgent(
    tmp_path: Path, urgency: Urgency
) -> None:
    client = NotingStarts(urgency, fail_from=1)

    with pytest.raises(submission.LaneUnavailable, match="ConnectionError"):
        _submit(tmp_path, [_spec("urg-broken-1", "high")], client)

    assert client.urgent_at_start == [1]
    assert urgency.in_flight() == 0


def _replay_scenario(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, client: NotingStarts, name: str
) -> None:
    """Submit a high job, let it start and end in a dead letter, then replay it."""

    async def scenario() -> None:
        store = SqliteStore(tmp_path / "state.sqlite3")
        await store.open()

        async def our_store() -> SqliteStore:
            return store

        monkeypatch.setattr(service, "get_store", our_store)
        spec = _spec(name, "high")
        try:
            await submission.submit_and_start(store, spec, client)  # type: ignore[arg-type]
            submission.urgent_work.end(spec.instance_id)  # as run_attempt does
            await service.dead_letter(store, spec.id, "permanent failure")
            await api._replay(spec.id, {"high": client})  # type: ignore[dict-item]
        finally:
            await store.close()

    asyncio.run(scenario())


def test_a_replayed_high_job_is_urgent_until_its_attempt_is_recorded(
    tmp_path: Path, urgency: Urgency, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = NotingStarts(urgency)

    _replay_scenario(tmp_path, monkeypatch, client, "urg-replay-1")

    assert client.urgent_at_start == [1, 1], "the replay's start was not urgent"
    assert urgency.in_flight() == 1


def test_a_replay_whose_start_fails_leaves_nothing_urgent(
    tmp_path: Path, urgency: Urgency, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = NotingStarts(urgency, fail_from=2)

    with pytest.raises(submission.LaneUnavailable, match="queued again"):
        _replay_scenario(tmp_path, monkeypatch, client, "urg-replay-2")

    assert client.urgent_at_start == [1, 1]
    assert urgency.in_flight() == 0


class EndedEarlierRun(NotingStarts):
    """The instance id holds the job's last run, which has ended."""

    async def get_status(self, instance_id: str) -> object:
        return SimpleNamespace(runtime_status=df.OrchestrationRuntimeStatus.Completed)


def test_a_replay_whose_start_failed_starts_when_its_job_is_submitted_again(
    tmp_path: Path, urgency: Urgency, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The replay's 503 says to submit again; that must start the queued run."""
    failing = NotingStarts(urgency, fail_from=2)
    with pytest.raises(submission.LaneUnavailable):
        _replay_scenario(tmp_path, monkeypatch, failing, "urg-replay-3")
    client = EndedEarlierRun(urgency)

    (again,) = _submit(tmp_path, [_spec("urg-replay-3", "high")], client)

    assert not again.created
    assert again.record.run == 2
    assert len(client.urgent_at_start) == 1, "the queued replay was not started"


def test_a_low_submission_steps_aside_while_a_high_start_is_urgent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It stores nothing until the high start ends; the bound is far away."""
    clock = CountingClock()
    urgency = Urgency(clock, switch_seconds=None, hold_seconds=60)
    monkeypatch.setattr(submission, "urgent_work", urgency)
    monkeypatch.delenv("DURALANE_LANE", raising=False)
    client = NotingStarts(urgency)
    low = _spec("urg-low-held-1", "low")

    async def scenario() -> None:
        store = SqliteStore(tmp_path / "state.sqlite3")
        await store.open()
        try:
            urgency.begin("urg-high-held-1", lane_priority("high"), 60)
            task = asyncio.create_task(
                submission.submit_and_start(store, low, client)  # type: ignore[arg-type]
            )
            await clock.looked()
            assert not task.done(), "the low submission did not step aside"
            with pytest.raises(RecordNotFound):
                await store.read("jobs", low.id)

            urgency.end("urg-high-held-1")
            submitted = await asyncio.wait_for(task, 10)
            assert submitted.created
        finally:
            await store.close()

    asyncio.run(scenario())

    assert client.urgent_at_start == [0]
