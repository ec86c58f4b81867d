"""Urgent work in flight makes less urgent work wait, briefly and boundedly."""

from __future__ import annotations

import asyncio
import gc
import sys
import threading

import pytest

from duralane.store.priority import PriorityWorkers
from duralane.urgency import HOLD_SECONDS, Urgency
from tests.clocks import CountingClock
from tests.runtime.harness import wait_until

WAIT_SECONDS = 10


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_lower_priorities_wait_while_urgent_work_is_in_flight() -> None:
    clock = Clock()
    urgent = Urgency(clock, switch_seconds=None)
    assert urgent.hold_for(0, clock.now) == 0

    assert urgent.begin("urg-job-1", 2, seconds=1.0)
    assert not urgent.begin("urg-job-1", 2, seconds=1.0), "already urgent"

    assert urgent.hold_for(0, clock.now) == pytest.approx(HOLD_SECONDS)
    assert urgent.hold_for(1, clock.now) == pytest.approx(HOLD_SECONDS)
    assert urgent.hold_for(2, clock.now) == 0, "equal priority never waits"
    urgent.end("urg-job-1")
    assert urgent.hold_for(0, clock.now) == 0
    assert urgent.in_flight() == 0


def test_no_work_waits_longer_than_the_hold_bound() -> None:
    clock = Clock()
    urgent = Urgency(clock, switch_seconds=None)
    urgent.begin("urg-job-2", 2, seconds=5.0)
    since = clock.now

    clock.now += HOLD_SECONDS / 2
    assert urgent.hold_for(0, since) == pytest.approx(HOLD_SECONDS / 2)
    clock.now += HOLD_SECONDS / 2
    assert urgent.hold_for(0, since) == 0
    assert urgent.in_flight() == 1, "the urgent work itself still counts"


def test_urgent_work_that_never_reports_stops_counting_at_its_time() -> None:
    clock = Clock()
    urgent = Urgency(clock, switch_seconds=None)
    urgent.begin("urg-job-3", 2, seconds=0.01)

    assert urgent.hold_for(0, clock.now) == pytest.approx(0.01)
    clock.now += 0.01
    assert urgent.hold_for(0, clock.now) == 0
    assert urgent.in_flight() == 0


def test_the_same_key_can_be_urgent_again_once_its_time_is_up() -> None:
    clock = Clock()
    urgent = Urgency(clock, switch_seconds=None)
    assert urgent.begin("urg-job-12", 2, seconds=0.01)

    clock.now += 0.01

    assert urgent.begin("urg-job-12", 2, seconds=0.01), "the expired key blocked it"
    assert urgent.hold_for(0, clock.now) == pytest.approx(0.01)


def test_a_held_off_thread_goes_on_as_soon_as_the_urgent_work_ends() -> None:
    """With the bound far away, only end() can release the waiting thread."""
    urgent = Urgency(switch_seconds=None, hold_seconds=60)
    urgent.begin("urg-job-4", 2, seconds=60)
    released = threading.Event()

    def low_work() -> None:
        urgent.hold_off(0)
        released.set()

    thread = threading.Thread(target=low_work)
    thread.start()
    assert not released.wait(0.05), "low work did not wait"
    urgent.end("urg-job-4")
    assert released.wait(WAIT_SECONDS), "end() did not release the waiter"
    thread.join(WAIT_SECONDS)


def test_a_parked_coroutine_goes_on_once_the_urgent_work_ends() -> None:
    """With its clock stopped, only end() can release the coroutine."""
    clock = CountingClock(Clock())
    urgent = Urgency(clock, switch_seconds=None)
    urgent.begin("urg-job-13", 2, seconds=60)

    async def scenario() -> None:
        parked = asyncio.create_task(urgent.step_aside(0))
        await clock.looked()
        assert not parked.done(), "low work did not step aside"

        urgent.end("urg-job-13")
        await asyncio.wait_for(parked, WAIT_SECONDS)

    asyncio.run(scenario())


def test_a_parked_coroutine_goes_on_at_the_hold_bound_or_never_parks() -> None:
    hand = Clock()
    clock = CountingClock(hand)
    urgent = Urgency(clock, switch_seconds=None)
    urgent.begin("urg-job-14", 2, seconds=60)

    async def scenario() -> None:
        # Equal priority and no urgent work above: no wait at all.
        await asyncio.wait_for(urgent.step_aside(2), WAIT_SECONDS)

        parked = asyncio.create_task(urgent.step_aside(0))
        await clock.looked()
        assert not parked.done()
        hand.now += HOLD_SECONDS
        await asyncio.wait_for(parked, WAIT_SECONDS)
        assert urgent.in_flight() == 1, "the urgent work itself still counts"

    asyncio.run(scenario())


def test_threads_switch_faster_only_while_urgent_work_is_in_flight() -> None:
    usual = sys.getswitchinterval()
    urgent = Urgency(switch_seconds=0.0005)

    urgent.begin("urg-job-5", 2, seconds=60)
    urgent.begin("urg-job-6", 2, seconds=60)
    assert sys.getswitchinterval() == pytest.approx(0.0005)
    urgent.end("urg-job-5")
    assert sys.getswitchinterval() == pytest.approx(0.0005), "one is still urgent"
    urgent.end("urg-job-6")
    assert sys.getswitchinterval() == pytest.approx(usual)

    urgent.begin("urg-job-7", 2, seconds=60)
    urgent.clear()
    assert sys.getswitchinterval() == pytest.approx(usual)
    assert urgent.in_flight() == 0


class Listener:
    def __init__(self) -> None:
        self.calls = 0

    def heard(self) -> None:
        self.calls += 1


def test_listeners_hear_each_end_and_are_not_kept_alive() -> None:
    urgent = Urgency(switch_seconds=None)
    listener = Listener()
    urgent.on_end(listener.heard)
    urgent.begin("urg-job-8", 2, seconds=60)
    urgent.end("urg-job-8")
    urgent.end("urg-job-8")  # a second end of one key is not heard twice
    assert listener.calls == 1

    del listener
    gc.collect()
    urgent.begin("urg-job-9", 2, seconds=60)
    urgent.end("urg-job-9")  # a dead listener is skipped, not called


def test_the_store_pool_holds_low_calls_back_but_lets_urgent_ones_through() -> None:
    """One thread: while urgent work is in flight a queued low call waits and a
    high call queued after it runs first; once the work ends, the low call runs."""
    urgent = Urgency(switch_seconds=None, hold_seconds=60)
    workers = PriorityWorkers(1, "test-urgency", urgency=urgent)
    ran: list[str] = []
    try:
        urgent.begin("urg-job-10", 2, seconds=60)
        low = workers.submit(0, lambda: ran.append("low"))
        high = workers.submit(2, lambda: ran.append("high"))
        high.result(WAIT_SECONDS)
        assert ran == ["high"]
        assert not low.done(), "the low call ran while urgent work was in flight"

        urgent.end("urg-job-10")
        low.result(WAIT_SECONDS)
        assert ran == ["high", "low"]
    finally:
        workers.shutdown()


def test_the_store_pool_runs_a_held_low_call_once_the_bound_has_passed() -> None:
    """Urgent work that never ends cannot starve the low lane."""
    urgent = Urgency(switch_seconds=None)
    workers = PriorityWorkers(1, "test-urgency-bound", urgency=urgent)
    urgent.begin("urg-job-11", 2, seconds=3600)

    low = workers.submit(0, lambda: "ran")

    wait_until(low.done, timeout=WAIT_SECONDS, interval=0.01, what="the low call")
    assert low.result() == "ran"
    assert urgent.in_flight() == 1
    workers.shutdown()
