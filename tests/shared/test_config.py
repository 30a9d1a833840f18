"""Settings: every problem named at once, documented defaults, secrets never shown."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest

from shared import config
from shared.config import SETTINGS, SettingsError, load_settings, parsers

ROOT = Path(__file__).resolve().parents[2]
CANARY = "canary-7f3a9c-do-not-log"

MINIMAL = {
    "COSMOS_ENDPOINT": "https://cosmos.example.com:443/",
    "AzureWebJobsStorage": "UseDevelopmentStorage=true",
}


def settings_error(environ: dict[str, str]) -> str:
    with pytest.raises(SettingsError) as raised:
        load_settings(environ)
    return str(raised.value)


def test_minimal_environment_loads_with_documented_defaults() -> None:
    settings = load_settings(MINIMAL)
    assert settings.cosmos.endpoint == MINIMAL["COSMOS_ENDPOINT"]
    assert settings.storage.connection_string == "UseDevelopmentStorage=true"
    assert settings.storage.uploads_container == "uploads"
    assert settings.cosmos.database == "docgate"
    assert settings.cosmos.emulator is False
    assert settings.provisioning.create_resources is False
    assert settings.telemetry.service_name == "docgate"
    assert settings.health.timeout_seconds == 3.0
    assert settings.telemetry.log_level == "INFO"
    assert settings.storage.blob_service_uri is None
    assert settings.cosmos.key is None
    assert settings.identity.client_id is None
    assert settings.telemetry.applicationinsights_connection_string is None
    assert settings.telemetry.otlp_endpoint is None


def test_every_declared_default_is_valid_and_applied() -> None:
    settings = load_settings(MINIMAL)
    for setting in SETTINGS:
        if setting.default is not None:
            assert setting.read(settings) == setting.parse(setting.default), setting.env


def test_blank_values_count_as_unset() -> None:
    # local.settings.sample.json ships optional settings as "": they must mean "use the default".
    settings = load_settings({**MINIMAL, "UPLOADS_CONTAINER": "  ", "AZURE_CLIENT_ID": ""})
    assert settings.storage.uploads_container == "uploads"
    assert settings.identity.client_id is None


def test_parsed_values() -> None:
    settings = load_settings(
        {
            **MINIMAL,
            "COSMOS_EMULATOR": " Yes ",
            "DOCGATE_CREATE_RESOURCES": "0",
            "HEALTH_TIMEOUT_SECONDS": "0.5",
            "LOG_LEVEL": "debug",
            "UPLOADS_CONTAINER": "team-docs-2",
        }
    )
    assert settings.cosmos.emulator is True
    assert settings.provisioning.create_resources is False
    assert settings.health.timeout_seconds == 0.5
    assert settings.telemetry.log_level == "DEBUG"
    assert settings.storage.uploads_container == "team-docs-2"


def test_identity_based_storage_is_enough() -> None:
    environ = {
        "COSMOS_ENDPOINT": MINIMAL["COSMOS_ENDPOINT"],
        "AzureWebJobsStorage__blobServiceUri": "https://acct.blob.core.windows.net",
    }
    settings = load_settings(environ)
    assert settings.storage.connection_string is None
    assert settings.storage.blob_service_uri == "https://acct.blob.core.windows.net"


def test_missing_cosmos_endpoint_is_named() -> None:
    message = settings_error({"AzureWebJobsStorage": "UseDevelopmentStorage=true"})
    assert "COSMOS_ENDPOINT is required" in message


def test_missing_storage_names_both_alternatives() -> None:
    message = settings_error({"COSMOS_ENDPOINT": MINIMAL["COSMOS_ENDPOINT"]})
    assert "AzureWebJobsStorage is required" in message
    assert "AzureWebJobsStorage__blobServiceUri" in message


def test_nothing_set_names_both_required_settings() -> None:
    message = settings_error({})
    assert "COSMOS_ENDPOINT is required" in message
    assert "AzureWebJobsStorage is required" in message


@pytest.mark.parametrize(
    ("env", "value"),
    [
        ("COSMOS_ENDPOINT", "cosmos.example.com"),
        ("COSMOS_ENDPOINT", "ftp://cosmos.example.com"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://"),
        ("AzureWebJobsStorage__blobServiceUri", "acct.blob.core.windows.net"),
        ("COSMOS_EMULATOR", "maybe"),
        ("DOCGATE_CREATE_RESOURCES", "2"),
        ("HEALTH_TIMEOUT_SECONDS", "soon"),
        ("HEALTH_TIMEOUT_SECONDS", "0"),
        ("HEALTH_TIMEOUT_SECONDS", "-1"),
        ("HEALTH_TIMEOUT_SECONDS", "nan"),
        ("HEALTH_TIMEOUT_SECONDS", "inf"),
        ("UPLOADS_CONTAINER", "Uploads"),
        ("UPLOADS_CONTAINER", "up"),
        ("UPLOADS_CONTAINER", "up--loads"),
        ("UPLOADS_CONTAINER", "-uploads"),
        ("UPLOADS_CONTAINER", "uploads_1"),
        ("UPLOADS_CONTAINER", "a" * 64),
        ("LOG_LEVEL", "TRACE"),
    ],
)
def test_invalid_value_is_named_with_its_value(env: str, value: str) -> None:
    message = settings_error({**MINIMAL, env: value})
    assert f"{env}={value!r} is invalid" in message


def test_every_problem_is_reported_at_once() -> None:
    message = settings_error(
        {
            "AzureWebJobsStorage": "UseDevelopmentStorage=true",
            "COSMOS_EMULATOR": "maybe",
            "HEALTH_TIMEOUT_SECONDS": "soon",
            "UPLOADS_CONTAINER": "UP",
            "LOG_LEVEL": "LOUD",
        }
    )
    for env in (
        "COSMOS_ENDPOINT",
        "COSMOS_EMULATOR",
        "HEALTH_TIMEOUT_SECONDS",
        "UPLOADS_CONTAINER",
        "LOG_LEVEL",
    ):
        assert env in message


def test_secret_names_are_the_credentials() -> None:
    assert {s.env for s in SETTINGS if s.secret} == {
        "AzureWebJobsStorage",
        "COSMOS_KEY",
        "COSMOS_PROXY",  # a proxy URL may carry user:password
        "APPLICATIONINSIGHTS_CONNECTION_STRING",
        "DOCUMENT_INTELLIGENCE_KEY",
        "VISION_KEY",
        "AZURE_OPENAI_KEY",
        "LLM_API_KEY",
        "DOCGATE_API_KEYS",
        "CONTENT_SAFETY_KEY",
    }


def test_repr_masks_every_secret() -> None:
    settings = load_settings(
        {
            **MINIMAL,
            "AzureWebJobsStorage": f"AccountKey={CANARY}-storage",
            "COSMOS_KEY": f"{CANARY}-cosmos",
            "APPLICATIONINSIGHTS_CONNECTION_STRING": f"InstrumentationKey={CANARY}-ai",
        }
    )
    shown = repr(settings)
    assert CANARY not in shown
    assert "cosmos.key='***'" in shown
    assert "storage.connection_string='***'" in shown
    assert "telemetry.applicationinsights_connection_string='***'" in shown
    assert "cosmos.endpoint='https://cosmos.example.com:443/'" in shown  # non-secrets are shown
    assert CANARY not in str(settings)


def test_invalid_secret_value_is_never_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    # No shipped secret has a validating parser, so give COSMOS_KEY one whose error message
    # quotes the value (float() does) and check the masking still holds.
    validated = tuple(
        dataclasses.replace(s, parse=parsers.positive_number) if s.env == "COSMOS_KEY" else s
        for s in SETTINGS
    )
    monkeypatch.setattr(config, "SETTINGS", validated)
    message = settings_error({**MINIMAL, "COSMOS_KEY": CANARY})
    assert "COSMOS_KEY=*** is invalid" in message
    assert CANARY not in message


def _sample_names() -> set[str]:
    sample = json.loads((ROOT / "local.settings.sample.json").read_text(encoding="utf-8"))
    # The Functions worker's own settings, not docgate's (the app declares none of them).
    return set(sample["Values"]) - {"FUNCTIONS_WORKER_RUNTIME", "PYTHON_ENABLE_INIT_INDEXING"}


def test_sample_settings_list_exactly_the_declared_settings() -> None:
    declared = {s.env for s in SETTINGS}
    sample = _sample_names()
    assert declared - sample == set(), "declared but missing from local.settings.sample.json"
    assert sample - declared == set(), "in local.settings.sample.json but not declared"


def test_readme_documents_every_setting() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    missing = [
        s.env for s in SETTINGS if not re.search(rf"(?<![\w]){re.escape(s.env)}(?![\w])", readme)
    ]
    assert missing == [], f"README.md does not mention: {missing}"
