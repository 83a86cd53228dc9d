"""The app in a real browser: Debian's Chromium driven by Playwright's Python package, on the tiny model.

    python -m pytest tests/test_browser.py      # skipped when /usr/bin/chromium is missing

Never `playwright install`: the browser is the system's (`apt-get install -y chromium`; .ci/run does it).
A failed test leaves a screenshot in test-artifacts/<test name>.png.
"""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = ROOT / "test-artifacts"
CAT = str(ROOT / "assets" / "chelsea.png")
CHAT_STATUS = "#chat-status [data-testid=markdown]"  # the text only, not gradio's status tracker around it
IMAGES_STATUS = "#t2i-status [data-testid=markdown]"
GENERATION_TIMEOUT_MS = 120_000  # the tiny model's 576 image tokens take 5-25 s on a busy 2-core CPU

sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
expect = sync_api.expect
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is missing: apt-get install -y chromium"),
]

# Records every distinct value `read()` returns as the page changes (a MutationObserver, so short-lived
# states between two polls are not missed).
WATCH_JS = """([name, selector, attribute]) => {
  window.__seen = window.__seen || {};
  const seen = (window.__seen[name] = []);
  const read = () => [...document.querySelectorAll(selector)]
    .map(el => attribute ? el.getAttribute(attribute) : el.innerText).join(' | ');
  const record = () => { const value = read(); if (value && seen[seen.length - 1] !== value) seen.push(value); };
  new MutationObserver(record).observe(document.body, {subtree: true, childList: true, characterData: true,
                                                       attributes: true, attributeFilter: ['src']});
  record();
}"""


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, app_url, request):
    """A fresh browser session (its own chat history) on the app; a screenshot is kept if the test fails."""
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(30_000)
    with page.expect_response(lambda response: "/gradio_api/run/predict" in response.url):  # the load event
        page.goto(app_url)
    expect(page.locator("#chat-input textarea")).to_be_visible()
    yield page
    report = getattr(request.node, "rep_call", None)
    if report is None or report.failed:
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
    context.close()


def watch(page, name: str, selector: str, attribute: str | None = None) -> None:
    page.evaluate(WATCH_JS, [name, selector, attribute])


def seen(page, name: str) -> list[str]:
    return page.evaluate("name => window.__seen[name]", name)


def set_number(page, label: str, value: float) -> None:
    """Type into a slider's number box (gradio labels it 'number input for <label>').

    A box that has just been mounted (an accordion opening) can take the typed value and then be reset
    to the component's value once, so type again until the value stays.
    """
    box = page.get_by_label(f"number input for {label}")
    for _ in range(3):
        box.fill(str(value))
        box.press("Enter")
        page.wait_for_timeout(300)
        if box.input_value() == str(value):
            break
    expect(box).to_have_value(str(value))


def send(page, text: str) -> None:
    box = page.locator("#chat-input textarea")
    box.fill(text)
    box.press("Enter")


def wait_for_answer(page, count: int) -> None:
    """The count-th answer has ended: its bubble is there and the Submit button is back (Stop shows meanwhile)."""
    expect(page.locator("#chatbot [data-testid=bot]")).to_have_count(count)
    expect(page.locator("#chat-input [data-testid=submit-button]")).to_be_visible(timeout=60_000)
    expect(page.locator(CHAT_STATUS)).to_contain_text("tokens/s")


def tokens_in(statuses: list[str]) -> set[int]:
    return {int(match.group(1)) for status in statuses if (match := re.match(r"(\d+) tokens", status))}


# --- chat -----------------------------------------------------------------------------------------


def test_chat_about_an_uploaded_image_streams_and_follows_up(page):
    page.get_by_role("button", name="Generation settings").click()
    set_number(page, "Max new tokens", 48)
    page.locator("#chat-input input[type=file]").set_input_files(CAT)
    expect(page.locator("#chat-input .thumbnail-item")).to_have_count(1)
    watch(page, "chat-status", CHAT_STATUS)

    send(page, "What is in this picture?")
    wait_for_answer(page, 1)
    assert len(tokens_in(seen(page, "chat-status"))) >= 2, "the answer should arrive in several pieces"
    expect(page.locator("#chatbot [data-testid=user]")).to_have_count(2)  # the image, then the question
    expect(page.locator("#chatbot [data-testid=bot]").first).not_to_be_empty()

    watch(page, "chat-status", CHAT_STATUS)
    send(page, "What colour is it?")
    wait_for_answer(page, 2)
    assert len(tokens_in(seen(page, "chat-status"))) >= 2
    expect(page.locator("#chatbot [data-testid=user]").last).to_contain_text("What colour is it?")


# --- text to image --------------------------------------------------------------------------------


def start_generating(page, prompt: str) -> None:
    page.get_by_role("tab", name="Text to image").click()
    page.locator("#t2i-prompt textarea").fill(prompt)
    set_number(page, "Guidance scale", 1)  # one batch row instead of two: twice as fast
    watch(page, "gallery", "#t2i-gallery img", "src")
    watch(page, "t2i-status", IMAGES_STATUS)
    page.locator("#t2i-generate").click()


def test_previews_change_before_the_final_gallery_and_ask_carries_it_to_chat(page):
    start_generating(page, "A watercolor painting of a lighthouse")
    expect(page.locator(IMAGES_STATUS)).to_contain_text("Done:", timeout=GENERATION_TIMEOUT_MS)
    final = page.locator("#t2i-gallery img").first.get_attribute("src")
    previews = [src for src in seen(page, "gallery") if final not in src]
    assert len(previews) >= 2, f"expected at least two previews before the final image, saw {previews}"
    assert any(status.startswith("Step ") for status in seen(page, "t2i-status"))

    page.locator("#t2i-ask").click()
    expect(page.get_by_role("tab", name="Chat")).to_have_attribute("aria-selected", "true")
    expect(page.locator("#chat-input .thumbnail-item")).to_have_count(1)
    textbox = page.locator("#chat-input textarea")
    expect(textbox).to_have_value("Describe this image.")
    expect(textbox).to_be_focused()


def test_stop_ends_image_generation(page):
    start_generating(page, "A rocket lifting off at dawn")
    expect(page.locator("#t2i-gallery img").first).to_be_visible(timeout=GENERATION_TIMEOUT_MS)  # a preview
    page.locator("#t2i-stop").click()
    page.wait_for_timeout(1500)  # gradio closes the generator at its next yield
    stopped_at = page.locator(IMAGES_STATUS).inner_text()
    page.wait_for_timeout(2500)  # a running generation updates the status at least every 0.5 s
    assert page.locator(IMAGES_STATUS).inner_text() == stopped_at
    assert stopped_at.startswith("Step ") and "Done" not in stopped_at
