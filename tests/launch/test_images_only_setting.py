"""--images-only and its environment twin reach load_janus."""

from janus_demo.launch import server
from janus_demo.launch.settings import parse_settings


def test_images_only_flag_and_variable(monkeypatch):
    monkeypatch.delenv("JANUS_IMAGES_ONLY", raising=False)
    assert parse_settings([]).images_only is False
    assert parse_settings(["--images-only"]).images_only is True
    monkeypatch.setenv("JANUS_IMAGES_ONLY", "yes")
    assert parse_settings([]).images_only is True
    assert parse_settings(["--no-images-only"]).images_only is False


def test_the_server_loads_images_only_when_asked(monkeypatch, loaded_tiny):
    seen = {}

    def fake_load(model, quantization, device, dtype, images_only):
        seen.update(model=model, images_only=images_only)
        return loaded_tiny

    monkeypatch.setattr(server, "load_janus", fake_load)
    backend = server.load_backend_or_exit(parse_settings(["--model", "tiny", "--images-only"]))
    assert seen == {"model": "tiny", "images_only": True} and backend.loaded is loaded_tiny
