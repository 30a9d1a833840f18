"""Authentication of every route but health: who is calling, as a Principal.

Routes are anonymous at the Functions host and authenticated here, in the app, because the
callers we serve send bearer credentials (OpenAI clients send `Authorization: Bearer <token>`),
which the host's own function keys cannot express. Accepted, in order:
1. App Service authentication's `X-MS-CLIENT-PRINCIPAL`, only when EASYAUTH_ENABLED says the
   platform feature is on (nothing strips a forged header otherwise);
2. Entra ID bearer tokens (JWTs), validated by `shared/security/jwt.py` (locally: the dev issuer);
3. API keys from `DOCGATE_API_KEYS`, each bound to one principal (service-to-service callers).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Any

import azure.functions as func

from shared.config import Settings
from shared.http import ProblemError
from shared.security.easyauth import EasyAuthOptions, identity_from_headers
from shared.security.jwt import (
    ClaimMapping,
    JwtOptions,
    JwtValidator,
    SigningKeysUnavailableError,
    TokenError,
    dev_issuer_options,
)
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


@dataclass(frozen=True)
class Authenticators:
    """The token validator and EasyAuth options built from settings (None when not configured)."""

    validator: JwtValidator | None = None
    easyauth: EasyAuthOptions | None = None


def build_authenticators(settings: Settings) -> Authenticators:
    """Entra ID (or dev issuer) validation and EasyAuth, when AUTH_CLIENT_ID is set."""
    if not settings.auth.client_id:
        return Authenticators()
    mapping = ClaimMapping(
        settings.auth.tenants, settings.auth.app_role_map, settings.auth.scope_map
    )
    make = dev_issuer_options if settings.auth.dev_issuer else JwtOptions
    options = make(
        settings.auth.authority, settings.auth.client_id, mapping,
        leeway_seconds=settings.auth.leeway_seconds,
    )  # fmt: skip
    easyauth = EasyAuthOptions(settings.auth.easyauth_enabled, mapping)
    return Authenticators(JwtValidator(options), easyauth)


def to_problem(error: TokenError) -> ProblemError:
    """The HTTP answer: 401 with an RFC 6750 challenge, or 503 when keys are unreachable."""
    if isinstance(error, SigningKeysUnavailableError):
        return ProblemError(503, "the identity provider's signing keys are unavailable")
    challenge = f'{CHALLENGE}, error="invalid_token", error_description="{error.reason}"'
    return ProblemError(
        401, f"the credentials are not valid: {error.reason}",
        headers={"WWW-Authenticate": challenge},
    )  # fmt: skip


async def authenticate(
    req: func.HttpRequest, settings: Settings, authenticators: Authenticators | None = None
) -> Principal:
    """The caller, or a 401 problem with a `WWW-Authenticate` challenge."""
    presented = presented_credential(req)
    authenticators = authenticators or Authenticators()
    try:
        if authenticators.easyauth is not None:
            identity = identity_from_headers(req.headers, authenticators.easyauth)
            if identity is not None:
                return identity.principal
        if presented and presented.count(".") == 2 and authenticators.validator is not None:
            return (await authenticators.validator.validate(presented)).principal
    except TokenError as error:
        raise to_problem(error) from None
    if not presented:
        raise ProblemError(
            401, "credentials are required: Authorization: Bearer <key>",
            headers={"WWW-Authenticate": CHALLENGE},
        )  # fmt: skip
    for entry in settings.auth.api_keys:
        if hmac.compare_digest(presented.encode(), str(entry["key"]).encode()):
            return _principal(entry)
    raise ProblemError(
        401, "the credentials are not valid",
        headers={"WWW-Authenticate": f'{CHALLENGE}, error="invalid_token"'},
    )  # fmt: skip
