"""The Chat tab's states in a real browser, on a FakeBackend app (real checks and model lock, fast fake model):
each refusal next to its input with the composer usable and the message kept, a typed out-of-range number
noted, Stop marked on the answer, waiting in line with a place and an estimate, Clear, drawing inside the
conversation (`/imagine`, in the browser and through `/chat`), and a phone screen.
"""

import re

from playwright.sync_api import expect
from support.browser import (
    ASSETS,
    CAT,
    CHAT_STATUS,
    PHONE,
    badges_seen,
    box_of,
    fill_box,
    no_error_badge,
    seen,
    send,
    shots,
    validation_message,
    watch,
    watch_badges,
)
from support.meters import wait_until, work_over
from support.serving import chat_args, image_args, new_client

from janus_demo.web.chat_tab import EXAMPLES

COMPOSER = "#chat-input"
BOTS = "#chatbot [data-testid=bot]"


def attach(page, *paths) -> None:
    page.locator(f"{COMPOSER} input[type=file]").set_input_files(list(paths))
    expect(page.locator(f"{COMPOSER} .thumbnail-item")).to_have_count(len(paths))


def open_settings(page) -> None:
    page.get_by_role("button", name="Generation settings").click()
    expect(page.locator("#field-seed input")).to_be_visible()


def answered(page, count: int = 1) -> None:
    """The count-th answer has ended: its bubble is there, the status has its numbers, Submit is back."""
    expect(page.locator("#chatbot [data-testid=bot]")).to_have_count(count)
    expect(page.locator(CHAT_STATUS)).to_contain_text("tokens/s")
    expect(page.locator(f"{COMPOSER} [data-testid=submit-button]")).to_be_visible()


def composer_usable(page, text: str, files: int) -> None:
    """The composer is enabled, its button is Submit again, and it still holds what the user typed and attached."""
    box = page.locator(f"{COMPOSER} textarea")
    expect(box).to_be_enabled()
    expect(box).to_have_value(text)
    expect(page.locator(f"{COMPOSER} [data-testid=submit-button]")).to_be_visible()
    expect(page.locator(f"{COMPOSER} .thumbnail-item")).to_have_count(files)


# --- refusals ------------------------------------------------------------------------------------------


def not_an_image(tmp_path):
    path = tmp_path / "holiday.png"
    path.write_text("these are my notes, not a picture")
    return str(path)


REFUSALS = {
    "empty": ("", lambda tmp: [], "Type a message or attach an image."),
    "too-long": ("x" * 8001, lambda tmp: [], "Message is too long: 8,001 characters; the limit is 8,000."),
    "not-an-image": ("What is this?", lambda tmp: [not_an_image(tmp)], "This file is not an image we can read"),
    "fifth-image": ("Compare them.", lambda tmp: [CAT, str(ASSETS / "coffee.png")] * 2 + [CAT], "the limit is 4"),
    "nothing-to-draw": ("/imagine ", lambda tmp: [], "Say what to draw after /imagine"),
}


def test_each_refused_message_is_answered_next_to_the_composer_which_stays_usable(fake_page, fake, tmp_path):
    """Every case on one page, one after another, as a person would meet them; then a message that goes."""
    page = fake_page
    watch_badges(page)  # even one that shows for a moment
    for case, (text, files, expected) in REFUSALS.items():
        paths = files(tmp_path)
        if paths:
            attach(page, *paths)
        page.locator(f"{COMPOSER} textarea").fill(text)
        page.locator(f"{COMPOSER} textarea").press("Enter")

        expect(validation_message(page, COMPOSER)).to_contain_text(expected)
        composer_usable(page, text, len(paths))  # and stays so: a lock-up that came later once stopped the next case
        no_error_badge(page)
        expect(page.locator("#chatbot [data-testid=user]")).to_have_count(0)
        shots(page, f"chat-refused-{case}")
        while page.locator(f"{COMPOSER} button[aria-label='Remove file']").count():
            page.locator(f"{COMPOSER} button[aria-label='Remove file']").first.click()
        expect(page.locator(f"{COMPOSER} .thumbnail-item")).to_have_count(0)

    assert fake.lock.entered == 0, "a refused message never reaches the model"
    send(page, "Hello again")  # everything still works, and the message goes away
    answered(page)
    expect(validation_message(page, COMPOSER)).to_have_count(0)
    assert not badges_seen(page), "no error badge, not even for a moment"


def test_settings_out_of_range_are_clamped_or_refused_on_their_field_and_on_the_composer(fake_page, fake):
    """A typed number out of range is clamped with a note; a refused seed is named on its field and on the
    composer, for a message and for an example; a good seed then answers. One page, in that order."""
    page = fake_page
    open_settings(page)
    box = page.get_by_label("number input for Max new tokens")
    for _ in range(3):  # a box just mounted by the accordion can be reset once to its value: type again
        box.fill("99999")
        page.locator(f"{COMPOSER} textarea").click()  # leave the box
        if expect_value_or_none(box, "2048"):
            break
    expect(box).to_have_value("2048")
    expect(validation_message(page, "#field-max_new_tokens")).to_contain_text(
        "Max new tokens must be a whole number between 1 and 2048 (got 99999). It was set to 2048."
    )
    no_error_badge(page)
    shots(page, "chat-number-clamped")
    box.fill("16")
    page.locator(f"{COMPOSER} textarea").click()
    expect(validation_message(page, "#field-max_new_tokens")).to_have_count(0)

    fill_box(page.locator("#field-seed input"), "-7")
    send(page, "Describe a cat.")
    message = "Seed must be a whole number between -1 and 4294967295 (got -7)."
    expect(validation_message(page, "#field-seed")).to_have_text(message)
    expect(validation_message(page, COMPOSER)).to_contain_text(f"Generation settings: {message}")
    composer_usable(page, "Describe a cat.", 0)
    no_error_badge(page)
    shots(page, "chat-refused-seed")

    example = page.get_by_role("button", name="Select example 4: Write a haiku about autumn.")
    example.click()  # an example with the refused seed: answered on the field too
    expect(validation_message(page, "#field-seed")).to_contain_text("Seed must be a whole number")
    no_error_badge(page)
    assert fake.lock.entered == 0
    fill_box(page.locator("#field-seed input"), "3")
    example.click()
    answered(page)
    expect(page.locator(BOTS)).to_contain_text("seed=3")
    expect(page.locator(CHAT_STATUS)).to_contain_text("16 tokens")
    expect(validation_message(page, "#field-seed")).to_have_count(0)

    fill_box(page.locator("#field-seed input"), "7")
    send(page, "Describe a cat.")
    answered(page, 2)
    expect(page.locator(BOTS).last).to_contain_text("seed=7")


def expect_value_or_none(box, value: str) -> bool:
    """Whether the box settles on `value` (the app's answer to a typed value) within a few seconds."""
    try:
        expect(box).to_have_value(value, timeout=5_000)
        return True
    except AssertionError:
        return False


# --- stop, waiting, clear ------------------------------------------------------------------------------


def test_stop_while_waiting_and_while_answering_marks_the_answer_and_frees_the_composer(fake_page, fake):
    page = fake_page
    fake.gate.clear()  # the model never gets to the first token
    send(page, "Hello?")
    expect(page.locator(CHAT_STATUS)).to_contain_text("Reading the conversation")
    page.locator(f"{COMPOSER} button[aria-label=Stop]").click()
    expect(page.locator(CHAT_STATUS)).to_have_text("Stopped before the answer began.")
    answer = page.locator("#chatbot [data-testid=bot]")
    expect(answer).to_have_text(["Stopped"])
    composer_usable(page, "", 0)
    no_error_badge(page)
    wait_until(lambda: work_over(fake), timeout=60)

    fake.reset(token_delay=0.05)
    send(page, "Tell me a long story.")
    expect(page.locator(CHAT_STATUS)).to_contain_text("tokens/s")
    watch_badges(page)  # even one that shows for a moment
    page.locator(f"{COMPOSER} button[aria-label=Stop]").click()

    expect(page.locator(CHAT_STATUS)).to_contain_text("Stopped · ")
    expect(answer.nth(1)).to_contain_text("seed=42 x")  # the partial answer stays ...
    expect(answer.last).to_have_text("Stopped")  # ... marked under it
    expect(answer).to_have_count(3)
    composer_usable(page, "", 0)
    no_error_badge(page)
    wait_until(lambda: work_over(fake), timeout=60)  # the generation itself has ended, not just its display
    assert fake.produced < 512, "Stop ended the answer before its 512 tokens"
    assert not badges_seen(page), "no error badge, not even for a moment"
    shots(page, "chat-stopped")

    send(page, "And now a short one.")  # the stopped answer is not part of the next request's trouble
    expect(page.locator(CHAT_STATUS)).not_to_contain_text("Stopped")


def test_waiting_behind_another_users_images_shows_the_place_in_line_and_an_estimate(fake_page, fake, tmp_path):
    page = fake_page
    other = new_client(fake.url, tmp_path / "other")
    other.predict("a fox", *image_args(), api_name="/generate_images")  # a timed image run: the estimate's basis
    fake.reset(step_delay=0.05)
    fake.image_steps = 100  # ~5 s of someone else's images
    job = other.submit("a fox", *image_args(), api_name="/generate_images")
    wait_until(lambda: fake.lock.busy, timeout=60)

    send(page, "Am I next?")
    expect(page.locator(CHAT_STATUS)).to_contain_text("Waiting for the model · 1st in line · about")
    seconds = int(page.locator(CHAT_STATUS).inner_text().split("about ")[1].split(" s")[0])
    assert seconds >= 1, "an estimate from the images' own (about 5 s on an idle machine; more on a busy one)"
    shots(page, "chat-waiting-in-line")
    job.result(timeout=30)
    answered(page)
    other.close()


def test_waiting_in_gradios_queue_is_shown_next_to_the_status(pages, fake, tmp_path):
    first, second = pages(fake.url), pages(fake.url)
    fake.gate.clear()
    send(first, "I came first.")
    wait_until(lambda: fake.lock.busy, timeout=60)
    send(second, "I came second.")
    expect(second.locator("#chat-status .progress-text")).to_contain_text("queue: 1/1")
    line, tracker = box_of(second, "#chat-status"), box_of(second, "#chat-status .progress-text")
    assert line["height"] >= 20 and line["top"] - 1 <= tracker["top"] and tracker["bottom"] <= line["bottom"] + 1, (
        f"gradio's queue position must show inside the status line: {tracker} in {line}"
    )
    shots(second, "chat-queued")
    fake.gate.set()
    answered(second)


def test_a_long_conversation_keeps_the_label_off_the_messages_and_clear_resets_it(fake_page, fake):
    page = fake_page
    for n in range(4):
        send(page, f"Message {n}")
        answered(page, n + 1)
    expect(page.locator("#chatbot [data-testid=block-label]")).to_have_count(0)  # never over the messages
    shots(page, "chat-long-conversation")

    page.locator("#chatbot button[aria-label=Clear]").click()
    expect(page.locator("#chatbot [data-testid=bot]")).to_have_count(0)
    expect(page.locator(CHAT_STATUS)).to_have_text("")
    shots(page, "chat-cleared")

    fake.reset(token_delay=0.05)  # Clear during an answer stops it, and nothing comes back
    send(page, "Tell me a long story.")
    expect(page.locator(CHAT_STATUS)).to_contain_text("tokens/s")
    page.locator("#chatbot button[aria-label=Clear]").click()
    wait_until(lambda: work_over(fake), timeout=60)  # the answer has ended: anything it sent has come
    assert fake.produced < 512, "Clear ended the answer before its 512 tokens"
    expect(page.locator("#chatbot [data-testid=bot]")).to_have_count(0)
    expect(page.locator(CHAT_STATUS)).to_have_text("")
    composer_usable(page, "", 0)


# --- layout ---------------------------------------------------------------------------------------------


def test_on_a_phone_the_composer_status_and_examples_are_on_the_first_screen(pages, fake):
    page = pages(fake.url, viewport=PHONE)
    composer = box_of(page, COMPOSER)
    assert composer["bottom"] <= PHONE["height"], f"the composer is below the first screen: {composer}"
    assert composer["right"] <= PHONE["width"]
    chat = box_of(page, "#chatbot")  # every example whole in the chat's box, none scrolled out of sight
    examples = [box_of(page, f"#chatbot button.example >> nth={n}") for n in range(len(EXAMPLES))]
    for example in examples:
        assert chat["top"] <= example["top"] and example["bottom"] <= min(chat["bottom"], PHONE["height"]), (
            f"an example is out of sight on load: {example} in {chat}"
        )
    buttons = [box_of(page, f"#{name}")["height"] for name in ("new-chat", "delete-chat", "delete-all-chats")]
    assert max(buttons) - min(buttons) < 1, f"New chat, Delete chat and Delete all chats differ in height: {buttons}"
    send(page, "Hi from a phone")
    answered(page)
    status = box_of(page, "#chat-status")
    assert status["top"] >= composer["bottom"] - 5 and status["top"] - composer["bottom"] < 60
    shots(page, "chat-phone")


# --- drawing inside the conversation ---------------------------------------------------------------------


def test_imagine_draws_inside_the_conversation_and_the_next_question_sees_the_image(pages, fake):
    page = pages(fake.url, accept_downloads=True)
    fake.reset(step_delay=0.02)
    fake.image_steps = 120  # previews every 48 steps (two token rows): at 48 and 96
    watch(page, "drawn", f"{BOTS} img", "src")
    send(page, "/imagine a red fox")

    expect(page.locator(CHAT_STATUS)).to_contain_text("Done:")
    expect(page.locator(BOTS).last).to_have_text(re.compile(r"Drew janus-\d+-1\.png \(seed \d+\)\."))
    final = page.locator(f"{BOTS} img").last.get_attribute("src")
    previews = [src for src in seen(page, "drawn") if src != final]
    assert len(set(previews)) >= 2, f"the previews build up in the conversation first: {seen(page, 'drawn')}"
    assert re.search(r"/janus-\d+-1\.png$", final), final
    expect(page.locator(f"{BOTS} img")).to_have_count(1)  # the previews made way for the image
    composer_usable(page, "", 0)
    with page.expect_download() as download:  # the image's own download button, under its message
        page.locator("#chatbot button[aria-label=Download]").first.click()
    assert re.fullmatch(r"janus-\d+-1\.png", download.value.suggested_filename)
    no_error_badge(page)
    shots(page, "chat-imagine-drawn")

    send(page, "What animal is this?")
    expect(page.locator(BOTS).last).to_contain_text("seed=42")
    expect(page.locator(f"{COMPOSER} [data-testid=submit-button]")).to_be_visible()
    assert fake.images_read == [1], "the follow-up was asked with the drawn image, as if the user had attached it"


def test_stop_ends_a_drawing_in_the_chat_and_keeps_its_preview_marked(fake_page, fake):
    page = fake_page
    fake.reset(step_delay=0.05)
    fake.image_steps = 400
    send(page, "/imagine a slow snail")
    expect(page.locator(f"{BOTS} img")).to_have_count(1)  # a preview
    watch_badges(page)
    page.locator(f"{COMPOSER} button[aria-label=Stop]").click()

    expect(page.locator(CHAT_STATUS)).to_have_text(re.compile(r"Stopped at step \d+/400\."))
    expect(page.locator(BOTS).last).to_have_text("Stopped")
    expect(page.locator(f"{BOTS} img")).to_have_count(1)  # the last preview stays, above the mark
    composer_usable(page, "", 0)
    wait_until(lambda: work_over(fake), timeout=60)
    assert fake.produced < 400, "Stop ended the drawing itself"
    assert not badges_seen(page), "no error badge, not even for a moment"
    shots(page, "chat-imagine-stopped")


def test_imagine_through_the_chat_api_names_the_file_and_the_seed(fake, tmp_path):
    client = new_client(fake.url, tmp_path)
    answer, status = client.predict({"text": "/imagine a red fox", "files": []}, *chat_args(), api_name="/chat")
    assert re.fullmatch(r"Drew janus-\d+-1\.png \(seed \d+\)\.", answer) and status.startswith("Done:")
    answer, _ = client.predict({"text": "What animal is this?", "files": []}, *chat_args(), api_name="/chat")
    assert answer.startswith("seed=1") and fake.images_read == [1], "the follow-up is asked about the drawn image"
    client.close()
