"""The first step of ingestion: decide whether an upload is a document we accept.

`validate` identifies the type by content (see `detect`), rejects what is unsafe or unreadable
with a specific code and a reason a user can act on, and counts pages. Checks run cheapest
first and stop as soon as one decides: a size or a header settles most rejections without
parsing the document, ZIP archives are judged from their central directory before any member
is inflated, and images from their declared dimensions before any pixel is decoded.

Page counts:
- PDF: PDFium's page count.
- TIFF, GIF: frames; other images: 1.
- PPTX: slides listed in the presentation part.
- DOCX: explicit page breaks (`<w:br w:type="page"/>`) + 1. An estimate: DOCX has no pages
  until a word processor lays it out; this counts the page-break sections the extractor emits.
- Text, Markdown, HTML: 1.
"""

from __future__ import annotations

import codecs
import hashlib
import io
import re
import struct
import zipfile
import zlib
from dataclasses import dataclass
from typing import NoReturn

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c
from PIL import Image

from shared.documents import detect
from shared.documents.detect import (
    DOCX,
    EXECUTABLE_TYPES,
    IMAGE_TYPES,
    PPTX,
    SNIFF_BYTES,
    SUPPORTED_TYPES,
    TEXT_TYPES,
    MalformedDocument,
    describe,
)
from shared.documents.pdfium import PDFIUM_LOCK

MIB = 1024 * 1024

# Rejection codes.
EMPTY = "empty"
TOO_LARGE = "too_large"
TOO_MANY_PAGES = "too_many_pages"
UNSUPPORTED_TYPE = "unsupported_type"
EXECUTABLE = "executable"
ENCRYPTED = "encrypted"
CORRUPT = "corrupt"
DECOMPRESSION_BOMB = "decompression_bomb"

SUPPORTED_SUMMARY = "PDF, DOCX, PPTX, PNG, JPEG, GIF, BMP, TIFF, plain text, Markdown and HTML"

# Members smaller than this may compress absurdly well (a run of spaces in XML) yet cannot hurt:
# the ratio limit applies only from this size up; the total expanded size still counts them.
RATIO_CHECK_MIN_BYTES = MIB
# Parsing a ZIP's central directory costs memory per member; real Office files have hundreds.
MAX_ZIP_MEMBERS = 10_000
_CHUNK = MIB
_EOCD = b"PK\x05\x06"
_EOCD_SEARCH = 22 + 65_535  # the record plus the longest archive comment

_PAGE_BREAK = re.compile(rb"<(?:\w+:)?br\b[^>]{0,200}?\b(?:\w+:)?type\s*=\s*[\"']page[\"']")
_SLIDE_ID = re.compile(rb"<(?:\w+:)?sldId\b")
_MATCH_OVERLAP = 512  # longer than any match above, so none is lost between chunks

_PILLOW_FORMATS = {
    detect.PNG: "PNG",
    detect.JPEG: "JPEG",
    detect.GIF: "GIF",
    detect.BMP: "BMP",
    detect.TIFF: "TIFF",
}

# PDFium is not thread-safe, and the Functions host runs activities on a thread pool.
_PDFIUM_LOCK = PDFIUM_LOCK


@dataclass(frozen=True)
class ValidationLimits:
    """What an upload may cost us. Defaults match the MAX_* settings in shared.config."""

    max_bytes: int = 200 * MIB
    max_pages: int = 2_000
    max_expanded_bytes: int = 500 * MIB  # ZIP members inflated, or an image's decoded pixels
    max_compression_ratio: float = 200.0  # per ZIP member; Office XML rarely passes 30


@dataclass(frozen=True)
class ValidatedDocument:
    """An accepted upload: its detected type, page count, hash and size."""

    media_type: str
    page_count: int
    sha256: str
    size: int


class DocumentRejected(Exception):
    """The upload is not accepted; `code` is stable for programs, `reason` is for people."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason


def validate(
    name: str, content: bytes, limits: ValidationLimits | None = None
) -> ValidatedDocument:
    """Accepts `content` (uploaded as `name`) or raises DocumentRejected saying why not."""
    limits = limits or ValidationLimits()
    check_size(content, limits)
    media_type, page_count = inspect(name, content, limits)
    check_pages(page_count, media_type, limits)
    return ValidatedDocument(
        media_type=media_type,
        page_count=page_count,
        sha256=hashlib.sha256(content).hexdigest(),
        size=len(content),
    )


def check_size(content: bytes, limits: ValidationLimits) -> None:
    """Rejects empty and oversized uploads before looking inside them."""
    if not content:
        raise DocumentRejected(EMPTY, "The file is empty (0 bytes).")
    if len(content) > limits.max_bytes:
        raise DocumentRejected(
            TOO_LARGE,
            f"The file is {format_bytes(len(content))}; the limit is "
            f"{format_bytes(limits.max_bytes)}.",
        )


def check_pages(page_count: int, media_type: str, limits: ValidationLimits) -> None:
    """Rejects documents without pages or with more than the limit."""
    if page_count == 0:
        raise DocumentRejected(EMPTY, f"The file is {describe(media_type)} with no pages.")
    if page_count > limits.max_pages:
        raise DocumentRejected(
            TOO_MANY_PAGES,
            f"The document has {page_count} pages; the limit is {limits.max_pages}.",
        )


def inspect(name: str, content: bytes, limits: ValidationLimits) -> tuple[str, int]:
    """The accepted media type and page count, by the type the leading bytes announce."""
    sniffed = detect.detect_type(content[:SNIFF_BYTES])
    if sniffed in EXECUTABLE_TYPES:
        raise DocumentRejected(
            EXECUTABLE,
            f'"{name}" is {describe(sniffed)}, whatever its name says; '
            "programs and scripts are never accepted.",
        )
    if sniffed == detect.PDF:
        return sniffed, count_pdf_pages(content)
    if sniffed in IMAGE_TYPES:
        return sniffed, count_image_frames(content, sniffed, limits)
    if sniffed == detect.ZIP:
        return inspect_zip(content, limits)
    if sniffed == detect.OLE:
        reject_ole(content)
    if sniffed in TEXT_TYPES:
        check_text(content)
        return detect.text_media_type(sniffed, name), 1
    raise unsupported(sniffed)


def unsupported(media_type: str) -> DocumentRejected:
    """The rejection for a recognised type we do not ingest."""
    return DocumentRejected(
        UNSUPPORTED_TYPE,
        f"The file is {describe(media_type)}, which is not supported. "
        f"Supported: {SUPPORTED_SUMMARY}.",
    )


def format_bytes(size: float) -> str:
    """A byte count for people: 1536 -> "1.5 KiB"."""
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


# PDF


PDF_PERMIT_EXTRACT = 1 << 4  # /P bit 5: copy or otherwise extract text and graphics


def count_pdf_pages(content: bytes) -> int:
    """Pages of a complete, unencrypted PDF; rejects truncated, damaged and encrypted ones."""
    # PDFium silently rebuilds a cut file from the objects it finds, so a half-uploaded PDF
    # would "open" with fewer pages: demand the end-of-file marker (within the last 1 KiB,
    # the tolerance Acrobat applies).
    if content.rfind(b"%%EOF", max(0, len(content) - 1024)) == -1:
        raise DocumentRejected(
            CORRUPT, "The PDF is truncated: it does not end with %%EOF. Upload it again."
        )
    with _PDFIUM_LOCK:
        document = open_pdf(content)
        try:
            # -1: no security handler. An owner-restricted copy opens without a password; it is
            # indexed only when its permissions allow copying text out (bit 5 of /P), since
            # indexing is extraction.
            encrypted = pdfium_c.FPDF_GetSecurityHandlerRevision(document.raw) != -1
            may_extract = pdfium_c.FPDF_GetDocPermissions(document.raw) & PDF_PERMIT_EXTRACT
            if encrypted and not may_extract:
                raise DocumentRejected(
                    ENCRYPTED,
                    "The PDF is encrypted and its permissions forbid copying text out of it "
                    "(an /Encrypt dictionary with restrictions). Upload an unprotected copy.",
                )
            return len(document)
        finally:
            document.close()


def open_pdf(content: bytes) -> pdfium.PdfDocument:
    """Opens a PDF with PDFium, turning its load errors into rejections."""
    try:
        return pdfium.PdfDocument(content)
    except pdfium.PdfiumError as error:
        if error.err_code == pdfium_c.FPDF_ERR_PASSWORD:
            raise DocumentRejected(
                ENCRYPTED, "The PDF is password-protected. Remove the password and upload again."
            ) from error
        raise DocumentRejected(
            CORRUPT, f"The PDF is damaged and cannot be opened ({error})."
        ) from error


# Images


def count_image_frames(content: bytes, media_type: str, limits: ValidationLimits) -> int:
    """Frames of an image whose dimensions are sane and whose data is intact."""
    frame_count = check_image_dimensions(content, media_type, limits)
    verify_image(content, media_type)
    return frame_count


def open_image(content: bytes, media_type: str) -> Image.Image:
    """Opens (header only) as exactly the sniffed format, never as another that also parses."""
    return Image.open(io.BytesIO(content), formats=[_PILLOW_FORMATS[media_type]])


def check_image_dimensions(content: bytes, media_type: str, limits: ValidationLimits) -> int:
    """Rejects absurd declared dimensions, from headers only; returns the frame count."""
    try:
        with open_image(content, media_type) as image:
            frame_count = getattr(image, "n_frames", 1)
            # TIFF frames each declare their own size; GIF frames live inside frame 0's.
            checked = min(frame_count, limits.max_pages) if media_type == detect.TIFF else 1
            for frame in range(checked):
                image.seek(frame)
                check_pixels(image, limits)
    except Image.DecompressionBombError as error:
        raise DocumentRejected(
            DECOMPRESSION_BOMB, f"The image declares absurd dimensions ({error})."
        ) from error
    except DocumentRejected:
        raise
    except Exception as error:  # Pillow's plugins raise a zoo of types on malformed headers
        raise image_corrupt(media_type, error) from error
    return frame_count


def check_pixels(image: Image.Image, limits: ValidationLimits) -> None:
    """Rejects a frame whose decoded pixels would exceed Pillow's or our memory limit."""
    width, height = image.size
    pixels = width * height
    decoded = pixels * len(image.getbands())
    if pixels > (Image.MAX_IMAGE_PIXELS or pixels) or decoded > limits.max_expanded_bytes:
        raise DocumentRejected(
            DECOMPRESSION_BOMB,
            f"The image declares {width}x{height} pixels, {format_bytes(decoded)} once "
            f"decoded; the limit is {format_bytes(limits.max_expanded_bytes)}.",
        )


def verify_image(content: bytes, media_type: str) -> None:
    """Rejects damaged or truncated image data: checksums, then decoding the first frame.

    Decoding is bounded by `check_pixels`, which has already run.
    """
    try:
        with open_image(content, media_type) as image:
            image.verify()  # every chunk's CRC and the IEND marker, for PNG
        if media_type == detect.PNG:
            return  # verify read it all; a full decode would cost ~0.4 s per 24 megapixels
        with open_image(content, media_type) as image:
            # JPEG decodes at 1/8 scale: the whole entropy-coded stream is still read (so a
            # cut file fails) for a fraction of the time and memory.
            image.draft(None, (max(1, image.width // 8), max(1, image.height // 8)))
            image.load()
    except Exception as error:  # Pillow's decoders raise OSError, SyntaxError, ValueError...
        raise image_corrupt(media_type, error) from error


def image_corrupt(media_type: str, error: Exception) -> DocumentRejected:
    """The rejection for image data Pillow cannot read."""
    return DocumentRejected(
        CORRUPT, f"The file looks like {describe(media_type)} but is damaged ({error})."
    )


# ZIP (DOCX, PPTX)


def inspect_zip(content: bytes, limits: ValidationLimits) -> tuple[str, int]:
    """Type and page count of a DOCX or PPTX; rejects other ZIPs, bombs and damaged archives."""
    check_zip_member_count(content)
    with open_zip(content) as archive:
        check_zip_expansion(archive, limits)
        check_zip_encryption(archive)
        try:
            media_type = detect.zip_media_type(archive)
        except (MalformedDocument, zipfile.BadZipFile, zlib.error, EOFError) as error:
            raise DocumentRejected(CORRUPT, f"The Office document is damaged: {error}.") from error
        if media_type not in SUPPORTED_TYPES:
            raise unsupported(media_type)
        check_zip_members_intact(archive)
        return media_type, count_office_pages(archive, media_type)


def check_zip_member_count(content: bytes) -> None:
    """Rejects archives listing absurdly many members, before their directory is parsed."""
    end = content.rfind(_EOCD, max(0, len(content) - _EOCD_SEARCH))
    if end == -1 or end + 12 > len(content):
        return  # no end record: opening the archive reports it as damaged
    members = struct.unpack_from("<H", content, end + 10)[0]
    if members > MAX_ZIP_MEMBERS:
        raise DocumentRejected(
            DECOMPRESSION_BOMB,
            f"The archive lists {members} members; the limit is {MAX_ZIP_MEMBERS}.",
        )


def open_zip(content: bytes) -> zipfile.ZipFile:
    """Reads a ZIP's central directory (no member is inflated); rejects unreadable archives."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(content))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as error:
        raise DocumentRejected(
            CORRUPT, f"The ZIP container is truncated or damaged ({error})."
        ) from error
    names = archive.namelist()
    if len(names) != len(set(names)):
        archive.close()
        # Two members with one name let different readers see different documents.
        raise DocumentRejected(CORRUPT, "The ZIP container has duplicate member names.")
    return archive


def check_zip_expansion(archive: zipfile.ZipFile, limits: ValidationLimits) -> None:
    """Rejects decompression bombs by the sizes the central directory declares.

    A member cannot lie its way past this: zipfile stops inflating at the declared size and
    then fails the CRC check, which `check_zip_members_intact` runs.
    """
    total = 0
    for info in archive.infolist():
        total += info.file_size
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size >= RATIO_CHECK_MIN_BYTES and ratio > limits.max_compression_ratio:
            raise DocumentRejected(
                DECOMPRESSION_BOMB,
                f"The member {info.filename} expands {ratio:.0f}x "
                f"({format_bytes(info.compress_size)} to {format_bytes(info.file_size)}); "
                f"the limit is {limits.max_compression_ratio:.0f}x.",
            )
    if total > limits.max_expanded_bytes:
        raise DocumentRejected(
            DECOMPRESSION_BOMB,
            f"The archive expands to {format_bytes(total)}; the limit is "
            f"{format_bytes(limits.max_expanded_bytes)}.",
        )


def check_zip_encryption(archive: zipfile.ZipFile) -> None:
    """Rejects archives with password-protected (ZipCrypto/AES) members."""
    locked = [info.filename for info in archive.infolist() if info.flag_bits & 0x1]
    if locked:
        raise DocumentRejected(
            ENCRYPTED, f"The archive has password-protected members ({locked[0]}, ...)."
        )


def check_zip_members_intact(archive: zipfile.ZipFile) -> None:
    """Inflates every member in chunks, so a bad CRC or cut data fails here, not downstream."""
    for info in archive.infolist():
        try:
            with archive.open(info) as member:
                chunk = member.read(_CHUNK)
                while chunk:
                    chunk = member.read(_CHUNK)
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError) as error:
            raise DocumentRejected(
                CORRUPT, f"The member {info.filename} is damaged ({error})."
            ) from error


def count_office_pages(archive: zipfile.ZipFile, media_type: str) -> int:
    """Slides of a PPTX; page-break sections of a DOCX (an estimate, see the module doc)."""
    main = detect.main_part_name(archive)
    if main is None:
        raise DocumentRejected(CORRUPT, "The Office document has no main part.")
    if media_type == PPTX:
        return count_matches(archive, main, _SLIDE_ID)
    if media_type == DOCX:
        return count_matches(archive, main, _PAGE_BREAK) + 1
    raise unsupported(media_type)


def count_matches(archive: zipfile.ZipFile, part: str, pattern: re.Pattern[bytes]) -> int:
    """Occurrences of `pattern` in a member, streamed in chunks (bounded memory)."""
    count = 0
    tail = b""
    with archive.open(part) as member:
        while chunk := member.read(_CHUNK):
            window = tail + chunk
            # A match ending inside the carried-over tail was counted with the previous chunk.
            count += sum(1 for match in pattern.finditer(window) if match.end() > len(tail))
            tail = window[-_MATCH_OVERLAP:]
    return count


# OLE compound files


def reject_ole(content: bytes) -> NoReturn:
    """OLE files are never accepted: say whether it is an encrypted Office file or legacy."""
    media_type = detect.ole_media_type(content)
    if media_type == detect.ENCRYPTED_OFFICE:
        raise DocumentRejected(
            ENCRYPTED,
            "The Office document is password-protected (an encrypted package). "
            "Remove the password and upload again.",
        )
    raise unsupported(media_type)


# Text


def check_text(content: bytes) -> None:
    """Rejects text that is not valid UTF-8 (or BOM-marked UTF-16) throughout, or has NULs.

    The sniff saw only the head; this decodes everything in chunks, without holding a copy.
    """
    encoding = detect.text_encoding(content[:2])
    decoder = codecs.getincrementaldecoder(encoding)()
    view = memoryview(content)
    for start in range(0, len(content), _CHUNK):
        end = start + _CHUNK
        try:
            text = decoder.decode(view[start:end], final=end >= len(content))
        except UnicodeDecodeError as error:
            raise DocumentRejected(
                UNSUPPORTED_TYPE,
                f"The file is not valid {encoding.upper().removesuffix('-SIG')} text: "
                f"{error.reason} at byte {start + error.start}. Save it as UTF-8.",
            ) from error
        if "\x00" in text:
            raise DocumentRejected(
                UNSUPPORTED_TYPE, "The file has NUL bytes: it is binary data, not text."
            )
