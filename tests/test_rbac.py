"""Every HTTP route x every role: 401 without credentials, 403 without the permission.

The route table below must name every HTTP function the host serves; the test fails when a new
route is added without deciding who may call it.
"""

from __future__ import annotations

import json
import urllib.request
import uuid
from collections.abc import Iterator

import pytest

from devhost.testing import HostProcess
from shared.security.rbac import ROLE_PERMISSIONS, SIGNED_IN
from tests.apphost import MASTER_KEY, app_environment, start_app
from tests.conftest import EmulatorEndpoints

pytestmark = pytest.mark.emulators
ROLES = tuple(ROLE_PERMISSIONS)
ROLE_KEYS = {role: f"rbac-{role}-key" for role in ROLES}
CHAT_BODY = json.dumps({"messages": [{"role": "user", "content": "hello"}]}).encode()

# (function, method, path, body, permission or None for anonymous)
ROUTES = [
    ("health", "GET", "/api/health", None, None),
    ("console", "GET", "/api/app/", None, None),  # the static shell: no data in it
    ("console_config", "GET", "/api/app/config.json", None, None),
    ("me", "GET", "/api/me", None, SIGNED_IN),
    (
        "upload_document",
        "POST",
        "/api/documents?name=rbac/probe.txt",
        b"probe text",
        "documents:write",
    ),
    ("list_documents", "GET", "/api/documents", None, "documents:read"),
    ("get_document", "GET", "/api/documents/unknown-id", None, "documents:read"),
    ("delete_document", "DELETE", "/api/documents/unknown-id", None, "documents:write"),
    (
        "change_document_acl",
        "PUT",
        "/api/documents/unknown-id/acl",
        b'{"groups": ["finance"]}',
        "documents:write",
    ),
    ("get_document_page", "GET", "/api/documents/unknown-id/pages/1", None, "documents:read"),
    (
        "get_document_page_image",
        "GET",
        "/api/documents/unknown-id/pages/1/image",
        None,
        "documents:read",
    ),
    ("chat", "POST", "/api/chat", CHAT_BODY, "chat:execute"),
    ("chat_completions", "POST", "/api/v1/chat/completions", CHAT_BODY, "chat:execute"),
    ("list_models", "GET", "/api/v1/models", None, "chat:execute"),
    ("regions", "GET", "/api/regions", None, "regions:read"),
    ("usage", "GET", "/api/usage", None, "chat:execute"),
    ("budgets", "GET", "/api/budgets", None, "usage:read-all"),
    ("cache_stats", "GET", "/api/cache/stats", None, "cache:admin"),
    ("clear_cache", "DELETE", "/api/cache", None, "cache:admin"),
    ("audit_log", "GET", "/api/audit", None, "audit:read"),
]


def call(host: HostProcess, method: str, path: str, body: bytes | None, key: str | None) -> int:
    headers = {"content-type": "application/json" if body and body[:1] == b"{" else "text/plain"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    req = urllib.request.Request(
        f"{host.base_url}{path}", data=body, method=method, headers=headers
    )
    try:
        with urllib.request.urlopen(req, timeout=60) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


@pytest.fixture(scope="module")
def host(
    tmp_path_factory: pytest.TempPathFactory, emulators: EmulatorEndpoints
) -> Iterator[HostProcess]:
    folder = tmp_path_factory.mktemp("rbac")
    keys = [
        {"key": key, "user": f"{role}-user", "tenant": "contoso", "groups": [], "roles": [role]}
        for role, key in ROLE_KEYS.items()
    ]
    environment = app_environment(
        emulators, f"t-rbac-{uuid.uuid4().hex[:12]}", DOCGATE_API_KEYS=json.dumps(keys)
    )
    running = start_app(folder, environment)
    try:
        yield running
    finally:
        running.stop()


def test_the_table_covers_every_http_route(host: HostProcess) -> None:
    status = urllib.request.urlopen(
        f"{host.base_url}/admin/host/status?code={MASTER_KEY}", timeout=30
    )
    served = {route["name"] for route in json.load(status)["http"]}
    assert served == {name for name, *_ in ROUTES}


@pytest.mark.parametrize(
    ("name", "method", "path", "body", "permission"), ROUTES, ids=[r[0] for r in ROUTES]
)
def test_route_without_credentials(
    host: HostProcess, name: str, method: str, path: str, body: bytes | None, permission: str | None
) -> None:
    status = call(host, method, path, body, None)
    assert (status == 401) == (permission is not None), status


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(
    ("name", "method", "path", "body", "permission"), ROUTES, ids=[r[0] for r in ROUTES]
)
def test_route_by_role(
    host: HostProcess,
    role: str,
    name: str,
    method: str,
    path: str,
    body: bytes | None,
    permission: str | None,
) -> None:
    status = call(host, method, path, body, ROLE_KEYS[role])
    allowed = permission in (None, SIGNED_IN) or permission in ROLE_PERMISSIONS[role]
    assert status not in (401, 500)
    assert (status == 403) == (not allowed), (role, name, status)
