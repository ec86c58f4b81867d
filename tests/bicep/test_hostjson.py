"""Each lane's host.json overrides are complete and reach its app's settings."""

from __future__ import annotations

import json
import re

import pytest

from tests.bicep import bicep_checks as checks

HOSTJSON = checks.BICEP_DIR / "hostjson"
FUNCTION_APP = (checks.BICEP_DIR / "modules" / "functionapp.bicep").read_text()
KNOBS = [
    ("durableTask", "maxConcurrentActivityFunctions"),
    ("durableTask", "maxConcurrentOrchestratorFunctions"),
    ("durableTask", "storageProvider", "maxQueuePollingInterval"),
    ("serviceBus", "maxConcurrentCalls"),
]


def knob(lane: str, path: tuple[str, ...]) -> object:
    """One knob's value in a lane's host.json file."""
    node = json.loads((HOSTJSON / f"host.{lane}.json").read_text())["extensions"]
    for part in path:
        node = node[part]
    return node


def seconds(timespan: str) -> int:
    """'00:00:05' -> 5."""
    hours, minutes, secs = (int(p) for p in timespan.split(":"))
    return hours * 3600 + minutes * 60 + secs


@pytest.mark.parametrize("lane", checks.LANES)
@pytest.mark.parametrize("path", KNOBS, ids=lambda p: ".".join(p))
def test_every_lane_file_sets_every_knob(lane, path):
    assert knob(lane, path) is not None


@pytest.mark.parametrize("path", KNOBS, ids=lambda p: ".".join(p))
def test_function_app_turns_every_knob_into_an_app_setting(path):
    setting = "AzureFunctionsJobHost__extensions__" + "__".join(path)
    assert re.search(rf"^\s*{setting}:", FUNCTION_APP, re.M), setting


def test_function_app_loads_every_lane_file():
    for lane in checks.LANES:
        assert f"loadJsonContent('../hostjson/host.{lane}.json')" in FUNCTION_APP


def test_high_lane_polls_its_task_hub_at_least_once_a_second():
    interval = knob(
        "high", ("durableTask", "storageProvider", "maxQueuePollingInterval")
    )
    assert isinstance(interval, str)
    assert seconds(interval) <= 1


def test_concurrency_falls_from_high_to_low():
    for path in KNOBS:
        if path[-1].startswith("maxConcurrent"):
            values = [int(str(knob(lane, path))) for lane in checks.LANES]
            assert values == sorted(values, reverse=True), path
