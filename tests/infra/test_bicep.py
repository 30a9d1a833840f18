"""The Bicep templates in infra/ against the code they deploy, parsed with pycep-parser (the
parser checkov uses): every setting the app cannot run without in Azure is set by the Function
App's app settings, every name set there is one the app or the platform reads, settings marked
secret arrive as Key Vault references, every Cosmos container the code declares exists with the
same partition key and TTL, and nothing secret is a parameter default or an output.

What only Azure can validate (the deployment itself, role propagation, Event Grid's webhook
handshake) is listed in docs/multi-region.md; `make infra-check` runs checkov's policies.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from pycep import BicepParser

from shared.config import SETTINGS, load_settings
from shared.services import cosmos_containers

INFRA = Path(__file__).resolve().parents[2] / "infra"
BICEP_FILES = sorted(INFRA.rglob("*.bicep"))
BY_ENV = {setting.env: setting for setting in SETTINGS}

# Settings whose default is not what Azure needs: in Azure each must come from the template.
# (Required settings are added to this list below, from SETTINGS itself.)
NEEDED_IN_AZURE = {
    "AzureWebJobsStorage__blobServiceUri": "identity-based storage: no connection string in Azure",
    "AZURE_CLIENT_ID": "the user-assigned identity (else DefaultAzureCredential finds none)",
    "KEY_VAULT_URL": "secrets come from Key Vault",
    "APPLICATIONINSIGHTS_CONNECTION_STRING": "telemetry goes to Azure Monitor",
    "UPLOADS_TRIGGER_SOURCE": "Flex Consumption blob triggers use Event Grid",
    "DOCGATE_CREATE_RESOURCES": "the template creates containers (false, not the local true)",
    "COSMOS_EMULATOR": "no emulator workarounds in Azure",
    "RETRIEVAL_MODE": "Cosmos VectorDistance (the template creates the vector policy)",
    "CACHE_TTL_SECONDS": "must equal the cache container's TTL, one parameter for both",
    "DOCUMENT_INTELLIGENCE_ENDPOINT": "unset means local OCR, not what Azure runs",
    "VISION_ENDPOINT": "unset means no figure descriptions",
    "AZURE_OPENAI_EMBEDDING_ENDPOINT": "unset means the local MiniLM embedder",
    "AZURE_OPENAI_EMBEDDING_DIMENSIONS": "must equal the chunks vector policy's dimensions",
    "LLM_REGIONS": "unset means the offline extractive answerer",
    "AUTH_CLIENT_ID": "Entra ID tokens need the API's client id",
    "AUTH_CLIENT_ADDRESS_HEADER": "behind Front Door the peer is Front Door: X-Azure-SocketIP",
}
# App settings the platform (Functions host, Flex Consumption) reads, not shared.config.
PLATFORM = {
    "PYTHON_ENABLE_INIT_INDEXING",
    "AzureWebJobsStorage__queueServiceUri",
    "AzureWebJobsStorage__tableServiceUri",
    "AzureWebJobsStorage__credential",
    "AzureWebJobsStorage__clientId",
    "AzureFunctionsJobHost__extensions__durableTask__hubName",
}
KEY_VAULT_REFERENCE = re.compile(r"^@Microsoft\.KeyVault\(SecretUri=\$\{\w+\}\)$")
SECRETISH = re.compile(r"(key|secret|password|token|connection_?string)", re.IGNORECASE)


@cache
def parser() -> BicepParser:
    """One parser: building pycep's grammar takes seconds."""
    return BicepParser()


@cache
def parsed(path: Path) -> dict[str, Any]:
    """A Bicep file as pycep-parser's JSON (parameters, variables, resources, outputs)."""
    return parser().parse(file_path=path)


def module(name: str) -> dict[str, Any]:
    return parsed(INFRA / "modules" / f"{name}.bicep")


def app_settings() -> dict[str, Any]:
    return module("function-app")["variables"]["appSettings"]["value"]


def walk(node: Any) -> Any:
    """Every dict and string inside a parsed template, depth first."""
    yield node
    if isinstance(node, dict):
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)


@pytest.mark.parametrize("path", BICEP_FILES, ids=lambda path: path.name)
def test_every_template_parses(path: Path) -> None:
    template = parsed(path)
    assert template["resources"] or template["outputs"], f"{path.name} declares nothing"


def test_infra_has_main_and_one_module_per_concern() -> None:
    names = {path.stem for path in (INFRA / "modules").glob("*.bicep")}
    assert {"identity", "storage", "cosmos", "keyvault", "monitoring", "function-app"} <= names
    assert {"eventgrid", "frontdoor", "openai", "ai-services"} <= names
    used = set(re.findall(r"'modules/([\w-]+)\.bicep'", (INFRA / "main.bicep").read_text()))
    assert used == names, f"modules not used by main.bicep: {names - used}"


def test_every_setting_azure_needs_is_set_by_the_template() -> None:
    required = {setting.env for setting in SETTINGS if setting.required}
    needed = required | set(NEEDED_IN_AZURE)
    unknown = set(NEEDED_IN_AZURE) - set(BY_ENV)
    assert not unknown, f"NEEDED_IN_AZURE names settings the code does not declare: {unknown}"
    missing = needed - set(app_settings())
    assert not missing, f"app settings missing from infra/modules/function-app.bicep: {missing}"


def test_every_app_setting_is_one_the_app_or_the_platform_reads() -> None:
    unknown = set(app_settings()) - set(BY_ENV) - PLATFORM
    assert not unknown, f"app settings nothing reads (typo or removed setting?): {unknown}"


def test_the_template_never_sets_a_local_only_or_secret_value_in_plain() -> None:
    settings = app_settings()
    for env, value in settings.items():
        setting = BY_ENV.get(env)
        if setting is not None and setting.secret:
            assert isinstance(value, str) and KEY_VAULT_REFERENCE.match(value), (
                f"{env} is secret: it must be a Key Vault reference, not {value!r}"
            )
    # Keys and local connection strings have no place in Azure: the identity is used.
    for env in ("AzureWebJobsStorage", "COSMOS_KEY", "AZURE_OPENAI_KEY", "LLM_API_KEY"):
        assert env not in settings
    assert settings["AzureWebJobsStorage__credential"] == "managedidentity"


def test_fixed_app_settings_parse_as_the_app_would_read_them() -> None:
    """The literal values (not the parameter references) are valid for the code's parsers."""
    params = set(module("function-app")["parameters"])
    literals = {
        env: value
        for env, value in app_settings().items()
        if env in BY_ENV and isinstance(value, str) and value not in params and "${" not in value
    }
    assert literals["UPLOADS_TRIGGER_SOURCE"] == "EventGrid"
    environ = {**literals, "COSMOS_ENDPOINT": "https://x.documents.azure.com:443/"}
    environ["AzureWebJobsStorage__blobServiceUri"] = "https://x.blob.core.windows.net"
    settings = load_settings(environ)
    assert settings.cosmos.emulator is False
    assert settings.provisioning.create_resources is False
    assert settings.chat.retrieval_mode == "cosmos"


def test_every_cosmos_container_the_code_declares_exists_with_its_partition_key_and_ttl() -> None:
    cosmos = module("cosmos")
    declared = {entry["name"]: entry for entry in cosmos["variables"]["containers"]["value"]}
    code = {spec.name: spec for spec in cosmos_containers(load_settings(_minimal_env()))}
    assert set(declared) == set(code), (
        f"only in code: {set(code) - set(declared)}; only in Bicep: {set(declared) - set(code)}"
    )
    for name, spec in code.items():
        entry = declared[name]
        assert entry["partitionKey"] == spec.partition_key_path, name
        if name == "semantic_cache":  # the TTL is a setting: one parameter feeds both
            assert entry["ttl"] == "cacheTtlSeconds"
        else:
            assert entry["ttl"] == spec.default_ttl, name


def test_the_cache_ttl_and_vector_size_come_from_one_parameter_each() -> None:
    settings = app_settings()
    assert settings["CACHE_TTL_SECONDS"]["function"]["parameters"] == {
        "value_to_convert": "cacheTtlSeconds"
    }
    main = parsed(INFRA / "main.bicep")
    default_ttl = main["parameters"]["cacheTtlSeconds"]["default"]
    assert str(default_ttl) == BY_ENV["CACHE_TTL_SECONDS"].default
    cosmos_call = _module_params(main, "cosmos")
    app_call = _module_params(main, "apps")
    assert cosmos_call["cacheTtlSeconds"] == app_call["cacheTtlSeconds"] == "cacheTtlSeconds"
    assert cosmos_call["embeddingDimensions"] == app_call["embeddingDimensions"]


def test_vector_search_has_its_policy_and_index_on_chunks() -> None:
    cosmos = module("cosmos")
    (chunks,) = [c for c in cosmos["variables"]["containers"]["value"] if c["vector"]]
    assert chunks["name"] == "chunks"
    text = (INFRA / "modules" / "cosmos.bicep").read_text()
    assert "EnableNoSQLVectorSearch" in text and "path: '/embedding'" in text


def test_every_container_resolves_conflicts_deliberately() -> None:
    policy = module("cosmos")["variables"]["lastWriterWins"]["value"]
    assert policy == {"mode": "LastWriterWins", "conflictResolutionPath": "/_ts"}
    assert (
        "conflictResolutionPolicy: lastWriterWins"
        in (INFRA / "modules" / "cosmos.bicep").read_text()
    )


def test_keys_are_off_wherever_the_service_allows() -> None:
    text = {path.stem: path.read_text() for path in (INFRA / "modules").glob("*.bicep")}
    assert "    allowSharedKeyAccess: false\n" in text["storage"]
    assert "    allowSharedKeyAccess: false\n" in text["runtime-storage"]
    assert "disableLocalAuth: true" in text["cosmos"]
    assert "disableLocalAuth: true" in text["openai"]
    assert "disableLocalAuth: true" in text["ai-services"]
    assert "enableRbacAuthorization: true" in text["keyvault"]


@pytest.mark.parametrize("path", BICEP_FILES, ids=lambda path: path.name)
def test_nothing_secret_is_an_output_or_a_parameter_default(path: Path) -> None:
    template = parsed(path)
    for name, output in template["outputs"].items():
        value = json.dumps(output.get("value"))
        assert "listKeys" not in value and "listConnectionStrings" not in value, name
        assert "ConnectionString" not in value, f"{path.name} output {name} exposes a secret"
        assert not SECRETISH.search(name) or name.lower().endswith(("uri", "name", "id")), name
    for name, parameter in template["parameters"].items():
        decorators = json.dumps(parameter.get("decorators"))
        if "secure" in decorators or SECRETISH.search(name):
            assert parameter.get("default") in (None, ""), f"{path.name}: {name} has a default"


def test_list_keys_feeds_only_the_event_grid_webhook() -> None:
    users = [path.name for path in BICEP_FILES if "listKeys(" in path.read_text()]
    assert users == ["eventgrid.bicep"]
    assert "systemKeys.blobs_extension" in (INFRA / "modules" / "eventgrid.bicep").read_text()


def test_the_event_grid_subscription_targets_the_blob_trigger_that_exists() -> None:
    source = (Path(__file__).resolve().parents[2] / "function_app.py").read_text()
    params = module("eventgrid")["parameters"]
    function_name = params["functionName"]["default"]
    assert re.search(rf"async def {function_name}\(blob", source), function_name
    assert "source=func.BlobSource(settings.storage.uploads_trigger_source)" in source


def _module_params(template: dict[str, Any], name: str) -> dict[str, Any]:
    """The params object of module `name` in a parsed template (a loop's body when looped)."""
    config = template["modules"][name]["config"]
    body = config["config"] if "loop_type" in config else config
    return body["params"]


def _minimal_env() -> dict[str, str]:
    return {"COSMOS_ENDPOINT": "https://x.documents.azure.com:443/", "AzureWebJobsStorage": "x"}
