"""The state store: jobs, dead letters, schedules, runs, probes and leases.

    store = await open_store(Settings.from_environ())
    job = await store.create("jobs", {"id": job_id, "status": "queued", ...})
    await store.patch("jobs", job_id, [PatchOp.set("/status", "running")],
                      etag=job["_etag"])
    page = await store.query("jobs", Filter(equals={"status": "queued"}))

SQLite at settings.store_path unless settings.cosmos_endpoint is set. Large
payloads go to Blob Storage when blob_endpoint or blob_connection_string is set.
"""

from __future__ import annotations

import logging

from duralane.settings import Settings
from duralane.store.base import ETAG, Doc, Filter, Page, PatchOp, Store
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
from duralane.store.schema import CONTAINERS, iso_utc
from duralane.store.usage import JobUsage, job_scope

logger = logging.getLogger(__name__)

__all__ = [
    "CONTAINERS",
    "ETAG",
    "Doc",
    "EtagConflict",
    "Filter",
    "InvalidContinuation",
    "JobUsage",
    "Page",
    "PatchOp",
    "RecordExists",
    "RecordNotFound",
    "RecordTooLarge",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "build_store",
    "iso_utc",
    "job_scope",
    "open_store",
]


def build_store(settings: Settings) -> Store:
    """The store the settings ask for, not yet opened."""
    claim_check = None
    if settings.blob_connection_string or settings.blob_endpoint:
        claim_check = ClaimCheck.from_settings(
            endpoint=settings.blob_endpoint,
            connection_string=settings.blob_connection_string,
            container_name=settings.blob_container,
            threshold_bytes=settings.claim_check_bytes,
        )
    if settings.cosmos_endpoint:
        from duralane.store.cosmos import CosmosStore

        return CosmosStore(
            settings.cosmos_endpoint,
            settings.cosmos_database,
            key=settings.cosmos_key,
            verify_tls=settings.cosmos_verify_tls,
            claim_check=claim_check,
            finished_ttl_seconds=settings.finished_job_ttl_seconds,
        )
    from duralane.store.sqlite import SqliteStore

    return SqliteStore(
        settings.store_path,
        claim_check=claim_check,
        finished_ttl_seconds=settings.finished_job_ttl_seconds,
    )


async def open_store(settings: Settings) -> Store:
    """Build and open the configured store; StoreUnavailable if it cannot be reached."""
    store = build_store(settings)
    try:
        await store.open()
    except BaseException:
        await store.close()
        raise
    return store
