"""Secrets from Key Vault, with an environment fallback and a TTL cache that sees rotations.

`SecretStore.get(name)` looks in Key Vault first (through the real `SecretClient`, with the
credential from `shared.credentials`), then in the environment. Names map as Key Vault's
`llm-api-key` <-> env `LLM_API_KEY`: dashes become underscores and letters are upper-cased (Key
Vault names are case-insensitive, 1-127 of `0-9a-zA-Z-`; env names are not, so upper case wins).

What a source says is cached for `ttl_seconds`, so a rotated secret is picked up within one TTL.
Concurrent gets of one name share one fetch. When Key Vault fails (not a 404: an outage, a 403
for a disabled secret), a value fetched earlier is served for up to `max_stale_seconds`; without
one the error is raised. The environment is never used in that case: a vault that answered
"forbidden" or not at all is no reason to trust a possibly stale local value.

Values are `SecretValue`s, masked in `str`/`repr`/f-strings/logs; `.reveal()` is the one way out.
What the SDK could leak, and what stops it (verified by tests/shared/test_secrets.py):
- azure-core's `NetworkTraceLoggingPolicy` (`logging_enable`, off by default but switchable per
  client or per call) logs full request headers (the bearer token) and the response body (the
  value) at DEBUG: the client is built with it off and every call passes it off again. The
  always-on `HttpLoggingPolicy` redacts headers outside an allow-list and never logs bodies.
- a 200 whose body does not decode raises `DecodeError`, whose message quotes the body: SDK
  errors are reported by status and code only, never chained into ours, and the SDK's own span
  (whose status description is the exception text) is turned off for these calls.
See docs/secrets.md.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Self

from azure.core.exceptions import ResourceNotFoundError

from shared.environment import environment
from shared.telemetry import span

if TYPE_CHECKING:
    from azure.core.credentials_async import AsyncTokenCredential
    from azure.core.pipeline.transport import AsyncHttpTransport
    from azure.keyvault.secrets.aio import SecretClient


log = logging.getLogger(__name__)

_SECRET_NAME = re.compile(r"^[0-9a-zA-Z-]{1,127}$")
_MASK = "SecretValue('***')"
Source = Literal["keyvault", "env", "missing"]
Clock = Callable[[], float]


class SecretValue:
    """A secret that will not print itself: masked in str/repr/format; `reveal()` to use it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        """Wrap `value`."""
        self._value = value

    def reveal(self) -> str:
        """The plain value: call it only where the secret is handed to its consumer."""
        return self._value

    def __repr__(self) -> str:
        return _MASK

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return _MASK

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SecretValue):
            return NotImplemented
        # Constant time: comparing secrets must not leak how many leading characters match.
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    __hash__ = None  # type: ignore[assignment]  # hashing would make values dictionary keys

    def __reduce__(self) -> Any:
        # Pickling would carry the plain value into caches, queues and crash dumps.
        raise TypeError("SecretValue cannot be pickled")


class SecretError(Exception):
    """Base class of the store's errors; messages name secrets, never their values."""


class MissingSecret(SecretError, LookupError):
    """A required secret is neither in Key Vault nor in the environment."""

    def __init__(self, name: str, env_name: str, vault_url: str | None) -> None:
        """Name the secret and every place that was searched."""
        where = f"Key Vault {vault_url} nor " if vault_url else ""
        super().__init__(f"secret {name!r} is not set: not in {where}env {env_name}")
        self.secret_name = name


class SecretUnavailable(SecretError):
    """Key Vault could not be read for this secret and no earlier value may be served."""

    def __init__(self, name: str, reason: str) -> None:
        """Name the secret and say why the vault failed (status/code only)."""
        super().__init__(f"secret {name!r} could not be read from Key Vault: {reason}")
        self.secret_name = name


def env_name_of(name: str) -> str:
    """The environment variable that stands in for Key Vault secret `name`."""
    return name.replace("-", "_").upper()


def validate_name(name: str) -> str:
    """`name` when it is a valid Key Vault secret name; it is also a URL path segment."""
    if not _SECRET_NAME.match(name):
        raise ValueError("a secret name is 1-127 characters of 0-9, a-z, A-Z and '-'")
    return name


@dataclass(frozen=True)
class SecretStoreOptions:
    """Where secrets come from and how long what was read stays fresh."""

    vault_url: str | None = None
    ttl_seconds: float = 300.0
    max_stale_seconds: float = 3600.0
    retry_after_error_seconds: float = 30.0
    env_fallback: bool = True
    # A CA bundle path for a vault behind a private CA (or a local double); True: system CAs.
    connection_verify: bool | str = True

    def __post_init__(self) -> None:
        """Refuse settings that would weaken the store silently."""
        if self.vault_url is not None and not self.vault_url.lower().startswith("https://"):
            raise ValueError("vault_url must be an https:// URL (bearer tokens need TLS)")
        if self.connection_verify is False:
            raise ValueError("TLS verification cannot be turned off for Key Vault")
        if self.ttl_seconds <= 0:
            raise ValueError("ttl_seconds must be greater than zero (no cache-forever)")


@dataclass(frozen=True)
class _Entry:
    """What one lookup found, and until when it stands."""

    value: SecretValue | None
    source: Source
    fetched_at: float
    expires_at: float


class SecretStore:
    """Key Vault first, then the environment, cached for a TTL; see the module docstring."""

    def __init__(
        self,
        options: SecretStoreOptions,
        credential: AsyncTokenCredential | None = None,
        *,
        environ: Mapping[str, str] | None = None,
        clock: Clock = time.monotonic,
        transport: AsyncHttpTransport | None = None,
    ) -> None:
        """A vault_url needs a credential; `transport` replaces the SDK's HTTP transport."""
        if options.vault_url and credential is None:
            raise ValueError("a Key Vault URL needs a credential")
        self._options = options
        self._credential = credential
        self._environ = environment() if environ is None else environ
        self._clock = clock
        self._transport = transport
        self._client: SecretClient | None = None
        self._cache: dict[tuple[str, str | None], _Entry] = {}
        self._inflight: dict[tuple[str, str | None], asyncio.Task[_Entry]] = {}

    async def get(self, name: str, *, version: str | None = None) -> SecretValue | None:
        """The secret's value, or None when no source has it."""
        entry = await self._lookup(validate_name(name), version)
        return entry.value

    async def get_required(self, name: str, *, version: str | None = None) -> SecretValue:
        """The secret's value; MissingSecret (naming it) when no source has it."""
        value = await self.get(name, version=version)
        if value is None:
            raise MissingSecret(name, env_name_of(name), self._options.vault_url)
        return value

    def invalidate(self, name: str | None = None) -> None:
        """Forget cached values (of `name`, or all): the next get reads the sources again."""
        for key in [key for key in self._cache if name is None or key[0] == name.lower()]:
            del self._cache[key]

    async def close(self) -> None:
        """Close the Key Vault client (the credential belongs to its creator)."""
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def _lookup(self, name: str, version: str | None) -> _Entry:
        """The cached entry while fresh, else one shared fetch per key."""
        key = (name.lower(), version)  # Key Vault names are case-insensitive
        cached = self._cache.get(key)
        if cached is not None and self._clock() < cached.expires_at:
            return cached
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._refresh(key, cached))
            self._inflight[key] = task
            task.add_done_callback(lambda _: self._inflight.pop(key, None))
        # Shielded: one caller giving up must not cancel the fetch the others wait on.
        return await asyncio.shield(task)

    async def _refresh(self, key: tuple[str, str | None], previous: _Entry | None) -> _Entry:
        """Read the sources, falling back to `previous` when the vault fails."""
        name, version = key
        with span("secrets.get", **{"secret.name": name}) as current:
            try:
                entry = await self._read(name, version)
            except Exception as error:  # any SDK failure: its message may quote the body
                entry = self._stale_or_raise(name, previous, error)
            current.set_attribute("secret.source", entry.source)
        self._cache[key] = entry
        return entry

    async def _read(self, name: str, version: str | None) -> _Entry:
        """Key Vault, then (for the latest version only) the environment."""
        if self._options.vault_url:
            value = await self._read_vault(name, version)
            if value is not None:
                return self._entry(value, "keyvault")
        if self._options.env_fallback and version is None:
            value = self._environ.get(env_name_of(name))
            if value:
                return self._entry(SecretValue(value), "env")
        return self._entry(None, "missing")

    async def _read_vault(self, name: str, version: str | None) -> SecretValue | None:
        """The vault's value, or None on 404 (other errors raise)."""
        try:
            secret = await self._vault().get_secret(name, version, **self._call_options())
        except ResourceNotFoundError:
            return None
        return None if secret.value is None else SecretValue(secret.value)

    def _call_options(self) -> dict[str, Any]:
        """Per-call pipeline options; per call because they override the client's and transport's.

        logging_enable=False: a True here would make the network trace log the response body.
        tracing off: the SDK's span takes str(exception) as its status description, and a
        DecodeError's str quotes the response body, i.e. the value; `secrets.get` is our span.
        connection_verify: a transport passed in keeps its own default, which this overrides.
        """
        return {
            "logging_enable": False,
            "tracing_options": {"enabled": False},
            "connection_verify": self._options.connection_verify,
        }

    def _entry(self, value: SecretValue | None, source: Source) -> _Entry:
        """An entry fresh for one TTL from now."""
        now = self._clock()
        return _Entry(value, source, now, now + self._options.ttl_seconds)

    def _stale_or_raise(self, name: str, previous: _Entry | None, error: Exception) -> _Entry:
        """Serve the earlier value for a while, or raise SecretUnavailable."""
        reason = describe_error(error)
        now = self._clock()
        if previous is None or previous.value is None:
            deadline = now
        else:
            deadline = previous.fetched_at + self._options.max_stale_seconds
        if previous is None or now >= deadline:
            log.error("secret %s: Key Vault failed (%s), nothing to serve", name, reason)
            # Not chained: a response that failed to decode carries its body, maybe the value.
            raise SecretUnavailable(name, reason) from None
        log.warning("secret %s: Key Vault failed (%s), serving the earlier value", name, reason)
        retry_at = min(now + self._options.retry_after_error_seconds, deadline)
        return _Entry(previous.value, previous.source, previous.fetched_at, retry_at)

    def _vault(self) -> SecretClient:
        """The SecretClient, created on first use."""
        if self._client is None:
            self._client = self._create_client()
        return self._client

    def _create_client(self) -> SecretClient:
        """Build the SDK client with network-trace logging pinned off."""
        from azure.keyvault.secrets.aio import SecretClient

        options: dict[str, Any] = {
            "logging_enable": False,
            "connection_verify": self._options.connection_verify,
        }
        if self._transport is not None:
            options["transport"] = self._transport
        return SecretClient(self._options.vault_url or "", self._credential, **options)  # type: ignore[arg-type]


def describe_error(error: Exception) -> str:
    """The status and error code of an SDK error, never its message (it may quote the body)."""
    status = getattr(error, "status_code", None)
    odata = getattr(error, "error", None)  # the parsed {"error": {"code", ...}} body, if any
    code = getattr(error, "error_code", None) or getattr(odata, "code", None)
    code = code or type(error).__name__
    return f"HTTP {status} {code}" if status else code
