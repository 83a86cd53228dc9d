"""Many visitors, one model, through the served app (the 8x8 tiny model): visitors asking at once are drawn in
one batch, each as it would be alone; a chat is answered while images are drawn; one visitor's Stop leaves the
others' images whole. Speed itself is `benchmarks/bench_serving.py`'s (docs/benchmarks.md)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from PIL import Image
from support.meters import wait_until
from support.scheduling import holding, paused_at_step, running, waiting
from support.serving import chat_args, chat_message, close_all, image_args, new_client


@pytest.fixture
def held(small_backend):
    """The scheduler holds its next batch until `release` is set."""
    with holding(small_backend.scheduler) as release:
        yield small_backend.scheduler, release


def pixels(path) -> list:
    return list(Image.open(path).convert("RGB").getdata())


def draw(url, folder, seed, **settings) -> list:
    client = new_client(url, folder)
    try:
        gallery, *_ = client.predict("a red fox", *image_args(seed=seed, **settings), api_name="/generate_images")
        return [item["image"] for item in gallery]
    finally:
        client.close()


def test_four_visitors_at_once_are_drawn_in_one_batch_each_as_alone(small_url, held, tmp_path):
    scheduler, release = held
    largest = scheduler.largest
    with ThreadPoolExecutor(5) as pool:
        first = pool.submit(draw, small_url, tmp_path / "first", 100)
        wait_until(lambda: running(scheduler) == 1, timeout=120)  # the model is busy with it ...
        visitors = [pool.submit(draw, small_url, tmp_path / f"v{n}", n) for n in range(1, 5)]
        wait_until(lambda: waiting(scheduler, 4), timeout=120)  # ... while four visitors ask at once
        release.set()
        first.result(timeout=300)
        together = [future.result(timeout=300) for future in visitors]
    assert scheduler.largest == max(largest, 4), "the four were drawn in one batch"
    for n, paths in enumerate(together, start=1):
        alone = draw(small_url, tmp_path / f"alone{n}", n)
        assert [pixels(p) for p in paths] == [pixels(p) for p in alone], f"visitor {n} got other images in the batch"


def test_a_chat_is_answered_while_images_are_drawn(small_url, small_backend, tmp_path, monkeypatch):
    """The 16-image job waits after step 8 until the chat has said something (at most 120 s): with images
    holding the model, as before the scheduler, the chat could not start and the job would end first."""
    answered, during = paused_at_step(monkeypatch, 8)  # the 16 images wait there until the chat has answered
    painter, talker = new_client(small_url, tmp_path / "p"), new_client(small_url, tmp_path / "t")
    job = painter.submit("a red fox", *image_args(seed=3, num_images=16), api_name="/generate_images")
    wait_until(lambda: running(small_backend.scheduler) == 1, timeout=120)
    chat = talker.submit(chat_message("hello"), *chat_args(max_new_tokens=8), api_name="/chat")
    wait_until(lambda: any(output[0] for output in chat.outputs()), timeout=120)
    answered.set()
    chat.result(timeout=120)
    gallery, *_ = job.result(timeout=300)
    close_all([painter, talker])
    assert during == [True], "the chat's first words came while the 16 images were being drawn"
    assert len(gallery) == 16


def test_one_visitors_stop_leaves_the_others_images_whole(small_url, held, tmp_path):
    scheduler, release = held
    keeper, stopper = new_client(small_url, tmp_path / "k"), new_client(small_url, tmp_path / "s")
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(draw, small_url, tmp_path / "first", 100)
        wait_until(lambda: running(scheduler) == 1, timeout=120)
        kept = keeper.submit("a red fox", *image_args(seed=5, num_images=2), api_name="/generate_images")
        stopped = stopper.submit("a blue fox", *image_args(seed=6, num_images=2), api_name="/generate_images")
        wait_until(lambda: waiting(scheduler, 2), timeout=120)
        release.set()
        wait_until(lambda: running(scheduler) == 2, timeout=120)  # the two are drawn together
        stopped.cancel()
        gallery, *_ = kept.result(timeout=300)
        first.result(timeout=300)
    close_all([keeper, stopper])
    alone = draw(small_url, tmp_path / "alone", 5, num_images=2)
    assert [pixels(item["image"]) for item in gallery] == [pixels(p) for p in alone]
