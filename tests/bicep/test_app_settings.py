"""Every lane app signs in to storage, Service Bus and Cosmos DB with its identity."""

from __future__ import annotations

import pytest

from tests.bicep import bicep_checks as checks
from tests.bicep.bicep_checks import Template
from triggers.queues import CONNECTION

TEMPLATES = checks.repo_templates()
APP = checks.load(checks.BICEP_DIR / "modules" / "functionapp.bicep")
NOT_THE_IDENTITY = checks.NOT_THE_IDENTITY


def app_with(old: str, new: str) -> Template:
    """functionapp.bicep with one seeded fault."""
    source = APP.source.decode()
    assert old in source, old
    return Template(APP.path, source.replace(old, new).encode())


def problems_of(template: Template) -> list[str]:
    """The identity problems, without the file, line and symbol prefix."""
    return [
        p.split(": site", 1)[1].lstrip(": ")
        for p in checks.identity_setting_problems(template, [CONNECTION])
    ]


@pytest.mark.parametrize("template", TEMPLATES, ids=[t.name for t in TEMPLATES])
def test_every_app_uses_identity_based_connections(template: Template):
    assert checks.identity_setting_problems(template, [CONNECTION]) == []


def test_settings_are_read_through_the_union_of_variables():
    site = next(
        node
        for _, full, node, _ in checks.resources(APP)
        if checks.resource_type(full) == "Microsoft.Web/sites"
    )
    settings = checks.app_settings(APP, site)
    assert "ServiceBusConnection__fullyQualifiedNamespace" in settings
    assert "DURALANE_LANE" in settings
    assert "FUNCTIONS_WORKER_RUNTIME" in settings  # the Dedicated-only branch


def test_identity_check_reports_storage_named_by_a_connection_string():
    faulty = app_with(
        "AzureWebJobsStorage__accountName: storageAccountName",
        "AzureWebJobsStorage: storageAccountName",
    )
    assert problems_of(faulty) == [
        "sets AzureWebJobsStorage, a connection string",
        "AzureWebJobsStorage has no __accountName or "
        "blobServiceUri+queueServiceUri+tableServiceUri",
    ]


def test_identity_check_accepts_storage_named_by_its_service_uris():
    fine = app_with(
        "AzureWebJobsStorage__accountName: storageAccountName",
        "AzureWebJobsStorage__blobServiceUri: blobEndpoint\n"
        "  AzureWebJobsStorage__queueServiceUri: 'q'\n"
        "  AzureWebJobsStorage__tableServiceUri: 't'",
    )
    assert problems_of(fine) == []


def test_identity_check_reports_service_bus_without_managed_identity_credential():
    faulty = app_with("  ServiceBusConnection__credential: 'managedidentity'\n", "")
    assert problems_of(faulty) == [
        "ServiceBusConnection__credential is not 'managedidentity'"
    ]


def test_identity_check_reports_service_bus_without_its_namespace():
    faulty = app_with(
        "ServiceBusConnection__fullyQualifiedNamespace:", "ServiceBusConnection__name:"
    )
    assert problems_of(faulty) == [
        "ServiceBusConnection has no __fullyQualifiedNamespace"
    ]


def test_identity_check_reports_a_client_id_of_no_identity_the_app_runs_as():
    faulty = app_with(
        "ServiceBusConnection__clientId: identity.properties.clientId",
        "ServiceBusConnection__clientId: 'f0f0f0f0'",
    )
    assert problems_of(faulty) == [f"ServiceBusConnection__clientId {NOT_THE_IDENTITY}"]


def test_identity_check_reports_cosmos_reached_with_a_key():
    faulty = app_with(
        "DURALANE_COSMOS_ENDPOINT: cosmosEndpoint",
        "DURALANE_COSMOS_KEY: cosmosEndpoint",
    )
    assert problems_of(faulty) == [
        "does not set DURALANE_COSMOS_ENDPOINT",
        "sets DURALANE_COSMOS_KEY, a key",
    ]


def test_identity_check_reports_cosmos_clients_not_pointed_at_the_identity():
    faulty = app_with("  AZURE_CLIENT_ID: identity.properties.clientId\n", "")
    assert problems_of(faulty) == [f"AZURE_CLIENT_ID {NOT_THE_IDENTITY}"]


def test_identity_check_reports_a_key_hidden_in_the_dedicated_only_settings():
    faulty = app_with(
        "      FUNCTIONS_WORKER_RUNTIME: 'python'\n",
        "      FUNCTIONS_WORKER_RUNTIME: 'python'\n"
        "      DURALANE_BLOB_CONNECTION_STRING: 'UseDevelopmentStorage=true'\n",
    )
    assert problems_of(faulty) == ["sets DURALANE_BLOB_CONNECTION_STRING, a key"]


def test_identity_check_reports_a_deployment_package_fetched_with_a_key():
    faulty = app_with(
        "type: 'UserAssignedIdentity'", "type: 'StorageAccountConnectionString'"
    )
    assert problems_of(faulty) == [
        "the deployment package is fetched with 'StorageAccountConnectionString', "
        "not an identity"
    ]
