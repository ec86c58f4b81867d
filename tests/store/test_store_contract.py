"""One contract, run against SQLite and the Cosmos DB stand-in alike."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from duralane.store import (
    ETAG,
    EtagConflict,
    Filter,
    InvalidContinuation,
    PatchOp,
    RecordExists,
    RecordNotFound,
    RecordTooLarge,
    Store,
    iso_utc,
    job_scope,
)
from duralane.store.cosmos import CosmosStore
from tests.store.conftest import FINISHED_TTL_SECONDS, unique

BASE_TIME = datetime(2026, 1, 1, tzinfo=UTC)


def at(minutes: int) -> str:
    return iso_utc(BASE_TIME + timedelta(minutes=minutes))


def job(job_id: str, **fields: Any) -> dict[str, Any]:
    return {
        "id": job_id,
        "status": "queued",
        "lane": "normal",
        "kind": "http",
        "tags": [],
        "createdAt": at(0),
        "updatedAt": at(0),
        "attempts": [],
        **fields,
    }


def collect(
    run: Any, store: Store, container: str, query: Filter, page_size: int
) -> list[Any]:
    """Every page of a query, to the end; fails if paging never ends."""
    items: list[Any] = []
    continuation = None
    for _ in range(100):
        page = run(
            store.query(
                container, query, page_size=page_size, continuation=continuation
            )
        )
        assert len(page.items) <= page_size
        items += page.items
        continuation = page.continuation
        if continuation is None:
            return items
    raise AssertionError("paging did not end within 100 pages")


# -- point operations ------------------------------------------------------


def test_created_record_reads_back_with_an_etag(run, store):
    job_id = unique("job")
    created = run(store.create("jobs", job(job_id, payload={"url": "http://x"})))
    found = run(store.read("jobs", job_id))

    assert found[ETAG] == created[ETAG]
    assert found["payload"] == {"url": "http://x"}
    assert {k: v for k, v in found.items() if k != ETAG} == {
        k: v for k, v in created.items() if k != ETAG
    }


def test_reading_a_missing_record_raises_record_not_found_with_its_id(run, store):
    missing = unique("job")
    with pytest.raises(RecordNotFound) as caught:
        run(store.read("jobs", missing))

    assert caught.value.record_id == missing
    assert caught.value.container == "jobs"
    assert caught.value.http_status == 404


def test_creating_an_existing_id_raises_record_exists(run, store):
    job_id = unique("job")
    run(store.create("jobs", job(job_id)))

    with pytest.raises(RecordExists) as caught:
        run(store.create("jobs", job(job_id, status="running")))

    assert caught.value.record_id == job_id
    assert run(store.read("jobs", job_id))["status"] == "queued"


def test_concurrent_creates_of_one_id_let_exactly_one_win(run, store):
    job_id = unique("job")

    async def race() -> list[Any]:
        attempts = [store.create("jobs", job(job_id, winner=n)) for n in range(10)]
        return await asyncio.gather(*attempts, return_exceptions=True)

    outcomes = run(race())
    winners = [o for o in outcomes if isinstance(o, dict)]

    assert len(winners) == 1
    assert all(isinstance(o, RecordExists) for o in outcomes if o not in winners)
    assert run(store.read("jobs", job_id))["winner"] == winners[0]["winner"]


def test_create_all_stores_every_record_with_its_own_etag(run, store):
    job_id, lease_id = unique("job"), unique("lease")
    created = run(
        store.create_all([("leases", {"id": lease_id}), ("jobs", job(job_id))])
    )

    assert [doc["id"] for doc in created] == [lease_id, job_id]
    assert run(store.read("leases", lease_id))[ETAG] == created[0][ETAG]
    assert run(store.read("jobs", job_id))[ETAG] == created[1][ETAG]
    assert store.usage()["create:jobs"]["count"] >= 1
    assert store.usage()["create:leases"]["count"] >= 1


def test_create_all_names_the_taken_id_and_keeps_what_existed(run, store):
    job_id, lease_id = unique("job"), unique("lease")
    run(store.create("jobs", job(job_id, status="running")))

    with pytest.raises(RecordExists) as caught:
        run(store.create_all([("leases", {"id": lease_id}), ("jobs", job(job_id))]))

    assert (caught.value.container, caught.value.record_id) == ("jobs", job_id)
    assert run(store.read("jobs", job_id))["status"] == "running"
    # SQLite writes all or none; Cosmos DB creates in order (see create_all).
    if isinstance(store, CosmosStore):
        assert run(store.read("leases", lease_id))["id"] == lease_id
    else:
        with pytest.raises(RecordNotFound):
            run(store.read("leases", lease_id))


def test_replace_with_the_current_etag_writes_and_changes_the_etag(run, store):
    job_id = unique("job")
    created = run(store.create("jobs", job(job_id)))
    etag = created.pop(ETAG)

    replaced = run(store.replace("jobs", {**created, "status": "running"}, etag))

    assert replaced[ETAG] != etag
    assert run(store.read("jobs", job_id))["status"] == "running"


def test_replace_with_a_stale_etag_raises_etag_conflict_and_keeps_the_winner(
    run, store
):
    job_id = unique("job")
    created = run(store.create("jobs", job(job_id)))
    stale = created.pop(ETAG)
    run(store.replace("jobs", {**created, "status": "running"}, stale))

    with pytest.raises(EtagConflict) as caught:
        run(store.replace("jobs", {**created, "status": "cancelled"}, stale))

    assert caught.value.record_id == job_id
    assert caught.value.http_status == 409
    assert run(store.read("jobs", job_id))["status"] == "running"


def test_replacing_a_missing_record_raises_record_not_found(run, store):
    with pytest.raises(RecordNotFound):
        run(store.replace("jobs", job(unique("job")), '"no-such-etag"'))


def test_patch_sets_increments_appends_and_removes_in_one_write(run, store):
    job_id = unique("job")
    created = run(store.create("jobs", job(job_id, note="drop me", retries=0)))

    patched = run(
        store.patch(
            "jobs",
            job_id,
            [
                PatchOp.set("/status", "running"),
                PatchOp.incr("/retries", 2),
                PatchOp.add("/attempts/-", {"number": 1, "startedAt": at(1)}),
                PatchOp.remove("/note"),
            ],
            etag=created[ETAG],
        )
    )
    found = run(store.read("jobs", job_id))

    assert found == patched
    assert found["status"] == "running"
    assert found["retries"] == 2
    assert found["attempts"] == [{"number": 1, "startedAt": at(1)}]
    assert "note" not in found
    assert found[ETAG] != created[ETAG]


def test_patch_with_a_stale_etag_raises_etag_conflict(run, store):
    job_id = unique("job")
    created = run(store.create("jobs", job(job_id)))
    run(store.patch("jobs", job_id, [PatchOp.set("/status", "running")]))

    with pytest.raises(EtagConflict):
        run(
            store.patch(
                "jobs",
                job_id,
                [PatchOp.set("/status", "cancelled")],
                etag=created[ETAG],
            )
        )
    assert run(store.read("jobs", job_id))["status"] == "running"


def test_patching_a_missing_record_raises_record_not_found(run, store):
    with pytest.raises(RecordNotFound):
        run(store.patch("jobs", unique("job"), [PatchOp.set("/status", "running")]))


def test_delete_removes_the_record(run, store):
    job_id = unique("job")
    run(store.create("jobs", job(job_id)))

    run(store.delete("jobs", job_id))

    with pytest.raises(RecordNotFound):
        run(store.read("jobs", job_id))
    with pytest.raises(RecordNotFound):
        run(store.delete("jobs", job_id))


def test_delete_with_a_stale_etag_raises_etag_conflict_and_keeps_the_record(run, store):
    job_id = unique("job")
    created = run(store.create("jobs", job(job_id)))
    run(store.patch("jobs", job_id, [PatchOp.set("/status", "running")]))

    with pytest.raises(EtagConflict):
        run(store.delete("jobs", job_id, etag=created[ETAG]))
    assert run(store.read("jobs", job_id))["status"] == "running"


def test_twenty_concurrent_incrementers_through_update_lose_no_increment(run, store):
    lease_id = unique("counter")
    run(store.create("leases", {"id": lease_id, "count": 0}))

    def increment(doc: dict[str, Any]) -> dict[str, Any]:
        return {**doc, "count": doc["count"] + 1}

    async def race() -> None:
        # attempts=20: each loss means another writer won, so 20 always suffice.
        await asyncio.gather(
            *(
                store.update("leases", lease_id, increment, attempts=20)
                for _ in range(20)
            )
        )

    run(race())

    assert run(store.read("leases", lease_id))["count"] == 20


def test_lease_taken_by_etag_refuses_a_second_taker_holding_the_old_etag(run, store):
    lease_id = unique("dispatcher")
    free = run(store.create("leases", {"id": lease_id, "holder": None}))
    etag = free.pop(ETAG)

    run(store.replace("leases", {**free, "holder": "runtime-a"}, etag))

    with pytest.raises(EtagConflict):
        run(store.replace("leases", {**free, "holder": "runtime-b"}, etag))
    assert run(store.read("leases", lease_id))["holder"] == "runtime-a"


# -- queries ---------------------------------------------------------------


def test_jobs_list_by_kind_newest_first_paged_to_the_end(run, store):
    kind = unique("kind")
    for minute in range(7):
        run(store.create("jobs", job(unique("job"), kind=kind, createdAt=at(minute))))

    items = collect(run, store, "jobs", Filter(equals={"kind": kind}), page_size=2)

    assert [item["createdAt"] for item in items] == [at(m) for m in reversed(range(7))]
    assert all(ETAG in item for item in items)


def test_jobs_filter_by_status_lane_and_kind_together(run, store):
    kind = unique("kind")
    wanted = set()
    for n, (status, lane) in enumerate(
        [("queued", "high"), ("queued", "low"), ("running", "high"), ("queued", "high")]
    ):
        job_id = unique("job")
        run(
            store.create(
                "jobs",
                job(job_id, kind=kind, status=status, lane=lane, createdAt=at(n)),
            )
        )
        if (status, lane) == ("queued", "high"):
            wanted.add(job_id)

    query = Filter(equals={"kind": kind, "status": "queued", "lane": "high"})
    items = collect(run, store, "jobs", query, page_size=1)

    assert {item["id"] for item in items} == wanted


def test_jobs_by_tag_match_only_jobs_carrying_that_tag(run, store):
    tag = unique("tag")
    tagged = {unique("job") for _ in range(3)}
    for n, job_id in enumerate(sorted(tagged)):
        run(store.create("jobs", job(job_id, tags=["nightly", tag], createdAt=at(n))))
    run(store.create("jobs", job(unique("job"), tags=["nightly"])))

    items = collect(run, store, "jobs", Filter(contains=tag), page_size=2)
    queued = collect(
        run,
        store,
        "jobs",
        Filter(equals={"status": "queued"}, contains=tag),
        page_size=5,
    )

    assert {item["id"] for item in items} == tagged
    assert {item["id"] for item in queued} == tagged


def test_tag_query_follows_a_tag_removed_by_patch(run, store):
    tag = unique("tag")
    job_id = unique("job")
    run(store.create("jobs", job(job_id, tags=[tag])))

    run(store.patch("jobs", job_id, [PatchOp.set("/tags", ["other"])]))

    assert collect(run, store, "jobs", Filter(contains=tag), page_size=5) == []


def test_jobs_created_in_a_time_range_are_listed_inclusive_of_both_ends(run, store):
    kind = unique("kind")
    for minute in range(10):
        run(store.create("jobs", job(unique("job"), kind=kind, createdAt=at(minute))))

    query = Filter(equals={"kind": kind}, since=at(3), until=at(6))
    items = collect(run, store, "jobs", query, page_size=3)

    assert [item["createdAt"] for item in items] == [at(6), at(5), at(4), at(3)]


def test_dead_letters_query_by_source_and_lane_in_a_time_range(run, store):
    kind = unique("kind")
    expected = []
    for n in range(6):
        letter = {
            "id": unique("dl"),
            "jobId": unique("job"),
            "lane": "high" if n % 2 else "low",
            "kind": kind,
            "source": "queue" if n < 3 else "job",
            "deadLetteredAt": at(n),
            "reason": "max delivery count exceeded",
        }
        run(store.create("deadletters", letter))
        if letter["lane"] == "high":
            expected.append(letter["id"])

    by_lane = collect(
        run, store, "deadletters", Filter(equals={"kind": kind, "lane": "high"}), 2
    )
    by_source = collect(
        run,
        store,
        "deadletters",
        Filter(equals={"kind": kind, "source": "job"}, since=at(4)),
        page_size=1,
    )

    assert [item["id"] for item in by_lane] == list(reversed(expected))
    assert [item["deadLetteredAt"] for item in by_source] == [at(5), at(4)]


def test_due_schedules_come_oldest_first_without_paused_or_future_ones(run, store):
    # A window of its own, far from other tests' schedules.
    window = datetime(2030, 1, 1, tzinfo=UTC) + timedelta(
        days=hash(unique("w")) % 10000
    )
    now = window + timedelta(minutes=10)
    due_ids = []
    for minute, paused in [(1, False), (2, True), (3, False), (9, False), (15, False)]:
        schedule_id = unique("sched")
        fire_at = iso_utc(window + timedelta(minutes=minute))
        run(
            store.create(
                "schedules",
                {"id": schedule_id, "nextFireAt": fire_at, "paused": paused},
            )
        )
        if not paused and minute <= 10:
            due_ids.append(schedule_id)

    due = Filter(
        equals={"paused": False},
        since=iso_utc(window),
        until=iso_utc(now),
        ascending=True,
    )
    first = run(store.query("schedules", due, page_size=2))
    everything = collect(run, store, "schedules", due, page_size=2)

    assert [item["id"] for item in first.items] == due_ids[:2]
    assert [item["id"] for item in everything] == due_ids


def test_a_run_is_created_once_however_many_firings_race(run, store):
    schedule_id = unique("sched")
    fire_at = at(30)
    run_id = f"{schedule_id}@{fire_at}"

    async def fire() -> list[Any]:
        record = {"id": run_id, "scheduleId": schedule_id, "firedAt": fire_at}
        return await asyncio.gather(
            *(store.create("runs", record) for _ in range(8)), return_exceptions=True
        )

    outcomes = run(fire())

    assert sum(isinstance(o, dict) for o in outcomes) == 1
    assert sum(isinstance(o, RecordExists) for o in outcomes) == 7
    assert (
        run(store.read("runs", run_id, partition_key=schedule_id))["firedAt"] == fire_at
    )


def test_runs_of_one_schedule_list_newest_first_and_no_other_schedules(run, store):
    schedule_id, other_id = unique("sched"), unique("sched")
    for minute in range(5):
        for sid in (schedule_id, other_id):
            fired = at(minute)
            run(
                store.create(
                    "runs",
                    {"id": f"{sid}@{fired}", "scheduleId": sid, "firedAt": fired},
                )
            )

    items = collect(run, store, "runs", Filter(equals={"scheduleId": schedule_id}), 2)

    assert [item["firedAt"] for item in items] == [at(m) for m in reversed(range(5))]
    assert {item["scheduleId"] for item in items} == {schedule_id}


def test_run_queries_without_their_schedule_are_refused(run, store):
    with pytest.raises(ValueError, match="scheduleId"):
        run(store.query("runs", Filter()))


def test_unindexed_filters_are_refused_before_reaching_a_backend(run, store):
    with pytest.raises(ValueError, match="not indexed"):
        run(store.query("jobs", Filter(equals={"payload": "x"})))


def test_probes_of_one_endpoint_list_newest_first(run, store):
    schedule_id = unique("sched")
    for minute in range(4):
        for endpoint in ("https://a.example", "https://b.example"):
            run(
                store.create(
                    "probes",
                    {
                        "id": unique("probe"),
                        "scheduleId": schedule_id,
                        "endpoint": endpoint,
                        "checkedAt": at(minute),
                        "ok": True,
                    },
                )
            )

    query = Filter(equals={"scheduleId": schedule_id, "endpoint": "https://a.example"})
    items = collect(run, store, "probes", query, page_size=3)

    assert [item["checkedAt"] for item in items] == [at(m) for m in reversed(range(4))]
    assert {item["endpoint"] for item in items} == {"https://a.example"}


# -- TTL, size, cost -------------------------------------------------------


def test_a_finished_job_carries_the_configured_ttl_and_a_requeued_one_loses_it(
    run, store
):
    # Expiry itself is checked on SQLite in test_store_backends.py; the Cosmos
    # stand-in stores ttl but never expires items, so there only the field is.
    job_id = unique("job")
    run(store.create("jobs", job(job_id)))

    finished = run(store.patch("jobs", job_id, [PatchOp.set("/status", "succeeded")]))
    requeued = run(store.patch("jobs", job_id, [PatchOp.set("/status", "queued")]))

    assert finished["ttl"] == FINISHED_TTL_SECONDS
    assert requeued["ttl"] == -1


def test_large_payload_round_trips_through_a_blob(run, store, azurite):
    job_id = unique("job")
    payload = {"body": "x" * 50_000, "headers": {"a": "b"}}

    run(store.create("jobs", job(job_id, payload=payload)))
    found = run(store.read("jobs", job_id))
    patched = run(store.patch("jobs", job_id, [PatchOp.set("/status", "running")]))

    assert found["payload"] == payload
    assert patched["payload"] == payload
    assert job_id in " ".join(run(_blob_names(azurite, store)))


async def _blob_names(azurite: Any, store: Store) -> list[str]:
    from azure.storage.blob.aio import BlobServiceClient

    claim_check = store._claim_check
    assert claim_check is not None
    async with BlobServiceClient.from_connection_string(
        azurite.connection_string
    ) as service:
        container = service.get_container_client(claim_check._container_name)
        return [blob.name async for blob in container.list_blobs()]


def test_large_payloads_come_back_from_queries_too(run, store):
    kind = unique("kind")
    payload = "y" * 30_000
    run(store.create("jobs", job(unique("job"), kind=kind, payload=payload)))

    items = collect(run, store, "jobs", Filter(equals={"kind": kind}), page_size=5)

    assert [item["payload"] for item in items] == [payload]


def test_record_whose_indexed_part_alone_is_too_large_raises_record_too_large(
    run, store
):
    job_id = unique("job")
    with pytest.raises(RecordTooLarge) as caught:
        run(store.create("jobs", job(job_id, kind="k" * 20_000)))

    assert caught.value.record_id == job_id
    assert caught.value.http_status == 413
    with pytest.raises(RecordNotFound):
        run(store.read("jobs", job_id))


def test_record_beyond_the_store_limit_raises_record_too_large(run, store):
    job_id = unique("job")
    with pytest.raises(RecordTooLarge, match="at most"):
        run(store.create("jobs", job(job_id, payload="z" * (17 * 1024 * 1024))))


def test_usage_for_a_job_counts_its_lifecycle_and_its_cost(run, store):
    job_id = unique("job")

    async def lifecycle() -> None:
        created = await store.create("jobs", job(job_id))
        running = await store.patch(
            "jobs",
            job_id,
            [PatchOp.set("/status", "running"), PatchOp.add("/attempts/-", {"n": 1})],
            etag=created[ETAG],
        )
        with job_scope(job_id):
            await store.create(
                "deadletters",
                {
                    "id": unique("dl"),
                    "jobId": job_id,
                    "lane": "normal",
                    "kind": "http",
                    "source": "job",
                    "deadLetteredAt": at(1),
                    "reason": "test",
                },
            )
        await store.patch(
            "jobs", job_id, [PatchOp.set("/status", "succeeded")], etag=running[ETAG]
        )
        await store.read("jobs", job_id)

    run(lifecycle())
    usage = store.usage_for(job_id)

    assert usage.ops == 5
    assert usage.by_op == {
        "create:jobs": 1,
        "patch:jobs": 2,
        "create:deadletters": 1,
        "read:jobs": 1,
    }
    assert usage.request_units > 0 or usage.rows > 0
    assert store.usage()["patch:jobs"]["count"] >= 2


def test_a_malformed_continuation_token_is_the_callers_error(run, store):
    """A token edited or copied from elsewhere answers 400, not a server fault."""
    if isinstance(store, CosmosStore):
        pytest.skip(
            "the Cosmos DB stand-in accepts any token and answers the first page; "
            "real Cosmos DB answers 400, mapped by test_cosmos_refused_token_*"
        )
    with pytest.raises(InvalidContinuation) as raised:
        run(
            store.query(
                "jobs", Filter({"kind": "http"}), page_size=10, continuation="%%nope"
            )
        )

    assert raised.value.http_status == 400
