"""The state store on Azure Cosmos DB (NoSQL API), through the async SDK.

Identity (DefaultAzureCredential) in Azure; a key only for the local stand-in.
Every call records its x-ms-request-charge. Queries are plain Cosmos SQL with
parameters, TOP-free paging by continuation token, and the partition filter in
WHERE as well as in the request, so any server that speaks the protocol serves
them from the indexes in duralane/store/cosmos/*.json.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from azure.core import MatchConditions
from azure.core.exceptions import AzureError, ServiceRequestError, ServiceResponseError
from azure.cosmos import PartitionKey
from azure.cosmos import exceptions as cosmos_errors
from azure.cosmos.aio import ContainerProxy, CosmosClient, DatabaseProxy

from duralane.store.base import Doc, Filter, Page, PatchOp, Store
from duralane.store.claimcheck import ClaimCheck
from duralane.store.errors import (
    EtagConflict,
    InvalidContinuation,
    RecordExists,
    RecordNotFound,
    RecordTooLarge,
    StoreError,
    StoreUnavailable,
)
from duralane.store.schema import CONTAINERS, ContainerSpec
from duralane.store.usage import Meter

logger = logging.getLogger(__name__)

T = TypeVar("T")

# A call that has not finished in this long fails as StoreUnavailable, so an
# activity fails fast and its retry policy applies instead of hanging.
DEFAULT_OPERATION_TIMEOUT_SECONDS = 30.0
SYSTEM_PROPERTIES = ("_rid", "_self", "_ts", "_attachments")


def _charge_hook(meter: Meter) -> Callable[[Mapping[str, Any], Any], None]:
    def hook(headers: Mapping[str, Any], _body: Any) -> None:
        charge = headers.get("x-ms-request-charge")
        if charge is not None:
            meter.add(request_units=float(charge))

    return hook


def _clean(doc: Mapping[str, Any]) -> Doc:
    return {k: v for k, v in doc.items() if k not in SYSTEM_PROPERTIES}


def _translate(error: Exception, container: str, record_id: str) -> StoreError:
    """Map an SDK failure to the store's exception tree."""
    if isinstance(error, StoreError):
        return error
    if isinstance(error, TimeoutError):
        return StoreUnavailable(container, record_id, "Cosmos DB call timed out")
    if isinstance(error, cosmos_errors.CosmosHttpResponseError):
        status = error.status_code
        reason = f"Cosmos DB answered {status}: {error.message}"
        if status == 404:
            return RecordNotFound(container, record_id, "no such record")
        if status == 409:
            return RecordExists(container, record_id, "a record with this id exists")
        if status == 412:
            return EtagConflict(container, record_id, "etag is stale")
        if status == 413:
            return RecordTooLarge(container, record_id, reason)
        if status in (408, 429, 449, 500, 502, 503, 504) or status is None:
            return StoreUnavailable(container, record_id, reason)
        return StoreError(container, record_id, reason)
    if isinstance(error, ServiceRequestError | ServiceResponseError | OSError):
        return StoreUnavailable(container, record_id, f"Cosmos DB unreachable: {error}")
    if isinstance(error, AzureError):
        return StoreUnavailable(container, record_id, f"Cosmos DB failed: {error}")
    raise error


def _query_error(
    error: cosmos_errors.CosmosHttpResponseError,
    container: str,
    continuation: str | None,
) -> StoreError:
    """A query's failure; a 400 on a resumed query means the token was bad."""
    if error.status_code == 400 and continuation is not None:
        return InvalidContinuation(
            container, "*", f"continuation token was refused: {error.message}"
        )
    return _translate(error, container, "*")


class CosmosStore(Store):
    """Containers of one Cosmos DB database, created on open if missing."""

    def __init__(
        self,
        endpoint: str,
        database: str,
        *,
        key: str = "",
        verify_tls: bool = True,
        claim_check: ClaimCheck | None = None,
        finished_ttl_seconds: int = 0,
        operation_timeout: float = DEFAULT_OPERATION_TIMEOUT_SECONDS,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            claim_check=claim_check, finished_ttl_seconds=finished_ttl_seconds, **kwargs
        )
        self.endpoint = endpoint
        self.database_name = database
        self._operation_timeout = operation_timeout
        self._credential: Any = None
        if key:
            credential: Any = key
        else:
            from azure.identity.aio import DefaultAzureCredential

            self._credential = credential = DefaultAzureCredential()
        self._client = CosmosClient(
            endpoint,
            credential=credential,
            connection_verify=verify_tls,
            connection_timeout=5,
            retry_total=3,
            retry_connect=1,
            retry_read=1,
        )
        self._containers: dict[str, ContainerProxy] = {}

    async def _call(
        self, container: str, record_id: str, work: Callable[[], Awaitable[T]]
    ) -> T:
        try:
            async with asyncio.timeout(self._operation_timeout):
                return await work()
        except Exception as error:
            raise _translate(error, container, record_id) from error

    def _container(self, spec: ContainerSpec) -> ContainerProxy:
        try:
            return self._containers[spec.name]
        except KeyError:
            raise StoreError(spec.name, "*", "store is not open") from None

    async def open(self) -> None:
        """Create the database and containers if missing, else just bind to them.

        With data-plane RBAC only (as the Bicep templates grant), creating is
        forbidden and the containers must exist: then 403 falls back to binding.
        """

        async def create_or_bind() -> None:
            database: DatabaseProxy
            try:
                database = await self._client.create_database_if_not_exists(
                    self.database_name
                )
            except cosmos_errors.CosmosHttpResponseError as error:
                if error.status_code != 403:
                    raise
                logger.info(
                    "no right to create database=%s; using existing containers",
                    self.database_name,
                )
                database = self._client.get_database_client(self.database_name)
                for spec in CONTAINERS.values():
                    self._containers[spec.name] = database.get_container_client(
                        spec.name
                    )
                return
            for spec in CONTAINERS.values():
                definition = spec.cosmos_definition()
                self._containers[
                    spec.name
                ] = await database.create_container_if_not_exists(
                    spec.name,
                    partition_key=PartitionKey(path=f"/{spec.partition_key}"),
                    indexing_policy=definition["indexingPolicy"],
                    default_ttl=definition["defaultTtl"],
                )

        await self._call("*", "*", create_or_bind)
        logger.info(
            "cosmos store open endpoint=%s database=%s",
            self.endpoint,
            self.database_name,
        )

    async def close(self) -> None:
        await self._client.close()
        if self._credential is not None:
            await self._credential.close()
        await super().close()

    async def _create(self, spec: ContainerSpec, doc: Doc, meter: Meter) -> Doc:
        container = self._container(spec)
        created = await self._call(
            spec.name,
            doc["id"],
            lambda: container.create_item(doc, response_hook=_charge_hook(meter)),
        )
        return _clean(created)

    async def _read(
        self, spec: ContainerSpec, pk: str, record_id: str, meter: Meter
    ) -> Doc:
        container = self._container(spec)
        found = await self._call(
            spec.name,
            record_id,
            lambda: container.read_item(
                record_id, pk, response_hook=_charge_hook(meter)
            ),
        )
        return _clean(found)

    async def _replace(
        self, spec: ContainerSpec, doc: Doc, etag: str, meter: Meter
    ) -> Doc:
        container = self._container(spec)
        replaced = await self._call(
            spec.name,
            doc["id"],
            lambda: container.replace_item(
                doc["id"],
                doc,
                etag=etag,
                match_condition=MatchConditions.IfNotModified,
                response_hook=_charge_hook(meter),
            ),
        )
        return _clean(replaced)

    async def _patch(
        self,
        spec: ContainerSpec,
        pk: str,
        record_id: str,
        ops: list[PatchOp],
        etag: str | None,
        meter: Meter,
    ) -> Doc:
        container = self._container(spec)
        operations = [
            {"op": op.op, "path": op.path}
            if op.op == "remove"
            else {"op": op.op, "path": op.path, "value": op.value}
            for op in ops
        ]
        conditions: dict[str, Any] = {}
        if etag is not None:
            conditions = {
                "etag": etag,
                "match_condition": MatchConditions.IfNotModified,
            }
        patched = await self._call(
            spec.name,
            record_id,
            lambda: container.patch_item(
                record_id,
                pk,
                operations,
                response_hook=_charge_hook(meter),
                **conditions,
            ),
        )
        return _clean(patched)

    async def _delete(
        self,
        spec: ContainerSpec,
        pk: str,
        record_id: str,
        etag: str | None,
        meter: Meter,
    ) -> None:
        container = self._container(spec)
        conditions: dict[str, Any] = {}
        if etag is not None:
            conditions = {
                "etag": etag,
                "match_condition": MatchConditions.IfNotModified,
            }
        await self._call(
            spec.name,
            record_id,
            lambda: container.delete_item(
                record_id, pk, response_hook=_charge_hook(meter), **conditions
            ),
        )

    @staticmethod
    def query_text(
        spec: ContainerSpec, query: Filter
    ) -> tuple[str, list[dict[str, Any]]]:
        """The Cosmos SQL and parameters for a filter; public so tests can read it."""
        assert spec.time_field is not None
        clauses: list[str] = []
        parameters: list[dict[str, Any]] = []
        for index, (name, value) in enumerate(sorted(query.equals.items())):
            clauses.append(f"c.{name} = @eq{index}")
            parameters.append({"name": f"@eq{index}", "value": value})
        if query.contains is not None:
            clauses.append(f"ARRAY_CONTAINS(c.{spec.array_field}, @contains)")
            parameters.append({"name": "@contains", "value": query.contains})
        if query.since is not None:
            clauses.append(f"c.{spec.time_field} >= @since")
            parameters.append({"name": "@since", "value": query.since})
        if query.until is not None:
            clauses.append(f"c.{spec.time_field} <= @until")
            parameters.append({"name": "@until", "value": query.until})
        direction = "ASC" if query.ascending else "DESC"
        # Naming the equality fields first in ORDER BY (constant within the
        # result, so the order is unchanged) lets a composite index serve it.
        order_fields = [spec.time_field]
        equality = tuple(sorted(query.equals))
        for shape in spec.shapes:
            if shape.equals and tuple(sorted(shape.equals)) == equality:
                order_fields = [*shape.equals, spec.time_field]
                break
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        order = ", ".join(f"c.{name} {direction}" for name in order_fields)
        return f"SELECT * FROM c{where} ORDER BY {order}", parameters

    async def _query(
        self,
        spec: ContainerSpec,
        query: Filter,
        page_size: int,
        continuation: str | None,
        meter: Meter,
    ) -> Page:
        container = self._container(spec)
        sql, parameters = self.query_text(spec, query)
        scope: dict[str, Any] = {}
        if not spec.partitioned_by_id and spec.partition_key in query.equals:
            scope["partition_key"] = query.equals[spec.partition_key]

        async def first_page() -> Page:
            pages = container.query_items(
                sql,
                parameters=parameters,
                max_item_count=page_size,
                response_hook=_charge_hook(meter),
                **scope,
            ).by_page(continuation)
            try:
                async for page in pages:
                    items = [_clean(item) async for item in page]
                    token = getattr(pages, "continuation_token", None)
                    return Page(items, token or None)
            except cosmos_errors.CosmosHttpResponseError as error:
                raise _query_error(error, spec.name, continuation) from error
            return Page([], None)

        return await self._call(spec.name, "*", first_page)
