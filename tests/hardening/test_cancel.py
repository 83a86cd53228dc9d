"""Stop, cancel and vanished clients end the work itself, never let two runs share the model, and free it.

Proved by state and by counting, never by the clock: 20 submit-then-cancel rounds per endpoint (each its own
Client, cancelled while queued, at the first steps or mid-run, without waiting for the previous cancel to land):
max_active 1, the model lock free again, the next request answered. After a cancel or a dropped connection the
fake's work returns (the model free, no work inside) having produced a fraction of its 2000 tokens/steps.
Measured (printed with -s): the lock is free within 2 s of the last cancel; the counter stops within 1 s.
"""

import json
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from support.meters import lock_idle, wait_until, work_over
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


def wait_joined(job, timeout=60):
    """Wait until the server has given the job its event id (a cancel sent before that cannot name it)."""
    wait_until(lambda: job.communicator.event_id is not None, timeout)


def stopped_after(fake, start) -> tuple[float, int]:
    """Wait until the fake's work has returned; the seconds from `start` (for the printed figure) and the tokens
    or steps it produced in all, which a run left alone would take to LONG."""
    wait_until(lambda: work_over(fake), timeout=60)
    return time.monotonic() - start, fake.produced


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
    wait_until(lambda: lock_idle(fake), timeout=60)
    freed = time.monotonic() - last_cancel
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
def test_cancel_stops_the_work(slow_fake, api_name, tmp_path):
    client = new_client(slow_fake.url, tmp_path)
    job = submit(client, api_name)
    wait_until(lambda: slow_fake.produced >= 20, timeout=60)
    cancelled = time.monotonic()
    job.cancel()
    stopped, produced = stopped_after(slow_fake, cancelled)
    client.close()
    assert produced < LONG // 2, "the cancel ended the work, long before it would have finished"
    print(f"\n[hardening] cancel on /{api_name}: work ended {stopped:.2f} s after the cancel, {produced} produced")


@pytest.mark.parametrize("api_name", ["chat", "generate_images"])
def test_a_dropped_connection_stops_the_work(slow_fake, api_name):
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
    stopped, produced = stopped_after(slow_fake, dropped)
    assert produced < LONG // 2, "the dropped connection ended the work, long before it would have finished"
    print(f"\n[hardening] dropped connection on /{api_name}: work ended {stopped:.2f} s after it, {produced} produced")


def test_stop_before_the_first_step_frees_the_model(slow_fake, tmp_path):
    """A request cancelled while it waits for the model lock never enters it."""
    slow_fake.gate.clear()
    holder, waiter = new_client(slow_fake.url, tmp_path / "h"), new_client(slow_fake.url, tmp_path / "w")
    holding = submit(holder, "chat", seed=1)
    wait_until(lambda: slow_fake.lock.active == 1, timeout=60)
    waiting = submit(waiter, "generate_images", seed=2)
    wait_until(lambda: slow_fake.lock.waiting == 1, timeout=60)
    wait_joined(waiting)  # on a busy machine the server ran it before the client read its event id
    waiting.cancel()
    wait_until(lambda: slow_fake.lock.waiting == 0, timeout=60)
    threading.Timer(0.1, slow_fake.gate.set).start()
    holding.cancel()
    wait_until(lambda: lock_idle(slow_fake), timeout=60)
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
    wait_until(lambda: not lock.busy and lock.waiting == 0, timeout=60)
    assert ran == [] and lock.entered == 1
