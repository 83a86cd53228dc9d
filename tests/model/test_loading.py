"""Loading through from_pretrained: the tiny build, quantization, device/dtype and clear errors."""

import time

import bitsandbytes as bnb
import pytest
import torch

from janus_demo.model.image_shape import read_image_shape
from janus_demo.model.loading import ModelLoadError, load_janus
from janus_demo.model.tiny import build_tiny_janus, ensure_tiny_janus


def test_tiny_build_is_fast_deterministic_and_reloads_offline(tmp_path, loaded_tiny):
    start = time.perf_counter()
    build_tiny_janus(tmp_path / "a", seed=0)
    assert time.perf_counter() - start < 30
    build_tiny_janus(tmp_path / "b", seed=0)
    assert (tmp_path / "a/model.safetensors").read_bytes() == (tmp_path / "b/model.safetensors").read_bytes()

    info = loaded_tiny.info()
    assert info["random_weights"] is True
    assert info["device"] == "cpu" and info["dtype"] == "float32" and info["quantization"] == "none"
    assert info["quantized_layers"] == 0
    assert loaded_tiny.model.generation_config.generation_kwargs["boi_token_id"] == (
        loaded_tiny.processor.tokenizer.convert_tokens_to_ids("<begin_of_image>")
    )


def test_tiny_keeps_janus_image_structure(loaded_tiny):
    config = loaded_tiny.model.config
    assert config.vision_config.image_size == 384 and config.vision_config.num_image_tokens == 576
    assert config.vq_config.num_embeddings == 16384
    with torch.inference_mode():
        pixels = loaded_tiny.model.decode_image_tokens(torch.zeros(1, 576, dtype=torch.long))
    assert tuple(pixels.shape) == (1, 384, 384, 3)


def test_the_tiny_grid_is_a_parameter_and_the_loaded_model_reads_it(loaded_small):
    shape = loaded_small.image_shape
    assert (shape.rows, shape.columns, shape.patch, shape.tokens, shape.size) == (8, 8, 16, 64, (128, 128))
    assert loaded_small.model.config.vision_config.num_image_tokens == 64
    assert loaded_small.processor.num_image_tokens == 64
    assert loaded_small.processor.image_processor.size == {"height": 128, "width": 128}
    with torch.inference_mode():
        pixels = loaded_small.model.decode_image_tokens(torch.zeros(1, 64, dtype=torch.long))
    assert tuple(pixels.shape) == (1, 128, 128, 3)
    config = loaded_small.model.config.to_dict()
    config["vision_config"]["num_image_tokens"] = 576  # a config whose generation length is not its grid
    with pytest.raises(ValueError, match="num_image_tokens"):
        read_image_shape(type(loaded_small.model.config).from_dict(config))


def test_the_tiny_builder_takes_the_grid_and_keeps_janus_pros_by_default(tmp_path):
    import json

    from janus_demo.model.tiny import main

    main([str(tmp_path / "small"), "--grid", "6"])
    main([str(tmp_path / "default")])
    assert json.loads((tmp_path / "small/config.json").read_text())["vision_config"]["num_image_tokens"] == 36
    assert json.loads((tmp_path / "default/config.json").read_text())["vision_config"]["image_size"] == 384


def test_model_tiny_builds_once_into_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("JANUS_TINY_DIR", str(tmp_path / "cache"))
    first = ensure_tiny_janus()
    stamp = (first / "model.safetensors").stat().st_mtime_ns
    assert ensure_tiny_janus() == first
    assert (first / "model.safetensors").stat().st_mtime_ns == stamp
    loaded = load_janus("tiny", quantization="none", device="cpu")
    assert loaded.model_id == "tiny" and loaded.random_weights


def answer(loaded, prompt="Hello", tokens=8):
    inputs = loaded.processor(text=[prompt], return_tensors="pt")
    with torch.inference_mode():
        out = loaded.model.generate(**inputs, max_new_tokens=tokens, min_new_tokens=tokens, do_sample=False)
    return out[0, inputs["input_ids"].shape[1] :]


@pytest.mark.parametrize("mode, layer_type", [("4bit", bnb.nn.Linear4bit), ("8bit", bnb.nn.Linear8bitLt)])
def test_quantization_replaces_only_language_model_linears(tiny_dir, loaded_tiny, mode, layer_type):
    loaded = load_janus(str(tiny_dir), quantization=mode, device="cpu")
    quantized = {name for name, module in loaded.model.named_modules() if isinstance(module, layer_type)}
    lm_linears = {
        name
        for name, module in loaded_tiny.model.named_modules()
        if isinstance(module, torch.nn.Linear) and name.startswith("model.language_model.")
    }
    assert quantized == lm_linears and len(quantized) == 14  # 2 layers x (q, k, v, o, gate, up, down)
    head_is_int8 = isinstance(loaded.model.get_output_embeddings(), bnb.nn.Linear8bitLt)
    assert head_is_int8 == (mode == "4bit")  # the lean layout: lm_head in LLM.int8 next to a 4-bit model
    info = loaded.info()
    assert info["quantization"] == mode and info["quantized_layers"] == 14 + head_is_int8
    assert info["lm_head"] == ("int8" if mode == "4bit" else "float32") and info["chat"] is True
    assert info["footprint_bytes"] < loaded_tiny.info()["footprint_bytes"]
    assert len(answer(loaded)) == 8  # the quantized model still answers


def test_4bit_computes_in_the_resolved_dtype(tiny_dir):
    loaded = load_janus(str(tiny_dir), quantization="4bit", device="cpu")  # CPU: fp32
    layers = [m for m in loaded.model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert layers and {layer.compute_dtype for layer in layers} == {torch.float32}


def test_images_only_leaves_out_the_understanding_parts_and_still_draws(small_dir, loaded_small):
    from support.requests import generate_image_tokens, image_request

    loaded = load_janus(str(small_dir), quantization="none", device="cpu", images_only=True)
    names = {name.split(".")[0] + "." + name.split(".")[1] for name, _ in loaded.model.named_parameters()}
    assert "model.vision_model" not in names and "model.aligner" not in names
    assert loaded.model.get_output_embeddings() is None and not loaded.can_chat
    info = loaded.info()
    assert info["chat"] is False and info["lm_head"] == "not loaded"
    assert info["footprint_bytes"] < loaded_small.info()["footprint_bytes"]
    assert loaded.image_shape == loaded_small.image_shape
    request = image_request(loaded, seed=3, guidance_scale=5.0)
    assert torch.equal(generate_image_tokens(loaded, request), generate_image_tokens(loaded_small, request))


def test_auto_quantization_is_none_on_cpu_and_says_why(tiny_dir):
    loaded = load_janus(str(tiny_dir), quantization="auto", device="cpu")
    assert loaded.quantization == "none" and loaded.dtype == torch.float32
    assert loaded.info()["quantization_reason"] == "cpu: fp32, no quantization"


@pytest.mark.parametrize("model", ["/no/such/folder", "nobody/no-such-janus"])
def test_missing_model_is_one_actionable_line(model):
    with pytest.raises(ModelLoadError) as caught:
        load_janus(model, device="cpu")
    message = str(caught.value)
    assert "\n" not in message and "--model PATH" in message and "--model tiny" in message


def test_cuda_without_a_gpu_is_a_clear_error():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ModelLoadError, match="--device cpu"):
        load_janus("tiny", device="cuda")


def test_load_errors_name_the_fix():
    from janus_demo.model.loading import explain_load_error

    cpu = torch.device("cpu")
    oom = explain_load_error(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB"), "big", "none", cpu)
    assert "--quantization 4bit" in oom and "Janus-Pro-1B" in oom
    bnb_error = explain_load_error(RuntimeError("bitsandbytes: no kernel for this device"), "m", "4bit", cpu)
    assert "--quantization none" in bnb_error
    assert "\n" not in explain_load_error(ValueError("a\nb"), "m", "none", cpu)


def test_zero_gpu_loads_on_the_cpu_first(monkeypatch):
    from janus_demo.model.loading import device_map

    cuda = torch.device("cuda")
    monkeypatch.delenv("SPACES_ZERO_GPU", raising=False)
    assert device_map(cuda) == {"": 0}
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    assert device_map(cuda) == {"": "cpu"}
    assert device_map(torch.device("cpu")) == {"": "cpu"}


@pytest.mark.parametrize("mode", ["4bit", "8bit"])
def test_explicit_quantization_is_refused_on_zero_gpu_naming_the_way_out(monkeypatch, tiny_dir, mode):
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    started = time.perf_counter()
    with pytest.raises(
        ModelLoadError, match=rf"--quantization {mode} is not available on ZeroGPU.*--quantization auto"
    ):
        load_janus(str(tiny_dir), quantization=mode, device="cpu")
    assert time.perf_counter() - started < 1.0, "refused before loading anything"


# --- a hub id when the hub cannot be reached: decided in seconds, not after minutes of retries ----------


@pytest.fixture
def hub_state(monkeypatch):
    """Pretend the hub is online or not and the model cached or not; count reachability checks."""
    from janus_demo.model import hub

    state = {"reachable": True, "cached": False, "checks": 0}

    def reachable(timeout=hub.REACH_TIMEOUT_S):
        state["checks"] += 1
        return state["reachable"]

    monkeypatch.setattr(hub, "offline_mode", lambda: False)
    monkeypatch.setattr(hub, "hub_reachable", reachable)
    monkeypatch.setattr(hub, "is_cached", lambda repo_id: state["cached"])
    return state


def test_an_unreachable_hub_loads_the_cached_copy_or_fails_at_once_naming_the_ways_out(hub_state, tiny_dir):
    from janus_demo.model.loading import local_files_only

    assert local_files_only("deepseek-community/Janus-Pro-1B", "deepseek-community/Janus-Pro-1B") is False  # online
    hub_state.update(reachable=False, cached=True)
    assert local_files_only("deepseek-community/Janus-Pro-1B", "deepseek-community/Janus-Pro-1B") is True
    hub_state.update(cached=False)
    with pytest.raises(ModelLoadError) as caught:
        load_janus("deepseek-community/Janus-Pro-1B", device="cpu")
    message = str(caught.value)
    assert "\n" not in message and "cannot be reached" in message
    assert "--model tiny" in message and "--model PATH" in message and "HF_HUB_OFFLINE=1" in message
    checks = hub_state["checks"]
    assert local_files_only(str(tiny_dir), str(tiny_dir)) is False and hub_state["checks"] == checks, (
        "a local folder never asks the hub"
    )
