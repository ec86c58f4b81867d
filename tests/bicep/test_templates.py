"""Each template check passes on the repository and fails on a seeded fault."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bicep import bicep_checks as checks
from tests.bicep.bicep_checks import Template

TEMPLATES = checks.repo_templates()
IDS = [t.name for t in TEMPLATES]

PER_FILE_CHECKS = [
    checks.syntax_errors,
    checks.undeclared_references,
    checks.duplicate_declarations,
    checks.unused_declarations,
    checks.description_problems,
    checks.module_interface_problems,
    checks.required_setting_problems,
    checks.publishing_credential_problems,
    checks.queue_problems,
    checks.key_problems,
    checks.output_problems,
    checks.role_problems,
    checks.api_version_problems,
]


def snippet(source: str, path: Path | None = None) -> Template:
    """A seeded-fault template, parsed as if it lived under bicep/."""
    return Template.from_text(source, path)


def test_the_repository_has_a_main_template_and_modules():
    names = set(IDS)
    assert "bicep/main.bicep" in names
    assert {
        f"bicep/modules/{m}.bicep"
        for m in ("stamp", "functionapp", "servicebus", "cosmos", "storage")
    } <= names


@pytest.mark.parametrize("check", PER_FILE_CHECKS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("template", TEMPLATES, ids=IDS)
def test_repository_template_passes(check, template):
    assert check(template) == []


def test_every_lane_has_its_queue_and_app_in_the_repository():
    assert checks.lane_problems(TEMPLATES) == []


# ---------------------------------------------------------------- syntax


def test_syntax_check_reports_an_unclosed_object():
    broken = snippet("resource r 'Microsoft.Web/sites@2024-04-01' = {\n  name: 'x'\n")
    assert checks.syntax_errors(broken)


def test_syntax_check_reports_a_stray_token():
    broken = snippet("var a = 1 +\nvar b = 2\n")
    assert checks.syntax_errors(broken)


# ---------------------------------------------------------------- symbols


def test_symbol_check_reports_an_undeclared_variable():
    faulty = snippet("var a = b\noutput o string = a\n")
    assert checks.undeclared_references(faulty) == [
        "bicep/snippet.bicep:1: 'b' is not declared"
    ]


def test_symbol_check_reports_an_undeclared_resource_in_a_property():
    faulty = snippet(
        "resource r 'Microsoft.Web/sites@2024-04-01' = {\n"
        "  name: 'x'\n  properties: {\n    serverFarmId: plan.id\n  }\n}\n"
    )
    assert any("'plan'" in p for p in checks.undeclared_references(faulty))


def test_symbol_check_accepts_loop_and_lambda_variables():
    fine = snippet(
        "param lanes array\n"
        "var a = [for (lane, i) in lanes: '${lane}-${i}']\n"
        "var b = map(lanes, l => toUpper(l))\n"
        "var c = [for lane in lanes: lane]\n"
        "output o array = concat(a, b, c)\n"
    )
    assert checks.undeclared_references(fine) == []


def test_symbol_check_reports_a_loop_variable_used_outside_its_loop():
    faulty = snippet(
        "param lanes array\nvar a = [for lane in lanes: lane]\n"
        "output o string = lane\noutput p array = a\n"
    )
    assert any("'lane'" in p for p in checks.undeclared_references(faulty))


def test_unused_check_reports_an_unused_param_and_variable():
    faulty = snippet(
        "@description('Required. x.')\nparam unused string\nvar idle = 1\n"
    )
    problems = checks.unused_declarations(faulty)
    assert any("param 'unused'" in p for p in problems)
    assert any("var 'idle'" in p for p in problems)


def test_duplicate_check_reports_a_name_declared_twice():
    faulty = snippet("var a = 1\nvar a = 2\noutput o int = a\n")
    assert checks.duplicate_declarations(faulty)


def test_duplicate_check_allows_an_output_named_like_a_param():
    fine = snippet(
        "@description('Required. x.')\nparam name string\noutput name string = name\n"
    )
    assert checks.duplicate_declarations(fine) == []


# ---------------------------------------------------------------- descriptions


def test_description_check_reports_an_undescribed_param():
    faulty = snippet("param location string = 'westeurope'\n")
    assert "has no @description" in checks.description_problems(faulty)[0]


def test_description_check_reports_optional_param_called_required():
    faulty = snippet(
        "@description('Required. Region.')\nparam location string = 'westeurope'\n"
    )
    assert "must start with 'Optional.'" in checks.description_problems(faulty)[0]


def test_description_check_reports_required_param_called_optional():
    faulty = snippet(
        "@description('Optional. Region. Default: none.')\nparam location string\n"
    )
    assert "must start with 'Required.'" in checks.description_problems(faulty)[0]


def test_description_check_reports_optional_param_without_its_default():
    faulty = snippet("@description('Optional. Region.')\nparam location string = 'x'\n")
    assert "state its default" in checks.description_problems(faulty)[0]


def test_description_check_reports_an_undescribed_output():
    faulty = snippet("output o string = 'x'\n")
    assert checks.description_problems(faulty)


def test_description_check_treats_nullable_params_as_optional():
    fine = snippet(
        "@description('Optional. Zone. Default: null.')\nparam zone string?\n"
    )
    assert checks.description_problems(fine) == []


# ---------------------------------------------------------------- modules

MODULES = checks.BICEP_DIR / "modules"


def test_module_check_reports_a_param_the_module_does_not_declare():
    faulty = snippet(
        "module m 'servicebus.bicep' = {\n  name: 'm'\n  params: {\n"
        "    location: 'x'\n    namespaceName: 'n'\n    lanes: []\n"
        "    colour: 'blue'\n  }\n}\n",
        MODULES / "snippet.bicep",
    )
    assert any("'colour'" in p for p in checks.module_interface_problems(faulty))


def test_module_check_reports_a_missing_required_param():
    faulty = snippet(
        "module m 'servicebus.bicep' = {\n  name: 'm'\n  params: {\n"
        "    location: 'x'\n    lanes: []\n  }\n}\n",
        MODULES / "snippet.bicep",
    )
    problems = checks.module_interface_problems(faulty)
    assert any("required param 'namespaceName'" in p for p in problems)


def test_module_check_reports_an_output_the_module_does_not_have():
    faulty = snippet(
        "module m 'servicebus.bicep' = {\n  name: 'm'\n  params: {\n"
        "    location: 'x'\n    namespaceName: 'n'\n    lanes: []\n  }\n}\n"
        "output o string = m.outputs.connectionString\n",
        MODULES / "snippet.bicep",
    )
    problems = checks.module_interface_problems(faulty)
    assert any("m.outputs.connectionString" in p for p in problems)


def test_module_check_reports_a_missing_module_file():
    faulty = snippet("module m 'modules/nothere.bicep' = {\n  name: 'm'\n}\n")
    assert any("does not exist" in p for p in checks.module_interface_problems(faulty))


# ---------------------------------------------------------------- policies


def test_setting_check_reports_shared_key_access_left_on():
    faulty = snippet(
        "resource s 'Microsoft.Storage/storageAccounts@2023-05-01' = {\n"
        "  name: 'x'\n  properties: {\n    allowSharedKeyAccess: true\n"
        "    allowBlobPublicAccess: false\n    minimumTlsVersion: 'TLS1_2'\n"
        "    supportsHttpsTrafficOnly: true\n  }\n}\n"
    )
    problems = checks.required_setting_problems(faulty)
    assert len(problems) == 1
    assert "allowSharedKeyAccess to true" in problems[0]


def test_setting_check_reports_local_auth_not_disabled():
    faulty = snippet(
        "resource sb 'Microsoft.ServiceBus/namespaces@2024-01-01' = {\n"
        "  name: 'x'\n  properties: {\n    minimumTlsVersion: '1.2'\n  }\n}\n"
    )
    problems = checks.required_setting_problems(faulty)
    assert any("disableLocalAuth to nothing" in p for p in problems)


def test_setting_check_reports_an_old_tls_version_and_ftp_on():
    faulty = snippet(
        "resource w 'Microsoft.Web/sites@2024-04-01' = {\n  name: 'x'\n"
        "  properties: {\n    httpsOnly: true\n    siteConfig: {\n"
        "      minTlsVersion: '1.0'\n      scmMinTlsVersion: '1.2'\n"
        "      ftpsState: 'AllAllowed'\n    }\n  }\n}\n"
    )
    problems = checks.required_setting_problems(faulty)
    assert len(problems) == 2


def test_setting_check_reports_http_allowed_on_cosmos_and_front_door():
    faulty = snippet(
        "resource c 'Microsoft.DocumentDB/databaseAccounts@2024-05-15' = {\n"
        "  name: 'x'\n  properties: {\n    disableLocalAuth: true\n"
        "    disableKeyBasedMetadataWriteAccess: true\n    minimalTlsVersion: 'Tls'\n"
        "  }\n}\n"
        "resource r 'Microsoft.Cdn/profiles/afdEndpoints/routes@2024-02-01' = {\n"
        "  name: 'x'\n  properties: {\n    forwardingProtocol: 'MatchRequest'\n"
        "    httpsRedirect: 'Enabled'\n  }\n}\n"
    )
    assert len(checks.required_setting_problems(faulty)) == 2


def test_setting_check_ignores_existing_resources():
    fine = snippet(
        "resource s 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {\n"
        "  name: 'x'\n}\n"
    )
    assert checks.required_setting_problems(fine) == []


def test_publishing_check_reports_a_site_without_scm_policy():
    faulty = snippet(
        "resource site 'Microsoft.Web/sites@2024-04-01' = {\n  name: 'x'\n}\n"
        "resource ftp 'Microsoft.Web/sites/basicPublishingCredentialsPolicies"
        "@2024-04-01' = {\n  parent: site\n  name: 'ftp'\n"
        "  properties: {\n    allow: false\n  }\n}\n"
    )
    problems = checks.publishing_credential_problems(faulty)
    assert len(problems) == 1
    assert "'scm'" in problems[0]


QUEUE = """resource q 'Microsoft.ServiceBus/namespaces/queues@2024-01-01' = {{
  name: 'jobs-high'
  properties: {{
{body}
  }}
}}
"""
FULL_QUEUE = {
    "maxDeliveryCount": "10",
    "lockDuration": "'PT1M'",
    "defaultMessageTimeToLive": "'P14D'",
    "requiresDuplicateDetection": "true",
    "duplicateDetectionHistoryTimeWindow": "'PT10M'",
    "deadLetteringOnMessageExpiration": "true",
}


def queue_snippet(settings: dict[str, str]) -> Template:
    lines = "\n".join(f"    {k}: {v}" for k, v in settings.items())
    return snippet(QUEUE.format(body=lines))


def test_queue_check_accepts_a_queue_that_states_everything():
    assert checks.queue_problems(queue_snippet(FULL_QUEUE)) == []


@pytest.mark.parametrize("missing", sorted(FULL_QUEUE))
def test_queue_check_reports_each_unstated_setting(missing):
    settings = {k: v for k, v in FULL_QUEUE.items() if k != missing}
    assert checks.queue_problems(queue_snippet(settings)) == [
        f"bicep/snippet.bicep:1: queue q does not set {missing}"
    ]


def test_queue_check_reports_dead_lettering_on_expiration_off():
    settings = dict(FULL_QUEUE, deadLetteringOnMessageExpiration="false")
    problems = checks.queue_problems(queue_snippet(settings))
    assert problems == [
        "bicep/snippet.bicep:1: queue q sets deadLetteringOnMessageExpiration to false"
    ]


def test_key_check_reports_list_keys():
    faulty = snippet(
        "resource s 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {\n"
        "  name: 'x'\n}\nvar k = s.listKeys().keys[0].value\noutput o string = k\n"
    )
    assert any("listKeys()" in p for p in checks.key_problems(faulty))


def test_key_check_reports_the_list_keys_function_form():
    faulty = snippet("var k = listKeys('id', '2023-05-01')\n")
    assert checks.key_problems(faulty)


def test_key_check_reports_a_connection_string_with_a_key():
    faulty = snippet(
        "param account string\n"
        "var c = 'DefaultEndpointsProtocol=https;"
        "AccountName=${account};AccountKey=abc'\n"
    )
    assert any("with a key" in p for p in checks.key_problems(faulty))


def test_key_check_reports_a_connection_string_setting():
    faulty = snippet(
        "var settings = {\n  AzureWebJobsStorage__connectionString: 'x'\n}\n"
    )
    assert checks.key_problems(faulty)


def test_key_check_allows_the_application_insights_connection_string():
    fine = snippet(
        "var settings = {\n  APPLICATIONINSIGHTS_CONNECTION_STRING: 'x'\n}\n"
    )
    assert checks.key_problems(fine) == []


def test_output_check_reports_a_secret_like_output():
    faulty = snippet("@description('x')\noutput storageKey string = 'x'\n")
    assert checks.output_problems(faulty)


def test_output_check_reports_a_secure_param_returned():
    faulty = snippet(
        "@secure()\n@description('Required. x.')\nparam pw string\n"
        "@description('x')\noutput echoed string = pw\n"
    )
    assert any("@secure" in p for p in checks.output_problems(faulty))


ASSIGNMENT = """param principalId string
resource s 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {{
  name: 'x'
}}
resource ra 'Microsoft.Authorization/roleAssignments@2022-04-01' = {{
  name: {name}
  scope: s
  properties: {{
    principalId: principalId
    roleDefinitionId: subscriptionResourceId(
      'Microsoft.Authorization/roleDefinitions', '{role}')
  }}
}}
"""
BLOB_CONTRIBUTOR = "ba92f5b4-2d11-453d-a403-e96b0029c9fe"


def test_role_check_accepts_a_guid_named_data_plane_assignment():
    fine = snippet(
        ASSIGNMENT.format(
            name=f"guid(s.id, principalId, '{BLOB_CONTRIBUTOR}')", role=BLOB_CONTRIBUTOR
        )
    )
    assert checks.role_problems(fine) == []


def test_role_check_reports_a_fixed_assignment_name():
    faulty = snippet(ASSIGNMENT.format(name="'my-assignment'", role=BLOB_CONTRIBUTOR))
    assert any("must be guid(" in p for p in checks.role_problems(faulty))


def test_role_check_reports_a_guid_name_missing_the_principal():
    faulty = snippet(
        ASSIGNMENT.format(name="guid(s.id, 'blob')", role=BLOB_CONTRIBUTOR)
    )
    assert any("must be guid(" in p for p in checks.role_problems(faulty))


def test_role_check_reports_a_control_plane_role():
    contributor = "b24988ac-6180-42a0-ab88-20f7382dd24c"
    faulty = snippet(
        ASSIGNMENT.format(
            name=f"guid(s.id, principalId, '{contributor}')", role=contributor
        )
    )
    assert any(
        "not an allowed data-plane role" in p for p in checks.role_problems(faulty)
    )


def test_role_check_reports_a_cosmos_assignment_with_a_fixed_name():
    faulty = snippet(
        "resource a 'Microsoft.DocumentDB/databaseAccounts@2024-05-15' existing = {\n"
        "  name: 'x'\n}\n"
        "resource ra 'Microsoft.DocumentDB/databaseAccounts/sqlRoleAssignments"
        "@2024-05-15' = {\n  parent: a\n  name: 'fixed'\n}\n"
    )
    assert checks.role_problems(faulty)


def test_api_check_reports_a_preview_version_without_a_reason():
    faulty = snippet(
        "resource q 'Microsoft.ServiceBus/namespaces@2022-10-01-preview' = {\n"
        "  name: 'x'\n}\n"
    )
    assert "preview API" in checks.api_version_problems(faulty)[0]


def test_api_check_accepts_a_preview_version_with_a_comment_why():
    fine = snippet(
        "// preview: the only version with the property we need\n"
        "resource q 'Microsoft.ServiceBus/namespaces@2022-10-01-preview' = {\n"
        "  name: 'x'\n}\n"
    )
    assert checks.api_version_problems(fine) == []


def test_api_check_reports_a_misspelled_resource_type():
    faulty = snippet("resource s 'Microsoft.Web/site@2024-04-01' = {\n  name: 'x'\n}\n")
    assert "unknown resource type" in checks.api_version_problems(faulty)[0]


def test_api_check_reports_an_unreviewed_version():
    faulty = snippet(
        "resource s 'Microsoft.Web/sites@2016-08-01' = {\n  name: 'x'\n}\n"
    )
    assert "has not been reviewed" in checks.api_version_problems(faulty)[0]


# ---------------------------------------------------------------- lanes


def without(template_name: str, old: str, new: str) -> list[Template]:
    """The repository's templates with one edited in memory."""
    return checks.edited(TEMPLATES, template_name, old, new)


def test_lane_check_reports_a_lane_dropped_from_main():
    faulty = without("bicep/main.bicep", "  'normal'\n  'low'\n]", "  'normal'\n]")
    problems = checks.lane_problems(faulty)
    assert "no Service Bus queue jobs-low is declared" in problems
    assert "no Function App has DURALANE_LANE=low" in problems


def test_lane_check_reports_a_misnamed_queue():
    faulty = without(
        "bicep/modules/servicebus.bicep", "'jobs-${lane}'", "'job-${lane}'"
    )
    assert len(checks.lane_problems(faulty)) == 3


def test_lane_check_reports_an_app_not_told_its_lane():
    faulty = without(
        "bicep/modules/functionapp.bicep", "DURALANE_LANE: lane", "DURALANE_LANES: lane"
    )
    assert len(checks.lane_problems(faulty)) == 3


def test_lane_check_follows_values_through_module_params():
    templates = without("bicep/modules/stamp.bicep", "lane: lane\n", "lane: 'high'\n")
    problems = checks.lane_problems(templates)
    assert problems == [
        "no Function App has DURALANE_LANE=normal",
        "no Function App has DURALANE_LANE=low",
    ]
