"""Stop, cancel and vanished clients end the work itself, never let two runs share the model, and free it fast.

Measured (printed with -s): 20 submit-then-cancel rounds per endpoint (each its own Client, cancelled while
queued, at the first steps or mid-run, without waiting for the previous cancel to land): max_active 1, the
model lock free within 2 s of the last cancel, the next request answered. Cancel and a dropped connection stop
the fake's token/step counter within 1 s.
"""

import json
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from support.meters import lock_idle, wait_until
from support.raw_api import fn_index, raw_join
from support.serving import chat_args, chat_message, close_all, image_args, new_client

from janus_demo.service.model_lock import Heartbeat, ModelLock

ROUNDS = 20
LONG = 2000  # tokens of a chat that would run ~20 s if nothing stopped it


def submit(client, api_name, seed=1):
    if api_name == "chat":
        return client.submit(chat_message(f"round {seed}"), *chat_args(LONG, seed=seed), api_name="/chat")
    return client.submit("a fox", *image_args(seed=seed), api_name="/generate_images")


def raw_data(api_name):
    if api_name == "chat":
        return [{"text": "hi", "files": []}, *chat_args(LONG)]
    return ["a fox", *image_args()]


def wait_joined(job, timeout=10):
    """Wait until the server has given the job its event id (a cancel sent before that cannot name it)."""
    wait_until(lambda: job.communicator.event_id is not None, timeout)


def last_growth_after(fake, start, window=2.0):
    """Watch `fake.produced` for `window` s from `start`; return the seconds after `start` of its last increase."""
    last_value, last_change = fake.produced, 0.0
    while time.monotonic() - start < window:
        if fake.produced != last_value:
            last_value, last_change = fake.produced, time.monotonic() - start
        time.sleep(0.005)
    return last_change


@pytest.fixture
def slow_fake(fake):
    """10 ms per token or step, image generation long enough to cancel."""
    fake.reset(token_delay=0.01, step_delay=0.01)
    fake.image_steps = LONG
    return fake


@pytest.mark.parametrize("api_name", ["chat", "generate_images"])
def test_20_submit_then_cancel_rounds(slow_fake, api_name, tmp_path):
    fake, clients, cancels = slow_fake, [], []
    with ThreadPoolExecutor(max_workers=4) as pool:  # cancels land while the next rounds are submitted
        for n in range(ROUNDS):
            client = new_client(fake.url, tmp_path / str(n))
            clients.append(client)
            job = submit(client, api_name, seed=n)
            wait_joined(job)
            time.sleep((0.0, 0.05, 0.2)[n % 3])  # queued / first steps / mid-run
            last_cancel = time.monotonic()
            cancels.append(pool.submit(job.cancel))
        for cancel in cancels:
            cancel.result(timeout=10)
    wait_until(lambda: lock_idle(fake), timeout=5.0)
    freed = time.monotonic() - last_cancel
    assert freed < 5.0
    assert fake.lock.max_active == 1 and fake.max_inside == 1
    entered = fake.lock.entered

    fake.reset()
    answer = new_client(fake.url, tmp_path / "after")
    clients.append(answer)
    if api_name == "chat":
        reply, status = answer.predict(chat_message("after"), *chat_args(seed=5), api_name="/chat")
        assert reply == "seed=5 xxxx" and "max tokens reached" in status
    else:
        gallery, seed_used, status = answer.predict("a fox", *image_args(seed=5), api_name="/generate_images")
        assert len(gallery) == 1 and seed_used == 5 and status.startswith("Done")
    close_all(clients)
    print(
        f"\n[hardening] {ROUNDS} cancel rounds on /{api_name} ({entered} reached the model): max_active 1,"
        f" model lock free {freed:.2f} s after the last cancel, next request answered"
    )


@pytest.mark.parametrize("api_name", ["chat", "generate_images"])
def test_cancel_stops_the_work_within_a_second(slow_fake, api_name, tmp_path):
    client = new_client(slow_fake.url, tmp_path)
    job = submit(client, api_name)
    wait_until(lambda: slow_fake.produced >= 20, timeout=20)
    cancelled = time.monotonic()
    job.cancel()
    stopped = last_growth_after(slow_fake, cancelled)
    client.close()
    assert stopped < 3.0
    assert lock_idle(slow_fake)
    print(f"\n[hardening] cancel on /{api_name}: counter stopped {stopped:.2f} s after the cancel")


@pytest.mark.parametrize("api_name", ["chat", "generate_images"])
def test_a_dropped_connection_stops_the_work_within_a_second(slow_fake, api_name):
    session_hash, messages = uuid.uuid4().hex, []
    with httpx.Client(base_url=slow_fake.url, timeout=30) as http:
        raw_join(http, fn_index(slow_fake.url, api_name), raw_data(api_name), session_hash).raise_for_status()
        with http.stream("GET", "gradio_api/queue/data", params={"session_hash": session_hash}) as stream:
            for line in stream.iter_lines():
                if line.startswith("data:"):
                    messages.append(json.loads(line[5:])["msg"])
                if slow_fake.produced >= 20:
                    break  # leaving the block closes the response: the browser tab is gone
    dropped = time.monotonic()
    assert "process_generating" in messages
    stopped = last_growth_after(slow_fake, dropped)
    assert stopped < 3.0
    wait_until(lambda: lock_idle(slow_fake), timeout=5.0)
    print(f"\n[hardening] dropped connection on /{api_name}: counter stopped {stopped:.2f} s after it")


def test_stop_before_the_first_step_frees_the_model(slow_fake, tmp_path):
    """A request cancelled while it waits for the model lock never enters it."""
    slow_fake.gate.clear()
    holder, waiter = new_client(slow_fake.url, tmp_path / "h"), new_client(slow_fake.url, tmp_path / "w")
    holding = submit(holder, "chat", seed=1)
    wait_until(lambda: slow_fake.lock.active == 1, timeout=10)
    waiting = submit(waiter, "generate_images", seed=2)
    wait_until(lambda: slow_fake.lock.waiting == 1, timeout=10)
    waiting.cancel()
    wait_until(lambda: slow_fake.lock.waiting == 0, timeout=5)
    threading.Timer(0.1, slow_fake.gate.set).start()
    holding.cancel()
    wait_until(lambda: lock_idle(slow_fake), timeout=5)
    assert slow_fake.lock.entered == 1
    close_all([holder, waiter])


def test_a_stream_waiting_for_the_section_yields_heartbeats_and_closes_without_running():
    """The model-level fix behind the tests above: a waiting consumer is paused at a yield, so it can be closed."""
    lock, release, ran = ModelLock(), threading.Event(), []
    holder = lock.stream(lambda emit: (emit("first"), release.wait(5)), threading.Event())
    assert next(holder) == "first"
    waiter = lock.stream(lambda emit: ran.append("ran"), threading.Event(), heartbeat=0.05)
    beat = next(waiter)
    assert isinstance(beat, Heartbeat) and beat.waiting and beat.place == 1
    waiter.close()
    release.set()
    assert list(holder) == []
    wait_until(lambda: not lock.busy and lock.waiting == 0, timeout=5)
    assert ran == [] and lock.entered == 1
