"""Bad input through the API and the lane queues, and unknown ids."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import httpx
import pytest

from tests.jobs_e2e.support import (
    TargetServer,
    http_job,
    respond,
    send_message,
    unique,
    wait_state,
)
from tests.runtime.harness import RuntimeProcess, wait_until

BAD_SPECS: dict[str, tuple[dict[str, Any], str]] = {
    "unknown kind": ({"kind": "resize"}, "kind"),
    "missing kind": ({"kind": None}, "kind"),
    "missing url": ({"params": {"url": None}}, "params.url"),
    "wrong type": ({"retry": {"maxAttempts": "three"}}, "retry.maxAttempts"),
    "negative attempts": ({"retry": {"maxAttempts": -1}}, "retry.maxAttempts"),
    "negative delay": (
        {"retry": {"initialDelaySeconds": -5}},
        "retry.initialDelaySeconds",
    ),
    "absurd jitter": ({"retry": {"jitter": 7}}, "retry.jitter"),
    "unknown field": ({"retries": 3}, "retries"),
    "unparsable url": ({"params": {"url": "http://[not-a-host/x"}}, "params.url"),
    "no scheme": ({"params": {"url": "example.com/x"}}, "params.url"),
}


def _spec(job_id: str, change: dict[str, Any]) -> dict[str, Any]:
    spec = http_job(job_id, "http://127.0.0.1:9/")
    for key, value in change.items():
        if isinstance(value, dict) and isinstance(spec.get(key), dict):
            spec[key] = {**spec[key], **value}
        else:
            spec[key] = value
    for section in (spec, spec["params"], spec["retry"]):
        for key in [k for k, v in section.items() if v is None]:
            del section[key]
    return spec


@pytest.mark.parametrize("case", sorted(BAD_SPECS))
def test_bad_job_is_refused_with_field_and_reason_and_not_stored(
    app: RuntimeProcess, case: str
) -> None:
    """A typo must be a 400 naming the field, never a silently stored job."""
    change, field = BAD_SPECS[case]
    job_id = unique("bad")

    response = app.post("/api/jobs", json=_spec(job_id, change))

    assert response.status_code == 400, response.text
    errors = response.json()["errors"]
    assert field in [e["field"] for e in errors], errors
    assert all(e["reason"] for e in errors)
    assert app.get(f"/api/jobs/{job_id}").status_code == 404


def test_invalid_json_is_refused_naming_the_whole_document(
    app: RuntimeProcess,
) -> None:
    """A body that is not JSON has no field to blame but the document."""
    response = app.post(
        "/api/jobs",
        content=b'{"id": "x", "kind": ',
        headers={"Content-Type": "application/json"},
    )

    assert response.status_code == 400, response.text
    errors = response.json()["errors"]
    assert [e["field"] for e in errors] == [""]
    assert errors[0]["reason"]


def test_oversized_body_is_refused_with_413_and_not_stored(
    app: RuntimeProcess,
) -> None:
    """Bodies over 256 KB are refused before anything is stored."""
    job_id = unique("big")
    spec = _spec(job_id, {"params": {"method": "POST", "body": "x" * 300_000}})

    response = app.post("/api/jobs", json=spec)

    assert response.status_code == 413, response.text
    assert response.json()["errors"][0]["field"].startswith("params.body")
    assert app.get(f"/api/jobs/{job_id}").status_code == 404


def test_unknown_job_id_is_404(app: RuntimeProcess) -> None:
    """Asking for, or cancelling, a job that never existed is a plain 404."""
    job_id = unique("nobody")

    assert app.get(f"/api/jobs/{job_id}").status_code == 404
    assert app.delete(f"/api/jobs/{job_id}").status_code == 404
    assert app.get(f"/api/deadletters/{job_id}").status_code == 404


def test_queue_message_with_a_bad_body_becomes_a_queue_dead_letter(
    app: RuntimeProcess,
) -> None:
    """A poison message is kept with its parse error, not redelivered forever."""
    message_id = f"bad-{uuid.uuid4().hex}"
    send_message(app, "jobs-normal", b"{not json", message_id)
    letter_id = f"msg-jobs-normal-{message_id}"
    found: dict[str, Any] = {}

    def stored() -> bool:
        response = app.get(f"/api/deadletters/{letter_id}")
        if response.status_code == 200:
            found.update(response.json())
        return response.status_code == 200

    wait_until(stored, timeout=30, what=f"dead letter {letter_id}")

    assert found["source"] == "queue"
    assert found["body"] == "{not json"
    assert found["reason"].startswith("body is not JSON")
    pattern = re.compile(rf"message {message_id}")
    deliveries = [line for line in app.log().splitlines() if pattern.search(line)]
    assert not any("became job" in line for line in deliveries)
    queued = app.get("/runtime/queues/jobs-normal/messages", params={"count": 1000})
    assert message_id not in [m.get("messageId") for m in queued.json()]
    dead = app.get("/runtime/queues/jobs-normal/deadletters", params={"count": 1000})
    assert message_id not in [m.get("messageId") for m in dead.json()]


def test_queue_messages_with_the_same_key_make_one_job(
    app: RuntimeProcess, target: TargetServer
) -> None:
    """Service Bus delivers at least once; the key keeps that to one job."""
    url = target.route(respond(200))
    key = unique("queue-key")
    first, second = unique("q-first"), unique("q-second")
    for job_id in (first, second):
        body = json.dumps(http_job(job_id, url, idempotencyKey=key)).encode()
        send_message(app, "jobs-normal", body, f"msg-{job_id}")

    app.wait_for_log(
        re.compile(rf"message msg-{second} became job \S+ \(existing\)"), 30
    )
    wait_state(app, first, "succeeded")

    assert app.get(f"/api/jobs/{second}").status_code == 404
    assert len(target.hits(url)) == 1
    with httpx.Client() as client:
        assert client.get(app.url(f"/api/jobs/{first}")).json()["run"] == 1
