"""An episode that crashes inside the runtime is retried with backoff, then fails.

These drive a HubWorker in the test process, so a store error can be injected
where no HTTP request can reach.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from duralane.runtime import engine
from duralane.runtime.app import AppIndex, load_app
from duralane.runtime.batches import EpisodeBatch, EpisodeReport, run_batch
from duralane.runtime.engine import EpisodeProcesses, HubWorker
from duralane.runtime.hubstore import EpisodeRows, HubStore
from tests.runtime.harness import APPS, unique, wait_until

CRASH_APP = APPS / "crashes" / "crash_sample_app.py"
HUB = "CrashHub"


class PoisonedStore(HubStore):
    """Fails every commit of a 'poison' instance, except the one that fails it."""

    def commit_episodes(
        self, hub: str, episodes: list[EpisodeRows], **options: Any
    ) -> list[BaseException | None]:
        def poisoned(rows: EpisodeRows) -> bool:
            instance = rows.instance
            return instance.instance_id.startswith("poison") and (
                instance.status != "Failed"
            )

        healthy = [rows for rows in episodes if not poisoned(rows)]
        errors = iter(super().commit_episodes(hub, healthy, **options))
        injected = sqlite3.OperationalError("disk I/O error (injected)")
        return [injected if poisoned(rows) else next(errors) for rows in episodes]


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the retry pattern but not its seconds."""
    monkeypatch.setattr(engine, "CRASH_BACKOFF_SECONDS", 0.01)


def status(store: HubStore, instance_id: str) -> str | None:
    instance = store.get_instance(HUB, instance_id)
    return instance.status if instance else None


@functools.cache
def crash_app() -> AppIndex:
    """The app's index, built once: indexing an imported app twice fails."""
    return load_app(CRASH_APP)


def running_worker(
    store: HubStore, processes: EpisodeProcesses | None = None
) -> Iterator[HubWorker]:
    loop = asyncio.new_event_loop()  # the app has no async activities to run
    worker = HubWorker(
        HUB,
        store,
        crash_app(),
        loop,
        max_orchestrations=4,
        max_activities=4,
        client_factory=lambda entry: {},
        processes=processes,
    )
    worker.start()
    try:
        yield worker
    finally:
        worker.stop()
        if processes is not None:
            processes.stop()
        store.stop_writer()
        store.close()
        loop.close()


def test_store_error_is_retried_with_backoff_then_fails_the_instance(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A poisoned instance fails after a few logged tries; others carry on."""
    caplog.set_level(logging.ERROR, logger=engine.__name__)
    store = PoisonedStore(tmp_path / "runtime.sqlite3")
    poison, healthy = unique("poison"), unique("healthy")
    for worker in running_worker(store):
        worker.start_instance("echo_orchestrator", poison, '"p"')
        worker.start_instance("echo_orchestrator", healthy, '"h"')

        wait_until(
            lambda: (
                status(store, poison) == "Failed"
                and status(store, healthy) == "Completed"
            ),
            timeout=30,
            what="the poisoned instance to fail and the healthy one to complete",
            detail=lambda: f"{status(store, poison)}, {status(store, healthy)}",
        )
        failed = store.get_instance(HUB, poison)

    crashes = [r for r in caplog.records if poison in r.getMessage()]
    assert len(crashes) == engine.CRASH_ATTEMPTS
    assert "disk I/O error (injected)" in crashes[0].getMessage()
    assert failed is not None and failed.output is not None
    reason = json.loads(failed.output)["message"]
    assert f"after {engine.CRASH_ATTEMPTS} attempts" in reason


def test_dead_episode_process_is_replaced_and_its_instance_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An orchestrator that kills its process cannot take the runtime down."""
    monkeypatch.setattr(engine, "CRASH_ATTEMPTS", 2)
    store = HubStore(tmp_path / "runtime.sqlite3")
    killer, healthy = unique("killer"), unique("healthy")
    processes = EpisodeProcesses(CRASH_APP, 1)
    for worker in running_worker(store, processes):
        worker.start_instance("process_killer", killer, None)
        wait_until(
            lambda: status(store, killer) == "Failed",
            timeout=60,
            what="the instance that kills its process to fail",
            detail=lambda: str(status(store, killer)),
        )
        worker.start_instance("echo_orchestrator", healthy, '"h"')
        wait_until(
            lambda: status(store, healthy) == "Completed",
            timeout=60,
            what="a new episode process to complete the next instance",
            detail=lambda: str(status(store, healthy)),
        )


class DiesAfterItsFirstCommit:
    """One episode process whose first batch commits, then dies before it reports."""

    processes = 1

    def __init__(self, store: HubStore) -> None:
        self.store = store
        self.died = False

    def run(self, batch: EpisodeBatch) -> list[EpisodeReport]:
        reports = run_batch(crash_app(), self.store, batch)
        if not self.died:
            self.died = True
            raise RuntimeError("the episode process died: EOFError()")
        return reports

    def stop(self) -> None:
        pass


def test_messages_a_dead_process_committed_but_never_reported_are_delivered(
    tmp_path: Path,
) -> None:
    """The parent's first episode stores its child's start, then its process
    dies; the runtime finds the stored start, so the child and then the
    parent complete."""
    store = HubStore(tmp_path / "runtime.sqlite3")
    parent = unique("parent")
    processes: Any = DiesAfterItsFirstCommit(store)
    for worker in running_worker(store, processes):
        worker.start_instance("echo_parent", parent, '"p"')
        wait_until(
            lambda: status(store, parent) == "Completed",
            timeout=30,
            what="the parent to complete through its child",
            detail=lambda: str(status(store, parent)),
        )
        finished = store.get_instance(HUB, parent)

    assert processes.died
    assert finished is not None and json.loads(finished.output or "null") == "p"
