"""Backoff sequences, deterministic jitter and the Retry-After rule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from duralane.jobs.errors import FailureInfo
from duralane.jobs.retry import (
    RETRY_AFTER_CEILING_SECONDS,
    RetryPolicy,
    jitter_fraction,
    parse_retry_after,
)

NOW = datetime(2030, 1, 1, tzinfo=UTC)
TRANSIENT = FailureInfo(kind="transient", message="503 from target")


def test_the_backoff_sequence_follows_the_formula_up_to_the_cap() -> None:
    policy = RetryPolicy(
        max_attempts=8,
        initial_delay_seconds=2,
        backoff_multiplier=3,
        max_delay_seconds=100,
        jitter=0,
    )

    delays = [policy.delay_before(n, "job-a") for n in range(2, 9)]

    assert delays == [2, 6, 18, 54, 100, 100, 100]
    for n, delay in zip(range(2, 9), delays, strict=True):
        assert delay == min(2 * 3 ** (n - 2), 100)


def test_a_huge_attempt_number_stays_at_the_cap() -> None:
    policy = RetryPolicy(backoff_multiplier=100, max_delay_seconds=60, jitter=0)

    assert policy.delay_before(10_000, "job-a") == 60


def test_attempt_one_has_no_delay_before_it() -> None:
    with pytest.raises(ValueError, match="attempt 1"):
        RetryPolicy().delay_before(1, "job-a")


@given(
    job_id=st.text(min_size=1, max_size=40),
    attempt=st.integers(min_value=2, max_value=100),
    jitter=st.floats(min_value=0, max_value=1),
    initial=st.floats(min_value=0, max_value=1000),
)
def test_jitter_stays_within_bounds_and_repeats_on_replay(
    job_id: str, attempt: int, jitter: float, initial: float
) -> None:
    policy = RetryPolicy(
        max_attempts=100,
        initial_delay_seconds=initial,
        max_delay_seconds=max(initial, 300),
        jitter=jitter,
    )
    base = policy.base_delay(attempt)

    delay = policy.delay_before(attempt, job_id)

    assert base * (1 - jitter) - 1e-9 <= delay <= base
    assert delay == policy.delay_before(attempt, job_id)


def test_jitter_differs_between_jobs_and_attempts() -> None:
    fractions = {jitter_fraction(f"job-{i}", n) for i in range(20) for n in (2, 3)}

    assert len(fractions) == 40
    assert all(0 <= f < 1 for f in fractions)


def test_retry_after_wins_when_longer_than_the_backoff() -> None:
    policy = RetryPolicy(initial_delay_seconds=1, max_delay_seconds=10, jitter=0.5)

    assert policy.delay_before(2, "job-a", retry_after=45) == 45
    assert policy.delay_before(2, "job-a", retry_after=0.1) < 1.0 + 1e-9


def test_retry_after_is_clipped_at_the_ceiling() -> None:
    policy = RetryPolicy(jitter=0)

    delay = policy.delay_before(2, "job-a", retry_after=7 * 86_400)

    assert delay == RETRY_AFTER_CEILING_SECONDS


def test_decide_schedules_the_next_attempt_with_its_delay() -> None:
    policy = RetryPolicy(max_attempts=3, initial_delay_seconds=4, jitter=0)

    decision = policy.decide(1, TRANSIENT, "job-a", NOW)

    assert (decision.retry, decision.next_attempt, decision.delay_seconds) == (
        True,
        2,
        4,
    )
    assert decision.dead_letter_reason is None


def test_decide_dead_letters_when_attempts_are_exhausted() -> None:
    decision = RetryPolicy(max_attempts=3).decide(3, TRANSIENT, "job-a", NOW)

    assert not decision.retry
    assert decision.dead_letter_reason is not None
    assert "3 of 3" in decision.dead_letter_reason
    assert "503 from target" in decision.dead_letter_reason


def test_decide_dead_letters_a_permanent_failure_at_once() -> None:
    failure = FailureInfo(kind="permanent", message="404", status_code=404)

    decision = RetryPolicy(max_attempts=10).decide(1, failure, "job-a", NOW)

    assert not decision.retry
    assert decision.dead_letter_reason == "permanent: 404"


def test_a_timeout_is_retried() -> None:
    failure = FailureInfo(kind="timeout", message="ran past 5s")

    assert RetryPolicy().decide(1, failure, "job-a", NOW).retry


def test_decide_dead_letters_when_the_retry_would_start_after_the_deadline() -> None:
    policy = RetryPolicy(initial_delay_seconds=60, jitter=0)

    late = policy.decide(1, TRANSIENT, "job-a", NOW, NOW + timedelta(seconds=30))
    in_time = policy.decide(1, TRANSIENT, "job-a", NOW, NOW + timedelta(seconds=90))

    assert not late.retry
    assert late.dead_letter_reason is not None
    assert "deadline" in late.dead_letter_reason
    assert in_time.retry


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_attempts": 0},
        {"initial_delay_seconds": -1},
        {"backoff_multiplier": 0.5},
        {"jitter": 1.5},
        {"jitter": -0.1},
    ],
)
def test_a_policy_refuses_nonsense(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        (" 0 ", 0.0),
        ("Tue, 01 Jan 2030 00:02:00 GMT", 120.0),
        ("Mon, 31 Dec 2029 23:00:00 GMT", 0.0),
        ("-5", None),
        ("soon", None),
        ("", None),
        (None, None),
        ("1.5", None),
    ],
)
def test_retry_after_parses_seconds_and_http_dates(
    value: str | None, expected: float | None
) -> None:
    assert parse_retry_after(value, NOW) == expected
