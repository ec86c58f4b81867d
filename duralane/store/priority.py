"""Urgent store calls first: a high-lane submission must not queue behind a flood.

Code that works for an urgent job wraps its store calls in `store_priority(n)`;
a backend that runs blocking calls on threads (SQLite) takes the waiting call
with the highest priority first, in arrival order within a priority, and holds
a lower one back while more urgent work is starting (see duralane.urgency).
Tasks started inside the block inherit it, as with any context variable.
"""

from __future__ import annotations

import contextlib
import contextvars
import heapq
import itertools
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from typing import Any, TypeVar

from duralane.urgency import Urgency, urgent_work

T = TypeVar("T")

# (-priority, arrival, queued at on the urgency clock, work, future), in the
# order threads take them.
Waiting = tuple[int, int, float, Callable[[], Any] | None, Future[Any]]

_priority: contextvars.ContextVar[int] = contextvars.ContextVar(
    "duralane_store_priority", default=0
)


@contextlib.contextmanager
def store_priority(priority: int) -> Iterator[None]:
    """Serve the store calls made inside this block before lower-priority ones."""
    token = _priority.set(priority)
    try:
        yield
    finally:
        _priority.reset(token)


def current_priority() -> int:
    """The priority of the running code's store calls: 0 unless a block says."""
    return _priority.get()


class PriorityWorkers:
    """A fixed set of threads that run the most urgent waiting call first."""

    def __init__(self, threads: int, name: str, urgency: Urgency = urgent_work) -> None:
        self._threads_wanted = threads
        self._name = name
        self._threads: list[threading.Thread] = []
        # work None tells a thread to stop.
        self._waiting: list[Waiting] = []
        self._arrivals = itertools.count()
        self._ready = threading.Condition()
        self._closed = False
        self._urgency = urgency
        urgency.on_end(self._wake)

    def submit(self, priority: int, work: Callable[[], T]) -> Future[T]:
        """Queue a call, to run in the caller's context; the future holds its result."""
        future: Future[T] = Future()
        context = contextvars.copy_context()
        entry: Waiting = (
            -priority,
            next(self._arrivals),
            self._urgency.now(),
            lambda: context.run(work),
            future,
        )
        with self._ready:
            if self._closed:
                raise RuntimeError(f"{self._name}: workers are shut down")
            heapq.heappush(self._waiting, entry)
            if len(self._threads) < self._threads_wanted:
                self._start_thread()
            self._ready.notify()
        return future

    def shutdown(self) -> None:
        """Finish every queued call, then stop and join the threads."""
        with self._ready:
            if self._closed:
                return
            self._closed = True
            for _ in self._threads:
                # Below every real priority, so queued calls still run first.
                stop: Waiting = (1 << 62, next(self._arrivals), 0.0, None, Future())
                heapq.heappush(self._waiting, stop)
            self._ready.notify_all()
        for thread in self._threads:
            thread.join()

    def _start_thread(self) -> None:
        thread = threading.Thread(
            target=self._serve,
            name=f"{self._name}-{len(self._threads)}",
            daemon=True,
        )
        self._threads.append(thread)
        thread.start()

    def _wake(self) -> None:
        """Urgent work has started: calls held back for it may go now."""
        with self._ready:
            self._ready.notify_all()

    def _next(self) -> Waiting:
        """The head call once it may run; call with _ready held."""
        while True:
            if not self._waiting:
                self._ready.wait()
                continue
            negative, _, queued, work, _ = self._waiting[0]
            wait = 0.0 if work is None else self._urgency.hold_for(-negative, queued)
            if wait <= 0:
                return heapq.heappop(self._waiting)
            # A more urgent call arriving, or the urgent work starting, wakes us.
            self._ready.wait(wait)

    def _serve(self) -> None:
        while True:
            with self._ready:
                _, _, _, work, future = self._next()
            if work is None:
                return
            if not future.set_running_or_notify_cancel():
                continue
            try:
                result = work()
            except BaseException as exc:
                future.set_exception(exc)
            else:
                future.set_result(result)
