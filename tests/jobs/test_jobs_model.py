"""Submissions: defaults, ids, and a field and reason for every bad input."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from duralane.jobs.errors import FailureInfo
from duralane.jobs.model import (
    Attempt,
    AttemptOutcome,
    JobRecord,
    JobSpec,
    JobState,
    field_errors,
    http_status_for,
    instance_id_for,
    parse_job_spec,
)
from duralane.jobs.safety import MAX_BODY_BYTES

NOW = datetime(2030, 1, 1, tzinfo=UTC)
HTTP_PARAMS = {"url": "https://example.com/hook"}


def problems(body: Any) -> dict[str, str]:
    with pytest.raises(ValidationError) as caught:
        parse_job_spec(body)
    errors = field_errors(caught.value)
    assert all(e["reason"] for e in errors)
    return {e["field"]: e["reason"] for e in errors}


def test_a_minimal_submission_gets_an_id_a_key_and_defaults() -> None:
    spec = parse_job_spec({"kind": "http", "params": HTTP_PARAMS})

    assert spec.id.startswith("job-")
    assert spec.idempotency_key == spec.id
    assert spec.lane == "normal"
    assert spec.retry.max_attempts == 3
    assert spec.params["method"] == "GET"
    assert spec.params["timeoutSeconds"] == 30


def test_the_json_uses_camel_case_and_round_trips() -> None:
    spec = parse_job_spec(
        json.dumps(
            {
                "id": "nightly-export.2030-01-01",
                "kind": "http",
                "lane": "low",
                "idempotencyKey": "export/2030-01-01",
                "params": {**HTTP_PARAMS, "method": "post", "body": {"a": 1}},
                "retry": {"maxAttempts": 5, "initialDelaySeconds": 2, "jitter": 0},
                "attemptTimeoutSeconds": 30,
                "runAt": "2030-01-01T01:00:00Z",
                "deadline": "2030-01-01T06:00:00+02:00",
                "tags": ["export", "nightly", "export"],
            }
        )
    )
    data = spec.model_dump(mode="json", by_alias=True)

    assert data["idempotencyKey"] == "export/2030-01-01"
    assert data["retry"]["maxAttempts"] == 5
    assert data["params"]["method"] == "POST"
    assert data["tags"] == ["export", "nightly"]
    assert parse_job_spec(data) == spec


def test_instance_ids_follow_the_idempotency_key() -> None:
    a = parse_job_spec({"id": "a", "kind": "http", "params": HTTP_PARAMS})
    b = parse_job_spec(
        {"id": "b", "kind": "http", "params": HTTP_PARAMS, "idempotencyKey": "a"}
    )

    assert a.instance_id == b.instance_id == instance_id_for("a")
    assert instance_id_for("a") != instance_id_for("b")
    assert instance_id_for("ü/?#\n" * 100).startswith("job-")
    assert len(instance_id_for("x" * 256)) == 36


def test_unknown_and_misspelled_fields_are_named() -> None:
    found = problems(
        {
            "kind": "http",
            "params": {**HTTP_PARAMS, "timeout": 3},
            "retries": {},
            "retry": {"maxAttemps": 2},
        }
    )

    assert set(found) == {"params.timeout", "retries", "retry.maxAttemps"}
    assert all("unknown field" in reason for reason in found.values())


def test_an_unknown_kind_names_the_registered_ones() -> None:
    found = problems({"kind": "resize-image"})

    assert "resize-image" in found["kind"]
    assert "http" in found["kind"]


@pytest.mark.parametrize(
    ("retry", "field"),
    [
        ({"maxAttempts": 0}, "retry.maxAttempts"),
        ({"maxAttempts": 101}, "retry.maxAttempts"),
        ({"maxAttempts": 2.5}, "retry.maxAttempts"),
        ({"initialDelaySeconds": -1}, "retry.initialDelaySeconds"),
        ({"initialDelaySeconds": 1e12}, "retry.initialDelaySeconds"),
        ({"backoffMultiplier": 0.5}, "retry.backoffMultiplier"),
        ({"maxDelaySeconds": -5}, "retry.maxDelaySeconds"),
        ({"jitter": 1.01}, "retry.jitter"),
        ({"jitter": "NaN"}, "retry.jitter"),
        ({"initialDelaySeconds": 60, "maxDelaySeconds": 10}, "retry.maxDelaySeconds"),
    ],
)
def test_negative_or_absurd_retry_values_are_refused(
    retry: dict[str, Any], field: str
) -> None:
    found = problems({"kind": "http", "params": HTTP_PARAMS, "retry": retry})

    assert list(found) == [field]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"id": "has space"}, "id"),
        ({"id": "/leading-slash"}, "id"),
        ({"id": "x" * 65}, "id"),
        ({"id": 7}, "id"),
        ({"idempotencyKey": ""}, "idempotencyKey"),
        ({"idempotencyKey": "a\nb"}, "idempotencyKey"),
        ({"lane": "urgent"}, "lane"),
        ({"attemptTimeoutSeconds": 0}, "attemptTimeoutSeconds"),
        ({"attemptTimeoutSeconds": 10**7}, "attemptTimeoutSeconds"),
        ({"runAt": "2030-01-01T00:00:00"}, "runAt"),
        ({"deadline": "tomorrow"}, "deadline"),
        (
            {"runAt": "2030-01-02T00:00:00Z", "deadline": "2030-01-01T00:00:00Z"},
            "runAt",
        ),
        ({"tags": ["ok", "no spaces"]}, "tags"),
        ({"tags": [f"t{i}" for i in range(21)]}, "tags"),
        ({"params": "not an object"}, "params"),
        ({"params": {"url": "ftp://example.com/"}}, "params.url"),
        ({"params": {"url": "http://"}}, "params.url"),
        ({"params": {"url": "http://[::1/"}}, "params.url"),
        ({"params": {}}, "params.url"),
        ({"params": {**HTTP_PARAMS, "method": "BREW"}}, "params.method"),
        ({"params": {**HTTP_PARAMS, "headers": {"A\r\nB": "v"}}}, "params.headers"),
        ({"params": {**HTTP_PARAMS, "timeoutSeconds": -1}}, "params.timeoutSeconds"),
    ],
)
def test_each_bad_field_is_reported_with_its_name(
    change: dict[str, Any], field: str
) -> None:
    found = problems({"kind": "http", "params": HTTP_PARAMS, **change})

    assert list(found) == [field]


def test_all_problems_are_reported_together() -> None:
    found = problems(
        {"kind": "http", "lane": "x", "params": {"url": "gopher://x"}, "tags": 5}
    )

    assert set(found) == {"lane", "params.url", "tags"}


def test_invalid_json_is_a_problem_of_the_whole_document() -> None:
    assert list(problems(b'{"kind": "http",')) == [""]


def test_an_oversized_body_is_a_413() -> None:
    body = {"kind": "http", "params": {**HTTP_PARAMS, "body": "x" * MAX_BODY_BYTES}}
    parse_job_spec(body)
    body["params"]["body"] += "x"  # type: ignore[index]

    with pytest.raises(ValidationError) as caught:
        parse_job_spec(body)

    assert http_status_for(caught.value) == 413
    assert field_errors(caught.value)[0]["field"] == "params.body"


def test_other_bad_input_is_a_400() -> None:
    with pytest.raises(ValidationError) as caught:
        parse_job_spec({"kind": "nope"})

    assert http_status_for(caught.value) == 400


def test_a_record_starts_queued_and_keeps_unknown_fields_out() -> None:
    spec = parse_job_spec({"kind": "http", "params": HTTP_PARAMS})
    record = JobRecord.new(spec, NOW)

    assert record.state is JobState.QUEUED
    assert record.instance_id == spec.instance_id
    assert record.job_id == spec.id
    stored = record.model_dump(mode="json", by_alias=True)
    stored["addedByANewerVersion"] = True
    assert JobRecord.model_validate(stored) == record
    assert {"createdAt", "startLagMs", "heartbeatAt", "deadLetterReason"} <= set(stored)


def test_an_attempt_records_how_it_ended() -> None:
    started = Attempt(number=2, started_at=NOW)

    ok = started.ended(NOW)
    failed = started.ended(
        NOW,
        FailureInfo(kind="transient", message="503", retry_after=5, status_code=503),
    )
    gone = started.ended(NOW, FailureInfo(kind="permanent", message="404"))

    assert ok.outcome is AttemptOutcome.SUCCEEDED
    assert (failed.outcome, failed.status_code, failed.retry_after_seconds) == (
        AttemptOutcome.FAILED,
        503,
        5,
    )
    assert gone.outcome is AttemptOutcome.FAILED_PERMANENTLY
    assert started.outcome is None


def test_final_states_are_the_three_that_end_a_job() -> None:
    assert {s for s in JobState if s.is_final} == {
        JobState.SUCCEEDED,
        JobState.DEAD_LETTERED,
        JobState.CANCELLED,
    }


def test_a_spec_converts_its_retry_settings_to_a_policy() -> None:
    spec = JobSpec.model_validate(
        {"kind": "http", "params": HTTP_PARAMS, "retry": {"maxAttempts": 7}}
    )

    assert spec.retry.to_policy().max_attempts == 7
