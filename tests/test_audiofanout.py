"""The camera's sound: one Opus encoder, the same packets to every viewer that offers sound
(peers/camera/audiopipeline.py, audiofanout.py, viewerconnection.py), against real aiortc viewers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError
from peercam.peers.camera.audiopipeline import AudioPipeline
from peercam.peers.camera.audiosources import ToneSource
from peercam.peers.camera.layers import parse_layers
from peercam.peers.camera.pipeline import MediaPipeline
from peercam.peers.camera.sources import TestPatternSource
from peercam.peers.camera.viewerconnection import ViewerConnection
from peercam.peers.ice import rtc_configuration
from peercam.peers.testtone import ToneReader

from peercam.shared.protocol import Offer


@pytest.fixture
async def pipelines() -> AsyncIterator[tuple[MediaPipeline, AudioPipeline]]:
    """A running 320x240 test-pattern pipeline and the test tone's."""
    loop = asyncio.get_running_loop()
    video = MediaPipeline(TestPatternSource(320, 240, 30), parse_layers("240p,120p", 320, 240, 30), "vp8",
                          loop, min_keyframe_interval=0.1)
    audio = AudioPipeline(ToneSource(), loop)
    video.start()
    audio.start()
    yield video, audio
    await asyncio.to_thread(video.stop)
    await asyncio.to_thread(audio.stop)


async def connect(video: MediaPipeline, audio: AudioPipeline, viewer_id: str, sound: bool
                  ) -> tuple[ViewerConnection, RTCPeerConnection, dict[str, asyncio.Future]]:
    """The camera's side of one viewer and a real aiortc viewer that offers video (and with
    ``sound``, audio), connected; its tracks by kind, as they arrive."""
    sent: asyncio.Queue = asyncio.Queue()
    camera_side = ViewerConnection(viewer_id, video, audio, lambda: rtc_configuration([]), "vp8", sent.put,
                                   connect_timeout=10, on_closed=lambda v: None)
    viewer = RTCPeerConnection(rtc_configuration([]))
    viewer.addTransceiver("video", direction="recvonly")
    viewer.createDataChannel("chat")
    if sound:
        viewer.addTransceiver("audio", direction="recvonly")
    loop = asyncio.get_running_loop()
    tracks = {"video": loop.create_future(), "audio": loop.create_future()}
    viewer.on("track", lambda track: tracks[track.kind].set_result(track))
    await viewer.setLocalDescription(await viewer.createOffer())
    camera_side.post(Offer(sdp=viewer.localDescription.sdp))
    answer = await asyncio.wait_for(sent.get(), 10)
    await viewer.setRemoteDescription(RTCSessionDescription(answer.sdp, "answer"))
    return camera_side, viewer, tracks


async def test_one_encoder_feeds_every_viewer_that_offers_sound_and_a_viewer_without_sound_gets_pictures(
        loopback_ice, pipelines):
    """Two viewers offer sound, a third (an older client) does not: the first two decode the
    tone, beeps and all, from the one encoder; the third is answered and gets pictures."""
    video, audio = pipelines
    joined = [await connect(video, audio, f"v{i}", sound=i < 2) for i in range(3)]
    try:
        readers = []
        for _, _, tracks in joined[:2]:
            track = await asyncio.wait_for(tracks["audio"], 10)
            readers.append((track, ToneReader()))
        _, _, quiet = joined[2]
        pictures = await asyncio.wait_for(quiet["video"], 10)
        await asyncio.wait_for(pictures.recv(), 10)
        assert not quiet["audio"].done()  # no audio section offered: none answered
        assert joined[2][0].audio_track is None

        encoded_before, started = audio.packets_encoded, time.monotonic()
        heard: list[list] = [[], []]

        async def listen(i: int, track, reader: ToneReader) -> None:
            while len(heard[i]) < 3:  # three beeps: 1 to 1.5 s of sound
                frame = await track.recv()
                samples = frame.to_ndarray().reshape(-1, len(frame.layout.channels))
                heard[i] += list(reader.feed(samples, time.time()))

        await asyncio.wait_for(asyncio.gather(*(listen(i, *r) for i, r in enumerate(readers))), 10)
        elapsed = time.monotonic() - started
        for beeps in heard:
            assert all(0 < beep.latency < 1.0 for beep in beeps), beeps
            numbers = [round(b.capture_time * 2) for b in beeps]  # each beep once, in order
            assert numbers == sorted(set(numbers))
        # Once for both: 50 packets a second of sound, not 100.
        assert (audio.packets_encoded - encoded_before) / elapsed < 60
        for camera_side, _, _ in joined[:2]:
            assert camera_side.audio_track is not None and camera_side.audio_track.packets_sent > 0
    finally:
        for camera_side, viewer, _ in joined:
            await viewer.close()
            await camera_side.close()


async def test_a_viewer_that_leaves_stops_its_sound_and_the_encoder_idles_without_listeners(
        loopback_ice, pipelines):
    video, audio = pipelines
    camera_side, viewer, tracks = await connect(video, audio, "v1", sound=True)
    track = await asyncio.wait_for(tracks["audio"], 10)
    await asyncio.wait_for(track.recv(), 10)
    assert len(audio.fanout) == 1
    await camera_side.close()
    assert len(audio.fanout) == 0 and not audio.in_use
    with pytest.raises(MediaStreamError):
        while True:  # what was in flight, then the end
            await asyncio.wait_for(track.recv(), 10)
    await viewer.close()
    encoded = audio.packets_encoded
    await asyncio.sleep(0.2)  # 10 packets' time: an encoder that ran would have made them
    assert audio.packets_encoded == encoded


async def test_on_the_lowest_layer_a_viewer_hears_the_low_rate_sound_without_a_seam(loopback_ice, pipelines):
    """A viewer moved to the lowest layer (its link carries no more) gets the low-rate
    rendition, and the full one again when it moves up: the sound goes on across both
    moves, every packet of it (consecutive RTP timestamps, 20 ms apart, in the frames the
    viewer decodes), and the beeps read back in order, none twice. (Unless the machine
    starved the tone's thread, which then skips ahead to the sound of now, live: that is
    counted.) A beep's time code is not read back every time on a loaded machine, at
    16 kbit/s, though every packet came: the packets, not the beeps, show there is no seam."""
    video, audio = pipelines
    camera_side, viewer, tracks = await connect(video, audio, "v1", sound=True)
    try:
        track = await asyncio.wait_for(tracks["audio"], 10)
        reader, beeps = ToneReader(), []

        timestamps: list[int] = []

        async def listen_until(count: int) -> None:
            while len(beeps) < count:
                frame = await track.recv()
                timestamps.append(frame.pts)
                samples = frame.to_ndarray().reshape(-1, len(frame.layout.channels))
                beeps.extend(reader.feed(samples, time.time()))

        await asyncio.wait_for(listen_until(1), 10)
        assert len(audio.fanout) == 1 and len(audio.low_fanout) == 0
        for quality, fanout in (("120p", audio.low_fanout), ("240p", audio.fanout)):
            camera_side.set_quality(quality)
            await asyncio.wait_for(_until(lambda q=quality: camera_side.track.layer == q), 10)
            assert len(fanout) == 1  # the sound moved with the picture
            heard, frames, skips = len(beeps), len(timestamps), audio.source.skips
            await asyncio.wait_for(listen_until(heard + 3), 10)  # more than a second of sound after the move
            numbers = [round(b.capture_time * 2) for b in beeps[heard - 1:]]
            assert numbers == sorted(set(numbers)) and numbers[-1] - numbers[0] <= len(numbers), numbers
            steps = {b - a for a, b in zip(timestamps[frames - 1:], timestamps[frames:], strict=False)}
            if audio.source.skips == skips:
                assert steps == {960}, steps  # no packet lost at the move, none twice
    finally:
        await viewer.close()
        await camera_side.close()


async def _until(condition, every: float = 0.02) -> None:
    while not condition():
        await asyncio.sleep(every)
