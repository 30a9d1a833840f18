"""Builds monitoring/workbook.json (the Azure Monitor workbook infra/modules/workbook.bicep
deploys) from the KQL pack, so each query lives in one file: `monitoring/queries/*.kql`.

    python scripts/monitoring_workbook.py          # rewrite monitoring/workbook.json
    python scripts/monitoring_workbook.py --check  # exit 1 if it is out of date (tests do this)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
QUERIES = ROOT / "monitoring" / "queries"
WORKBOOK = ROOT / "monitoring" / "workbook.json"

# (title, query file, visualization) in the order the workbook shows them.
SECTIONS: tuple[tuple[str, str, str], ...] = (
    ("Requests and latency by route", "requests-by-route", "table"),
    ("Tokens and cost by tenant, model and tier", "tokens-and-cost", "table"),
    ("Cache hit rate", "cache-hit-rate", "linechart"),
    ("Region health and failovers", "region-health-and-failovers", "table"),
    ("Ingestion throughput and failures", "ingestion-throughput-and-failures", "table"),
    ("Top blocked injections", "top-blocked-injections", "barchart"),
    ("Slowest ingestions", "slowest-ingestions", "table"),
    ("Refusals by reason", "refusals-by-reason", "table"),
)


def build() -> dict[str, Any]:
    """The workbook's Notebook/1.0 document."""
    items: list[dict[str, Any]] = [
        {
            "type": 1,
            "name": "title",
            "content": {
                "json": "## docgate\nRequests, models, cost, cache, regions, ingestion and "
                "injection defence. Queries: monitoring/queries/*.kql; names: docs/telemetry.md."
            },
        }
    ]
    for title, query, visualization in SECTIONS:
        items.append(
            {
                "type": 3,
                "name": query,
                "content": {
                    "version": "KqlItem/1.0",
                    "title": title,
                    "query": (QUERIES / f"{query}.kql").read_text(),
                    "queryType": 0,
                    "resourceType": "microsoft.insights/components",
                    "visualization": visualization,
                    "size": 0,
                },
            }
        )
    return {
        "version": "Notebook/1.0",
        "items": items,
        "fallbackResourceIds": [],
        "$schema": "https://github.com/Microsoft/Application-Insights-Workbooks/blob/master/schema/workbook.json",
    }


def render() -> str:
    """The file's exact text."""
    return json.dumps(build(), indent=2) + "\n"


def main() -> int:
    """Write the workbook, or with --check report whether it is current."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true")
    if parser.parse_args().check:
        current = WORKBOOK.exists() and WORKBOOK.read_text() == render()
        print("monitoring/workbook.json is " + ("current" if current else "OUT OF DATE"))
        return 0 if current else 1
    WORKBOOK.write_text(render())
    print(f"wrote {WORKBOOK.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
