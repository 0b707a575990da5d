"""Encode once, send to all, for sound: each viewer's audio sender sends the shared Opus packets.

An Opus packet is its own RTP payload, so the camera's one encoder makes every viewer's
payloads; each viewer's sender only numbers, encrypts and sends them, in the fan-out's one
pass over its viewers (packetsender.py: no task wake-up per viewer per packet). Sound has
no keyframes: a viewer joins at the next packet, and a viewer whose link does not keep up
(its socket's backlog full) loses the packets that come meanwhile, never later ones.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiortc import MediaStreamTrack, RTCRtpSender

from .packetsender import PacketSender

__all__ = ["AudioFanOut", "AudioFanOutTrack", "EncodedAudio"]


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
    """One viewer's view of the shared Opus packets, sent through the sender given to
    ``attach_sender`` as they come."""

    kind = "audio"

    def __init__(self, fanout: AudioFanOut, viewer_id: str) -> None:
        super().__init__()
        self.viewer_id = viewer_id
        self._fanout = fanout
        self._packet_sender: PacketSender | None = None
        self.packets_sent = 0
        self.packets_dropped = 0
        fanout.add(self)

    def attach_sender(self, sender: RTCRtpSender) -> None:
        """Send the shared packets through ``sender`` as they are (its encoder, a private
        attribute: aiortc is pinned), from when aiortc starts it."""
        sender._RTCRtpSender__encoder = _Prepacketized()  # type: ignore[attr-defined]
        self._packet_sender = PacketSender(sender)

    def switch(self, fanout: AudioFanOut) -> None:
        """Read another rendition from its next packet on: every packet decodes on its own, and
        both carry capture times in their timestamps, so the sound goes on without a seam."""
        if fanout is self._fanout:
            return
        self._fanout.remove(self)
        self._fanout = fanout
        fanout.add(self)

    def push(self, packet: EncodedAudio) -> None:
        sender = self._packet_sender
        if sender is None or not sender.sending:
            return  # not connected yet, or no more
        if sender.send(packet):
            self.packets_sent += 1
        elif sender.sending:
            self.packets_dropped += 1  # the viewer's backlog is full

    async def recv(self) -> EncodedAudio:
        raise RuntimeError("an AudioFanOutTrack is sent through attach_sender(), not read")

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
