"""The start route of a less urgent hub waits while more urgent work starts."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import aiohttp
import pytest

from duralane.runtime.host import Runtime, RuntimeOptions
from duralane.runtime.http_api import WEBHOOK_PREFIX
from duralane.urgency import Urgency
from tests.clocks import CountingClock
from tests.runtime.harness import unique

# The benchmark's app: one hub, one orchestrator, nothing else to start.
APP = Path(__file__).resolve().parents[2] / "benchmarks/apps/throughput_bench_app.py"


def test_a_start_parks_until_more_urgent_work_has_started(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The runtime writes its settings into the environment; keep them out of
    # this test process's.
    monkeypatch.setattr(os, "environ", dict(os.environ))
    instance_id = unique("parked-start")

    async def scenario() -> None:
        runtime = Runtime(RuntimeOptions(app=APP, port=0, data_dir=tmp_path))
        await runtime.start()
        hub = runtime.default_hub
        worker = runtime.workers[hub]
        clock = CountingClock()
        worker.urgency = Urgency(clock, switch_seconds=None, hold_seconds=60)
        try:
            worker.urgency.begin("more-urgent", worker.priority + 1, 60)
            url = (
                f"{runtime.base_url}{WEBHOOK_PREFIX}/orchestrators/single_step/"
                f"{instance_id}"
            )
            async with aiohttp.ClientSession() as http:
                start = asyncio.create_task(http.post(url, json=1))
                await clock.looked()
                assert not start.done(), "the start did not step aside"
                assert runtime.hub_store.get_instance(hub, instance_id) is None

                worker.urgency.end("more-urgent")
                response = await asyncio.wait_for(start, 10)
                assert response.status == 202, await response.text()
            assert runtime.hub_store.get_instance(hub, instance_id) is not None
        finally:
            # Runtime.stop clears the process's urgency, not this test's.
            worker.urgency.clear()
            await runtime.stop()

    asyncio.run(scenario())
