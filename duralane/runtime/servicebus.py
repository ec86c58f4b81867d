"""An embedded, durable queue with Service Bus semantics, for Service Bus triggers.

The embedded runtime cannot reach Service Bus, so it feeds the app's
`service_bus_queue_trigger` functions from this queue instead. It keeps what the
functions and the operators rely on: peek-lock receipt with lock tokens, delivery
counts, a dead-letter sub-queue with the reasons Service Bus sets, duplicate
detection by message id, scheduled messages and time-to-live.

Storage is one SQLite file in WAL mode. Every write runs in `BEGIN IMMEDIATE`,
so threads sharing one store and processes sharing one file never hand out the
same message twice while it is locked. A received message that is never settled
comes back when its lock expires, which is how a crash is survived.

Errors::

    ServiceBusQueueError
    ├── QueueNotFound        the queue was never created with ensure_queue
    ├── MessageLockLost      the lock token expired, was settled, or never existed
    ├── MessageNotFound      no dead-lettered message has that sequence number
    └── InvalidOperation     Service Bus refuses it too (dead-lettering a dead letter)
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from azure.functions import meta
from azure.functions.servicebus import ServiceBusMessage

from duralane import events
from duralane.ids import random_hex, random_uuid

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]

# Dead-letter reasons Service Bus itself sets; applications may use their own.
REASON_MAX_DELIVERY_COUNT_EXCEEDED = "MaxDeliveryCountExceeded"
REASON_TTL_EXPIRED = "TTLExpiredException"

# Sub-queue a stored message sits in.
_ACTIVE = "active"
_DEAD_LETTERED = "deadlettered"

# ServiceBusMessageState values, as the Functions SDK reports them in `state`.
_STATE_ACTIVE = 0
_STATE_SCHEDULED = 2

_SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS queues (
    name TEXT PRIMARY KEY,
    max_delivery_count INTEGER NOT NULL,
    lock_duration REAL NOT NULL,
    duplicate_detection_window REAL,
    default_ttl REAL,
    dead_lettering_on_expiration INTEGER NOT NULL,
    last_sequence_number INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS messages (
    queue TEXT NOT NULL,
    sequence_number INTEGER NOT NULL,
    sub_queue TEXT NOT NULL,
    message_id TEXT NOT NULL,
    body BLOB NOT NULL,
    content_type TEXT,
    correlation_id TEXT,
    subject TEXT,
    application_properties TEXT NOT NULL,
    enqueued_at REAL NOT NULL,
    scheduled_at REAL,
    expires_at REAL,
    time_to_live REAL,
    delivery_count INTEGER NOT NULL DEFAULT 0,
    lock_token TEXT UNIQUE,
    locked_until REAL,
    dead_letter_reason TEXT,
    dead_letter_description TEXT,
    dead_lettered_at REAL,
    PRIMARY KEY (queue, sequence_number)
);
CREATE INDEX IF NOT EXISTS messages_by_sub_queue
    ON messages (queue, sub_queue, sequence_number);
-- The sweep on every receive looks for spent locks and expired messages.
CREATE INDEX IF NOT EXISTS messages_by_lock
    ON messages (queue, sub_queue, locked_until);
CREATE INDEX IF NOT EXISTS messages_by_expiry
    ON messages (queue, sub_queue, expires_at);
CREATE TABLE IF NOT EXISTS message_ids (
    queue TEXT NOT NULL,
    message_id TEXT NOT NULL,
    recorded_at REAL NOT NULL,
    sequence_number INTEGER NOT NULL,
    PRIMARY KEY (queue, message_id)
);
CREATE INDEX IF NOT EXISTS message_ids_by_age ON message_ids (queue, recorded_at);
"""


class ServiceBusQueueError(Exception):
    """Base of every error the embedded queue raises, so callers can catch one."""


class QueueNotFound(ServiceBusQueueError):
    """The queue does not exist; Service Bus answers MessagingEntityNotFound."""


class MessageLockLost(ServiceBusQueueError):
    """The lock is gone, so settling now could act on a message someone else has."""


class MessageNotFound(ServiceBusQueueError):
    """No message with that sequence number is where the caller looked."""


class InvalidOperation(ServiceBusQueueError):
    """Service Bus forbids the operation, so the embedded queue does too."""


@dataclass(frozen=True)
class QueueProperties:
    """A queue's settings, defaulting to what Service Bus and our Bicep use."""

    # Receipts before the message goes to the dead-letter sub-queue; Service
    # Bus defaults to 10.
    max_delivery_count: int = 10
    # How long a receiver holds a message before it is handed out again.
    lock_duration: timedelta = timedelta(seconds=60)
    # Sends with a message id seen this recently are dropped; None turns
    # duplicate detection off.
    duplicate_detection_window: timedelta | None = timedelta(minutes=10)
    # Time-to-live for messages sent without one; None means they never expire.
    default_ttl: timedelta | None = None
    # Expired messages go to the dead-letter sub-queue instead of vanishing.
    dead_lettering_on_expiration: bool = True

    def __post_init__(self) -> None:
        """Refuse settings Service Bus would refuse, before they reach the file."""
        if self.max_delivery_count < 1:
            raise ValueError(
                f"max_delivery_count must be at least 1, got {self.max_delivery_count}"
            )
        if self.lock_duration <= timedelta(0):
            raise ValueError(
                f"lock_duration must be positive, got {self.lock_duration}"
            )
        if self.default_ttl is not None and self.default_ttl <= timedelta(0):
            raise ValueError(f"default_ttl must be positive, got {self.default_ttl}")


@dataclass(frozen=True)
class SendResult:
    """What a send did; `duplicate` is True when it was dropped as a repeat."""

    queue: str
    message_id: str
    # For a duplicate, the sequence number the first send got.
    sequence_number: int
    duplicate: bool = False


@dataclass(frozen=True, kw_only=True)
class QueueMessage:
    """A message read from a queue or its dead-letter sub-queue without a lock."""

    queue: str
    sequence_number: int
    message_id: str
    body: bytes
    content_type: str | None
    correlation_id: str | None
    subject: str | None
    application_properties: dict[str, Any]
    # When the message became active: the send time, or its scheduled time.
    enqueued_time: datetime
    scheduled_enqueue_time: datetime | None
    expires_at: datetime | None
    time_to_live: timedelta | None
    # Receipts so far; a dead letter keeps the count it was dead-lettered with.
    delivery_count: int
    dead_lettered: bool = False
    dead_letter_reason: str | None = None
    dead_letter_description: str | None = None
    dead_lettered_time: datetime | None = None


@dataclass(frozen=True, kw_only=True)
class ReceivedMessage(QueueMessage):
    """A message this receiver holds until `locked_until`, settled by its token."""

    lock_token: str
    locked_until: datetime


@dataclass(frozen=True)
class QueueStats:
    """Message counts by state, as the Service Bus runtime properties report them."""

    # Visible or locked messages, like Service Bus's active count.
    active: int
    # Messages whose scheduled enqueue time is still ahead.
    scheduled: int
    dead_lettered: int
    # The part of `active` a receiver holds right now.
    locked: int = 0


@dataclass
class _Row:
    """One stored message, as read back inside a transaction."""

    queue: str
    sequence_number: int
    sub_queue: str
    message_id: str
    body: bytes
    content_type: str | None
    correlation_id: str | None
    subject: str | None
    application_properties: str
    enqueued_at: float
    scheduled_at: float | None
    expires_at: float | None
    time_to_live: float | None
    delivery_count: int
    lock_token: str | None
    locked_until: float | None
    dead_letter_reason: str | None
    dead_letter_description: str | None
    dead_lettered_at: float | None


_ROW_COLUMNS = (
    "queue, sequence_number, sub_queue, message_id, body, content_type, "
    "correlation_id, subject, application_properties, enqueued_at, scheduled_at, "
    "expires_at, time_to_live, delivery_count, lock_token, locked_until, "
    "dead_letter_reason, dead_letter_description, dead_lettered_at"
)


def _utcnow() -> datetime:
    """Read the wall clock in UTC, the default when no test clock is injected."""
    return datetime.now(UTC)


def _epoch(moment: datetime) -> float:
    """Store times as UTC seconds, refusing naive times that would shift silently."""
    if moment.tzinfo is None:
        raise ValueError(f"time {moment.isoformat()} has no time zone; pass UTC")
    return moment.timestamp()


def _moment(epoch: float | None) -> datetime | None:
    """Turn stored seconds back into an aware UTC datetime."""
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC)


def _seconds(span: timedelta | None) -> float | None:
    """Store a duration as seconds, keeping None for "not set"."""
    return None if span is None else span.total_seconds()


def _encode_properties(properties: Mapping[str, Any] | None) -> str:
    """Serialize application properties, naming the key that cannot be stored."""
    properties = dict(properties or {})
    for key, value in properties.items():
        if not isinstance(value, str | int | float | bool | type(None)):
            raise TypeError(
                f"application property {key!r} is a {type(value).__name__}; "
                "the embedded queue stores only str, int, float, bool and None"
            )
    return json.dumps(properties)


def _log_extra(queue: str, message_id: str, **more: Any) -> dict[str, Any]:
    """Attach queue and message id to a log record as searchable fields."""
    return {events.ATTR_QUEUE: queue, "messageId": message_id, **more}


class ServiceBusQueueStore:
    """Named queues with Service Bus semantics in one SQLite file."""

    def __init__(
        self,
        path: str | Path,
        *,
        clock: Clock = _utcnow,
        busy_timeout: float = 30.0,
    ) -> None:
        """Open or create the store; `busy_timeout` bounds waits on other writers."""
        self.path = Path(path)
        self._clock = clock
        # One connection behind a lock: SQLite serializes writers anyway, and a
        # shared connection makes close() simple and thread-safe.
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(
            self.path,
            timeout=busy_timeout,
            isolation_level=None,
            check_same_thread=False,
        )
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("PRAGMA journal_mode=WAL")
        # FULL makes an accepted send survive power loss, not only a process kill.
        self._conn.execute("PRAGMA synchronous=FULL")
        with self._write() as conn:
            # executescript would commit the open transaction, so run each
            # statement inside it instead.
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version={_SCHEMA_VERSION}")

    def close(self) -> None:
        """Close the file; unsettled locks simply expire, as after a crash."""
        with self._lock:
            self._conn.close()

    def __enter__(self) -> ServiceBusQueueStore:
        """Let tests and the runtime scope a store with `with`."""
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Close on leaving the `with` block, even on error."""
        self.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """Run a block as one write transaction that other processes wait for."""
        with self._lock:
            # IMMEDIATE takes the write lock up front, so a select-then-update
            # in receive cannot race another process doing the same.
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    # Queues

    def ensure_queue(
        self, name: str, properties: QueueProperties | None = None
    ) -> QueueProperties:
        """Create the queue, or update its settings, so startup is idempotent."""
        if not name:
            raise ValueError("a queue needs a non-empty name")
        props = properties or QueueProperties()
        with self._write() as conn:
            conn.execute(
                "INSERT INTO queues (name, max_delivery_count, lock_duration, "
                "duplicate_detection_window, default_ttl, "
                "dead_lettering_on_expiration) VALUES (?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET "
                "max_delivery_count = excluded.max_delivery_count, "
                "lock_duration = excluded.lock_duration, "
                "duplicate_detection_window = excluded.duplicate_detection_window, "
                "default_ttl = excluded.default_ttl, "
                "dead_lettering_on_expiration = excluded.dead_lettering_on_expiration",
                (
                    name,
                    props.max_delivery_count,
                    props.lock_duration.total_seconds(),
                    _seconds(props.duplicate_detection_window),
                    _seconds(props.default_ttl),
                    int(props.dead_lettering_on_expiration),
                ),
            )
        return props

    def queue_properties(self, name: str) -> QueueProperties:
        """Read a queue's settings, for the CLI and the HTTP API."""
        with self._write() as conn:
            return self._properties(conn, name)

    def queue_names(self) -> list[str]:
        """List the queues in name order, for the CLI and the HTTP API."""
        with self._lock:
            rows = self._conn.execute("SELECT name FROM queues ORDER BY name")
            return [row["name"] for row in rows]

    def _properties(self, conn: sqlite3.Connection, name: str) -> QueueProperties:
        """Load settings, failing the way Service Bus does for a missing queue."""
        row = conn.execute("SELECT * FROM queues WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise QueueNotFound(
                f"queue {name!r} does not exist in {self.path}; "
                "create it with ensure_queue first"
            )
        window = row["duplicate_detection_window"]
        ttl = row["default_ttl"]
        return QueueProperties(
            max_delivery_count=row["max_delivery_count"],
            lock_duration=timedelta(seconds=row["lock_duration"]),
            duplicate_detection_window=(
                None if window is None else timedelta(seconds=window)
            ),
            default_ttl=None if ttl is None else timedelta(seconds=ttl),
            dead_lettering_on_expiration=bool(row["dead_lettering_on_expiration"]),
        )

    # Sending

    def send(
        self,
        queue: str,
        body: bytes,
        *,
        message_id: str | None = None,
        content_type: str | None = None,
        correlation_id: str | None = None,
        subject: str | None = None,
        application_properties: Mapping[str, Any] | None = None,
        scheduled_enqueue_time: datetime | None = None,
        time_to_live: timedelta | None = None,
    ) -> SendResult:
        """Enqueue a message; a repeat of a recent message id is dropped silently."""
        if not isinstance(body, bytes | bytearray | memoryview):
            raise TypeError(f"body must be bytes, got {type(body).__name__}")
        if time_to_live is not None and time_to_live <= timedelta(0):
            raise ValueError(f"time_to_live must be positive, got {time_to_live}")
        message_id = message_id or random_hex()
        properties_json = _encode_properties(application_properties)
        now = _epoch(self._clock())
        scheduled_at = (
            None if scheduled_enqueue_time is None else _epoch(scheduled_enqueue_time)
        )

        with self._write() as conn:
            props = self._properties(conn, queue)
            original = self._recent_send(conn, queue, props, message_id, now)
            if original is not None:
                logger.info(
                    "queue %s: message %s dropped as a duplicate of sequence %d",
                    queue,
                    message_id,
                    original,
                    extra=_log_extra(queue, message_id),
                )
                return SendResult(queue, message_id, original, duplicate=True)
            sequence_number = self._insert(
                conn,
                queue,
                props,
                message_id=message_id,
                body=bytes(body),
                content_type=content_type,
                correlation_id=correlation_id,
                subject=subject,
                properties_json=properties_json,
                now=now,
                scheduled_at=scheduled_at,
                time_to_live=_seconds(time_to_live),
            )
            if props.duplicate_detection_window is not None:
                conn.execute(
                    "INSERT OR REPLACE INTO message_ids "
                    "(queue, message_id, recorded_at, sequence_number) "
                    "VALUES (?, ?, ?, ?)",
                    (queue, message_id, now, sequence_number),
                )

        logger.debug(
            "queue %s: message %s sent as sequence %d",
            queue,
            message_id,
            sequence_number,
            extra=_log_extra(queue, message_id, sequenceNumber=sequence_number),
        )
        return SendResult(queue, message_id, sequence_number)

    def _recent_send(
        self,
        conn: sqlite3.Connection,
        queue: str,
        props: QueueProperties,
        message_id: str,
        now: float,
    ) -> int | None:
        """Return the sequence number of a send of this id within the window."""
        window = props.duplicate_detection_window
        if window is None:
            return None
        horizon = now - window.total_seconds()
        # Forget ids that left the window, so the table stays window-sized.
        conn.execute(
            "DELETE FROM message_ids WHERE queue = ? AND recorded_at <= ?",
            (queue, horizon),
        )
        row = conn.execute(
            "SELECT sequence_number FROM message_ids "
            "WHERE queue = ? AND message_id = ?",
            (queue, message_id),
        ).fetchone()
        return None if row is None else int(row["sequence_number"])

    def _insert(
        self,
        conn: sqlite3.Connection,
        queue: str,
        props: QueueProperties,
        *,
        message_id: str,
        body: bytes,
        content_type: str | None,
        correlation_id: str | None,
        subject: str | None,
        properties_json: str,
        now: float,
        scheduled_at: float | None,
        time_to_live: float | None,
    ) -> int:
        """Store a new active message under the queue's next sequence number."""
        sequence_number = conn.execute(
            "UPDATE queues SET last_sequence_number = last_sequence_number + 1 "
            "WHERE name = ? RETURNING last_sequence_number",
            (queue,),
        ).fetchone()[0]

        # A scheduled message becomes active, and starts to age, at its time.
        enqueued_at = max(now, scheduled_at) if scheduled_at is not None else now
        # Service Bus caps a message's time-to-live at the queue's default.
        default_ttl = _seconds(props.default_ttl)
        ttl_options = [t for t in (time_to_live, default_ttl) if t is not None]
        effective_ttl = min(ttl_options) if ttl_options else None
        expires_at = None if effective_ttl is None else enqueued_at + effective_ttl

        conn.execute(
            "INSERT INTO messages (queue, sequence_number, sub_queue, message_id, "
            "body, content_type, correlation_id, subject, application_properties, "
            "enqueued_at, scheduled_at, expires_at, time_to_live) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                queue,
                sequence_number,
                _ACTIVE,
                message_id,
                body,
                content_type,
                correlation_id,
                subject,
                properties_json,
                enqueued_at,
                scheduled_at,
                expires_at,
                effective_ttl,
            ),
        )
        return int(sequence_number)

    # Receiving and settling

    def receive(
        self, queue: str, max_messages: int = 1, *, now: datetime | None = None
    ) -> list[ReceivedMessage]:
        """Lock up to `max_messages` visible messages, oldest sequence first."""
        if max_messages < 1:
            raise ValueError(f"max_messages must be at least 1, got {max_messages}")
        at = _epoch(now or self._clock())
        with self._write() as conn:
            props = self._properties(conn, queue)
            self._sweep(conn, queue, props, at)
            rows = self._select(
                conn,
                "WHERE queue = ? AND sub_queue = ? AND enqueued_at <= ? "
                "AND (locked_until IS NULL OR locked_until <= ?) "
                "ORDER BY sequence_number LIMIT ?",
                (queue, _ACTIVE, at, at, max_messages),
            )
            return [self._lock_row(conn, row, props, at) for row in rows]

    def receive_dead_letters(
        self, queue: str, max_messages: int = 1, *, now: datetime | None = None
    ) -> list[ReceivedMessage]:
        """Lock dead letters so a mover can copy them elsewhere, then complete them."""
        if max_messages < 1:
            raise ValueError(f"max_messages must be at least 1, got {max_messages}")
        at = _epoch(now or self._clock())
        with self._write() as conn:
            props = self._properties(conn, queue)
            rows = self._select(
                conn,
                "WHERE queue = ? AND sub_queue = ? "
                "AND (locked_until IS NULL OR locked_until <= ?) "
                "ORDER BY sequence_number LIMIT ?",
                (queue, _DEAD_LETTERED, at, max_messages),
            )
            return [self._lock_row(conn, row, props, at) for row in rows]

    def _lock_row(
        self, conn: sqlite3.Connection, row: _Row, props: QueueProperties, at: float
    ) -> ReceivedMessage:
        """Give one message a fresh lock; only active receipts count as deliveries."""
        if row.lock_token is not None and row.sub_queue == _ACTIVE:
            logger.info(
                "queue %s: message %s redelivered after its lock expired, "
                "delivery %d of %d",
                row.queue,
                row.message_id,
                row.delivery_count + 1,
                props.max_delivery_count,
                extra=_log_extra(row.queue, row.message_id),
            )
        row.lock_token = str(random_uuid())
        row.locked_until = at + props.lock_duration.total_seconds()
        # A dead letter keeps the count it died with; its sub-queue has no limit.
        if row.sub_queue == _ACTIVE:
            row.delivery_count += 1
        conn.execute(
            "UPDATE messages SET lock_token = ?, locked_until = ?, delivery_count = ? "
            "WHERE queue = ? AND sequence_number = ?",
            (
                row.lock_token,
                row.locked_until,
                row.delivery_count,
                row.queue,
                row.sequence_number,
            ),
        )
        logger.debug(
            "queue %s: message %s locked, delivery %d",
            row.queue,
            row.message_id,
            row.delivery_count,
            extra=_log_extra(row.queue, row.message_id),
        )
        return self._received(row)

    def complete(self, lock_token: str) -> None:
        """Remove a locked message for good, from the queue or its dead letters."""
        with self._write() as conn:
            row = self._locked(conn, lock_token, "complete")
            conn.execute(
                "DELETE FROM messages WHERE queue = ? AND sequence_number = ?",
                (row.queue, row.sequence_number),
            )
        logger.debug(
            "queue %s: message %s completed",
            row.queue,
            row.message_id,
            extra=_log_extra(row.queue, row.message_id),
        )

    def abandon(self, lock_token: str) -> None:
        """Release the lock at once; the last allowed delivery dead-letters instead."""
        with self._write() as conn:
            row = self._locked(conn, lock_token, "abandon")
            props = self._properties(conn, row.queue)
            now = _epoch(self._clock())
            if (
                row.sub_queue == _ACTIVE
                and row.delivery_count >= props.max_delivery_count
            ):
                self._move_to_dead_letters(
                    conn,
                    row,
                    REASON_MAX_DELIVERY_COUNT_EXCEEDED,
                    f"Message was abandoned on delivery {row.delivery_count}, "
                    f"and the queue allows {props.max_delivery_count} deliveries.",
                    now,
                )
                return
            conn.execute(
                "UPDATE messages SET lock_token = NULL, locked_until = NULL "
                "WHERE queue = ? AND sequence_number = ?",
                (row.queue, row.sequence_number),
            )
        logger.info(
            "queue %s: message %s abandoned on delivery %d of %d",
            row.queue,
            row.message_id,
            row.delivery_count,
            props.max_delivery_count,
            extra=_log_extra(row.queue, row.message_id),
        )

    def dead_letter(self, lock_token: str, reason: str, description: str = "") -> None:
        """Move a locked message to the dead-letter sub-queue with the caller's why."""
        with self._write() as conn:
            row = self._locked(conn, lock_token, "dead-letter")
            if row.sub_queue == _DEAD_LETTERED:
                raise InvalidOperation(
                    f"message {row.message_id} (sequence {row.sequence_number}) "
                    f"is already in the dead-letter sub-queue of {row.queue!r}; "
                    "Service Bus cannot dead-letter a dead letter"
                )
            self._move_to_dead_letters(
                conn, row, reason, description, _epoch(self._clock())
            )

    def renew_lock(self, lock_token: str) -> datetime:
        """Extend a lock by the queue's lock duration, for long-running handlers."""
        with self._write() as conn:
            row = self._locked(conn, lock_token, "renew the lock of")
            props = self._properties(conn, row.queue)
            locked_until = _epoch(self._clock()) + props.lock_duration.total_seconds()
            conn.execute(
                "UPDATE messages SET locked_until = ? "
                "WHERE queue = ? AND sequence_number = ?",
                (locked_until, row.queue, row.sequence_number),
            )
        renewed = _moment(locked_until)
        assert renewed is not None
        return renewed

    def _locked(self, conn: sqlite3.Connection, lock_token: str, action: str) -> _Row:
        """Find the message a live lock token holds, or say why it cannot be used."""
        rows = self._select(conn, "WHERE lock_token = ?", (lock_token,))
        if not rows:
            raise MessageLockLost(
                f"cannot {action} with lock token {lock_token}: no message holds "
                "it; it was settled, or its lock expired and the message was "
                "received again"
            )
        row = rows[0]
        now = _epoch(self._clock())
        assert row.locked_until is not None
        if row.locked_until <= now:
            raise MessageLockLost(
                f"cannot {action} message {row.message_id} in queue {row.queue!r}: "
                f"its lock expired {now - row.locked_until:.3f} s ago; the message "
                "will be delivered again"
            )
        return row

    def _sweep(
        self, conn: sqlite3.Connection, queue: str, props: QueueProperties, at: float
    ) -> None:
        """Apply what time has decided: spent deliveries and expired messages."""
        # A lock that expired on the last allowed delivery counts as an abandon.
        spent = self._select(
            conn,
            "WHERE queue = ? AND sub_queue = ? AND locked_until <= ? "
            "AND delivery_count >= ?",
            (queue, _ACTIVE, at, props.max_delivery_count),
        )
        # Dead-letter times say when the message died, not when a sweep noticed.
        for row in spent:
            assert row.locked_until is not None
            self._move_to_dead_letters(
                conn,
                row,
                REASON_MAX_DELIVERY_COUNT_EXCEEDED,
                f"Message lock expired on delivery {row.delivery_count}, and the "
                f"queue allows {props.max_delivery_count} deliveries.",
                row.locked_until,
            )

        # Service Bus lets the holder of a lock settle an expired message, so
        # only unlocked messages expire here.
        expired = self._select(
            conn,
            "WHERE queue = ? AND sub_queue = ? AND expires_at <= ? "
            "AND (locked_until IS NULL OR locked_until <= ?)",
            (queue, _ACTIVE, at, at),
        )
        for row in expired:
            assert row.expires_at is not None and row.time_to_live is not None
            if props.dead_lettering_on_expiration:
                self._move_to_dead_letters(
                    conn,
                    row,
                    REASON_TTL_EXPIRED,
                    f"Message outlived its time-to-live of {row.time_to_live:g} s "
                    f"after {row.delivery_count} deliveries.",
                    max(row.expires_at, row.locked_until or row.expires_at),
                )
            else:
                conn.execute(
                    "DELETE FROM messages WHERE queue = ? AND sequence_number = ?",
                    (row.queue, row.sequence_number),
                )
                logger.info(
                    "queue %s: message %s expired and was dropped",
                    row.queue,
                    row.message_id,
                    extra=_log_extra(row.queue, row.message_id),
                )

    def _move_to_dead_letters(
        self,
        conn: sqlite3.Connection,
        row: _Row,
        reason: str,
        description: str,
        at: float,
    ) -> None:
        """Park a message in the dead-letter sub-queue, unlocked, with its why."""
        conn.execute(
            "UPDATE messages SET sub_queue = ?, lock_token = NULL, "
            "locked_until = NULL, dead_letter_reason = ?, "
            "dead_letter_description = ?, dead_lettered_at = ? "
            "WHERE queue = ? AND sequence_number = ?",
            (
                _DEAD_LETTERED,
                reason,
                description,
                at,
                row.queue,
                row.sequence_number,
            ),
        )
        logger.warning(
            "%s queue=%s message_id=%s sequence=%d reason=%s delivery_count=%d: %s",
            events.QUEUE_MESSAGE_DEAD_LETTERED,
            row.queue,
            row.message_id,
            row.sequence_number,
            reason,
            row.delivery_count,
            description,
            extra=_log_extra(
                row.queue,
                row.message_id,
                **{events.ATTR_REASON: reason, "deliveryCount": row.delivery_count},
            ),
        )

    # Reading without locking

    def peek(
        self, queue: str, n: int = 1, from_sequence: int | None = None
    ) -> list[QueueMessage]:
        """Read active and scheduled messages in sequence order without locking."""
        at = _epoch(self._clock())
        with self._write() as conn:
            props = self._properties(conn, queue)
            self._sweep(conn, queue, props, at)
            rows = self._select(
                conn,
                "WHERE queue = ? AND sub_queue = ? AND sequence_number >= ? "
                "ORDER BY sequence_number LIMIT ?",
                (queue, _ACTIVE, from_sequence or 0, n),
            )
        return [self._message(row) for row in rows]

    def dead_letters(
        self, queue: str, n: int = 10, from_sequence: int | None = None
    ) -> list[QueueMessage]:
        """Read the dead-letter sub-queue without locking, for operators."""
        with self._write() as conn:
            self._properties(conn, queue)
            rows = self._select(
                conn,
                "WHERE queue = ? AND sub_queue = ? AND sequence_number >= ? "
                "ORDER BY sequence_number LIMIT ?",
                (queue, _DEAD_LETTERED, from_sequence or 0, n),
            )
        return [self._message(row) for row in rows]

    def resubmit_dead_letter(self, queue: str, sequence_number: int) -> SendResult:
        """Send a dead letter back to its queue as a fresh message, once fixed."""
        at = _epoch(self._clock())
        with self._write() as conn:
            props = self._properties(conn, queue)
            rows = self._select(
                conn,
                "WHERE queue = ? AND sub_queue = ? AND sequence_number = ?",
                (queue, _DEAD_LETTERED, sequence_number),
            )
            if not rows:
                raise MessageNotFound(
                    f"queue {queue!r} has no dead letter with sequence number "
                    f"{sequence_number}"
                )
            old = rows[0]
            if old.locked_until is not None and old.locked_until > at:
                raise InvalidOperation(
                    f"dead letter {old.message_id} (sequence {sequence_number}) in "
                    f"queue {queue!r} is locked by a receiver until "
                    f"{_moment(old.locked_until)}; complete or abandon it there"
                )
            conn.execute(
                "DELETE FROM messages WHERE queue = ? AND sequence_number = ?",
                (queue, sequence_number),
            )
            # The resubmit is deliberate, so duplicate detection does not apply;
            # the message gets its full delivery count and time-to-live again.
            new_sequence = self._insert(
                conn,
                queue,
                props,
                message_id=old.message_id,
                body=old.body,
                content_type=old.content_type,
                correlation_id=old.correlation_id,
                subject=old.subject,
                properties_json=old.application_properties,
                now=at,
                scheduled_at=None,
                time_to_live=old.time_to_live,
            )
        logger.info(
            "queue %s: dead letter %s resubmitted, sequence %d became %d",
            queue,
            old.message_id,
            sequence_number,
            new_sequence,
            extra=_log_extra(queue, old.message_id),
        )
        return SendResult(queue, old.message_id, new_sequence)

    def queue_stats(self, queue: str) -> QueueStats:
        """Count messages by state, after applying expiries that are due."""
        at = _epoch(self._clock())
        with self._write() as conn:
            props = self._properties(conn, queue)
            self._sweep(conn, queue, props, at)
            row = conn.execute(
                "SELECT "
                "SUM(sub_queue = :active AND enqueued_at <= :at), "
                "SUM(sub_queue = :active AND enqueued_at > :at), "
                "SUM(sub_queue = :dead), "
                "SUM(sub_queue = :active AND locked_until > :at) "
                "FROM messages WHERE queue = :queue",
                {"active": _ACTIVE, "dead": _DEAD_LETTERED, "at": at, "queue": queue},
            ).fetchone()
        active, scheduled, dead, locked = (int(value or 0) for value in row)
        return QueueStats(
            active=active, scheduled=scheduled, dead_lettered=dead, locked=locked
        )

    def next_due(self, queue: str) -> datetime | None:
        """When a message next becomes receivable, so a poller can sleep until then."""
        at = _epoch(self._clock())
        with self._lock:
            row = self._conn.execute(
                "SELECT MIN(CASE WHEN locked_until > enqueued_at THEN locked_until "
                "ELSE enqueued_at END) FROM messages "
                "WHERE queue = ? AND sub_queue = ?",
                (queue, _ACTIVE),
            ).fetchone()
        due = row[0]
        if due is None:
            return None
        return _moment(max(due, at))

    # Rows and messages

    def _select(self, conn: sqlite3.Connection, where: str, params: Any) -> list[_Row]:
        """Read messages into rows with a caller-supplied filter and order."""
        cursor = conn.execute(f"SELECT {_ROW_COLUMNS} FROM messages {where}", params)
        return [_Row(**dict(row)) for row in cursor.fetchall()]

    def _message(self, row: _Row) -> QueueMessage:
        """Turn a stored row into the record a peek returns."""
        return QueueMessage(**self._fields(row))

    def _received(self, row: _Row) -> ReceivedMessage:
        """Turn a freshly locked row into the record a receive returns."""
        locked_until = _moment(row.locked_until)
        assert row.lock_token is not None and locked_until is not None
        return ReceivedMessage(
            **self._fields(row), lock_token=row.lock_token, locked_until=locked_until
        )

    def _fields(self, row: _Row) -> dict[str, Any]:
        """Decode the stored columns every message record shares."""
        return dict(
            queue=row.queue,
            sequence_number=row.sequence_number,
            message_id=row.message_id,
            body=bytes(row.body),
            content_type=row.content_type,
            correlation_id=row.correlation_id,
            subject=row.subject,
            application_properties=json.loads(row.application_properties),
            enqueued_time=datetime.fromtimestamp(row.enqueued_at, UTC),
            scheduled_enqueue_time=_moment(row.scheduled_at),
            expires_at=_moment(row.expires_at),
            time_to_live=(
                None
                if row.time_to_live is None
                else timedelta(seconds=row.time_to_live)
            ),
            delivery_count=row.delivery_count,
            dead_lettered=row.sub_queue == _DEAD_LETTERED,
            dead_letter_reason=row.dead_letter_reason,
            dead_letter_description=row.dead_letter_description,
            dead_lettered_time=_moment(row.dead_lettered_at),
        )


def to_function_message(
    received: QueueMessage, *, now: datetime | None = None
) -> ServiceBusMessage:
    """Build what the Functions host would pass to a service_bus_queue_trigger."""
    lock_token, locked_until = None, None
    if isinstance(received, ReceivedMessage):
        lock_token, locked_until = received.lock_token, received.locked_until
    properties = dict(received.application_properties)
    moment = now or _utcnow()
    scheduled = (
        received.scheduled_enqueue_time is not None
        and received.scheduled_enqueue_time > moment
    )
    state = _STATE_SCHEDULED if scheduled else _STATE_ACTIVE
    # Service Bus names the source entity when a dead letter travels on, which
    # is the only way a function sees one here: through a mover.
    dead_letter_source = received.queue if received.dead_lettered else None

    metadata: dict[str, meta.Datum] = {
        "MessageId": meta.Datum(received.message_id, "string"),
        "SequenceNumber": meta.Datum(received.sequence_number, "int"),
        "DeliveryCount": meta.Datum(received.delivery_count, "int"),
        "EnqueuedTimeUtc": meta.Datum(received.enqueued_time.isoformat(), "string"),
        "ContentType": meta.Datum(received.content_type, "string"),
        "CorrelationId": meta.Datum(received.correlation_id, "string"),
        "Subject": meta.Datum(received.subject, "string"),
        "Label": meta.Datum(received.subject, "string"),
        "LockToken": meta.Datum(lock_token, "string"),
        "ApplicationProperties": meta.Datum(json.dumps(properties), "json"),
        "UserProperties": meta.Datum(json.dumps(properties), "json"),
    }
    if locked_until is not None:
        metadata["LockedUntil"] = meta.Datum(locked_until.isoformat(), "string")
    if received.expires_at is not None:
        metadata["ExpiresAtUtc"] = meta.Datum(received.expires_at.isoformat(), "string")
    if received.dead_lettered:
        metadata["DeadLetterReason"] = meta.Datum(received.dead_letter_reason, "string")
        metadata["DeadLetterErrorDescription"] = meta.Datum(
            received.dead_letter_description, "string"
        )
        metadata["DeadLetterSource"] = meta.Datum(dead_letter_source, "string")

    return ServiceBusMessage(
        body=received.body,
        trigger_metadata=metadata,
        application_properties=properties,
        user_properties=dict(properties),
        content_type=received.content_type,
        correlation_id=received.correlation_id,
        dead_letter_error_description=received.dead_letter_description,
        dead_letter_reason=received.dead_letter_reason,
        dead_letter_source=dead_letter_source,
        delivery_count=received.delivery_count,
        enqueued_sequence_number=received.sequence_number,
        enqueued_time_utc=received.enqueued_time,
        expires_at_utc=received.expires_at,
        label=received.subject,
        locked_until=locked_until,
        lock_token=lock_token,
        message_id=received.message_id,
        scheduled_enqueue_time_utc=received.scheduled_enqueue_time,
        sequence_number=received.sequence_number,
        state=state,
        subject=received.subject,
        time_to_live=received.time_to_live,
    )
