"""Recording against a hostile camera (issue 23, findings 1, 9 and 12): the real server
records a real camera (the victim) beside a raw WebSocket camera that sends what it
likes. The attacker's files stay within their bounds, and the victim keeps every segment."""

from __future__ import annotations

import asyncio
import os
import re
import time
from pathlib import Path

import aiohttp

from peercam.shared.relayframe import RelayFrameHeader
from peercam.shared.retention import SEGMENTS_PER_KEEP
from peercam.shared.segmentwriter import KEYFRAME_PATIENCE
from tests.conftest import wait_until
from tests.test_recording import http, segments
from tests.test_websocket import INFO, Client

KEEP = 20 << 20  # --record-keep 20MB
SEGMENT_BOUND = KEEP // SEGMENTS_PER_KEEP
#: What a file adds to its frames' bytes (WebM headers, clusters, cues), at most.
CONTAINER = 256 * 1024


def opened(log: str, stream: str) -> list[str]:
    """The segment files the server opened for a stream, from its log."""
    return re.findall(rf"recording \S+/{stream}/(\S+\.webm)", log)


class RawCamera:
    """A raw camera of VP8 relay frames (made-up bytes: the recorder muxes them as they are)."""

    def __init__(self, ws: Client) -> None:
        self.ws = ws
        self.sequence = 0

    async def send(self, size: int, keyframe: bool, capture_us: int | None = None) -> None:
        header = RelayFrameHeader(self.sequence, capture_us or int(time.time() * 1e6), INFO["width"],
                                  INFO["height"], codec="vp8", keyframe=keyframe)
        self.sequence += 1
        await self.ws.ws.send_bytes(header.pack(os.urandom(16) + bytes(size)))


async def publish(url: str, stream: str, attack) -> None:
    async with aiohttp.ClientSession() as session:
        ws = Client(await session.ws_connect(f"{url}/ws"))
        await ws.expect("welcome")
        await ws.send({"type": "publish", "stream": stream, "info": INFO})
        await ws.expect("published")
        await attack(RawCamera(ws))


def victim_kept_everything(lab, directory: Path) -> list[str]:
    """Every segment the server opened for the victim is still on disk; their names."""
    names = opened(lab.server.log(), "victim")
    assert names and all((directory / "victim" / name).exists() for name in names), (
        names, sorted(p.name for p in (directory / "victim").iterdir()))
    return names


def test_a_camera_that_floods_and_refuses_keyframes_stays_in_its_share_and_stops(lab, tmp_path):
    directory = tmp_path / "rec"
    lab.start_server("--record-dir", str(directory), "--record", "*", "--record-segment", "2",
                     "--record-keep", "20MB")
    lab.start_camera("victim")
    wait_until(lambda: len(segments(lab, "victim")) >= 2, 20, "the victim's first closed segment")

    async def flood(camera: RawCamera) -> None:
        # First a camera that answers no keyframe request but sends one a second, with
        # 5 MB/s of frames: far more than --record-keep over the test.
        for _ in range(8):
            started = time.monotonic()
            await camera.send(1 << 20, keyframe=True)
            for _frame in range(8):
                await camera.send(512 * 1024, keyframe=False)
                await asyncio.sleep(0.1)
            await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - started)))
        # Then delta frames only: its segment is cut, and with no keyframe its recording stops.
        deadline = time.monotonic() + KEYFRAME_PATIENCE + 15
        while time.monotonic() < deadline:
            await camera.send(64 * 1024, keyframe=False)
            await asyncio.sleep(0.05)
            last.update(lab.api("/api/streams/mallory")["recording"])
            if last["error"]:
                return

    last: dict = {}  # mallory's recording state, read while it publishes
    asyncio.run(publish(lab.url, "mallory", flood))
    state = last
    assert state["error"] and "keyframe" in state["error"] and not state["active"], state
    assert state["frames_dropped"] > 0 and state["bytes_written"] > KEEP, state
    lab.server.wait_for_log("recording mallory stopped: no keyframe", 5)
    lab.server.wait_for_log("recording mallory: segment cut at", 5)

    # Each of the attacker's files within its bound, retention took from it alone, and the
    # victim's recording goes on with every segment it ever made.
    files = list((directory / "mallory").iterdir())
    assert files and all(f.stat().st_size <= SEGMENT_BOUND + CONTAINER for f in files), [
        (f.name, f.stat().st_size) for f in files]
    assert len(files) < len(opened(lab.server.log(), "mallory")), "retention took nothing from mallory"
    total = sum(f.stat().st_size for f in directory.glob("*/*"))
    assert total <= KEEP + SEGMENT_BOUND + 2 * CONTAINER, total
    before = victim_kept_everything(lab, directory)
    wait_until(lambda: len(opened(lab.server.log(), "victim")) > len(before), 10, "a new victim segment")
    victim = lab.api("/api/streams/victim")["recording"]
    assert victim["active"] and victim["error"] is None and victim["errors"] == 0, victim
    victim_kept_everything(lab, directory)


def test_keyframes_that_each_ask_for_a_new_segment_make_at_most_one_file_a_second(lab, tmp_path):
    directory = tmp_path / "rec"
    lab.start_server("--record-dir", str(directory), "--record", "*", "--record-segment", "1",
                     "--record-keep", "20MB")
    lab.start_camera("victim")
    wait_until(lambda: len(segments(lab, "victim")) >= 2, 20, "the victim's first closed segment")
    sent = {}

    async def churn(camera: RawCamera) -> None:
        # A keyframe every 20 ms whose capture time leaps a segment ahead of the last: each
        # one is due for a segment of its own.
        began = time.monotonic()
        capture = int(time.time() * 1e6)
        while time.monotonic() - began < 5:
            capture += 2_000_000
            await camera.send(1024, keyframe=True, capture_us=capture)
            await asyncio.sleep(0.02)
        sent["frames"], sent["seconds"] = camera.sequence, time.monotonic() - began

        def taken() -> dict | None:
            state = lab.api("/api/streams/mallory")["recording"]
            return state if state["frames_written"] + state["frames_dropped"] >= camera.sequence else None

        sent["state"] = wait_until(taken, 10, "the recorder to take every frame")

    asyncio.run(publish(lab.url, "mallory", churn))
    assert sent["frames"] > 100, sent
    state = sent["state"]
    started = opened(lab.server.log(), "mallory")
    # One start a second (on the server's clock), plus the first.
    assert 2 <= len(started) <= sent["seconds"] + 2, (len(started), sent)
    assert state["segments"] == len(started) and state["frames_written"] > 0, state
    victim_kept_everything(lab, directory)
    victim = lab.api("/api/streams/victim")["recording"]
    assert victim["active"] and victim["errors"] == 0, victim


def test_switching_recording_of_made_up_streams_is_refused_and_adds_no_metric(lab, tmp_path):
    directory = tmp_path / "rec"
    lab.start_server("--record-dir", str(directory))  # no --secret: anyone may switch recording
    lab.start_camera("cam")
    for n in range(200):
        status, _, text = http("PUT", f"{lab.url}/api/streams/junk{n}/recording", body={"enabled": True})
        assert status == 404 and b"no stream" in text, (status, text)
    assert not (directory / "junk0").exists()
    status, _, _ = http("PUT", f"{lab.url}/api/streams/cam/recording", body={"enabled": True})
    assert status == 200
    wait_until(lambda: lab.api("/api/streams/cam")["recording"]["bytes_written"] > 0, 20, "cam recording")
    metrics = http("GET", f"{lab.url}/metrics")[2].decode()
    recording = [line for line in metrics.splitlines() if line.startswith("peercam_recording_")]
    assert recording and all('stream="cam"' in line for line in recording), recording
    assert "junk" not in metrics
