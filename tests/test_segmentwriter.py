"""peercam/shared/segmentwriter.py: real encoder output muxed as it is, checked with ffprobe."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import pytest
from peercam.peers.camera.audiopipeline import OpusEncoder
from peercam.peers.camera.audiosources import CHUNK, CapturedAudio
from peercam.peers.camera.encoder import VideoEncoder
from peercam.peers.testpattern import Stamp, TestPattern
from peercam.peers.testtone import tone

from peercam.shared.segmentwriter import (
    KEYFRAME_GRACE,
    KEYFRAME_PATIENCE,
    SegmentWriter,
    opus_samples,
    segment_order,
    segment_start,
)
from tests.conftest import ROOT, require

FPS = 30


def ffprobe_frames(path: Path) -> int:
    """Frames ffprobe decodes in a file (0 if it decodes none)."""
    require(shutil.which("ffprobe") is not None, "ffprobe (apt-get install ffmpeg)")
    out = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0",
                          "-show_entries", "stream=nb_read_frames", "-of", "csv=p=0", str(path)],
                         capture_output=True, text=True, timeout=60).stdout.strip()
    return int(out) if out.isdigit() else 0


class CaptureClock:
    """The server's clock as the writer reads it, kept at the capture time of the frame in hand:
    frames encoded faster than real time arrive as a live camera's would."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def encode_into(writer: SegmentWriter, codec: str, frames: int, first: int = 0, keyframes=(),
                clock: CaptureClock | None = None) -> None:
    pattern = TestPattern(320, 240)
    encoder = VideoEncoder(codec, 320, 240, FPS, 500_000)
    for n in range(first, first + frames):
        image = pattern.render(Stamp(time_ms=1_700_000_000_000 + n * 33, frame=n))
        i420 = cv2.cvtColor(image, cv2.COLOR_BGR2YUV_I420)
        for packet in encoder.encode(i420, n * 3000, n == first or n in keyframes):
            if clock is not None:
                clock.now = n * 0.033
            writer.write(bytes(packet), packet.is_keyframe, (1_700_000_000_000 + n * 33) * 1000, 320, 240)


@pytest.mark.parametrize("codec,extension", [("vp8", "webm"), ("h264", "mp4")])
def test_segments_start_on_keyframes_and_decode_in_full(tmp_path, codec, extension):
    asked, clock = [], CaptureClock()
    writer = SegmentWriter(tmp_path, "cam", codec, segment_seconds=2,
                           request_keyframe=lambda: asked.append(1), clock=clock)
    # 5 s of video, keyframes at 70 and 140 only: a segment waits for one after 2 s.
    encode_into(writer, codec, 150, keyframes=(70, 140), clock=clock)
    writer.close()
    files = sorted((tmp_path / "cam").iterdir(), key=segment_order)
    assert [f.suffix for f in files] == [f".{extension}"] * len(files)
    assert all(segment_start(f.name) is not None for f in files)
    assert asked, "a segment that is due asks for a keyframe"
    assert [ffprobe_frames(f) for f in files] == [70, 70, 10]
    assert writer.frames_written == 150 and writer.frames_dropped == 0 and writer.segments == 3
    assert writer.bytes_written < sum(f.stat().st_size for f in files)  # the frames, plus containers


@pytest.mark.parametrize("codec", ["vp8", "h264"])
def test_a_segment_cut_by_a_crash_plays_up_to_its_last_second(tmp_path, codec):
    # The writer is killed (SIGKILL) right after 4 s of frames: no trailer, no close. Run from
    # the checkout's root, which is how the script finds this module (tests.test_segmentwriter).
    script = f"""
import os
from pathlib import Path
from peercam.shared.segmentwriter import SegmentWriter
from tests.test_segmentwriter import encode_into
writer = SegmentWriter(Path({str(tmp_path)!r}), "cam", {codec!r}, segment_seconds=600)
encode_into(writer, {codec!r}, 120)
import time
while writer.frames_written < 120:
    time.sleep(0.01)
os.kill(os.getpid(), 9)
"""
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, timeout=120)
    assert result.returncode == -9
    (segment,) = (tmp_path / "cam").iterdir()
    assert ffprobe_frames(segment) >= 120 - FPS  # at most the last second lost


def test_a_frame_that_follows_a_gap_waits_for_a_keyframe(tmp_path):
    writer = SegmentWriter(tmp_path, "cam", "vp8", segment_seconds=600)
    encode_into(writer, "vp8", 10)
    writer.gap()
    encode_into(writer, "vp8", 10, first=10, keyframes=())  # a new encoder: its first is a keyframe
    writer.close()
    (segment,) = (tmp_path / "cam").iterdir()
    assert ffprobe_frames(segment) == 20 and writer.frames_dropped == 0


def test_a_directory_that_cannot_be_written_stops_the_writer_with_the_reason(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    writer = SegmentWriter(blocker / "recordings", "cam", "vp8")
    encode_into(writer, "vp8", 5)
    writer.close()
    assert writer.error is not None and "Not a directory" in writer.error, writer.error
    assert writer.frames_written == 0


def test_a_full_disk_stops_the_writer_and_keeps_what_was_written(tmp_path):
    require(os.geteuid() == 0, "mounting a small tmpfs needs root")
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=200k", "tmpfs", str(disk)], check=True)
    try:
        writer = SegmentWriter(disk, "cam", "vp8", segment_seconds=600)
        encode_into(writer, "vp8", 300)
        writer.close()
        assert writer.error is not None and "No space left" in writer.error, writer.error
        (segment,) = (disk / "cam").iterdir()
        assert 0 < ffprobe_frames(segment) < 300
    finally:
        subprocess.run(["umount", str(disk)], check=True)


def test_a_camera_that_sends_no_keyframe_is_cut_on_time_then_stopped_with_the_reason(tmp_path):
    clock = CaptureClock()
    writer = SegmentWriter(tmp_path, "cam", "vp8", segment_seconds=2, clock=clock)
    for n in range(30 * 20):  # 20 s at 30 fps: one keyframe, then deltas only
        clock.now = n / 30
        writer.write(b"\x00" * 1000, n == 0, 1_700_000_000_000_000 + n * 33_333, 320, 240)
    writer.close()
    (segment,) = (tmp_path / "cam").iterdir()
    # Cut KEYFRAME_GRACE after it was due; then KEYFRAME_PATIENCE of frames dropped, and stopped.
    written = int((2 + KEYFRAME_GRACE) * 30)
    assert written <= writer.frames_written <= written + 1, writer.frames_written
    assert writer.segment_bytes <= 1000 * (written + 1)
    assert writer.error is not None and "no keyframe" in writer.error, writer.error
    assert writer.frames_dropped >= KEYFRAME_PATIENCE * 30


def test_a_segment_is_cut_at_its_size_bound_and_starts_at_most_once_a_second(tmp_path):
    clock = CaptureClock()
    writer = SegmentWriter(tmp_path, "cam", "vp8", segment_seconds=600, max_segment_bytes=50_000, clock=clock)
    for n in range(300):  # 3 s: every frame a 10 kB keyframe, of alternating sizes
        clock.now = n / 100
        size = (320, 240) if n % 2 else (640, 480)
        writer.write(b"\x00" * 10_000, True, 1_700_000_000_000_000 + n * 10_000, *size)
    writer.close()
    files = list((tmp_path / "cam").iterdir())
    assert writer.segments == len(files) <= 3 + 1, [f.name for f in files]
    assert all(f.stat().st_size <= 50_000 + 4096 for f in files)
    assert writer.frames_dropped > 250 and writer.error is None


def opus_packets(first_us: int, seconds: float) -> list[tuple[int, bytes]]:
    """The test tone from ``first_us`` (Unix microseconds), in real Opus packets with their
    capture times, as the camera's encoder makes them."""
    encoder = OpusEncoder(1, 48000)
    packets = []
    first_sample = first_us * 48 // 1000
    for n in range(round(seconds * 50)):
        chunk = CapturedAudio(tone(first_sample + n * CHUNK, CHUNK).reshape(-1, 1), first_us / 1e6 + n * 0.02)
        packets += [(round(capture * 1e6), bytes(packet)) for packet, capture in encoder.encode(chunk)]
    return packets


def audio_span(path: Path) -> tuple[float, float]:
    """A segment's Opus track (of 20 ms packets): its first packet's time and its end (ffprobe)."""
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "a:0", "-show_entries",
                          "packet=pts_time", "-of", "csv=p=0", str(path)],
                         capture_output=True, text=True, timeout=60).stdout.split()
    return float(out[0]), float(out[-1]) + 0.02


@pytest.mark.parametrize("codec", ["vp8", "h264"])
def test_sound_goes_into_each_segment_from_its_first_keyframe_on(tmp_path, codec):
    """Video that arrives 60 ms after the sound captured with it (its encoder is slower): each
    segment's sound starts at its first keyframe (the packets that came before it included),
    and sound captured before the first keyframe is in no segment."""
    clock = CaptureClock()
    writer = SegmentWriter(tmp_path, "cam", codec, segment_seconds=2, clock=clock, audio_channels=1)
    video_first_us = 1_700_000_000_000_000
    sound = opus_packets(video_first_us - 500_000, 5.5)
    pattern, encoder = TestPattern(320, 240), VideoEncoder(codec, 320, 240, FPS, 500_000)
    frames = []  # (arrival, capture time in us, keyframe, data)
    for n in range(150):  # 5 s; keyframes at 0 and 70 (2.31 s)
        capture_us = video_first_us + n * 33_000
        image = cv2.cvtColor(pattern.render(Stamp(capture_us // 1000, n)), cv2.COLOR_BGR2YUV_I420)
        frames += [(capture_us + 60_000, capture_us, packet.is_keyframe, bytes(packet))
                   for packet in encoder.encode(image, n * 3000, n in (0, 70))]
    arrivals = [(arrival, 1, item) for arrival, *item in frames]
    arrivals += [(capture_us + 20_000, 0, (capture_us, packet)) for capture_us, packet in sound]
    for arrival, is_video, item in sorted(arrivals, key=lambda a: a[:2]):
        clock.now = (arrival - video_first_us) / 1e6
        if is_video:
            capture_us, keyframe, data = item
            writer.write(data, keyframe, capture_us, 320, 240)
        else:
            writer.write_audio(item[1], item[0])
    writer.close()
    first, second = sorted((tmp_path / "cam").iterdir(), key=segment_order)
    assert [ffprobe_frames(first), ffprobe_frames(second)] == [70, 80]
    for path, frames_in in ((first, 70), (second, 80)):
        start, end = audio_span(path)
        assert 0 <= start < 0.02, (path.name, start)  # from the packet captured with its keyframe
        assert abs(end - frames_in * 0.033) < 0.1, (path.name, end)
    # The half second before the first keyframe went nowhere; none was lost after it (the
    # second segment's first packets are in the first too: captured before its end arrived).
    before = sum(1 for capture_us, _ in sound if capture_us < video_first_us)
    assert before >= 25 and writer.audio_packets_dropped == 0
    assert writer.audio_packets_written >= len(sound) - before
    assert opus_samples(sound[0][1]) == 960
