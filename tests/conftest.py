"""Shared fixtures: a tiny random-weight Janus built once per session, and the app served on a free port.

Two tiny models: `loaded_tiny` keeps Janus-Pro's 24x24 token grid and 384 px images with its real processor
(for what must hold on the real grid: the loop against transformers' generate, forced tokens, the VQ
encoder); `loaded_small` draws 8x8 tokens, 128 px, in 64 steps instead of 576 (everything else about images).
"""

import os
import threading

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import pytest  # noqa: E402
import torch  # noqa: E402

from janus_demo.model.loading import load_janus  # noqa: E402
from janus_demo.model.tiny import build_tiny_janus  # noqa: E402

# On 2 shared cores one intra-op thread is 2-3x faster than two (OpenMP contention; measured).
torch.set_num_threads(1)

SMALL_GRID = 8  # tokens a side of `loaded_small`
# pytest-xdist workers for the whole suite. On 2 cores: part of every test waits (browsers, servers, the fakes'
# delays), and a third worker fills those waits: both cores were 94% busy instead of 81%, 6:15 instead of 6:50.
WORKERS = 3


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config):
    """The README's command (`python -m pytest`, no paths: the testpaths) runs on WORKERS xdist workers, each test
    module on one worker (its served apps and browser set up once); a run of chosen tests stays in one process
    (what tests print with -s shows) unless it asks for -n."""
    # By hand, not in pyproject's addopts: addopts cannot tell the whole suite from one file, and two workers for
    # each run of one file would load a shared 2-core machine for nothing. Runs before xdist's own hook (tryfirst,
    # registered later).
    whole_suite = config.args_source == pytest.Config.ArgsSource.TESTPATHS
    asked = getattr(config.option, "numprocesses", 0) is not None  # -n given, or xdist missing / disabled
    if whole_suite and not asked and not hasattr(config, "workerinput"):
        config.option.numprocesses, config.option.dist = WORKERS, "loadscope"


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory):
    """A tiny checkpoint folder, written with the project's own builder."""
    return build_tiny_janus(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="session")
def loaded_tiny(tiny_dir):
    """The tiny model loaded through from_pretrained, unquantized, on CPU."""
    return load_janus(str(tiny_dir), quantization="none", device="cpu")


@pytest.fixture(scope="session")
def small_dir(tmp_path_factory):
    """A tiny checkpoint folder whose images are 8x8 tokens (128 px)."""
    return build_tiny_janus(tmp_path_factory.mktemp("small"), grid=SMALL_GRID)


@pytest.fixture(scope="session")
def loaded_small(small_dir):
    """The 8x8 tiny model, loaded as `loaded_tiny` is."""
    return load_janus(str(small_dir), quantization="none", device="cpu")


@pytest.fixture(scope="session")
def small_backend(loaded_small):
    from support.service_calls import Backend

    return Backend(loaded_small)


@pytest.fixture(scope="session")
def small_url(small_backend, tmp_path_factory):
    """The full app around the 8x8 model, served on loopback for the whole session."""
    os.environ.setdefault("GRADIO_TEMP_DIR", str(tmp_path_factory.mktemp("gradio-tmp")))
    from support.serving import served

    with served(small_backend) as (_, url):
        yield url


def fresh_client(url, folder):
    """A gradio_client session of `url` downloading into `folder`, closed in the background afterwards (close()
    waits up to 1 s for its heartbeat thread)."""
    from support.serving import new_client

    c = new_client(url, folder)
    yield c
    threading.Thread(target=c.close, daemon=True).start()


@pytest.fixture
def small_client(small_url, tmp_path):
    """A fresh gradio_client session of the 8x8 app with its own download folder."""
    yield from fresh_client(small_url, tmp_path)


@pytest.fixture(scope="session")
def tiny_backend(loaded_tiny):
    from support.service_calls import Backend

    return Backend(loaded_tiny)


@pytest.fixture(scope="session")
def app_url(small_url):
    """The full app served for the API tests: the 8x8 model's (`small_backend`), since what they check does not
    depend on the grid (`tiny_url` serves the real one)."""
    return small_url


@pytest.fixture(scope="session")
def tiny_url(tiny_backend, tmp_path_factory):
    """The full app around the tiny model on Janus-Pro's own 24x24 grid, served on loopback for the session."""
    os.environ.setdefault("GRADIO_TEMP_DIR", str(tmp_path_factory.mktemp("gradio-tmp")))  # one for every app
    from support.serving import served

    with served(tiny_backend) as (_, url):
        yield url


@pytest.fixture
def tiny_client(tiny_url, tmp_path):
    """A fresh gradio_client session of the app on the real 24x24 grid, with its own download folder."""
    yield from fresh_client(tiny_url, tmp_path)


@pytest.fixture
def client(app_url, tmp_path):
    """A fresh gradio_client session (its own history) with its own download folder."""
    yield from fresh_client(app_url, tmp_path)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the test item (item.rep_call, ...) so fixtures can tell a failed test."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@pytest.fixture(scope="module")
def fake_app(loaded_tiny, tmp_path_factory):
    """The full app around a FakeBackend (real validation and GPU section, fake model work), served per module."""
    os.environ.setdefault("GRADIO_TEMP_DIR", str(tmp_path_factory.mktemp("gradio-tmp")))
    from support.fake_backend import FakeBackend
    from support.serving import served

    backend = FakeBackend(loaded_tiny)
    with served(backend) as (_, url):
        yield backend, url


@pytest.fixture
def fake(fake_app):
    """The served FakeBackend, reset for this test; its URL is `fake.url`."""
    backend, url = fake_app
    backend.reset()
    backend.url = url
    yield backend
    backend.reset()


@pytest.fixture(scope="module")
def upscaling(loaded_tiny, tmp_path_factory):
    """A served FakeBackend with a tiny 2x upscaler (support.upscaler), per module; its URL is `.url`."""
    from support.fake_backend import FakeBackend
    from support.serving import served
    from support.upscaler import tiny_upscaler

    backend = FakeBackend(loaded_tiny, upscaler=tiny_upscaler(tmp_path_factory.mktemp("upscaler")))
    with served(backend) as (_, url):
        backend.url = url
        yield backend
