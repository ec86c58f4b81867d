"""Service Bus queue triggers fed through the runtime's queue API and the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.runtime.harness import APPS, REPO, RuntimeProcess, unique, wait_until

SERVICE_BUS_APP = APPS / "servicebus" / "servicebus_sample_app.py"


@pytest.fixture(scope="module")
def queues(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RuntimeProcess]:
    data_dir = tmp_path_factory.mktemp("servicebus")
    runtime = RuntimeProcess(SERVICE_BUS_APP, data_dir).start()
    yield runtime
    runtime.stop()


def received(runtime: RuntimeProcess, message_id: str) -> list[dict[str, Any]]:
    """What the orders function recorded for one message id."""
    path = runtime.data_dir / "orders.jsonl"
    if not path.exists():
        return []
    lines = [json.loads(line) for line in path.read_text().splitlines() if line]
    return [line for line in lines if line["message_id"] == message_id]


def wait_received(runtime: RuntimeProcess, message_id: str) -> dict[str, Any]:
    wait_until(
        lambda: bool(received(runtime, message_id)),
        timeout=15,
        what=f"the orders function to receive {message_id}",
        detail=runtime.log,
    )
    return received(runtime, message_id)[0]


def send(
    runtime: RuntimeProcess, queue: str, body: str, message_id: str, **headers: str
) -> dict[str, Any]:
    response = runtime.post(
        f"/runtime/queues/{queue}/messages",
        content=body.encode(),
        headers={"x-message-id": message_id, **headers},
    )
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


def cli(runtime: RuntimeProcess, *args: str) -> subprocess.CompletedProcess[str]:
    """Run `duralane queue ...` against the runtime, as a user would."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "duralane.cli",
            "queue",
            *args,
            "--url",
            runtime.base_url,
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )


def dead_letters(runtime: RuntimeProcess, queue: str) -> list[dict[str, Any]]:
    response = runtime.get(f"/runtime/queues/{queue}/deadletters")
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()
    return found


def test_message_sent_through_the_api_reaches_the_function(
    queues: RuntimeProcess,
) -> None:
    """The body and message id arrive, on the first delivery."""
    message_id = unique("api")
    send(queues, "orders", '{"sku": "A-1"}', message_id)

    message = wait_received(queues, message_id)

    assert json.loads(message["body"]) == {"sku": "A-1"}
    assert message["delivery_count"] == 1


def test_application_properties_reach_the_function(queues: RuntimeProcess) -> None:
    """x-application-properties become ServiceBusMessage.application_properties."""
    message_id = unique("props")
    properties = {"tenant": "contoso", "priority": 3}
    send(
        queues,
        "orders",
        "{}",
        message_id,
        **{"x-application-properties": json.dumps(properties)},
    )

    assert wait_received(queues, message_id)["application_properties"] == properties


@pytest.mark.parametrize(
    ("header", "value", "reason"),
    [
        ("x-scheduled-enqueue-time", "next tuesday", "not an ISO 8601 time"),
        ("x-application-properties", '"contoso"', "must be a JSON object"),
        ("x-application-properties", "{tenant", "not a JSON object"),
    ],
)
def test_a_bad_send_header_is_400_naming_it_and_enqueues_nothing(
    queues: RuntimeProcess, header: str, value: str, reason: str
) -> None:
    """A malformed header is the sender's mistake: 400 with the header, no message."""
    message_id = unique("bad-header")

    response = queues.post(
        "/runtime/queues/orders/messages",
        content=b"{}",
        headers={"x-message-id": message_id, header: value},
    )

    assert response.status_code == 400, response.text
    assert header in response.json()["error"], response.text
    assert reason in response.json()["error"], response.text
    peeked = queues.get("/runtime/queues/orders/messages?count=1000").json()
    assert message_id not in [m["messageId"] for m in peeked]
    assert not received(queues, message_id)


def test_message_sent_with_the_cli_reaches_the_function(
    queues: RuntimeProcess,
) -> None:
    """`duralane queue send` with --property works end to end."""
    message_id = unique("cli")

    result = cli(
        queues,
        "send",
        "orders",
        '{"sku": "B-2"}',
        "--message-id",
        message_id,
        "--property",
        "source=cli",
    )

    assert result.returncode == 0, result.stderr
    assert message_id in result.stdout
    message = wait_received(queues, message_id)
    assert message["application_properties"] == {"source": "cli"}


def test_duplicate_message_id_is_dropped_within_the_window(
    queues: RuntimeProcess,
) -> None:
    """Duplicate detection: the second send of an id is accepted but not delivered."""
    message_id = unique("dup")
    first = send(queues, "orders", '"one"', message_id)
    second = send(queues, "orders", '"two"', message_id)
    marker = unique("after-dup")
    send(queues, "orders", '"marker"', marker)

    wait_received(queues, marker)
    wait_received(queues, message_id)

    assert first["duplicate"] is False
    assert second["duplicate"] is True
    deliveries = received(queues, message_id)
    assert [d["body"] for d in deliveries] == ['"one"']


def test_poison_message_is_dead_lettered_after_max_delivery_count(
    queues: RuntimeProcess,
) -> None:
    """A handler that always raises moves the message to dead letters, with reason."""
    message_id = unique("poison")
    send(queues, "poison", "garbage", message_id)

    def dead() -> list[dict[str, Any]]:
        return [
            m for m in dead_letters(queues, "poison") if m["message_id"] == message_id
        ]

    wait_until(
        lambda: bool(dead()), timeout=30, what="a dead letter", detail=queues.log
    )
    (letter,) = dead()
    assert letter["delivery_count"] == 3
    assert letter["dead_letter_reason"] == "MaxDeliveryCountExceeded"
    assert letter["body"] == "garbage"
    peeked = queues.get("/runtime/queues/poison/messages").json()
    assert message_id not in [m["message_id"] for m in peeked]


def test_cli_lists_dead_letters_with_their_reason(queues: RuntimeProcess) -> None:
    """`duralane queue dead-letters` shows the message and why it was dead-lettered."""
    message_id = unique("poison-cli")
    send(queues, "poison", "bad", message_id)
    wait_until(
        lambda: message_id in [m["message_id"] for m in dead_letters(queues, "poison")],
        timeout=30,
        what="a dead letter",
    )

    result = cli(queues, "dead-letters", "poison", "--count", "100")

    assert result.returncode == 0, result.stderr
    (row,) = [line for line in result.stdout.splitlines() if message_id in line]
    assert "MaxDeliveryCountExceeded" in row
    as_json = cli(queues, "dead-letters", "poison", "--count", "100", "--json")
    letters = {m["message_id"]: m for m in json.loads(as_json.stdout)}
    assert letters[message_id]["dead_letter_reason"] == "MaxDeliveryCountExceeded"


def test_cli_peek_of_an_unknown_queue_fails_naming_it(queues: RuntimeProcess) -> None:
    """A queue no trigger reads does not exist: a non-zero exit that names it."""
    result = cli(queues, "peek", "nonexistent-queue")

    assert result.returncode != 0
    assert "nonexistent-queue" in result.stderr


def test_cli_peek_lists_a_scheduled_message(queues: RuntimeProcess) -> None:
    """A message scheduled for later waits on the queue, and peek shows it."""
    message_id = unique("scheduled")
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    send(queues, "orders", '"later"', message_id, **{"x-scheduled-enqueue-time": later})

    table = cli(queues, "peek", "orders", "--count", "100")
    as_json = cli(queues, "peek", "orders", "--count", "100", "--json")

    assert table.returncode == 0, table.stderr
    assert message_id in table.stdout
    peeked = {m["message_id"]: m for m in json.loads(as_json.stdout)}
    assert peeked[message_id]["body"] == '"later"'
    assert received(queues, message_id) == []
