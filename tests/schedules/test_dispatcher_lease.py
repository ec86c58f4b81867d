"""The dispatcher lease, and the kills it must survive, with an injected clock."""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta
from pathlib import Path

import pytest

from duralane.jobs import service as jobs
from duralane.jobs.model import JobSpec
from duralane.schedules import service
from duralane.schedules.lease import (
    LEASE_ID,
    LEASE_LOST,
    LEASE_TAKEN_OVER,
    LEASES,
    DispatcherLease,
    Holder,
    LeaseSettings,
)
from duralane.store import Store
from tests.schedules.support import Clock, RecordingStarter, open_store, run

TTL = timedelta(seconds=15)


def lease(
    store: Store, clock: Clock, name: str, region: str = "", preferred: str = ""
) -> DispatcherLease:
    """A dispatcher's lease with a readable holder id and a fresh token."""
    holder_id = f"{name}@{region}" if region else name
    holder = Holder(id=holder_id, region=region, token=uuid.uuid4().hex)
    return DispatcherLease(
        store, holder, ttl=TTL, preferred_region=preferred, clock=clock
    )


def reads_and_writes(store: Store) -> dict[str, int]:
    """How many store calls of each kind this connection made."""
    return {op: int(figures["count"]) for op, figures in store.usage().items()}


async def every_ten_seconds(store: Store, clock: Clock) -> str:
    """A schedule that fires every 10 s, each fire its own run."""
    schedule_id = f"lease-{uuid.uuid4().hex[:8]}"
    await service.create_schedule(
        store,
        {
            "id": schedule_id,
            "job": {"kind": "http", "params": {"url": "https://example.test/"}},
            "every": {"seconds": 10},
            "overlap": "allow",
        },
        clock(),
    )
    return schedule_id


def test_the_first_dispatcher_acquires_a_lease_nobody_holds(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = await open_store(tmp_path / "s.sqlite3")
        clock = Clock()
        first = lease(store, clock, "host-a:1", "westeurope")

        assert await first.acquire()

        doc = await store.read(LEASES, LEASE_ID)
        assert doc["holder"] == "host-a:1@westeurope"
        assert doc["region"] == "westeurope"
        assert doc["acquiredAt"] == "2026-06-01T12:00:00.000000Z"
        assert doc["expiresAt"] == "2026-06-01T12:00:15.000000Z"
        await store.close()

    run(scenario())


def test_the_holder_renews_each_tick_and_moves_the_expiry(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = await open_store(tmp_path / "s.sqlite3")
        clock = Clock()
        holder = lease(store, clock, "host-a:1")
        assert await holder.acquire()

        clock.advance(2)
        assert await holder.acquire()
        clock.advance(14)  # past the first expiry, within the renewed one
        assert await holder.acquire()

        doc = await store.read(LEASES, LEASE_ID)
        assert doc["acquiredAt"] == "2026-06-01T12:00:00.000000Z"
        assert doc["renewedAt"] == "2026-06-01T12:00:16.000000Z"
        assert doc["expiresAt"] == "2026-06-01T12:00:31.000000Z"
        await store.close()

    run(scenario())


def test_a_second_dispatcher_stands_by_with_one_read_while_the_lease_is_held(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        path = tmp_path / "s.sqlite3"
        store_a, store_b = await open_store(path), await open_store(path)
        clock = Clock()
        holder = lease(store_a, clock, "host-a:1")
        other = lease(store_b, clock, "host-b:2")
        assert await holder.acquire()
        schedule_id = await every_ten_seconds(store_a, clock)
        clock.advance(12)
        assert await holder.acquire()

        starter = RecordingStarter()
        report = await service.dispatch_tick(store_b, starter, clock, lease=other)

        assert report.standby
        assert starter.started == []
        assert reads_and_writes(store_b) == {"read:leases": 1}
        schedule = await store_a.read(service.SCHEDULES, schedule_id)
        assert schedule["lastFire"] is None
        await store_a.close()
        await store_b.close()

    run(scenario())


def test_another_dispatcher_takes_over_only_after_the_lease_expires(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario() -> None:
        path = tmp_path / "s.sqlite3"
        store_a, store_b = await open_store(path), await open_store(path)
        clock = Clock()
        holder = lease(store_a, clock, "host-a:1", "westeurope")
        other = lease(store_b, clock, "host-b:2", "northeurope")
        assert await holder.acquire()

        clock.advance(14.9)
        assert not await other.acquire()
        clock.advance(0.2)  # the holder was killed and never renewed
        with caplog.at_level(logging.INFO):
            assert await other.acquire()

        doc = await store_b.read(LEASES, LEASE_ID)
        assert doc["holder"] == "host-b:2@northeurope"
        assert doc["previousHolder"] == "host-a:1@westeurope"
        taken = [r for r in caplog.records if LEASE_TAKEN_OVER in r.getMessage()]
        assert len(taken) == 1 and taken[0].levelno == logging.WARNING
        assert "host-b:2@northeurope from host-a:1@westeurope" in taken[0].message

        # The old holder wakes up: it learns it lost and stands by.
        with caplog.at_level(logging.INFO):
            assert not await holder.acquire()
        assert not holder.held
        lost = [r for r in caplog.records if LEASE_LOST in r.getMessage()]
        assert "lost by host-a:1@westeurope to host-b:2@northeurope" in lost[0].message
        await store_a.close()
        await store_b.close()

    run(scenario())


def test_a_holder_that_loses_the_lease_mid_tick_starts_no_more_runs(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        path = tmp_path / "s.sqlite3"
        store_a, store_b = await open_store(path), await open_store(path)
        clock = Clock()
        holder = lease(store_a, clock, "host-a:1")
        other = lease(store_b, clock, "host-b:2")
        assert await holder.acquire()
        schedule_id = await every_ten_seconds(store_a, clock)
        clock.advance(35)  # three fires due: 12:00:10, :20 and :30
        assert await holder.acquire()

        async def stall_then_lose_the_lease(spec: JobSpec) -> None:
            clock.advance(16)
            assert await other.acquire()

        stalled = RecordingStarter(before_start=stall_then_lose_the_lease)
        report = await service.dispatch_tick(store_a, stalled, clock, lease=holder)

        assert report.lease_lost
        assert len(stalled.started) == 1
        assert not holder.held

        # The new holder finishes the fires the old one left pending.
        finisher = RecordingStarter()
        report = await service.dispatch_tick(store_b, finisher, clock, lease=other)
        assert not report.standby and not report.lease_lost
        # Each fire once: the three left pending, and two more the stall made due.
        started = stalled.started + finisher.started
        assert sorted(started) == [
            f"sched-{schedule_id}-20260601T1200{s}0Z" for s in range(1, 6)
        ]
        await store_a.close()
        await store_b.close()

    run(scenario())


def test_a_lost_lease_stops_the_tick_before_the_next_schedule(tmp_path: Path) -> None:
    async def scenario() -> None:
        path = tmp_path / "s.sqlite3"
        store_a, store_b = await open_store(path), await open_store(path)
        clock = Clock()
        holder = lease(store_a, clock, "host-a:1")
        other = lease(store_b, clock, "host-b:2")
        assert await holder.acquire()
        first = await every_ten_seconds(store_a, clock)
        second = await every_ten_seconds(store_a, clock)
        clock.advance(12)
        assert await holder.acquire()

        async def stall_then_lose_the_lease(spec: JobSpec) -> None:
            clock.advance(16)
            assert await other.acquire()

        stalled = RecordingStarter(before_start=stall_then_lose_the_lease)
        report = await service.dispatch_tick(store_a, stalled, clock, lease=holder)

        assert report.lease_lost and report.due == 2 and report.claimed == 1
        assert len(stalled.started) == 1
        finisher = RecordingStarter()
        await service.dispatch_tick(store_b, finisher, clock, lease=other)
        assert sorted(stalled.started + finisher.started) == sorted(
            f"sched-{s}-20260601T1200{n}0Z" for s in (first, second) for n in (1, 2)
        )
        await store_a.close()
        await store_b.close()

    run(scenario())


@pytest.mark.parametrize("job_stored", [False, True], ids=["no-job", "queued-job"])
def test_a_fire_whose_holder_died_between_run_record_and_job_starts_once_later(
    tmp_path: Path, job_stored: bool
) -> None:
    async def scenario() -> None:
        path = tmp_path / "s.sqlite3"
        store_a, store_b = await open_store(path), await open_store(path)
        clock = Clock()
        holder = lease(store_a, clock, "host-a:1")
        other = lease(store_b, clock, "host-b:2")
        assert await holder.acquire()
        schedule_id = await every_ten_seconds(store_a, clock)
        clock.advance(12)

        async def killed(spec: JobSpec) -> None:
            if job_stored:
                await jobs.submit(store_a, spec)
            raise RuntimeError("SIGKILL after the run record, before the job began")

        report = await service.dispatch_tick(
            store_a, RecordingStarter(before_start=killed), clock, lease=holder
        )
        assert report.failed == [schedule_id]

        starter = RecordingStarter()
        clock.advance(16)  # the lease expired; the run record is 16 s old
        await service.dispatch_tick(store_b, starter, clock, lease=other)
        assert starter.started == [f"sched-{schedule_id}-20260601T120020Z"]
        clock.advance(16)  # 32 s: the run is taken to be abandoned
        await service.dispatch_tick(store_b, starter, clock, lease=other)

        assert sorted(starter.started) == [
            f"sched-{schedule_id}-20260601T1200{n}0Z" for n in (1, 2, 3, 4)
        ]
        await store_a.close()
        await store_b.close()

    run(scenario())


def test_a_lease_object_rebuilt_in_the_same_process_keeps_the_lease(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario() -> None:
        path = tmp_path / "s.sqlite3"
        store_a = await open_store(path)
        clock = Clock()
        before = lease(store_a, clock, "host-a:1")
        assert await before.acquire()
        store_again = await open_store(path)
        after = DispatcherLease(store_again, before.holder, ttl=TTL, clock=clock)

        clock.advance(2)
        with caplog.at_level(logging.INFO):
            assert await after.acquire()

        assert not [r for r in caplog.records if "dispatcher lease" in r.message]
        await store_a.close()
        await store_again.close()

    run(scenario())


def test_the_preferred_region_takes_the_lease_back_from_another_region(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        path = tmp_path / "s.sqlite3"
        stores = [await open_store(path) for _ in range(3)]
        clock = Clock()
        # App Service spells REGION_NAME "West Europe"; Bicep says westeurope.
        secondary = lease(stores[0], clock, "b-1:1", "North Europe", "westeurope")
        primary = lease(stores[1], clock, "a-1:1", "West Europe", "westeurope")
        primary_too = lease(stores[2], clock, "a-2:1", "West Europe", "westeurope")
        assert await secondary.acquire()  # the primary region was down

        clock.advance(2)
        assert await primary.acquire()  # back: takes it at once, not at expiry
        assert not await primary_too.acquire()  # same region: no tug of war
        assert not await secondary.acquire()

        doc = await stores[0].read(LEASES, LEASE_ID)
        assert doc["holder"] == "a-1:1@West Europe"
        for store in stores:
            await store.close()

    run(scenario())


def test_lease_settings_default_to_15_s_and_refuse_less_than_three_ticks() -> None:
    assert LeaseSettings.from_environ({}) == LeaseSettings(15.0, "", "")
    settings = LeaseSettings.from_environ(
        {
            "DURALANE_DISPATCHER_LEASE_SECONDS": "30",
            "REGION_NAME": "West Europe",
            "DURALANE_DISPATCHER_PREFERRED_REGION": "West Europe",
        }
    )
    assert settings == LeaseSettings(30.0, "West Europe", "West Europe")
    off = LeaseSettings.from_environ({"DURALANE_DISPATCHER_LEASE_SECONDS": "0"})
    assert not off.enabled
    with pytest.raises(ValueError, match="at least 6 s"):
        LeaseSettings.from_environ({"DURALANE_DISPATCHER_LEASE_SECONDS": "4"})
    with pytest.raises(ValueError, match="not a number"):
        LeaseSettings.from_environ({"DURALANE_DISPATCHER_LEASE_SECONDS": "15s"})


def test_a_start_that_keeps_failing_does_not_hold_back_later_fires(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        store = await open_store(tmp_path / "s.sqlite3")
        clock = Clock()
        holder = lease(store, clock, "host-a:1")
        schedule_id = await every_ten_seconds(store, clock)
        broken = f"sched-{schedule_id}-20260601T120010Z"

        class FailingStarter(RecordingStarter):
            async def start(self, spec: JobSpec) -> None:
                if spec.id == broken:
                    raise RuntimeError("this job cannot be submitted")
                await super().start(spec)

        starter = FailingStarter()
        clock.advance(35)
        report = await service.dispatch_tick(store, starter, clock, lease=holder)

        assert report.failed == [schedule_id]
        assert starter.started == [
            f"sched-{schedule_id}-20260601T1200{n}0Z" for n in (2, 3)
        ]
        doc = await store.read(service.SCHEDULES, schedule_id)
        assert [start["runId"] for start in doc["pending"]] == [broken]
        await store.close()

    run(scenario())
