"""peercam view against a real server and testsrc camera, each in its own process."""

from __future__ import annotations

import time

import av
import pytest


def test_three_viewers_each_get_full_rate_and_low_latency(cluster):
    cluster.start_server()
    cluster.start_camera()
    # Three viewer processes starting at once load the CPU for a moment: measure after it.
    viewers = [cluster.start_viewer("test", "--warmup", "2", "--duration", "5") for _ in range(3)]
    for viewer in viewers:
        summary = viewer.summary(timeout=60)
        assert summary["mode"] == "p2p"
        assert (summary["width"], summary["height"]) == (640, 480)
        assert summary["fps"] >= 25, summary
        assert summary["latency_ms"]["p95"] < 150, summary
        assert summary["frames"] >= 125 and summary["bitrate_kbps"] > 100, summary
        assert summary["frames_dropped"] is not None and summary["time_to_first_frame_ms"] > 0


def test_a_viewer_joining_late_gets_its_first_frame_within_a_second(cluster):
    cluster.start_server()
    cluster.start_camera()
    early = cluster.start_viewer("test", "--duration", "8")
    early.wait_for_log("first frame", timeout=15)
    time.sleep(3)  # the scenario: join three seconds into the stream
    late = cluster.start_viewer("test", "--duration", "2")
    summary = late.summary(timeout=30)
    assert summary["time_to_first_frame_ms"] < 1000, summary
    assert early.summary(timeout=30)["frames"] > 0


def test_record_writes_a_playable_file(cluster, tmp_path):
    cluster.start_server()
    cluster.start_camera()
    path = tmp_path / "out.mp4"
    summary = cluster.start_viewer("test", "--duration", "2", "--record", str(path)).summary(timeout=30)
    with av.open(str(path)) as container:
        frames = sum(1 for _ in container.decode(video=0))
    assert frames >= 0.9 * summary["frames"]


def test_show_without_gui_says_so_and_goes_on(cluster):
    cluster.start_server()
    cluster.start_camera()
    viewer = cluster.start_viewer("test", "--duration", "1", "--show")
    assert viewer.summary(timeout=30)["frames"] > 0
    assert "GUI" in viewer.log() or "window" not in viewer.log()


@pytest.mark.parametrize("args, words", [
    (("--stream", "nobody-here"), "no such stream"),
    (("--stream", "bad name!"), "bad stream name"),
])
def test_viewer_fails_clearly(cluster, args, words):
    cluster.start_server()
    viewer = cluster.start("viewer", "view", "--server", cluster.url, "--json", *args)
    code, stdout = viewer.result(timeout=20)
    assert code != 0 and stdout == ""
    assert words in viewer.log()


def test_viewer_without_a_server_fails_clearly(cluster):
    viewer = cluster.start("viewer", "view", "--server", cluster.url, "--stream", "x")
    code, _ = viewer.result(timeout=20)
    assert code != 0 and "cannot reach the signaling server" in viewer.log()


def test_viewer_waits_for_a_camera_when_asked(cluster):
    cluster.start_server()
    viewer = cluster.start_viewer("test", "--wait", "20", "--duration", "1")
    viewer.wait_for_log("waiting for a camera", timeout=10)
    cluster.start_camera()
    assert viewer.summary(timeout=30)["frames"] > 0


def test_viewer_gives_up_when_no_video_comes(cluster):
    cluster.start_server()
    viewer = cluster.start_viewer("test", "--wait", "30", "--timeout", "2")
    code, _ = viewer.result(timeout=20)
    assert code != 0 and "no video within 2 s" in viewer.log()
