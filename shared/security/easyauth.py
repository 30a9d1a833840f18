"""App Service authentication (EasyAuth): the platform's `X-MS-CLIENT-PRINCIPAL` -> Identity.

When the platform feature is on, App Service validates the caller's token itself and passes the
claims in `X-MS-CLIENT-PRINCIPAL` (base64 JSON `{auth_typ, claims[{typ,val}], name_typ,
role_typ}`), stripping any copy an outside caller sent. When it is off, nothing strips it, so
anyone could send one: the header is read only when `EasyAuthOptions.enabled` says the feature is
on, and otherwise ignored as if absent.

The claims then go through the same mapping as bearer tokens (`identity_from_claims`): the same
tenant allow-list, role mappings and group overage rule.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from shared.security.jwt import ClaimMapping, Identity, TokenError, identity_from_claims

HEADER = "x-ms-client-principal"
MALFORMED = "malformed client principal"
# EasyAuth keeps some claims under their WS-Federation names; ours are the JWT short names.
LONG_CLAIM_TYPES = {
    "http://schemas.microsoft.com/identity/claims/objectidentifier": "oid",
    "http://schemas.microsoft.com/identity/claims/tenantid": "tid",
    "http://schemas.microsoft.com/identity/claims/scope": "scp",
    "http://schemas.microsoft.com/ws/2008/06/identity/claims/role": "roles",
    "http://schemas.microsoft.com/ws/2008/06/identity/claims/groups": "groups",
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/nameidentifier": "sub",
}
MULTI_VALUED = frozenset({"roles", "groups"})


@dataclass(frozen=True)
class EasyAuthOptions:
    """Whether the platform feature is on, and how its claims map to a Principal."""

    enabled: bool
    claims: ClaimMapping
    providers: tuple[str, ...] = ("aad",)  # `auth_typ` values accepted (Entra ID only)
    max_header_bytes: int = 32 * 1024


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is not None:
        return value
    return next((v for k, v in headers.items() if k.lower() == name), None)


def decode_client_principal(encoded: str, max_bytes: int) -> dict[str, Any]:
    """The header's JSON document, or a TokenError for anything malformed."""
    if len(encoded) > max_bytes:
        raise TokenError("client principal too large")
    try:
        document = json.loads(base64.b64decode(encoded, validate=True))
    except (ValueError, binascii.Error, UnicodeDecodeError) as error:
        raise TokenError(MALFORMED) from error
    if not isinstance(document, dict) or not isinstance(document.get("claims"), list):
        raise TokenError(MALFORMED)
    return document


def _short_type(typ: str, role_typ: Any) -> str:
    if typ == role_typ:
        return "roles"
    return LONG_CLAIM_TYPES.get(typ, typ)


def _claim_value(name: str, value: str) -> Any:
    if name == "hasgroups":
        return value.lower() == "true"
    if name == "_claim_names":
        try:
            return json.loads(value)
        except ValueError as error:
            raise TokenError(MALFORMED) from error
    return value


def claims_of(document: Mapping[str, Any]) -> dict[str, Any]:
    """`[{typ, val}]` -> a JWT-shaped claims dict (roles and groups as lists)."""
    claims: dict[str, Any] = {}
    for entry in document["claims"]:
        if not isinstance(entry, dict):
            raise TokenError(MALFORMED)
        typ, value = entry.get("typ"), entry.get("val")
        if not isinstance(typ, str) or not isinstance(value, str):
            raise TokenError(MALFORMED)
        name = _short_type(typ, document.get("role_typ"))
        if name in MULTI_VALUED:
            claims.setdefault(name, []).append(value)
        else:
            claims.setdefault(name, _claim_value(name, value))  # first value wins
    return claims


def identity_from_headers(headers: Mapping[str, str], options: EasyAuthOptions) -> Identity | None:
    """The platform-authenticated caller; None when the feature is off or the header absent."""
    if not options.enabled:
        return None  # nothing strips a forged header when the feature is off
    encoded = _header(headers, HEADER)
    if encoded is None:
        return None
    document = decode_client_principal(encoded, options.max_header_bytes)
    if document.get("auth_typ") not in options.providers:
        raise TokenError("untrusted identity provider")
    return identity_from_claims(claims_of(document), options.claims)
