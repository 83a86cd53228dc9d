"""gradio 6 chat history + the new message -> one typed Conversation -> Janus messages."""

import pytest

from janus_demo.service.conversation import history_message, parse_conversation, parse_message
from janus_demo.service.errors import FieldError

IMAGE = {"type": "image"}


def text(value):
    return {"type": "text", "text": value}


def file(path):
    return {"type": "file", "file": {"path": path}}


def conversation(history, message, max_turns=20):
    words, paths = parse_message(message)
    return parse_conversation(history, words, paths, max_turns)


def test_history_and_the_new_message_become_janus_turns():
    history = [
        {"role": "user", "content": [file("/up/cat.png"), text("What is it?")]},
        {"role": "assistant", "content": [text("A cat.")]},
    ]
    parsed = conversation(history, {"text": "And this?", "files": ["/up/dog.png"]})
    assert parsed.janus_messages() == [
        {"role": "user", "content": [IMAGE, text("What is it?")]},
        {"role": "assistant", "content": [text("A cat.")]},
        {"role": "user", "content": [IMAGE, text("And this?")]},
    ]
    assert parsed.image_paths == ["/up/cat.png", "/up/dog.png"] and parsed.new_images == 1
    assert parsed.left_out_turns == parsed.unreadable_entries == 0


def test_separate_messages_of_one_role_merge_into_one_turn():
    """The Chatbot shows each image as its own message: they are one turn for the model."""
    history = [
        {"role": "user", "content": [file("/up/a.png")]},
        {"role": "user", "content": [text("What is this?")]},
        {"role": "assistant", "content": [text("A plane.")]},
    ]
    parsed = conversation(history, "Sure?")
    assert [m["role"] for m in parsed.janus_messages()] == ["user", "assistant", "user"]
    assert parsed.janus_messages()[0]["content"] == [IMAGE, text("What is this?")]


def test_uploaded_files_arrive_as_paths_or_file_data():
    parsed = conversation(None, {"text": "hi", "files": ["/up/x.png", {"path": "/up/y.png", "url": "u"}]})
    assert parsed.janus_messages() == [{"role": "user", "content": [IMAGE, IMAGE, text("hi")]}]
    assert parsed.image_paths == ["/up/x.png", "/up/y.png"]


def test_empty_turns_status_bubbles_and_leading_assistant_are_dropped():
    history = [
        {"role": "assistant", "content": [text("Welcome!")]},
        {"role": "user", "content": [text("Hi")]},
        {"role": "assistant", "content": [text("  ")], "metadata": None},
        {"role": "assistant", "content": [text("thinking")], "metadata": {"title": "Thinking"}},
    ]
    parsed = conversation(history, {"text": "Again", "files": []})
    assert parsed.janus_messages() == [{"role": "user", "content": [text("Hi"), text("Again")]}]


def test_max_turns_keeps_the_newest_turns_and_their_images():
    history = []
    for i in range(5):
        history += [history_message("user", []), history_message("assistant", [])]
        history[-2]["content"] = [file(f"/up/{i}.png"), text(f"q{i}")]
        history[-1]["content"] = [text(f"a{i}")]
    parsed = conversation(history, {"text": "last", "files": []}, max_turns=2)
    assert [m["role"] for m in parsed.janus_messages()] == ["user", "assistant", "user"]
    assert parsed.janus_messages()[0]["content"][1] == text("q4")
    assert parsed.image_paths == ["/up/4.png"] and parsed.left_out_turns == 4


@pytest.mark.parametrize(
    "entry",
    [
        "a string",
        None,
        {"role": "user", "content": "plain text (gradio 5)"},
        {"role": "user", "content": [{"path": "/up/raw.png"}]},
        {"role": "wizard", "content": [text("hi")]},
        {"role": "user", "content": [text(42)]},
    ],
)
def test_an_unreadable_history_entry_is_left_out_and_counted(entry):
    history = [{"role": "user", "content": [text("q")]}, {"role": "assistant", "content": [text("a")]}, entry]
    parsed = conversation(history, "next")
    assert parsed.unreadable_entries == 1
    assert parsed.janus_messages()[-1] == {"role": "user", "content": [text("next")]}


def test_history_text_is_cleaned_like_a_message():
    parsed = conversation([{"role": "user", "content": [text("bad \ud800\0 text")]}], "ok")
    assert parsed.janus_messages()[0]["content"][0] == text("bad \ufffd text")


@pytest.mark.parametrize("message", [42, ["hi"], {"text": 5}, {"text": "x", "files": "a.png"}, {"files": [None]}])
def test_a_malformed_message_is_refused_naming_the_field(message):
    with pytest.raises(FieldError, match="^Message") as caught:
        parse_message(message)
    assert caught.value.field == "message"


def test_history_messages_round_trip():
    from janus_demo.service.conversation import ImagePath as Image

    saved = [history_message("user", [Image("/up/a.png"), "Hi"]), history_message("assistant", ["Hello"])]
    parsed = conversation(saved, "More")
    assert parsed.image_paths == ["/up/a.png"]
    assert parsed.janus_messages()[1] == {"role": "assistant", "content": [text("Hello")]}


def test_an_image_message_names_its_mime_type_so_the_chatbot_shows_a_picture():
    from janus_demo.service.conversation import ImagePath as Image

    assert history_message("user", [Image("/up/a.png")])["content"] == [
        {"type": "file", "file": {"path": "/up/a.png", "mime_type": "image/png"}}
    ]


def test_readable_messages_drop_what_a_status_bubble_cannot_hold():
    from janus_demo.service.conversation import readable_messages

    bubble = {"role": "assistant", "content": ["junk", 3, text("ok")], "metadata": {"title": "Stopped"}}
    assert readable_messages([bubble]) == [{**bubble, "content": [text("ok")]}]


def test_an_image_the_assistant_drew_is_read_as_if_the_user_had_attached_it():
    """/imagine: the drawn image sits in the assistant's message; Janus reads images in user turns only."""
    history = [
        {"role": "user", "content": [text("/imagine a red fox")]},
        {"role": "assistant", "content": [file("/cache/janus-7-1.png"), text("Drew janus-7-1.png (seed 7).")]},
    ]
    parsed = conversation(history, "What animal is this?")
    assert parsed.janus_messages() == [
        {"role": "user", "content": [text("/imagine a red fox"), IMAGE]},
        {"role": "assistant", "content": [text("Drew janus-7-1.png (seed 7).")]},
        {"role": "user", "content": [text("What animal is this?")]},
    ]
    assert parsed.image_paths == ["/cache/janus-7-1.png"] and parsed.new_images == 0
