r"""The camera peer's media pipeline: one capture loop, one encoder per layer in use.

    source --capture thread--> newest frame --> one thread per layer in use:
                                                  scale once --> VP8/H.264 encoder --> FanOut (viewers)
                                                             |                    \-> relay sink (encoded)
                                                             \-> JPEG per JPEG quality asked --> relay sink

Capture never waits for an encoder: a frame a layer has not taken yet is replaced by a
newer one (latest frame wins). A layer's thread works only while someone reads that
layer: its video encoder while a viewer's track is on it or relay readers read its
encoded frames (the same frames, sent once to the server), its JPEG encoder for each
JPEG quality relay readers asked for. Each runs once per frame whatever the number of
readers. A layer at a lower frame rate takes every Nth captured frame.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import av
import cv2
import numpy as np

from peercam.shared.protocol import CameraLayerStats
from peercam.shared.recordingconfig import RecordingConfig
from peercam.shared.relayframe import RelayFrameHeader
from peercam.shared.segmentwriter import SegmentWriter

from .encoder import VideoEncoder
from .fanout import EncodedFrame, FanOut, FanOutTrack, RtpPacketizer
from .layers import Layer
from .sources import CapturedFrame, SourceError, VideoSource

log = logging.getLogger(__name__)

#: Seconds between keyframes that only answer viewers' PLI (see LayerEncoder.request_keyframe).
PLI_KEYFRAME_INTERVAL = 1.0

#: Called on the event loop with a JPEG relay frame: (layer name, JPEG quality, frame bytes).
RelaySink = Callable[[str, int, bytes], None]
#: Called on the event loop with an encoded relay frame: (layer name, frame bytes, keyframe).
EncodedRelaySink = Callable[[str, bytes, bool], None]


@dataclass
class PipelineStats:
    frames_captured: int = 0
    frames_encoded: int = 0  # all layers
    frames_skipped: int = 0  # captured, then replaced before any layer took them
    keyframes: int = 0
    encode_ms: float = 0.0  # moving average of the top layer in use
    relay_frames: int = 0


class LayerEncoder:
    """One layer: its scaler, video encoder, RTP packetizer, JPEG renditions and readers.

    The event loop changes who reads it (tracks come and go, JPEG qualities are set); its
    own thread encodes. The video encoder is made when the first viewer arrives.
    """

    def __init__(self, pipeline: MediaPipeline, index: int, layer: Layer, codec: str) -> None:
        self.index = index
        self.layer = layer
        self.codec = codec
        self.fanout = FanOut(self.request_keyframe, layer=layer.name)
        #: JPEG qualities relay readers want of this layer, and whether they read its encoded
        #: frames (set on the event loop).
        self.jpeg_qualities: frozenset[int] = frozenset()
        self.relay_encoded = False
        #: Writes this layer's encoded frames to segment files (``peercam camera --record``).
        self.recorder: SegmentWriter | None = None
        self._relay_sequence = 0
        self.frames_encoded = 0
        self.frames_taken = 0  # captured frames this layer scaled (for video, JPEG or both)
        self.keyframes = 0
        self.encode_ms = 0.0
        self._pipeline = pipeline
        self._encoder: VideoEncoder | None = None
        self._packetizer = RtpPacketizer(codec)
        self._keyframe_wanted = False
        self._keyframe_urgent = False
        self._last_keyframe = 0.0
        self._latest: CapturedFrame | None = None
        self._offered = 0  # captured frames offered; every layer.step-th is taken
        self._ready = threading.Condition()
        self._thread = threading.Thread(target=self._run, name=f"layer-{layer.name}", daemon=True)

    @property
    def in_use(self) -> bool:
        return bool(len(self.fanout) or self.jpeg_qualities or self.relay_encoded or self.recorder)

    def stats(self) -> CameraLayerStats:
        return CameraLayerStats(name=self.layer.name, active=self.in_use, viewers=len(self.fanout),
                                frames_encoded=self.frames_encoded, encode_ms=round(self.encode_ms, 2),
                                keyframes=self.keyframes, jpeg_qualities=sorted(self.jpeg_qualities),
                                relay_encoded=self.relay_encoded)

    def request_keyframe(self, urgent: bool = True) -> None:
        """Ask for a keyframe soon; requests closer than the minimum interval merge.

        A viewer that joins or switches layers waits for one (``urgent``). A viewer's
        PLI on a lossy link is not urgent: answered at most once a second, as a keyframe
        is many frames' worth of bits, and answering each PLI would only deepen the loss.
        """
        self._keyframe_wanted = True
        if urgent:
            self._keyframe_urgent = True

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self._ready:
            self._ready.notify_all()
        self._thread.join(timeout=2)

    def offer(self, frame: CapturedFrame) -> None:
        """A new captured frame (capture thread); taken if this layer is in use and on its step."""
        if not self.in_use:
            return
        self._offered += 1
        if (self._offered - 1) % self.layer.step:
            return
        with self._ready:
            if self._latest is not None:
                self._pipeline.stats.frames_skipped += 1
            self._latest = frame
            self._ready.notify()

    def _next_frame(self) -> CapturedFrame | None:
        with self._ready:
            while self._latest is None and not self._pipeline.stopping:
                self._ready.wait(0.5)
            frame, self._latest = self._latest, None
            return frame

    def _run(self) -> None:
        try:
            while not self._pipeline.stopping:
                frame = self._next_frame()
                if frame is None:
                    continue
                self.frames_taken += 1
                image = frame.image
                if image.shape[1] != self.layer.width or image.shape[0] != self.layer.height:
                    size = (self.layer.width, self.layer.height)
                    image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
                if len(self.fanout) or self.relay_encoded or self.recorder is not None:
                    self._encode_video(frame, image)
                elif self._encoder is not None:
                    self._encoder = None  # no viewer: let the encoder go; the next one starts afresh
                for jpeg_quality in self.jpeg_qualities:
                    self._pipeline.encode_jpeg(self, frame, image, jpeg_quality)
        except Exception as exc:  # without the encoder there is no video: stop the camera loudly
            self._pipeline.fail(SourceError(f"encoding {self.layer.name} failed: {exc!r}"))

    def _encode_video(self, frame: CapturedFrame, image: np.ndarray) -> None:
        start = time.perf_counter()
        if self._encoder is None:
            layer = self.layer
            self._encoder = VideoEncoder(self.codec, layer.width, layer.height, layer.fps, layer.bitrate)
            self._keyframe_wanted = True
        interval = self._pipeline.min_keyframe_interval if self._keyframe_urgent else PLI_KEYFRAME_INTERVAL
        keyframe = self._keyframe_wanted and time.monotonic() - self._last_keyframe >= interval
        if keyframe:
            self._keyframe_wanted = self._keyframe_urgent = False
        i420 = cv2.cvtColor(image, cv2.COLOR_BGR2YUV_I420)
        packets = self._encoder.encode(i420, int(frame.capture_time * 90000), keyframe)
        elapsed_ms = (time.perf_counter() - start) * 1000
        self.encode_ms = 0.9 * self.encode_ms + 0.1 * elapsed_ms if self.frames_encoded else elapsed_ms
        self.frames_encoded += 1
        self._pipeline.frame_encoded(self)
        for packet in packets:
            if packet.is_keyframe:
                self.keyframes += 1
                self._pipeline.stats.keyframes += 1
                self._last_keyframe = time.monotonic()
            payloads, timestamp = self._packetizer.packetize(packet)
            encoded = EncodedFrame(payloads, timestamp, packet.is_keyframe, frame.capture_time, frame.number,
                                   self.layer.name)
            self._pipeline.loop.call_soon_threadsafe(self.fanout.publish, encoded)
            if self.relay_encoded:
                self._relay(frame, packet)
            if self.recorder is not None:
                self.recorder.write(bytes(packet), packet.is_keyframe, int(frame.capture_time * 1_000_000),
                                    self.layer.width, self.layer.height)

    def _relay(self, frame: CapturedFrame, packet: av.Packet) -> None:
        """The encoded frame, as it is, for the server's encoded relay readers."""
        sink = self._pipeline.encoded_relay_sink
        if sink is None:
            return
        header = RelayFrameHeader(self._relay_sequence, int(frame.capture_time * 1_000_000), self.layer.width,
                                  self.layer.height, layer=self.index, codec=self.codec,
                                  keyframe=packet.is_keyframe)
        self._relay_sequence += 1
        self._pipeline.stats.relay_frames += 1
        self._pipeline.loop.call_soon_threadsafe(sink, self.layer.name, header.pack(bytes(packet)),
                                                 packet.is_keyframe)


class MediaPipeline:
    """A source's frames, captured once and encoded once per layer in use."""

    def __init__(
        self,
        source: VideoSource,
        layers: list[Layer],
        codec: str,
        loop: asyncio.AbstractEventLoop,
        min_keyframe_interval: float = 0.25,
        relay_fps: float | None = None,
    ) -> None:
        self.source = source
        self.codec = codec
        self.loop = loop
        self.min_keyframe_interval = min_keyframe_interval
        self.layers = [LayerEncoder(self, index, layer, codec) for index, layer in enumerate(layers)]
        self.stats = PipelineStats()
        #: Resolves with the source's error if it stops delivering frames.
        self.failed: asyncio.Future[SourceError] = loop.create_future()
        self.stopping = False
        self._relay_interval = 1.0 / relay_fps if relay_fps else 0.0
        self._last_relay_frame: dict[tuple[str, int], float] = {}
        self._relay_sequence: dict[tuple[str, int], int] = {}
        #: Set on the event loop: JPEG frames and encoded frames go here while they are not None.
        self.relay_sink: RelaySink | None = None
        self.encoded_relay_sink: EncodedRelaySink | None = None
        self._last_capture: CapturedFrame | None = None
        self._capture_thread = threading.Thread(target=self._capture_loop, name="capture", daemon=True)

    def start(self) -> None:
        self._capture_thread.start()
        for layer in self.layers:
            layer.start()

    def stop(self) -> None:
        self.stopping = True
        self.source.close()
        for layer in self.layers:
            layer.stop()
        self._capture_thread.join(timeout=2)
        for layer in self.layers:
            if layer.recorder is not None:
                layer.recorder.close()  # the last segment, closed with every frame given to it

    def record(self, recording: RecordingConfig, stream: str,
               audio_channels: int | None = None) -> SegmentWriter:
        """Record the top layer's encoded frames into ``recording.directory/stream/`` as they are
        made, in segments, with retention applied after each (call before ``start``); with
        ``audio_channels``, an Opus track beside them, which the caller feeds
        (``SegmentWriter.write_audio``)."""
        top = self.layers[0]
        retention = recording.retention

        def segment_closed(path: Path) -> None:
            retention.sweep(recording.directory, set())

        top.recorder = SegmentWriter(recording.directory, stream, self.codec, recording.segment_seconds,
                                     request_keyframe=lambda: top.request_keyframe(urgent=False),
                                     on_segment=segment_closed,
                                     max_segment_bytes=retention.max_segment_bytes,
                                     audio_channels=audio_channels)
        return top.recorder

    def layer(self, name: str) -> LayerEncoder:
        """The layer called ``name`` (KeyError if there is none)."""
        for layer in self.layers:
            if layer.layer.name == name:
                return layer
        raise KeyError(name)

    def subscribe(self, viewer_id: str, layer: str) -> FanOutTrack:
        """A sender track for one viewer, starting on ``layer``."""
        return self.layer(layer).fanout.subscribe(viewer_id)

    def set_relay_renditions(self, jpeg: set[tuple[str, int]], encoded: set[str]) -> None:
        """What relay readers want now: (layer, JPEG quality) pairs, and layers' encoded frames.
        The rest stop encoding (a layer's video encoder runs on while P2P viewers are on it)."""
        for layer in self.layers:
            idle = not layer.in_use
            layer.jpeg_qualities = frozenset(q for name, q in jpeg if name == layer.layer.name)
            if layer.layer.name in encoded and not layer.relay_encoded:
                layer.request_keyframe()  # its first relay reader starts there (the hub asks too, later)
            layer.relay_encoded = layer.layer.name in encoded
            if idle and layer.in_use and self._last_capture is not None:
                # A relay reader's first frame from the picture in hand, not the next capture.
                layer.offer(self._last_capture)

    def layer_stats(self) -> list[CameraLayerStats]:
        return [layer.stats() for layer in self.layers]

    def fail(self, exc: SourceError) -> None:
        """From any thread: the video stops, and the camera says why."""
        def settle() -> None:
            if not self.failed.done():
                self.failed.set_result(exc)
        if not self.stopping:
            self.loop.call_soon_threadsafe(settle)

    def _capture_loop(self) -> None:
        try:
            while not self.stopping:
                frame = self.source.read()
                self._last_capture = frame
                self.stats.frames_captured += 1
                for layer in self.layers:
                    layer.offer(frame)
        except Exception as exc:  # a source that fails, or a bug: either way the video stops
            self.fail(exc if isinstance(exc, SourceError) else SourceError(f"capture failed: {exc!r}"))

    def frame_encoded(self, layer: LayerEncoder) -> None:
        self.stats.frames_encoded += 1
        if layer is next((other for other in self.layers if len(other.fanout)), None):
            self.stats.encode_ms = layer.encode_ms

    def encode_jpeg(self, layer: LayerEncoder, frame: CapturedFrame, image: np.ndarray,
                    jpeg_quality: int) -> None:
        """One relay frame of ``layer`` at ``jpeg_quality`` (a layer's thread)."""
        sink = self.relay_sink
        if sink is None:
            return
        key = (layer.layer.name, jpeg_quality)
        now = time.monotonic()
        if now - self._last_relay_frame.get(key, 0.0) < self._relay_interval * 0.9:
            return  # over the relay frame-rate cap
        self._last_relay_frame[key] = now
        ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
        if not ok:
            return
        sequence = self._relay_sequence.get(key, 0)
        self._relay_sequence[key] = sequence + 1
        header = RelayFrameHeader(sequence, int(frame.capture_time * 1_000_000), layer.layer.width,
                                  layer.layer.height, jpeg_quality, layer.index)
        self.stats.relay_frames += 1
        self.loop.call_soon_threadsafe(sink, layer.layer.name, jpeg_quality, header.pack(jpeg.tobytes()))
