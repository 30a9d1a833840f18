"""Browser tests of the web console: Playwright for Python driving Debian's Chromium.

No browser is downloaded: Playwright launches the system Chromium (`/usr/bin/chromium`, or
DOCGATE_CHROMIUM), which `make browser` installs with apt when it can. Without it these tests
skip and say why, unless DOCGATE_BROWSER_TESTS=required (CI), where a missing browser fails.

Every test records a screenshot at each step (`Steps.shot`); they are written under
test-results/browser/<test>/ when the test fails (DOCGATE_TEST_OUTPUT moves that folder). With
DOCGATE_SCREENSHOTS=<folder> (`make screenshots`), the named README screenshots are written
there too.
"""

from __future__ import annotations

import os
import re
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devhost.testing import HostProcess, free_port
from tests.apphost import app_environment, start_app
from tests.conftest import ROOT, EmulatorEndpoints

CHROMIUM = Path(os.environ.get("DOCGATE_CHROMIUM", "/usr/bin/chromium"))
OUTPUT = Path(os.environ.get("DOCGATE_TEST_OUTPUT", ROOT / "test-results")) / "browser"
SCREENSHOTS = os.environ.get("DOCGATE_SCREENSHOTS")
DESKTOP = {"width": 1280, "height": 860}
STEP_TIMEOUT_MS = 30_000  # one step: a click's effect, a panel's data


def _chromium_or_skip() -> Path:
    if CHROMIUM.exists():
        return CHROMIUM
    reason = (
        f"Chromium is not installed at {CHROMIUM}: `make browser` installs Debian's chromium "
        "package (needs root and apt), or set DOCGATE_CHROMIUM"
    )
    if os.environ.get("DOCGATE_BROWSER_TESTS") == "required":
        pytest.fail(reason + " (DOCGATE_BROWSER_TESTS=required)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium per test module. Not per session: Playwright's sync API keeps an
    asyncio loop running in this thread while it is open, and the async tests that follow
    (pytest-asyncio) could not start theirs."""
    executable = _chromium_or_skip()
    from playwright.sync_api import expect, sync_playwright

    # Assertions wait as long as actions do: a loaded CI machine answers in seconds, not
    # milliseconds (Playwright's 5 s default failed there), and a failing one still fails.
    expect.set_options(timeout=STEP_TIMEOUT_MS)
    with sync_playwright() as playwright:
        # Chromium's sandbox refuses to run as root (CI runs as root); tests load only our app.
        arguments = ["--no-sandbox"] if os.geteuid() == 0 else []
        launched = playwright.chromium.launch(executable_path=str(executable), args=arguments)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def console_app(
    tmp_path_factory: pytest.TempPathFactory, emulators: EmulatorEndpoints
) -> Iterator[HostProcess]:
    """The function app under devhost, signing people in with the dev issuer."""
    _chromium_or_skip()  # no app to start when there is no browser to drive it
    folder = tmp_path_factory.mktemp("console")
    port = free_port()
    environment = app_environment(
        emulators,
        f"t-web-{uuid.uuid4().hex[:12]}",  # its own containers and database
        AUTH_CLIENT_ID="docgate-dev",
        AUTH_AUTHORITY=f"http://127.0.0.1:{port}/runtime/dev-issuer",
        AUTH_DEV_ISSUER="true",
        AUTH_TENANTS="contoso,fabrikam",
        # A person asks right after "succeeded": the in-process index refreshes often and a
        # question waits for a due refresh (the defaults trade that for latency; README).
        RETRIEVAL_REFRESH_SECONDS="0.5",
        RETRIEVAL_REFRESH_WAIT_MS="10000",
    )
    host = start_app(folder, environment, port=port)
    try:
        yield host
    finally:
        host.stop()


class Steps:
    """Screenshots of each step of a test, kept in memory until the test's outcome is known."""

    def __init__(self, page: Any, base_url: str) -> None:
        self.page = page
        self.base_url = base_url
        self.shots: list[tuple[str, bytes]] = []

    def shot(self, name: str, readme: str | None = None) -> None:
        """Records this step; `readme` also saves it as docs/screenshots/<readme>.png when
        DOCGATE_SCREENSHOTS is set."""
        image = self.page.screenshot(full_page=True)
        self.shots.append((name, image))
        if readme and SCREENSHOTS:
            folder = Path(SCREENSHOTS)
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{readme}.png").write_bytes(image)

    def save(self, folder: Path) -> None:
        """Writes every recorded step (and the final state) to `folder`."""
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        try:
            self.shots.append(("at-failure", self.page.screenshot(full_page=True)))
        except Exception as error:  # a crashed page still leaves the earlier steps
            (folder / "at-failure.txt").write_text(f"no final screenshot: {error}")
        for number, (name, image) in enumerate(self.shots, 1):
            (folder / f"{number:02d}-{name}.png").write_bytes(image)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    steps: Steps | None = getattr(item, "browser_steps", None)
    if report.when == "call" and report.failed and steps is not None:
        folder = OUTPUT / re.sub(r"[^A-Za-z0-9_.-]+", "-", item.name)
        steps.save(folder)
        report.sections.append(("browser screenshots", str(folder)))


@pytest.fixture
def steps(
    browser: Any, console_app: HostProcess, request: pytest.FixtureRequest
) -> Iterator[Steps]:
    """A fresh browser context (its own session storage) on the console, with step shots."""
    context = browser.new_context(viewport=DESKTOP, base_url=console_app.base_url)
    context.set_default_timeout(STEP_TIMEOUT_MS)
    page = context.new_page()
    recorded = Steps(page, console_app.base_url)
    request.node.browser_steps = recorded
    try:
        yield recorded
    finally:
        context.close()
