"""Builds duralane.workbook.json from the .kql files, so the two never drift.

Run `python queries/build_workbook.py` after editing a query; a test fails
while the committed workbook differs from what this script writes.
"""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
WORKBOOK = HERE / "duralane.workbook.json"

# (file, title, visualization) in the order the workbook shows them.
CHARTS = [
    ("start_lag.kql", "Start lag per lane (ms)", "timechart"),
    ("throughput.kql", "Throughput per lane", "timechart"),
    ("failure_rates.kql", "Failure and dead-letter rates per lane", "table"),
    ("dead_letters.kql", "Dead letters", "table"),
    ("slowest_kinds.kql", "Slowest job kinds", "table"),
    ("health.kql", "API health checks", "table"),
    ("job_trace.kql", "One job's trace", "table"),
]
# The job_trace query's placeholder, bound to the workbook's JobId parameter.
JOB_ID_PLACEHOLDER = '"<job id>"'


def query_text(name: str) -> str:
    """A query as the workbook runs it: comment lines dropped, parameter bound."""
    lines = (HERE / name).read_text().splitlines()
    body = "\n".join(line for line in lines if not line.startswith("//"))
    return body.replace(JOB_ID_PLACEHOLDER, '"{JobId}"').strip() + "\n"


def build() -> dict[str, object]:
    """The workbook document Azure Monitor stores as serializedData."""
    items: list[dict[str, object]] = [
        {
            "type": 1,
            "name": "intro",
            "content": {
                "json": "## Duralane\nQueries from the repository's queries/ "
                "folder; each reads the log events duralane/events.py defines."
            },
        },
        {
            "type": 9,
            "name": "parameters",
            "content": {
                "version": "KqlParameterItem/1.0",
                "parameters": [
                    {
                        "id": "job-id",
                        "version": "KqlParameterItem/1.0",
                        "name": "JobId",
                        "label": "Job ID (for the trace)",
                        "type": 1,
                        "value": "",
                    }
                ],
            },
        },
    ]
    for name, title, visualization in CHARTS:
        items.append(
            {
                "type": 3,
                "name": name.removesuffix(".kql"),
                "content": {
                    "version": "KqlItem/1.0",
                    "query": query_text(name),
                    "size": 0,
                    "title": title,
                    "queryType": 0,
                    "resourceType": "microsoft.insights/components",
                    "visualization": visualization,
                },
            }
        )
    return {
        "version": "Notebook/1.0",
        "items": items,
        "fallbackResourceIds": [],
        "$schema": "https://github.com/Microsoft/Application-Insights-Workbooks/blob/master/schema/workbook.json",
    }


def render() -> str:
    """The workbook file's exact text."""
    return json.dumps(build(), indent=2) + "\n"


if __name__ == "__main__":
    WORKBOOK.write_text(render())
