"""The Cosmos client's transport is configured once: no proxy or netrc lookups from the
environment per call, and an explicit proxy (COSMOS_PROXY) still works. Against the emulator."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from azure.cosmos import PartitionKey

from shared.storage.cosmos import create_cosmos_client


@contextlib.asynccontextmanager
async def connect_proxy() -> AsyncIterator[tuple[str, list[str]]]:
    """A minimal HTTP CONNECT proxy on loopback; yields its URL and the targets it tunnelled."""
    tunnelled: list[str] = []

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.CancelledError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await reader.readuntil(b"\r\n\r\n")
        method, target, _ = request.split(b"\r\n", 1)[0].decode().split(" ", 2)
        if method != "CONNECT":
            writer.write(b"HTTP/1.1 405 Method Not Allowed\r\ncontent-length: 0\r\n\r\n")
            writer.close()
            return
        tunnelled.append(target)
        host, port = target.rsplit(":", 1)
        upstream_reader, upstream_writer = await asyncio.open_connection(host, int(port))
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await writer.drain()
        await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", tunnelled
    finally:
        server.close()


async def round_trip(client: Any, name: str) -> None:
    """Create a database, write and read one item, drop the database."""
    database = await client.create_database(name)
    try:
        container = await database.create_container("items", partition_key=PartitionKey("/id"))
        await container.upsert_item({"id": "one", "value": 1})
        assert (await container.read_item("one", partition_key="one"))["value"] == 1
    finally:
        await client.delete_database(name)


async def test_environment_proxy_settings_are_not_consulted(
    emulators: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    # The SDK's default transport would route through this dead proxy (or read this netrc).
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login someone password secret\n")
    monkeypatch.setenv("NETRC", str(netrc))
    client = create_cosmos_client(emulators.cosmos_endpoint, emulators.cosmos_key, None)
    async with client:
        await round_trip(client, f"transport-{uuid.uuid4().hex[:8]}")
        transport = client.client_connection.pipeline_client._pipeline._transport
        assert transport.session is not None and transport.session.trust_env is False


async def test_an_explicit_proxy_carries_every_call(emulators: Any) -> None:
    async with connect_proxy() as (url, tunnelled):
        client = create_cosmos_client(
            emulators.cosmos_endpoint, emulators.cosmos_key, None, proxy=url
        )
        async with client:
            await round_trip(client, f"transport-{uuid.uuid4().hex[:8]}")
    port = emulators.cosmos_endpoint.rstrip("/").rsplit(":", 1)[1]
    assert tunnelled and all(target.endswith(f":{port}") for target in tunnelled)
