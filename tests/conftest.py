"""Shared test fixtures: reachable local emulators and collision-free resource names."""

from __future__ import annotations

import importlib.util
import os
import re
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Same value as shared.storage.cosmos.EMULATOR_KEY; repeated so this file has no app imports.
COSMOS_EMULATOR_KEY = (
    "C2y6yDjf5/R+ob0N8A7Cgv30VRDJIWEHLM+4QDU5DE2nQ9nDuVTqobD4b8mGGyPMbIZnqyMsEcaGQy67XIw/Jw=="
)
AZURITE_ACCOUNT_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)


def load_emulators_cli() -> ModuleType:
    """Import scripts/emulators.py by path (scripts/ is not a package)."""
    name = "docgate_emulators_cli"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / "emulators.py")
    if spec is None or spec.loader is None:
        raise ImportError("cannot load scripts/emulators.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


@dataclass(frozen=True)
class EmulatorEndpoints:
    """Where the local emulators answer and how to authenticate to them."""

    azurite_connection_string: str
    blob_endpoint: str
    queue_endpoint: str
    table_endpoint: str
    cosmos_endpoint: str
    cosmos_key: str


def build_endpoints(
    blob_port: int, queue_port: int, table_port: int, cosmos_port: int
) -> EmulatorEndpoints:
    """Return endpoints and credentials for emulators on the given loopback ports."""
    account = "devstoreaccount1"
    blob = f"http://127.0.0.1:{blob_port}/{account}"
    queue = f"http://127.0.0.1:{queue_port}/{account}"
    table = f"http://127.0.0.1:{table_port}/{account}"
    connection_string = (
        f"DefaultEndpointsProtocol=http;AccountName={account};AccountKey={AZURITE_ACCOUNT_KEY};"
        f"BlobEndpoint={blob};QueueEndpoint={queue};TableEndpoint={table};"
    )
    return EmulatorEndpoints(
        azurite_connection_string=connection_string,
        blob_endpoint=blob,
        queue_endpoint=queue,
        table_endpoint=table,
        cosmos_endpoint=f"https://127.0.0.1:{cosmos_port}",
        cosmos_key=COSMOS_EMULATOR_KEY,
    )


@pytest.fixture(scope="session")
def emulators() -> Iterator[EmulatorEndpoints]:
    """Ensure Azurite and the Cosmos emulator answer; stop at the end only what this started.

    Under `make test` (scripts/emulators.py run) they are already up and simply reused.
    """
    cli = load_emulators_cli()
    configured = cli.configured_emulators(os.environ)
    try:
        outcomes = cli.start_all(configured)
    except cli.EmulatorError as exc:
        pytest.fail(f"emulators unavailable: {exc}", pytrace=False)
    azurite, cosmos = configured
    try:
        yield build_endpoints(*azurite.ports, *cosmos.ports)
    finally:
        cli.stop_started(outcomes)


@pytest.fixture
def unique_name(request: pytest.FixtureRequest) -> str:
    """A name unique to this test, valid as a Cosmos database/container id and blob container."""
    # Blob container names: 3-63 chars, lowercase letters, digits and single hyphens.
    slug = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40].strip("-")
    return f"t-{slug}-{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def cosmos_client(emulators: EmulatorEndpoints) -> AsyncIterator[Any]:
    """An async SDK client on the Cosmos emulator, closed after the test."""
    from shared.storage.cosmos import create_cosmos_client

    async with create_cosmos_client(
        emulators.cosmos_endpoint, emulators.cosmos_key, None
    ) as client:
        yield client
