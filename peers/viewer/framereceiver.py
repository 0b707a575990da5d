"""Hand each received video frame to the decoder the moment its last packet is in.

aiortc 1.16's RTCRtpReceiver reassembles frames in a JitterBuffer that releases a frame
only when a packet of the *next* frame arrives (it sees the timestamp change): every
frame waits one frame interval, 33 ms at 30 fps, before it is even decoded. That was
most of the Python viewer's glass-to-glass latency on loopback.

``deliver_frames_when_complete(receiver)`` gives one receiver a ``WholeFrameBuffer``
instead. It touches aiortc's private ``__jitter_buffer``, ``__codecs``, ``__decoder_queue``,
``__decoder_thread`` and ``__timestamp_mapper`` attributes, calls ``_send_rtcp_nack``, wraps
this receiver's ``_handle_rtp_packet``, and relies on it calling ``add(packet)`` with the
depayloaded bytes in ``packet._data`` and sending a PLI when it returns True: aiortc is
pinned (>=1.16,<1.17) and tests/test_framereceiver.py fails if any of that changes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from aiortc import RTCRtpReceiver
from aiortc.codecs.vpx import VpxPayloadDescriptor
from aiortc.jitterbuffer import JitterFrame
from aiortc.rtp import RTP_HISTORY_SIZE, RtpPacket

log = logging.getLogger(__name__)

#: aiortc's own figures, so loss is handled at the same scale as before.
CAPACITY = 512  # packets: aiortc's video jitter buffer
MAX_MISORDER = 100  # aiortc: a packet this far back means the sequence restarted
#: A missing packet this far behind the newest is past recovery: aiortc stops NACKing
#: it (NackGenerator.truncate) and the sender no longer has it (its history is as long).
NACK_WINDOW = RTP_HISTORY_SIZE
#: How often to ask again for packets that block the next frame. aiortc NACKs a packet
#: once, and again only when some other packet goes missing: a lost retransmission
#: would otherwise stall the picture until then. A guess at the round trip (unknown here).
NACK_AGAIN = 0.1
#: A gap is waited for at least ``max_wait``, and longer where repairs take longer: this
#: many times the typical repair, up to REPAIR_WAIT_LIMIT seconds. On a link whose queue
#: is full, a retransmission takes a queue's round trip (350 ms was measured behind a
#: 600 kbit/s cap); giving up sooner asks for a keyframe, whose burst fills the queue
#: again, and the loss never ends.
REPAIRS_WAITED = 3
REPAIR_WAIT_LIMIT = 1.0
#: A stream's first packet that does not start a frame means the packets before it were
#: lost, and nothing else would ask for them (aiortc NACKs only gaps after the first packet
#: seen): ask for up to this many. The sender starts each viewer at a keyframe, so they are
#: that keyframe's beginning; numbers it never sent are ignored.
BACKFILL = 64

_H264_STAP_A, _H264_FU_A = 24, 28
_H264_IDR, _H264_SEI, _H264_SPS, _H264_PPS, _H264_AUD = 5, 6, 7, 8, 9


class WholeFrameBuffer:
    """A video jitter buffer that releases each frame as soon as all its packets are in.

    A frame is whole when its packets form an unbroken run of sequence numbers, one
    timestamp, from the frame's first packet to the one with the marker bit. Its first
    packet is known either because the packet before it ended the previous frame, or
    from the payload (VP8: start of partition 0; H.264: the NAL unit that opens an
    access unit). Frames go out in order, never one behind a gap: a frame that depends
    on a missing one would decode to garbage.

    A gap is waited for (aiortc's receiver NACKs the missing packets once; this buffer
    asks again every ``NACK_AGAIN`` seconds while they hold up the picture) until a
    later keyframe is whole, which then replaces everything before it, or until it is
    past repair: missing for ``max_wait`` seconds (longer on a link where repairs take
    long: see REPAIRS_WAITED), or out of the NACK window. Then the
    frames before the next keyframe are dropped and a keyframe requested (PLI), again
    every ``max_wait`` until one comes.

    Same interface as aiortc's JitterBuffer: ``add(packet)`` returns ``(pli_flag,
    frame)``, at most one frame a call. A packet may make several frames whole at once (a
    repair, frames that waited behind it): ``more()`` gives the others, which
    ``deliver_frames_when_complete`` hands to the decoder with the first.
    """

    def __init__(self, codec_name: Callable[[int], str | None] = lambda payload_type: None,
                 max_wait: float = 0.5, clock: Callable[[], float] = time.monotonic,
                 nack: Callable[[int, list[int]], None] | None = None) -> None:
        """``codec_name(payload_type)``: "VP8", "H264" or None (unknown: the frame
        boundaries come from marker bits and timestamps only, any frame may start).
        ``nack(ssrc, sequence_numbers)`` sends a NACK: for asking again, every
        ``NACK_AGAIN`` seconds, for the packets a stalled frame still lacks."""
        self._codec_name = codec_name
        self.max_wait = max_wait
        self._clock = clock
        self._nack = nack
        self._ssrc = 0
        self._nacked_at = float("-inf")
        # Sequence numbers are unwrapped (no 16-bit wrap) to keep comparisons simple.
        self._packets: dict[int, RtpPacket] = {}
        self._newest: int | None = None  # highest unwrapped sequence number seen
        self._floor = 0  # everything before this was delivered or dropped
        self._in_sync = False  # the next frame starts at _floor; else wait for a keyframe
        self._stalled_since: float | None = None  # when a gap began to block the next frame
        self._last_pli = float("-inf")
        self._repair_time: float | None = None  # how long a gap usually takes to fill (smoothed)
        self._payload_type = 0  # the last released frame's

    @property
    def capacity(self) -> int:
        return CAPACITY

    def add(self, packet: RtpPacket) -> tuple[bool, JitterFrame | None]:
        now = self._clock()
        self._ssrc = packet.ssrc
        seq = self._unwrap(packet.sequence_number)
        restarted = False
        if self._newest is None:
            self._newest = self._floor = seq
            self._last_pli = now  # the sender starts with a keyframe: give it time to come
            if packet.payload and not self._starts_frame(packet):
                self._backfill(seq)
        elif seq < self._floor:
            # Late retransmissions come from within the NACK window; far older than that
            # (aiortc: MAX_MISORDER) is a sender that restarted its sequence lower.
            if self._newest - seq < NACK_WINDOW + MAX_MISORDER:
                return False, self._next_in_order(now)  # late or duplicate: its frame is gone
            restarted = self._restart(seq)
        elif seq - self._floor >= CAPACITY:
            restarted = self._restart(seq)  # a jump beyond the buffer: start over at a keyframe
        if seq in self._packets:
            return False, self._next_in_order(now)  # duplicate, e.g. a retransmission crossing the original
        self._packets[seq] = packet
        self._newest = max(self._newest, seq)

        pli, frame = self._next_frame(seq if packet.payload else None, now)
        if pli or restarted:
            self._last_pli = now
        return pli or restarted, frame

    def more(self) -> list[tuple[int, JitterFrame]]:
        """The frames that are whole now, in order, behind the one ``add`` just returned,
        each with its payload type."""
        frames = []
        while (frame := self._next_in_order(self._clock())) is not None:
            frames.append((self._payload_type, frame))
        return frames

    def _next_frame(self, seq: int | None, now: float) -> tuple[bool, JitterFrame | None]:
        """``seq``: the packet just added; None for padding, which belongs to no frame."""
        frame = self._next_in_order(now)
        if frame is not None:
            return False, frame
        frame = None if seq is None else self._later_keyframe(seq)
        if frame is not None:
            return False, frame
        if self._in_sync:
            return self._give_up_on_a_lost_packet(now), None
        self._drop_old()
        return now - self._last_pli >= self.max_wait, None  # still no keyframe: ask again

    # -- frames ---------------------------------------------------------------

    def _next_in_order(self, now: float) -> JitterFrame | None:
        """The frame that follows the last one released, if it is whole."""
        if not self._in_sync:
            return None
        # Padding-only packets (a sender probing bandwidth) sit between frames: skip them.
        while (packet := self._packets.get(self._floor)) is not None and not packet.payload:
            del self._packets[self._floor]
            self._floor += 1
        end = self._end_of_frame(self._floor)
        if end is None:
            return None
        if self._stalled_since is not None:  # a gap held this frame up, and is now repaired
            took = now - self._stalled_since
            self._repair_time = took if self._repair_time is None else 0.75 * self._repair_time + 0.25 * took
        return self._release(self._floor, end)

    def _end_of_frame(self, start: int) -> int | None:
        """The last sequence number of the frame starting at ``start``, if all of it is here."""
        first = self._packets.get(start)
        if first is None:
            return None
        seq, packet = start, first
        while not packet.marker:
            following = self._packets.get(seq + 1)
            if following is None:
                return None
            if following.timestamp != first.timestamp or not following.payload:
                return seq  # a sender that sets no marker: the next frame (or padding) began
            seq, packet = seq + 1, following
        return seq

    def _start_of_frame(self, seq: int) -> int | None:
        """The first sequence number of ``seq``'s frame, if that packet is here and known to be first."""
        timestamp = self._packets[seq].timestamp
        while True:
            before = self._packets.get(seq - 1)
            if before is not None and before.timestamp == timestamp and not before.marker and before.payload:
                seq -= 1
                continue
            if before is not None or seq == self._floor and self._in_sync:
                return seq  # the packet before ended the previous frame
            return seq if self._starts_frame(self._packets[seq]) else None

    def _later_keyframe(self, seq: int) -> JitterFrame | None:
        """``seq``'s frame, if it is a whole keyframe: everything before it is obsolete.

        Out of sync, a whole frame that is not a keyframe cannot be decoded: it goes.
        """
        start = self._start_of_frame(seq)
        if start is None or (self._in_sync and start == self._floor):
            return None
        end = self._end_of_frame(start)
        if end is None:
            return None
        if self._is_keyframe(start, end):
            if self._in_sync:
                log.debug("a whole keyframe replaces the frames waiting for packet %d", self._floor)
            self._drop_before(start)
            return self._release(start, end)
        if not self._in_sync:
            # Only this frame: an older one still missing packets may be the keyframe.
            for seq in range(start, end + 1):
                del self._packets[seq]
        return None

    def _release(self, start: int, end: int) -> JitterFrame:
        packets = [self._packets.pop(seq) for seq in range(start, end + 1)]
        self._payload_type = packets[0].payload_type
        self._floor = end + 1
        self._in_sync = True
        self._stalled_since = None
        return JitterFrame(data=b"".join(p._data for p in packets), timestamp=packets[0].timestamp)

    # -- loss -----------------------------------------------------------------

    def _give_up_on_a_lost_packet(self, now: float) -> bool:
        """True (send a PLI) when the gap before the next frame is past repair."""
        hole = self._floor
        while hole in self._packets:
            hole += 1
        if hole > self._newest:
            self._stalled_since = None  # no gap: the frame is still arriving
            return False
        if self._stalled_since is None:
            self._stalled_since = self._nacked_at = now  # aiortc has just sent the first NACK
        if now - self._stalled_since < self._patience() and self._newest - hole < NACK_WINDOW:
            if self._nack is not None and now - self._nacked_at >= NACK_AGAIN:
                self._nacked_at = now
                self._nack(self._ssrc, [seq & 0xFFFF for seq in range(hole, self._newest)
                                        if seq not in self._packets])
            return False
        # The frame with the hole is lost, and with it every frame until a keyframe. The
        # packets after the hole stay: the keyframe may be among them, still arriving.
        log.debug("packet %d missing for %.0f ms (%d packets since): asking for a keyframe",
                  hole & 0xFFFF, (now - self._stalled_since) * 1000, self._newest - hole)
        self._drop_before(hole)
        self._in_sync = False
        return True

    def _backfill(self, first: int) -> None:
        """The stream's first packets were lost: ask for them (see BACKFILL)."""
        self._floor = first - BACKFILL
        if self._nack is not None:
            self._nack(self._ssrc, [seq & 0xFFFF for seq in range(self._floor, first)])

    def _patience(self) -> float:
        """How long a gap is waited for before its frames are given up."""
        if self._repair_time is None:
            return self.max_wait
        return max(self.max_wait, min(REPAIR_WAIT_LIMIT, REPAIRS_WAITED * self._repair_time))

    def _drop_old(self) -> None:
        """Out of sync: packets outside the NACK window can no longer complete a frame."""
        self._drop_before(self._newest - NACK_WINDOW)

    def _drop_before(self, seq: int) -> None:
        for old in range(self._floor, seq):
            self._packets.pop(old, None)
        self._floor = max(self._floor, seq)
        self._stalled_since = None

    def _restart(self, seq: int) -> bool:
        self._packets.clear()
        self._newest = self._floor = seq
        self._in_sync = False
        self._stalled_since = None
        return True

    def _unwrap(self, sequence_number: int) -> int:
        if self._newest is None:
            return sequence_number
        delta = (sequence_number - self._newest) & 0xFFFF
        return self._newest + (delta - 0x10000 if delta >= 0x8000 else delta)

    # -- codecs ---------------------------------------------------------------

    def _starts_frame(self, packet: RtpPacket) -> bool:
        codec = self._codec_name(packet.payload_type)
        if codec == "VP8":
            descriptor, _ = VpxPayloadDescriptor.parse(packet.payload)
            return bool(descriptor.partition_start) and descriptor.partition_id == 0
        if codec == "H264":
            return _h264_opens_access_unit(packet.payload)
        return True

    def _is_keyframe(self, start: int, end: int) -> bool:
        first = self._packets[start]
        codec = self._codec_name(first.payload_type)
        if codec == "VP8":
            data = first._data
            return len(data) > 0 and not data[0] & 0x01  # the frame tag's P bit: 0 for a keyframe
        if codec == "H264":
            return any(_H264_IDR in _h264_nal_types(self._packets[seq].payload)
                       for seq in range(start, end + 1))
        return True


def _h264_nal_types(payload: bytes) -> list[int]:
    """The types of the NAL units a packet starts (an FU-A continuation starts none)."""
    if not payload:
        return []
    kind = payload[0] & 0x1F
    if kind == _H264_FU_A:
        return [payload[1] & 0x1F] if len(payload) > 1 and payload[1] & 0x80 else []
    if kind == _H264_STAP_A:
        types, pos = [], 1
        while pos + 2 < len(payload):
            types.append(payload[pos + 2] & 0x1F)
            pos += 2 + int.from_bytes(payload[pos:pos + 2], "big")
        return types
    return [kind]


def _h264_opens_access_unit(payload: bytes) -> bool:
    """Whether a packet begins a new picture: parameter sets, SEI or a delimiter come
    first in an access unit, else its first slice (first_mb_in_slice 0, whose ue(v)
    code is the single bit 1)."""
    types = _h264_nal_types(payload)
    if not types:
        return False
    if types[0] in (_H264_SEI, _H264_SPS, _H264_PPS, _H264_AUD):
        return True
    if types[0] not in (1, _H264_IDR):
        return False
    kind = payload[0] & 0x1F
    slice_header = payload[2:] if kind == _H264_FU_A else payload[4:] if kind == _H264_STAP_A else payload[1:]
    return bool(slice_header) and bool(slice_header[0] & 0x80)


def deliver_frames_when_complete(receiver: RTCRtpReceiver, max_wait: float = 0.5) -> WholeFrameBuffer:
    """Make a video ``receiver`` hand each frame to its decoder as soon as it is whole.

    Call it right after ``addTransceiver``, before any packet arrives. Only this
    receiver changes: nothing else in the process is patched.
    """
    codecs = receiver._RTCRtpReceiver__codecs  # payload type -> codec, filled in by receive()

    def codec_name(payload_type: int) -> str | None:
        codec = codecs.get(payload_type)
        return None if codec is None else codec.name

    def nack(ssrc: int, sequence_numbers: list[int]) -> None:
        # add() runs inside the receiver's packet handler, on the event loop.
        asyncio.ensure_future(receiver._send_rtcp_nack(ssrc, sequence_numbers))

    buffer = WholeFrameBuffer(codec_name, max_wait=max_wait, nack=nack)
    receiver._RTCRtpReceiver__jitter_buffer = buffer
    handle_rtp_packet = receiver._handle_rtp_packet

    async def handle_rtp_packet_and_the_frames_it_completed(packet: RtpPacket, arrival_time_ms: int) -> None:
        await handle_rtp_packet(packet, arrival_time_ms)
        # aiortc decodes one frame per packet. Frames that waited behind a repaired gap would
        # then drain one per later packet, and at one packet a frame (180p) never: 340 ms
        # behind for good after one loss. They go to the decoder now, as aiortc sends its own.
        for payload_type, frame in buffer.more():
            codec = codecs.get(payload_type)
            if codec is not None and receiver._RTCRtpReceiver__decoder_thread:
                frame.timestamp = receiver._RTCRtpReceiver__timestamp_mapper.map(frame.timestamp)
                receiver._RTCRtpReceiver__decoder_queue.put((codec, frame))

    receiver._handle_rtp_packet = handle_rtp_packet_and_the_frames_it_completed
    return buffer
