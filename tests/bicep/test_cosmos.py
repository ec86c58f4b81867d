"""Cosmos DB containers come from the store's definitions, with the agreed keys."""

from __future__ import annotations

import json
import re

from tests.bicep import bicep_checks as checks

COSMOS = (checks.BICEP_DIR / "modules" / "cosmos.bicep").read_text()
PARTITION_KEYS = {
    "jobs": "/id",
    "deadletters": "/id",
    "schedules": "/id",
    "runs": "/scheduleId",
    "probes": "/scheduleId",
    "leases": "/id",
}


def loaded_files() -> list[str]:
    """The store files cosmos.bicep loads, as repository paths."""
    return re.findall(r"loadJsonContent\('\.\./\.\./([^']+)'\)", COSMOS)


def test_cosmos_module_loads_every_container_definition_of_the_store():
    expected = [f"duralane/store/cosmos/{name}.json" for name in PARTITION_KEYS]
    assert sorted(loaded_files()) == sorted(expected)


def test_every_loaded_definition_has_the_agreed_partition_key_and_ttl():
    for path in loaded_files():
        definition = json.loads((checks.REPO / path).read_text())
        assert definition["partitionKey"]["paths"] == [PARTITION_KEYS[definition["id"]]]
        assert "defaultTtl" in definition, path
        assert "indexingPolicy" in definition, path
