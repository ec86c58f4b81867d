"""The whole app on the Cosmos DB stand-in, including a store outage mid-job.

The stand-in speaks the Cosmos DB protocol but is not Cosmos DB: request units
are a flat 1 per call and TTL is not enforced (docs/state-store.md), so these
tests check behaviour, not cost or expiry.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.jobs_e2e.conftest import LOOPBACK, start_app
from tests.jobs_e2e.support import (
    TargetServer,
    get_job,
    held_until,
    http_job,
    respond,
    submit,
    unique,
    wait_job,
    wait_state,
)
from tests.runtime.harness import RuntimeProcess, wait_until
from tests.services import CosmosStandIn, start_cosmos_standin
from tests.store_e2e.proxy import SwitchableProxy

STORE_FAILURE = re.compile(r"Executed activity run_attempt .*: Failed")


@pytest.fixture(scope="module")
def proxy() -> Iterator[SwitchableProxy]:
    switch = SwitchableProxy().start()
    yield switch
    switch.stop()


@pytest.fixture(scope="module")
def cosmos(proxy: SwitchableProxy) -> Iterator[CosmosStandIn]:
    """The stand-in, telling clients to reach it through the proxy."""
    service = start_cosmos_standin(advertised_port=proxy.port)
    proxy.target_port = service.port
    yield service
    service.stop()


@pytest.fixture(scope="module")
def cosmos_app(
    tmp_path_factory: pytest.TempPathFactory,
    cosmos: CosmosStandIn,
    proxy: SwitchableProxy,
) -> Iterator[RuntimeProcess]:
    """The app with its state in the stand-in, reached through the proxy."""
    data_dir: Path = tmp_path_factory.mktemp("duralane-cosmos")
    runtime = start_app(
        data_dir,
        {
            "DURALANE_ALLOWED_TARGETS": LOOPBACK,
            "DURALANE_COSMOS_ENDPOINT": f"https://127.0.0.1:{proxy.port}/",
            "DURALANE_COSMOS_KEY": cosmos.key,
            "DURALANE_COSMOS_DATABASE": unique("duralane"),
            "DURALANE_COSMOS_VERIFY_TLS": "false",
        },
    )
    yield runtime
    runtime.stop()


@pytest.fixture(scope="module")
def target() -> Iterator[TargetServer]:
    server = TargetServer().start()
    yield server
    server.stop()


def test_a_job_runs_to_success_with_its_state_in_cosmos(
    cosmos_app: RuntimeProcess, target: TargetServer
) -> None:
    job_id = unique("cosmos-ok")
    submit(cosmos_app, http_job(job_id, target.route(respond(200))))

    job = wait_state(cosmos_app, job_id, "succeeded")

    assert [a["outcome"] for a in job["attempts"]] == ["succeeded"]
    listed = cosmos_app.get("/api/jobs", params={"status": "succeeded"}).json()
    assert job_id in [item["id"] for item in listed["items"]]


def test_a_store_outage_mid_job_delays_the_job_but_loses_nothing(
    cosmos_app: RuntimeProcess, target: TargetServer, proxy: SwitchableProxy
) -> None:
    job_id = unique("cosmos-outage")
    url = target.route(respond(500, 200))
    submit(
        cosmos_app,
        http_job(job_id, url, retry={"maxAttempts": 3, "initialDelaySeconds": 2}),
    )
    wait_job(
        cosmos_app,
        job_id,
        lambda j: [a.get("outcome") for a in j["attempts"]] == ["failed"],
        "to record its first failed attempt",
    )

    proxy.cut()
    try:
        # The second attempt's bookkeeping cannot reach the store: the activity
        # fails and the orchestration's store retry policy takes over.
        cosmos_app.wait_for_log(STORE_FAILURE, timeout=30)
    finally:
        proxy.restore()

    job = wait_state(cosmos_app, job_id, "succeeded", timeout=60)
    assert [a["outcome"] for a in job["attempts"]] == ["failed", "succeeded"]
    assert len(target.hits(url)) == 2
    assert get_job(cosmos_app, job_id)["status"] == "succeeded"


def test_an_outage_past_the_store_retries_dead_letters_the_job_once_the_store_is_back(
    cosmos_app: RuntimeProcess, target: TargetServer, proxy: SwitchableProxy
) -> None:
    """The attempt's store retries run out, so the job's own policy decides; the
    dead letter waits out the outage on durable timers instead of being lost."""
    release = threading.Event()
    url = target.route(held_until(release))
    job_id = unique("cosmos-long-outage")
    job = submit(cosmos_app, http_job(job_id, url, retry={"maxAttempts": 1}))
    wait_until(lambda: len(target.hits(url)) == 1, timeout=30, what="the request")
    instance = re.escape(job["instanceId"])
    dead_letter_failed = re.compile(
        rf"Executed activity dead_letter_job .*instance {instance},.*: Failed"
    )

    proxy.cut()
    try:
        release.set()
        # Every quick retry of the attempt and then of the dead letter fails.
        cosmos_app.wait_for_log(dead_letter_failed, timeout=120)
    finally:
        proxy.restore()

    job = wait_state(cosmos_app, job_id, "dead_lettered", timeout=90)
    assert "could not be recorded" in job["deadLetterReason"], job
    assert [a["outcome"] for a in job["attempts"]] == ["failed"], job
    letter = cosmos_app.get(f"/api/deadletters/{job_id}")
    assert letter.status_code == 200, letter.text
    assert letter.json()["reason"] == job["deadLetterReason"]
