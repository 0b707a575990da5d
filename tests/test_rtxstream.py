"""peers/camera/rtxstream.py: a viewer's retransmissions, within bounds, and the padding that probes its link.

The sender is aiortc's own RTCRtpSender (the pinned version): RtxStream replaces its private
packet history and ``_retransmit`` and reads its RTX numbering and round-trip estimate, so
the viewer's NACKs and receiver reports go in through the sender's ``_handle_rtcp_packet``
and what goes out is parsed back from the bytes the sender hands its transport. Only that
transport (DTLS, not under test) is a stand-in; packets enter the history as the sender's
RTP loop stores them. The budget and the round-trip gap run on a clock the tests move;
probes run in real time, shortened.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from aiortc import RTCRtpSender
from aiortc.rtp import (
    RTCP_RTPFB_NACK,
    RTP_HISTORY_SIZE,
    RtcpReceiverInfo,
    RtcpRrPacket,
    RtcpRtpfbPacket,
    RtpPacket,
)
from aiortc.utils import uint16_add
from peercam.peers.camera.rtxstream import (
    BACKOFF_LOSS,
    DEFAULT_RTT,
    MAX_RESENDS,
    MIN_SHARE,
    PAD_DELAY,
    RTX_SHARE,
    SHARE_STEP,
    RtxStream,
)

from .test_framereceiver import Clock

VIDEO_PT, RTX_PT = 96, 97
VIEWER_SSRC = 4321
BITRATE = 200_000  # the layer's, bits a second
PAYLOAD = 1000  # bytes a packet
TARGET = 1_000_000  # what probes try, bits a second


class Transport:
    """Stands in for the DTLS transport: what the sender hands it, parsed, and when."""

    state = "connected"
    _stats_id = "transport"

    def __init__(self) -> None:
        self.sent: list[tuple[float, RtpPacket]] = []

    async def _send_rtp(self, data: bytes) -> None:
        self.sent.append((time.monotonic(), RtpPacket.parse(data)))

    def _get_stats(self) -> dict:
        return {}


class Camera:
    """A real sender whose retransmissions an RtxStream took over, and the video it sends."""

    def __init__(self, clock, rtx: bool) -> None:
        self.transport = Transport()
        self.sender = RTCRtpSender("video", self.transport)
        if rtx:  # what send() sets from the negotiated video/rtx codec (its apt the video's)
            self.sender._RTCRtpSender__rtx_payload_type = RTX_PT
        self.clock = clock
        self.stream = RtxStream(self.sender, BITRATE, clock=clock)
        self.numbers: list[int] = []  # of the packets sent
        self._next = 65530  # the numbers wrap within the first frame

    @classmethod
    async def start(cls, packets: int = 10, rtx: bool = True, real_time: bool = False) -> Camera:
        """A keyframe of ``packets`` sent; on the test's clock, 2 s later (the budget, of 1 s, is full)."""
        camera = cls(time.monotonic if real_time else Clock(), rtx)
        await camera.send(packets, keyframe=True)
        if not real_time:
            camera.clock.now += 2
        return camera

    async def send(self, count: int, keyframe: bool = False) -> list[int]:
        """A frame of ``count`` packets, as the sender's RTP loop sends them; their numbers."""
        self.stream.frame(keyframe)  # what the track's pack() does
        numbers = []
        for _ in range(count):
            seq, self._next = self._next, uint16_add(self._next, 1)
            packet = RtpPacket(payload_type=VIDEO_PT, sequence_number=seq, timestamp=90 * seq,
                               ssrc=self.sender._ssrc, payload=payload(seq))
            self.sender._RTCRtpSender__rtp_history[seq % RTP_HISTORY_SIZE] = packet
            await self.transport._send_rtp(packet.serialize())
            numbers.append(seq)
        self.numbers += numbers
        return numbers

    async def nack(self, *lost: int) -> list[RtpPacket]:
        """The viewer's NACK, through the sender; what went out for it."""
        before = len(self.transport.sent)
        await self.sender._handle_rtcp_packet(RtcpRtpfbPacket(
            fmt=RTCP_RTPFB_NACK, ssrc=VIEWER_SSRC, media_ssrc=self.sender._ssrc, lost=list(lost)))
        return [packet for _, packet in self.transport.sent[before:]]

    async def report(self, fraction_lost: int) -> None:
        """The viewer's receiver report (the loss in 256ths), through the sender."""
        info = RtcpReceiverInfo(ssrc=self.sender._ssrc, fraction_lost=fraction_lost, packets_lost=0,
                                highest_sequence=self._next, jitter=0, lsr=0, dlsr=0)
        await self.sender._handle_rtcp_packet(RtcpRrPacket(ssrc=VIEWER_SSRC, reports=[info]))

    async def probe(self, seconds: float, fraction_lost: int = 0, asks=lambda seq: ()):
        """A probe while the video goes on, a packet every 20 ms. The viewer reported no loss
        just before it, reports ``fraction_lost`` once its padding is over, and after each
        packet ``seq`` asks for ``asks(seq)``. The probe's result, and its padding."""
        await self.report(0)  # from before the padding: it cannot tell whether the padding fits
        before, started = len(self.transport.sent), time.monotonic()
        probe = asyncio.create_task(self.stream.probe(TARGET, seconds=seconds))
        while not probe.done():
            if lost := asks((await self.send(1))[0]):
                await self.nack(*lost)
            if time.monotonic() - started > seconds + 0.05:
                await self.report(fraction_lost)
            await asyncio.sleep(0.02)
        padding = [(at, p) for at, p in self.transport.sent[before:] if p.ssrc == self.sender._rtx_ssrc]
        return probe.result(), padding


def payload(seq: int) -> bytes:
    return seq.to_bytes(2, "big") * (PAYLOAD // 2)


def original(rtx: RtpPacket) -> int:
    """The number of the packet an RTX packet repeats (RFC 4588: its payload's first two bytes)."""
    return int.from_bytes(rtx.payload[:2], "big")


def media_bytes(packets) -> int:
    """What RTX packets repeat of the video: their payloads, less the original's number."""
    return sum(len(p.payload) - 2 for p in packets)


async def test_a_real_sender_has_the_private_parts_it_takes_over():
    attributes = vars(RTCRtpSender("video", Transport()))
    for name in ("rtp_history", "rtx_payload_type", "rtx_sequence_number", "rtt",
                 "rtp_header_extensions_map"):
        assert f"_RTCRtpSender__{name}" in attributes
    assert {"_ssrc", "_rtx_ssrc"} <= attributes.keys()


async def test_a_nacked_packet_goes_again_once_as_rtx():
    camera = await Camera.start()
    lost = camera.numbers[3], camera.numbers[8]  # 65533 and 2: either side of the wrap
    first = camera.sender._RTCRtpSender__rtx_sequence_number
    sent = await camera.nack(*lost)
    assert [p.payload_type for p in sent] == [RTX_PT, RTX_PT]
    assert [p.ssrc for p in sent] == [camera.sender._rtx_ssrc] * 2
    assert [p.sequence_number for p in sent] == [first, uint16_add(first, 1)]
    assert camera.sender._RTCRtpSender__rtx_sequence_number == uint16_add(first, 2)
    assert [original(p) for p in sent] == list(lost)
    assert [p.payload[2:] for p in sent] == [payload(seq) for seq in lost]
    assert camera.stream.retransmitted == 2


async def test_nothing_from_before_the_newest_keyframe_goes_again():
    camera = await Camera.start(packets=4)  # a keyframe, 65530-65533
    before = await camera.send(2)
    keyframe = await camera.send(3, keyframe=True)  # from 0: the numbers wrapped just before
    after = await camera.send(2)
    assert await camera.nack(camera.numbers[0], *before) == []
    assert camera.stream.refused == 3
    assert [original(p) for p in await camera.nack(keyframe[0], after[-1])] == [keyframe[0], after[-1]]


async def test_a_packet_goes_again_once_a_round_trip_and_at_most_max_resends_times():
    camera = await Camera.start()
    seq = camera.numbers[5]
    assert len(await camera.nack(seq)) == 1
    camera.clock.now += 0.9 * DEFAULT_RTT  # no round trip measured yet
    assert await camera.nack(seq) == []
    camera.clock.now += 0.2 * DEFAULT_RTT
    assert len(await camera.nack(seq)) == 1
    camera.sender._RTCRtpSender__rtt = 0.03  # as aiortc estimates it from the viewer's reports
    for _ in range(MAX_RESENDS - 2):
        camera.clock.now += 0.04
        assert len(await camera.nack(seq)) == 1
    camera.clock.now += 10
    assert await camera.nack(seq) == []
    assert (camera.stream.retransmitted, camera.stream.refused) == (MAX_RESENDS, 2)


async def test_retransmissions_stay_within_their_share_of_the_layers_bitrate():
    camera = await Camera.start(packets=100)
    budget = RTX_SHARE * BITRATE / 8  # bytes a second
    assert budget - PAYLOAD < media_bytes(await camera.nack(*camera.numbers)) <= budget
    camera.clock.now += 0.5  # what is left of the burst is under a packet
    assert budget / 2 - PAYLOAD < media_bytes(await camera.nack(*camera.numbers)) <= budget / 2 + PAYLOAD


async def test_loss_that_lasts_shrinks_the_share_and_clean_seconds_restore_it():
    camera = await Camera.start(packets=100)

    async def second(lost_share: float) -> None:
        """A second of video, 100 packets, of which the viewer asks again for ``lost_share``."""
        numbers = await camera.send(100)
        await camera.nack(*numbers[:int(lost_share * 100)])
        camera.clock.now += 1.0

    shares = []
    for lost in (BACKOFF_LOSS + 0.05,) * 5 + (0.0,) * 3:
        await second(lost)
        shares.append(camera.stream.share)
    await camera.send(1)  # the next frame assesses the last second
    shares.append(camera.stream.share)
    halved = [RTX_SHARE / 2 ** n for n in range(1, 5)]
    assert shares[:5] == pytest.approx([RTX_SHARE] + [max(MIN_SHARE, s) for s in halved])
    assert shares[5] == pytest.approx(MIN_SHARE)
    assert shares[6:] == pytest.approx([MIN_SHARE + SHARE_STEP * n for n in (1, 2, 3)])
    # Loss below BACKOFF_LOSS (a link that loses some at random) keeps the share.
    for _ in range(10):
        await second(BACKOFF_LOSS - 0.05)
    assert camera.stream.share == pytest.approx(MIN_SHARE + SHARE_STEP * 3)
    # What a lossy second may retransmit is the smaller share of the bitrate.
    camera.clock.now += 2
    numbers = await camera.send(100)
    assert media_bytes(await camera.nack(*numbers)) <= camera.stream.share * BITRATE / 8


async def test_a_packet_never_sent_or_gone_from_the_history_sends_nothing():
    camera = await Camera.start(packets=1)
    first = camera.numbers[0]
    await camera.send(RTP_HISTORY_SIZE)  # the last of them took the first's place
    assert await camera.nack(first, uint16_add(camera.numbers[-1], 1)) == []
    assert camera.stream.retransmitted == 0
    assert [original(p) for p in await camera.nack(camera.numbers[-1])] == [camera.numbers[-1]]


@pytest.mark.parametrize("fraction_lost", [0, 64])
async def test_a_probe_pads_up_to_its_target_and_the_report_after_it_decides(fraction_lost):
    camera = await Camera.start(packets=20, real_time=True)
    await asyncio.sleep(PAD_DELAY)  # the history is old enough to copy
    result, padding = await camera.probe(seconds=0.3, fraction_lost=fraction_lost)
    assert result.fits == (fraction_lost == 0), result.reason
    assert {p.payload_type for _, p in padding} == {RTX_PT}
    full = (TARGET - BITRATE) / 8 * 0.3  # at the target all along; the ramp to it makes it 3/4
    assert 0.4 * full <= media_bytes(p for _, p in padding) <= full
    # Copies of packets sent PAD_DELAY before (less the moment between history and transport).
    sent_at = {p.sequence_number: at for at, p in camera.transport.sent if p.ssrc == camera.sender._ssrc}
    assert all(at - sent_at[original(p)] >= PAD_DELAY - 0.001 for at, p in padding)


async def test_a_probe_pads_up_from_what_the_video_sends_not_from_the_layers_bitrate():
    """The video sends twice its layer's bitrate here (encoders miss their rate both ways):
    the padding makes the link carry the target in all, not target + what the layer missed."""
    camera = await Camera.start(packets=1, real_time=True)
    for _ in range(50):  # a second of video at 400 kbit/s: 1000 bytes every 20 ms
        await camera.send(1)
        await asyncio.sleep(0.02)
    sent_before = len(camera.transport.sent)
    probe_start = time.monotonic()
    _, padding = await camera.probe(seconds=1.0)
    held = [(at, p) for at, p in padding if at >= probe_start + 0.55]  # after the ramp: at full rate
    rate = media_bytes(p for _, p in held[1:]) / (held[-1][0] - held[0][0])
    video = [(at, p) for at, p in camera.transport.sent[sent_before:] if p.ssrc == camera.sender._ssrc]
    video_rate = media_bytes(p for _, p in video[1:]) / (video[-1][0] - video[0][0])
    # (The old rule, the target less the layer's bitrate, pads at 100 kB/s here.)
    assert 0.85 <= (rate + video_rate) / (TARGET / 8) <= 1.1, (rate, video_rate)


async def test_a_probe_with_nothing_old_enough_to_copy_does_not_pass():
    camera = await Camera.start(packets=20, real_time=True)  # all sent just now
    result, padding = await camera.probe(seconds=0.2)
    assert not result.fits and "of padding" in result.reason, result.reason


async def test_a_probe_fails_as_soon_as_the_viewer_asks_for_a_tenth_of_its_packets_again():
    camera = await Camera.start(packets=20, real_time=True)
    started = time.monotonic()
    result, _ = await camera.probe(seconds=2, asks=lambda seq: (seq,) if seq % 10 == 0 else ())
    assert not result.fits
    assert "while probing" in result.reason
    assert time.monotonic() - started < 1


async def test_a_refused_packet_asked_for_again_is_not_new_loss_to_a_probe():
    camera = await Camera.start(packets=20, real_time=True)
    old = camera.numbers[0]
    await camera.send(2, keyframe=True)
    await camera.nack(old)  # refused: from before the newest keyframe
    await asyncio.sleep(PAD_DELAY)
    result, _ = await camera.probe(seconds=0.3, asks=lambda seq: (old,))  # as receivers keep asking
    assert result.fits, result.reason


async def test_probes_need_an_rtx_payload_type():
    assert not (await Camera.start(rtx=False)).stream.can_probe
    assert (await Camera.start()).stream.can_probe
