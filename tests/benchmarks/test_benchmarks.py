"""The benchmarks run on the tiny model and print their tables; their shared helpers measure what they claim."""

import re

import pytest
import torch
from support.gpu import needs_cuda

from benchmarks import (
    bench_chat,
    bench_image,
    bench_loading,
    bench_memory,
    bench_previews,
    bench_quality,
    bench_serving,
    common,
)
from janus_demo.model import loading, placement, precision

TABLE_HEADER = re.compile(r"^\| model \| .+ \|$", re.MULTILINE)

pytestmark = pytest.mark.slow


def table_rows(output: str, model: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith(f"| {model} |")]


@pytest.mark.parametrize(
    ("main", "argv", "model", "rows"),
    [
        (bench_image.main, ["--quick", "--device", "cpu"], "tiny8", 4),  # 3 methods + the floor row
        (bench_chat.main, ["--quick", "--device", "cpu"], "tiny", 2),
        (bench_memory.main, ["--quick", "--shapes", "tiny", "--device", "cpu"], "tiny", 2),
        (bench_previews.main, ["--quick"], "tiny8", 8),
        (bench_loading.main, ["--repeats", "1", "--device", "cpu"], "tiny", 3),  # none, 8bit, 4bit
    ],
    ids=["image", "chat", "memory", "previews", "loading"],
)
def test_benchmark_prints_its_table(capsys, main, argv, model, rows):
    output = run_main(capsys, main, argv)
    assert TABLE_HEADER.search(output), output
    assert len(table_rows(output, model)) == rows, output


def run_main(capsys, main, argv: list[str]) -> str:
    threads = torch.get_num_threads()
    try:
        main(argv)
    finally:
        torch.set_num_threads(threads)
    return capsys.readouterr().out


@needs_cuda
def test_image_benchmark_on_cuda_adds_the_eager_row(capsys):
    output = run_main(capsys, bench_image.main, ["--quick", "--device", "cuda"])
    assert len(table_rows(output, "tiny8")) == 5 and "our loop, eager steps" in output, output


@needs_cuda
def test_memory_benchmark_on_cuda_measures_peaks(capsys):
    output = run_main(capsys, bench_memory.main, ["--quick", "--shapes", "tiny", "--device", "cuda"])
    rows = table_rows(output, "tiny")
    assert len(rows) == 2 and not any("needs CUDA" in row for row in rows), output


def test_serving_benchmark_compares_the_scheduler_with_one_at_a_time(capsys):
    output = run_main(capsys, bench_serving.main, ["--quick", "--arrivals", "together"])
    rows = table_rows(output, "tiny8")
    assert [row.split(" | ")[2] for row in rows] == ["one at a time", "scheduler"], output
    assert all(len(row.split(" | ")) == 10 for row in rows)


def test_quality_benchmark_measures_each_saving_and_the_gather_is_exact(capsys):
    output = run_main(capsys, bench_quality.main, ["--quick"])
    rows = [line for line in output.splitlines() if line.startswith("| ") and "| change |" not in line]
    assert len(rows) == 7, output
    assert rows[0].startswith(
        "| embed_tokens on the CPU (gather) | text logits | 0.0000 | 0.00% | 100.0% | 0.42 | 0.84 |"
    )
    assert "| lm_head in LLM.int8 (chosen for 4-bit) | text logits |" in rows[1]


def test_chat_benchmark_forces_the_length_and_both_methods_agree(capsys):
    bench_chat.main(["--quick", "--device", "cpu"])
    for row in table_rows(capsys.readouterr().out, "tiny"):
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        assert cells[5] == "8" and cells[-1] == "yes", row


@pytest.mark.parametrize("quantization", ["8bit", "4bit"])
def test_in_memory_quantization_equals_load_janus(tiny_dir, quantization):
    pytest.importorskip("bitsandbytes")
    ours = loading.load_janus(str(tiny_dir), quantization="none", device="cpu")
    common.quantize_in_memory(ours.model, quantization)
    placement.make_lean(ours.model, quantization, images_only=False, device=ours.device)
    reference = loading.load_janus(str(tiny_dir), quantization=quantization, device="cpu")
    assert loading.count_quantized_layers(ours.model) == loading.count_quantized_layers(reference.model) > 0
    assert ours.model.get_memory_footprint() == reference.model.get_memory_footprint()
    expected = reference.model.state_dict()
    for name, tensor in ours.model.state_dict().items():
        assert torch.equal(tensor, expected[name]), name


@pytest.mark.parametrize(("quantization", "images_only"), [("none", False), ("4bit", False), ("8bit", True)])
def test_weight_estimate_from_the_shape_matches_a_built_random_model(quantization, images_only):
    pytest.importorskip("bitsandbytes")
    shape = common.Shape("small", hidden=128, layers=2, heads=4, intermediate=256, vocab=512)
    built = common.build_random(
        shape, small_vision=True, dtype=torch.bfloat16, quantization=quantization, images_only=images_only
    )
    config = common.janus_config(shape, common.filler_tokenizer(shape.vocab), shape.layers, small_vision=True)
    estimate = precision.weight_bytes(precision.meta_model(config), quantization, images_only)
    assert estimate == precision.placed_bytes(built.model)
    assert built.can_chat is not images_only


def test_memory_benchmark_predicts_7b_in_4bit_under_6_gb_for_one_image(capsys):
    output = run_main(capsys, bench_memory.main, ["--shapes", "7b", "--device", "cpu"])
    memory_table, auto_table = output.split("What `--quantization auto` picks")
    rows = {line.split("|")[2].strip(): line.split("|") for line in table_rows(memory_table, "Janus-Pro-7B")}
    assert set(rows) == {"bf16", "8bit", "4bit", "4bit, images only"}, output
    one_image = {mode: float(cells[6]) for mode, cells in rows.items()}  # predicted GB, 1 image
    assert one_image["4bit"] <= 6.0 and one_image["4bit, images only"] < one_image["4bit"], output
    assert "| Janus-Pro-7B, images only | T4 16 GB | 8-bit | fp16 |" in auto_table


def test_random_models_are_finite_and_decode_every_id():
    shape = common.Shape("small", hidden=128, layers=2, heads=4, intermediate=256, vocab=512)
    loaded = common.build_random(shape, small_vision=True)
    assert all(torch.isfinite(p).all() for p in loaded.model.parameters())
    assert loaded.processor.tokenizer.decode([511]) == "<t511>"


def test_step_weight_bytes_counts_the_layers_and_heads_not_the_embeddings(loaded_tiny):
    model = loaded_tiny.model
    counted = common.step_weight_bytes(model)
    lm = model.model.language_model
    assert counted > common.tensor_bytes(lm.layers) > 0
    assert counted < common.tensor_bytes(model) - common.tensor_bytes(lm.embed_tokens)


def test_peak_memory_sees_a_large_allocation_on_cpu():
    with common.PeakMemory(torch.device("cpu")) as meter:
        block = torch.ones(64 * 2**20 // 4)
        del block
    assert meter.extra >= 60 * 2**20


def test_idle_benchmark_prints_gradios_polling_beside_ours(capsys):
    from benchmarks import bench_idle

    output = run_main(capsys, bench_idle.main, ["--seconds", "0.2"])
    rows = [line for line in output.splitlines() if line.startswith(("| gradio's own", "| ours"))]
    assert len(rows) == 2 and "| queue polling | CPU s in 0.2 s | % of a core |" in output, output
