"""peers/audioreceiver.py and senderclock.py: each audio packet is decoded as soon as it is
next in order (aiortc's own buffer waits for four more), loss and reordering are handled,
and sender reports map RTP timestamps to the sender's clock.

The packets are real: libopus (through PyAV, as the camera encodes) makes them from the
test tone, aiortc's receiver takes them and its decoder decodes them.
"""

from __future__ import annotations

import asyncio
import fractions

import av
import numpy as np
import pytest
from aiortc import RTCRtpReceiver
from aiortc.jitterbuffer import JitterBuffer
from aiortc.rtcrtpparameters import RTCRtpCodecParameters, RTCRtpDecodingParameters, RTCRtpReceiveParameters
from aiortc.rtcrtpreceiver import RemoteStreamTrack
from aiortc.rtp import RtcpSenderInfo, RtcpSrPacket, RtpPacket
from peercam.peers.audioreceiver import HOLD, AudioPacketBuffer, deliver_audio_on_arrival
from peercam.peers.testtone import tone
from peercam.peers.viewer.senderclock import SenderClock, follow_sender_reports

from .test_framereceiver import FakeDtlsTransport

OPUS = RTCRtpCodecParameters(mimeType="audio/opus", clockRate=48000, channels=2, payloadType=111)
SSRC = 4321
CHUNK = 960  # 20 ms


class Transport(FakeDtlsTransport):
    _stats_id = "transport"  # sender reports land in the receiver's stats under it


class OpusSender:
    """The test tone as Opus RTP packets, numbered across the 16-bit wrap."""

    def __init__(self, first_sequence: int = 65533, first_timestamp: int = 2**32 - 2000) -> None:
        self._encoder = av.CodecContext.create("libopus", "w")
        self._encoder.sample_rate, self._encoder.layout, self._encoder.format = 48000, "mono", "s16"
        self._encoder.bit_rate = 48000
        self._encoder.time_base = fractions.Fraction(1, 48000)
        self._encoder.options = {"application": "lowdelay", "frame_duration": "20"}
        self._sequence = first_sequence
        self._timestamp = first_timestamp  # wraps within the first packets too
        self._samples = 0

    def packets(self, count: int) -> list[RtpPacket]:
        out: list[RtpPacket] = []
        while len(out) < count:
            chunk = av.AudioFrame.from_ndarray(tone(self._samples, CHUNK).reshape(1, -1), format="s16",
                                               layout="mono")
            chunk.sample_rate, chunk.pts = 48000, self._samples
            self._samples += CHUNK
            for encoded in self._encoder.encode(chunk):
                packet = RtpPacket(payload_type=OPUS.payloadType, sequence_number=self._sequence,
                                   timestamp=self._timestamp, ssrc=SSRC, payload=bytes(encoded))
                packet._data = packet.payload  # what RTCRtpReceiver's depayloader gives for Opus
                self._sequence = (self._sequence + 1) & 0xFFFF
                self._timestamp = (self._timestamp + CHUNK) & 0xFFFFFFFF
                out.append(packet)
        return out


def released(buffer: AudioPacketBuffer, packet: RtpPacket) -> list[int]:
    """The RTP timestamps a packet releases, in order."""
    pli, frame = buffer.add(packet)
    assert not pli
    return ([frame.timestamp] if frame else []) + [f.timestamp for f in buffer.more()]


def test_each_packet_goes_out_as_it_arrives_in_order():
    buffer, packets = AudioPacketBuffer(), OpusSender().packets(10)
    for packet in packets:
        assert released(buffer, packet) == [packet.timestamp]
    assert buffer.first_timestamp == packets[0].timestamp


def test_a_reordered_packet_is_waited_for_and_a_lost_one_is_not_for_long():
    buffer, packets = AudioPacketBuffer(), OpusSender().packets(12)
    assert released(buffer, packets[0]) == [packets[0].timestamp]
    # 1 comes after 2: 2 waits for it, then both go, in order.
    assert released(buffer, packets[2]) == []
    assert released(buffer, packets[1]) == [packets[1].timestamp, packets[2].timestamp]
    # 3 is lost: 4 and 5 wait (HOLD); the next one gives 3 up and all three go.
    assert HOLD == 2
    assert released(buffer, packets[4]) == [] and released(buffer, packets[5]) == []
    assert released(buffer, packets[6]) == [p.timestamp for p in packets[4:7]]
    assert buffer.packets_skipped == 1
    # 3 comes after all: too late, it goes nowhere; nor does a duplicate.
    assert released(buffer, packets[3]) == [] and released(buffer, packets[6]) == []
    assert released(buffer, packets[7]) == [packets[7].timestamp]


def test_a_sender_that_restarts_its_numbers_is_followed():
    buffer, packets = AudioPacketBuffer(), OpusSender(first_sequence=30000).packets(3)
    for packet in packets:
        released(buffer, packet)
    again = OpusSender(first_sequence=100).packets(2)
    assert released(buffer, again[0]) == [again[0].timestamp]
    assert released(buffer, again[1]) == [again[1].timestamp]


def test_the_sender_clock_maps_timestamps_through_the_latest_report():
    clock = SenderClock(48000)
    assert clock.time_of(1234) is None  # no report yet
    unix = 1_765_000_000.25
    clock.report(((int(unix) + 2_208_988_800) << 32) | int(0.25 * 2**32), 2**32 - 480)  # 1900 to 1970
    assert clock.time_of(2**32 - 480) == pytest.approx(unix)
    assert clock.time_of(480) == pytest.approx(unix + 0.02)  # across the 32-bit wrap
    assert clock.time_of(2**32 - 960 - 480) == pytest.approx(unix - 0.02)  # before the report


async def test_aiortc_receiver_decodes_each_packet_before_the_next_arrives():
    """Fails when aiortc's receiver internals this relies on change (aiortc is pinned to 1.16),
    or when the hook does not take: aiortc's own buffer decodes nothing of four packets."""
    transport = Transport()
    receiver = RTCRtpReceiver("audio", transport)
    assert isinstance(receiver._RTCRtpReceiver__jitter_buffer, JitterBuffer)  # what gets replaced
    receiver._track = RemoteStreamTrack(kind="audio")  # as RTCPeerConnection does
    buffer = deliver_audio_on_arrival(receiver)
    clock = follow_sender_reports(receiver, 48000)
    await receiver.receive(RTCRtpReceiveParameters(
        codecs=[OPUS], encodings=[RTCRtpDecodingParameters(ssrc=SSRC, payloadType=OPUS.payloadType)]))
    try:
        sender = OpusSender()
        packets = sender.packets(8)
        decoded = []
        for packet in packets[:4]:
            await receiver._handle_rtp_packet(packet, arrival_time_ms=0)
            decoded.append(await asyncio.wait_for(receiver.track.recv(), 5))  # nothing after it yet
        # A late packet releases the ones held behind it, all before any later packet.
        for packet in packets[5:7] + packets[4:5]:
            await receiver._handle_rtp_packet(packet, arrival_time_ms=0)
        decoded += [await asyncio.wait_for(receiver.track.recv(), 5) for _ in range(3)]
        assert [frame.samples for frame in decoded] == [CHUNK] * 7
        # pts counts from the first packet's timestamp (across the wrap): the capture time is
        # (pts + first_timestamp) through the sender's reports.
        assert [frame.pts for frame in decoded] == [i * CHUNK for i in range(7)]
        assert buffer.first_timestamp == packets[0].timestamp
        report = RtcpSrPacket(ssrc=SSRC, sender_info=RtcpSenderInfo(
            ntp_timestamp=(2_208_988_800 + 1_765_000_000) << 32, rtp_timestamp=packets[0].timestamp,
            packet_count=7, octet_count=700))
        await receiver._handle_rtcp_packet(report)
        assert clock.time_of((decoded[6].pts + buffer.first_timestamp) & 0xFFFFFFFF) == pytest.approx(
            1_765_000_000 + 6 * CHUNK / 48000)
        # The decoder hears the tone: its beep is the loudest part of the first 40 ms.
        sound = np.concatenate([frame.to_ndarray().reshape(-1, 2)[:, 0] for frame in decoded])
        assert np.abs(sound).max() > 5000
    finally:
        await receiver.stop()
