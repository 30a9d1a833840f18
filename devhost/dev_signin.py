"""The web console's local sign-in: pick a user, tenant, roles and groups; get a dev token.

The console (`/api/app/`) shows a sign-in form when the app trusts the dev issuer
(`AUTH_DEV_ISSUER`) and has no Entra app registration for the console. The form posts here and
receives a token minted by the same dev issuer as `python -m devhost token`, validated by the
app exactly like an Entra ID token. Like that command, this refuses to run in Azure
(`WEBSITE_INSTANCE_ID`): it is mounted only where the dev issuer is.

    GET  /runtime/dev-signin/options  -> {"tenants": [...], "roles": [...]}
    POST /runtime/dev-signin/token    {"user", "tenant", "roles": [...], "groups": [...]}
                                      -> {"access_token", "token_type", "expires_in"}

The token goes back in a JSON body, never in a URL. Only same-origin JSON posts are accepted,
so another site open in the browser cannot mint tokens through it.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from devhost.dev_issuer import AUDIENCE_SETTING, DevIssuer

log = logging.getLogger("devhost")

ROUTE_ROOT = "/runtime/dev-signin"
LIFETIME_SECONDS = 8 * 3600  # a working day; the console signs in again after that
TENANTS_SETTING = "AUTH_TENANTS"
ROLES_SETTING = "AUTH_APP_ROLE_MAP"
DEFAULT_ROLES = ("viewer", "user", "developer", "admin")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,99}")


class SignInRefused(ValueError):
    """The sign-in request is not acceptable (the message says why)."""


def tenant_options(environ: Mapping[str, str]) -> list[str]:
    """The tenant ids (tid) the app accepts: AUTH_TENANTS' keys, or its comma-separated list."""
    raw = environ.get(TENANTS_SETTING, "").strip()
    if raw.startswith("{"):
        return sorted(json.loads(raw))
    return [item.strip() for item in raw.split(",") if item.strip()] or ["default"]


def role_options(environ: Mapping[str, str]) -> list[str]:
    """The app roles the app maps to docgate roles (AUTH_APP_ROLE_MAP's keys)."""
    raw = environ.get(ROLES_SETTING, "").strip()
    return list(json.loads(raw)) if raw else list(DEFAULT_ROLES)


def _names(value: Any, what: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise SignInRefused(f"{what} must be a list of names")
    names = [item.strip() for item in value if item.strip()]
    for name in names:
        if not _NAME.fullmatch(name):
            raise SignInRefused(f"{what}: {name!r} is not a valid name")
    return names


def read_request(body: Any, environ: Mapping[str, str]) -> dict[str, Any]:
    """The validated sign-in choice: a user, one accepted tenant, known roles, groups."""
    if not isinstance(body, dict):
        raise SignInRefused("send a JSON object: {user, tenant, roles, groups}")
    user = str(body.get("user") or "").strip()
    if not _NAME.fullmatch(user):
        raise SignInRefused("user: letters, digits and . _ @ - (at most 100)")
    tenant = str(body.get("tenant") or "").strip()
    tenants = tenant_options(environ)
    if tenant not in tenants:
        raise SignInRefused(f"tenant must be one of {', '.join(tenants)}")
    roles = _names(body.get("roles"), "roles")
    unknown = sorted(set(roles) - set(role_options(environ)))
    if unknown:
        raise SignInRefused(f"unknown role(s) {', '.join(unknown)}")
    groups = _names(body.get("groups"), "groups")
    return {"user": user, "tenant": tenant, "roles": roles, "groups": groups}


def _problem(status: int, detail: str) -> web.Response:
    body = {"type": "about:blank", "title": "Sign-in refused", "status": status, "detail": detail}
    return web.json_response(body, status=status, content_type="application/problem+json")


def _same_origin(request: web.Request) -> bool:
    origin = request.headers.get("Origin")
    return origin is None or origin == f"{request.scheme}://{request.host}"


def add_routes(
    app: web.Application, issuer: DevIssuer, environ: Mapping[str, str] | None = None
) -> None:
    """Mounts the options and token endpoints next to the dev issuer."""
    settings = os.environ if environ is None else environ

    async def options(request: web.Request) -> web.Response:
        return web.json_response(
            {"tenants": tenant_options(settings), "roles": role_options(settings)}
        )

    async def token(request: web.Request) -> web.Response:
        if request.content_type != "application/json" or not _same_origin(request):
            return _problem(403, "only the console's own JSON requests may sign in")
        client_id = settings.get(AUDIENCE_SETTING)
        if not client_id:
            return _problem(409, f"{AUDIENCE_SETTING} is not set: the app accepts no tokens")
        try:
            choice = read_request(await request.json(), settings)
        except json.JSONDecodeError:
            return _problem(400, "the body is not valid JSON")
        except SignInRefused as error:
            return _problem(400, str(error))
        minted = issuer.mint_token(
            choice["user"],
            choice["tenant"],
            roles=choice["roles"],
            groups=choice["groups"],
            audience=f"api://{client_id}",
            lifetime=LIFETIME_SECONDS,
        )
        log.info("Dev sign-in: %s in %s as %s", choice["user"], choice["tenant"], choice["roles"])
        body = {"access_token": minted, "token_type": "Bearer", "expires_in": LIFETIME_SECONDS}
        return web.json_response(body, headers={"Cache-Control": "no-store"})

    app.router.add_get(ROUTE_ROOT + "/options", options)
    app.router.add_post(ROUTE_ROOT + "/token", token)
