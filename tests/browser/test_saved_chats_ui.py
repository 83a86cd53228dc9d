"""Chats that survive a reload, in a real browser on a FakeBackend app: the conversation comes back with its
image (one the user attached, or one drawn in the chat), the saved list switches between chats, New chat, the
bin (a new chat; the saved one stays), Delete chat and Delete all chats (each asks once), a stopped answer
keeps its mark, and an image whose file the server no longer has is left out with a note.
"""

import re
from pathlib import Path
from urllib.parse import unquote

from playwright.sync_api import expect
from support.browser import CAT, CHAT_STATUS, DirectCalls, no_error_badge, send, shots, wait_loaded
from support.meters import wait_until

from janus_demo.web.saved_chats import BUSY, CONFIRM_DELETE, CONFIRM_DELETE_ALL

PICKER = "#saved-chats-picker"
BOTS = "#chatbot [data-testid=bot]"
USERS = "#chatbot [data-testid=user]"
NOTE_LINE = "#saved-chats-note [data-testid=markdown]"
NOTE = "(An image of this message is no longer on the server.)"


def answered(page, count: int = 1) -> None:
    expect(page.locator(BOTS)).to_have_count(count)
    expect(page.locator(CHAT_STATUS)).to_contain_text("tokens/s")
    # The status has numbers from the first token on; Submit is back once the whole answer has been drawn
    # (each token re-sends the chat, and a shared 2-core machine draws 512 of them in a few seconds).
    expect(page.locator("#chat-input [data-testid=submit-button]")).to_be_visible()  # the state ceiling (60 s)


def saved_titles(page) -> list[str]:
    """The titles in the saved-chats list now (opened and closed again)."""
    page.locator(f"{PICKER} input").click()
    expect(page.locator(f"{PICKER} input")).to_have_attribute("aria-expanded", "true")
    options = page.get_by_role("option")
    titles = options.all_inner_texts()
    page.locator(f"{PICKER} input").blur()  # closes the list
    expect(options).to_have_count(0)
    return [title.replace("✓", "").strip() for title in titles]  # the open chat's option has a check mark


def expect_titles(page, expected: list[str]) -> None:
    """Wait until the saved-chats list holds `expected`: a save or a delete reaches the list in an event of its
    own, after the chat on the page has changed."""
    wait_until(lambda: saved_titles(page) == expected, timeout=60, interval=0.2)


def pick(page, title: str) -> None:
    """Choose a saved chat in the list and wait until both of its events (open it; take back a Delete's
    question) have answered: a Delete clicked sooner was once taken back by the second."""
    page.locator(f"{PICKER} input").click()
    option = page.get_by_role("option", name=title)
    expect(option).to_be_visible()
    calls = DirectCalls(page)
    option.click()
    calls.settle(lambda answered: len(answered) >= 2)
    calls.close()


def reload(page) -> None:
    """Reload the page and wait for the saved chats to be read (the list's value set, or no chat to open)."""
    calls = DirectCalls(page)
    page.reload()
    expect(page.locator("#chat-input textarea")).to_be_visible()
    calls.settle(lambda answered: len(answered) >= 2)  # both page-load events (the model panel's, the chats')
    calls.close()


def ask_with_cat(page, text: str) -> None:
    page.locator("#chat-input input[type=file]").set_input_files([CAT])
    expect(page.locator("#chat-input .thumbnail-item")).to_have_count(1)
    send(page, text)


def test_a_chat_with_an_image_comes_back_after_a_reload(fake_page, fake):
    page = fake_page
    ask_with_cat(page, "What is in this picture?")
    answered(page)
    expect(page.locator(f"{PICKER} input")).to_have_value("What is in this picture?")

    reload(page)
    expect(page.locator(BOTS)).to_have_count(1)
    expect(page.locator(BOTS)).to_contain_text("seed=")
    expect(page.locator(f"{USERS} img")).to_have_count(1)
    wait_loaded(page.locator(f"{USERS} img"))  # the picture loads
    expect(page.locator(f"{PICKER} input")).to_have_value("What is in this picture?")
    no_error_badge(page)
    shots(page, "saved-chat-after-reload")

    send(page, "And its colour?")  # the conversation goes on where it was
    answered(page, 2)
    assert fake.prompt_lengths[-1] > fake.prompt_lengths[0], "the follow-up was asked with the earlier turn"


def test_switch_between_saved_chats_and_delete_one_or_all(fake_page, fake):
    page = fake_page
    send(page, "First chat")
    answered(page)
    page.get_by_role("button", name="New chat").click()
    expect(page.locator(BOTS)).to_have_count(0)
    send(page, "Second chat")
    answered(page)
    expect_titles(page, ["Second chat", "First chat"])

    pick(page, "First chat")
    expect(page.locator(USERS)).to_have_text(["First chat"])
    shots(page, "saved-chats-switched")
    reload(page)
    expect(page.locator(USERS)).to_have_text(["First chat"])  # the chat used last is opened

    fake.gate.clear()  # an answer that runs until the gate opens: no switching meanwhile, and a note says why
    send(page, "A long answer, please")
    expect(page.locator(CHAT_STATUS)).to_contain_text("Reading the conversation")
    pick(page, "Second chat")
    expect(page.locator(NOTE_LINE)).to_have_text(BUSY)
    expect(page.locator(f"{PICKER} input")).to_have_value("First chat")  # the list shows the open chat again
    page.get_by_role("button", name="New chat").click()
    expect(page.locator(NOTE_LINE)).to_have_text(BUSY)
    expect(page.locator(USERS)).to_have_text(["First chat", "A long answer, please"])
    shots(page, "saved-chats-switch-while-answering")
    fake.gate.set()
    answered(page, 2)
    expect(page.locator(NOTE_LINE)).to_have_text("")  # the answer has ended: the note is over

    page.get_by_role("button", name="Delete chat", exact=True).click()  # it asks once, in the button's place
    expect(page.get_by_role("button", name=CONFIRM_DELETE, exact=True)).to_be_visible()
    expect(page.get_by_role("button", name="Delete chat", exact=True)).to_have_count(0)
    expect(page.locator(USERS)).to_have_text(["First chat", "A long answer, please"])  # nothing deleted yet
    shots(page, "saved-chats-delete-asks")
    page.get_by_role("button", name=CONFIRM_DELETE, exact=True).click()
    expect(page.locator(BOTS)).to_have_count(0)
    expect(page.get_by_role("button", name="Delete chat", exact=True)).to_be_visible()  # the question is over
    expect_titles(page, ["Second chat"])
    reload(page)
    expect(page.locator(USERS)).to_have_text(["Second chat"])

    page.get_by_role("button", name="Delete all chats").click()
    page.get_by_role("button", name="New chat").click()  # another action takes the question back
    expect(page.get_by_role("button", name=CONFIRM_DELETE_ALL)).to_have_count(0)
    pick(page, "Second chat")
    page.get_by_role("button", name="Delete all chats").click()
    expect(page.locator(USERS)).to_have_text(["Second chat"])
    page.get_by_role("button", name=CONFIRM_DELETE_ALL).click()
    expect(page.locator(BOTS)).to_have_count(0)
    expect_titles(page, [])
    reload(page)
    expect(page.locator(BOTS)).to_have_count(0)
    page.locator(f"{PICKER} input").click()
    expect(page.locator(f"{PICKER} input")).to_have_attribute("aria-expanded", "true")  # the list is open ...
    expect(page.get_by_role("option")).to_have_count(0)  # ... and empty
    expect(page.locator(f"{PICKER} input")).to_have_value("")
    no_error_badge(page)
    shots(page, "saved-chats-all-deleted")


def test_an_image_the_server_no_longer_has_is_left_out_with_a_note(fake_page, fake):
    page = fake_page
    ask_with_cat(page, "Remember this cat")
    answered(page)
    expect(page.locator(f"{PICKER} input")).to_have_value("Remember this cat")  # saved: its own event, after the answer
    src = page.locator(f"{USERS} img").get_attribute("src")
    served = Path(unquote(src.split("file=", 1)[1]))
    served.unlink()  # gradio swept its cache (after an hour), or the server restarted

    reload(page)
    expect(page.locator(USERS)).to_contain_text([NOTE])
    expect(page.locator("#chatbot img")).to_have_count(0)
    expect(page.locator(BOTS)).to_contain_text("seed=")
    expect(page.locator(f"{PICKER} input")).to_have_value("Remember this cat")
    no_error_badge(page)
    shots(page, "saved-chat-image-gone")

    send(page, "Still there?")  # the chat goes on without it
    answered(page, 2)
    no_error_badge(page)


def test_the_bin_starts_a_new_chat_and_keeps_the_saved_one(fake_page, fake):
    page = fake_page
    send(page, "Keep me")
    answered(page)
    page.locator("#chatbot button[aria-label=Clear]").click()  # the chat's bin icon
    expect(page.locator(USERS)).to_have_count(0)
    expect(page.locator(f"{PICKER} input")).to_have_value("")  # a new chat: not the saved one
    expect_titles(page, ["Keep me"])  # the bin keeps the saved chat (it deleted it, like Delete chat)
    send(page, "A new one")
    answered(page)
    expect_titles(page, ["A new one", "Keep me"])
    reload(page)
    pick(page, "Keep me")
    expect(page.locator(USERS)).to_have_text(["Keep me"])
    shots(page, "saved-chats-bin-keeps")


def test_a_stopped_answer_keeps_its_mark_after_a_reload(fake_page, fake):
    page = fake_page
    fake.gate.clear()  # the answer waits: Stop comes before it ends
    send(page, "Stop me")
    expect(page.locator(CHAT_STATUS)).to_contain_text("Reading the conversation")
    page.locator("#chat-input button[aria-label=Stop]").click()
    expect(page.locator(BOTS).last).to_have_text("Stopped")
    expect(page.locator(f"{PICKER} input")).to_have_value("Stop me")  # saved
    fake.gate.set()
    reload(page)
    expect(page.locator(USERS)).to_have_text(["Stop me"])
    expect(page.locator(BOTS).last).to_have_text("Stopped")  # it was lost on reload
    shots(page, "saved-chat-stopped-after-reload")


def test_a_drawing_comes_back_after_a_reload_and_is_asked_about(pages, fake):
    page = pages(fake.url)
    page.locator("#chat-input textarea").fill("a red fox")
    page.locator("#chat-draw").click()  # Draw: the composer's text, drawn
    expect(page.locator(CHAT_STATUS)).to_contain_text("Done:")
    expect(page.locator(USERS)).to_have_text(["/imagine a red fox"])
    expect(page.locator(f"{PICKER} input")).to_have_value("/imagine a red fox")

    reload(page)
    drawn = page.locator(f"{BOTS} img")
    expect(drawn).to_have_count(1)
    assert re.search(r"/janus-\d+-1\.png$", drawn.get_attribute("src"))
    wait_loaded(drawn)  # the picture loads
    expect(page.locator(BOTS).last).to_contain_text("Drew janus-")
    no_error_badge(page)
    shots(page, "saved-chat-drawing-after-reload")

    send(page, "What animal is this?")
    expect(page.locator(BOTS).last).to_contain_text("seed=42")
    expect(page.locator("#chat-input [data-testid=submit-button]")).to_be_visible()
    assert fake.images_read == [1], "the follow-up was asked about the drawn image"
