"""peers/viewer/framereceiver.py: frames go to the decoder once whole, in order, with loss handled.

The packets are real: aiortc's own VP8 (and H.264) encoder and packetizer make the
payloads, aiortc's depayloader fills ``packet._data`` as its receiver does, and aiortc's
decoder checks that what comes out is a picture.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import random
import time
from fractions import Fraction

import av
import numpy as np
import pytest
from aiortc import RTCRtpReceiver
from aiortc.codecs import depayload
from aiortc.codecs.h264 import H264Encoder
from aiortc.codecs.vpx import Vp8Decoder, Vp8Encoder
from aiortc.jitterbuffer import JitterBuffer
from aiortc.rtcrtpparameters import RTCRtpCodecParameters, RTCRtpDecodingParameters, RTCRtpReceiveParameters
from aiortc.rtcrtpreceiver import NackGenerator, RemoteStreamTrack
from aiortc.rtp import (
    RTCP_PSFB_PLI,
    RTCP_RTPFB_NACK,
    RTP_HISTORY_SIZE,
    RtcpPacket,
    RtcpPsfbPacket,
    RtcpRtpfbPacket,
    RtpPacket,
)
from peercam.peers.viewer.framereceiver import (
    BACKFILL,
    NACK_AGAIN,
    NACK_WINDOW,
    WholeFrameBuffer,
    deliver_frames_when_complete,
)

from .test_faults import camera_stats

VP8 = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=96)
H264 = RTCRtpCodecParameters(mimeType="video/H264", clockRate=90000, payloadType=102)
SSRC = 1234


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Sender:
    """A VP8 (or H.264) stream as aiortc's sender would put it on the wire."""

    def __init__(self, codec: RTCRtpCodecParameters = VP8, first_sequence: int = 65530) -> None:
        self.codec = codec
        self._encoder = Vp8Encoder() if codec is VP8 else H264Encoder()
        self._sequence = first_sequence  # wraps past 65535 within the first frames
        self._frames = 0
        self._noise = np.random.default_rng(7).integers(0, 256, (180, 160), dtype=np.uint8)

    def frame(self, keyframe: bool = False, min_packets: int = 3) -> list[RtpPacket]:
        """The next frame's packets (160x120 noise, moving: a few packets each)."""
        image = av.VideoFrame.from_ndarray(np.roll(self._noise, 3 * self._frames, axis=1), format="yuv420p")
        image.pts, image.time_base = self._frames * 3000, Fraction(1, 90000)
        self._frames += 1
        payloads, timestamp = self._encoder.encode(image, force_keyframe=keyframe)
        packets = []
        for i, payload in enumerate(payloads):
            packet = RtpPacket(payload_type=self.codec.payloadType, marker=int(i == len(payloads) - 1),
                               sequence_number=self._sequence, timestamp=timestamp, ssrc=SSRC,
                               payload=payload)
            packet._data = depayload(self.codec, payload)  # what RTCRtpReceiver does before add()
            packets.append(packet)
            self._sequence = (self._sequence + 1) & 0xFFFF
        assert len(packets) >= min_packets, "the test needs frames of several packets"
        return packets


def make_buffer(clock: Clock | None = None, codec: RTCRtpCodecParameters = VP8) -> WholeFrameBuffer:
    return WholeFrameBuffer(lambda pt: codec.name if pt == codec.payloadType else None,
                            max_wait=0.5, clock=clock or Clock())


def feed(buffer: WholeFrameBuffer, packets: list[RtpPacket]) -> list[tuple[bool, object]]:
    return [buffer.add(packet) for packet in packets]


def frame_data(packets: list[RtpPacket]) -> bytes:
    return b"".join(p._data for p in packets)


def test_a_frame_goes_out_with_its_last_packet_and_decodes():
    sender, buffer, decoder = Sender(), make_buffer(), Vp8Decoder()
    for keyframe in (True, False, False):
        packets = sender.frame(keyframe)
        results = feed(buffer, packets)
        assert [frame for _, frame in results[:-1]] == [None] * (len(packets) - 1)
        pli, frame = results[-1]  # released by its marker packet, before any of the next frame's
        assert not pli and frame.data == frame_data(packets) and frame.timestamp == packets[0].timestamp
        [picture] = decoder.decode(frame)
        assert (picture.width, picture.height) == (160, 120)


def test_a_frame_waits_for_a_missing_packet_then_frames_follow_in_order():
    sender, buffer = Sender(), make_buffer()
    feed(buffer, sender.frame(keyframe=True))
    first, second, third = sender.frame(), sender.frame(), sender.frame()
    missing = first[1]
    assert all(frame is None for _, frame in feed(buffer, [p for p in first if p is not missing]))
    assert all(frame is None for _, frame in feed(buffer, second))  # whole, but behind the gap
    pli, frame = buffer.add(missing)  # the retransmission arrives
    assert not pli and frame.data == frame_data(first)
    [(payload_type, frame)] = buffer.more()  # and the frame that waited behind it, at once
    assert payload_type == VP8.payloadType and frame.data == frame_data(second)
    assert buffer.more() == []
    results = feed(buffer, third)
    assert [frame for _, frame in results[:-1]] == [None] * (len(third) - 1)
    assert results[-1][1].data == frame_data(third)


def test_packets_out_of_order_within_a_frame():
    sender, buffer = Sender(), make_buffer()
    feed(buffer, sender.frame(keyframe=True))
    packets = sender.frame()
    shuffled = [packets[-1], *packets[1:-1][::-1], packets[0]]
    results = feed(buffer, shuffled)
    assert [frame is None for _, frame in results] == [True] * (len(packets) - 1) + [False]
    assert results[-1][1].data == frame_data(packets)


def test_padding_packets_between_frames_are_skipped():
    sender, buffer = Sender(), make_buffer()
    feed(buffer, sender.frame(keyframe=True))
    packets = sender.frame()
    padding = RtpPacket(payload_type=VP8.payloadType, sequence_number=packets[0].sequence_number,
                        timestamp=packets[0].timestamp - 3000, ssrc=SSRC)  # a bandwidth probe
    padding._data = b""  # as RTCRtpReceiver sets it for an empty payload
    for packet in packets:
        packet.sequence_number = (packet.sequence_number + 1) & 0xFFFF
    assert buffer.add(padding) == (False, None)
    assert feed(buffer, packets)[-1][1].data == frame_data(packets)


def test_old_and_duplicate_packets_are_ignored():
    sender, buffer = Sender(), make_buffer()
    key = sender.frame(keyframe=True)
    feed(buffer, key)
    assert buffer.add(key[0]) == (False, None)  # its frame has gone to the decoder
    packets = sender.frame()
    feed(buffer, packets[:2])
    assert buffer.add(packets[1]) == (False, None)  # a duplicate of one held
    *_, (pli, frame) = feed(buffer, packets[2:])
    assert frame.data == frame_data(packets)  # each packet's bytes once
    assert feed(buffer, packets) == [(False, None)] * len(packets)  # a retransmitted frame, too late


def test_a_permanent_gap_drops_frames_until_a_requested_keyframe():
    clock = Clock()
    sender, buffer = Sender(), make_buffer(clock)
    feed(buffer, sender.frame(keyframe=True))
    lost = sender.frame()
    feed(buffer, lost[:1] + lost[2:])
    results = []
    for _ in range(14):  # frames that reference the lost one, over 0.47 s: still waiting
        clock.now += 1 / 30
        results += feed(buffer, sender.frame())
    assert results == [(False, None)] * len(results)
    clock.now += 0.05  # half a second without that packet: a keyframe is needed (PLI)
    first, *rest = feed(buffer, sender.frame())
    assert first == (True, None) and rest == [(False, None)] * len(rest)
    clock.now += 0.3
    assert all(result == (False, None) for result in feed(buffer, sender.frame()))  # not decodable
    clock.now += 0.25
    assert feed(buffer, sender.frame())[0] == (True, None)  # no keyframe yet: asked again
    assert buffer.add(lost[1]) == (False, None)  # the packet, too late
    key = sender.frame(keyframe=True)
    *_, (pli, frame) = feed(buffer, key)
    assert not pli and frame.data == frame_data(key)
    following = sender.frame()
    assert feed(buffer, following)[-1][1].data == frame_data(following)


def test_packets_a_stalled_frame_lacks_are_asked_for_again():
    clock, asked = Clock(), []
    sender = Sender()
    buffer = WholeFrameBuffer(lambda pt: "VP8", max_wait=0.5, clock=clock,
                              nack=lambda ssrc, seqs: asked.append((ssrc, seqs)))
    feed(buffer, sender.frame(keyframe=True))
    lost, second, third = sender.frame(), sender.frame(), sender.frame()
    feed(buffer, lost[:1] + lost[3:] + second[:1])  # two packets missing: aiortc NACKs them now
    clock.now += NACK_AGAIN * 0.6
    feed(buffer, second[1:2])
    assert asked == []
    clock.now += NACK_AGAIN * 0.6
    feed(buffer, second[2:3])
    assert asked == [(SSRC, [lost[1].sequence_number, lost[2].sequence_number])]
    buffer.add(lost[1])
    clock.now += NACK_AGAIN * 1.1
    buffer.add(third[0])
    assert asked[1:] == [(SSRC, [p.sequence_number for p in [lost[2], *second[3:]]])]  # all still missing
    assert buffer.add(lost[2])[1].data == frame_data(lost)


def test_a_gap_out_of_the_nack_window_is_given_up_at_once():
    sender, buffer = Sender(), make_buffer()
    feed(buffer, sender.frame(keyframe=True))
    lost = sender.frame()
    feed(buffer, lost[1:])
    arrived = len(lost) - 1
    plis = []
    while arrived <= NACK_WINDOW:  # no time passes: only the packet count says it is too old
        packets = sender.frame()
        plis += [pli for pli, _ in feed(buffer, packets)]
        arrived += len(packets)
    assert plis.count(True) == 1 and plis[-1] is False


def test_a_whole_keyframe_replaces_frames_stuck_behind_a_gap():
    sender, buffer = Sender(), make_buffer()
    feed(buffer, sender.frame(keyframe=True))
    lost = sender.frame()
    feed(buffer, lost[:-1])  # its marker packet is lost
    feed(buffer, sender.frame())
    key = sender.frame(keyframe=True)
    *_, (pli, frame) = feed(buffer, key)
    assert not pli and frame.data == frame_data(key)


def test_the_first_frame_to_go_out_is_a_keyframe():
    sender, buffer = Sender(), make_buffer()
    key = sender.frame(keyframe=True)
    feed(buffer, key[1:])  # joined mid-keyframe
    assert all(frame is None for _, frame in feed(buffer, sender.frame()))
    key = sender.frame(keyframe=True)
    assert feed(buffer, key)[-1][1].data == frame_data(key)


def test_a_lost_start_of_the_first_keyframe_is_asked_for_and_repaired():
    """Nothing before the first packet seen is a gap to aiortc: the buffer asks for it itself."""
    asked = []
    sender = Sender()
    buffer = WholeFrameBuffer(lambda pt: "VP8", max_wait=0.5, clock=Clock(),
                              nack=lambda ssrc, seqs: asked.append(seqs))
    key = sender.frame(keyframe=True)
    assert all(frame is None for _, frame in feed(buffer, key[1:]))  # its first packet was lost
    [wanted] = asked
    assert len(wanted) == BACKFILL and wanted[-1] == key[0].sequence_number  # across the 16-bit wrap
    pli, frame = buffer.add(key[0])  # the retransmission
    assert not pli and frame.data == frame_data(key)
    follower = sender.frame()
    assert feed(buffer, follower)[-1][1].data == frame_data(follower)


def test_a_gap_is_waited_for_longer_where_repairs_take_longer():
    """Repairs that take 300 ms (a full queue's round trip) make the buffer wait 0.9 s, not 0.5."""
    clock, sender = Clock(), Sender()
    buffer = make_buffer(clock)
    feed(buffer, sender.frame(keyframe=True))
    for _ in range(4):  # gaps that each took 0.3 s to fill
        lost = sender.frame()
        feed(buffer, lost[1:])
        clock.now += 0.3
        assert buffer.add(lost[0])[1].data == frame_data(lost)
    lost, later = sender.frame(), sender.frame()
    feed(buffer, lost[1:] + later[:1])
    clock.now += 0.8
    assert feed(buffer, later[1:2]) == [(False, None)]  # 0.8 s: still repairable here
    clock.now += 0.2
    assert feed(buffer, later[2:3])[0][0] is True  # past three repairs' time: a keyframe, please


def test_h264_frames_go_out_whole_and_resume_at_an_idr():
    clock = Clock()
    sender, buffer = Sender(H264), make_buffer(clock, H264)
    key = sender.frame(keyframe=True)
    assert feed(buffer, key)[-1][1].data == frame_data(key)
    delta = sender.frame()
    assert feed(buffer, delta)[-1][1].data == frame_data(delta)
    lost = sender.frame()
    feed(buffer, lost[:1] + lost[2:])
    clock.now += 1
    assert feed(buffer, sender.frame())[0] == (True, None)  # waited long enough: PLI
    assert all(frame is None for _, frame in feed(buffer, sender.frame()[1:]))  # no start: not taken
    key = sender.frame(keyframe=True)
    *_, (pli, frame) = feed(buffer, key)
    assert frame.data == frame_data(key)
    decoder = av.CodecContext.create("h264", "r")
    assert decoder.decode(av.Packet(frame.data))  # a picture from the IDR alone


def test_five_percent_loss_with_nack_repair_delivers_every_frame_in_order():
    """A lossy link, simulated: 5% of packets, NACKs and retransmissions lost, 2 ms each
    way; aiortc's NackGenerator NACKs as it does, the buffer asks again for what a
    stalled frame lacks, the sender resends from its 128-packet history and forces a
    keyframe on PLI."""
    rng, clock = random.Random(3), Clock()
    sender, nacks = Sender(), NackGenerator()
    buffer = WholeFrameBuffer(lambda pt: "VP8", max_wait=0.5, clock=clock,
                              nack=lambda ssrc, seqs: deliver(0.002, "nack", seqs))
    events: list[tuple[float, int, str, object]] = []
    history: dict[int, RtpPacket] = {}
    released, keyframe_wanted, count = [], True, itertools.count()

    def deliver(delay: float, kind: str, data: object) -> None:
        if rng.random() >= 0.05:
            heapq.heappush(events, (clock.now + delay, next(count), kind, data))

    for number in range(300):
        heapq.heappush(events, (number / 30, next(count), "frame", None))
    while events:
        clock.now, _, kind, data = heapq.heappop(events)
        if kind == "frame":
            for i, packet in enumerate(sender.frame(keyframe_wanted, min_packets=1)):
                history[packet.sequence_number % RTP_HISTORY_SIZE] = packet
                deliver(0.002 + i * 0.0002, "rtp", packet)
            keyframe_wanted = False
        elif kind == "nack":
            for seq in data:
                if history[seq % RTP_HISTORY_SIZE].sequence_number == seq:
                    deliver(0.002, "rtp", history[seq % RTP_HISTORY_SIZE])
        elif kind == "pli":
            keyframe_wanted = True
        else:
            if nacks.add(data):
                deliver(0.002, "nack", sorted(nacks.missing))
            pli, frame = buffer.add(data)
            if pli:
                deliver(0.002, "pli", None)
            if frame is not None:
                released.append(frame.timestamp)
    assert released == sorted(released) and len(released) == len(set(released))
    assert len(released) >= 290, f"{len(released)} of 300 frames"


# aiortc's receiver, for real: the internals deliver_frames_when_complete relies on -------


class FakeDtlsTransport:
    """What RTCRtpReceiver needs of its transport; keeps the RTCP it sends."""

    state = "connected"

    def __init__(self) -> None:
        self.rtcp: list = []

    def _register_rtp_receiver(self, receiver, parameters) -> None:
        pass

    def _unregister_rtp_receiver(self, receiver) -> None:
        pass

    async def _send_rtp(self, data: bytes) -> None:
        self.rtcp += RtcpPacket.parse(data)

    def sent(self, kind: type, fmt: int) -> list:
        return [p for p in self.rtcp if isinstance(p, kind) and p.fmt == fmt]


async def test_aiortc_receiver_decodes_each_frame_before_the_next_arrives_and_still_nacks_and_plis():
    """Fails when aiortc's receiver internals this relies on change (aiortc is pinned to 1.16)."""
    transport = FakeDtlsTransport()
    receiver = RTCRtpReceiver("video", transport)
    assert isinstance(receiver._RTCRtpReceiver__jitter_buffer, JitterBuffer)  # what gets replaced
    receiver._track = RemoteStreamTrack(kind="video")  # as RTCPeerConnection does
    buffer = deliver_frames_when_complete(receiver, max_wait=0.3)
    receiver._set_rtcp_ssrc(5678)
    await receiver.receive(RTCRtpReceiveParameters(
        codecs=[VP8], encodings=[RTCRtpDecodingParameters(ssrc=SSRC, payloadType=VP8.payloadType)]))
    try:
        assert buffer._codec_name(VP8.payloadType) == "VP8"  # read from the receiver's codecs
        sender = Sender()
        for keyframe in (True, False):
            for packet in sender.frame(keyframe):
                await receiver._handle_rtp_packet(packet, arrival_time_ms=0)
            picture = await asyncio.wait_for(receiver.track.recv(), 5)  # no packet of the next frame yet
            assert (picture.width, picture.height) == (160, 120)

        lost = sender.frame()
        for packet in lost[:1] + lost[2:]:
            await receiver._handle_rtp_packet(packet, arrival_time_ms=0)
        [nack] = transport.sent(RtcpRtpfbPacket, RTCP_RTPFB_NACK)  # aiortc's NACK, as before
        assert nack.lost == [lost[1].sequence_number]
        later = sender.frame()
        await asyncio.sleep(NACK_AGAIN + 0.05)  # the retransmission was lost too: ask again
        await receiver._handle_rtp_packet(later[0], arrival_time_ms=0)
        await asyncio.sleep(0)  # the NACK goes out in a task of its own
        assert [n.lost for n in transport.sent(RtcpRtpfbPacket, RTCP_RTPFB_NACK)] == [nack.lost] * 2
        assert not transport.sent(RtcpPsfbPacket, RTCP_PSFB_PLI)
        await asyncio.sleep(0.2)  # no retransmission within max_wait: the gap is given up
        for packet in later[1:]:
            await receiver._handle_rtp_packet(packet, arrival_time_ms=0)
        assert len(transport.sent(RtcpPsfbPacket, RTCP_PSFB_PLI)) == 1

        # Frames that wait behind a gap are all decoded once it is repaired, before any
        # later packet: at one packet a frame they would otherwise never catch up.
        for packet in sender.frame(keyframe=True):
            await receiver._handle_rtp_packet(packet, arrival_time_ms=0)
        await asyncio.wait_for(receiver.track.recv(), 5)
        gap, *behind = [sender.frame() for _ in range(4)]
        for packet in gap[1:] + [p for frame in behind for p in frame]:
            await receiver._handle_rtp_packet(packet, arrival_time_ms=0)
        await receiver._handle_rtp_packet(gap[0], arrival_time_ms=0)
        pictures = [await asyncio.wait_for(receiver.track.recv(), 5) for _ in range(1 + len(behind))]
        assert {(p.width, p.height) for p in pictures} == {(160, 120)}
    finally:
        await receiver.stop()


@pytest.mark.parametrize("codec", ["vp8", "h264"])
def test_cli_viewer_gets_every_frame_the_camera_sends(lab, codec):
    """The real camera, server and CLI viewer: frames flow and none is lost on loopback.

    The viewer counts gaps in the test pattern's frame numbers. A camera starved of CPU
    (the machine is shared) skips captured frames before encoding them, and says how
    many in its stats: those gaps are not the receiver's, so they are allowed for. At
    15 fps the camera has time to spare, and on a quiet machine it skips none.
    """
    lab.start_server()
    lab.start_camera("whole", "--codec", codec, "--fps", "15")
    skipped_before = camera_stats(lab, "whole").get("frames_skipped", 0)
    summary = lab.start_viewer("whole", "--warmup", "1", "--duration", "3").summary(timeout=40)
    time.sleep(2.5)  # the camera reports every 2 s: one report from after the viewer's last frame
    skipped = camera_stats(lab, "whole").get("frames_skipped", 0) - skipped_before
    assert summary["mode"] == "p2p" and summary["frames"] > 0 and summary["latency_ms"], summary
    assert summary["packets_lost"] == 0, summary
    assert summary["frames_dropped"] <= skipped, (summary, f"camera skipped {skipped}")
