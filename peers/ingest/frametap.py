"""A publisher's frames as they came: an aiortc receiver's whole frames, never decoded.

aiortc's RTCRtpReceiver reassembles each frame in its jitter buffer (H.264 as Annex B
access units, VP8 frames, Opus packets) and puts ``(codec, frame)`` into a queue its
decoder thread reads. ``tap_receiver`` puts a FrameTap in that queue's place, so each
frame reaches a callback on the event loop instead, as it is; the decoder thread waits
for the receiver's end and decodes nothing. Retransmissions (NACK, RTX) and the PLI aiortc
sends on a lost frame keep working: they happen before the queue.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from aiortc import RTCRtpReceiver
from aiortc.rtcrtpparameters import RTCRtpCodecParameters

__all__ = ["FrameCallback", "FrameTap", "tap_receiver"]

#: Called on the event loop with each whole frame: (codec, data, RTP timestamp counted from
#: the first frame's, unwrapped).
FrameCallback = Callable[[RTCRtpCodecParameters, bytes, int], None]


class FrameTap:
    """Stands in for a receiver's decoder queue (see the module's docstring).

    aiortc calls ``put`` on the event loop with ``(codec, frame)`` for each frame, and with
    None when the receiver stops (an RTCP BYE, the transport's end); its decoder thread
    waits in ``get`` until then. ``ended`` is set at that point.
    """

    def __init__(self, on_frame: FrameCallback, on_end: Callable[[], None]) -> None:
        self._on_frame = on_frame
        self._on_end = on_end
        self._stopped = threading.Event()
        #: Frames handed over.
        self.frames = 0

    def put(self, item) -> None:
        if item is None:
            if not self._stopped.is_set():
                self._stopped.set()
                self._on_end()
            return
        codec, frame = item
        self.frames += 1
        self._on_frame(codec, frame.data, frame.timestamp)

    def get(self) -> None:
        """The decoder thread's read: nothing until the receiver stops (then None ends it)."""
        self._stopped.wait()

    @property
    def ended(self) -> bool:
        return self._stopped.is_set()


def tap_receiver(receiver: RTCRtpReceiver, on_frame: FrameCallback, on_end: Callable[[], None]) -> FrameTap:
    """Take a receiver's whole frames (see the module's docstring). Call it before the
    connection starts the receiver (after setRemoteDescription, before it connects): its
    decoder thread reads the queue that is in place then.

    This is the one place that reaches into the receiver's private decoder queue: aiortc is
    pinned for it, and tests/test_whip.py plays real publishers' frames through it.
    """
    tap = FrameTap(on_frame, on_end)
    receiver._RTCRtpReceiver__decoder_queue = tap  # type: ignore[attr-defined]
    return tap
