"""The unchanged DurableOrchestrationClient, driven through the app's HTTP triggers."""

from __future__ import annotations

import json

import httpx

from tests.runtime.harness import RuntimeProcess, unique, wait_until


def test_check_status_response_urls_work_with_a_plain_client(
    orchestrations: RuntimeProcess,
) -> None:
    """start_new plus create_check_status_response give URLs that really work."""
    instance = unique("client-urls")
    started = orchestrations.post(
        "/api/client/start/two_events_orchestrator",
        params={"id": instance},
        json={"from": "client"},
    )
    assert started.status_code == 202, started.text
    urls = started.json()
    assert urls["id"] == instance
    assert started.headers["Location"] == urls["statusQueryGetUri"]

    status = httpx.get(urls["statusQueryGetUri"], timeout=10)
    assert status.status_code in (200, 202)
    assert status.json()["input"] == {"from": "client"}
    for event, payload in (("first", 1), ("second", 2)):
        sent = httpx.post(
            urls["sendEventPostUri"].replace("{eventName}", event),
            json=payload,
            timeout=10,
        )
        assert sent.status_code == 202, sent.text

    def completed() -> bool:
        response = httpx.get(urls["statusQueryGetUri"], timeout=10)
        return response.json()["runtimeStatus"] == "Completed"

    wait_until(completed, timeout=30, what=f"{instance} to complete")
    final = httpx.get(urls["statusQueryGetUri"], timeout=10)
    assert final.status_code == 200
    assert final.json()["output"] == [1, 2]
    purged = httpx.delete(urls["purgeHistoryDeleteUri"], timeout=10)
    assert purged.status_code == 200
    assert httpx.get(urls["statusQueryGetUri"], timeout=10).status_code == 404


def test_client_start_status_and_raise_event(orchestrations: RuntimeProcess) -> None:
    """start_new, get_status and raise_event of the SDK client reach the runtime."""
    instance = unique("client-events")
    started = orchestrations.post(
        "/api/client/start/status_orchestrator", params={"id": instance}
    )
    assert started.status_code == 202, started.text

    def client_status() -> dict:
        response = orchestrations.get(f"/api/client/status/{instance}")
        assert response.status_code == 200, response.text
        return response.json()

    wait_until(
        lambda: client_status()["customStatus"] is not None,
        timeout=30,
        what="custom status through get_status",
    )
    assert client_status()["name"] == "status_orchestrator"
    raised = orchestrations.post(f"/api/client/raise/{instance}/go", json="from sdk")
    assert raised.status_code == 202, raised.text
    wait_until(
        lambda: client_status()["runtimeStatus"] == "Completed",
        timeout=30,
        what="completion through get_status",
    )
    # The SDK client JSON-encodes event data once more than it decodes it, so the
    # orchestrator sees JSON text, as on Azure (azure-functions-durable-python#295).
    assert json.loads(client_status()["output"]) == "from sdk"


def test_client_terminate_and_purge(orchestrations: RuntimeProcess) -> None:
    """terminate and purge_instance_history of the SDK client reach the runtime."""
    instance = unique("client-terminate")
    started = orchestrations.post(
        "/api/client/start/two_events_orchestrator", params={"id": instance}
    )
    assert started.status_code == 202, started.text

    terminated = orchestrations.post(
        f"/api/client/terminate/{instance}", params={"reason": "no longer needed"}
    )
    assert terminated.status_code == 202, terminated.text
    status = orchestrations.wait_done(instance)
    assert status["runtimeStatus"] == "Terminated"
    assert status["output"] == "no longer needed"

    purged = orchestrations.delete(f"/api/client/purge/{instance}")
    assert purged.status_code == 200, purged.text
    assert purged.json() == {"instancesDeleted": 1}
