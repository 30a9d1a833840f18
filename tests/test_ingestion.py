"""Ingestion end to end: function_app under devhost, Azurite, the Cosmos emulator, local engines."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.cosmos import CosmosClient
from azure.storage.blob import BlobServiceClient

from devhost.testing import HostProcess
from tests.apphost import app_environment, request, start_app, wait_until
from tests.conftest import EmulatorEndpoints
from tests.fixtures import bad_documents, documents

pytestmark = pytest.mark.emulators
TERMINAL = ("succeeded", "failed", "deleted")


class Deployment:
    """One running app with its own containers and database, plus direct SDK access."""

    def __init__(self, host: HostProcess, emulators: EmulatorEndpoints, name: str) -> None:
        self.host = host
        self.name = name
        self.blobs = BlobServiceClient.from_connection_string(emulators.azurite_connection_string)
        cosmos = CosmosClient(
            emulators.cosmos_endpoint, emulators.cosmos_key, connection_verify=False,
            enable_endpoint_discovery=False,
        )  # fmt: skip
        self.database = cosmos.get_database_client(name)

    def upload(self, name: str, content: bytes, tenant: str = "contoso", **metadata: str) -> str:
        """Drops a file into the uploads container, as a team would; returns the document id."""
        blob = self.blobs.get_blob_client(self.name, name)
        blob.upload_blob(content, overwrite=True, metadata={"tenant": tenant, **metadata})
        status, _, body = request(self.host, "GET", f"/api/documents?tenant={tenant}")
        assert status == 200, body
        from shared.documents.records import document_id

        return document_id(self.name, name)

    def status(self, doc_id: str, tenant: str = "contoso") -> dict[str, Any]:
        """GET /api/documents/{id}."""
        code, _, body = request(self.host, "GET", f"/api/documents/{doc_id}?tenant={tenant}")
        return body if code == 200 else {"state": None, "http": code, "body": body}

    def wait_done(self, doc_id: str, tenant: str = "contoso", since: str = "") -> dict[str, Any]:
        """Waits until the document reaches a terminal state (updated after `since`)."""

        def done() -> dict[str, Any] | None:
            body = self.status(doc_id, tenant)
            finished = body.get("state") in TERMINAL and body.get("updated", "") > since
            return body if finished else None

        return wait_until(done, timeout=180, host=self.host)

    def chunks(self, doc_id: str, tenant: str = "contoso") -> list[dict[str, Any]]:
        """The document's chunks as stored in Cosmos."""
        return list(
            self.database.get_container_client("chunks").query_items(
                "SELECT * FROM c WHERE c.tenant = @t AND c.document_id = @d",
                parameters=[{"name": "@t", "value": tenant}, {"name": "@d", "value": doc_id}],
            )
        )

    def manifest(self, doc_id: str, tenant: str = "contoso") -> dict[str, Any] | None:
        """The document's manifest, or None."""
        items = list(
            self.database.get_container_client("manifests").query_items(
                "SELECT * FROM c WHERE c.tenant = @t AND c.id = @d",
                parameters=[{"name": "@t", "value": tenant}, {"name": "@d", "value": doc_id}],
            )
        )
        return items[0] if items else None

    def blob_tags(self, name: str) -> dict[str, str]:
        """The blob's index tags."""
        return self.blobs.get_blob_client(self.name, name).get_blob_tags()


def deploy(
    tmp_path: Path, emulators: EmulatorEndpoints, **overrides: str
) -> Iterator[Deployment]:
    """Starts the app in its own namespace; stops it afterwards."""
    name = f"t-{uuid.uuid4().hex[:16]}"
    host = start_app(tmp_path, app_environment(emulators, name, **overrides))
    try:
        yield Deployment(host, emulators, name)
    finally:
        host.stop()


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory, emulators: EmulatorEndpoints) -> Iterator[Deployment]:
    yield from deploy(
        tmp_path_factory.mktemp("ingestion"),
        emulators,
        MAX_UPLOAD_BYTES=str(3 * 1024 * 1024),
        MAX_PAGES="30",
        PAGES_PER_BATCH="2",
        RECONCILE_SCHEDULE="*/2 * * * * *",
    )


def text_of(chunks: list[dict[str, Any]]) -> str:
    return "\n".join(chunk["text"] for chunk in chunks)


# Bad input: each ends `failed` with its reason, and the file is kept.

BAD_FILES = [
    ("empty.pdf", bad_documents.empty, "empty"),
    ("truncated.pdf", bad_documents.truncated_pdf, "corrupt"),
    ("secret.pdf", bad_documents.encrypted_pdf, "encrypted"),
    ("locked.docx", bad_documents.ole_encrypted_docx, "encrypted"),
    ("report.pdf", bad_documents.windows_executable, "executable"),
    ("archive.zip", bad_documents.plain_zip, "unsupported_type"),
    ("bomb.docx", bad_documents.zip_bomb_docx, "decompression_bomb"),
    ("huge.pdf", lambda: bad_documents.oversized(4 * 1024 * 1024), "too_large"),
    ("long.pdf", lambda: bad_documents.pdf(pages=31), "too_many_pages"),
]


@pytest.mark.parametrize(("name", "make", "code"), BAD_FILES, ids=[c for _, _, c in BAD_FILES])
def test_bad_file_ends_failed_with_its_reason_and_is_kept(
    app: Deployment, name: str, make: Any, code: str
) -> None:
    content = make()
    doc_id = app.upload(f"bad/{code}/{name}", content)
    status = app.wait_done(doc_id)
    assert status["state"] == "failed", status
    assert status["error"]["code"] == code, status["error"]
    assert status["error"]["reason"]
    blob = app.blobs.get_blob_client(app.name, f"bad/{code}/{name}")
    assert blob.download_blob().readall() == content  # never lost
    assert app.blob_tags(f"bad/{code}/{name}")["docgate-status"] == "failed"
    assert app.chunks(doc_id) == []
