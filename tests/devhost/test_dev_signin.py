"""The console's local sign-in: choices validated, tokens minted by the dev issuer, refused in
Azure, and only for the console's own same-origin JSON requests."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from devhost import dev_signin
from devhost.dev_issuer import DevIssuer, DevIssuerRefusedError, mount
from devhost.dev_signin import SignInRefused, read_request, role_options, tenant_options

SETTINGS = {
    "AUTH_CLIENT_ID": "docgate-dev",
    "AUTH_TENANTS": "contoso,fabrikam",
    "AUTH_APP_ROLE_MAP": '{"viewer": "viewer", "user": "user", "admin": "admin"}',
}


def test_options_come_from_the_app_settings() -> None:
    assert tenant_options(SETTINGS) == ["contoso", "fabrikam"]
    assert tenant_options({"AUTH_TENANTS": '{"tid-2": "b", "tid-1": "a"}'}) == ["tid-1", "tid-2"]
    assert tenant_options({}) == ["default"]
    assert role_options(SETTINGS) == ["viewer", "user", "admin"]
    assert role_options({}) == ["viewer", "user", "developer", "admin"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([], "JSON object"),
        ({"user": "", "tenant": "contoso"}, "user"),
        ({"user": "a b", "tenant": "contoso"}, "user"),
        ({"user": "alice", "tenant": "northwind"}, "tenant must be one of contoso, fabrikam"),
        ({"user": "alice", "tenant": "contoso", "roles": ["root"]}, "unknown role(s) root"),
        ({"user": "alice", "tenant": "contoso", "groups": [1]}, "groups"),
        ({"user": "alice", "tenant": "contoso", "groups": ["a;b"]}, "not a valid name"),
    ],
)
def test_bad_choices_are_refused_with_the_reason(body: object, message: str) -> None:
    with pytest.raises(SignInRefused, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_request(body, SETTINGS)


def test_a_good_choice_is_read_with_comma_separated_groups() -> None:
    choice = read_request(
        {"user": "alice", "tenant": "fabrikam", "roles": ["user"], "groups": "finance, legal"},
        SETTINGS,
    )
    assert choice == {
        "user": "alice", "tenant": "fabrikam", "roles": ["user"], "groups": ["finance", "legal"],
    }  # fmt: skip


def _b64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def verified_claims(token: str, issuer: DevIssuer) -> dict[str, Any]:
    """The token's claims once its RS256 signature checks out with the issuer's key."""
    header, claims, signature = token.split(".")
    issuer.key.public_key().verify(
        _b64(signature), f"{header}.{claims}".encode(), padding.PKCS1v15(), hashes.SHA256()
    )
    return json.loads(_b64(claims))


async def _client(tmp_path: Path, environ: dict[str, str]) -> tuple[TestClient, DevIssuer]:
    app = web.Application()
    issuer = DevIssuer(tmp_path, "http://127.0.0.1:7071", environ={})
    dev_signin.add_routes(app, issuer, environ)
    client = TestClient(TestServer(app))
    await client.start_server()
    return client, issuer


async def test_the_token_is_a_dev_issuer_token_for_the_choice(tmp_path: Path) -> None:
    client, issuer = await _client(tmp_path, SETTINGS)
    try:
        options = await (await client.get("/runtime/dev-signin/options")).json()
        assert options == {"tenants": ["contoso", "fabrikam"], "roles": ["viewer", "user", "admin"]}
        choice = {"user": "alice", "tenant": "contoso", "roles": ["user"], "groups": ["finance"]}
        response = await client.post("/runtime/dev-signin/token", json=choice)
        assert response.status == 200 and response.headers["Cache-Control"] == "no-store"
        token = (await response.json())["access_token"]
    finally:
        await client.close()
    claims = verified_claims(token, issuer)
    assert claims["aud"] == "api://docgate-dev"
    assert (claims["oid"], claims["tid"], claims["roles"], claims["groups"]) == (
        "alice", "contoso", ["user"], ["finance"],
    )  # fmt: skip
    assert claims["iss"] == issuer.issuer("contoso")


async def test_only_same_origin_json_requests_get_a_token(tmp_path: Path) -> None:
    client, _ = await _client(tmp_path, SETTINGS)
    choice = {"user": "alice", "tenant": "contoso"}
    try:
        cross = await client.post(
            "/runtime/dev-signin/token", json=choice, headers={"Origin": "https://evil.example"}
        )
        form = await client.post("/runtime/dev-signin/token", data={"user": "alice"})
        bad = await client.post("/runtime/dev-signin/token", json={"user": "alice", "tenant": "x"})
        assert (cross.status, form.status, bad.status) == (403, 403, 400)
        assert (await bad.json())["detail"].startswith("tenant must be one of")
    finally:
        await client.close()


async def test_without_an_api_client_id_there_is_no_audience_to_sign_for(tmp_path: Path) -> None:
    client, _ = await _client(tmp_path, {"AUTH_TENANTS": "contoso"})
    try:
        response = await client.post(
            "/runtime/dev-signin/token", json={"user": "alice", "tenant": "contoso"}
        )
        assert response.status == 409 and "AUTH_CLIENT_ID" in (await response.json())["detail"]
    finally:
        await client.close()


def test_in_azure_neither_the_issuer_nor_the_sign_in_is_mounted(tmp_path: Path) -> None:
    app = web.Application()
    with pytest.raises(DevIssuerRefusedError):
        DevIssuer(tmp_path, "http://x", environ={"WEBSITE_INSTANCE_ID": "abc"})
    assert mount(app, tmp_path, "http://x", environ={"WEBSITE_INSTANCE_ID": "abc"}) is None
    assert not [r for r in app.router.routes() if "dev-signin" in str(r.resource.canonical)]
