"""Hubs share the store's writer and the episode processes, higher priority first."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from duralane.runtime.config import load_host_config
from duralane.runtime.engine import EpisodeJob, EpisodeOutcome, EpisodeProcesses
from duralane.runtime.hubstore import HubStore
from tests.runtime.harness import wait_until

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

    def run(self, jobs: list[EpisodeJob]) -> list[EpisodeOutcome]:
        self.running.set()
        self.go.wait(10)
        self.ran.append(str(jobs[0]))
        return []


def test_an_idle_episode_process_goes_to_the_highest_priority_batch() -> None:
    """A high hub's batch runs before low batches that were waiting longer."""
    processes = EpisodeProcesses(Path("unused.py"), 1)
    held = HeldProcess()
    # Lend the stand-in instead of starting real processes.
    processes._all.append(held)  # type: ignore[arg-type]
    processes._idle.append(held)  # type: ignore[arg-type]

    def batch(name: str, priority: int) -> threading.Thread:
        job: Any = [name]
        thread = threading.Thread(target=processes.run, args=(job, priority))
        thread.start()
        return thread

    threads = [batch("low-first", 0)]
    assert held.running.wait(10)
    threads += [batch(f"low-{n}", 0) for n in range(5)]
    wait_until(
        lambda: len(processes._waiting) == 5, timeout=10, what="five low batches wait"
    )
    threads.append(batch("high", 2))
    wait_until(
        lambda: len(processes._waiting) == 6, timeout=10, what="the high batch waits"
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
