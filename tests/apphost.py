"""docgate's own function_app served by devhost against the emulators, for end-to-end tests."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from devhost.testing import HostProcess
from tests.conftest import EmulatorEndpoints

ROOT = Path(__file__).resolve().parent.parent
MASTER_KEY = "test-master-key"
FUNCTION_KEY = "test-default-key"
# One API key per tenant: the principal each key acts as.
API_KEYS = {tenant: f"key-{tenant}" for tenant in ("contoso", "fabrikam", "default")}
API_KEYS_SETTING = json.dumps(
    [
        {
            "key": key,
            "user": f"user-{tenant}",
            "tenant": tenant,
            "groups": ["finance"],
            "roles": ["admin"],
        }
        for tenant, key in API_KEYS.items()
    ]
)


def app_environment(emulators: EmulatorEndpoints, name: str, **overrides: str) -> dict[str, str]:
    """Settings isolating one test run: its own containers and Cosmos database."""
    return {
        "AzureWebJobsStorage": emulators.azurite_connection_string,
        "UPLOADS_CONTAINER": name,
        "WORK_CONTAINER": f"{name[:50]}-work",
        "COSMOS_ENDPOINT": emulators.cosmos_endpoint,
        "COSMOS_KEY": emulators.cosmos_key,
        "COSMOS_DATABASE": name,
        "COSMOS_EMULATOR": "true",
        "DOCGATE_CREATE_RESOURCES": "true",
        "APPLICATIONINSIGHTS_CONNECTION_STRING": "",
        "OTEL_EXPORTER_OTLP_ENDPOINT": "",
        "DOCUMENT_INTELLIGENCE_ENDPOINT": "",
        "VISION_ENDPOINT": "",
        "AZURE_OPENAI_EMBEDDING_ENDPOINT": "",
        "DEVHOST_BLOB_POLL_SECONDS": "0.2",
        "PYTHON_ENABLE_INIT_INDEXING": "1",  # HTTP streams (the worker's init indexing)
        "DOCGATE_API_KEYS": API_KEYS_SETTING,
        "LLM_REGIONS": "[]",
        # Probes are tested on their own; here they would consume scripted region faults.
        "REGION_HEALTH_SCHEDULE": "0 0 0 1 1 *",
        **overrides,
    }


def write_settings_file(folder: Path) -> Path:
    """A local.settings.json with known keys (Values come from the environment)."""
    keys = {"master": MASTER_KEY, "default": FUNCTION_KEY, "functions": {}}
    path = folder / "local.settings.json"
    path.write_text(json.dumps({"IsEncrypted": False, "Values": {}, "Keys": keys}))
    return path


def start_app(
    folder: Path,
    environment: dict[str, str],
    wait: bool = True,
    data_dir: Path | None = None,
    port: int | None = None,
) -> HostProcess:
    """Starts function_app under devhost."""
    folder.mkdir(parents=True, exist_ok=True)
    settings_file = write_settings_file(folder)
    host = HostProcess(
        ROOT, data_dir or folder / "data", env=environment, settings_file=settings_file, port=port
    )
    return host.start(wait=wait, timeout=120)


def request(
    host: HostProcess,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    tenant: str | None = "contoso",
) -> tuple[int, dict[str, str], Any]:
    """Calls the app as `tenant`'s API key (None: no credentials); returns status, headers and
    the decoded JSON (or raw bytes) body."""
    sent = dict(headers or {})
    if tenant:
        sent["Authorization"] = f"Bearer {API_KEYS[tenant]}"
    prepared = urllib.request.Request(
        f"{host.base_url}{path}", data=body, method=method, headers=sent
    )
    try:
        with urllib.request.urlopen(prepared, timeout=60) as response:
            status, raw, got = response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as error:
        status, raw, got = error.code, error.read(), dict(error.headers)
    try:
        return status, got, json.loads(raw) if raw else None
    except json.JSONDecodeError:
        return status, got, raw


def wait_until(
    check: Callable[[], Any],
    timeout: float = 120.0,
    interval: float = 0.25,
    host: HostProcess | None = None,
) -> Any:
    """Polls `check` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    tail = host.log_tail(80) if host else ""
    raise AssertionError(f"condition not met within {timeout}s\n{tail}")
