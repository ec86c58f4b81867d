"""What one backend alone can show: SQLite expiry and processes, Cosmos outages."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from azure.cosmos.exceptions import CosmosHttpResponseError

from duralane.settings import Settings
from duralane.store import (
    CONTAINERS,
    ETAG,
    Filter,
    InvalidContinuation,
    PatchOp,
    RecordNotFound,
    StoreUnavailable,
    build_store,
)
from duralane.store.cosmos import CosmosStore, _query_error
from duralane.store.schema import COSMOS_DEFINITIONS_DIR, render_cosmos_definition
from duralane.store.sqlite import SqliteStore
from tests.services import REPO_ROOT, free_port, start_cosmos_standin
from tests.store.conftest import unique


class SteppedClock:
    """A clock the test moves by hand, so expiry needs no waiting."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def test_sqlite_hides_a_finished_job_once_its_ttl_passes_and_purge_deletes_it(
    run, tmp_path
):
    clock = SteppedClock()
    store = SqliteStore(tmp_path / "ttl.sqlite3", finished_ttl_seconds=60, clock=clock)
    run(store.open())
    job = {"id": unique("job"), "status": "queued", "kind": "k", "createdAt": "a"}
    kept = {**job, "id": unique("job")}
    run(store.create("jobs", job))
    run(store.create("jobs", kept))
    run(store.patch("jobs", job["id"], [PatchOp.set("/status", "failed")]))

    clock.now += 59
    assert run(store.read("jobs", job["id"]))["status"] == "failed"
    clock.now += 2

    with pytest.raises(RecordNotFound):
        run(store.read("jobs", job["id"]))
    listed = run(store.query("jobs", Filter(equals={"kind": "k"}))).items
    assert [item["id"] for item in listed] == [kept["id"]]
    assert run(store.purge_expired()) == 1
    assert run(store.purge_expired()) == 0
    # An expired id is free again, as in Cosmos DB once the item is gone.
    run(store.create("jobs", job))
    run(store.close())


def test_sqlite_counts_no_lost_increment_with_two_processes_on_one_file(run, tmp_path):
    path = tmp_path / "shared.sqlite3"
    store = SqliteStore(path)
    run(store.open())
    run(store.create("leases", {"id": "counter", "count": 0}))
    worker = (
        "import asyncio, sys\n"
        "from duralane.store.sqlite import SqliteStore\n"
        "async def main():\n"
        "    async with SqliteStore(sys.argv[1]) as store:\n"
        "        bump = lambda d: {**d, 'count': d['count'] + 1}\n"
        "        await asyncio.gather(*(store.update('leases', 'counter', bump,"
        " attempts=20) for _ in range(10)))\n"
        "asyncio.run(main())\n"
    )
    processes = [
        subprocess.Popen([sys.executable, "-c", worker, str(path)], cwd=REPO_ROOT)
        for _ in range(2)
    ]

    codes = [process.wait(timeout=120) for process in processes]

    assert codes == [0, 0]
    assert run(store.read("leases", "counter"))["count"] == 20
    run(store.close())


def test_sqlite_that_cannot_create_its_file_raises_store_unavailable(run, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    store = SqliteStore(blocker / "state.sqlite3")

    with pytest.raises(StoreUnavailable):
        run(store.open())
    run(store.close())


def test_cosmos_at_a_closed_port_raises_store_unavailable(run):
    endpoint = f"https://127.0.0.1:{free_port()}/"
    store = CosmosStore(
        endpoint, "db", key="a2V5", verify_tls=False, operation_timeout=30
    )

    with pytest.raises(StoreUnavailable) as caught:
        run(store.open())

    assert caught.value.http_status == 503
    run(store.close())


def test_cosmos_outage_mid_job_surfaces_as_store_unavailable(run):
    standin = start_cosmos_standin()
    store = CosmosStore(standin.endpoint, "db", key=standin.key, verify_tls=False)
    try:
        run(store.open())
        job_id = unique("job")
        run(store.create("jobs", {"id": job_id, "status": "queued"}))
        standin.stop()

        with pytest.raises(StoreUnavailable) as caught:
            run(store.patch("jobs", job_id, [PatchOp.set("/status", "running")]))
    finally:
        standin.stop()
        run(store.close())

    assert caught.value.record_id == job_id


def test_cosmos_charges_are_recorded_per_job(run, cosmos_standin):
    store = CosmosStore(
        cosmos_standin.endpoint, unique("db"), key=cosmos_standin.key, verify_tls=False
    )
    run(store.open())
    job_id = unique("job")
    created = run(store.create("jobs", {"id": job_id, "status": "queued"}))
    run(
        store.patch(
            "jobs", job_id, [PatchOp.set("/status", "running")], etag=created[ETAG]
        )
    )
    run(store.read("jobs", job_id))
    run(store.close())

    # The stand-in charges 1 RU per request; Cosmos DB charges the real cost.
    assert store.usage_for(job_id).request_units == 3
    assert store.usage()["read:jobs"]["request_units"] == 1


@pytest.mark.parametrize("spec", CONTAINERS.values(), ids=list(CONTAINERS))
def test_cosmos_definition_files_match_the_schema(spec):
    shipped = (COSMOS_DEFINITIONS_DIR / f"{spec.name}.json").read_text()

    assert shipped == render_cosmos_definition(spec), (
        "regenerate with: python -m duralane.store.schema"
    )
    assert json.loads(shipped)["partitionKey"]["paths"] == [f"/{spec.partition_key}"]


def test_cosmos_queries_use_only_sql_the_stand_in_and_cosmos_both_run():
    banned = ("OFFSET", "LIMIT", "DISTINCT", "GROUP BY", "LIKE", "EXISTS")
    for spec in CONTAINERS.values():
        if spec.time_field is None:
            continue
        for shape in spec.shapes:
            query = Filter(
                equals=dict.fromkeys(shape.equals, "x"), since="a", until="b"
            )
            sql, _ = CosmosStore.query_text(spec, query)
            assert not [word for word in banned if word in sql.upper()], sql
            if spec.partition_required:
                assert f"c.{spec.partition_key} = @" in sql


def test_settings_choose_sqlite_by_default_and_cosmos_when_an_endpoint_is_set(
    tmp_path: Path,
):
    default = build_store(Settings(sqlite_path=tmp_path / "s.sqlite3"))
    cosmos = build_store(
        Settings(cosmos_endpoint="https://127.0.0.1:1/", cosmos_key="a2V5")
    )

    assert isinstance(default, SqliteStore)
    assert default.path == tmp_path / "s.sqlite3"
    assert isinstance(cosmos, CosmosStore)


def test_cosmos_refused_token_on_a_resumed_query_is_an_invalid_continuation():
    """Real Cosmos DB answers 400 to a bad token; the API must say 400, not 500."""
    refused = CosmosHttpResponseError(status_code=400, message="Invalid token")

    resumed = _query_error(refused, "jobs", continuation="abc")
    fresh = _query_error(refused, "jobs", continuation=None)

    assert isinstance(resumed, InvalidContinuation)
    assert resumed.http_status == 400
    assert not isinstance(fresh, InvalidContinuation)
