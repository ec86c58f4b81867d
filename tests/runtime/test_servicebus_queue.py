"""Behaviour of the embedded Service Bus queue that feeds queue triggers."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import azure.functions as func
import pytest

from duralane import events
from duralane.runtime.servicebus import (
    REASON_MAX_DELIVERY_COUNT_EXCEEDED,
    REASON_TTL_EXPIRED,
    InvalidOperation,
    MessageLockLost,
    QueueNotFound,
    QueueProperties,
    ServiceBusQueueStore,
    to_function_message,
)

START = datetime(2030, 1, 1, 9, 0, tzinfo=UTC)


class SteppedClock:
    """A clock that moves only when a test says so, shared by threads."""

    def __init__(self, start: datetime = START) -> None:
        self.now = start
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self.now

    def advance(self, **delta: float) -> None:
        with self._lock:
            self.now += timedelta(**delta)


@pytest.fixture
def clock() -> SteppedClock:
    return SteppedClock()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "servicebus.sqlite"


@pytest.fixture
def store(db_path: Path, clock: SteppedClock):
    with ServiceBusQueueStore(db_path, clock=clock) as opened:
        yield opened


def new_queue(
    store: ServiceBusQueueStore, properties: QueueProperties | None = None
) -> str:
    name = f"q-{uuid.uuid4().hex[:8]}"
    store.ensure_queue(name, properties)
    return name


def test_sent_message_is_received_once_and_gone_after_complete(store):
    queue = new_queue(store)
    sent = store.send(queue, b"hello", content_type="text/plain")

    [message] = store.receive(queue)
    assert message.body == b"hello"
    assert message.message_id == sent.message_id
    assert message.sequence_number == sent.sequence_number == 1
    assert message.delivery_count == 1
    assert message.lock_token is not None
    assert message.locked_until == START + timedelta(seconds=60)
    assert store.receive(queue) == []

    store.complete(message.lock_token)

    assert store.peek(queue, 10) == []
    assert store.queue_stats(queue).active == 0


def test_receive_takes_messages_in_sequence_order_up_to_the_limit(store):
    queue = new_queue(store)
    for index in range(5):
        store.send(queue, str(index).encode())

    first = store.receive(queue, 3)
    second = store.receive(queue, 3)

    assert [m.body for m in first] == [b"0", b"1", b"2"]
    assert [m.body for m in second] == [b"3", b"4"]


def test_expired_lock_redelivers_with_delivery_count_plus_one(store, clock):
    queue = new_queue(store, QueueProperties(lock_duration=timedelta(seconds=30)))
    store.send(queue, b"work")
    [first] = store.receive(queue)

    clock.advance(seconds=29)
    assert store.receive(queue) == []
    clock.advance(seconds=1)
    [second] = store.receive(queue)

    assert second.sequence_number == first.sequence_number
    assert second.delivery_count == first.delivery_count + 1
    assert second.lock_token != first.lock_token


def test_abandoned_message_is_visible_again_at_once(store):
    queue = new_queue(store)
    store.send(queue, b"work")
    [first] = store.receive(queue)

    store.abandon(first.lock_token)
    [second] = store.receive(queue)

    assert second.delivery_count == 2


def test_abandon_on_last_delivery_dead_letters_with_reason(store, caplog):
    queue = new_queue(store, QueueProperties(max_delivery_count=3))
    store.send(queue, b"poison", message_id="poison-1")

    caplog.set_level(logging.WARNING, logger="duralane.runtime.servicebus")
    for _ in range(3):
        [message] = store.receive(queue)
        store.abandon(message.lock_token)

    assert store.receive(queue) == []
    [dead] = store.dead_letters(queue)
    assert dead.message_id == "poison-1"
    assert dead.dead_letter_reason == REASON_MAX_DELIVERY_COUNT_EXCEEDED
    assert "delivery 3" in dead.dead_letter_description
    assert dead.delivery_count == 3
    assert dead.dead_lettered_time == START
    assert dead.body == b"poison"

    [record] = caplog.records
    assert record.levelno == logging.WARNING
    assert record.getMessage().startswith(events.QUEUE_MESSAGE_DEAD_LETTERED)
    assert getattr(record, events.ATTR_QUEUE) == queue
    assert getattr(record, events.ATTR_REASON) == REASON_MAX_DELIVERY_COUNT_EXCEEDED
    assert "poison-1" in record.getMessage()


def test_lock_expiring_on_every_delivery_ends_in_dead_letters(store, clock):
    queue = new_queue(
        store,
        QueueProperties(max_delivery_count=2, lock_duration=timedelta(seconds=10)),
    )
    store.send(queue, b"crashes the handler")

    for expected_count in (1, 2):
        [message] = store.receive(queue)
        assert message.delivery_count == expected_count
        clock.advance(seconds=10)

    assert store.receive(queue) == []
    [dead] = store.dead_letters(queue)
    assert dead.dead_letter_reason == REASON_MAX_DELIVERY_COUNT_EXCEEDED
    assert "lock expired" in dead.dead_letter_description
    assert dead.delivery_count == 2
    assert dead.dead_lettered_time == START + timedelta(seconds=20)
    assert store.queue_stats(queue).dead_lettered == 1


def test_explicit_dead_letter_keeps_the_callers_reason(store):
    queue = new_queue(store)
    store.send(queue, b"bad input", application_properties={"jobId": "j-1"})
    [message] = store.receive(queue)

    store.dead_letter(message.lock_token, "ValidationFailed", "missing field url")

    [dead] = store.dead_letters(queue)
    assert dead.dead_letter_reason == "ValidationFailed"
    assert dead.dead_letter_description == "missing field url"
    assert dead.application_properties == {"jobId": "j-1"}
    assert dead.delivery_count == 1
    assert store.queue_stats(queue).active == 0


def test_dead_letters_can_be_received_and_completed_by_a_mover(store):
    queue = new_queue(store)
    store.send(queue, b"to move")
    [message] = store.receive(queue)
    store.dead_letter(message.lock_token, "Moved", "")

    [dead] = store.receive_dead_letters(queue)
    assert dead.dead_lettered
    assert dead.lock_token is not None
    assert store.receive_dead_letters(queue) == []
    with pytest.raises(InvalidOperation):
        store.dead_letter(dead.lock_token, "again")

    store.complete(dead.lock_token)

    assert store.dead_letters(queue) == []
    assert store.queue_stats(queue).dead_lettered == 0


def test_resubmitted_dead_letter_is_delivered_afresh(store):
    queue = new_queue(store)
    store.send(queue, b"retry me", message_id="m-1")
    [message] = store.receive(queue)
    store.dead_letter(message.lock_token, "Transient")

    result = store.resubmit_dead_letter(queue, message.sequence_number)

    [again] = store.receive(queue)
    assert result.sequence_number == again.sequence_number == 2
    assert again.message_id == "m-1"
    assert again.delivery_count == 1
    assert store.dead_letters(queue) == []


def test_scheduled_message_is_invisible_until_its_time(store, clock):
    queue = new_queue(store)
    due = START + timedelta(minutes=5)
    store.send(queue, b"later", scheduled_enqueue_time=due)
    store.send(queue, b"now")

    [now_message] = store.receive(queue)
    assert now_message.body == b"now"
    store.complete(now_message.lock_token)
    assert store.receive(queue) == []
    assert store.queue_stats(queue).scheduled == 1
    assert store.next_due(queue) == due

    clock.advance(minutes=5)
    [later] = store.receive(queue)

    assert later.body == b"later"
    assert later.enqueued_time == due
    assert later.scheduled_enqueue_time == due


def test_duplicate_within_window_is_dropped_and_reported(store, clock):
    queue = new_queue(
        store, QueueProperties(duplicate_detection_window=timedelta(minutes=10))
    )
    first = store.send(queue, b"one", message_id="order-7")
    clock.advance(minutes=9)

    repeat = store.send(queue, b"two", message_id="order-7")

    assert not first.duplicate
    assert repeat.duplicate
    assert repeat.sequence_number == first.sequence_number
    assert [m.body for m in store.peek(queue, 10)] == [b"one"]


def test_same_message_id_is_accepted_again_after_the_window(store, clock):
    queue = new_queue(
        store, QueueProperties(duplicate_detection_window=timedelta(minutes=10))
    )
    store.send(queue, b"one", message_id="order-7")
    clock.advance(minutes=10)

    again = store.send(queue, b"two", message_id="order-7")

    assert not again.duplicate
    assert [m.body for m in store.peek(queue, 10)] == [b"one", b"two"]


def test_duplicate_detection_can_be_turned_off(store):
    queue = new_queue(store, QueueProperties(duplicate_detection_window=None))

    store.send(queue, b"one", message_id="same")
    second = store.send(queue, b"two", message_id="same")

    assert not second.duplicate
    assert store.queue_stats(queue).active == 2


def test_function_message_carries_properties_and_content_type(store):
    queue = new_queue(store)
    store.send(
        queue,
        b'{"job": 1}',
        message_id="m-42",
        content_type="application/json",
        correlation_id="corr-1",
        subject="job.submitted",
        application_properties={"lane": "high", "attempt": 2, "urgent": True},
        time_to_live=timedelta(hours=1),
    )
    [received] = store.receive(queue)

    message = to_function_message(received)

    assert isinstance(message, func.ServiceBusMessage)
    assert message.get_body() == b'{"job": 1}'
    assert message.message_id == "m-42"
    assert message.content_type == "application/json"
    assert message.correlation_id == "corr-1"
    assert message.subject == message.label == "job.submitted"
    assert message.application_properties == {
        "lane": "high",
        "attempt": 2,
        "urgent": True,
    }
    assert message.user_properties == message.application_properties
    assert message.delivery_count == 1
    assert message.sequence_number == received.sequence_number
    assert message.lock_token == received.lock_token
    assert message.locked_until == received.locked_until
    assert message.enqueued_time_utc == START
    assert message.expires_at_utc == START + timedelta(hours=1)
    assert message.time_to_live == timedelta(hours=1)
    assert message.dead_letter_reason is None
    assert message.metadata is not None
    assert message.metadata["MessageId"] == "m-42"
    assert message.metadata["ApplicationProperties"]["lane"] == "high"


def test_function_message_from_a_dead_letter_names_reason_and_source(store):
    queue = new_queue(store)
    store.send(queue, b"x")
    [received] = store.receive(queue)
    store.dead_letter(received.lock_token, "Broken", "handler raised")
    [dead] = store.receive_dead_letters(queue)

    message = to_function_message(dead)

    assert message.dead_letter_reason == "Broken"
    assert message.dead_letter_error_description == "handler raised"
    assert message.dead_letter_source == queue


def test_unsupported_application_property_is_refused_with_its_key(store):
    queue = new_queue(store)

    with pytest.raises(TypeError, match="'when'"):
        store.send(queue, b"x", application_properties={"when": START})


def test_expired_message_goes_to_dead_letters_with_ttl_reason(store, clock):
    queue = new_queue(store, QueueProperties(default_ttl=timedelta(minutes=30)))
    store.send(queue, b"stale", time_to_live=timedelta(minutes=5))
    store.send(queue, b"queue default")

    clock.advance(minutes=5)
    [survivor] = store.receive(queue)
    assert survivor.body == b"queue default"
    assert survivor.expires_at == START + timedelta(minutes=30)

    [dead] = store.dead_letters(queue)
    assert dead.body == b"stale"
    assert dead.dead_letter_reason == REASON_TTL_EXPIRED
    assert dead.dead_lettered_time == START + timedelta(minutes=5)


def test_expired_message_is_dropped_when_expiry_dead_lettering_is_off(store, clock):
    queue = new_queue(
        store,
        QueueProperties(
            default_ttl=timedelta(minutes=1), dead_lettering_on_expiration=False
        ),
    )
    store.send(queue, b"stale")

    clock.advance(minutes=1)

    assert store.receive(queue) == []
    stats = store.queue_stats(queue)
    assert (stats.active, stats.dead_lettered) == (0, 0)


def test_settling_after_the_lock_expired_raises_lock_lost(store, clock):
    queue = new_queue(store, QueueProperties(lock_duration=timedelta(seconds=30)))
    store.send(queue, b"slow")
    [message] = store.receive(queue)

    clock.advance(seconds=31)

    with pytest.raises(MessageLockLost, match="expired"):
        store.complete(message.lock_token)
    with pytest.raises(MessageLockLost):
        store.abandon(message.lock_token)
    with pytest.raises(MessageLockLost):
        store.renew_lock(message.lock_token)


def test_settling_twice_raises_lock_lost(store):
    queue = new_queue(store)
    store.send(queue, b"once")
    [message] = store.receive(queue)
    store.complete(message.lock_token)

    with pytest.raises(MessageLockLost, match="no message holds it"):
        store.complete(message.lock_token)


def test_old_lock_token_is_lost_once_the_message_is_received_again(store, clock):
    queue = new_queue(store, QueueProperties(lock_duration=timedelta(seconds=5)))
    store.send(queue, b"x")
    [first] = store.receive(queue)
    clock.advance(seconds=5)
    [second] = store.receive(queue)

    with pytest.raises(MessageLockLost):
        store.complete(first.lock_token)
    store.complete(second.lock_token)


def test_renewed_lock_keeps_the_message_hidden(store, clock):
    queue = new_queue(store, QueueProperties(lock_duration=timedelta(seconds=30)))
    store.send(queue, b"long job")
    [message] = store.receive(queue)

    clock.advance(seconds=20)
    renewed_until = store.renew_lock(message.lock_token)
    clock.advance(seconds=20)

    assert renewed_until == START + timedelta(seconds=50)
    assert store.receive(queue) == []
    store.complete(message.lock_token)


def test_unlocked_message_survives_a_crash_and_is_redelivered(db_path, clock):
    properties = QueueProperties(lock_duration=timedelta(seconds=60))
    crashed = ServiceBusQueueStore(db_path, clock=clock)
    crashed.ensure_queue("jobs", properties)
    crashed.send("jobs", b"survive", message_id="m-1")
    [taken] = crashed.receive("jobs")
    crashed.close()  # no complete: the process died while handling it

    with ServiceBusQueueStore(db_path, clock=clock) as reopened:
        assert reopened.receive("jobs") == []
        clock.advance(seconds=60)
        [again] = reopened.receive("jobs")
        assert again.message_id == "m-1"
        assert again.delivery_count == taken.delivery_count + 1
        assert reopened.queue_properties("jobs") == properties
        reopened.complete(again.lock_token)
        assert reopened.send("jobs", b"next").sequence_number == 2


def test_unknown_queue_is_refused(store):
    with pytest.raises(QueueNotFound, match="ensure_queue"):
        store.send("never-created", b"x")


def test_naive_schedule_time_is_refused(store):
    queue = new_queue(store)

    with pytest.raises(ValueError, match="time zone"):
        store.send(queue, b"x", scheduled_enqueue_time=datetime(2030, 1, 1, 10))


def _receive_all(stores, queue):
    """Drain a queue from one thread per store, recording every lock handed out."""
    taken: list[int] = []
    taken_lock = threading.Lock()
    start = threading.Barrier(len(stores))

    def drain(worker_store):
        start.wait()
        while True:
            batch = worker_store.receive(queue, 3)
            if not batch:
                return
            with taken_lock:
                taken.extend(m.sequence_number for m in batch)

    threads = [threading.Thread(target=drain, args=(s,)) for s in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    return taken


def test_concurrent_receivers_never_share_a_locked_message(store):
    queue = new_queue(store)
    for index in range(200):
        store.send(queue, str(index).encode())

    taken = _receive_all([store] * 4, queue)

    assert sorted(taken) == list(range(1, 201))
    assert Counter(taken).most_common(1)[0][1] == 1


def test_stores_over_one_file_never_share_a_locked_message(db_path, clock):
    stores = [ServiceBusQueueStore(db_path, clock=clock) for _ in range(3)]
    try:
        queue = new_queue(stores[0])
        for index in range(150):
            stores[index % 3].send(queue, str(index).encode())

        taken = _receive_all(stores, queue)

        assert sorted(taken) == list(range(1, 151))
    finally:
        for opened in stores:
            opened.close()


DRAIN_SCRIPT = """
import json, sys
from duralane.runtime.servicebus import ServiceBusQueueStore

taken = []
with ServiceBusQueueStore(sys.argv[1]) as store:
    while batch := store.receive(sys.argv[2], 2):
        taken.extend(m.sequence_number for m in batch)
print(json.dumps(taken))
"""


def test_processes_sharing_one_file_never_share_a_locked_message(db_path):
    # Wall clock on both sides: a child process cannot share the stepped one.
    with ServiceBusQueueStore(db_path) as store:
        queue = new_queue(store)
        for index in range(120):
            store.send(queue, str(index).encode())

    children = [
        subprocess.Popen(
            [sys.executable, "-c", DRAIN_SCRIPT, str(db_path), queue],
            stdout=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).resolve().parents[2],
        )
        for _ in range(2)
    ]
    taken: list[int] = []
    for child in children:
        out, _ = child.communicate(timeout=120)
        assert child.returncode == 0
        taken.extend(json.loads(out))

    assert sorted(taken) == list(range(1, 121))
