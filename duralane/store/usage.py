"""Cost accounting: what each store call cost, in total and per job."""

from __future__ import annotations

import contextlib
import contextvars
import threading
from collections import OrderedDict, deque
from collections.abc import Iterator
from dataclasses import dataclass, field

# Bounds keep a long-lived process's ledger small: latency samples per operation
# and the most recently active jobs. Older figures are dropped, not summed wrong.
LATENCY_SAMPLES_PER_OP = 10_000
JOBS_TRACKED = 10_000

_current_job: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "duralane_store_job", default=None
)


@contextlib.contextmanager
def job_scope(job_id: str) -> Iterator[None]:
    """Attribute every store call made inside this block (and its tasks) to a job."""
    token = _current_job.set(job_id)
    try:
        yield
    finally:
        _current_job.reset(token)


def current_job() -> str | None:
    """The job the running code works for, if a job_scope says so."""
    return _current_job.get()


@dataclass
class Meter:
    """What one call cost, filled in by the backend as responses arrive."""

    request_units: float = 0.0
    rows: int = 0

    def add(self, request_units: float = 0.0, rows: int = 0) -> None:
        self.request_units += request_units
        self.rows += rows


@dataclass
class JobUsage:
    """Store calls made for one job: how many, of which kind, and their cost."""

    ops: int = 0
    request_units: float = 0.0
    rows: int = 0
    by_op: dict[str, int] = field(default_factory=dict)


@dataclass
class OpUsage:
    """One operation kind across the process: count, cost and latency samples."""

    count: int = 0
    request_units: float = 0.0
    rows: int = 0
    seconds: deque[float] = field(
        default_factory=lambda: deque(maxlen=LATENCY_SAMPLES_PER_OP)
    )

    def percentile(self, fraction: float) -> float:
        """Latency at this fraction (0.5, 0.99) of the kept samples, in seconds."""
        if not self.seconds:
            return 0.0
        ordered = sorted(self.seconds)
        index = min(len(ordered) - 1, int(fraction * len(ordered)))
        return ordered[index]


class UsageLedger:
    """Thread-safe running totals, by operation and by job."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ops: dict[str, OpUsage] = {}
        self._jobs: OrderedDict[str, JobUsage] = OrderedDict()

    def record(self, op: str, job_id: str | None, meter: Meter, seconds: float) -> None:
        """Add one finished call (successful or not: failed calls cost too)."""
        with self._lock:
            usage = self._ops.setdefault(op, OpUsage())
            usage.count += 1
            usage.request_units += meter.request_units
            usage.rows += meter.rows
            usage.seconds.append(seconds)
            if job_id is None:
                return
            job = self._jobs.pop(job_id, None) or JobUsage()
            job.ops += 1
            job.request_units += meter.request_units
            job.rows += meter.rows
            job.by_op[op] = job.by_op.get(op, 0) + 1
            self._jobs[job_id] = job
            while len(self._jobs) > JOBS_TRACKED:
                self._jobs.popitem(last=False)

    def for_job(self, job_id: str) -> JobUsage:
        """A copy of one job's figures (zeros for a job never seen)."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                return JobUsage()
            return JobUsage(job.ops, job.request_units, job.rows, dict(job.by_op))

    def summary(self) -> dict[str, dict[str, float]]:
        """Per "op:container": count, request units, rows, p50 and p99 in ms."""
        with self._lock:
            return {
                op: {
                    "count": usage.count,
                    "request_units": round(usage.request_units, 2),
                    "rows": usage.rows,
                    "p50_ms": round(usage.percentile(0.50) * 1000, 3),
                    "p99_ms": round(usage.percentile(0.99) * 1000, 3),
                }
                for op, usage in sorted(self._ops.items())
            }
