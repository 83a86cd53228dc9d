"""The edits benchmark runs quick (8x8 tiny model) and prints its table: the fit score's cost, the photo kept."""

import pytest
import torch

from benchmarks import bench_edits

pytestmark = pytest.mark.slow


def test_the_edits_benchmark_prints_the_cost_of_the_fit_score(capsys):
    threads = torch.get_num_threads()
    try:
        bench_edits.main(["--quick", "--device", "cpu"])
    finally:
        torch.set_num_threads(threads)
    output = capsys.readouterr().out
    assert "| model | grid | images | scored tokens | loop s |" in output, output
    rows = [line.split(" | ") for line in output.splitlines() if line.startswith("| tiny8 |")]
    assert len(rows) == 1, output
    assert rows[0][1:4] == ["8x8", "2", "40"], "a 2x3 box of the 64 tokens redrawn from row 3: 40 kept tokens follow it"
    assert all(float(cell.rstrip("%")) > 0 for cell in rows[0][4:8]), output
