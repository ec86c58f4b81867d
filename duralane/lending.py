"""Lend a few shared things to many threads, the most urgent borrower first.

Used where lanes meet at something they cannot each have: the runtime's
episode processes, and the one write lock of a SQLite file. A returned item
goes straight to the waiter at the head of the queue (highest priority, then
arrival) and wakes that thread alone, so a busy resource costs one wake-up
per hand-over, not one for every waiting thread.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import threading
from collections.abc import Iterable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class _Waiter(Generic[T]):
    """One blocked borrower: released once an item has been put in its hands."""

    item: T  # set by the lender just before it releases `handed`

    def __init__(self) -> None:
        self.handed = threading.Lock()
        self.handed.acquire()


class PriorityLender(Generic[T]):
    """A fixed set of items lent one at a time, by priority, then arrival."""

    def __init__(self, items: Iterable[T] = ()) -> None:
        self._guard = threading.Lock()
        self._idle: list[T] = list(items)
        # (-priority, arrival, waiter): the head is served next.
        self._waiting: list[tuple[int, int, _Waiter[T]]] = []
        self._arrivals = itertools.count()

    def add(self, item: T) -> None:
        """Put a new item into circulation (also how a borrowed one comes back)."""
        with self._guard:
            if not self._waiting:
                self._idle.append(item)
                return
            _, _, waiter = heapq.heappop(self._waiting)
        waiter.item = item
        waiter.handed.release()

    def borrow(self, priority: int = 0) -> T:
        """Take an item, waiting while every item is out or a more urgent one waits."""
        with self._guard:
            if self._idle:
                return self._idle.pop()
            waiter: _Waiter[T] = _Waiter()
            heapq.heappush(self._waiting, (-priority, next(self._arrivals), waiter))
        waiter.handed.acquire()
        return waiter.item

    @contextlib.contextmanager
    def lent(self, priority: int = 0) -> Iterator[T]:
        """Hold an item for the block, then give it back."""
        item = self.borrow(priority)
        try:
            yield item
        finally:
            self.add(item)

    def waiting(self) -> int:
        """How many borrowers are waiting now."""
        with self._guard:
            return len(self._waiting)
