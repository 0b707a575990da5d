r"""The camera peer's media pipeline: one capture loop, one encoder per layer in use.

    source --capture thread--> newest frame --> one thread per layer in use:
                                                  scale once --> VP8/H.264 encoder --> FanOut (viewers)
                                                             |                    \-> relay sink (encoded)
                                                             \-> JPEG per JPEG quality asked --> relay sink

An encoded source (an RTSP camera, a WHIP publisher: peers/camera/encodedsources.py) passes
its pictures through as the top layer, neither decoded nor encoded:

    source --capture thread--> top layer: RTP payloads --> FanOut, relay sink, recorder, as they came
                           \-> decoder (only while a lower layer or a JPEG relay frame needs pictures)
                                   --> the layers' threads, as above

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
from collections import deque
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

from .encodedsources import EncodedPicture, EncodedVideoSource, PictureDecoder
from .encoder import RTP_TIME_BASE, VideoEncoder
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

    def __init__(self, pipeline: MediaPipeline, index: int, layer: Layer, codec: str,
                 passthrough: EncodedVideoSource | None = None) -> None:
        self.index = index
        self.layer = layer
        self.codec = codec
        #: The encoded source whose pictures this layer sends as they came (None: it encodes).
        self.passthrough = passthrough
        #: A passthrough layer's measured time between the source's keyframes (seconds).
        self.keyframe_interval: float | None = None
        self._last_source_keyframe: float | None = None
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

    @property
    def wants_pictures(self) -> bool:
        """Whether this layer's thread needs captured (or decoded) pictures: a passthrough
        layer only for its JPEG relay frames."""
        return bool(self.jpeg_qualities) if self.passthrough is not None else self.in_use

    def stats(self) -> CameraLayerStats:
        interval = round(self.keyframe_interval, 3) if self.keyframe_interval is not None else None
        return CameraLayerStats(name=self.layer.name, active=self.in_use, viewers=len(self.fanout),
                                frames_encoded=self.frames_encoded, encode_ms=round(self.encode_ms, 2),
                                keyframes=self.keyframes, jpeg_qualities=sorted(self.jpeg_qualities),
                                relay_encoded=self.relay_encoded, passthrough=self.passthrough is not None,
                                keyframe_interval=interval)

    def request_keyframe(self, urgent: bool = True) -> None:
        """Ask for a keyframe soon; requests closer than the minimum interval merge.

        A viewer that joins or switches layers waits for one (``urgent``). A viewer's
        PLI on a lossy link is not urgent: answered at most once a second, as a keyframe
        is many frames' worth of bits, and answering each PLI would only deepen the loss.

        A passthrough layer passes the request to its source, which may forward it (a WHIP
        publisher gets a PLI) or not (an RTSP camera cannot be asked): then the viewer waits
        for the source's next keyframe.
        """
        if self.passthrough is not None:
            self.passthrough.request_keyframe()
            return
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
        """A new captured frame (capture thread); taken if this layer needs it and it is on its step."""
        if not self.wants_pictures:
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
                if self.passthrough is not None:
                    pass  # its video is the source's own (pass_through); the picture is for JPEG
                elif len(self.fanout) or self.relay_encoded or self.recorder is not None:
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
            self._send(bytes(packet), packet, frame.capture_time, frame.number, packet.is_keyframe)

    def pass_through(self, picture: EncodedPicture) -> None:
        """One of the source's pictures, as it came (the capture thread of a passthrough layer)."""
        if picture.keyframe:
            if self._last_source_keyframe is not None:
                self.keyframe_interval = picture.capture_time - self._last_source_keyframe
            self._last_source_keyframe = picture.capture_time
        if not (len(self.fanout) or self.relay_encoded or self.recorder is not None):
            return
        self.frames_taken += 1
        if picture.keyframe:
            self.keyframes += 1
            self._pipeline.stats.keyframes += 1
        packet = av.Packet(picture.data)
        packet.pts = int(picture.capture_time * 90000)
        packet.time_base = RTP_TIME_BASE
        self._send(picture.data, packet, picture.capture_time, picture.number, picture.keyframe)

    def _send(self, data: bytes, packet: av.Packet, capture_time: float, number: int, keyframe: bool) -> None:
        """An encoded picture to every reader: P2P viewers (packetized once), the relay, the recorder."""
        payloads, timestamp = self._packetizer.packetize(packet)
        encoded = EncodedFrame(payloads, timestamp, keyframe, capture_time, number, self.layer.name)
        self._pipeline.loop.call_soon_threadsafe(self.fanout.publish, encoded)
        if self.relay_encoded:
            self._relay(data, capture_time, keyframe)
        if self.recorder is not None:
            self.recorder.write(data, keyframe, int(capture_time * 1_000_000), self.layer.width,
                                self.layer.height)

    def _relay(self, data: bytes, capture_time: float, keyframe: bool) -> None:
        """The encoded frame, as it is, for the server's encoded relay readers."""
        sink = self._pipeline.encoded_relay_sink
        if sink is None:
            return
        header = RelayFrameHeader(self._relay_sequence, int(capture_time * 1_000_000), self.layer.width,
                                  self.layer.height, layer=self.index, codec=self.codec, keyframe=keyframe)
        self._relay_sequence += 1
        self._pipeline.stats.relay_frames += 1
        self._pipeline.loop.call_soon_threadsafe(sink, self.layer.name, header.pack(data), keyframe)


#: Bytes of pictures waiting for the decoder before it drops them and starts again at a keyframe.
DECODER_QUEUE_BYTES = 16 << 20


class MediaPipeline:
    """A source's frames, captured once and encoded once per layer in use.

    ``passthrough`` names the layers whose pictures come encoded from a source of their own
    (the top layer from an encoded ``source``; a lower one from a camera's sub-stream): they
    go out as they came. An encoded ``source`` whose pictures cannot pass through (a codec or
    profile viewers cannot take) is decoded, and every layer encoded from it.
    """

    def __init__(
        self,
        source: VideoSource | EncodedVideoSource,
        layers: list[Layer],
        codec: str,
        loop: asyncio.AbstractEventLoop,
        min_keyframe_interval: float = 0.25,
        relay_fps: float | None = None,
        passthrough: dict[str, EncodedVideoSource] | None = None,
    ) -> None:
        self.source = source
        self.codec = codec
        self.loop = loop
        self.min_keyframe_interval = min_keyframe_interval
        passthrough = passthrough or {}
        self.layers = [LayerEncoder(self, index, layer, codec, passthrough.get(layer.name))
                       for index, layer in enumerate(layers)]
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
        self._threads = []
        if isinstance(source, EncodedVideoSource):
            self._decoder = PictureDecoder(source.codec, source.width, source.height)
            self._to_decode: deque[EncodedPicture] = deque()
            self._to_decode_bytes = 0
            self._decoder_idle = True
            self._decode_ready = threading.Condition()
            self._threads.append(threading.Thread(target=self._decode_loop, name="decode", daemon=True))
        sources = {id(source): source, **{id(s): s for s in passthrough.values()}}
        self._sources = list(sources.values())
        for feed in self._sources:
            if isinstance(feed, EncodedVideoSource):
                target = self._pass_through_loop
            else:
                target = self._capture_loop
            self._threads.append(threading.Thread(target=target, args=(feed,), name="capture", daemon=True))

    def start(self) -> None:
        for thread in self._threads:
            thread.start()
        for layer in self.layers:
            layer.start()

    def stop(self) -> None:
        self.stopping = True
        for source in self._sources:
            source.close()
        if isinstance(self.source, EncodedVideoSource):
            with self._decode_ready:
                self._decode_ready.notify_all()
        for layer in self.layers:
            layer.stop()
        for thread in self._threads:
            thread.join(timeout=2)
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

    def _capture_loop(self, source: VideoSource) -> None:
        try:
            while not self.stopping:
                frame = source.read()
                self.stats.frames_captured += 1
                self._captured(frame)
        except Exception as exc:  # a source that fails, or a bug: either way the video stops
            self.fail(exc if isinstance(exc, SourceError) else SourceError(f"capture failed: {exc!r}"))

    def _captured(self, frame: CapturedFrame) -> None:
        self._last_capture = frame
        for layer in self.layers:
            layer.offer(frame)

    def _pass_through_loop(self, source: EncodedVideoSource) -> None:
        """An encoded source's pictures: to the layers that pass them through, and to the
        decoder while layers encoded from it need pictures."""
        layers = [layer for layer in self.layers if layer.passthrough is source]
        try:
            while not self.stopping:
                picture = source.read()
                if source is self.source:
                    self.stats.frames_captured += 1
                    self._decode(picture)
                for layer in layers:
                    layer.pass_through(picture)
        except Exception as exc:
            self.fail(exc if isinstance(exc, SourceError) else SourceError(f"capture failed: {exc!r}"))

    def _decode(self, picture: EncodedPicture) -> None:
        """Hand a picture to the decoder thread if any layer needs pictures; else let it rest."""
        with self._decode_ready:
            if not any(layer.wants_pictures for layer in self.layers):
                if self._to_decode:
                    self._to_decode.clear()
                    self._to_decode_bytes = 0
                self._decoder_idle = True
                return
            if self._to_decode_bytes + len(picture.data) > DECODER_QUEUE_BYTES:
                # Behind by more than it can catch up: start again at the next keyframe.
                self.stats.frames_skipped += len(self._to_decode)
                self._to_decode.clear()
                self._to_decode_bytes = 0
                self._decoder_idle = True
            self._to_decode.append(picture)
            self._to_decode_bytes += len(picture.data)
            self._decode_ready.notify()

    def _decode_loop(self) -> None:
        try:
            while not self.stopping:
                with self._decode_ready:
                    while not self._to_decode and not self.stopping:
                        self._decode_ready.wait(0.5)
                    if self.stopping:
                        return
                    picture = self._to_decode.popleft()
                    self._to_decode_bytes -= len(picture.data)
                    if self._decoder_idle:
                        self._decoder.reset()  # a gap: the decoder starts again at a keyframe
                        self._decoder_idle = False
                frame = self._decoder.decode(picture)
                if frame is not None:
                    self._captured(frame)
        except Exception as exc:
            self.fail(SourceError(f"decoding the source failed: {exc!r}"))

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
