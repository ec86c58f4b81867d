"""Telemetry export: on only with a connection string, with Duralane's attributes.

What this cannot check here: that Application Insights accepts the envelopes
and shows the attributes as customDimensions (no network to the ingestion
endpoint), the auto-instrumentation of httpx and the Azure SDKs (switched off
here because it would outlive this module in the test session), metrics, and
the Functions host's own request telemetry. The Azure Monitor exporters are
swapped for OpenTelemetry's in-memory ones, so what is checked is exactly what
configure_azure_monitor hands its exporters.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any
from unittest import mock

import pytest
from opentelemetry import trace
from opentelemetry._logs import get_logger_provider
from opentelemetry.sdk._logs.export import InMemoryLogExporter
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)

from duralane import events, telemetry

# Unroutable on purpose: were an exporter not swapped, nothing would leave.
FAKE_CONNECTION = (
    "InstrumentationKey=00000000-0000-0000-0000-000000000000;"
    "IngestionEndpoint=http://127.0.0.1:9/"
)
SPANS = InMemorySpanExporter()


@pytest.fixture(scope="module")
def exported() -> Iterator[InMemoryLogExporter]:
    """configure() with the Azure exporters replaced by in-memory ones."""
    # Once per module: OpenTelemetry's global providers can be set only once.
    memory = InMemoryLogExporter()
    root = logging.getLogger()
    before = set(root.handlers)
    target = "azure.monitor.opentelemetry._configure"
    with (
        mock.patch(
            "azure.monitor.opentelemetry.exporter.AzureMonitorLogExporter",
            lambda **_: memory,
        ),
        mock.patch(f"{target}.AzureMonitorTraceExporter", lambda **_: SPANS),
        mock.patch(f"{target}._setup_metrics", lambda *_: None),
        mock.patch(f"{target}._setup_instrumentations", lambda *_: None),
        mock.patch.object(telemetry, "_configured", False),
    ):
        assert telemetry.configure(
            {telemetry.CONNECTION_SETTING: FAKE_CONNECTION},
            enable_live_metrics=False,
            enable_performance_counters=False,
            # The default rate-limited sampler may drop a lone first span.
            sampling_ratio=1.0,
        )
        added = set(root.handlers) - before
        yield memory
        for handler in added:
            handler.flush()
            root.removeHandler(handler)


def flushed(memory: InMemoryLogExporter) -> list[Any]:
    """Every record exported so far; the Azure processor batches, so flush first."""
    get_logger_provider().force_flush()  # type: ignore[attr-defined]
    return [data.log_record for data in memory.get_finished_logs()]


def test_nothing_is_installed_without_a_connection_string() -> None:
    root = logging.getLogger()
    before = list(root.handlers)
    with mock.patch("azure.monitor.opentelemetry.configure_azure_monitor") as azure:
        assert telemetry.configure({}) is False
        assert telemetry.configure({telemetry.CONNECTION_SETTING: "  "}) is False
    azure.assert_not_called()
    assert root.handlers == before


def test_log_extra_fields_arrive_as_attributes(exported: InMemoryLogExporter) -> None:
    job_logger = logging.getLogger("duralane.jobs.service")
    tracer = trace.get_tracer("duralane.tests")
    with tracer.start_as_current_span("attempt") as span:
        job_logger.info(
            "%s job %s lane %s attempt %d",
            events.JOB_RETRY_SCHEDULED,
            "job-telemetry-1",
            "high",
            2,
            extra={
                events.ATTR_JOB_ID: "job-telemetry-1",
                events.ATTR_LANE: "high",
                events.ATTR_INSTANCE_ID: "job-abc",
                events.ATTR_ATTEMPT: 2,
            },
        )

    (record,) = [r for r in flushed(exported) if "job-telemetry-1" in str(r.body)]
    assert str(record.body).startswith(events.JOB_RETRY_SCHEDULED)
    attributes = dict(record.attributes or {})
    assert attributes[events.ATTR_JOB_ID] == "job-telemetry-1"
    assert attributes[events.ATTR_LANE] == "high"
    assert attributes[events.ATTR_INSTANCE_ID] == "job-abc"
    assert attributes[events.ATTR_ATTEMPT] == 2
    assert record.severity_text == "INFO"
    # The line is correlated with the span it was logged in.
    assert record.trace_id == span.get_span_context().trace_id

    trace.get_tracer_provider().force_flush()  # type: ignore[attr-defined]
    (exported_span,) = [s for s in SPANS.get_finished_spans() if s.name == "attempt"]
    assert exported_span.resource.attributes["service.name"] == "duralane"


def test_other_libraries_export_only_warnings(exported: InMemoryLogExporter) -> None:
    chatty = logging.getLogger("azure.core.pipeline.policies.http_logging_policy")
    chatty.setLevel(logging.INFO)
    chatty.info("request telemetry-noise")
    chatty.warning("request telemetry-trouble")

    bodies = [str(r.body) for r in flushed(exported)]
    assert "request telemetry-trouble" in bodies
    assert "request telemetry-noise" not in bodies
