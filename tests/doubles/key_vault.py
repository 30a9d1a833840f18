"""A local Key Vault (secrets) double over HTTPS, for the real `azure.keyvault.secrets` client.

The vault speaks the service's challenge protocol: a request without `Authorization` gets 401
with `WWW-Authenticate: Bearer authorization="https://login.microsoftonline.com/<tenant>",
resource="https://vault.azure.net"`, then only `Authorization: Bearer <token>` is accepted.

`GET /secrets/{name}` and `/secrets/{name}/{version}` answer the service's JSON (`value, id,
attributes{enabled, created, updated, recoveryLevel, recoverableDays}, contentType?, tags`);
unknown names or versions get 404 `SecretNotFound`, a disabled secret 403 `Forbidden`.
`set_secret` adds a version (rotation); `disable` turns a secret off.

TLS: `make_tls` writes a throw-away CA and a server certificate for the vault's host name. The
SDK refuses bearer tokens over HTTP and checks that the challenge's resource (vault.azure.net)
is a parent domain of the vault host, so the vault lives at `https://kv-<random>.vault.azure.net`
and `transport()` returns an SDK transport whose resolver sends every host to this double's
loopback port: production URL shape, full TLS verification (`connection_verify=ca_path`), and
no test traffic can leave the machine. A random host per double also keeps the SDK's
process-wide challenge cache from carrying one test's challenge into the next.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import socket
import ssl
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import ClientSession, TCPConnector, web
from aiohttp.abc import AbstractResolver, ResolveResult
from azure.core.credentials import AccessToken
from azure.core.pipeline.transport import AioHttpTransport
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.doubles import Handler, HttpDouble, RecordedRequest

SECRETS_ROUTE = "secrets"
RESOURCE = "https://vault.azure.net"
SCOPE = f"{RESOURCE}/.default"
DEFAULT_TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
NOT_FOUND_HELP = (
    "If you recently deleted this secret you may be able to recover it using the correct "
    "recovery command. For help resolving this issue, please see "
    "https://go.microsoft.com/fwlink/?linkid=2125182"
)


@dataclass(frozen=True)
class TlsFiles:
    """A CA certificate to trust, and the server certificate and key it signed."""

    ca_path: Path
    cert_path: Path
    key_path: Path

    def server_context(self) -> ssl.SSLContext:
        """The TLS context the double serves with."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert_path, self.key_path)
        return context


def make_tls(directory: Path, hostnames: Iterable[str]) -> TlsFiles:
    """Write a fresh CA and a server certificate for `hostnames` (plus 127.0.0.1)."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "docgate test CA")])
    ca_cert = _certificate(ca_name, ca_name, ca_key.public_key(), ca_key, ca=True)
    server_key = ec.generate_private_key(ec.SECP256R1())
    names = list(hostnames)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    alt_names: list[x509.GeneralName] = [x509.DNSName(name) for name in names]
    alt_names.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    server_cert = _certificate(
        subject, ca_name, server_key.public_key(), ca_key, ca=False, alt_names=alt_names
    )
    files = TlsFiles(directory / "ca.pem", directory / "server.pem", directory / "server.key")
    files.ca_path.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    files.cert_path.write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    files.key_path.write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return files


def _certificate(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: Any,
    signing_key: ec.EllipticCurvePrivateKey,
    *,
    ca: bool,
    alt_names: list[x509.GeneralName] | None = None,
) -> x509.Certificate:
    """One certificate valid from an hour ago for a day."""
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        return builder.add_extension(_key_usage(cert_sign=True), critical=True).sign(
            signing_key, hashes.SHA256()
        )
    server_auth = x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH])
    builder = (
        builder.add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(server_auth, critical=False)
        .add_extension(x509.SubjectAlternativeName(alt_names or []), critical=False)
    )
    return builder.sign(signing_key, hashes.SHA256())


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    """A CA signs certificates; a server certificate signs its handshakes."""
    return x509.KeyUsage(
        digital_signature=not cert_sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


class LoopbackResolver(AbstractResolver):
    """Resolves every host name to the double's loopback port."""

    def __init__(self, port: int) -> None:
        """Send every connection to 127.0.0.1:`port`."""
        self.port = port

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        """The one loopback address, whatever was asked."""
        return [
            ResolveResult(
                hostname=host,
                host="127.0.0.1",
                port=self.port,
                family=socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
        ]

    async def close(self) -> None:
        """Nothing to release."""


@dataclass
class TokenRequest:
    """One get_token call the fake credential received."""

    scopes: tuple[str, ...]
    tenant_id: str | None
    enable_cae: bool


@dataclass
class FakeCredential:
    """An async credential handing out one fixed token, recording what it was asked for."""

    token: str = "kv-test-token"
    requests: list[TokenRequest] = field(default_factory=list)

    async def get_token(
        self,
        *scopes: str,
        claims: str | None = None,
        tenant_id: str | None = None,
        enable_cae: bool = False,
        **kwargs: Any,
    ) -> AccessToken:
        """The fixed token, valid for an hour."""
        self.requests.append(TokenRequest(scopes, tenant_id, enable_cae))
        return AccessToken(self.token, int(time.time()) + 3600)

    async def close(self) -> None:
        """Nothing to release."""

    async def __aenter__(self) -> FakeCredential:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        return None


@dataclass
class StoredVersion:
    """One version of a secret."""

    version: str
    value: str
    created: int
    content_type: str | None = None
    tags: dict[str, str] = field(default_factory=dict)


class KeyVaultDouble(HttpDouble):
    """The secrets data plane of one vault, over HTTPS, behind the challenge protocol."""

    def __init__(
        self,
        tls_dir: Path,
        *,
        token: str = "kv-test-token",
        tenant: str = DEFAULT_TENANT,
    ) -> None:
        """Serve a vault at a random *.vault.azure.net host accepting bearer `token`."""
        super().__init__(key=token)
        self.host = f"kv-{uuid.uuid4().hex[:12]}.vault.azure.net"
        self.tenant = tenant
        self.tls = make_tls(tls_dir, [self.host])
        self.secrets: dict[str, list[StoredVersion]] = {}
        self.disabled: set[str] = set()
        self.raw_bodies: dict[str, bytes] = {}

    @property
    def vault_url(self) -> str:
        """The URL to give SecretClient (standard port: the resolver redirects it)."""
        return f"https://{self.host}"

    @property
    def endpoint(self) -> str:
        """The vault URL (the base class's plain-HTTP endpoint does not apply)."""
        return self.vault_url

    @property
    def challenge(self) -> str:
        """The WWW-Authenticate header of a 401."""
        authority = f"https://login.microsoftonline.com/{self.tenant}"
        return f'Bearer authorization="{authority}", resource="{RESOURCE}"'

    def transport(self) -> AioHttpTransport:
        """An SDK transport that reaches this double whatever host the URL names."""
        if self._port is None:
            raise RuntimeError("the double is not started")
        connector = TCPConnector(resolver=LoopbackResolver(self._port))
        return AioHttpTransport(session=ClientSession(connector=connector), session_owner=True)

    def set_secret(self, name: str, value: str, **attributes: Any) -> str:
        """Add a new version of `name` (rotation); returns the version id."""
        version = uuid.uuid4().hex
        stored = StoredVersion(version, value, int(time.time()), **attributes)
        self.secrets.setdefault(name.lower(), []).append(stored)
        return version

    def disable(self, name: str) -> None:
        """Make the secret answer 403 Forbidden (SecretDisabled), as a disabled secret does."""
        self.disabled.add(name.lower())

    def answer_raw(self, name: str, body: bytes) -> None:
        """Answer `name` with 200 and exactly `body` (for malformed responses)."""
        self.raw_bodies[name.lower()] = body

    def unauthenticated(self) -> list[RecordedRequest]:
        """The requests that came without Authorization."""
        return [r for r in self.requests if "Authorization" not in r.headers]

    def authenticated(self) -> list[RecordedRequest]:
        """The requests that came with Authorization."""
        return [r for r in self.requests if "Authorization" in r.headers]

    def routes(self) -> list[web.RouteDef]:
        """GET a secret's latest version or a given one."""
        return [
            web.get("/secrets/{name}", self._get_secret, name=SECRETS_ROUTE),
            web.get("/secrets/{name}/", self._get_secret, name=f"{SECRETS_ROUTE}-slash"),
            web.get("/secrets/{name}/{version}", self._get_secret, name=f"{SECRETS_ROUTE}-version"),
        ]

    async def start(self) -> None:
        """Serve HTTPS on a free loopback port."""
        app = web.Application(middlewares=[self._middleware])
        app.add_routes(self.routes())
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self.tls.server_context())
        await site.start()
        self._port = self._runner.addresses[0][1]

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Record the request, run the challenge protocol, then scripted failures."""
        route = request.match_info.route.name or "unknown"
        self.requests.append(
            RecordedRequest(
                route=route.removesuffix("-slash").removesuffix("-version"),
                method=request.method,
                path=request.path,
                query=dict(request.query),
                headers=dict(request.headers),
                body=await request.read(),
            )
        )
        if "api-version" not in request.query:
            return kv_error(400, "BadParameter", "The api-version query parameter is missing.")
        authorization = request.headers.get("Authorization")
        if authorization is None:
            return self._challenge_response("AKV10000: Request is missing a Bearer or PoP token.")
        if authorization != f"Bearer {self.key}":
            return self._challenge_response("AKV10032: Invalid issuer.")
        failure = self._take_failure(SECRETS_ROUTE)
        if failure is not None:
            return kv_error(failure.status, failure.code, failure.message)
        return await handler(request)

    def _challenge_response(self, message: str) -> web.Response:
        """401 with the Key Vault challenge."""
        response = kv_error(401, "Unauthorized", message)
        response.headers["WWW-Authenticate"] = self.challenge
        return response

    async def _get_secret(self, request: web.Request) -> web.Response:
        """The secret's version as the service returns it."""
        shown_name = request.match_info["name"]
        name = shown_name.lower()
        version = request.match_info.get("version") or None
        if name in self.raw_bodies:
            return web.Response(body=self.raw_bodies[name], content_type="application/json")
        stored = self._find(name, version)
        if stored is None:
            shown = f"{shown_name}/{version}" if version else shown_name
            message = f"A secret with (name/id) {shown} was not found in this key vault. "
            return kv_error(404, "SecretNotFound", message + NOT_FOUND_HELP)
        if name in self.disabled:
            return kv_error(
                403,
                "Forbidden",
                "Operation get is not allowed on a disabled secret.",
                inner={"code": "SecretDisabled"},
            )
        return web.json_response(self._bundle(shown_name, stored))

    def _find(self, name: str, version: str | None) -> StoredVersion | None:
        """The given version, or the latest."""
        versions = self.secrets.get(name, [])
        if version is None:
            return versions[-1] if versions else None
        return next((stored for stored in versions if stored.version == version), None)

    def _bundle(self, name: str, stored: StoredVersion) -> dict[str, Any]:
        """The SecretBundle JSON."""
        bundle: dict[str, Any] = {
            "value": stored.value,
            "id": f"{self.vault_url}/secrets/{name}/{stored.version}",
            "attributes": {
                "enabled": True,
                "created": stored.created,
                "updated": stored.created,
                "recoveryLevel": "Recoverable+Purgeable",
                "recoverableDays": 90,
            },
            "tags": stored.tags,
        }
        if stored.content_type:
            bundle["contentType"] = stored.content_type
        return bundle


def kv_error(
    status: int, code: str, message: str, *, inner: dict[str, str] | None = None
) -> web.Response:
    """Key Vault's error body: `{"error": {"code", "message", "innererror"?}}`."""
    error: dict[str, Any] = {"code": code, "message": message}
    if inner:
        error["innererror"] = inner
    return web.Response(
        status=status, body=json.dumps({"error": error}), content_type="application/json"
    )
