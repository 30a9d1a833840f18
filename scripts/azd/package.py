"""Zip the app for a Flex Consumption deployment, leaving out what `.funcignore` names.

The azd postdeploy hook publishes this package to every region after the first (azd deploys
the `api` service to the primary region's app only). Flex Consumption builds it remotely from
`requirements.txt`.
"""

from __future__ import annotations

import fnmatch
import os
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def ignored_patterns() -> list[str]:
    """The patterns of `.funcignore` (comments and blank lines dropped)."""
    lines = (ROOT / ".funcignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def is_ignored(name: str, patterns: list[str]) -> bool:
    """True when a file or folder name matches a pattern."""
    return any(fnmatch.fnmatch(name, pattern) for pattern in patterns)


def build(target: Path) -> int:
    """Writes the zip; returns how many files it holds. Ignored folders are not even walked
    (`.venv` and `node_modules` hold hundreds of thousands of files)."""
    patterns = ignored_patterns()
    count = 0
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for folder, folders, files in os.walk(ROOT):
            folders[:] = sorted(name for name in folders if not is_ignored(name, patterns))
            for name in sorted(files):
                path = Path(folder) / name
                if not is_ignored(name, patterns) and path != target:
                    archive.write(path, path.relative_to(ROOT).as_posix())
                    count += 1
    return count


if __name__ == "__main__":
    destination = Path(sys.argv[1] if len(sys.argv) > 1 else "docgate.zip").resolve()
    print(f"{destination}: {build(destination)} files")
