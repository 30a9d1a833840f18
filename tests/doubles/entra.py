"""A local Entra ID double: OIDC discovery and JWKS per authority, and a token factory.

It serves what a token validator reads from `https://login.microsoftonline.com`:
- `GET /{tenant}/v2.0/.well-known/openid-configuration` (route "metadata"), shaped like the
  multi-tenant document (`issuer` holds the `{tenantid}` placeholder);
- `GET /{tenant}/discovery/v2.0/keys` (route "keys"), the published signing keys.

Tokens carry the real Entra issuers (v1 `https://sts.windows.net/{tid}/`, v2
`https://login.microsoftonline.com/{tid}/v2.0`) and are signed with the double's keys. Keys can be
added unpublished (a rotation not yet visible) or published later; `fail("keys", ...)` scripts an
outage, `stop()` takes the whole endpoint down. Both routes are anonymous, as in Entra.
"""

from __future__ import annotations

import base64
import functools
import json
import time
from typing import Any

from aiohttp import web
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from tests.doubles import Handler, HttpDouble, RecordedRequest, error_response

V2_ISSUER = "https://login.microsoftonline.com/{tid}/v2.0"
V1_ISSUER = "https://sts.windows.net/{tid}/"
CLIENT_ID = "6f1c2a9e-0b7d-4a53-9b1e-1d2c3b4a5f60"
TENANT_ID = "72f988bf-86f1-41af-91ab-2d7cd011db47"


def b64url(data: bytes) -> str:
    """Unpadded base64url, as JWS segments are written."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def segment(document: dict[str, Any]) -> str:
    """A JSON document as one JWS segment."""
    return b64url(json.dumps(document, separators=(",", ":")).encode())


def _uint(number: int) -> str:
    return b64url(number.to_bytes((number.bit_length() + 7) // 8, "big"))


@functools.cache
def signing_key(index: int) -> rsa.RSAPrivateKey:
    """The index-th 2048-bit test key (generated once per test session: it is slow)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def jwk_of(key: rsa.RSAPrivateKey, kid: str) -> dict[str, Any]:
    """The public half as Entra publishes it."""
    numbers = key.public_key().public_numbers()
    return {"kty": "RSA", "use": "sig", "kid": kid, "n": _uint(numbers.n), "e": _uint(numbers.e)}


def sign_rs256(key: rsa.RSAPrivateKey, header: dict[str, Any], claims: dict[str, Any]) -> str:
    """A compact RS256 JWS."""
    signing_input = f"{segment(header)}.{segment(claims)}"
    signature = key.sign(signing_input.encode("ascii"), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{b64url(signature)}"


class EntraDouble(HttpDouble):
    """Entra's discovery and key endpoints on a loopback port, with keys it can sign with."""

    def __init__(self) -> None:
        super().__init__()
        self.keys: dict[str, rsa.RSAPrivateKey] = {}
        self.published: list[str] = []
        self.add_key("entra-key-1")

    def routes(self) -> list[web.RouteDef]:
        """Discovery and JWKS, under any tenant segment (`organizations`, a tid, ...)."""
        metadata = "/{tenant}/v2.0/.well-known/openid-configuration"
        return [
            web.get(metadata, self._metadata, name="metadata"),
            web.get("/{tenant}/discovery/v2.0/keys", self._keys, name="keys"),
        ]

    def authority(self, tenant: str = "organizations") -> str:
        """The authority URL a validator is configured with."""
        return f"{self.endpoint}/{tenant}"

    def add_key(self, kid: str, *, publish: bool = True) -> str:
        """A new signing key; unpublished keys sign tokens the JWKS does not (yet) list."""
        self.keys[kid] = signing_key(len(self.keys))
        if publish:
            self.publish(kid)
        return kid

    def publish(self, kid: str) -> None:
        """Lists `kid` in the JWKS."""
        if kid not in self.published:
            self.published.append(kid)

    def claims(
        self,
        tid: str = TENANT_ID,
        *,
        version: str = "2.0",
        audience: str = CLIENT_ID,
        lifetime: int = 3600,
        now: float | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        """An Entra-shaped access token payload; `extra` adds or overrides claims."""
        issued = int(time.time() if now is None else now)
        issuer = (V2_ISSUER if version == "2.0" else V1_ISSUER).replace("{tid}", tid)
        claims: dict[str, Any] = {
            "aud": audience,
            "iss": issuer,
            "iat": issued,
            "nbf": issued,
            "exp": issued + lifetime,
            "tid": tid,
            "oid": "00000000-0000-0000-0000-00000000a11c",
            "sub": "pairwise-subject-of-alice",
            "preferred_username": "alice@contoso.com",
            "name": "Alice",
            "ver": version,
        }
        return {**claims, **extra}

    def token(self, claims: dict[str, Any], *, kid: str = "entra-key-1", **header: Any) -> str:
        """`claims` signed RS256 with the key `kid`; `header` adds or overrides header fields."""
        return sign_rs256(
            self.keys[kid], {"typ": "JWT", "alg": "RS256", "kid": kid, **header}, claims
        )

    def key_fetches(self) -> list[RecordedRequest]:
        """The JWKS requests received so far."""
        return self.seen("keys")

    async def _metadata(self, request: web.Request) -> web.Response:
        tenant = request.match_info["tenant"]
        return web.json_response(
            {
                "issuer": V2_ISSUER.replace("{tid}", "{tenantid}"),
                "jwks_uri": f"{self.endpoint}/{tenant}/discovery/v2.0/keys",
                "id_token_signing_alg_values_supported": ["RS256"],
                "token_endpoint": f"{self.endpoint}/{tenant}/oauth2/v2.0/token",
            }
        )

    async def _keys(self, request: web.Request) -> web.Response:
        return web.json_response({"keys": [jwk_of(self.keys[k], k) for k in self.published]})

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Records and scripts failures like every double, without a key check (anonymous)."""
        route = request.match_info.route.name or "unknown"
        self.requests.append(
            RecordedRequest(
                route=route,
                method=request.method,
                path=request.path,
                query=dict(request.query),
                headers=dict(request.headers),
                body=b"",
            )
        )
        failure = self._take_failure(route)
        if failure is not None:
            return error_response(failure.status, failure.code, failure.message)
        return await handler(request)
