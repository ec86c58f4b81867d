"""The durable state of task hubs: instances, histories, messages and activity work.

One SQLite file in WAL mode holds every task hub the runtime serves. Each
episode's new history, new messages, new timers and new activity work commit
in one transaction, so a process killed at any point restarts from a
consistent state: consumed messages are gone exactly when their effects are
stored, and activity work stays until its completion message is stored.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import heapq
import itertools
import json
import logging
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

from duralane.runtime.episode import (
    TERMINAL_STATUSES,
    ActivityWork,
    EpisodeResult,
    Instance,
    Message,
)
from duralane.runtime.history import Event, EventType
from duralane.sqlite_busy import begin_write

logger = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS instances (
    hub TEXT NOT NULL,
    instance_id TEXT NOT NULL,
    name TEXT NOT NULL,
    execution_id TEXT NOT NULL,
    status TEXT NOT NULL,
    input TEXT,
    output TEXT,
    custom_status TEXT,
    parent_instance_id TEXT,
    parent_task_id INTEGER,
    parent_meta TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    next_event_id INTEGER NOT NULL DEFAULT 0,
    recorded TEXT NOT NULL DEFAULT '[]',
    history_length INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (hub, instance_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS instances_by_created ON instances (hub, created_at);
CREATE INDEX IF NOT EXISTS instances_by_status ON instances (hub, status, created_at);
CREATE TABLE IF NOT EXISTS history (
    hub TEXT NOT NULL,
    instance_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    event TEXT NOT NULL,
    PRIMARY KEY (hub, instance_id, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    hub TEXT NOT NULL,
    instance_id TEXT NOT NULL,
    execution_id TEXT,
    timer_id INTEGER,
    event TEXT NOT NULL,
    meta TEXT NOT NULL,
    visible_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_by_due ON messages (hub, visible_at);
CREATE INDEX IF NOT EXISTS messages_by_instance ON messages (hub, instance_id, id);
CREATE TABLE IF NOT EXISTS activities (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    hub TEXT NOT NULL,
    instance_id TEXT NOT NULL,
    execution_id TEXT NOT NULL,
    task_id INTEGER NOT NULL,
    name TEXT NOT NULL,
    input TEXT,
    meta TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS activities_by_hub ON activities (hub, id);
CREATE INDEX IF NOT EXISTS activities_by_instance ON activities (hub, instance_id);
CREATE TABLE IF NOT EXISTS timers (
    name TEXT PRIMARY KEY,
    last_fire TEXT NOT NULL
);
"""

INSTANCE_COLUMNS = (
    "instance_id, name, execution_id, status, input, output, custom_status, "
    "parent_instance_id, parent_task_id, parent_meta, created_at, updated_at, "
    "next_event_id, recorded, history_length"
)
UPSERT_COLUMNS = ", ".join(
    f"{name} = excluded.{name}"
    for name in INSTANCE_COLUMNS.split(", ")
    if name != "instance_id"
)
# An episode's update of its instance, only while the row is still the run the
# episode loaded: a finished instance can be started afresh, or purged, while
# an episode of a late message holds it.
EPISODE_UPDATE = (
    "UPDATE instances SET "
    + ", ".join(f"{name} = ?" for name in INSTANCE_COLUMNS.split(", ")[1:])
    + " WHERE hub=? AND instance_id=? AND execution_id=?"
)
# A history row holds one episode's new events, their JSON texts joined by a
# newline, which json.dumps never writes inside a text; seq is the index of
# the row's first event. One row per event cost the writer a statement step
# per event (eight for a single-activity orchestration instead of two), and
# rows written that way still read as one event each.
HISTORY_LINES = "\n"
# Instances read by one statement of load_many, well under SQLite's limit on
# bound parameters.
LOAD_CHUNK = 500
# Enough to amortise a commit over a fan-out's completions without holding the
# write lock so long that readers see stale data for long.
WRITE_BATCH = 1000

Apply = Callable[[sqlite3.Connection], Any]


class OwnerGone(Exception):
    """An episode process outlived the runtime that gave it work: it must not write."""


class RunReplaced(Exception):
    """The instance was started afresh or purged while an episode of it ran."""

    def __init__(self, instance_id: str, execution_id: str) -> None:
        super().__init__(
            f"instance {instance_id} no longer runs execution {execution_id}: "
            "it was started afresh or purged; the episode's changes were dropped"
        )


class InstanceExists(Exception):
    """Raised when starting an instance whose id is already running."""

    def __init__(self, instance_id: str, status: str) -> None:
        super().__init__(
            f"An orchestration instance with id '{instance_id}' already exists "
            f"with status {status}; terminate or purge it before reusing the id."
        )
        self.instance_id = instance_id
        self.status = status


@dataclass
class InstancePage:
    """One page of an instance query and the token for the next."""

    instances: list[Instance]
    continuation: str | None


@dataclass
class LoadedInstance:
    """What an episode needs: the instance, its history and its due messages.

    The history stays JSON text, so it can go to an episode process as is.
    """

    instance: Instance | None
    history: list[str]
    pending: list[Message]
    # When its earliest message that is not yet due becomes due, if it has one.
    next_due: float | None = None


class InstanceRow(NamedTuple):
    """An instance's columns as the store writes them, JSON already encoded."""

    instance_id: str
    name: str
    execution_id: str
    status: str
    input: str | None
    output: str | None
    custom_status: str | None
    parent_instance_id: str | None
    parent_task_id: int | None
    parent_meta: str | None
    created_at: float
    updated_at: float
    next_event_id: int
    recorded: str

    @classmethod
    def of(cls, instance: Instance) -> InstanceRow:
        return cls(
            instance.instance_id,
            instance.name,
            instance.execution_id,
            instance.status,
            instance.input,
            instance.output,
            instance.custom_status,
            instance.parent_instance_id,
            instance.parent_task_id,
            json.dumps(instance.parent_meta) if instance.parent_meta else None,
            instance.created_at,
            instance.updated_at,
            instance.next_event_id,
            json.dumps(instance.recorded),
        )


class MessageRow(NamedTuple):
    """A message's columns as the store writes them, JSON already encoded."""

    instance_id: str
    execution_id: str | None
    timer_id: int | None
    event: str
    meta: str
    visible_at: float

    @classmethod
    def of(cls, message: Message) -> MessageRow:
        event = message.event
        fired = event["EventType"] == EventType.TIMER_FIRED
        return cls(
            message.instance_id,
            message.execution_id,
            event.get("TimerId") if fired else None,
            json.dumps(event),
            json.dumps(message.meta),
            message.visible_at,
        )


class ActivityRow(NamedTuple):
    """Activity work's columns as the store writes them."""

    instance_id: str
    execution_id: str
    task_id: int
    name: str
    input: str | None
    meta: str


@dataclass
class EpisodeRows:
    """Everything one episode changed, as the rows the store writes.

    Episode processes build it from the EpisodeResult, so the JSON encoding
    happens there and not in the runtime's process, which every hub shares.
    """

    instance: InstanceRow
    # The execution the episode loaded, and how many events it had stored.
    loaded_execution_id: str
    history_base: int
    consumed: list[int]
    history: list[str]
    messages: list[MessageRow]
    activities: list[ActivityRow]
    children: list[InstanceRow]
    cancelled_timers: list[int]
    reset_history: bool
    finished: bool
    ran_orchestrator: bool
    error: str | None

    @classmethod
    def of(cls, result: EpisodeResult) -> EpisodeRows:
        return cls(
            instance=InstanceRow.of(result.instance),
            loaded_execution_id=result.loaded_execution_id
            or result.instance.execution_id,
            history_base=result.instance.history_length,
            consumed=result.consumed,
            history=[json.dumps(event) for event in result.new_history],
            messages=[MessageRow.of(message) for message in result.messages],
            activities=[
                ActivityRow(
                    work.instance_id,
                    work.execution_id,
                    work.task_id,
                    work.name,
                    work.input,
                    json.dumps(work.meta),
                )
                for work in result.activities
            ],
            children=[InstanceRow.of(child) for child in result.children],
            cancelled_timers=result.cancelled_timers,
            reset_history=result.reset_history,
            finished=result.finished,
            ran_orchestrator=result.ran_orchestrator,
            error=result.error,
        )


@dataclass
class _Write:
    """One caller's changes, applied inside the writer's shared transaction."""

    apply: Apply
    after: Callable[[], None] | None
    failed: Callable[[BaseException], None] | None
    future: Future[Any] | None
    # The hub's priority: higher goes into the next batch first.
    priority: int = 0
    # A waiter on an event loop, settled there with the rest of its batch.
    waiter: asyncio.Future[Any] | None = None


# A loop's waiter with what its write came to: a value or an error.
_Settled = tuple["asyncio.Future[Any]", Any, BaseException | None]


class StoreWriter:
    """The one thread that writes the store, committing many callers' changes at once.

    Callers never wait on SQLite's write lock: they queue their changes and the
    writer applies everything queued so far in one transaction (group commit).
    Writes are taken highest hub priority first, then in arrival order, so a
    high-priority hub's write waits for at most the batch being committed, never
    for a lower hub's backlog. One caller's error costs only its own changes
    (see _apply).
    """

    def __init__(self, store: HubStore) -> None:
        self._store = store
        self._condition = threading.Condition()
        # (-priority, arrival, write): one hub's writes keep their order, as
        # they all share its priority.
        self._queue: list[tuple[int, int, _Write]] = []
        self._arrivals = itertools.count()
        self._stopping = False
        self._thread = threading.Thread(
            target=self._run, name="hubstore-writer", daemon=True
        )
        self._thread.start()

    def submit(self, write: _Write) -> None:
        """Queue changes; callbacks run on the writer thread once they are settled."""
        with self._condition:
            heapq.heappush(self._queue, (-write.priority, next(self._arrivals), write))
            self._condition.notify()

    def stop(self) -> None:
        """Commit what is queued, then end the thread."""
        with self._condition:
            self._stopping = True
            self._condition.notify()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while True:
            with self._condition:
                while not self._queue and not self._stopping:
                    self._condition.wait()
                if not self._queue:
                    break
                count = min(len(self._queue), WRITE_BATCH)
                batch = [heapq.heappop(self._queue)[2] for _ in range(count)]
            self._commit(batch)
        self._store.close()

    def _commit(self, batch: list[_Write]) -> None:
        outcomes = self._apply(batch)
        settle: dict[asyncio.AbstractEventLoop, list[_Settled]] = {}
        # Callbacks run only after COMMIT, so whatever they wake reads the
        # committed state; they must never wait on this writer.
        for write, (value, error) in zip(batch, outcomes, strict=True):
            try:
                if error is None and write.after is not None:
                    write.after()
                if error is not None and write.failed is not None:
                    write.failed(error)
            except Exception:
                logger.exception("callback after a store write failed")
            if write.waiter is not None:
                settle.setdefault(write.waiter.get_loop(), []).append(
                    (write.waiter, value, error)
                )
            elif write.future is None:
                if error is not None and write.failed is None:
                    logger.error("store write failed: %s", error)
            elif error is None:
                write.future.set_result(value)
            else:
                write.future.set_exception(error)
        # One wake-up per loop and batch: each costs a write to the loop's
        # self-pipe and a turn of the loop, far more than setting a result.
        for loop, settled in settle.items():
            with contextlib.suppress(RuntimeError):  # the loop has closed
                loop.call_soon_threadsafe(_settle_waiters, settled)
        # Once per batch, not per write: waking a thread costs more than most
        # writes, and one wake-up lets a dispatcher see the whole batch.
        for listener in self._store.listeners:
            listener()

    def _apply(self, batch: list[_Write]) -> list[tuple[Any, BaseException | None]]:
        """Apply every write in one transaction; if that fails, each one alone.

        No savepoint per write: each costs two statements, and every statement
        gives up the GIL and queues to get it back. A write that raises is
        found by redoing the batch one write per transaction, so only its own
        changes are lost; applies are plain SQL and safe to redo.
        """
        db = self._store._write_connection()
        try:
            # Episode processes write the file too; the batch waits for them
            # on the pauses of its most urgent write.
            begin_write(db, max(write.priority for write in batch))
            values = [write.apply(db) for write in batch]
            db.execute("COMMIT")
            return [(value, None) for value in values]
        except Exception as exc:
            if db.in_transaction:
                db.execute("ROLLBACK")
            if len(batch) == 1:
                return [(None, exc)]
            logger.warning(
                "store batch of %d writes failed (%s); committing each alone",
                len(batch),
                exc,
            )
        return [self._apply([write])[0] for write in batch]


class HubStore:
    """SQLite persistence for every task hub, safe to share across threads."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        # executescript commits on its own, so it runs outside transaction().
        self._connection().executescript(SCHEMA)
        self._writer: StoreWriter | None = None
        self._writer_lock = threading.Lock()
        # Called on the writer thread after each committed batch; add before
        # the first write.
        self.listeners: list[Callable[[], None]] = []
        # Hub name to priority (higher is written first); unknown hubs get 0.
        self.priorities: dict[str, int] = {}

    def write(
        self,
        apply: Apply,
        after: Callable[[], None] | None = None,
        failed: Callable[[BaseException], None] | None = None,
        *,
        hub: str | None = None,
    ) -> None:
        """Queue changes for the store's one writer thread (see StoreWriter)."""
        self._submit(_Write(apply, after, failed, None, self._priority(hub)))

    def write_and_wait(
        self,
        apply: Apply,
        after: Callable[[], None] | None = None,
        *,
        hub: str | None = None,
    ) -> Any:
        """Queue changes, wait until they are committed and return apply's value."""
        return self.write_later(apply, after, hub=hub).result()

    def write_later(
        self,
        apply: Apply,
        after: Callable[[], None] | None = None,
        *,
        hub: str | None = None,
    ) -> Future[Any]:
        """Queue changes; the future holds apply's value once they are committed."""
        future: Future[Any] = Future()
        self._submit(_Write(apply, after, None, future, self._priority(hub)))
        return future

    def write_awaitable(
        self,
        apply: Apply,
        after: Callable[[], None] | None = None,
        *,
        hub: str | None = None,
    ) -> asyncio.Future[Any]:
        """write_later for a caller on an event loop, which must be running.

        The loop's waiters of one batch are settled in one callback, not one
        wake-up each as a wrapped concurrent future would be.
        """
        waiter: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._submit(_Write(apply, after, None, None, self._priority(hub), waiter))
        return waiter

    def _priority(self, hub: str | None) -> int:
        return self.priorities.get(hub, 0) if hub is not None else 0

    def _submit(self, write: _Write) -> None:
        with self._writer_lock:
            if self._writer is None:
                self._writer = StoreWriter(self)
            writer = self._writer
        writer.submit(write)

    def _connection(self) -> sqlite3.Connection:
        """This thread's connection for reads (sqlite3 objects must stay in one)."""
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            db = self._connect(busy_timeout_ms=30_000)
            self._local.db = db
        return db

    def _write_connection(self) -> sqlite3.Connection:
        """This thread's connection for write transactions, begun by begin_write.

        Without SQLite's busy handler, whose sleeps grow to 100 ms: the writer
        and the episode processes take turns at the write lock many times a
        second, and each waits on sqlite_busy's short pauses instead.
        """
        db: sqlite3.Connection | None = getattr(self._local, "write_db", None)
        if db is None:
            db = self._connect(busy_timeout_ms=0)
            self._local.write_db = db
        return db

    def _connect(self, busy_timeout_ms: int) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        # NORMAL survives a killed process; only a power loss can drop the
        # last commits, which the at-least-once activity contract tolerates.
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
        return db

    @contextmanager
    def transaction(self, priority: int = 0) -> Iterator[sqlite3.Connection]:
        """A write transaction that takes the write lock up front."""
        db = self._write_connection()
        begin_write(db, priority)
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def stop_writer(self) -> None:
        """Commit queued writes and end the writer thread."""
        with self._writer_lock:
            writer, self._writer = self._writer, None
        if writer is not None:
            writer.stop()

    def close(self) -> None:
        """Close this thread's connections."""
        for name in ("db", "write_db"):
            db = getattr(self._local, name, None)
            if db is not None:
                db.close()
                setattr(self._local, name, None)

    # Instances

    def create_instance(
        self,
        hub: str,
        instance: Instance,
        started: Message,
        after: Callable[[], None] | None = None,
    ) -> None:
        """Store a new instance and its ExecutionStarted message, or refuse."""
        self.submit_instance(hub, instance, started, after).result()

    def submit_instance(
        self,
        hub: str,
        instance: Instance,
        started: Message,
        after: Callable[[], None] | None = None,
    ) -> Future[None]:
        """Queue create_instance's write; the future settles once it is committed."""
        apply = self._creation(hub, instance, started)
        return self.write_later(apply, after, hub=hub)

    def submit_instance_on_loop(
        self,
        hub: str,
        instance: Instance,
        started: Message,
        after: Callable[[], None] | None = None,
    ) -> asyncio.Future[None]:
        """submit_instance for a caller on a running event loop, to await there."""
        apply = self._creation(hub, instance, started)
        return self.write_awaitable(apply, after, hub=hub)

    def _creation(self, hub: str, instance: Instance, started: Message) -> Apply:
        """What creating an instance writes: its row and its ExecutionStarted."""

        def apply(db: sqlite3.Connection) -> None:
            # One statement for the common case, a new id; only a taken one
            # needs its status read.
            row = InstanceRow.of(instance)
            if not self._write_instance(db, hub, row, only_new=True):
                (status,) = db.execute(
                    "SELECT status FROM instances WHERE hub=? AND instance_id=?",
                    (hub, instance.instance_id),
                ).fetchone()
                if status not in TERMINAL_STATUSES:
                    raise InstanceExists(instance.instance_id, status)
                self._delete_instance(db, hub, instance.instance_id)
                self._write_instance(db, hub, row)
            self._insert_messages(db, hub, [MessageRow.of(started)])

        return apply

    def get_instance(self, hub: str, instance_id: str) -> Instance | None:
        """Read one instance, or None."""
        row = (
            self._connection()
            .execute(
                f"SELECT {INSTANCE_COLUMNS} FROM instances "
                "WHERE hub=? AND instance_id=?",
                (hub, instance_id),
            )
            .fetchone()
        )
        return _instance_from_row(row) if row else None

    def query_instances(
        self,
        hub: str,
        *,
        statuses: Iterable[str] = (),
        created_from: float | None = None,
        created_to: float | None = None,
        prefix: str | None = None,
        top: int = 100,
        continuation: str | None = None,
    ) -> InstancePage:
        """Instances newest first, filtered and paged by a keyset token."""
        clauses = ["hub=?"]
        args: list[Any] = [hub]
        status_list = list(statuses)
        if status_list:
            clauses.append(f"status IN ({','.join('?' * len(status_list))})")
            args.extend(status_list)
        if created_from is not None:
            clauses.append("created_at >= ?")
            args.append(created_from)
        if created_to is not None:
            clauses.append("created_at <= ?")
            args.append(created_to)
        if prefix:
            clauses.append("instance_id >= ? AND instance_id < ?")
            args.extend([prefix, prefix + "\uffff"])
        if continuation:
            created, last_id = _decode_token(continuation)
            clauses.append("(created_at < ? OR (created_at = ? AND instance_id < ?))")
            args.extend([created, created, last_id])
        rows = (
            self._connection()
            .execute(
                f"SELECT {INSTANCE_COLUMNS} FROM instances "
                f"WHERE {' AND '.join(clauses)} "
                "ORDER BY created_at DESC, instance_id DESC LIMIT ?",
                (*args, top + 1),
            )
            .fetchall()
        )
        instances = [_instance_from_row(row) for row in rows[:top]]
        token = None
        if len(rows) > top:
            last = instances[-1]
            token = _encode_token(last.created_at, last.instance_id)
        return InstancePage(instances, token)

    def history(self, hub: str, instance_id: str) -> list[Event]:
        """An instance's history, oldest first."""
        return [json.loads(text) for text in self._history_texts(hub, instance_id)]

    def purge(self, hub: str, instance_ids: Iterable[str]) -> int:
        """Delete finished instances with their history; return how many."""
        ids = list(instance_ids)

        def apply(db: sqlite3.Connection) -> int:
            return sum(self._delete_instance(db, hub, i) for i in ids)

        return int(self.write_and_wait(apply, hub=hub))

    def _delete_instance(
        self, db: sqlite3.Connection, hub: str, instance_id: str
    ) -> int:
        _delete_rows_of(db, hub, instance_id, "history", "messages", "activities")
        cursor = db.execute(
            "DELETE FROM instances WHERE hub=? AND instance_id=?", (hub, instance_id)
        )
        return cursor.rowcount

    def _clear_finished(
        self, db: sqlite3.Connection, hub: str, instance_id: str
    ) -> None:
        """A child retried under its fixed id starts again from an empty history."""
        row = db.execute(
            "SELECT status FROM instances WHERE hub=? AND instance_id=?",
            (hub, instance_id),
        ).fetchone()
        if row and row[0] in TERMINAL_STATUSES:
            self._delete_instance(db, hub, instance_id)

    # Messages and episodes

    def enqueue(
        self,
        hub: str,
        messages: list[Message],
        after: Callable[[], None] | None = None,
    ) -> None:
        """Store messages for instances (events, timers, control operations)."""
        self.write_and_wait(
            lambda db: self._insert_messages(
                db, hub, [MessageRow.of(message) for message in messages]
            ),
            after,
            hub=hub,
        )

    def due_instances(self, hub: str) -> list[tuple[str, float]]:
        """Every instance with a stored message and when its earliest one is due.

        A full scan of the hub's messages: run it at startup to rebuild the
        worker's in-memory ready set, never per episode.
        """
        rows = (
            self._connection()
            .execute(
                "SELECT instance_id, MIN(visible_at) FROM messages WHERE hub=? "
                "GROUP BY instance_id ORDER BY MIN(id)",
                (hub,),
            )
            .fetchall()
        )
        return [(row[0], float(row[1])) for row in rows]

    def load(self, hub: str, instance_id: str, now: float) -> LoadedInstance:
        """Read what an episode of one instance needs."""
        return self.load_many(hub, [instance_id], now)[0]

    def load_many(
        self, hub: str, instance_ids: list[str], now: float
    ) -> list[LoadedInstance]:
        """load() for several instances from one snapshot.

        Three statements for the whole batch, not three per instance: under
        load each statement costs a round trip for the GIL, far more than its
        SQL.
        """
        db = self._connection()
        db.execute("BEGIN")
        try:
            instances: dict[str, Instance] = {}
            pending: dict[str, list[Message]] = {i: [] for i in instance_ids}
            histories: dict[str, list[str]] = {i: [] for i in instance_ids}
            next_due: dict[str, float] = {}
            for first in range(0, len(instance_ids), LOAD_CHUNK):
                chunk = instance_ids[first : first + LOAD_CHUNK]
                marks = ",".join("?" * len(chunk))
                for row in db.execute(
                    f"SELECT {INSTANCE_COLUMNS} FROM instances "
                    f"WHERE hub=? AND instance_id IN ({marks})",
                    (hub, *chunk),
                ):
                    instances[row[0]] = _instance_from_row(row)
                for row in db.execute(
                    # Without the hint SQLite picks messages_by_due and scans
                    # every due message of the hub: a cost that grows with the
                    # backlog.
                    "SELECT instance_id, id, execution_id, event, meta, visible_at "
                    "FROM messages INDEXED BY messages_by_instance "
                    f"WHERE hub=? AND instance_id IN ({marks}) "
                    "ORDER BY instance_id, id",
                    (hub, *chunk),
                ):
                    if row[5] > now:
                        # Not due: only when, so the ready set can wake it.
                        due = next_due.get(row[0])
                        next_due[row[0]] = row[5] if due is None else min(due, row[5])
                        continue
                    pending[row[0]].append(
                        Message(
                            instance_id=row[0],
                            id=row[1],
                            execution_id=row[2],
                            event=json.loads(row[3]),
                            meta=json.loads(row[4]),
                            visible_at=row[5],
                        )
                    )
                for instance_id, lines in db.execute(
                    "SELECT instance_id, event FROM history "
                    f"WHERE hub=? AND instance_id IN ({marks}) "
                    "ORDER BY instance_id, seq",
                    (hub, *chunk),
                ):
                    histories[instance_id].extend(lines.split(HISTORY_LINES))
            return [
                LoadedInstance(
                    instances.get(instance_id),
                    histories[instance_id] if instance_id in instances else [],
                    pending[instance_id],
                    next_due.get(instance_id),
                )
                for instance_id in instance_ids
            ]
        finally:
            # Ends the read snapshot; nothing was written.
            db.execute("COMMIT")

    def commit_episode(self, hub: str, result: EpisodeResult) -> None:
        """Store everything one episode changed, in one transaction, or raise."""
        (error,) = self.commit_episodes(hub, [EpisodeRows.of(result)])
        if error is not None:
            raise error

    def commit_episodes(
        self,
        hub: str,
        episodes: list[EpisodeRows],
        *,
        drop: list[int] | None = None,
        priority: int = 0,
        still_owner: Callable[[], bool] | None = None,
    ) -> list[BaseException | None]:
        """Store each episode's changes atomically, all in one transaction if
        they can be, and delete the drop messages; each episode's error, a
        RunReplaced for one whose run was replaced meanwhile (it stores nothing).

        This thread writes, not the store's writer: episode processes commit
        their own batches. still_owner runs once the write lock is held; if it
        says no, nothing is written and OwnerGone is raised.
        """
        db = self._write_connection()
        # Not getting the lock in time is no episode's fault: that error is
        # the whole batch's, and raises.
        begin_write(db, priority)
        try:
            if still_owner is not None and not still_owner():
                raise OwnerGone("the runtime that handed out these episodes is gone")
            if drop:
                marks = ",".join("?" * len(drop))
                db.execute(f"DELETE FROM messages WHERE id IN ({marks})", drop)
            outcomes: list[BaseException | None] = [
                None if self._apply_episode(db, hub, rows) else _replaced(rows)
                for rows in episodes
            ]
            db.execute("COMMIT")
            return outcomes
        except OwnerGone:
            db.execute("ROLLBACK")
            raise
        except Exception as exc:
            if db.in_transaction:
                db.execute("ROLLBACK")
            if len(episodes) <= 1 and not (episodes and drop):
                return [exc] * len(episodes)
            logger.warning(
                "batch of %d episodes in hub %s failed to commit (%s); "
                "committing each alone",
                len(episodes),
                hub,
                exc,
            )
        if drop:
            self.commit_episodes(hub, [], drop=drop, priority=priority)
        return [
            self.commit_episodes(
                hub, [rows], priority=priority, still_owner=still_owner
            )[0]
            for rows in episodes
        ]

    def _apply_episode(
        self, db: sqlite3.Connection, hub: str, rows: EpisodeRows
    ) -> bool:
        """Write one episode's rows inside the caller's transaction; False,
        writing nothing, if its instance no longer runs the loaded execution."""
        instance_id = rows.instance.instance_id
        # The instance was held since its load, so nothing else has appended
        # to its history; a restart (continue-as-new) starts it again at 0.
        length = 0 if rows.reset_history else rows.history_base
        updated = db.execute(
            EPISODE_UPDATE,
            (
                *rows.instance[1:],
                length + len(rows.history),
                hub,
                instance_id,
                rows.loaded_execution_id,
            ),
        )
        if updated.rowcount == 0:
            return False
        # A finished or restarted instance loses all its messages below.
        if rows.consumed and not (rows.finished or rows.reset_history):
            marks = ",".join("?" * len(rows.consumed))
            db.execute(f"DELETE FROM messages WHERE id IN ({marks})", rows.consumed)
        if rows.reset_history:
            _delete_rows_of(db, hub, instance_id, "history", "activities", "messages")
        if rows.history:
            # One row per episode: its events' JSON texts, one per line.
            db.execute(
                "INSERT INTO history (hub, instance_id, seq, event) VALUES (?,?,?,?)",
                (hub, instance_id, length, HISTORY_LINES.join(rows.history)),
            )
        for child in rows.children:
            self._clear_finished(db, hub, child.instance_id)
            self._write_instance(db, hub, child)
        if rows.finished:
            _delete_rows_of(db, hub, instance_id, "messages", "activities")
        for timer_id in rows.cancelled_timers:
            db.execute(
                "DELETE FROM messages WHERE hub=? AND instance_id=? AND timer_id=?",
                (hub, instance_id, timer_id),
            )
        self._insert_messages(db, hub, rows.messages)
        if rows.activities:
            db.executemany(
                "INSERT INTO activities (hub, instance_id, execution_id, "
                "task_id, name, input, meta) VALUES (?,?,?,?,?,?,?)",
                [(hub, *work) for work in rows.activities],
            )
        return True

    # Activities

    def claim_activities(
        self, hub: str, after_id: int, limit: int
    ) -> list[ActivityWork]:
        """Activity work stored after the given id, oldest first."""
        rows = (
            self._connection()
            .execute(
                "SELECT id, instance_id, execution_id, task_id, name, input, meta "
                "FROM activities WHERE hub=? AND id>? ORDER BY id LIMIT ?",
                (hub, after_id, limit),
            )
            .fetchall()
        )
        return [
            ActivityWork(
                id=row[0],
                instance_id=row[1],
                execution_id=row[2],
                task_id=row[3],
                name=row[4],
                input=row[5],
                meta=json.loads(row[6]),
            )
            for row in rows
        ]

    def submit_completions(
        self,
        hub: str,
        completions: list[tuple[ActivityWork, Message]],
        after: Callable[[], None] | None = None,
        failed: Callable[[BaseException], None] | None = None,
    ) -> None:
        """Queue finished activity work's replacement by its completion messages."""

        def apply(db: sqlite3.Connection) -> None:
            for work, message in completions:
                cursor = db.execute("DELETE FROM activities WHERE id=?", (work.id,))
                # Work already removed belonged to a terminated or restarted
                # instance: its result has nowhere to go.
                if cursor.rowcount:
                    self._insert_messages(db, hub, [MessageRow.of(message)])

        self.write(apply, after, failed, hub=hub)

    # Timer triggers

    def timer_last_fire(self, name: str) -> datetime | None:
        """When a timer function last fired, to detect occurrences missed while down."""
        row = (
            self._connection()
            .execute("SELECT last_fire FROM timers WHERE name=?", (name,))
            .fetchone()
        )
        return datetime.fromisoformat(row[0]) if row else None

    def set_timer_last_fire(self, name: str, moment: datetime) -> None:
        """Remember a timer function's latest occurrence."""
        self.write_and_wait(
            lambda db: db.execute(
                "INSERT OR REPLACE INTO timers (name, last_fire) VALUES (?, ?)",
                (name, moment.isoformat()),
            )
        )

    # Helpers

    def _insert_messages(
        self, db: sqlite3.Connection, hub: str, rows: list[MessageRow]
    ) -> None:
        if rows:
            db.executemany(
                "INSERT INTO messages (hub, instance_id, execution_id, timer_id, "
                "event, meta, visible_at) VALUES (?,?,?,?,?,?,?)",
                [(hub, *row) for row in rows],
            )

    def _write_instance(
        self,
        db: sqlite3.Connection,
        hub: str,
        row: InstanceRow,
        *,
        only_new: bool = False,
    ) -> bool:
        """Insert or update a new run's row, its history empty; with only_new,
        False if the instance exists."""
        cursor = db.execute(
            # An upsert, not INSERT OR REPLACE: a replace deletes and
            # re-inserts the row, touching every index.
            f"INSERT INTO instances (hub, {INSTANCE_COLUMNS}) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) "
            "ON CONFLICT (hub, instance_id) DO "
            + ("NOTHING" if only_new else f"UPDATE SET {UPSERT_COLUMNS}"),
            (hub, *row, 0),
        )
        return cursor.rowcount > 0

    def _history_texts(self, hub: str, instance_id: str) -> list[str]:
        """One instance's history as stored, one JSON text per event."""
        rows = (
            self._connection()
            .execute(
                "SELECT event FROM history WHERE hub=? AND instance_id=? ORDER BY seq",
                (hub, instance_id),
            )
            .fetchall()
        )
        return [text for (lines,) in rows for text in lines.split(HISTORY_LINES)]


def _replaced(rows: EpisodeRows) -> RunReplaced:
    return RunReplaced(rows.instance.instance_id, rows.loaded_execution_id)


def _delete_rows_of(
    db: sqlite3.Connection, hub: str, instance_id: str, *tables: str
) -> None:
    """Delete every row one instance has in each of the tables, in that order."""
    for table in tables:
        db.execute(
            f"DELETE FROM {table} WHERE hub=? AND instance_id=?", (hub, instance_id)
        )


def _instance_from_row(row: tuple[Any, ...]) -> Instance:
    return Instance(
        instance_id=row[0],
        name=row[1],
        execution_id=row[2],
        status=row[3],
        input=row[4],
        output=row[5],
        custom_status=row[6],
        parent_instance_id=row[7],
        parent_task_id=row[8],
        parent_meta=json.loads(row[9]) if row[9] else None,
        created_at=row[10],
        updated_at=row[11],
        next_event_id=row[12],
        recorded=json.loads(row[13]),
        history_length=row[14],
    )


def _encode_token(created_at: float, instance_id: str) -> str:
    raw = json.dumps([created_at, instance_id]).encode()
    return base64.urlsafe_b64encode(raw).decode()


def _decode_token(token: str) -> tuple[float, str]:
    """Read a continuation token, or raise ValueError for a malformed one."""
    try:
        created_at, instance_id = json.loads(base64.urlsafe_b64decode(token))
        return float(created_at), str(instance_id)
    except Exception as exc:
        raise ValueError(f"continuation token '{token[:40]}' is not valid") from exc


def _settle_waiters(settled: list[_Settled]) -> None:
    """Give each waiter of a committed batch its value or error, on its loop."""
    for waiter, value, error in settled:
        if waiter.done():  # cancelled while the batch was committing
            continue
        if error is None:
            waiter.set_result(value)
        else:
            waiter.set_exception(error)
