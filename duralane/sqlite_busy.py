"""Waiting for another process's SQLite write lock on short pauses, by priority.

SQLite's own busy handler sleeps 1, 2, 5, 10 ... 100 ms between tries, and a
high-priority writer sharing a file with a busy one waited up to 100 ms in it.
The stores' writing connections run without it (busy_timeout 0) and wait here
instead, on pauses that are shorter the more urgent the writer is.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

BUSY_TIMEOUT_SECONDS = 10.0
# By priority (0 low, 1 normal, 2 high and above): the first pause, and the
# longest the pauses grow to.
WRITE_RETRY_PAUSES = {0: (0.001, 0.01), 1: (0.0005, 0.005), 2: (0.0001, 0.0005)}


def retry_busy(
    attempt: Callable[[], T],
    priority: int,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> T:
    """Run attempt, again on this priority's pauses while another connection
    holds the lock it needs, for BUSY_TIMEOUT_SECONDS at most."""
    first, longest = WRITE_RETRY_PAUSES[min(max(priority, 0), 2)]
    pause = first
    deadline = clock() + BUSY_TIMEOUT_SECONDS
    while True:
        try:
            return attempt()
        except sqlite3.OperationalError as error:
            busy = getattr(error, "sqlite_errorcode", None) == sqlite3.SQLITE_BUSY
            if not busy or clock() + pause > deadline:
                raise
        sleep(pause)
        pause = min(pause * 2, longest)


def begin_write(
    connection: sqlite3.Connection,
    priority: int,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """BEGIN IMMEDIATE, tried again while another connection writes."""
    retry_busy(lambda: connection.execute("BEGIN IMMEDIATE"), priority, sleep, clock)
