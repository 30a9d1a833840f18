"""File type detection by magic bytes, never by the name's extension.

Two levels:
- `detect_type(head)` sniffs the first bytes only (cheap, for streaming callers).
- `zip_media_type`, `ole_media_type` and `text_media_type` refine a sniffed container or text
  type from the whole content: which Office document a ZIP or OLE file is, Markdown vs text.

The name's extension is consulted in exactly one place: choosing Markdown among text types,
because Markdown has no signature. It can never promote bytes to a non-text type.
"""

from __future__ import annotations

import codecs
import posixpath
import re
import struct
import zipfile
from xml.etree import ElementTree

SNIFF_BYTES = 4096

EMPTY = "application/x-empty"
OCTET_STREAM = "application/octet-stream"
PDF = "application/pdf"
PNG = "image/png"
JPEG = "image/jpeg"
GIF = "image/gif"
BMP = "image/bmp"
TIFF = "image/tiff"
ZIP = "application/zip"
OLE = "application/x-ole-storage"
OPC = "application/x-opc-package"  # an Open Packaging ZIP that is no known Office document
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
PPTX = "application/vnd.openxmlformats-officedocument.presentationml.presentation"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
ENCRYPTED_OFFICE = "application/x-ooxml-encrypted"  # password-protected DOCX/XLSX/PPTX (OLE)
DOC = "application/msword"
XLS = "application/vnd.ms-excel"
PPT = "application/vnd.ms-powerpoint"
MSG = "application/vnd.ms-outlook"
TEXT = "text/plain"
MARKDOWN = "text/markdown"
HTML = "text/html"
WINDOWS_EXECUTABLE = "application/x-msdownload"
ELF_EXECUTABLE = "application/x-executable"
MACH_O_EXECUTABLE = "application/x-mach-binary"
SCRIPT = "text/x-shellscript"

SUPPORTED_TYPES = frozenset({PDF, PNG, JPEG, GIF, BMP, TIFF, DOCX, PPTX, TEXT, MARKDOWN, HTML})
# Read in page ranges (big documents fan out); every other type is read in one go.
PAGED_TYPES = frozenset({PDF})
# Text the local extractor reads exactly: never worth sending to Document Intelligence.
TEXTUAL_TYPES = frozenset({DOCX, PPTX, TEXT, MARKDOWN, HTML})
EXECUTABLE_TYPES = frozenset({WINDOWS_EXECUTABLE, ELF_EXECUTABLE, MACH_O_EXECUTABLE, SCRIPT})
TEXT_TYPES = frozenset({TEXT, MARKDOWN, HTML})
IMAGE_TYPES = frozenset({PNG, JPEG, GIF, BMP, TIFF})

MARKDOWN_EXTENSIONS = frozenset({".md", ".markdown", ".mdown", ".mkd", ".mkdn"})

DESCRIPTIONS = {
    EMPTY: "an empty file",
    OCTET_STREAM: "unrecognised binary data",
    PDF: "a PDF document",
    PNG: "a PNG image",
    JPEG: "a JPEG image",
    GIF: "a GIF image",
    BMP: "a BMP image",
    TIFF: "a TIFF image",
    ZIP: "a ZIP archive",
    OLE: "an OLE compound file (legacy Office or Windows installer)",
    OPC: "an Open Packaging ZIP that is not a Word or PowerPoint document",
    DOCX: "a Word document (DOCX)",
    PPTX: "a PowerPoint presentation (PPTX)",
    XLSX: "an Excel workbook (XLSX)",
    ENCRYPTED_OFFICE: "a password-protected Office document",
    DOC: "a Word 97-2003 document (DOC)",
    XLS: "an Excel 97-2003 workbook (XLS)",
    PPT: "a PowerPoint 97-2003 presentation (PPT)",
    MSG: "an Outlook message (MSG)",
    TEXT: "plain text",
    MARKDOWN: "Markdown text",
    HTML: "an HTML page",
    WINDOWS_EXECUTABLE: "a Windows executable",
    ELF_EXECUTABLE: "a Linux (ELF) executable",
    MACH_O_EXECUTABLE: "a macOS (Mach-O) executable",
    SCRIPT: "a script with a #! interpreter line",
}

_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"%PDF-", PDF),
    (b"\x89PNG\r\n\x1a\n", PNG),
    (b"\xff\xd8\xff", JPEG),
    (b"GIF87a", GIF),
    (b"GIF89a", GIF),
    (b"II*\x00", TIFF),
    (b"MM\x00*", TIFF),
    (b"PK\x03\x04", ZIP),
    (b"PK\x05\x06", ZIP),  # an empty archive: only the end-of-central-directory record
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", OLE),
    (b"\x7fELF", ELF_EXECUTABLE),
    (b"\xfe\xed\xfa\xce", MACH_O_EXECUTABLE),
    (b"\xfe\xed\xfa\xcf", MACH_O_EXECUTABLE),
    (b"\xce\xfa\xed\xfe", MACH_O_EXECUTABLE),
    (b"\xcf\xfa\xed\xfe", MACH_O_EXECUTABLE),
    # Universal (fat) Mach-O; Java class files share the magic and are code too.
    (b"\xca\xfe\xba\xbe", MACH_O_EXECUTABLE),
)

# BITMAPCOREHEADER, OS/2 v2 short, BITMAPINFOHEADER, v2, v3, OS/2 v2, v4, v5.
_BMP_INFO_HEADER_SIZES = frozenset({12, 16, 40, 52, 56, 64, 108, 124})
_SCRIPT_LINE = re.compile(rb"#![ \t]*/")
_HTML_START = re.compile(r"<(?:!doctype\s+html|html)[\s>]", re.IGNORECASE)
_UTF16_BOMS = ((codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be"))


def describe(media_type: str) -> str:
    """A human-readable name with the media type, for rejection reasons."""
    if media_type in DESCRIPTIONS:
        return f"{DESCRIPTIONS[media_type]} ({media_type})"
    return f"a file of type {media_type}"


class MalformedDocument(ValueError):
    """The bytes claim a container type (an Office ZIP) but its structure is broken."""


def detect_type(head: bytes) -> str:
    """The media type the first bytes announce; a text type when they decode as text."""
    if not head:
        return EMPTY
    for signature, media_type in _SIGNATURES:
        if head.startswith(signature):
            return media_type
    if _is_bmp(head):
        return BMP
    if head.startswith(b"MZ") and (_has_pe_header(head) or decode_text_head(head) is None):
        # A DOS stub without a PE header within the sniff is still an MZ program; only an
        # "MZ..." that reads as text (an abbreviation starting a note) is let through.
        return WINDOWS_EXECUTABLE
    if _SCRIPT_LINE.match(head):
        return SCRIPT
    text = decode_text_head(head)
    if text is None:
        return OCTET_STREAM
    return HTML if looks_like_html(text) else TEXT


def text_media_type(sniffed: str, name: str) -> str:
    """Markdown for plain text named like Markdown; any other type is returned unchanged."""
    if sniffed == TEXT and posixpath.splitext(name.lower())[1] in MARKDOWN_EXTENSIONS:
        return MARKDOWN
    return sniffed


def text_encoding(head: bytes) -> str:
    """The codec a text file is read with: UTF-16 only when its byte-order mark says so."""
    for bom, encoding in _UTF16_BOMS:
        if head.startswith(bom):
            return encoding
    return "utf-8-sig"


def decode_text_head(head: bytes) -> str | None:
    """The head decoded as UTF-8 (or BOM-marked UTF-16) text, or None if it is not NUL-free text.

    A multi-byte character may be cut at the sniff boundary: an incomplete tail is accepted
    there, but any invalid byte, including in the tail, makes it binary.
    """
    encoding = text_encoding(head)
    body = head[len(codecs.BOM_UTF16_LE) :] if encoding.startswith("utf-16") else head
    try:
        text = codecs.getincrementaldecoder(encoding)().decode(body, final=len(head) < SNIFF_BYTES)
    except UnicodeDecodeError:
        return None
    return None if "\x00" in text else text


def looks_like_html(text: str) -> bool:
    """Whether text opens, after whitespace, comments and an XML declaration, with an html tag."""
    rest = text.lstrip("\ufeff \t\r\n\f")
    while rest.startswith(("<!--", "<?xml")):
        end = rest.find("-->" if rest.startswith("<!--") else "?>")
        if end == -1:
            return False
        rest = rest[end + 3 if rest.startswith("<!--") else end + 2 :].lstrip(" \t\r\n\f")
    return _HTML_START.match(rest) is not None


def _is_bmp(head: bytes) -> bool:
    """Whether "BM" is followed by a plausible BITMAPFILEHEADER and info header, not by text."""
    if len(head) < 26 or not head.startswith(b"BM"):
        return False
    reserved, pixel_offset, info_size = struct.unpack_from("<III", head, 6)
    if reserved != 0 or info_size not in _BMP_INFO_HEADER_SIZES or pixel_offset < 14 + info_size:
        return False
    planes_at = 22 if info_size == 12 else 26
    if len(head) < planes_at + 2:
        return False
    return struct.unpack_from("<H", head, planes_at)[0] == 1


def _has_pe_header(head: bytes) -> bool:
    """Whether the MZ header's e_lfanew points at a "PE\\0\\0" signature inside the head."""
    if len(head) < 0x40:
        return False
    pe_offset = struct.unpack_from("<I", head, 0x3C)[0]
    return head[pe_offset : pe_offset + 4] == b"PE\x00\x00"


def ole_media_type(content: bytes) -> str:
    """What an OLE compound file holds, by the names of its directory entries."""
    if _has_ole_entry(content, "EncryptedPackage"):
        return ENCRYPTED_OFFICE
    for entry, media_type in (
        ("WordDocument", DOC),
        ("Workbook", XLS),
        ("Book", XLS),
        ("PowerPoint Document", PPT),
        ("__properties_version1.0", MSG),
    ):
        if _has_ole_entry(content, entry):
            return media_type
    return OLE


def _has_ole_entry(content: bytes, name: str) -> bool:
    """Whether a compound-file directory entry has this name.

    Entries are 128-byte records in sectors of 512 or 4096 bytes that follow a 512-byte
    header, so every entry starts at a file offset divisible by 128: the UTF-16 name at +0, its
    byte length (with the terminating NUL) at +64, the type (1 storage, 2 stream) at +66. Checking
    those fields finds real entries without walking the sector chains, and ignores the same text
    inside stream data.
    """
    encoded = (name + "\x00").encode("utf-16-le")
    length = struct.pack("<H", len(encoded))
    at = content.find(encoded, 512)
    while at != -1:
        if at % 128 == 0 and content[at + 64 : at + 66] == length and content[at + 66] in (1, 2):
            return True
        at = content.find(encoded, at + 1)
    return False


# ZIP/OPC: which Office document a package is. The main part's content type decides it.

_OFFICE_DOCUMENT_REL = "/officeDocument"  # transitional and strict relationship URIs end so
_CONTENT_TYPES_PART = "[Content_Types].xml"
_PACKAGE_RELS_PART = "_rels/.rels"
_MAIN_SUFFIX = ".main+xml"
MAX_PACKAGE_XML_BYTES = 4 * 1024 * 1024  # [Content_Types].xml and .rels are a few KB in practice


def zip_media_type(archive: zipfile.ZipFile) -> str:
    """The Office type a ZIP holds (DOCX, PPTX, XLSX...), an ODF/EPUB mimetype, or plain ZIP.

    Reads only the small package parts. Callers must have vetted the archive's declared sizes
    (decompression bombs) first. Raises MalformedDocument when an Office package lacks a part
    its own manifest requires.
    """
    names = set(archive.namelist())
    if _CONTENT_TYPES_PART not in names:
        return _mimetype_member(archive) if "mimetype" in names else ZIP
    main = main_part_name(archive)
    if main is None:
        return OPC
    if main not in names:
        raise MalformedDocument(f"its main part {main} is missing")
    content_type = _part_content_type(archive, main)
    if content_type is None:
        raise MalformedDocument(f"[Content_Types].xml gives no type for {main}")
    return content_type.removesuffix(_MAIN_SUFFIX) if content_type.endswith(_MAIN_SUFFIX) else OPC


def main_part_name(archive: zipfile.ZipFile) -> str | None:
    """The ZIP member name of the package's officeDocument part, from _rels/.rels."""
    if _PACKAGE_RELS_PART not in archive.namelist():
        raise MalformedDocument("_rels/.rels is missing")
    for relationship in read_package_xml(archive, _PACKAGE_RELS_PART):
        if (
            relationship.get("Type", "").endswith(_OFFICE_DOCUMENT_REL)
            and relationship.get("TargetMode") != "External"
        ):
            return posixpath.normpath(relationship.get("Target", "").lstrip("/"))
    return None


def read_package_xml(archive: zipfile.ZipFile, name: str) -> ElementTree.Element:
    """One small XML part, parsed; refuses DTDs (OPC forbids them, entity bombs need them)."""
    info = archive.getinfo(name)
    if info.file_size > MAX_PACKAGE_XML_BYTES:
        raise MalformedDocument(f"{name} is implausibly large ({info.file_size} bytes)")
    data = archive.read(name)
    if re.search(rb"<!DOCTYPE", data, re.IGNORECASE):
        raise MalformedDocument(f"{name} declares a DTD")
    try:
        return ElementTree.fromstring(data)
    except ElementTree.ParseError as error:
        raise MalformedDocument(f"{name} is not well-formed XML ({error})") from error


def _part_content_type(archive: zipfile.ZipFile, part: str) -> str | None:
    """A part's content type: its Override, else the Default for its extension."""
    types = read_package_xml(archive, _CONTENT_TYPES_PART)
    extension = posixpath.splitext(part)[1].lstrip(".").lower()
    default = None
    for entry in types:
        tag = entry.tag.rsplit("}", 1)[-1]
        # OPC part names compare case-insensitively.
        if tag == "Override" and entry.get("PartName", "").lstrip("/").lower() == part.lower():
            return entry.get("ContentType")
        if tag == "Default" and entry.get("Extension", "").lower() == extension:
            default = entry.get("ContentType")
    return default


def _mimetype_member(archive: zipfile.ZipFile) -> str:
    """The type an ODF or EPUB container names in its leading "mimetype" member."""
    if archive.getinfo("mimetype").file_size > 200:
        return ZIP
    value = archive.read("mimetype").decode("ascii", "replace").strip()
    return value if re.fullmatch(r"[\w.+-]+/[\w.+-]+", value) else ZIP
