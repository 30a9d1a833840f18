"""Serves `blobTrigger` functions by polling, with the real host's receipts and poison queue."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import re
from collections.abc import Callable, Iterable, Mapping
from contextlib import AsyncExitStack, suppress
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import azure.functions as func
from azure.core import MatchConditions
from azure.core.exceptions import (
    AzureError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.functions.blob import BlobConverter
from azure.functions.meta import Datum
from azure.storage.blob import BlobProperties
from azure.storage.blob.aio import BlobServiceClient, ContainerClient
from azure.storage.queue import TextBase64EncodePolicy
from azure.storage.queue.aio import QueueClient

from devhost.config import HostConfig, UnsetAppSetting, expand_app_settings
from devhost.functions import BLOB_TRIGGER, FunctionInfo
from devhost.invoker import Invoker

log = logging.getLogger("devhost.blob")

HOSTS_CONTAINER = "azure-webjobs-hosts"
RECEIPTS_DIRECTORY = "blobreceipts"
POISON_QUEUE = "webjobs-blobtrigger-poison"
HOST_STORAGE_SETTING = "AzureWebJobsStorage"
DEFAULT_POISON_BLOB_THRESHOLD = 5
# Azurite's well-known development account (public, documented; not a secret).
DEVELOPMENT_STORAGE = (
    "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
    "AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/"
    "K1SZFPTOtr/KBHBeksoGMGw==;"
    "BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;"
    "QueueEndpoint=http://127.0.0.1:10001/devstoreaccount1;"
    "TableEndpoint=http://127.0.0.1:10002/devstoreaccount1;"
)
_INCOMPLETE = "Incomplete"  # the real host's receipt flag: present while a version is unsettled
_ATTEMPTS = "Attempts"  # ours: survives restarts, as a queue message's dequeue count would
_POISONED = "Poisoned"
# The SDK's default retries wait 15 s and more; the next poll is our retry, so one quick retry
# (about 1 s: initial_backoff + increment_base ** 1) is enough.
_CLIENT_RETRY: dict[str, Any] = {
    "retry_total": 1,
    "initial_backoff": 0,
    "increment_base": 1,
    "random_jitter_range": 0.5,
}
# Connection errors and storage faults that a later poll can get past.
_TRANSIENT = (AzureError, aiohttp.ClientError, OSError, asyncio.TimeoutError)

ClientBinding = Callable[[FunctionInfo], Any]


class BlobTriggerError(Exception):
    """A blob trigger cannot be served: bad path, missing or unsupported connection setting."""


@dataclass(frozen=True)
class BlobOptions:
    """host.json `extensions.blobs`: retries before poisoning and concurrent invocations."""

    poison_blob_threshold: int = DEFAULT_POISON_BLOB_THRESHOLD
    max_degree_of_parallelism: int = field(default_factory=lambda: 8 * (os.cpu_count() or 1))


def read_blob_options(host_json: Mapping[str, Any]) -> BlobOptions:
    """Reads `extensions.blobs.poisonBlobThreshold` / `maxDegreeOfParallelism` from host.json."""
    blobs = (host_json.get("extensions") or {}).get("blobs") or {}
    defaults = BlobOptions()
    threshold = int(blobs.get("poisonBlobThreshold", defaults.poison_blob_threshold))
    parallelism = int(blobs.get("maxDegreeOfParallelism", defaults.max_degree_of_parallelism))
    if threshold < 1 or parallelism < 1:
        raise BlobTriggerError("extensions.blobs values must be at least 1")
    return BlobOptions(poison_blob_threshold=threshold, max_degree_of_parallelism=parallelism)


@dataclass(frozen=True)
class BlobPathPattern:
    """A trigger path split into its container and a blob-name pattern with `{name}` bindings."""

    container: str
    blob_pattern: str
    prefix: str
    regex: re.Pattern[str]

    def match(self, blob_name: str) -> dict[str, str] | None:
        """The binding values when `blob_name` fits the pattern, else None."""
        found = self.regex.fullmatch(blob_name)
        return None if found is None else found.groupdict()


_TOKEN = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}|[{}]")


def parse_blob_path(path: str) -> BlobPathPattern:
    """Parses `container/pattern` the way the host's binding templates do (`{{` is a literal)."""
    container, _, blob_pattern = path.strip().strip("/").partition("/")
    if not container or "{" in container or "}" in container:
        raise BlobTriggerError(f"blob trigger path {path!r} needs a literal container name")
    parts: list[str] = []
    prefix: str | None = None
    names: set[str] = set()
    position = 0
    for token in _TOKEN.finditer(blob_pattern):
        parts.append(re.escape(blob_pattern[position : token.start()]))
        position = token.end()
        text = token.group(0)
        if text in ("{{", "}}"):
            parts.append(re.escape(text[0]))
            continue
        name = token.group(1)
        if name is None or name in names:
            raise BlobTriggerError(f"blob trigger path {path!r} has a malformed binding")
        names.add(name)
        if prefix is None:
            prefix = _unescape_braces(blob_pattern[: token.start()])
        # Greedy, like the host's `(?<name>.*)`: in `{name}.{ext}` the last dot splits.
        parts.append(f"(?P<{name}>.*)")
    parts.append(re.escape(blob_pattern[position:]))
    literal = _unescape_braces(blob_pattern)
    return BlobPathPattern(
        container=container,
        blob_pattern=blob_pattern,
        prefix=literal if prefix is None else prefix,
        regex=re.compile("".join(parts), re.DOTALL),
    )


def _unescape_braces(text: str) -> str:
    return text.replace("{{", "{").replace("}}", "}")


def expand_development_storage(connection_string: str) -> str:
    """Replaces `UseDevelopmentStorage=true` with Azurite's explicit 127.0.0.1 string."""
    pairs = dict(part.split("=", 1) for part in connection_string.strip().split(";") if "=" in part)
    if pairs.get("UseDevelopmentStorage", "").lower() != "true":
        return connection_string
    proxy = pairs.get("DevelopmentStorageProxyUri")
    if not proxy:
        return DEVELOPMENT_STORAGE
    return DEVELOPMENT_STORAGE.replace("http://127.0.0.1", proxy.rstrip("/"))


def resolve_connection(name: str | None, environ: Mapping[str, str]) -> str:
    """The connection string an app setting names (`AzureWebJobs<name>` first, as the host)."""
    setting = name or HOST_STORAGE_SETTING
    candidates = [setting] if setting.startswith("AzureWebJobs") else [f"AzureWebJobs{setting}"]
    candidates.append(setting)
    for candidate in candidates:
        value = environ.get(candidate)
        if value:
            return expand_development_storage(value)
    if any(key.startswith(f"{candidate}__") for key in environ for candidate in candidates):
        raise BlobTriggerError(
            f"connection {setting!r} is identity-based (`{setting}__...`); the local host "
            "supports connection strings only (e.g. UseDevelopmentStorage=true)"
        )
    raise BlobTriggerError(f"app setting {setting!r} (the blob connection) is not set")


def quote_etag(etag: str) -> str:
    """The ETag in its header form (`"0x..."`), which listings return without quotes."""
    return etag if etag.startswith('"') else f'"{etag}"'


def function_id(function: FunctionInfo) -> str:
    """The host's id for a function, used in receipts and poison messages."""
    return f"Host.Functions.{function.name}"


def receipt_name(host_id: str, function: FunctionInfo, container: str, blob: str, etag: str) -> str:
    """Receipt blob name in `azure-webjobs-hosts`; the ETag precedes the (slashed) blob name."""
    return f"{RECEIPTS_DIRECTORY}/{host_id}/{function_id(function)}/{etag}/{container}/{blob}"


def poison_message(
    function: FunctionInfo, container: str, blob: str, etag: str, blob_type: str
) -> str:
    """The host's `BlobTriggerMessage` JSON, as it lands in `webjobs-blobtrigger-poison`."""
    return json.dumps(
        {
            "Type": "BlobTrigger",
            "FunctionId": function_id(function),
            "BlobType": blob_type,
            "ContainerName": container,
            "BlobName": blob,
            "ETag": etag,
        },
        separators=(",", ":"),
    )


def _iso(moment: Any) -> str | None:
    return moment.isoformat() if moment is not None else None


def describe_properties(properties: BlobProperties) -> dict[str, Any]:
    """Blob properties under the .NET `BlobProperties` names the host serialises."""
    settings = properties.content_settings
    content_hash = settings.content_md5
    blob_type = getattr(properties.blob_type, "value", properties.blob_type)
    return {
        "ContentLength": properties.size,
        "ContentType": settings.content_type,
        "ContentEncoding": settings.content_encoding,
        "ContentLanguage": settings.content_language,
        "ContentDisposition": settings.content_disposition,
        "CacheControl": settings.cache_control,
        "ContentHash": base64.b64encode(content_hash).decode() if content_hash else None,
        "ETag": quote_etag(properties.etag),
        "LastModified": _iso(properties.last_modified),
        "CreatedOn": _iso(properties.creation_time),
        "BlobType": blob_type,
        "AccessTier": properties.blob_tier,
        "LeaseState": properties.lease.state,
        "LeaseStatus": properties.lease.status,
        "IsServerEncrypted": properties.server_encrypted,
    }


def build_input_stream(
    content: bytes,
    blob_path: str,
    properties: BlobProperties,
    uri: str,
    bindings: Mapping[str, str],
) -> func.InputStream:
    """The trigger argument, decoded by the SDK's own converter from host-shaped metadata."""
    metadata = {
        "BlobTrigger": Datum(blob_path, "string"),
        "Uri": Datum(uri, "string"),
        "Properties": Datum(json.dumps(describe_properties(properties)), "json"),
        "Metadata": Datum(json.dumps(dict(properties.metadata or {})), "json"),
    }
    metadata.update({name: Datum(value, "string") for name, value in bindings.items()})
    return BlobConverter.decode(Datum(content, "bytes"), trigger_metadata=metadata)


@dataclass(frozen=True)
class _Watch:
    function: FunctionInfo
    pattern: BlobPathPattern
    connection_string: str


@dataclass(frozen=True)
class _Receipt:
    name: str
    etag: str
    metadata: dict[str, str]

    @property
    def completed(self) -> bool:
        return not any(key.lower() == _INCOMPLETE.lower() for key in self.metadata)

    @property
    def attempts(self) -> int:
        for key, value in self.metadata.items():
            if key.lower() == _ATTEMPTS.lower():
                return int(value) if value.isdigit() else 0
        return 0


class _ReceiptStore:
    """Receipts in the host storage account: one blob per function and blob version."""

    def __init__(self, container: ContainerClient) -> None:
        self._container = container

    async def prepare(self) -> None:
        with suppress(ResourceExistsError):
            await self._container.create_container()

    async def read(self, name: str) -> _Receipt | None:
        try:
            properties = await self._container.get_blob_client(name).get_blob_properties()
        except ResourceNotFoundError:
            return None
        return _Receipt(name, properties.etag, dict(properties.metadata or {}))

    async def create(self, name: str) -> _Receipt | None:
        """Creates an incomplete receipt; None when another host created it first."""
        metadata = {_INCOMPLETE: _INCOMPLETE, _ATTEMPTS: "0"}
        try:
            blob = self._container.get_blob_client(name)
            result = await blob.upload_blob(b"", metadata=metadata, overwrite=False)
        except ResourceExistsError:
            return None
        return _Receipt(name, result["etag"], metadata)

    async def update(self, receipt: _Receipt, metadata: dict[str, str]) -> _Receipt | None:
        """Replaces the metadata if nobody changed the receipt since it was read, else None."""
        try:
            result = await self._container.get_blob_client(receipt.name).set_blob_metadata(
                metadata, etag=receipt.etag, match_condition=MatchConditions.IfNotModified
            )
        except (ResourceModifiedError, ResourceNotFoundError):
            return None
        return _Receipt(receipt.name, result["etag"], metadata)


@dataclass(frozen=True)
class _Version:
    container: str
    name: str
    etag: str
    blob_type: str


class BlobTriggerPoller:
    """Polls each watched container and runs every matching function once per blob version."""

    def __init__(
        self,
        config: HostConfig,
        functions: Iterable[FunctionInfo],
        invoker: Invoker,
        client_binding: ClientBinding | None,
        options: BlobOptions | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self._config = config
        self._invoker = invoker
        self._client_binding = client_binding
        self._options = options or BlobOptions()
        environment = os.environ if environ is None else environ
        self._watches = [
            self._watch(function, environment)
            for function in functions
            if function.trigger_type == BLOB_TRIGGER
        ]
        self._host_storage = (
            resolve_connection(HOST_STORAGE_SETTING, environment) if self._watches else ""
        )
        self._semaphore = asyncio.Semaphore(self._options.max_degree_of_parallelism)
        self._in_flight: set[tuple[str, str, str]] = set()
        self._settled: set[tuple[str, str, str, str]] = set()
        self._stack: AsyncExitStack | None = None
        self._services: dict[str, BlobServiceClient] = {}
        self._receipts: _ReceiptStore | None = None

    def _watch(self, function: FunctionInfo, environ: Mapping[str, str]) -> _Watch:
        if function.durable_client_arg and self._client_binding is None:
            raise BlobTriggerError(
                f"function {function.name} takes a durable client, but no durable engine runs"
            )
        try:
            path = expand_app_settings(function.trigger["path"], environ)
            pattern = parse_blob_path(path)
            connection = resolve_connection(function.trigger.get("connection"), environ)
        except (BlobTriggerError, UnsetAppSetting) as error:
            raise BlobTriggerError(f"function {function.name}: {error}") from error
        return _Watch(function, pattern, connection)

    @property
    def function_names(self) -> list[str]:
        """The functions this poller serves."""
        return [watch.function.name for watch in self._watches]

    async def run(self) -> None:
        """Polls until cancelled; one loop per (account, container)."""
        if not self._watches:
            return
        async with AsyncExitStack() as stack, asyncio.TaskGroup() as tasks:
            self._stack = stack
            host = await self._service(self._host_storage)
            self._receipts = _ReceiptStore(host.get_container_client(HOSTS_CONTAINER))
            await self._prepare_receipts()
            for (connection, container), watches in self._group_watches().items():
                service = await self._service(connection)
                tasks.create_task(
                    self._poll(service.get_container_client(container), watches, tasks)
                )

    async def _prepare_receipts(self) -> None:
        while True:
            try:
                await self._receipts.prepare()
                return
            except _TRANSIENT as error:
                log.warning("Cannot reach host storage for blob receipts (%s); retrying", error)
                await asyncio.sleep(self._config.blob_poll_seconds)

    def _group_watches(self) -> dict[tuple[str, str], list[_Watch]]:
        groups: dict[tuple[str, str], list[_Watch]] = {}
        for watch in self._watches:
            groups.setdefault((watch.connection_string, watch.pattern.container), []).append(watch)
        return groups

    async def _service(self, connection_string: str) -> BlobServiceClient:
        service = self._services.get(connection_string)
        if service is None:
            service = BlobServiceClient.from_connection_string(connection_string, **_CLIENT_RETRY)
            self._services[connection_string] = service
            await self._stack.enter_async_context(service)
        return service

    async def _poll(
        self, container: ContainerClient, watches: list[_Watch], tasks: asyncio.TaskGroup
    ) -> None:
        names = ", ".join(watch.function.name for watch in watches)
        log.info("Polling container '%s' for %s", container.container_name, names)
        while True:
            try:
                await self._scan(container, watches, tasks)
            except _TRANSIENT as error:
                log.warning("Polling '%s' failed (%s); retrying", container.container_name, error)
            await asyncio.sleep(self._config.blob_poll_seconds)

    async def _scan(
        self, container: ContainerClient, watches: list[_Watch], tasks: asyncio.TaskGroup
    ) -> None:
        prefix = _common_prefix([watch.pattern.prefix for watch in watches])
        seen: set[tuple[str, str, str, str]] = set()
        try:
            async for blob in container.list_blobs(name_starts_with=prefix or None):
                version = _Version(
                    container.container_name,
                    blob.name,
                    quote_etag(blob.etag),
                    getattr(blob.blob_type, "value", str(blob.blob_type)),
                )
                for watch in watches:
                    seen.add(self._version_key(watch, version))
                    self._consider(container, watch, version, tasks)
        except ResourceNotFoundError:
            log.debug("Container '%s' does not exist yet", container.container_name)
        # Forget versions no longer listed, so the settled set stays as small as the container.
        elsewhere = {key for key in self._settled if key[1] != container.container_name}
        self._settled = elsewhere | (self._settled & seen)

    @staticmethod
    def _version_key(watch: _Watch, version: _Version) -> tuple[str, str, str, str]:
        return (watch.function.name, version.container, version.name, version.etag)

    def _consider(
        self, container: ContainerClient, watch: _Watch, version: _Version, tasks: asyncio.TaskGroup
    ) -> None:
        bindings = watch.pattern.match(version.name)
        blob_key = (watch.function.name, version.container, version.name)
        if bindings is None or blob_key in self._in_flight:
            return
        if self._version_key(watch, version) in self._settled:
            return
        self._in_flight.add(blob_key)
        tasks.create_task(self._process(container, watch, version, bindings, blob_key))

    async def _process(
        self,
        container: ContainerClient,
        watch: _Watch,
        version: _Version,
        bindings: dict[str, str],
        blob_key: tuple[str, str, str],
    ) -> None:
        try:
            async with self._semaphore:
                await self._process_version(container, watch, version, bindings)
        except _TRANSIENT as error:
            log.warning("Blob '%s/%s': storage error (%s); retrying", *blob_key[1:], error)
        except Exception:
            log.exception("Blob '%s/%s': unexpected error; retrying", *blob_key[1:])
        finally:
            self._in_flight.discard(blob_key)

    async def _process_version(
        self, container: ContainerClient, watch: _Watch, version: _Version, bindings: dict[str, str]
    ) -> None:
        name = receipt_name(
            self._config.host_id, watch.function, version.container, version.name, version.etag
        )
        receipt = await self._receipts.read(name) or await self._receipts.create(name)
        if receipt is None:
            return  # another host created it a moment ago; look again next poll
        if receipt.completed:
            self._settled.add(self._version_key(watch, version))
            return
        if receipt.attempts >= self._options.poison_blob_threshold:
            # A crash after the last attempt: finish what it started, without another run.
            await self._poison(watch, version, receipt, receipt.attempts)
            return
        blob = container.get_blob_client(version.name)
        try:
            download = await blob.download_blob(
                etag=version.etag, match_condition=MatchConditions.IfNotModified
            )
            content = await download.readall()
        except (ResourceModifiedError, ResourceNotFoundError):
            return  # changed or deleted since listed; the next poll sees the current version
        attempt = receipt.attempts + 1
        receipt = await self._receipts.update(receipt, _incomplete_metadata(attempt))
        if receipt is None:
            return  # another host took this attempt
        argument = build_input_stream(
            content, f"{version.container}/{version.name}", download.properties, blob.url, bindings
        )
        if await self._invoke(watch, version, argument, attempt):
            await self._receipts.update(receipt, {_ATTEMPTS: str(attempt)})
            self._settled.add(self._version_key(watch, version))
        elif attempt >= self._options.poison_blob_threshold:
            await self._poison(watch, version, receipt, attempt)

    async def _invoke(
        self, watch: _Watch, version: _Version, argument: func.InputStream, attempt: int
    ) -> bool:
        function = watch.function
        arguments: dict[str, Any] = {function.trigger_arg: argument}
        if function.durable_client_arg:
            arguments[function.durable_client_arg] = self._client_binding(function)
        label = f"blob {version.container}/{version.name}"
        try:
            await self._invoker.invoke(function, label, arguments)
        except Exception as error:
            log.warning(
                "Function '%s' failed on blob '%s/%s' (attempt %d of %d)",
                function.name,
                version.container,
                version.name,
                attempt,
                self._options.poison_blob_threshold,
                exc_info=error,
            )
            return False
        return True

    async def _poison(
        self, watch: _Watch, version: _Version, receipt: _Receipt, attempts: int
    ) -> None:
        message = poison_message(
            watch.function, version.container, version.name, version.etag, version.blob_type
        )
        await self._send_poison(watch.connection_string, message)
        await self._receipts.update(receipt, {_ATTEMPTS: str(attempts), _POISONED: "true"})
        self._settled.add(self._version_key(watch, version))
        log.error(
            "Blob '%s/%s' (ETag %s) poisoned for function '%s' after %d attempts; "
            "message sent to queue '%s'",
            version.container,
            version.name,
            version.etag,
            watch.function.name,
            attempts,
            POISON_QUEUE,
        )

    async def _send_poison(self, connection_string: str, message: str) -> None:
        # The poison queue lives in the blob's own account, like the real host's default.
        async with QueueClient.from_connection_string(
            connection_string,
            POISON_QUEUE,
            message_encode_policy=TextBase64EncodePolicy(),
            **_CLIENT_RETRY,
        ) as queue:
            with suppress(ResourceExistsError):
                await queue.create_queue()
            await queue.send_message(message)


def _incomplete_metadata(attempts: int) -> dict[str, str]:
    return {_INCOMPLETE: _INCOMPLETE, _ATTEMPTS: str(attempts)}


def _common_prefix(prefixes: list[str]) -> str:
    """The longest string every prefix starts with (character-wise: blob names are not paths)."""
    if not prefixes:
        return ""
    shortest, longest = min(prefixes), max(prefixes)
    length = 0
    while length < len(shortest) and shortest[length] == longest[length]:
        length += 1
    return shortest[:length]
