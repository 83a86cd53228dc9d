"""The image scheduler: requests waiting together are drawn in one batch, each as it would be alone; one
request's Stop leaves the others whole; a request that does not fit waits for the next batch, first in line; each
image is handed over as it is decoded, and a Stop while decoding keeps those and decodes no more."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch
from PIL import Image
from support.requests import generate_image_tokens, image_request

from janus_demo.model import image_loop
from janus_demo.model.image_loop import ImageProgress, decode_images, encode_image
from janus_demo.service.model_lock import Heartbeat
from janus_demo.service.scheduler import ImageScheduler, Joined


def collect(scheduler, request, stop=None, stop_at=None, stop_when=None, items=None):
    """(items, final images or None): every item the scheduler yielded for `request` (appended to `items` as
    they come, when given); `stop` is set at step `stop_at`, or on the first progress for which `stop_when` is
    true."""
    stop = stop or threading.Event()
    items = [] if items is None else items
    for item in scheduler.draw(request, stop):
        items.append(item)
        if stop_at is not None and isinstance(item, ImageProgress) and item.step >= stop_at:
            stop.set()
        if stop_when is not None and isinstance(item, ImageProgress) and stop_when(item):
            stop.set()
    final = [i for i in items if isinstance(i, ImageProgress) and i.done]
    return items, (final[0].images if final else None)


def pixels(images):
    return [torch.tensor(list(image.getdata())) for image in images]


@pytest.fixture
def held(loaded_small):
    """A scheduler whose worker is held busy by a first request until `release` is set."""
    scheduler = ImageScheduler(loaded_small, max_rows=16)
    release = threading.Event()
    original = scheduler._draw

    def draw(batch):
        if not release.is_set():
            release.wait(60)
        original(batch)

    scheduler._draw = draw
    return scheduler, release


def waiting(scheduler, count):
    with scheduler._state:
        return len(scheduler._line) >= count


def test_requests_waiting_together_are_drawn_in_one_batch_as_they_would_be_alone(loaded_small, held):
    scheduler, release = held
    requests = [
        image_request(loaded_small, "a red fox", seed=1, num_images=2),
        image_request(loaded_small, "a lighthouse at dusk, oil on canvas", seed=2, guidance_scale=1.0),
        image_request(loaded_small, "cat", seed=3, temperature=0.5, top_p=0.8),
    ]
    first = image_request(loaded_small, "the first", seed=9)
    with ThreadPoolExecutor(4) as pool:
        busy = pool.submit(collect, scheduler, first)
        while scheduler.batches < 1:
            threading.Event().wait(0.01)
        heard = [[] for _ in requests]
        futures = [pool.submit(collect, scheduler, r, items=items) for r, items in zip(requests, heard, strict=True)]
        while not all(any(isinstance(i, Heartbeat) and i.waiting for i in items) for items in heard):
            threading.Event().wait(0.01)  # each has heard its place in line (a heartbeat comes every 0.25 s)
        assert waiting(scheduler, 3)
        release.set()
        results = [future.result(timeout=300) for future in futures]
        busy.result(timeout=300)
    assert scheduler.batches == 2 and scheduler.largest == 3
    for request, (items, images) in zip(requests, results, strict=True):
        assert any(isinstance(i, Heartbeat) and i.waiting and i.place >= 1 for i in items), "it waited in line"
        assert Joined(2) in items
        alone = generate_image_tokens(loaded_small, request)
        assert all(p.equal(q) for p, q in zip(pixels(images), pixels(decode_images(loaded_small, alone)), strict=True))


def test_a_stopped_request_leaves_its_batch_and_the_others_finish(loaded_small, held):
    scheduler, release = held
    keep = image_request(loaded_small, "a red fox", seed=1)
    stop_me = image_request(loaded_small, "a blue fox", seed=2, num_images=2)
    with ThreadPoolExecutor(3) as pool:
        busy = pool.submit(collect, scheduler, image_request(loaded_small, "first", seed=9))
        while scheduler.batches < 1:
            threading.Event().wait(0.01)
        kept = pool.submit(collect, scheduler, keep)
        stopped = pool.submit(collect, scheduler, stop_me, None, 5)
        while not waiting(scheduler, 2):
            threading.Event().wait(0.01)
        release.set()
        (_, kept_images), (stopped_items, stopped_images) = kept.result(timeout=300), stopped.result(timeout=300)
        busy.result(timeout=300)
    assert stopped_images is None and max(i.step for i in stopped_items if isinstance(i, ImageProgress)) < 64
    assert kept_images is not None and len(kept_images) == 1


def test_a_request_that_does_not_fit_waits_for_the_next_batch_first_in_line(loaded_small, held):
    scheduler, release = held
    scheduler.max_rows = 5
    big = image_request(loaded_small, "big", seed=1, num_images=2)  # 4 rows with guidance
    small = [  # 2 rows with guidance, 1 without
        image_request(loaded_small, "small 0", seed=0),
        image_request(loaded_small, "small 1", seed=1, guidance_scale=1.0),
    ]
    with ThreadPoolExecutor(4) as pool:
        busy = pool.submit(collect, scheduler, image_request(loaded_small, "first", seed=9))
        while scheduler.batches < 1:
            threading.Event().wait(0.01)
        order = [pool.submit(collect, scheduler, small[0])]
        while not waiting(scheduler, 1):
            threading.Event().wait(0.01)
        order.append(pool.submit(collect, scheduler, big))
        while not waiting(scheduler, 2):
            threading.Event().wait(0.01)
        order.append(pool.submit(collect, scheduler, small[1]))
        while not waiting(scheduler, 3):
            threading.Event().wait(0.01)
        release.set()
        results = [future.result(timeout=300) for future in order]
        busy.result(timeout=300)
    joined = [next(i for i in items if isinstance(i, Joined)) for items, _ in results]
    assert joined == [Joined(0), Joined(1), Joined(1)], "small 0 alone (big did not fit), then big with small 1"


def test_an_edit_is_batched_too(loaded_small, held):
    scheduler, release = held
    size = loaded_small.image_shape.size
    source = encode_image(loaded_small, Image.new("RGB", size, (200, 40, 40)))
    mask = torch.zeros(loaded_small.image_shape.tokens, dtype=torch.bool)
    mask[:16] = True
    edit = image_request(loaded_small, "a cat", seed=5, forced_tokens=source, forced_mask=mask)
    plain = image_request(loaded_small, "a dog", seed=6)
    with ThreadPoolExecutor(3) as pool:
        busy = pool.submit(collect, scheduler, image_request(loaded_small, "first", seed=9))
        while scheduler.batches < 1:
            threading.Event().wait(0.01)
        futures = [pool.submit(collect, scheduler, r) for r in (edit, plain)]
        while not waiting(scheduler, 2):
            threading.Event().wait(0.01)
        release.set()
        (_, edited), _ = (f.result(timeout=300) for f in futures)
        busy.result(timeout=300)
    alone = decode_images(loaded_small, generate_image_tokens(loaded_small, edit))
    assert all(p.equal(q) for p, q in zip(pixels(edited), pixels(alone), strict=True))


def test_requests_sent_at_the_same_moment_to_an_idle_model_are_drawn_together(loaded_small):
    """gradio hands a burst over one request at a time: the idle worker gathers it (up to its row cap) first."""
    scheduler = ImageScheduler(loaded_small, max_rows=8, gather_s=60.0)  # 4 guided images fill the cap at once
    requests = [image_request(loaded_small, f"fox {n}", seed=n) for n in range(4)]
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda request: collect(scheduler, request), requests))
    assert scheduler.batches == 1 and scheduler.largest == 4
    assert all(images is not None for _, images in results)


@pytest.mark.parametrize("together", [False, True], ids=["alone", "in-a-batch"])
def test_images_come_as_they_are_decoded_and_a_stop_while_decoding_decodes_no_more(loaded_small, monkeypatch, together):
    """Alone (the one-request loop) and in a batch (its other request still gets its image), decoded one group at
    a time (here of one image): the owner stops on the first; the second, being decoded then, still comes; the
    third is never decoded."""
    stop, calls = threading.Event(), []
    original = image_loop.decode_images

    def decode(loaded, tokens):  # the second group is under way when the Stop comes
        calls.append(tokens.shape[0])
        if len(calls) == 2:
            stop.wait(60)
        return original(loaded, tokens)

    monkeypatch.setattr(image_loop, "decode_images", decode)
    monkeypatch.setattr(image_loop, "DECODE_CHUNK", 1)
    scheduler = ImageScheduler(loaded_small, max_rows=4, gather_s=60.0 if together else 0.0)
    unguided = {"guidance_scale": 1.0, "preview_every": 0}
    stop_me = image_request(loaded_small, "a blue fox", seed=2, num_images=3, **unguided)  # 3 rows
    with ThreadPoolExecutor(2) as pool:
        stopped = pool.submit(collect, scheduler, stop_me, stop, None, lambda item: item.decoded)
        kept = None
        if together:  # second in line, so the first to decode is the stopped request
            while not waiting(scheduler, 1):
                threading.Event().wait(0.01)
            kept = pool.submit(collect, scheduler, image_request(loaded_small, "fox", seed=1, **unguided))
        items, images = stopped.result(timeout=300)
        kept_images = kept.result(timeout=300)[1] if kept else None
    decoded = [image for item in items if isinstance(item, ImageProgress) for image in item.decoded or ()]
    assert images is None and len(decoded) == 2 and calls[:2] == [1, 1], "a group at a time, the last never"
    if not together:  # (a batch's images are those drawn alone: the first test)
        alone = decode_images(loaded_small, generate_image_tokens(loaded_small, stop_me))
        assert all(p.equal(q) for p, q in zip(pixels(decoded), pixels(alone[:2]), strict=True)), "its first two"
    assert scheduler.largest == (2 if together else 1)
    assert calls[2:] == ([1] if together else []) and (kept_images is not None) == together
