"""`--quantization auto`'s choice (a table of GPUs and models, on CPU) and the lean layout's bytes and values."""

import bitsandbytes as bnb
import pytest
import torch
from support.gpu import needs_cuda
from transformers import JanusConfig, JanusVisionConfig, JanusVQVAEConfig, LlamaConfig

from janus_demo.model import internals, placement, precision
from janus_demo.model.options import ZERO_GPU_ENV
from janus_demo.model.precision import Gpu, Needs

GB = 10**9


def pro_config(hidden: int, layers: int, heads: int, intermediate: int, vision_layers: int = 24) -> JanusConfig:
    """A Janus-Pro-shaped config (1B: 2048/24/16/5632, 7B: 4096/30/32/11008; the real SigLIP-L tower)."""
    text = LlamaConfig(
        vocab_size=102400,
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        max_position_embeddings=16384,
    )
    vision = JanusVisionConfig(projection_dim=hidden, num_hidden_layers=vision_layers)
    vq = JanusVQVAEConfig(projection_dim=hidden, image_token_embed_dim=hidden)
    return JanusConfig(text_config=text, vision_config=vision, vq_config=vq, tie_word_embeddings=False)


@pytest.fixture(scope="module")
def needs() -> dict[str, Needs]:
    return {
        "1b": precision.needs_for(pro_config(2048, 24, 16, 5632)),
        "7b": precision.needs_for(pro_config(4096, 30, 32, 11008)),
        "7b images only": precision.needs_for(pro_config(4096, 30, 32, 11008), images_only=True),
    }


# --- the choice: a table of cases ---------------------------------------------------------------------

H100, L4, A10G, T4, V100, RTX_8GB = (9, 0), (8, 9), (8, 6), (7, 5), (7, 0), (8, 9)

CASES = [  # model, GPU, free GB, compute capability -> quantization, dtype
    ("1b", "H100 80 GB", 79.0, H100, "none", torch.bfloat16),
    ("1b", "T4 16 GB", 14.5, T4, "none", torch.float16),  # bf16 would be emulated on a T4
    ("1b", "an 8 GB card", 7.5, RTX_8GB, "none", torch.bfloat16),
    ("1b", "a busy card, 5 GB free", 5.0, A10G, "8bit", torch.bfloat16),
    ("1b", "a busy card, 4.2 GB free", 4.2, A10G, "4bit", torch.bfloat16),
    ("7b", "H100 80 GB", 79.0, H100, "none", torch.bfloat16),
    ("7b", "V100 32 GB", 31.0, V100, "none", torch.float16),
    ("7b", "L4 24 GB", 22.0, L4, "none", torch.bfloat16),
    ("7b", "T4 16 GB", 14.5, T4, "8bit", torch.float16),
    ("7b", "A10G 24 GB, half used", 13.0, A10G, "8bit", torch.bfloat16),
    ("7b", "a 12 GB card", 11.0, RTX_8GB, "4bit", torch.bfloat16),
    ("7b", "an 8 GB card", 7.5, RTX_8GB, "4bit", torch.bfloat16),  # 4 images do not fit: 4-bit anyway
    ("7b images only", "an 8 GB card", 7.5, RTX_8GB, "4bit", torch.bfloat16),  # they do without chat
]


@pytest.mark.parametrize(("model", "gpu", "free_gb", "capability", "mode", "dtype"), CASES, ids=lambda v: str(v))
def test_auto_picks_the_best_quality_that_fits(needs, model, gpu, free_gb, capability, mode, dtype):
    choice = precision.choose_precision(needs[model], Gpu(int(free_gb * GB), capability, gpu))
    assert (choice.quantization, choice.dtype) == (mode, dtype), choice.reason
    assert choice.reason.startswith(f"auto on {gpu}: ") and f"{free_gb:.1f} GB free" in choice.reason
    assert ("no native bf16" in choice.reason) == (dtype == torch.float16)
    if mode != "none":  # the better modes it passed over are named with what they would need
        assert "would need" in choice.reason
    assert ("4-bit anyway" in choice.reason) == (needs[model].total(mode) > free_gb * GB)


def test_a_mode_fits_when_its_need_equals_the_free_memory_and_loading_peaks_count():
    serving, loading = {"none": 10, "8bit": 6, "4bit": 4}, {"none": 10, "8bit": 9, "4bit": 5}
    needs = Needs(serving=serving, loading=loading, working=2, images=4)
    assert needs.total("none") == 12 and needs.total("8bit") == 9 and needs.total("4bit") == 6
    assert precision.choose_precision(needs, Gpu(12, H100)).quantization == "none"
    assert precision.choose_precision(needs, Gpu(11, H100)).quantization == "8bit"
    assert precision.choose_precision(needs, Gpu(8, H100)).quantization == "4bit"  # 8-bit's load peak: 9
    nothing = precision.choose_precision(needs, Gpu(5, H100))
    assert nothing.quantization == "4bit" and "4-bit anyway" in nothing.reason


def test_the_7b_needs_shrink_with_each_mode_and_images_only(needs):
    seven, lean = needs["7b"], needs["7b images only"]
    assert seven.serving["none"] > seven.serving["8bit"] > seven.serving["4bit"]
    assert 14.5 * GB < seven.serving["none"] < 15.0 * GB  # Janus-Pro-7B: 7.4 B parameters in bf16
    assert seven.serving["4bit"] < 4.6 * GB  # embed_tokens on the CPU, lm_head int8, quantization state counted
    assert lean.serving["4bit"] < seven.serving["4bit"] - 0.9 * GB  # no vision tower, aligner, lm_head
    assert seven.loading["4bit"] > seven.serving["4bit"]  # embed_tokens and lm_head arrive in bf16
    assert 2.5 * GB < seven.working < 4.0 * GB  # 4 images with guidance


def fail(*_):
    raise AssertionError("not to be asked")


@pytest.mark.parametrize(
    ("quantization", "dtype", "device", "zero_gpu", "expected"),
    [
        ("auto", "auto", "cpu", False, ("none", torch.float32, "cpu: fp32, no quantization")),
        ("4bit", "auto", "cpu", False, ("4bit", torch.float32, "cpu: fp32, 4-bit")),
        ("auto", "auto", "cuda", True, ("none", torch.bfloat16, "ZeroGPU: bf16, no quantization")),
        ("auto", "float16", "cuda", True, ("none", torch.float16, "ZeroGPU: fp16, no quantization")),
        ("4bit", "auto", "cuda", False, ("4bit", torch.float16, "4-bit as asked, fp16")),  # on a T4
        ("none", "bfloat16", "cuda", False, ("none", torch.bfloat16, "no quantization as asked, bf16")),
    ],
)
def test_cpu_zero_gpu_and_explicit_settings_never_ask_for_the_models_needs(
    monkeypatch, quantization, dtype, device, zero_gpu, expected
):
    monkeypatch.setenv(ZERO_GPU_ENV, "1" if zero_gpu else "0")
    t4 = (lambda _device: Gpu(14 * GB, T4, "T4")) if device == "cuda" and not zero_gpu else fail
    choice = precision.resolve_precision(quantization, dtype, torch.device(device), needs=fail, gpu=t4)
    assert (choice.quantization, choice.dtype, choice.reason) == expected


def test_auto_on_a_gpu_asks_for_the_needs_and_keeps_an_explicit_dtype(monkeypatch, needs):
    monkeypatch.delenv(ZERO_GPU_ENV, raising=False)
    t4 = lambda _device: Gpu(int(14.5 * GB), T4, "T4")  # noqa: E731
    choice = precision.resolve_precision("auto", "auto", torch.device("cuda"), lambda: needs["7b"], t4)
    assert (choice.quantization, choice.dtype) == ("8bit", torch.float16)
    choice = precision.resolve_precision("auto", "float32", torch.device("cuda"), lambda: needs["7b"], t4)
    assert choice.dtype == torch.float32


def test_bf16_counts_as_native_from_compute_capability_8():
    assert [precision.gpu_dtype(cc) for cc in [(7, 0), (7, 5), (8, 0), (8, 6), (9, 0)]] == [torch.float16] * 2 + [
        torch.bfloat16
    ] * 3
    assert precision.quantization_config("4bit", torch.float16).bnb_4bit_compute_dtype == torch.float16


# --- the bytes: the estimate from the shape equals the built model ----------------------------------------


@pytest.mark.parametrize("images_only", [False, True])
@pytest.mark.parametrize("quantization", ["none", "8bit", "4bit"])
def test_weight_bytes_from_the_shape_equal_the_built_and_laid_out_model(quantization, images_only):
    config = pro_config(128, 2, 4, 256, vision_layers=1)
    estimate = precision.weight_bytes(precision.meta_model(config), quantization, images_only)
    loading = precision.weight_bytes(precision.meta_model(config), quantization, images_only, loading=True)
    model = built(config)
    quantize(model, quantization)
    assert loading == precision.placed_bytes(model)  # as from_pretrained leaves it
    if images_only:
        internals.drop_understanding(model)
    if quantization == "4bit" and not images_only:
        placement.lm_head_to_int8(model)
    if quantization != "none":
        placement.keep_embeddings_on_cpu(model)  # what make_lean does on a GPU
    assert estimate == precision.placed_bytes(model)


def built(config: JanusConfig):
    from transformers import JanusForConditionalGeneration

    torch.manual_seed(0)
    with precision._default_dtype(torch.bfloat16):
        return JanusForConditionalGeneration(config).eval()


def quantize(model, quantization: str) -> None:
    if quantization == "none":
        return
    config = precision.quantization_config(quantization, torch.bfloat16)
    for name, module in list(model.named_modules()):
        if type(module) is torch.nn.Linear and internals.quantizes(name, config.llm_int8_skip_modules):
            model.set_submodule(name, internals.bitsandbytes_linear(module, config))


# --- the lean layout's values ------------------------------------------------------------------------------


def test_cpu_embedding_gives_the_same_rows_and_stays_on_the_cpu(loaded_tiny):
    table = loaded_tiny.model.get_input_embeddings()
    lean = placement.CpuEmbedding(table)
    ids = torch.tensor([[0, 5, 17], [3, 3, 300]])
    assert torch.equal(lean(ids), table(ids))
    holder = torch.nn.Sequential(lean).to("meta")  # a model move leaves the table where it is
    assert holder[0].table.device.type == "cpu" and holder[0].weight is holder[0].table
    assert not list(lean.parameters()) and not list(lean.buffers())


def test_lm_head_int8_stays_close_to_the_full_precision_head(tiny_dir):
    from janus_demo.model.loading import load_janus

    loaded = load_janus(str(tiny_dir), quantization="none", device="cpu")
    head = loaded.model.get_output_embeddings()
    hidden = torch.randn(64, head.in_features, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        reference = head(hidden)
        placement.lm_head_to_int8(loaded.model)
        int8 = loaded.model.get_output_embeddings()(hidden).float()
    assert isinstance(loaded.model.get_output_embeddings(), bnb.nn.Linear8bitLt)
    assert (int8 - reference).abs().max() < 0.02 * reference.abs().max()
    assert (int8.argmax(-1) == reference.argmax(-1)).float().mean() > 0.9


# --- on a real GPU (skipped elsewhere) ----------------------------------------------------------------------


@needs_cuda
def test_auto_on_this_gpu_names_it_and_picks_the_dtype_by_compute_capability(tiny_dir, monkeypatch):
    from janus_demo.model.loading import load_janus

    monkeypatch.delenv(ZERO_GPU_ENV, raising=False)
    loaded = load_janus(str(tiny_dir), quantization="auto", device="cuda")
    capability = torch.cuda.get_device_capability()
    assert loaded.quantization == "none"  # the tiny model fits anywhere
    assert loaded.dtype == (torch.bfloat16 if capability >= (8, 0) else torch.float16)
    assert torch.cuda.get_device_name() in loaded.info()["quantization_reason"]


@needs_cuda
@pytest.mark.parametrize("mode", ["8bit", "4bit"])
def test_quantized_cuda_models_gather_embeddings_on_the_cpu_and_still_chat_and_draw(tiny_dir, mode):
    from support.requests import generate_image_tokens, image_request

    from janus_demo.model.loading import load_janus

    loaded = load_janus(str(tiny_dir), quantization=mode, device="cuda", dtype="bfloat16")
    embeddings = loaded.model.get_input_embeddings()
    assert isinstance(embeddings, placement.CpuEmbedding) and embeddings.table.device.type == "cpu"
    assert loaded.info()["embed_tokens"].startswith("cpu")
    inputs = loaded.processor(text=["Hello"], return_tensors="pt").to("cuda")
    with torch.inference_mode():
        out = loaded.model.generate(**inputs, max_new_tokens=4, min_new_tokens=4, do_sample=False)
    assert out.shape[1] == inputs["input_ids"].shape[1] + 4
    assert generate_image_tokens(loaded, image_request(loaded, seed=1)).shape == (1, 576)


@needs_cuda
def test_images_only_on_cuda_holds_less_gpu_memory(tiny_dir):
    from janus_demo.model.loading import load_janus

    full = load_janus(str(tiny_dir), quantization="none", device="cuda", dtype="bfloat16")
    before = torch.cuda.memory_allocated()
    lean = load_janus(str(tiny_dir), quantization="none", device="cuda", dtype="bfloat16", images_only=True)
    added = torch.cuda.memory_allocated() - before
    assert precision.placed_bytes(lean.model) <= added < precision.placed_bytes(full.model)  # allocator rounding
