"""Shared pieces of the benchmarks: random-weight models of Janus-Pro's shapes, timers, memory meters, tables.

Not a benchmark itself; the bench_*.py scripts import it. Models, by name (`--models`):

- tiny: `janus_demo.model.tiny` (LM 128 wide x 2 layers, real 24x24 grid and 16384-code VQ, VQ base channels 32),
  written to a temporary folder and loaded with `load_janus`, like any checkpoint.
- mid: Janus-Pro-1B's language-model widths (hidden 2048, intermediate 5632, 16 heads, vocab 102400) with
  only a few layers (`--mid-layers`; the real model has 24), the real VQ and generation head, and a one-layer
  vision tower: the CPU-sized stand-in.
- 1b, 7b: the real shapes (table in docs/benchmarks.md), built directly on the device in `--dtype` and, for
  8-bit / 4-bit, quantized in memory exactly as `load_janus` would (`quantize_in_memory`). Random weights:
  only timings and memory mean anything. 7B needs ~15 GB in bf16.

Random models get the tiny byte-level tokenizer plus filler tokens `<tN>` up to the model's vocabulary, so
every generated id decodes to visible text (chat streaming emits per token, as with a real tokenizer).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import random
import re
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from transformers import (  # noqa: E402
    JanusConfig,
    JanusForConditionalGeneration,
    JanusVisionConfig,
    JanusVQVAEConfig,
    LlamaConfig,
    PreTrainedTokenizerFast,
)

from janus_demo.model import internals, loading, placement, precision, tiny  # noqa: E402
from janus_demo.model.chat import ChatOptions  # noqa: E402
from janus_demo.model.image_loop import ImageRequest, encode_prompt, iter_image_generation  # noqa: E402
from janus_demo.model.loading import LoadedJanus  # noqa: E402
from janus_demo.service.schemas import Limits, chat_schema, image_schema  # noqa: E402

PROMPT = "A lighthouse on a cliff at dusk, oil painting"
IMAGE_TOKENS = 576
MODELS = ("tiny", "tiny8", "mid", "1b", "7b")
MID_LAYERS = 1
FILL_BLOCK = 1 << 20  # random values tiled over every weight (fast to build; values do not change the cost)
FILL_STD = 0.02


@dataclass(frozen=True)
class Shape:
    """Janus-Pro language-model widths (the vision tower, VQ and heads follow from `hidden`)."""

    name: str
    hidden: int
    layers: int
    heads: int
    intermediate: int
    vocab: int = 102400


SHAPES = {
    "1b": Shape("Janus-Pro-1B", hidden=2048, layers=24, heads=16, intermediate=5632),
    "7b": Shape("Janus-Pro-7B", hidden=4096, layers=30, heads=32, intermediate=11008),
}


# --- building models ---------------------------------------------------------------------------


def filler_tokenizer(vocab: int) -> PreTrainedTokenizerFast:
    """The tiny tokenizer with `<tN>` tokens added until it covers ids 0..vocab-1."""
    tokenizer = tiny.build_tokenizer()
    tokenizer.add_tokens([f"<t{i}>" for i in range(len(tokenizer), vocab)])
    return tokenizer


def janus_config(shape: Shape, tokenizer: PreTrainedTokenizerFast, layers: int, small_vision: bool) -> JanusConfig:
    """A JanusConfig of `shape` with `layers` LM layers; the real SigLIP-L tower unless `small_vision`."""
    text = LlamaConfig(
        vocab_size=shape.vocab,
        hidden_size=shape.hidden,
        intermediate_size=shape.intermediate,
        num_hidden_layers=layers,
        num_attention_heads=shape.heads,
        num_key_value_heads=shape.heads,
        max_position_embeddings=16384,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    if small_vision:
        vision = JanusVisionConfig(
            hidden_size=64, num_hidden_layers=1, num_attention_heads=2, projection_dim=shape.hidden
        )
    else:
        vision = JanusVisionConfig(projection_dim=shape.hidden)  # defaults: SigLIP-L, 384 px, patch 16
    vq = JanusVQVAEConfig(projection_dim=shape.hidden, image_token_embed_dim=shape.hidden)  # defaults: Janus' VQ
    return JanusConfig(
        text_config=text,
        vision_config=vision,
        vq_config=vq,
        image_token_id=tokenizer.convert_tokens_to_ids(tiny.fmt.IMAGE_TOKEN),
        tie_word_embeddings=False,  # the checkpoints have their own lm_head
    )


@contextlib.contextmanager
def default_dtype(dtype: torch.dtype) -> Iterator[None]:
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


@torch.no_grad()
def fill_random_(model: torch.nn.Module, seed: int = 0) -> None:
    """Weights: one block of N(0, 0.02) values tiled over every matrix; 1-D weights 1 and biases 0, as the
    real initialisation has them. Seconds for billions of values, where `_init_weights` takes minutes."""
    block = torch.randn(FILL_BLOCK, generator=torch.Generator().manual_seed(seed)) * FILL_STD
    sources: dict[tuple[torch.dtype, torch.device], torch.Tensor] = {}
    for name, param in model.named_parameters():
        if param.dim() < 2:
            param.zero_() if name.endswith("bias") else param.fill_(1.0)
            continue
        key = (param.dtype, param.device)
        if key not in sources:
            sources[key] = block.to(device=param.device, dtype=param.dtype)
        _tile_(param.data.view(-1), sources[key])


def _tile_(flat: torch.Tensor, source: torch.Tensor) -> None:
    size = source.numel()
    whole = flat.numel() // size
    if whole:
        flat[: whole * size].view(whole, size).copy_(source.expand(whole, size))
    rest = flat.numel() - whole * size
    if rest:
        flat[whole * size :].copy_(source[:rest])


def quantize_in_memory(model: torch.nn.Module, quantization: str) -> torch.nn.Module:
    """Swap the language model's nn.Linear for bitsandbytes 8-bit / 4-bit ones, as `load_janus` does.

    Same settings (`precision.quantization_config`, computing in the model's dtype), same skip list, same
    conversion as transformers' bitsandbytes integration (`internals.bitsandbytes_linear`); tests check it
    against `load_janus` on the tiny model. The lean layout is `placement.make_lean`'s job, after this.
    """
    if quantization == "none":
        return model
    config = precision.quantization_config(quantization, model.dtype)
    names = [
        name
        for name, module in model.named_modules()
        if type(module) is torch.nn.Linear and internals.quantizes(name, config.llm_int8_skip_modules)
    ]
    for name in names:  # by name, so each full-precision layer is freed as soon as it is replaced
        model.set_submodule(name, internals.bitsandbytes_linear(model.get_submodule(name), config))
    return model


def build_random(
    shape: Shape,
    layers: int | None = None,
    small_vision: bool = False,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
    quantization: str = "none",
    seed: int = 0,
    images_only: bool = False,
) -> LoadedJanus:
    """A random-weight Janus of `shape`, built directly on `device` in `dtype` (no CPU copy, no init pass),
    quantized and laid out as `load_janus` would."""
    device = torch.device(device)
    layers = layers or shape.layers
    tokenizer = filler_tokenizer(shape.vocab)
    config = janus_config(shape, tokenizer, layers, small_vision)
    with internals.skip_weight_init(), default_dtype(dtype), torch.device(device):
        model = JanusForConditionalGeneration(config)
    fill_random_(model, seed)
    model.eval()
    tiny.set_generation_defaults(model, tokenizer)
    quantize_in_memory(model, quantization)
    layout = placement.make_lean(model, quantization, images_only, device)
    name = shape.name if layers == shape.layers else f"{shape.name} widths, {layers} layer{'s' * (layers > 1)}"
    if images_only:
        name += ", images only"
    processor = tiny.build_processor(tokenizer)
    return LoadedJanus(model, processor, name, device, dtype, quantization, True, layout=layout)


def load_tiny(
    device: str = "cpu",
    dtype: str = "auto",
    quantization: str = "none",
    images_only: bool = False,
    grid: int = tiny.GRID,
) -> LoadedJanus:
    """The tiny checkpoint (`grid` tokens a side), built into a temporary folder and loaded with `load_janus`
    like any other."""
    with tempfile.TemporaryDirectory(prefix="janus-tiny-") as folder:  # the loaded model keeps no file open
        built = tiny.build_tiny_janus(folder, grid=grid)
        return load_janus_quietly(str(built), quantization, device, dtype, images_only)


def load_janus_quietly(path: str, quantization: str, device: str, dtype: str, images_only: bool = False) -> LoadedJanus:
    quiet()
    return loading.load_janus(path, quantization=quantization, device=device, dtype=dtype, images_only=images_only)


def load_model(
    name: str, device: torch.device, dtype: torch.dtype, quantization: str = "none", mid_layers: int = MID_LAYERS
) -> LoadedJanus:
    """One of MODELS on `device` (see the module docstring)."""
    if name in ("tiny", "tiny8"):  # tiny8: the tests' 8x8 grid, 64 steps an image
        grid = 8 if name == "tiny8" else tiny.GRID
        return load_tiny(device.type, str(dtype).removeprefix("torch."), quantization, grid=grid)
    if name == "mid":
        return build_random(SHAPES["1b"], mid_layers, True, dtype, device, quantization)
    return build_random(SHAPES[name], None, False, dtype, device, quantization)


def prompt_length(processor=None, prompt: str = PROMPT) -> int:
    """Tokens of the image prompt (BOS, template, text, <begin_of_image>); the tiny tokenizer by default."""
    processor = processor or tiny.build_processor(tiny.build_tokenizer())
    messages = [{"role": "user", "content": [{"type": "text", "text": prompt}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True)
    return processor(text=text, generation_mode="image", return_tensors="pt")["input_ids"].shape[1]


def image_request(loaded: LoadedJanus, **overrides: object) -> ImageRequest:
    """A request as the app makes it: the schema's defaults (one image, seed 0) with `overrides`."""
    values = image_schema(Limits(), gpu=False).defaults() | {"prompt": PROMPT, "seed": 0} | overrides
    return ImageRequest(prompt_ids=encode_prompt(loaded, values["prompt"]), **values)


def chat_options(**overrides: object) -> ChatOptions:
    """Chat sampling settings: the schema's defaults (DeepSeek's) with `overrides`."""
    values = chat_schema(Limits()).defaults() | overrides
    return ChatOptions(values["max_new_tokens"], values["temperature"], values["top_p"], values["seed"])


# --- devices and settings ----------------------------------------------------------------------


def add_common_args(parser, models: str) -> None:
    """--models, --device, --dtype, --quantization, --threads, --mid-layers, shared by the benchmarks."""
    parser.add_argument("--models", default=models, help=f"comma-separated, from {', '.join(MODELS)}")
    parser.add_argument("--device", default="auto", choices=loading.DEVICES)
    parser.add_argument("--dtype", default="auto", choices=loading.DTYPES, help="auto: bf16 on CUDA, fp32 on CPU")
    parser.add_argument("--quantization", default="none", choices=("none", "8bit", "4bit"))
    parser.add_argument("--threads", type=int, default=1, help="torch threads on CPU (1 measured fastest here)")
    parser.add_argument("--mid-layers", type=int, default=MID_LAYERS, help="LM layers of the mid model")


def split(text: str) -> list[str]:
    """'a, b,,c' -> ['a', 'b', 'c'] (comma-separated options)."""
    return [part.strip() for part in text.split(",") if part.strip()]


def quiet() -> None:
    """No progress bars or generation-config notices from transformers in the tables' output."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def setup(args) -> tuple[torch.device, torch.dtype, list[str]]:
    """Apply --threads; resolve --device and --dtype; split --models."""
    quiet()
    torch.set_num_threads(args.threads)
    device = loading.resolve_device(args.device)
    dtype = loading.resolve_dtype(args.dtype, device)
    models = [name.strip() for name in args.models.split(",") if name.strip()]
    unknown = sorted(set(models) - set(MODELS))
    if unknown:
        raise SystemExit(f"Unknown model(s) {', '.join(unknown)}: choose from {', '.join(MODELS)}.")
    return device, dtype, models


def describe_machine(device: torch.device, threads: int) -> str:
    """One line: the device (GPU name or CPU model and cores), torch threads, torch version."""
    if device.type == "cuda":
        where = torch.cuda.get_device_name(device)
    else:
        where = f"{_cpu_model()}, {os.cpu_count()} cores, {threads} torch thread(s)"
    return f"{where}; torch {torch.__version__}"


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        match = re.search(r"model name\s*:\s*(.+)", open("/proc/cpuinfo").read())
        if match:
            return match.group(1).strip()
    return "CPU"


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# --- memory ------------------------------------------------------------------------------------


class PeakMemory:
    """Peak memory while the block runs: the CUDA allocator's peak, or on CPU the process's peak RSS.

    CPU: freed heap is first handed back to the OS (malloc_trim), then the kernel's peak-RSS mark is
    reset (/proc/self/clear_refs); where that is refused a thread samples VmRSS every 2 ms instead.
    `peak` is absolute (weights included), `extra` is the rise above the start.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.start = self.peak = 0
        self._sampler: _RssSampler | None = None

    @property
    def extra(self) -> int:
        return max(self.peak - self.start, 0)

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.start = torch.cuda.memory_allocated(self.device)
        else:
            _malloc_trim()
            self.start = _proc_status_kb("VmRSS") * 1024
            if not _reset_peak_rss():
                self._sampler = _RssSampler()
                self._sampler.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.peak = torch.cuda.max_memory_allocated(self.device)
        elif self._sampler is not None:
            self.peak = self._sampler.stop()
        else:
            self.peak = _proc_status_kb("VmHWM") * 1024


def _proc_status_kb(field: str) -> int:
    with open("/proc/self/status") as status:
        match = re.search(rf"^{field}:\s+(\d+)", status.read(), re.MULTILINE)
    return int(match.group(1)) if match else 0


def _reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
        return True
    except OSError:
        return False


def _malloc_trim() -> None:
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


class _RssSampler(threading.Thread):
    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.halt = threading.Event()
        self.peak = _proc_status_kb("VmRSS") * 1024

    def run(self) -> None:
        while not self.halt.wait(0.002):
            self.peak = max(self.peak, _proc_status_kb("VmRSS") * 1024)

    def stop(self) -> int:
        self.halt.set()
        self.join()
        return max(self.peak, _proc_status_kb("VmRSS") * 1024)


def tensor_bytes(module: torch.nn.Module) -> int:
    """Bytes of a module's weights as stored: parameters, buffers and bitsandbytes' quantization state."""
    total = sum(buffer.nbytes for buffer in module.buffers())
    for param in module.parameters():
        total += param.numel() * param.element_size() + internals.quantization_state_bytes(param)
    return total


def free_device_memory(device: torch.device) -> None:
    import gc

    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    else:
        _malloc_trim()


# --- the floor: weights read per image step / memory bandwidth -----------------------------------


def step_weight_bytes(model: JanusForConditionalGeneration) -> int:
    """Weight bytes one image step must read: LM layers + final norm, generation head and aligner.

    Not counted: `embed_tokens` and `lm_head` (unused in image mode) and `generation_embeddings`
    (one gathered row per image).
    """
    lm = internals.language_model(model)
    parts = (lm.layers, lm.norm, internals.generation_head(model), internals.generation_aligner(model))
    return sum(tensor_bytes(part) for part in parts)


def step_kv_bytes(
    model: JanusForConditionalGeneration, rows: int, prompt_len: int, dtype: torch.dtype, tokens: int = IMAGE_TOKENS
) -> int:
    """KV-cache bytes an average image step reads (keys and values up to the middle of an image of `tokens`)."""
    text = model.config.get_text_config(decoder=True)
    head_dim = getattr(text, "head_dim", None) or text.hidden_size // text.num_attention_heads
    mean_len = prompt_len + tokens // 2
    width = text.num_key_value_heads * head_dim
    return 2 * text.num_hidden_layers * rows * mean_len * width * torch.empty((), dtype=dtype).element_size()


def copy_bandwidth(device: torch.device, nbytes: int | None = None, repeats: int = 5) -> float:
    """Bytes per second moved by a large tensor copy (read + write), best of `repeats`."""
    nbytes = nbytes or (2 << 30 if device.type == "cuda" else 256 << 20)
    source = torch.ones(nbytes // 4, dtype=torch.float32, device=device)
    target = torch.empty_like(source)
    target.copy_(source)
    best = float("inf")
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        target.copy_(source)
        synchronize(device)
        best = min(best, time.perf_counter() - start)
    del source, target
    free_device_memory(device)
    return 2 * nbytes / best


# --- timing ------------------------------------------------------------------------------------


def time_generate(loaded: LoadedJanus, request: ImageRequest) -> float:
    """Seconds for transformers' own image loop (sampling the full distribution, like ours), prompt included."""
    start = time.perf_counter()
    input_ids = request.prompt_ids.to(loaded.device)
    torch.manual_seed(request.seed)
    with torch.inference_mode():
        loaded.model.generate(
            input_ids=input_ids,
            attention_mask=torch.ones_like(input_ids),
            generation_mode="image",
            do_sample=True,
            top_k=0,
            guidance_scale=request.guidance_scale,
            num_return_sequences=request.num_images,
        )
    synchronize(loaded.device)
    return time.perf_counter() - start


def time_loop(loaded: LoadedJanus, request: ImageRequest) -> float:
    """Seconds from the start to the last token of our loop, previews included, final decode excluded."""
    stop = threading.Event()
    start = time.perf_counter()
    for progress in iter_image_generation(loaded, request, stop):
        if progress.step == progress.total:
            stop.set()  # skip the final decode: identical for every method
    synchronize(loaded.device)
    return time.perf_counter() - start


def warm_up(loaded: LoadedJanus, steps: int = 16) -> None:
    """A few steps of our loop, so first-call costs (and the CUDA-graph check) land on no method."""
    stop = threading.Event()
    for progress in iter_image_generation(loaded, image_request(loaded, seed=1, preview_mode="off"), stop):
        if progress.step == steps:
            stop.set()
    synchronize(loaded.device)


@dataclass
class Sample:
    seconds: float
    peak_extra: int  # bytes above the memory in use before the run


def interleaved(
    methods: dict[str, Callable[[], float]], repeats: int, device: torch.device, seed: int = 0
) -> dict[str, list[Sample]]:
    """Run every method `repeats` times, rounds in shuffled order (background load and warm caches hit
    all methods alike; a fixed order showed a few-percent bias), each under a PeakMemory meter."""
    samples: dict[str, list[Sample]] = {name: [] for name in methods}
    order = list(methods)
    shuffler = random.Random(seed)
    for _ in range(repeats):
        shuffler.shuffle(order)
        for name in order:
            free_device_memory(device)
            with PeakMemory(device) as meter:
                seconds = methods[name]()
            samples[name].append(Sample(seconds, meter.extra))
    return samples


def median_seconds(samples: Sequence[Sample]) -> float:
    return statistics.median(sample.seconds for sample in samples)


def max_extra(samples: Sequence[Sample]) -> int:
    return max(sample.peak_extra for sample in samples)


# --- tables ------------------------------------------------------------------------------------


def print_table(headers: Sequence[str], rows: Sequence[Sequence[object]], text_columns: int = 2) -> None:
    """A Markdown table; the first `text_columns` columns left-aligned, the rest right-aligned."""
    print("| " + " | ".join(headers) + " |")
    print("|" + "|".join("---" if i < text_columns else "---:" for i in range(len(headers))) + "|")
    for row in rows:
        print("| " + " | ".join(str(cell) for cell in row) + " |")
    print()


def mb(nbytes: float) -> str:
    return f"{nbytes / 2**20:.0f}"


def gb(nbytes: float) -> str:
    return f"{nbytes / 1e9:.2f}"
