"""Decoding the encoded relay: the camera's own VP8/H.264 frames, with PyAV, in order."""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable

import av

from peercam.shared.relayframe import RelayFrameHeader

log = logging.getLogger(__name__)

#: Frames that may wait for the decoder; past that it fell behind, and skips to a keyframe.
MAX_WAITING = 30


def can_decode(codec: str) -> bool:
    """Whether this PyAV has a decoder for ``codec`` ("vp8", "h264")."""
    try:
        av.codec.Codec(codec, "r")
    except (av.FFmpegError, ValueError):
        return False
    return True


class RelayDecoder:
    """Decodes encoded relay frames on a thread of its own, from a keyframe on.

    A frame decodes only after the ones before it. After a gap in a layer's sequence
    numbers (the server dropped frames for a reader that fell behind), a decode error,
    or a decoder that falls behind, frames are dropped up to the next keyframe: never
    decoded into a broken picture. Each new layer starts a new decoder at its keyframe.
    ``on_decoded(header, picture, decoded_at)`` is called on the event loop.
    """

    def __init__(self, on_decoded: Callable[[RelayFrameHeader, av.VideoFrame, float], None]) -> None:
        self._loop = asyncio.get_running_loop()
        self._on_decoded = on_decoded
        self._queue: queue.Queue[tuple[RelayFrameHeader, bytes] | None] = queue.Queue()
        #: The next sequence number expected on the current layer, or None: wait for a keyframe.
        self._expected: tuple[int, int] | None = None
        self._broken = threading.Event()  # set by the thread on a decode error
        self._closed = False
        self.frames_skipped = 0
        self._thread = threading.Thread(target=self._run, name="relay-decoder", daemon=True)
        self._thread.start()

    def add(self, header: RelayFrameHeader, payload: bytes) -> None:
        """The next frame off the socket (event loop)."""
        if self._broken.is_set() or self._queue.qsize() >= MAX_WAITING:
            self._broken.clear()
            self._expected = None
        if not header.keyframe and self._expected != (header.layer, header.sequence):
            self.frames_skipped += 1
            self._expected = None  # a gap, or a new layer without its keyframe
            return
        self._expected = (header.layer, (header.sequence + 1) & 0xFFFFFFFF)
        self._queue.put((header, payload))

    def close(self) -> None:
        """Stop: frames still waiting are not decoded."""
        self._closed = True
        self._queue.put(None)

    def _run(self) -> None:
        context: av.CodecContext | None = None
        layer: tuple[int, str] | None = None
        while (item := self._queue.get()) is not None and not self._closed:
            header, payload = item
            if header.keyframe and (header.layer, header.codec) != layer:
                layer = (header.layer, header.codec)
                context = av.CodecContext.create(header.codec, "r")
            if context is None:
                continue
            try:
                pictures = context.decode(av.Packet(payload))
            except av.FFmpegError as exc:
                log.warning("relay: frame %d of layer %d did not decode: %s", header.sequence,
                            header.layer, exc)
                self._broken.set()
                context, layer = None, None
                continue
            for picture in pictures:
                try:
                    self._loop.call_soon_threadsafe(self._on_decoded, header, picture, time.time())
                except RuntimeError:  # the event loop is closed: nobody to hand it to
                    return
