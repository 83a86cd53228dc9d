"""The Edit tab in a real browser, on a FakeBackend app (real checks, intake, VQ encoder and model lock; fake,
fast 384x384 images): a brush mask painted on the photo, the crop shown, Download, Stop, Stop while decoding
keeping the decoded image, a refusal next to its input, variations with "Generate from this", and the phone
layout.
"""

import re
import zipfile

from playwright.sync_api import expect
from support import ASSETS
from support.browser import (
    PHONE,
    badges_seen,
    box_of,
    fill_box,
    no_error_badge,
    shots,
    validation_message,
    watch_badges,
)
from support.meters import wait_until, work_over
from support.png import read_png_metadata

PHOTO = str(ASSETS / "chelsea.png")  # 451x300
STATUS = "#edit-status [data-testid=markdown]"
GALLERY = "#edit-gallery"
EDITOR = "#edit-redraw-image"


def edit_tab(page, mode: str = "Complete") -> None:
    page.get_by_role("tab", name="Edit").click()
    page.locator("#edit-mode").get_by_label(mode).check()


def upload(page, selector: str) -> None:
    """Put the photo into the input `selector` and wait until it is there: an Image uploads it at once (its
    value lives in the page until a button sends it; no event of the app reads it before); the editor lays it
    on its canvas (and uploads it with the request)."""
    files = page.locator(f"{selector} input[type=file]").first
    if selector != EDITOR:
        with page.expect_response(lambda response: "gradio_api/upload" in response.url):
            files.set_input_files(PHOTO)
        expect(page.locator(f"{selector} img").first).to_be_visible()
    else:  # gradio 6.31's editor drops a file given before its canvas is set up (a page error, then no photo)
        expect(page.locator(f"{selector} canvas").first).to_be_visible()
        page.wait_for_timeout(1500)
        files.set_input_files(PHOTO)
        expect(page.locator(selector).get_by_text("Upload an image")).to_be_hidden(timeout=10_000)
        expect(page.locator(selector).get_by_role("button", name="Undo")).to_be_enabled()  # the photo is a step
        page.wait_for_timeout(800)  # the canvas settles (once in ~20 runs a click right after it sent nothing)


def paint(page, dx: float = 0.5, dy: float = 0.5) -> None:
    """A short brush stroke on the editor's canvas, at the fraction (dx, dy) of its width and height."""
    canvas = page.locator(f"{EDITOR} canvas").first
    expect(canvas).to_be_visible()
    box = canvas.bounding_box()
    x, y = box["x"] + box["width"] * dx, box["y"] + box["height"] * dy
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + 30, y + 8, steps=6)
    page.mouse.up()


def done(page, images: int = 1) -> None:
    expect(page.locator(STATUS)).to_contain_text(f"× {images} image")
    expect(page.locator(f"{GALLERY} .grid-container img")).to_have_count(images)
    expect(page.locator("#edit-clear")).to_be_enabled()


def test_a_painted_region_is_redrawn_the_crop_is_shown_and_downloads_say_how(pages, fake, tmp_path):
    page = pages(fake.url, accept_downloads=True)
    edit_tab(page, "Redraw a region")
    upload(page, EDITOR)
    paint(page)
    page.locator("#edit-redraw-prompt textarea").fill("a cat with sunglasses")
    page.locator("#edit-field-seed input").fill("7")
    expect(page.locator("#edit-field-keep_photo_pixels input")).to_be_checked()  # on by default
    page.locator("#edit-redraw").click()
    done(page)
    expect(page.locator("#edit-crop img")).to_be_visible()
    expect(page.locator("#edit-seed-used input")).to_have_value("7")
    no_error_badge(page)
    shots(page, "edit-redraw-done")

    with page.expect_download() as download:
        page.locator("#edit-files a").first.click()
    assert download.value.suggested_filename == "janus-7-1.png"
    download.value.save_as(tmp_path / "one.png")
    meta = read_png_metadata(tmp_path / "one.png")
    assert meta["mode"] == "redraw" and meta["source_size"] == "451x300" and meta["prompt"] == "a cat with sunglasses"
    assert meta["pixels"] == "photo kept outside the mask (feather 4 px)"
    redrawn = int(re.match(r"(\d+) of 576 tokens \(rows", meta["mask"]).group(1))
    assert 0 < redrawn < 60, f"a short stroke touches a few tokens: {meta['mask']}"
    with page.expect_download() as archive:
        page.locator("#edit-zip").click()
    archive.value.save_as(tmp_path / "all.zip")
    with zipfile.ZipFile(tmp_path / "all.zip") as zipped:
        assert zipped.namelist() == ["janus-7-1.png"]


def test_a_missing_photo_is_refused_next_to_it_then_variations_generate_from_an_edited_description(fake_page, fake):
    """One page: the refusal leaves everything usable, then Variations. (The empty-mask refusal is tested
    through the service and the API, test_app_edits.py: in this browser suite a Redraw on a photo without a
    stroke sometimes sent nothing, in gradio 6.31's editor.)"""
    page = fake_page
    edit_tab(page, "Complete")
    watch_badges(page)
    page.locator("#edit-mode").get_by_label("Complete").check()
    page.locator("#edit-complete-prompt textarea").fill("a cat")
    page.locator("#edit-complete").click()
    expect(validation_message(page, "#edit-complete-image")).to_contain_text("Image is missing")
    no_error_badge(page)
    assert not badges_seen(page), "no error badge, not even for a moment"
    assert fake.lock.entered == 0
    shots(page, "edit-refused-no-photo")

    upload(page, "#edit-complete-image")  # the refusal leaves everything usable
    page.locator("#edit-complete").click()
    done(page)
    expect(validation_message(page, "#edit-complete-image")).to_have_count(0)

    edit_tab(page, "Variations")
    upload(page, "#edit-variations-image")
    fill_box(page.locator("#edit-field-seed input"), "5")
    page.locator("#edit-variations").click()
    done(page)
    description = page.locator("#edit-description textarea")
    expect(description).to_have_value(re.compile(r"^seed=5 x+$"))  # the fake model's answer
    description.fill("A watercolor of a cat")
    page.locator("#edit-from-description").click()
    done(page)
    shots(page, "edit-variations")
    description.fill("   ")
    page.locator("#edit-from-description").click()
    expect(validation_message(page, "#edit-description")).to_have_text("Description is empty.")


def test_stop_says_where_it_stopped_and_marks_the_previews(fake_page, fake):
    page = fake_page
    fake.reset(step_delay=0.02)
    fake.image_steps = 576
    edit_tab(page)
    upload(page, "#edit-complete-image")
    page.locator("#edit-complete-prompt textarea").fill("a cat")
    page.locator("#edit-complete").click()
    expect(page.locator(f"{GALLERY} img")).to_have_count(1)  # a preview
    page.locator("#edit-stop").click()
    expect(page.locator(STATUS)).to_have_text(re.compile(r"Stopped at step \d+/576\."))
    expect(page.locator(f"{GALLERY} .caption-label").first).to_have_text("Unfinished")
    expect(page.locator("#edit-files")).to_be_hidden()
    no_error_badge(page)
    shots(page, "edit-stopped")


def test_stop_while_decoding_keeps_the_decoded_image_in_the_gallery_and_the_downloads(pages, fake, tmp_path):
    page = pages(fake.url, accept_downloads=True)
    fake.image_steps = 96  # a preview at step 48 (every 48, the default)
    fake.hold_decoding(after=1)  # every token drawn; the model holds after decoding 1 of the 2
    edit_tab(page)
    upload(page, "#edit-complete-image")
    page.locator("#edit-complete-prompt textarea").fill("a cat")
    fill_box(page.locator("#edit-field-num_images input[type=number]"), "2")
    fill_box(page.locator("#edit-field-seed input"), "9")
    page.locator("#edit-complete").click()
    expect(page.locator(STATUS)).to_contain_text("Decoding 1/2")
    expect(page.locator(f"{GALLERY} .grid-container img")).to_have_count(2)  # the decoded one, the other's preview
    expect(page.locator("#edit-files a")).to_have_count(1)
    watch_badges(page)
    page.locator("#edit-stop").click()

    expect(page.locator(STATUS)).to_have_text("Stopped while decoding: 1 of 2 images kept.")
    expect(page.locator(f"{GALLERY} .caption-label")).to_have_text(["Image 2 · unfinished"])
    with page.expect_download() as one:
        page.locator("#edit-files a").first.click()
    assert one.value.suggested_filename == "janus-9-1.png"
    one.value.save_as(tmp_path / "one.png")
    assert read_png_metadata(tmp_path / "one.png")["mode"] == "complete"
    with page.expect_download() as archive:
        page.locator("#edit-zip").click()
    archive.value.save_as(tmp_path / "kept.zip")
    with zipfile.ZipFile(tmp_path / "kept.zip") as zipped:
        assert zipped.namelist() == ["janus-9-1.png"]
    no_error_badge(page)
    assert not badges_seen(page), "no error badge, not even for a moment"
    wait_until(lambda: work_over(fake), timeout=60)
    assert fake.decoded == 1, "Stop stops the decoding too"
    shots(page, "edit-stopped-while-decoding")


def test_on_a_phone_the_results_come_right_after_the_photo_and_its_buttons(pages, fake):
    page = pages(fake.url, viewport=PHONE)
    edit_tab(page)
    upload(page, "#edit-complete-image")
    page.locator("#edit-complete-prompt textarea").fill("a cat")
    page.locator("#edit-complete").click()
    done(page)
    buttons, results, settings = (box_of(page, s) for s in ("#edit-buttons", "#edit-results", "#edit-settings"))
    assert buttons["bottom"] <= results["top"] + 1 and results["bottom"] <= settings["top"] + 1
    assert results["right"] <= PHONE["width"], "nothing wider than the phone"
    shots(page, "edit-phone")

    edit_tab(page, "Redraw a region")  # each mode shows only its own results
    expect(page.locator("#edit-results")).to_be_hidden()
    expect(page.locator(f"{EDITOR} .top-panel")).to_be_visible()
    label, toolbar = box_of(page, f"{EDITOR} > label"), box_of(page, f"{EDITOR} .top-panel")
    apart = label["bottom"] <= toolbar["top"] or label["right"] <= toolbar["left"]
    assert apart, f"the editor's zoom toolbar covers its label: {label} {toolbar}"
    shots(page, "edit-redraw-phone")
    edit_tab(page, "Complete")
    expect(page.locator(f"{GALLERY} .grid-container img")).to_have_count(1)  # back: its own result again
