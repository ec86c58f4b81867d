"""Job kinds: the registry, and the built-in `http` and `probe` kinds."""

from duralane.jobs.kinds import http as http
from duralane.jobs.kinds import probe as probe
from duralane.jobs.kinds.registry import (
    JobContext,
    JobKind,
    get_kind,
    job_kind,
    registered_kinds,
    run_job,
    unregister_kind,
)

__all__ = [
    "JobContext",
    "JobKind",
    "get_kind",
    "job_kind",
    "registered_kinds",
    "run_job",
    "unregister_kind",
]
