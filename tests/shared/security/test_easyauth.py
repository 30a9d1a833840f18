"""App Service authentication: `X-MS-CLIENT-PRINCIPAL` is trusted only when the feature is on."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from shared.problems import problem_for
from shared.security.auth import rejected
from shared.security.easyauth import EasyAuthOptions, identity_from_headers
from shared.security.jwt import ClaimMapping, TokenError

TENANT_ID = "72f988bf-86f1-41af-91ab-2d7cd011db47"
OID = "00000000-0000-0000-0000-00000000a11c"
ROLE_TYPE = "http://schemas.microsoft.com/ws/2008/06/identity/claims/role"
MAPPING = ClaimMapping(
    tenants={TENANT_ID: "contoso"},
    app_roles={"DocGate.User": ("user",)},
    scopes={"Documents.Read": ("viewer",)},
)
ENABLED = EasyAuthOptions(enabled=True, claims=MAPPING)


def client_principal(claims: list[tuple[str, str]], **fields: Any) -> str:
    """The header App Service sends: base64 of `{auth_typ, claims, name_typ, role_typ}`."""
    document = {
        "auth_typ": "aad",
        "claims": [{"typ": typ, "val": val} for typ, val in claims],
        "name_typ": "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name",
        "role_typ": ROLE_TYPE,
        **fields,
    }
    return base64.b64encode(json.dumps(document).encode()).decode()


def entra_claims(*extra: tuple[str, str]) -> list[tuple[str, str]]:
    return [
        ("http://schemas.microsoft.com/identity/claims/objectidentifier", OID),
        ("http://schemas.microsoft.com/identity/claims/tenantid", TENANT_ID),
        ("name", "Alice"),
        *extra,
    ]


def reason(headers: dict[str, str], options: EasyAuthOptions = ENABLED) -> str:
    with pytest.raises(TokenError) as caught:
        identity_from_headers(headers, options)
    return caught.value.reason


def test_accepted_when_the_platform_feature_is_on() -> None:
    header = client_principal(
        entra_claims(
            (ROLE_TYPE, "DocGate.User"),
            ("groups", "finance"),
            ("groups", "legal"),
            ("http://schemas.microsoft.com/identity/claims/scope", "Documents.Read openid"),
        )
    )
    identity = identity_from_headers({"X-MS-CLIENT-PRINCIPAL": header}, ENABLED)
    assert identity is not None
    assert identity.principal.user_id == OID
    assert identity.principal.tenant == "contoso"
    assert identity.principal.groups == ("finance", "legal")
    assert identity.principal.roles == ("user", "viewer")
    assert not identity.groups_overage


def test_ignored_when_the_feature_is_off() -> None:
    header = client_principal(entra_claims((ROLE_TYPE, "DocGate.User")))
    disabled = EasyAuthOptions(enabled=False, claims=MAPPING)
    assert identity_from_headers({"x-ms-client-principal": header}, disabled) is None


def test_absent_header_means_no_platform_identity() -> None:
    assert identity_from_headers({"authorization": "Bearer x"}, ENABLED) is None


def test_short_claim_names_work_too() -> None:
    header = client_principal(
        [("oid", OID), ("tid", TENANT_ID), ("roles", "DocGate.User")], role_typ="roles"
    )
    identity = identity_from_headers({"x-ms-client-principal": header}, ENABLED)
    assert identity is not None
    assert identity.principal.roles == ("user",)


@pytest.mark.parametrize(
    "overage",
    [("hasgroups", "true"), ("_claim_names", '{"groups": "src1"}')],
)
def test_group_overage_gives_no_groups_and_the_flag(overage: tuple[str, str]) -> None:
    header = client_principal(entra_claims(overage))
    identity = identity_from_headers({"x-ms-client-principal": header}, ENABLED)
    assert identity is not None
    assert identity.principal.groups == ()
    assert identity.groups_overage


@pytest.mark.parametrize(
    "header",
    [
        "not base64!",
        base64.b64encode(b"not json").decode(),
        base64.b64encode(b'["a list"]').decode(),
        base64.b64encode(b'{"auth_typ": "aad"}').decode(),
        base64.b64encode(b'{"auth_typ": "aad", "claims": [{"typ": 1, "val": "x"}]}').decode(),
        base64.b64encode(b'{"auth_typ": "aad", "claims": ["x"]}').decode(),
        client_principal(entra_claims(("_claim_names", "{not json"))),
    ],
)
def test_malformed_header_is_a_401_with_a_reason(header: str) -> None:
    assert reason({"x-ms-client-principal": header}) == "malformed client principal"
    problem = problem_for(rejected(TokenError("malformed client principal")))
    assert problem is not None and problem.status == 401
    assert "malformed client principal" in problem.headers["WWW-Authenticate"]


def test_oversized_header() -> None:
    header = client_principal(entra_claims(*[("groups", f"g{n}") for n in range(3000)]))
    assert reason({"x-ms-client-principal": header}) == "client principal too large"


def test_other_identity_providers_are_refused() -> None:
    header = client_principal(entra_claims(), auth_typ="google")
    assert reason({"x-ms-client-principal": header}) == "untrusted identity provider"


def test_tenant_allow_list_applies() -> None:
    header = client_principal(
        [
            ("http://schemas.microsoft.com/identity/claims/objectidentifier", OID),
            ("http://schemas.microsoft.com/identity/claims/tenantid", "another-tenant"),
        ]
    )
    assert reason({"x-ms-client-principal": header}) == "tenant not allowed"


def test_missing_user_id() -> None:
    header = client_principal(
        [("http://schemas.microsoft.com/identity/claims/tenantid", TENANT_ID)]
    )
    assert reason({"x-ms-client-principal": header}) == "missing user id"
