"""File type detection by magic bytes, never by the name's extension."""

from __future__ import annotations

import codecs

SNIFF_BYTES = 4096

_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"%PDF-", "application/pdf"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"BM", "image/bmp"),
    (b"II*\x00", "image/tiff"),
    (b"MM\x00*", "image/tiff"),
    (b"PK\x03\x04", "application/zip"),
    (b"MZ", "application/x-msdownload"),
    (b"\x7fELF", "application/x-executable"),
)


def detect_type(head: bytes) -> str:
    """The media type the first bytes announce; text when they decode as UTF-8 text."""
    for signature, media_type in _SIGNATURES:
        if head.startswith(signature):
            return media_type
    if not head:
        return "application/x-empty"
    try:
        # A multi-byte character may be cut at the sniff boundary: accept an incomplete tail
        # there (final=False), but still reject any invalid byte, including in the tail.
        codecs.getincrementaldecoder("utf-8")().decode(head, final=len(head) < SNIFF_BYTES)
    except UnicodeDecodeError:
        return "application/octet-stream"
    return "text/plain" if b"\x00" not in head else "application/octet-stream"
