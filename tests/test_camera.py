"""peercam camera: publishing, refusals, clear errors, reconnecting."""

from __future__ import annotations

from .conftest import get_json, wait_until


def test_a_second_publisher_of_the_same_name_is_refused(cluster):
    cluster.start_server()
    first = cluster.start_camera("lab")
    second = cluster.start_camera("lab", wait=False)
    code, _ = second.result(timeout=20)
    assert code != 0 and "already has a publisher" in second.log()
    assert first.proc.poll() is None
    assert cluster.start_viewer("lab", "--duration", "1").summary(timeout=30)["frames"] > 0


def test_missing_source_fails_clearly(cluster):
    camera = cluster.start("camera", "camera", "--server", cluster.url, "--source", "/nonexistent.mkv")
    code, _ = camera.result(timeout=20)
    assert code != 0 and "no such video file or camera" in camera.log()


def test_camera_reconnects_and_publishes_again_when_the_server_returns(cluster):
    server = cluster.start_server()
    cluster.start_camera("lab")
    server.kill()
    wait_until(lambda: get_json(f"{cluster.url}/healthz") is None, 10, "the server to go away")
    cluster.start_server()
    wait_until(lambda: (get_json(f"{cluster.url}/api/streams/lab") or {}).get("live"), 15,
               "the camera to publish again")
    assert cluster.start_viewer("lab", "--duration", "1").summary(timeout=30)["frames"] > 0


def test_h264_camera(cluster):
    cluster.start_server()
    cluster.start_camera("h264", "--codec", "h264")
    assert get_json(f"{cluster.url}/api/streams/h264")["codec"] == "h264"
    summary = cluster.start_viewer("h264", "--duration", "2").summary(timeout=30)
    assert summary["fps"] >= 25 and summary["latency_ms"] is not None


def test_a_leaving_viewer_is_torn_down_on_the_camera(cluster):
    cluster.start_server()
    camera = cluster.start_camera("lab")
    cluster.start_viewer("lab", "--duration", "1").summary(timeout=30)
    camera.wait_for_log("left", timeout=5)
    camera.wait_for_log("connection closed", timeout=5)
    assert get_json(f"{cluster.url}/api/streams/lab")["viewer_count"] == 0
