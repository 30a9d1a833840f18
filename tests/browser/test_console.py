"""The web console in a real browser: sign in, upload and watch ingestion, ask, open a citation,
and what a viewer who cannot chat is told."""

from __future__ import annotations

import base64
import json
import re
import urllib.error
import urllib.request
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from devhost.testing import HostProcess
from tests.browser.conftest import Steps
from tests.fixtures import bad_documents, documents

pytestmark = pytest.mark.emulators
INGESTION_TIMEOUT_MS = 180_000  # the whole pipeline on a loaded 2-core machine
SAFETY_QUESTION = "Were any serious incidents recorded at the terminals?"
SAFETY_PAGE = 3  # REPORT_SECTIONS[2] opens page 3 of report_pdf
PHONE = {"width": 390, "height": 844}
CONTRACT_NOTE = (
    "Lease summary\n\nThe warehouse lease ends on 30 June 2031.\n\n"
    "The landlord is Harbour Estates Limited, of Antwerp.\n"
)
FLEET_NOTES = "Fleet notes\n\nThe fleet has twelve vessels, all registered in Rotterdam.\n"


def sign_in(
    page: Page,
    user: str,
    tenant: str,
    roles: list[str],
    groups: str = "",
    steps: Steps | None = None,
) -> None:
    """The dev sign-in form, as a person fills it in."""
    page.goto("/api/app/")
    expect(page.get_by_role("heading", name="Sign in to docgate")).to_be_visible()
    expect(page.get_by_role("navigation")).to_be_hidden()  # nothing to navigate to yet
    expect(page.get_by_role("button", name="Sign out")).to_be_hidden()
    page.get_by_label("User", exact=True).fill(user)
    page.get_by_label("Tenant").select_option(tenant)
    for box in page.get_by_role("checkbox").all():
        box.set_checked(box.get_attribute("value") in roles)
    page.get_by_label("Groups (comma-separated)").fill(groups)
    if steps:
        steps.shot("sign-in", readme="signin")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#who-name")).to_contain_text(f"{user} · {tenant}")


def drop_files(page: Page, files: dict[str, tuple[bytes, str]]) -> None:
    """Drags files onto the drop zone (a real `drop` event carrying a DataTransfer)."""
    payload = [
        {"name": name, "type": media_type, "data": base64.b64encode(content).decode()}
        for name, (content, media_type) in files.items()
    ]
    transfer = page.evaluate_handle(
        """(files) => {
            const transfer = new DataTransfer();
            for (const file of files) {
                const bytes = Uint8Array.from(atob(file.data), (c) => c.charCodeAt(0));
                transfer.items.add(new File([bytes], file.name, { type: file.type }));
            }
            return transfer;
        }""",
        payload,
    )
    page.locator(".dropzone").dispatch_event("drop", {"dataTransfer": transfer})


def document_row(page: Page, name: str) -> Any:
    return page.locator("tr", has=page.get_by_role("rowheader", name=name))


def test_console_shell_is_static_anonymous_and_locked_down(console_app: HostProcess) -> None:
    with urllib.request.urlopen(f"{console_app.base_url}/api/app/", timeout=30) as response:
        policy = response.headers["Content-Security-Policy"]
        assert response.headers["Content-Type"].startswith("text/html")
        assert b"js/main.js" in response.read()
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    with urllib.request.urlopen(f"{console_app.base_url}/api/app/config.json", timeout=30) as got:
        assert json.load(got) == {"signin": "dev", "devSignin": "/runtime/dev-signin"}
    with urllib.request.urlopen(f"{console_app.base_url}/api/app", timeout=30) as redirected:
        assert redirected.url == f"{console_app.base_url}/api/app/"  # relative URLs resolve
    missing = urllib.request.Request(f"{console_app.base_url}/api/app/js/nothing.js")
    with pytest.raises(urllib.error.HTTPError) as error:
        urllib.request.urlopen(missing, timeout=30)
    assert error.value.code == 404
    assert error.value.headers["Content-Type"] == "application/problem+json"


def test_upload_watch_ingestion_ask_and_open_the_cited_page(steps: Steps) -> None:
    page = steps.page
    sign_in(page, "dana", "contoso", ["developer"], "finance")
    steps.shot("signed-in")

    drop_files(
        page,
        {
            "report.pdf": (documents.report_pdf(), "application/pdf"),
            "locked.pdf": (bad_documents.encrypted_pdf(), "application/pdf"),
        },
    )
    row, locked = document_row(page, "report.pdf"), document_row(page, "locked.pdf")
    expect(row).to_be_visible()
    expect(locked).to_be_visible()
    steps.shot("uploading", readme="documents")
    expect(row.locator(".state")).to_have_text("succeeded", timeout=INGESTION_TIMEOUT_MS)
    expect(row.locator("td").nth(1)).to_have_text("3")  # pages
    expect(locked.locator(".state")).to_have_text("failed", timeout=INGESTION_TIMEOUT_MS)
    expect(locked.locator(".reason")).to_contain_text("password")  # the reason, in words
    steps.shot("ingested")

    page.get_by_role("link", name="Chat").click()
    page.get_by_label("Question").fill(SAFETY_QUESTION)
    page.get_by_role("button", name="Ask").click()
    answer = page.locator(".turn.assistant").last
    expect(answer.locator(".answer-meta")).to_be_visible(timeout=60_000)
    expect(answer.locator(".text")).to_contain_text("No serious incidents")
    expect(answer.locator(".answer-meta")).to_contain_text("local-extractive")
    citation = answer.get_by_role("button", name=re.compile(r"report\.pdf, page 3"))
    expect(citation).to_be_visible()
    steps.shot("answered")
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    answer.get_by_role("button", name="Copy").click()
    expect(answer.get_by_role("button", name="Copied")).to_be_visible()
    copied = page.evaluate("() => navigator.clipboard.readText()")
    assert copied == answer.locator(".text").inner_text()

    citation.first.click()
    panel = page.get_by_role("complementary", name="Cited source")
    expect(panel.get_by_role("heading", name="report.pdf")).to_be_visible()
    expect(panel).to_contain_text(f"Page {SAFETY_PAGE}")
    expect(panel.locator("mark").first).to_contain_text("No serious incidents")
    image = panel.get_by_role("img", name=f"Page {SAFETY_PAGE} of report.pdf")
    expect(image).to_be_visible()
    assert image.evaluate("(img) => img.complete && img.naturalWidth > 0")
    steps.shot("citation", readme="chat")


def test_a_viewer_who_cannot_chat_is_told_why(steps: Steps) -> None:
    page = steps.page
    sign_in(page, "victor", "contoso", ["viewer"], steps=steps)
    expect(page.get_by_role("heading", name="Documents")).to_be_visible()
    expect(page.get_by_text("uploading needs the documents:write permission")).to_be_visible()
    page.get_by_role("link", name="Chat").click()
    denied = page.locator(".denied")
    expect(denied).to_contain_text("You cannot chat")
    expect(denied).to_contain_text("chat:execute")
    expect(denied).to_contain_text("viewer")
    expect(page.get_by_label("Question")).to_have_count(0)
    steps.shot("viewer-denied")


def test_an_admin_sees_usage_budgets_cache_regions_and_the_audit_log(steps: Steps) -> None:
    page = steps.page
    sign_in(page, "root", "fabrikam", ["admin"])
    drop_files(page, {"notes.txt": (FLEET_NOTES.encode(), "text/plain")})
    row = document_row(page, "notes.txt")
    expect(row.locator(".state")).to_have_text("succeeded", timeout=INGESTION_TIMEOUT_MS)
    page.get_by_role("link", name="Chat").click()
    for _ in range(2):  # the second time from the cache
        page.get_by_label("Question").fill("How many vessels does the fleet have?")
        page.get_by_role("button", name="Ask").click()
        expect(page.locator(".answer-meta").last).to_be_visible(timeout=60_000)
    expect(page.locator(".answer-meta").last).to_contain_text("from cache")

    page.get_by_role("link", name="Operations").click()
    expect(page.get_by_role("heading", name="Operations · fabrikam")).to_be_visible()
    usage = page.get_by_role("region", name=re.compile("Usage and cost"))
    expect(usage).to_contain_text("2 requests")
    expect(usage.get_by_role("img", name=re.compile("Cost by user"))).to_contain_text("root")
    expect(usage.get_by_role("rowheader", name="root")).to_be_visible()
    expect(usage.get_by_role("rowheader", name="local-extractive")).to_be_visible()
    cache = page.get_by_role("region", name="Semantic cache")
    expect(cache).to_contain_text("hit rate")
    expect(cache).to_contain_text("1 hits")
    budgets = page.get_by_role("region", name="Budgets")
    expect(budgets).to_contain_text("No budgets are set")
    expect(budgets.get_by_role("rowheader", name="tenant").first).to_be_visible()
    regions = page.get_by_role("region", name="LLM regions")
    expect(regions).to_contain_text("No regions are configured")
    audit = page.get_by_role("region", name="Audit log")
    expect(audit.get_by_role("cell", name="upload")).to_be_visible()
    expect(audit.get_by_role("cell", name="notes.txt")).to_be_visible()
    steps.shot("operations", readme="operations")

    audit.get_by_label("Action").select_option("delete")
    audit.get_by_role("button", name="Filter").click()
    expect(audit).to_contain_text("No audit records match.")
    cache.get_by_role("button", name="Clear cache").click()
    page.get_by_role("dialog").get_by_role("button", name="Clear cache").click()
    expect(cache.get_by_role("status")).to_contain_text("Cleared 1 cached answers.")
    expect(cache).to_contain_text("0 answers stored")


def test_the_operator_views_are_not_offered_to_others(steps: Steps) -> None:
    page = steps.page
    sign_in(page, "dana", "contoso", ["developer"])
    expect(page.get_by_role("link", name="Operations")).to_be_hidden()
    page.goto("/api/app/#/operations")
    page.reload()
    expect(page.locator(".denied")).to_contain_text("need the admin role")


def fits_the_width(page: Page) -> bool:
    """Nothing wider than the viewport: no sideways scrolling."""
    return page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")


def test_on_a_phone_upload_by_keyboard_ask_and_read_the_citation(steps: Steps) -> None:
    page = steps.page
    page.set_viewport_size(PHONE)
    sign_in(page, "pat", "contoso", ["user", "developer"])
    assert fits_the_width(page)
    zone = page.get_by_role("button", name=re.compile("Drop files here"))
    with page.expect_file_chooser() as chooser:
        zone.press("Enter")  # the drop zone works without a mouse
    chooser.value.set_files(
        [{"name": "phone-notes.txt", "mimeType": "text/plain", "buffer": FLEET_NOTES.encode()}]
    )
    row = document_row(page, "phone-notes.txt")
    expect(row.locator(".state")).to_have_text("succeeded", timeout=INGESTION_TIMEOUT_MS)
    assert fits_the_width(page)
    steps.shot("phone-documents")

    page.get_by_role("link", name="Chat").click()
    page.get_by_label("Question").fill("Where are the vessels registered?")
    page.keyboard.press("Enter")  # Enter sends, Shift+Enter would add a line
    answer = page.locator(".turn.assistant").last
    expect(answer.locator(".answer-meta")).to_be_visible(timeout=60_000)
    expect(answer.locator(".text")).to_contain_text("Rotterdam")
    answer.get_by_role("button", name=re.compile(r"phone-notes\.txt, page 1")).click()
    panel = page.get_by_role("complementary", name="Cited source")
    expect(panel.locator("mark").first).to_contain_text("Rotterdam")
    expect(panel.get_by_role("img")).to_have_count(0)  # text has no page image
    assert fits_the_width(page)
    steps.shot("phone-chat", readme="phone")


def test_a_group_only_upload_is_hidden_from_others_opened_up_and_deleted_after_confirmation(
    steps: Steps,
) -> None:
    page = steps.page
    sign_in(page, "fiona", "contoso", ["developer"], "legal")
    page.get_by_label("Who may read them").select_option("groups")
    page.get_by_label("Names").fill("legal")
    drop_files(page, {"contract.txt": (CONTRACT_NOTE.encode(), "text/plain")})
    row = document_row(page, "contract.txt")
    expect(row.locator(".state")).to_have_text("succeeded", timeout=INGESTION_TIMEOUT_MS)
    expect(row).to_contain_text("group legal")
    page.get_by_role("link", name="Chat").click()
    page.get_by_label("Question").fill("When does the lease end?")
    page.get_by_role("button", name="Ask").click()
    expect(page.locator(".turn.assistant .text").last).to_contain_text("2031", timeout=60_000)
    page.get_by_label("Question").fill("And who is the landlord?")  # a follow-up turn
    page.get_by_role("button", name="Ask").click()
    expect(page.locator(".turn.assistant")).to_have_count(2)
    expect(page.locator(".turn.assistant .text").last).to_contain_text("Harbour", timeout=60_000)
    steps.shot("follow-up")

    outsider = page.context.browser.new_context(base_url=steps.base_url).new_page()
    sign_in(outsider, "gus", "contoso", ["user"])  # not in legal
    expect(outsider.get_by_role("heading", name="Documents")).to_be_visible()
    expect(document_row(outsider, "contract.txt")).to_have_count(0)

    page.get_by_role("link", name="Documents").click()
    row = document_row(page, "contract.txt")
    row.get_by_role("button", name="Access to contract.txt").click()
    access = page.get_by_role("dialog", name="Who may read “contract.txt”")
    access.get_by_label("Readers").select_option("tenant")
    access.get_by_role("button", name="Save").click()
    expect(row).to_contain_text("everyone in the tenant")
    outsider.reload()  # now gus may read it too
    expect(document_row(outsider, "contract.txt")).to_be_visible()
    expect(outsider.get_by_role("button", name="Access to contract.txt")).to_have_count(0)
    outsider.context.close()

    row.get_by_role("button", name="Delete contract.txt").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("cannot be undone")
    dialog.get_by_role("button", name="Cancel").click()
    expect(row).to_be_visible()
    row.get_by_role("button", name="Delete contract.txt").click()
    page.get_by_role("dialog").get_by_role("button", name="Delete").click()
    expect(row).to_have_count(0)
    page.reload()
    expect(page.get_by_role("heading", name="Documents")).to_be_visible()
    expect(document_row(page, "contract.txt")).to_have_count(0)
