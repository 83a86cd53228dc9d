"""Failing requests never hang, never take others down, and never stop the app from serving.

Measured (printed with -s): 64 requests from 8 users (32 chat, 32 images), every odd seed raising inside the
model work (errors naming server paths, or out-of-memory): each gets its answer or the right clean error within
the timeout, 32 + 32, and the app answers normally afterwards with the model lock free.
"""

import time
from concurrent.futures import ThreadPoolExecutor

import torch
from gradio_client.exceptions import AppError
from support.meters import lock_idle, wait_until
from support.serving import chat_args, chat_message, close_all, image_args, new_client

from janus_demo.service.model_lock import OOM_MESSAGE
from janus_demo.web.messages import GENERIC_MESSAGE

REQUESTS, USERS = 64, 8  # 200 showed nothing 64 does not, at three times the CPU


def failure_for(seed):
    """The error an odd seed raises in the model work, and the message the client must see.

    Mostly internal errors naming server paths (hidden behind the generic message); one in ten is out of memory
    (explained; rarer because its handler runs a full garbage collection).
    """
    if seed % 40 < 4:
        return torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB"), OOM_MESSAGE
    if seed % 8 < 4:
        return FileNotFoundError("/secret/path/weights.safetensors"), GENERIC_MESSAGE
    return RuntimeError("shape mismatch in /secret/path/modeling.py"), GENERIC_MESSAGE


def run_one(client, seed):
    """('ok' | 'error', as expected?) for one request: chat for seeds 0, 1 mod 4, images for 2, 3 mod 4."""
    try:
        if seed % 4 < 2:
            answer, _ = client.predict(chat_message(f"q{seed}"), *chat_args(seed=seed), api_name="/chat")
            return "ok", answer == f"seed={seed} xxxx"
        job = client.submit("a fox", *image_args(seed=seed), api_name="/generate_images")
        gallery, seed_used, _ = job.result(timeout=30)
        return "ok", seed_used == seed and len(gallery) == 1
    except AppError as error:
        return "error", str(error) == failure_for(seed)[1]


def run_user(url, seeds):
    client = new_client(url)  # no downloads: only the answers matter here
    try:
        return [(seed, *run_one(client, seed)) for seed in seeds]
    finally:
        client.close()


def test_64_requests_half_failing_all_end_cleanly(fake, tmp_path):
    fake.fail_seeds = lambda seed: seed % 2 == 1
    fake.error = lambda seed: failure_for(seed)[0]
    start = time.monotonic()
    with ThreadPoolExecutor(max_workers=USERS) as pool:
        batches = [range(user, REQUESTS, USERS) for user in range(USERS)]
        per_user = pool.map(lambda seeds: run_user(fake.url, seeds), batches)
        results = [row for rows in per_user for row in rows]
    elapsed = time.monotonic() - start
    assert sorted(seed for seed, _, _ in results) == list(range(REQUESTS))
    assert all(as_expected for _, _, as_expected in results), [r for r in results if not r[2]][:5]
    outcomes = [outcome for _, outcome, _ in results]
    assert outcomes.count("ok") == REQUESTS // 2 and outcomes.count("error") == REQUESTS // 2
    wait_until(lambda: lock_idle(fake), timeout=60)
    assert fake.lock.max_active == 1

    after = new_client(fake.url, tmp_path / "after")
    assert after.predict(chat_message("still there?"), *chat_args(seed=2), api_name="/chat")[0] == "seed=2 xxxx"
    close_all([after])
    half = REQUESTS // 2
    print(f"\n[hardening] {REQUESTS} requests, half failing: {half} answered + {half} clean errors in {elapsed:.1f} s")
