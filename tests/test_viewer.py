"""peercam view against a real server and testsrc camera, each in its own process."""

from __future__ import annotations

import signal
import time

import av
import pytest

from .conftest import (
    LOOPBACK,
    assert_nothing_lost,
    assert_plays,
    frames_sent_to,
    free_port,
    get_json,
    stop_viewers_at_a_camera_report,
    wait_until,
)


def test_three_viewers_each_get_every_frame_encoded(lab):
    lab.start_server()
    lab.start_camera()
    names = ("v1", "v2", "v3")
    # One layer for all three (auto might move one on a busy machine): one encoder feeds them all.
    viewers = {name: lab.start_viewer("test", "--name", name, "--quality", "480p") for name in names}

    def stream_json() -> dict | None:
        return lab.api("/api/streams/test")

    def all_playing() -> dict | None:
        stream = stream_json()
        sent = frames_sent_to(stream, names)
        return stream if sent and min(sent.values()) > 0 else None

    start = wait_until(all_playing, 30, "the camera to send all three viewers frames")
    end = stop_viewers_at_a_camera_report(stream_json, viewers)
    # Fan-out: meanwhile the camera offered each viewer every frame its layer encoded; each was
    # sent or, had that viewer fallen behind, dropped (queue_drops), bar the few still queued (8
    # at most) or on their way to the queue.
    encoded = layer_frames_encoded(end, "480p") - layer_frames_encoded(start, "480p")
    offered = {name: offered_to(end, name) - offered_to(start, name) for name in names}
    assert all(abs(count - encoded) <= 10 for count in offered.values()), (encoded, offered)
    sent = frames_sent_to(end, names)
    for name, viewer in viewers.items():
        summary = viewer.summary(timeout=30)
        assert_plays(summary, layers={"480p": (640, 480)})
        assert summary["layer_switches"] == 0, summary
        assert_nothing_lost(summary, sent[name])
        assert summary["frames_dropped"] is not None and summary["time_to_first_frame_ms"] > 0
        assert summary["bitrate_kbps"] > 0 and summary["latency_ms"]["p50"] >= 0, summary


def layer_frames_encoded(stream: dict, name: str) -> int:
    """Frames the camera's report says it encoded for this layer, so far."""
    (layer,) = [layer for layer in stream["camera"]["stats"]["layers"] if layer["name"] == name]
    return layer.get("frames_encoded", 0)


def offered_to(stream: dict, name: str) -> int:
    """Frames the camera's report says it sent or dropped for the viewer named ``name``."""
    (peer_id,) = [v["id"] for v in stream["viewers"] if v["name"] == name]
    (viewer,) = [v for v in stream["camera"]["stats"]["viewers"] if v["id"] == peer_id]
    return viewer.get("frames_sent", 0) + viewer.get("queue_drops", 0)


def test_a_viewer_joining_late_gets_a_keyframe_made_for_it(lab):
    """It need not wait for the encoder's periodic keyframe (every 300 frames at 30 fps)."""
    lab.start_server()
    lab.start_camera()
    # Both on one layer, whose encoder is already running when the late one comes.
    early = lab.start_viewer("test", "--duration", "10", "--quality", "480p")
    early.wait_for_log("first frame", timeout=15)
    time.sleep(3)  # the scenario: join three seconds into the stream
    late = lab.start_viewer("test", "--name", "late", "--duration", "4", "--quality", "480p")

    def late_started() -> dict | None:
        """The camera's view of the late viewer, once it has sent it its first frames."""
        stream = lab.api("/api/streams/test") or {}
        ids = [v["id"] for v in stream.get("viewers", []) if v["name"] == "late"]
        seen = [v for v in ((stream.get("camera") or {}).get("stats") or {}).get("viewers", [])
                if v["id"] in ids and v.get("frames_sent", 0) > 0]
        return seen[0] if seen else None

    seen_by_camera = wait_until(late_started, 30, "the camera to send the late viewer frames")
    # Frames it skipped for the late viewer before a keyframe came (counted in frames, not
    # time, so a busy machine changes nothing): a frame or two, not hundreds.
    assert seen_by_camera.get("queue_drops", 0) <= 10, seen_by_camera
    assert_plays(late.summary(timeout=30))
    assert early.summary(timeout=30)["frames"] > 0


def test_record_writes_a_playable_file(lab, tmp_path):
    lab.start_server()
    lab.start_camera()
    path = tmp_path / "out.mp4"
    summary = lab.start_viewer("test", "--duration", "2", "--record", str(path)).summary(timeout=30)
    with av.open(str(path)) as container:
        frames = sum(1 for _ in container.decode(video=0))
    assert frames >= 0.9 * summary["frames"]


def test_show_without_gui_says_so_and_goes_on(lab):
    lab.start_server()
    lab.start_camera()
    viewer = lab.start_viewer("test", "--duration", "1", "--show")
    assert viewer.summary(timeout=30)["frames"] > 0
    assert "GUI" in viewer.log() or "window" not in viewer.log()


@pytest.mark.parametrize("args, words", [
    (("--stream", "nobody-here"), "no such stream"),
    (("--stream", "bad name!"), "bad stream name"),
])
def test_viewer_fails_clearly(lab, args, words):
    lab.start_server()
    viewer = lab.start("viewer", "view", "--server", lab.url, "--json", *args)
    code, stdout = viewer.result(timeout=20)
    assert code != 0 and stdout == ""
    assert words in viewer.log()


def test_viewer_without_a_server_fails_clearly(lab):
    viewer = lab.start("viewer", "view", "--server", lab.url, "--stream", "x")
    code, _ = viewer.result(timeout=20)
    assert code != 0 and "cannot reach the signaling server" in viewer.log()


def test_viewer_given_several_servers_fails_only_when_none_answers(lab):
    other = f"http://127.0.0.1:{free_port()}"
    viewer = lab.start("viewer", "view", "--server", lab.url, "--server", other, "--stream", "x")
    code, _ = viewer.result(timeout=20)
    assert code != 0 and f"trying {other}" in viewer.log()
    assert f"cannot reach the signaling server at {other.replace('http', 'ws')}/ws" in viewer.log()


def test_camera_and_viewer_move_to_the_next_server_when_theirs_dies(lab):
    server_a = lab.start_server()
    port_b = free_port()
    url_b = f"http://127.0.0.1:{port_b}"
    lab.start("server-b", "serve", "--port", str(port_b))
    wait_until(lambda: get_json(f"{url_b}/healthz"), 15, "server B to answer /healthz")
    servers = ("--server", lab.url, "--server", url_b)
    camera = lab.start("camera", "camera", *servers, "--stream", "lab", *LOOPBACK)
    camera.wait_for_log(f"on {lab.url}", timeout=20)
    # On the relay the picture comes through the server: it stops with A and can only come back from B.
    viewer = lab.start("viewer", "view", *servers, "--stream", "lab", "--mode", "relay", "--name", "v",
                           "--json", *LOOPBACK)
    viewer.wait_for_log("first frame", timeout=20)

    server_a.kill(signal.SIGKILL)
    camera.wait_for_log(f"on {url_b}", timeout=10)
    viewer.wait_for_log(f"reconnecting to {url_b}", timeout=10)
    viewer.wait_for_log("video resumed", timeout=15)
    stream = get_json(f"{url_b}/api/streams/lab") or {}
    assert stream.get("live") and [v["name"] for v in stream.get("viewers", [])] == ["v"], stream
    viewer.kill(signal.SIGINT)
    assert_plays(viewer.summary(timeout=15), "relay")


def test_viewer_waits_for_a_camera_when_asked(lab):
    lab.start_server()
    viewer = lab.start_viewer("test", "--wait", "20", "--duration", "1")
    viewer.wait_for_log("waiting for a camera", timeout=10)
    lab.start_camera()
    assert viewer.summary(timeout=30)["frames"] > 0


def test_viewer_gives_up_when_no_video_comes(lab):
    lab.start_server()
    viewer = lab.start_viewer("test", "--wait", "30", "--timeout", "2")
    code, _ = viewer.result(timeout=20)
    assert code != 0 and "no video within 2 s" in viewer.log()
