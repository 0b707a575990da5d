"""Hand each received audio packet to the decoder the moment it is next in order.

aiortc 1.16's RTCRtpReceiver holds audio in a JitterBuffer with a prefetch of 4: a packet
goes to the decoder only once 4 packets after it are in, 80 ms of 20 ms Opus packets, and
a lost packet stalls the sound until 16 more have come. That was most of the Python
viewer's mouth-to-ear latency on loopback (about 100 ms), and of talk back's on P2P at the
camera. Whoever plays the sound keeps its own playout buffer, sized for its own output;
the receiver need not add one.

``deliver_audio_on_arrival(receiver)`` gives one receiver an ``AudioPacketBuffer``
instead. It touches aiortc's private ``__jitter_buffer``, ``__codecs``,
``__decoder_queue``, ``__decoder_thread`` and ``__timestamp_mapper`` attributes and
wraps this receiver's ``_handle_rtp_packet``, relying on it calling ``add(packet)`` and
decoding the frame it returns, as peers/viewer/framereceiver.py does for video: aiortc is
pinned (>=1.16,<1.17) and tests/test_audioreceiver.py fails if any of that changes.
"""

from __future__ import annotations

from aiortc import RTCRtpReceiver
from aiortc.jitterbuffer import JitterFrame
from aiortc.rtp import RtpPacket

__all__ = ["HOLD", "MAX_MISORDER", "AudioPacketBuffer", "deliver_audio_on_arrival"]

#: Packets held behind a missing one, waiting for it to come late (reordered), before it
#: counts as lost and the sound goes on without it: 40 ms of 20 ms packets.
HOLD = 2
#: aiortc's figure: a packet this far behind means the sender restarted its sequence.
MAX_MISORDER = 100


class AudioPacketBuffer:
    """An audio jitter buffer without a prefetch: each packet goes out as soon as the ones
    before it have, in sequence order.

    A missing packet holds the ones after it back until it comes (reordered) or ``HOLD``
    packets wait behind it; then it counts as lost and they go. A packet older than
    the last one released is too late and goes nowhere. Same interface as aiortc's
    JitterBuffer: ``add(packet)`` returns ``(False, frame)`` (sound asks for no keyframe),
    at most one frame a call; ``more()`` gives the others the same packet released.
    """

    def __init__(self, hold: int = HOLD) -> None:
        self._hold = hold
        # Sequence numbers are unwrapped (no 16-bit wrap) to keep comparisons simple.
        self._packets: dict[int, RtpPacket] = {}
        self._next: int | None = None  # the next sequence number to release
        self._newest: int | None = None
        #: The RTP timestamp of the first packet released: the receiver's timestamp
        #: mapper counts decoded frames' ``pts`` from it.
        self.first_timestamp: int | None = None
        self.packets_skipped = 0

    @property
    def capacity(self) -> int:
        return MAX_MISORDER

    def add(self, packet: RtpPacket) -> tuple[bool, JitterFrame | None]:
        seq = self._unwrap(packet.sequence_number)
        if self._next is None:
            self._next = self._newest = seq
        elif seq < self._next:
            if self._newest - seq < MAX_MISORDER:
                return False, None  # too late, or a duplicate
            self._restart(seq)
        elif seq - self._next >= MAX_MISORDER:
            self._restart(seq)
        self._packets[seq] = packet
        self._newest = max(self._newest, seq)
        return False, self._release()

    def more(self) -> list[JitterFrame]:
        """The packets in order behind the one ``add`` just returned, as frames."""
        frames = []
        while (frame := self._release()) is not None:
            frames.append(frame)
        return frames

    def _release(self) -> JitterFrame | None:
        assert self._next is not None
        if self._next not in self._packets and len(self._packets) > self._hold:
            # Missing, with HOLD packets waiting behind it: lost.
            first = min(self._packets)
            self.packets_skipped += first - self._next
            self._next = first
        packet = self._packets.pop(self._next, None)
        if packet is None:
            return None
        self._next += 1
        if self.first_timestamp is None:
            self.first_timestamp = packet.timestamp
        return JitterFrame(data=packet._data, timestamp=packet.timestamp)

    def _restart(self, seq: int) -> None:
        self._packets.clear()
        self._next = self._newest = seq

    def _unwrap(self, sequence_number: int) -> int:
        if self._newest is None:
            return sequence_number
        delta = (sequence_number - self._newest) & 0xFFFF
        return self._newest + (delta - 0x10000 if delta >= 0x8000 else delta)


def deliver_audio_on_arrival(receiver: RTCRtpReceiver) -> AudioPacketBuffer:
    """Make an audio ``receiver`` decode each packet as soon as it is next in order.

    Call it right after ``addTransceiver``, before any packet arrives. Only this
    receiver changes: nothing else in the process is patched.
    """
    buffer = AudioPacketBuffer()
    receiver._RTCRtpReceiver__jitter_buffer = buffer
    codecs = receiver._RTCRtpReceiver__codecs  # payload type -> codec, filled in by receive()
    handle_rtp_packet = receiver._handle_rtp_packet

    async def handle_rtp_packet_and_the_packets_behind_it(packet: RtpPacket, arrival_time_ms: int) -> None:
        await handle_rtp_packet(packet, arrival_time_ms)
        # aiortc decodes one frame per packet: the packets a late one releases go now too.
        codec = codecs.get(packet.payload_type)
        for frame in buffer.more():
            if codec is not None and receiver._RTCRtpReceiver__decoder_thread:
                frame.timestamp = receiver._RTCRtpReceiver__timestamp_mapper.map(frame.timestamp)
                receiver._RTCRtpReceiver__decoder_queue.put((codec, frame))

    receiver._handle_rtp_packet = handle_rtp_packet_and_the_packets_behind_it
    return buffer
