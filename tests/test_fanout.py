"""peers/fanout.py: encode once, keyframes on demand, bounded per-viewer queues."""

from __future__ import annotations

import asyncio
import dataclasses

import cv2
from aiortc import RTCSessionDescription

from peers.encoder import VideoEncoder
from peers.fanout import EncodedFrame, FanOut, RtpPacketizer
from peers.testpattern import Stamp, TestPattern, read_stamp
from signaling.protocol import Offer

from .test_viewerconnection import camera_and_viewer, loopback_ice, pipeline  # noqa: F401


def encoded_frames(count: int, keyframes: set[int]) -> list[EncodedFrame]:
    pattern, encoder = TestPattern(320, 240), VideoEncoder("vp8", 320, 240, 30, 500_000)
    packetizer = RtpPacketizer("vp8")
    frames = []
    for n in range(count):
        i420 = cv2.cvtColor(pattern.render(Stamp(n, n)), cv2.COLOR_BGR2YUV_I420)
        (packet,) = encoder.encode(i420, n * 3000, keyframe=n in keyframes)
        frames.append(EncodedFrame(*packetizer.packetize(packet), packet.is_keyframe, 0.0, n))
    return frames


async def test_queue_overflow_drops_to_the_next_keyframe():
    requests = []
    fanout = FanOut(lambda: requests.append(1), queue_limit=4)
    slow, fast = fanout.subscribe("slow"), fanout.subscribe("fast")
    frames = encoded_frames(16, keyframes={0, 12})
    # Both start pulling: each asks for a keyframe and waits for one.
    pulls = [asyncio.create_task(track.recv()) for track in (slow, fast)]
    await asyncio.sleep(0)
    assert len(requests) == 2
    fanout.publish(frames[0])
    assert [await p for p in pulls] == [frames[0], frames[0]]  # one shared frame

    # The fast viewer reads every frame; the slow one reads nothing for a while.
    for frame in frames[1:12]:
        fanout.publish(frame)
        assert await asyncio.wait_for(fast.recv(), 1) is frame
    assert slow._queue.qsize() <= 4
    assert slow.frames_dropped > 0 and len(requests) > 2
    # After the overflow the slow viewer skips what is queued up to the next keyframe.
    fanout.publish(frames[12])
    assert await asyncio.wait_for(slow.recv(), 1) is frames[12]
    fanout.publish(frames[13])
    assert await asyncio.wait_for(slow.recv(), 1) is frames[13]
    slow.stop()
    fast.stop()
    assert len(fanout) == 0


async def test_a_switch_passes_over_a_new_layer_keyframe_older_than_the_picture():
    """A layer whose encoder just started lags: its first keyframe, older than frames already
    sent, would take the picture back in time. The track goes on with the old layer and
    switches at the new one's next keyframe."""
    requests = {"a": 0, "b": 0}
    old = FanOut(lambda: requests.update(a=requests["a"] + 1), layer="a")
    new = FanOut(lambda: requests.update(b=requests["b"] + 1), layer="b")
    track = old.subscribe("viewer")
    layer_a = [dataclasses.replace(f, layer="a") for f in encoded_frames(12, keyframes={0})]
    layer_b = [dataclasses.replace(f, layer="b") for f in encoded_frames(12, keyframes={3, 9})]
    pull = asyncio.create_task(track.recv())
    await asyncio.sleep(0)
    for n in range(8):
        old.publish(layer_a[n])
        frame = await asyncio.wait_for(pull if n == 0 else track.recv(), 1)
        assert (frame.layer, frame.number) == ("a", n)

    track.switch(new)
    assert requests["b"] == 1
    new.publish(layer_b[3])  # 4 frames behind the last one sent: passed over, and another asked for
    old.publish(layer_a[8])
    frame = await asyncio.wait_for(track.recv(), 1)
    assert (frame.layer, frame.number) == ("a", 8) and requests["b"] == 2
    new.publish(layer_b[9])
    old.publish(layer_a[9])
    new.publish(layer_b[10])
    assert [((f := await asyncio.wait_for(track.recv(), 1)).layer, f.number) for _ in range(2)] == [
        ("b", 9), ("b", 10)]
    assert track.layer == "b" and track.layer_switches == 1
    track.stop()


async def test_late_joiner_and_pli_get_keyframes_over_a_real_connection(loopback_ice, pipeline):  # noqa: F811
    """A real aiortc viewer: its first frame is a keyframe, and its PLI reaches the encoder."""
    answers: asyncio.Queue = asyncio.Queue()
    async with camera_and_viewer(pipeline, answers) as (camera_side, viewer, got_track):
        camera_side.post(Offer(sdp=viewer.localDescription.sdp))
        answer = await asyncio.wait_for(answers.get(), 10)
        await viewer.setRemoteDescription(RTCSessionDescription(answer.sdp, "answer"))
        track = await asyncio.wait_for(got_track, 10)
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
