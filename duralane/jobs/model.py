"""The job as users submit it (JobSpec) and as the store keeps it (JobRecord)."""

from __future__ import annotations

import hashlib
import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Self, TypedDict

from pydantic import (
    AwareDatetime,
    Field,
    ModelWrapValidatorHandler,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from duralane.ids import random_hex
from duralane.jobs.errors import FailureInfo, UnknownJobKind
from duralane.jobs.kinds import get_kind
from duralane.jobs.kinds.registry import KIND_NAME
from duralane.jobs.lanes import DEFAULT_LANE, Lane
from duralane.jobs.retry import RetryPolicy
from duralane.jobs.schema import CamelModel, RecordModel

# Job ids end up in Durable instance ids, URLs, log lines and blob names, so
# they keep to characters that need no escaping in any of them.
JOB_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"
MAX_IDEMPOTENCY_KEY_CHARS = 256
MAX_TAGS = 20
INSTANCE_ID_PREFIX = "job-"

_JOB_ID = re.compile(JOB_ID_PATTERN)
_TAG = re.compile(r"^[A-Za-z0-9_.:/=-]{1,64}$")
IdempotencyKey = Annotated[
    str,
    StringConstraints(
        min_length=1,
        max_length=MAX_IDEMPOTENCY_KEY_CHARS,
        pattern=r"^[^\x00-\x1f\x7f]+$",
    ),
]


def new_job_id() -> str:
    """A fresh random job id for submissions that do not name one."""
    return f"{INSTANCE_ID_PREFIX}{random_hex()}"


def instance_id_for(idempotency_key: str) -> str:
    """The Durable instance id for a key: equal keys give equal instances."""
    # Hashing gives a fixed-length id in a safe charset whatever the key holds,
    # and 128 bits keep accidental collisions out of reach.
    digest = hashlib.sha256(idempotency_key.encode("utf-8")).hexdigest()
    return f"{INSTANCE_ID_PREFIX}{digest[:32]}"


class RetrySpec(CamelModel):
    """The retry settings a job is submitted with; see duralane.jobs.retry."""

    max_attempts: int = Field(default=3, ge=1, le=100)
    initial_delay_seconds: float = Field(default=1.0, ge=0, le=86_400)
    backoff_multiplier: float = Field(default=2.0, ge=1, le=100)
    max_delay_seconds: float = Field(default=300.0, ge=0, le=7 * 86_400)
    jitter: float = Field(default=0.1, ge=0, le=1)

    @model_validator(mode="after")
    def _max_covers_initial(self) -> Self:
        if self.max_delay_seconds < self.initial_delay_seconds:
            raise _field_error(
                ("maxDelaySeconds",),
                "delay_order",
                f"maxDelaySeconds ({self.max_delay_seconds:g}) is below "
                f"initialDelaySeconds ({self.initial_delay_seconds:g})",
                self.max_delay_seconds,
            )
        return self

    def to_policy(self) -> RetryPolicy:
        """The pure policy object the orchestrator computes delays with."""
        return RetryPolicy(
            max_attempts=self.max_attempts,
            initial_delay_seconds=self.initial_delay_seconds,
            backoff_multiplier=self.backoff_multiplier,
            max_delay_seconds=self.max_delay_seconds,
            jitter=self.jitter,
        )


class JobSpec(CamelModel):
    """What a user submits: validated whole, params by the kind's own model."""

    id: str
    kind: str = Field(min_length=1, max_length=63)
    lane: Lane = DEFAULT_LANE
    idempotency_key: IdempotencyKey
    params: dict[str, Any] = Field(default_factory=dict)
    retry: RetrySpec = Field(default_factory=RetrySpec)
    attempt_timeout_seconds: float = Field(default=300.0, gt=0, le=86_400)
    # No attempt starts after the deadline; the job dead-letters instead.
    deadline: AwareDatetime | None = None
    # The first attempt starts no earlier than this.
    run_at: AwareDatetime | None = None
    tags: list[str] = Field(default_factory=list, max_length=MAX_TAGS)

    @field_validator("id")
    @classmethod
    def _id_charset(cls, value: str) -> str:
        if not _JOB_ID.match(value):
            raise PydanticCustomError(
                "job_id",
                "must be 1 to 64 letters, digits, '_', '.', ':' or '-', starting "
                "with a letter or digit",
            )
        return value

    @field_validator("tags")
    @classmethod
    def _tag_charset(cls, value: list[str]) -> list[str]:
        for tag in value:
            if not _TAG.match(tag):
                raise PydanticCustomError(
                    "tag",
                    f"tag {tag[:80]!r} must be 1 to 64 letters, digits or any of "
                    "'_.:/=-'",
                )
        # Order is kept for display; duplicates add nothing to a filter.
        return list(dict.fromkeys(value))

    @model_validator(mode="wrap")
    @classmethod
    def _validate_whole(
        cls, data: Any, handler: ModelWrapValidatorHandler[Self]
    ) -> Self:
        """Validate fields and the kind's params together, so one 400 lists all."""
        if isinstance(data, cls) or not isinstance(data, dict):
            return handler(data)

        data = _with_defaults(data)
        errors: list[InitErrorDetails] = []
        spec: Self | None = None
        try:
            spec = handler(data)
        except ValidationError as exc:
            errors.extend(_as_init_errors(exc))

        if any(e["loc"] == ("id",) for e in errors):
            # The key defaults to the id, so a bad id also shows up as a
            # missing key; one error is enough.
            errors = [
                e
                for e in errors
                if not (e["loc"] == ("idempotencyKey",) and _type_of(e) == "missing")
            ]
        params = _check_params(data, errors)
        if spec is not None and params is not None:
            spec.params = params
        if errors or spec is None:
            raise ValidationError.from_exception_data(cls.__name__, errors)
        return spec

    @model_validator(mode="after")
    def _times_in_order(self) -> Self:
        if self.run_at and self.deadline and self.run_at >= self.deadline:
            raise _field_error(
                ("runAt",),
                "run_at_after_deadline",
                f"runAt {self.run_at.isoformat()} is not before deadline "
                f"{self.deadline.isoformat()}",
                self.run_at.isoformat(),
            )
        return self

    @property
    def instance_id(self) -> str:
        """The Durable instance id this spec runs under."""
        return instance_id_for(self.idempotency_key)


def _with_defaults(data: dict[str, Any]) -> dict[str, Any]:
    """Fill the generated id and the key that defaults to it, before validation."""
    data = dict(data)
    if data.get("id") is None:
        data["id"] = new_job_id()
    key = data.get("idempotencyKey", data.get("idempotency_key"))
    if key is None and isinstance(data["id"], str):
        data.pop("idempotency_key", None)
        data["idempotencyKey"] = data["id"]
    return data


def _check_params(
    data: dict[str, Any], errors: list[InitErrorDetails]
) -> dict[str, Any] | None:
    """The params normalized by the kind's model; problems go into `errors`."""
    kind_name = data.get("kind")
    raw_params = data.get("params", {})
    if not isinstance(kind_name, str) or not KIND_NAME.match(kind_name):
        if isinstance(kind_name, str) and not any(
            e["loc"] == ("kind",) for e in errors
        ):
            errors.append(
                _error_details(
                    ("kind",),
                    "unknown_kind",
                    f"{kind_name!r} is not a kind name",
                    kind_name,
                )
            )
        return None
    try:
        kind = get_kind(kind_name)
    except UnknownJobKind as exc:
        errors.append(_error_details(("kind",), "unknown_kind", exc.message, kind_name))
        return None
    if not isinstance(raw_params, dict):
        # The base handler already reported the wrong type.
        return None
    try:
        model = kind.validate_params(raw_params)
    except ValidationError as exc:
        errors.extend(_as_init_errors(exc, prefix=("params",)))
        return None
    return model.model_dump(mode="json", by_alias=True)


class JobState(StrEnum):
    """Where a job is in its life; the last three are final."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    # An attempt failed and a retry is pending.
    FAILED = "failed"
    DEAD_LETTERED = "dead_lettered"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        """Whether the job will do nothing more unless replayed."""
        return self in (
            JobState.SUCCEEDED,
            JobState.DEAD_LETTERED,
            JobState.CANCELLED,
        )


class AttemptOutcome(StrEnum):
    """How one attempt ended."""

    SUCCEEDED = "succeeded"
    # Failed in a way another attempt may fix.
    FAILED = "failed"
    # Failed in a way no attempt can fix: the job dead-letters.
    FAILED_PERMANENTLY = "failed_permanently"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"


class Attempt(RecordModel):
    """One attempt of one run of a job, kept for inspection and dead letters."""

    number: int = Field(ge=1)
    # Replays from dead letter start a new run; attempts count within a run.
    run: int = Field(default=1, ge=1)
    started_at: datetime
    ended_at: datetime | None = None
    # None while the attempt is still running.
    outcome: AttemptOutcome | None = None
    error: str | None = None
    status_code: int | None = None
    retry_after_seconds: float | None = None

    def ended(self, at: datetime, failure: FailureInfo | None = None) -> Attempt:
        """This attempt finished at `at`, succeeded when `failure` is None."""
        if failure is None:
            return self.model_copy(
                update={"ended_at": at, "outcome": AttemptOutcome.SUCCEEDED}
            )
        outcome = {
            "permanent": AttemptOutcome.FAILED_PERMANENTLY,
            "timeout": AttemptOutcome.TIMED_OUT,
            "transient": AttemptOutcome.FAILED,
        }[failure.kind]
        return self.model_copy(
            update={
                "ended_at": at,
                "outcome": outcome,
                "error": failure.message,
                "status_code": failure.status_code,
                "retry_after_seconds": failure.retry_after,
            }
        )


class JobRecord(RecordModel):
    """The stored document of one job: its spec, state and every attempt."""

    spec: JobSpec
    instance_id: str
    state: JobState = JobState.QUEUED
    run: int = Field(default=1, ge=1)
    attempts: list[Attempt] = Field(default_factory=list)
    # The last successful attempt's result, as the kind returned it.
    result: Any = None
    created_at: datetime
    updated_at: datetime
    # When the first attempt of the current run started.
    started_at: datetime | None = None
    finished_at: datetime | None = None
    # Submission (or runAt, if later) to first attempt start, in milliseconds.
    start_lag_ms: float | None = None
    # When the pending retry (state failed) is due.
    next_attempt_at: datetime | None = None
    # The runtime instance running the job, and its last sign of progress, so
    # a survivor can take over a job whose owner died.
    owner: str | None = None
    heartbeat_at: datetime | None = None
    dead_letter_reason: str | None = None

    @classmethod
    def new(cls, spec: JobSpec, now: datetime) -> JobRecord:
        """The record stored when a job is accepted."""
        return cls(
            spec=spec,
            instance_id=spec.instance_id,
            created_at=now,
            updated_at=now,
        )

    @property
    def job_id(self) -> str:
        """The job's id, as the user named it or as it was generated."""
        return self.spec.id

    @property
    def ready_at(self) -> datetime:
        """When the job became due to start: submitted, its runAt, or a replay.

        Start lag counts from here, and so does lateness.
        """
        return max(
            self.created_at,
            self.spec.run_at or self.created_at,
            self.next_attempt_at or self.created_at,
        )


class FieldError(TypedDict):
    """One problem with submitted input, as a 400 response lists it."""

    field: str
    reason: str


# Reasons worded for the person who sent the JSON rather than for pydantic.
_REASONS = {
    "extra_forbidden": "unknown field; check its spelling",
    "missing": "required field is missing",
}

BODY_TOO_LARGE = "body_too_large"


def field_errors(exc: ValidationError) -> list[FieldError]:
    """Turn a ValidationError into the [{field, reason}] list of a 400 response."""
    problems: list[FieldError] = []
    for error in exc.errors(include_url=False):
        field = _dotted(error["loc"])
        reason = _REASONS.get(error["type"], error["msg"])
        problems.append({"field": field, "reason": reason})
    return problems


def http_status_for(exc: ValidationError) -> int:
    """413 when the only trouble includes an oversized body, else 400."""
    types = {error["type"] for error in exc.errors(include_url=False)}
    return 413 if BODY_TOO_LARGE in types else 400


def parse_job_spec(body: bytes | str | dict[str, Any]) -> JobSpec:
    """Validate a submission from raw JSON or a decoded dict; ValidationError if bad."""
    if isinstance(body, dict):
        return JobSpec.model_validate(body)
    return JobSpec.model_validate_json(body)


def _dotted(loc: tuple[int | str, ...]) -> str:
    """A location as `retry.maxAttempts` or `tags[2]`; the root is ``""``."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def _as_init_errors(
    exc: ValidationError, prefix: tuple[int | str, ...] = ()
) -> list[InitErrorDetails]:
    """Re-raisable copies of a ValidationError's entries, under a location prefix."""
    return [
        _error_details(
            prefix + tuple(error["loc"]), error["type"], error["msg"], error["input"]
        )
        for error in exc.errors(include_url=False)
    ]


def _type_of(error: InitErrorDetails) -> str:
    """The error type string of an entry built by _error_details."""
    kind = error["type"]
    return kind if isinstance(kind, str) else kind.type


def _error_details(
    loc: tuple[int | str, ...], error_type: str, message: str, value: Any
) -> InitErrorDetails:
    """One error entry with our own type and message, at a given location."""
    return {
        "type": PydanticCustomError(error_type, message),
        "loc": loc,
        "input": value,
    }


def _field_error(
    loc: tuple[int | str, ...], error_type: str, message: str, value: Any
) -> ValidationError:
    """A ValidationError pinned to a field, for checks that span fields."""
    return ValidationError.from_exception_data(
        "JobSpec", [_error_details(loc, error_type, message, value)]
    )
