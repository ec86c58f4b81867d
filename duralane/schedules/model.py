"""The schedule record and its dispatcher state, as camelCase JSON.

A schedule is a job template plus exactly one trigger (`cron`, `every` or
`at`) and the policies that say what happens at DST transitions, on overlap
and after downtime. Validation happens here so the API can answer 400 with a
field and a reason; `field_errors` turns pydantic's report into that list.

The job template stays a plain dict: the jobs model validates it, passed in as
`validate_template` (the seam) so this module does not depend on job kinds.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from functools import cached_property
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    AwareDatetime,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from duralane.jobs.schema import CamelModel
from duralane.schedules.cron import CronExpression, FoldPolicy, GapPolicy

OverlapPolicy = Literal["skip", "buffer_one", "allow", "cancel_previous"]
MisfirePolicy = Literal["skip", "run_once", "run_all"]

# Raises ValueError with a reason when a job template is not a valid job.
TemplateValidator = Callable[[dict[str, Any]], None]

# run_all replays at most this many missed fires, whatever misfireCap says, so
# one schedule cannot flood the queue after a long outage.
MAX_MISFIRE_CAP = 1000
MAX_JITTER_SECONDS = 24 * 3600

# Schedule ids end up inside run ids and URLs; "." is left out on purpose so a
# run id's timestamp can never be mistaken for part of a schedule id.
_ID_CHARACTERS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")
# A run id is "sched-<id>-<YYYYMMDDTHHMMSSZ>" plus "-now" for trigger-now, and
# it becomes the job id, which the jobs model caps at 64 characters.
MAX_ID_LENGTH = 36

# The error type pydantic reports for rules that span several fields; its
# context carries the field to blame, since a model validator has no location.
_RULE_ERROR = "schedule_rule"


def _as_utc(instant: datetime) -> datetime:
    """Store every instant in UTC, whatever offset the client sent."""
    return instant.astimezone(UTC)


UtcDatetime = Annotated[AwareDatetime, AfterValidator(_as_utc)]


def _rule_error(field: str, reason: str) -> PydanticCustomError:
    """A cross-field error that still names the one field to fix."""
    return PydanticCustomError(
        _RULE_ERROR, "{field}: {reason}", {"field": field, "reason": reason}
    )


class CronTrigger(CamelModel):
    """Fire on a cron expression read on the wall clock of an IANA time zone."""

    expression: str
    time_zone: str = "UTC"

    @field_validator("expression")
    @classmethod
    def _parses(cls, expression: str) -> str:
        """Refuse expressions the engine cannot read, with the field at fault."""
        CronExpression.parse(expression)
        return expression.strip()

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, name: str) -> str:
        """Refuse zones tzdata does not know, rather than falling back to UTC."""
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone '{name}'; use an IANA name such as Europe/Berlin"
            ) from None
        return name

    @cached_property
    def parsed(self) -> CronExpression:
        """The expression, parsed once per record."""
        return CronExpression.parse(self.expression)

    @cached_property
    def zone(self) -> ZoneInfo:
        """The zone whose wall clock the expression is read on."""
        return ZoneInfo(self.time_zone)


class EveryTrigger(CamelModel):
    """Fire every `seconds`, at epoch + phaseSeconds + k * seconds (UTC).

    Anchoring on the Unix epoch rather than on when the schedule was created
    keeps fire instants, and so run ids, the same on every dispatcher.
    """

    seconds: int = Field(gt=0)
    phase_seconds: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _phase_inside_interval(self) -> EveryTrigger:
        """A phase of a whole interval or more is a second spelling of a smaller one."""
        if self.phase_seconds >= self.seconds:
            raise _rule_error(
                "phaseSeconds",
                f"phase {self.phase_seconds} must be below the interval {self.seconds}",
            )
        return self


class AtTrigger(CamelModel):
    """Fire once, at one instant, to the whole second."""

    instant: UtcDatetime

    @field_validator("instant")
    @classmethod
    def _whole_second(cls, instant: datetime) -> datetime:
        """Run ids name fires to the second, so fires fall on whole seconds."""
        return instant.replace(microsecond=0)


class Schedule(CamelModel):
    """A recurring or one-off job: the template, one trigger and the policies."""

    id: str
    job: dict[str, Any]
    cron: CronTrigger | None = None
    every: EveryTrigger | None = None
    at: AtTrigger | None = None
    # Each fire starts up to this many seconds late, by an amount fixed per
    # fire, so many schedules on one minute do not start in one burst.
    jitter_seconds: float = Field(default=0, ge=0, le=MAX_JITTER_SECONDS)
    dst: GapPolicy = "shift"
    fold: FoldPolicy = "once"
    overlap: OverlapPolicy = "skip"
    misfire: MisfirePolicy = "run_once"
    misfire_cap: int = Field(default=10, ge=1, le=MAX_MISFIRE_CAP)
    # None: missed fires of any age follow the misfire policy.
    catchup_window_seconds: float | None = Field(default=None, ge=0)
    paused: bool = False
    start_at: UtcDatetime | None = None
    end_at: UtcDatetime | None = None

    @field_validator("id")
    @classmethod
    def _usable_in_run_ids(cls, schedule_id: str) -> str:
        """Keep ids safe in URLs and unambiguous inside run ids."""
        if not 1 <= len(schedule_id) <= MAX_ID_LENGTH:
            raise ValueError(f"must be 1 to {MAX_ID_LENGTH} characters")
        if not set(schedule_id) <= _ID_CHARACTERS or schedule_id[0] in "-_":
            raise ValueError(
                "use letters, digits, '-' and '_' only, starting with a letter or digit"
            )
        return schedule_id

    @field_validator("job")
    @classmethod
    def _valid_template(
        cls, job: dict[str, Any], info: ValidationInfo
    ) -> dict[str, Any]:
        """Run the jobs model's check when the caller supplied one."""
        context = info.context or {}
        validate_template: TemplateValidator | None = context.get("validate_template")
        if validate_template is not None:
            validate_template(job)
        return job

    @model_validator(mode="after")
    def _consistent(self, info: ValidationInfo) -> Schedule:
        """Rules that span fields: one trigger, a sane window, no past `at`."""
        given = [
            name
            for name, trigger in (
                ("cron", self.cron),
                ("every", self.every),
                ("at", self.at),
            )
            if trigger is not None
        ]
        if len(given) != 1:
            got = " and ".join(given) if given else "none"
            raise _rule_error(
                given[-1] if given else "cron",
                f"give exactly one trigger: cron, every or at (got {got})",
            )
        if self.start_at and self.end_at and self.end_at <= self.start_at:
            raise _rule_error(
                "endAt",
                f"{self.end_at.isoformat()} is not after startAt "
                f"{self.start_at.isoformat()}",
            )
        now: datetime | None = (info.context or {}).get("now")
        if self.at is not None and now is not None and self.at.instant <= now:
            raise _rule_error(
                "at.instant",
                f"{self.at.instant.isoformat()} is in the past (now is "
                f"{now.astimezone(UTC).isoformat()})",
            )
        return self

    @property
    def zone(self) -> tzinfo:
        """The zone fire instants are shown in: the cron zone, else UTC."""
        return self.cron.zone if self.cron is not None else UTC


class ScheduleState(CamelModel):
    """What the dispatcher remembers about one schedule between ticks.

    `processedThrough` is the cursor: every fire at or before it has been
    started, buffered or dropped, so a tick only ever looks after it.
    `nextDueAt` is when the dispatcher next has work for this schedule (the
    next fire plus its jitter); it is None while paused or when no fire is
    left, so a due index over it holds only schedules with work to do.
    """

    processed_through: UtcDatetime
    active_run_ids: tuple[str, ...] = ()
    buffered_fire_at: UtcDatetime | None = None
    next_fire_at: UtcDatetime | None = None
    next_due_at: UtcDatetime | None = None


def parse_schedule(
    data: Mapping[str, Any],
    *,
    now: datetime,
    validate_template: TemplateValidator | None = None,
) -> Schedule:
    """Validate a schedule from the API, checking `at` against the given now."""
    context = {"now": now, "validate_template": validate_template}
    return Schedule.model_validate(data, context=context)


@dataclass(frozen=True)
class FieldError:
    """One reason a request was refused, in the shape a 400 body carries."""

    field: str
    reason: str

    def to_json_dict(self) -> dict[str, str]:
        """The JSON the API returns for this error."""
        return {"field": self.field, "reason": self.reason}


def field_errors(error: ValidationError) -> list[FieldError]:
    """Turn pydantic's report into field and reason pairs for a 400 response."""
    result = []
    for detail in error.errors():
        context = detail.get("ctx") or {}
        if detail["type"] == _RULE_ERROR:
            # The model-level location is empty; the rule named its field.
            prefix = ".".join(str(part) for part in detail["loc"])
            field = f"{prefix}.{context['field']}" if prefix else context["field"]
            result.append(FieldError(field, str(context["reason"])))
            continue
        field = ".".join(str(part) for part in detail["loc"])
        if detail["type"] == "value_error" and "error" in context:
            # Our own message, without pydantic's "Value error, " prefix.
            reason = str(context["error"])
        else:
            reason = detail["msg"]
        result.append(FieldError(field, reason))
    return result
