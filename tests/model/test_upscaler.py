"""The hand-written Real-ESRGAN generator: official key layout, exact 2x output, refusals that name the file."""

import threading

import pytest
import torch
from PIL import Image
from support.upscaler import held_upscaler, tiny_upscaler, tiny_upscaler_file

from janus_demo.model import upscaler as up

CPU = torch.device("cpu")


def test_the_x2plus_layout_loads_strictly_with_16_7_million_parameters(tmp_path):
    """RealESRGAN_x2plus.pth's layout (BasicSR names, 12 input channels, 23 blocks) loads into our module."""
    with torch.device("meta"):
        shapes = {key: tensor.shape for key, tensor in up.RRDBNet(scale=2).state_dict().items()}
    assert len(shapes) == 2 + 23 * 3 * 5 * 2 + 5 * 2  # conv_first, 23 RRDBs x 3 dense blocks x 5 convs, 5 convs
    assert shapes["conv_first.weight"] == (64, 12, 3, 3)
    assert shapes["body.22.rdb3.conv5.weight"] == (64, 64 + 4 * 32, 3, 3)
    assert {
        "conv_body.bias",
        "conv_up1.weight",
        "conv_up2.weight",
        "conv_hr.weight",
        "conv_last.weight",
    } <= shapes.keys()
    path = tmp_path / "RealESRGAN_x2plus.pth"
    torch.save({"params_ema": {key: torch.zeros(shape) for key, shape in shapes.items()}}, path)
    loaded = up.load_upscaler(str(path), CPU)
    assert loaded.scale == 2 and len(loaded.net.body) == 23
    assert round(sum(p.numel() for p in loaded.net.parameters()) / 1e6, 2) == 16.70


@pytest.mark.parametrize("size", [(384, 384), (101, 77)])
def test_the_output_is_exactly_twice_the_input(tmp_path, size):
    upscaler = tiny_upscaler(tmp_path)
    result = upscaler.upscale(Image.effect_noise(size, 60).convert("RGB"))
    assert result.size == (2 * size[0], 2 * size[1]) and result.mode == "RGB"
    assert result.tobytes() != upscaler.upscale(Image.new("RGB", size, (200, 30, 90))).tobytes(), "it reads the input"


def test_a_raw_state_dict_and_safetensors_load_too(tmp_path):
    from safetensors.torch import save_file

    raw = tiny_upscaler_file(tmp_path, wrap=None)
    assert up.load_upscaler(str(raw), CPU).scale == 2
    state = torch.load(raw, weights_only=True)
    save_file(state, tmp_path / "tiny.safetensors")
    assert up.load_upscaler(str(tmp_path / "tiny.safetensors"), CPU).upscale(Image.new("RGB", (8, 8))).size == (16, 16)


def test_files_that_are_not_2x_upscalers_are_refused_naming_the_file(tmp_path, tiny_dir):
    janus = next(tiny_dir.glob("*.safetensors"))
    with pytest.raises(up.UpscalerError, match=f"{janus}.*not a Real-ESRGAN RRDBNet checkpoint"):
        up.load_upscaler(str(janus), CPU)
    torch.save({"weight": torch.ones(3)}, tmp_path / "random.pth")
    with pytest.raises(up.UpscalerError, match="random.pth is not a Real-ESRGAN RRDBNet checkpoint"):
        up.load_upscaler(str(tmp_path / "random.pth"), CPU)
    (tmp_path / "notes.pth").write_text("hello")
    with pytest.raises(up.UpscalerError, match="notes.pth could not be read as a checkpoint"):
        up.load_upscaler(str(tmp_path / "notes.pth"), CPU)
    state = torch.load(tiny_upscaler_file(tmp_path), weights_only=True)["params_ema"]
    del state["conv_hr.bias"]
    torch.save(state, tmp_path / "broken.pth")
    with pytest.raises(up.UpscalerError, match="broken.pth is not a Real-ESRGAN.*conv_hr.bias"):
        up.load_upscaler(str(tmp_path / "broken.pth"), CPU)
    four = tiny_upscaler_file(tmp_path, scale=4)
    with pytest.raises(up.UpscalerError, match="tiny-x4.pth is a 4x upscaler; the app offers Upscale 2x only"):
        up.load_upscaler(str(four), CPU)


def test_a_missing_file_or_uncached_hub_id_fails_at_once_in_one_line(tmp_path, monkeypatch):
    with pytest.raises(up.UpscalerError, match="'missing.pth' does not exist"):
        up.load_upscaler("missing.pth", CPU)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(up.hub, "offline_mode", lambda: True)  # the constant is read when huggingface_hub loads
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    for spec in ("someone/no-such-upscaler", "someone/no-such-upscaler:RealESRGAN_x2plus.pth"):
        with pytest.raises(up.UpscalerError, match="is not in the local cache and the Hub cannot be reached") as e:
            up.load_upscaler(spec, CPU)
        assert "\n" not in str(e.value) and "--upscaler PATH" in str(e.value)


def test_a_cached_hub_file_loads_offline(tmp_path, monkeypatch):
    """A hub id resolves through huggingface_hub's cache: by file name, or the repo's only weights file."""
    calls = []

    def download(repo_id, filename, local_files_only):
        calls.append((repo_id, filename, local_files_only))
        return str(tiny_upscaler_file(tmp_path))

    snapshot = tmp_path / "snapshot"
    snapshot.mkdir()
    tiny_upscaler_file(snapshot)
    monkeypatch.setattr(up.hub, "offline_mode", lambda: True)
    monkeypatch.setattr("huggingface_hub.hf_hub_download", download)
    monkeypatch.setattr("huggingface_hub.snapshot_download", lambda repo_id, local_files_only: str(snapshot))
    assert up.load_upscaler("someone/esrgan:tiny-x2.pth", CPU).scale == 2
    assert up.load_upscaler("someone/esrgan", CPU).scale == 2
    assert calls == [("someone/esrgan", "tiny-x2.pth", True), ("someone/esrgan", "tiny-x2.pth", True)]
    tiny_upscaler_file(snapshot, scale=4)
    with pytest.raises(
        up.UpscalerError, match="has 2 weights files .*tiny-x2.pth, tiny-x4.pth.*someone/esrgan:FILENAME"
    ):
        up.load_upscaler("someone/esrgan", CPU)


def test_stop_ends_an_upscale_between_blocks(tmp_path):
    stop = threading.Event()
    stop.set()
    with pytest.raises(up.Stopped):
        tiny_upscaler(tmp_path).upscale(Image.new("RGB", (64, 64)), stop)


def test_progress_is_the_share_of_the_work_after_each_block_and_changes_nothing(tmp_path):
    upscaler = tiny_upscaler(tmp_path, blocks=3)
    image = Image.effect_noise((64, 48), 60).convert("RGB")
    shares = []
    assert upscaler.upscale(image, progress=shares.append).tobytes() == upscaler.upscale(image).tobytes()
    assert len(shares) == 3 and 0 < shares[0] < shares[1] < shares[2] < 1
    with torch.device("meta"):
        x2plus = up.RRDBNet(scale=2).work_shares(192 * 192)  # RealESRGAN_x2plus on a 384x384 image
    assert len(x2plus) == 23 and x2plus[0] == pytest.approx(0.04, abs=0.005)
    assert x2plus[-1] == pytest.approx(0.92, abs=0.005), "the full-size convs after the blocks: the last 8%"


def test_stop_during_an_upscale_ends_it_before_the_next_block(tmp_path):
    held, stop, told = held_upscaler(tmp_path), threading.Event(), []  # three blocks; the second waits
    worker = threading.Thread(target=lambda: told.append(catch_stopped(held.upscaler, stop)))
    worker.start()
    assert held.waiting.wait(60)
    stop.set()  # Stop while the upscale is in its second block
    held.gate.set()
    worker.join(60)
    assert told == ["stopped"] and held.ran == [0, 1], "the third block never ran"


def catch_stopped(upscaler, stop):
    try:
        upscaler.upscale(Image.new("RGB", (32, 32)), stop)
    except up.Stopped:
        return "stopped"
    return "finished"


def test_no_memory_check_off_cuda(tmp_path):
    assert up.memory_problem(tiny_upscaler(tmp_path), 1024, 1024) is None
