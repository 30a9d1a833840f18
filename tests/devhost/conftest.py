"""Fixtures for the local host's tests: Azurite for the blob trigger, and sample-app loading."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from devhost.functions import FunctionInfo, load_functions
from tests.conftest import EmulatorEndpoints


@dataclass(frozen=True)
class Azurite:
    """A reachable Azurite and the connection string that reaches its Blob and Queue services."""

    connection_string: str


@pytest.fixture(scope="session")
def azurite(emulators: EmulatorEndpoints) -> Azurite:
    """Azurite from the shared emulator fixture (reused when running, else started)."""
    return Azurite(emulators.azurite_connection_string)


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
