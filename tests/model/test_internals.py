"""The transformers internals adapter: every function works on the installed transformers, or this fails.

When transformers is upgraded, this file says so first: re-check janus_demo/model/internals.py against the
new source, then bump CHECKED_TRANSFORMERS.
"""

import bitsandbytes as bnb
import pytest
import torch
import transformers
from support.requests import image_request
from transformers import StaticCache

from janus_demo.model import internals
from janus_demo.model.image_loop import ImageTokenLoop
from janus_demo.model.tiny import build_tiny_janus


def test_the_installed_transformers_is_the_one_the_adapter_was_checked_against():
    assert transformers.__version__ == internals.CHECKED_TRANSFORMERS, (
        f"transformers {transformers.__version__} is installed; janus_demo/model/internals.py was checked against "
        f"{internals.CHECKED_TRANSFORMERS}: re-check every function there, then bump CHECKED_TRANSFORMERS"
    )


def test_codebook_and_token_grid(loaded_tiny):
    assert internals.codebook(loaded_tiny.model).shape == (16384, 8)
    assert internals.token_grid(loaded_tiny.model) == (24, 24)


@torch.inference_mode()
def test_decoding_every_row_equals_the_models_own_decode(loaded_tiny):
    tokens = torch.randint(0, 16384, (1, 576), generator=torch.Generator().manual_seed(0))
    ours = internals.decode_token_rows(loaded_tiny.model, tokens, rows=24)
    theirs = loaded_tiny.model.decode_image_tokens(tokens)
    torch.testing.assert_close(ours, theirs)
    assert internals.decode_token_rows(loaded_tiny.model, tokens, rows=3).shape == (1, 48, 384, 3)


@torch.inference_mode()
def test_encoding_runs_the_vq_encoder_and_picks_the_nearest_normalised_code(loaded_tiny):
    """`vqmodel.encoder` and `quant_conv` as transformers' own `vqmodel.encode` runs them; the code nearest to
    each latent once both are l2-normalised (Janus' `codebook_l2_norm`)."""
    model = loaded_tiny.model
    vq = model.model.vqmodel
    pixels = torch.rand((2, 3, 384, 384), generator=torch.Generator().manual_seed(0)) * 2 - 1
    tokens = internals.encode_image_tokens(model, pixels)
    assert tokens.shape == (2, 576) and tokens.dtype == torch.long
    latent = vq.quant_conv(vq.encode(pixels).last_hidden_state).permute(0, 2, 3, 1).reshape(2, 576, -1)
    codes = internals.codebook(model)
    distances = torch.cdist(
        torch.nn.functional.normalize(latent, dim=-1), torch.nn.functional.normalize(codes, dim=-1)[None]
    )
    assert torch.equal(tokens, distances.argmin(dim=-1))


def test_cache_write_positions_are_device_tensors_that_advance(loaded_tiny):
    loop = ImageTokenLoop(loaded_tiny, image_request(loaded_tiny, guidance_scale=1.0, preview_mode="off"))
    assert isinstance(loop.cache, StaticCache)
    positions = internals.cache_write_positions(loop.cache)
    assert positions and all(isinstance(p, torch.Tensor) for p in positions)
    assert [int(p) for p in positions] == [0] * len(positions)
    loop.advance()  # the prompt's prefill
    loop.advance()  # one image token
    prompt_len = loop.request.prompt_ids.shape[1]
    assert [int(p) for p in internals.cache_write_positions(loop.cache)] == [prompt_len + 1] * len(positions)
    assert internals.cache_write_positions(object()) is None


@torch.inference_mode()
def test_the_language_model_and_generation_head_score_image_tokens(loaded_small):
    model = loaded_small.model
    assert internals.language_model(torch.nn.Linear(1, 1)).__class__ is torch.nn.Linear  # a stand-in: itself
    embeds = model.get_input_embeddings()(torch.tensor([[1, 2, 3]]))
    hidden = internals.language_model(model)(inputs_embeds=embeds, use_cache=False).last_hidden_state
    scores = internals.generation_head(model)(hidden[:, -1, :])
    assert scores.shape == (1, internals.codebook(model).shape[0])
    image_embeds = internals.generation_aligner(model)(model.model.generation_embeddings(torch.tensor([[0]])))
    assert image_embeds.shape == embeds[:, :1].shape


def test_cache_tensors_are_every_layers_keys_and_values(loaded_small):
    loop = ImageTokenLoop(loaded_small, image_request(loaded_small, guidance_scale=1.0, preview_mode="off"))
    layers = loaded_small.model.config.get_text_config(decoder=True).num_hidden_layers
    loop.advance()  # the prefill: a StaticLayer makes its tensors on its first write
    tensors = internals.cache_tensors(loop.cache)
    assert len(tensors) == 2 * layers and all(isinstance(t, torch.Tensor) and t.numel() for t in tensors)
    assert internals.cache_tensors(object()) == []


def test_the_streamer_base_is_what_generate_accepts(loaded_small):
    class Count(internals.Streamer):
        def __init__(self) -> None:
            self.puts, self.ended = 0, False

        def put(self, value: torch.Tensor) -> None:
            self.puts += 1

        def end(self) -> None:
            self.ended = True

    streamer = Count()
    ids = torch.tensor([[1, 2, 3]])
    loaded_small.model.generate(input_ids=ids, max_new_tokens=2, do_sample=False, streamer=streamer)
    assert streamer.puts >= 2 and streamer.ended  # the prompt, then each new token


def test_the_generation_config_survives_save_and_load(tmp_path):
    from janus_demo.model.loading import load_janus

    loaded = load_janus(str(build_tiny_janus(tmp_path / "tiny")), quantization="none", device="cpu")
    assert loaded.model.generation_config.generation_kwargs["boi_token_id"] is not None


def test_quantizes_follows_the_skip_list():
    skip = ["lm_head", "model.vision_model"]
    assert internals.quantizes("model.language_model.layers.0.mlp.up_proj", skip)
    assert not internals.quantizes("lm_head", skip)
    assert not internals.quantizes("model.vision_model.encoder.layers.0.mlp.fc1", skip)


def test_skip_weight_init_switches_torch_initialisers_off_for_its_duration():
    original = torch.nn.init.normal_
    with internals.skip_weight_init():
        assert torch.nn.init.normal_ is not original
    assert torch.nn.init.normal_ is original


@pytest.mark.parametrize("mode", ["4bit", "8bit"])
@pytest.mark.parametrize(("fan_in", "fan_out"), [(128, 256), (256, 320), (2048, 5632)])
def test_bitsandbytes_linear_and_its_byte_formulas(mode, fan_in, fan_out):
    from janus_demo.model.precision import quantization_config

    linear = torch.nn.Linear(fan_in, fan_out, bias=False, dtype=torch.bfloat16)
    torch.nn.init.normal_(linear.weight, std=0.02)
    layer = internals.bitsandbytes_linear(linear, quantization_config(mode))
    assert isinstance(layer, bnb.nn.Linear4bit if mode == "4bit" else bnb.nn.Linear8bitLt)
    weight = layer.weight
    stored = weight.numel() * weight.element_size() + internals.quantization_state_bytes(weight)
    expected = internals.nf4_bytes(fan_in * fan_out) if mode == "4bit" else internals.int8_bytes(fan_out, fan_in)
    assert stored == expected
    assert internals.quantization_state_bytes(linear.weight) == 0
    x = torch.randn(3, fan_in, dtype=torch.bfloat16)
    with torch.inference_mode():
        assert torch.nn.functional.cosine_similarity(layer(x).float(), linear(x).float(), dim=-1).min() > 0.98
    assert internals.has_int8_layers(torch.nn.Sequential(layer)) == (mode == "8bit")


def test_drop_understanding_removes_the_vision_tower_aligner_and_lm_head(tmp_path):
    from janus_demo.model.loading import load_janus

    model = load_janus(str(build_tiny_janus(tmp_path / "tiny")), quantization="none", device="cpu").model
    before = sum(p.numel() * p.element_size() for p in model.parameters())
    freed = internals.drop_understanding(model)
    after = sum(p.numel() * p.element_size() for p in model.parameters())
    assert freed > 0 and before - after == freed  # lm_head is tied to embed_tokens in the tiny model: counted once
    assert model.model.vision_model is None and model.model.aligner is None and model.lm_head is None
    assert internals.drop_understanding(model) == 0
