"""The sender's clock behind an RTP stream, from its RTCP sender reports.

A sender report pairs an RTP timestamp with the sender's wall-clock time (NTP); any
other timestamp of the stream is that time plus the difference at the clock rate. Our
camera reports the capture time of the timestamp it names (peers/camera/senderreports.py),
so a received packet's timestamp gives its capture time on the camera's clock, as the
relay's header does.

``follow_sender_reports(receiver, clock_rate)`` wraps one receiver's
``_handle_rtcp_packet`` (aiortc 1.16, pinned) to read the reports it gets.
"""

from __future__ import annotations

from aiortc import RTCRtpReceiver
from aiortc.rtp import AnyRtcpPacket, RtcpSrPacket

from peercam.shared.ntptime import from_ntp

__all__ = ["SenderClock", "follow_sender_reports"]


class SenderClock:
    """Maps a stream's RTP timestamps to the sender's Unix time, from its latest report."""

    def __init__(self, clock_rate: int) -> None:
        self.clock_rate = clock_rate
        self._report: tuple[int, float] | None = None  # (RTP timestamp, Unix seconds)
        self.reports = 0

    def report(self, ntp_timestamp: int, rtp_timestamp: int) -> None:
        """A sender report: ``rtp_timestamp`` was at ``ntp_timestamp`` (64-bit NTP) on the sender."""
        unix = from_ntp(ntp_timestamp)
        self._report = (rtp_timestamp, unix)
        self.reports += 1

    def time_of(self, rtp_timestamp: int) -> float | None:
        """The sender's Unix time of ``rtp_timestamp``; None before the first report."""
        if self._report is None:
            return None
        reported, unix = self._report
        delta = (rtp_timestamp - reported) & 0xFFFFFFFF
        if delta >= 0x80000000:  # before the report
            delta -= 0x100000000
        return unix + delta / self.clock_rate


def follow_sender_reports(receiver: RTCRtpReceiver, clock_rate: int) -> SenderClock:
    """A SenderClock fed by the sender reports ``receiver`` gets (this receiver only)."""
    clock = SenderClock(clock_rate)
    handle_rtcp_packet = receiver._handle_rtcp_packet

    async def handle_rtcp_packet_and_read_reports(packet: AnyRtcpPacket) -> None:
        if isinstance(packet, RtcpSrPacket):
            clock.report(packet.sender_info.ntp_timestamp, packet.sender_info.rtp_timestamp)
        await handle_rtcp_packet(packet)

    receiver._handle_rtcp_packet = handle_rtcp_packet_and_read_reports
    return clock
