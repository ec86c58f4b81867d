"""Claim check: big payload fields go to Blob Storage; the record keeps a reference."""

from __future__ import annotations

import json
import logging
from typing import Any

from azure.core.exceptions import (
    AzureError,
    ResourceExistsError,
    ResourceNotFoundError,
)
from azure.storage.blob.aio import BlobServiceClient, ContainerClient

from duralane.ids import random_hex
from duralane.store.errors import RecordTooLarge, StoreError, StoreUnavailable
from duralane.store.schema import ContainerSpec

logger = logging.getLogger(__name__)

MARKER = "$claimCheck"
# A field smaller than this stays inline: a blob round trip costs more than it saves.
MIN_OFFLOAD_BYTES = 1024


def serialized_size(value: Any) -> int:
    """Bytes a value takes as compact JSON, the way both backends store it."""
    return len(json.dumps(value, separators=(",", ":")).encode())


def is_reference(value: Any) -> bool:
    """True for the stand-in value left where a payload field was moved out."""
    return isinstance(value, dict) and set(value) == {MARKER}


class ClaimCheck:
    """Moves payload fields of oversized records to blobs and brings them back."""

    def __init__(
        self,
        service: BlobServiceClient,
        container_name: str,
        threshold_bytes: int,
    ) -> None:
        self._service = service
        self._container: ContainerClient = service.get_container_client(container_name)
        self._container_name = container_name
        self.threshold_bytes = threshold_bytes
        self._container_ready = False

    @classmethod
    def from_settings(
        cls,
        *,
        endpoint: str,
        connection_string: str,
        container_name: str,
        threshold_bytes: int,
    ) -> ClaimCheck:
        """Connection string for Azurite only; in Azure, the app's identity."""
        if connection_string:
            service = BlobServiceClient.from_connection_string(connection_string)
        else:
            from azure.identity.aio import DefaultAzureCredential

            service = BlobServiceClient(endpoint, credential=DefaultAzureCredential())
        return cls(service, container_name, threshold_bytes)

    async def close(self) -> None:
        await self._service.close()

    async def offload(self, spec: ContainerSpec, doc: dict[str, Any]) -> dict[str, Any]:
        """Return the record to store inline, with large payload fields moved out."""
        record_id = str(doc.get("id"))
        if serialized_size(doc) <= self.threshold_bytes:
            return doc
        kept = {spec.partition_key, "id", "ttl", *spec.indexed}
        if spec.array_field:
            kept.add(spec.array_field)
        sizes = {
            name: serialized_size(value)
            for name, value in doc.items()
            if name not in kept and not is_reference(value)
        }
        inline = dict(doc)
        for name in sorted(sizes, key=sizes.__getitem__, reverse=True):
            if serialized_size(inline) <= self.threshold_bytes:
                break
            if sizes[name] < MIN_OFFLOAD_BYTES:
                break
            inline[name] = {
                MARKER: await self._upload(spec, record_id, name, doc[name])
            }
        remaining = serialized_size(inline)
        if remaining > self.threshold_bytes:
            raise RecordTooLarge(
                spec.name,
                record_id,
                f"{remaining} bytes remain inline after moving payload fields to "
                f"blobs; the limit is {self.threshold_bytes} "
                "(indexed fields and small fields stay inline)",
            )
        logger.info(
            "claim-checked record container=%s id=%s inline_bytes=%d total_bytes=%d",
            spec.name,
            record_id,
            remaining,
            serialized_size(doc),
        )
        return inline

    async def restore(self, container: str, doc: dict[str, Any]) -> dict[str, Any]:
        """Fetch back every field that was moved to a blob."""
        references = {
            name: value[MARKER] for name, value in doc.items() if is_reference(value)
        }
        if not references:
            return doc
        restored = dict(doc)
        for name, blob_name in references.items():
            restored[name] = await self._download(
                container, str(doc.get("id")), blob_name
            )
        return restored

    async def _ensure_container(self, container: str, record_id: str) -> None:
        if self._container_ready:
            return
        try:
            await self._container.create_container()
        except ResourceExistsError:
            pass
        except AzureError as error:
            raise StoreUnavailable(
                container,
                record_id,
                f"blob container {self._container_name} unavailable: {error}",
            ) from error
        self._container_ready = True

    async def _upload(
        self, spec: ContainerSpec, record_id: str, field: str, value: Any
    ) -> str:
        await self._ensure_container(spec.name, record_id)
        # A fresh name per write: a conditional write that then loses its race
        # must not have overwritten the blob the current version points at.
        # TODO: blobs of replaced or deleted records are not removed; they cost
        # storage until a lifecycle rule on the container ages them out.
        blob_name = f"{spec.name}/{record_id}/{field}-{random_hex()}.json"
        body = json.dumps(value, separators=(",", ":")).encode()
        try:
            await self._container.upload_blob(blob_name, body, overwrite=False)
        except AzureError as error:
            raise StoreUnavailable(
                spec.name, record_id, f"claim-check upload of {field} failed: {error}"
            ) from error
        return blob_name

    async def _download(self, container: str, record_id: str, blob_name: str) -> Any:
        try:
            stream = await self._container.download_blob(blob_name)
            body = await stream.readall()
        except ResourceNotFoundError as error:
            raise StoreError(
                container, record_id, f"claim-check blob {blob_name} is missing"
            ) from error
        except AzureError as error:
            raise StoreUnavailable(
                container, record_id, f"claim-check download failed: {error}"
            ) from error
        return json.loads(body)
