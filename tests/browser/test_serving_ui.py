"""Many visitors in the browser, on the 8x8 tiny-model app with its image scheduler: two tabs drawing at once are
drawn together (both say so, both previews build up, both finish), and a chat is answered in one tab while
another tab's 16 images are drawn. Desktop and phone screenshots of each state in test-artifacts/."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect
from support.browser import CHAT_STATUS, IMAGES_STATUS, no_error_badge, seen, send, set_number, shots, watch
from support.meters import wait_until
from support.scheduling import holding, paused_at_step, waiting
from support.serving import image_args, new_client


def images_tab(page) -> None:
    page.get_by_role("tab", name="Text to image").click()
    expect(page.locator("#t2i-prompt textarea")).to_be_visible()


def generate(page, prompt: str, images: int = 1) -> None:
    page.locator("#t2i-prompt textarea").fill(prompt)
    if images != 1:
        set_number(page, "Number of images", images)
    page.locator("#t2i-generate").click()


@pytest.fixture
def held(small_backend):
    """The scheduler holds its next batch until `release` is set."""
    with holding(small_backend.scheduler) as release:
        yield small_backend.scheduler, release


def test_two_tabs_drawing_at_once_are_drawn_together(pages, small_url, held, tmp_path):
    scheduler, release = held
    first = new_client(small_url, tmp_path / "first")  # another visitor keeps the model busy meanwhile
    busy = first.submit("a lighthouse", *image_args(seed=9), api_name="/generate_images")
    wait_until(lambda: scheduler.busy, timeout=60)
    tabs = [pages(small_url), pages(small_url)]
    for n, page in enumerate(tabs):
        images_tab(page)
        watch(page, "status", IMAGES_STATUS)
        watch(page, "gallery", "#t2i-gallery img", "src")
        generate(page, f"a red fox, take {n}")
    wait_until(lambda: waiting(scheduler, 2), timeout=60)
    expect(tabs[0].locator(IMAGES_STATUS)).to_contain_text("in line")
    shots(tabs[0], "serving-waiting-for-the-next-batch")
    release.set()
    expect(tabs[0].locator(IMAGES_STATUS)).to_contain_text("with 1 other request")
    shots(tabs[0], "serving-drawing-with-another-request")
    for page in tabs:
        expect(page.locator(IMAGES_STATUS)).to_contain_text("Done:")
        no_error_badge(page)
    busy.result(timeout=120)
    first.close()
    for page in tabs:
        statuses, sources = seen(page, "status"), seen(page, "gallery")
        assert any("with 1 other request" in status for status in statuses), statuses
        assert len(set(sources)) >= 3, "previews built up before the final image"
    shots(tabs[1], "serving-two-tabs-done")


def test_a_chat_is_answered_in_one_tab_while_another_draws_16_images(pages, small_url, monkeypatch):
    answered, during = paused_at_step(monkeypatch, 8)  # the 16 images wait there until the chat has answered
    painter, talker = pages(small_url), pages(small_url)
    images_tab(painter)
    generate(painter, "sixteen foxes", images=16)
    expect(painter.locator(IMAGES_STATUS)).to_contain_text("Step")
    send(talker, "What is a fox?")
    expect(talker.locator(CHAT_STATUS)).to_contain_text("tokens/s")
    expect(painter.locator(IMAGES_STATUS)).not_to_contain_text("Done")
    shots(talker, "serving-chat-answered-while-images-draw")
    answered.set()
    expect(painter.locator(IMAGES_STATUS)).to_contain_text("Done:")
    assert during == [True]
    no_error_badge(talker), no_error_badge(painter)
