"""The GPU lock admits one generation at a time and frees itself when a consumer leaves."""

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from janus_demo.service.errors import BusyError
from janus_demo.service.model_lock import ModelLock

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
        "from janus_demo.service.model_lock import ModelLock\n"
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
