"""Upload validation: accepted types with page counts, and every rejection code with its reason."""

from __future__ import annotations

import hashlib
import io
import zipfile
from collections.abc import Callable

import pytest

from shared.documents import detect, validation
from shared.documents.validation import DocumentRejected, ValidationLimits, validate
from tests.fixtures import bad_documents as bad

MIB = 1024 * 1024
LIMITS = ValidationLimits(
    max_bytes=10 * MIB, max_pages=3, max_expanded_bytes=20 * MIB, max_compression_ratio=100
)


def rejection(name: str, content: bytes, limits: ValidationLimits = LIMITS) -> DocumentRejected:
    """The rejection validate raises for this upload."""
    with pytest.raises(DocumentRejected) as caught:
        validate(name, content, limits)
    return caught.value


@pytest.mark.parametrize(
    ("name", "make", "media_type", "pages"),
    [
        ("report.pdf", lambda: bad.pdf(pages=3), detect.PDF, 3),
        ("report.docx", lambda: bad.docx(page_breaks=2), detect.DOCX, 3),
        ("deck.pptx", lambda: bad.pptx(slides=2), detect.PPTX, 2),
        ("scan.png", lambda: bad.image("PNG"), detect.PNG, 1),
        ("photo.jpg", lambda: bad.image("JPEG"), detect.JPEG, 1),
        ("anim.gif", lambda: bad.image("GIF", frames=3), detect.GIF, 3),
        ("old.bmp", lambda: bad.image("BMP"), detect.BMP, 1),
        ("fax.tiff", lambda: bad.image("TIFF", frames=2), detect.TIFF, 2),
        ("notes.txt", bad.text, detect.TEXT, 1),
        ("notes.txt", bad.utf16_text, detect.TEXT, 1),
        ("README.md", bad.markdown, detect.MARKDOWN, 1),
        ("page.html", bad.html, detect.HTML, 1),
        ("fleet.txt", bad.bm_text, detect.TEXT, 1),
        ("statement.pdf", bad.print_only_restricted_pdf, detect.PDF, 1),
    ],
)
def test_accepts_every_supported_type(
    name: str, make: Callable[[], bytes], media_type: str, pages: int
) -> None:
    content = make()
    document = validate(name, content, LIMITS)
    assert document.media_type == media_type
    assert document.page_count == pages
    assert document.size == len(content)
    assert document.sha256 == hashlib.sha256(content).hexdigest()


@pytest.mark.parametrize(
    ("name", "make", "code", "reason"),
    [
        ("empty.pdf", bad.empty, "empty", "The file is empty (0 bytes)."),
        ("cut.pdf", bad.truncated_pdf, "corrupt", "does not end with %%EOF"),
        ("locked.pdf", bad.encrypted_pdf, "encrypted", "The PDF is password-protected"),
        ("restricted.pdf", bad.owner_restricted_pdf, "encrypted", "forbid copying text"),
        ("locked.docx", bad.ole_encrypted_docx, "encrypted", "Office document is password-prot"),
        ("locked.docx", bad.docx_with_encrypted_members, "encrypted", "password-protected mem"),
        ("report.pdf", bad.windows_executable, "executable", '"report.pdf" is a Windows exec'),
        ("report.pdf", bad.elf_executable, "executable", "Linux (ELF) executable"),
        ("slides.pptx", bad.mach_o_executable, "executable", "macOS (Mach-O) executable"),
        ("notes.txt", bad.shell_script, "executable", "a script with a #! interpreter line"),
        ("bomb.docx", bad.zip_bomb_docx, "decompression_bomb", "word/media/image1.bin expands"),
        ("huge.png", bad.huge_png, "decompression_bomb", "exceeds limit"),
        ("huge.gif", bad.huge_gif, "decompression_bomb", "exceeds limit"),
        ("archive.zip", bad.plain_zip, "unsupported_type", "a ZIP archive (application/zip)"),
        ("sheet.docx", bad.xlsx, "unsupported_type", "an Excel workbook (XLSX)"),
        ("text.odt", bad.odt, "unsupported_type", "application/vnd.oasis.opendocument.text"),
        ("old.doc", bad.legacy_doc, "unsupported_type", "Word 97-2003 document (DOC)"),
        ("image.bmp", bad.bm_binary, "unsupported_type", "unrecognised binary data"),
        ("menu.txt", bad.latin1_text, "unsupported_type", "not valid UTF-8 text"),
        ("cut.docx", bad.truncated_docx, "corrupt", "ZIP container is truncated or damaged"),
        ("crc.docx", bad.docx_with_bad_crc, "corrupt", "Bad CRC-32 for file 'word/document.xml'"),
        ("gutted.docx", bad.docx_missing_main_part, "corrupt", "main part word/document.xml is"),
        ("cut.png", bad.truncated_png, "corrupt", "looks like a PNG image"),
        ("cut.jpg", bad.truncated_jpeg, "corrupt", "truncated"),
    ],
)
def test_rejects_bad_files_with_a_specific_reason(
    name: str, make: Callable[[], bytes], code: str, reason: str
) -> None:
    rejected = rejection(name, make())
    assert rejected.code == code
    assert reason in rejected.reason
    assert str(rejected).startswith(f"{code}: ")


def test_unsupported_types_say_what_was_detected_and_what_is_supported() -> None:
    reason = rejection("sheet.xlsx", bad.xlsx()).reason
    assert detect.XLSX in reason
    assert "Supported: PDF, DOCX, PPTX" in reason


def test_too_large_is_decided_by_size_before_parsing() -> None:
    limits = ValidationLimits(max_bytes=1000)
    rejected = rejection("big.txt", bad.oversized(1001), limits)
    assert (rejected.code, rejected.reason) == (
        "too_large",
        "The file is 1001 bytes; the limit is 1000 bytes.",
    )
    # Executable or not, an oversized upload is refused on its size alone.
    assert rejection("x.exe", bad.windows_executable(), ValidationLimits(max_bytes=10)).code == (
        "too_large"
    )


def test_exactly_max_bytes_is_accepted() -> None:
    assert validate("a.txt", bad.oversized(1000), ValidationLimits(max_bytes=1000)).size == 1000


@pytest.mark.parametrize(
    ("name", "make", "pages"),
    [
        ("long.pdf", lambda: bad.pdf(pages=5), 5),
        ("long.docx", lambda: bad.docx(page_breaks=4), 5),
        ("long.pptx", lambda: bad.pptx(slides=4), 4),
        ("long.tiff", lambda: bad.image("TIFF", frames=4), 4),
        ("long.gif", lambda: bad.image("GIF", frames=4), 4),
    ],
)
def test_too_many_pages(name: str, make: Callable[[], bytes], pages: int) -> None:
    rejected = rejection(name, make())
    assert rejected.code == "too_many_pages"
    assert rejected.reason == f"The document has {pages} pages; the limit is 3."


def test_presentation_without_slides_is_empty() -> None:
    rejected = rejection("blank.pptx", bad.pptx(slides=0))
    assert rejected.code == "empty"
    assert "with no pages" in rejected.reason


def test_type_comes_from_content_never_from_the_name() -> None:
    assert validate("notes.txt", bad.pdf(), LIMITS).media_type == detect.PDF
    assert validate("scan.pdf", bad.image("PNG"), LIMITS).media_type == detect.PNG
    assert validate("deck.pdf", bad.pptx(), LIMITS).media_type == detect.PPTX
    assert validate("report.pdf", bad.text(), LIMITS).media_type == detect.TEXT


def test_extension_only_chooses_markdown_among_text_types() -> None:
    assert validate("README.txt", bad.markdown(), LIMITS).media_type == detect.TEXT
    assert validate("README.md", bad.markdown(), LIMITS).media_type == detect.MARKDOWN
    assert validate("page.md", bad.html(), LIMITS).media_type == detect.HTML  # sniffed HTML wins
    assert validate("report.md", bad.pdf(), LIMITS).media_type == detect.PDF


def test_text_starting_with_mz_is_text_not_an_executable() -> None:
    document = validate("synth.txt", b"MZ-80 service manual\nchapter 1\n", LIMITS)
    assert document.media_type == detect.TEXT


def test_nul_after_the_sniffed_head_makes_text_binary() -> None:
    rejected = rejection("log.txt", b"a" * 10_000 + b"\x00tail")
    assert rejected.code == "unsupported_type"
    assert "NUL bytes" in rejected.reason


def test_utf16_text_with_nul_characters_is_binary() -> None:
    assert rejection("log.txt", "a\x00b".encode("utf-16")).code == "unsupported_type"


def test_invalid_utf8_reports_the_byte_offset() -> None:
    rejected = rejection("menu.txt", bad.latin1_text())
    assert rejected.reason.startswith("The file is not valid UTF-8 text:")
    assert "at byte 5003" in rejected.reason
    assert rejected.reason.endswith("Save it as UTF-8.")


def test_total_expanded_size_of_an_office_zip_is_limited() -> None:
    limits = ValidationLimits(max_expanded_bytes=100_000)
    rejected = rejection("report.docx", bad.docx(), limits)
    assert rejected.code == "decompression_bomb"
    assert rejected.reason.startswith("The archive expands to ")
    assert rejected.reason.endswith("the limit is 97.7 KiB.")


def test_zip_bomb_is_caught_by_total_size_when_the_ratio_is_allowed() -> None:
    limits = ValidationLimits(max_expanded_bytes=20 * MIB, max_compression_ratio=10_000)
    rejected = rejection("bomb.docx", bad.zip_bomb_docx(expanded_mib=30), limits)
    assert rejected.code == "decompression_bomb"
    assert "The archive expands to 30." in rejected.reason


def test_zip_bomb_ratio_reason_names_sizes_and_limit() -> None:
    reason = rejection("bomb.docx", bad.zip_bomb_docx()).reason
    assert "(49.8 KiB to 50.0 MiB); the limit is 100x." in reason


def test_small_members_may_compress_well() -> None:
    # Half a MiB of zeros deflates ~1000:1, but under RATIO_CHECK_MIN_BYTES it harms no one.
    buffer = io.BytesIO(bad.docx())
    with zipfile.ZipFile(buffer, "a", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("word/media/padding.bin", bytes(MIB // 2))
        member = archive.getinfo("word/media/padding.bin")
    assert member.file_size / member.compress_size > LIMITS.max_compression_ratio
    assert validate("report.docx", buffer.getvalue(), LIMITS).media_type == detect.DOCX


def test_archive_with_too_many_members_is_refused_before_its_directory_is_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(validation, "MAX_ZIP_MEMBERS", 5)
    rejected = rejection("report.docx", bad.docx())
    assert rejected.code == "decompression_bomb"
    assert rejected.reason.endswith("members; the limit is 5.")


def test_image_decoded_size_is_limited_by_max_expanded_bytes() -> None:
    limits = ValidationLimits(max_expanded_bytes=MIB)
    rejected = rejection("big.png", bad.image("PNG", size=(1000, 1000)), limits)
    assert rejected.code == "decompression_bomb"
    assert rejected.reason == (
        "The image declares 1000x1000 pixels, 2.9 MiB once decoded; the limit is 1.0 MiB."
    )


def test_page_breaks_are_counted_across_read_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(validation, "_CHUNK", 97)  # many chunk boundaries inside the XML
    limits = ValidationLimits(max_pages=100)
    assert validate("long.docx", bad.docx(page_breaks=9), limits).page_count == 10
    assert validate("deck.pptx", bad.pptx(slides=7), limits).page_count == 7


def test_corrupt_pdf_body_is_reported_by_pdfium() -> None:
    content = b"%PDF-1.7\n" + b"garbage " * 100 + b"\n%%EOF\n"
    rejected = rejection("broken.pdf", content)
    assert rejected.code == "corrupt"
    assert rejected.reason.startswith("The PDF is damaged and cannot be opened")


def test_package_xml_with_a_dtd_is_refused() -> None:
    # OPC forbids DTDs; refusing them also rules out entity-expansion ("billion laughs") bombs.
    with zipfile.ZipFile(io.BytesIO(bad.docx())) as archive:
        members = {info.filename: archive.read(info) for info in archive.infolist()}
    types = members["[Content_Types].xml"]
    members["[Content_Types].xml"] = types.replace(b"?>", b'?><!DOCTYPE x [<!ENTITY a "a">]>', 1)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    rejected = rejection("evil.docx", buffer.getvalue())
    assert rejected.code == "corrupt"
    assert rejected.reason == "The Office document is damaged: [Content_Types].xml declares a DTD."


def test_default_limits_accept_ordinary_documents() -> None:
    assert validate("report.pdf", bad.pdf(pages=5)).page_count == 5
    assert ValidationLimits() == ValidationLimits(
        max_bytes=200 * MIB,
        max_pages=2_000,
        max_expanded_bytes=500 * MIB,
        max_compression_ratio=200.0,
    )
