"""Submitting against the store: idempotency, including a submit that died midway."""

import asyncio
from pathlib import Path

from duralane.jobs import service
from duralane.jobs.model import parse_job_spec
from duralane.settings import Settings
from duralane.store import RecordNotFound, build_store


def run_with_store(tmp_path: Path, steps):
    """Open a SQLite store in tmp_path, run the steps against it, close it."""

    async def main():
        store = build_store(Settings(sqlite_path=tmp_path / "state.sqlite3"))
        async with store:
            return await steps(store)

    return asyncio.run(main())


def spec(job_id: str, key: str | None = None):
    body = {"id": job_id, "kind": "http", "params": {"url": "https://example.com/"}}
    if key:
        body["idempotencyKey"] = key
    return parse_job_spec(body)


def test_the_same_key_twice_returns_the_first_job(tmp_path: Path) -> None:
    async def steps(store):
        first = await service.submit(store, spec("sub-a1", key="sub-key-1"))
        second = await service.submit(store, spec("sub-a2", key="sub-key-1"))
        return first, second

    first, second = run_with_store(tmp_path, steps)

    assert first.created and not second.created
    assert second.record.job_id == "sub-a1"


def test_a_submit_that_died_after_its_marker_is_finished_by_the_next(
    tmp_path: Path,
) -> None:
    async def steps(store):
        original = spec("sub-b1")
        await store.create(
            service.IDEMPOTENCY,
            {"id": f"idem-{original.instance_id}", "jobId": original.id},
        )
        retried = await service.submit(store, spec("sub-b1"))
        again = await service.submit(store, spec("sub-b1"))
        return retried, again

    retried, again = run_with_store(tmp_path, steps)

    assert retried.created and retried.record.job_id == "sub-b1"
    assert not again.created and again.record.job_id == "sub-b1"


def test_a_job_id_taken_under_another_key_returns_that_job_and_claims_no_key(
    tmp_path: Path,
) -> None:
    async def steps(store):
        first = await service.submit(store, spec("sub-c1", key="sub-key-c1"))
        clashing = spec("sub-c1", key="sub-key-c2")
        clash = await service.submit(store, clashing)
        try:
            await store.read(service.IDEMPOTENCY, f"idem-{clashing.instance_id}")
        except RecordNotFound:
            return first, clash, False
        return first, clash, True

    first, clash, claimed = run_with_store(tmp_path, steps)

    assert first.created and not clash.created
    assert clash.record.job_id == "sub-c1"
    assert clash.record.spec.idempotency_key == "sub-key-c1"
    assert not claimed, "the clashing submit claimed its key anyway"
