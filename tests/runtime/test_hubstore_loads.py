"""The hub store's reads and creates: batch loads, and ids taken or free again."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from duralane.runtime.episode import (
    ActivityWork,
    EpisodeResult,
    Instance,
    Message,
    run_episode,
    started_event,
)
from duralane.runtime.history import EventType, event
from duralane.runtime.hubstore import HubStore, InstanceExists, RunReplaced

HUB = "LoadHub"


def _create(store: HubStore, instance_id: str, now: float) -> None:
    instance = Instance(instance_id, "echo", "exec-1", input='"x"', created_at=now)
    moment = datetime.fromtimestamp(now).astimezone()
    started = Message(instance_id, started_event(instance, moment), now, "exec-1")
    store.create_instance(HUB, instance, started)


def _complete(store: HubStore, instance_id: str, now: float) -> None:
    """Run the episode that completes an instance, consuming its due messages."""
    loaded = store.load(HUB, instance_id, now)
    assert loaded.instance is not None
    loaded.instance.status = "Completed"
    moment = datetime.fromtimestamp(now).astimezone()
    store.commit_episode(
        HUB,
        EpisodeResult(
            instance=loaded.instance,
            consumed=[m.id for m in loaded.pending if m.id is not None],
            new_history=[event(EventType.EXECUTION_COMPLETED, moment)],
            finished=True,
        ),
    )


def _raise(store: HubStore, instance_id: str, name: str, visible_at: float) -> None:
    moment = datetime.fromtimestamp(visible_at).astimezone()
    raised = event(EventType.EVENT_RAISED, moment, Name=name, Input='"v"')
    store.enqueue(HUB, [Message(instance_id, raised, visible_at)])


def test_a_batch_load_matches_single_loads_message_for_message(tmp_path: Path) -> None:
    """Due messages per instance in stored order, later ones left out but for
    when they come due, and an id with messages but no instance loads as None
    with its messages."""
    store = HubStore(tmp_path / "runtime.sqlite3")
    now = time.time()
    try:
        for instance_id in ("load-a", "load-b", "load-c"):
            _create(store, instance_id, now)
        _raise(store, "load-a", "first", now)
        _raise(store, "load-c", "due", now)
        _raise(store, "load-c", "later", now + 3600)
        _raise(store, "load-orphan", "nobody", now)
        _raise(store, "load-a", "second", now)
        ids = ["load-c", "load-missing", "load-a", "load-orphan", "load-b"]

        batch = store.load_many(HUB, ids, now + 1)
        alone = [store.load(HUB, instance_id, now + 1) for instance_id in ids]
    finally:
        store.stop_writer()
        store.close()

    assert batch == alone

    started = "started"

    def names(index: int) -> list[str]:
        """The raised events' names; the ExecutionStarted message as "started"."""
        raised = EventType.EVENT_RAISED
        return [
            m.event["Name"] if m.event["EventType"] == raised else started
            for m in batch[index].pending
        ]

    assert names(0) == [started, "due"], "the later message was not left out"
    assert batch[1].instance is None and batch[1].pending == []
    assert names(2) == [started, "first", "second"], "not in stored order"
    assert batch[3].instance is None and names(3) == ["nobody"]
    assert batch[4].instance is not None and names(4) == [started]
    assert [m.id for m in batch[2].pending] == sorted(m.id for m in batch[2].pending)
    assert [loaded.next_due for loaded in batch] == [now + 3600, *[None] * 4]


def test_creating_over_a_finished_instance_starts_it_afresh(tmp_path: Path) -> None:
    """A running id is refused; a finished one is replaced, old history and all."""
    store = HubStore(tmp_path / "runtime.sqlite3")
    now = time.time()
    try:
        _create(store, "create-a", now)
        with pytest.raises(InstanceExists):
            _create(store, "create-a", now)

        _complete(store, "create-a", now + 1)
        assert store.load(HUB, "create-a", now + 1).pending == []
        assert len(store.history(HUB, "create-a")) == 1

        _create(store, "create-a", now + 2)
        again = store.load(HUB, "create-a", now + 3)
    finally:
        store.stop_writer()
        store.close()

    assert again.instance is not None and again.instance.status == "Pending"
    assert again.history == [], "the finished run's history survived"
    assert [m.event["EventType"] for m in again.pending] == [
        EventType.EXECUTION_STARTED
    ]


def test_a_batch_load_reads_every_history_in_one_statement_and_sees_commits(
    tmp_path: Path,
) -> None:
    """Three statements load any number of instances, histories included, and
    a load after an episode's commit sees the events it stored."""
    store = HubStore(tmp_path / "runtime.sqlite3")
    now = time.time()
    ids = [f"fresh-{n}" for n in range(5)]
    statements: list[str] = []
    try:
        for instance_id in ids:
            _create(store, instance_id, now)
        store._connection().set_trace_callback(statements.append)
        first = store.load_many(HUB, ids, now + 1)
        store._connection().set_trace_callback(None)

        moment = datetime.fromtimestamp(now + 1).astimezone()
        for loaded in first[:2]:
            assert loaded.instance is not None
            store.commit_episode(
                HUB,
                EpisodeResult(
                    instance=loaded.instance,
                    consumed=[m.id for m in loaded.pending if m.id is not None],
                    new_history=[event(EventType.ORCHESTRATOR_STARTED, moment)],
                ),
            )
        second = store.load_many(HUB, ids, now + 2)
    finally:
        store.stop_writer()
        store.close()

    reads = [s for s in statements if s.startswith("SELECT")]
    assert len(reads) == 3, reads
    assert [loaded.history for loaded in first] == [[]] * 5
    started = [e["EventType"] for e in map(json.loads, second[0].history)]
    assert started == [EventType.ORCHESTRATOR_STARTED]
    assert [len(loaded.history) for loaded in second] == [1, 1, 0, 0, 0]


def test_a_fan_out_episode_stores_its_thousand_rows_of_each_kind_in_order(
    tmp_path: Path,
) -> None:
    """History, timer messages and activity work of one wide episode all land,
    and read back in the order the episode made them."""
    store = HubStore(tmp_path / "runtime.sqlite3")
    now = time.time()
    moment = datetime.fromtimestamp(now).astimezone()
    width = 1000
    try:
        _create(store, "wide-a", now)
        loaded = store.load(HUB, "wide-a", now + 1)
        assert loaded.instance is not None
        scheduled = [
            event(EventType.TASK_SCHEDULED, moment, task, Name="echo", Input="1")
            for task in range(width)
        ]
        work = [
            ActivityWork("wide-a", "exec-1", task, "echo", str(task))
            for task in range(width)
        ]
        timers = [
            Message("wide-a", event(EventType.TIMER_FIRED, moment, TimerId=t), now)
            for t in range(width)
        ]
        store.commit_episode(
            HUB,
            EpisodeResult(
                instance=loaded.instance,
                consumed=[m.id for m in loaded.pending if m.id is not None],
                new_history=scheduled,
                messages=timers,
                activities=work,
            ),
        )
        history = store.history(HUB, "wide-a")
        claimed = store.claim_activities(HUB, 0, width + 1)
        again = store.load(HUB, "wide-a", now + 1)
    finally:
        store.stop_writer()
        store.close()

    assert [e["EventId"] for e in history] == list(range(width))
    assert [w.task_id for w in claimed] == list(range(width))
    assert [m.event["TimerId"] for m in again.pending] == list(range(width))


def test_an_episodes_events_are_one_history_row_and_read_back_one_by_one(
    tmp_path: Path,
) -> None:
    """One row per episode, its events one per line (a newline in a value is
    escaped in JSON); rows of the older form, one event each, read the same."""
    path = tmp_path / "runtime.sqlite3"
    store = HubStore(path)
    now = time.time()
    moment = datetime.fromtimestamp(now).astimezone()
    episode = [
        event(EventType.ORCHESTRATOR_STARTED, moment),
        event(EventType.TASK_SCHEDULED, moment, 0, Name="two\nlines", Input='"a\\nb"'),
        event(EventType.TASK_SCHEDULED, moment, 1, Name="echo", Input="2"),
        event(EventType.ORCHESTRATOR_COMPLETED, moment),
    ]
    older = [
        event(EventType.ORCHESTRATOR_STARTED, moment),
        event(EventType.TASK_COMPLETED, moment, TaskScheduledId=0, Result="1"),
    ]
    try:
        _create(store, "rows-a", now)
        loaded = store.load(HUB, "rows-a", now + 1)
        assert loaded.instance is not None
        store.commit_episode(
            HUB,
            EpisodeResult(
                instance=loaded.instance,
                consumed=[m.id for m in loaded.pending if m.id is not None],
                new_history=episode,
            ),
        )
        with store.transaction() as db:
            db.executemany(
                "INSERT INTO history (hub, instance_id, seq, event) VALUES (?,?,?,?)",
                [
                    (HUB, "rows-a", len(episode) + n, json.dumps(e))
                    for n, e in enumerate(older)
                ],
            )
        seqs = store._connection().execute(
            "SELECT seq FROM history WHERE hub=? AND instance_id=?", (HUB, "rows-a")
        )
        rows = [seq for (seq,) in seqs]
    finally:
        store.stop_writer()
        store.close()
    reopened = HubStore(path)
    try:
        history = reopened.history(HUB, "rows-a")
    finally:
        reopened.close()

    assert rows == [0, 4, 5]
    assert history == json.loads(json.dumps(episode + older))


def test_starts_awaited_on_a_loop_settle_together_and_a_taken_id_refuses_alone(
    tmp_path: Path,
) -> None:
    """Waiters of one batch settle in one loop callback; a running id's create
    raises InstanceExists to its own waiter only, and a cancelled waiter is
    left as it is."""
    store = HubStore(tmp_path / "runtime.sqlite3")
    now = time.time()
    _create(store, "loop-taken", now)

    def new(instance_id: str) -> tuple[Instance, Message]:
        instance = Instance(instance_id, "echo", "exec-2", created_at=now)
        moment = datetime.fromtimestamp(now).astimezone()
        return instance, Message(instance_id, started_event(instance, moment), now)

    async def start_all() -> tuple[list[object], int]:
        loop = asyncio.get_running_loop()
        wake_ups = 0
        real_call_soon_threadsafe = loop.call_soon_threadsafe

        def counting(*args: Any, **kwargs: Any) -> asyncio.Handle:
            nonlocal wake_ups
            wake_ups += 1
            return real_call_soon_threadsafe(*args, **kwargs)

        loop.call_soon_threadsafe = counting  # type: ignore[method-assign]
        # Hold the writer so that all four writes go into one batch.
        gate = threading.Event()
        store.write(lambda db: gate.wait(10))
        ids = ["loop-a", "loop-taken", "loop-cancelled", "loop-b"]
        waiters = [store.submit_instance_on_loop(HUB, *new(i)) for i in ids]
        waiters[2].cancel()
        gate.set()
        outcomes = await asyncio.wait_for(
            asyncio.gather(*waiters, return_exceptions=True), 10
        )
        return list(outcomes), wake_ups

    try:
        outcomes, wake_ups = asyncio.run(start_all())
        statuses = {i: store.get_instance(HUB, i) for i in ("loop-a", "loop-b")}
    finally:
        store.stop_writer()
        store.close()

    assert outcomes[0] is None and outcomes[3] is None
    assert isinstance(outcomes[1], InstanceExists)
    assert isinstance(outcomes[2], asyncio.CancelledError)
    assert all(instance is not None for instance in statuses.values())
    assert wake_ups == 1


def test_an_episode_of_a_run_replaced_meanwhile_stores_nothing(tmp_path: Path) -> None:
    """A late event's episode of a finished instance, loaded before the id was
    started afresh and committed after, leaves the new run's row and start."""
    store = HubStore(tmp_path / "runtime.sqlite3")
    now = time.time()
    try:
        _create(store, "stale-a", now)
        _complete(store, "stale-a", now + 1)
        _raise(store, "stale-a", "late", now + 1)
        late = store.load(HUB, "stale-a", now + 2)
        assert late.instance is not None and late.pending

        fresh = Instance("stale-a", "echo", "exec-2", input='"y"', created_at=now + 2)
        fresh_moment = datetime.fromtimestamp(now + 2).astimezone()
        started = Message("stale-a", started_event(fresh, fresh_moment), now + 2)
        store.create_instance(HUB, fresh, started)
        with pytest.raises(RunReplaced):
            store.commit_episode(
                HUB, run_episode(late.instance, [], late.pending, None, now + 3)
            )
        after = store.load(HUB, "stale-a", now + 4)
    finally:
        store.stop_writer()
        store.close()

    assert after.instance is not None
    assert (after.instance.execution_id, after.instance.status) == ("exec-2", "Pending")
    assert [m.event["EventType"] for m in after.pending] == [
        EventType.EXECUTION_STARTED
    ]
