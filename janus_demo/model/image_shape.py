"""The shape of the images a Janus model draws, read from its config: token grid, pixels, VQ downsampling.

    shape = read_image_shape(loaded.model.config)   # or `loaded.image_shape`, read once per loaded model
    shape.rows, shape.columns, shape.tokens          # 24, 24, 576 for Janus-Pro
    shape.patch, shape.width, shape.height           # 16 pixels a token side; 384 x 384 pixels

Everything above the model layer (the service's checks and texts, the browser's labels) takes the shape
from the loaded model instead of writing it down, so a model with another grid (the tests' tiny model
with 8x8 tokens) runs through the same code. `JANUS_PRO` is the published checkpoints' shape, for
documentation that describes them (the README's tables) when no model is loaded.
"""

from __future__ import annotations

from dataclasses import dataclass

from transformers import JanusConfig


@dataclass(frozen=True)
class ImageShape:
    """One image as the model draws it: `rows` x `columns` tokens in raster order, each `patch` pixels a side."""

    rows: int
    columns: int
    patch: int  # the VQ decoder's upsampling: pixels per token side

    @property
    def tokens(self) -> int:
        """Tokens per image: the steps of one drawing."""
        return self.rows * self.columns

    @property
    def width(self) -> int:
        return self.columns * self.patch

    @property
    def height(self) -> int:
        return self.rows * self.patch

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels, as PIL writes an image's size."""
        return self.width, self.height


JANUS_PRO = ImageShape(rows=24, columns=24, patch=16)


def read_image_shape(config: JanusConfig) -> ImageShape:
    """The shape a Janus config gives its images: the VQ model's grid (`vq_config.num_patches` a side, which
    transformers sets from the vision config's image and patch sizes), its decoder's upsampling (x2 per level
    after the first of `channel_multiplier`). ValueError when the vision config's `num_image_tokens` (what
    generation counts) is not that grid."""
    side = int(config.vq_config.num_patches)
    shape = ImageShape(rows=side, columns=side, patch=2 ** (len(config.vq_config.channel_multiplier) - 1))
    if config.vision_config.num_image_tokens != shape.tokens:
        raise ValueError(
            f"The config's num_image_tokens ({config.vision_config.num_image_tokens}) is not its VQ grid "
            f"({side}x{side})."
        )
    return shape
