"""Urgent store calls overtake queued ones, in the pool and in the SQLite store."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

import pytest

from duralane import sqlite_busy
from duralane.jobs.model import parse_job_spec
from duralane.lending import PriorityLender
from duralane.store import sqlite
from duralane.store.priority import PriorityWorkers, current_priority, store_priority
from duralane.store.sqlite import SqliteStore
from duralane.urgency import Urgency
from triggers import submission
from triggers.submission import submit_and_start

WAIT_SECONDS = 10


def test_waiting_calls_run_highest_priority_first_then_in_arrival_order() -> None:
    """One busy thread, five queued calls: the order they run in is the point."""
    workers = PriorityWorkers(1, "test-order")
    running = threading.Event()
    release = threading.Event()
    ran: list[str] = []

    def block() -> None:
        running.set()
        release.wait(WAIT_SECONDS)

    blocker = workers.submit(0, block)
    assert running.wait(WAIT_SECONDS), "the only thread never took the blocker"

    queued = [
        workers.submit(priority, lambda name=name: ran.append(name))
        for name, priority in [
            ("low-1", 0),
            ("high-1", 2),
            ("low-2", 0),
            ("normal", 1),
            ("high-2", 2),
        ]
    ]
    release.set()
    for future in [blocker, *queued]:
        future.result(WAIT_SECONDS)
    workers.shutdown()

    assert ran == ["high-1", "high-2", "normal", "low-1", "low-2"]


def test_a_failing_call_raises_through_its_future_and_the_thread_goes_on() -> None:
    workers = PriorityWorkers(1, "test-errors")

    def broken() -> None:
        raise ValueError("disk on fire")

    failed = workers.submit(0, broken)
    after = workers.submit(0, lambda: "still serving")

    with pytest.raises(ValueError, match="disk on fire"):
        failed.result(WAIT_SECONDS)
    assert after.result(WAIT_SECONDS) == "still serving"
    workers.shutdown()


def test_shutdown_finishes_queued_calls_and_then_refuses_new_ones() -> None:
    workers = PriorityWorkers(2, "test-shutdown")
    release = threading.Event()
    busy = [workers.submit(0, lambda: release.wait(WAIT_SECONDS)) for _ in range(2)]
    queued = [workers.submit(0, lambda i=i: i) for i in range(5)]

    release.set()
    workers.shutdown()

    assert all(future.done() for future in busy)
    assert [future.result(0) for future in queued] == [0, 1, 2, 3, 4]
    with pytest.raises(RuntimeError, match="shut down"):
        workers.submit(0, lambda: None)


def test_a_priority_block_applies_to_its_tasks_and_ends_with_the_block() -> None:
    async def inside() -> tuple[int, int, int]:
        with store_priority(2):
            child = await asyncio.create_task(asyncio.sleep(0, current_priority()))
            with store_priority(1):
                nested = current_priority()
        return child, nested, current_priority()

    assert asyncio.run(inside()) == (2, 1, 0)


def test_sqlite_store_serves_a_high_priority_create_before_queued_low_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store's thread busy, a low flood queued: the high create comes first."""
    # One thread, so the order calls are taken in is the order they finish in.
    monkeypatch.setattr(sqlite, "WORKER_THREADS", 1)

    async def scenario() -> list[str]:
        store = SqliteStore(tmp_path / "state.sqlite3")
        await store.open()
        running = threading.Event()
        release = threading.Event()

        def block() -> None:
            running.set()
            release.wait(WAIT_SECONDS)

        busy = store._workers.submit(0, block)
        assert running.wait(WAIT_SECONDS), "the store's thread never took the blocker"
        done: list[str] = []

        async def create(job_id: str) -> None:
            await store.create("jobs", _job_doc(job_id))
            done.append(job_id)

        lows = [asyncio.create_task(create(f"low-{i}")) for i in range(10)]
        await asyncio.sleep(0)  # the lows are queued first
        with store_priority(2):
            high = asyncio.create_task(create("high"))
        await asyncio.sleep(0)
        release.set()
        await asyncio.wait_for(asyncio.gather(*lows, high), WAIT_SECONDS)
        busy.result(0)
        await store.close()
        return done

    done = asyncio.run(scenario())

    assert done[0] == "high"
    assert sorted(done[1:]) == [f"low-{i}" for i in range(10)]


class RecordingStarts:
    """A durable client that only notes what it was asked to start."""

    def __init__(self) -> None:
        self.started: list[str] = []

    async def start_new(self, name: str, instance_id: str, payload: object) -> str:
        self.started.append(instance_id)
        return instance_id


class PriorityNotingStore(SqliteStore):
    """A real SQLite store that notes the priority each create was made at."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.create_priorities: list[int] = []

    async def create(self, container: str, doc: dict[str, object]) -> dict[str, object]:
        self.create_priorities.append(current_priority())
        return await super().create(container, doc)

    async def create_all(
        self, records: list[tuple[str, dict[str, object]]]
    ) -> list[dict[str, object]]:
        self.create_priorities.append(current_priority())
        return await super().create_all(records)


@pytest.mark.parametrize(("lane", "priority"), [("high", 2), ("normal", 1), ("low", 0)])
def test_a_submission_stores_its_job_at_its_lanes_priority(
    tmp_path: Path, lane: str, priority: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A high job would stay urgent in the process's own Urgency after the test.
    monkeypatch.setattr(submission, "urgent_work", Urgency(switch_seconds=None))

    async def scenario() -> tuple[list[int], list[str], int]:
        store = PriorityNotingStore(tmp_path / "state.sqlite3")
        await store.open()
        client = RecordingStarts()
        spec = parse_job_spec(
            f'{{"id": "prio-{lane}", "kind": "http", "lane": "{lane}",'
            ' "params": {"url": "https://example.com/"}}'
        )
        await submit_and_start(store, spec, client)  # type: ignore[arg-type]
        after = current_priority()
        await store.close()
        return store.create_priorities, client.started, after

    priorities, started, after = asyncio.run(scenario())

    assert priorities and set(priorities) == {priority}
    assert len(started) == 1
    assert after == 0


def _job_doc(job_id: str) -> dict[str, object]:
    return {"id": job_id, "jobId": job_id, "status": "queued", "lane": "low"}


class RecordingLock(PriorityLender[str]):
    """The real lock, noting the priority of each write that takes it."""

    def __init__(self) -> None:
        super().__init__(["token"])
        self.priorities: list[int] = []

    def lent(self, priority: int = 0):  # type: ignore[no-untyped-def]
        self.priorities.append(priority)
        return super().lent(priority)


def test_store_instances_on_one_file_share_a_write_lock_taken_at_the_callers_priority(
    tmp_path: Path,
) -> None:
    """One store per event loop: their writers must queue together, by lane."""
    path = tmp_path / "state.sqlite3"
    one, other = SqliteStore(path), SqliteStore(tmp_path / "." / "state.sqlite3")
    elsewhere = SqliteStore(tmp_path / "other.sqlite3")
    assert one._write_lock is other._write_lock
    assert one._write_lock is not elsewhere._write_lock

    async def scenario() -> list[int]:
        store = SqliteStore(tmp_path / "recorded.sqlite3")
        recording = RecordingLock()
        store._write_lock = recording
        await store.open()
        await store.create("jobs", _job_doc("plain"))
        with store_priority(2):
            await store.create("jobs", _job_doc("urgent"))
        await store.close()
        return recording.priorities

    priorities = asyncio.run(scenario())

    assert priorities[-2:] == [0, 2]


@pytest.mark.parametrize(
    ("priority", "pauses"),
    [
        (2, [0.0001, 0.0002, 0.0004, 0.0005, 0.0005]),
        (0, [0.001, 0.002, 0.004, 0.008, 0.01]),
    ],
)
def test_a_write_held_off_by_another_process_retries_on_its_prioritys_pauses(
    tmp_path: Path, priority: int, pauses: list[float]
) -> None:
    """Another connection (as another process's would) holds the write lock.

    The write must not wait in SQLite's busy handler, whose sleeps grow to
    100 ms, but retry on short pauses, shorter for an urgent lane, and begin
    once the other write commits.
    """
    path = tmp_path / "state.sqlite3"
    mine = sqlite3.connect(path, isolation_level=None)
    mine.execute("PRAGMA journal_mode=WAL")
    mine.execute("PRAGMA busy_timeout = 0")  # as the store's connections run
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    slept: list[float] = []

    def pause(seconds: float) -> None:
        slept.append(seconds)
        if len(slept) == len(pauses):
            other.execute("COMMIT")

    sqlite.begin_write(mine, priority, sleep=pause)

    assert slept == pauses
    assert mine.in_transaction
    mine.execute("ROLLBACK")


def test_a_write_held_off_past_the_busy_timeout_is_store_unavailable(
    tmp_path: Path,
) -> None:
    """The retries stop at BUSY_TIMEOUT_SECONDS, on a clock the pauses move."""
    path = tmp_path / "state.sqlite3"
    asyncio.run(_create_then_close(SqliteStore(path), "first"))
    mine = sqlite3.connect(path, isolation_level=None)
    mine.execute("PRAGMA busy_timeout = 0")
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    now = [1000.0]

    def pause(seconds: float) -> None:
        now[0] += seconds

    with pytest.raises(sqlite3.OperationalError, match="locked"):
        sqlite.begin_write(mine, 2, sleep=pause, clock=lambda: now[0])

    assert now[0] - 1000.0 == pytest.approx(sqlite_busy.BUSY_TIMEOUT_SECONDS, abs=0.001)
    assert not mine.in_transaction
    other.execute("ROLLBACK")


def test_a_store_write_goes_through_once_another_process_commits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through the store: a lock held elsewhere delays the create, loses nothing."""
    path = tmp_path / "state.sqlite3"
    asyncio.run(_create_then_close(SqliteStore(path), "first"))
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    pauses: list[float] = []
    begin = sqlite.begin_write

    def first_pause_ends_the_other_write(seconds: float) -> None:
        pauses.append(seconds)
        if other.in_transaction:
            other.execute("COMMIT")

    def begin_write(connection: sqlite3.Connection, priority: int) -> None:
        begin(connection, priority, sleep=first_pause_ends_the_other_write)

    monkeypatch.setattr(sqlite, "begin_write", begin_write)
    store = SqliteStore(path)

    async def held_off() -> None:
        await store.open()
        other.execute("BEGIN IMMEDIATE")
        with store_priority(2):
            await store.create("jobs", _job_doc("second"))
        await store.close()

    asyncio.run(held_off())

    # Had the store's connection kept SQLite's busy handler, the BEGIN would
    # have slept in it instead, and never paused here.
    assert pauses == [sqlite_busy.WRITE_RETRY_PAUSES[2][0]]
    found = sqlite3.connect(path).execute("SELECT count(*) FROM jobs").fetchone()
    assert found == (2,)


async def _create_then_close(store: SqliteStore, job_id: str) -> None:
    await store.open()
    await store.create("jobs", _job_doc(job_id))
    await store.close()
