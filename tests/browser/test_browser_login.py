"""Behind --auth in a real browser: gradio's login form goes through the guard middleware (a padded user name
is refused, the exact one logs in), and the chat then works over the session the login owns."""

from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
expect = sync_api.expect
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is missing: apt-get install -y chromium"),
]


@pytest.fixture
def login_url(loaded_tiny, tmp_path, monkeypatch):
    from support.fake_backend import FakeBackend
    from support.serving import served

    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path))
    with served(FakeBackend(loaded_tiny), logins=[("alice", "correct-horse")]) as (_, url):
        yield url


def log_in(page, user: str, password: str) -> None:
    page.get_by_label("username").fill(user)
    page.get_by_label("password").fill(password)
    page.get_by_role("button", name="Login").click()


def test_the_login_form_logs_in_exactly_and_the_chat_answers(login_url):
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page()
        page.set_default_timeout(30_000)
        page.goto(login_url)
        with page.expect_response(lambda response: response.url.endswith("/login")) as padded:
            log_in(page, " alice", "correct-horse")
        assert padded.value.status == 400
        with page.expect_response(lambda response: response.url.endswith("/login")) as exact:
            log_in(page, "alice", "correct-horse")
        assert exact.value.status == 200
        box = page.locator("#chat-input textarea")
        expect(box).to_be_visible()
        box.fill("hello")
        box.press("Enter")
        expect(page.locator("#chatbot [data-testid=bot]").first).to_contain_text("seed=42 x")
        browser.close()
