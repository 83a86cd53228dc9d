"""Upscale 2x in a real browser, on a FakeBackend app with a tiny random-weight upscaler: the button sits
right under the images (on a desktop's first screen), upscales the selected result, says how far it is while
it runs, shows the result and downloads a 2x PNG that keeps the original's metadata; Stop ends it while it
waits for the model or between two of the network's blocks."""

import re

from PIL import Image
from playwright.sync_api import expect
from support.browser import DESKTOP, IMAGES_STATUS, DirectCalls, box_of, no_error_badge, shots
from support.meters import wait_until, work_over
from support.png import read_png_metadata
from support.serving import image_args, new_client
from support.upscaler import held_upscaler

UPSCALE_STATUS = ".upscale-status [data-testid=markdown]"
PROGRESS = re.compile(r"Upscaling \d+% · \d+\.\d s · about \d+ s left")


def test_upscale_2x_shows_and_downloads_the_selected_image(pages, upscaling, tmp_path):
    page = pages(upscaling.url, accept_downloads=True)
    page.get_by_role("tab", name="Text to image").click()
    upscale = page.get_by_role("button", name="Upscale 2x")
    upscale.click()  # nothing to upscale yet: said, nothing breaks
    expect(page.locator(UPSCALE_STATUS)).to_have_text("Generate an image first, then upscale it.")
    no_error_badge(page)
    shots(page, "upscale-without-image")

    page.locator("#field-num_images input[type=number]").fill("2")
    page.locator("#field-seed input").fill("7")
    page.locator("#t2i-prompt textarea").fill("A fox in the snow")
    calls = DirectCalls(page)  # the gallery's change (new images: nothing selected) and select events
    page.locator("#t2i-generate").click()
    expect(page.locator(IMAGES_STATUS)).to_contain_text("× 2 images")
    # The new images' "nothing selected" (two change events) answered first: on a busy machine a late one came
    # after the choice below and undid it.
    calls.settle(lambda answered: len(answered) >= 2)
    page.locator("#t2i-gallery .grid-container img").nth(1).click()  # select the second image
    expect(page.locator("#t2i-gallery .preview")).to_be_visible()  # shown large
    calls.settle(lambda answered: sum(1 for data in answered if data and data.get("index") == 1) >= 2)  # both
    page.keyboard.press("Escape")
    upscale.click()
    expect(page.locator(UPSCALE_STATUS)).to_contain_text("Upscaled 384×384 → 768×768")
    expect(page.locator(".upscale-result img")).to_be_visible()
    no_error_badge(page)
    shots(page, "upscale-result")

    with page.expect_download() as download:
        page.get_by_role("button", name="Download 2x PNG").click()
    assert download.value.suggested_filename == "janus-7-2-2x.png"
    download.value.save_as(tmp_path / "big.png")
    assert Image.open(tmp_path / "big.png").size == (768, 768)
    metadata = read_png_metadata(tmp_path / "big.png")
    assert metadata["prompt"] == "A fox in the snow" and metadata["seed"] == "7"
    assert metadata["upscaled"].startswith("2x from 384x384")

    page.locator("#t2i-generate").click()  # a new run: the last upscale goes away with its images
    expect(page.locator(".upscale-result")).to_be_hidden()
    expect(page.locator(IMAGES_STATUS)).to_contain_text("× 2 images")


def test_progress_while_upscaling_and_stop_while_waiting_or_between_blocks(pages, upscaling, monkeypatch, tmp_path):
    page = pages(upscaling.url)
    page.get_by_role("tab", name="Text to image").click()
    page.locator("#t2i-prompt textarea").fill("A fox in the snow")
    page.locator("#t2i-generate").click()
    expect(page.locator(IMAGES_STATUS)).to_contain_text("× 1 image")  # one image: the tallest gallery
    upscale, status = page.get_by_role("button", name="Upscale 2x"), page.locator(UPSCALE_STATUS)
    assert box_of(page, ".upscale-button")["bottom"] <= DESKTOP["height"], "on the first screen, under the image"

    upscaling.reset()
    upscaling.gate.clear()  # another user's request holds the model
    other = new_client(upscaling.url)
    job = other.submit("A cat", *image_args(), api_name="/generate_images")
    try:
        wait_until(lambda: upscaling.inside == 1, timeout=30)
        upscale.click()
        expect(status).to_contain_text("Waiting for the model")
        page.locator("#t2i-stop").click()
        expect(status).to_have_text("Stopped.")
        no_error_badge(page)
        shots(page, "upscale-stopped")
    finally:
        upscaling.gate.set()
        job.result(timeout=60)
        other.close()
    wait_until(lambda: work_over(upscaling), timeout=60)
    assert upscaling.lock.entered == 1, "the stopped upscale never ran"
    expect(page.locator(".upscale-result")).to_be_hidden()

    held = held_upscaler(tmp_path)  # three blocks; the second waits until the test lets it run
    monkeypatch.setattr(upscaling, "upscaler", held.upscaler)
    try:
        upscale.click()
        expect(status).to_have_text(PROGRESS)  # how far, how long so far, about how long left
        shots(page, "upscale-progress")
        wait_until(held.waiting.is_set, timeout=60)
        page.locator("#t2i-stop").click()
        expect(status).to_have_text("Stopped.")
    finally:
        held.gate.set()
    wait_until(lambda: work_over(upscaling), timeout=60)
    assert held.ran == [0, 1], "Stop ended the upscale between two blocks: the last never ran"
    expect(page.locator(".upscale-result")).to_be_hidden()
    no_error_badge(page)

    upscale.click()  # nothing held now: it runs to its end
    expect(status).to_contain_text("Upscaled 384×384 → 768×768")
    expect(page.locator(".upscale-result img")).to_be_visible()
