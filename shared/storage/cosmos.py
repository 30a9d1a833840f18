"""Cosmos DB (NoSQL API) access layer over azure.cosmos.aio that hides the local emulator's gaps.

The same code runs against Azure Cosmos DB and the local emulator (@vercel/cosmosdb-server).
Where the emulator differs, `CosmosCapabilities` says so and the store compensates, but only
when the capability flag is off, so behaviour on real Cosmos is never weakened:

- reading a missing item: the emulator answers 500 instead of 404;
- TTL: the emulator stores `defaultTtl`/`ttl` but never expires anything;
- transactional batch: the emulator applies batch operations one by one and keeps the ones that
  succeeded when a later one fails (not atomic), and rejects batch upserts;
- a query's partition_key argument: the emulator answers 400 "missing partition keys" unless
  the SQL filters on the partition key, and then scopes by the SQL alone, ignoring the
  argument. So scoped queries filter on the partition key in the SQL text too (`query`
  enforces that, `query_partition` writes it for you) and pass partition_key for Azure.

Nothing here reads the environment: endpoints, keys and credentials are passed in.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

from azure.core import MatchConditions
from azure.core.credentials_async import AsyncTokenCredential
from azure.core.pipeline.transport import AioHttpTransport
from azure.cosmos import PartitionKey
from azure.cosmos.aio import ContainerProxy, CosmosClient, DatabaseProxy
from azure.cosmos.exceptions import CosmosBatchOperationError, CosmosHttpResponseError

from shared.health import DependencyProbe

Item = dict[str, Any]
PartitionKeyValue = str | int | float | bool | None
Parameters = Mapping[str, Any]
Clock = Callable[[], float]

# The emulator's account key, the same well-known value as Microsoft's Cosmos DB emulator.
EMULATOR_KEY = (
    "C2y6yDjf5/R+ob0N8A7Cgv30VRDJIWEHLM+4QDU5DE2nQ9nDuVTqobD4b8mGGyPMbIZnqyMsEcaGQy67XIw/Jw=="
)

# The emulator's read handler dereferences the missing document while checking its partition
# key, so Node's TypeError becomes the 500 body: {"message": "Cannot read properties of
# undefined (reading '<pk field>')"}. Matching that text keeps every other 500 an error.
_EMULATOR_MISSING_READ = re.compile(r"Cannot read properties of undefined \(reading '[^']*'\)")


@dataclass(frozen=True)
class CosmosCapabilities:
    """What the Cosmos endpoint really does; the store compensates where a flag says it can't."""

    missing_read_is_500: bool
    enforces_ttl: bool
    transactional_batch: bool
    vector_distance: bool
    # Azure says "the container (or database) does not exist" with 404 substatus 1003; the
    # emulator answers a bare 404, so there a 404 is confirmed by reading the container.
    missing_container_substatus: bool = True


AZURE = CosmosCapabilities(
    missing_read_is_500=False, enforces_ttl=True, transactional_batch=True, vector_distance=True
)
EMULATOR = CosmosCapabilities(
    missing_read_is_500=True,
    enforces_ttl=False,
    transactional_batch=False,
    vector_distance=False,
    missing_container_substatus=False,
)
OWNER_MISSING_SUBSTATUS = 1003  # Cosmos: the resource's parent (container, database) is gone


@dataclass(frozen=True)
class ContainerSpec:
    """A container's name, partition key path (e.g. "/tenantId") and default TTL in seconds.

    default_ttl follows Cosmos: None turns TTL off (item "ttl" fields are ignored), -1 turns it
    on without a default (items expire only with their own "ttl"), n > 0 expires items n seconds
    after their last write unless the item's "ttl" says otherwise (-1 = never).
    """

    name: str
    partition_key_path: str
    default_ttl: int | None = None

    @property
    def partition_key_field(self) -> str:
        """The last segment of the partition key path ("/tenant/id" -> "id")."""
        return self.partition_key_path.rstrip("/").rsplit("/", 1)[-1]

    def partition_key_of(self, item: Mapping[str, Any]) -> Any:
        """Return the partition key value of `item` (None when the path is absent)."""
        value: Any = item
        for segment in (s for s in self.partition_key_path.split("/") if s):
            value = value.get(segment) if isinstance(value, Mapping) else None
        return value

    @property
    def partition_key_sql(self) -> str:
        """The partition key as a SQL property reference on alias c, e.g. c["tenantId"]."""
        segments = [s for s in self.partition_key_path.split("/") if s]
        return "c" + "".join(f'["{segment}"]' for segment in segments)


class CosmosStoreError(Exception):
    """Base class for errors raised by CosmosStore."""


class UnknownContainerError(CosmosStoreError, KeyError):
    """The container was not registered with the store (its spec, and so its TTL, is unknown)."""


def is_loopback_endpoint(endpoint: str) -> bool:
    """Return True when `endpoint`'s host is localhost or a loopback IP address."""
    host = urlsplit(endpoint).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def create_cosmos_client(
    endpoint: str,
    key: str | None,
    credential: AsyncTokenCredential | None,
    verify_tls: bool | None = None,
    proxy: str | None = None,
) -> CosmosClient:
    """Build the async client: key auth (emulator) when `key` is set, else `credential` (Entra).

    verify_tls defaults to False for a loopback endpoint used with a key (the emulator's
    certificate is self-signed and expired) and True otherwise; it may never be False for a
    non-loopback endpoint.

    The transport is configured here, once: calls go direct, or through `proxy` when given.
    The SDK's default aiohttp transport trusts the environment, so every call looks up the
    proxy variables and ~/.netrc (in the thread pool): ~14 ms of CPU per governed chat request
    measured on the emulator, for settings that cannot change while the process runs.
    """
    loopback = is_loopback_endpoint(endpoint)
    verify = (not loopback or key is None) if verify_tls is None else verify_tls
    if not verify and not loopback:
        raise ValueError(f"refusing to skip TLS verification for non-loopback {endpoint!r}")
    options: dict[str, Any] = {
        "connection_verify": verify,
        "transport": AioHttpTransport(use_env_settings=False, connection_verify=verify),
    }
    if proxy:
        options["proxies"] = {"http": proxy, "https": proxy}
    if key is not None:
        # The emulator advertises only itself as a region; discovery would only add requests.
        return CosmosClient(endpoint, credential=key, enable_endpoint_discovery=False, **options)
    if credential is None:
        raise ValueError("create_cosmos_client needs either a key or a credential")
    return CosmosClient(endpoint, credential=credential, **options)


def effective_ttl(item: Mapping[str, Any], default_ttl: int | None) -> int | None:
    """Return the TTL in seconds that applies to `item`, or None when it never expires."""
    if default_ttl is None:
        return None  # TTL is off on the container: Cosmos ignores item "ttl" fields
    item_ttl = item.get("ttl")
    ttl = item_ttl if isinstance(item_ttl, int) and not isinstance(item_ttl, bool) else default_ttl
    return ttl if ttl > 0 else None


def is_expired(item: Mapping[str, Any], now: float, default_ttl: int | None = -1) -> bool:
    """Return True when `item` is past its TTL at epoch seconds `now` (from `_ts` + ttl).

    default_ttl is the container's default (see ContainerSpec); the default of -1 means "TTL on,
    items expire only with their own ttl". Items without `_ts` (projections) never count as expired.
    """
    ttl = effective_ttl(item, default_ttl)
    written_at = item.get("_ts")
    if ttl is None or not isinstance(written_at, int | float):
        return False
    return now >= written_at + ttl


def to_query_parameters(parameters: Parameters | None) -> list[dict[str, object]]:
    """Turn {"name": value} (or {"@name": value}) into the SDK's [{"name": "@name", ...}] form."""
    if not parameters:
        return []
    return [
        {"name": name if name.startswith("@") else f"@{name}", "value": value}
        for name, value in parameters.items()
    ]


class ContainerMissing(CosmosStoreError):
    """The container (or its database) does not exist: deleted, or an emulator restarted
    empty. With `recreate_missing` the store creates it and retries once instead."""

    def __init__(self, container: str) -> None:
        super().__init__(f"the Cosmos container {container!r} does not exist")
        self.container = container


def _recreating(method: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """Runs a store operation on `container`; when the container turns out to be gone, creates
    it (and its database) once and runs the operation again (if the store may create), else
    raises ContainerMissing."""

    @functools.wraps(method)
    async def run(self: CosmosStore, container: str, *args: Any, **kwargs: Any) -> Any:
        try:
            try:
                return await method(self, container, *args, **kwargs)
            except CosmosHttpResponseError as error:
                await self._raise_if_gone(container, error)  # ContainerMissing, or:
                raise
        except ContainerMissing:
            if not self.recreate_missing:
                raise
        await self._recreate(container)
        return await method(self, container, *args, **kwargs)

    return run


class AlreadyExists(CosmosStoreError):
    """create() found an item with the same id in the partition (HTTP 409)."""


class PreconditionFailed(CosmosStoreError):
    """The item's ETag no longer matches: someone else wrote it first (HTTP 412)."""


class ItemNotFound(CosmosStoreError):
    """replace() or patch() targeted an item that does not exist (HTTP 404)."""


class UnscopedQueryError(CosmosStoreError, ValueError):
    """query() got a partition_key but its SQL does not filter on the partition key.

    The emulator ignores the SDK's partition_key argument, so such a query would silently read
    every partition locally while being scoped on Azure.
    """


class BatchFailed(CosmosStoreError):
    """An operation of write_batch() failed; `index` and `status_code` say which and why."""

    def __init__(self, index: int, status_code: int | None, message: str) -> None:
        super().__init__(f"batch operation {index} failed with status {status_code}: {message}")
        self.index = index
        self.status_code = status_code


@dataclass(frozen=True)
class BatchOperation:
    """One write of write_batch(); build it with the create/upsert/replace/delete/patch helpers."""

    kind: Literal["create", "upsert", "replace", "delete", "patch"]
    item_id: str
    body: Item | None = None
    patch_operations: list[dict[str, Any]] = field(default_factory=list)
    etag: str | None = None

    @classmethod
    def create(cls, item: Item) -> BatchOperation:
        """Create `item`; fails the batch when it exists."""
        return cls("create", item["id"], body=item)

    @classmethod
    def upsert(cls, item: Item) -> BatchOperation:
        """Create or overwrite `item`."""
        return cls("upsert", item["id"], body=item)

    @classmethod
    def replace(cls, item: Item, etag: str | None = None) -> BatchOperation:
        """Overwrite `item`, only if its ETag still equals `etag` when one is given."""
        return cls("replace", item["id"], body=item, etag=etag)

    @classmethod
    def delete(cls, item_id: str, etag: str | None = None) -> BatchOperation:
        """Delete the item, only if its ETag still equals `etag` when one is given."""
        return cls("delete", item_id, etag=etag)

    @classmethod
    def patch(cls, item_id: str, operations: list[dict[str, Any]]) -> BatchOperation:
        """Apply Cosmos patch `operations` ({"op": "set", "path": "/x", "value": 1}, ...)."""
        return cls("patch", item_id, patch_operations=operations)

    def to_sdk(self) -> tuple[str, tuple[Any, ...], dict[str, Any]]:
        """Return the (operation, args, kwargs) tuple that execute_item_batch expects."""
        options = {"if_match_etag": self.etag} if self.etag is not None else {}
        if self.kind in ("create", "upsert"):
            return (self.kind, (self.body,), options)
        if self.kind == "replace":
            return ("replace", (self.item_id, self.body), options)
        if self.kind == "patch":
            return ("patch", (self.item_id, self.patch_operations), options)
        return ("delete", (self.item_id,), options)


async def _racing_create(create: Callable[[], Awaitable[Any]]) -> Any:
    """`create()`, once more if another instance created the same resource in between (409)."""
    try:
        return await create()
    except CosmosHttpResponseError as error:
        if error.status_code != 409:
            raise
        return await create()


def _etag_options(etag: str | None) -> dict[str, Any]:
    """Return the SDK keyword arguments for an optional If-Match condition."""
    if etag is None:
        return {}
    return {"etag": etag, "match_condition": MatchConditions.IfNotModified}


class CosmosStore:
    """Typed async CRUD, query and batch over one database, with emulator gaps papered over."""

    def __init__(
        self,
        client: CosmosClient,
        database_name: str,
        specs: Sequence[ContainerSpec] = (),
        capabilities: CosmosCapabilities = AZURE,
        clock: Clock = time.time,
        recreate_missing: bool = False,
    ) -> None:
        """Bind to `database_name`; `specs` registers containers that already exist.

        `recreate_missing`: a registered container found missing at run time is created again
        (needs control-plane rights: the key, or an identity allowed to create containers);
        off, that is ContainerMissing (a 503 at the edge)."""
        self._client = client
        self._database: DatabaseProxy = client.get_database_client(database_name)
        self._database_name = database_name
        self._specs: dict[str, ContainerSpec] = {spec.name: spec for spec in specs}
        self.capabilities = capabilities
        self._clock = clock
        self.recreate_missing = recreate_missing
        self._recreation = asyncio.Lock()

    async def ensure_containers(self, specs: Sequence[ContainerSpec]) -> None:
        """Create the database and each container if missing (idempotent) and register them.

        Safe when several instances start at once: `create_*_if_not_exists` reads, then
        creates, so a racing instance's create can land in between and answer 409; the
        resource then exists and the call is repeated. An existing container keeps its
        settings: a changed default_ttl is not applied here.
        """
        self._database = await _racing_create(
            lambda: self._client.create_database_if_not_exists(self._database_name)
        )
        for spec in specs:
            await _racing_create(
                lambda spec=spec: self._database.create_container_if_not_exists(
                    id=spec.name,
                    partition_key=PartitionKey(path=spec.partition_key_path),
                    default_ttl=spec.default_ttl,
                )
            )
            self._specs[spec.name] = spec

    async def read_database(self) -> dict[str, Any]:
        """Reads the database's properties: the cheapest call proving Cosmos can serve (a
        database found missing is created again when the store may)."""
        try:
            return await self._database.read()
        except CosmosHttpResponseError as error:
            if error.status_code != 404 or not self.recreate_missing:
                raise
        self._database = await _racing_create(
            lambda: self._client.create_database_if_not_exists(self._database_name)
        )
        return await self._database.read()

    async def _raise_if_gone(self, container: str, error: CosmosHttpResponseError) -> None:
        """Raises ContainerMissing when the 404 `error` means `container` itself is gone (not
        an item of it)."""
        if error.status_code != 404:
            return
        if error.sub_status == OWNER_MISSING_SUBSTATUS:
            raise ContainerMissing(container) from error
        if self.capabilities.missing_container_substatus:
            return
        try:
            await self._database.get_container_client(container).read()
        except CosmosHttpResponseError as probe:
            if probe.status_code == 404:
                raise ContainerMissing(container) from error
            raise

    async def _recreate(self, container: str) -> None:
        """Creates `container` (and the database) again; one instance's callers at a time."""
        async with self._recreation:
            await self.ensure_containers([self.spec(container)])

    def spec(self, container: str) -> ContainerSpec:
        """Return the registered spec of `container`."""
        try:
            return self._specs[container]
        except KeyError:
            raise UnknownContainerError(container) from None

    def _container(self, container: str) -> ContainerProxy:
        """Return the SDK proxy of a registered container (no network call)."""
        self.spec(container)
        return self._database.get_container_client(container)

    def _filters_ttl(self, container: str) -> bool:
        """Return True when this store must hide expired items of `container` itself."""
        return not self.capabilities.enforces_ttl and self.spec(container).default_ttl is not None

    def _is_live(self, container: str, item: Mapping[str, Any]) -> bool:
        """Return False for an item the server should already have expired."""
        if not self._filters_ttl(container):
            return True
        return not is_expired(item, self._clock(), self.spec(container).default_ttl)

    def _is_missing_read(self, error: CosmosHttpResponseError) -> bool:
        """Return True when `error` means "no such item" on this endpoint."""
        if error.status_code == 404:
            return True
        return (
            self.capabilities.missing_read_is_500
            and error.status_code == 500
            and _EMULATOR_MISSING_READ.search(str(error.message or "")) is not None
        )

    @_recreating
    async def read(
        self, container: str, item_id: str, partition_key: PartitionKeyValue
    ) -> Item | None:
        """Return the item, or None when it does not exist (or has expired)."""
        try:
            item: Item = await self._container(container).read_item(item_id, partition_key)
        except CosmosHttpResponseError as error:
            if self._is_missing_read(error):
                await self._raise_if_gone(container, error)
                return None
            raise
        return item if self._is_live(container, item) else None

    @_recreating
    async def create(self, container: str, item: Item) -> Item:
        """Create `item`; raise AlreadyExists when its id is taken in its partition."""
        proxy = self._container(container)
        try:
            return await proxy.create_item(item)
        except CosmosHttpResponseError as error:
            if error.status_code != 409:
                raise
            conflict = error
        # Where the server does not expire items, an expired one would block the id forever;
        # on Azure the create would have succeeded, so overwrite it (only if still unchanged).
        if self._filters_ttl(container):
            stale = await self._read_expired(container, item)
            if stale is not None:
                return await self.replace(container, item, stale["_etag"])
        raise AlreadyExists(f"{container}/{item.get('id')} already exists") from conflict

    async def _read_expired(self, container: str, item: Item) -> Item | None:
        """Return the stored copy of `item` when it exists but has expired."""
        key = self.spec(container).partition_key_of(item)
        try:
            stored: Item = await self._container(container).read_item(item["id"], key)
        except CosmosHttpResponseError as error:
            if self._is_missing_read(error):
                return None
            raise
        return None if self._is_live(container, stored) else stored

    @_recreating
    async def upsert(self, container: str, item: Item) -> Item:
        """Create or overwrite `item` and return it as stored."""
        return await self._container(container).upsert_item(item)

    @_recreating
    async def replace(self, container: str, item: Item, etag: str | None) -> Item:
        """Overwrite `item`, only if the stored ETag still equals `etag` (None: unconditionally).

        Raises PreconditionFailed on a stale ETag and ItemNotFound when the item is gone.
        """
        try:
            return await self._container(container).replace_item(
                item["id"], item, **_etag_options(etag)
            )
        except CosmosHttpResponseError as error:
            await self._raise_if_gone(container, error)
            raise self._translate_write_error(container, item["id"], error) from error

    @_recreating
    async def patch(
        self,
        container: str,
        item_id: str,
        partition_key: PartitionKeyValue,
        operations: list[dict[str, Any]],
        etag: str | None = None,
    ) -> Item:
        """Apply Cosmos patch `operations` ({"op": "set"|"add"|"incr"|..., "path", "value"})."""
        try:
            return await self._container(container).patch_item(
                item_id, partition_key, operations, **_etag_options(etag)
            )
        except CosmosHttpResponseError as error:
            await self._raise_if_gone(container, error)
            raise self._translate_write_error(container, item_id, error) from error

    def _translate_write_error(
        self, container: str, item_id: str, error: CosmosHttpResponseError
    ) -> Exception:
        """Map 412/404 of a conditional write to our exceptions; pass anything else through."""
        if error.status_code == 412:
            return PreconditionFailed(f"{container}/{item_id} was modified (ETag mismatch)")
        if error.status_code == 404:
            return ItemNotFound(f"{container}/{item_id} does not exist")
        return error

    @_recreating
    async def delete(
        self,
        container: str,
        item_id: str,
        partition_key: PartitionKeyValue,
        etag: str | None = None,
    ) -> bool:
        """Delete the item; return False when it did not exist, raise PreconditionFailed on 412."""
        try:
            await self._container(container).delete_item(
                item_id, partition_key, **_etag_options(etag)
            )
        except CosmosHttpResponseError as error:
            if error.status_code == 404:
                await self._raise_if_gone(container, error)
                return False
            if error.status_code == 412:
                raise PreconditionFailed(f"{container}/{item_id} was modified") from error
            raise
        return True

    @_recreating
    async def query(
        self,
        container: str,
        sql: str,
        parameters: Parameters | None = None,
        partition_key: PartitionKeyValue = None,
        page_size: int | None = None,
    ) -> list[Item]:
        """Run a parameterised query; expired items are left out where the server keeps them.

        partition_key=None fans out over all partitions. With a partition_key, the SQL must
        also filter on the partition key (the emulator ignores the SDK argument; Azure uses it
        to route to one partition), else UnscopedQueryError. query_partition() writes that
        filter for you. Rows without `_ts` (projections, VALUE aggregates) are not TTL-filtered.
        `page_size` caps the rows per response page (the SDK's max_item_count): large rows
        then arrive and parse in small pieces, with the event loop free between pages.
        """
        proxy = self._container(container)
        options: dict[str, Any] = {"parameters": to_query_parameters(parameters)}
        if page_size is not None:
            options["max_item_count"] = page_size
        if partition_key is not None:
            self._require_partition_filter(container, sql)
            options["partition_key"] = partition_key
        rows = [row async for row in proxy.query_items(sql, **options)]
        return [row for row in rows if not isinstance(row, dict) or self._is_live(container, row)]

    def _require_partition_filter(self, container: str, sql: str) -> None:
        """Raise UnscopedQueryError unless `sql` references the container's partition key."""
        name = re.escape(self.spec(container).partition_key_field)
        if not re.search(rf"""\.{name}\b|\[\s*["']{name}["']\s*\]""", sql):
            raise UnscopedQueryError(
                f"query on {container} passes partition_key but its SQL does not filter on "
                f"{self.spec(container).partition_key_path}: {sql!r}"
            )

    async def query_partition(
        self,
        container: str,
        partition_key: PartitionKeyValue,
        where: str | None = None,
        parameters: Parameters | None = None,
        *,
        select: str = "*",
        order_by: str | None = None,
        page_size: int | None = None,
    ) -> list[Item]:
        """Query one logical partition: SELECT {select} FROM c WHERE <pk> = @pk AND ({where}).

        The partition-key filter is written into the SQL and passed to the SDK, so the query is
        scoped on both the emulator and Azure. `where`/`order_by` use the alias `c` and named
        parameters only; "@pk" is reserved.
        """
        spec = self.spec(container)
        conditions = f"{spec.partition_key_sql} = @pk"
        if where:
            conditions += f" AND ({where})"
        sql = f"SELECT {select} FROM c WHERE {conditions}"
        if order_by:
            sql += f" ORDER BY {order_by}"
        merged = {**(parameters or {}), "@pk": partition_key}
        return await self.query(container, sql, merged, partition_key, page_size)

    @_recreating
    async def write_batch(
        self,
        container: str,
        partition_key: PartitionKeyValue,
        operations: Sequence[BatchOperation],
    ) -> list[Item | None]:
        """Apply `operations` to one partition; return each result (None for deletes).

        With capabilities.transactional_batch this is one atomic Cosmos transactional batch.
        Without it (the emulator) the operations run one after another and are NOT atomic:
        those before a failing one stay applied. Either way a failure raises BatchFailed.
        """
        if not operations:
            return []
        if self.capabilities.transactional_batch:
            return await self._execute_transactional(container, partition_key, operations)
        return await self._execute_sequentially(container, partition_key, operations)

    async def _execute_transactional(
        self,
        container: str,
        partition_key: PartitionKeyValue,
        operations: Sequence[BatchOperation],
    ) -> list[Item | None]:
        """Run `operations` as one Cosmos transactional batch."""
        proxy = self._container(container)
        try:
            results = await proxy.execute_item_batch(
                [operation.to_sdk() for operation in operations], partition_key
            )
        except CosmosBatchOperationError as error:
            raise BatchFailed(error.error_index, error.status_code, str(error.message)) from error
        return [result.get("resourceBody") for result in results]

    async def _execute_sequentially(
        self,
        container: str,
        partition_key: PartitionKeyValue,
        operations: Sequence[BatchOperation],
    ) -> list[Item | None]:
        """Run `operations` one by one (not atomic), raising BatchFailed at the first failure."""
        results: list[Item | None] = []
        for index, operation in enumerate(operations):
            try:
                results.append(await self._apply(container, partition_key, operation))
            except ContainerMissing:
                raise  # not this operation's failure: the container is gone
            except (CosmosStoreError, CosmosHttpResponseError) as error:
                status = getattr(error, "status_code", None) or _status_of(error)
                raise BatchFailed(index, status, str(error)) from error
        return results

    async def _apply(
        self, container: str, partition_key: PartitionKeyValue, operation: BatchOperation
    ) -> Item | None:
        """Apply one BatchOperation through the regular single-item methods."""
        if operation.kind == "create":
            return await self.create(container, _require_body(operation))
        if operation.kind == "upsert":
            return await self.upsert(container, _require_body(operation))
        if operation.kind == "replace":
            return await self.replace(container, _require_body(operation), operation.etag)
        if operation.kind == "patch":
            return await self.patch(
                container,
                operation.item_id,
                partition_key,
                operation.patch_operations,
                operation.etag,
            )
        if not await self.delete(container, operation.item_id, partition_key, operation.etag):
            raise ItemNotFound(f"{container}/{operation.item_id} does not exist")
        return None


def _require_body(operation: BatchOperation) -> Item:
    """Return the item body of a create/upsert/replace operation."""
    if operation.body is None:
        raise ValueError(f"{operation.kind} operation on {operation.item_id} has no body")
    return operation.body


def _status_of(error: Exception) -> int | None:
    """Return the HTTP status our own exceptions stand for."""
    statuses: dict[type[Exception], int] = {
        AlreadyExists: 409,
        PreconditionFailed: 412,
        ItemNotFound: 404,
    }
    return statuses.get(type(error))


def database_probe(store: CosmosStore) -> DependencyProbe:
    """Health: the database's properties can be read (the cheapest call proving Cosmos serves)."""
    return DependencyProbe("cosmos", store.read_database)
