"""Hubs share the store's writer and the episode processes, higher priority first."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from duralane.runtime.app import AppIndex
from duralane.runtime.batches import EpisodeBatch, EpisodeReport
from duralane.runtime.config import load_host_config
from duralane.runtime.engine import EpisodeProcesses, HubWorker
from duralane.runtime.hubstore import HubStore
from duralane.urgency import Urgency
from tests.runtime.harness import unique, wait_until

BACKLOG = 500


def test_a_high_hub_write_skips_the_low_hubs_backlog(tmp_path: Path) -> None:
    """Queued behind a busy writer, a high hub's write commits before the backlog."""
    store = HubStore(tmp_path / "runtime.sqlite3")
    store.priorities.update({"High": 2, "Low": 0})
    busy = threading.Event()
    release = threading.Event()
    committed: list[str] = []

    def hold(db: Any) -> None:
        busy.set()
        release.wait(10)

    store.write(hold, hub="Low")
    assert busy.wait(10)

    def note(name: str) -> Callable[[], None]:
        return lambda: committed.append(name)

    for n in range(BACKLOG):
        store.write(lambda db: None, note(f"low-{n}"), hub="Low")
    store.write(lambda db: None, note("high"), hub="High")
    release.set()

    wait_until(
        lambda: len(committed) == BACKLOG + 1, timeout=10, what="every write committed"
    )
    assert committed.index("high") == 0
    # One hub's writes keep their order.
    assert committed[1:] == [f"low-{n}" for n in range(BACKLOG)]
    store.stop_writer()
    store.close()


class HeldProcess:
    """A stand-in episode process whose batches wait for the test's go-ahead."""

    def __init__(self) -> None:
        self.ran: list[str] = []
        self.running = threading.Event()
        self.go = threading.Event()

    def run(self, batch: EpisodeBatch) -> list[EpisodeReport]:
        self.running.set()
        self.go.wait(10)
        self.ran.append(batch.hub)
        return []


def test_an_idle_episode_process_goes_to_the_highest_priority_batch() -> None:
    """A high hub's batch runs before low batches that were waiting longer."""
    processes = EpisodeProcesses(Path("unused.py"), 1)
    held = HeldProcess()
    # Lend the stand-in instead of starting real processes.
    processes._all.append(held)  # type: ignore[arg-type]
    processes._lender.add(held)  # type: ignore[arg-type]

    def batch(name: str, priority: int) -> threading.Thread:
        job = EpisodeBatch("unused.sqlite3", name, [], 0.0, priority)
        thread = threading.Thread(target=processes.run, args=(job,))
        thread.start()
        return thread

    threads = [batch("low-first", 0)]
    assert held.running.wait(10)
    threads += [batch(f"low-{n}", 0) for n in range(5)]
    wait_until(
        lambda: processes._lender.waiting() == 5,
        timeout=10,
        what="five low batches wait",
    )
    threads.append(batch("high", 2))
    wait_until(
        lambda: processes._lender.waiting() == 6,
        timeout=10,
        what="the high batch waits",
    )
    held.go.set()
    for thread in threads:
        thread.join(10)

    assert held.ran == ["low-first", "high", *[f"low-{n}" for n in range(5)]]


def test_task_hub_priority_is_read_from_host_json(tmp_path: Path) -> None:
    """taskHubs[].priority sets a hub's priority; a hub without one gets 0."""
    hubs = [{"name": "Urgent", "priority": 2}, {"name": "Plain"}]
    document = {"extensions": {"duralane": {"taskHubs": hubs}}}
    (tmp_path / "host.json").write_text(json.dumps(document))

    config = load_host_config(tmp_path)

    assert [hub.priority for hub in config.hubs] == [2, 0]


def _low_and_high_hubs(
    store: HubStore,
    index: AppIndex,
    loop: asyncio.AbstractEventLoop,
    **options: Any,
) -> dict[str, HubWorker]:
    """Started workers for LowHub (priority 0) and HighHub (2), one slot each."""
    workers = {
        hub: HubWorker(
            hub,
            store,
            index,
            loop,
            max_orchestrations=1,
            max_activities=1,
            client_factory=lambda entry: {},
            priority=priority,
            **options,
        )
        for hub, priority in (("LowHub", 0), ("HighHub", 2))
    }
    for worker in workers.values():
        worker.start()
    return workers


def test_a_high_hub_instance_completes_before_a_low_hubs_backlog(
    tmp_path: Path,
) -> None:
    """Sharing one episode process, a new high instance overtakes a low backlog."""
    # Imported here: the crash app may be indexed only once per session.
    from tests.runtime.test_episode_crashes import CRASH_APP, crash_app

    store = HubStore(tmp_path / "runtime.sqlite3")
    processes = EpisodeProcesses(CRASH_APP, 1)
    loop = asyncio.new_event_loop()  # the app has no async activities to run
    workers = _low_and_high_hubs(store, crash_app(), loop, processes=processes)
    backlog = [unique("low") for _ in range(BACKLOG // 2)]
    try:
        for instance_id in backlog:
            workers["LowHub"].start_instance("echo_orchestrator", instance_id, '"x"')

        def completed(hub: str, instance_ids: list[str]) -> int:
            return sum(
                1
                for instance_id in instance_ids
                if (found := store.get_instance(hub, instance_id)) is not None
                and found.status == "Completed"
            )

        # The backlog must be flowing, so the high instance competes with it.
        wait_until(
            lambda: completed("LowHub", backlog) >= 5,
            timeout=60,
            what="the low hub to work through its backlog",
        )
        high = unique("high")
        workers["HighHub"].start_instance("echo_orchestrator", high, '"x"')
        wait_until(
            lambda: completed("HighHub", [high]) == 1,
            timeout=60,
            what="the high hub's instance to complete",
        )
        # Counted from the stored completion times, not when the poll above
        # noticed: on a fast machine the backlog moves on between polls.
        high_done = store.get_instance("HighHub", high)
        assert high_done is not None
        finished_before_high = sum(
            1
            for instance_id in backlog
            if (found := store.get_instance("LowHub", instance_id)) is not None
            and found.status == "Completed"
            and found.updated_at <= high_done.updated_at
        )
    finally:
        for worker in workers.values():
            worker.stop()
        processes.stop()
        store.stop_writer()
        store.close()
        loop.close()

    assert finished_before_high < len(backlog) // 2


def test_a_low_hub_waits_while_urgent_work_starts_and_goes_on_when_it_has(
    tmp_path: Path,
) -> None:
    """Urgent work at priority 2 in flight: the low hub's instance waits at its
    first episode, the high hub's runs; once the work ends, the low one runs."""
    from tests.runtime.test_episode_crashes import crash_app

    urgency = Urgency(switch_seconds=None, hold_seconds=60)
    store = HubStore(tmp_path / "runtime.sqlite3")
    loop = asyncio.new_event_loop()  # the app has no async activities to run
    workers = _low_and_high_hubs(store, crash_app(), loop, urgency=urgency)

    def status(hub: str, instance_id: str) -> str | None:
        found = store.get_instance(hub, instance_id)
        return found.status if found else None

    low, high = unique("urgent-low"), unique("urgent-high")
    try:
        urgency.begin("a-high-job", 2, seconds=60)
        workers["LowHub"].start_instance("echo_orchestrator", low, '"x"')
        workers["HighHub"].start_instance("echo_orchestrator", high, '"x"')
        wait_until(
            lambda: status("HighHub", high) == "Completed",
            timeout=60,
            what="the high hub's instance to complete",
        )
        assert status("LowHub", low) == "Pending", "the low hub did not wait"

        urgency.end("a-high-job")
        wait_until(
            lambda: status("LowHub", low) == "Completed",
            timeout=60,
            what="the low hub's instance to complete once nothing is urgent",
        )
    finally:
        urgency.clear()
        for worker in workers.values():
            worker.stop()
        store.stop_writer()
        store.close()
        loop.close()


def test_one_hubs_commits_leave_another_hubs_dispatcher_asleep(
    tmp_path: Path,
) -> None:
    """The writer wakes only the dispatchers of hubs a batch gave work to."""
    from tests.runtime.test_episode_crashes import crash_app

    store = HubStore(tmp_path / "runtime.sqlite3")
    loop = asyncio.new_event_loop()  # the app has no async activities to run
    workers = _low_and_high_hubs(store, crash_app(), loop)
    high_signal = workers["HighHub"]._episode_signal
    woken: list[int] = []
    wake = high_signal.set

    def noting_wake() -> None:
        woken.append(1)
        wake()

    high_signal.set = noting_wake  # type: ignore[method-assign]
    instance_ids = [unique("asleep-low") for _ in range(20)]
    try:
        for instance_id in instance_ids:
            workers["LowHub"].start_instance("echo_orchestrator", instance_id, '"x"')
        wait_until(
            lambda: all(
                (found := store.get_instance("LowHub", i)) is not None
                and found.status == "Completed"
                for i in instance_ids
            ),
            timeout=60,
            what="the low hub's instances to complete",
        )
        assert woken == [], "the low hub's commits woke the high hub's dispatcher"

        high = unique("asleep-high")
        workers["HighHub"].start_instance("echo_orchestrator", high, '"x"')
        wait_until(
            lambda: (
                (found := store.get_instance("HighHub", high)) is not None
                and found.status == "Completed"
            ),
            timeout=60,
            what="the high hub's own work to wake it",
        )
        assert woken, "its own commits did not wake the high hub's dispatcher"
    finally:
        for worker in workers.values():
            worker.stop()
        store.stop_writer()
        store.close()
        loop.close()
