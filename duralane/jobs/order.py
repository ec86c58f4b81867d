"""The small record a job orchestration runs from, and the outcome of one attempt."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from duralane.jobs.model import JobRecord, RetrySpec
from duralane.jobs.retry import RetryPolicy


@dataclass(frozen=True)
class JobOrder:
    """What the orchestrator needs to run a job, without the job's parameters."""

    job_id: str
    lane: str
    kind: str
    run: int
    # The job's RetrySpec as JSON, so the policy is rebuilt by one validator.
    retry: dict[str, Any]
    attempt_timeout_seconds: float
    deadline: str | None = None
    run_at: str | None = None
    endpoints: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def for_record(cls, record: JobRecord) -> JobOrder:
        """The order for a stored job's current run."""
        spec = record.spec
        endpoints: list[dict[str, Any]] = []
        if spec.kind == "probe":
            endpoints = list(spec.params.get("endpoints", []))
        return cls(
            job_id=record.job_id,
            lane=spec.lane,
            kind=spec.kind,
            run=record.run,
            retry=spec.retry.model_dump(mode="json", by_alias=True),
            attempt_timeout_seconds=spec.attempt_timeout_seconds,
            deadline=spec.deadline.isoformat() if spec.deadline else None,
            run_at=spec.run_at.isoformat() if spec.run_at else None,
            endpoints=endpoints,
        )

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> JobOrder:
        """Read an order back; unknown fields from newer code are ignored."""
        known = {name: data[name] for name in cls.__dataclass_fields__ if name in data}
        return cls(**known)

    def to_json(self) -> dict[str, Any]:
        """A plain-JSON form for orchestrator and activity inputs."""
        return asdict(self)

    def retry_policy(self) -> RetryPolicy:
        """The job's backoff rules."""
        return RetrySpec.model_validate(self.retry).to_policy()

    def deadline_at(self) -> datetime | None:
        """The job's deadline as an instant."""
        return datetime.fromisoformat(self.deadline) if self.deadline else None

    def run_at_instant(self) -> datetime | None:
        """When the job may start at the earliest."""
        return datetime.fromisoformat(self.run_at) if self.run_at else None
