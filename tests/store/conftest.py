"""Fixtures for the store contract suite: stand-ins, an event loop, both backends."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

import pytest

from duralane.settings import Settings
from duralane.store import Store, build_store
from tests.services import Azurite, CosmosStandIn, start_azurite, start_cosmos_standin

T = TypeVar("T")
Runner = Callable[[Coroutine[Any, Any, T]], T]

# Small, so claim-check tests move kilobytes rather than the 192 KB default.
CLAIM_CHECK_BYTES = 8 * 1024
FINISHED_TTL_SECONDS = 3600
CALL_TIMEOUT_SECONDS = 120.0


def unique(prefix: str) -> str:
    """An id no other test (or earlier run against the same server) uses."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="session")
def event_loop_thread() -> Iterator[asyncio.AbstractEventLoop]:
    """One loop for the session, so async clients live as long as their store."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="store-tests", daemon=True)
    thread.start()
    yield loop
    loop.call_soon_threadsafe(loop.stop)
    thread.join(timeout=10)
    loop.close()


@pytest.fixture(scope="session")
def run(event_loop_thread: asyncio.AbstractEventLoop) -> Runner[Any]:
    """Run a coroutine on the session loop and return its result, with a bound."""

    def run_coroutine(coroutine: Coroutine[Any, Any, T]) -> T:
        future = asyncio.run_coroutine_threadsafe(coroutine, event_loop_thread)
        return future.result(timeout=CALL_TIMEOUT_SECONDS)

    return run_coroutine


@pytest.fixture(scope="session")
def azurite() -> Iterator[Azurite]:
    service = start_azurite()
    yield service
    service.stop()


@pytest.fixture(scope="session")
def cosmos_standin() -> Iterator[CosmosStandIn]:
    service = start_cosmos_standin()
    yield service
    service.stop()


def store_settings(
    backend: str,
    *,
    azurite: Azurite,
    cosmos: CosmosStandIn | None,
    sqlite_path: Any,
) -> Settings:
    """Settings for one backend, with claim check on Azurite."""
    common: dict[str, Any] = {
        "blob_connection_string": azurite.connection_string,
        "blob_container": unique("payloads"),
        "claim_check_bytes": CLAIM_CHECK_BYTES,
        "finished_job_ttl_seconds": FINISHED_TTL_SECONDS,
    }
    if backend == "sqlite":
        return Settings(sqlite_path=sqlite_path, **common)
    assert cosmos is not None
    return Settings(
        cosmos_endpoint=cosmos.endpoint,
        cosmos_database=unique("db"),
        cosmos_key=cosmos.key,
        cosmos_verify_tls=False,
        **common,
    )


@pytest.fixture(scope="session", params=["sqlite", "cosmos"])
def store(
    request: pytest.FixtureRequest,
    run: Runner[Any],
    azurite: Azurite,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Store]:
    """The same contract, once per backend."""
    cosmos = (
        request.getfixturevalue("cosmos_standin") if request.param == "cosmos" else None
    )
    settings = store_settings(
        request.param,
        azurite=azurite,
        cosmos=cosmos,
        sqlite_path=tmp_path_factory.mktemp("sqlite") / "state.sqlite3",
    )
    opened = build_store(settings)
    run(opened.open())
    yield opened
    run(opened.close())
