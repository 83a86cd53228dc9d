"""ZeroGPU through the real `spaces` 0.51.3 worker code, with only the GPU stubbed.

tests/support/zerogpu_space.py serves the demo as a ZeroGPU Space does (SPACES_ZERO_GPU=true, gradio in its
ZeroGPU mode, `spaces` forking a worker per GPU, pickling arguments, items and errors, reusing warm workers,
the stop handshake) around a FakeBackend; only CUDA init and the weights' move are stubbed.
tests/support/zerogpu_device.py stands in for ZeroGPU's device API and, like ZeroGPU, kills a worker whose
loan runs past its duration. Its record of loans (duration asked, GPU, worker pid, release) is what these
tests read. The durations are made short (a GpuBudget of a few seconds), so the module takes ~35 s on 2 shared cores
(most of it the Space's start and the 4 s deadline).
"""

from __future__ import annotations

import inspect
import json
import math
import os
import pickle
import subprocess
import sys
import threading
import time

import pytest
import spaces
from gradio_client import Client
from gradio_client.exceptions import AppError
from support import ROOT
from support.serving import new_client
from support.zerogpu_device import DeviceApi, space_env

from janus_demo.service.errors import BusyError, FieldError, OutOfMemory
from janus_demo.web import zerogpu
from janus_demo.web.chat_tab import make_answer_fn
from janus_demo.web.images_tab import make_generate_fn
from janus_demo.web.messages import GENERIC_MESSAGE, problem_text

BUDGET = {  # seconds: every loan at least 6 s, the run stops itself 2 s before its loan ends
    "min_duration_s": 6,
    "margin_s": 2.0,
    "token_s": 0.015,
    "token_s_per_b": 0.0,
    "step_s": 0.001,
    "step_s_per_b": 0.0,
    "row_growth": 0.1,
}
STEP_DELAY = 0.01  # fake image step, per image of the batch: 100 steps of 16 images take 16 s
TOKEN_DELAY = 0.05  # fake chat token


# --- off ZeroGPU: the real spaces package leaves functions alone ----------------------------------


def test_off_zerogpu_spaces_gpu_returns_the_function_unchanged():
    assert os.environ.get("SPACES_ZERO_GPU") is None, "never set SPACES_ZERO_GPU in the test process"

    def work(prepared):
        yield "answer"

    assert zerogpu.spaces is spaces
    assert spaces.GPU(duration=lambda prepared: 10)(work) is work
    assert zerogpu.on_gpu(lambda prepared: 10)(work) is work


def test_the_event_functions_are_plain_generators_here(tiny_backend):
    answer_fn, images_fn = make_answer_fn(tiny_backend), make_generate_fn(tiny_backend)

    assert inspect.isgeneratorfunction(answer_fn) and inspect.isgeneratorfunction(images_fn)
    assert not hasattr(answer_fn, "__wrapped__")


# --- errors leave the GPU function as values, and are raised again in the server ----------------------------


def failing(error):
    yield "first"
    raise error


@pytest.mark.parametrize(
    "error",
    [
        BusyError("The model is busy."),
        OutOfMemory("The GPU ran out of memory."),
        FieldError("num_images", "Number of images must be ..."),  # does not survive pickling as itself
        FileNotFoundError("/secret/path/weights.safetensors"),  # unknown: logged, a generic message shown
    ],
)
def test_an_error_in_the_gpu_function_ends_it_normally_and_reads_the_same(error):
    items = list(zerogpu.kept_warm(failing(error)))
    assert items[0] == "first" and isinstance(items[1], zerogpu.Failed) and len(items) == 2  # a normal end
    pickle.loads(pickle.dumps(items[1]))  # it crosses back from the worker
    with pytest.raises(Exception) as raised:
        list(zerogpu.raised(item for item in items))
    assert problem_text(raised.value) == problem_text(error)  # what the browser and the API show
    assert "/secret" not in str(raised.value)


def test_closing_the_server_side_closes_the_gpu_function():
    closed = []

    def endless():
        try:
            while True:
                yield "item"
        finally:
            closed.append(True)

    stream = zerogpu.raised(zerogpu.kept_warm(endless()))
    next(stream)
    stream.close()
    assert closed == [True]


# --- the Space, under the real spaces machinery -------------------------------------------------------


class Space:
    """The served Space: its URL, what it reported at start-up, and the device API's record of loans."""

    def __init__(self, url: str, info: dict, api: DeviceApi) -> None:
        self.url, self.info, self.api = url, info, api
        self.loans_at_start = len(api.calls)

    def client(self) -> Client:
        return new_client(self.url)

    def loans(self) -> int:
        return len(self.api.calls)


@pytest.fixture(scope="module")
def space(tiny_dir, tmp_path_factory):
    config = {
        "model": str(tiny_dir),
        "budget": BUDGET,
        "step_delay": STEP_DELAY,
        "token_delay": TOKEN_DELAY,
        "image_steps": 100,
        "max_preview_updates": 600,  # so "Preview every 1" really streams a preview every step
        "concurrency": 2,
    }
    folder = tmp_path_factory.mktemp("zerogpu")
    with DeviceApi(gpus=4) as api:
        process = subprocess.Popen(
            [sys.executable, str(ROOT / "tests" / "support" / "zerogpu_space.py"), json.dumps(config)],
            env=space_env(api.url, folder),
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            yield Space(*read_start(process), api)
        finally:
            process.terminate()  # the Space ends its workers on SIGTERM
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
            api.end_workers()  # any worker left behind


def read_start(process: subprocess.Popen) -> tuple[str, dict]:
    """The Space's URL and start-up report, once it serves; its later output is drained in a thread."""
    lines, info, deadline = [], None, time.monotonic() + 120
    for line in process.stdout:
        lines.append(line)
        if line.startswith("INFO "):
            info = json.loads(line.removeprefix("INFO "))
        if line.startswith("URL "):
            threading.Thread(target=lambda: [None for _ in process.stdout], daemon=True).start()
            return line.split()[1], info
        assert time.monotonic() < deadline, "the Space did not start"
    raise AssertionError("the Space did not start:\n" + "".join(lines[-40:]))


@pytest.mark.slow
def test_exactly_the_model_work_borrows_a_gpu_and_nothing_at_start_up(space):
    assert space.info["decorated"] == ["answer_on_gpu", "draw_on_gpu", "edit_on_gpu"]
    assert space.info["gradio_zero_gpu_mode"], "gradio should see a ZeroGPU Space"
    assert space.info["queue_max_size"] == 32, "the queue keeps its explicit size (gradio would cut it to 1)"
    assert space.loans_at_start == 0, "examples must not be run or cached at start-up"


@pytest.mark.slow
def test_nothing_imports_bitsandbytes_when_nothing_is_quantized(space):
    assert space.info["bitsandbytes_imported"] is False


@pytest.mark.slow
def test_durations_are_sized_from_each_request(space):
    client = space.client()
    before = space.loans()
    client.predict({"text": "hi", "files": []}, 16, 0.0, 0.95, 1, api_name="/chat")
    job = client.submit({"text": "and more", "files": []}, 300, 0.0, 0.95, 1, api_name="/chat")
    deadline = time.monotonic() + 10
    while space.loans() < before + 2:  # the loan is asked for before the answer starts: no need to wait for it
        assert time.monotonic() < deadline
        time.sleep(0.02)
    job.cancel()
    short, long = space.api.wait_released(before + 2)[before:]
    assert short.duration == BUDGET["min_duration_s"]  # 16 tokens: the shortest loan
    assert long.duration == math.ceil(300 * BUDGET["token_s"] + BUDGET["margin_s"])  # tokens, plus the margin
    client.close()


@pytest.mark.slow
def test_a_worker_is_reused_after_an_invalid_request_and_after_an_error(space):
    """A refused request never borrows a GPU; an error inside the GPU function ends it normally, so the
    worker (and the weights it holds on the GPU) serves the next request; the user reads the same message
    as without ZeroGPU."""
    client = space.client()
    client.predict({"text": "hi", "files": []}, 8, 0.0, 0.95, 1, api_name="/chat")
    before = space.loans()
    with pytest.raises(AppError, match="Max new tokens must be a whole number between 1 and 2048"):
        client.predict({"text": "hi", "files": []}, 5000, 0.0, 0.95, 1, api_name="/chat")
    assert space.loans() == before, "a refused request borrowed a GPU"
    with pytest.raises(AppError) as failed:
        client.predict({"text": "hi", "files": []}, 8, 0.0, 0.95, 666, api_name="/chat")  # the work raises
    assert str(failed.value.message) == GENERIC_MESSAGE
    answer, _ = client.predict({"text": "hi", "files": []}, 8, 0.0, 0.95, 2, api_name="/chat")
    assert answer == "seed=2 " + "x" * 8
    ok, error, after = space.api.wait_released(before + 2)[before - 1 : before + 2]
    assert not error.failed and not error.aborted, "the error must end the GPU function normally"
    assert ok.pid == error.pid == after.pid, "a new worker was forked after an invalid request or an error"
    client.close()


@pytest.mark.slow
def test_a_16_image_request_stops_itself_before_its_loan_ends(space):
    """Its loan is 6 s (its own estimate is shorter); drawing would take 16 s. The run stops itself at its
    deadline, 2 s before the loan ends, with the app's message; ZeroGPU never has to abort it."""
    client = space.client()
    before = space.loans()
    started = time.monotonic()
    with pytest.raises(AppError, match=r"ran past the 4 s limit and was stopped"):
        client.predict("a red cube", 1, 5.0, 1.0, 16, 1.0, 0, "off", api_name="/generate_images")
    took = time.monotonic() - started
    (call,) = space.api.wait_released(before + 1)[before:]
    assert call.duration == 6 and not call.aborted and not call.failed
    assert call.seconds < call.duration and took < call.duration
    answer, _ = client.predict({"text": "still warm?", "files": []}, 4, 0.0, 0.95, 3, api_name="/chat")
    assert answer == "seed=3 xxxx"
    client.close()


@pytest.mark.slow
def test_stop_ends_within_a_second_with_previews_every_step(space):
    client = space.client()
    before = space.loans()
    job = client.submit("a red cube", 1, 5.0, 1.0, 16, 1.0, 1, "palette", api_name="/generate_images")
    deadline = time.monotonic() + 20
    while len(job.outputs()) < 3:  # previews are streaming
        assert time.monotonic() < deadline, "no previews"
        time.sleep(0.05)
    stopped = time.monotonic()
    job.cancel()
    (call,) = space.api.wait_released(before + 1, timeout=10)[before:]
    assert call.released - stopped < 1.0, f"the GPU was released {call.released - stopped:.2f} s after Stop"
    assert not call.failed and not call.aborted
    client.close()


@pytest.mark.slow
def test_two_visitors_are_served_at_once(space):
    clients = [space.client(), space.client()]
    before = space.loans()
    jobs = [client.submit({"text": "hi", "files": []}, 20, 0.0, 0.95, 7, api_name="/chat") for client in clients]
    answers = [job.result(timeout=30)[0] for job in jobs]
    assert answers == ["seed=7 " + "x" * 20] * 2
    first, second = space.api.wait_released(before + 2)[before:]
    assert second.scheduled < first.released, "the second visitor waited for the first"
    assert first.gpu != second.gpu and first.pid != second.pid  # each on its own GPU, in its own worker
    for client in clients:
        client.close()
