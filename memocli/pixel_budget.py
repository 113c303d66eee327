"""A budget of pixels that threads may decode at once, so decode memory stays bounded.

Decoding needs memory in proportion to the pixels decoded (3 bytes each as RGB, and a few
times that while converting). Several threads decoding huge images at once would add
those up: two 13,400 x 13,400 PNGs peaked at 3.1 GB. :data:`DECODE_BUDGET` lets a thread
decode only while the pixels being decoded in its process, its image's included, stay
within :data:`DEFAULT_PIXELS`; an image larger than that decodes alone. DataLoader worker
processes each have their own budget and decode one image at a time.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

#: Pixels decoded at once in one process: one image at the decoder's 180-megapixel limit.
DEFAULT_PIXELS = 180_000_000


class PixelBudget:
    """At most ``pixels`` pixels claimed at once, shared by threads (a counting lock)."""

    def __init__(self, pixels: int = DEFAULT_PIXELS):
        self.pixels = pixels
        self.in_use = 0
        self._changed = threading.Condition()

    @contextmanager
    def claim(self, pixels: int) -> Iterator[None]:
        """Wait until ``pixels`` (at most the whole budget) are free, hold them inside."""
        need = max(0, min(pixels, self.pixels))
        with self._changed:
            self._changed.wait_for(lambda: self.in_use + need <= self.pixels)
            self.in_use += need
        try:
            yield
        finally:
            with self._changed:
                self.in_use -= need
                self._changed.notify_all()


#: The budget :func:`memocli.decode.load_image` decodes under.
DECODE_BUDGET = PixelBudget()
