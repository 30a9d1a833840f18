"""Ingestion end to end: function_app under devhost, Azurite, the Cosmos emulator, local engines."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.cosmos import CosmosClient
from azure.storage.blob import BlobClient, BlobServiceClient

from devhost.testing import HostProcess
from shared.documents.names import blob_path
from shared.documents.records import document_id
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

    def blob(self, name: str, tenant: str = "contoso") -> BlobClient:
        """The blob of `tenant`'s document `name` (in the tenant's folder)."""
        return self.blobs.get_blob_client(self.name, blob_path(tenant, name))

    def upload(self, name: str, content: bytes, tenant: str = "contoso", **metadata: str) -> str:
        """Drops a file into the tenant's folder of the uploads container, as a team would;
        returns the document id."""
        self.blob(name, tenant).upload_blob(
            content, overwrite=True, metadata={"tenant": tenant, **metadata}
        )
        status, _, body = request(self.host, "GET", "/api/documents", tenant=tenant)
        assert status == 200, body
        return document_id(tenant, self.name, name)

    def status(self, doc_id: str, tenant: str = "contoso") -> dict[str, Any]:
        """GET /api/documents/{id}."""
        code, _, body = request(self.host, "GET", f"/api/documents/{doc_id}", tenant=tenant)
        return body if code == 200 else {"state": None, "http": code, "body": body}

    def wait_done(self, doc_id: str, tenant: str = "contoso", since: str = "") -> dict[str, Any]:
        """Waits until the document reaches a terminal state (updated after `since`)."""

        def done() -> dict[str, Any] | None:
            body = self.status(doc_id, tenant)
            assert body.get("http", 200) < 500, body
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

    def blob_tags(self, name: str, tenant: str = "contoso") -> dict[str, str]:
        """The blob's index tags."""
        return self.blob(name, tenant).get_blob_tags()


def deploy(tmp_path: Path, emulators: EmulatorEndpoints, **overrides: str) -> Iterator[Deployment]:
    """Starts the app in its own namespace; stops it afterwards."""
    name = f"t-{uuid.uuid4().hex[:16]}"
    host = start_app(tmp_path, app_environment(emulators, name, **overrides))
    try:
        yield Deployment(host, emulators, name)
    finally:
        host.stop()


@pytest.fixture(scope="module")
def app(
    tmp_path_factory: pytest.TempPathFactory, emulators: EmulatorEndpoints
) -> Iterator[Deployment]:
    yield from deploy(
        tmp_path_factory.mktemp("ingestion"),
        emulators,
        MAX_UPLOAD_BYTES=str(3 * 1024 * 1024),
        MAX_PAGES="30",
        PAGES_PER_BATCH="2",
        EMBEDDING_BATCH_SIZE="4",  # documents stream through several chunk batches
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
    blob = app.blob(f"bad/{code}/{name}")
    assert blob.download_blob().readall() == content  # never lost
    assert app.blob_tags(f"bad/{code}/{name}")["docgate-status"] == "failed"
    assert app.chunks(doc_id) == []


# Every supported format becomes chunks with the right words on the right pages.


def _words_on_pages(chunks: list[dict[str, Any]], words: str) -> list[int]:
    return sorted({page for chunk in chunks if words in chunk["text"] for page in chunk["pages"]})


FORMATS = [
    ("report.pdf", documents.report_pdf, [(documents.REPORT_SECTIONS[2][1], 3)]),
    ("scan.pdf", documents.scanned_pdf, [(documents.SCANNED_LINES[0], 2)]),
    ("handbook.docx", documents.docx_document, [(documents.DOCX_INTRO, 1)]),
    ("review.pptx", documents.pptx_deck, [(documents.PPTX_NOTE, 2)]),
    ("scan.png", documents.text_png, [(documents.SCANNED_LINES[0], 1)]),
    (
        "pages.tiff",
        documents.multipage_tiff,
        [(p, i + 1) for i, p in enumerate(documents.TIFF_PAGES)],
    ),
    ("welcome.gif", documents.animated_gif, [(documents.GIF_TEXT, 1)]),
    ("notes.txt", documents.plain_text, []),
    ("guide.md", documents.markdown_text, [(documents.MARKDOWN_TITLE, 1)]),
    ("policy.html", documents.html_text, [(documents.HTML_TITLE, 1)]),
]


@pytest.mark.parametrize(("name", "make", "expected"), FORMATS, ids=[n for n, _, _ in FORMATS])
def test_each_format_becomes_chunks_with_pages(
    app: Deployment, name: str, make: Any, expected: list[tuple[str, int]]
) -> None:
    doc_id = app.upload(f"formats/{name}", make())
    status = app.wait_done(doc_id)
    assert status["state"] == "succeeded", status.get("error")
    chunks = app.chunks(doc_id)
    assert chunks and all(chunk["status"] == "live" for chunk in chunks)
    assert all(chunk["pages"] and chunk["embedding_dim"] == 384 for chunk in chunks)
    for words, page in expected:
        assert page in _words_on_pages(chunks, words), (words, text_of(chunks))
    assert status["counts"]["chunks"] == len(chunks)
    assert set(status["timings"]) >= {"validate", "extract", "chunk", "embed", "index"}
    assert status["engines"]


def test_a_table_continued_over_two_pages_is_one_table_with_its_header(app: Deployment) -> None:
    doc_id = app.upload("tables/long.pdf", documents.long_table_pdf())
    status = app.wait_done(doc_id)
    assert status["state"] == "succeeded", status.get("error")
    assert status["counts"]["tables"] == 1
    tables = [chunk for chunk in app.chunks(doc_id) if chunk["kind"] == "table"]
    assert tables
    assert {page for chunk in tables for page in chunk["pages"]} == {1, 2}
    header = " | ".join(documents.LONG_TABLE_HEADER)
    assert all(header in chunk["text"] for chunk in tables)  # repeated in every part
    rows = documents.long_table_rows()
    for item, warehouse, quantity in (rows[0], rows[-1]):
        assert any(f"{item} | {warehouse} | {quantity}" in chunk["text"] for chunk in tables)


def test_ruled_table_cells_keep_their_rows_and_columns(app: Deployment) -> None:
    doc_id = app.upload("tables/ruled.pdf", documents.ruled_table_pdf())
    assert app.wait_done(doc_id)["state"] == "succeeded"
    table_text = text_of([c for c in app.chunks(doc_id) if c["kind"] == "table"])
    assert " | ".join(documents.TABLE_HEADER) in table_text
    for row in documents.TABLE_ROWS:
        assert " | ".join(row) in table_text


# Re-uploads, deletion and reconciliation.


def test_same_content_again_is_a_no_op(app: Deployment) -> None:
    content = documents.report_pdf()
    doc_id = app.upload("again/report.pdf", content)
    first = app.wait_done(doc_id)
    before = {chunk["id"]: chunk["_etag"] for chunk in app.chunks(doc_id)}
    app.upload("again/report.pdf", content)  # same bytes, new blob version (ETag)
    second = app.wait_done(doc_id, since=first["updated"])
    assert second["state"] == "succeeded"
    assert second["indexed"]["indexed_at"] == first["indexed"]["indexed_at"]
    assert {chunk["id"]: chunk["_etag"] for chunk in app.chunks(doc_id)} == before


def test_shrunk_content_leaves_no_orphans_and_keeps_unchanged_chunks(app: Deployment) -> None:
    long_text = "\n\n".join(f"Section {i}. " + ("Cargo moved safely. " * 60) for i in range(8))
    short_text = "\n\n".join(f"Section {i}. " + ("Cargo moved safely. " * 60) for i in range(2))
    doc_id = app.upload("shrink/notes.txt", long_text.encode())
    first = app.wait_done(doc_id)
    before = {chunk["id"]: chunk["_etag"] for chunk in app.chunks(doc_id)}
    app.upload("shrink/notes.txt", short_text.encode())
    second = app.wait_done(doc_id, since=first["updated"])
    after = {chunk["id"]: chunk["_etag"] for chunk in app.chunks(doc_id)}
    assert 0 < len(after) < len(before)
    assert set(after) == set(app.manifest(doc_id)["chunk_ids"])  # no orphans
    unchanged = set(after) & set(before)
    assert unchanged and all(after[cid] == before[cid] for cid in unchanged)  # untouched
    assert second["counts"]["chunks"] == len(after)


def test_chunk_batches_stream_into_one_complete_index(app: Deployment) -> None:
    text = "\n\n".join(f"Part {i}. " + (f"Crane {i} lifted cargo. " * 50) for i in range(12))
    doc_id = app.upload("stream/parts.txt", text.encode())
    status = app.wait_done(doc_id)
    assert status["state"] == "succeeded", status.get("error")
    chunks = app.chunks(doc_id)
    manifest_ids = app.manifest(doc_id)["chunk_ids"]
    assert status["counts"]["chunks"] == len(chunks) == len(manifest_ids) > 8  # 3+ batches
    assert sorted(manifest_ids) == sorted(chunk["id"] for chunk in chunks)
    assert len(set(manifest_ids)) == len(manifest_ids)
    assert all(len(chunk["embedding"]) == 384 and chunk["injection"] for chunk in chunks)
    for part in range(12):  # every part made it, whichever batch carried it
        assert f"Crane {part} lifted cargo." in text_of(chunks)


def test_delete_removes_everything(app: Deployment) -> None:
    doc_id = app.upload("delete/figure.pdf", documents.figure_pdf())
    assert app.wait_done(doc_id)["state"] == "succeeded"
    figures = app.manifest(doc_id)["figure_hashes"]
    assert figures and app.chunks(doc_id)
    status, _, body = request(app.host, "DELETE", f"/api/documents/{doc_id}")
    assert status == 200, body
    assert body["removed"]["blob"] is True and body["removed"]["chunks"] > 0
    assert app.chunks(doc_id) == [] and app.manifest(doc_id) is None
    cache = app.database.get_container_client("figures")
    assert not [item for item in cache.read_all_items() if item["id"] in figures]
    with pytest.raises(ResourceNotFoundError):
        app.blob("delete/figure.pdf").get_blob_properties()
    assert app.status(doc_id)["http"] == 404


def test_an_unreadable_acl_fails_the_document_and_opens_it_to_nobody(app: Deployment) -> None:
    doc_id = app.upload("acl/odd.txt", b"Some text.", acl="role:admin")

    def failed() -> dict[str, Any] | None:
        item = app.database.get_container_client("documents").read_item(doc_id, "contoso")
        return item if item["state"] == "failed" else None

    wait_until(lambda: _exists(app, doc_id) and failed(), timeout=120, host=app.host)
    record = failed()
    assert record["error"]["code"] == "invalid_acl"
    assert record["acl"] == {"users": [], "groups": [], "tenant_wide": False}
    assert app.status(doc_id)["http"] == 404  # not "tenant-wide because unreadable"


def _exists(app: Deployment, doc_id: str) -> bool:
    query = "SELECT VALUE COUNT(1) FROM c WHERE c.id = @id"
    documents = app.database.get_container_client("documents")
    items = documents.query_items(
        query, parameters=[{"name": "@id", "value": doc_id}], enable_cross_partition_query=True
    )
    return list(items) == [1]


def test_a_document_from_before_tenant_folders_moves_into_its_folder(app: Deployment) -> None:
    # What main held before tenant folders: a blob at the root, its tenant in metadata, and a
    # record whose id hashed the path alone (no `blob` field).
    name = "legacy/old.md"
    app.blobs.get_blob_client(app.name, name).upload_blob(
        documents.markdown_text(), overwrite=True, metadata={"tenant": "contoso"}
    )
    old_id = hashlib.sha256(f"{app.name}/{name}".encode()).hexdigest()[:32]
    finance = {"users": [], "groups": ["finance"], "tenant_wide": False}
    app.database.get_container_client("documents").upsert_item(
        {"id": old_id, "tenant": "contoso", "name": name, "container": app.name,
         "state": "succeeded", "step": "done", "percent": 100, "acl": finance}
    )  # fmt: skip
    new_id = document_id("contoso", app.name, name)

    def moved() -> dict[str, Any] | None:
        status = app.status(new_id)
        return status if status.get("state") == "succeeded" else None

    status = wait_until(moved, timeout=180, host=app.host)
    assert status["acl"] == finance and status["name"] == name
    assert app.chunks(new_id)
    assert app.status(old_id)["http"] == 404  # a tombstone now
    with pytest.raises(ResourceNotFoundError):
        app.blobs.get_blob_client(app.name, name).get_blob_properties()
    assert app.blob(name).get_blob_properties().metadata["docgate_moved_from"] == old_id


def test_a_blob_deleted_outside_the_api_loses_its_chunks(app: Deployment) -> None:
    doc_id = app.upload("outside/notes.md", documents.markdown_text())
    assert app.wait_done(doc_id)["state"] == "succeeded"
    app.blob("outside/notes.md").delete_blob()
    wait_until(lambda: not app.chunks(doc_id), timeout=30, host=app.host)
    assert app.manifest(doc_id) is None


# The documents API.


def test_upload_api_raw_and_multipart_then_list(app: Deployment) -> None:
    status, headers, body = request(
        app.host, "POST", "/api/documents?name=api/raw.txt", tenant="fabrikam",
        body=b"Shipping rates change on the first of March.",
        headers={"content-type": "text/plain"},
    )  # fmt: skip
    assert status == 202, body
    assert body["status_url"] == f"/api/documents/{body['id']}"
    assert headers["Location"] == body["status_url"]
    boundary = "docgateboundary"
    form = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="acl"\r\n\r\ngroup:finance\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="api/form.md"\r\n'
        f"Content-Type: text/markdown\r\n\r\n# Rates\n\nRates are reviewed yearly.\r\n"
        f"--{boundary}--\r\n"
    ).encode()
    status, _, multipart = request(
        app.host, "POST", "/api/documents", tenant="fabrikam", body=form,
        headers={"content-type": f"multipart/form-data; boundary={boundary}"},
    )  # fmt: skip
    assert status == 202, multipart
    for doc in (body, multipart):
        assert app.wait_done(doc["id"], tenant="fabrikam")["state"] == "succeeded"
    assert app.chunks(multipart["id"], "fabrikam")[0]["acl"]["groups"] == ["finance"]
    listed = request(app.host, "GET", "/api/documents", tenant="fabrikam")[2]["documents"]
    assert {item["id"] for item in listed} == {body["id"], multipart["id"]}
    contoso = request(app.host, "GET", "/api/documents", tenant="contoso")[2]["documents"]
    assert body["id"] not in {item["id"] for item in contoso}
    # another tenant's document is not found, not forbidden: its existence is not revealed
    assert request(app.host, "GET", f"/api/documents/{body['id']}", tenant="contoso")[0] == 404


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("POST", "/api/documents", b"no name given", 400),
        ("POST", "/api/documents?name=empty.txt", b"", 400),
        ("POST", "/api/documents?name=../../etc/passwd", b"x", 400),
        ("POST", "/api/documents?name=big.bin", b"x" * (3 * 1024 * 1024 + 1), 413),
        ("GET", "/api/documents/does-not-exist", None, 404),
        ("DELETE", "/api/documents/does-not-exist", None, 404),
    ],
)
def test_client_mistakes_are_problem_json_4xx(
    app: Deployment, method: str, path: str, body: bytes | None, status: int
) -> None:
    code, headers, problem = request(app.host, method, path, body=body)
    assert code == status, problem
    assert headers["Content-Type"].startswith("application/problem+json")
    assert problem["status"] == status and problem["detail"]


def test_routes_need_credentials(app: Deployment) -> None:
    status, headers, problem = request(app.host, "GET", "/api/documents", tenant=None)
    assert status == 401 and headers["WWW-Authenticate"].startswith("Bearer")
    assert problem["status"] == 401
    wrong = {"Authorization": "Bearer not-a-key"}
    assert request(app.host, "GET", "/api/documents", headers=wrong, tenant=None)[0] == 401
    assert request(app.host, "GET", "/api/health", tenant=None)[0] == 200
