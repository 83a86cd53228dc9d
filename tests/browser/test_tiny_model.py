"""The app in a real browser on the tiny model: chat streams token by token (the status moves with every
token, even tokens that add no text yet) and follows up; its answers are short by default (random weights);
previews build up before the final gallery; "Ask about this image" carries it to the chat; Stop ends image
generation and says where.
"""

import re

import pytest
from playwright.sync_api import expect
from support.browser import (
    CAT,
    CHAT_STATUS,
    IMAGES_STATUS,
    no_error_badge,
    seen,
    send,
    set_number,
    shots,
    tokens_in,
    watch,
)
from support.meters import wait_until, work_over

GENERATION_TIMEOUT_MS = 120_000  # the tiny model's 576 image tokens take 5-25 s on a busy 2-core CPU


@pytest.fixture
def page(pages, tiny_url):
    """A page on the app around the tiny model on Janus-Pro's own 24x24 grid: what `--model tiny` serves."""
    return pages(tiny_url)


def wait_for_answer(page, count: int) -> None:
    """The count-th answer has ended: its bubble is there and the Submit button is back (Stop shows meanwhile)."""
    expect(page.locator("#chatbot [data-testid=bot]")).to_have_count(count)
    expect(page.locator("#chat-input [data-testid=submit-button]")).to_be_visible(timeout=60_000)
    expect(page.locator(CHAT_STATUS)).to_contain_text("tokens/s")


# --- chat -----------------------------------------------------------------------------------------


def test_chat_about_an_uploaded_image_streams_and_follows_up_in_short_answers_by_default(page):
    """Random weights answer noise that rarely ends: 48 new tokens by default (the page says so), not 512."""
    expect(page.locator("#random-weights-notice")).to_contain_text("Chat answers stop after 48 tokens by default")
    page.get_by_role("button", name="Generation settings").click()
    expect(page.get_by_label("number input for Max new tokens")).to_have_value("48")
    expect(page.locator("#field-max_new_tokens")).to_contain_text("Random weights: answers stop after this many")
    page.locator("#chat-input input[type=file]").set_input_files(CAT)
    expect(page.locator("#chat-input .thumbnail-item")).to_have_count(1)
    watch(page, "chat-status", CHAT_STATUS)

    send(page, "What is in this picture?")
    wait_for_answer(page, 1)
    counts = tokens_in(seen(page, "chat-status"))
    # Several pieces, in order, up to the whole answer (at most ten updates a second: web.adapters.paced).
    assert len(counts) >= 2 and counts == sorted(set(counts)), f"the answer should stream in: {counts}"
    assert counts[-1] == max(tokens_in([page.locator(CHAT_STATUS).inner_text()])), "the last count is the answer's"
    assert counts[-1] <= 48
    shots(page, "chat-answered")
    expect(page.locator("#chatbot [data-testid=user]")).to_have_count(2)  # the image, then the question
    expect(page.locator("#chatbot [data-testid=bot]")).to_have_count(1)  # (random weights may answer blanks only)

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


def test_stop_says_where_then_previews_change_before_the_final_gallery_and_ask_carries_it_to_chat(page, tiny_backend):
    start_generating(page, "A rocket lifting off at dawn")
    expect(page.locator("#t2i-gallery img").first).to_be_visible(timeout=GENERATION_TIMEOUT_MS)  # a preview
    page.locator("#t2i-stop").click()
    expect(page.locator(IMAGES_STATUS)).to_have_text(re.compile(r"Stopped at step \d+/576\."))
    stopped_at = page.locator(IMAGES_STATUS).inner_text()
    wait_until(lambda: work_over(tiny_backend), timeout=60)  # the generation itself has ended ...
    assert page.locator(IMAGES_STATUS).inner_text() == stopped_at  # ... and sent no step after the stop
    no_error_badge(page)
    page.locator("#t2i-clear").click()  # the stopped previews go: every preview seen next is the new image's
    expect(page.locator("#t2i-gallery img")).to_have_count(0)

    start_generating(page, "A watercolor painting of a lighthouse")
    expect(page.locator(IMAGES_STATUS)).to_contain_text("Done:", timeout=GENERATION_TIMEOUT_MS)
    final = page.locator("#t2i-gallery img").first.get_attribute("src")
    previews = [src for src in seen(page, "gallery") if final not in src]
    assert len(previews) >= 2, f"expected at least two previews before the final image, saw {previews}"
    assert any(status.startswith("Step ") for status in seen(page, "t2i-status"))

    shots(page, "images-done-tiny-model")
    page.locator("#t2i-ask").click()
    expect(page.get_by_role("tab", name="Chat")).to_have_attribute("aria-selected", "true")
    expect(page.locator("#chat-input .thumbnail-item")).to_have_count(1)
    textbox = page.locator("#chat-input textarea")
    expect(textbox).to_have_value("Describe this image.")
    expect(textbox).to_be_focused()
