"""Shared fixtures: a tiny random-weight Janus built once per test session (offline, about a second)."""

import os

os.environ["HF_HUB_OFFLINE"] = "1"

import pytest  # noqa: E402

from janus_demo.loading import LoadedJanus, load_janus  # noqa: E402
from janus_demo.tiny import build_tiny_janus  # noqa: E402


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory):
    """A tiny Janus checkpoint folder."""
    return build_tiny_janus(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="session")
def loaded_tiny(tiny_dir) -> LoadedJanus:
    """The tiny checkpoint loaded on the CPU in fp32."""
    return load_janus(str(tiny_dir), quantization="none", device="cpu")
