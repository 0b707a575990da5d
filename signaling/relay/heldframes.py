"""What a relay hub keeps for readers to come, within a byte budget.

A newcomer (or a snapshot) should not wait for the camera: the hub keeps each JPEG
rendition's newest frame, and each encoded layer's frames since its last keyframe (a
newcomer starts there, when that keyframe is recent). A camera decides how big its frames
are, so what is kept is counted in bytes and bounded by ``MAX_HELD_BYTES`` per stream.
Ages are read from the clock the hub gives (``time.monotonic`` unless a test drives it).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from peercam.shared.protocol import JpegRendition

from .slots import MAX_QUEUED_FRAMES

__all__ = ["GOP_REUSE_SECONDS", "MAX_HELD_BYTES", "HeldFrames"]

#: What a hub keeps for readers to come, per stream: the newest frame of each JPEG rendition
#: read, and each read layer's frames since its last keyframe. Past it the frames since a
#: keyframe go first (a newcomer asks for a keyframe instead), then the oldest JPEG frames.
MAX_HELD_BYTES = 16 * 1024 * 1024
#: The last keyframe (with the frames since) starts a newcomer at once if it is this recent.
GOP_REUSE_SECONDS = 0.5


class HeldFrames:
    """What a hub keeps for readers to come, counted in bytes and kept within ``budget``: the
    newest frame of each JPEG rendition (a newcomer or a snapshot gets it at once), and each
    encoded layer's frames since its last keyframe (a newcomer starts there). Past the
    budget the frames since a keyframe go first (a newcomer can ask for a keyframe
    instead), then the oldest JPEG frames; a frame larger than the budget is not kept."""

    def __init__(self, budget: int = MAX_HELD_BYTES, clock: Callable[[], float] = time.monotonic) -> None:
        self.budget = budget
        self.bytes = 0
        self._clock = clock
        self._latest: dict[JpegRendition, tuple[bytes, float]] = {}
        #: Per encoded layer: its last keyframe's arrival, and the frames from it on.
        self._gops: dict[str, tuple[float, list[bytes]]] = {}

    def latest(self, rendition: JpegRendition, max_age: float) -> bytes | None:
        """The rendition's newest frame, if it arrived within ``max_age`` seconds."""
        latest = self._latest.get(rendition)
        return latest[0] if latest is not None and self._clock() - latest[1] < max_age else None

    def keep_latest(self, rendition: JpegRendition, frame: bytes) -> None:
        self._drop_latest(rendition)
        if self._room(len(frame)):
            self._latest[rendition] = (frame, self._clock())
            self.bytes += len(frame)

    def gop(self, layer: str, max_age: float) -> list[bytes] | None:
        """The layer's frames from its last keyframe on, if that keyframe arrived within ``max_age``."""
        gop = self._gops.get(layer)
        return gop[1] if gop is not None and self._clock() - gop[0] < max_age else None

    def start_gop(self, layer: str, keyframe: bytes) -> None:
        self.drop_gop(layer)
        if self._room(len(keyframe)):
            self._gops[layer] = (self._clock(), [keyframe])
            self.bytes += len(keyframe)

    def extend_gop(self, layer: str, frame: bytes) -> None:
        """The next frame of the layer's GOP; past MAX_QUEUED_FRAMES (or the budget) the GOP is
        too long to start anyone from, and goes."""
        gop = self._gops.get(layer)
        if gop is None:
            return
        if len(gop[1]) >= MAX_QUEUED_FRAMES or self.bytes + len(frame) > self.budget:
            self.drop_gop(layer)
            return
        gop[1].append(frame)
        self.bytes += len(frame)

    def drop_gop(self, layer: str) -> None:
        gop = self._gops.pop(layer, None)
        if gop is not None:
            self.bytes -= sum(len(frame) for frame in gop[1])

    def keep_only(self, jpeg: set[JpegRendition], encoded: set[str]) -> None:
        """Forget what no reader reads any more."""
        for rendition in set(self._latest) - jpeg:
            self._drop_latest(rendition)
        for layer in set(self._gops) - encoded:
            self.drop_gop(layer)

    def clear(self) -> None:
        self._latest.clear()
        self._gops.clear()
        self.bytes = 0

    def _drop_latest(self, rendition: JpegRendition) -> None:
        latest = self._latest.pop(rendition, None)
        if latest is not None:
            self.bytes -= len(latest[0])

    def _room(self, size: int) -> bool:
        """Make room for ``size`` more bytes; False if it cannot fit at all."""
        if size > self.budget:
            return False
        while self.bytes + size > self.budget and self._gops:
            self.drop_gop(next(iter(self._gops)))
        while self.bytes + size > self.budget and self._latest:
            self._drop_latest(min(self._latest, key=lambda r: self._latest[r][1]))
        return True
