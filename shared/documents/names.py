"""Blob names from user input: no traversal, no control characters, bounded length."""

from __future__ import annotations

import unicodedata

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
