"""Each lane's Function App runs the task hub the API's durable clients bind to."""

import json
from pathlib import Path

from triggers.submission import LANE_HUBS

ROOT = Path(__file__).resolve().parents[2]


def test_every_lane_host_json_names_the_hub_the_api_starts_its_jobs_in() -> None:
    for lane, hub in LANE_HUBS.items():
        host = json.loads((ROOT / f"bicep/hostjson/host.{lane}.json").read_text())
        assert host["extensions"]["durableTask"]["hubName"] == hub, lane


def test_the_embedded_runtime_reserves_a_hub_for_every_lane() -> None:
    host = json.loads((ROOT / "host.json").read_text())
    hubs = {h["name"] for h in host["extensions"]["duralane"]["taskHubs"]}
    assert set(LANE_HUBS.values()) <= hubs


def test_each_lane_app_disables_the_other_lanes_queue_triggers() -> None:
    module = (ROOT / "bicep/modules/functionapp.bicep").read_text()
    for lane in LANE_HUBS:
        for function in (f"jobs_{lane}", f"jobs_{lane}_dead_letters"):
            setting = f"'AzureWebJobs.{function}.Disabled': string(lane != '{lane}')"
            assert setting in module, function
    assert "AzureFunctionsJobHost__extensions__durableTask__hubName" in module
