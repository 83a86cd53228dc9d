"""The served app's attack surface: no queue bypass, no monitoring page, capped uploads, no leaked internals.

Measured: every queued endpoint refuses POST /gradio_api/run/<name> (404) and the model is never entered;
/monitoring answers 403; a 20 MB + 1 byte upload is refused with 413 and not stored; an internal error
(FileNotFoundError naming a server path) reaches the client as the generic message, logged on the server.
"""

import logging

import httpx
import pytest
from gradio_client.exceptions import AppError
from support.raw_api import fn_index, raw_call
from support.serving import chat_args, chat_message, image_args, new_client

from janus_demo.web.messages import GENERIC_MESSAGE

MAX_UPLOAD_BYTES = 20 * 1024 * 1024  # Settings().max_file_size = "20mb"
LEAK_MARKERS = ("/secret", "weights.safetensors", "Traceback", "FileNotFoundError", 'File "')


def queued_endpoints(url):
    """api_name of every dependency that runs through the queue."""
    config = httpx.get(url + "config", timeout=10).json()
    return [d["api_name"] for d in config["dependencies"] if d.get("queue") is not False and d.get("api_name")]


def test_every_queued_endpoint_refuses_direct_post(app_url, tiny_backend):
    names = queued_endpoints(app_url)
    assert {"chat", "generate_images"} <= set(names)
    entered = tiny_backend.entered
    for name in names:
        for route in ("run", "api"):
            response = httpx.post(f"{app_url}gradio_api/{route}/{name}", json={"data": []}, timeout=10)
            assert response.status_code == 404, (route, name, response.status_code)
            assert "join the queue" in response.text
    body = {"data": [{"text": "hi", "files": []}, *chat_args()]}
    assert httpx.post(f"{app_url}gradio_api/run/chat", json=body, timeout=10).status_code == 404
    assert tiny_backend.entered == entered


@pytest.mark.parametrize("path", ["monitoring", "monitoring/summary", "gradio_api/monitoring"])
def test_monitoring_is_not_served(app_url, path):
    response = httpx.get(app_url + path, timeout=10)
    assert response.status_code in (403, 404)
    assert "Monitoring is not enabled" in response.text or response.status_code == 404


def test_upload_over_max_file_size_is_refused(app_url):
    too_big = b"\x89PNG" + b"\0" * (MAX_UPLOAD_BYTES - 3)
    response = httpx.post(app_url + "gradio_api/upload", files={"files": ("big.png", too_big, "image/png")}, timeout=30)
    assert response.status_code == 413
    assert "maximum allowed size" in response.text
    small = httpx.post(app_url + "gradio_api/upload", files={"files": ("ok.png", b"\0" * 64, "image/png")}, timeout=10)
    assert small.status_code == 200


def assert_no_leak(text):
    for marker in LEAK_MARKERS:
        assert marker not in text, f"{marker!r} reached the client: {text[:300]}"


def test_an_internal_chat_error_shows_only_the_generic_message(fake, tmp_path, caplog):
    fake.fail_seeds = lambda seed: True
    client = new_client(fake.url, tmp_path)
    with caplog.at_level(logging.ERROR, logger="janus_demo"):
        job = client.submit(chat_message("hello"), *chat_args(), api_name="/chat")
        with pytest.raises(AppError) as raised:
            job.result(timeout=30)
    client.close()
    assert str(raised.value) == GENERIC_MESSAGE
    assert_no_leak(str(raised.value))
    assert "/secret/path" in caplog.text, "the real error is logged on the server"


def test_an_internal_image_error_shows_only_the_generic_message(fake, tmp_path):
    fake.fail_seeds = lambda seed: True
    client = new_client(fake.url, tmp_path)
    job = client.submit("a red fox", *image_args(), api_name="/generate_images")
    with pytest.raises(AppError) as raised:
        job.result(timeout=30)
    client.close()
    assert str(raised.value) == GENERIC_MESSAGE
    assert_no_leak(str(raised.value))


@pytest.mark.parametrize("api_name", ["chat", "generate_images"])
def test_the_raw_event_stream_carries_no_path_or_traceback(fake, api_name):
    fake.fail_seeds = lambda seed: True
    fake.error = lambda seed: RuntimeError('Traceback (most recent call last):\n  File "/secret/path/x.py", line 1')
    data = [{"text": "hi", "files": []}, *chat_args()] if api_name == "chat" else ["a fox", *image_args()]
    completed, stream = raw_call(fake.url, fn_index(fake.url, api_name), data)
    assert completed["success"] is False
    assert completed["output"]["error"] == GENERIC_MESSAGE
    assert_no_leak(stream)
