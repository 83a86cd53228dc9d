"""Gradio history (browser and API shapes) -> Janus messages."""

from janus_demo.service.conversation import to_janus_conversation

IMAGE = {"type": "image"}


def text(value):
    return {"type": "text", "text": value}


def test_browser_shape_typed_blocks():
    history = [
        {"role": "user", "content": [{"type": "file", "file": {"path": "/up/cat.png"}}, text("What is it?")]},
        {"role": "assistant", "content": [text("A cat.")]},
    ]
    messages, paths = to_janus_conversation(history, {"text": "And this?", "files": ["/up/dog.png"]})
    assert messages == [
        {"role": "user", "content": [IMAGE, text("What is it?")]},
        {"role": "assistant", "content": [text("A cat.")]},
        {"role": "user", "content": [IMAGE, text("And this?")]},
    ]
    assert paths == ["/up/cat.png", "/up/dog.png"]


def test_api_shape_raw_values():
    history = [
        {"role": "user", "content": [{"path": "/up/a.png"}, {"path": "/up/b.png"}, "Compare."]},
        {"role": "assistant", "content": "They differ."},
    ]
    messages, paths = to_janus_conversation(history, {"text": "How?", "files": []})
    assert messages == [
        {"role": "user", "content": [IMAGE, IMAGE, text("Compare.")]},
        {"role": "assistant", "content": [text("They differ.")]},
        {"role": "user", "content": [text("How?")]},
    ]
    assert paths == ["/up/a.png", "/up/b.png"]


def test_gradio5_style_separate_file_messages_merge_into_one_turn():
    history = [
        {"role": "user", "content": {"path": "/up/a.png"}},
        {"role": "user", "content": "What is this?"},
        {"role": "assistant", "content": "A plane."},
    ]
    messages, paths = to_janus_conversation(history, "Sure?")
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert messages[0]["content"] == [IMAGE, text("What is this?")]
    assert paths == ["/up/a.png"]


def test_text_only_and_file_data_objects():
    class FileData:
        path = "/up/x.png"

    messages, paths = to_janus_conversation([], {"text": "hi", "files": [FileData(), {"path": "/up/y.png"}]})
    assert messages == [{"role": "user", "content": [IMAGE, IMAGE, text("hi")]}]
    assert paths == ["/up/x.png", "/up/y.png"]
    assert to_janus_conversation(None, {"text": "hello", "files": []}) == (
        [{"role": "user", "content": [text("hello")]}],
        [],
    )


def test_empty_turns_status_bubbles_and_leading_assistant_are_dropped():
    history = [
        {"role": "assistant", "content": "Welcome!"},
        {"role": "user", "content": [text("Hi")]},
        {"role": "assistant", "content": "", "metadata": None},
        {"role": "assistant", "content": "thinking", "metadata": {"title": "Thinking"}},
    ]
    messages, _ = to_janus_conversation(history, {"text": "Again", "files": []})
    assert messages == [{"role": "user", "content": [text("Hi"), text("Again")]}]


def test_max_turns_keeps_the_newest_turns_and_their_images():
    history = []
    for i in range(5):
        history += [
            {"role": "user", "content": [{"path": f"/up/{i}.png"}, f"q{i}"]},
            {"role": "assistant", "content": f"a{i}"},
        ]
    messages, paths = to_janus_conversation(history, {"text": "last", "files": []}, max_turns=2)
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert messages[0]["content"][1] == text("q4")
    assert paths == ["/up/4.png"]
