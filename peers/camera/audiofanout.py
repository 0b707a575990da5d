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
        #: The rendition it is leaving, read until the new one's first packet (see switch).
        self._leaving: AudioFanOut | None = None
        #: The timestamp of the last packet the rendition left gave, while the two overlap.
        self._sent_before_move: int | None = None
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
        """Read another rendition, make before break. Every packet decodes on its own, and
        both renditions carry capture times in their timestamps; but the other rendition's
        encoder may be idle (nobody listened) and start only with its next chunk. So the one
        left keeps coming until the new one's first packet, and the new one's packets that
        are no newer than what the one left sent are dropped: none missing, none twice."""
        if fanout is self._fanout:
            return
        if self._leaving is not None and self._leaving is not fanout:
            self._leaving.remove(self)  # moved again before the last move was made
        self._leaving, self._fanout = self._fanout, fanout
        fanout.add(self)

    def push(self, packet: EncodedAudio, source: AudioFanOut) -> None:
        if source is not self._fanout:  # the rendition being left, until the new one runs
            self._sent_before_move = packet.timestamp
        elif self._leaving is not None:
            self._leaving.remove(self)  # the new rendition's first packet: the move is made
            self._leaving = None
        if source is self._fanout and self._sent_before_move is not None:
            if _not_after(packet.timestamp, self._sent_before_move):
                return  # sound the rendition left has sent already
            self._sent_before_move = None
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
        if self._leaving is not None:
            self._leaving.remove(self)


def _not_after(timestamp: int, other: int) -> bool:
    """RTP timestamps (modulo 2**32): ``timestamp`` is ``other`` or earlier."""
    return (timestamp - other) & 0xFFFFFFFF >= 0x80000000 or timestamp == other


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
            track.push(packet, self)
