"""A trigger loop that fails is logged and started again, never left dead."""

from __future__ import annotations

import asyncio
import logging

import pytest

from duralane.runtime.triggers import supervise


def test_a_failing_trigger_loop_is_logged_and_restarted_until_it_returns(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A receive that raises twice must not end the trigger for good."""
    runs: list[int] = []

    async def flaky_loop(stopping: asyncio.Event) -> None:
        runs.append(len(runs) + 1)
        if len(runs) < 3:
            raise OSError(f"database is locked (run {len(runs)})")

    async def scenario() -> None:
        await asyncio.wait_for(
            supervise("orders", flaky_loop, asyncio.Event(), first_delay=0.01), 10
        )

    with caplog.at_level(logging.ERROR, logger="duralane.runtime.triggers"):
        asyncio.run(scenario())

    assert runs == [1, 2, 3]
    failures = [r for r in caplog.records if "trigger orders stopped" in r.message]
    assert len(failures) == 2
    assert failures[0].exc_info is not None
    assert "run 1" in str(failures[0].exc_info[1])


def test_a_failing_trigger_loop_stops_restarting_once_the_runtime_stops() -> None:
    """Stopping the runtime ends the backoff wait at once instead of another run."""
    runs: list[int] = []

    async def broken_loop(stopping: asyncio.Event) -> None:
        runs.append(1)
        stopping.set()
        raise RuntimeError("queue store closed")

    async def scenario() -> None:
        await asyncio.wait_for(
            supervise("orders", broken_loop, asyncio.Event(), first_delay=30), 5
        )

    asyncio.run(scenario())

    assert runs == [1]
