"""The Text-to-image tab's states in a real browser, on a FakeBackend app (real checks and model lock; fake,
fast 384x384 images): refusals next to their input, a batch's previews as one tile per image, Stop with each
preview marked, Stop while decoding keeping every decoded image (gallery, downloads, zip), waiting in line, every
image whole at 1, 4 and 16 (desktop and phone) and enlarged on click, downloads with meaningful names, Enter to
generate, Clear, the seed, "Ask about this image" without an image, progress text.
"""

import io
import re
import time
import zipfile

from PIL import Image
from playwright.sync_api import expect
from support.browser import (
    IMAGES_STATUS,
    PHONE,
    QUEUE_JOIN,
    DirectCalls,
    badges_seen,
    box_of,
    fill_box,
    no_error_badge,
    seen,
    set_number,
    shots,
    validation_message,
    watch,
    watch_badges,
)
from support.meters import wait_until, work_over
from support.png import read_png_metadata
from support.serving import chat_args, chat_message, new_client

PROMPT = "#t2i-prompt"
GALLERY = "#t2i-gallery"


def images_tab(page) -> None:
    page.get_by_role("tab", name="Text to image").click()
    expect(page.locator(f"{PROMPT} textarea")).to_be_visible()


def generate(page, prompt: str = "A red fox in the snow", images: int | None = None, seed: int | None = None) -> None:
    if images is not None:
        set_number(page, "Number of images", images)
    if seed is not None:
        fill_box(page.locator("#field-seed input"), str(seed))
    page.locator(f"{PROMPT} textarea").fill(prompt)
    page.locator("#t2i-generate").click()


def done(page, images: int = 1) -> None:
    expect(page.locator(IMAGES_STATUS)).to_contain_text(f"× {images} image")
    expect(page.locator(f"{GALLERY} .grid-container img")).to_have_count(images)
    expect(page.locator("#t2i-clear")).to_be_enabled()


# --- refusals ------------------------------------------------------------------------------------------


def test_refusals_are_named_next_to_their_input_and_leave_everything_usable(fake_page, fake):
    """An empty prompt, a typed number of images out of range (clamped, with a note) and a refused seed, one
    after another on one page; then a good seed draws and every note goes away."""
    page = fake_page
    images_tab(page)
    watch_badges(page)
    page.locator("#t2i-generate").click()
    expect(validation_message(page, PROMPT)).to_have_text("Prompt is empty.")
    no_error_badge(page)
    expect(page.locator("#t2i-generate")).to_be_enabled()
    shots(page, "images-refused-empty-prompt")

    box = page.get_by_label("number input for Number of images")
    box.fill("500")
    page.locator(f"{PROMPT} textarea").click()
    expect(box).to_have_value("16")
    expect(validation_message(page, "#field-num_images")).to_contain_text(
        "Number of images must be a whole number between 1 and 16 (got 500). It was set to 16."
    )
    shots(page, "images-number-clamped")
    box.fill("1")
    page.locator(f"{PROMPT} textarea").click()
    expect(validation_message(page, "#field-num_images")).to_have_count(0)

    generate(page, "A fox at dusk", seed=-7)
    expect(validation_message(page, "#field-seed")).to_have_text(
        "Seed must be a whole number between -1 and 4294967295 (got -7)."
    )
    expect(page.locator(f"{PROMPT} textarea")).to_have_value("A fox at dusk")
    no_error_badge(page)
    shots(page, "images-refused-seed")
    assert fake.lock.entered == 0 and not badges_seen(page), "no refusal reached the model or showed a badge"

    fill_box(page.locator("#field-seed input"), "7")
    page.locator("#t2i-generate").click()
    done(page)
    expect(page.locator("#t2i-seed-used input")).to_have_value("7")
    expect(validation_message(page, PROMPT)).to_have_count(0)
    expect(validation_message(page, "#field-seed")).to_have_count(0)


# --- stop, waiting, progress ---------------------------------------------------------------------------


def test_a_batchs_previews_are_one_tile_per_image_and_stop_marks_each(fake_page, fake):
    page = fake_page
    fake.reset(step_delay=0.02)
    fake.image_steps = 576
    images_tab(page)
    page.get_by_role("button", name="Advanced").click()
    set_number(page, "Preview every", 48)
    watch(page, "tiles", f"{GALLERY} .grid-container img", "src")
    generate(page, images=4)
    tiles = page.locator(f"{GALLERY} .grid-container img")
    expect(tiles).to_have_count(4)  # one tile per image, as the final gallery will show them
    wait_until(lambda: len(seen(page, "tiles")) >= 2, timeout=60, interval=0.1)  # each tile builds up
    fake.gate.clear()  # the model holds here: the previews stay as they are
    boxes = tiles.evaluate_all("els => els.map(e => e.getBoundingClientRect().toJSON())")
    assert len({round(box["left"]) for box in boxes}) == 2 == len({round(box["top"]) for box in boxes}), "2 x 2"
    expect(page.locator(f"{GALLERY} .caption-label")).to_have_count(0)
    shots(page, "images-preview-tiles")
    watch_badges(page)  # even one that shows for a moment
    page.locator("#t2i-stop").click()

    expect(page.locator(IMAGES_STATUS)).to_have_text(re.compile(r"Stopped at step \d+/576\."))
    step = re.search(r"step (\d+)", page.locator(IMAGES_STATUS).inner_text()).group(1)
    captions = page.locator(f"{GALLERY} .caption-label")
    expect(captions).to_have_text([f"Image {n} · unfinished" for n in (1, 2, 3, 4)])
    assert 0 < int(step) < 576
    no_error_badge(page)
    wait_until(lambda: work_over(fake), timeout=60)
    assert fake.produced < 576, "Stop stops the generation itself"
    assert not badges_seen(page), "no error badge, not even for a moment"
    expect(page.locator("#t2i-files")).to_be_hidden()
    expect(page.locator("#t2i-zip")).to_be_hidden()
    expect(page.locator("#t2i-clear")).to_be_enabled()
    shots(page, "images-stopped")

    page.locator("#t2i-ask").click()  # unfinished previews are not something to ask about
    expect(page.locator(IMAGES_STATUS)).to_have_text("Generate an image first, then ask about it.")


def test_stop_while_decoding_keeps_every_decoded_image_in_the_gallery_and_the_downloads(pages, fake, tmp_path):
    page = pages(fake.url, accept_downloads=True)
    fake.image_steps = 192  # previews at steps 96 and 192
    fake.hold_decoding(after=5)  # every token drawn; the model holds after decoding 5 of the 16
    images_tab(page)
    page.get_by_role("button", name="Advanced").click()
    set_number(page, "Preview every", 96)
    generate(page, "A fox in the snow", images=16, seed=7)
    expect(page.locator(IMAGES_STATUS)).to_contain_text("Decoding 5/16")
    gallery = page.locator(f"{GALLERY} .grid-container img")
    expect(gallery).to_have_count(16)  # 5 decoded images, then the other 11's last previews
    links = page.locator("#t2i-files a")
    expect(links).to_have_count(5)  # each decoded image is offered at once
    shots(page, "images-decoding")
    watch_badges(page)
    page.locator("#t2i-stop").click()

    expect(page.locator(IMAGES_STATUS)).to_have_text("Stopped while decoding: 5 of 16 images kept.")
    captions = page.locator(f"{GALLERY} .caption-label")
    expect(captions).to_have_text([f"Image {n} · unfinished" for n in range(6, 17)])  # the 5 kept: no caption
    expect(gallery).to_have_count(16)
    expect(links).to_have_count(5)
    with page.expect_download() as first:
        links.first.click()
    assert first.value.suggested_filename == "janus-7-1.png"
    first.value.save_as(tmp_path / "one.png")
    assert read_png_metadata(tmp_path / "one.png")["prompt"] == "A fox in the snow"
    with page.expect_download() as archive:
        page.locator("#t2i-zip").click()
    assert archive.value.suggested_filename == "janus-7.zip"
    archive.value.save_as(tmp_path / "kept.zip")
    with zipfile.ZipFile(tmp_path / "kept.zip") as zipped:
        assert zipped.namelist() == [f"janus-7-{n}.png" for n in range(1, 6)]
        with Image.open(io.BytesIO(zipped.read("janus-7-5.png"))) as fifth:
            assert fifth.text["seed"] == "7" and fifth.size == (384, 384)
    no_error_badge(page)
    assert not badges_seen(page), "no error badge, not even for a moment"
    wait_until(lambda: work_over(fake), timeout=60)
    assert fake.decoded == 5, "Stop stops the decoding too"
    expect(page.locator("#t2i-clear")).to_be_enabled()
    shots(page, "images-stopped-while-decoding")


def test_waiting_behind_another_users_chat_shows_the_place_in_line(fake_page, fake, tmp_path):
    page = fake_page
    other = new_client(fake.url, tmp_path / "other")
    fake.gate.clear()
    job = other.submit(chat_message("a long question"), *chat_args(), api_name="/chat")
    wait_until(lambda: fake.lock.busy, timeout=60)
    images_tab(page)
    generate(page)
    expect(page.locator(IMAGES_STATUS)).to_contain_text("Waiting for the model · 1st in line")
    shots(page, "images-waiting-in-line")
    fake.gate.set()
    job.result(timeout=30)
    done(page)
    other.close()


def test_progress_estimates_from_the_measured_rate_and_counts_every_image(fake_page, fake):
    page = fake_page
    fake.reset(step_delay=0.01)
    fake.image_steps = 576
    fake.gate.clear()  # a slow first step, as a prompt's prefill and warm-up make it
    images_tab(page)
    watch(page, "status", IMAGES_STATUS)
    generate(page, images=4)
    time.sleep(2.0)
    fake.gate.set()
    done(page, 4)
    expect(page.locator(IMAGES_STATUS)).to_contain_text("Done: 576 tokens × 4 images in")
    estimates = [
        (int(step), int(left))
        for text in seen(page, "status")
        if (match := re.match(r"Step (\d+)/576 .* about (\d+) s left", text))
        for step, left in [match.groups()]
    ]
    assert estimates, "an estimate appears once the rate is measured"
    first_step, first_left = estimates[0]
    assert first_step >= 8, "no estimate from the first, slow steps"
    assert first_left <= 30, f"{first_left} s left at step {first_step} of a ~6 s remainder"
    shots(page, "images-done-4")


# --- the gallery ----------------------------------------------------------------------------------------


def whole_images(page, count: int) -> None:
    """Every image of the gallery lies entirely within the gallery's visible area, at a useful size, and the
    gallery does not scroll (nothing hidden below)."""
    wrap = page.locator(f"{GALLERY} .grid-wrap").evaluate(
        "e => ({scroll: e.scrollHeight, client: e.clientHeight, ...e.getBoundingClientRect().toJSON()})"
    )
    assert wrap["scroll"] <= wrap["client"] + 1, f"the gallery scrolls: {wrap}"
    boxes = page.locator(f"{GALLERY} .grid-container img").evaluate_all(
        "els => els.map(e => e.getBoundingClientRect().toJSON())"
    )
    assert len(boxes) == count
    width = page.viewport_size["width"]
    for box in boxes:
        assert wrap["top"] - 1 <= box["top"] and box["bottom"] <= wrap["bottom"] + 1, (box, wrap)
        assert 0 <= box["left"] and box["right"] <= width, (box, width)
        assert box["width"] >= 60 and box["height"] >= 60, f"too small to see: {box}"


def every_download_whole(page, count: int) -> None:
    """Every file of "Download one by one" in sight (the list does not scroll) with its whole name: no name
    cut short ("janus-281961… .png") or reaching past the list."""
    holder = page.locator("#t2i-files .file-preview-holder")
    shown = holder.evaluate(
        "e => ({scroll: e.scrollHeight, client: e.clientHeight, ...e.getBoundingClientRect().toJSON()})"
    )
    assert shown["scroll"] <= shown["client"] + 1, f"the list scrolls: {shown}"
    names = page.locator("#t2i-files td.filename").evaluate_all(
        """els => els.map(e => ({name: e.getAttribute('aria-label'), right: e.getBoundingClientRect().right,
                                 cut: [...e.querySelectorAll('span')].some(s => s.scrollWidth > s.clientWidth + 1)}))"""
    )
    assert len(names) == count, names
    for name in names:
        assert not name["cut"] and name["right"] <= shown["right"] + 1, (name, shown)


def whole_at_1_4_and_16(page, viewport: str) -> None:
    """Draw 1, 4 and 16 images: each time every image is whole in the gallery; then all 16 downloads in sight."""
    for count in (1, 4, 16):
        generate(page, images=count)
        done(page, count)
        whole_images(page, count)
        page.screenshot(path=f"test-artifacts/images-{count}-whole-{viewport}.png", full_page=True)
    every_download_whole(page, 16)  # all 16 in sight (the list showed two at a time), every name whole
    page.locator("#t2i-files").screenshot(path=f"test-artifacts/images-16-downloads-{viewport}.png")


def test_every_image_is_whole_at_1_4_and_16(fake_page, fake):
    images_tab(fake_page)
    whole_at_1_4_and_16(fake_page, "desktop")


def test_downloads_are_one_click_each_with_meaningful_names_and_one_zip_and_an_image_enlarges(pages, fake, tmp_path):
    page = pages(fake.url, accept_downloads=True)
    images_tab(page)
    generate(page, "A fox in the snow", images=2, seed=7)
    done(page, 2)
    expect(page.locator("#t2i-seed-used input")).to_have_value("7")
    links = page.locator("#t2i-files a")
    expect(links).to_have_count(2)
    images = page.locator(f"{GALLERY} .grid-container img").evaluate_all(
        "els => Math.max(...els.map(e => e.getBoundingClientRect().bottom))"
    )
    assert box_of(page, GALLERY)["bottom"] - images < 40, "the gallery as tall as its one row of two images"
    with page.expect_download() as first:
        links.first.click()  # one click
    assert first.value.suggested_filename == "janus-7-1.png"
    first.value.save_as(tmp_path / "one.png")
    metadata = read_png_metadata(tmp_path / "one.png")
    assert metadata["prompt"] == "A fox in the snow" and metadata["seed"] == "7"

    with page.expect_download() as archive:
        page.locator("#t2i-zip").click()
    assert archive.value.suggested_filename == "janus-7.zip"
    archive.value.save_as(tmp_path / "all.zip")
    with zipfile.ZipFile(tmp_path / "all.zip") as zipped:
        assert zipped.namelist() == ["janus-7-1.png", "janus-7-2.png"]
    expect(page.locator("#t2i-seed-used input")).to_have_value("7")
    shots(page, "images-downloads")

    thumbnail = box_of(page, f"{GALLERY} .grid-container img")  # an image enlarges on click
    page.locator(f"{GALLERY} .grid-container button").first.click()
    large = page.locator(f"{GALLERY} .preview img").first
    expect(large).to_be_visible()
    assert large.bounding_box()["width"] > 1.5 * thumbnail["width"]
    shots(page, "images-enlarged")


# --- prompt box, buttons, seed --------------------------------------------------------------------------


def test_ask_before_an_image_then_enter_generates_shift_enter_adds_a_line_and_clear_resets(
    fake_page, fake, caplog, capfd
):
    page = fake_page
    images_tab(page)
    page.locator("#t2i-ask").click()  # "Ask about this image" before there is one
    expect(page.locator(IMAGES_STATUS)).to_have_text("Generate an image first, then ask about it.")
    expect(page.get_by_role("tab", name="Text to image")).to_have_attribute("aria-selected", "true")
    no_error_badge(page)
    assert not [record for record in caplog.records if record.exc_info], "no traceback in the server's log"
    assert "Traceback" not in capfd.readouterr().err
    shots(page, "images-ask-without-image")
    expect(page.locator("#t2i-seed-used")).to_be_hidden()  # never a made-up 0 before any run
    expect(page.locator("#t2i-reuse")).to_be_disabled()

    fill_box(page.locator("#field-seed input"), "11")
    box = page.locator(f"{PROMPT} textarea")
    runs = DirectCalls(page, QUEUE_JOIN)
    box.fill("A lighthouse")
    box.press("Shift+Enter")
    box.type("at night")
    expect(box).to_have_value("A lighthouse\nat night")  # the keys have been handled by now

    def asked() -> list:  # the runs of this prompt the page has sent (a field's own events are sent too)
        return [r for r in runs.all if "A lighthouse" in (r.post_data or "")]

    assert not asked() and fake.lock.entered == 0, "Shift+Enter only adds a line"
    box.press("Enter")
    done(page)
    assert len(asked()) == 1
    runs.close()
    expect(page.locator("#t2i-seed-used input")).to_have_value("11")

    page.locator("#t2i-clear").click()
    expect(box).to_have_value("")
    expect(page.locator(f"{GALLERY} .grid-container img")).to_have_count(0)
    expect(page.locator(IMAGES_STATUS)).to_have_text("")
    expect(page.locator("#t2i-seed-used")).to_be_hidden()
    expect(page.locator("#t2i-files")).to_be_hidden()
    shots(page, "images-cleared")


# --- phone layout ---------------------------------------------------------------------------------------


def test_on_a_phone_the_results_come_right_after_the_prompt_and_every_image_is_whole(pages, fake):
    page = pages(fake.url, viewport=PHONE)
    images_tab(page)
    generate(page, images=4)
    done(page, 4)
    button, status = box_of(page, "#t2i-generate"), box_of(page, "#t2i-status")
    gallery, settings = box_of(page, GALLERY), box_of(page, "#t2i-settings")
    assert 0 <= status["top"] - button["bottom"] < 60, "the status line right under the buttons"
    assert gallery["top"] - button["bottom"] < 120, "the images right after"
    assert gallery["top"] < PHONE["height"], "the images start on the first screen"
    assert settings["top"] > gallery["bottom"], "settings and examples come after the results"
    shots(page, "images-phone")
    whole_at_1_4_and_16(page, "phone")
