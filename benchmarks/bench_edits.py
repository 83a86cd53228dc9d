"""What an edit's extras cost: the fit score of redrawn candidates, and the photo's pixels kept.

    HF_HUB_OFFLINE=1 python -m benchmarks.bench_edits                  # tiny, real 24x24 grid, 4 images: ~2 min
    HF_HUB_OFFLINE=1 python -m benchmarks.bench_edits --quick          # tiny on an 8x8 grid, 2 images: seconds
    HF_HUB_OFFLINE=1 python -m benchmarks.bench_edits --models 1b --device cuda    # a GPU

A redraw of a box in the middle of the photo (`assets/chelsea.png`, its centre square at the model's size): the
box's tokens are drawn, the others forced. The loop scores every forced token after the first drawn one (guided
logits, a log-softmax over the codebook and the forced token's entry, per image: `image_loop.FitScores`); the
table times the loop as it runs, the same loop with the score switched off (interleaved, shuffled rounds,
medians; previews and the final decode left out), the scoring operations alone on tensors of the loop's shapes
(as many calls as the loop makes), and, per image, the photo's pixels kept (`service.edits.photo_weights` +
`keep_photo`) and the candidates ordered.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import tempfile
import time
from collections.abc import Iterator
from unittest import mock

import torch
from PIL import Image

from benchmarks import common
from janus_demo.model import image_loop
from janus_demo.model.image_loop import FitScores, ImageRequest, encode_image, guided_logits
from janus_demo.model.loading import LoadedJanus
from janus_demo.service import intake
from janus_demo.service.edits import keep_photo, photo_weights

PHOTO = "assets/chelsea.png"


def redraw_request(loaded: LoadedJanus, num_images: int) -> tuple[ImageRequest, Image.Image]:
    """A redraw of the box of token rows [rows/3, rows/2) and columns [columns/3, 2 columns/3), and its crop."""
    shape = loaded.image_shape
    crop, _ = intake.square_crop(intake.load_image(PHOTO), shape)
    keep = torch.ones(shape.rows, shape.columns, dtype=torch.bool)
    keep[shape.rows // 3 : shape.rows // 2, shape.columns // 3 : 2 * shape.columns // 3] = False
    request = common.image_request(
        loaded, num_images=num_images, guidance_scale=5.0, preview_every=0, preview_mode="off", seed=3,
        forced_tokens=encode_image(loaded, crop), forced_mask=keep.flatten(),
    )  # fmt: skip
    return request, crop


@contextlib.contextmanager
def scoring_off() -> Iterator[None]:
    """The loop with `FitScores.add` doing nothing (what a forced token cost before it was scored, but for the
    guided logits, which the loop now computes at every step)."""
    with mock.patch.object(image_loop.FitScores, "add", lambda self, step, logits, token: None):
        yield


def scored_steps(request: ImageRequest) -> int:
    """How many forced tokens the loop scores: those after the first drawn one."""
    forced = request.forced_mask.tolist()
    return sum(forced[forced.index(False) + 1 :])


@torch.inference_mode()
def time_scoring(loaded: LoadedJanus, request: ImageRequest) -> float:
    """Seconds for the scoring operations alone, as many times as the loop runs them, on scores of its shape."""
    rows = request.num_images * (2 if request.guided else 1)
    scores = torch.randn(rows, loaded.model.config.vq_config.num_embeddings, device=loaded.device)
    token = request.forced_tokens[0].to(loaded.device)
    fit = FitScores([False] + [True] * scored_steps(request), request.num_images, loaded.device)
    common.synchronize(loaded.device)
    start = time.perf_counter()
    for step in range(1, scored_steps(request) + 1):
        fit.add(step, guided_logits(scores, request.num_images, request.guidance_scale), token)
    fit.scores()
    common.synchronize(loaded.device)
    return time.perf_counter() - start


def time_keeping(loaded: LoadedJanus, request: ImageRequest, crop: Image.Image) -> float:
    """Seconds per image to keep the photo's pixels (the weights once per request, spread over its images) and
    to order the candidates."""
    drawn = [crop.rotate(180) for _ in range(request.num_images)]  # any image of the model's size
    start = time.perf_counter()
    weights = photo_weights(request.forced_mask, loaded.image_shape)
    kept = [keep_photo(crop, image, weights) for image in drawn]
    fits = [float(index) for index in range(len(kept))]
    order = sorted(range(len(kept)), key=lambda index: -fits[index])
    kept = [kept[index] for index in order]
    return (time.perf_counter() - start) / len(kept)


def measure(name: str, loaded: LoadedJanus, args: argparse.Namespace) -> list[str]:
    request, crop = redraw_request(loaded, args.num_images)
    common.warm_up(loaded)

    def off() -> float:
        with scoring_off():
            return common.time_loop(loaded, request)

    print(f"[{name}] {args.repeats} rounds, {request.num_images} images...", flush=True)
    samples = common.interleaved({"on": lambda: common.time_loop(loaded, request), "off": off}, args.repeats,
                                 loaded.device)  # fmt: skip
    on_s, off_s = common.median_seconds(samples["on"]), common.median_seconds(samples["off"])
    alone = statistics.median(time_scoring(loaded, request) for _ in range(args.repeats))
    keeping = statistics.median(time_keeping(loaded, request, crop) for _ in range(args.repeats))
    shape = loaded.image_shape
    return [
        name,
        f"{shape.rows}x{shape.columns}",
        str(request.num_images),
        str(scored_steps(request)),
        f"{on_s:.2f}",
        f"{off_s:.2f}",
        f"{alone:.3f}",
        f"{100 * alone / on_s:.1f}%",
        f"{1000 * keeping:.1f}",
    ]


def load(name: str, device: torch.device, dtype: torch.dtype, args: argparse.Namespace) -> LoadedJanus:
    if name == "tiny8":  # the tests' small grid: 64 steps
        from janus_demo.model import tiny

        with tempfile.TemporaryDirectory(prefix="janus-tiny8-") as folder:
            return common.load_janus_quietly(str(tiny.build_tiny_janus(folder, grid=8)), "none", device.type, "auto")
    return common.load_model(name, device, dtype, args.quantization, args.mid_layers)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    common.add_common_args(parser, models="tiny")
    parser.add_argument("--num-images", type=int, default=4, help="candidates of the redraw")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved rounds")
    parser.add_argument("--quick", action="store_true", help="tiny model on an 8x8 grid, 2 images, 2 rounds")
    args = parser.parse_args(argv)
    device, dtype, models = common.setup(args)
    if args.quick:
        args.num_images, args.repeats, models = 2, 2, ["tiny8"]
    rows = []
    for name in models:
        rows.append(measure(name, load(name, device, dtype, args), args))
        common.free_device_memory(device)
    print(f"\n{common.describe_machine(device, args.threads)}. A redraw of a box in the photo's middle.\n")
    headers = ["model", "grid", "images", "scored tokens", "loop s", "loop without the score s"]
    headers += ["scoring alone s", "scoring / loop", "keep photo pixels + order, ms per image"]
    common.print_table(headers, rows)


if __name__ == "__main__":
    main()
