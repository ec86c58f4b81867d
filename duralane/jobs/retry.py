"""Backoff math for job attempts: pure functions, so orchestrator replays agree.

The delay before attempt n (n >= 2) is

    base(n)  = min(initialDelaySeconds * backoffMultiplier ** (n - 2),
                   maxDelaySeconds)
    delay(n) = base(n) * (1 - jitter * u(jobId, n))

where u is a number in [0, 1) drawn from SHA-256 of the job id and n, so every
replay of an orchestrator computes the same delay without storing it. Jitter
only shortens a delay, so maxDelaySeconds stays a true upper bound for backoff.

When the target sent Retry-After, the delay is the larger of delay(n) and the
server's wish, the latter clipped to RETRY_AFTER_CEILING_SECONDS: a server may
ask for more than maxDelaySeconds (retrying sooner would only earn another
429), but no target can park a job for more than an hour per attempt. Nothing
here reads a clock: callers pass `now` in, from context.current_utc_datetime in
an orchestrator.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime

from duralane.jobs.errors import FailureInfo

# The longest wait a Retry-After header can impose on one attempt.
RETRY_AFTER_CEILING_SECONDS = 3600.0


@dataclass(frozen=True)
class RetryPolicy:
    """How many attempts a job gets and how long it waits between them."""

    max_attempts: int = 3
    initial_delay_seconds: float = 1.0
    backoff_multiplier: float = 2.0
    max_delay_seconds: float = 300.0
    jitter: float = 0.1

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {self.max_attempts}")
        if self.initial_delay_seconds < 0 or self.max_delay_seconds < 0:
            raise ValueError(
                "delays must be >= 0, got initial "
                f"{self.initial_delay_seconds} and max {self.max_delay_seconds}"
            )
        if self.backoff_multiplier < 1:
            raise ValueError(
                f"backoff_multiplier must be >= 1, got {self.backoff_multiplier}"
            )
        if not 0 <= self.jitter <= 1:
            raise ValueError(f"jitter must be within 0..1, got {self.jitter}")

    def base_delay(self, attempt: int) -> float:
        """Backoff before attempt `attempt` (2 or more) before jitter is applied."""
        if attempt < 2:
            raise ValueError(f"attempt 1 has no delay before it; got {attempt}")
        # Multiply step by step and stop at the cap, so a large attempt number
        # cannot overflow the float the way multiplier ** (n - 2) would.
        delay = self.initial_delay_seconds
        for _ in range(attempt - 2):
            delay *= self.backoff_multiplier
            if delay >= self.max_delay_seconds:
                return self.max_delay_seconds
        return min(delay, self.max_delay_seconds)

    def delay_before(
        self, attempt: int, job_id: str, retry_after: float | None = None
    ) -> float:
        """Seconds to wait before attempt `attempt`, jittered deterministically."""
        base = self.base_delay(attempt)
        delay = base * (1.0 - self.jitter * jitter_fraction(job_id, attempt))
        if retry_after is not None and retry_after > 0:
            delay = max(delay, min(retry_after, RETRY_AFTER_CEILING_SECONDS))
        return delay

    def decide(
        self,
        failed_attempt: int,
        failure: FailureInfo,
        job_id: str,
        now: datetime,
        deadline: datetime | None = None,
    ) -> RetryDecision:
        """Whether and when to run the attempt after `failed_attempt` failed."""
        if not failure.retryable:
            return RetryDecision(False, None, None, f"permanent: {failure.message}")
        if failed_attempt >= self.max_attempts:
            return RetryDecision(
                False,
                None,
                None,
                f"attempts exhausted: {failed_attempt} of {self.max_attempts} "
                f"failed; last error: {failure.message}",
            )
        attempt = failed_attempt + 1
        delay = self.delay_before(attempt, job_id, failure.retry_after)
        at = now + timedelta(seconds=delay)
        if deadline is not None and at >= deadline:
            return RetryDecision(
                False,
                None,
                None,
                f"deadline {deadline.isoformat()} passes before attempt {attempt} "
                f"could start at {at.isoformat()} ({delay:.3f}s from now); "
                f"last error: {failure.message}",
            )
        return RetryDecision(True, attempt, delay, None)


@dataclass(frozen=True)
class RetryDecision:
    """The orchestrator's next step after a failed attempt."""

    retry: bool
    next_attempt: int | None
    delay_seconds: float | None
    # Why the job dead-letters; None when it retries.
    dead_letter_reason: str | None


def jitter_fraction(job_id: str, attempt: int) -> float:
    """A number in [0, 1) fixed by the job id and attempt, the same on replay."""
    digest = hashlib.sha256(f"{job_id}\x00{attempt}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds a Retry-After header asks for, given as seconds or an HTTP-date."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if text.isdigit():
        return float(int(text))
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        # RFC 9110 HTTP-dates are always GMT; a naive result means "-0000".
        return None
    return max(0.0, (when - now).total_seconds())
