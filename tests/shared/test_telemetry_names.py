"""The telemetry names are declared once: docs/telemetry.md's table is exactly
`shared.telemetry.names.METRICS`, and `record` refuses undeclared attributes."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from shared.telemetry import names
from shared.telemetry.genai import error_type
from shared.telemetry.instruments import record

DOC = Path(__file__).resolve().parents[2] / "docs" / "telemetry.md"


def documented_rows() -> dict[str, list[str]]:
    rows = re.findall(
        r"^\| `([\w.]+)` \| (\w+) \| `([^`]*)` \| (.*?) \| (.*) \|$", DOC.read_text(), re.M
    )
    return {
        name: [kind, unit, attributes, meaning] for name, kind, unit, attributes, meaning in rows
    }


def test_the_docs_table_lists_every_metric_exactly() -> None:
    rows = documented_rows()
    assert list(rows) == [metric.name for metric in names.METRICS]
    for metric in names.METRICS:
        kind, unit, attributes, meaning = rows[metric.name]
        assert (kind, unit, meaning) == (metric.kind, metric.unit, metric.description)
        assert re.findall(r"`([\w.]+)`", attributes) == list(metric.attributes)


def test_metric_names_are_unique_and_conventional() -> None:
    seen = [metric.name for metric in names.METRICS]
    assert len(seen) == len(set(seen))
    for name in seen:
        assert name.startswith(("gen_ai.client.", "http.server.", "docgate.")), name


def test_record_refuses_an_attribute_the_declaration_does_not_list() -> None:
    with pytest.raises(ValueError, match="does not declare"):
        record(names.FAILOVERS, 1, {names.REGION: "eastus", "user": "alice"})
    record(names.FAILOVERS, 1, {names.REGION: "eastus", names.FROM_REGION: None})  # None: left out


def test_error_types_are_low_cardinality_names() -> None:
    class Throttled(Exception):
        kind = "throttled"

    class Refused(Exception):
        status_code = 403

    assert error_type(Throttled("quota exceeded for key abc")) == "throttled"
    assert error_type(Refused("the message is never used")) == "403"
    assert error_type(ValueError("secret text")) == "ValueError"
