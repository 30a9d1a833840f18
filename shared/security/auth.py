"""Authentication of every route but health: who is calling, as a Principal.

Routes are anonymous at the Functions host and authenticated here, in the app, because the
callers we serve send bearer credentials (OpenAI clients send `Authorization: Bearer <token>`),
which the host's own function keys cannot express. Accepted, in order:
1. App Service authentication's `X-MS-CLIENT-PRINCIPAL`, only when EASYAUTH_ENABLED says the
   platform feature is on (nothing strips a forged header otherwise);
2. Entra ID bearer tokens (JWTs), validated by `shared/security/jwt.py` (locally: the dev issuer);
3. API keys, each bound to one principal (service-to-service callers). They are a secret read
   through the secret store: Key Vault secret `docgate-api-keys` when KEY_VAULT_URL is set
   (rotated keys are picked up within SECRETS_TTL_SECONDS), else DOCGATE_API_KEYS.

Failures are this module's exceptions; the HTTP edge turns them into 401/503 problems.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from shared.security.easyauth import EasyAuthOptions, identity_from_headers
from shared.security.jwt import JwtValidator, SigningKeysUnavailableError, TokenError
from shared.security.principal import Principal

CHALLENGE = 'Bearer realm="docgate"'
API_KEYS_SECRET = "docgate-api-keys"
ApiKeys = Sequence[Mapping[str, Any]]


class Unauthenticated(Exception):
    """No valid credentials: the caller gets a 401 with an RFC 6750 Bearer challenge."""

    def __init__(
        self, detail: str, invalid_token: bool = False, description: str | None = None
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.invalid_token = invalid_token  # credentials were presented, and refused
        self.description = description  # why, short and safe to show

    @property
    def challenge(self) -> str:
        """The `WWW-Authenticate` value."""
        challenge = CHALLENGE
        if self.invalid_token:
            challenge += ', error="invalid_token"'
        if self.description:
            challenge += f', error_description="{self.description}"'
        return challenge


class IdentityProviderUnavailable(Exception):
    """The identity provider's signing keys cannot be fetched: nobody can be authenticated."""


def rejected(error: TokenError) -> Exception:
    """The failure a rejected token means for the caller."""
    if isinstance(error, SigningKeysUnavailableError):
        return IdentityProviderUnavailable("the identity provider's signing keys are unavailable")
    return Unauthenticated(f"the credentials are not valid: {error.reason}", True, error.reason)


def presented_credential(headers: Mapping[str, str]) -> str | None:
    """The bearer token or API key on the request, if any."""
    authorization = headers.get("authorization", "")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return headers.get("x-api-key") or None


def _principal(entry: Mapping[str, Any]) -> Principal:
    return Principal(
        user_id=str(entry.get("user") or "api-key"),
        tenant=str(entry["tenant"]),
        groups=tuple(entry.get("groups") or ()),
        roles=tuple(entry.get("roles") or ("user",)),
    )


def parse_api_keys(text: str | None) -> ApiKeys:
    """The API key list a secret holds (empty when unset)."""
    entries = json.loads(text or "[]")
    if not isinstance(entries, list):
        raise ValueError("the API keys secret must be a JSON list of {key, user, tenant, ...}")
    return [entry for entry in entries if isinstance(entry, dict) and entry.get("key")]


@dataclass(frozen=True)
class Authenticator:
    """Authenticates a request from its headers, by the configured means."""

    api_keys: Callable[[], Awaitable[ApiKeys]]
    validator: JwtValidator | None = None  # Entra ID (or the dev issuer), when configured
    easyauth: EasyAuthOptions | None = None

    async def authenticate(self, headers: Mapping[str, str]) -> Principal:
        """The caller, or Unauthenticated / IdentityProviderUnavailable."""
        presented = presented_credential(headers)
        try:
            if self.easyauth is not None:
                identity = identity_from_headers(headers, self.easyauth)
                if identity is not None:
                    return identity.principal
            if presented and presented.count(".") == 2 and self.validator is not None:
                return (await self.validator.validate(presented)).principal
        except TokenError as error:
            raise rejected(error) from None
        if not presented:
            raise Unauthenticated("credentials are required: Authorization: Bearer <key>")
        for entry in await self.api_keys():
            if hmac.compare_digest(presented.encode(), str(entry["key"]).encode()):
                return _principal(entry)
        raise Unauthenticated("the credentials are not valid", invalid_token=True)
