"""--upscaler / JANUS_UPSCALER: read like every flag, and a bad checkpoint stops the start in one line."""

import pytest
from support.upscaler import tiny_upscaler_file

from janus_demo.launch.server import load_upscaler_or_exit
from janus_demo.launch.settings import parse_settings


def test_the_flag_and_its_environment_twin(monkeypatch):
    assert parse_settings([]).upscaler is None
    monkeypatch.setenv("JANUS_UPSCALER", "nateraw/real-esrgan:RealESRGAN_x2plus.pth")
    assert parse_settings([]).upscaler == "nateraw/real-esrgan:RealESRGAN_x2plus.pth"
    assert parse_settings(["--upscaler", "x2.pth"]).upscaler == "x2.pth", "the flag wins"


def test_a_2x_checkpoint_loads_and_others_stop_the_start(tmp_path, capsys):
    assert load_upscaler_or_exit(parse_settings([])) is None
    two = load_upscaler_or_exit(parse_settings(["--upscaler", str(tiny_upscaler_file(tmp_path))]))
    assert two.scale == 2 and str(two.device) == "cpu"
    for bad, message in [
        (tiny_upscaler_file(tmp_path, scale=4), "is a 4x upscaler; the app offers Upscale 2x only"),
        (tmp_path / "missing.pth", "does not exist"),
    ]:
        with pytest.raises(SystemExit) as stopped:
            load_upscaler_or_exit(parse_settings(["--upscaler", str(bad)]))
        error = capsys.readouterr().err
        assert stopped.value.code == 2 and error.startswith("error: ") and message in error
        assert error.count("\n") == 1, "one line"
