"""Capture times for an encoded source's frames (a WHIP publisher's, an RTSP camera's),
read from their own timestamps.

Viewers play by the capture times the camera stamps (they become the RTP timestamps it
sends), so they must advance as the source's clock does, not as the packets happen to
arrive: a frame held up in the network keeps its place in time. A frame's capture time is
the anchor plus its RTP timestamp's advance since the first frame, where the anchor is the
earliest any frame's arrival allows (arrival minus advance): the frame that came with the
least delay sets it, and no frame is stamped later than it arrived.

A publisher's clock that runs slow against ours makes every frame seem later than the
last: once the least delayed frame of a whole window (``window`` seconds) came more than
``max_lag`` seconds after its stamp, the anchor moves up to it. A single stall does not
move it (the window's other frames came on time). Capture times never go back.
"""

from __future__ import annotations

__all__ = ["CaptureClock"]


class CaptureClock:
    """Maps one RTP stream's timestamps (counted from its first frame, unwrapped, as aiortc
    hands them over) to Unix capture times."""

    def __init__(self, clock_rate: int, max_lag: float = 0.5, window: float = 10.0) -> None:
        self._rate = clock_rate
        self._max_lag, self._window = max_lag, window
        self._anchor: float | None = None
        self._window_start = 0.0
        self._window_earliest = float("inf")
        self._last = float("-inf")
        #: Times the anchor moved up (a publisher's clock slower than ours).
        self.jumps = 0

    def capture_time(self, rtp_timestamp: int, arrival: float) -> float:
        """The capture time of a frame with this timestamp that arrived at ``arrival``."""
        advance = rtp_timestamp / self._rate
        earliest = arrival - advance
        if self._anchor is None or earliest < self._anchor:
            self._anchor = earliest
            self._window_start, self._window_earliest = arrival, earliest
        self._window_earliest = min(self._window_earliest, earliest)
        if arrival - self._window_start >= self._window:
            if self._window_earliest - self._anchor > self._max_lag:
                self._anchor = self._window_earliest
                self.jumps += 1
            self._window_start, self._window_earliest = arrival, earliest
        self._last = max(self._last, self._anchor + advance)
        return self._last
