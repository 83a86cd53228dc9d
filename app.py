"""Janus-Pro demo: chat about images and generate images (the Space's app_file).

    python app.py --model tiny          # try it offline with a random-weight model
    python app.py --help                # every flag and its environment variable

Settings -> access rules -> cache folder -> load -> build UI -> launch.
`demo` is module-level so `gradio app.py` finds it.
"""

import sys

# Settings and access rules import no torch and no gradio: --help and a refused flag answer at once.
from janus_demo.launch.access import check_access_or_exit
from janus_demo.launch.settings import parse_settings

settings = parse_settings(sys.argv[1:] if __name__ == "__main__" else [])
logins = check_access_or_exit(settings)

try:  # before torch: on ZeroGPU, spaces must patch torch before anything touches CUDA
    import spaces  # noqa: F401
except ModuleNotFoundError as missing:  # without the package @spaces.GPU is a no-op (janus_demo/web/zerogpu.py)
    if missing.name != "spaces":
        raise

from janus_demo.launch.cache import claim_cache_dir  # noqa: E402
from janus_demo.launch.server import configure_logging, load_backend_or_exit, queue_and_launch  # noqa: E402
from janus_demo.web.demo import build_demo  # noqa: E402

configure_logging()
cache = claim_cache_dir() if __name__ == "__main__" else None  # before the UI: its files go there
backend = load_backend_or_exit(settings)
demo = build_demo(backend)

if __name__ == "__main__":
    queue_and_launch(demo, settings, backend, logins, cache)
