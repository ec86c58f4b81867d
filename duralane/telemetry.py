"""Export Duralane's traces and logs to Application Insights when it is configured.

One call from function_app.py, `configure()`, does everything: with
APPLICATIONINSIGHTS_CONNECTION_STRING set, azure-monitor-opentelemetry's
configure_azure_monitor() installs the trace and log exporters, and the
attributes Duralane passes in each log record's `extra` (jobId, lane,
instanceId, attempt, ...; see duralane.events) arrive as attributes, which
Application Insights shows as customDimensions. Without the setting nothing is
installed and nothing is imported, so local runs and tests stay offline.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

logger = logging.getLogger(__name__)

CONNECTION_SETTING = "APPLICATIONINSIGHTS_CONNECTION_STRING"
# Loggers whose INFO lines are Duralane's own events; everything else (Azure
# SDK request logs, the exporter's own chatter) is exported from WARNING up,
# so a busy lane does not pay for telemetry about its telemetry.
OWN_LOGGERS = ("duralane", "triggers", "orchestrators", "activities", "function_app")
OTHERS_LEVEL = logging.WARNING

_configured = False


class OwnEventsFilter(logging.Filter):
    """Pass Duralane's records at any level and other libraries' from WARNING."""

    def filter(self, record: logging.LogRecord) -> bool:
        """True when the record is worth exporting."""
        name = record.name
        own = any(name == n or name.startswith(n + ".") for n in OWN_LOGGERS)
        return own or record.levelno >= OTHERS_LEVEL


def configure(environ: Mapping[str, str] | None = None, **options: Any) -> bool:
    """Install Azure Monitor export if a connection string is set; True if it is."""
    global _configured
    environ = os.environ if environ is None else environ
    connection = environ.get(CONNECTION_SETTING, "").strip()
    if not connection:
        logger.debug("telemetry export off: %s is not set", CONNECTION_SETTING)
        return False
    if _configured:
        return True

    # Imported here: the package pulls in a dozen instrumentations, which an
    # app without Application Insights should not pay for at start-up.
    from azure.monitor.opentelemetry import configure_azure_monitor

    root = logging.getLogger()
    before = set(root.handlers)
    service = environ.get("OTEL_SERVICE_NAME") or environ.get(
        "WEBSITE_SITE_NAME", "duralane"
    )
    configure_azure_monitor(
        connection_string=connection,
        logger_name="",
        resource=_resource(service),
        **options,
    )
    for handler in set(root.handlers) - before:
        handler.addFilter(OwnEventsFilter())
    # INFO carries the job lifecycle events (retries, starts); a host whose root
    # level is WARNING would drop them before any handler saw them.
    for name in OWN_LOGGERS:
        own = logging.getLogger(name)
        if own.getEffectiveLevel() > logging.INFO:
            own.setLevel(logging.INFO)
    _configured = True
    logger.info("telemetry export on: service %s to Application Insights", service)
    return True


def _resource(service: str) -> Any:
    """The resource naming this app: the cloud role name in Application Insights."""
    from opentelemetry.sdk.resources import Resource

    return Resource.create({"service.name": service})
