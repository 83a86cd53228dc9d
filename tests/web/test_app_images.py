"""/generate_images through gradio_client: seeds, previews before images, Stop, PNG metadata, bad input, and the
fields' ranges following the model's grid. On the app around the 8x8 tiny model (64 steps an image, 128 px),
Stop on the one around Janus-Pro's 24x24 grid."""

import time

import httpx
import pytest
from gradio_client.exceptions import AppError
from PIL import Image
from support.meters import ModelUseCounter, wait_until
from support.png import read_png_metadata
from support.serving import close_all, new_client

PROMPT = "A red fox in the snow"


def generate(client, prompt=PROMPT, seed=7, guidance_scale=5.0, temperature=1.0, num_images=1, **extra):
    job = client.submit(
        prompt, seed, guidance_scale, temperature, num_images, *extra_values(**extra), api_name="/generate_images"
    )
    job.result(timeout=180)
    return job.outputs()


def extra_values(top_p=1.0, preview_every=8, preview_mode="palette"):
    return [top_p, preview_every, preview_mode]


def final_paths(outputs):
    gallery, seed, status = outputs[-1]
    assert status.startswith("Done"), status
    return [item["image"] for item in gallery], seed


def pixels(path):
    return Image.open(path).convert("RGB").tobytes()


def test_same_seed_same_images_other_seed_other_images_and_images_of_a_request_differ(small_client):
    first, seed = final_paths(generate(small_client, seed=7, num_images=2))
    again, _ = final_paths(generate(small_client, seed=7, num_images=2))
    other, _ = final_paths(generate(small_client, seed=8, num_images=1))
    assert seed == 7 and len(first) == 2
    assert [pixels(p) for p in first] == [pixels(p) for p in again]
    assert pixels(first[0]) != pixels(first[1])
    assert pixels(other[0]) != pixels(first[0])
    assert Image.open(first[0]).size == (128, 128), "the model's own image size"


def test_previews_arrive_before_the_final_images(small_client):
    outputs = generate(small_client, preview_every=8)
    galleries = [gallery for gallery, _, _ in outputs if isinstance(gallery, list)]  # else a progress-only update
    statuses = [status for _, _, status in outputs if isinstance(status, str)]  # else a progress-only update
    assert len(galleries) >= 4, "previews at steps 8..56, then the final images"
    assert any(s.startswith("Step ") and "/64 · " in s and "steps/s" in s for s in statuses)
    assert any(s.startswith("Done: 64 tokens × 1 image") for s in statuses)
    assert len({pixels(g[0]["image"]) for g in galleries}) == len(galleries), "each preview shows more"


def test_random_seed_is_reported_and_reproduces(small_client):
    images, seed = final_paths(generate(small_client, seed=-1, preview_mode="off"))
    assert 0 <= seed < 2**32
    again, _ = final_paths(generate(small_client, seed=seed, preview_mode="off"))
    assert pixels(images[0]) == pixels(again[0])


def test_png_carries_prompt_seed_and_settings(small_client, loaded_small):
    images, _ = final_paths(
        generate(small_client, prompt="Ein Fuchs im Schnee 🦊", seed=5, guidance_scale=3.5, temperature=0.8)
    )
    meta = read_png_metadata(images[0])
    assert meta["prompt"] == "Ein Fuchs im Schnee 🦊"
    assert meta["seed"] == "5" and float(meta["guidance_scale"]) == 3.5 and float(meta["temperature"]) == 0.8
    assert meta["model"] == loaded_small.model_id


def test_the_widgets_and_checks_follow_the_models_grid(small_url, small_client):
    """The 8x8 model's app offers and accepts previews up to 64 tokens apart and 1-7 kept rows, labels its crop
    128x128, and refuses one beyond, naming the field."""
    shown = {}
    for component in httpx.get(small_url + "config", timeout=10).json()["components"]:
        shown.setdefault(component["props"].get("elem_id"), component["props"])
    assert shown["field-preview_every"]["maximum"] == shown["edit-field-preview_every"]["maximum"] == 64
    assert (shown["edit-field-keep_rows"]["maximum"], shown["edit-field-keep_rows"]["value"]) == (7, 4)
    assert shown["edit-crop"]["label"] == "The crop used (128×128)"
    final_paths(generate(small_client, preview_every=64))
    with pytest.raises(AppError, match="Preview every must be a whole number between 0 and 64"):
        small_client.predict(PROMPT, 1, 5.0, 1.0, 1, 1.0, 65, "palette", api_name="/generate_images")


def test_cancel_stops_generation_within_a_step(tiny_url, tiny_backend, loaded_tiny):
    """On the real grid, where a cancel after the first previews leaves most of the 576 steps to run."""
    client = new_client(tiny_url)
    job = client.submit(PROMPT, 3, 5.0, 1.0, 4, 1.0, 24, "palette", api_name="/generate_images")
    deadline = time.monotonic() + 60
    while len(job.outputs()) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert tiny_backend.busy
    counter = ModelUseCounter(loaded_tiny.model.model.language_model)  # one call per step of the batch
    try:
        job.cancel()
        wait_until(lambda: not tiny_backend.busy, timeout=120)
    finally:
        counter.remove()
        close_all([client])
    print(f"\n[cancel] {counter.calls} steps ran after the cancel")
    assert counter.calls < 576 // 2, f"{counter.calls} of 576 steps ran after the cancel: it did not stop the work"


@pytest.mark.parametrize(
    "args, field",
    [
        (("", 1, 5.0, 1.0, 1), "Prompt"),
        ((PROMPT, 1, 1e308, 1.0, 1), "Guidance scale"),
        ((PROMPT, 1, 5.0, -1.0, 1), "Temperature"),
        ((PROMPT, 1, 5.0, 1.0, 17), "Number of images"),
        ((PROMPT, 1.5, 5.0, 1.0, 1), "Seed"),
    ],
)
def test_bad_parameters_get_a_clear_message(small_client, args, field):
    with pytest.raises(AppError) as caught:
        small_client.predict(*args, api_name="/generate_images")
    assert field in str(caught.value)
