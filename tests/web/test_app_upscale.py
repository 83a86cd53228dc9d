"""Upscale 2x through the served app: /upscale and the button exist only with an upscaler; the result is 2x,
keeps the PNG's text and adds an "upscaled" note; bad images are refused naming the field; Stop works.

The app is a FakeBackend (real checks and model lock) given a real, tiny random-weight upscaler.
"""

import json
import pickle
import re
import threading
import urllib.request

import httpx
import pytest
from gradio_client import handle_file
from gradio_client.exceptions import AppError
from PIL import Image
from support import ROOT
from support.fake_backend import FakeBackend
from support.png import read_png_metadata, save_png
from support.raw_api import fn_index, raw_call
from support.serving import image_args, new_client

from janus_demo.service.errors import FieldError
from janus_demo.service.model_lock import Heartbeat
from janus_demo.service.upscale import Upscaling, upscaling_text


def config(url):
    with urllib.request.urlopen(f"{url.rstrip('/')}/config") as response:
        return json.load(response)


def buttons(url):
    return [c["props"].get("value") for c in config(url)["components"] if c["type"] in ("button", "downloadbutton")]


def test_with_an_upscaler_the_api_upscales_2x_and_keeps_the_metadata(upscaling, tmp_path):
    client = new_client(upscaling.url, tmp_path / "downloads")
    api = client.view_api(return_format="dict", print_info=False)["named_endpoints"]["/upscale"]
    assert [p["parameter_name"] for p in api["parameters"]] == ["image"]
    assert api["description"].startswith("Enlarge an image 2x") and len(api["returns"]) == 2
    assert buttons(upscaling.url).count("Upscale 2x") == 2  # under Text to image's results and the Edit tab's
    # a real result of /generate_images, prompt and seed in its PNG
    gallery, seed, _ = client.predict("A red fox", *image_args(seed=5), api_name="/generate_images")
    source = gallery[0]["image"]
    path, status = client.predict(handle_file(source), api_name="/upscale")
    assert Image.open(path).size == (768, 768) and path.endswith("janus-5-1-2x.png")
    metadata = read_png_metadata(path)
    assert metadata["prompt"] == "A red fox" and metadata["seed"] == "5"
    assert metadata["upscaled"].startswith("2x from 384x384 with ")
    assert status.startswith("Upscaled 384×384 → 768×768 in ")
    client.close()


def test_bad_images_are_refused_naming_the_field(upscaling, tmp_path):
    client, entered = new_client(upscaling.url), upscaling.lock.entered
    (tmp_path / "notes.png").write_text("not an image")
    Image.new("RGB", (1100, 20)).save(tmp_path / "wide.png")
    for file, message in [
        ("notes.png", "Image: "),
        ("wide.png", "Image is 1100x20 pixels; upscaling takes at most 1024"),
    ]:
        with pytest.raises(AppError, match=message):
            client.predict(handle_file(str(tmp_path / file)), api_name="/upscale")
    forged = {"path": "/etc/passwd", "meta": {"_type": "gradio.FileData"}}
    try:  # a server file it was never sent: gradio refuses it before our code runs
        completed, _ = raw_call(upscaling.url, fn_index(upscaling.url, "upscale"), [forged])
    except httpx.HTTPStatusError as refused:
        assert refused.response.status_code == 400
    else:
        assert not completed["success"] and "root:" not in json.dumps(completed)
    with pytest.raises(FieldError, match="Image is missing: upload an image file") as refused:
        upscaling.prepare_upscale(None)
    assert refused.value.field == "image" and upscaling.lock.entered == entered, "refused before the model lock"
    client.close()


def test_a_data_url_works_and_stop_ends_a_run(upscaling, tmp_path):
    import base64

    save_png(Image.new("RGB", (40, 30), (9, 99, 199)), tmp_path / "small.png", {"note": "kept"})
    url = "data:image/png;base64," + base64.b64encode((tmp_path / "small.png").read_bytes()).decode()
    prepared = upscaling.prepare_upscale(url)
    assert prepared.name == "image" and prepared.metadata == {"note": "kept"}
    results = [item for item in upscaling.run_upscale(prepared) if hasattr(item, "image")]
    assert results[0].image.size == (80, 60) and results[0].image.info["note"] == "kept"
    # on ZeroGPU the prepared request and the result are pickled across the worker's process boundary
    assert pickle.loads(pickle.dumps(results[0])).image.tobytes() == results[0].image.tobytes()
    assert pickle.loads(pickle.dumps(prepared)).metadata == {"note": "kept"}
    stop = threading.Event()
    stop.set()
    assert [item for item in upscaling.run_upscale(prepared, stop) if hasattr(item, "image")] == []


def test_an_upscale_says_how_far_it_is_after_each_block(upscaling, tmp_path):
    save_png(Image.new("RGB", (40, 30), "teal"), tmp_path / "small.png", {})
    prepared = upscaling.prepare_upscale(str(tmp_path / "small.png"))
    items = [item for item in upscaling.run_upscale(prepared) if not isinstance(item, Heartbeat)]
    assert [type(item).__name__ for item in items] == ["Upscaling", "Upscaling", "Upscaled"]  # start, one block
    assert items[0].done == 0 and 0 < items[1].done < 1
    assert upscaling_text(items[0]) == "Upscaling…"
    assert upscaling_text(Upscaling(0.25, 3.0)) == "Upscaling 25% · 3.0 s · about 9 s left"


def test_without_an_upscaler_neither_the_button_nor_the_endpoint_exists(loaded_tiny):
    """The app's config (what /config serves) has no Upscale 2x button and no /upscale endpoint."""
    from janus_demo.web.demo import build_demo

    backend = FakeBackend(loaded_tiny)
    config = build_demo(backend).get_config_file()
    names = {d.get("api_name") for d in config["dependencies"] if d.get("api_visibility") == "public"}
    assert names == {"chat", "generate_images", "complete_image", "redraw_region", "variations", "model_info"}
    labels = [c["props"].get("value") for c in config["components"] if c["type"] == "button"]
    assert "Upscale 2x" not in labels and "Generate" in labels
    with pytest.raises(Exception, match="no upscaler"):
        backend.prepare_upscale("anything.png")


def test_the_readme_example_runs(upscaling, monkeypatch, capsys):
    """The README's Upscale 2x section: its gradio_client example, against this app."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = re.search(r"^## Upscale 2x \(optional\)\n(.*?)(?=^## )", readme, re.MULTILINE | re.DOTALL).group(1)
    snippets = re.findall(r"```python\n(.*?)```", section, re.DOTALL)
    assert len(snippets) == 1 and 'api_name="/upscale"' in snippets[0]
    monkeypatch.chdir(ROOT)
    exec(compile(snippets[0].replace("http://127.0.0.1:7860/", upscaling.url), "README.md", "exec"), {})
    assert "\nUpscaled 451×300 → 902×600 in " in capsys.readouterr().out


@pytest.mark.parametrize(
    "source",
    [None, "owner/real-esrgan:weights/RealESRGAN_x2plus.pth"],
    ids=["local file", "hub id"],
)
def test_the_metadata_names_the_checkpoint_by_its_file_name_only(upscaling, monkeypatch, tmp_path, source):
    """An upscaled PNG said "2x from 384x384 with /srv/.../x2.pth": the server's folders, in every download."""
    if source:
        monkeypatch.setattr(upscaling.upscaler, "source", source)
    expected = "RealESRGAN_x2plus.pth" if source else "tiny-x2.pth"
    save_png(Image.new("RGB", (384, 384), "teal"), tmp_path / "teal.png", {"prompt": "teal"})
    client = new_client(upscaling.url, tmp_path / "downloads")

    path, _ = client.predict(handle_file(str(tmp_path / "teal.png")), api_name="/upscale")

    note = read_png_metadata(path)["upscaled"]
    assert note == f"2x from 384x384 with {expected}", note
    assert "/" not in note and ":" not in note.removeprefix("2x from 384x384 with ")
    client.close()
