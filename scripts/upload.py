"""Uploads a file into a tenant's folder of docgate's uploads container (Azurite by default), as
a team would: the blob is `{tenant}/{name}` (README: Document identity and write rules).

    .venv/bin/python -m scripts.upload report.pdf [--tenant contoso] [--name folder/report.pdf]

Settings come from the environment, else from local.settings.json `Values`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from azure.storage.blob import BlobServiceClient

from shared.documents.names import blob_path, sanitize_blob_name

ROOT = Path(__file__).resolve().parent.parent


def setting(name: str, default: str | None = None) -> str | None:
    """An app setting: the environment first, then local.settings.json."""
    if os.environ.get(name):
        return os.environ[name]
    path = ROOT / "local.settings.json"
    if path.exists():
        value = json.loads(path.read_text()).get("Values", {}).get(name)
        if value:
            return str(value)
    return default


def main(argv: list[str] | None = None) -> int:
    """Uploads one file and prints where to follow its ingestion."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", type=Path)
    parser.add_argument("--name", help="blob name (default: the file name)")
    parser.add_argument("--tenant", default="default", help="the tenant folder it goes in")
    arguments = parser.parse_args(argv)
    connection = setting("AzureWebJobsStorage")
    if not connection:
        print("AzureWebJobsStorage is not set (run `make run` once to create local.settings.json)")
        return 2
    container = setting("UPLOADS_CONTAINER", "uploads")
    name = blob_path(arguments.tenant, sanitize_blob_name(arguments.name or arguments.file.name))
    service = BlobServiceClient.from_connection_string(connection)
    blob = service.get_blob_client(container, name)
    with arguments.file.open("rb") as data:
        blob.upload_blob(data, overwrite=True, metadata={"tenant": arguments.tenant})
    print(f"uploaded {arguments.file} as {container}/{name}")
    print(
        "follow its ingestion: GET http://127.0.0.1:7071/runtime/webhooks/durabletask/instances"
        "?instanceIdPrefix=ingest-&code=<Keys.master from local.settings.json>"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
