"""What one dispatcher tick costs as the number of schedules grows.

Fills SQLite and the Cosmos DB stand-in (started here) with 100, then 10,000,
then 100,000 schedules, of which 100 are due at each measurement, and times a
full dispatcher tick (due query, claim, run record, clear) at each size. The
due query reads the nextFireAt index, so the tick should cost the same at
every size: the printed ratio largest/smallest is the check (target < 1.5).
Jobs are not submitted (a recording starter stands in for the durable
clients), so the figure is the store's share of a tick. Last line: one JSON
object.

    python benchmarks/dispatch_cost.py [--sizes 100,10000,100000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from duralane.jobs.model import JobSpec  # noqa: E402
from duralane.schedules import service  # noqa: E402
from duralane.store import Doc, Store  # noqa: E402
from duralane.store.cosmos import CosmosStore  # noqa: E402
from duralane.store.schema import container_spec  # noqa: E402
from duralane.store.sqlite import SqliteStore  # noqa: E402
from tests.services import start_cosmos_standin  # noqa: E402

logger = logging.getLogger("benchmarks.dispatch_cost")

DUE = 100
JOB = {"kind": "http", "params": {"url": "https://example.invalid/ping"}}
BulkInsert = Callable[[Store, list[Doc]], Awaitable[None]]


class RecordingStarter:
    """Stands in for the durable clients: the tick's store work is what we time."""

    def __init__(self) -> None:
        self.started: list[str] = []

    async def start(self, spec: JobSpec) -> None:
        self.started.append(spec.id)

    async def cancel(self, job_id: str) -> None:
        return None


def template(data: dict[str, Any], now: datetime) -> Doc:
    """One stored schedule document, built once and copied per id."""
    declaration = service.parse_declaration(data, now)
    return service.new_document(declaration, now)


def copies(base: Doc, prefix: str, start: int, stop: int) -> list[Doc]:
    return [
        {
            **base,
            "id": f"{prefix}-{n:06d}",
            "schedule": {**base["schedule"], "id": f"{prefix}-{n:06d}"},
        }
        for n in range(start, stop)
    ]


async def sqlite_bulk(store: Store, docs: list[Doc]) -> None:
    """One transaction per 5,000 rows through the store's own row writer."""
    assert isinstance(store, SqliteStore)
    spec = container_spec("schedules")
    for first in range(0, len(docs), 5000):
        chunk = docs[first : first + 5000]

        def write(chunk: list[Doc] = chunk) -> None:
            store._write(
                lambda connection: [
                    store._store_row(connection, spec, doc) for doc in chunk
                ]
            )

        await asyncio.to_thread(write)


async def cosmos_bulk(store: Store, docs: list[Doc]) -> None:
    """Many creates in flight at once; the stand-in has no bulk API."""
    gate = asyncio.Semaphore(64)

    async def one(doc: Doc) -> None:
        async with gate:
            await store.create("schedules", doc)

    await asyncio.gather(*(one(doc) for doc in docs))


async def measure(
    name: str, store: Store, bulk: BulkInsert, sizes: list[int], repeats: int
) -> dict[str, Any]:
    """Grow the store to each size and time ticks that each find 100 due."""
    await store.open()
    now = datetime.now(UTC)
    idle = template(
        {"id": "idle", "job": JOB, "cron": {"expression": "0 0 1 1 *"}}, now
    )
    # Declared 90 s ago to fire once, 60 s ago: due now, and never again, so
    # each measurement finds exactly the 100 it just added.
    instant = (now - timedelta(seconds=60)).isoformat()
    due = template(
        {"id": "due", "job": JOB, "at": {"instant": instant}},
        now - timedelta(seconds=90),
    )
    ticks: dict[int, float] = {}
    have = 0
    try:
        for size in sizes:
            idle_needed = size - DUE * repeats - have
            started = time.perf_counter()
            await bulk(store, copies(idle, f"idle-{size}", 0, max(idle_needed, 0)))
            have += max(idle_needed, 0)
            fill_s = time.perf_counter() - started
            samples = []
            for repeat in range(repeats):
                await bulk(store, copies(due, f"due-{size}-{repeat}", 0, DUE))
                have += DUE
                starter = RecordingStarter()
                began = time.perf_counter()
                report = await service.dispatch_tick(store, starter)
                samples.append((time.perf_counter() - began) * 1000)
                assert report.claimed == DUE, report
                assert len(starter.started) == DUE, len(starter.started)
            ticks[size] = statistics.median(samples)
            sys.stdout.write(
                f"{name}: {have:>7} schedules, {DUE} due: tick "
                f"{ticks[size]:8.1f} ms (median of {repeats}: "
                f"{', '.join(f'{s:.1f}' for s in samples)}); fill {fill_s:.1f} s\n"
            )
            sys.stdout.flush()
    finally:
        await store.close()
    ratio = max(ticks.values()) / min(ticks.values())
    sys.stdout.write(f"{name}: ratio largest/smallest {ratio:.2f}\n")
    return {"tick_ms": {str(k): round(v, 2) for k, v in ticks.items()}, "ratio": ratio}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,10000,100000")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    sizes = [max(s, DUE * args.repeats) for s in sizes]
    results: dict[str, Any] = {"due": DUE, "sizes": sizes}

    with tempfile.TemporaryDirectory(prefix="duralane-dispatch-") as scratch:
        sqlite = SqliteStore(Path(scratch) / "bench.sqlite3")
        results["sqlite"] = await measure(
            "sqlite", sqlite, sqlite_bulk, sizes, args.repeats
        )

    standin = start_cosmos_standin()
    try:
        cosmos = CosmosStore(
            standin.endpoint, "bench", key=standin.key, verify_tls=False
        )
        results["cosmos_standin"] = await measure(
            "cosmos stand-in", cosmos, cosmos_bulk, sizes, args.repeats
        )
    finally:
        standin.stop()

    sys.stdout.write(json.dumps(results, sort_keys=True) + "\n")


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(main())
