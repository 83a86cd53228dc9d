"""The one GPU check command: its steps fit the time budget, its CPU-safe part runs here, its report reads
the targets off the benchmarks' tables."""

import pytest

from benchmarks import gpu_check
from benchmarks.gpu_check import Result, Step


def test_every_check_is_a_step_and_the_limits_fit_eight_minutes():
    names = [step.name for step in gpu_check.STEPS]
    assert names == ["auto", "tests", "image-bf16", "image-4bit", "memory", "memory-8bit", "chat", "serving"]
    assert sum(step.limit_s for step in gpu_check.STEPS) <= 8 * 60
    commands = [" ".join(step.gpu) for step in gpu_check.STEPS]
    assert any("-m gpu" in c for c in commands) and any("--models 1b,7b" in c and "bench_image" in c for c in commands)
    assert all("--device cpu" in " ".join(step.cpu) or "pytest" in step.cpu for step in gpu_check.STEPS)


def result(name: str, output: str) -> Result:
    step = next(s for s in gpu_check.STEPS if s.name == name)
    return Result(step, step.gpu, 1.0, "passed", output)


MEMORY = """  # bench_memory's table (its last column, "while loading GB", left out of the header here)
| model | weights | weights GB | peak GB, 1 image | peak GB, 4 images | predicted GB, 1 image | predicted GB, 4 images |
|---|---|---:|---:|---:|---:|---:|
| Janus-Pro-7B | bf16 | 14.82 (est. 14.82) | 15.40 | 17.90 | 15.96 | 18.59 | 14.82 |
| Janus-Pro-7B | 4bit | 4.55 (est. 4.55) | 5.31 | 8.50 | 5.69 | 8.32 | 5.81 |
"""
IMAGE = """
| 7b (Janus-Pro-7B) | transformers generate | 20.00 | 115 | 900 | 1.00x |
| 7b (Janus-Pro-7B) | our loop | 4.00 | 576 | 910 | 5.00x |
| 7b (Janus-Pro-7B) | bfloat16 | 12900 | 3000 | 2.48 | 2.60 | 4.00 | 1.6x |
"""


def test_targets_are_read_off_the_tables():
    found = gpu_check.targets({"memory": result("memory", MEMORY), "image-bf16": result("image-bf16", IMAGE)})
    verdicts = {target: (measured, verdict) for target, measured, verdict in found}
    assert verdicts["7B 4-bit, 1 image: peak <= 6.0 GB"] == ("5.31 GB", "met")
    assert verdicts["7B 4bit, request 2 of the table: peak 8.50 <= predicted"] == ("8.50 / 8.32 GB", "**missed**")
    assert verdicts["7B bf16, request 1 of the table: peak 15.40 <= predicted"][1] == "met"
    assert verdicts["7B bf16, 4 images: our loop vs generate >= 4x"] == ("5.00 x", "met")
    assert verdicts["7B bf16, 4 images: ours / floor <= 1.5x"] == ("1.60 x", "**missed**")
    assert gpu_check.targets({})[0] == ("7B 4-bit, 1 image: peak <= 6.0 GB", "not measured", "?")


def test_a_step_that_fails_or_hangs_is_reported_and_the_rest_still_run(tmp_path, monkeypatch):
    import sys

    steps = [
        Step("fails", "A failing step", [], [sys.executable, "-c", "import sys; print('half'); sys.exit(3)"], 5),
        Step(
            "hangs",
            "A hanging step",
            [],
            [sys.executable, "-c", "import time; print('started', flush=True); time.sleep(30)"],
            5,
        ),
        Step("works", "A working step", [], [sys.executable, "-c", "print('| row | 1 |')"], 5),
    ]
    monkeypatch.setattr(gpu_check, "STEPS", steps)
    monkeypatch.setattr(gpu_check, "CPU_LIMIT_S", 3)
    monkeypatch.setattr(gpu_check, "machine", lambda: ["GPU: (not asked: a child importing torch)"])
    report = tmp_path / "report.md"
    assert gpu_check.main(["--dry-run", "--report", str(report)]) == 1
    text = report.read_text()
    assert "| fails | failed (exit 3) |" in text and "| hangs | timed out after 3 s |" in text
    assert "| works | passed |" in text and "started" in text and "| row | 1 |" in text


@pytest.mark.slow
def test_the_cpu_safe_part_runs_end_to_end_on_the_tiny_model_and_again(tmp_path, monkeypatch):
    """One of its steps through the real command (each step is the same `python -m benchmarks.<bench> ...`
    subprocess, and every benchmark's own table is tested in test_benchmarks.py), then a second run that
    replaces the report."""
    import sys

    report = tmp_path / "gpu-check.md"
    assert gpu_check.main(["--dry-run", "--steps", "chat", "--report", str(report)]) == 0, report.read_text()
    text = report.read_text()
    assert text.startswith("# GPU check (dry run: CPU, tiny model)")
    assert text.count("| passed |") == 1 and "Chat speed" in text
    assert "| tiny |" in text  # the benchmark's own table, in the report
    assert "- GPU: no CUDA GPU" in text and "- Versions: torch " in text  # the machine, asked of a child
    left = set(tmp_path.iterdir())
    monkeypatch.setattr(gpu_check, "STEPS", [Step("works", "A working step", [], [sys.executable, "-c", "pass"], 5)])
    monkeypatch.setattr(gpu_check, "machine", lambda: ["GPU: (asked once above)"])
    assert gpu_check.main(["--dry-run", "--report", str(report)]) == 0  # again: replaced
    assert set(tmp_path.iterdir()) == left and report.read_text().count("| passed |") == 1
    assert "Chat speed" not in report.read_text()
