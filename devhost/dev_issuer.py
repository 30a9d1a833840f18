"""A local OIDC token issuer for development, served by the devhost like Entra ID's endpoints.

The app validates dev tokens with exactly the code that validates Entra tokens: the dev issuer
is just another authority, `{base_url}/runtime/dev-issuer`, with an OIDC discovery document at
`/v2.0/.well-known/openid-configuration`, a JWKS at `/discovery/v2.0/keys`, and v2-style issuers
`{authority}/{tid}/v2.0`. Its RSA key is generated once and kept under the host's data folder
(git-ignored `.devhost/dev-issuer/`), so tokens survive host restarts.

It refuses to run where `WEBSITE_INSTANCE_ID` is set (App Service / Functions in Azure): a
self-signed issuer there would let anyone holding the dev key act as any user.

`python -m devhost token --user alice --tenant contoso --role user --groups finance` prints a token.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import json
import logging
import os
import sys
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from aiohttp import web
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

log = logging.getLogger("devhost")

ROUTE_ROOT = "/runtime/dev-issuer"
METADATA_PATH = "/v2.0/.well-known/openid-configuration"
JWKS_PATH = "/discovery/v2.0/keys"
KEY_FILE = "signing-key.pem"
AZURE_MARKER = "WEBSITE_INSTANCE_ID"
AUDIENCE_SETTING = "AUTH_CLIENT_ID"  # the app's client id; tokens are minted for api://<it>
MAX_LIFETIME_SECONDS = 24 * 3600  # dev tokens are throwaway: no week-long tokens in shell history


class DevIssuerRefusedError(Exception):
    """The dev issuer was asked to run in Azure."""


def refuse_in_azure(environ: Mapping[str, str] | None = None) -> None:
    """Raises when running on an App Service / Functions instance."""
    if (os.environ if environ is None else environ).get(AZURE_MARKER):
        raise DevIssuerRefusedError("the dev issuer is disabled in Azure (WEBSITE_INSTANCE_ID)")


def authority_url(base_url: str) -> str:
    """The dev issuer's authority on a host reachable at `base_url`."""
    return base_url.rstrip("/") + ROUTE_ROOT


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_uint(number: int) -> str:
    return _b64url(number.to_bytes((number.bit_length() + 7) // 8, "big"))


def public_jwk(key: rsa.RSAPrivateKey) -> dict[str, str]:
    """The key's public half as a JWK, its kid the RFC 7638 thumbprint."""
    numbers = key.public_key().public_numbers()
    members = {"e": _b64url_uint(numbers.e), "kty": "RSA", "n": _b64url_uint(numbers.n)}
    canonical = json.dumps(members, separators=(",", ":"), sort_keys=True).encode()
    kid = _b64url(hashlib.sha256(canonical).digest())
    return {**members, "kid": kid, "use": "sig", "alg": "RS256"}


def _write_new_key(path: Path) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(pem)
    try:
        # link, not replace: when the host and the CLI race on first start, the first key wins
        # and both end up using it.
        with contextlib.suppress(FileExistsError):
            os.link(temporary, path)
    finally:
        temporary.unlink()


def load_or_create_key(folder: Path) -> rsa.RSAPrivateKey:
    """The persisted signing key, generated on first use (private to the current user)."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = folder / KEY_FILE
    if not path.exists():
        _write_new_key(path)
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError(f"{path} does not hold an RSA private key")
    return key


def sign_token(key: rsa.RSAPrivateKey, kid: str, claims: Mapping[str, Any]) -> str:
    """A compact RS256 JWS of `claims`."""
    header = {"alg": "RS256", "typ": "JWT", "kid": kid}
    signing_input = ".".join(
        _b64url(json.dumps(part, separators=(",", ":")).encode()) for part in (header, claims)
    )
    signature = key.sign(signing_input.encode("ascii"), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{_b64url(signature)}"


class DevIssuer:
    """Mints dev tokens and serves the discovery document and JWKS that verify them."""

    def __init__(
        self, data_dir: Path, base_url: str, environ: Mapping[str, str] | None = None
    ) -> None:
        refuse_in_azure(environ)
        self.authority = authority_url(base_url)
        self.key = load_or_create_key(data_dir / "dev-issuer")
        self.jwk = public_jwk(self.key)

    @property
    def kid(self) -> str:
        """The signing key's id."""
        return self.jwk["kid"]

    def issuer(self, tenant: str) -> str:
        """The `iss` of tokens for `tenant` (Entra v2 shape, under this authority)."""
        return f"{self.authority}/{tenant}/v2.0"

    def metadata(self) -> dict[str, Any]:
        """The OIDC discovery document, shaped like Entra's multi-tenant one."""
        return {
            "issuer": self.issuer("{tenantid}"),
            "jwks_uri": self.authority + JWKS_PATH,
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["token"],
            "subject_types_supported": ["pairwise"],
        }

    def jwks(self) -> dict[str, Any]:
        """The public key set."""
        return {"keys": [self.jwk]}

    def mint_token(
        self,
        user: str,
        tenant: str,
        roles: Iterable[str] = (),
        groups: Iterable[str] = (),
        audience: str = "api://docgate-dev",
        lifetime: float = 3600,
        scopes: Iterable[str] = (),
    ) -> str:
        """A signed access token for `user` in `tenant`, valid for `lifetime` seconds."""
        if not 0 < lifetime <= MAX_LIFETIME_SECONDS:
            raise ValueError(f"lifetime must be between 1 and {MAX_LIFETIME_SECONDS} seconds")
        now = int(time.time())
        claims: dict[str, Any] = {
            "aud": audience,
            "iss": self.issuer(tenant),
            "iat": now,
            "nbf": now,
            "exp": now + int(lifetime),
            "tid": tenant,
            "oid": user,
            "sub": user,
            "name": user,
            "preferred_username": f"{user}@{tenant}.dev",
            "ver": "2.0",
            "roles": list(roles),
            "groups": list(groups),
        }
        scope_list = list(scopes)
        if scope_list:
            claims["scp"] = " ".join(scope_list)
        return sign_token(self.key, self.kid, claims)

    def add_routes(self, app: web.Application) -> None:
        """Mounts the discovery document and the JWKS on the host's aiohttp app."""

        async def metadata(request: web.Request) -> web.Response:
            return web.json_response(self.metadata())

        async def jwks(request: web.Request) -> web.Response:
            return web.json_response(self.jwks())

        app.router.add_get(ROUTE_ROOT + METADATA_PATH, metadata)
        app.router.add_get(ROUTE_ROOT + JWKS_PATH, jwks)


def mount(
    app: web.Application, data_dir: Path, base_url: str, environ: Mapping[str, str] | None = None
) -> DevIssuer | None:
    """Serves the dev issuer on the host's app; in Azure, logs the refusal and serves nothing."""
    try:
        issuer = DevIssuer(data_dir, base_url, environ)
    except DevIssuerRefusedError as error:
        log.warning("%s", error)
        return None
    issuer.add_routes(app)
    log.info("Dev token issuer: %s (python -m devhost token --help)", issuer.authority)
    return issuer


# CLI ------------------------------------------------------------------------------------------


def _split_values(values: Sequence[str] | None) -> list[str]:
    """Repeated and comma-separated options, flattened: `--role a,b --role c`."""
    return [item.strip() for value in values or () for item in value.split(",") if item.strip()]


def parse_arguments(argv: Sequence[str]) -> argparse.Namespace:
    """`python -m devhost token --user U --tenant T [--role R] [--groups G] ...`."""
    parser = argparse.ArgumentParser(
        prog="python -m devhost token", description="Print a dev access token."
    )
    parser.add_argument("--user", required=True, help="oid/sub of the token")
    parser.add_argument("--tenant", required=True, help="tid of the token")
    parser.add_argument("--role", action="append", help="app role(s); repeat or comma-separate")
    parser.add_argument("--groups", action="append", help="group ids; repeat or comma-separate")
    parser.add_argument("--scope", action="append", help="delegated scope(s) for `scp`")
    parser.add_argument("--audience", help=f"default: api://${AUDIENCE_SETTING}")
    parser.add_argument("--lifetime-minutes", type=float, default=60.0)
    parser.add_argument("--app-dir", type=Path, default=Path.cwd(), help="folder of host.json")
    parser.add_argument("--data-dir", type=Path, default=None, help="default: APP_DIR/.devhost")
    parser.add_argument("--settings-file", type=Path, default=None)
    parser.add_argument("--host", default="127.0.0.1", help="the devhost's listen address")
    parser.add_argument("--port", type=int, default=7071, help="the devhost's port")
    return parser.parse_args(list(argv))


def _audience(arguments: argparse.Namespace) -> str | None:
    from devhost.config import load_local_settings

    if arguments.audience:
        return arguments.audience
    load_local_settings(arguments.settings_file or arguments.app_dir / "local.settings.json")
    client_id = os.environ.get(AUDIENCE_SETTING)
    return f"api://{client_id}" if client_id else None


def main(argv: Sequence[str]) -> int:
    """Prints a dev token on stdout; returns the process exit code."""
    arguments = parse_arguments(argv)
    audience = _audience(arguments)
    if audience is None:
        print(f"Pass --audience or set {AUDIENCE_SETTING} in local.settings.json", file=sys.stderr)
        return 2
    data_dir = arguments.data_dir or arguments.app_dir / ".devhost"
    try:
        issuer = DevIssuer(data_dir, f"http://{arguments.host}:{arguments.port}")
        token = issuer.mint_token(
            arguments.user,
            arguments.tenant,
            roles=_split_values(arguments.role),
            groups=_split_values(arguments.groups),
            audience=audience,
            lifetime=arguments.lifetime_minutes * 60,
            scopes=_split_values(arguments.scope),
        )
    except (DevIssuerRefusedError, ValueError) as error:
        print(f"Cannot mint a token: {error}", file=sys.stderr)
        return 2
    print(token)
    return 0
