"""A batch of orchestrator episodes, from the load through the commit.

An episode process runs whole batches: it reads its instances from the hub's
SQLite file, replays them with the SDK and commits every result in one
transaction of its own. The runtime's process, whose one interpreter lock
every hub, request and activity shares, only hands out instance ids and
learns from each episode's report what it made ready. With no episode
processes the same code runs on the hub's pool in the runtime's process.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field

from duralane.runtime.app import AppIndex
from duralane.runtime.episode import Instance, fail_instance, run_episode
from duralane.runtime.hubstore import (
    EpisodeRows,
    HubStore,
    LoadedInstance,
    OwnerGone,
    RunReplaced,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EpisodeBatch:
    """Which instances of a hub to run, as the runtime hands them out."""

    store_path: str
    hub: str
    instance_ids: list[str]
    now: float
    # The hub's priority: how urgently its commit waits for the write lock.
    priority: int = 0
    # Instances whose episodes crashed this many times: they fail instead.
    give_up: dict[str, int] = field(default_factory=dict)


@dataclass
class EpisodeReport:
    """What one instance's turn in a batch came to, for the runtime to act on.

    The runtime releases the instance, marks ready what the episode sent
    (arrived), wakes its activity dispatcher and logs the invocation.
    """

    instance_id: str
    # None when the commit is durable; otherwise the formatted error, and the
    # runtime retries the episode later (see HubWorker._crashed).
    crash: str | None = None
    ran: bool = False
    # (instance id, visible at) of each message the episode stored.
    arrived: list[tuple[str, float]] = field(default_factory=list)
    activities: int = 0
    # Due messages were left for another episode (more than one was chosen from).
    more: bool = False
    # Messages dropped because their instance does not exist.
    dropped: int = 0
    gave_up_after: int = 0
    # When the instance's earliest message that is not yet due becomes due: a
    # timer the ready set may not know of, after a restart or a lost report.
    next_due: float | None = None
    # For the invocation log: the instance as the episode left it.
    name: str = ""
    execution_id: str = ""
    status: str = ""
    created_at: float = 0.0
    updated_at: float = 0.0
    finished: bool = False
    ran_orchestrator: bool = False
    first_episode: bool = False
    error: str | None = None
    replay_ms: float = 0.0


def run_batch(
    index: AppIndex,
    store: HubStore,
    batch: EpisodeBatch,
    still_owner: Callable[[], bool] | None = None,
) -> list[EpisodeReport]:
    """Load, replay and commit a batch; one report per instance, in order.

    An episode that raises, or whose rows cannot be stored, is reported as a
    crash and changes nothing. still_owner is checked under the write lock
    (see HubStore.commit_episodes).
    """
    try:
        loads = store.load_many(batch.hub, batch.instance_ids, batch.now)
    except Exception as exc:
        crash = _formatted(exc)
        return [EpisodeReport(i, crash=crash) for i in batch.instance_ids]

    reports: list[EpisodeReport] = []
    stored: list[tuple[EpisodeReport, EpisodeRows]] = []
    orphans: list[int] = []
    for instance_id, loaded in zip(batch.instance_ids, loads, strict=True):
        report = EpisodeReport(instance_id, next_due=loaded.next_due)
        reports.append(report)
        if not loaded.pending:
            continue
        if loaded.instance is None:
            report.dropped = len(loaded.pending)
            orphans.extend(m.id for m in loaded.pending if m.id is not None)
            continue
        started = time.perf_counter()
        try:
            rows = _episode_rows(index, loaded, loaded.instance, batch, report)
        except Exception as exc:
            report.crash = _formatted(exc)
            continue
        report.replay_ms = (time.perf_counter() - started) * 1000
        stored.append((report, rows))

    _commit(store, batch, stored, orphans, still_owner)
    return reports


def _episode_rows(
    index: AppIndex,
    loaded: LoadedInstance,
    instance: Instance,
    batch: EpisodeBatch,
    report: EpisodeReport,
) -> EpisodeRows:
    """Run one episode, or fail an instance that crashed too often, as rows."""
    crashes = batch.give_up.get(instance.instance_id, 0)
    if crashes:
        report.gave_up_after = crashes
        result = fail_instance(
            instance,
            loaded.pending,
            batch.now,
            f"The runtime could not run an episode of instance "
            f"{instance.instance_id} after {crashes} attempts; see the runtime "
            "log for each attempt's error.",
            "",
        )
    else:
        entry = index.orchestrators.get(instance.name)
        handle = entry.call if entry else None
        result = run_episode(
            instance, loaded.history, loaded.pending, handle, batch.now
        )
    rows = EpisodeRows.of(result)
    _describe(report, loaded, rows)
    return rows


def _describe(report: EpisodeReport, loaded: LoadedInstance, rows: EpisodeRows) -> None:
    """Copy into the report what the runtime needs once the rows are stored."""
    instance = rows.instance
    report.arrived = [(m.instance_id, m.visible_at) for m in rows.messages]
    report.activities = len(rows.activities)
    report.more = bool(rows.consumed) and len(rows.consumed) < len(loaded.pending)
    report.name = instance.name
    report.execution_id = instance.execution_id
    report.status = instance.status
    report.created_at = instance.created_at
    report.updated_at = instance.updated_at
    report.finished = rows.finished
    report.ran_orchestrator = rows.ran_orchestrator
    report.first_episode = not loaded.history
    report.error = rows.error


def _commit(
    store: HubStore,
    batch: EpisodeBatch,
    stored: list[tuple[EpisodeReport, EpisodeRows]],
    orphans: list[int],
    still_owner: Callable[[], bool] | None,
) -> None:
    """Store the batch's rows; an episode whose rows fail is a crash, not a run.

    Messages for instances that do not exist (purged, or never created) are
    deleted in the same transaction: they have nowhere to go.
    """
    if not stored and not orphans:
        return
    try:
        errors = store.commit_episodes(
            batch.hub,
            [rows for _, rows in stored],
            drop=orphans,
            priority=batch.priority,
            still_owner=still_owner,
        )
    except OwnerGone:
        raise
    except Exception as exc:
        crash = _formatted(exc)
        for report, _ in stored:
            report.crash = crash
        return
    for (report, _), error in zip(stored, errors, strict=True):
        if error is None:
            report.ran = True
        elif isinstance(error, RunReplaced):
            # Nothing to retry: the new run's start makes the instance ready.
            logger.info("%s in hub %s", error, batch.hub)
        else:
            report.crash = _formatted(error)


def _formatted(error: BaseException) -> str:
    return "".join(traceback.format_exception(error)).strip()
