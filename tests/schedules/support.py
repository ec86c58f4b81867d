"""Helpers for driving the dispatcher in-process: a hand-moved clock, a starter."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from duralane.jobs.model import JobSpec
from duralane.store import Store
from duralane.store.sqlite import SqliteStore

T = TypeVar("T")
T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


class Clock:
    """A clock the test moves by hand; every dispatcher in a test shares it."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class RecordingStarter:
    """Stands in for the durable clients; runs a hook before each start."""

    def __init__(
        self, before_start: Callable[[JobSpec], Awaitable[None]] | None = None
    ) -> None:
        self.started: list[str] = []
        self.before_start = before_start

    async def start(self, spec: JobSpec) -> None:
        if self.before_start is not None:
            hook, self.before_start = self.before_start, None
            await hook(spec)
        self.started.append(spec.id)

    async def cancel(self, job_id: str) -> None:
        return None


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run one test's coroutine with a bound, so a hang fails instead of waiting."""
    return asyncio.run(asyncio.wait_for(coroutine, 30))


async def open_store(path: Path) -> Store:
    """One dispatcher's own connection to the shared store file."""
    store = SqliteStore(path)
    await store.open()
    return store
