"""ZeroGPU: the GPU functions are wrapped with request-sized durations, and off ZeroGPU nothing changes.

A real ZeroGPU cannot be had here: `import spaces` with SPACES_ZERO_GPU=true fails on a CPU-only torch.
tests/zerogpu_probe.py runs app.py in a subprocess with gradio in ZeroGPU mode and a stand-in `spaces`
that keeps its contract (duration computed from the call's arguments, arguments and yields pickled).
"""

import inspect
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import spaces

from janus_demo.web import zerogpu
from janus_demo.web.chat_tab import make_chat_fn
from janus_demo.web.images_tab import make_generate_fn

ROOT = Path(__file__).resolve().parents[2]


# --- off ZeroGPU: the real spaces package leaves functions alone ----------------------------------


def test_off_zerogpu_spaces_gpu_returns_the_function_unchanged():
    assert os.environ.get("SPACES_ZERO_GPU") is None, "never set SPACES_ZERO_GPU in the test process"

    def work(message, history):
        yield "answer"

    assert zerogpu.spaces is spaces
    assert spaces.GPU(duration=zerogpu.chat_duration)(work) is work
    assert zerogpu.on_gpu(zerogpu.chat_duration)(work) is work


def test_the_ui_functions_are_plain_generators_here(tiny_backend):
    chat_fn, images_fn = make_chat_fn(tiny_backend), make_generate_fn(tiny_backend)
    assert (chat_fn.__name__, images_fn.__name__) == ("chat", "generate_images")
    assert inspect.isgeneratorfunction(chat_fn) and inspect.isgeneratorfunction(images_fn)
    assert not hasattr(chat_fn, "__wrapped__") and not hasattr(images_fn, "__wrapped__")


# --- the duration callables ------------------------------------------------------------------------


def test_duration_callables_take_the_functions_own_parameters(tiny_backend):
    for fn, duration in [
        (make_chat_fn(tiny_backend), zerogpu.chat_duration),
        (make_generate_fn(tiny_backend), zerogpu.images_duration),
    ]:
        assert list(inspect.signature(fn).parameters) == list(inspect.signature(duration).parameters)


def test_chat_duration_grows_with_tokens_and_images():
    text_only = zerogpu.chat_duration({"text": "hi", "files": []}, [], 256)
    longer = zerogpu.chat_duration({"text": "hi", "files": []}, [], 1024)
    with_image = zerogpu.chat_duration({"text": "hi", "files": ["/tmp/a.png"]}, [], 256)
    browser_history = [{"role": "user", "content": [{"type": "file", "file": {"path": "/tmp/a.png"}}]}]
    api_history = [{"role": "user", "content": [{"path": "/tmp/a.png"}, "hi"]}]
    assert text_only < with_image < longer
    assert zerogpu.chat_duration({"text": "again", "files": []}, browser_history, 256) == with_image
    assert zerogpu.chat_duration({"text": "again", "files": []}, api_history, 256) == with_image


def test_images_duration_grows_with_images_guidance_and_previews():
    one = zerogpu.images_duration("cat", 1, 5.0, 1.0, 1, 1.0, 48, "auto")
    four = zerogpu.images_duration("cat", 1, 5.0, 1.0, 4, 1.0, 48, "auto")
    no_guidance = zerogpu.images_duration("cat", 1, 1.0, 1.0, 1, 1.0, 48, "auto")
    no_previews = zerogpu.images_duration("cat", 1, 5.0, 1.0, 1, 1.0, 0, "auto")
    assert no_guidance < one < four
    assert no_previews < one
    assert zerogpu.images_duration("cat", 1, 5.0, 1.0, 1, 1.0, 48, "off") == no_previews


@pytest.mark.parametrize(
    "args",
    [
        (None, None, math.nan),
        ("text", "junk", "many", math.inf),
        ({"files": "not a list"}, [{"content": None}], -5, True),
        ({"text": "x", "files": []}, [], 10**9),
    ],
)
def test_chat_duration_survives_any_input(args):
    seconds = zerogpu.chat_duration(*args)
    assert isinstance(seconds, int) and zerogpu.MIN_DURATION_S <= seconds <= zerogpu.MAX_DURATION_S


@pytest.mark.parametrize(
    "args",
    [
        (None, None, math.nan, None, "four", None, -1, None),
        ("cat", 1, 5.0, 1.0, 10**6, 1.0, 10**6, "auto"),
        ("cat", 1, math.inf, 1.0, -3, 1.0, 0.5, "decode"),
    ],
)
def test_images_duration_survives_any_input(args):
    seconds = zerogpu.images_duration(*args)
    assert isinstance(seconds, int) and zerogpu.MIN_DURATION_S <= seconds <= zerogpu.MAX_DURATION_S


def test_the_biggest_requests_are_capped():
    assert zerogpu.chat_duration({"text": "x", "files": ["a"] * 4}, [], 2048) == zerogpu.MAX_DURATION_S
    assert zerogpu.images_duration("cat", 1, 5.0, 1.0, 16, 1.0, 1, "decode") == zerogpu.MAX_DURATION_S


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


def test_exactly_the_gpu_functions_are_decorated(zerogpu_findings):
    decorated = {entry["name"]: entry for entry in zerogpu_findings["decorated"]}
    assert set(decorated) == {"chat", "generate_images"}
    for entry in decorated.values():
        assert entry["duration_params"] == entry["params"], "duration must take the function's own parameters"


def test_nothing_runs_on_the_gpu_at_start_up(zerogpu_findings):
    assert zerogpu_findings["calls_after_launch"] == [], "examples must not be run or cached at start-up"


def test_queue_keeps_its_explicit_size_on_zerogpu(zerogpu_findings):
    assert zerogpu_findings["gradio_zero_gpu_mode"], "gradio should see a ZeroGPU Space (it would cut the queue to 1)"
    assert zerogpu_findings["queue_max_size"] == zerogpu_findings["queue_size_setting"] > 1


def test_requests_through_gradio_get_sized_durations_and_picklable_results(zerogpu_findings):
    calls = zerogpu_findings["calls"]
    assert [call["name"] for call in calls] == ["chat", "chat", "generate_images"]
    first, follow_up, images = (call["seconds"] for call in calls)
    assert first == zerogpu.chat_duration({"text": "", "files": ["cat"]}, [], 16)
    assert follow_up == zerogpu.chat_duration({"text": "", "files": []}, [{"content": [{"path": "cat"}]}], 300)
    assert images == zerogpu.images_duration("a red cube", 3, 1.0, 1.0, 1, 1.0, 96, "palette")
    assert all(call["yielded"] > 1 for call in calls), "the functions stream through the wrapper"
    assert zerogpu_findings["final_images"] == 1
