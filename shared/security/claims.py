"""Tenant allow-lists and role maps: how token claims name tenants and roles, as settings."""

from __future__ import annotations

import json
import re

from shared.security.rbac import ROLE_PERMISSIONS

TENANT_ID_PATTERN = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def parse_tenants(value: str) -> dict[str, str]:
    """`{"<tid>": "<tenant>"}` JSON, or a comma-separated list of ids used as tenant names."""
    text = value.strip()
    if text.startswith("{"):
        entries = json.loads(text)
    else:
        entries = {tid: tid for tid in (part.strip() for part in text.split(",")) if tid}
    if not isinstance(entries, dict) or not all(
        isinstance(tid, str) and TENANT_ID_PATTERN.match(tid) and isinstance(name, str) and name
        for tid, name in entries.items()
    ):
        raise ValueError('must be {"<tenant id>": "<docgate tenant>"} or a comma-separated list')
    return entries


def parse_role_map(value: str) -> dict[str, tuple[str, ...]]:
    """`{"<claim value>": "<role>" | ["<role>", ...]}` JSON; every role must be one of ours."""
    entries = json.loads(value or "{}")
    if not isinstance(entries, dict):
        raise ValueError('must be a JSON object {"<claim value>": ["<role>", ...]}')
    mapped: dict[str, tuple[str, ...]] = {}
    for claim_value, roles in entries.items():
        listed = (roles,) if isinstance(roles, str) else roles
        if not isinstance(listed, list | tuple) or not all(isinstance(r, str) for r in listed):
            raise ValueError("roles must be a string or a list of strings")
        unknown = [role for role in listed if role not in ROLE_PERMISSIONS]
        if unknown:
            raise ValueError(f"unknown role(s) {unknown}: use {sorted(ROLE_PERMISSIONS)}")
        mapped[str(claim_value)] = tuple(listed)
    return mapped
