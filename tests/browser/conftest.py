"""Browser fixtures: one Chromium per test module; pages on the tiny-model app or on a FakeBackend app.

Skipped when /usr/bin/chromium or the playwright package is missing. Every test keeps desktop and phone
screenshots of the states it reaches in test-artifacts/ (support.browser.shots), and a failed test one of
the page as it was.
"""

import pytest
from support.browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, STATE_TIMEOUT_MS, open_app

sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
sync_api.expect.set_options(timeout=STATE_TIMEOUT_MS)  # every expect() waits for its state this long at most


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/browser/" in str(item.path).replace("\\", "/"):
            item.add_marker(pytest.mark.slow)
            item.add_marker(pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is missing"))


@pytest.fixture(scope="module")
def browser():
    """One Chromium per test module: Playwright's sync API keeps an event loop running while it is open, which
    would break later tests that call asyncio.run() (the MCP client's)."""
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def pages(browser, request):
    """open(url, viewport=None, accept_downloads=False) -> a page; each is closed after the test, and a failed
    test leaves a screenshot of each in test-artifacts/<test name>-failed-<n>.png."""
    opened = []

    def open_page(url, viewport=None, accept_downloads=False):
        page = open_app(browser, url, viewport, accept_downloads)
        opened.append(page)
        return page

    yield open_page
    report = getattr(request.node, "rep_call", None)
    for n, page in enumerate(opened):
        if report is None or report.failed:
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / f"{request.node.name}-failed-{n}.png"), full_page=True)
        page.context.close()


@pytest.fixture
def page(pages, app_url):
    """A page on the tiny-model app (desktop size)."""
    return pages(app_url)


@pytest.fixture
def fake_page(pages, fake):
    """A page on the FakeBackend app (desktop size): fast, and its model work can be held (`fake.gate`)."""
    return pages(fake.url)
