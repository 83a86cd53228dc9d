"""The int8 lm_head benchmark prints its table for drawn layers (small ones here) and for a checkpoint's own
lm_head (the 8x8 tiny checkpoint standing in for Janus-Pro)."""

import pytest
import torch

from benchmarks import bench_head_quality

pytestmark = pytest.mark.slow


def table_rows(capsys, argv) -> list[list[str]]:
    threads = torch.get_num_threads()
    try:
        bench_head_quality.main(argv)
    finally:
        torch.set_num_threads(threads)
    output = capsys.readouterr().out
    assert "| weights | lm_head in | max abs error | relative RMS error | top-1 agreement |" in output, output
    rows = [line.strip("| ").split(" | ") for line in output.splitlines() if line.startswith("| ")]
    return [row for row in rows if row[0] != "weights" and not row[0].startswith("---")]


def test_drawn_layers_give_a_row_per_distribution_and_precision(capsys):
    rows = table_rows(capsys, ["--width", "256", "--vocab", "4096", "--positions", "32"])
    assert [row[:2] for row in rows] == [
        ["256x4096, Gaussian", "LLM.int8"],
        ["256x4096, Gaussian", "NF4"],
        ["256x4096, heavy-tailed (t, 3 dof)", "LLM.int8"],
        ["256x4096, heavy-tailed (t, 3 dof)", "NF4"],
    ]
    gaussian_int8, gaussian_nf4 = (float(row[3].rstrip("%")) for row in rows[:2])
    assert 0 < gaussian_int8 < gaussian_nf4, "int8 rounds finer than NF4"


def test_a_checkpoints_own_lm_head_is_measured(capsys, small_dir):
    rows = table_rows(capsys, ["--checkpoint", str(small_dir)])
    assert [row[1] for row in rows] == ["LLM.int8", "NF4"] and "lm_head" in rows[0][0], rows
