"""Encoded video sources: pictures that arrive already compressed (an RTSP camera, a WHIP publisher).

Their pictures can go to viewers as they are: the camera's top layer passes them through
(peers/camera/pipeline.py) without decoding or encoding them. Lower layers, when asked
for, are decoded from the same pictures and encoded as usual.

A source hands out one whole picture at a time from ``read()`` (an access unit: H.264 in
Annex B with its SPS and PPS before every IDR, or one VP8 frame), on the capture thread.
What cannot be asked of it: a keyframe. Viewers start at the source's next one.
"""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import av
import cv2
import numpy as np

from peercam.shared.protocol import Codec

from .sources import CapturedFrame, SourceError

__all__ = [
    "EncodedPicture", "EncodedVideoSource", "ParameterSets", "PictureDecoder", "PushEncodedSource",
    "h264_profile", "nal_types", "nal_units", "passthrough_refusal", "picture_size",
]

log = logging.getLogger(__name__)

#: H.264 profiles (profile_idc, and for Baseline the constraint flags) that browsers and
#: aiortc negotiate, so their pictures may pass through. Chromium offers 42001f, 42e01f and
#: 4d001f; aiortc 42001f and 42e01f, and Main once peers/h264profiles.py adds it.
_PASSTHROUGH_PROFILES = {66: "Baseline", 77: "Main"}
_PROFILE_NAMES = {66: "Baseline", 77: "Main", 88: "Extended", 100: "High", 110: "High 10", 122: "High 4:2:2",
                  244: "High 4:4:4"}

#: NAL unit types: IDR slice, SPS, PPS.
NAL_IDR, NAL_SPS, NAL_PPS = 5, 7, 8


@dataclass(frozen=True)
class EncodedPicture:
    """One compressed picture, ready to pass through."""

    data: bytes  # H.264: one access unit, Annex B, SPS and PPS before each IDR; VP8: one frame
    keyframe: bool
    capture_time: float  # Unix seconds: when it arrived
    number: int


def nal_units(data: bytes):
    """(type, unit) for each NAL unit of an Annex B buffer."""
    start = data.find(b"\x00\x00\x01")
    while start != -1:
        begin = start + 3
        end = data.find(b"\x00\x00\x01", begin)
        unit = data[begin:end if end != -1 else len(data)]
        if end != -1 and unit.endswith(b"\x00"):
            unit = unit[:-1]  # the next unit's 4-byte start code
        if unit:
            yield unit[0] & 0x1F, unit
        start = end


def nal_types(data: bytes) -> list[int]:
    """The NAL unit types of an Annex B buffer, in order."""
    return [kind for kind, _ in nal_units(data)]


def h264_profile(data: bytes) -> str | None:
    """The profile-level-id (6 hex digits, as SDP writes it) of the first SPS in ``data``."""
    for kind, unit in nal_units(data):
        if kind == NAL_SPS and len(unit) >= 4:
            return unit[1:4].hex()
    return None


def passthrough_refusal(codec: str, profile: str | None) -> str | None:
    """Why pictures of this codec and H.264 profile cannot pass through, or None if they can."""
    if codec == "vp8" or (codec == "h264" and profile is None):
        return None
    if codec != "h264":
        return f"{codec} is not a codec browsers and aiortc both take"
    idc = int(profile[:2], 16)
    if idc in _PASSTHROUGH_PROFILES:
        return None
    name = _PROFILE_NAMES.get(idc, f"profile {idc}")
    return f"H.264 {name} is not a profile browsers and aiortc both negotiate (Baseline and Main are)"


class ParameterSets:
    """Keeps the latest SPS and PPS, and puts them before each IDR that comes without them:
    a viewer that joins at any keyframe needs them in band."""

    def __init__(self, out_of_band: bytes = b"") -> None:
        self._sps: bytes | None = None
        self._pps: bytes | None = None
        self.learn(out_of_band)

    def learn(self, data: bytes) -> set[int]:
        """Note the parameter sets in ``data``; returns its NAL unit types."""
        kinds = set()
        for kind, unit in nal_units(data):
            kinds.add(kind)
            if kind == NAL_SPS:
                self._sps = unit
            elif kind == NAL_PPS:
                self._pps = unit
        return kinds

    @property
    def profile(self) -> str | None:
        return self._sps[1:4].hex() if self._sps is not None and len(self._sps) >= 4 else None

    def complete(self, data: bytes) -> bytes:
        """``data`` with the parameter sets before its IDR, if it has one and lacks them."""
        kinds = self.learn(data)
        if NAL_IDR not in kinds or NAL_SPS in kinds or self._sps is None or self._pps is None:
            return data
        return b"\x00\x00\x00\x01" + self._sps + b"\x00\x00\x00\x01" + self._pps + data


def _vp8_keyframe(data: bytes) -> bool:
    return bool(data) and not data[0] & 1


def picture_size(codec: str, data: bytes) -> tuple[int, int] | None:
    """The width and height a keyframe shows (decoded once), or None if it does not decode."""
    if codec == "vp8" and _vp8_keyframe(data) and len(data) >= 10 and data[3:6] == b"\x9d\x01\x2a":
        return (int.from_bytes(data[6:8], "little") & 0x3FFF, int.from_bytes(data[8:10], "little") & 0x3FFF)
    decoder = av.CodecContext.create(codec, "r")
    try:
        frames = decoder.decode(av.Packet(data)) + decoder.decode(None)
    except av.error.FFmpegError:
        return None
    return (frames[0].width, frames[0].height) if frames else None


class EncodedVideoSource(ABC):
    """Hands out compressed pictures of one codec as they arrive (see the module's docstring).

    ``width`` x ``height`` is the top layer's size; ``fps`` the source's rate as far as it
    says (lower layers take every Nth picture by it); ``profile`` the H.264 profile-level-id.
    """

    def __init__(self, codec: Codec, width: int, height: int, fps: float, profile: str | None = None,
                 description: str = "") -> None:
        self.codec = codec
        self.width, self.height, self.fps = width, height, fps
        self.profile = profile
        #: What it is, for the log and /api/streams (credentials never in it).
        self.description = description
        self._closed = threading.Event()

    @abstractmethod
    def read(self) -> EncodedPicture:
        """The next picture; raises SourceError when there is none to come."""

    def request_keyframe(self) -> None:  # noqa: B027 (a default, not a stub: most sources cannot be asked)
        """A viewer waits for a keyframe (any thread). Most sources cannot be asked: the
        viewer starts at the next one the source sends."""

    def close(self) -> None:
        self._closed.set()


class PushEncodedSource(EncodedVideoSource):
    """Pictures a receiver hands over with ``push()`` (from any thread), read in order.

    Bounded by bytes and by age: a reader that falls behind loses the backlog and
    resumes at the next keyframe (dropping a single picture would break every one after
    it until then).
    """

    def __init__(self, codec: Codec, width: int, height: int, fps: float, profile: str | None = None,
                 description: str = "", max_bytes: int = 8 << 20, max_age: float = 2.0) -> None:
        super().__init__(codec, width, height, fps, profile, description)
        self._queue: deque[EncodedPicture] = deque()
        self._bytes = 0
        self._max_bytes, self._max_age = max_bytes, max_age
        self._need_keyframe = False
        self._ready = threading.Condition()
        #: Pictures dropped to keep within the bounds.
        self.dropped = 0
        #: Called (from any thread) when a viewer waits for a keyframe: the receiver may ask
        #: its sender for one (a WHIP publisher: a PLI), at a rate it bounds.
        self.on_keyframe_request: Callable[[], None] | None = None

    def push(self, picture: EncodedPicture) -> None:
        """Queue a picture; never blocks."""
        with self._ready:
            if self._need_keyframe and not picture.keyframe:
                self.dropped += 1
                return
            self._need_keyframe = False
            oldest = self._queue[0].capture_time if self._queue else picture.capture_time
            too_old = picture.capture_time - oldest > self._max_age
            if self._bytes + len(picture.data) > self._max_bytes or too_old:
                self.dropped += len(self._queue)
                self._queue.clear()
                self._bytes = 0
                if not picture.keyframe:
                    self._need_keyframe = True
                    self.dropped += 1
                    return
            self._queue.append(picture)
            self._bytes += len(picture.data)
            self._ready.notify()

    def request_keyframe(self) -> None:
        if self.on_keyframe_request is not None:
            self.on_keyframe_request()

    def read(self) -> EncodedPicture:
        with self._ready:
            while not self._queue:
                if self._closed.is_set():
                    raise SourceError("source closed")
                self._ready.wait(0.5)
            picture = self._queue.popleft()
            self._bytes -= len(picture.data)
            return picture

    def close(self) -> None:
        super().close()
        with self._ready:
            self._ready.notify_all()


class PictureDecoder:
    """Decodes a passthrough source's pictures for the layers that need pictures (lower
    layers, JPEG relay frames); starts at a keyframe, and forgets its state when idle."""

    def __init__(self, codec: str, width: int, height: int) -> None:
        self._codec = codec
        self._size = (width, height)
        self._context: av.CodecContext | None = None
        self.frames_decoded = 0

    def decode(self, picture: EncodedPicture) -> CapturedFrame | None:
        if self._context is None:
            if not picture.keyframe:
                return None
            self._context = av.CodecContext.create(self._codec, "r")
            self._context.thread_count = 1  # a thread of its own already; the cores are the encoders'
        try:
            frames = self._context.decode(av.Packet(picture.data))
        except av.error.FFmpegError as exc:
            log.debug("a picture did not decode (%s): waiting for the next keyframe", exc)
            self._context = None
            return None
        if not frames:
            return None
        self.frames_decoded += 1
        image = frames[-1].to_ndarray(format="bgr24")
        if (image.shape[1], image.shape[0]) != self._size:
            image = cv2.resize(image, self._size, interpolation=cv2.INTER_AREA)
        return CapturedFrame(np.ascontiguousarray(image), picture.capture_time, picture.number)

    def reset(self) -> None:
        self._context = None
