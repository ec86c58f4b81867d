"""What a simple job's lifecycle costs in each state store: ops, RUs, latency.

Runs a few hundred lifecycles (create queued, read, patch to running with an
attempt, patch to succeeded, read) through SQLite and through the Cosmos DB
stand-in, which it starts itself. The stand-in charges 1 RU per request, so its
RU figure counts billable requests; real Cosmos DB charges about 1 RU per 1 KB
point read and ~6-10 RU per small indexed write. Last line: one JSON object.

    python benchmarks/store_cost.py [--jobs 300] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from duralane.store import ETAG, PatchOp, Store, iso_utc  # noqa: E402
from duralane.store.cosmos import CosmosStore  # noqa: E402
from duralane.store.sqlite import SqliteStore  # noqa: E402
from tests.services import start_cosmos_standin  # noqa: E402

logger = logging.getLogger("benchmarks.store_cost")


async def one_lifecycle(store: Store, job_id: str) -> None:
    """The writes and reads an http job makes from submission to success."""
    now = iso_utc(datetime.now(UTC))
    created = await store.create(
        "jobs",
        {
            "id": job_id,
            "status": "queued",
            "lane": "normal",
            "kind": "http",
            "tags": ["bench"],
            "createdAt": now,
            "updatedAt": now,
            "payload": {"url": "https://example.invalid/ping", "method": "GET"},
            "attempts": [],
        },
    )
    await store.read("jobs", job_id)
    running = await store.patch(
        "jobs",
        job_id,
        [
            PatchOp.set("/status", "running"),
            PatchOp.set("/updatedAt", now),
            PatchOp.add("/attempts/-", {"number": 1, "startedAt": now}),
        ],
        etag=created[ETAG],
    )
    await store.patch(
        "jobs",
        job_id,
        [
            PatchOp.set("/status", "succeeded"),
            PatchOp.set("/updatedAt", now),
            PatchOp.set("/attempts/0/finishedAt", now),
            PatchOp.set("/result", {"status": 200}),
        ],
        etag=running[ETAG],
    )
    await store.read("jobs", job_id)


async def measure(
    name: str, store: Store, jobs: int, concurrency: int
) -> dict[str, Any]:
    """Run the lifecycles and summarise the store's own ledger."""
    await store.open()
    gate = asyncio.Semaphore(concurrency)
    job_ids = [f"bench-{name}-{n:05d}" for n in range(jobs)]

    async def guarded(job_id: str) -> None:
        async with gate:
            await one_lifecycle(store, job_id)

    try:
        await asyncio.gather(*(guarded(job_id) for job_id in job_ids))
    finally:
        await store.close()
    per_job = [store.usage_for(job_id) for job_id in job_ids]
    return {
        "jobs": jobs,
        "ops_per_job": sum(u.ops for u in per_job) / jobs,
        "request_units_per_job": round(sum(u.request_units for u in per_job) / jobs, 2),
        "rows_per_job": sum(u.rows for u in per_job) / jobs,
        "operations": {
            op: {"p50_ms": figures["p50_ms"], "p99_ms": figures["p99_ms"]}
            for op, figures in store.usage().items()
        },
    }


def print_table(name: str, figures: dict[str, Any]) -> None:
    sys.stdout.write(
        f"{name}: {figures['jobs']} jobs, {figures['ops_per_job']:.1f} ops/job, "
        f"{figures['request_units_per_job']} RU/job, "
        f"{figures['rows_per_job']} rows/job\n"
    )
    for op, latency in figures["operations"].items():
        sys.stdout.write(
            f"  {op:<14} p50 {latency['p50_ms']:8.3f} ms"
            f"   p99 {latency['p99_ms']:8.3f} ms\n"
        )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    results: dict[str, Any] = {}

    with tempfile.TemporaryDirectory(prefix="duralane-bench-") as scratch:
        sqlite = SqliteStore(Path(scratch) / "bench.sqlite3")
        results["sqlite"] = await measure("sqlite", sqlite, args.jobs, args.concurrency)
    print_table("sqlite", results["sqlite"])

    standin = start_cosmos_standin()
    try:
        cosmos = CosmosStore(
            standin.endpoint, "bench", key=standin.key, verify_tls=False
        )
        results["cosmos_standin"] = await measure(
            "cosmos", cosmos, args.jobs, args.concurrency
        )
    finally:
        standin.stop()
    print_table("cosmos stand-in", results["cosmos_standin"])

    sys.stdout.write(json.dumps(results, sort_keys=True) + "\n")


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(main())
