"""File type detection from the first bytes."""

from __future__ import annotations

import pytest

from shared.documents.detect import SNIFF_BYTES, detect_type

_BMP_INFO = b"\x01\x00\x00\x00\x01\x00\x00\x00\x01\x00\x18\x00" + bytes(24)


@pytest.mark.parametrize(
    ("head", "media_type"),
    [
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", "application/pdf"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "image/png"),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00", "image/jpeg"),
        (b"GIF87a\x01\x00\x01\x00", "image/gif"),
        (b"GIF89a\x01\x00\x01\x00", "image/gif"),
        # BITMAPFILEHEADER + BITMAPINFOHEADER (1x1, 24 bits): "BM" alone is not enough.
        (b"BM:\x00\x00\x00\x00\x00\x00\x006\x00\x00\x00(\x00\x00\x00" + _BMP_INFO, "image/bmp"),
        (b"II*\x00\x08\x00\x00\x00", "image/tiff"),
        (b"MM\x00*\x00\x00\x00\x08", "image/tiff"),
        (b"PK\x03\x04\x14\x00\x06\x00", "application/zip"),
        (b"\x7fELF\x02\x01\x01\x00", "application/x-executable"),
        (b"PK\x05\x06" + bytes(18), "application/zip"),  # an empty archive
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1\x00\x00", "application/x-ole-storage"),
        (b"\xcf\xfa\xed\xfe\x07\x00\x00\x01", "application/x-mach-binary"),
        (b"\xca\xfe\xba\xbe\x00\x00\x00\x02", "application/x-mach-binary"),
        (b"#!/bin/sh\necho hi\n", "text/x-shellscript"),
        (b"#! /usr/bin/env python3\n", "text/x-shellscript"),
        (b"<!DOCTYPE html>\n<html>", "text/html"),
        (b"\xef\xbb\xbf  <!-- x -->\n<HTML lang=en>", "text/html"),
        (b"<p>a fragment is text</p>", "text/plain"),
        ("Grüße".encode("utf-16"), "text/plain"),
    ],
)
def test_signatures(head: bytes, media_type: str) -> None:
    assert detect_type(head) == media_type


def test_renamed_executable_is_detected_by_content() -> None:
    # A Windows executable uploaded as "report.pdf" or "notes.txt" starts with "MZ".
    assert detect_type(b"MZ\x90\x00\x03\x00\x00\x00\x04\x00") == "application/x-msdownload"


def test_mz_needs_a_pe_header_or_binary_bytes() -> None:
    # A PE header that lies beyond the bytes a short head shows is still caught as binary.
    head = b"MZ" + bytes(0x3A) + b"\x40\x00\x00\x00" + b"PE\x00\x00"
    assert detect_type(head) == "application/x-msdownload"
    assert detect_type(b"MZ-80 service manual\n") == "text/plain"


@pytest.mark.parametrize(
    "head",
    [b"BMW fleet report\n", b"BM" + bytes(40), b"BM6\x00\x0c\x00\x00\x00"],
)
def test_bm_without_a_valid_bitmap_header_is_not_bmp(head: bytes) -> None:
    assert detect_type(head) != "image/bmp"


def test_empty() -> None:
    assert detect_type(b"") == "application/x-empty"


@pytest.mark.parametrize(
    "text",
    ["hello, world\n", "Grüße aus Köln — 東京 🚀\n", "x" * SNIFF_BYTES, "é" * (SNIFF_BYTES // 2)],
)
def test_utf8_text(text: str) -> None:
    assert detect_type(text.encode()[:SNIFF_BYTES]) == "text/plain"


@pytest.mark.parametrize(
    ("prefix", "char"),
    [
        ("a", "é"),  # 1 byte of 2 left at the boundary
        ("ab", "€"),  # 2 bytes of 3
        ("abc", "€"),  # 1 byte of 3
        ("a", "🚀"),  # 3 bytes of 4
        ("abc", "🚀"),  # 1 byte of 4
    ],
)
def test_multibyte_char_cut_at_the_sniff_boundary_is_still_text(prefix: str, char: str) -> None:
    text = prefix + char * SNIFF_BYTES
    head = text.encode()[:SNIFF_BYTES]
    assert len(head) == SNIFF_BYTES
    with pytest.raises(UnicodeDecodeError):
        head.decode()  # the last character really is cut
    assert detect_type(head) == "text/plain"


def test_longer_head_than_the_sniff_size_is_judged_like_a_sniff() -> None:
    head = ("a" + "é" * SNIFF_BYTES).encode()[: SNIFF_BYTES + 1]
    assert detect_type(head) == "text/plain"


def test_binary_with_nul_is_octet_stream() -> None:
    assert detect_type(b"hello\x00world") == "application/octet-stream"
    assert detect_type(b"a" * (SNIFF_BYTES - 1) + b"\x00") == "application/octet-stream"


@pytest.mark.parametrize(
    "head",
    [
        b"caf\xe9 latin-1",  # not UTF-8
        b"\xc3\x28 bad continuation",
        b"\xed\xa0\x80 surrogate",
        b"short file ending mid-character \xe2\x82",  # the whole file: nothing was cut
        b"a" * (SNIFF_BYTES - 1) + b"\xff",  # an invalid byte in the tail of a full sniff
        b"a" * (SNIFF_BYTES - 2) + b"\xc3\x28",
        b"\xfe" + b"a" * (SNIFF_BYTES - 1),
    ],
)
def test_invalid_utf8_is_octet_stream(head: bytes) -> None:
    assert detect_type(head) == "application/octet-stream"
