"""The in-memory ready set hands each instance to one episode at a time."""

from __future__ import annotations

from duralane.runtime.engine import ReadySet, Signal


def test_instances_come_out_oldest_first_and_once_until_released() -> None:
    """A taken instance is not handed out again until its commit releases it."""
    ready = ReadySet(Signal())
    for name in ("a", "b", "c"):
        ready.add(name, 0.0, now=1.0)

    assert ready.take(2, now=1.0) == ["a", "b"]
    ready.add("a", 0.0, now=1.0)
    assert ready.take(5, now=1.0) == ["c"]
    assert ready.held() == 3

    ready.release("a")
    ready.release("b")
    assert ready.take(5, now=1.0) == ["a"]


def test_future_messages_wait_on_the_heap_until_due() -> None:
    """A timer's instance is ready only once its time has come."""
    ready = ReadySet(Signal())
    ready.add("timer", 10.0, now=1.0)

    assert ready.take(5, now=9.9) == []
    assert ready.next_due() == 10.0
    assert ready.take(5, now=10.0) == ["timer"]


def test_a_deferred_instance_waits_even_if_messages_arrive() -> None:
    """A crashed instance backs off however many messages it receives."""
    ready = ReadySet(Signal())
    ready.add("crashy", 0.0, now=1.0)
    assert ready.take(1, now=1.0) == ["crashy"]
    ready.add("crashy", 0.0, now=1.0)

    ready.defer("crashy", until=5.0)

    assert ready.take(5, now=4.0) == []
    assert ready.take(5, now=5.0) == ["crashy"]


def test_release_with_more_work_makes_the_instance_ready_again() -> None:
    """An episode that left due messages behind asks for another episode."""
    ready = ReadySet(Signal())
    ready.add("busy", 0.0, now=1.0)
    ready.take(1, now=1.0)

    ready.release("busy", again=True)

    assert ready.take(1, now=1.0) == ["busy"]


def test_a_take_in_parts_leaves_a_share_for_each_other_taker() -> None:
    """Two idle processes split five ready instances three and two, not five
    and none; the limit still caps a share."""
    ready = ReadySet(Signal())
    for name in ("a", "b", "c", "d", "e"):
        ready.add(name, 0.0, now=1.0)

    assert ready.take(10, now=1.0, parts=2) == ["a", "b", "c"]
    assert ready.take(10, now=1.0, parts=1) == ["d", "e"]
    for name in ("f", "g", "h", "i"):
        ready.add(name, 0.0, now=1.0)
    assert ready.take(1, now=1.0, parts=2) == ["f"]
