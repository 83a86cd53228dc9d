"""The GPU lock admits one generation at a time and frees itself when a consumer leaves."""

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from janus_demo.service import model_lock
from janus_demo.service.errors import BusyError
from janus_demo.service.model_lock import Heartbeat, ModelLock

ROOT = Path(__file__).resolve().parents[2]


def counting_work(steps, delay=0.01):
    def work(emit):
        for i in range(steps):
            time.sleep(delay)
            emit(i)

    return work


def test_items_stream_in_order():
    lock = ModelLock()
    assert list(lock.stream(counting_work(5), threading.Event())) == [0, 1, 2, 3, 4]
    assert not lock.busy


def test_errors_in_work_reach_the_consumer_and_free_the_lock():
    def broken(emit):
        emit(1)
        raise ValueError("boom")

    lock = ModelLock()
    with pytest.raises(ValueError, match="boom"):
        list(lock.stream(broken, threading.Event()))
    assert not lock.busy


def test_closing_the_consumer_stops_the_work_within_one_step():
    lock = ModelLock()
    stop = threading.Event()
    steps_done = []

    def work(emit):
        for i in range(1000):
            if stop.is_set():
                return
            time.sleep(0.01)
            steps_done.append(i)
            emit(i)

    stream = lock.stream(work, stop)
    next(stream)
    stream.close()
    time.sleep(0.1)
    assert stop.is_set() and not lock.busy
    assert len(steps_done) < 20


def test_concurrent_streams_never_overlap():
    lock = ModelLock()
    results = []

    def consume():
        results.append(list(lock.stream(counting_work(10, 0.002), threading.Event())))

    threads = [threading.Thread(target=consume) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert results == [list(range(10))] * 8
    assert lock.max_active == 1


def test_waiting_too_long_is_a_busy_error():
    lock = ModelLock()
    slow = lock.stream(counting_work(100, 0.01), threading.Event())
    next(slow)
    with pytest.raises(BusyError):
        list(lock.stream(counting_work(1), threading.Event(), wait_timeout=0.1))
    slow.close()


def test_out_of_memory_becomes_a_clear_message_and_the_next_request_works():
    from janus_demo.service.errors import OutOfMemory

    lock = ModelLock()

    def oom(emit):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    with pytest.raises(OutOfMemory, match="fewer images"):
        list(lock.stream(oom, threading.Event()))
    assert list(lock.stream(counting_work(2), threading.Event())) == [0, 1]


def test_an_unrecoverable_cuda_error_exits_the_process_non_zero(tmp_path):
    script = tmp_path / "fatal.py"
    script.write_text(
        "import threading, time\n"
        "from janus_demo.service.model_lock import Heartbeat, ModelLock\n"
        "def work(emit):\n"
        "    raise RuntimeError('CUDA error: an illegal memory access was encountered')\n"
        "try:\n"
        "    list(ModelLock().stream(work, threading.Event()))\n"
        "except Exception as error:\n"
        "    print('user saw:', error, flush=True)\n"
        "time.sleep(30)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 70
    assert "restarting" in result.stdout


def test_in_a_zerogpu_worker_a_poisoned_gpu_ends_the_worker_only(tmp_path):
    """On ZeroGPU the model work runs in a worker forked from the server: only the worker exits (spaces forks
    a new one), the message does not say the server restarts, and the server's cleanups (its cache folder)
    are not run."""
    cleaned = tmp_path / "cleaned"
    script = tmp_path / "worker.py"
    script.write_text(
        "import threading, time\n"
        "from janus_demo.service import model_lock\n"
        "model_lock.SERVER_PID = -1  # as in a forked worker\n"
        f"model_lock.before_fatal_exit.append(lambda: open({str(cleaned)!r}, 'w').close())\n"
        "def work(emit):\n"
        "    raise RuntimeError('CUDA error: an illegal memory access was encountered')\n"
        "try:\n"
        "    list(model_lock.ModelLock().stream(work, threading.Event()))\n"
        "except Exception as error:\n"
        "    print('user saw:', error, flush=True)\n"
        "time.sleep(30)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SPACES_ZERO_GPU": "true"}  # this child never imports spaces
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 70
    assert "fresh GPU" in result.stdout and "restarting" not in result.stdout
    assert not cleaned.exists(), "a worker must not remove the server's cache folder"


def test_a_closed_stream_waits_a_bounded_time_for_the_step_in_flight():
    """The GPU function returns (and ZeroGPU takes the GPU back) only once the model thread has left its step,
    or after JOIN_S at most."""
    finished = threading.Event()

    def work(emit):
        emit("first")
        time.sleep(0.2)  # a step in flight when the consumer leaves
        finished.set()

    stream = ModelLock().stream(work, threading.Event())
    assert next(stream) == "first"
    stream.close()
    assert finished.is_set(), "close() waited for the step in flight"

    release, ended = threading.Event(), threading.Event()

    def endless(emit):
        emit("first")
        release.wait(60)  # a step that outlasts the bound
        ended.set()

    stream = ModelLock().stream(endless, threading.Event())
    next(stream)
    stream.close()
    assert not ended.is_set(), f"close() gives up after JOIN_S ({model_lock.JOIN_S} s), not at the step's end"
    release.set()


# --- the line: first come, first served, with a place and an estimate ----------------------------


def held(lock, release: threading.Event, kind="images"):
    """A stream that holds the lock until `release` is set; returns it once it holds the lock."""

    def work(emit):
        emit("in")
        release.wait(10)

    stream = lock.stream(work, threading.Event(), heartbeat=0.01, kind=kind)
    assert next(stream) == "in"
    return stream


def first_heartbeat(stream) -> Heartbeat:
    item = next(stream)
    assert isinstance(item, Heartbeat) and item.waiting
    return item


def test_requests_get_the_model_in_the_order_they_asked_and_know_their_place():
    lock, release, order = ModelLock(), threading.Event(), []
    holder = held(lock, release)
    waiting = []
    for n in range(3):
        stream = lock.stream(lambda emit, n=n: order.append(n), threading.Event(), heartbeat=0.01, kind="chat")
        waiting.append(stream)
        assert first_heartbeat(stream).place == n + 1  # 1: next in line
    assert lock.waiting == 3
    release.set()
    list(holder)
    for stream in reversed(waiting):  # consumed in reverse: the order is the lock's, not the consumers'
        list(stream)
    assert order == [0, 1, 2]
    assert lock.waiting == 0 and not lock.busy


def test_the_wait_estimate_comes_from_timed_runs_and_the_running_requests_own_estimate():
    lock = ModelLock()
    list(lock.stream(lambda emit: time.sleep(0.3), threading.Event(), kind="chat"))  # one timed chat: ~0.3 s

    release = threading.Event()
    holder = held(lock, release, kind="images")  # no image run timed yet: the wait is unknown
    behind = lock.stream(lambda emit: None, threading.Event(), heartbeat=0.01, kind="chat")
    assert first_heartbeat(behind).wait_s is None

    lock.expect_done_in(10.0)  # the running request says how long it has left
    second = lock.stream(lambda emit: None, threading.Event(), heartbeat=0.01, kind="chat")
    estimate = first_heartbeat(second).wait_s
    assert 9.5 < estimate < 10.6, "10 s of the running request + one typical chat (~0.3 s)"
    release.set()
    for stream in (holder, behind, second):
        list(stream)


def test_a_stopped_request_leaves_the_line_and_the_next_moves_up():
    lock, release = ModelLock(), threading.Event()
    holder = held(lock, release)
    first_stop = threading.Event()
    first = lock.stream(lambda emit: None, first_stop, heartbeat=0.01)
    assert first_heartbeat(first).place == 1
    second = lock.stream(lambda emit: emit("ran"), threading.Event(), heartbeat=0.01)
    assert first_heartbeat(second).place == 2
    first.close()  # the consumer left: it gives up its place
    deadline = time.monotonic() + 60  # a bound for a broken line, not a speed target
    while first_heartbeat(second).place != 1:
        assert time.monotonic() < deadline
    release.set()
    list(holder)
    assert [item for item in second if item == "ran"] == ["ran"]
    assert lock.entered == 2, "the stopped request never ran"
