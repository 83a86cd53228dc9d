"""The Backend with the use cases as methods, for tests that call the service directly.

    backend = Backend(loaded_tiny)
    prepared = backend.prepare_complete(PHOTO, "a cat", 12)     # janus_demo.service.edits.prepare_complete
    chunks = list(backend.chat({"text": "Hi", "files": []}, [], 4))   # prepared, then run under the lock

The app holds a plain `janus_demo.service.backend.Backend` and calls the use-case modules with it
(`janus_demo.service.chat`, `.images`, `.edits`, `.variations`, `.upscale`); these methods are those calls,
nothing more, so a test reads as before the modules were split out.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

from janus_demo.service import backend, edits, images, upscale, variations
from janus_demo.service import chat as chat_turns


class Backend(backend.Backend):
    """`janus_demo.service.backend.Backend` plus one method per use-case call that tests make."""

    # chat
    def prepare_chat(self, *values: Any, **named: Any) -> chat_turns.PreparedChat:
        return chat_turns.prepare_chat(self, *values, **named)

    def chat(self, *values: Any, stop: threading.Event | None = None, **named: Any) -> Iterator[Any]:
        """Prepared, then answered under the model lock (`stop` stops it from outside)."""
        return chat_turns.run_chat(self, chat_turns.prepare_chat(self, *values, **named), stop)

    def chat_duration(self, prepared: chat_turns.PreparedChat) -> int:
        return chat_turns.chat_duration(self, prepared)

    # text to image
    def prepare_images(self, *values: Any, **named: Any) -> Any:
        return images.prepare_images(self, *values, **named)

    def generate_images(self, *values: Any, stop: threading.Event | None = None, **named: Any) -> Iterator[Any]:
        """Prepared, then drawn under the model lock (`stop` stops it from outside)."""
        return images.run_images(self, images.prepare_images(self, *values, **named), stop)

    def images_duration(self, request: Any) -> int:
        return images.images_duration(self, request)

    # edits and variations
    def prepare_complete(self, *values: Any, **named: Any) -> edits.PreparedEdit:
        return edits.prepare_complete(self, *values, **named)

    def prepare_redraw(self, *values: Any, **named: Any) -> edits.PreparedEdit:
        return edits.prepare_redraw(self, *values, **named)

    def edit_duration(self, prepared: edits.PreparedEdit) -> int:
        return edits.edit_duration(self, prepared)

    def prepare_variations(self, *values: Any, **named: Any) -> variations.PreparedVariations:
        return variations.prepare_variations(self, *values, **named)

    def prepare_described(self, *values: Any, **named: Any) -> edits.PreparedEdit:
        return variations.prepare_described(self, *values, **named)

    # upscale
    def prepare_upscale(self, *values: Any, **named: Any) -> upscale.PreparedUpscale:
        return upscale.prepare_upscale(self, *values, **named)

    def run_upscale(self, prepared: upscale.PreparedUpscale, stop: threading.Event | None = None) -> Iterator[Any]:
        return upscale.run_upscale(self, prepared, stop)

    # ZeroGPU
    def run_deadline(self, duration_s: float) -> float:
        return self.budget.run_deadline(duration_s)
