"""Failures survive the trip from an activity to the orchestrator as text."""

from __future__ import annotations

import pytest

from duralane.jobs.errors import (
    MAX_MESSAGE_CHARS,
    AttemptTimeout,
    InvalidJobParams,
    JobError,
    PermanentJobError,
    TargetRefused,
    TransientJobError,
    UnknownJobKind,
    decode_failure,
    encode_failure,
)


def test_the_tree_has_the_documented_shape() -> None:
    for permanent in (InvalidJobParams, UnknownJobKind, TargetRefused):
        assert issubclass(permanent, PermanentJobError)
    for leaf in (PermanentJobError, TransientJobError, AttemptTimeout):
        assert issubclass(leaf, JobError)
    assert not issubclass(AttemptTimeout, TransientJobError)


@pytest.mark.parametrize(
    ("exc", "kind", "retry_after", "status"),
    [
        (PermanentJobError("404 from target", status_code=404), "permanent", None, 404),
        (TargetRefused("loopback"), "permanent", None, None),
        (
            TransientJobError("busy", retry_after=30, status_code=503),
            "transient",
            30,
            503,
        ),
        (AttemptTimeout("ran past 5s", timeout_seconds=5), "timeout", None, None),
        (RuntimeError("surprise"), "transient", None, None),
    ],
)
def test_an_encoded_failure_decodes_to_the_same_facts(
    exc: BaseException, kind: str, retry_after: float | None, status: int | None
) -> None:
    info = decode_failure(encode_failure(exc))

    assert (info.kind, info.retry_after, info.status_code) == (
        kind,
        retry_after,
        status,
    )
    assert str(exc) in info.message
    assert info.retryable == (kind != "permanent")


def test_an_unexpected_exception_keeps_its_type_name() -> None:
    info = decode_failure(encode_failure(KeyError("missing")))

    assert info.message.startswith("KeyError")


def test_decoding_tolerates_text_the_runtime_wraps_around_the_message() -> None:
    encoded = encode_failure(PermanentJobError("gone"))
    wrapped = f"Activity function 'run_attempt' failed: {encoded}\n  at ..."

    assert decode_failure(wrapped).kind == "permanent"


@pytest.mark.parametrize(
    "text",
    [
        "plain crash",
        "",
        '{"kind": "permanent"}',
        "{not json}",
        '{"duralane.failure": 1',
    ],
)
def test_foreign_messages_decode_as_transient(text: str) -> None:
    assert decode_failure(text).kind == "transient"


def test_a_negative_or_infinite_retry_after_is_dropped() -> None:
    assert TransientJobError("x", retry_after=-3).retry_after is None
    assert TransientJobError("x", retry_after=float("inf")).retry_after is None


def test_huge_messages_are_clipped_with_a_count() -> None:
    info = decode_failure(encode_failure(TransientJobError("e" * 10_000)))

    assert len(info.message) <= MAX_MESSAGE_CHARS
    assert info.message.endswith(" more characters)")
    assert (
        info.message
        == decode_failure(encode_failure(TransientJobError(info.message))).message
    )
