r"""The camera peer's media pipeline: one capture loop, one encoder, many readers.

    source --capture thread--> newest frame --encode thread--> FanOut (event loop)
                                                          \--> JPEG relay frame (event loop)

Capture never waits for the encoder: a frame not yet encoded is replaced by a newer
one (latest frame wins). The video encoder runs only while a P2P viewer is reading,
and the JPEG encoder only while the server asks for relay frames; each runs once per
frame whatever the number of viewers.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import cv2

from signaling.relayframe import RelayFrameHeader

from .encoder import VideoEncoder
from .fanout import EncodedFrame, FanOut, RtpPacketizer
from .sources import CapturedFrame, SourceError, VideoSource

log = logging.getLogger(__name__)


@dataclass
class PipelineStats:
    frames_captured: int = 0
    frames_encoded: int = 0
    frames_skipped: int = 0  # captured, then replaced before the encoder got to them
    keyframes: int = 0
    encode_ms: float = 0.0  # moving average
    relay_frames: int = 0


class MediaPipeline:
    def __init__(
        self,
        source: VideoSource,
        encoder: VideoEncoder,
        loop: asyncio.AbstractEventLoop,
        min_keyframe_interval: float = 0.25,
        jpeg_quality: int = 80,
        relay_fps: float | None = None,
    ) -> None:
        self.source = source
        self.encoder = encoder
        self.fanout = FanOut(self.request_keyframe)
        self._packetizer = RtpPacketizer(encoder.codec)
        self.stats = PipelineStats()
        #: Resolves with the source's error if it stops delivering frames.
        self.failed: asyncio.Future[SourceError] = loop.create_future()
        self._loop = loop
        self._min_keyframe_interval = min_keyframe_interval
        self._latest: CapturedFrame | None = None
        self._new_frame = threading.Condition()
        self._stopping = threading.Event()
        self._keyframe_wanted = False
        self._last_keyframe = 0.0
        self.jpeg_quality = jpeg_quality
        self._relay_interval = 1.0 / relay_fps if relay_fps else 0.0
        self._last_relay_frame = 0.0
        self._relay_sequence = 0
        #: Set on the event loop: JPEG frames go here while it is not None.
        self.relay_sink: Callable[[bytes], None] | None = None
        self._threads = [
            threading.Thread(target=self._capture_loop, name="capture", daemon=True),
            threading.Thread(target=self._encode_loop, name="encode", daemon=True),
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self.source.close()
        with self._new_frame:
            self._new_frame.notify_all()
        for thread in self._threads:
            thread.join(timeout=2)

    def request_keyframe(self) -> None:
        """Ask for a keyframe soon; requests closer than the minimum interval merge."""
        self._keyframe_wanted = True

    def _capture_loop(self) -> None:
        try:
            while not self._stopping.is_set():
                frame = self.source.read()
                with self._new_frame:
                    if self._latest is not None:
                        self.stats.frames_skipped += 1
                    self._latest = frame
                    self.stats.frames_captured += 1
                    self._new_frame.notify()
        except Exception as exc:  # a source that fails, or a bug: either way the video stops
            if not self._stopping.is_set():
                error = exc if isinstance(exc, SourceError) else SourceError(f"capture failed: {exc!r}")
                self._loop.call_soon_threadsafe(self._fail, error)

    def _fail(self, exc: SourceError) -> None:
        if not self.failed.done():
            self.failed.set_result(exc)

    def _next_frame(self) -> CapturedFrame | None:
        with self._new_frame:
            while self._latest is None and not self._stopping.is_set():
                self._new_frame.wait(0.5)
            frame, self._latest = self._latest, None
            return frame

    def _encode_loop(self) -> None:
        try:
            while not self._stopping.is_set():
                frame = self._next_frame()
                if frame is None:
                    continue
                if len(self.fanout):
                    self._encode_video(frame)
                relay_sink = self.relay_sink
                if relay_sink is not None:
                    self._encode_jpeg(frame, relay_sink)
        except Exception as exc:  # without the encoder there is no video: stop the camera loudly
            self._loop.call_soon_threadsafe(self._fail, SourceError(f"encoding failed: {exc!r}"))

    def _encode_video(self, frame: CapturedFrame) -> None:
        start = time.perf_counter()
        keyframe = self._keyframe_wanted and (
            time.monotonic() - self._last_keyframe >= self._min_keyframe_interval
        )
        if keyframe:
            self._keyframe_wanted = False
        i420 = cv2.cvtColor(frame.image, cv2.COLOR_BGR2YUV_I420)
        packets = self.encoder.encode(i420, int(frame.capture_time * 90000), keyframe)
        elapsed_ms = (time.perf_counter() - start) * 1000
        average = self.stats.encode_ms if self.stats.frames_encoded else elapsed_ms
        self.stats.encode_ms = 0.9 * average + 0.1 * elapsed_ms
        self.stats.frames_encoded += 1
        for packet in packets:
            if packet.is_keyframe:
                self.stats.keyframes += 1
                self._last_keyframe = time.monotonic()
            payloads, timestamp = self._packetizer.packetize(packet)
            encoded = EncodedFrame(payloads, timestamp, packet.is_keyframe, frame.capture_time, frame.number)
            self._loop.call_soon_threadsafe(self.fanout.publish, encoded)

    def _encode_jpeg(self, frame: CapturedFrame, sink: Callable[[bytes], None]) -> None:
        now = time.monotonic()
        if now - self._last_relay_frame < self._relay_interval * 0.9:
            return  # over the relay frame-rate cap
        self._last_relay_frame = now
        ok, jpeg = cv2.imencode(".jpg", frame.image, [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality])
        if not ok:
            return
        height, width = frame.image.shape[:2]
        header = RelayFrameHeader(self._relay_sequence, int(frame.capture_time * 1_000_000),
                                  width, height, self.jpeg_quality)
        self._relay_sequence += 1
        self.stats.relay_frames += 1
        self._loop.call_soon_threadsafe(sink, header.pack(jpeg.tobytes()))
