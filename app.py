"""Janus-Pro demo: chat about images and generate images (the Space's app_file).

    python app.py --model tiny          # try it offline with a random-weight model
    python app.py --help                # every flag and its environment variable

Settings -> access rules -> cache folder -> load -> build UI -> launch.
`demo` is module-level so `gradio app.py` finds it.
"""

try:  # first: on ZeroGPU, spaces must patch torch before anything touches CUDA
    import spaces  # noqa: F401
except ModuleNotFoundError as missing:  # without the package @spaces.GPU is a no-op (janus_demo/web/zerogpu.py)
    if missing.name != "spaces":
        raise

import sys

from janus_demo.launch.cache import claim_cache_dir
from janus_demo.launch.server import check_access_or_exit, configure_logging, load_backend_or_exit, queue_and_launch
from janus_demo.launch.settings import parse_settings
from janus_demo.web.demo import build_demo

settings = parse_settings(sys.argv[1:] if __name__ == "__main__" else [])
logins = check_access_or_exit(settings)
configure_logging()
cache = claim_cache_dir() if __name__ == "__main__" else None  # before the UI: its files go there
backend = load_backend_or_exit(settings)
demo = build_demo(backend)

if __name__ == "__main__":
    queue_and_launch(demo, settings, backend, logins, cache)
