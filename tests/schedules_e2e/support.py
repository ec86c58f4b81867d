"""Helpers for driving schedules over HTTP with bounded waits."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from duralane.settings import Settings
from duralane.store import Filter, open_store
from tests.runtime.harness import RuntimeProcess, wait_until


def create(runtime: RuntimeProcess, body: dict[str, Any]) -> dict[str, Any]:
    """POST a schedule and insist it was created."""
    response = runtime.post("/api/schedules", json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def runs(runtime: RuntimeProcess, schedule_id: str) -> list[dict[str, Any]]:
    """Every run of a schedule, newest fire first."""
    response = runtime.get(f"/api/schedules/{schedule_id}/runs?pageSize=1000")
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def wait_runs(
    runtime: RuntimeProcess,
    schedule_id: str,
    condition: Callable[[list[dict[str, Any]]], bool],
    what: str,
    timeout: float = 30.0,
) -> list[dict[str, Any]]:
    """Poll a schedule's runs until a condition holds, with a bound."""
    latest: list[dict[str, Any]] = []

    def check() -> bool:
        nonlocal latest
        runtime._ensure_alive()
        latest = runs(runtime, schedule_id)
        return condition(latest)

    wait_until(
        check,
        timeout=timeout,
        what=f"schedule {schedule_id} {what}",
        interval=0.1,
        detail=lambda: f"runs: {latest}\\nlog:\\n{runtime.log()}",
    )
    return latest


def stored(
    runtime: RuntimeProcess, container: str, equals: dict[str, str]
) -> list[dict[str, Any]]:
    """Every record of a container matching `equals`, read from the runtime's store."""
    settings = Settings.from_environ(runtime.env)

    async def read() -> list[dict[str, Any]]:
        store = await open_store(settings)
        items: list[dict[str, Any]] = []
        continuation = None
        try:
            while True:
                page = await store.query(
                    container,
                    Filter(equals=equals),
                    page_size=1000,
                    continuation=continuation,
                )
                items += page.items
                continuation = page.continuation
                if continuation is None:
                    return items
        finally:
            await store.close()

    return asyncio.run(read())
