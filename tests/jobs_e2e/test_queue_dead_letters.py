"""Service Bus dead letters of the lane queues end up in GET /api/deadletters."""

from __future__ import annotations

from typing import Any

from tests.jobs_e2e.support import unique
from tests.runtime.harness import RuntimeProcess, wait_until


def test_message_exhausting_deliveries_is_moved_to_the_dead_letter_store(
    app: RuntimeProcess,
) -> None:
    message_id = unique("poison")
    # Nesting deeper than the JSON decoder's recursion limit makes the trigger
    # raise rather than refuse the body, so every delivery fails until
    # maxDeliveryCount (10 in host.json) sends it to the dead-letter sub-queue.
    poison = "[" * 3000
    sent = app.post(
        "/runtime/queues/jobs-low/messages",
        content=poison.encode(),
        headers={"Content-Type": "application/json", "x-message-id": message_id},
    )
    assert sent.status_code in (200, 201), sent.text
    letter_id = f"msg-jobs-low-{message_id}"
    found: dict[str, Any] = {}

    def moved() -> bool:
        nonlocal found
        response = app.get(f"/api/deadletters/{letter_id}")
        found = response.json() if response.status_code == 200 else {}
        return bool(found)

    wait_until(moved, timeout=30, what=f"dead letter {letter_id}", interval=0.1)
    assert found["source"] == "queue"
    assert found["lane"] == "low"
    assert found["reason"] == "MaxDeliveryCountExceeded"
    assert "10" in found["description"]
    assert found["deliveryCount"] == 10
    assert found["body"] == poison

    listed = app.get("/api/deadletters", params={"source": "queue", "lane": "low"})
    assert letter_id in [item["id"] for item in listed.json()["items"]]
    # The mover completed the message: the sub-queue is empty again.
    wait_until(
        lambda: not app.get("/runtime/queues/jobs-low/deadletters").json(),
        timeout=10,
        what="jobs-low's dead-letter sub-queue to empty",
    )
