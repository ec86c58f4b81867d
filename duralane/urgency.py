"""Let less urgent work step aside while an urgent job is starting.

Every lane one runtime process serves shares its interpreter lock. Priority
queues put an urgent job's calls first wherever they wait, but each step of its
start (store write, start, episode, activity) still has to get the lock back
from whichever flood threads hold it, a few milliseconds per step. So from an
urgent job's submission until its first attempt starts, work of lower priority
waits at its next checkpoint (see hold_for; coroutines on the runtime's event
loop park in step_aside) and leaves the interpreter to it,
and the interpreter switches threads every URGENT_SWITCH_SECONDS instead of its
usual 5 ms, so an urgent thread waiting for the lock gets it sooner.

No work waits more than HOLD_SECONDS at a checkpoint, and an urgent job that
never reports its start stops counting when its time is up, so a flood is
slowed while urgent jobs start, never stopped.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
import weakref
from collections.abc import Callable

logger = logging.getLogger(__name__)

# The longest any one piece of work waits at one checkpoint.
HOLD_SECONDS = 0.05
# The interpreter's thread switch interval while urgent work is in flight. Kept
# short only then: kept short all the time, the high lane's tail was no better
# (docs/runtime.md, "Lane latency").
URGENT_SWITCH_SECONDS = 0.0005
# How often a parked coroutine looks again: the loop has no condition to wait
# on that a thread's end() could signal.
STEP_ASIDE_POLL_SECONDS = 0.001


class Urgency:
    """Urgent work in flight, by key, and how long other work should wait for it."""

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        switch_seconds: float | None = URGENT_SWITCH_SECONDS,
        hold_seconds: float = HOLD_SECONDS,
    ) -> None:
        self._clock = clock
        self.hold_seconds = hold_seconds
        self._switch_seconds = switch_seconds
        self._usual_switch = sys.getswitchinterval()
        self._condition = threading.Condition()
        # key -> (priority, when it stops counting)
        self._urgent: dict[str, tuple[int, float]] = {}
        self._listeners: list[weakref.WeakMethod[Callable[[], None]]] = []

    def begin(self, key: str, priority: int, seconds: float) -> bool:
        """Urgent work at this priority is starting; it counts for at most seconds.

        False, changing nothing, when the key is urgent already: only the
        caller that began it should end it early.
        """
        with self._condition:
            now = self._clock()
            self._forget_expired(now)
            if key in self._urgent:
                return False
            if not self._urgent and self._switch_seconds is not None:
                self._usual_switch = sys.getswitchinterval()
                sys.setswitchinterval(self._switch_seconds)
            self._urgent[key] = (priority, now + seconds)
            return True

    def end(self, key: str) -> None:
        """The urgent work under key has started (or will not): stop waiting for it."""
        if key not in self._urgent:  # the common case, without the lock
            return
        with self._condition:
            if self._urgent.pop(key, None) is None:
                return
            self._settled()
            listeners = [ref() for ref in self._listeners]
        for listener in listeners:
            if listener is not None:
                listener()

    def clear(self) -> None:
        """Forget every urgent key, as a runtime that stops must."""
        with self._condition:
            if not self._urgent:
                return
            self._urgent.clear()
            self._settled()

    def _settled(self) -> None:
        """Wake waiting threads; once nothing is urgent, switch threads as usual."""
        self._condition.notify_all()
        if not self._urgent and self._switch_seconds is not None:
            sys.setswitchinterval(self._usual_switch)

    def hold_for(self, priority: int, since: float) -> float:
        """Seconds that work at priority, waiting since `since`, should still wait.

        0 means go: nothing more urgent is in flight, or the work has waited
        hold_seconds already. `since` is on this object's clock (monotonic).
        """
        if not self._urgent:  # no lock: a dict's emptiness is read atomically
            return 0.0
        now = self._clock()
        with self._condition:
            self._forget_expired(now)
            ends = [until for p, until in self._urgent.values() if p > priority]
            if not ends:
                return 0.0
            return max(0.0, min(since + self.hold_seconds, min(ends)) - now)

    def _forget_expired(self, now: float) -> None:
        """Drop urgent work whose time is up; call with the condition held."""
        expired = [k for k, (_, until) in self._urgent.items() if until <= now]
        for key in expired:
            priority, _ = self._urgent.pop(key)
            logger.info(
                "urgent work %s (priority %d) did not report its start in time; "
                "other work no longer waits for it",
                key,
                priority,
            )
        if expired:
            self._settled()

    def hold_off(self, priority: int) -> None:
        """Block this thread while more urgent work starts, hold_seconds at most."""
        if not self._urgent:  # the common case, on every episode and activity
            return
        since = self._clock()
        # Checked and waited under one lock, so an end() in between is not missed.
        with self._condition:
            while (wait := self.hold_for(priority, since)) > 0:
                self._condition.wait(wait)

    async def step_aside(self, priority: int) -> None:
        """hold_off for a coroutine: it waits on its loop, the loop runs on.

        The runtime's one event loop serves every lane's requests, so a flood's
        coroutines park here while an urgent start takes its steps.
        """
        if not self._urgent:
            return
        since = self._clock()
        while (wait := self.hold_for(priority, since)) > 0:
            await asyncio.sleep(min(wait, STEP_ASIDE_POLL_SECONDS))

    def now(self) -> float:
        """The clock hold_for's `since` is read on."""
        return self._clock()

    def on_end(self, listener: Callable[[], None]) -> None:
        """Call a bound method whenever urgent work ends, while its object lives."""
        with self._condition:
            self._listeners = [ref for ref in self._listeners if ref() is not None]
            self._listeners.append(weakref.WeakMethod(listener))

    def in_flight(self) -> int:
        """How many urgent keys count now, for tests and health."""
        with self._condition:
            return len(self._urgent)


# One per process: the jobs code declares urgent work, and the store's and the
# runtime's workers, which know nothing of jobs, hold off for it.
urgent_work = Urgency()
