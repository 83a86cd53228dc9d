"""The served app through gradio_client: /chat streams answers, remembers turns; /model_info is right."""

from pathlib import Path

from gradio_client import handle_file

ASSETS = Path(__file__).resolve().parents[2] / "assets"
CAT, COFFEE = str(ASSETS / "chelsea.png"), str(ASSETS / "coffee.png")


def ask(client, text, files=(), **settings):
    """Submit to /chat and return every streamed (answer, status) pair."""
    message = {"text": text, "files": [handle_file(f) for f in files]}
    job = client.submit(message, *settings_values(**settings), api_name="/chat")
    job.result(timeout=120)
    return job.outputs()


def settings_values(max_new_tokens=24, temperature=0.0, top_p=0.95, seed=42):
    return [max_new_tokens, temperature, top_p, seed]


def final_answer(outputs):
    answer, status = outputs[-1]
    return answer, status


def test_chat_streams_an_answer_about_one_image(client):
    outputs = ask(client, "What is in this picture?", [CAT])
    answer, status = final_answer(outputs)
    assert answer.strip()
    assert len({a for a, _ in outputs if a}) > 1, "the answer should arrive in several pieces"
    assert "tokens/s" in status


def test_chat_with_two_images(client):
    answer, status = final_answer(ask(client, "Compare these.", [CAT, COFFEE]))
    assert answer.strip() and "tokens/s" in status


def test_chat_text_only(client):
    answer, _ = final_answer(ask(client, "Tell me a story."))
    assert answer.strip()


def test_follow_up_sees_the_earlier_turn(client, monkeypatch):
    from janus_demo.service import chat

    seen = []
    original = chat.prepare_chat

    def spy(backend, message, history=None, *args, **kwargs):
        seen.append(history)
        return original(backend, message, history, *args, **kwargs)

    monkeypatch.setattr(chat, "prepare_chat", spy)
    first, _ = final_answer(ask(client, "What animal is this?", [CAT]))
    final_answer(ask(client, "What colour is it?"))
    earlier = seen[-1]
    assert [m["role"] for m in earlier] == ["user", "assistant"]
    assert "What animal is this?" in str(earlier[0]["content"])
    assert first.strip() in str(earlier[1]["content"])


def test_model_info_matches_the_loaded_model(client, loaded_small):
    info = client.predict(api_name="/model_info")
    assert info["model_id"] == loaded_small.model_id
    assert info["device"] == "cpu" and info["dtype"] == "float32"
    assert info["quantization"] == "none" and info["quantized_layers"] == 0
    assert info["footprint_bytes"] == loaded_small.model.get_memory_footprint()
    assert info["random_weights"] is True
