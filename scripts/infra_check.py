"""`make infra-check`: checkov's Azure policies over infra/*.bicep, offline, with zero failures.

Runs `checkov --framework bicep --skip-download` and fails when a check fails, when a file does
not parse (checkov only reports those, and its checks then silently miss the file) or when a
suppression (`// checkov:skip=ID: reason`) gives no reason.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SKIP = re.compile(r"checkov:skip=(?P<id>[A-Z0-9_]+)(?P<rest>.*)")


def unjustified_skips(infra: Path) -> list[str]:
    """Suppressions without a reason, as `file:line id`."""
    found = []
    for path in sorted(infra.rglob("*.bicep")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            match = SKIP.search(line)
            if match and len(match["rest"].lstrip(":").strip()) < 10:
                found.append(f"{path.relative_to(ROOT)}:{number} {match['id']}")
    return found


def run_checkov(checkov: str, infra: Path) -> dict:
    """checkov's JSON summary for the Bicep framework."""
    command = [checkov, "-d", str(infra), "--framework", "bicep", "--skip-download"]
    result = subprocess.run([*command, "-o", "json", "--quiet"], capture_output=True, text=True)
    if not result.stdout.strip():
        sys.exit(f"checkov produced no report (exit {result.returncode}):\n{result.stderr}")
    report = json.loads(result.stdout)
    return report[0] if isinstance(report, list) else report


def main() -> int:
    """Exit 0 only with zero failed checks, zero parsing errors and justified skips."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--checkov", default="checkov", help="the checkov executable")
    parser.add_argument("--infra", type=Path, default=ROOT / "infra")
    options = parser.parse_args()
    problems = [f"skip without a reason: {where}" for where in unjustified_skips(options.infra)]
    report = run_checkov(options.checkov, options.infra)
    summary = report["summary"]
    print(
        f"checkov {summary['checkov_version']}: {summary['passed']} passed, "
        f"{summary['failed']} failed, {summary['skipped']} skipped (justified beside each "
        f"resource), {summary['parsing_errors']} parsing errors, {summary['resource_count']} "
        "resources"
    )
    for check in report.get("results", {}).get("failed_checks", []):
        problems.append(
            f"{check['check_id']} {check['check_name']}: {check['resource']} "
            f"({check['file_path']}:{check['file_line_range'][0]})"
        )
    if summary["parsing_errors"]:
        problems.append(f"{summary['parsing_errors']} Bicep file(s) checkov could not parse")
    for problem in problems:
        print(f"  FAILED {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
