"""signaling/recording/recordings.py: the real server records the real camera's relay, and what it
writes plays, through crashes of either, under retention and behind the gate."""

from __future__ import annotations

import json
import re
import signal
import statistics
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import av
import pytest
from peercam.peers.testpattern import Stamp, read_stamp
from peercam.peers.testtone import ToneReader
from peercam.peers.viewer.frame import luma_plane
from peercam.signaling.edge.auth import make_token

from peercam.shared.segmentwriter import segment_order
from tests.conftest import (
    assert_nothing_lost,
    assert_plays,
    frames_sent_to,
    stop_viewers_at_a_camera_report,
    wait_until,
)
from tests.test_segmentwriter import ffprobe_frames

SECRET = "s3cret"


def recorded(path: Path) -> tuple[list[Stamp], bool]:
    """The test pattern's stamps of every frame PyAV decodes in a segment, and whether its
    first frame is a keyframe."""
    stamps, first_key = [], None
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            first_key = frame.key_frame if first_key is None else first_key
            stamp = read_stamp(luma_plane(frame))
            assert stamp is not None, f"a frame of {path.name} without a readable stamp: corrupt"
            stamps.append(stamp)
    return stamps, bool(first_key)


def tracks(path: Path) -> dict[str, tuple[float, float] | None]:
    """A segment's tracks by codec, each with its span from ffprobe's packets: (start, end) in
    seconds, the end being its last packet's start plus its usual step (None: no packet)."""
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries",
                          "stream=index,codec_name:packet=stream_index,pts_time", "-of", "json", str(path)],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    probed = json.loads(out)
    spans = {}
    for stream in probed["streams"]:
        times = sorted(float(packet["pts_time"]) for packet in probed["packets"]
                       if packet["stream_index"] == stream["index"])
        steps = [b - a for a, b in zip(times, times[1:], strict=False)]
        spans[stream["codec_name"]] = (times[0], times[-1] + (statistics.median(steps) if steps else 0)
                                       ) if times else None
    return spans


def assert_sound_in_sync(path: Path, video_codec: str) -> None:
    """The segment has the camera's sound beside its picture: an Opus track as long as the
    video within 100 ms (ffprobe), and in step with it: the test tone's beeps (decoded) sound
    where the test pattern's stamps say they were captured, within 30 ms."""
    spans = tracks(path)
    assert set(spans) == {video_codec, "opus"}, (path.name, spans)
    video_start, video_end = spans[video_codec]
    if spans["opus"] is None:  # a segment cut within a packet's time of its start
        assert video_end - video_start <= 0.1, (path.name, spans)
        return
    audio_start, audio_end = spans["opus"]
    assert abs(audio_start - video_start) <= 0.1 and abs(audio_end - video_end) <= 0.1, (path.name, spans)
    with av.open(str(path)) as container:
        # The file's time (s) to the camera's clock, from the pattern's stamps.
        offset = statistics.median(read_stamp(luma_plane(frame)).time_ms / 1000 - float(frame.time)
                                   for frame in container.decode(video=0))
    reader, offsets = ToneReader(), []
    with av.open(str(path)) as container:
        for frame in container.decode(audio=0):
            beeps = reader.feed(frame.to_ndarray().reshape(-1), float(frame.time) + offset)
            offsets += [(beep.heard_time - beep.capture_time) * 1000 for beep in beeps]
    # A beep every half second (the segment's edges may cut one off).
    assert len(offsets) >= 2 * (video_end - video_start) - 2, (path.name, offsets)
    assert all(abs(o) <= 30 for o in offsets), (path.name, offsets)


def closed_segments(log: str) -> dict[str, int]:
    """The frames each closed segment holds, from the writer's log line."""
    return {m[1]: int(m[2]) for m in re.finditer(r"closed \S+/([^/\s]+): (\d+) frames", log)}


def http(method: str, url: str, token: str | None = None, body: dict | None = None,
         headers: dict | None = None) -> tuple[int, dict, bytes]:
    headers = dict(headers or {})
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def segments(lab, stream: str = "cam") -> list[dict]:
    return lab.api(f"/api/streams/{stream}/recordings") or []


def files(directory: Path, stream: str = "cam") -> list[Path]:
    return sorted((directory / stream).iterdir(), key=segment_order)


def wait_closed(lab, stream: str = "cam", timeout: float = 15) -> list[dict]:
    """Until the server has closed every segment of the stream (its camera left)."""
    def closed() -> list[dict] | None:
        listed = segments(lab, stream)
        return listed if listed and not any(s["recording"] for s in listed) else None

    return wait_until(closed, timeout, "the last segment to close")


@pytest.mark.parametrize("codec,extension", [("vp8", "webm"), ("h264", "mp4")])
def test_a_recorded_stream_is_kept_in_segments_that_decode_in_full(lab, tmp_path, codec, extension):
    directory = tmp_path / "rec"
    segment_s = 3
    server = lab.start_server("--record-dir", str(directory), "--record", "*",
                              "--record-segment", str(segment_s))
    camera = lab.start_camera("cam", "--codec", codec)
    wait_until(lambda: len(segments(lab)) >= 3 and segments(lab)[-1]["size"] > 100_000, 40,
               "two whole segments and part of a third")
    sent = lab.api("/api/streams/cam")["relay"]["frames_in"]  # by the camera, so far
    camera.kill(signal.SIGINT)
    listed = wait_closed(lab)
    written = closed_segments(server.log())

    paths = files(directory)
    assert [p.name for p in paths] == [s["file"] for s in listed]
    assert all(p.suffix == f".{extension}" for p in paths) and len(paths) >= 3
    numbers = []
    for path, entry in zip(paths, listed, strict=True):
        stamps, starts_on_keyframe = recorded(path)
        assert starts_on_keyframe, path.name
        assert ffprobe_frames(path) == len(stamps) == written[path.name] > 0, path.name
        assert entry["size"] == path.stat().st_size
        assert_sound_in_sync(path, codec)  # the camera's test tone, in the same segments
        span = (stamps[-1].time_ms - stamps[0].time_ms) / 1000
        assert span <= entry["duration"] <= span + 0.2, (entry, span)
        if entry is not listed[-1]:
            # Cut at the first keyframe after segment_s of capture time, which it asked for at once.
            late = [s for s in stamps if s.time_ms - stamps[0].time_ms >= segment_s * 1000]
            assert span >= segment_s - 0.1 and len(late) <= 31, (entry, len(late))
        numbers += [s.frame for s in stamps]
    # In order, none twice, and every frame the camera sent (its later ones too).
    assert numbers == sorted(set(numbers))
    assert len(numbers) >= sent, (len(numbers), sent)


def test_recording_starts_and_stops_through_the_api_while_viewers_watch(lab, tmp_path):
    directory = tmp_path / "rec"
    lab.start_server("--record-dir", str(directory))
    lab.start_camera("cam")
    p2p = lab.start_viewer("cam", "--name", "p2p")
    relay = lab.start_viewer("cam", "--mode", "relay", "--name", "relay")
    def both_play() -> bool:
        viewers = (lab.api("/api/streams/cam") or {}).get("viewers", [])
        return len(viewers) == 2 and all(v.get("stats") for v in viewers)

    wait_until(both_play, 20, "both viewers to play")
    status, _, body = http("PUT", f"{lab.url}/api/streams/cam/recording", body={"enabled": True})
    assert status == 200 and json.loads(body)["enabled"], body
    wait_until(lambda: lab.api("/api/streams/cam")["recording"]["bytes_written"] > 200_000, 20,
               "some recording")
    status, _, body = http("PUT", f"{lab.url}/api/streams/cam/recording", body={"enabled": False})
    state = json.loads(body)
    assert status == 200 and not state["enabled"] and not state["active"], state
    # No hiccup as recording came and went: the P2P viewer decoded what the camera sent it,
    # and the relay viewer every frame of the layer (its sequence numbers have no gap).
    stream = stop_viewers_at_a_camera_report(lambda: lab.api("/api/streams/cam"), {"p2p": p2p})
    summary = p2p.summary(30)
    assert_plays(summary)
    assert_nothing_lost(summary, frames_sent_to(stream, ["p2p"])["p2p"])
    relay.proc.send_signal(signal.SIGINT)
    summary = relay.summary(30)
    assert_plays(summary, "relay")
    assert summary["relay_format"] == "encoded" and summary["frames_dropped"] == 0, summary
    (segment,) = wait_closed(lab)
    assert segment["duration"] > 1 and ffprobe_frames(directory / "cam" / segment["file"]) > 30


def test_a_killed_server_leaves_whole_segments_and_a_cut_one_playing_to_its_last_seconds(lab, tmp_path):
    directory = tmp_path / "rec"
    server = lab.start_server("--record-dir", str(directory), "--record", "*", "--record-segment", "3")
    lab.start_camera("cam")
    wait_until(lambda: len(segments(lab)) >= 3 and segments(lab)[-1]["size"] > 150_000, 40,
               "two closed segments and half of a third")
    killed_at = time.time()
    server.kill(signal.SIGKILL)

    paths = files(directory)
    assert len(paths) >= 3
    written = closed_segments(server.log())
    recordings = [recorded(path)[0] for path in paths]
    for path, stamps in zip(paths[:-1], recordings[:-1], strict=True):
        assert ffprobe_frames(path) == len(stamps) == written[path.name], path.name  # in full
    numbers = [s.frame for stamps in recordings for s in stamps]
    assert numbers == sorted(set(numbers))
    cut = recordings[-1]
    assert ffprobe_frames(paths[-1]) == len(cut) > 0
    assert cut[-1].time_ms / 1000 >= killed_at - 2.0, (cut[-1], killed_at)


def test_a_killed_camera_resumes_in_a_new_segment_and_the_gap_is_its_downtime(lab, tmp_path):
    directory = tmp_path / "rec"
    server = lab.start_server("--record-dir", str(directory), "--record", "cam")
    first = lab.start_camera("cam")
    wait_until(lambda: lab.api("/api/streams/cam")["recording"]["bytes_written"] > 200_000, 20,
               "some recording")
    # Frozen first, so that what the camera sent before it died is known: the frames the
    # server got from it, all of them written once the recorder has caught up.
    first.proc.send_signal(signal.SIGSTOP)

    def caught_up() -> int | None:
        stream = lab.api("/api/streams/cam")
        received, written = stream["relay"]["frames_in"], stream["recording"]["frames_written"]
        return received if received == written else None

    received = wait_until(caught_up, 10, "the recorder to write what the camera sent")
    first.kill(signal.SIGKILL)
    wait_until(lambda: not (lab.api("/api/streams/cam") or {}).get("live"), 10, "the camera to be gone")
    second = lab.start_camera("cam", "--audio", "none")  # recorded as before there was sound
    wait_until(lambda: len(segments(lab)) == 2 and segments(lab)[-1]["size"] > 200_000, 20,
               "recording the second camera")
    # The second camera encodes its top layer for the recorder alone: each frame it encoded
    # by its latest report is one the recording must hold.
    encoded = lab.api("/api/streams/cam")["camera"]["stats"]["layers"][0]["frames_encoded"]
    second.kill(signal.SIGINT)
    wait_closed(lab)

    paths = files(directory)
    before, after = (recorded(path)[0] for path in paths)
    # Every frame the first camera sent before it died, and the second's from its first
    # keyframe on: what is missing is the time no camera was there, and no more.
    assert len(before) == closed_segments(server.log())[paths[0].name] == received
    assert len(after) >= encoded > 0
    assert set(tracks(paths[0])) == {"vp8", "opus"} and set(tracks(paths[1])) == {"vp8"}


def test_retention_by_size_deletes_the_oldest_segments_first(lab, tmp_path):
    directory = tmp_path / "rec"
    server = lab.start_server("--record-dir", str(directory), "--record", "*", "--record-segment", "1",
                                  "--record-keep", "400KB")
    lab.start_camera("cam")
    opened = "segmentwriter INFO recording /"
    server.wait_for_log(opened, 30, count=7)
    first = next(line for line in server.log().splitlines() if opened in line).rsplit("/", 1)[-1]
    kept = wait_until(lambda: (listed := segments(lab)) and listed[0]["file"] != first and listed, 10,
                      "the oldest to go")
    started = [line.rsplit("/", 1)[-1] for line in server.log().splitlines() if opened in line]
    names = [s["file"] for s in kept]
    oldest_kept = started.index(names[0])
    # The oldest went, and only they: what is kept is the newest, without a hole.
    assert oldest_kept > 0 and names == started[oldest_kept:oldest_kept + len(names)], (started, names)
    assert not any((directory / "cam" / name).exists() for name in started[:oldest_kept])
    closed = [s["size"] for s in kept if not s["recording"]]
    # Within the limit (a segment that closed a moment ago may await its sweep).
    assert sum(closed) <= 400 * 1024 + max(closed), kept


def test_every_recording_route_is_behind_the_gate_and_files_serve_ranges(lab, tmp_path):
    directory = tmp_path / "rec"
    lab.start_server("--record-dir", str(directory), "--record", "*", "--record-segment", "2",
                         "--secret", SECRET, "--auth", "all")
    lab.token = make_token(SECRET, "*", "admin", 600)
    lab.start_camera("cam", "--token", make_token(SECRET, "cam", "publish", 600))
    wait_until(lambda: len(segments(lab)) >= 2, 20, "a closed segment")
    closed, current = segments(lab)[0], segments(lab)[-1]
    url, list_url = f"{lab.url}{closed['url']}", f"{lab.url}/api/streams/cam/recordings"
    switch_url = f"{lab.url}/api/streams/cam/recording"
    view, other = make_token(SECRET, "cam", "view", 600), make_token(SECRET, "other", "view", 600)
    admin, other_admin = make_token(SECRET, "cam", "admin", 600), make_token(SECRET, "other", "admin", 600)

    for method, target, allowed, body in [("GET", list_url, view, None), ("GET", url, view, None),
                                          ("PUT", switch_url, admin, {"enabled": True}),
                                          ("DELETE", f"{lab.url}{closed['url']}", admin, None)]:
        status, _, text = http(method, target, body=body)
        assert status == 401 and b"token" in text, (method, target, status)
        wrong = [other, "garbage"] + ([view, other_admin] if allowed == admin else [])
        for token in wrong:
            status, _, text = http(method, target, token, body=body)
            assert status == 403 and b"token" in text, (method, target, token, status)
        if method != "DELETE":
            status, _, _ = http(method, target, allowed, body=body)
            assert status == 200, (method, target)

    status, headers, data = http("GET", f"{url}?token={view}", headers={"Range": "bytes=0-99"})
    size = closed["size"]
    assert status == 206 and len(data) == 100 and headers["Content-Range"] == f"bytes 0-99/{size}"
    assert headers["Content-Type"] == "video/webm"
    status, _, tail = http("GET", url, view, headers={"Range": "bytes=-64"})
    assert status == 206 and tail == (directory / "cam" / closed["file"]).read_bytes()[-64:]

    for bad in ("../../etc/passwd", "..%2F..%2Fetc%2Fpasswd", "notes.txt", "2026-01-01T00-00-00.webm"):
        assert http("GET", f"{lab.url}/recordings/cam/{bad}", view)[0] == 404, bad
    assert http("DELETE", f"{lab.url}{current['url']}", admin)[0] == 409  # being written
    assert http("PUT", switch_url, admin, body={"enabled": "yes"})[0] == 400
    bad_name = f"{lab.url}/api/streams/..%2F/recording"
    assert http("PUT", bad_name, admin, body={"enabled": True})[0] in (400, 404)
    status, _, _ = http("DELETE", url, admin)
    assert status == 200 and not (directory / "cam" / closed["file"]).exists()
    assert http("GET", url, view)[0] == 404

    metrics = http("GET", f"{lab.url}/metrics", lab.token)[2].decode()
    assert 'peercam_recording_segments_total{stream="cam"}' in metrics
    written = next(line for line in metrics.splitlines()
                   if line.startswith('peercam_recording_bytes_total{stream="cam"}'))
    assert float(written.split()[-1]) > 0
    state = lab.api("/api/streams/cam")["recording"]
    assert state["active"] and state["enabled"] and state["bytes_written"] > 0 and state["errors"] == 0


def test_without_a_secret_anyone_may_switch_recording_and_without_a_directory_nobody(lab, tmp_path):
    lab.start_server()
    status, _, text = http("PUT", f"{lab.url}/api/streams/cam/recording", body={"enabled": True})
    assert status == 409 and b"--record-dir" in text


def test_an_unwritable_directory_stops_recording_with_the_reason_while_the_stream_goes_on(lab, tmp_path):
    """The directory breaks under a running server (one unwritable at start is a start-up
    error: tests/test_startup_errors.py)."""
    directory = tmp_path / "rec"
    directory.mkdir()
    server = lab.start_server("--record-dir", str(directory), "--record", "*")
    lab.wait_for_server()  # it has checked the directory: now it breaks
    directory.rmdir()
    directory.write_text("not a directory")
    lab.start_camera("cam")
    state = wait_until(lambda: (lab.api("/api/streams/cam") or {}).get("recording", {}).get("error"), 20,
                       "the recording error")
    assert "Not a directory" in state
    recording = lab.api("/api/streams/cam")["recording"]
    assert not recording["active"] and recording["errors"] == 1
    server.wait_for_log("recording cam stopped: ", 5)
    assert_plays(lab.start_viewer("cam", "--duration", "2").summary(30))
    metrics = http("GET", f"{lab.url}/metrics")[2].decode()
    assert 'peercam_recording_errors_total{stream="cam"} 1.0' in metrics


@pytest.mark.parametrize("codec,extension", [("vp8", "webm"), ("h264", "mp4")])
def test_a_camera_records_its_own_encoder_in_the_same_segments(lab, tmp_path, codec, extension):
    directory = tmp_path / "local"
    lab.start_server()
    camera = lab.start_camera("cam", "--record", str(directory), "--record-segment", "2", "--codec", codec)
    wait_until(lambda: (directory / "cam").is_dir() and len(list((directory / "cam").iterdir())) >= 3, 20,
               "two closed segments on the camera")
    camera.kill(signal.SIGINT)
    camera.proc.wait(10)
    written = closed_segments(camera.log())
    numbers = []
    for path in files(directory):
        stamps, starts_on_keyframe = recorded(path)
        assert path.suffix == f".{extension}" and starts_on_keyframe, path.name
        assert ffprobe_frames(path) == len(stamps) == written[path.name] > 0, path.name
        assert_sound_in_sync(path, codec)  # its own test tone, from its own encoder
        numbers += [s.frame for s in stamps]
    assert numbers == sorted(set(numbers))
