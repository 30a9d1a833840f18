"""Blob names from user input (no traversal, no control characters, bounded length), and the
tenant folder every document's blob lives in: `{tenant}/{name}` in the uploads container."""

from __future__ import annotations

import unicodedata
from urllib.parse import quote, unquote

MAX_NAME_LENGTH = 1024  # Azure's blob name limit
_RESERVED = {
    "CON",
    "PRN",
    "AUX",
    "NUL",
    *(f"COM{i}" for i in range(1, 10)),
    *(f"LPT{i}" for i in range(1, 10)),
}


class InvalidName(ValueError):
    """The name cannot be made safe."""


def sanitize_blob_name(raw: str) -> str:
    """A safe blob name: NFC, `/` separators, no `.`/`..` segments, no control characters."""
    name = unicodedata.normalize("NFC", raw).replace("\\", "/")
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C")
    segments = [segment.strip() for segment in name.split("/")]
    if any(segment in (".", "..") for segment in segments):
        raise InvalidName("the name must not contain '.' or '..' path segments")
    segments = [segment for segment in segments if segment]
    if not segments:
        raise InvalidName("the name is empty")
    if any(segment.split(".")[0].upper() in _RESERVED for segment in segments):
        raise InvalidName("the name uses a reserved device name (CON, NUL, COM1, ...)")
    cleaned = "/".join(segments)
    if len(cleaned) > MAX_NAME_LENGTH:
        raise InvalidName(f"the name is longer than {MAX_NAME_LENGTH} characters")
    return cleaned


def tenant_folder(tenant: str) -> str:
    """The tenant's folder: one percent-encoded path segment (injective; never `.` or `..`)."""
    if not tenant:
        raise InvalidName("the tenant is empty")
    folder = quote(tenant, safe="")
    return folder.replace(".", "%2E") if set(folder) == {"."} else folder


def blob_path(tenant: str, name: str) -> str:
    """Where a tenant's document `name` (already sanitised) is stored in the uploads container."""
    path = f"{tenant_folder(tenant)}/{name}"
    if len(path) > MAX_NAME_LENGTH:
        raise InvalidName(f"the name is longer than {MAX_NAME_LENGTH} characters with its tenant")
    return path


def split_blob_path(path: str) -> tuple[str, str] | None:
    """(tenant, name) of a blob in a tenant folder; None when the path has no tenant folder or
    is not the canonical one `blob_path` writes (two spellings must never be one document)."""
    folder, _, name = path.partition("/")
    if not folder or not name:
        return None
    tenant = unquote(folder)
    try:
        canonical = blob_path(tenant, sanitize_blob_name(name))
    except InvalidName:
        return None
    return (tenant, name) if canonical == path else None
