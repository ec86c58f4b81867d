"""The priority lender: most urgent borrower first, one holder per item."""

from __future__ import annotations

import threading
import time

from duralane.lending import PriorityLender
from tests.runtime.harness import wait_until

WAIT_SECONDS = 10


def _run_to_the_end(threads: list[threading.Thread]) -> None:
    """Start every thread and fail if any is still running after the bound."""
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT_SECONDS * 3)
    assert not any(thread.is_alive() for thread in threads)


def test_waiters_get_the_item_by_priority_then_arrival() -> None:
    """Four threads wait for a lent item; the order they get it in is the point."""
    lender = PriorityLender(["token"])
    got: list[str] = []
    holding = threading.Event()
    release = threading.Event()

    def first() -> None:
        with lender.lent(0):
            holding.set()
            release.wait(WAIT_SECONDS)

    def waiter(name: str, priority: int) -> None:
        with lender.lent(priority):
            got.append(name)

    threads = [threading.Thread(target=first)]
    threads[0].start()
    assert holding.wait(WAIT_SECONDS)
    waiters = [("low", 0), ("high-1", 2), ("normal", 1), ("high-2", 2)]
    for waiting, (name, priority) in enumerate(waiters, start=1):
        thread = threading.Thread(target=waiter, args=(name, priority))
        thread.start()
        threads.append(thread)
        wait_until(
            lambda waiting=waiting: lender.waiting() == waiting,
            timeout=WAIT_SECONDS,
            interval=0.001,
            what=f"{waiting} borrowers waiting",
        )
    release.set()
    for thread in threads:
        thread.join(WAIT_SECONDS)

    assert got == ["high-1", "high-2", "normal", "low"]


def test_one_item_admits_one_holder_at_a_time_under_contention() -> None:
    """Eight threads of mixed priority update a counter in two steps, unguarded."""
    lender = PriorityLender(["token"])
    counter = {"value": 0, "inside": 0, "most_inside": 0}

    def bump(priority: int) -> None:
        for _ in range(500):
            with lender.lent(priority):
                counter["inside"] += 1
                counter["most_inside"] = max(counter["most_inside"], counter["inside"])
                value = counter["value"]
                time.sleep(0)
                counter["value"] = value + 1
                counter["inside"] -= 1

    _run_to_the_end([threading.Thread(target=bump, args=(i % 3,)) for i in range(8)])

    assert counter["value"] == 8 * 500
    assert counter["most_inside"] == 1
    assert lender.waiting() == 0


def test_each_of_several_items_is_lent_to_one_borrower_at_a_time() -> None:
    """Three items, six threads: never two holders of one item, all three used."""
    lender = PriorityLender(["a", "b", "c"])
    holders = {"a": 0, "b": 0, "c": 0}
    most = {"a": 0, "b": 0, "c": 0}
    guard = threading.Lock()

    def use(priority: int) -> None:
        for _ in range(200):
            with lender.lent(priority) as item:
                with guard:
                    holders[item] += 1
                    most[item] = max(most[item], holders[item])
                time.sleep(0)
                with guard:
                    holders[item] -= 1

    _run_to_the_end([threading.Thread(target=use, args=(i % 2,)) for i in range(6)])

    assert most == {"a": 1, "b": 1, "c": 1}
    assert sorted(lender._idle) == ["a", "b", "c"]


def test_an_item_added_later_goes_to_a_waiting_borrower() -> None:
    """Before any item exists a borrower waits; the first item added is its."""
    lender: PriorityLender[str] = PriorityLender()
    got: list[str] = []
    thread = threading.Thread(target=lambda: got.append(lender.borrow(1)))
    thread.start()
    wait_until(
        lambda: lender.waiting() == 1,
        timeout=WAIT_SECONDS,
        interval=0.001,
        what="the borrower waiting",
    )

    lender.add("late")
    thread.join(WAIT_SECONDS)

    assert got == ["late"]
