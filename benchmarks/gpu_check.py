"""Every GPU check in one command, written to one Markdown report. Run it first whenever a GPU is at hand.

    HF_HUB_OFFLINE=1 python -m benchmarks.gpu_check                    # one H100/H200-class GPU: under 8 minutes
    HF_HUB_OFFLINE=1 python -m benchmarks.gpu_check --report out.md    # where the report goes (gpu-check.md)
    HF_HUB_OFFLINE=1 python -m benchmarks.gpu_check --list             # the steps, their commands and time limits
    HF_HUB_OFFLINE=1 python -m benchmarks.gpu_check --dry-run          # the CPU-safe part: same steps, tiny model

Each step is its own process with its own time limit, so a crash, a hang or an out-of-memory costs that
step only, and the limits add up to less than eight minutes. Nothing is written but the report (replaced
on each run) and temporary folders that are removed, so running it twice is safe. Steps:

1. auto: what `--quantization auto` picks on this GPU for 1B and 7B (and on common cards).
2. fast path: every test marked `gpu` (CUDA graphs give eager's tokens, reused captures, 4-bit captured or
   falling back, the lean layout and images-only on CUDA, auto on this GPU, the benchmarks' CUDA rows).
3. image speed, bf16, 4 images: 1B and 7B, our loop (CUDA graphs) vs `generate`, eager steps and the floor.
4. image speed, 7B 4-bit, 1 image: the fast path with bitsandbytes.
5. memory: 7B bf16 and 4-bit peaks for 1 and 4 images against the app's prediction.
6. memory: 7B 8-bit and images-only 4-bit peaks, 1 image, against the prediction.
7. chat speed: 1B and 7B, time to first token and tokens/s vs `generate`.

The report starts with the machine, versions and commit, then a table of the steps and the targets read
off their tables (7B 4-bit peak <= 6.0 GB, our loop >= 4x `generate` and within 1.5x of the floor on 7B, every
peak under its prediction), then each step's command and output.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_REPORT = "gpu-check.md"


@dataclass(frozen=True)
class Step:
    """One check: its command on a GPU and, for --dry-run, on the CPU with the tiny model."""

    name: str
    title: str
    gpu: list[str]
    cpu: list[str]
    limit_s: int  # on a GPU; the dry run gives every step CPU_LIMIT_S


def bench(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", f"benchmarks.{module}", *args]


GPU_TESTS = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "gpu", "-rsP", "tests"]
CPU_LIMIT_S = 240
STEPS = [
    Step(
        "auto",
        "What --quantization auto picks on this GPU",
        bench("bench_memory", "--auto-only", "--shapes", "1b,7b"),
        bench("bench_memory", "--auto-only", "--shapes", "1b,7b", "--device", "cpu"),
        30,
    ),
    Step("tests", "Fast-path and CUDA tests (pytest -m gpu)", GPU_TESTS, GPU_TESTS, 70),
    Step(
        "image-bf16",
        "Image speed, bf16, 4 images: 1B and 7B against generate and the floor",
        bench("bench_image", "--models", "1b,7b", "--num-images", "4", "--repeats", "1", "--device", "cuda"),
        bench("bench_image", "--quick", "--device", "cpu"),
        115,
    ),
    Step(
        "image-4bit",
        "Image speed, 7B 4-bit, 1 image (the fast path with bitsandbytes)",
        bench(
            "bench_image",
            "--models",
            "7b",
            "--quantization",
            "4bit",
            "--num-images",
            "1",
            "--repeats",
            "1",
            "--device",
            "cuda",
        ),
        bench("bench_image", "--quick", "--quantization", "4bit", "--device", "cpu"),
        55,
    ),
    Step(
        "memory",
        "Memory: 7B bf16 and 4-bit peaks against the prediction",
        bench("bench_memory", "--shapes", "7b", "--modes", "none,4bit", "--images-only-modes", "", "--device", "cuda"),
        bench("bench_memory", "--quick", "--shapes", "tiny", "--device", "cpu"),
        95,
    ),
    Step(
        "memory-8bit",
        "Memory: 7B 8-bit and images-only 4-bit peaks, 1 image",
        bench("bench_memory", "--shapes", "7b", "--modes", "8bit", "--image-counts", "1", "--device", "cuda"),
        bench("bench_memory", "--shapes", "tiny", "--modes", "8bit", "--image-counts", "1", "--device", "cpu"),
        50,
    ),
    Step(
        "chat",
        "Chat speed: 1B and 7B against generate",
        bench("bench_chat", "--models", "1b,7b", "--max-new-tokens", "128", "--repeats", "1", "--device", "cuda"),
        bench("bench_chat", "--quick", "--device", "cpu"),
        35,
    ),
    Step(
        "serving",
        "Many visitors: 4 image visitors and a chat, the scheduler against one request at a time (1B)",
        bench("bench_serving", "--models", "1b", "--arrivals", "together", "--device", "cuda"),
        bench("bench_serving", "--quick", "--arrivals", "together", "--device", "cpu"),
        30,
    ),
]


@dataclass
class Result:
    step: Step
    command: list[str]
    seconds: float
    status: str  # "passed", "failed (exit N)", "timed out after N s"
    output: str


def run_step(step: Step, dry_run: bool) -> Result:
    command = step.cpu if dry_run else step.gpu
    limit = CPU_LIMIT_S if dry_run else step.limit_s
    env = os.environ | {"HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    start = time.perf_counter()
    try:
        done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=limit)
        status = "passed" if done.returncode == 0 else f"failed (exit {done.returncode})"
        output = done.stdout + (f"\n[stderr]\n{tail(done.stderr)}" if done.returncode else "")
    except subprocess.TimeoutExpired as expired:
        status = f"timed out after {limit} s"
        output = _text(expired.stdout) + f"\n[stderr]\n{tail(_text(expired.stderr))}"
    return Result(step, command, time.perf_counter() - start, status, output)


def _text(value: bytes | str | None) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else (value or "")


def tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


# --- targets read off the tables ---------------------------------------------------------------------


def table(output: str, first_cell: str) -> list[list[str]]:
    """Rows of Markdown tables in `output` whose first cell starts with `first_cell`, as lists of cells."""
    rows = []
    for line in output.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0].startswith(first_cell):
            rows.append(cells)
    return rows


def number(cell: str) -> float | None:
    match = re.match(r"^\s*([0-9.]+)", cell)
    return float(match.group(1)) if match else None


def targets(results: dict[str, Result]) -> list[tuple[str, str, str]]:
    """(target, measured, verdict) for what the tables hold; 'not measured' where a step gave nothing."""
    found = []
    memory = results.get("memory")
    four_bit = table(memory.output, "Janus-Pro-7B") if memory else []
    peak = next((number(row[3]) for row in four_bit if row[1] == "4bit"), None)
    found.append(_target("7B 4-bit, 1 image: peak <= 6.0 GB", peak, lambda v: v <= 6.0, "GB"))
    for name in ("memory", "memory-8bit"):
        for row in table(results[name].output, "Janus-Pro-7B") if name in results else []:
            counts = (len(row) - 4) // 2  # model, mode, weights, peaks..., predictions..., while loading
            for i in range(counts):
                measured, predicted = number(row[3 + i]), number(row[3 + counts + i])
                if measured is not None and predicted is not None:
                    label = f"7B {row[1]}, request {i + 1} of the table: peak {measured:.2f} <= predicted"
                    found.append((label, f"{measured:.2f} / {predicted:.2f} GB", _verdict(measured <= predicted)))
    image = results.get("image-bf16")
    for row in table(image.output, "7b") if image else []:
        if row[1] == "our loop":
            found.append(
                _target("7B bf16, 4 images: our loop vs generate >= 4x", number(row[5]), lambda v: v >= 4, "x")
            )
        if len(row) == 8:  # the floor table
            found.append(_target("7B bf16, 4 images: ours / floor <= 1.5x", number(row[7]), lambda v: v <= 1.5, "x"))
    return found


def _target(label: str, value: float | None, ok, unit: str) -> tuple[str, str, str]:
    if value is None:
        return label, "not measured", "?"
    return label, f"{value:.2f} {unit}", _verdict(ok(value))


def _verdict(ok: bool) -> str:
    return "met" if ok else "**missed**"


# --- the report ----------------------------------------------------------------------------------------


def machine() -> list[str]:
    """Machine, versions and commit, one bullet each (asked in a child process: this one never imports torch)."""
    probe = (
        "import torch, transformers\n"
        "try:\n import bitsandbytes as b; bnb = b.__version__\nexcept Exception as e: bnb = f'unavailable ({e})'\n"
        "gpu = 'no CUDA GPU'\n"
        "if torch.cuda.is_available():\n"
        " p = torch.cuda.get_device_properties(0)\n"
        " gpu = f'{p.name}, {p.total_memory / 1e9:.1f} GB, compute capability {p.major}.{p.minor}, "
        "CUDA {torch.version.cuda}'\n"
        "print(gpu); print(f'torch {torch.__version__}, transformers {transformers.__version__}, "
        "bitsandbytes {bnb}')\n"
    )
    found = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT)
    lines = found.stdout.strip().splitlines() or [f"probe failed: {tail(found.stderr, 3)}"]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT)
    dirty = subprocess.run(["git", "status", "--porcelain"], capture_output=True, text=True, cwd=ROOT)
    revision = (commit.stdout.strip() or "unknown") + (" plus uncommitted changes" if dirty.stdout.strip() else "")
    return [
        f"GPU: {lines[0]}",
        *[f"Versions: {line}" for line in lines[1:]],
        f"CPU: {platform.machine()}, {os.cpu_count()} cores; Python {platform.python_version()}",
        f"Commit: {revision}",
        f"Date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}",
    ]


def report(results: list[Result], dry_run: bool, argv: list[str], total_s: float) -> str:
    mode = " (dry run: CPU, tiny model)" if dry_run else ""
    lines = [f"# GPU check{mode}", "", *[f"- {line}" for line in machine()]]
    lines += [f"- Command: `python -m benchmarks.gpu_check {' '.join(argv)}`".rstrip(), f"- Total: {total_s:.0f} s", ""]
    lines += ["| step | status | seconds | limit s |", "|---|---|---:|---:|"]
    for result in results:
        limit = CPU_LIMIT_S if dry_run else result.step.limit_s
        lines.append(f"| {result.step.name} | {result.status} | {result.seconds:.0f} | {limit} |")
    if not dry_run:
        lines += ["", "## Targets", "", "| target | measured | verdict |", "|---|---|---|"]
        lines += [f"| {a} | {b} | {c} |" for a, b, c in targets({r.step.name: r for r in results})]
    for number_, result in enumerate(results, 1):
        lines += ["", f"## {number_}. {result.step.title}", ""]
        lines += [f"`{' '.join(_short(part) for part in result.command)}`: {result.status} in {result.seconds:.0f} s"]
        lines += ["", result.output.strip(), ""]
    return "\n".join(lines) + "\n"


def _short(part: str) -> str:
    return "python" if part == sys.executable else part


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--report", default=DEFAULT_REPORT, help="Markdown file to write (replaced)")
    parser.add_argument("--dry-run", action="store_true", help="CPU-safe: every step on the tiny model")
    parser.add_argument("--steps", default="", help=f"comma-separated subset of {', '.join(s.name for s in STEPS)}")
    parser.add_argument("--list", action="store_true", help="print the steps and exit")
    args = parser.parse_args(argv)
    chosen = [s for s in STEPS if not args.steps or s.name in args.steps.split(",")]
    if args.list:
        for step in chosen:
            command = step.cpu if args.dry_run else step.gpu
            print(f"{step.name} ({step.limit_s} s): {' '.join(_short(p) for p in command)}")
        print(f"total limit on a GPU: {sum(s.limit_s for s in chosen)} s")
        return 0
    start, results = time.perf_counter(), []
    for step in chosen:
        print(f"[{step.name}] {step.title}...", flush=True)
        results.append(run_step(step, args.dry_run))
        print(f"[{step.name}] {results[-1].status} in {results[-1].seconds:.0f} s", flush=True)
    path = Path(args.report)
    path.write_text(
        report(results, args.dry_run, argv if argv is not None else sys.argv[1:], time.perf_counter() - start)
    )
    print(f"Report: {path.resolve()}")
    return 0 if all(r.status == "passed" for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
