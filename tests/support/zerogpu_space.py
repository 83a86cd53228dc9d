"""Serve the demo as a ZeroGPU Space would, with the real `spaces` 0.51.3 worker code, on a CPU.

    python tests/support/zerogpu_space.py CONFIG_JSON      # env from zerogpu_device.space_env(...)

Only what needs real CUDA is stubbed: before `import spaces`, torch is made to look CUDA-built (spaces reads
`torch.version.cuda` and patches CUDA functions that CPU builds lack); after it, `spaces.zero.torch.init`
and `.move` (CUDA init and the weights' move in a new worker) do nothing. Everything else is spaces' own:
the fork of a worker per GPU, pickling of arguments, items and errors, the stop handshake, reuse of a
worker after a normal end, and the duration callables. The device API is `zerogpu_device.DeviceApi`.

CONFIG_JSON: {"model": tiny checkpoint folder, "step_delay": s, "image_steps": n, "token_delay": s,
"budget": GpuBudget fields, "concurrency": n, "max_preview_updates": n}. The backend is
tests/support/fake_backend.FakeBackend (real checks, lock and streaming; fake model work) whose image steps
take `step_delay` per image; a request with seed 666 fails inside the GPU function. Prints "INFO {json}"
(what was decorated, the queue, whether bitsandbytes was imported) and "URL <local url>" once serving,
then serves until SIGTERM, which also ends its workers (SIGKILL would leave them running).
"""

from __future__ import annotations

import ctypes
import json
import signal
import sys
from pathlib import Path

import torch

# Linux: end with the test run that started this process, even if it is killed (PR_SET_PDEATHSIG). Not set in
# spaces' workers: it fires when the forking *thread* ends, and gradio's worker threads come and go.
ctypes.CDLL(None).prctl(1, signal.SIGKILL)

# --- make the CPU build look like a CUDA build to spaces (module-level functions: spaces pickles some)


def _no_cuda_init() -> None:
    pass


def _raw_stream(*args: object) -> int:
    return 0


def _exchange_device(device: int) -> int:
    return device


def _never_bad_fork() -> bool:
    return False


torch.version.cuda = "12.8"
torch._C._cuda_init = _no_cuda_init
torch._C._cuda_getCurrentRawStream = _raw_stream
torch.cuda._exchange_device = _exchange_device
torch.cuda._maybe_exchange_device = _exchange_device
torch.cuda._is_in_bad_fork = _never_bad_fork

import spaces  # noqa: E402,F401 - before the app's heavy imports, as in app.py
import spaces.zero.torch  # noqa: E402


def _nothing(*args: object, **kwargs: object) -> None:
    pass


spaces.zero.torch.init = _nothing  # CUDA init in a new worker
spaces.zero.torch.move = _nothing  # the weights' move to the GPU in a new worker

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]


def main() -> None:
    import gradio.utils

    from janus_demo.launch.server import configure_queue, safe_launch_options
    from janus_demo.launch.settings import Settings
    from janus_demo.model.loading import load_janus
    from janus_demo.service.backend import Backend
    from janus_demo.service.gpu_budget import GpuBudget
    from janus_demo.service.schemas import Limits
    from janus_demo.web.demo import build_demo
    from support.fake_backend import FakeBackend
    from support.serving import launch_on_loopback

    class SpaceBackend(FakeBackend):
        """FakeBackend whose image steps take `step_delay` per image of the batch (more images, longer runs)."""

        def _draw(self, request, stop):
            self.step_delay = config.get("step_delay", 0.0) * request.num_images
            return super()._draw(request, stop)

    config = json.loads(sys.argv[1])
    loaded = load_janus(config["model"], quantization="none", device="cpu")
    limits = Limits(max_preview_updates=config.get("max_preview_updates", 24))
    kind = Backend if config.get("real_model") else SpaceBackend  # the tiny model's own work, or the fake's
    backend = kind(loaded, limits=limits, gpu_budget=GpuBudget(**config.get("budget", {})))
    if isinstance(backend, FakeBackend):
        backend.reset(token_delay=config.get("token_delay", 0.0))
        backend.image_steps = config.get("image_steps", 24)
        backend.fail_seeds = lambda seed: seed == 666  # a request with seed 666 fails inside the GPU function
        backend.error = lambda seed: RuntimeError("/secret/path: the model broke")
    demo = build_demo(backend)
    configure_queue(demo, 32, config.get("concurrency", 2))
    launch_on_loopback(demo, server_name="127.0.0.1", **safe_launch_options(Settings(), backend))
    backend.info()  # as the Model panel and /model_info do on every page load
    decorated = {fn.__name__: fn for fn in spaces.zero.decorator.decorated_cache}
    info = {
        "decorated": sorted(decorated),
        "gradio_zero_gpu_mode": gradio.utils.is_zero_gpu_space(),
        "queue_max_size": demo._queue.max_size,
        "concurrency": demo._queue.default_concurrency_limit,
        "bitsandbytes_imported": "bitsandbytes" in sys.modules,
    }
    print(f"INFO {json.dumps(info)}", flush=True)
    print(f"URL {demo.local_url}", flush=True)
    # SIGTERM ends the process normally, so multiprocessing's exit handler ends spaces' (daemonic) workers too
    signal.signal(signal.SIGTERM, lambda *args: sys.exit(0))
    demo.block_thread()


if __name__ == "__main__":
    main()
