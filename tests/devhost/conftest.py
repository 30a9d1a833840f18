"""Fixtures for the local host's tests: Azurite for the blob trigger and sample-app loading."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from devhost.functions import FunctionInfo, load_functions

ROOT = Path(__file__).resolve().parents[2]
AZURITE_BIN = ROOT / "node_modules" / ".bin" / "azurite"
HOST = "127.0.0.1"
READY_TIMEOUT_S = 30.0
# Azurite's published development account key (the same for every installation).
ACCOUNT_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)


@dataclass(frozen=True)
class Azurite:
    """A reachable Azurite and the connection string that reaches its Blob and Queue services."""

    connection_string: str
    blob_port: int
    queue_port: int


def _port(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    return int(raw) if raw else default


def _is_open(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.5):
            return True
    except OSError:
        return False


def _connection_string(blob: int, queue: int, table: int) -> str:
    account = "devstoreaccount1"
    return (
        f"DefaultEndpointsProtocol=http;AccountName={account};AccountKey={ACCOUNT_KEY};"
        f"BlobEndpoint=http://{HOST}:{blob}/{account};"
        f"QueueEndpoint=http://{HOST}:{queue}/{account};"
        f"TableEndpoint=http://{HOST}:{table}/{account};"
    )


def _start_azurite(ports: tuple[int, int, int], location: Path) -> subprocess.Popen[bytes]:
    blob, queue, table = ports
    command = [
        str(AZURITE_BIN),
        "--silent",
        "--disableTelemetry",  # otherwise it tries to phone home
        "--skipApiVersionCheck",  # otherwise current SDKs are refused
        "--blobHost", HOST, "--blobPort", str(blob),
        "--queueHost", HOST, "--queuePort", str(queue),
        "--tableHost", HOST, "--tablePort", str(table),
        "--location", str(location),
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + READY_TIMEOUT_S
    while not all(_is_open(port) for port in ports):
        if process.poll() is not None:
            error = process.stderr.read().decode(errors="replace") if process.stderr else ""
            pytest.fail(f"Azurite exited with {process.returncode}: {error}", pytrace=False)
        if time.monotonic() > deadline:
            process.terminate()
            pytest.fail(f"Azurite did not open {ports} within {READY_TIMEOUT_S}s", pytrace=False)
        time.sleep(0.2)
    return process


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    """Reuses an Azurite on the configured (or default) ports; else starts and later stops one."""
    ports = (
        _port("AZURITE_BLOB_PORT", 10000),
        _port("AZURITE_QUEUE_PORT", 10001),
        _port("AZURITE_TABLE_PORT", 10002),
    )
    found = Azurite(_connection_string(*ports), ports[0], ports[1])
    if all(_is_open(port) for port in ports[:2]):
        yield found
        return
    if not AZURITE_BIN.exists():
        pytest.skip(f"no Azurite running on {ports} and no {AZURITE_BIN} (run `npm ci`)")
    process = _start_azurite(ports, tmp_path_factory.mktemp("azurite"))
    try:
        yield found
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


AppLoader = Callable[[str, str], list[FunctionInfo]]


@pytest.fixture
def load_app() -> Iterator[AppLoader]:
    """Indexes `apps/<folder>/<module>.py`; forgets the module and its path afterwards."""
    loaded: list[tuple[Path, str]] = []

    def load(folder: str, module_name: str) -> list[FunctionInfo]:
        app_dir = Path(__file__).parent / "apps" / folder
        loaded.append((app_dir, module_name))
        return load_functions(app_dir, module_name=module_name)

    try:
        yield load
    finally:
        for app_dir, module_name in loaded:
            sys.modules.pop(module_name, None)
            if str(app_dir) in sys.path:
                sys.path.remove(str(app_dir))
