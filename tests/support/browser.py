"""Driving the app in Debian's Chromium through Playwright: pages at desktop and phone size, screenshots of
every state, and the checks every state shares (no error badge, no toast).

Never `playwright install`: the browser is the system's (`apt-get install -y chromium`; .ci/run does it).
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

from support import ROOT

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
DESKTOP = {"width": 1366, "height": 900}
PHONE = {"width": 390, "height": 844}
ASSETS = ROOT / "assets"
CAT = str(ASSETS / "chelsea.png")
CHAT_STATUS = "#chat-status [data-testid=markdown]"  # the text only, not gradio's status tracker around it
IMAGES_STATUS = "#t2i-status [data-testid=markdown]"
ERROR_BADGE = "[data-testid=status-tracker] .error"  # gradio's red "Error" over a component
TOAST = "[data-testid=toast-body]"
QUEUE_JOIN = "/gradio_api/queue/join"  # a queued event (a run of the model) sent by the page
# How long a page action or an expect() waits for its state: a bound for a broken page, never a speed target
# (the Chat tests once waited at most Playwright's default 5 s for the Send button and failed on a busy machine).
STATE_TIMEOUT_MS = 60_000

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


class DirectCalls:
    """The page's unqueued event calls (gradio's /run/predict, e.g. a gallery's select and change) sent since it
    began to listen: how many are in flight, and the event data of each that has answered. With another
    `path` (e.g. QUEUE_JOIN), the page's requests to that path instead."""

    def __init__(self, page, path: str = "/gradio_api/run/predict") -> None:
        self.page, self.path, self.sent, self.answered, self.all = page, path, [], [], []
        for name, listener in self._listeners():
            page.on(name, listener)

    @property
    def pending(self) -> int:
        return len(self.sent)

    def _sent(self, request) -> None:
        if self.path in request.url:
            self.sent.append(request)
            self.all.append(request)  # every one sent since it began to listen

    def _finished(self, request) -> None:
        if request in self.sent:  # one sent before it listened is not counted
            self.sent.remove(request)
            self.answered.append((request.post_data_json or {}).get("event_data"))

    def settle(self, until=lambda answered: True) -> None:
        """Wait (letting Playwright deliver its events) until none is in flight and `until(answered)` holds."""
        for _ in range(600):
            if self.pending == 0 and until(self.answered):
                return
            self.page.wait_for_timeout(100)
        raise AssertionError(f"calls never settled: {self.pending} in flight, answered {self.answered}")

    def close(self) -> None:
        """Stop listening."""
        for name, listener in self._listeners():
            self.page.remove_listener(name, listener)

    def _listeners(self):
        return [("request", self._sent), ("requestfinished", self._finished), ("requestfailed", self._finished)]


def open_app(browser, url: str, viewport: dict | None = None, accept_downloads: bool = False, context=None):
    """A browser session on the app, loaded: a fresh one (its own chat history), or a page of `context`."""
    from playwright.sync_api import expect

    if context is None:
        context = browser.new_context(viewport=viewport or DESKTOP, accept_downloads=accept_downloads)
    page = context.new_page()
    page.set_viewport_size(viewport or DESKTOP)
    page.set_default_timeout(STATE_TIMEOUT_MS)
    with page.expect_response(lambda response: "/gradio_api/run/predict" in response.url):  # the load event
        page.goto(url)
    expect(page.locator("#chat-input textarea")).to_be_visible()
    return page


def forget_visit(page) -> None:
    """Close `page` leaving nothing of its visit in its context: the app's storage there (saved chats) and the
    cookies are cleared, the browser's cache of the app's scripts stays."""
    address, context = urlsplit(page.url), page.context
    page.close()  # first: a save on its way when the test ended would write the storage again
    blank = context.new_page()
    blank.goto(f"{address.scheme}://{address.netloc}/no-such-page")  # the same origin, without the app
    blank.evaluate("() => { localStorage.clear(); sessionStorage.clear(); }")
    blank.close()
    context.clear_cookies()


def shots(page, name: str) -> None:
    """Screenshots of the page as it is now, at desktop and at phone size: test-artifacts/<name>-{desktop,phone}.png.

    The page is resized for the second shot and back (a fraction of a second; the state stays)."""
    ARTIFACTS.mkdir(exist_ok=True)
    size = page.viewport_size
    for label, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
        page.set_viewport_size(viewport)
        page.wait_for_timeout(150)  # let the layout settle
        page.screenshot(path=str(ARTIFACTS / f"{name}-{label}.png"), full_page=True)
    page.set_viewport_size(size)


def wait_loaded(image) -> None:
    """Wait until the one <img> of the locator `image` has its picture (complete, with a width): its src can be
    there before the browser has fetched the file."""
    image.page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=image.element_handle())


def no_error_badge(page) -> None:
    """Neither gradio's red "Error" badge over a component nor an error toast is on the page."""
    from playwright.sync_api import expect

    expect(page.locator(ERROR_BADGE)).to_have_count(0)
    expect(page.locator(TOAST)).to_have_count(0)


BADGES_JS = """selector => {
  window.__badges = [];
  const record = () => document.querySelectorAll(selector).forEach(e => {
    if (e.checkVisibility()) window.__badges.push((e.closest('[id]') || {}).id + ': ' + e.innerText);
  });
  new MutationObserver(record).observe(document.body, {subtree: true, childList: true, characterData: true,
                                                       attributes: true});
}"""


def watch_badges(page) -> None:
    """Record every error badge or toast that becomes visible from now on, even for a moment."""
    page.evaluate(BADGES_JS, f"{ERROR_BADGE}, {TOAST}")


def badges_seen(page) -> list[str]:
    """'<id of the component>: <text>' of each badge or toast seen since `watch_badges`."""
    return page.evaluate("() => window.__badges")


def watch(page, name: str, selector: str, attribute: str | None = None) -> None:
    page.evaluate(WATCH_JS, [name, selector, attribute])


def seen(page, name: str) -> list[str]:
    return page.evaluate("name => window.__seen[name]", name)


def fill_box(box, text: str) -> None:
    """Type `text` into the input `box` (a locator) so that it stays.

    A box that has just been mounted (an accordion opening) takes its value from the app a moment after it
    appears and can overwrite what was typed in that moment (no person types that fast): type again until
    the value stays."""
    from playwright.sync_api import expect

    for _ in range(3):
        box.fill(text)
        box.page.wait_for_timeout(200)
        if box.input_value() == text:
            break
    expect(box).to_have_value(text)


def set_number(page, label: str, value: float) -> None:
    """Type into a slider's number box (gradio labels it 'number input for <label>') and leave it."""
    box = page.get_by_label(f"number input for {label}")
    fill_box(box, str(value))
    box.press("Enter")


def send(page, text: str) -> None:
    box = page.locator("#chat-input textarea")
    box.fill(text)
    box.press("Enter")


def validation_message(page, selector: str):
    """The refusal gradio shows on the component `selector` (a locator)."""
    return page.locator(f"{selector} div.validation-error")


def tokens_in(statuses: list[str]) -> list[int]:
    """The token counts of '<n> tokens · ...' status lines, in order."""
    return [int(match.group(1)) for status in statuses if (match := re.search(r"(\d+) tokens", status))]


def box_of(page, selector: str) -> dict:
    """The element's bounding box in page coordinates (top, bottom, left, right, width, height)."""
    return page.locator(selector).first.evaluate(
        """e => { const r = e.getBoundingClientRect();
                  return {top: r.top + scrollY, bottom: r.bottom + scrollY, left: r.left, right: r.right,
                          width: r.width, height: r.height}; }"""
    )
