"""Entra ID sign-in in the console: MSAL.js under the console's CSP, authorization code + PKCE.

Login's endpoints are answered inside the browser (Playwright routes `login.microsoftonline.com`;
nothing leaves the machine): the discovery documents, an authorize endpoint that checks the
request and redirects back with a code, and a token endpoint that checks the PKCE verifier
against the challenge and returns an access token the app accepts. The app trusts the devhost's
dev issuer for those tokens, so the whole path runs: MSAL's redirect, the code exchange, the
token in MSAL's session cache, and `GET /api/me` with it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse

import pytest
from playwright.sync_api import Route, expect

from devhost.dev_issuer import DevIssuer
from devhost.testing import HostProcess, free_port
from tests.apphost import app_environment, start_app
from tests.browser.conftest import DESKTOP, _chromium_or_skip
from tests.conftest import EmulatorEndpoints

pytestmark = pytest.mark.emulators
TENANT_ID = "11111111-2222-3333-4444-555555555555"
LOGIN = "https://login.microsoftonline.com"
AUTHORITY = f"{LOGIN}/{TENANT_ID}"
CONSOLE_CLIENT = "console-client-id"
API_SCOPE = "api://docgate-dev/user_impersonation"


@pytest.fixture(scope="module")
def entra_app(
    tmp_path_factory: pytest.TempPathFactory, emulators: EmulatorEndpoints
) -> Iterator[HostProcess]:
    _chromium_or_skip()
    folder = tmp_path_factory.mktemp("entra-console")
    port = free_port()
    environment = app_environment(
        emulators,
        f"t-entra-{uuid.uuid4().hex[:12]}",
        AUTH_CLIENT_ID="docgate-dev",
        AUTH_AUTHORITY=f"http://127.0.0.1:{port}/runtime/dev-issuer",
        AUTH_DEV_ISSUER="true",
        AUTH_TENANTS=TENANT_ID,
        WEB_CLIENT_ID=CONSOLE_CLIENT,
        WEB_AUTHORITY=AUTHORITY,
        WEB_API_SCOPES=API_SCOPE,
    )
    host = start_app(folder, environment, port=port)
    try:
        yield host
    finally:
        host.stop()


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unsigned_jwt(claims: dict[str, Any]) -> str:
    header = _b64url(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    return f"{header}.{_b64url(json.dumps(claims).encode())}."


class FakeLogin:
    """Entra ID's endpoints as the browser sees them, recording what MSAL sends."""

    def __init__(self, issuer: DevIssuer) -> None:
        self.issuer = issuer
        self.authorize: dict[str, str] = {}
        self.token_request: dict[str, str] = {}

    def handle(self, route: Route) -> None:
        url = urlparse(route.request.url)
        cors = {"Access-Control-Allow-Origin": "*", "Content-Type": "application/json"}
        if url.path.endswith("/openid-configuration"):
            base = f"{LOGIN}/{TENANT_ID}"
            body = {
                "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                "token_endpoint": f"{base}/oauth2/v2.0/token",
                "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
                "issuer": f"{base}/v2.0",
                "jwks_uri": f"{LOGIN}/{TENANT_ID}/discovery/v2.0/keys",
                "response_modes_supported": ["query", "fragment", "form_post"],
            }
            route.fulfill(status=200, headers=cors, body=json.dumps(body))
        elif url.path.endswith("/discovery/instance"):
            body = {
                "tenant_discovery_endpoint": f"{AUTHORITY}/v2.0/.well-known/openid-configuration",
                "api-version": "1.1",
                "metadata": [
                    {
                        "preferred_network": "login.microsoftonline.com",
                        "preferred_cache": "login.windows.net",
                        "aliases": ["login.microsoftonline.com", "login.windows.net"],
                    }
                ],
            }
            route.fulfill(status=200, headers=cors, body=json.dumps(body))
        elif url.path.endswith("/oauth2/v2.0/authorize"):
            self.authorize = {key: values[0] for key, values in parse_qs(url.query).items()}
            answer = urlencode({"code": "the-code", "state": self.authorize["state"],
                                "client_info": self._client_info()})  # fmt: skip
            separator = "?" if self.authorize.get("response_mode") == "query" else "#"
            location = f"{self.authorize['redirect_uri']}{separator}{answer}"
            route.fulfill(status=302, headers={"Location": location})
        elif url.path.endswith("/oauth2/v2.0/token"):
            form = parse_qs(route.request.post_data or "")
            self.token_request = {key: values[0] for key, values in form.items()}
            route.fulfill(status=200, headers=cors, body=json.dumps(self._tokens()))
        else:
            route.fulfill(status=404, headers=cors, body="{}")

    def _client_info(self) -> str:
        return _b64url(json.dumps({"uid": "erin-oid", "utid": TENANT_ID}).encode())

    def _tokens(self) -> dict[str, Any]:
        now = int(time.time())
        access = self.issuer.mint_token(
            "erin-oid", TENANT_ID, roles=["user"], audience="api://docgate-dev",
            scopes=["user_impersonation"],
        )  # fmt: skip
        identity = _unsigned_jwt(
            {
                "aud": CONSOLE_CLIENT,
                "iss": f"{LOGIN}/{TENANT_ID}/v2.0",
                "iat": now,
                "nbf": now,
                "exp": now + 3600,
                "oid": "erin-oid",
                "sub": "erin-sub",
                "tid": TENANT_ID,
                "name": "Erin",
                "preferred_username": "erin@contoso.example",
                "nonce": self.authorize.get("nonce"),
                "ver": "2.0",
            }
        )
        return {
            "token_type": "Bearer",
            "scope": f"{API_SCOPE} openid profile offline_access",
            "expires_in": 3600,
            "ext_expires_in": 3600,
            "access_token": access,
            "id_token": identity,
            "client_info": self._client_info(),
        }


def test_entra_sign_in_is_authorization_code_with_pkce_under_the_csp(
    browser: Any, entra_app: HostProcess
) -> None:
    login = FakeLogin(DevIssuer(entra_app.data_dir, entra_app.base_url))
    context = browser.new_context(viewport=DESKTOP, base_url=entra_app.base_url)
    violations: list[str] = []
    try:
        context.route(f"{LOGIN}/**", login.handle)
        page = context.new_page()
        page.on("console", lambda message: violations.append(message.text)
                if "Content Security Policy" in message.text else None)  # fmt: skip
        page.goto("/api/app/")
        page.get_by_role("button", name="Sign in").click()
        expect(page.locator("#who-name")).to_contain_text("erin-oid", timeout=30_000)

        sent = login.authorize
        assert sent["client_id"] == CONSOLE_CLIENT and sent["response_type"] == "code"
        assert API_SCOPE in sent["scope"].split()
        assert sent["code_challenge_method"] == "S256"
        assert sent["redirect_uri"] == f"{entra_app.base_url}/api/app/"
        verifier = login.token_request["code_verifier"]
        assert _b64url(hashlib.sha256(verifier.encode()).digest()) == sent["code_challenge"]
        assert login.token_request["grant_type"] == "authorization_code"
        assert login.token_request["code"] == "the-code"
        assert "code=" not in page.url and "access_token" not in page.url  # nothing in the URL
        expect(page.locator("#who-name")).to_contain_text("user")  # /api/me with the token
        assert violations == []
    finally:
        context.close()
