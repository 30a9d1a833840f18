"""LLM regions as data: the `LLM_REGIONS` setting, parsed and validated."""

from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import urlparse

TIERS = ("economy", "standard", "premium")


@dataclass(frozen=True)
class RegionConfig:
    """One Azure OpenAI deployment in one region."""

    name: str
    endpoint: str
    deployment: str
    model: str
    priority: int = 1  # lower serves first; higher numbers are fallbacks
    weight: float = 1.0  # share of traffic among regions of the same priority
    tiers: tuple[str, ...] = TIERS


def _region(entry: object, index: int) -> RegionConfig:
    if not isinstance(entry, dict):
        raise ValueError(f"entry {index} must be an object")
    missing = [key for key in ("name", "endpoint", "deployment", "model") if not entry.get(key)]
    if missing:
        raise ValueError(f"entry {index} lacks {', '.join(missing)}")
    parsed = urlparse(str(entry["endpoint"]))
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ValueError(f"entry {index} ({entry['name']}): endpoint must be an http(s) URL")
    tiers = tuple(entry.get("tiers") or TIERS)
    unknown = [tier for tier in tiers if tier not in TIERS]
    if unknown:
        raise ValueError(f"entry {index} ({entry['name']}): unknown tiers {unknown}")
    priority, weight = int(entry.get("priority", 1)), float(entry.get("weight", 1.0))
    if priority < 0 or weight <= 0:
        raise ValueError(f"entry {index} ({entry['name']}): priority >= 0 and weight > 0")
    return RegionConfig(
        name=str(entry["name"]),
        endpoint=str(entry["endpoint"]),
        deployment=str(entry["deployment"]),
        model=str(entry["model"]),
        priority=priority,
        weight=weight,
        tiers=tiers,
    )


def parse_regions(text: str) -> tuple[RegionConfig, ...]:
    """`LLM_REGIONS`: a JSON list of {name, endpoint, deployment, model, priority?, weight?,
    tiers?}. Empty means no region: chat answers with the offline extractive answerer."""
    if not text.strip():
        return ()
    try:
        entries = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"must be JSON ({error.msg})") from error
    if not isinstance(entries, list):
        raise ValueError("must be a JSON list of regions")
    regions = tuple(_region(entry, index) for index, entry in enumerate(entries))
    names = [region.name for region in regions]
    if len(set(names)) != len(names):
        raise ValueError("region names must be unique")
    return regions
