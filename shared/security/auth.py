"""Authentication of every route but health: who is calling, as a Principal.

Routes are anonymous at the Functions host and authenticated here, in the app, because the
callers we serve send bearer credentials (OpenAI clients send `Authorization: Bearer <key>`),
which the host's own function keys cannot express. Until Entra ID tokens land, the credentials
are API keys from `DOCGATE_API_KEYS`, each bound to one principal.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Any

import azure.functions as func

from shared.config import Settings
from shared.http import ProblemError
from shared.security.principal import Principal

CHALLENGE = 'Bearer realm="docgate"'


def presented_credential(req: func.HttpRequest) -> str | None:
    """The bearer token or API key on the request, if any."""
    authorization = req.headers.get("authorization", "")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return req.headers.get("x-api-key") or None


def _principal(entry: dict[str, Any]) -> Principal:
    return Principal(
        user_id=str(entry.get("user") or "api-key"),
        tenant=str(entry["tenant"]),
        groups=tuple(entry.get("groups") or ()),
        roles=tuple(entry.get("roles") or ("user",)),
    )


def authenticate(req: func.HttpRequest, settings: Settings) -> Principal:
    """The caller, or a 401 problem with a `WWW-Authenticate` challenge."""
    presented = presented_credential(req)
    if not presented:
        raise ProblemError(
            401, "credentials are required: Authorization: Bearer <key>",
            headers={"WWW-Authenticate": CHALLENGE},
        )  # fmt: skip
    for entry in settings.api_keys:
        if hmac.compare_digest(presented.encode(), str(entry["key"]).encode()):
            return _principal(entry)
    raise ProblemError(
        401, "the credentials are not valid",
        headers={"WWW-Authenticate": f'{CHALLENGE}, error="invalid_token"'},
    )  # fmt: skip


Handler = Callable[..., Awaitable[func.HttpResponse]]
