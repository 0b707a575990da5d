"""peers/camera/fanout.py: encode once, keyframes on demand, a slow viewer's frames dropped to a keyframe."""

from __future__ import annotations

import asyncio
import dataclasses

import cv2
from aiortc import RTCSessionDescription
from peercam.peers.camera.encoder import VideoEncoder
from peercam.peers.camera.fanout import EncodedFrame, FanOut, RtpPacketizer, vp8_picture_id
from peercam.peers.testpattern import Stamp, TestPattern, read_stamp

from peercam.shared.protocol import Offer

from .test_viewerconnection import camera_and_viewer, pipeline  # noqa: F401


def encoded_frames(count: int, keyframes: set[int], layer: str = "", size: tuple[int, int] = (320, 240),
                   start: int = 0) -> list[EncodedFrame]:
    """Frames ``start`` .. of one layer, packetized as the camera does (its own picture ids)."""
    width, height = size
    pattern, encoder = TestPattern(width, height), VideoEncoder("vp8", width, height, 30, 500_000)
    packetizer = RtpPacketizer("vp8")
    frames = []
    for n in range(start, start + count):
        i420 = cv2.cvtColor(pattern.render(Stamp(n, n)), cv2.COLOR_BGR2YUV_I420)
        (packet,) = encoder.encode(i420, n * 3000, keyframe=n in keyframes)
        frames.append(EncodedFrame(*packetizer.packetize(packet), packet.is_keyframe, 0.0, n, layer))
    return frames


class Sent(list):
    """Stands in for a viewer's PacketSender (its socket): keeps what the track sends; while
    ``full`` (the viewer's backlog is), refuses it."""

    sending = True
    full = False

    def send(self, frame: EncodedFrame) -> bool:
        if self.full:
            return False
        self.append(frame)
        return True


def start(track) -> Sent:
    """The track's sender starts, as aiortc starts it once the viewer is connected."""
    sent = track._packet_sender = Sent()
    track._wait_for_keyframe()
    return sent


def test_a_full_backlog_drops_to_the_next_keyframe():
    requests = []
    fanout = FanOut(lambda **_: requests.append(1))
    slow, fast = fanout.subscribe("slow"), fanout.subscribe("fast")
    frames = encoded_frames(16, keyframes={0, 12})
    fanout.publish(frames[0])  # before the senders start: nothing
    # Both senders start: each asks for a keyframe and waits for one.
    slow_sent, fast_sent = start(slow), start(fast)
    assert len(requests) == 2
    fanout.publish(frames[0])
    assert slow_sent == fast_sent == [frames[0]] and slow_sent[0] is fast_sent[0]  # one shared frame

    # The fast viewer takes every frame; the slow one's backlog is full for a while.
    slow_sent.full = True
    for frame in frames[1:6]:
        fanout.publish(frame)
    slow_sent.full = False
    for frame in frames[6:12]:
        fanout.publish(frame)
    assert fast_sent == frames[:12]
    assert slow_sent == frames[:1] and slow.frames_dropped == 11 and slow.queue_overflows == 1
    assert len(requests) > 2
    # Then the slow viewer goes on from the next keyframe.
    fanout.publish(frames[12])
    fanout.publish(frames[13])
    assert slow_sent == [frames[0], frames[12], frames[13]] and fast_sent == frames[:14]
    slow.stop()
    fast.stop()
    assert len(fanout) == 0


def test_a_switch_passes_over_a_new_layer_keyframe_older_than_the_picture():
    """A layer whose encoder just started lags: its first keyframe, older than frames already
    sent, would take the picture back in time. The track goes on with the old layer and
    switches at the new one's next keyframe."""
    requests = {"a": 0, "b": 0}
    old = FanOut(lambda: requests.update(a=requests["a"] + 1), layer="a")
    new = FanOut(lambda: requests.update(b=requests["b"] + 1), layer="b")
    track = old.subscribe("viewer")
    layer_a = [dataclasses.replace(f, layer="a") for f in encoded_frames(12, keyframes={0})]
    layer_b = [dataclasses.replace(f, layer="b") for f in encoded_frames(12, keyframes={3, 9})]
    sent = start(track)
    for n in range(8):
        old.publish(layer_a[n])
    assert [(f.layer, f.number) for f in sent] == [("a", n) for n in range(8)]

    track.switch(new)
    assert requests["b"] == 1
    new.publish(layer_b[3])  # 4 frames behind the last one sent: passed over, and another asked for
    old.publish(layer_a[8])
    assert (sent[-1].layer, sent[-1].number) == ("a", 8) and requests["b"] == 2
    new.publish(layer_b[9])
    old.publish(layer_a[9])
    new.publish(layer_b[10])
    assert [(f.layer, f.number) for f in sent[9:]] == [("b", 9), ("b", 10)]
    assert track.layer == "b" and track.layer_switches == 1
    track.stop()


async def negotiate(camera_side, viewer, got_track, answers: asyncio.Queue):
    """The viewer's offer to the camera's side, its answer back: the viewer's video track."""
    camera_side.post(Offer(sdp=viewer.localDescription.sdp))
    answer = await asyncio.wait_for(answers.get(), 10)
    await viewer.setRemoteDescription(RTCSessionDescription(answer.sdp, "answer"))
    return await asyncio.wait_for(got_track, 10)


async def test_late_joiner_and_pli_get_keyframes_over_a_real_connection(loopback_ice, pipeline):  # noqa: F811
    """A real aiortc viewer: its first frame is a keyframe, and its PLI reaches the encoder."""
    answers: asyncio.Queue = asyncio.Queue()
    async with camera_and_viewer(pipeline, answers) as (camera_side, viewer, got_track):
        track = await negotiate(camera_side, viewer, got_track, answers)
        frame = await asyncio.wait_for(track.recv(), 10)
        # The first frame decodes to a readable picture: it started at a keyframe.
        assert frame.width == 320 and read_stamp(frame.to_ndarray(format="gray")) is not None
        for _ in range(10):
            await asyncio.wait_for(track.recv(), 2)
        keyframes_before = pipeline.stats.keyframes
        requests_before = camera_side.track.keyframe_requests

        receiver = viewer.getReceivers()[0]
        ssrc = camera_side.pc.getSenders()[0]._ssrc
        await receiver._send_rtcp_pli(ssrc)  # what aiortc's receiver sends on picture loss
        for _ in range(30):
            await asyncio.wait_for(track.recv(), 2)
            if pipeline.stats.keyframes > keyframes_before:
                break
        assert camera_side.track.keyframe_requests > requests_before  # the PLI reached the track
        assert pipeline.stats.keyframes > keyframes_before  # and the shared encoder


def test_a_switch_happens_at_the_new_layers_keyframe_with_ids_and_timestamps_continuing():
    """The sender sees one stream: picture ids go on by one and timestamps never go back,
    though the two layers number their own pictures and the new layer's encoder lags."""
    asked: list[str] = []
    big = FanOut(lambda **_: asked.append("big"), layer="big")
    small = FanOut(lambda **_: asked.append("small"), layer="small")
    track = big.subscribe("v1")
    bigs = encoded_frames(10, {0}, "big")
    smalls = encoded_frames(13, {0, 6, 7}, "small", (160, 120))  # each layer numbers its own pictures
    sent = start(track)

    def send(fanout: FanOut, frame: EncodedFrame) -> None:
        fanout.publish(frame)
        assert sent[-1].number == frame.number

    for frame in bigs[:6]:
        send(big, frame)
    track.switch(small)
    assert asked[-1] == "small" and track.switching_to == "small"
    small.publish(smalls[5])  # a delta frame: no place to start
    send(big, bigs[6])
    send(big, bigs[7])
    small.publish(smalls[6])  # a keyframe, but older than what went out: passed over once
    assert asked[-1] == "small" and track.switching_to == "small"
    send(big, bigs[8])
    send(big, bigs[9])
    # The next keyframe is taken whatever it shows, so a switch always ends; its timestamp
    # moves on by a tick, as a decoder drops a frame older than one it has shown.
    for frame in smalls[7:12]:
        send(small, frame)
    assert [f.layer for f in sent] == ["big"] * 10 + ["small"] * 5
    assert sent[10].keyframe and track.layer == "small" and track.layer_switches == 1
    assert len(big) == 0 and len(small) == 1
    ids = [vp8_picture_id(f.payloads[0]) for f in sent]
    assert all((b - a) % 0x8000 == 1 for a, b in zip(ids, ids[1:], strict=False)), ids
    stamps = [f.timestamp for f in sent]
    assert all(b > a for a, b in zip(stamps, stamps[1:], strict=False)), stamps
    # The payloads themselves are the new layer's, renumbered: same size, same picture.
    assert [len(p) for p in sent[10].payloads] == [len(p) for p in smalls[7].payloads]
    assert all(p[4:] == q[4:] for p, q in zip(sent[10].payloads, smalls[7].payloads, strict=True))
    track.stop()


async def test_a_viewer_moves_to_another_layer_without_renegotiating(loopback_ice, pipeline):  # noqa: F811
    """A real aiortc viewer: the size changes at the next keyframe, the pictures keep coming
    and decode (their stamps read back), and there is no new offer or answer."""
    answers: asyncio.Queue = asyncio.Queue()
    async with camera_and_viewer(pipeline, answers) as (camera_side, viewer, got_track):
        track = await negotiate(camera_side, viewer, got_track, answers)
        first = await asyncio.wait_for(track.recv(), 10)
        assert (first.width, first.height) == (320, 240)
        camera_side.set_quality("120p")
        numbers = []
        for _ in range(60):
            frame = await asyncio.wait_for(track.recv(), 2)
            stamp = read_stamp(frame.to_ndarray(format="gray"))
            assert stamp is not None  # never a broken picture
            numbers.append((stamp.frame, frame.width))
            if frame.width == 160 and sum(1 for _, w in numbers if w == 160) >= 5:
                break
        assert numbers[-1][1] == 160, numbers
        switch = next(i for i, (_, w) in enumerate(numbers) if w == 160)
        assert numbers[switch][0] - numbers[switch - 1][0] <= 10  # a short gap, in frames
        layer_messages = []
        while not answers.empty():
            layer_messages.append(answers.get_nowait())
        assert [m.layer for m in layer_messages if type(m).__name__ == "LayerChanged"][-1] == "120p"
        assert not [m for m in layer_messages if type(m).__name__ == "Answer"]  # no renegotiation
