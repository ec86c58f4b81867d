"""The default store: one SQLite file in WAL mode, safe across threads and processes.

Each container is a table whose indexed fields are real columns beside the JSON
body, with one index per query shape; an array field (job tags) gets a side
table indexed by value. Every write runs in BEGIN IMMEDIATE, so the etag check
and the write are one step even with several processes on one file.

TTL: a record whose ttl has passed is invisible at once (reads and queries
filter on expires_at) and purge_expired() deletes such rows in bounded batches;
call it from a timer. Nothing else deletes them.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from duralane.ids import random_hex
from duralane.lending import PriorityLender
from duralane.sqlite_busy import BUSY_TIMEOUT_SECONDS, begin_write, retry_busy
from duralane.store.base import ETAG, Doc, Filter, Page, PatchOp, Store
from duralane.store.claimcheck import ClaimCheck
from duralane.store.errors import (
    EtagConflict,
    InvalidContinuation,
    RecordExists,
    RecordNotFound,
    StoreError,
    StoreUnavailable,
)
from duralane.store.priority import PriorityWorkers, current_priority
from duralane.store.schema import CONTAINERS, ContainerSpec
from duralane.store.usage import Meter

logger = logging.getLogger(__name__)

T = TypeVar("T")

WORKER_THREADS = 4


# Writers of one file in this process, whichever store instance (one per event
# loop) they use, queue on one lock and take turns by priority, instead of
# meeting in SQLite's busy handler, which sleeps in steps of up to 100 ms.
# A statement held off by another process retries on its own pauses instead
# (see duralane.sqlite_busy), shorter the more urgent it is.
_write_locks: dict[Path, PriorityLender[Path]] = {}
_write_locks_guard = threading.Lock()


def _write_lock_for(path: Path) -> PriorityLender[Path]:
    """The process's one write lock for a file: a lender of a single token."""
    resolved = path.resolve()
    with _write_locks_guard:
        return _write_locks.setdefault(resolved, PriorityLender([resolved]))


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _side_table(spec: ContainerSpec) -> str:
    return _quote(f"{spec.name}__{spec.array_field}")


def schema_statements(spec: ContainerSpec) -> list[str]:
    """DDL for one container: table, side table and one index per query shape."""
    table = _quote(spec.name)
    columns = "".join(
        f", {_quote(name)}" for name in spec.indexed if name not in ("id",)
    )
    statements = [
        f"CREATE TABLE IF NOT EXISTS {table} (pk TEXT NOT NULL, id TEXT NOT NULL, "
        f"etag TEXT NOT NULL, expires_at REAL, body TEXT NOT NULL{columns}, "
        "PRIMARY KEY (pk, id))"
    ]
    if spec.time_field is not None:
        time_column = _quote(spec.time_field)
        for shape in spec.shapes:
            name = "_".join(("by", *shape.equals, spec.time_field))
            keys = ", ".join([*map(_quote, shape.equals), time_column, "id"])
            statements.append(
                f"CREATE INDEX IF NOT EXISTS {_quote(f'{spec.name}_{name}')} "
                f"ON {table} ({keys})"
            )
    statements.append(
        f"CREATE INDEX IF NOT EXISTS {_quote(spec.name + '_by_expiry')} "
        f"ON {table} (expires_at) WHERE expires_at IS NOT NULL"
    )
    if spec.array_field:
        side = _side_table(spec)
        statements += [
            f"CREATE TABLE IF NOT EXISTS {side} (value TEXT NOT NULL, "
            "pk TEXT NOT NULL, id TEXT NOT NULL, PRIMARY KEY (value, pk, id))",
            f"CREATE INDEX IF NOT EXISTS {_quote(spec.name + '_array_by_record')} "
            f"ON {side} (pk, id)",
        ]
    return statements


class _Path:
    """A JSON Pointer split into its parent container and last key."""

    def __init__(self, doc: Doc, pointer: str, record_id: str, container: str) -> None:
        if not pointer.startswith("/") or pointer == "/":
            raise StoreError(container, record_id, f"bad patch path {pointer!r}")
        parts = [
            p.replace("~1", "/").replace("~0", "~") for p in pointer[1:].split("/")
        ]
        parent: Any = doc
        for part in parts[:-1]:
            parent = self._step(parent, part, pointer, record_id, container)
        self.parent = parent
        self.key = parts[-1]
        self.pointer = pointer
        self.record_id = record_id
        self.container = container

    @staticmethod
    def _step(
        node: Any, part: str, pointer: str, record_id: str, container: str
    ) -> Any:
        try:
            if isinstance(node, list):
                return node[int(part)]
            return node[part]
        except (KeyError, IndexError, ValueError, TypeError):
            raise StoreError(
                container, record_id, f"patch path {pointer} does not exist"
            ) from None

    def missing(self) -> StoreError:
        return StoreError(
            self.container, self.record_id, f"patch path {self.pointer} does not exist"
        )


def apply_patch(doc: Doc, ops: list[PatchOp], container: str) -> Doc:
    """Apply patch operations the way Cosmos DB does, to a copy of the body."""
    result: Doc = json.loads(json.dumps(doc))
    record_id = str(doc.get("id"))
    for op in ops:
        target = _Path(result, op.path, record_id, container)
        parent, key = target.parent, target.key
        if isinstance(parent, list):
            index = len(parent) if key == "-" else int(key)
            if op.op == "add":
                parent.insert(index, op.value)
            elif op.op == "set" and index == len(parent):
                parent.append(op.value)
            elif not 0 <= index < len(parent):
                raise target.missing()
            elif op.op == "set":
                parent[index] = op.value
            elif op.op == "incr":
                parent[index] += op.value
            else:
                del parent[index]
        elif isinstance(parent, dict):
            if op.op in ("set", "add"):
                parent[key] = op.value
            elif op.op == "incr":
                parent[key] = parent.get(key, 0) + op.value
            elif key in parent:
                del parent[key]
            else:
                raise target.missing()
        else:
            raise target.missing()
    return result


def _encode_continuation(order_value: Any, record_id: str) -> str:
    raw = json.dumps([order_value, record_id]).encode()
    return base64.urlsafe_b64encode(raw).decode()


def _decode_continuation(token: str, container: str) -> tuple[Any, str]:
    try:
        order_value, record_id = json.loads(base64.urlsafe_b64decode(token))
    except (ValueError, TypeError):
        raise InvalidContinuation(
            container, "*", "continuation token is malformed"
        ) from None
    return order_value, str(record_id)


class SqliteStore(Store):
    """SQLite behind the async interface: calls run on a small thread pool."""

    def __init__(
        self,
        path: Path,
        *,
        claim_check: ClaimCheck | None = None,
        finished_ttl_seconds: int = 0,
        clock: Callable[[], float] = time.time,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            claim_check=claim_check, finished_ttl_seconds=finished_ttl_seconds, **kwargs
        )
        self.path = Path(path)
        self._clock = clock
        # The most urgent waiting call first (see store_priority), so a
        # high-lane submission does not wait behind a low-lane flood's calls.
        self._workers = PriorityWorkers(WORKER_THREADS, "duralane-sqlite")
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()
        self._write_lock = _write_lock_for(self.path)

    # -- plumbing ------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = sqlite3.connect(
                self.path,
                timeout=BUSY_TIMEOUT_SECONDS,
                isolation_level=None,
                check_same_thread=False,
            )
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
            # From here on a statement held off by another process waits in
            # retry_busy, on short pauses by priority, not in SQLite's busy
            # handler, whose sleeps grow to 100 ms.
            connection.execute("PRAGMA busy_timeout = 0")
            self._local.connection = connection
            with self._connections_lock:
                self._connections.append(connection)
        return connection

    async def _run(self, container: str, record_id: str, work: Callable[[], T]) -> T:
        def guarded() -> T:
            try:
                return work()
            except sqlite3.DatabaseError as error:
                raise StoreUnavailable(
                    container, record_id, f"sqlite {self.path}: {error}"
                ) from error

        return await asyncio.wrap_future(
            self._workers.submit(current_priority(), guarded)
        )

    def _write(self, work: Callable[[sqlite3.Connection], T]) -> T:
        connection = self._connection()
        priority = current_priority()
        with self._write_lock.lent(priority):
            begin_write(connection, priority)
            try:
                result = work(connection)
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            # A busy COMMIT leaves the transaction open to be committed again.
            retry_busy(lambda: connection.execute("COMMIT"), priority)
        return result

    def _expires_at(self, doc: Doc) -> float | None:
        ttl = doc.get("ttl")
        if isinstance(ttl, int | float) and not isinstance(ttl, bool) and ttl > 0:
            return self._clock() + ttl
        return None

    def _store_row(
        self, connection: sqlite3.Connection, spec: ContainerSpec, doc: Doc
    ) -> str:
        """Insert or overwrite the row and its side-table entries; return the etag."""
        etag = f'"{random_hex()}"'
        pk, record_id = doc[spec.partition_key], doc["id"]
        columns = [name for name in spec.indexed if name != "id"]
        names = ", ".join(
            ["pk", "id", "etag", "expires_at", "body", *map(_quote, columns)]
        )
        marks = ", ".join("?" * (5 + len(columns)))
        connection.execute(
            f"INSERT OR REPLACE INTO {_quote(spec.name)} ({names}) VALUES ({marks})",
            [
                pk,
                record_id,
                etag,
                self._expires_at(doc),
                json.dumps(doc, separators=(",", ":")),
                *(
                    doc.get(name)
                    if not isinstance(doc.get(name), dict | list)
                    else None
                    for name in columns
                ),
            ],
        )
        if spec.array_field:
            side = _side_table(spec)
            connection.execute(
                f"DELETE FROM {side} WHERE pk = ? AND id = ?", (pk, record_id)
            )
            values = doc.get(spec.array_field) or []
            connection.executemany(
                f"INSERT OR IGNORE INTO {side} (value, pk, id) VALUES (?, ?, ?)",
                [(str(v), pk, record_id) for v in values if isinstance(v, str | int)],
            )
        return etag

    def _live_row(
        self,
        connection: sqlite3.Connection,
        spec: ContainerSpec,
        pk: str,
        record_id: str,
    ) -> tuple[str, str] | None:
        row = connection.execute(
            f"SELECT body, etag FROM {_quote(spec.name)} WHERE pk = ? AND id = ? "
            "AND (expires_at IS NULL OR expires_at > ?)",
            (pk, record_id, self._clock()),
        ).fetchone()
        return None if row is None else (row[0], row[1])

    def _remove_row(
        self,
        connection: sqlite3.Connection,
        spec: ContainerSpec,
        pk: str,
        record_id: str,
    ) -> None:
        connection.execute(
            f"DELETE FROM {_quote(spec.name)} WHERE pk = ? AND id = ?", (pk, record_id)
        )
        if spec.array_field:
            connection.execute(
                f"DELETE FROM {_side_table(spec)} WHERE pk = ? AND id = ?",
                (pk, record_id),
            )

    # -- lifecycle -----------------------------------------------------------

    async def open(self) -> None:
        """Create the file, tables and indexes if missing; safe to race."""

        def create_schema() -> None:
            self.path.parent.mkdir(parents=True, exist_ok=True)

            def ddl(connection: sqlite3.Connection) -> None:
                for spec in CONTAINERS.values():
                    for statement in schema_statements(spec):
                        connection.execute(statement)

            self._write(ddl)

        try:
            await self._run("*", "*", create_schema)
        except OSError as error:
            raise StoreUnavailable(
                "*", "*", f"cannot create {self.path}: {error}"
            ) from error
        logger.info("sqlite store open path=%s", self.path)

    async def close(self) -> None:
        def close_all() -> None:
            with self._connections_lock:
                for connection in self._connections:
                    connection.close()
                self._connections.clear()

        await asyncio.wrap_future(self._workers.submit(0, close_all))
        self._workers.shutdown()
        await super().close()

    async def purge_expired(self, limit: int = 500) -> int:
        """Delete up to `limit` expired rows per container; returns how many went."""

        def purge(connection: sqlite3.Connection) -> int:
            removed = 0
            now = self._clock()
            for spec in CONTAINERS.values():
                rows = connection.execute(
                    f"SELECT pk, id FROM {_quote(spec.name)} "
                    "WHERE expires_at IS NOT NULL AND expires_at <= ? LIMIT ?",
                    (now, limit),
                ).fetchall()
                for pk, record_id in rows:
                    self._remove_row(connection, spec, pk, record_id)
                removed += len(rows)
            return removed

        removed = await self._run("*", "*", lambda: self._write(purge))
        if removed:
            logger.info("purged expired records path=%s count=%d", self.path, removed)
        return removed

    # -- operations ----------------------------------------------------------

    async def _create(self, spec: ContainerSpec, doc: Doc, meter: Meter) -> Doc:
        (created,) = await self._create_all([(spec, doc, meter)])
        return created

    async def _create_all(
        self, items: list[tuple[ContainerSpec, Doc, Meter]]
    ) -> list[Doc]:
        """Create every record in one transaction, or none of them."""

        def create_all(connection: sqlite3.Connection) -> list[str]:
            etags = []
            for spec, doc, meter in items:
                pk, record_id = doc[spec.partition_key], doc["id"]
                if self._live_row(connection, spec, pk, record_id) is not None:
                    meter.add(rows=1)
                    raise RecordExists(
                        spec.name, record_id, "a record with this id exists"
                    )
                etags.append(self._store_row(connection, spec, doc))
                meter.add(rows=2)
            return etags

        first = items[0][1]["id"]
        etags = await self._run(
            items[0][0].name, first, lambda: self._write(create_all)
        )
        return [
            {**doc, ETAG: etag} for (_, doc, _), etag in zip(items, etags, strict=True)
        ]

    async def _read(
        self, spec: ContainerSpec, pk: str, record_id: str, meter: Meter
    ) -> Doc:
        def read() -> Doc:
            row = retry_busy(
                lambda: self._live_row(self._connection(), spec, pk, record_id),
                current_priority(),
            )
            meter.add(rows=1)
            if row is None:
                raise RecordNotFound(spec.name, record_id, "no such record")
            return {**json.loads(row[0]), ETAG: row[1]}

        return await self._run(spec.name, record_id, read)

    def _checked_row(
        self,
        connection: sqlite3.Connection,
        spec: ContainerSpec,
        pk: str,
        record_id: str,
        etag: str | None,
    ) -> Doc:
        row = self._live_row(connection, spec, pk, record_id)
        if row is None:
            raise RecordNotFound(spec.name, record_id, "no such record")
        if etag is not None and row[1] != etag:
            raise EtagConflict(
                spec.name, record_id, f"etag {etag} is stale; the record is at {row[1]}"
            )
        body: Doc = json.loads(row[0])
        return body

    async def _replace(
        self, spec: ContainerSpec, doc: Doc, etag: str, meter: Meter
    ) -> Doc:
        pk, record_id = doc[spec.partition_key], doc["id"]

        def replace(connection: sqlite3.Connection) -> str:
            meter.add(rows=1)
            self._checked_row(connection, spec, pk, record_id, etag)
            meter.add(rows=1)
            return self._store_row(connection, spec, doc)

        new_etag = await self._run(spec.name, record_id, lambda: self._write(replace))
        return {**doc, ETAG: new_etag}

    async def _patch(
        self,
        spec: ContainerSpec,
        pk: str,
        record_id: str,
        ops: list[PatchOp],
        etag: str | None,
        meter: Meter,
    ) -> Doc:
        def patch(connection: sqlite3.Connection) -> Doc:
            meter.add(rows=1)
            body = self._checked_row(connection, spec, pk, record_id, etag)
            patched = apply_patch(body, ops, spec.name)
            meter.add(rows=1)
            return {**patched, ETAG: self._store_row(connection, spec, patched)}

        return await self._run(spec.name, record_id, lambda: self._write(patch))

    async def _delete(
        self,
        spec: ContainerSpec,
        pk: str,
        record_id: str,
        etag: str | None,
        meter: Meter,
    ) -> None:
        def delete(connection: sqlite3.Connection) -> None:
            meter.add(rows=1)
            self._checked_row(connection, spec, pk, record_id, etag)
            self._remove_row(connection, spec, pk, record_id)
            meter.add(rows=1)

        await self._run(spec.name, record_id, lambda: self._write(delete))

    async def _query(
        self,
        spec: ContainerSpec,
        query: Filter,
        page_size: int,
        continuation: str | None,
        meter: Meter,
    ) -> Page:
        assert spec.time_field is not None
        time_column = f"t.{_quote(spec.time_field)}"
        where = [
            f"{time_column} IS NOT NULL",
            "(t.expires_at IS NULL OR t.expires_at > ?)",
        ]
        params: list[Any] = [self._clock()]
        for name, value in query.equals.items():
            column = "t.id" if name == "id" else f"t.{_quote(name)}"
            where.append(f"{column} = ?")
            params.append(value)
        if query.contains is not None:
            side = _side_table(spec)
            where.append(f"(t.pk, t.id) IN (SELECT pk, id FROM {side} WHERE value = ?)")
            params.append(query.contains)
        if query.since is not None:
            where.append(f"{time_column} >= ?")
            params.append(query.since)
        if query.until is not None:
            where.append(f"{time_column} <= ?")
            params.append(query.until)
        if continuation is not None:
            after_value, after_id = _decode_continuation(continuation, spec.name)
            where.append(
                f"({time_column}, t.id) {'>' if query.ascending else '<'} (?, ?)"
            )
            params += [after_value, after_id]
        direction = "ASC" if query.ascending else "DESC"
        sql = (
            f"SELECT t.body, t.etag, {time_column}, t.id FROM {_quote(spec.name)} t "
            f"WHERE {' AND '.join(where)} "
            f"ORDER BY {time_column} {direction}, t.id {direction} LIMIT ?"
        )
        params.append(page_size + 1)

        def run_query() -> list[Any]:
            rows = retry_busy(
                lambda: self._connection().execute(sql, params).fetchall(),
                current_priority(),
            )
            meter.add(rows=len(rows))
            return rows

        rows = await self._run(spec.name, "*", run_query)
        has_more = len(rows) > page_size
        rows = rows[:page_size]
        items = [{**json.loads(body), ETAG: etag} for body, etag, _, _ in rows]
        token = _encode_continuation(rows[-1][2], rows[-1][3]) if has_more else None
        return Page(items, token)
