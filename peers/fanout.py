"""Encode once, send to all: each viewer's sender track reads the shared packets.

Each frame is encoded once and split into RTP payloads once (``RtpPacketizer``); each
viewer gets a FanOutTrack whose ``recv()`` hands those same payloads to its
RTCRtpSender, which then only numbers, encrypts and sends them. aiortc would otherwise
make an encoder per sender and packetize every frame again for every viewer.

Keyframes: a track starts at a keyframe, asking for one when its sender first
pulls (the connection is up); it honours the viewer's PLI/FIR; and when its queue
overflows (a slow viewer) it drops what is queued and waits for the next keyframe
rather than lag behind or grow.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

import av
from aiortc import MediaStreamTrack, RTCRtpSender
from aiortc.codecs.h264 import H264Encoder
from aiortc.codecs.vpx import Vp8Encoder
from aiortc.mediastreams import MediaStreamError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EncodedFrame:
    payloads: list[bytes]  # RTP payloads, shared by every viewer's sender
    timestamp: int  # RTP timestamp, 90 kHz
    keyframe: bool
    capture_time: float  # Unix seconds
    number: int


class RtpPacketizer:
    """Splits each encoded packet into RTP payloads, once for all viewers.

    aiortc's own packetizers do the work. VP8's carries a picture id that counts frames,
    so every viewer sees one sequence of ids, as it would from its own sender.
    """

    def __init__(self, codec: str) -> None:
        self._packer = Vp8Encoder() if codec == "vp8" else H264Encoder()

    def packetize(self, packet: av.Packet) -> tuple[list[bytes], int]:
        return self._packer.pack(packet)


class _Prepacketized:
    """Stands in for the encoder RTCRtpSender makes for itself: frames arrive packetized.

    Set through a private attribute (aiortc is pinned; tests/test_fanout.py plays real
    video through it). REMB bitrate estimates land in ``target_bitrate`` and are ignored:
    the one encoder keeps the camera's configured rate for everyone.
    """

    target_bitrate = 0

    def pack(self, frame: EncodedFrame) -> tuple[list[bytes], int]:
        return frame.payloads, frame.timestamp


def _take_keyframe_request(sender: RTCRtpSender) -> bool:
    """Read and clear the flag aiortc sets on PLI/FIR.

    aiortc only consults it when encoding raw frames itself, so in passthrough the
    request would be lost. This is a private attribute: aiortc is pinned for it and
    tests/test_fanout.py checks that a PLI reaches the encoder.
    """
    requested = getattr(sender, "_RTCRtpSender__force_keyframe", False)
    if requested:
        sender._RTCRtpSender__force_keyframe = False  # type: ignore[attr-defined]
    return requested


class FanOutTrack(MediaStreamTrack):
    """One viewer's view of the shared encoded stream."""

    kind = "video"

    def __init__(self, fanout: FanOut, viewer_id: str, queue_limit: int) -> None:
        super().__init__()
        self.viewer_id = viewer_id
        self._fanout = fanout
        self._queue: asyncio.Queue[EncodedFrame] = asyncio.Queue(queue_limit)
        self._sender: RTCRtpSender | None = None
        self._pulling = False
        self._need_keyframe = True
        self.frames_sent = 0
        self.frames_dropped = 0
        self.keyframe_requests = 0

    def attach_sender(self, sender: RTCRtpSender) -> None:
        self._sender = sender
        sender._RTCRtpSender__encoder = _Prepacketized()  # type: ignore[attr-defined]

    def push(self, frame: EncodedFrame) -> None:
        """Called for every encoded frame; never blocks."""
        if not self._pulling:
            return  # not connected yet: nothing to queue
        if self._queue.full():
            self.frames_dropped += self._queue.qsize()
            while not self._queue.empty():
                self._queue.get_nowait()
            self._wait_for_keyframe()
        self._queue.put_nowait(frame)

    def _wait_for_keyframe(self) -> None:
        self._need_keyframe = True
        self.keyframe_requests += 1
        self._fanout.request_keyframe()

    async def recv(self) -> EncodedFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if not self._pulling:
            self._pulling = True
            self._wait_for_keyframe()
        while True:
            if self._sender is not None and _take_keyframe_request(self._sender):
                self.keyframe_requests += 1
                self._fanout.request_keyframe()
            frame = await self._queue.get()
            if self.readyState != "live":
                raise MediaStreamError
            if self._need_keyframe and not frame.keyframe:
                self.frames_dropped += 1
                continue
            self._need_keyframe = False
            self.frames_sent += 1
            return frame

    def stop(self) -> None:
        super().stop()
        self._fanout.unsubscribe(self)


class FanOut:
    """The shared encoded stream and the tracks that read it."""

    def __init__(self, request_keyframe: Callable[[], None], queue_limit: int = 8) -> None:
        self.request_keyframe = request_keyframe
        self._queue_limit = queue_limit
        self._tracks: set[FanOutTrack] = set()

    def __len__(self) -> int:
        return len(self._tracks)

    def subscribe(self, viewer_id: str) -> FanOutTrack:
        track = FanOutTrack(self, viewer_id, self._queue_limit)
        self._tracks.add(track)
        return track

    def unsubscribe(self, track: FanOutTrack) -> None:
        self._tracks.discard(track)

    def publish(self, frame: EncodedFrame) -> None:
        for track in self._tracks:
            track.push(frame)
