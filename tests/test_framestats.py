"""peers/viewer/framestats.py: what a viewer reports about the frames it got."""

import time

from peercam.peers.testpattern import Stamp
from peercam.peers.viewer.framestats import FrameStats


def test_gaps_count_as_drops_and_a_new_camera_starts_over():
    stats = FrameStats(time.monotonic())
    now = time.time()
    for number in (0, 1, 2, 5, 6):  # 3 and 4 never came
        stats.add(640, 480, Stamp(int(now * 1000) - 40, number), now)
    stats.add(640, 480, Stamp(int(now * 1000) - 40, 0), now)  # a new camera counts from 0
    stats.add(640, 480, Stamp(int(now * 1000) - 40, 1), now)
    summary = stats.summary("p2p")
    assert summary["frames"] == 7 and summary["frames_dropped"] == 2
    assert 39 <= summary["latency_ms"]["p50"] <= 41


def test_warmup_frames_are_left_out_but_time_to_first_frame_counts():
    started = time.monotonic()
    stats = FrameStats(started, warmup=0.2)
    stats.add(640, 480, Stamp(0, 0), 0.0)  # absurd latency, during the warm-up
    stats.add(640, 480, Stamp(0, 3), 0.0)  # a gap during the warm-up
    time.sleep(0.25)  # the scenario: past the warm-up
    now = time.time()
    stats.add(640, 480, Stamp(int(now * 1000) - 10, 4), now)
    stats.add(640, 480, Stamp(int(now * 1000) - 10, 5), now)
    summary = stats.summary("p2p")
    assert summary["frames"] == 2 and summary["frames_dropped"] == 0
    assert summary["latency_ms"]["p95"] < 50
    assert summary["time_to_first_frame_ms"] < 100


def test_without_the_test_pattern_there_is_no_latency_or_drop_count():
    stats = FrameStats(time.monotonic())
    stats.add(320, 240, None, time.time())
    summary = stats.summary("relay")
    assert summary["latency_ms"] is None and summary["frames_dropped"] is None
