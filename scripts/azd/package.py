"""Zip the app for a Flex Consumption deployment, leaving out what `.funcignore` names.

The azd postdeploy hook publishes this package to every region after the first (azd deploys
the `api` service to the primary region's app only). Flex Consumption builds it remotely from
`requirements.txt`.
"""

from __future__ import annotations

import fnmatch
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def ignored_patterns() -> list[str]:
    """The patterns of `.funcignore` (comments and blank lines dropped)."""
    lines = (ROOT / ".funcignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def is_ignored(relative: Path, patterns: list[str]) -> bool:
    """True when the path, or one of its parent folders, matches a pattern."""
    return any(fnmatch.fnmatch(part, pattern) for part in relative.parts for pattern in patterns)


def build(target: Path) -> int:
    """Writes the zip; returns how many files it holds."""
    patterns = ignored_patterns()
    count = 0
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(ROOT.rglob("*")):
            relative = path.relative_to(ROOT)
            if path.is_file() and not is_ignored(relative, patterns):
                archive.write(path, relative.as_posix())
                count += 1
    return count


if __name__ == "__main__":
    destination = Path(sys.argv[1] if len(sys.argv) > 1 else "docgate.zip").resolve()
    print(f"{destination}: {build(destination)} files")
