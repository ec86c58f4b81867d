"""The built-in `probe` kind: check many endpoints in parallel, then summarize.

An orchestrator fans out one `probe_endpoint` activity per endpoint and calls
`summarize` on the results; the registered handler does the same in one
process for callers that do not fan out. A failing endpoint is a finding, not
a job failure: the job succeeds with a summary that names it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import aiohttp
from pydantic import Field, field_validator, model_validator

from duralane.jobs.errors import JobError, TargetRefused
from duralane.jobs.kinds.http import HttpMethod, check_url_shape, send_request
from duralane.jobs.kinds.registry import JobContext, job_kind, utc_now
from duralane.jobs.safety import TargetPolicy
from duralane.jobs.schema import CamelModel

logger = logging.getLogger(__name__)

MAX_ENDPOINTS = 100


class ProbeEndpoint(CamelModel):
    """One endpoint to check, and what counts as healthy."""

    name: str = Field(min_length=1, max_length=100)
    url: str = Field(min_length=1)
    method: HttpMethod = "GET"
    # Healthy statuses; absent means any 2xx.
    expect_status: list[int] | None = Field(default=None, min_length=1, max_length=20)
    timeout_seconds: float = Field(default=10.0, gt=0, le=300)

    @field_validator("url")
    @classmethod
    def _url_shape(cls, value: str) -> str:
        return check_url_shape(value)

    @field_validator("method", mode="before")
    @classmethod
    def _upper_method(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("expect_status", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, int) else value

    @field_validator("expect_status")
    @classmethod
    def _status_range(cls, value: list[int] | None) -> list[int] | None:
        for status in value or ():
            if not 100 <= status <= 599:
                raise ValueError(f"status {status} is outside 100..599")
        return value

    def is_healthy(self, status: int) -> bool:
        """Whether a response status counts as this endpoint being up."""
        if self.expect_status is None:
            return 200 <= status < 300
        return status in self.expect_status


class ProbeParams(CamelModel):
    """Parameters of the `probe` kind."""

    endpoints: list[ProbeEndpoint] = Field(min_length=1, max_length=MAX_ENDPOINTS)

    @model_validator(mode="after")
    def _unique_names(self) -> ProbeParams:
        seen: set[str] = set()
        for endpoint in self.endpoints:
            if endpoint.name in seen:
                raise ValueError(f"endpoint name {endpoint.name!r} appears twice")
            seen.add(endpoint.name)
        return self


class ProbeResult(CamelModel):
    """What one check of one endpoint found."""

    endpoint: str
    url: str
    status: int | None
    latency_ms: float | None
    error: str | None
    checked_at: datetime
    ok: bool


class ProbeSummary(CamelModel):
    """The outcome of one probe job across all its endpoints."""

    total: int
    healthy: int
    failing: list[str]
    max_latency_ms: float | None
    checked_at: datetime | None
    ok: bool
    results: list[ProbeResult]


async def probe_endpoint(
    endpoint: ProbeEndpoint,
    *,
    policy: TargetPolicy,
    job_id: str,
    idempotency_key: str | None = None,
    clock: Callable[[], datetime] = utc_now,
) -> ProbeResult:
    """Check one endpoint; every failure becomes the result's error, never raised."""
    checked_at = clock()
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
    started = time.perf_counter()
    status: int | None = None
    error: str | None = None
    try:
        response = await send_request(
            method=endpoint.method,
            url=endpoint.url,
            headers=headers,
            body=b"",
            timeout_seconds=endpoint.timeout_seconds,
            max_redirects=5,
            policy=policy,
            job_id=job_id,
            keep_body_bytes=0,
        )
        status = response.status
        if not endpoint.is_healthy(status):
            expected = endpoint.expect_status or "2xx"
            error = f"status {status}, expected {expected}"
    except TargetRefused as exc:
        error = f"refused: {exc.message}"
    except JobError as exc:
        error = exc.message
    except TimeoutError:
        error = f"timed out after {endpoint.timeout_seconds}s"
    except aiohttp.ClientError as exc:
        error = f"{type(exc).__name__}: {exc}"
    latency_ms = round((time.perf_counter() - started) * 1000, 3)

    ok = error is None
    log = logger.info if ok else logger.warning
    log(
        "job %s probe %s: %s in %.1f ms%s",
        job_id,
        endpoint.name,
        status if status is not None else "no response",
        latency_ms,
        "" if ok else f" ({error})",
    )
    return ProbeResult(
        endpoint=endpoint.name,
        url=endpoint.url,
        status=status,
        # A latency for a request that never got an answer would mislead
        # anyone charting it, so only answered checks report one.
        latency_ms=latency_ms if status is not None else None,
        error=error,
        checked_at=checked_at,
        ok=ok,
    )


def summarize(results: Sequence[ProbeResult]) -> ProbeSummary:
    """Fold per-endpoint results into the probe job's one summary."""
    latencies = [r.latency_ms for r in results if r.latency_ms is not None]
    failing = [r.endpoint for r in results if not r.ok]
    return ProbeSummary(
        total=len(results),
        healthy=len(results) - len(failing),
        failing=failing,
        max_latency_ms=max(latencies) if latencies else None,
        checked_at=max((r.checked_at for r in results), default=None),
        ok=not failing,
        results=list(results),
    )


@job_kind("probe", params=ProbeParams)
async def run_probe(params: ProbeParams, context: JobContext) -> ProbeSummary:
    """Probe every endpoint concurrently in this process and summarize."""
    results = await asyncio.gather(
        *(
            probe_endpoint(
                endpoint,
                policy=context.target_policy,
                job_id=context.job_id,
                idempotency_key=context.idempotency_key,
                clock=context.clock,
            )
            for endpoint in params.endpoints
        )
    )
    return summarize(results)
