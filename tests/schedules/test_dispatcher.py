"""The dispatcher tick over a real store, with an injected clock: damaged records."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from duralane.jobs import service as jobs
from duralane.jobs.model import JobSpec
from duralane.schedules import service
from duralane.store import Doc, PatchOp, Store, iso_utc
from tests.schedules.support import Clock, RecordingStarter, open_store, run


async def every(store: Store, clock: Clock, seconds: int, prefix: str) -> str:
    """A schedule that fires every `seconds`, each fire its own run."""
    schedule_id = f"{prefix}-{uuid.uuid4().hex[:8]}"
    await service.create_schedule(
        store,
        {
            "id": schedule_id,
            "job": {"kind": "http", "params": {"url": "https://example.test/"}},
            "every": {"seconds": seconds},
            "overlap": "allow",
        },
        clock(),
    )
    return schedule_id


def older_declaration(doc: Doc) -> Doc:
    """The record as an older version wrote it: a policy this one does not know."""
    return {**doc, "schedule": {**doc["schedule"], "overlap": "queue_all"}}


def older_state(doc: Doc) -> Doc:
    """The dispatcher state as an older version wrote it, under another name."""
    return {**doc, "state": {"cursor": doc["state"]["processedThrough"]}}


DAMAGE: dict[str, tuple[Callable[[Doc], Doc], str]] = {
    "declaration": (older_declaration, "overlap"),
    "state": (older_state, "processedThrough"),
}


async def damage(store: Store, schedule_id: str, how: str) -> None:
    """Write the raw record through the store, past the API's validation."""
    change, _ = DAMAGE[how]
    await store.update(service.SCHEDULES, schedule_id, change)


def set_aside_warnings(caplog: pytest.LogCaptureFixture, schedule_id: str) -> list[Any]:
    """The set-aside events logged for one schedule."""
    return [
        r
        for r in caplog.records
        if r.getMessage().startswith(service.SCHEDULE_SET_ASIDE)
        and schedule_id in r.getMessage()
    ]


@pytest.mark.parametrize("how", sorted(DAMAGE))
def test_an_unreadable_schedule_is_set_aside_and_stops_blocking_the_others(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, how: str
) -> None:
    async def scenario() -> None:
        store = await open_store(tmp_path / "s.sqlite3")
        clock = Clock()
        broken = await every(store, clock, 5, "broken")
        healthy = await every(store, clock, 10, "healthy")
        await damage(store, broken, how)
        clock.advance(12)  # broken is due since 12:00:05, healthy since 12:00:10
        starter = RecordingStarter()

        # A batch of one stands for a tick whose TICK_BATCH is all broken ones:
        # the broken schedule is due first and fills it.
        with caplog.at_level(logging.INFO):
            first = await service.dispatch_tick(store, starter, clock, limit=1)
            clock.advance(2)
            second = await service.dispatch_tick(store, starter, clock, limit=1)
            clock.advance(2)
            third = await service.dispatch_tick(store, starter, clock, limit=1)

        assert first.set_aside == [broken] and first.failed == []
        assert second.started == [f"sched-{healthy}-20260601T120010Z"]
        assert third.due == 0, "the set-aside schedule is still due"
        assert starter.started == [f"sched-{healthy}-20260601T120010Z"]

        warnings = set_aside_warnings(caplog, broken)
        assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
        shown = service.view(await store.read(service.SCHEDULES, broken))
        assert shown["status"] == service.STATUS_INVALID
        assert DAMAGE[how][1] in shown["error"]
        assert shown["nextFireAt"] is None and shown["nextDueAt"] is None
        await store.close()

    run(scenario())


@pytest.mark.parametrize("how", sorted(DAMAGE))
def test_a_set_aside_schedule_fires_again_once_its_declaration_is_replaced(
    tmp_path: Path, how: str
) -> None:
    async def scenario() -> None:
        store = await open_store(tmp_path / "s.sqlite3")
        clock = Clock()
        broken = await every(store, clock, 10, "broken")
        await damage(store, broken, how)
        clock.advance(12)
        starter = RecordingStarter()
        report = await service.dispatch_tick(store, starter, clock)
        assert report.set_aside == [broken]

        replaced = await service.replace_schedule(
            store,
            broken,
            {
                "job": {"kind": "http", "params": {"url": "https://example.test/"}},
                "every": {"seconds": 10},
                "overlap": "allow",
            },
            clock(),
        )
        assert service.view(replaced)["status"] == service.STATUS_ACTIVE
        assert service.view(replaced)["error"] is None
        clock.advance(10)  # 12:00:22: the 12:00:20 fire is due
        report = await service.dispatch_tick(store, starter, clock)

        assert f"sched-{broken}-20260601T120020Z" in report.started
        await store.close()

    run(scenario())


def test_the_schedules_file_restores_a_set_aside_schedule_it_declares_unchanged(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        store = await open_store(tmp_path / "s.sqlite3")
        clock = Clock()
        schedule_id = f"filed-{uuid.uuid4().hex[:8]}"
        declared = {
            "id": schedule_id,
            "job": {"kind": "http", "params": {"url": "https://example.test/"}},
            "every": {"seconds": 10},
        }
        await service.apply_declarations(store, [declared], clock())
        await damage(store, schedule_id, "state")
        clock.advance(12)
        report = await service.dispatch_tick(store, RecordingStarter(), clock)
        assert report.set_aside == [schedule_id]

        applied = await service.apply_declarations(store, [declared], clock())

        assert applied.updated == [schedule_id]
        doc = await store.read(service.SCHEDULES, schedule_id)
        assert service.view(doc)["status"] == service.STATUS_ACTIVE
        await store.close()

    run(scenario())


def test_a_late_started_write_does_not_undo_a_finished_run(tmp_path: Path) -> None:
    async def scenario() -> None:
        path = tmp_path / "s.sqlite3"
        store_a, store_b = await open_store(path), await open_store(path)
        clock = Clock()
        schedule_id = await every(store_a, clock, 10, "late")
        run_id = f"sched-{schedule_id}-20260601T120010Z"
        clock.advance(12)

        async def stall_while_the_job_finishes(spec: JobSpec) -> None:
            # Dispatcher A stalls (a throttled write, a long pause) after its
            # job began; the job ends and dispatcher B records that first.
            await jobs.submit(store_a, spec)
            await store_a.patch(
                "jobs",
                spec.id,
                [
                    PatchOp.set("/status", "succeeded"),
                    PatchOp.set("/finishedAt", iso_utc(clock())),
                ],
            )
            clock.advance(1)
            report = await service.dispatch_tick(store_b, RecordingStarter(), clock)
            assert report.finished == [run_id]

        stalled = RecordingStarter(before_start=stall_while_the_job_finishes)
        await service.dispatch_tick(store_a, stalled, clock)

        assert stalled.started == [run_id]
        record = await store_a.read(service.RUNS, run_id, partition_key=schedule_id)
        assert record["status"] == "succeeded", "the late 'started' write won"
        assert record["finishedAt"] == "2026-06-01T12:00:12.000000Z"
        assert record["fireLagMs"] >= 0
        await store_a.close()
        await store_b.close()

    run(scenario())
