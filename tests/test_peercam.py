"""The public API as a user calls it: peercam.serve, peercam.Camera, peercam.watch and
watch_sync, and the examples/ scripts, against the real server and real peers."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from peercam.peers.testpattern import Stamp, TestPattern

import peercam
from peercam import IceOptions
from tests.test_segmentwriter import ffprobe_frames

from .conftest import ROOT, free_port, wait_until
from .support.netns import VIEWER_ADDRESS

LOOPBACK = IceOptions(servers=[], hosts=["127.0.0.1"])


async def test_frames_in_and_out_in_one_program_and_nothing_left_behind():
    """A server, a camera fed from another thread at 30 fps, and a viewer, all in-process."""
    threads_before = set(threading.enumerate())
    tasks_before = asyncio.all_tasks()
    server = await peercam.serve(port=0)
    try:
        async with peercam.Camera(server.url, "lab", width=320, height=240, ice=LOOPBACK) as camera:
            stop = threading.Event()
            pattern = TestPattern(320, 240)

            def feed() -> None:  # a program's own capture loop, on its own thread
                number = 0
                while not stop.wait(1 / 30):
                    camera.send(pattern.render(Stamp(int(time.time() * 1000), number)))
                    number += 1

            feeder = threading.Thread(target=feed)
            feeder.start()
            try:
                async with peercam.watch(server.url, "lab", ice=LOOPBACK, name="robot") as stream:
                    frames = []
                    async for frame in stream.frames():
                        frames.append(frame)
                        if len(frames) == 20:
                            break
                    assert {(f.width, f.height, f.mode) for f in frames} == {(320, 240, "p2p")}
                    image = frames[-1].image
                    assert image.shape == (240, 320, 3) and image.dtype == np.uint8
                    numbers = [f.number for f in frames]
                    assert None not in numbers and numbers == sorted(numbers)  # the pushed pictures, in order
                    assert all(0 <= f.arrived - f.capture_time < 5 for f in frames)
                    stats = stream.stats()
                    assert stats["mode"] == "p2p" and stats["frames"] >= 20 and stats["width"] == 320
            finally:
                stop.set()
                feeder.join()
    finally:
        await server.close()
    await asyncio.sleep(0)
    left = {t for t in asyncio.all_tasks() - tasks_before if not t.done()}
    assert not left, left
    def left_threads():
        # asyncio_N: the event loop's own executor (the test's loop owns it; it ends with the loop).
        return {t.name for t in threading.enumerate() if t.is_alive() and not t.name.startswith("asyncio_")
                } - {t.name for t in threads_before}

    try:
        wait_until(lambda: not left_threads(), 10, "the library's threads to end")
    except AssertionError:
        raise AssertionError(f"threads left: {left_threads()}") from None


async def test_the_library_records_on_the_server_and_on_the_camera(tmp_path):
    on_server, on_camera = tmp_path / "server", tmp_path / "camera"
    server = await peercam.serve(port=0, recording=peercam.RecordingConfig(on_server, streams=("lab",),
                                                                          segment_seconds=1))
    try:
        async with peercam.Camera(server.url, "lab", source="testsrc", width=320, height=240, ice=LOOPBACK,
                                  recording=peercam.RecordingConfig(on_camera, segment_seconds=1)):
            def fewest_segments() -> int:  # two closed and one being written, in both places
                return min(len(list((d / "lab").glob("*.webm"))) for d in (on_server, on_camera))

            for _ in range(300):
                if fewest_segments() >= 3:
                    break
                await asyncio.sleep(0.05)
            assert fewest_segments() >= 3
    finally:
        await server.close()
    for directory in (on_server, on_camera):
        for segment in (directory / "lab").glob("*.webm"):
            assert ffprobe_frames(segment) > 0, segment


async def test_the_relay_and_chat_through_the_library(lab):
    lab.start_server("--ice-host", "127.0.0.1")
    lab.start_camera("lab")
    async with peercam.watch(lab.url, "lab", mode="relay", name="robot") as stream:
        frame = await asyncio.wait_for(anext(stream.frames()), 15)
        assert frame.mode == "relay" and frame.image.shape == (480, 640, 3) and frame.capture_time
        lines = stream.chat()
        await stream.send_chat("hello from python")
        line = await asyncio.wait_for(anext(lines), 10)
        assert (line.name, line.text) == ("robot", "hello from python")


async def test_a_stream_that_is_not_live_is_an_error_and_so_is_a_bad_server():
    server = await peercam.serve(port=0)
    try:
        with pytest.raises(peercam.ViewerError, match="not live"):
            async with peercam.watch(server.url, "nothing", ice=LOOPBACK) as stream:
                await stream.wait()
    finally:
        await server.close()
    with pytest.raises(peercam.ViewerError, match="cannot reach"):
        async with peercam.watch(server.url, "nothing", ice=LOOPBACK) as stream:
            await stream.wait()


async def test_camera_and_watch_take_several_servers_and_skip_a_dead_one():
    dead = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(peercam.UsageError, match="bad server URL"):
        peercam.watch([dead, "ftp://127.0.0.1:1"], "lab")
    server = await peercam.serve(port=0)
    try:
        async with peercam.Camera([dead, server.url], "lab", source="testsrc", width=320, height=240,
                                  ice=LOOPBACK):
            async with peercam.watch((dead, server.url), "lab", mode="relay", ice=LOOPBACK) as stream:
                frame = await asyncio.wait_for(anext(stream.frames()), 15)
                assert frame.mode == "relay" and frame.width == 320
    finally:
        await server.close()


def test_watch_sync_for_scripts_without_asyncio(lab):
    lab.start_server("--ice-host", "127.0.0.1")
    lab.start_camera("lab")
    threads_before = set(threading.enumerate())
    sizes = []
    for frame in peercam.watch_sync(lab.url, "lab", ice=LOOPBACK):
        sizes.append(frame.image.shape)
        if len(sizes) == 10:
            break
    assert set(sizes) == {(480, 640, 3)}
    wait_until(lambda: not set(threading.enumerate()) - threads_before, 10, "watch_sync's thread to end")


def run_example(*args: str, timeout: float = 90) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def test_example_watch_stats(lab):
    lab.start_server("--ice-host", "127.0.0.1")
    lab.start_camera("demo")
    result = run_example("examples/watch_stats.py", lab.url, "demo", "3")
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if "fps" in line]
    assert lines, result.stdout
    assert all(line.startswith("p2p 640x480") and "latency" in line for line in lines), result.stdout


def test_example_timestamp_restream(lab):
    lab.start_server("--ice-host", "127.0.0.1")
    lab.start_camera("demo")
    restream = subprocess.Popen([sys.executable, "examples/timestamp_restream.py", lab.url, "demo",
                                 "demo-timed", "60"], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert restream.stdout.readline().strip() == "publishing 'demo-timed'"
        viewer = lab.start_viewer("demo-timed", "--duration", "2")
        summary = viewer.summary(timeout=60)
        assert summary["frames"] > 0 and (summary["width"], summary["height"]) == (640, 480)
    finally:
        restream.terminate()
        restream.wait(10)


def test_example_save_changes(lab, tmp_path):
    lab.start_server("--ice-host", "127.0.0.1")
    lab.start_camera("demo")
    result = run_example("examples/save_changes.py", lab.url, "demo", str(tmp_path), "3")
    assert result.returncode == 0, result.stderr
    saved = sorted(tmp_path.glob("change-*.jpg"))
    assert len(saved) == 3 and all(path.stat().st_size > 1000 for path in saved)


FALLBACK_SCRIPT = """
import asyncio, sys
import peercam

async def main():
    async with peercam.watch(sys.argv[1], "far", connect_timeout=2, p2p_retry=2,
                             ice=peercam.IceOptions(hosts=[sys.argv[2]])) as stream:
        last = None
        async for frame in stream.frames():
            if frame.mode != last:
                print(frame.mode, flush=True)
                last = frame.mode

asyncio.run(main())
"""


def test_frames_keep_coming_while_the_library_falls_back_to_the_relay_and_back(lab, split_network):
    """UDP blocked between the viewer and the camera: one `async for` over frames() goes on
    from the relay, then from P2P again once UDP gets through."""
    from .test_fallback import start_camera_side

    net = split_network
    server_url = start_camera_side(lab, net)
    net.block_udp()
    viewer = subprocess.Popen([*net.prefix(net.viewer_ns), sys.executable, "-c", FALLBACK_SCRIPT, server_url,
                               VIEWER_ADDRESS], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert viewer.stdout.readline().strip() == "relay"
        net.block_udp(False)
        assert viewer.stdout.readline().strip() == "p2p"
    finally:
        viewer.terminate()
        viewer.wait(10)
