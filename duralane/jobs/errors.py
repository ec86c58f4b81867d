"""The job domain's one exception tree, and its string form for the orchestrator.

    JobError                     anything a job attempt can fail with
    ├── PermanentJobError        retrying cannot help: dead-letter at once
    │   ├── InvalidJobParams     the params do not fit the kind's model
    │   ├── UnknownJobKind       no handler is registered under the name
    │   └── TargetRefused        the SSRF guard or a request check said no
    ├── TransientJobError        may succeed later: retry with backoff
    └── AttemptTimeout           the attempt ran past its timeout: retry

Durable Functions hands an orchestrator only the message of an exception raised
in an activity, so `encode_failure` turns any exception into a small JSON
message and `decode_failure` reads it back as a `FailureInfo`. Exceptions
outside this tree count as transient: an unexpected bug retries a few times and
then dead-letters, which is safer than dropping the job on the first fault.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Literal

FailureKind = Literal["permanent", "transient", "timeout"]

# Marks a message as ours, so a message from an unrelated exception that
# happens to be JSON is not misread.
_MARKER = "duralane.failure"

# An orchestrator stores every failure in its history; cap the message so one
# runaway error text cannot bloat it.
MAX_MESSAGE_CHARS = 2000


class JobError(Exception):
    """Base of every failure a job attempt reports on purpose."""

    kind: FailureKind = "transient"

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code


class PermanentJobError(JobError):
    """A failure that another attempt cannot fix, so the job dead-letters now."""

    kind: FailureKind = "permanent"


class InvalidJobParams(PermanentJobError):
    """The job's params do not validate against its kind's parameter model."""


class UnknownJobKind(PermanentJobError):
    """The job names a kind that no handler is registered under."""

    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(
            f"unknown job kind {name!r}: registered kinds are {', '.join(known)}"
        )
        self.name = name


class TargetRefused(PermanentJobError):
    """An http or probe target, header or body was refused by the safety rules."""


class TransientJobError(JobError):
    """A failure that may clear up, so the job retries with backoff."""

    kind: FailureKind = "transient"

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        status_code: int | None = None,
    ) -> None:
        super().__init__(message, status_code=status_code)
        if retry_after is not None and (
            not math.isfinite(retry_after) or retry_after < 0
        ):
            retry_after = None
        self.retry_after = retry_after


class AttemptTimeout(JobError):
    """The attempt did not finish within its attemptTimeoutSeconds."""

    kind: FailureKind = "timeout"

    def __init__(self, message: str, *, timeout_seconds: float | None = None) -> None:
        super().__init__(message)
        self.timeout_seconds = timeout_seconds


@dataclass(frozen=True)
class FailureInfo:
    """What the orchestrator learns about a failed attempt."""

    kind: FailureKind
    message: str
    retry_after: float | None = None
    status_code: int | None = None

    @property
    def retryable(self) -> bool:
        """Whether another attempt may help; only permanent failures say no."""
        return self.kind != "permanent"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form for attempt records and orchestrator outputs."""
        return {
            "kind": self.kind,
            "message": self.message,
            "retryAfter": self.retry_after,
            "statusCode": self.status_code,
        }


def failure_info(exc: BaseException) -> FailureInfo:
    """Classify any exception the way the retry logic sees it."""
    if isinstance(exc, JobError):
        retry_after = exc.retry_after if isinstance(exc, TransientJobError) else None
        return FailureInfo(
            kind=exc.kind,
            message=_clip(exc.message),
            retry_after=retry_after,
            status_code=exc.status_code,
        )
    text = str(exc)
    message = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return FailureInfo(kind="transient", message=_clip(message))


def encode_failure(exc: BaseException) -> str:
    """The message to raise from an activity so the orchestrator can decode it."""
    info = failure_info(exc)
    payload = {_MARKER: 1, **info.to_dict()}
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)


def decode_failure(text: str) -> FailureInfo:
    """Read back an activity failure; foreign messages count as transient."""
    # The Durable SDK may prefix or suffix the message with its own words, so
    # look for the outermost JSON object rather than parsing the whole string.
    start, end = text.find("{"), text.rfind("}")
    if start != -1 and end > start:
        try:
            payload = json.loads(text[start : end + 1])
        except ValueError:
            payload = None
        if isinstance(payload, dict) and payload.get(_MARKER) == 1:
            return _from_payload(payload, text)
    return FailureInfo(kind="transient", message=_clip(text))


def _from_payload(payload: dict[str, Any], text: str) -> FailureInfo:
    """Build a FailureInfo from a decoded payload, tolerating missing fields."""
    raw_kind = payload.get("kind")
    kind: FailureKind = "transient"
    if raw_kind == "permanent" or raw_kind == "timeout":
        kind = raw_kind
    message = payload.get("message")
    retry_after = payload.get("retryAfter")
    status_code = payload.get("statusCode")
    return FailureInfo(
        kind=kind,
        message=_clip(message if isinstance(message, str) else text),
        retry_after=(
            float(retry_after)
            if isinstance(retry_after, int | float)
            and not isinstance(retry_after, bool)
            else None
        ),
        status_code=(
            status_code
            if isinstance(status_code, int) and not isinstance(status_code, bool)
            else None
        ),
    )


def _clip(message: str) -> str:
    """Cap a message at MAX_MESSAGE_CHARS, saying how much was dropped."""
    if len(message) <= MAX_MESSAGE_CHARS:
        return message
    # The note counts itself in, so clipping an already clipped message (as
    # decode_failure does) leaves it unchanged.
    note_room = 40
    kept = MAX_MESSAGE_CHARS - note_room
    return f"{message[:kept]}… ({len(message) - kept} more characters)"
