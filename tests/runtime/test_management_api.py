"""The Durable Functions HTTP management API: start, query, purge and bad input."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.runtime.harness import WEBHOOK, RuntimeProcess, unique


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _finish(runtime: RuntimeProcess, prefix: str, count: int) -> list[str]:
    """Start and finish some hello instances whose ids share a prefix."""
    ids = [f"{prefix}-{n:02d}" for n in range(count)]
    for instance in ids:
        runtime.start_orchestration("hello_orchestrator", instance, instance)
    for instance in ids:
        assert runtime.wait_done(instance)["runtimeStatus"] == "Completed"
    return ids


def test_unknown_orchestrator_name_is_rejected_with_400(
    orchestrations: RuntimeProcess,
) -> None:
    """Starting a function that is not an orchestrator names it in the error."""
    response = orchestrations.post(f"{WEBHOOK}/orchestrators/no_such_orchestrator")

    assert response.status_code == 400
    assert "no_such_orchestrator" in response.json()["ExceptionMessage"]


def test_starting_an_existing_running_id_conflicts(
    orchestrations: RuntimeProcess,
) -> None:
    """An id in use by a running instance cannot be started again."""
    instance = unique("duplicate")
    orchestrations.start_orchestration("two_events_orchestrator", instance, {})

    again = orchestrations.post(
        f"{WEBHOOK}/orchestrators/two_events_orchestrator/{instance}"
    )

    assert again.status_code == 409
    orchestrations.control(instance, "terminate", "cleanup")


def test_malformed_start_body_is_a_400_with_a_message(
    orchestrations: RuntimeProcess,
) -> None:
    """A body that is not JSON is refused before any instance exists."""
    instance = unique("bad-body")
    response = orchestrations.post(
        f"{WEBHOOK}/orchestrators/hello_orchestrator/{instance}", content=b"{not json"
    )

    assert response.status_code == 400
    assert "not JSON" in response.json()["error"]
    assert orchestrations.get(f"{WEBHOOK}/instances/{instance}").status_code == 404


def test_unknown_instance_is_a_404_with_a_message(
    orchestrations: RuntimeProcess,
) -> None:
    """Status, raise event and terminate of a missing id all answer 404."""
    missing = unique("missing")

    for response in (
        orchestrations.get(f"{WEBHOOK}/instances/{missing}"),
        orchestrations.post(f"{WEBHOOK}/instances/{missing}/raiseEvent/go"),
        orchestrations.post(f"{WEBHOOK}/instances/{missing}/terminate"),
        orchestrations.delete(f"{WEBHOOK}/instances/{missing}"),
    ):
        assert response.status_code == 404, response.text
        assert missing in response.json()["error"]


def test_malformed_query_parameters_are_400s(orchestrations: RuntimeProcess) -> None:
    """Bad paging, times and tokens are named in the error, never a 500."""
    cases = [
        ({"top": "0"}, {}),
        ({"top": "many"}, {}),
        ({"createdTimeFrom": "yesterday"}, {}),
        ({}, {"x-ms-continuation-token": "garbage"}),
    ]
    for params, headers in cases:
        response = orchestrations.get(
            f"{WEBHOOK}/instances", params=params, headers=headers
        )
        assert response.status_code == 400, (params, headers, response.text)
        assert response.json()["error"]


def test_unknown_management_route_is_a_404(orchestrations: RuntimeProcess) -> None:
    """A path the API does not have answers 404 with a message."""
    response = orchestrations.post(f"{WEBHOOK}/instances/x/reticulate")

    assert response.status_code == 404
    assert "unknown" in response.json()["error"]


def test_event_data_that_is_not_json_is_a_400(orchestrations: RuntimeProcess) -> None:
    """Raise event checks the body before queueing it."""
    instance = unique("bad-event")
    orchestrations.start_orchestration("two_events_orchestrator", instance, {})

    response = orchestrations.post(
        f"{WEBHOOK}/instances/{instance}/raiseEvent/first", content=b"{oops"
    )

    assert response.status_code == 400
    assert "not JSON" in response.json()["error"]
    orchestrations.control(instance, "terminate", "cleanup")


def test_purge_deletes_one_instance_then_it_is_404(
    orchestrations: RuntimeProcess,
) -> None:
    """Purging a finished instance removes its status and history."""
    (instance,) = _finish(orchestrations, unique("purge-one"), 1)

    response = orchestrations.delete(f"{WEBHOOK}/instances/{instance}")

    assert response.status_code == 200
    assert response.json() == {"instancesDeleted": 1}
    assert orchestrations.get(f"{WEBHOOK}/instances/{instance}").status_code == 404


def test_purge_refuses_a_running_instance(orchestrations: RuntimeProcess) -> None:
    """A running instance must be terminated before its history can go."""
    instance = unique("purge-running")
    orchestrations.start_orchestration("two_events_orchestrator", instance, {})
    orchestrations.wait_status(instance, lambda s: s["runtimeStatus"] == "Running")

    response = orchestrations.delete(f"{WEBHOOK}/instances/{instance}")

    assert response.status_code == 409
    assert orchestrations.status(instance)["runtimeStatus"] == "Running"
    orchestrations.control(instance, "terminate", "cleanup")


def test_purge_by_filter_deletes_finished_instances_in_the_window(
    orchestrations: RuntimeProcess,
) -> None:
    """DELETE /instances with a time window and statuses purges in bulk."""
    since = datetime.now(UTC) - timedelta(seconds=1)
    running = unique("purge-filter-running")
    orchestrations.start_orchestration("two_events_orchestrator", running, {})
    finished = _finish(orchestrations, unique("purge-filter"), 3)

    response = orchestrations.delete(
        f"{WEBHOOK}/instances",
        params={"createdTimeFrom": _iso(since), "runtimeStatus": "Completed"},
    )

    assert response.status_code == 200
    assert response.json()["instancesDeleted"] >= 3
    for instance in finished:
        assert orchestrations.get(f"{WEBHOOK}/instances/{instance}").status_code == 404
    assert orchestrations.status(running)["runtimeStatus"] in ("Pending", "Running")
    orchestrations.control(running, "terminate", "cleanup")


def test_purge_by_filter_needs_created_time_from(
    orchestrations: RuntimeProcess,
) -> None:
    """Without a lower time bound a bulk purge is refused, as the real API does."""
    response = orchestrations.delete(f"{WEBHOOK}/instances")

    assert response.status_code == 400
    assert "createdTimeFrom" in response.json()["error"]


def test_query_pages_with_the_continuation_token(
    orchestrations: RuntimeProcess,
) -> None:
    """Following x-ms-continuation-token visits every match exactly once."""
    prefix = unique("page")
    expected = set(_finish(orchestrations, prefix, 5))

    seen: list[str] = []
    token = None
    pages = 0
    while True:
        headers: dict[str, str] = {"x-ms-continuation-token": token} if token else {}
        response = orchestrations.get(
            f"{WEBHOOK}/instances",
            params={"instanceIdPrefix": prefix, "top": "2"},
            headers=headers,
        )
        assert response.status_code == 200
        page = response.json()
        assert len(page) <= 2
        seen.extend(item["instanceId"] for item in page)
        pages += 1
        token = response.headers.get("x-ms-continuation-token")
        if not token:
            break

    assert sorted(seen) == sorted(expected)
    assert pages == 3


def test_query_filters_by_status_time_and_prefix(
    orchestrations: RuntimeProcess,
) -> None:
    """runtimeStatus, createdTimeFrom/To and instanceIdPrefix narrow the list."""
    prefix = unique("filter")
    done = _finish(orchestrations, prefix, 2)
    waiting = f"{prefix}-waiting"
    orchestrations.start_orchestration("two_events_orchestrator", waiting, {})
    orchestrations.wait_status(waiting, lambda s: s["runtimeStatus"] == "Running")

    def ids(**params: str) -> list[str]:
        response = orchestrations.get(
            f"{WEBHOOK}/instances", params={"instanceIdPrefix": prefix, **params}
        )
        assert response.status_code == 200, response.text
        return sorted(item["instanceId"] for item in response.json())

    assert ids() == sorted([*done, waiting])
    assert ids(runtimeStatus="Completed") == sorted(done)
    assert ids(runtimeStatus="Running") == [waiting]
    assert ids(runtimeStatus="Running,Completed") == sorted([*done, waiting])
    future = _iso(datetime.now(UTC) + timedelta(hours=1))
    past = _iso(datetime.now(UTC) - timedelta(hours=1))
    assert ids(createdTimeFrom=future) == []
    assert ids(createdTimeTo=past) == []
    orchestrations.control(waiting, "terminate", "cleanup")
