"""Sender reports that say when the media was captured, not when it was sent.

An RTCP sender report pairs an RTP timestamp with the sender's clock (NTP); receivers
map every timestamp of the stream through it, and browsers line sound and picture up by
those times (lip sync). aiortc 1.16 pairs the last packet's timestamp with the moment it
was sent. Our timestamps count the capture time (peers/camera/fanout.py,
audiopipeline.py), so each stream's report is off by that packet's capture-to-send delay:
for the sound a whole 20 ms packet and its encoding, for the picture the encoder's time.
Sound then maps about 20 ms later than the picture captured with it, and a browser
delays the sound by the difference.

``report_capture_times(sender)`` makes one sender's reports name the capture time of
the timestamp they carry. It wraps the pack() of the encoder our fan-out tracks give the
sender (their items carry ``capture_time``) to note how many packets each frame ends at,
and the sender's ``_send_rtcp`` to find, by a report's packet count, the frame its last
packet belonged to. It sets aiortc's private ``__lsr`` to match (the RTT estimate
compares it with the receiver's echo): aiortc is pinned (>=1.16,<1.17), and
tests/test_senderreports.py fails if the reports stop telling capture times.
"""

from __future__ import annotations

from collections import deque

from aiortc import RTCRtpSender
from aiortc.rtp import AnyRtcpPacket, RtcpSrPacket

from peercam.shared.ntptime import to_ntp

__all__ = ["report_capture_times"]

#: Frames remembered: far more than can be packed but not yet sent when a report goes out.
FRAMES_KEPT = 64


def report_capture_times(sender: RTCRtpSender) -> None:
    """Make ``sender``'s sender reports pair their RTP timestamp with its capture time.

    Call it once the fan-out track has given the sender its encoder (``attach_sender``).
    Only this sender changes. A report whose packet is not among the frames remembered
    goes out as aiortc made it.
    """
    encoder = sender._RTCRtpSender__encoder  # type: ignore[attr-defined]
    pack = encoder.pack
    # (packets sent before this frame, and once its last one is, both modulo 2**32; its capture time)
    frames: deque[tuple[int, int, float]] = deque(maxlen=FRAMES_KEPT)
    packets = 0

    def pack_and_note(item):
        nonlocal packets
        payloads, timestamp = pack(item)
        before, packets = packets, (packets + len(payloads)) & 0xFFFFFFFF
        frames.append((before, packets, item.capture_time))
        return payloads, timestamp

    def capture_time_of(packet_count: int) -> float | None:
        """The capture time of the frame that packet number ``packet_count`` (from 1) belongs to."""
        for before, end, capture_time in reversed(frames):
            if 0 < (packet_count - before) & 0xFFFFFFFF <= (end - before) & 0xFFFFFFFF:
                return capture_time
        return None

    send_rtcp = sender._send_rtcp

    async def send_rtcp_with_capture_times(packets_out: list[AnyRtcpPacket]) -> None:
        for packet in packets_out:
            if isinstance(packet, RtcpSrPacket) and packet.ssrc == sender._ssrc:
                capture_time = capture_time_of(packet.sender_info.packet_count)
                if capture_time is not None:
                    packet.sender_info.ntp_timestamp = to_ntp(capture_time)
                    sender._RTCRtpSender__lsr = (packet.sender_info.ntp_timestamp >> 16) & 0xFFFFFFFF  # type: ignore[attr-defined]
        await send_rtcp(packets_out)

    encoder.pack = pack_and_note
    sender._send_rtcp = send_rtcp_with_capture_times
