"""The edits of a photo (`/complete_image`, `/redraw_region`): each request, from its photo and settings to the
final PNGs. (`/variations`, which draws from the photo's description, is `janus_demo.service.variations`.)

    prepared = prepare_redraw(backend, photo, mask, "A cat", 7)     # settings in API order, or by name
    for progress in run_edit(backend, prepared): ...                 # ImageProgress or Heartbeat
    for event in edit(partial(prepare_redraw, backend), edit_on_gpu, photo, mask, "A cat", 7): ...

The request is checked, its photo read and cropped on the CPU (`prepare_*`; `check_*` are their cheap parts,
for a browser validator); only then does the GPU function run it under the model lock: the crop's tokens are
encoded on the model's device and forced where the request keeps them, and the rest is drawn as text to
image draws (`janus_demo.service.image_requests`).

The final images are the photo's (`finished`): where its tokens are kept, the crop's own pixels come back, the
drawn tokens blended in over a few pixels (`keep_photo_pixels`, on by default; off: the VQ decoder's whole
image, in which every pixel moves a little). Several images are ordered best fit first: by how likely the
model finds the kept tokens that follow the drawn ones (`ImageProgress.fit`; a completion has none, and keeps
the seed's order). Each PNG says which pixels it holds and its fit score.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image

from janus_demo.model.image_loop import ImageProgress, ImageRequest
from janus_demo.model.image_shape import ImageShape
from janus_demo.service import intake
from janus_demo.service.drawing import DrawFn, drawing, guarded
from janus_demo.service.errors import FieldError, InputError
from janus_demo.service.events import Event
from janus_demo.service.image_requests import (
    check_drawing,
    drawing_seconds,
    drawing_values,
    image_request,
    run_drawing,
)
from janus_demo.service.model_lock import Heartbeat
from janus_demo.service.schemas import Schema

if TYPE_CHECKING:
    from janus_demo.service.backend import Backend


@dataclass(frozen=True)
class PreparedEdit:
    """A checked edit of a photo, or a drawing from its description (`crop` None): the request to draw (for an
    edit its `forced_mask` marks the photo's tokens to keep; they are encoded from `crop` when it runs, on the
    model's device), the crop the user is shown, what the PNGs record about it, and whether the final images
    take the crop's pixels where its tokens are kept."""

    request: ImageRequest
    crop: Image.Image | None
    metadata: tuple[tuple[str, str], ...]  # mode, kept rows or mask summary, source image size, pixels
    keep_photo_pixels: bool = False


def prepare_complete(backend: Backend, *settings: object, **named: object) -> PreparedEdit:
    """Check a `/complete_image` request and crop its photo (CPU); the first `keep_rows` rows are kept."""
    schema = backend.schemas.complete
    values = schema.check(schema.bind(*settings, **named))
    image = loaded_file(backend, schema, values, "image")
    crop, _ = intake.square_crop(image, backend.image_shape)
    keep = intake.kept_rows_mask(values["keep_rows"], backend.image_shape)
    request = image_request(backend, drawing_values(values), forced_mask=keep)
    about = {"mode": "complete", "keep_rows": str(values["keep_rows"]), "source_size": size_text(image.size)}
    about["pixels"] = pixels_text(values["keep_photo_pixels"], "in the kept rows", backend.image_shape)
    return PreparedEdit(request, crop, tuple(about.items()), values["keep_photo_pixels"])


def prepare_redraw(backend: Backend, *settings: object, **named: object) -> PreparedEdit:
    """Check a `/redraw_region` request (CPU): its photo cropped, its mask the photo's size and not empty,
    reduced to the token grid; the tokens it does not touch are kept."""
    schema, shape = backend.schemas.redraw, backend.image_shape
    values = schema.check(schema.bind(*settings, **named))
    image = loaded_file(backend, schema, values, "image")
    mask = loaded_file(backend, schema, values, "mask", background=intake.BLACK)
    intake.check_mask(mask, image.size)
    crop, box = intake.square_crop(image, shape)
    redraw = intake.mask_grid(mask, box, shape)
    intake.check_mask(mask, image.size, redraw)
    request = image_request(backend, drawing_values(values), forced_mask=~redraw)
    about = {"mode": "redraw", "mask": intake.mask_summary(redraw, shape), "source_size": size_text(image.size)}
    about["pixels"] = pixels_text(values["keep_photo_pixels"], "outside the mask", shape)
    return PreparedEdit(request, crop, tuple(about.items()), values["keep_photo_pixels"])


def check_complete(backend: Backend, *settings: object, **named: object) -> None:
    """`prepare_complete`'s cheap checks (a browser validator's): the values, the photo sniffed, the GPU time."""
    schema = backend.schemas.complete
    values = schema.check(schema.bind(*settings, **named))
    checked_file(backend, schema, values, "image")
    check_drawing(backend, values)


def check_redraw(backend: Backend, *settings: object, **named: object) -> None:
    """`prepare_redraw`'s cheap checks: the values, the photo and the mask sniffed, the GPU time (the mask's
    size and paint are checked when it is read)."""
    schema = backend.schemas.redraw
    values = schema.check(schema.bind(*settings, **named))
    checked_file(backend, schema, values, "image")
    checked_file(backend, schema, values, "mask")
    check_drawing(backend, values)


def run_edit(
    backend: Backend, prepared: PreparedEdit, stop: threading.Event | None = None, deadline_s: float | None = None
) -> Iterator[ImageProgress | Heartbeat]:
    """Draw a prepared edit under the model lock: the crop's tokens are encoded first (on the model's device)
    and forced where the request keeps them; then as text to image. The final images are `finished`."""

    def request() -> ImageRequest:
        if prepared.crop is None:
            return prepared.request
        return replace(prepared.request, forced_tokens=backend._encode_source(prepared.crop))

    stream = run_drawing(backend, request, dict(prepared.metadata), stop, deadline_s)
    return _finishing(EditedImages(backend.image_shape, prepared), stream)


def _finishing(
    edited: EditedImages, stream: Iterator[ImageProgress | Heartbeat]
) -> Iterator[ImageProgress | Heartbeat]:
    with contextlib.closing(stream):
        for progress in stream:
            yield edited.update(progress) if isinstance(progress, ImageProgress) else progress


def edit_duration(backend: Backend, prepared: PreparedEdit) -> int:
    """Seconds a prepared edit borrows a ZeroGPU GPU for: its photo encoded, then drawn as a batch."""
    encode = backend.budget.encode_s if prepared.crop is not None else 0.0
    return backend.budget.duration(encode + drawing_seconds(backend, prepared.request))


def edit(prepare: Callable[..., PreparedEdit], draw: DrawFn, *values: object) -> Iterator[Event]:
    """The run of one edit that `prepare(*values)` prepares (complete, redraw, or from a description)."""
    return guarded(_edit(prepare, draw, *values))


def _edit(prepare: Callable[..., PreparedEdit], draw: DrawFn, *values: object) -> Iterator[Event]:
    prepared = prepare(*values)
    yield from drawing(draw, prepared, prepared.request, crop=prepared.crop)


# --- the final images: the photo's pixels kept, best fit first


class EditedImages:
    """An edit's images as the user gets them: the crop's own pixels where its tokens are kept
    (`keep_photo_pixels`; each decoded image blended once, as it is handed over), and in the final update each
    image's fit score in its PNG text and several images ordered by it, best first (`ImageProgress.order` says
    where each was in the batch). Without a score (a completion: no kept token follows the drawn ones) the
    seed's order stays. A drawing from a description (no crop) is left as it is."""

    def __init__(self, shape: ImageShape, prepared: PreparedEdit) -> None:
        keep = prepared.keep_photo_pixels and prepared.crop is not None
        self.crop = prepared.crop
        self.weights = photo_weights(prepared.request.forced_mask, shape) if keep else None
        self.blended: dict[int, tuple[Image.Image, Image.Image]] = {}  # id(decoded) -> (decoded, blended)

    def update(self, progress: ImageProgress) -> ImageProgress:
        if progress.decoded:
            progress = replace(progress, decoded=[self.image(image) for image in progress.decoded])
        if not progress.done or self.crop is None:
            return progress
        images = [self.image(image) for image in progress.images]
        if progress.fit is None:
            return replace(progress, images=images)
        images = [image.copy() for image in images]  # the score is known now: a PNG saved before lacks it
        for image, fit in zip(images, progress.fit, strict=True):
            image.info["fit_score"] = f"{fit:.4f}"
        if len(images) < 2:
            return replace(progress, images=images)
        order = sorted(range(len(images)), key=lambda index: -progress.fit[index])  # stable: ties keep the seed's
        return replace(progress, images=[images[i] for i in order], fit=[progress.fit[i] for i in order], order=order)

    def image(self, decoded: Image.Image) -> Image.Image:
        """`decoded` with the photo's pixels kept (the same image each time it is asked), or as it is."""
        if self.weights is None:
            return decoded
        if id(decoded) not in self.blended:
            self.blended[id(decoded)] = (decoded, keep_photo(self.crop, decoded, self.weights))
        return self.blended[id(decoded)][1]


def feather_px(shape: ImageShape) -> int:
    """How many pixels of the drawn tokens blend into the photo at their border: a quarter of a token's side."""
    return max(1, shape.patch // 4)


def pixels_text(keep: bool, where: str, shape: ImageShape) -> str:
    """What a PNG records about its pixels: "photo kept outside the mask (feather 4 px)", or "plain decode"."""
    return f"photo kept {where} (feather {feather_px(shape)} px)" if keep else "plain decode"


def photo_weights(kept: torch.Tensor, shape: ImageShape) -> np.ndarray:
    """(height, width) weights of the photo's pixels: 1 on the kept tokens (`kept`, one boolean per token in
    raster order), 0 on the drawn ones, except within `feather_px` pixels of a kept token (8 neighbours a step),
    where the photo fades out: 0.8, 0.6, 0.4, 0.2 for a feather of 4."""
    grid = kept.view(shape.rows, shape.columns).numpy()
    reached = grid.repeat(shape.patch, axis=0).repeat(shape.patch, axis=1)
    weights = reached.astype(np.float32)
    feather = feather_px(shape)
    for distance in range(1, feather + 1):
        grown = _grown(reached)
        weights[grown & ~reached] = 1 - distance / (feather + 1)
        reached = grown
    return weights


def _grown(mask: np.ndarray) -> np.ndarray:
    """`mask` grown by one pixel in each of the 8 directions."""
    height, width = mask.shape
    padded = np.pad(mask, 1)
    return np.logical_or.reduce([padded[dy : dy + height, dx : dx + width] for dy in range(3) for dx in range(3)])


def keep_photo(crop: Image.Image, drawn: Image.Image, weights: np.ndarray) -> Image.Image:
    """`drawn` with the `crop`'s pixels blended in by `weights` (1: the crop's pixel exactly); its PNG text kept."""
    photo = np.asarray(crop.convert("RGB"), dtype=np.float32)
    model = np.asarray(drawn.convert("RGB"), dtype=np.float32)
    alpha = weights[..., None]
    image = Image.fromarray(np.rint(photo * alpha + model * (1 - alpha)).astype(np.uint8), mode="RGB")
    image.info.update(drawn.info)
    return image


def checked_file(backend: Backend, schema: Schema, values: Mapping[str, Any], name: str) -> None:
    """The image file of field `name` sniffed, not decoded; its problems are FieldErrors naming the field."""
    try:
        intake.check_image(values[name], backend.image_limits)
    except InputError as error:
        raise FieldError(name, f"{schema[name].label}: {error}") from None


def loaded_file(backend: Backend, schema: Schema, values: Mapping[str, Any], name: str, **options: Any) -> Image.Image:
    """The image file of field `name`, loaded safely; its problems are FieldErrors naming the field."""
    try:
        return intake.load_image(values[name], backend.image_limits, **options)
    except InputError as error:
        raise FieldError(name, f"{schema[name].label}: {error}") from None


def size_text(size: tuple[int, int]) -> str:
    """An image size as the PNG text records it: "451x300"."""
    return f"{size[0]}x{size[1]}"
