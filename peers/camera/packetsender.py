"""One viewer's RTP sending, done from the fan-out's pass over its viewers: no task wake-up per viewer.

aiortc's RTCRtpSender sends from a task of its own (``_run_rtp``) that awaits its track
for each frame. For a fan-out that is a wake-up per viewer per frame, and for the sound
per 20 ms packet: an asyncio queue, a future and four coroutine frames each time, which
cost the camera more than the packet's SRTP and ``sendto`` together (the profile in
docs/benchmarks.md's fan-out section). ``PacketSender`` takes ``_run_rtp``'s place: the
fan-out hands each viewer's frame to ``send`` in its one pass over the viewers on the
event loop, and ``send`` writes the packets as ``_run_rtp`` would: the same RTP headers
and extensions, the same history for retransmissions, the same counts for the sender
reports. Nothing waits in between: aioice's send only hands the datagram to asyncio's
transport (TURN's transport makes its own task).

A bounded backlog: asyncio buffers what a viewer's socket does not take at once, without
a bound; ``send`` refuses a frame while that holds ``MAX_BUFFERED`` bytes or more, and the
track drops it, so a slow viewer costs only itself.

The sender's state is aiortc's private state: aiortc is pinned (>=1.16,<1.17), and
tests/test_fanout.py, test_audiofanout.py and test_senderreports.py play real media
through it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from aiortc import RTCRtpSender
from aiortc.rtcdtlstransport import State as DtlsState
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtcrtpsender import random_sequence_number
from aiortc.rtp import RTP_HISTORY_SIZE, RtpPacket
from aiortc.utils import random32, uint16_add, uint32_add

from peercam.shared.ntptime import NTP_TO_UNIX, to_ntp

__all__ = ["MAX_BUFFERED", "PacketSender"]

log = logging.getLogger(__name__)

#: Bytes asyncio may hold for a viewer's socket before its frames are refused: a keyframe
#: at 720p or so, a few tenths of a second of video.
MAX_BUFFERED = 256 * 1024
#: The abs-send-time header extension: seconds in 6.18 fixed point, 24 bits.
_ABS_SEND_TIME_UNITS = 1 << 18


class PacketSender:
    """Sends the frames given to ``send`` through ``sender``, from the caller's pass.

    Made before the sender starts (before the offer is applied); ``on_started`` is called
    when aiortc starts it (the connection is up): ``send`` sends from then on.
    """

    def __init__(self, sender: RTCRtpSender, on_started: Callable[[], None] | None = None) -> None:
        self._sender = sender
        self._on_started = on_started
        self._running: asyncio.Future[None] | None = None
        self._payload_type = 0
        self._sequence_number = 0
        self._timestamp_origin = 0
        self._mid: str | None = None
        sender._run_rtp = self._run_rtp  # type: ignore[method-assign]

    @property
    def sending(self) -> bool:
        """Started, and not ended (the connection closed, or the sender stopped)."""
        return self._running is not None and not self._running.done()

    async def _run_rtp(self, codec: RTCRtpCodecParameters) -> None:
        """In place of aiortc's: waits while ``send`` sends, then ends as aiortc's does."""
        sender = self._sender
        sender._RTCRtpSender__rtp_started.set()  # type: ignore[attr-defined]
        self._payload_type = codec.payloadType
        self._sequence_number = random_sequence_number()
        self._timestamp_origin = random32()
        self._mid = sender._RTCRtpSender__mid  # type: ignore[attr-defined]
        self._running = asyncio.get_running_loop().create_future()
        try:
            if self._on_started is not None:
                self._on_started()
            await self._running
        except asyncio.CancelledError:
            pass
        finally:
            self._end()
            if sender.track is not None:
                sender.track.stop()
                sender._RTCRtpSender__track = None  # type: ignore[attr-defined]
            sender._RTCRtpSender__encoder = None  # type: ignore[attr-defined]
            sender._RTCRtpSender__rtp_exited.set()  # type: ignore[attr-defined]

    def _end(self) -> None:
        if self._running is not None and not self._running.done():
            self._running.set_result(None)

    def send(self, item: Any) -> bool:
        """Pack ``item`` with the sender's encoder and send its packets now. False if nothing
        was sent: not sending (yet, or any more), or the viewer's backlog is full."""
        if not self.sending:
            return False
        sender = self._sender
        if not sender._enabled:
            return True  # aiortc drops what a disabled sender would send
        dtls = sender.transport
        pair = dtls.transport._connection._nominated.get(1)
        if dtls._state != DtlsState.CONNECTED or pair is None:
            self._end()  # aiortc's sender ends on its ConnectionError
            return False
        socket = pair.protocol.transport
        if getattr(socket, "get_write_buffer_size", lambda: 0)() >= MAX_BUFFERED:
            return False
        try:
            payloads, timestamp = sender._RTCRtpSender__encoder.pack(item)  # type: ignore[attr-defined]
            if payloads:
                self._write(payloads, uint32_add(self._timestamp_origin, timestamp), dtls, socket,
                            pair.remote_addr)
        except Exception:
            log.exception("sending to %s failed", sender.transport)
            self._end()
            return False
        return True

    def _write(self, payloads: list[bytes], timestamp: int, dtls, socket, address) -> None:
        """What aiortc's _run_rtp does for one frame, but for the clock: time.time() once a
        packet for its abs-send-time (aiortc reads it twice a packet, through datetime)."""
        sender = self._sender
        history = sender._RTCRtpSender__rtp_history  # type: ignore[attr-defined]
        extensions_map = sender._RTCRtpSender__rtp_header_extensions_map  # type: ignore[attr-defined]
        protect = dtls._tx_srtp.protect
        sequence_number, last, octets, sent_bytes = self._sequence_number, len(payloads) - 1, 0, 0
        now = 0.0
        for i, payload in enumerate(payloads):
            packet = RtpPacket(payload_type=self._payload_type, sequence_number=sequence_number,
                               timestamp=timestamp)
            packet.ssrc = sender._ssrc
            packet.payload = payload
            packet.marker = 1 if i == last else 0
            now = time.time()
            packet.extensions.abs_send_time = int((now + NTP_TO_UNIX) * _ABS_SEND_TIME_UNITS) & 0xFFFFFF
            packet.extensions.mid = self._mid
            history[sequence_number % RTP_HISTORY_SIZE] = packet
            data = protect(packet.serialize(extensions_map))
            socket.sendto(data, address)
            octets += len(payload)
            sent_bytes += len(data)
            sequence_number = uint16_add(sequence_number, 1)
        self._sequence_number = sequence_number
        # What the next sender report says (aiortc: after each packet; only the last is read).
        sender._RTCRtpSender__ntp_timestamp = to_ntp(now)  # type: ignore[attr-defined]
        sender._RTCRtpSender__rtp_timestamp = timestamp  # type: ignore[attr-defined]
        sender._RTCRtpSender__octet_count += octets  # type: ignore[attr-defined]
        sender._RTCRtpSender__packet_count += len(payloads)  # type: ignore[attr-defined]
        dtls._RTCDtlsTransport__tx_bytes += sent_bytes
        dtls._RTCDtlsTransport__tx_packets += len(payloads)
