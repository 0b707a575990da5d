"""web/js/recordings.js and the dashboard's REC badge: the pages show what the server
records, and its segments play (and seek) in real headless Chromium."""

from __future__ import annotations

import pytest
from peercam.signaling.edge.auth import make_token

from .conftest import decoded_frames, wait_for_frames
from .support.chromium import goto_player

SECRET = "s3cret"
RECORD = ["--record-dir", "{dir}", "--record", "*", "--record-segment", "2"]
#: Every row that is not the segment being written.
CLOSED_ROWS = "[...document.querySelectorAll('#recordings-list li.recording')]" \
              ".filter((row) => row.querySelector('.recording-duration').textContent !== 'recording now')"


def record_args(directory, *extra: str) -> list[str]:
    return [arg.format(dir=directory) for arg in RECORD] + list(extra)


def play_and_seek_a_closed_segment(page, lab, query: str = "") -> None:
    """On /view/cam: REC shows, a closed segment is listed, and it plays and seeks in the
    page's recording <video> while the live picture goes on."""
    media_statuses: list[int] = []
    page.on("response", lambda r: media_statuses.append(r.status) if "/recordings/cam/" in r.url else None)
    goto_player(page, f"{lab.url}/view/cam{query}")
    page.wait_for_selector("#rec[data-state=recording]", state="visible", timeout=15_000)
    assert page.inner_text("#rec") == "REC"
    page.wait_for_function(f"{CLOSED_ROWS}.length > 0", timeout=30_000)
    file = page.locator("#recordings-list li.recording").last.get_attribute("data-file")  # the oldest: closed
    row = page.locator(f"#recordings-list li[data-file='{file}']")
    listed = {s["file"]: s for s in lab.api("/api/streams/cam/recordings")}[file]
    assert listed["duration"] and not listed["recording"], listed
    assert row.locator(".recording-size").inner_text().endswith("kB")
    page.wait_for_function("peercam.state() === 'playing'", timeout=15_000)
    live_frames = decoded_frames(page)

    row.locator("button").click()
    # It plays, with the camera's sound (the test tone) decoded beside the picture.
    page.wait_for_function(
        "(() => { const v = document.getElementById('recording-video');"
        " return !v.error && v.readyState >= 2 && v.currentTime > 0.3"
        " && v.webkitAudioDecodedByteCount > 0; })()", timeout=15_000)
    video = page.evaluate("(() => { const v = document.getElementById('recording-video');"
                          " return {src: v.src, width: v.videoWidth, height: v.videoHeight}; })()")
    assert video["src"].split("?")[0].endswith(f"/recordings/cam/{file}"), video
    assert (video["width"], video["height"]) == (640, 480), video
    assert "playing" in row.get_attribute("class")

    # Seek to the middle: the browser fetches that part by a Range request and lands there.
    target = listed["duration"] / 2
    page.evaluate(f"(() => {{ const v = document.getElementById('recording-video');"
                  f" v.pause(); v.currentTime = {target}; }})()")
    page.wait_for_function(
        f"(() => {{ const v = document.getElementById('recording-video');"
        f" return !v.seeking && v.readyState >= 2 && Math.abs(v.currentTime - {target}) < 0.2; }})()",
        timeout=10_000)
    assert 206 in media_statuses, media_statuses  # served in ranges, as a <video> asks
    # The live picture never stopped for it.
    wait_for_frames(page, live_frames + 30)


@pytest.mark.parametrize("codec", ["vp8", "h264"])
def test_the_player_shows_rec_and_plays_and_seeks_its_recordings(lab, page, tmp_path, codec):
    lab.start_server(*record_args(tmp_path / "rec"))
    lab.start_camera("cam", "--codec", codec)
    play_and_seek_a_closed_segment(page, lab)
    extension = {"vp8": ".webm", "h264": ".mp4"}[codec]
    assert page.locator("#recordings-list li.recording").first.get_attribute("data-file").endswith(extension)


def test_the_dashboard_badges_recorded_streams_only(lab, page, tmp_path):
    lab.start_server("--record-dir", str(tmp_path / "rec"), "--record", "kept")
    lab.start_camera("kept")
    lab.start_camera("passing")
    page.goto(f"{lab.url}/")
    page.wait_for_selector("li.stream[data-stream=kept] .rec-badge", state="visible", timeout=15_000)
    assert page.inner_text("li.stream[data-stream=kept] .rec-badge") == "REC"
    page.wait_for_selector("li.stream[data-stream=passing]", timeout=10_000)
    assert not page.is_visible("li.stream[data-stream=passing] .rec-badge")


def test_without_a_record_dir_the_player_shows_neither_rec_nor_recordings(lab, page):
    lab.start_server()
    lab.start_camera("cam")
    goto_player(page, f"{lab.url}/view/cam")
    page.wait_for_function("peercam.state() === 'playing'", timeout=15_000)
    assert not page.is_visible("#rec") and not page.is_visible("#recordings")


def test_under_auth_all_a_view_token_lists_and_plays_recordings(lab, page, tmp_path):
    lab.start_server(*record_args(tmp_path / "rec", "--secret", SECRET, "--auth", "all"))
    lab.token = make_token(SECRET, "cam", "view", 600)
    lab.start_camera("cam", "--token", make_token(SECRET, "cam", "publish", 600))
    play_and_seek_a_closed_segment(page, lab, f"?token={lab.token}")
