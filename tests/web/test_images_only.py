"""Images-only mode: no Chat tab, no "Ask about this image", no /chat; images and /model_info work."""

import pytest
from support.service_calls import Backend
from support.serving import new_client, served

from janus_demo.model.loading import load_janus
from janus_demo.service.chat import IMAGES_ONLY
from janus_demo.service.errors import InputError
from janus_demo.web.demo import build_demo


@pytest.fixture(scope="module")
def images_only_backend(tiny_dir) -> Backend:
    return Backend(load_janus(str(tiny_dir), quantization="none", device="cpu", images_only=True))


def components(demo) -> dict[str, dict]:
    """Rendered components by elem_id."""
    found = {}
    for component in demo.config["components"]:
        props = component.get("props", {})
        if props.get("elem_id"):
            found[props["elem_id"]] = props
    return found


def api_names(demo) -> set[str]:
    return {dep.get("api_name") for dep in demo.config["dependencies"] if dep.get("api_name")}


def test_the_page_has_no_chat_when_the_backend_cannot_chat(images_only_backend, tiny_backend):
    lean, full = build_demo(images_only_backend), build_demo(tiny_backend)
    assert "tab-chat" not in components(lean) and "chat-input" not in components(lean)
    assert components(lean)["t2i-ask"]["visible"] is False
    assert "chat" not in api_names(lean) and {"generate_images", "model_info"} <= api_names(lean)
    assert "tab-chat" in components(full) and components(full)["t2i-ask"]["visible"] is not False
    assert "chat" in api_names(full)


def test_the_service_refuses_chat_in_images_only_mode(images_only_backend):
    assert not images_only_backend.can_chat
    with pytest.raises(InputError, match="only draws images"):
        images_only_backend.prepare_chat({"text": "Hello", "files": []}, [])
    assert "--images-only" in IMAGES_ONLY


@pytest.mark.slow
def test_served_images_only_app_draws_and_reports_it(images_only_backend):
    with served(images_only_backend) as (_, url):
        client = new_client(url)
        info = client.predict(api_name="/model_info")
        assert info["chat"] is False and info["lm_head"] == "not loaded"
        gallery, seed, status = client.predict("A red fox", 5, 5.0, 1.0, 1, 1.0, 0, "off", api_name="/generate_images")
        assert seed == 5 and status.startswith("Done") and len(gallery) == 1
