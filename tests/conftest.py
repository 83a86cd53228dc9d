"""Shared fixtures: a tiny random-weight Janus built once per session, and the app served on a free port."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import pytest  # noqa: E402

from janus_demo.loading import load_janus  # noqa: E402
from janus_demo.tiny import build_tiny_janus  # noqa: E402


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory):
    """A tiny checkpoint folder, written with the project's own builder."""
    return build_tiny_janus(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="session")
def loaded_tiny(tiny_dir):
    """The tiny model loaded through from_pretrained, unquantized, on CPU."""
    return load_janus(str(tiny_dir), quantization="none", device="cpu")
