"""docgate's metrics, recorded only through the declarations of `shared.telemetry.names`.

`record(metric, value, attributes)` creates the instrument on first use (after the exporter is
installed, so nothing happens at import) and refuses an attribute the declaration does not list:
a dashboard can rely on the names the table promises.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from shared.telemetry import meter
from shared.telemetry.names import Metric

_lock = threading.Lock()
_instruments: dict[str, Any] = {}


def _instrument(metric: Metric) -> Any:
    with _lock:
        found = _instruments.get(metric.name)
        if found is None:
            create = {
                "counter": meter().create_counter,
                "histogram": meter().create_histogram,
                "gauge": meter().create_gauge,
            }[metric.kind]
            found = create(metric.name, unit=metric.unit, description=metric.description)
            _instruments[metric.name] = found
        return found


def record(metric: Metric, value: float, attributes: Mapping[str, Any] | None = None) -> None:
    """Adds (counter), records (histogram) or sets (gauge) `value` with `attributes`."""
    shown = {key: item for key, item in (attributes or {}).items() if item is not None}
    unknown = set(shown) - set(metric.attributes)
    if unknown:
        raise ValueError(f"{metric.name} does not declare the attributes {sorted(unknown)}")
    instrument = _instrument(metric)
    if metric.kind == "counter":
        instrument.add(value, shown)
    elif metric.kind == "histogram":
        instrument.record(value, shown)
    else:
        instrument.set(value, shown)
