"""A clock that counts its reads, so a test can see a waiter keep looking.

Urgency's waiters read their clock each time they look again, so a test can
tell a parked waiter from one that went on without sleeping a fixed time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

WAIT_SECONDS = 10


class CountingClock:
    """Another clock (time.monotonic by default), counting how often it is read."""

    def __init__(self, read: Callable[[], float] = time.monotonic) -> None:
        self._read = read
        self.reads = 0

    def __call__(self) -> float:
        self.reads += 1
        return self._read()

    async def looked(self, times: int = 5) -> None:
        """Let the loop run until the clock is read `times` more, boundedly."""
        target = self.reads + times
        async with asyncio.timeout(WAIT_SECONDS):
            while self.reads < target:
                await asyncio.sleep(0.001)
