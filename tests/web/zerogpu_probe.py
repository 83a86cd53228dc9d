"""Run app.py as a ZeroGPU Space would, as far as a machine without a GPU allows; print JSON findings.

    SPACES_ZERO_GPU=true JANUS_MODEL=./tiny python tests/web/zerogpu_probe.py

The real `spaces` package refuses to import with SPACES_ZERO_GPU=true on a CPU-only torch (it patches
CUDA internals), so a stand-in `spaces` module takes its place. It keeps the contract app.py relies on:
`spaces.GPU(duration=callable)` wraps a generator function; each call first computes the duration from
the call's own arguments, pickles the arguments (they cross into a forked worker) and pickles every
value the function yields (they come back). gradio itself runs in its real ZeroGPU mode.
tests/web/test_zerogpu.py runs this in a subprocess so none of it leaks into other tests.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import json
import os
import pickle
import sys
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
decorated: list[dict] = []
calls: list[dict] = []


def fake_gpu(task=None, *, duration=None, size=None):
    """spaces.GPU's signature; records what it wraps and what each call asks for."""

    def decorate(fn):
        assert inspect.isgeneratorfunction(fn), f"{fn.__name__}: ZeroGPU streams generator functions"
        decorated.append(
            {
                "name": fn.__name__,
                "params": list(inspect.signature(fn).parameters),
                "duration_params": list(inspect.signature(duration).parameters) if callable(duration) else None,
            }
        )

        @functools.wraps(fn)
        def handler(*args, **kwargs):
            seconds = duration(*args, **kwargs) if callable(duration) else duration
            pickle.dumps((args, kwargs))
            call = {"name": fn.__name__, "seconds": seconds, "yielded": 0}
            calls.append(call)
            for value in fn(*args, **kwargs):
                pickle.dumps(value)
                call["yielded"] += 1
                yield value

        return handler

    return decorate if task is None else decorate(task)


def refused(call) -> str | None:
    """The error message of a call that must be refused, or None when it was not."""
    try:
        call()
    except Exception as error:  # noqa: BLE001 - the probe reports whatever the client raised
        return str(error)
    return None


def main() -> None:
    sys.modules["spaces"] = types.SimpleNamespace(GPU=fake_gpu)
    sys.path.insert(0, str(ROOT))
    os.chdir(ROOT)
    app = importlib.import_module("app")  # first, as on a Space: settings from the environment, load, build
    from gradio.utils import is_zero_gpu_space
    from gradio_client import Client, handle_file

    from janus_demo.launch.server import configure_queue, safe_launch_options

    configure_queue(app.demo, app.settings.queue_size)
    app.demo.launch(
        server_name="127.0.0.1",
        prevent_thread_lock=True,
        quiet=True,
        ssr_mode=False,
        **safe_launch_options(app.settings, app.backend),
    )
    findings = {
        "gradio_zero_gpu_mode": is_zero_gpu_space(),
        "decorated": decorated,
        "calls_after_launch": list(calls),
        "queue_max_size": app.demo._queue.max_size,
        "queue_size_setting": app.settings.queue_size,
    }
    client = Client(app.demo.local_url, verbose=False)
    message = {"text": "What is this?", "files": [handle_file(str(ROOT / "assets" / "chelsea.png"))]}
    client.predict(message, 16, 0.0, 0.95, 1, api_name="/chat")
    client.predict({"text": "And now?", "files": []}, 300, 0.0, 0.95, 1, api_name="/chat")
    gallery, _, _ = client.predict("a red cube", 3, 1.0, 1.0, 1, 1.0, 96, "palette", api_name="/generate_images")
    findings["calls"] = list(calls)
    findings["final_images"] = len(gallery)
    bad_file = ROOT / "README.md"  # not an image
    findings["refusals"] = [
        refused(lambda: client.predict({"text": "x", "files": []}, 2049, 0.0, 0.95, 1, api_name="/chat")),
        refused(lambda: client.predict({"text": "x", "files": [handle_file(str(bad_file))]}, 8, api_name="/chat")),
        refused(lambda: client.predict("a cube", 1, 10.5, 1.0, 1, 1.0, 96, "palette", api_name="/generate_images")),
        refused(lambda: client.predict("", 1, 5.0, 1.0, 1, 1.0, 96, "palette", api_name="/generate_images")),
    ]
    findings["calls_after_refusals"] = list(calls)
    client.close()
    app.demo.close()
    print("FINDINGS " + json.dumps(findings))


if __name__ == "__main__":
    main()
