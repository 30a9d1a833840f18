"""Files that installed packages ship (models, tokenizers): found without importing the package."""

from __future__ import annotations

import importlib.util
from pathlib import Path


def packaged_file(package: str, relative: str) -> Path:
    """`relative` inside the installed `package`; find_spec avoids running its __init__."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"package {package!r} is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the installed {package!r}")
    return path
