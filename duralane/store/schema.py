"""The containers, their partition keys and indexed fields, in one place.

SQLite builds its tables and indexes from this, and `python -m duralane.store.schema`
writes the Cosmos DB container definitions under duralane/store/cosmos/, which the
Bicep templates load with loadJsonContent. A test checks the two never drift.

Times are ISO 8601 UTC strings with fixed-width microseconds ("...T18:27:06.000000Z",
see iso_utc), so string order is time order in both backends.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

COSMOS_DEFINITIONS_DIR = Path(__file__).resolve().parent / "cosmos"

JOB_STATUSES = (
    "queued",
    "running",
    "succeeded",
    "failed",
    "dead_lettered",
    "cancelled",
)
FINISHED_JOB_STATUSES = frozenset({"succeeded", "failed", "dead_lettered", "cancelled"})


def iso_utc(moment: datetime) -> str:
    """Format a time so that string order equals time order, as every index needs."""
    if moment.tzinfo is None:
        raise ValueError(f"naive datetime {moment!r}: pass an aware UTC time")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class QueryShape:
    """A query the product runs: equality on these fields, ordered by time."""

    equals: tuple[str, ...]


@dataclass(frozen=True)
class TtlRule:
    """Set the finished-record TTL when `field` takes one of `values`."""

    field: str
    values: frozenset[str]


@dataclass(frozen=True)
class ContainerSpec:
    """One container (Cosmos DB) or table (SQLite) and what is indexed in it."""

    name: str
    partition_key: str
    # Scalar fields served by an index: equality filters and the time field.
    indexed: tuple[str, ...]
    # The one time field: range filters and ordering use it.
    time_field: str | None
    shapes: tuple[QueryShape, ...] = ()
    # An array field queried by "contains" (job tags).
    array_field: str | None = None
    ttl_rule: TtlRule | None = None
    # Queries must name the partition, so they never fan out across partitions.
    partition_required: bool = False

    @property
    def partitioned_by_id(self) -> bool:
        return self.partition_key == "id"

    def cosmos_definition(self) -> dict[str, Any]:
        """The container resource body Cosmos DB and Bicep take, as plain JSON."""
        included = [{"path": f"/{name}/?"} for name in self.indexed]
        if self.array_field:
            included.append({"path": f"/{self.array_field}/[]/?"})
        composites: list[list[dict[str, str]]] = []
        for shape in self.shapes:
            if not shape.equals or self.time_field is None:
                continue
            paths = [*shape.equals, self.time_field]
            # Both directions, because ORDER BY must match one exactly.
            for order in ("ascending", "descending"):
                composites.append([{"path": f"/{p}", "order": order} for p in paths])
        return {
            "id": self.name,
            "partitionKey": {"paths": [f"/{self.partition_key}"], "kind": "Hash"},
            # -1: nothing expires unless the item carries its own ttl.
            "defaultTtl": -1,
            "indexingPolicy": {
                "indexingMode": "consistent",
                "automatic": True,
                # Only the queried fields are indexed, so writing payloads, results
                # and attempts costs no index RUs.
                "includedPaths": included,
                "excludedPaths": [{"path": "/*"}, {"path": '/"_etag"/?'}],
                "compositeIndexes": composites,
            },
        }


CONTAINERS: dict[str, ContainerSpec] = {
    spec.name: spec
    for spec in (
        ContainerSpec(
            name="jobs",
            partition_key="id",
            indexed=("id", "status", "lane", "kind", "createdAt", "updatedAt"),
            time_field="createdAt",
            shapes=(
                QueryShape(()),
                QueryShape(("status",)),
                QueryShape(("lane",)),
                QueryShape(("kind",)),
                QueryShape(("status", "lane")),
            ),
            array_field="tags",
            ttl_rule=TtlRule("status", FINISHED_JOB_STATUSES),
        ),
        ContainerSpec(
            name="deadletters",
            partition_key="id",
            indexed=("id", "jobId", "lane", "kind", "source", "deadLetteredAt"),
            time_field="deadLetteredAt",
            shapes=(
                QueryShape(()),
                QueryShape(("lane",)),
                QueryShape(("kind",)),
                QueryShape(("source",)),
                QueryShape(("jobId",)),
            ),
        ),
        ContainerSpec(
            name="schedules",
            partition_key="id",
            indexed=("id", "paused", "nextFireAt"),
            time_field="nextFireAt",
            shapes=(QueryShape(()), QueryShape(("paused",))),
        ),
        ContainerSpec(
            name="runs",
            partition_key="scheduleId",
            indexed=("id", "scheduleId", "firedAt"),
            time_field="firedAt",
            shapes=(QueryShape(("scheduleId",)),),
            partition_required=True,
        ),
        ContainerSpec(
            name="probes",
            partition_key="scheduleId",
            indexed=("id", "scheduleId", "endpoint", "checkedAt"),
            time_field="checkedAt",
            shapes=(
                QueryShape(("scheduleId",)),
                QueryShape(("scheduleId", "endpoint")),
            ),
            partition_required=True,
        ),
        ContainerSpec(
            name="leases",
            partition_key="id",
            indexed=("id",),
            time_field=None,
        ),
    )
}


def container_spec(name: str) -> ContainerSpec:
    """Look a container up, failing loudly on a typo rather than creating one."""
    try:
        return CONTAINERS[name]
    except KeyError:
        raise ValueError(
            f"unknown container {name!r}; known: {', '.join(CONTAINERS)}"
        ) from None


def render_cosmos_definition(spec: ContainerSpec) -> str:
    """The exact text of a container's JSON file, so a test can compare it."""
    return json.dumps(spec.cosmos_definition(), indent=2) + "\n"


def write_cosmos_definitions(directory: Path = COSMOS_DEFINITIONS_DIR) -> list[Path]:
    """Regenerate the container JSON files the Bicep templates load."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for spec in CONTAINERS.values():
        path = directory / f"{spec.name}.json"
        path.write_text(render_cosmos_definition(spec))
        written.append(path)
    return written


if __name__ == "__main__":
    for written_path in write_cosmos_definitions():
        sys.stdout.write(f"wrote {written_path}\n")
