"""RTSP cameras (peers/camera/rtspsource.py) and passthrough (peers/camera/pipeline.py), against a
real RTSP camera (gst-rtsp-server, tests/support/rtspcamera.py), the real server and real viewers."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import subprocess
import sys
import time

import av
import pytest
from peercam.peers.camera.rtspsource import RtspSource
from peercam.peers.camera.sources import SourceError
from peercam.peers.ice import IceOptions

import peercam

from .conftest import get_json, require, wait_for_frames
from .support.chromium import goto_player
from .support.rtspcamera import RtspCamera, rtsp_camera_available
from .test_segmentwriter import ffprobe_frames

ICE = IceOptions(hosts=["127.0.0.1"])


@pytest.fixture(scope="module", autouse=True)
def _rtsp_camera_needed():
    require(rtsp_camera_available(), "gst-rtsp-server is not installed (apt-get install python3-gi "
                                     "gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-ugly)")


@pytest.fixture
async def server():
    async with await peercam.serve(port=0) as running:
        yield running


async def frames_of(server_url: str, stream: str, count: int, timeout: float = 20.0, **watch):
    """``count`` frames of a viewer of ``stream``, with the time each arrived."""
    frames = []
    async with peercam.watch(server_url, stream, ice=ICE, **watch) as viewer:
        async with asyncio.timeout(timeout):
            async for frame in viewer.frames(keep=None):
                frames.append(frame)
                if len(frames) == count:
                    break
    return frames


def longest_gap(frames) -> float:
    arrivals = [frame.arrived for frame in frames]
    return max(b - a for a, b in zip(arrivals, arrivals[1:], strict=False))


def encoded(layer: dict) -> int:
    return layer.get("frames_encoded", 0)  # left out when 0


async def camera_layers(url: str, stream: str, until=lambda layers: True) -> tuple[dict, dict[str, dict]]:
    """The stream's summary and the camera's own report of its layers (sent every 2 s), once
    ``until(layers)`` holds."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        summary = await asyncio.to_thread(get_json, f"{url}/api/streams/{stream}")
        stats = (summary.get("camera") or {}).get("stats")
        if stats:
            layers = {layer["name"]: layer for layer in stats["layers"]}
            if until(layers):
                return summary, layers
        await asyncio.sleep(0.2)
    raise AssertionError(f"no such camera report: {summary}")


async def test_an_rtsp_camera_s_h264_passes_through_to_p2p_and_relay_viewers_and_lower_layers_are_encoded(
        server):
    with RtspCamera(gop=15) as rtsp:
        async with peercam.Camera(server.url, "door", source=rtsp.url, layers="360p,180p", ice=ICE):
            p2p = await frames_of(server.url, "door", 45)
            assert {(f.width, f.height, f.mode) for f in p2p} == {(640, 360, "p2p")}
            assert longest_gap(p2p) < 1.0
            summary, layers = await camera_layers(server.url, "door")
            assert summary["codec"] == "h264" and summary["source"] == rtsp.url
            assert [(layer["name"], layer.get("passthrough", False)) for layer in summary["layers"]] == [
                ("360p", True), ("180p", False)]
            # The top layer's pictures are the camera's: none encoded here.
            assert layers["360p"]["passthrough"] and encoded(layers["360p"]) == 0
            assert layers["360p"]["keyframe_interval"] == pytest.approx(0.5, abs=0.15)

            relay = await frames_of(server.url, "door", 20, mode="relay", relay_format="encoded")
            assert {(f.width, f.height, f.mode) for f in relay} == {(640, 360, "relay")}

            # A lower layer is decoded from the same pictures and encoded, once someone watches it.
            low = await frames_of(server.url, "door", 20, quality="180p")
            assert {(f.width, f.height) for f in low} == {(320, 180)}
            _, layers = await camera_layers(server.url, "door", lambda layers: encoded(layers["180p"]))
            assert encoded(layers["180p"]) > 0 and encoded(layers["360p"]) == 0


async def test_the_frames_a_viewer_decodes_are_the_source_s_own(server, tmp_path):
    """A file's H.264 served over RTSP as it is: every picture the viewer decodes is, bit for
    bit, one the file holds (a decode and an encode would change them all)."""
    clip = tmp_path / "clip.mkv"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=480x270:rate=30", "-t", "12",
                    "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "15", "-bf", "0",
                    "-threads", "1", str(clip)], check=True, timeout=60)
    with av.open(str(clip)) as container:
        source_pictures = {hashlib.md5(frame.to_ndarray().tobytes()).hexdigest()
                           for frame in container.decode(video=0)}
    with RtspCamera(file=str(clip)) as rtsp:
        async with peercam.Camera(server.url, "clip", source=rtsp.url, layers="270p", ice=ICE):
            frames = await frames_of(server.url, "clip", 60)
    seen = [hashlib.md5(frame.video.to_ndarray().tobytes()).hexdigest() for frame in frames]
    assert len(seen) == 60 and set(seen) <= source_pictures


async def test_a_dropped_rtsp_camera_is_reconnected_and_its_viewers_see_pictures_resume(server, caplog):
    caplog.set_level(logging.INFO, logger="peercam")
    rtsp = RtspCamera(gop=15, user="admin", password="s3cret:x")
    rtsp.start()
    try:
        url = rtsp.url_with("admin", "s3cret%3Ax")
        async with peercam.Camera(server.url, "gate", source=url, layers="360p", ice=ICE):
            async with peercam.watch(server.url, "gate", ice=ICE) as viewer:
                frames = viewer.frames(keep=None)
                async with asyncio.timeout(15):
                    for _ in range(15):
                        await anext(frames)
                rtsp.stop()  # the camera drops; it comes back on the same address
                await asyncio.sleep(0.5)
                rtsp.start()
                restarted = time.time()
                resumed = []
                async with asyncio.timeout(20):
                    while len(resumed) < 30:
                        frame = await anext(frames)
                        if frame.arrived > restarted:
                            resumed.append(frame)
                assert viewer.mode == "p2p" and {(f.width, f.height) for f in resumed} == {(640, 360)}
                assert longest_gap(resumed) < 1.0
    finally:
        rtsp.stop()
    said = "\n".join(record.getMessage() for record in caplog.records)
    assert "connected again" in said and "s3cret" not in said


async def test_wrong_credentials_are_a_clear_error_without_the_password():
    with RtspCamera(user="admin", password="right") as rtsp:
        with pytest.raises(SourceError) as error:
            RtspSource(rtsp.url_with("admin", "wrong-pass"))
        command = subprocess.run([sys.executable, "-m", "peercam", "camera", "--server", "http://127.0.0.1:9",
                                  "--source", rtsp.url_with("admin", "wrong-pass")],
                                 capture_output=True, text=True, timeout=60)
    assert str(error.value) == (f"cannot open {rtsp.url}: "
                                "Server returned 401 Unauthorized (authorization failed)")
    # The command line: one line, no traceback, no password.
    assert command.returncode != 0 and command.stderr.strip() == f"peercam camera: error: {error.value}"


async def test_parameter_sets_given_only_out_of_band_reach_a_viewer_that_joins_late(server):
    with RtspCamera(gop=15, headers_in_band=False) as rtsp:
        async with peercam.Camera(server.url, "sdp-only", source=rtsp.url, layers="360p", ice=ICE):
            frames = await frames_of(server.url, "sdp-only", 20)
    assert {(f.width, f.height) for f in frames} == {(640, 360)}


async def test_sliced_pictures_go_out_whole(server):
    with RtspCamera(gop=15, slices=2) as rtsp:
        async with peercam.Camera(server.url, "sliced", source=rtsp.url, layers="360p", ice=ICE):
            frames = await frames_of(server.url, "sliced", 30)
    assert {(f.width, f.height) for f in frames} == {(640, 360)} and longest_gap(frames) < 1.0


async def test_a_profile_viewers_cannot_negotiate_is_decoded_and_encoded_with_a_warning(server, caplog):
    with RtspCamera(gop=15, profile="high") as rtsp:
        async with peercam.Camera(server.url, "high", source=rtsp.url, layers="360p", codec="h264", ice=ICE):
            frames = await frames_of(server.url, "high", 20)
            summary, layers = await camera_layers(server.url, "high",
                                                  lambda layers: encoded(layers["360p"]))
    assert {(f.width, f.height) for f in frames} == {(640, 360)}
    assert not layers["360p"].get("passthrough") and encoded(layers["360p"]) > 0
    assert any("High is not a profile" in record.getMessage() for record in caplog.records)


async def test_the_camera_s_sub_stream_passes_through_as_a_lower_layer(server):
    with RtspCamera(gop=15) as main, RtspCamera(gop=15, size="320x180") as sub:
        async with peercam.Camera(server.url, "two", source=main.url, source_low=sub.url, layers="360p",
                                  ice=ICE):
            low = await frames_of(server.url, "two", 20, quality="180p")
            summary, layers = await camera_layers(server.url, "two", lambda got: "keyframes" in got["180p"])
    assert {(f.width, f.height) for f in low} == {(320, 180)}
    assert [(layer["name"], layer.get("passthrough")) for layer in summary["layers"]] == [
        ("360p", True), ("180p", True)]
    assert [encoded(layer) for layer in layers.values()] == [0, 0]


def test_a_sub_stream_that_cannot_pass_through_is_a_one_line_error():
    with RtspCamera() as main, RtspCamera(size="1280x720") as bigger:
        command = subprocess.run([sys.executable, "-m", "peercam", "camera", "--server", "http://127.0.0.1:9",
                                  "--source", main.url, "--source-low", bigger.url],
                                 capture_output=True, text=True, timeout=60)
    assert command.returncode != 0 and command.stderr.strip() == (
        "peercam camera: error: the low source is 1280x720, not below the main 640x360")


async def test_rtsp_over_udp(server):
    with RtspCamera(gop=15) as rtsp:
        async with peercam.Camera(server.url, "udp", source=rtsp.url, rtsp_transport="udp", layers="360p",
                                  ice=ICE):
            frames = await frames_of(server.url, "udp", 20)
    assert {(f.width, f.height) for f in frames} == {(640, 360)}


async def test_an_rtsp_camera_is_recorded_on_the_server_and_on_the_camera_as_it_came(tmp_path):
    """Both recorders take the passed-through pictures: each segment starts at one of the
    source's keyframes and decodes in full."""
    on_server, on_camera = tmp_path / "server", tmp_path / "camera"
    server = await peercam.serve(port=0, recording=peercam.RecordingConfig(on_server, streams=("rec",),
                                                                          segment_seconds=1))
    try:
        with RtspCamera(gop=15, audio="opus") as rtsp:
            async with peercam.Camera(server.url, "rec", source=rtsp.url, layers="360p", ice=ICE,
                                      recording=peercam.RecordingConfig(on_camera, segment_seconds=1)):
                def segments() -> list[list]:
                    return [sorted((folder / "rec").glob("*.mp4")) for folder in (on_server, on_camera)]
                async with asyncio.timeout(20):
                    while min(len(found) for found in segments()) < 3:
                        await asyncio.sleep(0.1)
    finally:
        await server.close()
    for found in segments():
        for segment in found[:-1]:  # the last one was cut when the camera stopped
            probe = subprocess.run(["ffprobe", "-v", "error", "-show_entries",
                                    "stream=codec_name,width,height", "-of", "csv=p=0", str(segment)],
                                   capture_output=True, text=True).stdout
            assert "h264,640,360" in probe and "opus" in probe, probe
            assert ffprobe_frames(segment) >= 15


@pytest.mark.parametrize("codec", ["opus", "aac", "pcma"])
async def test_an_rtsp_camera_s_sound_reaches_viewers_as_opus(server, codec):
    """Opus passes through as it is; AAC and G.711 are decoded for the camera's Opus encoder."""
    with RtspCamera(gop=15, audio=codec) as rtsp:
        async with peercam.Camera(server.url, f"sound-{codec}", source=rtsp.url, layers="360p", ice=ICE):
            async with peercam.watch(server.url, f"sound-{codec}", ice=ICE) as viewer:
                heard = []
                async with asyncio.timeout(15):
                    async for sound in viewer.audio():
                        heard.append(sound)
                        if len(heard) == 50:
                            break
                summary = await asyncio.to_thread(get_json, f"{server.url}/api/streams/sound-{codec}")
    assert summary["audio"]["codec"] == "opus" and {sound.sample_rate for sound in heard} == {48000}
    # Not silence: the camera's test tone came through.
    assert max(int(abs(sound.samples).max()) for sound in heard) > 1000


def test_chromium_plays_an_rtsp_camera_s_main_profile_as_it_is(lab, page):
    with RtspCamera(gop=15, audio="aac", profile="main") as rtsp:
        lab.start_server()
        camera = lab.start_camera("cam", "--source", rtsp.url, "--layers", "360p")
        # Keep the page's peer connections, to read what was negotiated.
        page.add_init_script("""{
            const Original = window.RTCPeerConnection;
            window.peerConnections = [];
            window.RTCPeerConnection = function (...args) {
                const pc = new Original(...args);
                window.peerConnections.push(pc);
                return pc;
            };
            window.RTCPeerConnection.prototype = Original.prototype;
        }""")
        goto_player(page, f"{lab.url}/view/cam")
        wait_for_frames(page, 30)
        summary = lab.api("/api/streams/cam")
        assert summary["codec"] == "h264" and summary["audio"]["codec"] == "opus"
        assert summary["layers"][0]["passthrough"] and "passes through" in camera.log()
        # Chromium negotiated Main (it offers 4d001f), and decodes the camera's own pictures.
        fmtp = page.evaluate("""async () => {
            const lines = [];
            for (const pc of window.peerConnections)
                for (const report of (await pc.getStats()).values())
                    if (report.type === "codec" && report.mimeType === "video/H264")
                        lines.push(report.sdpFmtpLine);
            return lines;
        }""")
        assert any("profile-level-id=4d" in line for line in fmtp), fmtp
