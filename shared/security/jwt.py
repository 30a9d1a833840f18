"""Entra ID bearer tokens -> Principal: RS256 only, keys from the authority's OIDC metadata.

The checks, in order (cheap and key-free first, so junk never reaches the key cache):
size, shape, header (`alg` must be RS256, a plain `kid`), signature with the key chosen by
`kid`, then `exp`/`nbf`/`iat` (with leeway), `aud`, `tid` against the allow-list and `iss` for
that `tid` (v1 `https://sts.windows.net/{tid}/` or v2 `https://login.microsoftonline.com/{tid}/v2.0`).

Signature checking uses `cryptography` directly rather than a JWT library: one algorithm means
there is no algorithm list to misconfigure and no HMAC code path for an `alg` confusion to reach,
and every rejection gets a short, stable reason.

Keys are cached and refetched when a token names an unknown `kid` (Entra rotates keys), at most
once per `refresh_interval_seconds`; when the endpoint is down, cached keys keep working and
unknown keys fail closed. Group overage (`_claim_names`/`hasgroups`) yields no groups and a flag:
resolving the groups through Microsoft Graph needs a network call and a Graph permission, which
is out of scope offline.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import ipaddress
import json
import logging
import math
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from shared.environment import running_in_azure
from shared.security.claims import TENANT_ID_PATTERN
from shared.security.principal import Principal

log = logging.getLogger(__name__)

ENTRA_AUTHORITY = "https://login.microsoftonline.com/organizations"
ENTRA_V2_ISSUER = "https://login.microsoftonline.com/{tid}/v2.0"
ENTRA_V1_ISSUER = "https://sts.windows.net/{tid}/"
MIN_RSA_BITS = 2048
MAX_DOCUMENT_BYTES = 1024 * 1024  # metadata and JWKS are a few KB; cap what we read
# Plain key ids only: Entra's are base64url thumbprints. No dots or slashes, so a kid can never
# become a path or a URL fragment wherever it ends up (logs, caches).
KID_PATTERN = re.compile(r"^[A-Za-z0-9_=-]{1,128}$")
SEGMENT_PATTERN = re.compile(r"^[A-Za-z0-9_-]*$")  # unpadded base64url (RFC 7515)
ACCEPTED_TYPES = frozenset({"jwt", "at+jwt"})
DEFAULT_APP_ROLES: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {role: (role,) for role in ("viewer", "user", "developer", "admin")}
)
LOOPBACK_NAMES = frozenset({"localhost"})

Fetch = Callable[[str], Awaitable[Any]]


class TokenError(Exception):
    """A rejected credential; `reason` is short and safe to show (never token or key material)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class SigningKeysUnavailableError(TokenError):
    """The token names a key we do not hold and the key endpoint cannot be reached."""


class AuthConfigError(Exception):
    """The authentication options are incomplete or unsafe for where the app runs."""


@dataclass(frozen=True)
class ClaimMapping:
    """How token claims become a Principal: tenant allow-list and role mappings."""

    tenants: Mapping[str, str]  # allowed `tid` -> docgate tenant name
    # `roles` value -> our roles; by default the app registration's role values are our names
    app_roles: Mapping[str, tuple[str, ...]] = field(default_factory=DEFAULT_APP_ROLES.copy)
    scopes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # `scp` value -> roles
    user_claim: str = "oid"  # Entra's stable, tenant-scoped user id (`sub` is per-app)

    def __post_init__(self) -> None:
        if not self.tenants:
            raise AuthConfigError("no tenant is allowed: set the tenant allow-list")


@dataclass(frozen=True)
class JwtOptions:
    """What a bearer token must satisfy, and how keys are fetched."""

    authority: str
    client_id: str
    claims: ClaimMapping
    issuers: tuple[str, ...] = (ENTRA_V2_ISSUER, ENTRA_V1_ISSUER)  # `{tid}` is substituted
    leeway_seconds: float = 60.0
    max_token_bytes: int = 16 * 1024
    refresh_interval_seconds: float = 300.0  # Entra asks clients not to refetch more often
    keys_max_age_seconds: float = 24 * 3600.0
    fetch_timeout_seconds: float = 5.0

    def __post_init__(self) -> None:
        if not self.client_id:
            raise AuthConfigError("the client id (audience) is required")
        if not self.issuers or any("{tid}" not in issuer for issuer in self.issuers):
            raise AuthConfigError("every issuer template must contain {tid}")
        if not 0 <= self.leeway_seconds <= 600:
            raise AuthConfigError("the leeway must be between 0 and 600 seconds")
        check_authority_url(self.authority)

    @property
    def audiences(self) -> frozenset[str]:
        """The accepted `aud` values: the client id and its `api://` App ID URI."""
        return frozenset({self.client_id, f"api://{self.client_id}"})

    @property
    def metadata_url(self) -> str:
        """The authority's OIDC discovery document."""
        return f"{self.authority.rstrip('/')}/v2.0/.well-known/openid-configuration"


def _is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_authority_url(url: str, environ: Mapping[str, str] | None = None) -> None:
    """HTTPS, or plain HTTP on loopback for local doubles and the dev issuer, never in Azure."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return
    if parts.scheme == "http" and parts.hostname and _is_loopback(parts.hostname):
        if running_in_azure(environ):
            raise AuthConfigError("a local (http) authority is refused when running in Azure")
        return
    raise AuthConfigError("the authority must be an https URL")


def dev_issuer_options(
    authority: str,
    client_id: str,
    claims: ClaimMapping,
    environ: Mapping[str, str] | None = None,
    **overrides: Any,
) -> JwtOptions:
    """Options accepting the local dev issuer at `authority`; refused when running in Azure."""
    if running_in_azure(environ):
        raise AuthConfigError("the dev issuer cannot be enabled when running in Azure")
    issuer = f"{authority.rstrip('/')}/{{tid}}/v2.0"
    return JwtOptions(authority, client_id, claims, issuers=(issuer,), **overrides)


# Key material ---------------------------------------------------------------------------------


async def fetch_json(url: str, time_limit: float) -> Any:
    """GETs a JSON document: no redirects, bounded size and time."""
    client_timeout = aiohttp.ClientTimeout(total=time_limit)
    async with (
        aiohttp.ClientSession(timeout=client_timeout) as session,
        session.get(url, allow_redirects=False) as response,
    ):
        if response.status != 200:
            raise ValueError(f"HTTP {response.status}")
        body = bytearray()
        async for chunk in response.content.iter_chunked(64 * 1024):
            body += chunk
            if len(body) > MAX_DOCUMENT_BYTES:
                raise ValueError("document too large")
        return json.loads(body)


def _b64url_int(value: Any) -> int:
    if not isinstance(value, str) or not SEGMENT_PATTERN.match(value):
        raise ValueError("not base64url")
    return int.from_bytes(_b64url_decode(value), "big")


def rsa_key_from_jwk(jwk: Mapping[str, Any]) -> rsa.RSAPublicKey:
    """An RSA signing key from one JWK; ValueError for any other kind of key."""
    if jwk.get("kty") != "RSA" or jwk.get("use", "sig") != "sig":
        raise ValueError("not an RSA signing key")
    if jwk.get("alg", "RS256") != "RS256":
        raise ValueError("not an RS256 key")
    key = rsa.RSAPublicNumbers(_b64url_int(jwk.get("e")), _b64url_int(jwk.get("n"))).public_key()
    if key.key_size < MIN_RSA_BITS:
        raise ValueError("RSA key too small")
    return key


def parse_jwks(document: Any) -> dict[str, rsa.RSAPublicKey]:
    """The usable RS256 keys of a JWKS, by kid; keys we cannot use are skipped."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError("not a JWKS document")
    keys: dict[str, rsa.RSAPublicKey] = {}
    for jwk in document["keys"]:
        kid = jwk.get("kid") if isinstance(jwk, dict) else None
        if not isinstance(kid, str) or not KID_PATTERN.match(kid):
            continue
        try:
            keys[kid] = rsa_key_from_jwk(jwk)
        except ValueError:
            log.debug("Skipping an unusable JWKS key")
    if not keys:
        raise ValueError("the JWKS holds no usable RS256 key")
    return keys


def _same_origin(url: str, other: str) -> bool:
    first, second = urlsplit(url), urlsplit(other)
    return (first.scheme, first.netloc.lower()) == (second.scheme, second.netloc.lower())


class SigningKeys:
    """The authority's signing keys by kid: cached, refetched (throttled) on an unknown kid."""

    def __init__(
        self,
        options: JwtOptions,
        fetch: Fetch | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.options = options
        self._fetch = fetch or (lambda url: fetch_json(url, options.fetch_timeout_seconds))
        self._monotonic = monotonic
        self._keys: dict[str, rsa.RSAPublicKey] = {}
        self._jwks_uri: str | None = None
        self._fetched_at: float | None = None
        self._attempted_at: float | None = None
        self._last_failed = False
        self._lock = asyncio.Lock()

    async def key_for(self, kid: str) -> rsa.RSAPublicKey:
        """The key named `kid`; refetches the key set at most once per refresh interval."""
        if kid not in self._keys or self._stale():
            async with self._lock:  # one fetch serves every request waiting on it
                if (kid not in self._keys or self._stale()) and self._may_refresh():
                    await self._refresh()
        key = self._keys.get(kid)
        if key is not None:
            return key
        if self._last_failed:
            raise SigningKeysUnavailableError("signing keys unavailable")
        raise TokenError("unknown signing key")

    def _stale(self) -> bool:
        fetched = self._fetched_at
        return fetched is None or self._monotonic() - fetched > self.options.keys_max_age_seconds

    def _may_refresh(self) -> bool:
        attempted = self._attempted_at
        interval = self.options.refresh_interval_seconds
        return attempted is None or self._monotonic() - attempted >= interval

    async def _refresh(self) -> None:
        self._attempted_at = self._monotonic()
        try:
            jwks_uri = self._jwks_uri or await self._discover_jwks_uri()
            keys = parse_jwks(await self._fetch(jwks_uri))
        except Exception as error:  # any failure: keep the cached keys, fail closed on new ones
            log.warning("Fetching signing keys from %s failed: %s", self.options.authority, error)
            self._jwks_uri = None  # rediscover next time, in case the key URL moved
            self._last_failed = True
            return
        self._jwks_uri = jwks_uri
        self._keys = keys  # replaced, not merged: keys the authority dropped stop working
        self._fetched_at = self._attempted_at
        self._last_failed = False

    async def _discover_jwks_uri(self) -> str:
        metadata = await self._fetch(self.options.metadata_url)
        jwks_uri = metadata.get("jwks_uri") if isinstance(metadata, dict) else None
        if not isinstance(jwks_uri, str) or not _same_origin(jwks_uri, self.options.authority):
            raise ValueError("the metadata's jwks_uri is missing or on another origin")
        return jwks_uri


# Token parsing --------------------------------------------------------------------------------


def _b64url_decode(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document = dict(pairs)
    if len(document) != len(pairs):
        raise ValueError("duplicate member")  # parsers disagree on which copy wins
    return document


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # Python would read NaN/Infinity: `exp` forever


def _json_object(segment: str, reason: str) -> dict[str, Any]:
    try:
        document = json.loads(
            _b64url_decode(segment),
            object_pairs_hook=_reject_duplicates,
            parse_constant=_reject_constant,
        )
    except (ValueError, binascii.Error, UnicodeDecodeError) as error:
        raise TokenError(reason) from error
    if not isinstance(document, dict):
        raise TokenError(reason)
    return document


def split_token(token: str, max_bytes: int) -> tuple[str, str, str]:
    """The three base64url segments of a compact JWS (the signature may be empty)."""
    if len(token) > max_bytes:
        raise TokenError("token too large")
    segments = token.split(".")
    if len(segments) != 3 or not all(SEGMENT_PATTERN.match(part) for part in segments):
        raise TokenError("malformed token")
    if not segments[0] or not segments[1]:
        raise TokenError("malformed token")
    return segments[0], segments[1], segments[2]


def checked_kid(header: Mapping[str, Any]) -> str:
    """The header's key id after the algorithm and type checks; nothing else is trusted."""
    if header.get("alg") != "RS256":
        raise TokenError("unsupported algorithm")
    if "crit" in header:
        raise TokenError("unsupported header")  # RFC 7515: unknown critical extensions fail
    typ = header.get("typ", "JWT")
    if not isinstance(typ, str) or typ.lower() not in ACCEPTED_TYPES:
        raise TokenError("unsupported token type")
    kid = header.get("kid")
    if kid is None:
        raise TokenError("missing key id")
    if not isinstance(kid, str) or not KID_PATTERN.match(kid):
        raise TokenError("invalid key id")
    return kid


def verify_signature(key: rsa.RSAPublicKey, signing_input: str, signature: str) -> None:
    """RSASSA-PKCS1-v1_5 with SHA-256 over `header.payload`."""
    try:
        key.verify(
            _b64url_decode(signature), signing_input.encode("ascii"), padding.PKCS1v15(),
            hashes.SHA256(),
        )  # fmt: skip
    except (InvalidSignature, ValueError, binascii.Error) as error:
        raise TokenError("invalid signature") from error


# Claims ---------------------------------------------------------------------------------------


# NumericDate bounds: no real token was issued before 2000 or expires after 2100. JSON reads
# `1e400` as infinity, which would otherwise be a token that never expires.
EARLIEST_TIME = 946_684_800  # 2000-01-01T00:00:00Z
LATEST_TIME = 4_102_444_800  # 2100-01-01T00:00:00Z
MAX_LIFETIME_SECONDS = 24 * 3600  # Entra's ceiling for an access token's lifetime is one day


def _time_claim(claims: Mapping[str, Any], name: str) -> int | None:
    """A NumericDate claim as whole seconds: a finite integer within the bounds above."""
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TokenError("invalid time claims")
    if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
        raise TokenError("invalid time claims")
    if not EARLIEST_TIME <= value <= LATEST_TIME:
        raise TokenError("invalid time claims")
    return int(value)


def check_times(claims: Mapping[str, Any], now: float, leeway: float) -> None:
    """`exp` and `iat` required, `nbf` when present, each with `leeway` seconds of clock skew;
    each a finite integer in sane bounds, and the token valid for at most a day."""
    expires, not_before, issued = (_time_claim(claims, name) for name in ("exp", "nbf", "iat"))
    if expires is None or issued is None:
        raise TokenError("missing time claims")
    if expires - min(issued, not_before or issued) > MAX_LIFETIME_SECONDS:
        raise TokenError("token lifetime too long")
    if now >= expires + leeway:
        raise TokenError("token expired")
    if not_before is not None and now + leeway < not_before:
        raise TokenError("token not yet valid")
    if now + leeway < issued:
        raise TokenError("token issued in the future")


def check_audience(claims: Mapping[str, Any], audiences: frozenset[str]) -> None:
    """`aud` (a string, or a list per RFC 7519) names this API."""
    audience = claims.get("aud")
    presented = [audience] if isinstance(audience, str) else audience
    if not isinstance(presented, list) or not audiences.intersection(
        value for value in presented if isinstance(value, str)
    ):
        raise TokenError("wrong audience")


def tenant_of(claims: Mapping[str, Any], mapping: ClaimMapping) -> str:
    """The token's `tid`, when it is on the allow-list."""
    tid = claims.get("tid")
    if not isinstance(tid, str) or not TENANT_ID_PATTERN.match(tid) or tid not in mapping.tenants:
        raise TokenError("tenant not allowed")
    return tid


def check_issuer(claims: Mapping[str, Any], tid: str, templates: tuple[str, ...]) -> None:
    """`iss` is one of the authority's issuers for this very tenant (v1 or v2)."""
    if claims.get("iss") not in {template.replace("{tid}", tid) for template in templates}:
        raise TokenError("untrusted issuer")


def _strings(claims: Mapping[str, Any], name: str) -> tuple[str, ...]:
    value = claims.get(name)
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise TokenError("invalid claims")
    return tuple(value)


def scopes_of(claims: Mapping[str, Any]) -> tuple[str, ...]:
    """Delegated scopes: `scp` is one space-separated string."""
    value = claims.get("scp")
    if value is None:
        return ()
    if not isinstance(value, str):
        raise TokenError("invalid claims")
    return tuple(value.split())


def has_group_overage(claims: Mapping[str, Any]) -> bool:
    """Whether the groups were left out of the token (too many to fit)."""
    names = claims.get("_claim_names")
    return claims.get("hasgroups") is True or (isinstance(names, dict) and "groups" in names)


def map_roles(
    app_roles: tuple[str, ...], scopes: tuple[str, ...], mapping: ClaimMapping
) -> tuple[str, ...]:
    """Our roles: the union of what each app role and each delegated scope maps to."""
    granted = {role for value in app_roles for role in mapping.app_roles.get(value, ())}
    granted |= {role for value in scopes for role in mapping.scopes.get(value, ())}
    return tuple(sorted(granted))


@dataclass(frozen=True)
class Identity:
    """A verified caller: the principal, whether its groups are unknown, and the raw claims."""

    principal: Principal
    groups_overage: bool
    claims: Mapping[str, Any]


def identity_from_claims(claims: Mapping[str, Any], mapping: ClaimMapping) -> Identity:
    """Verified claims -> Identity; an overage yields no groups (never guessed) and the flag."""
    tid = tenant_of(claims, mapping)
    user_id = claims.get(mapping.user_claim)
    if not isinstance(user_id, str) or not user_id:
        raise TokenError("missing user id")
    overage = has_group_overage(claims)
    groups = () if overage else _strings(claims, "groups")
    principal = Principal(
        user_id=user_id,
        tenant=mapping.tenants[tid],
        groups=groups,
        roles=map_roles(_strings(claims, "roles"), scopes_of(claims), mapping),
    )
    return Identity(principal, overage, MappingProxyType(dict(claims)))


class JwtValidator:
    """Validates bearer tokens from one authority (Entra ID, or the local dev issuer)."""

    def __init__(
        self,
        options: JwtOptions,
        fetch: Fetch | None = None,
        now: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.options = options
        self.keys = SigningKeys(options, fetch, monotonic)
        self._now = now

    async def validate(self, token: str) -> Identity:
        """The caller the token proves, or a TokenError with a short reason."""
        header_segment, payload_segment, signature = split_token(
            token, self.options.max_token_bytes
        )
        kid = checked_kid(_json_object(header_segment, "malformed header"))
        if not signature:  # after the header, so `alg: none` is named for what it is
            raise TokenError("missing signature")
        key = await self.keys.key_for(kid)
        verify_signature(key, f"{header_segment}.{payload_segment}", signature)
        claims = _json_object(payload_segment, "malformed claims")
        check_times(claims, self._now(), self.options.leeway_seconds)
        check_audience(claims, self.options.audiences)
        tid = tenant_of(claims, self.options.claims)
        check_issuer(claims, tid, self.options.issuers)
        return identity_from_claims(claims, self.options.claims)
