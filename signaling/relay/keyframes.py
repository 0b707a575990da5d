"""Keyframe requests from a relay hub to its camera, merged and rate-limited per layer.

Encoded readers need keyframes: a newcomer, a reader moving to another layer (urgent), a
reader that fell behind (like a P2P viewer's PLI), a recorder starting a segment. However
many readers ask, and whatever keyframes arrive, the camera hears at most one request per
layer per interval, counted from the last request: a keyframe does not re-arm them, or a
reader that keeps falling behind would ask again at every keyframe. Cameras keep the same
limits themselves (web/js/relay-sender.js, peers/camera/pipeline.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["KEYFRAME_INTERVAL", "URGENT_KEYFRAME_INTERVAL", "KeyframeRequests"]

#: At most one keyframe request per layer this often, counted from the last request (not
#: from the keyframe that answered it): for a newcomer or a layer switch (urgent), and for a
#: reader that fell behind (like a PLI). Cameras keep the same limits themselves.
URGENT_KEYFRAME_INTERVAL = 0.25
KEYFRAME_INTERVAL = 1.0


class KeyframeRequests:
    """One stream's keyframe requests: ``ask`` as often as needed; ``on_keyframe(layer, urgent)``
    hears at most one per layer per interval, timed by ``clock``."""

    def __init__(self, on_keyframe: Callable[[str, bool], None] | None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._on_keyframe = on_keyframe
        self._clock = clock
        self._asked: dict[str, float] = {}

    def ask(self, layer: str, urgent: bool) -> None:
        """Merged: at most one request per layer per interval until a keyframe comes, whoever
        asks. (The camera spaces the keyframes themselves, as it does for PLI.)"""
        now = self._clock()
        interval = URGENT_KEYFRAME_INTERVAL if urgent else KEYFRAME_INTERVAL
        if now - self._asked.get(layer, -interval) < interval:
            return
        self._asked[layer] = now
        if self._on_keyframe is not None:
            self._on_keyframe(layer, urgent)

    def clear(self) -> None:
        """A new camera: nothing was asked of it yet."""
        self._asked.clear()
