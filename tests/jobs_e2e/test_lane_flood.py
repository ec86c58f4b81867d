"""A flooded low lane starves neither the high lane nor itself."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import httpx
import pytest
from aiohttp import web

from tests.jobs_e2e.conftest import LOOPBACK, start_app
from tests.jobs_e2e.support import (
    TargetServer,
    http_job,
    respond,
    submit,
    unique,
    wait_state,
)
from tests.runtime.harness import RuntimeProcess, wait_until

FLOOD = 2000


@pytest.fixture
def flooded_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RuntimeProcess]:
    """An app of its own, so the flood neither slows nor counts other tests' jobs."""
    runtime = start_app(
        tmp_path_factory.mktemp("duralane-flood"),
        {"DURALANE_ALLOWED_TARGETS": LOOPBACK},
    )
    yield runtime
    runtime.stop()


def test_high_lane_job_succeeds_while_the_low_lane_floods(
    flooded_app: RuntimeProcess, target: TargetServer
) -> None:
    """Thousands of queued low jobs must not delay a high job, nor stall themselves."""
    gate = asyncio.Event()

    async def held(request: web.Request) -> web.StreamResponse:
        await gate.wait()
        return web.Response(text="done")

    # Low attempts hang until the high job is done, so the low lane is saturated.
    low_url = target.route(held)
    high_url = target.route(respond(200))
    prefix = unique("flood")
    with httpx.Client(base_url=flooded_app.base_url, timeout=30) as client:
        for n in range(FLOOD):
            spec = http_job(f"{prefix}-{n}", low_url, lane="low")
            response = client.post(
                "/runtime/queues/jobs-low/messages",
                content=json.dumps(spec).encode(),
                headers={"x-message-id": f"{prefix}-{n}"},
            )
            assert response.status_code == 201, response.text

    high_id = unique("flood-high")
    submit(flooded_app, http_job(high_id, high_url, lane="high"))
    wait_state(flooded_app, high_id, "succeeded", timeout=60)

    started = len(target.hits(low_url))
    assert started > 0, "no low job had started"
    low_done = [0]

    def low_finished() -> int:
        page = flooded_app.get(
            "/api/jobs", params={"lane": "low", "status": "succeeded", "pageSize": 200}
        )
        low_done[0] = len(page.json()["items"])
        return low_done[0]

    assert low_finished() == 0, "a low job finished before the gate opened"
    assert target._loop is not None
    target._loop.call_soon_threadsafe(gate.set)
    wait_until(
        lambda: low_finished() >= 50,
        timeout=60,
        what="low-lane jobs to keep completing after the high job",
        detail=lambda: f"low jobs succeeded: {low_done[0]}",
    )
    assert len(target.hits(high_url)) == 1
