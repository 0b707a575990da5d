"""Encode once, send to all, for sound: each viewer's audio sender reads the shared Opus packets.

An Opus packet is its own RTP payload, so the camera's one encoder makes every viewer's
payloads; the sender only numbers, encrypts and sends them. Sound has no keyframes: a
viewer joins at the next packet, and a viewer whose queue overflows (a slow link) loses
its oldest packets, never the newest.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from aiortc import MediaStreamTrack, RTCRtpSender
from aiortc.mediastreams import MediaStreamError

__all__ = ["AudioFanOut", "AudioFanOutTrack", "EncodedAudio"]

#: Packets (20 ms each) a viewer's sender may fall behind before the oldest are dropped.
QUEUE_LIMIT = 10


@dataclass(frozen=True)
class EncodedAudio:
    payload: bytes  # one Opus packet: the RTP payload, shared by every viewer's sender
    timestamp: int  # RTP timestamp, 48 kHz: the capture time's samples, modulo 2**32
    capture_time: float  # Unix seconds, of its first sample
    number: int  # packets of its rendition since its encoder started


class _Prepacketized:
    """Stands in for the encoder RTCRtpSender makes for itself (as fanout.py's video one)."""

    def pack(self, packet: EncodedAudio) -> tuple[list[bytes], int]:
        return [packet.payload], packet.timestamp


class AudioFanOutTrack(MediaStreamTrack):
    """One viewer's view of the shared Opus packets."""

    kind = "audio"

    def __init__(self, fanout: AudioFanOut, viewer_id: str) -> None:
        super().__init__()
        self.viewer_id = viewer_id
        self._fanout = fanout
        self._queue: asyncio.Queue[EncodedAudio] = asyncio.Queue(QUEUE_LIMIT)
        self._pulling = False
        self.packets_sent = 0
        self.packets_dropped = 0
        fanout.add(self)

    def attach_sender(self, sender: RTCRtpSender) -> None:
        """Feed ``sender`` the shared packets as they are (a private attribute: aiortc is pinned)."""
        sender._RTCRtpSender__encoder = _Prepacketized()  # type: ignore[attr-defined]

    def switch(self, fanout: AudioFanOut) -> None:
        """Read another rendition from its next packet on: every packet decodes on its own, and
        both carry capture times in their timestamps, so the sound goes on without a seam."""
        if fanout is self._fanout:
            return
        self._fanout.remove(self)
        self._fanout = fanout
        fanout.add(self)

    def push(self, packet: EncodedAudio) -> None:
        if not self._pulling:
            return  # not connected yet
        if self._queue.full():
            self._queue.get_nowait()
            self.packets_dropped += 1
        self._queue.put_nowait(packet)

    async def recv(self) -> EncodedAudio:
        if self.readyState != "live":
            raise MediaStreamError
        self._pulling = True
        packet = await self._queue.get()
        if self.readyState != "live":
            raise MediaStreamError
        self.packets_sent += 1
        return packet

    def stop(self) -> None:
        super().stop()
        self._fanout.remove(self)


class AudioFanOut:
    """The camera's Opus packets and the viewers' tracks that read them."""

    def __init__(self) -> None:
        self._tracks: set[AudioFanOutTrack] = set()

    def __len__(self) -> int:
        return len(self._tracks)

    def subscribe(self, viewer_id: str) -> AudioFanOutTrack:
        return AudioFanOutTrack(self, viewer_id)

    def add(self, track: AudioFanOutTrack) -> None:
        self._tracks.add(track)

    def remove(self, track: AudioFanOutTrack) -> None:
        self._tracks.discard(track)

    def publish(self, packet: EncodedAudio) -> None:
        for track in list(self._tracks):
            track.push(packet)
