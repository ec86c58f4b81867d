"""The one store interface activities and the HTTP API use, whatever the backend."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from duralane.store.claimcheck import ClaimCheck, serialized_size
from duralane.store.errors import EtagConflict, RecordTooLarge
from duralane.store.schema import ContainerSpec, container_spec
from duralane.store.usage import JobUsage, Meter, UsageLedger, current_job

logger = logging.getLogger(__name__)

Doc = dict[str, Any]
ETAG = "_etag"
T = TypeVar("T")

# The largest record accepted, payloads in blobs included. Far above any job
# payload Duralane expects; it stops a runaway result from filling storage.
MAX_RECORD_BYTES = 16 * 1024 * 1024
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000


@dataclass(frozen=True)
class PatchOp:
    """One partial update, with Cosmos DB patch semantics in both backends.

    Paths are JSON Pointer style ("/status", "/attempts/-" appends to an array).
    set: create or replace; incr: add a number (creates the field); add: insert
    into an array or set a key; remove: delete a key or element (must exist).
    """

    op: Literal["set", "incr", "add", "remove"]
    path: str
    value: Any = None

    @classmethod
    def set(cls, path: str, value: Any) -> PatchOp:
        return cls("set", path, value)

    @classmethod
    def incr(cls, path: str, value: int | float = 1) -> PatchOp:
        return cls("incr", path, value)

    @classmethod
    def add(cls, path: str, value: Any) -> PatchOp:
        return cls("add", path, value)

    @classmethod
    def remove(cls, path: str) -> PatchOp:
        return cls("remove", path)


@dataclass(frozen=True)
class Filter:
    """A query every backend serves from an index: never free-form SQL.

    equals: field -> value, on the container's indexed fields.
    contains: a value the container's array field (job tags) must hold.
    since / until: inclusive bounds on the container's time field (iso_utc).
    Results come ordered by the time field, newest first unless ascending.
    """

    equals: Mapping[str, str | int | bool] = field(default_factory=dict)
    contains: str | None = None
    since: str | None = None
    until: str | None = None
    ascending: bool = False


@dataclass(frozen=True)
class Page:
    """One page of a query; pass continuation back for the next, None at the end."""

    items: list[Doc]
    continuation: str | None


def validate_filter(spec: ContainerSpec, query: Filter) -> None:
    """Refuse a filter no index serves, before it reaches a backend."""
    if spec.time_field is None:
        raise ValueError(f"container {spec.name} is not queryable")
    for name in query.equals:
        if name not in spec.indexed:
            raise ValueError(
                f"{spec.name}.{name} is not indexed; filter on one of {spec.indexed}"
            )
    if query.contains is not None and spec.array_field is None:
        raise ValueError(f"container {spec.name} has no array field to match")
    if spec.partition_required and spec.partition_key not in query.equals:
        raise ValueError(
            f"queries on {spec.name} must name {spec.partition_key}, so they stay "
            "inside one partition"
        )


class Store(ABC):
    """Documents in named containers, with etags, typed errors and cost figures.

    Backends implement the underscored hooks; everything they share (claim check,
    TTL of finished records, retries of lost races, accounting) lives here.
    """

    def __init__(
        self,
        *,
        claim_check: ClaimCheck | None = None,
        finished_ttl_seconds: int = 0,
        max_record_bytes: int = MAX_RECORD_BYTES,
    ) -> None:
        self._claim_check = claim_check
        self._finished_ttl_seconds = finished_ttl_seconds
        self._max_record_bytes = max_record_bytes
        self._ledger = UsageLedger()

    # -- the interface -------------------------------------------------------

    async def create(self, container: str, doc: Doc) -> Doc:
        """Insert a new record; RecordExists if its id is taken (idempotency)."""
        spec = container_spec(container)
        full, stored = await self._prepare(spec, doc)
        created = await self._metered(
            "create", spec, doc["id"], lambda meter: self._create(spec, stored, meter)
        )
        # The caller's own values, not the blob references: no download needed.
        return {**full, ETAG: created[ETAG]}

    async def create_all(self, records: list[tuple[str, Doc]]) -> list[Doc]:
        """Insert several new records in one write where the backend can.

        SQLite commits all or none. Cosmos DB transactions stop at one
        partition, so there they are created in order and those before a taken
        id stay. RecordExists names the first taken id and its container.
        """
        prepared: list[tuple[ContainerSpec, Doc, Doc, Meter]] = []
        for container, doc in records:
            spec = container_spec(container)
            full, stored = await self._prepare(spec, doc)
            prepared.append((spec, full, stored, Meter()))
        if not prepared:
            return []

        started = time.perf_counter()
        try:
            created = await self._create_all(
                [(spec, stored, meter) for spec, _, stored, meter in prepared]
            )
        finally:
            # The records share one write, so each is charged an equal part.
            share = (time.perf_counter() - started) / len(prepared)
            for spec, full, _, meter in prepared:
                self._account("create", spec, full["id"], meter, share)
        return [
            {**full, ETAG: made[ETAG]}
            for (_, full, _, _), made in zip(prepared, created, strict=True)
        ]

    async def read(
        self, container: str, record_id: str, *, partition_key: str | None = None
    ) -> Doc:
        """Fetch one record with its _etag; RecordNotFound if absent or expired."""
        spec = container_spec(container)
        pk = self._partition(spec, record_id, partition_key)
        found = await self._metered(
            "read",
            spec,
            record_id,
            lambda meter: self._read(spec, pk, record_id, meter),
        )
        return await self._restore(spec, found)

    async def replace(self, container: str, doc: Doc, etag: str) -> Doc:
        """Overwrite a record only if it still has this etag; else EtagConflict."""
        spec = container_spec(container)
        full, stored = await self._prepare(spec, doc)
        replaced = await self._metered(
            "replace",
            spec,
            doc["id"],
            lambda meter: self._replace(spec, stored, etag, meter),
        )
        return {**full, ETAG: replaced[ETAG]}

    async def patch(
        self,
        container: str,
        record_id: str,
        ops: list[PatchOp],
        *,
        etag: str | None = None,
        partition_key: str | None = None,
    ) -> Doc:
        """Apply partial updates in one write; conditional when an etag is given."""
        spec = container_spec(container)
        pk = self._partition(spec, record_id, partition_key)
        all_ops = [*ops, *self._ttl_ops(spec, ops)]
        patched = await self._metered(
            "patch",
            spec,
            record_id,
            lambda meter: self._patch(spec, pk, record_id, all_ops, etag, meter),
        )
        return await self._restore(spec, patched)

    async def delete(
        self,
        container: str,
        record_id: str,
        *,
        etag: str | None = None,
        partition_key: str | None = None,
    ) -> None:
        """Remove a record; conditional when an etag is given."""
        spec = container_spec(container)
        pk = self._partition(spec, record_id, partition_key)
        await self._metered(
            "delete",
            spec,
            record_id,
            lambda meter: self._delete(spec, pk, record_id, etag, meter),
        )

    async def update(
        self,
        container: str,
        record_id: str,
        change: Callable[[Doc], Doc],
        *,
        attempts: int = 10,
        partition_key: str | None = None,
    ) -> Doc:
        """Read, change, replace by etag; a lost race retries from a fresh read.

        With N writers racing on one record, each loss means another writer won,
        so attempts=N always suffices. EtagConflict after the last attempt.
        """
        for attempt in range(1, attempts + 1):
            current = await self.read(container, record_id, partition_key=partition_key)
            etag = current.pop(ETAG)
            changed = change(current)
            try:
                return await self.replace(container, changed, etag)
            except EtagConflict:
                if attempt == attempts:
                    raise
                logger.info(
                    "lost etag race container=%s id=%s attempt=%d of %d; retrying",
                    container,
                    record_id,
                    attempt,
                    attempts,
                )
                # Jitter spreads the racers so the next round has fewer losers.
                await asyncio.sleep(random.uniform(0, 0.002 * attempt))
        raise AssertionError("unreachable: the loop returns or raises")

    async def query(
        self,
        container: str,
        query: Filter,
        *,
        page_size: int = DEFAULT_PAGE_SIZE,
        continuation: str | None = None,
    ) -> Page:
        """One page of records matching an indexed filter, in time order."""
        spec = container_spec(container)
        validate_filter(spec, query)
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size {page_size} is outside 1..{MAX_PAGE_SIZE}")
        page = await self._metered(
            "query",
            spec,
            "*",
            lambda meter: self._query(spec, query, page_size, continuation, meter),
        )
        items = [await self._restore(spec, item) for item in page.items]
        return Page(items, page.continuation)

    def usage(self) -> dict[str, dict[str, float]]:
        """Figures per "op:container" since the store opened: count, RUs, rows, ms."""
        return self._ledger.summary()

    def usage_for(self, job_id: str) -> JobUsage:
        """Operations and request units spent on one job (see job_scope)."""
        return self._ledger.for_job(job_id)

    @abstractmethod
    async def open(self) -> None:
        """Create what is missing (tables, containers); idempotent."""

    async def close(self) -> None:
        """Release connections; the store is unusable afterwards."""
        if self._claim_check is not None:
            await self._claim_check.close()

    async def __aenter__(self) -> Store:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- backend hooks -------------------------------------------------------

    @abstractmethod
    async def _create(self, spec: ContainerSpec, doc: Doc, meter: Meter) -> Doc: ...

    async def _create_all(
        self, items: list[tuple[ContainerSpec, Doc, Meter]]
    ) -> list[Doc]:
        """Create in order; a backend with transactions across records overrides it."""
        return [await self._create(spec, doc, meter) for spec, doc, meter in items]

    @abstractmethod
    async def _read(
        self, spec: ContainerSpec, pk: str, record_id: str, meter: Meter
    ) -> Doc: ...

    @abstractmethod
    async def _replace(
        self, spec: ContainerSpec, doc: Doc, etag: str, meter: Meter
    ) -> Doc: ...

    @abstractmethod
    async def _patch(
        self,
        spec: ContainerSpec,
        pk: str,
        record_id: str,
        ops: list[PatchOp],
        etag: str | None,
        meter: Meter,
    ) -> Doc: ...

    @abstractmethod
    async def _delete(
        self,
        spec: ContainerSpec,
        pk: str,
        record_id: str,
        etag: str | None,
        meter: Meter,
    ) -> None: ...

    @abstractmethod
    async def _query(
        self,
        spec: ContainerSpec,
        query: Filter,
        page_size: int,
        continuation: str | None,
        meter: Meter,
    ) -> Page: ...

    # -- shared steps --------------------------------------------------------

    @staticmethod
    def _partition(spec: ContainerSpec, record_id: str, given: str | None) -> str:
        if given is not None:
            return given
        if spec.partitioned_by_id:
            return record_id
        raise ValueError(
            f"{spec.name} is partitioned by {spec.partition_key}: pass partition_key"
        )

    async def _prepare(self, spec: ContainerSpec, doc: Doc) -> tuple[Doc, Doc]:
        """Validate, stamp the TTL, claim-check: (full record, what to store)."""
        record_id = doc.get("id")
        if not isinstance(record_id, str) or not record_id:
            raise ValueError(f"{spec.name} record needs a non-empty string id")
        if not isinstance(doc.get(spec.partition_key), str):
            raise ValueError(
                f"{spec.name}/{record_id} needs a string {spec.partition_key}"
            )
        stored = {k: v for k, v in doc.items() if k != ETAG}
        self._stamp_ttl(spec, stored)
        size = serialized_size(stored)
        if size > self._max_record_bytes:
            raise RecordTooLarge(
                spec.name,
                record_id,
                f"record is {size} bytes; the store keeps at most "
                f"{self._max_record_bytes}, claim-checked payloads included",
            )
        if self._claim_check is None:
            return stored, stored
        return stored, await self._claim_check.offload(spec, stored)

    async def _restore(self, spec: ContainerSpec, doc: Doc) -> Doc:
        if self._claim_check is None:
            return doc
        return await self._claim_check.restore(spec.name, doc)

    def _ttl_for(self, spec: ContainerSpec, value: Any) -> int | None:
        """Seconds a record with this rule-field value lives; -1 forever; None: n/a."""
        if spec.ttl_rule is None or self._finished_ttl_seconds <= 0:
            return None
        return self._finished_ttl_seconds if value in spec.ttl_rule.values else -1

    def _stamp_ttl(self, spec: ContainerSpec, doc: Doc) -> None:
        if spec.ttl_rule is None or spec.ttl_rule.field not in doc:
            return
        ttl = self._ttl_for(spec, doc[spec.ttl_rule.field])
        if ttl is not None and (ttl > 0 or "ttl" in doc):
            doc["ttl"] = ttl

    def _ttl_ops(self, spec: ContainerSpec, ops: list[PatchOp]) -> list[PatchOp]:
        if spec.ttl_rule is None:
            return []
        target = f"/{spec.ttl_rule.field}"
        for op in reversed(ops):
            if op.path == target and op.op in ("set", "add"):
                ttl = self._ttl_for(spec, op.value)
                return [] if ttl is None else [PatchOp.set("/ttl", ttl)]
        return []

    async def _metered(
        self,
        op: str,
        spec: ContainerSpec,
        record_id: str,
        call: Callable[[Meter], Awaitable[T]],
    ) -> T:
        meter = Meter()
        started = time.perf_counter()
        try:
            return await call(meter)
        finally:
            self._account(op, spec, record_id, meter, time.perf_counter() - started)

    def _account(
        self,
        op: str,
        spec: ContainerSpec,
        record_id: str,
        meter: Meter,
        elapsed: float,
    ) -> None:
        """Charge one operation to its job in the ledger, and log it."""
        job_id = current_job()
        if job_id is None and spec.name == "jobs" and record_id != "*":
            job_id = record_id
        self._ledger.record(f"{op}:{spec.name}", job_id, meter, elapsed)
        logger.debug(
            "store op=%s container=%s id=%s job=%s ru=%.2f rows=%d ms=%.2f",
            op,
            spec.name,
            record_id,
            job_id,
            meter.request_units,
            meter.rows,
            elapsed * 1000,
        )
