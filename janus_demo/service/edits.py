"""The edits of a photo (`/complete_image`, `/redraw_region`): each request, from its photo and settings to the
final PNGs. (`/variations`, which draws from the photo's description, is `janus_demo.service.variations`.)

    prepared = prepare_redraw(backend, photo, mask, "A cat", 7)     # settings in API order, or by name
    for progress in run_edit(backend, prepared): ...                 # ImageProgress or Heartbeat
    for event in edit(partial(prepare_redraw, backend), edit_on_gpu, photo, mask, "A cat", 7): ...

The request is checked, its photo read and cropped on the CPU (`prepare_*`; `check_*` are their cheap parts,
for a browser validator); only then does the GPU function run it under the model lock: the crop's tokens are
encoded on the model's device and forced where the request keeps them, and the rest is drawn as text to
image draws (`janus_demo.service.image_requests`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from PIL import Image

from janus_demo.model.image_loop import ImageProgress, ImageRequest
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
    model's device), the crop the user is shown, and what the PNGs record about it."""

    request: ImageRequest
    crop: Image.Image | None
    metadata: tuple[tuple[str, str], ...]  # mode, kept rows or mask summary, source image size


def prepare_complete(backend: Backend, *settings: object, **named: object) -> PreparedEdit:
    """Check a `/complete_image` request and crop its photo (CPU); the first `keep_rows` rows are kept."""
    schema = backend.schemas.complete
    values = schema.check(schema.bind(*settings, **named))
    image = loaded_file(backend, schema, values, "image")
    crop, _ = intake.square_crop(image, backend.image_shape)
    keep = intake.kept_rows_mask(values["keep_rows"], backend.image_shape)
    request = image_request(backend, drawing_values(values), forced_mask=keep)
    about = {"mode": "complete", "keep_rows": str(values["keep_rows"]), "source_size": size_text(image.size)}
    return PreparedEdit(request, crop, tuple(about.items()))


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
    return PreparedEdit(request, crop, tuple(about.items()))


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
    and forced where the request keeps them; then as text to image."""

    def request() -> ImageRequest:
        if prepared.crop is None:
            return prepared.request
        return replace(prepared.request, forced_tokens=backend._encode_source(prepared.crop))

    return run_drawing(backend, request, dict(prepared.metadata), stop, deadline_s)


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
