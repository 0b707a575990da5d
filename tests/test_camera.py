"""peercam camera: publishing, refusals, clear errors, reconnecting, sources in their own shape."""

from __future__ import annotations

import urllib.request
from datetime import datetime

import av
import cv2
import numpy as np

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


def test_a_second_camera_of_the_same_name_is_refused(lab):
    lab.start_server()
    first = lab.start_camera("lab")
    second = lab.start_camera("lab", wait=False)
    code, _ = second.result(timeout=20)
    assert code != 0 and "already has a camera" in second.log()
    assert first.proc.poll() is None
    assert lab.start_viewer("lab", "--duration", "1").summary(timeout=30)["frames"] > 0


def test_missing_source_fails_clearly(lab):
    camera = lab.start("camera", "camera", "--server", lab.url, "--source", "/nonexistent.mkv")
    code, _ = camera.result(timeout=20)
    assert code != 0 and "no such video file or camera" in camera.log()


def test_camera_reconnects_and_publishes_again_when_the_server_returns(lab):
    server = lab.start_server()
    lab.start_camera("lab")
    server.kill()
    wait_until(lambda: get_json(f"{lab.url}/healthz") is None, 10, "the server to go away")
    lab.start_server()
    wait_until(lambda: (get_json(f"{lab.url}/api/streams/lab") or {}).get("live"), 15,
               "the camera to publish again")
    assert lab.start_viewer("lab", "--duration", "1").summary(timeout=30)["frames"] > 0


def test_a_camera_given_a_dead_server_first_publishes_on_the_next_at_once(lab):
    dead = f"http://127.0.0.1:{free_port()}"
    lab.start_server()
    camera = lab.start("camera", "camera", "--server", dead, "--server", lab.url, "--stream", "lab",
                           *LOOPBACK)
    camera.wait_for_log(f"on {lab.url}", timeout=20)
    # From giving up on the dead server to publishing on the live one: no backoff in between.
    gave_up = logged_at(camera.log(), f"reconnecting to {lab.url}")
    published = logged_at(camera.log(), f"on {lab.url}")
    assert 0 <= published - gave_up < 1.0, camera.log()


def logged_at(log: str, text: str) -> float:
    """The time (s) on the first line of a peercam log that holds ``text``."""
    line = next(line for line in log.splitlines() if text in line)
    return datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()


def test_h264_camera(lab):
    lab.start_server()
    lab.start_camera("h264", "--codec", "h264")
    assert get_json(f"{lab.url}/api/streams/h264")["codec"] == "h264"
    viewer = lab.start_viewer("h264", "--name", "h")
    stream = stop_viewers_at_a_camera_report(lambda: lab.api("/api/streams/h264"), {"h": viewer})
    summary = viewer.summary(timeout=30)
    assert_plays(summary)
    # Decoded frame after frame, not just keyframes.
    assert_nothing_lost(summary, frames_sent_to(stream, ["h"])["h"])


def test_a_leaving_viewer_is_torn_down_on_the_camera(lab):
    lab.start_server()
    camera = lab.start_camera("lab")
    lab.start_viewer("lab", "--duration", "1").summary(timeout=30)
    camera.wait_for_log("left", timeout=5)
    camera.wait_for_log("connection closed", timeout=5)
    assert get_json(f"{lab.url}/api/streams/lab")["viewer_count"] == 0


def circle_clip(path: str, width: int = 1280, height: int = 720) -> str:
    """One second of a filled white circle on black, at 25 fps."""
    image = np.zeros((height, width, 3), np.uint8)
    cv2.circle(image, (width // 2, height // 2), height // 4, (255, 255, 255), -1)
    with av.open(path, "w") as container:
        stream = container.add_stream("libx264", rate=25, options={"preset": "ultrafast"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for _ in range(25):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")))
        container.mux(stream.encode(None))
    return path


def circle_box(jpeg: bytes) -> tuple[int, int]:
    """Width and height of the bright shape's bounding box in a JPEG."""
    gray = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_GRAYSCALE)
    _, _, w, h = cv2.boundingRect((gray > 128).astype(np.uint8))
    return w, h


def test_files_arrive_in_their_own_shape(lab, make_clip, tmp_path):
    circle = circle_clip(str(tmp_path / "circle.mp4"))
    lab.start_server()
    cameras = {"wide": lab.start_camera("wide", "--source", circle),
               "small": lab.start_camera("small", "--source", circle, "--width", "640"),
               "tall": lab.start_camera("tall", "--source", make_clip(480, 640))}
    viewers = {name: lab.start_viewer(name, "--duration", "1") for name in cameras}
    summaries = {name: viewer.summary(timeout=40) for name, viewer in viewers.items()}
    expected = {"wide": (1280, 720), "small": (640, 360), "tall": (480, 640)}
    assert {name: (s["width"], s["height"]) for name, s in summaries.items()} == expected, summaries
    listed = {s["name"]: (s["width"], s["height"]) for s in get_json(f"{lab.url}/api/streams")}
    assert listed == expected
    assert "publishing 'small' (640x360@25 vp8)" in cameras["small"].log()

    # Scaled down, the circle is still round (squeezed to 640x480 it would be a third taller).
    with urllib.request.urlopen(f"{lab.url}/streams/small/snapshot.jpg", timeout=10) as response:
        w, h = circle_box(response.read())
    assert abs(w - h) <= 2 and abs(w - 180) <= 4, (w, h)
