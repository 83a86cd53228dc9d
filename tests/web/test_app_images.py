"""/generate_images through gradio_client: seeds, previews before images, Stop, PNG metadata, bad input."""

import time

import pytest
from gradio_client.exceptions import AppError
from PIL import Image
from support.png import read_png_metadata

PROMPT = "A red fox in the snow"


def generate(client, prompt=PROMPT, seed=7, guidance_scale=5.0, temperature=1.0, num_images=1, **extra):
    job = client.submit(
        prompt, seed, guidance_scale, temperature, num_images, *extra_values(**extra), api_name="/generate_images"
    )
    job.result(timeout=180)
    return job.outputs()


def extra_values(top_p=1.0, preview_every=96, preview_mode="palette"):
    return [top_p, preview_every, preview_mode]


def final_paths(outputs):
    gallery, seed, status = outputs[-1]
    assert status.startswith("Done"), status
    return [item["image"] for item in gallery], seed


def pixels(path):
    return Image.open(path).convert("RGB").tobytes()


def test_same_seed_same_images_other_seed_other_images_and_images_of_a_request_differ(client):
    first, seed = final_paths(generate(client, seed=7, num_images=2))
    again, _ = final_paths(generate(client, seed=7, num_images=2))
    other, _ = final_paths(generate(client, seed=8, num_images=1))
    assert seed == 7 and len(first) == 2
    assert [pixels(p) for p in first] == [pixels(p) for p in again]
    assert pixels(first[0]) != pixels(first[1])
    assert pixels(other[0]) != pixels(first[0])
    assert Image.open(first[0]).size == (384, 384)


def test_previews_arrive_before_the_final_images(client):
    outputs = generate(client, preview_every=96)
    galleries = [gallery for gallery, _, _ in outputs if isinstance(gallery, list)]  # else a progress-only update
    statuses = [status for _, _, status in outputs if isinstance(status, str)]  # else a progress-only update
    assert len(galleries) >= 4, "previews at steps 96..480, then the final images"
    assert any(s.startswith("Step ") and "steps/s" in s for s in statuses)
    assert len({pixels(g[0]["image"]) for g in galleries}) == len(galleries), "each preview shows more"


def test_random_seed_is_reported_and_reproduces(client):
    images, seed = final_paths(generate(client, seed=-1, preview_mode="off"))
    assert 0 <= seed < 2**32
    again, _ = final_paths(generate(client, seed=seed, preview_mode="off"))
    assert pixels(images[0]) == pixels(again[0])


def test_png_carries_prompt_seed_and_settings(client, loaded_tiny):
    images, _ = final_paths(
        generate(client, prompt="Ein Fuchs im Schnee 🦊", seed=5, guidance_scale=3.5, temperature=0.8)
    )
    meta = read_png_metadata(images[0])
    assert meta["prompt"] == "Ein Fuchs im Schnee 🦊"
    assert meta["seed"] == "5" and float(meta["guidance_scale"]) == 3.5 and float(meta["temperature"]) == 0.8
    assert meta["model"] == loaded_tiny.model_id


def test_cancel_stops_generation_within_a_step(client, tiny_backend):
    job = client.submit(PROMPT, 3, 5.0, 1.0, 4, 1.0, 24, "palette", api_name="/generate_images")
    deadline = time.monotonic() + 60
    while len(job.outputs()) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert tiny_backend.lock.busy
    job.cancel()
    start = time.monotonic()
    while tiny_backend.lock.busy and time.monotonic() - start < 5:
        time.sleep(0.02)
    assert not tiny_backend.lock.busy
    assert time.monotonic() - start < 5


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
def test_bad_parameters_get_a_clear_message(client, args, field):
    with pytest.raises(AppError) as caught:
        client.predict(*args, api_name="/generate_images")
    assert field in str(caught.value)
