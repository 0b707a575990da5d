"""peers/camera/pipeline.py: one capture, one encoder per layer in use, JPEG per rendition asked for."""

from __future__ import annotations

import asyncio
import time

from peercam.peers.camera.layers import parse_layers
from peercam.peers.camera.pipeline import MediaPipeline
from peercam.peers.camera.sources import TestPatternSource

from peercam.shared.relayframe import parse_relay_frame


async def until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


async def captures(pipeline: MediaPipeline, count: int) -> None:
    """Until the source has given ``count`` more frames: the capture counts the time in which a
    layer that runs would have encoded some (and what a layer's thread still had in hand is done)."""
    captured = pipeline.stats.frames_captured
    await until(lambda: pipeline.stats.frames_captured >= captured + count, 5, f"{count} more captures")


async def test_a_layer_encodes_only_while_someone_reads_it_at_its_own_rate():
    layers = parse_layers("240p,120p@15", 320, 240, 30)
    pipeline = MediaPipeline(TestPatternSource(320, 240, 30), layers, "vp8", asyncio.get_running_loop())
    top, low = pipeline.layers
    pipeline.start()
    try:
        await captures(pipeline, 9)
        assert top.frames_encoded == low.frames_encoded == 0  # nobody watches: no encoder runs
        track = pipeline.subscribe("v1", "120p@15")
        await until(lambda: low.frames_encoded >= 15, 5, "the 15 fps layer to encode")
        assert top.frames_encoded == 0
        captured, taken = pipeline.stats.frames_captured, low.frames_taken
        await until(lambda: pipeline.stats.frames_captured >= captured + 30, 5, "30 more captures")
        # At most every second captured frame (fewer when a busy machine makes it skip some).
        assert 1 <= low.frames_taken - taken <= 16
        assert [s.active for s in pipeline.layer_stats()] == [False, True]
        track.stop()
        await captures(pipeline, 6)
        stopped = low.frames_encoded
        await captures(pipeline, 9)
        assert low.frames_encoded == stopped and not pipeline.layer_stats()[1].active
    finally:
        await asyncio.to_thread(pipeline.stop)


async def test_jpeg_renditions_are_encoded_once_each_for_what_relay_readers_asked():
    layers = parse_layers("240p,120p", 320, 240, 30)
    pipeline = MediaPipeline(TestPatternSource(320, 240, 30), layers, "vp8", asyncio.get_running_loop())
    frames: list[tuple[str, int, bytes]] = []
    pipeline.relay_sink = lambda layer, jpeg_quality, frame: frames.append((layer, jpeg_quality, frame))
    pipeline.set_relay_renditions({("240p", 80), ("120p", 50), ("120p", 90)}, set())
    pipeline.start()
    try:
        await until(lambda: len({(layer, q) for layer, q, _ in frames}) == 3 and len(frames) > 30, 5,
                    "frames of all three renditions")
        for layer, jpeg_quality, frame in frames:
            header, jpeg = parse_relay_frame(frame)
            assert (header.width, header.height, header.jpeg_quality) == (
                (320, 240, jpeg_quality) if layer == "240p" else (160, 120, jpeg_quality))
            assert header.layer == (0 if layer == "240p" else 1)
        assert all(s.frames_encoded == 0 for s in pipeline.layer_stats())  # JPEG only: no video encoder
        pipeline.set_relay_renditions(set(), set())
        await captures(pipeline, 6)
        count = len(frames)
        await captures(pipeline, 9)
        assert len(frames) == count
    finally:
        await asyncio.to_thread(pipeline.stop)
