"""ZeroGPU: only checked, prepared requests borrow a GPU, with durations sized from them; off ZeroGPU
nothing changes.

A real ZeroGPU cannot be had here: `import spaces` with SPACES_ZERO_GPU=true fails on a CPU-only torch.
tests/web/zerogpu_probe.py runs app.py in a subprocess with gradio in ZeroGPU mode and a stand-in `spaces`
that keeps its contract (duration computed from the call's arguments, arguments and yields pickled).
"""

import dataclasses
import inspect
import json
import os
import subprocess
import sys

import pytest
import spaces
from support import ROOT

from janus_demo.web import zerogpu
from janus_demo.web.chat_tab import make_answer_fn
from janus_demo.web.images_tab import make_generate_fn

pytestmark = pytest.mark.slow

# --- off ZeroGPU: the real spaces package leaves functions alone ----------------------------------


def test_off_zerogpu_spaces_gpu_returns_the_function_unchanged():
    assert os.environ.get("SPACES_ZERO_GPU") is None, "never set SPACES_ZERO_GPU in the test process"

    def work(prepared):
        yield "answer"

    assert zerogpu.spaces is spaces
    assert spaces.GPU(duration=zerogpu.chat_duration)(work) is work
    assert zerogpu.on_gpu(zerogpu.chat_duration)(work) is work


def test_the_event_functions_are_plain_generators_here(tiny_backend):
    answer_fn, images_fn = make_answer_fn(tiny_backend), make_generate_fn(tiny_backend)
    assert inspect.isgeneratorfunction(answer_fn) and inspect.isgeneratorfunction(images_fn)
    assert not hasattr(answer_fn, "__wrapped__")


# --- the duration callables read checked requests --------------------------------------------------


def test_chat_duration_grows_with_tokens_and_images(tiny_backend):
    cat = str(ROOT / "assets" / "chelsea.png")
    text_only = tiny_backend.prepare_chat({"text": "hi", "files": []}, None, 256)
    longer = dataclasses.replace(text_only, options=dataclasses.replace(text_only.options, max_new_tokens=1024))
    with_image = tiny_backend.prepare_chat({"text": "hi", "files": [cat]}, None, 256)
    assert zerogpu.chat_duration(text_only) < zerogpu.chat_duration(with_image) < zerogpu.chat_duration(longer)


def test_images_duration_grows_with_images_guidance_and_previews(tiny_backend):
    def seconds(**settings):
        return zerogpu.images_duration(tiny_backend.prepare_images("cat", 1, **settings))

    one = seconds(num_images=1)
    assert seconds(guidance_scale=1.0) < one < seconds(num_images=4)
    assert seconds(preview_every=0) < one
    assert seconds(preview_mode="off") == seconds(preview_every=0)


def test_the_biggest_requests_are_capped(tiny_backend):
    biggest = tiny_backend.prepare_images("cat", 1, num_images=16, preview_every=1, preview_mode="decode")
    assert zerogpu.images_duration(biggest) == zerogpu.MAX_DURATION_S


# --- app.py under simulated ZeroGPU ---------------------------------------------------------------


@pytest.fixture(scope="module")
def zerogpu_findings(tiny_dir, tmp_path_factory):
    env = {
        **os.environ,
        "SPACES_ZERO_GPU": "true",  # gradio's ZeroGPU mode; `spaces` is the probe's stand-in
        "GRADIO_CACHE_EXAMPLES": "true",  # what Spaces set: examples with a function would be cached
        "JANUS_MODEL": str(tiny_dir),
        "JANUS_QUANTIZATION": "none",
        "JANUS_DEVICE": "cpu",
        "GRADIO_TEMP_DIR": str(tmp_path_factory.mktemp("zerogpu-gradio")),
    }
    for name in ("GRADIO_SHARE", "JANUS_AUTH", "JANUS_AUTH_FILE", "JANUS_MCP", "GRADIO_SERVER_PORT"):
        env.pop(name, None)
    run = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "web" / "zerogpu_probe.py")],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = [line for line in run.stdout.splitlines() if line.startswith("FINDINGS ")]
    assert run.returncode == 0 and lines, f"probe failed:\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
    return json.loads(lines[-1].removeprefix("FINDINGS "))


def test_exactly_the_model_work_borrows_a_gpu(zerogpu_findings):
    decorated = {entry["name"]: entry for entry in zerogpu_findings["decorated"]}
    assert set(decorated) == {"answer_on_gpu", "draw_on_gpu", "edit_on_gpu"}
    for entry in decorated.values():
        assert entry["duration_params"] == entry["params"], "duration must take the function's own parameters"


def test_nothing_runs_on_the_gpu_at_start_up(zerogpu_findings):
    assert zerogpu_findings["calls_after_launch"] == [], "examples must not be run or cached at start-up"


def test_queue_keeps_its_explicit_size_on_zerogpu(zerogpu_findings):
    assert zerogpu_findings["gradio_zero_gpu_mode"], "gradio should see a ZeroGPU Space (it would cut the queue to 1)"
    assert zerogpu_findings["queue_max_size"] == zerogpu_findings["queue_size_setting"] > 1


def test_requests_through_gradio_get_sized_durations_and_picklable_results(zerogpu_findings):
    calls = zerogpu_findings["calls"]
    assert [call["name"] for call in calls] == ["answer_on_gpu", "answer_on_gpu", "draw_on_gpu"]
    first, follow_up, images = (call["seconds"] for call in calls)
    assert zerogpu.MIN_DURATION_S <= first < follow_up <= zerogpu.MAX_DURATION_S  # 16 tokens, then 300
    assert zerogpu.MIN_DURATION_S <= images <= zerogpu.MAX_DURATION_S
    assert all(call["yielded"] > 1 for call in calls), "the functions stream through the wrapper"
    assert zerogpu_findings["final_images"] == 1


def test_a_refused_request_never_borrows_a_gpu(zerogpu_findings):
    messages = zerogpu_findings["refusals"]
    assert "Max new tokens must be a whole number between 1 and 2048" in messages[0]
    assert "not an image" in messages[1]
    assert "Guidance scale must be a number between 1 and 10" in messages[2]
    assert "Prompt is empty" in messages[3]
    assert zerogpu_findings["calls_after_refusals"] == zerogpu_findings["calls"], "a refused request borrowed a GPU"
