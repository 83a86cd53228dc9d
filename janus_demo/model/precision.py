"""In what precision the model loads: `--quantization auto`'s choice, bitsandbytes' settings, and what the
weights cost in each mode.

    choice = resolve_precision("auto", "auto", torch.device("cuda"), lambda: needs_for(config))
    choice.quantization, choice.dtype, choice.reason   # "8bit", torch.bfloat16, "8-bit: bf16 would need ..."

`auto` on a GPU picks the best quality that fits (`choose_precision`, a pure function of the model's size,
the free GPU memory and the GPU's compute capability): bf16 (fp16 where bf16 is only emulated: compute
capability below 8.0, e.g. T4 and V100) when the weights plus a default request fit in free memory, else
8-bit, else 4-bit. On ZeroGPU it is bf16 unquantized (no GPU is attached at start-up to ask); on a CPU fp32
unquantized. `weight_bytes` prices each mode with the lean layout (`janus_demo.model.placement`) from the
shape alone.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

import torch
from transformers import BitsAndBytesConfig, JanusConfig, JanusForConditionalGeneration

from janus_demo.model import internals, memory
from janus_demo.model.options import on_zero_gpu

GB = 1e9
MODES = ("none", "8bit", "4bit")  # best quality first
LABELS = {"none": "bf16", "8bit": "8-bit", "4bit": "4-bit"}
NATIVE_BF16 = (8, 0)  # Ampere and later; below it torch.cuda.is_bf16_supported() answers True for an emulation


def quantization_config(quantization: str, compute_dtype: torch.dtype = torch.bfloat16) -> BitsAndBytesConfig | None:
    """bitsandbytes settings, language model only: NF4 with double quantization computing in `compute_dtype`
    (the model's dtype), or LLM.int8."""
    if quantization == "4bit":
        return BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_compute_dtype=compute_dtype,
            bnb_4bit_use_double_quant=True,
            llm_int8_skip_modules=internals.NOT_QUANTIZED,
        )
    if quantization == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True, llm_int8_skip_modules=internals.NOT_QUANTIZED)
    return None


# --- the choice -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Gpu:
    """What the choice needs to know about a GPU."""

    free_bytes: int
    capability: tuple[int, int]  # CUDA compute capability, (8, 0) for an A100
    name: str = "GPU"


@dataclass(frozen=True)
class Needs:
    """GPU bytes per quantization mode: weights while serving and at their peak while loading (`embed_tokens`,
    `lm_head` and the understanding parts arrive in bf16 before they move, shrink or go), and one default
    request (`images` images with guidance)."""

    serving: Mapping[str, int]
    loading: Mapping[str, int]
    working: int
    images: int

    def total(self, mode: str) -> int:
        return max(self.loading[mode], self.serving[mode] + self.working)


@dataclass(frozen=True)
class Choice:
    """A resolved precision and why."""

    quantization: str  # "none", "8bit" or "4bit"
    dtype: torch.dtype
    reason: str


def native_bf16(capability: tuple[int, int]) -> bool:
    return tuple(capability) >= NATIVE_BF16


def gpu_dtype(capability: tuple[int, int]) -> torch.dtype:
    """bf16 where the GPU has it natively, fp16 where it would be emulated."""
    return torch.bfloat16 if native_bf16(capability) else torch.float16


def choose_precision(needs: Needs, gpu: Gpu) -> Choice:
    """The best quality whose weights plus a default request fit in `gpu.free_bytes`: bf16, 8-bit, 4-bit."""
    dtype = gpu_dtype(gpu.capability)
    dtype_note = "" if native_bf16(gpu.capability) else f"; fp16, as compute capability {_cc(gpu)} has no native bf16"
    request = f"{needs.images}-image"
    tried = []
    for mode in MODES:
        need = needs.total(mode)
        label = LABELS[mode] if mode != "none" else dtype_label(dtype)
        if need <= gpu.free_bytes:
            fits = (
                f"{label} needs {need / GB:.1f} GB (weights and a {request} request), {gpu.free_bytes / GB:.1f} GB free"
            )
            return Choice(mode, dtype, f"auto on {gpu.name}: " + "; ".join([*tried, fits]) + dtype_note)
        tried.append(f"{label} would need {need / GB:.1f} GB")
    reason = "; ".join(tried) + f", {gpu.free_bytes / GB:.1f} GB free: 4-bit anyway, a smaller request may fit"
    return Choice("4bit", dtype, f"auto on {gpu.name}: {reason}{dtype_note}")


def resolve_precision(
    quantization: str,
    dtype: str,
    device: torch.device,
    needs: Callable[[], Needs],
    gpu: Callable[[torch.device], Gpu] | None = None,
) -> Choice:
    """Turn the `--quantization` and `--dtype` settings into a Choice; `needs` is asked only for auto on a GPU."""
    asked = None if dtype == "auto" else getattr(torch, dtype)
    if device.type != "cuda":
        mode = "none" if quantization == "auto" else quantization
        chosen = asked or torch.float32
        return Choice(mode, chosen, f"{device.type}: {dtype_label(chosen)}, {_mode_label(mode)}")
    if on_zero_gpu():
        mode = "none" if quantization == "auto" else quantization
        chosen = asked or torch.bfloat16
        return Choice(mode, chosen, f"ZeroGPU: {dtype_label(chosen)}, {_mode_label(mode)}")
    facts = (gpu or read_gpu)(device)
    if quantization != "auto":
        chosen = asked or gpu_dtype(facts.capability)
        return Choice(quantization, chosen, f"{_mode_label(quantization)} as asked, {dtype_label(chosen)}")
    choice = choose_precision(needs(), facts)
    return Choice(choice.quantization, asked or choice.dtype, choice.reason)


def read_gpu(device: torch.device) -> Gpu:
    """Free memory and compute capability of a CUDA device."""
    free, _total = torch.cuda.mem_get_info(device)
    return Gpu(int(free), tuple(torch.cuda.get_device_capability(device)), torch.cuda.get_device_name(device))


def default_dtype(device: torch.device) -> torch.dtype:
    """`--dtype auto`: fp32 on CPU, bf16 on ZeroGPU, else bf16 or fp16 by the GPU's compute capability."""
    if device.type != "cuda":
        return torch.float32
    if on_zero_gpu():
        return torch.bfloat16
    return gpu_dtype(tuple(torch.cuda.get_device_capability(device)))


def _cc(gpu: Gpu) -> str:
    return ".".join(str(part) for part in gpu.capability)


def dtype_label(dtype: torch.dtype) -> str:
    return {torch.bfloat16: "bf16", torch.float16: "fp16", torch.float32: "fp32"}.get(dtype, str(dtype))


def _mode_label(mode: str) -> str:
    return "no quantization" if mode == "none" else LABELS[mode]


# --- what the weights cost -------------------------------------------------------------------------


def needs_for(
    config: JanusConfig,
    images_only: bool = False,
    images: int = memory.GPU_DEFAULT_IMAGES,
    prompt_tokens: int = memory.TYPICAL_PROMPT_TOKENS,
) -> Needs:
    """The Needs of a checkpoint's config, from its shape alone (a model on the meta device)."""
    model = meta_model(config)
    shape = memory.memory_shape(model, torch.bfloat16)
    working = memory.estimate_image_memory(shape, prompt_tokens, True, memory.DECODE_CHUNK).total(images)
    return Needs(
        serving={mode: weight_bytes(model, mode, images_only) for mode in MODES},
        loading={mode: weight_bytes(model, mode, images_only, loading=True) for mode in MODES},
        working=working,
        images=images,
    )


def meta_model(config: JanusConfig) -> JanusForConditionalGeneration:
    """The model of `config` on the meta device, in bf16: sizes and dtypes, no memory."""
    with internals.skip_weight_init(), _default_dtype(torch.bfloat16), torch.device("meta"):
        return JanusForConditionalGeneration(config)


def weight_bytes(model: torch.nn.Module, quantization: str, images_only: bool = False, loading: bool = False) -> int:
    """GPU bytes of an unquantized (or meta) model's weights once loaded in `quantization` with the lean layout
    (bitsandbytes' quantization state included); `loading`: at their peak while loading."""
    skip = internals.NOT_QUANTIZED
    total, seen = 0, set()
    for name, module in model.named_modules():
        for kind, tensor in _own_tensors(module):
            if id(tensor) in seen or not _on_device(name, quantization, images_only, loading):
                continue
            seen.add(id(tensor))
            quantized = quantization != "none" and type(module) is torch.nn.Linear and internals.quantizes(name, skip)
            lm_head_int8 = name == "lm_head" and quantization == "4bit" and not loading
            if kind == "weight" and quantized and quantization == "4bit":
                total += internals.nf4_bytes(tensor.numel())
            elif kind == "weight" and (quantized or lm_head_int8):
                total += internals.int8_bytes(*tensor.shape)
            else:
                total += tensor.numel() * tensor.element_size()
    return total


def placed_bytes(model: torch.nn.Module) -> int:
    """Bytes of a loaded model's parameters and buffers, bitsandbytes' quantization state included (a
    `CpuEmbedding`'s table is neither, so it is not counted)."""
    total = sum(buffer.nbytes for buffer in model.buffers())
    for param in model.parameters():
        total += param.numel() * param.element_size() + internals.quantization_state_bytes(param)
    return total


def _own_tensors(module: torch.nn.Module) -> Iterator[tuple[str, torch.Tensor]]:
    yield from module.named_parameters(recurse=False)
    yield from module.named_buffers(recurse=False)


def _on_device(name: str, quantization: str, images_only: bool, loading: bool) -> bool:
    if loading:
        return True
    if images_only and any(_under(name, part) for part in internals.UNDERSTANDING_PARTS):
        return False
    return not (quantization != "none" and _under(name, internals.TEXT_EMBEDDINGS))


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


@contextlib.contextmanager
def _default_dtype(dtype: torch.dtype) -> Iterator[None]:
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)
