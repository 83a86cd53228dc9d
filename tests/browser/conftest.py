"""Browser fixtures: one Chromium per test module; pages on the tiny-model app or on a FakeBackend app.

Skipped when /usr/bin/chromium or the playwright package is missing. Every test keeps desktop and phone
screenshots of the states it reaches in test-artifacts/ (support.browser.shots), and a failed test one of
the page as it was.
"""

import pytest
from support.browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, DESKTOP, STATE_TIMEOUT_MS, forget_visit, open_app

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


@pytest.fixture(scope="module")
def visits(browser):
    """One browser context for the module's first page of each test: its cache keeps the app's scripts, so a
    page loads with about a quarter less CPU than in a new context (2.0 against 2.6 CPU-s on a 2-core box)."""
    context = browser.new_context(viewport=DESKTOP, accept_downloads=True)
    yield context
    context.close()


@pytest.fixture
def pages(browser, visits, request):
    """open(url, viewport=None, accept_downloads=False) -> a page; each is closed after the test, and a failed
    test leaves a screenshot of each in test-artifacts/<test name>-failed-<n>.png. The test's first page is
    opened in `visits` with nothing of earlier tests (storage and cookies cleared after each); any other page
    in a new context, as another visitor."""
    opened = []

    def open_page(url, viewport=None, accept_downloads=False):
        context = visits if not opened else None
        page = open_app(browser, url, viewport, accept_downloads, context=context)
        opened.append(page)
        return page

    yield open_page
    report = getattr(request.node, "rep_call", None)
    for n, page in enumerate(opened):
        if report is None or report.failed:
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / f"{request.node.name}-failed-{n}.png"), full_page=True)
        if page.context is visits:
            forget_visit(page)
        else:
            page.context.close()


@pytest.fixture
def page(pages, app_url):
    """A page on the tiny-model app (desktop size)."""
    return pages(app_url)


@pytest.fixture
def fake_page(pages, fake):
    """A page on the FakeBackend app (desktop size): fast, and its model work can be held (`fake.gate`)."""
    return pages(fake.url)
