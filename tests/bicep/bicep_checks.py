"""Checks of Bicep templates that need no Bicep compiler, built on tree-sitter-bicep.

Every check takes parsed templates and returns a list of problems, one readable
line each; an empty list means the check passed. The real compiler and linter
(`az bicep build`, `az deployment group what-if`) still run in the deploy
workflow; these catch what can be caught on a machine without them.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import tree_sitter_bicep
from tree_sitter import Language, Node, Parser

REPO = Path(__file__).resolve().parents[2]
BICEP_DIR = REPO / "bicep"
LANES = ("high", "normal", "low")

_PARSER = Parser(Language(tree_sitter_bicep.language()))

_DECLARATIONS = {
    "parameter_declaration": "param",
    "variable_declaration": "var",
    "resource_declaration": "resource",
    "module_declaration": "module",
    "output_declaration": "output",
    "type_declaration": "type",
    "user_defined_function": "func",
    "metadata_declaration": "metadata",
}
# Names a template may use without declaring them: namespaces of built-ins.
_BUILTIN_NAMESPACES = {"sys", "az"}


@dataclass
class Template:
    """One parsed .bicep file; `source` may be a seeded-fault snippet."""

    path: Path
    source: bytes
    root: Node = field(init=False)

    def __post_init__(self) -> None:
        self.root = _PARSER.parse(self.source).root_node

    @classmethod
    def from_text(cls, text: str, path: Path | None = None) -> Template:
        """Parse a snippet as if it lived at `path` (for relative module paths)."""
        return cls(path or BICEP_DIR / "snippet.bicep", text.encode())

    @property
    def name(self) -> str:
        """The path as a reader would quote it."""
        try:
            return str(self.path.relative_to(REPO))
        except ValueError:
            return str(self.path)


@cache
def load(path: Path) -> Template:
    """Parse a template file once per test session."""
    return Template(path, path.read_bytes())


def repo_templates() -> list[Template]:
    """Every .bicep file under bicep/."""
    return [load(p) for p in sorted(BICEP_DIR.rglob("*.bicep"))]


# ---------------------------------------------------------------- tree helpers


def walk(node: Node) -> Iterator[Node]:
    """Every node under `node`, depth first."""
    yield node
    for child in node.children:
        yield from walk(child)


def text(node: Node | None) -> str:
    """The source text of a node, or '' for none."""
    return node.text.decode() if node is not None and node.text is not None else ""


def string_value(node: Node | None) -> str | None:
    """The value of a plain string literal (no interpolation), else None."""
    if node is None or node.type != "string":
        return None
    if any(c.type == "interpolation" for c in node.children):
        return None
    return "".join(text(c) for c in node.children if c.type == "string_content")


def line(node: Node) -> int:
    """The 1-based line a node starts on."""
    return node.start_point[0] + 1


def declarations(template: Template) -> Iterator[tuple[str, str, Node]]:
    """(kind, name, node) of every declaration, nested child resources included."""
    for node in walk(template.root):
        kind = _DECLARATIONS.get(node.type)
        if kind is None:
            continue
        name = next((c for c in node.children if c.type == "identifier"), None)
        if name is not None:
            yield kind, text(name), node


def declared(template: Template, kind: str) -> dict[str, Node]:
    """Declarations of one kind, by name."""
    return {n: node for k, n, node in declarations(template) if k == kind}


def decorators_of(node: Node) -> dict[str, Node]:
    """A declaration's decorators by name (description, allowed, ...)."""
    found: dict[str, Node] = {}
    prev = node.prev_named_sibling
    if prev is None or prev.type != "decorators":
        return found
    for decorator in prev.named_children:
        call = next((c for c in decorator.named_children), None)
        if call is None or call.type != "call_expression":
            continue
        callee = text(call.named_children[0]).removeprefix("sys.")
        found[callee] = call
    return found


def call_arguments(call: Node) -> list[Node]:
    """The argument expressions of a call_expression."""
    args = next((c for c in call.children if c.type == "arguments"), None)
    return [] if args is None else list(args.named_children)


def body(declaration: Node) -> Node | None:
    """The object a resource or module declaration assigns, unwrapping for/if."""
    value = declaration.children[-1]
    while value.type in {"for_statement", "if_statement"}:
        value = value.named_children[-1]
    return value if value.type == "object" else None


def properties(obj: Node | None) -> dict[str, Node]:
    """An object literal's properties: key to value node."""
    result: dict[str, Node] = {}
    if obj is None:
        return result
    for prop in obj.named_children:
        if prop.type != "object_property" or len(prop.named_children) < 2:
            continue
        key = prop.named_children[0]
        name = string_value(key) if key.type == "string" else text(key)
        if name is not None:
            result[name] = prop.named_children[-1]
    return result


def get(obj: Node | None, dotted: str) -> Node | None:
    """The value at a dotted path of object literals, or None if absent."""
    node = obj
    for part in dotted.split("."):
        if node is None or node.type != "object":
            return None
        node = properties(node).get(part)
    return node


def resources(template: Template) -> Iterator[tuple[str, str, Node, bool]]:
    """(symbol, full type, declaration, is_existing) of every resource."""
    parents: dict[int, str] = {}
    for kind, name, node in declarations(template):
        if kind != "resource":
            continue
        type_node = next(c for c in node.children if c.type == "string")
        raw = string_value(type_node) or ""
        outer = _enclosing_resource(node)
        if outer is not None and "/" not in raw.split("@")[0]:
            raw = f"{parents.get(outer.id, '')}/{raw}"
        parents[node.id] = raw.split("@")[0]
        is_existing = any(c.type == "existing" for c in node.children)
        yield name, raw, node, is_existing


def _enclosing_resource(node: Node) -> Node | None:
    parent = node.parent
    while parent is not None:
        if parent.type == "resource_declaration":
            return parent
        parent = parent.parent
    return None


def resource_type(full: str) -> str:
    """'Microsoft.Web/sites@2024-04-01' -> 'Microsoft.Web/sites'."""
    return full.split("@")[0]


# ---------------------------------------------------------------- syntax


def syntax_errors(template: Template) -> list[str]:
    """Every ERROR and MISSING node tree-sitter-bicep reports."""
    problems = []
    for node in walk(template.root):
        if node.type == "ERROR" or node.is_missing:
            what = "missing " + node.type if node.is_missing else "syntax error"
            snippet = text(node)[:40].replace("\n", " ")
            problems.append(f"{template.name}:{line(node)}: {what} near {snippet!r}")
    return problems


# ---------------------------------------------------------------- symbols


def _bound_names(node: Node) -> set[str]:
    """Names a for loop, lambda or function binds for the code inside it."""
    names: set[str] = set()
    if node.type == "for_statement":
        children = node.children
        for i, child in enumerate(children):
            if child.type == "for" and i + 1 < len(children):
                binder = children[i + 1]
                if binder.type == "identifier":
                    names.add(text(binder))
                elif binder.type == "for_loop_parameters":
                    names |= {text(c) for c in binder.named_children}
    elif node.type == "lambda_expression":
        binder = node.children[0]
        if binder.type == "identifier":
            names.add(text(binder))
        else:
            names |= {text(c) for c in binder.named_children if c.type == "identifier"}
    elif node.type == "user_defined_function":
        params = next((c for c in node.children if c.type == "parameters"), None)
        if params is not None:
            for param in params.named_children:
                names |= {text(c) for c in param.children if c.type == "identifier"}
    return names


def _is_binding_or_key(node: Node) -> bool:
    """True when an identifier names something rather than referring to it."""
    parent = node.parent
    if parent is None:
        return True
    first = parent.children[0] if parent.children else None
    if parent.type in _DECLARATIONS:
        return node == next(c for c in parent.children if c.type == "identifier")
    if parent.type == "object_property":
        return node == parent.named_children[0]
    if parent.type == "call_expression":
        return node == first
    if parent.type == "resource_expression":
        return node != first
    if parent.type == "for_statement":
        return node.prev_sibling is not None and node.prev_sibling.type == "for"
    if parent.type in {"lambda_expression", "parameter", "import_statement"}:
        return True
    if parent.type == "parenthesized_expression" and parent.parent is not None:
        return (
            parent.parent.type == "lambda_expression"
            and parent == (parent.parent.children[0])
        )
    return parent.type in {"import_functionality", "import_with_statement"}


def references(template: Template) -> Iterator[Node]:
    """Every identifier that refers to a declared symbol or a loop variable."""
    for node in walk(template.root):
        if node.type == "identifier" and not _is_binding_or_key(node):
            yield node


def _in_scope(node: Node) -> set[str]:
    names: set[str] = set()
    parent = node.parent
    while parent is not None:
        names |= _bound_names(parent)
        parent = parent.parent
    return names


def undeclared_references(template: Template) -> list[str]:
    """References to names no declaration, loop or lambda in the file binds."""
    known = {name for _, name, _ in declarations(template)} | _BUILTIN_NAMESPACES
    problems = []
    for node in references(template):
        name = text(node)
        if name not in known and name not in _in_scope(node):
            problems.append(f"{template.name}:{line(node)}: {name!r} is not declared")
    return problems


def duplicate_declarations(template: Template) -> list[str]:
    """Top-level names declared twice (Bicep rejects these; outputs have their own)."""
    seen: dict[str, int] = {}
    problems = []
    for kind, name, node in declarations(template):
        if kind in {"metadata", "output"} or node.parent != template.root:
            continue
        if name in seen:
            problems.append(
                f"{template.name}:{line(node)}: {name!r} already declared "
                f"on line {seen[name]}"
            )
        seen.setdefault(name, line(node))
    return problems


def unused_declarations(template: Template) -> list[str]:
    """Parameters and variables nothing in the file reads."""
    used = {text(node) for node in references(template)}
    problems = []
    for kind, name, node in declarations(template):
        if kind in {"param", "var"} and name not in used:
            problems.append(f"{template.name}:{line(node)}: {kind} {name!r} is unused")
    return problems


# ---------------------------------------------------------------- descriptions


def _has_default(param: Node) -> bool:
    nullable = any(n.type == "nullable_type" for n in walk(param))
    return nullable or any(c.type == "=" for c in param.children)


def description_problems(template: Template) -> list[str]:
    """Params and outputs described the AVM way: Required./Optional., with default."""
    problems = []
    for kind, name, node in declarations(template):
        if kind not in {"param", "output"}:
            continue
        where = f"{template.name}:{line(node)}: {kind} {name!r}"
        call = decorators_of(node).get("description")
        args = call_arguments(call) if call is not None else []
        described = string_value(args[0]) if args else None
        if not described:
            problems.append(f"{where} has no @description")
            continue
        if kind == "output":
            continue
        optional = _has_default(node)
        expected = "Optional." if optional else "Required."
        if not described.startswith(expected):
            problems.append(f"{where}: description must start with {expected!r}")
        elif optional and "Default" not in described:
            problems.append(f"{where}: an optional param must state its default")
    return problems


# ---------------------------------------------------------------- modules


def module_target(template: Template, module: Node) -> Path | None:
    """The local file a module declaration points at, or None for registries."""
    path = string_value(next(c for c in module.children if c.type == "string"))
    if path is None or ":" in path:
        return None
    return (template.path.parent / path).resolve()


def _module_outputs_used(template: Template, symbol: str) -> Iterator[tuple[str, Node]]:
    for node in walk(template.root):
        if node.type != "member_expression" or len(node.children) < 3:
            continue
        inner, prop = node.children[0], node.children[-1]
        if inner.type != "member_expression" or text(inner.children[-1]) != "outputs":
            continue
        base = inner.children[0]
        if base.type == "subscript_expression":
            base = base.children[0]
        if text(base) == symbol and base.type == "identifier":
            yield text(prop), node


def module_interface_problems(template: Template) -> list[str]:
    """Module calls pass only declared params, all required ones, read real outputs."""
    problems = []
    for name, module in declared(template, "module").items():
        where = f"{template.name}:{line(module)}: module {name!r}"
        target_path = module_target(template, module)
        if target_path is None:
            continue
        if not target_path.is_file():
            problems.append(f"{where}: {target_path.name} does not exist")
            continue
        target = load(target_path)
        target_params = declared(target, "param")
        passed = properties(get(body(module), "params"))
        for key in passed:
            if key not in target_params:
                problems.append(f"{where} passes {key!r}, not a param of the module")
        for key, param in target_params.items():
            if key not in passed and not _has_default(param):
                problems.append(f"{where} does not pass required param {key!r}")
        outputs = declared(target, "output")
        for output, node in _module_outputs_used(template, name):
            if output not in outputs:
                problems.append(
                    f"{template.name}:{line(node)}: {name}.outputs.{output} "
                    "is not an output of the module"
                )
    return problems


# ---------------------------------------------------------------- policies

# What every resource of a type must say, as property path -> Bicep literal.
REQUIRED_SETTINGS: dict[str, dict[str, str]] = {
    "Microsoft.Storage/storageAccounts": {
        "properties.allowSharedKeyAccess": "false",
        "properties.allowBlobPublicAccess": "false",
        "properties.minimumTlsVersion": "'TLS1_2'",
        "properties.supportsHttpsTrafficOnly": "true",
    },
    "Microsoft.ServiceBus/namespaces": {
        "properties.disableLocalAuth": "true",
        "properties.minimumTlsVersion": "'1.2'",
    },
    "Microsoft.DocumentDB/databaseAccounts": {
        "properties.disableLocalAuth": "true",
        "properties.disableKeyBasedMetadataWriteAccess": "true",
        "properties.minimalTlsVersion": "'Tls12'",
    },
    "Microsoft.Insights/components": {"properties.DisableLocalAuth": "true"},
    "Microsoft.OperationalInsights/workspaces": {
        "properties.features.disableLocalAuth": "true",
    },
    "Microsoft.Web/sites": {
        "properties.httpsOnly": "true",
        "properties.siteConfig.minTlsVersion": "'1.2'",
        "properties.siteConfig.scmMinTlsVersion": "'1.2'",
        "properties.siteConfig.ftpsState": "'Disabled'",
    },
    "Microsoft.Web/sites/basicPublishingCredentialsPolicies": {
        "properties.allow": "false",
    },
    "Microsoft.Cdn/profiles/afdEndpoints/routes": {
        "properties.forwardingProtocol": "'HttpsOnly'",
        "properties.httpsRedirect": "'Enabled'",
    },
    "Microsoft.Cdn/profiles/originGroups": {
        "properties.healthProbeSettings.probeProtocol": "'Https'",
        "properties.healthProbeSettings.probePath": "'/api/health'",
    },
}


def required_setting_problems(template: Template) -> list[str]:
    """Local auth and shared keys off, TLS 1.2, HTTPS only, FTP off, probes on HTTPS."""
    problems = []
    for symbol, full, node, is_existing in resources(template):
        rules = REQUIRED_SETTINGS.get(resource_type(full), {})
        if is_existing:
            continue
        for path, expected in rules.items():
            value = get(body(node), path)
            if text(value) != expected:
                found = text(value) or "nothing"
                problems.append(
                    f"{template.name}:{line(node)}: {symbol} sets {path} to "
                    f"{found}, must be {expected}"
                )
    return problems


def publishing_credential_problems(template: Template) -> list[str]:
    """Every site turns off both FTP and SCM basic-auth publishing."""
    problems = []
    found = list(resources(template))
    policies = {
        string_value(get(body(node), "name"))
        for _, full, node, _ in found
        if resource_type(full)
        == "Microsoft.Web/sites/basicPublishingCredentialsPolicies"
    }
    for symbol, full, node, is_existing in found:
        if resource_type(full) == "Microsoft.Web/sites" and not is_existing:
            for needed in ("ftp", "scm"):
                if needed not in policies:
                    problems.append(
                        f"{template.name}:{line(node)}: {symbol} has no "
                        f"basicPublishingCredentialsPolicies {needed!r} (allow false)"
                    )
    return problems


# Queue properties that must be stated, not inherited; None means any value.
QUEUE_SETTINGS: dict[str, str | None] = {
    "maxDeliveryCount": None,
    "lockDuration": None,
    "defaultMessageTimeToLive": None,
    "requiresDuplicateDetection": "true",
    "duplicateDetectionHistoryTimeWindow": None,
    "deadLetteringOnMessageExpiration": "true",
}


def queue_problems(template: Template) -> list[str]:
    """Every Service Bus queue states its delivery and dead-letter behaviour."""
    problems = []
    for symbol, full, node, is_existing in resources(template):
        if resource_type(full) != "Microsoft.ServiceBus/namespaces/queues":
            continue
        if is_existing:
            continue
        props = properties(get(body(node), "properties"))
        for key, expected in QUEUE_SETTINGS.items():
            where = f"{template.name}:{line(node)}: queue {symbol}"
            if key not in props:
                problems.append(f"{where} does not set {key}")
            elif expected is not None and text(props[key]) != expected:
                problems.append(f"{where} sets {key} to {text(props[key])}")
    return problems


_LIST_CALL = re.compile(r"^list[A-Z]|^list$", re.IGNORECASE)
_KEYED = re.compile(r"AccountKey=|SharedAccessKey=|SharedAccessSignature=", re.I)
# Setting names that must never appear: each is a way to hand out a key.
_KEY_SETTING = re.compile(
    r"connectionstring|connection_string|accountkey|sharedaccesskey|_key$", re.I
)
# Not a key: names the Application Insights component, ingestion is by identity.
_ALLOWED_KEY_LIKE_SETTINGS = {"APPLICATIONINSIGHTS_CONNECTION_STRING"}


def key_problems(template: Template) -> list[str]:
    """No listKeys-style calls, keyed connection strings, or settings holding keys."""
    problems = []
    for node in walk(template.root):
        where = f"{template.name}:{line(node)}"
        if node.type == "call_expression":
            callee = text(node.children[0]).split(".")[-1]
            if _LIST_CALL.match(callee):
                problems.append(f"{where}: {callee}() reads secrets into the template")
        elif node.type == "string_content" and _KEYED.search(text(node)):
            problems.append(f"{where}: a connection string with a key")
        elif node.type == "object_property" and node.named_children:
            key = node.named_children[0]
            name = string_value(key) if key.type == "string" else text(key)
            flagged = name is not None and _KEY_SETTING.search(name) is not None
            if flagged and name not in _ALLOWED_KEY_LIKE_SETTINGS:
                problems.append(f"{where}: setting {name!r} carries a key")
        elif node.type == "member_expression" and text(node.children[-1]) == "keys":
            problems.append(f"{where}: reads .keys of a resource")
    return problems


_SECRET_NAME = re.compile(r"key|secret|password|connectionstring|token|sas", re.I)


def output_problems(template: Template) -> list[str]:
    """Nothing secret in outputs: no secret-like names, no @secure params out."""
    secure = {
        name
        for name, node in declared(template, "param").items()
        if "secure" in decorators_of(node)
    }
    problems = []
    for name, node in declared(template, "output").items():
        where = f"{template.name}:{line(node)}: output {name!r}"
        if _SECRET_NAME.search(name):
            problems.append(f"{where} has a secret-like name")
        used = {text(n) for n in walk(node) if n.type == "identifier"}
        if used & secure:
            problems.append(f"{where} returns a @secure() param")
    return problems


# Built-in role definitions the templates may assign, by ID. All data-plane
# roles except Website Contributor, which only the chaos experiment holds,
# scoped to the apps it stops.
ALLOWED_ROLES = {
    "ba92f5b4-2d11-453d-a403-e96b0029c9fe": "Storage Blob Data Contributor",
    "974c5e8b-45b9-4653-ba55-5f855dd0fb88": "Storage Queue Data Contributor",
    "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3": "Storage Table Data Contributor",
    "4f6d3b9b-027b-4f4c-9142-0e5a2a2247e0": "Azure Service Bus Data Receiver",
    "69a216fc-b8fb-44d8-bc22-1f3c2cd27a39": "Azure Service Bus Data Sender",
    "3913510d-42f4-4e42-8a64-420c390055eb": "Monitoring Metrics Publisher",
    "00000000-0000-0000-0000-000000000002": "Cosmos DB Built-in Data Contributor",
    "de139f84-1756-47ae-9be6-808fbbe84772": "Website Contributor (chaos only)",
}
_GUID = re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b")
_ROLE_ASSIGNMENT_TYPES = {
    "Microsoft.Authorization/roleAssignments",
    "Microsoft.DocumentDB/databaseAccounts/sqlRoleAssignments",
}


def role_problems(template: Template) -> list[str]:
    """Role assignments named guid(scope, principal, role), of allowed roles only."""
    problems = []
    for symbol, full, node, is_existing in resources(template):
        if resource_type(full) not in _ROLE_ASSIGNMENT_TYPES or is_existing:
            continue
        name = get(body(node), "name")
        is_guid = (
            name is not None
            and name.type == "call_expression"
            and text(name.children[0]) == "guid"
            and len(call_arguments(name)) >= 3
        )
        if not is_guid:
            problems.append(
                f"{template.name}:{line(node)}: {symbol} name must be "
                f"guid(scope, principal, role), is {text(name) or 'missing'}"
            )
    for node in walk(template.root):
        if node.type == "string_content":
            for guid in _GUID.findall(text(node).lower()):
                if guid not in ALLOWED_ROLES:
                    problems.append(
                        f"{template.name}:{line(node)}: role or ID {guid} is not "
                        "an allowed data-plane role"
                    )
    return problems


# Resource types and API versions checked against the Azure template reference
# (learn.microsoft.com/azure/templates) when they were written. A type or version
# missing here is a typo or an unreviewed upgrade: check the reference, add it.
KNOWN_API_VERSIONS: dict[str, set[str]] = {
    "Microsoft.Authorization/roleAssignments": {"2022-04-01"},
    "Microsoft.Cdn/profiles": {"2024-02-01"},
    "Microsoft.Cdn/profiles/afdEndpoints": {"2024-02-01"},
    "Microsoft.Cdn/profiles/afdEndpoints/routes": {"2024-02-01"},
    "Microsoft.Cdn/profiles/originGroups": {"2024-02-01"},
    "Microsoft.Cdn/profiles/originGroups/origins": {"2024-02-01"},
    "Microsoft.Chaos/experiments": {"2024-01-01"},
    "Microsoft.Chaos/targets": {"2024-01-01"},
    "Microsoft.Chaos/targets/capabilities": {"2024-01-01"},
    "Microsoft.DocumentDB/databaseAccounts": {"2024-05-15"},
    "Microsoft.DocumentDB/databaseAccounts/sqlDatabases": {"2024-05-15"},
    "Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers": {"2024-05-15"},
    "Microsoft.DocumentDB/databaseAccounts/sqlRoleAssignments": {"2024-05-15"},
    "Microsoft.Insights/components": {"2020-02-02"},
    "Microsoft.Insights/metricAlerts": {"2018-03-01"},
    "Microsoft.Insights/scheduledQueryRules": {"2023-12-01"},
    "Microsoft.Insights/workbooks": {"2023-06-01"},
    "Microsoft.ManagedIdentity/userAssignedIdentities": {"2023-01-31"},
    "Microsoft.OperationalInsights/workspaces": {"2023-09-01"},
    "Microsoft.ServiceBus/namespaces": {"2024-01-01"},
    "Microsoft.ServiceBus/namespaces/queues": {"2024-01-01"},
    "Microsoft.Storage/storageAccounts": {"2023-05-01"},
    "Microsoft.Storage/storageAccounts/blobServices": {"2023-05-01"},
    "Microsoft.Storage/storageAccounts/blobServices/containers": {"2023-05-01"},
    "Microsoft.Web/serverfarms": {"2024-04-01"},
    "Microsoft.Web/sites": {"2024-04-01"},
    "Microsoft.Web/sites/basicPublishingCredentialsPolicies": {"2024-04-01"},
}


def api_version_problems(template: Template) -> list[str]:
    """Known types at reviewed versions; preview versions only with a comment why."""
    problems = []
    for symbol, full, node, _ in resources(template):
        where = f"{template.name}:{line(node)}: {symbol}"
        kind, _, version = full.partition("@")
        if not version:
            continue  # a nested child takes its parent's version
        if "preview" in version:
            comment = node.prev_sibling
            why = comment is not None and comment.type == "comment"
            if not (why and "preview" in text(comment).lower()):
                problems.append(
                    f"{where} uses preview API {version} without a comment saying why"
                )
                continue
        known = KNOWN_API_VERSIONS.get(kind)
        if known is None:
            problems.append(f"{where}: unknown resource type {kind}")
        elif version not in known and "preview" not in version:
            problems.append(f"{where}: {kind}@{version} has not been reviewed")
    return problems


# ---------------------------------------------------------------- lanes


def _callers(
    target: Path, templates: Iterable[Template]
) -> Iterator[tuple[Template, Node]]:
    for template in templates:
        for module in declared(template, "module").values():
            if module_target(template, module) == target.resolve():
                yield template, module


def _loop_iterable(node: Node, name: str) -> Node | None:
    """The iterable of the nearest enclosing for loop that binds `name`."""
    parent = node.parent
    while parent is not None:
        if parent.type == "for_statement" and name in _bound_names(parent):
            children = parent.children
            index = next(i for i, c in enumerate(children) if c.type == "in")
            return children[index + 1]
        parent = parent.parent
    return None


def values_of(
    template: Template, node: Node, templates: list[Template], depth: int = 0
) -> list[str]:
    """Every string a Bicep expression can take, following vars, params and loops.

    Handles what lane plumbing needs: string literals, one-variable
    interpolations, arrays of strings, variables, loop variables, and params fed
    by module calls anywhere in `templates`. Anything else yields no values.
    """
    if depth > 12:
        return []
    if node.type == "string":
        plain = string_value(node)
        if plain is not None:
            return [plain]
        return _interpolated_values(template, node, templates, depth)
    if node.type == "array":
        out: list[str] = []
        for item in node.named_children:
            out += values_of(template, item, templates, depth + 1)
        return out
    if node.type != "identifier":
        return []
    name = text(node)
    iterable = _loop_iterable(node, name)
    if iterable is not None:
        return values_of(template, iterable, templates, depth + 1)
    variable = declared(template, "var").get(name)
    if variable is not None:
        return values_of(template, variable.children[-1], templates, depth + 1)
    if name in declared(template, "param"):
        out = []
        for caller, module in _callers(template.path, templates):
            passed = properties(get(body(module), "params")).get(name)
            if passed is not None:
                out += values_of(caller, passed, templates, depth + 1)
        return out
    return []


def _interpolated_values(
    template: Template, node: Node, templates: list[Template], depth: int
) -> list[str]:
    results = [""]
    for child in node.children:
        if child.type == "string_content":
            results = [r + text(child) for r in results]
        elif child.type == "interpolation":
            options = values_of(template, child.named_children[0], templates, depth + 1)
            results = [r + o for r in results for o in options]
    return results


def lane_problems(templates: list[Template]) -> list[str]:
    """Every lane has its queue jobs-<lane> and an app told DURALANE_LANE=<lane>."""
    queues: set[str] = set()
    app_lanes: set[str] = set()
    for template in templates:
        for _, full, node, is_existing in resources(template):
            kind = resource_type(full)
            if kind == "Microsoft.ServiceBus/namespaces/queues" and not is_existing:
                name = get(body(node), "name")
                if name is not None:
                    queues |= set(values_of(template, name, templates))
            if kind == "Microsoft.Web/sites" and not is_existing:
                for setting in walk(template.root):
                    if setting.type != "object_property":
                        continue
                    if text(setting.named_children[0]) == "DURALANE_LANE":
                        value = setting.named_children[-1]
                        app_lanes |= set(values_of(template, value, templates))
    problems = []
    for lane in LANES:
        if f"jobs-{lane}" not in queues:
            problems.append(f"no Service Bus queue jobs-{lane} is declared")
        if lane not in app_lanes:
            problems.append(f"no Function App has DURALANE_LANE={lane}")
    return problems


# ---------------------------------------------------------------- parameter files


def _main_params(main: Template) -> dict[str, Node]:
    return declared(main, "param")


def _check_param_names(where: str, given: set[str], main: Template) -> list[str]:
    params = _main_params(main)
    problems = [
        f"{where}: sets {name!r}, not a param of {main.name}"
        for name in sorted(given - params.keys())
    ]
    problems += [
        f"{where}: does not set required param {name!r}"
        for name, node in params.items()
        if name not in given and not _has_default(node)
    ]
    return problems


_USING = re.compile(r"^using\s+'([^']+)'", re.M)
_PARAM_LINE = re.compile(r"^param\s+(\w+)\s*=", re.M)


def bicepparam_problems(path: Path, source: str | None = None) -> list[str]:
    """A .bicepparam names an existing template and sets only, and all, its params.

    tree-sitter-bicep does not parse .bicepparam files, so this reads the two
    statement forms they use, `using '<file>'` and `param <name> = <value>`.
    """
    source = path.read_text() if source is None else source
    where = path.name
    using = _USING.findall(source)
    if len(using) != 1:
        return [f"{where}: needs exactly one using statement"]
    main_path = (path.parent / using[0]).resolve()
    if not main_path.is_file():
        return [f"{where}: using {using[0]!r}, which does not exist"]
    return _check_param_names(where, set(_PARAM_LINE.findall(source)), load(main_path))


def parameters_json_problems(path: Path, main: Template) -> list[str]:
    """azd's main.parameters.json sets only, and all, of main.bicep's params."""
    document = json.loads(path.read_text())
    return _check_param_names(path.name, set(document.get("parameters", {})), main)


# ---------------------------------------------------------------- log names


def emitted_names(
    events_py: Path = REPO / "duralane" / "events.py",
) -> tuple[set[str], set[str]]:
    """(event names, attribute keys) that duralane/events.py defines."""
    events: set[str] = set()
    attributes: set[str] = set()
    for node in ast.parse(events_py.read_text()).body:
        if not isinstance(node, ast.Assign) or not isinstance(node.value, ast.Constant):
            continue
        for target in node.targets:
            if isinstance(target, ast.Name) and isinstance(node.value.value, str):
                bucket = attributes if target.id.startswith("ATTR_") else events
                bucket.add(node.value.value)
    return events, attributes


_EVENT = re.compile(r"(?<![/\w.])duralane\.[a-z_]+(?:\.[a-z_]+)+")
# A customDimensions attribute a Kusto query reads, in dot or bracket form.
ATTRIBUTE_READ = re.compile(
    r"customDimensions(?:\.([A-Za-z_]\w*)|\[\s*[\"']([^\"']+)[\"']\s*\])"
)


def log_name_problems(where: str, query: str) -> list[str]:
    """Every duralane.* event and customDimensions key a query reads is emitted."""
    events, attributes = emitted_names()
    problems = [
        f"{where}: event {name!r} is not defined in duralane/events.py"
        for name in sorted(set(_EVENT.findall(query)) - events)
    ]
    used = {a or b for a, b in ATTRIBUTE_READ.findall(query)}
    problems += [
        f"{where}: attribute customDimensions.{name} is not defined in "
        "duralane/events.py"
        for name in sorted(used - attributes)
    ]
    return problems


def alert_queries(template: Template) -> list[tuple[str, str]]:
    """(where, Kusto text) of every `query:` string: the template's log alert rules."""
    found = []
    for node in walk(template.root):
        if node.type != "object_property" or len(node.named_children) < 2:
            continue
        key, value = node.named_children[0], node.named_children[-1]
        if text(key) == "query" and value.type == "string":
            found.append((f"{template.name}:{line(node)}", text(value)))
    return found


# ---------------------------------------------------------------- expressions


def edited(
    templates: Iterable[Template], name: str, old: str, new: str
) -> list[Template]:
    """The templates with one edited in memory: a seeded fault across files."""
    result = []
    for template in templates:
        if template.name == name:
            source = template.source.decode()
            assert old in source, f"{old!r} not in {name}"
            template = Template(template.path, source.replace(old, new).encode())
        result.append(template)
    return result


def mentions(
    template: Template, node: Node | None, seen: set[str] | None = None
) -> set[str]:
    """Names an expression refers to, and those of every variable it reads."""
    seen = set() if seen is None else seen
    names: set[str] = set()
    if node is None:
        return names
    variables = declared(template, "var")
    for child in walk(node):
        if child.type != "identifier" or _is_binding_or_key(child):
            continue
        name = text(child)
        names.add(name)
        if name in variables and name not in seen:
            seen.add(name)
            names |= mentions(template, variables[name].children[-1], seen)
    return names


def resolve(
    template: Template, node: Node | None, bound: dict[str, Node] | None = None
) -> Node | None:
    """The literal an expression stands for, through variables and loop items.

    `bound` maps loop variables to the array items they take, so `rule.query`
    inside `[for rule in logRules: ...]` resolves to one item's query.
    Anything else (a call, a parameter) is returned as it is.
    """
    bound = bound or {}
    for _ in range(16):
        if node is None:
            return None
        if node.type == "parenthesized_expression":
            node = node.named_children[0]
        elif node.type == "identifier" and text(node) in bound:
            node = bound[text(node)]
        elif node.type == "identifier" and text(node) in declared(template, "var"):
            node = declared(template, "var")[text(node)].children[-1]
        elif node.type == "member_expression":
            base = resolve(template, node.children[0], bound)
            if base is None or base.type != "object":
                return node
            node = properties(base).get(text(node.children[-1]))
        else:
            return node
    return node


def loop_of(declaration: Node) -> Node | None:
    """The for loop a resource or module declaration deploys through, if any."""
    value = declaration.children[-1]
    while value.type == "if_statement":
        value = value.named_children[-1]
    return value if value.type == "for_statement" else None


def loop_parts(loop: Node) -> tuple[str, str | None, Node]:
    """(item variable, index variable or None, iterable) of a for loop."""
    children = loop.children
    binder = children[children.index(next(c for c in children if c.type == "for")) + 1]
    if binder.type == "for_loop_parameters":
        names = [text(c) for c in binder.named_children]
        item, index = names[0], names[1] if len(names) > 1 else None
    else:
        item, index = text(binder), None
    iterable = children[next(i for i, c in enumerate(children) if c.type == "in") + 1]
    return item, index, iterable


def branches(template: Template, node: Node | None) -> list[Node]:
    """Each literal an expression can be: both sides of every ternary, resolved."""
    node = resolve(template, node)
    if node is None:
        return []
    if node.type == "ternary_expression":
        _, yes, no = node.named_children
        return branches(template, yes) + branches(template, no)
    return [node]


# ---------------------------------------------------------------- alerts

_ALERT_TYPES = {
    "Microsoft.Insights/scheduledQueryRules",
    "Microsoft.Insights/metricAlerts",
}
_FAILED_REQUESTS = re.compile(r"\brequests\b.*\bsuccess\s*==\s*false\b", re.S)


@dataclass
class AlertRule:
    """One alert rule; a resource looping over a list of rules makes one per item."""

    label: str
    line: int
    query: str
    metric: str
    actions: Node | None
    loop: Node | None


def alert_rules(template: Template) -> list[AlertRule]:
    """Every metric and log alert rule a template declares, loop items expanded."""
    rules = []
    for symbol, full, node, is_existing in resources(template):
        if resource_type(full) not in _ALERT_TYPES or is_existing:
            continue
        loop = loop_of(node)
        items: list[dict[str, Node]] = [{}]
        if loop is not None:
            item, _, iterable = loop_parts(loop)
            listed = resolve(template, iterable)
            if listed is not None and listed.type == "array":
                items = [{item: entry} for entry in listed.named_children]
        for bound in items:
            rules.append(_alert_rule(template, symbol, node, loop, bound))
    return rules


def _alert_rule(
    template: Template,
    symbol: str,
    node: Node,
    loop: Node | None,
    bound: dict[str, Node],
) -> AlertRule:
    criteria = resolve(template, get(body(node), "properties.criteria.allOf"), bound)
    queries, metrics = [], []
    for criterion in criteria.named_children if criteria is not None else []:
        criterion = resolve(template, criterion, bound)
        query = resolve(template, get(criterion, "query"), bound)
        if query is not None:
            queries.append(text(query))
        metric = string_value(get(criterion, "metricName"))
        if metric:
            namespace = string_value(get(criterion, "metricNamespace")) or ""
            metrics.append(f"{namespace}/{metric}")
    label = symbol
    if bound:
        item = next(iter(bound.values()))
        label = f"{symbol} {string_value(get(item, 'name')) or '?'!r}"
    return AlertRule(
        label=label,
        line=line(node),
        query="\n".join(queries),
        metric="\n".join(metrics),
        actions=resolve(template, get(body(node), "properties.actions"), bound),
        loop=loop,
    )


def _is_start_lag_per_lane(template: Template, rule: AlertRule) -> bool:
    if rule.loop is None or '"duralane.job.started"' not in rule.query:
        return False
    item, _, iterable = loop_parts(rule.loop)
    per_lane = "lanes" in mentions(template, iterable)
    return per_lane and "startLagMs" in rule.query and f"${{{item}}}" in rule.query


# The alerts an operator needs, each recognised by what it watches.
ALERT_KINDS = {
    "Service Bus dead letters": lambda t, r: (
        r.metric == "Microsoft.ServiceBus/namespaces/DeadletteredMessages"
    ),
    "jobs dead-lettered in the store": lambda t, r: (
        '"duralane.job.dead_lettered"' in r.query
    ),
    "API health check failing": lambda t, r: (
        '"duralane.healthcheck.failing"' in r.query
    ),
    "start lag per lane": _is_start_lag_per_lane,
    "function failures": lambda t, r: _FAILED_REQUESTS.search(r.query) is not None,
}


def _action_group_params(template: Template) -> set[str]:
    return {p for p in declared(template, "param") if "actiongroup" in p.lower()}


def alert_problems(templates: list[Template]) -> list[str]:
    """Each alert kind an operator needs exists and notifies the action group.

    A rule notifies it when its `actions` (or their `actionGroups`), through
    variables and ternaries, can be a list holding a param named like
    actionGroupId, and every caller of the module passes that param from an
    action-group param of its own, so main.bicep's reaches each rule.
    """
    problems = []
    alerting = [t for t in templates if alert_rules(t)]
    if not alerting:
        return ["no template declares alert rules"]
    for template in alerting:
        rules = alert_rules(template)
        for kind, matches in ALERT_KINDS.items():
            if not any(matches(template, rule) for rule in rules):
                problems.append(f"{template.name}: no alert on {kind}")
        groups = _action_group_params(template)
        for rule in rules:
            if not _notifies(template, rule.actions, groups):
                where = f"{template.name}:{rule.line}: {rule.label}"
                problems.append(f"{where} notifies no action group")
        problems += _action_group_passing_problems(template, templates, groups)
    return problems


def _notifies(template: Template, actions: Node | None, groups: set[str]) -> bool:
    """True when some branch of a rule's actions lists an action-group param."""
    if actions is not None and actions.type == "object":
        actions = get(actions, "actionGroups")
    return any(
        listed.type == "array"
        and any(mentions(template, entry) & groups for entry in listed.named_children)
        for listed in branches(template, actions)
    )


def _action_group_passing_problems(
    module: Template, templates: list[Template], groups: set[str]
) -> list[str]:
    problems = []
    for caller, declaration in _callers(module.path, templates):
        passed = properties(get(body(declaration), "params"))
        own = _action_group_params(caller)
        for group in sorted(groups):
            if not mentions(caller, passed.get(group)) & own:
                problems.append(
                    f"{caller.name}:{line(declaration)}: does not pass its action "
                    f"group on as {group}"
                )
    return problems


# ---------------------------------------------------------------- app settings


def object_entries(template: Template, node: Node | None) -> dict[str, Node]:
    """Every key an object expression can hold: unions merged, both ternary sides."""
    entries: dict[str, Node] = {}
    for branch in branches(template, node):
        if branch.type == "object":
            entries.update(properties(branch))
        elif branch.type == "call_expression" and text(branch.children[0]) == "union":
            for argument in call_arguments(branch):
                entries.update(object_entries(template, argument))
    return entries


def app_settings(template: Template, site: Node) -> dict[str, Node]:
    """A site's app settings by name, through the variables and unions building them."""
    listed = get(body(site), "properties.siteConfig.appSettings")
    if listed is not None and listed.type == "for_statement":
        _, _, iterable = loop_parts(listed)
        if iterable.type == "call_expression" and text(iterable.children[0]) == "items":
            return object_entries(template, call_arguments(iterable)[0])
    settings: dict[str, Node] = {}
    for entry in listed.named_children if listed is not None else []:
        name = string_value(get(entry, "name"))
        value = get(entry, "value")
        if name is not None and value is not None:
            settings[name] = value
    return settings


def _user_assigned_identities(template: Template, site: Node) -> set[str]:
    """Symbols of the user-assigned identities a site runs as."""
    assigned = resolve(template, get(body(site), "identity.userAssignedIdentities"))
    symbols: set[str] = set()
    if assigned is None or assigned.type != "object":
        return symbols
    for entry in assigned.named_children:
        if entry.type == "object_property" and entry.named_children:
            key = entry.named_children[0]
            symbols |= {text(n) for n in walk(key) if n.type == "identifier"}
    return symbols


def _is_client_id(template: Template, value: Node | None, identities: set[str]) -> bool:
    """True when a setting holds <identity>.properties.clientId of a site's identity."""
    value = resolve(template, value)
    if value is None or not text(value).endswith(".properties.clientId"):
        return False
    return text(value).split(".")[0] in identities


# Connections the Functions host opens from settings: each needs one of these
# identity-based ways to name its service (all of a tuple's settings).
HOST_CONNECTION_ENDPOINTS = {
    "storage": [
        ("accountName",),
        ("blobServiceUri", "queueServiceUri", "tableServiceUri"),
    ],
    "servicebus": [("fullyQualifiedNamespace",)],
}
# The app's own clients: the endpoint they read, and the key setting that
# would make them skip DefaultAzureCredential.
APP_CLIENT_SETTINGS = {
    "DURALANE_COSMOS_ENDPOINT": "DURALANE_COSMOS_KEY",
    "DURALANE_BLOB_ENDPOINT": "DURALANE_BLOB_CONNECTION_STRING",
}
_IDENTITY_DEPLOYMENT = {"UserAssignedIdentity", "SystemAssignedIdentity"}
NOT_THE_IDENTITY = "is not the clientId of the app's user-assigned identity"


def identity_setting_problems(
    template: Template,
    service_bus_connections: Iterable[str] = ("ServiceBusConnection",),
) -> list[str]:
    """Every Function App reaches storage, Service Bus and Cosmos DB by identity.

    The host's storage (AzureWebJobsStorage) and each Service Bus trigger
    connection use the identity-based forms: __accountName (or the blob, queue
    and table service URIs) or __fullyQualifiedNamespace, with __credential
    'managedidentity' and __clientId of the app's user-assigned identity, which
    the host needs to pick that identity; a bare <connection> setting would be
    a connection string. The app's own Cosmos DB and claim-check clients read an
    endpoint and sign in with DefaultAzureCredential, which AZURE_CLIENT_ID
    points at the same identity, so their key settings must be absent. A Flex
    Consumption app fetches its deployment package by identity too.
    """
    connections = {"AzureWebJobsStorage": "storage"}
    connections |= {name: "servicebus" for name in service_bus_connections}
    problems = []
    for symbol, full, node, is_existing in resources(template):
        if resource_type(full) != "Microsoft.Web/sites" or is_existing:
            continue
        where = f"{template.name}:{line(node)}: {symbol}"
        settings = app_settings(template, node)
        identities = _user_assigned_identities(template, node)
        for connection, service in connections.items():
            if connection in settings:
                problems.append(f"{where} sets {connection}, a connection string")
            forms = HOST_CONNECTION_ENDPOINTS[service]
            if not any(all(f"{connection}__{s}" in settings for s in f) for f in forms):
                wanted = " or ".join("+".join(f) for f in forms)
                problems.append(f"{where}: {connection} has no __{wanted}")
            credential = string_value(settings.get(f"{connection}__credential"))
            if credential != "managedidentity":
                problems.append(
                    f"{where}: {connection}__credential is not 'managedidentity'"
                )
            client = settings.get(f"{connection}__clientId")
            if not _is_client_id(template, client, identities):
                problems.append(f"{where}: {connection}__clientId {NOT_THE_IDENTITY}")
        for endpoint, key in APP_CLIENT_SETTINGS.items():
            if endpoint not in settings:
                problems.append(f"{where} does not set {endpoint}")
            if key in settings:
                problems.append(f"{where} sets {key}, a key")
        if not _is_client_id(template, settings.get("AZURE_CLIENT_ID"), identities):
            problems.append(f"{where}: AZURE_CLIENT_ID {NOT_THE_IDENTITY}")
        problems += _deployment_problems(template, node, where)
    return problems


def _deployment_problems(template: Template, site: Node, where: str) -> list[str]:
    config = get(body(site), "properties.functionAppConfig")
    problems = []
    for branch in branches(template, config):
        if branch.type != "object":
            continue
        kind = get(branch, "deployment.storage.authentication.type")
        if string_value(kind) not in _IDENTITY_DEPLOYMENT:
            problems.append(
                f"{where}: the deployment package is fetched with "
                f"{text(kind) or 'no authentication'}, not an identity"
            )
    return problems


# ---------------------------------------------------------------- hosting plan

FLEX = "FlexConsumption"


def param_default(param: Node) -> Node | None:
    """The default value of a param declaration, or None without one."""
    children = param.children
    for i, child in enumerate(children[:-1]):
        if child.type == "=":
            return children[i + 1]
    return None


def _is_flex_sku(template: Template, sku: Node | None) -> bool:
    sku = resolve(template, sku)
    return (
        sku is not None
        and string_value(get(sku, "name")) == "FC1"
        and string_value(get(sku, "tier")) == FLEX
    )


def _flex_sku_when_flex(template: Template, sku: Node | None) -> bool:
    """True when a plan's SKU is FC1 exactly when hostingPlan is FlexConsumption."""
    node = resolve(template, sku)
    if node is None or node.type != "ternary_expression":
        return _is_flex_sku(template, node)
    condition, when_true, _ = node.named_children
    test = text(resolve(template, condition)).replace(" ", "")
    return test == f"hostingPlan=='{FLEX}'" and _is_flex_sku(template, when_true)


def hosting_plan_problems(templates: list[Template]) -> list[str]:
    """Flex Consumption is the default plan, and no layer under main pins another.

    main.bicep's hostingPlan defaults to FlexConsumption; a module param
    hostingPlan with a default defaults to it too; every module call passes
    hostingPlan on from the caller's own param, so main's choice reaches the
    apps; and each App Service plan is FC1 on Flex Consumption exactly when
    hostingPlan is FlexConsumption.
    """
    problems = []
    for template in templates:
        param = declared(template, "param").get("hostingPlan")
        default = param_default(param) if param is not None else None
        is_main = template.path == BICEP_DIR / "main.bicep"
        if (default is not None or is_main) and string_value(default) != FLEX:
            problems.append(
                f"{template.name}: hostingPlan defaults to "
                f"{text(default) or 'nothing'}, not '{FLEX}'"
            )
        problems += _plan_passing_problems(template)
        for symbol, full, node, is_existing in resources(template):
            kind = resource_type(full)
            if kind != "Microsoft.Web/serverfarms" or is_existing:
                continue
            if not _flex_sku_when_flex(template, get(body(node), "sku")):
                problems.append(
                    f"{template.name}:{line(node)}: {symbol} is not FC1 "
                    f"({FLEX}) exactly when hostingPlan is '{FLEX}'"
                )
    return problems


def _plan_passing_problems(template: Template) -> list[str]:
    problems = []
    own = declared(template, "param")
    for name, module in declared(template, "module").items():
        target_path = module_target(template, module)
        if target_path is None or not target_path.is_file():
            continue
        if "hostingPlan" not in declared(load(target_path), "param"):
            continue
        passed = properties(get(body(module), "params")).get("hostingPlan")
        if passed is None or text(passed) != "hostingPlan" or "hostingPlan" not in own:
            problems.append(
                f"{template.name}:{line(module)}: module {name!r} passes hostingPlan "
                f"as {text(passed) or 'nothing'}, not its own hostingPlan param"
            )
    return problems


# ---------------------------------------------------------------- regions

PRIMARY = "location"
SECONDARY = "secondaryLocation"


@dataclass
class Stamp:
    """One stamp main.bicep deploys: how the template refers to it, and its region."""

    ref: str
    regions: set[str]


def _modules_of(template: Template, file_name: str) -> dict[str, Node]:
    """The module declarations of a template that deploy bicep/modules/<file_name>."""
    target = (BICEP_DIR / "modules" / file_name).resolve()
    return {
        name: node
        for name, node in declared(template, "module").items()
        if module_target(template, node) == target
    }


def template_at(templates: list[Template], path: Path) -> Template:
    """The template at `path` as the (possibly edited) list has it."""
    return next((t for t in templates if t.path == path), None) or load(path)


def _passed(module: Node) -> dict[str, Node]:
    return properties(get(body(module), "params"))


def base_ref(node: Node) -> str:
    """What an expression reads its member from: 'stamps[0]' in stamps[0].outputs.x."""
    while node.type == "member_expression":
        node = node.children[0]
    return text(node)


def stamps(main: Template) -> list[Stamp]:
    """Each stamp main.bicep deploys, one per loop item or per declaration."""
    found = []
    for name, module in _modules_of(main, "stamp.bicep").items():
        regions = {PRIMARY, SECONDARY}
        loop = loop_of(module)
        if loop is None:
            location = _passed(module).get("location")
            found.append(Stamp(name, mentions(main, location) & regions))
            continue
        _, _, iterable = loop_parts(loop)
        per_index: dict[int, set[str]] = {}
        for listed in branches(main, iterable):
            if listed.type != "array":
                continue
            for i, element in enumerate(listed.named_children):
                per_index.setdefault(i, set()).update(mentions(main, element) & regions)
        found += [Stamp(f"{name}[{i}]", r) for i, r in sorted(per_index.items())]
    return found


def _stamp_loop_problems(main: Template) -> list[str]:
    """A looped stamp must take its region from the loop item."""
    problems = []
    for name, module in _modules_of(main, "stamp.bicep").items():
        loop = loop_of(module)
        if loop is None:
            continue
        item, _, _ = loop_parts(loop)
        if item not in mentions(main, _passed(module).get("location")):
            problems.append(
                f"{main.name}:{line(module)}: module {name!r} loops over regions "
                f"but its location is not the loop's {item}"
            )
    return problems


def _covered_stamps(main: Template, value: Node | None) -> set[str]:
    """Refs of the stamps an expression reads, one list entry per stamp."""
    value = resolve(main, value)
    if value is None:
        return set()
    if value.type == "array":
        # Read from the text: tree-sitter-bicep splits `stamps[0].x` inside an
        # array literal into the two items `stamps` and `[0].x`.
        refs = set()
        for name in _modules_of(main, "stamp.bicep"):
            for index in re.findall(rf"\b{name}\b(\[\s*\d+\s*\])?", text(value)):
                refs.add(name + index.replace(" ", ""))
        return refs
    if value.type != "for_statement":
        return set()
    item, index, iterable = loop_parts(value)
    counted = iterable
    if iterable.type == "call_expression" and text(iterable.children[0]) == "range":
        length = call_arguments(iterable)[-1]
        if length.type == "call_expression" and text(length.children[0]) == "length":
            counted = call_arguments(length)[0]
    body_ref = base_ref(value.named_children[-1])
    covered = set()
    for name, module in _modules_of(main, "stamp.bicep").items():
        loop = loop_of(module)
        if loop is None or text(loop_parts(loop)[2]) != text(counted):
            continue
        if body_ref in {f"{name}[{item}]", f"{name}[{index}]"}:
            covered |= {s.ref for s in stamps(main) if s.ref.startswith(f"{name}[")}
    return covered


def multi_region_problems(templates: list[Template]) -> list[str]:
    """With secondaryLocation set, a second stamp, Front Door and Cosmos DB follow.

    Structural, as no compiler runs here: a stamp module is deployed per
    region (a loop over a list holding location and secondaryLocation, or one
    declaration each); Front Door's origins loop over the host names it is
    given, and main.bicep gives one per stamp; the Cosmos DB account's
    locations loop over the regions it is given, and main.bicep's include
    secondaryLocation, so the second region is a replica.
    """
    main = template_at(templates, BICEP_DIR / "main.bicep")
    problems = _stamp_loop_problems(main)
    deployed = stamps(main)
    for region in (PRIMARY, SECONDARY):
        if not any(region in s.regions for s in deployed):
            problems.append(f"{main.name}: no stamp is deployed in {region}")
    problems += _front_door_problems(main, templates, deployed)
    problems += _cosmos_region_problems(main, templates)
    return problems


def _looped_param(
    module: Template, kind: str, listed: Callable[[Node], Node | None], per_item: str
) -> tuple[str | None, list[str]]:
    """The one param a resource of `kind` loops over, setting `per_item` per item."""
    for symbol, full, node, is_existing in resources(module):
        if resource_type(full) != kind or is_existing:
            continue
        loop = listed(node)
        if loop is None or loop.type != "for_statement":
            where = f"{module.name}:{line(node)}: {symbol}"
            return None, [f"{where} is not declared once per item of a param"]
        item, index, iterable = loop_parts(loop)
        params = mentions(module, iterable) & declared(module, "param").keys()
        made = mentions(module, get(body_of(loop), per_item))
        if len(params) != 1 or not {item, index} & made:
            return None, [
                f"{module.name}:{line(node)}: {symbol} does not set {per_item} from "
                "each item of a param"
            ]
        return params.pop(), []
    return None, [f"{module.name}: declares no {kind}"]


def body_of(loop: Node) -> Node | None:
    """The object a for loop makes per item."""
    made = loop.named_children[-1]
    return made if made.type == "object" else None


def _front_door_problems(
    main: Template, templates: list[Template], deployed: list[Stamp]
) -> list[str]:
    front_doors = _modules_of(main, "frontdoor.bicep")
    if not front_doors:
        return [f"{main.name}: deploys no Front Door"]
    module = template_at(templates, BICEP_DIR / "modules" / "frontdoor.bicep")
    param, problems = _looped_param(
        module,
        "Microsoft.Cdn/profiles/originGroups/origins",
        loop_of,
        "properties.hostName",
    )
    if param is None:
        return problems
    for name, declaration in front_doors.items():
        covered = _covered_stamps(main, _passed(declaration).get(param))
        for stamp in deployed:
            if stamp.ref not in covered:
                regions = ", ".join(sorted(stamp.regions))
                problems.append(
                    f"{main.name}:{line(declaration)}: module {name!r} gives Front "
                    f"Door no origin for {stamp.ref} ({regions})"
                )
    return problems


def _cosmos_region_problems(main: Template, templates: list[Template]) -> list[str]:
    accounts = _modules_of(main, "cosmos.bicep")
    if not accounts:
        return [f"{main.name}: deploys no Cosmos DB account"]
    module = template_at(templates, BICEP_DIR / "modules" / "cosmos.bicep")
    param, problems = _looped_param(
        module,
        "Microsoft.DocumentDB/databaseAccounts",
        lambda node: get(body(node), "properties.locations"),
        "locationName",
    )
    if param is None:
        return problems
    for name, declaration in accounts.items():
        regions = mentions(main, _passed(declaration).get(param))
        for region in (PRIMARY, SECONDARY):
            if region not in regions:
                problems.append(
                    f"{main.name}:{line(declaration)}: module {name!r} leaves "
                    f"{region} out of the Cosmos DB account's locations"
                )
    return problems


# ---------------------------------------------------------------- chaos


def chaos_target_problems(templates: list[Template]) -> list[str]:
    """The Chaos experiment stops the primary region's apps, the ones to fail over from.

    main.bicep must pass the param the experiment's targets loop over from an
    output of the primary stamp (the one deployed in location only), and that
    output must list the stamp's Function Apps.
    """
    main = template_at(templates, BICEP_DIR / "main.bicep")
    experiments = _modules_of(main, "chaos.bicep")
    if not experiments:
        return [f"{main.name}: deploys no Chaos Studio experiment"]
    chaos = template_at(templates, BICEP_DIR / "modules" / "chaos.bicep")
    param, problems = _looped_param(chaos, "Microsoft.Chaos/targets", loop_of, "scope")
    if param is None:
        return problems
    primary = {s.ref for s in stamps(main) if s.regions == {PRIMARY}}
    stamp = template_at(templates, BICEP_DIR / "modules" / "stamp.bicep")
    apps = set(_modules_of(stamp, "functionapp.bicep"))
    for name, declaration in experiments.items():
        where = f"{main.name}:{line(declaration)}: module {name!r}"
        value = _passed(declaration).get(param)
        read = base_ref(value) if value is not None else "nothing"
        if read not in primary:
            problems.append(f"{where} targets {read}, not the primary stamp")
            continue
        output = text(value.children[-1]) if value is not None else ""
        listed = declared(stamp, "output").get(output)
        if listed is None or not mentions(stamp, listed) & apps:
            problems.append(
                f"{where} targets {read}.outputs.{output}, which lists no apps"
            )
    return problems
