"""The health check's bookkeeping: stored results, streaks, the alert, the counter."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from duralane import events
from duralane.schedules import health, service
from duralane.store import Filter, Store, iso_utc
from tests.schedules.support import T0, open_store, run


@pytest.fixture
def failing_counter(monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemoryMetricReader]:
    """The failing counter on a meter of the test's own, read from memory."""
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    counter = provider.get_meter("duralane").create_counter(events.HEALTHCHECK_FAILING)
    monkeypatch.setattr(health, "_FAILING", counter)
    monkeypatch.setattr(health, "failing_counts", {})
    yield reader
    provider.shutdown()


def counted(reader: InMemoryMetricReader) -> dict[tuple[str, str], int]:
    """The counter's total per (schedule, endpoint)."""
    data = reader.get_metrics_data()
    totals: dict[tuple[str, str], int] = {}
    for resource in data.resource_metrics if data else []:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name != events.HEALTHCHECK_FAILING:
                    continue
                for point in metric.data.data_points:
                    attributes = point.attributes or {}
                    key = (str(attributes["scheduleId"]), str(attributes["endpoint"]))
                    totals[key] = int(point.value)  # type: ignore[union-attr]
    return totals


async def health_check(store: Store, threshold: int) -> str:
    """A health-check schedule with one endpoint named `api`."""
    schedule_id = f"health-{uuid.uuid4().hex[:8]}"
    await service.create_schedule(
        store,
        {
            "id": schedule_id,
            "healthcheck": {
                "endpoints": [{"name": "api", "url": "https://api.example.test/"}],
                "failureThreshold": threshold,
            },
        },
        T0,
    )
    return schedule_id


def result(ok: bool, check: int) -> dict[str, Any]:
    """What one probe of `api` found, `check` minutes after T0."""
    return {
        "endpoint": "api",
        "url": "https://api.example.test/",
        "status": 200 if ok else 503,
        "latencyMs": 12.5 + check,
        "error": None,
        "checkedAt": iso_utc(T0 + timedelta(minutes=check)),
        "ok": ok,
    }


async def check(store: Store, schedule_id: str, ok: bool, number: int) -> int:
    """Record one scheduled probe run; the endpoint's streak after it."""
    streaks = await health.record_probe_run(
        store,
        f"sched-{schedule_id}-{number}",
        [f"schedule={schedule_id}"],
        [result(ok, number)],
    )
    return streaks["api"]


def test_failing_checks_past_the_threshold_warn_and_count_per_schedule(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    failing_counter: InMemoryMetricReader,
) -> None:
    async def scenario() -> None:
        store = await open_store(tmp_path / "s.sqlite3")
        down = await health_check(store, threshold=2)
        # Another schedule's endpoint of the same name, alerting at once.
        other = await health_check(store, threshold=1)

        with caplog.at_level(logging.INFO):
            streaks = [await check(store, down, False, n) for n in range(3)]
            await check(store, other, False, 0)

        assert streaks == [1, 2, 3]
        alerts = [
            (getattr(r, events.ATTR_SCHEDULE_ID), r)
            for r in caplog.records
            if r.getMessage().startswith(events.HEALTHCHECK_FAILING)
        ]
        assert [r.levelno for _, r in alerts] == [logging.WARNING] * 3
        assert [
            getattr(r, events.ATTR_CONSECUTIVE_FAILURES)
            for schedule_id, r in alerts
            if schedule_id == down
        ] == [2, 3]
        assert counted(failing_counter) == {(down, "api"): 2, (other, "api"): 1}
        assert health.failing_counts == {(down, "api"): 2, (other, "api"): 1}
        await store.close()

    run(scenario())


def test_each_result_is_stored_and_an_answer_ends_the_streak(
    tmp_path: Path, failing_counter: InMemoryMetricReader
) -> None:
    async def scenario() -> None:
        store = await open_store(tmp_path / "s.sqlite3")
        schedule_id = await health_check(store, threshold=2)

        await check(store, schedule_id, False, 0)
        await check(store, schedule_id, False, 1)
        assert await check(store, schedule_id, True, 2) == 0
        assert await check(store, schedule_id, False, 3) == 1

        page = await store.query(
            health.PROBES,
            Filter(equals={"scheduleId": schedule_id, "endpoint": "api"}),
            page_size=100,
        )
        kept = sorted(
            (p for p in page.items if p["record"] == "result"),
            key=lambda p: str(p["checkedAt"]),
        )
        assert [(p["status"], p["latencyMs"], p["ok"]) for p in kept] == [
            (503, 12.5, False),
            (503, 13.5, False),
            (200, 14.5, True),
            (503, 15.5, False),
        ]
        assert [p["checkedAt"] for p in kept] == [
            iso_utc(T0 + timedelta(minutes=n)) for n in range(4)
        ]
        assert counted(failing_counter) == {(schedule_id, "api"): 1}
        await store.close()

    run(scenario())
