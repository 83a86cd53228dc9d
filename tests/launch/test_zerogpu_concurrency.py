"""`--zerogpu-concurrency` / JANUS_ZEROGPU_CONCURRENCY: requests of each kind served at once on ZeroGPU only."""

import gradio as gr
import pytest

from janus_demo.launch.server import configure_queue
from janus_demo.launch.settings import parse_settings


def test_flag_and_environment_twin(monkeypatch):
    monkeypatch.delenv("JANUS_ZEROGPU_CONCURRENCY", raising=False)
    assert parse_settings([]).zerogpu_concurrency == 2
    monkeypatch.setenv("JANUS_ZEROGPU_CONCURRENCY", "4")
    assert parse_settings([]).zerogpu_concurrency == 4
    assert parse_settings(["--zerogpu-concurrency", "3"]).zerogpu_concurrency == 3  # the flag wins


@pytest.mark.parametrize("value", ["0", "5", "many"])
def test_out_of_range_is_refused_naming_the_flag(value, capsys):
    with pytest.raises(SystemExit):
        parse_settings(["--zerogpu-concurrency", value])
    assert "--zerogpu-concurrency" in capsys.readouterr().err


@pytest.mark.parametrize(("zero_gpu", "expected"), [(False, 1), (True, 3)])
def test_only_zerogpu_serves_more_than_one_at_a_time(monkeypatch, zero_gpu, expected):
    if zero_gpu:
        monkeypatch.setenv("SPACES_ZERO_GPU", "true")  # on_zero_gpu() only; spaces is already imported
    else:
        monkeypatch.delenv("SPACES_ZERO_GPU", raising=False)
    with gr.Blocks() as demo:
        gr.Button().click(lambda: None)
    configure_queue(demo, 32, zerogpu_concurrency=3)
    assert demo._queue.default_concurrency_limit == expected
