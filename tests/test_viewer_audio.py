"""The Python viewer's sound (issue 25): `peercam view` and the library's ``stream.audio()`` with
the real server and real cameras, on P2P and both relays.

The test-pattern camera sends the test tone (its default): the viewer reads each beep's
capture time from the tone itself, and from it the mouth-to-ear latency and the A/V offset.
These tests check that the sound flows, continuously and whole, and that both figures are
measured; how low they are is for the benchmark (bench/audio.py).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import shutil
import signal
import subprocess
import typing
import urllib.request

import av
import numpy as np
import pytest
from peercam.peers.testtone import ToneReader

import peercam

from .conftest import assert_plays, require
from .support.netns import VIEWER_ADDRESS
from .test_fallback import start_camera_side

LOOPBACK = peercam.IceOptions(servers=[], hosts=["127.0.0.1"])
#: Sound is 50 packets a second: none missing (no loss, the packets all there) means no gap in
#: the sound itself; this is the longest wait between two allowed, a stall. A machine whose two
#: cores the camera, the server, the viewer and other tests share delays delivery by up to
#: about 250 ms now and then (the pictures' waits are as long).
LONGEST_GAP_MS = 500


def assert_sound_flowed(summary: dict, seconds: float) -> None:
    """A ``view --json`` summary whose sound came for ``seconds`` without a gap or a loss, and
    whose test tone gave both figures."""
    audio = summary["audio"]
    assert audio is not None and audio["codec"] == "opus", summary
    assert audio["packets"] >= 0.8 * 50 * seconds, audio
    assert audio["packets_lost"] == 0, audio
    assert audio["longest_gap_ms"] <= LONGEST_GAP_MS, audio
    assert audio["beeps"] >= 2 * seconds - 2, audio  # two a second: each read from its time code
    assert audio["latency_ms"]["p50"] > 0, audio
    assert audio["av_offset_ms"] is not None, audio
    assert audio["jitter_ms"] is not None, audio


@pytest.mark.parametrize("mode, relay_format", [("p2p", "auto"), ("relay", "encoded"), ("relay", "jpeg")])
def test_the_cli_hears_the_tone_on_every_path(lab, mode, relay_format):
    lab.start_server()
    lab.start_camera()
    viewer = lab.start_viewer("test", "--mode", mode, "--relay-format", relay_format, "--warmup", "1",
                              "--duration", "4")
    summary = viewer.summary(timeout=40)
    assert_plays(summary, mode)
    assert_sound_flowed(summary, 4)
    assert "first sound after" in viewer.log(), viewer.log()


def test_a_camera_without_sound_plays_as_before(lab):
    lab.start_server()
    lab.start_camera("test", "--audio", "none")
    viewers = {mode: lab.start_viewer("test", "--mode", mode, "--duration", "2") for mode in ("p2p", "relay")}
    for mode, viewer in viewers.items():  # side by side
        summary = viewer.summary(timeout=30)
        assert_plays(summary, mode)
        assert summary["audio"] is None, summary


def test_a_viewer_that_wants_no_sound_is_sent_none(lab):
    """What an old client does: an offer without audio, the relay asked for pictures only."""
    lab.start_server()
    lab.start_camera()
    viewers = {mode: lab.start_viewer("test", "--mode", mode, "--duration", "2", "--no-audio")
               for mode in ("p2p", "relay")}
    for mode, viewer in viewers.items():  # side by side
        summary = viewer.summary(timeout=30)
        assert_plays(summary, mode)
        assert summary["audio"] is None and "sound" not in viewer.log(), summary


@pytest.mark.parametrize("ext", ["mp4", "mkv"])
def test_record_writes_the_sound_too(lab, tmp_path, ext):
    lab.start_server()
    lab.start_camera()
    path = tmp_path / f"out.{ext}"
    summary = lab.start_viewer("test", "--duration", "3", "--record", str(path)).summary(timeout=30)
    assert summary["audio"]["packets"] > 0, summary
    reader, beeps, video_seconds = ToneReader(), [], 0.0
    with av.open(str(path)) as container:
        assert [s.codec_context.name for s in container.streams] == ["h264", "opus"]
        for frame in container.decode(audio=0):
            samples = frame.to_ndarray()  # the first channel, planar or packed
            mono = samples[0] if frame.format.is_planar else samples.reshape(frame.samples, -1)[:, 0]
            beeps += list(reader.feed(mono, 0.0))
            audio_seconds = float(frame.pts * frame.time_base) + frame.samples / frame.sample_rate
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            video_seconds = float(frame.pts * frame.time_base)
    # The sound is whole: its beeps' time codes read back, half a second apart, as long as the picture.
    assert len(beeps) >= 4, beeps
    assert all(round(b.capture_time - a.capture_time, 3) == 0.5 for a, b in itertools.pairwise(beeps)), beeps
    assert abs(audio_seconds - video_seconds) < 0.2, (audio_seconds, video_seconds)


def test_sound_survives_the_fallback_to_the_relay_and_back(lab, split_network):
    """UDP dropped between the camera's network namespace and the viewer's (as in
    tests/test_fallback.py): the relay carries pictures and sound, then P2P takes both over."""
    net = split_network
    server_url = start_camera_side(lab, net)
    net.block_udp()  # no P2P: the relay carries pictures and sound
    viewer = lab.start("viewer", "view", "--server", server_url, "--stream", "far", "--json",
                       "--mode", "auto", "--connect-timeout", "3", "--p2p-retry", "2",
                       "--ice-host", VIEWER_ADDRESS, prefix=net.prefix(net.viewer_ns))
    viewer.wait_for_log("switching to the relay", timeout=10)
    viewer.wait_for_log("first sound after", timeout=10)
    assert re.search(r"first frame after \d+ ms \(relay, encoded\)", viewer.log()), viewer.log()
    assert re.search(r"first sound after \d+ ms \(relay, encoded\)", viewer.log()), viewer.log()
    net.block_udp(False)  # P2P comes back, and takes over pictures and sound
    viewer.wait_for_log("p2p connected again", timeout=20)
    viewer.wait_for_log("sound resumed (p2p)", timeout=10)
    viewer.kill(signal.SIGINT)
    summary = viewer.summary(timeout=15)
    assert summary["mode"] == "p2p" and summary["frames"] > 30, summary
    assert summary["audio"]["packets"] > 50, summary


# -- the library ------------------------------------------------------------------------


@pytest.fixture
async def server() -> typing.AsyncIterator[peercam.Server]:
    async with await peercam.serve(port=0) as running:
        yield running


async def sound_after(viewer: peercam.Viewer, frames: int = 10, timeout: float = 15,
                      until: typing.Callable[[peercam.AudioFrame], bool] = lambda frame: True,
                      ) -> list[peercam.AudioFrame]:
    """The next ``frames`` AudioFrames the viewer hands over, the last one ``until`` one."""
    async def read() -> list[peercam.AudioFrame]:
        got = []
        async for frame in viewer.audio(keep=None):
            got.append(frame)
            if len(got) >= frames and until(frame):
                return got
        return got
    return await asyncio.wait_for(read(), timeout)


async def pictures_after(viewer: peercam.Viewer, layer: str | None = None, timeout: float = 15) -> None:
    """Until a picture (of ``layer``) arrives."""
    async def read() -> None:
        async for frame in viewer.frames():
            if layer is None or frame.layer == layer:
                return
    await asyncio.wait_for(read(), timeout)


def peak_hz(frames: list[peercam.AudioFrame]) -> float:
    samples = np.concatenate([frame.samples[:, 0] for frame in frames]).astype(np.float64)
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / frames[0].sample_rate)[np.argmax(spectrum)])


@pytest.mark.parametrize("mode", ["p2p", "relay"])
async def test_stream_audio_survives_a_layer_switch(server, mode):
    async with peercam.Camera(server.url, "lab", source="testsrc", width=640, height=480, ice=LOOPBACK):
        async with peercam.watch(server.url, "lab", mode=mode, quality="480p", relay_format="encoded",
                                 ice=LOOPBACK) as viewer:
            # The capture time: on the relay from the header, on P2P from the sender reports (the
            # first within a second or two).
            first = await sound_after(viewer, until=lambda frame: frame.capture_time is not None)
            assert all(f.samples.dtype == np.int16 and f.samples.shape == (960, 1) for f in first)
            assert {f.sample_rate for f in first} == {48000} and {f.mode for f in first} == {mode}
            assert 0 < first[-1].arrived - first[-1].capture_time < 1
            await viewer.set_quality("360p")
            await pictures_after(viewer, "360p")
            await sound_after(viewer)
            await viewer.set_quality("480p")
            await pictures_after(viewer, "480p")
            await sound_after(viewer)
            assert viewer.stats()["audio"]["packets_lost"] == 0
            # The viewer tells the server about its sound too (its `stats`, every 2 s).
            await asyncio.wait_for(reported_sound(server), 10)


async def reported_sound(server: peercam.Server) -> None:
    """Until /api/streams/lab shows a viewer whose stats count sound packets."""
    def viewers() -> list[dict]:
        with urllib.request.urlopen(f"{server.url}/api/streams/lab", timeout=2) as response:
            return json.load(response)["viewers"]
    while not any(((v.get("stats") or {}).get("audio") or {}).get("packets")
                  for v in await asyncio.to_thread(viewers)):
        await asyncio.sleep(0.2)


def test_a_clip_plays_with_its_own_sound(tmp_path):
    require(shutil.which("ffmpeg") is not None, "ffmpeg is not installed (apt-get install ffmpeg)")
    clip = tmp_path / "sine.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=25",
                    "-f", "lavfi", "-i", "sine=frequency=600:sample_rate=48000", "-t", "2",
                    "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac",
                    str(clip)], check=True, timeout=60)

    async def watch_the_clip() -> float:
        async with await peercam.serve(port=0) as server:
            async with peercam.Camera(server.url, "clip", source=str(clip), ice=LOOPBACK):  # audio auto
                async with peercam.watch(server.url, "clip", mode="p2p", ice=LOOPBACK) as viewer:
                    await pictures_after(viewer)
                    return peak_hz(await sound_after(viewer, 25))

    assert abs(asyncio.run(watch_the_clip()) - 600) < 10


async def test_sound_a_program_sends_reaches_a_viewer(server):
    async with peercam.Camera(server.url, "push", source="testsrc", width=320, height=240, audio="push",
                              ice=LOOPBACK) as camera:

        async def speak() -> None:  # 440 Hz at 16 kHz (resampled to 48 kHz), in real time
            n = 0
            while True:
                t = np.arange(n, n + 1600) / 16000
                camera.send_audio((np.sin(2 * np.pi * 440 * t) * 8000).astype(np.int16), 16000)
                n += 1600
                await asyncio.sleep(0.1)

        speaking = asyncio.create_task(speak())
        try:
            for mode in ("p2p", "relay"):
                async with peercam.watch(server.url, "push", mode=mode, ice=LOOPBACK) as viewer:
                    sound = await sound_after(viewer, 40)
                    assert abs(peak_hz(sound[-25:]) - 440) < 10, mode
        finally:
            speaking.cancel()
