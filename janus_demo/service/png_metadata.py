"""What a PNG records about how it was made (text chunks), and what an uploaded PNG came with.

    image.info.update(image_metadata(request, loaded.model_id))   # prompt, seed, guidance, ... of a drawing
    kept = png_text(upload)                                        # an upload's text chunks, bounded

gradio writes a PIL image's text info into the PNG it serves; `janus_demo.service.downloads` does the same for
the files to keep.
"""

from __future__ import annotations

from PIL import Image

from janus_demo.model.image_loop import ImageRequest


def image_metadata(request: ImageRequest, model_id: str) -> dict[str, str]:
    """The settings that reproduce an image, for PNG text chunks."""
    return {
        "prompt": request.prompt,
        "seed": str(request.seed),
        "guidance_scale": str(request.guidance_scale),
        "temperature": str(request.temperature),
        "top_p": str(request.top_p),
        "model": model_id,
    }


def png_text(image: Image.Image, max_chars: int = 20_000) -> dict[str, str]:
    """The text chunks an uploaded PNG came with (intake keeps them), at most `max_chars` in all."""
    kept, total = {}, 0
    for key, value in image.info.get("text", {}).items():
        if isinstance(key, str) and isinstance(value, str) and total + len(key) + len(value) <= max_chars:
            kept[key], total = value, total + len(key) + len(value)
    return kept
