"""peers/camera/sources.py: sizes that keep the source's shape, pacing, video files, clear errors."""

import logging
import subprocess
import time

import av
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from peercam.peers.camera.sources import (
    DEFAULT_LIMIT,
    CaptureDeviceSource,
    FileSource,
    SourceError,
    TestPatternSource,
    even,
    fit_size,
    open_source,
)
from peercam.peers.testpattern import read_stamp


def same_shape(source: tuple[int, int], size: tuple[int, int]) -> bool:
    """``size`` is ``source`` scaled by one factor, give or take a pixel of rounding on each side."""
    (src_w, src_h), (w, h) = source, size
    return max((w - 1) / src_w, (h - 1) / src_h) <= min((w + 1) / src_w, (h + 1) / src_h)


@pytest.mark.parametrize("x, expected", [(640, 640), (641, 642), (639.4, 640), (359.9, 360), (0.2, 2)])
def test_even_rounds_to_the_nearest_even_number(x, expected):
    assert even(x) == expected


@pytest.mark.parametrize("source, bound, expected", [
    ((1280, 720), {}, (1280, 720)),  # fits the default limit: its own size
    ((720, 576), {}, (720, 576)),
    ((480, 640), {}, (480, 640)),
    ((1920, 1080), {}, (1280, 720)),  # larger: scaled down to fit inside 1280x720
    ((1080, 1920), {}, (406, 720)),
    ((641, 361), {}, (642, 362)),  # odd sides round to even
    ((1280, 720), {"width": 640}, (640, 360)),  # one side given: the other follows
    ((1280, 720), {"height": 360}, (640, 360)),
    ((720, 576), {"width": 640}, (640, 512)),
    ((1280, 720), {"width": 640, "height": 480}, (640, 360)),  # both: fits inside the box
    ((480, 640), {"width": 640, "height": 480}, (360, 480)),
    ((320, 180), {"width": 640}, (320, 180)),  # a bound: never scaled up
    ((1920, 1080), {"width": 1920}, (1920, 1080)),  # a bound given replaces the default limit
    ((1920, 1080), {"limit": None}, (1920, 1080)),
    ((1280, 720), {"width": 640, "height": 480, "stretch": True}, (640, 480)),
])
def test_fit_size(source, bound, expected):
    assert fit_size(*source, **bound) == expected


def test_stretch_needs_a_box():
    with pytest.raises(ValueError, match="both"):
        fit_size(1280, 720, width=640, stretch=True)


sides = st.integers(16, 4000)


@given(sides, sides, st.one_of(st.none(), st.integers(32, 2000).map(lambda n: 2 * n)),
       st.one_of(st.none(), st.integers(32, 2000).map(lambda n: 2 * n)))
def test_fit_size_keeps_the_shape_inside_the_bound(src_w, src_h, width, height):
    w, h = fit_size(src_w, src_h, width, height)
    bound_w, bound_h = (width, height) if width or height else DEFAULT_LIMIT
    assert w % 2 == 0 and h % 2 == 0
    assert w <= (bound_w or w) and h <= (bound_h or h)
    assert w <= even(src_w) and h <= even(src_h)  # never scaled up
    if min(w, h) > 2:  # a side scaled below one pixel is floored at 2
        assert same_shape((src_w, src_h), (w, h))


def test_test_pattern_is_paced_and_stamped():
    source = TestPatternSource(320, 240, 50)
    start = time.monotonic()
    frames = [source.read() for _ in range(25)]
    elapsed = time.monotonic() - start
    assert 0.4 <= elapsed < 2.0
    stamp = read_stamp(frames[-1].image[..., 1])
    assert stamp is not None and stamp.frame == frames[-1].number


@pytest.mark.parametrize("width, height, expected", [
    (None, None, (640, 480)), (1280, 720, (1280, 720)), (320, None, (320, 240)), (None, 720, (960, 720)),
])
def test_test_pattern_is_drawn_at_the_size_given(width, height, expected):
    source = open_source("testsrc", width, height, 30)
    assert (source.width, source.height) == expected
    assert source.read().image.shape[:2] == expected[::-1]
    source.close()


@pytest.fixture
def video_file(tmp_path):
    path = tmp_path / "clip.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 160, 120, "yuv420p"
        for n in range(10):
            image = np.full((120, 160, 3), n * 20, np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return str(path)


def test_video_file_loops_at_its_own_rate_and_size(video_file):
    source = open_source(video_file, fps=30)
    assert isinstance(source, FileSource) and source.fps == 25
    frames = [source.read() for _ in range(25)]  # more than the file holds
    assert all(f.image.shape == (120, 160, 3) for f in frames)
    source.close()


@pytest.mark.parametrize("size", [(1280, 720), (720, 576), (480, 640)])
def test_files_keep_their_size_and_rate(make_clip, size):
    source = open_source(make_clip(*size))
    assert (source.width, source.height) == size and source.fps == 25
    assert all(source.read().image.shape[:2] == size[::-1] for _ in range(3))
    source.close()


@pytest.mark.parametrize("size, bound, expected", [
    ((1280, 720), {"width": 640}, (640, 360)),
    ((1280, 720), {"width": 640, "height": 480}, (640, 360)),
    ((720, 576), {"height": 288}, (360, 288)),
    ((480, 640), {"width": 640, "height": 480}, (360, 480)),
    ((1280, 720), {"width": 640, "height": 480, "stretch": True}, (640, 480)),
])
def test_files_fit_the_bound_keeping_their_shape(make_clip, size, bound, expected):
    source = open_source(make_clip(*size), **bound)
    assert (source.width, source.height) == expected
    image = source.read().image
    assert image.shape[:2] == expected[::-1]
    assert bound.get("stretch") or same_shape(size, expected)
    source.close()


def test_a_file_whose_size_changes_keeps_playing_at_its_first_size(make_clip, tmp_path):
    # Two clips joined without re-encoding: the frame size changes mid-stream.
    first, second = make_clip(320, 180, 0.4, ext="ts"), make_clip(160, 120, 0.4, source="color", ext="ts")
    playlist = tmp_path / "playlist.txt"
    playlist.write_text(f"file '{first}'\nfile '{second}'\n")
    joined = tmp_path / "joined.ts"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "concat", "-safe", "0", "-i", str(playlist),
                    "-c", "copy", str(joined)], check=True, timeout=60)
    with av.open(str(joined)) as container:
        assert {(f.width, f.height) for f in container.decode(video=0)} == {(320, 180), (160, 120)}

    source = open_source(str(joined))
    assert (source.width, source.height) == (320, 180)
    images = [source.read().image for _ in range(24)]  # into the second clip and round again
    assert all(image.shape == (180, 320, 3) for image in images)
    means = [image.mean() for image in images]
    assert means[0] > 60 and min(means) < 30  # the picture, then the black clip: it went on playing
    source.close()


def test_a_capture_device_publishes_what_it_delivers(make_clip, caplog):
    # OpenCV opens a file through the same VideoCapture a camera uses: one that offers a
    # single mode (1280x720 at 25 fps), whatever it is asked for.
    clip = make_clip(1280, 720)
    with caplog.at_level(logging.WARNING, "peercam.peers.camera.sources"):
        asked = CaptureDeviceSource(clip, 640, 480, 30)
    assert "delivers 1280x720@25, not the 640x480@30 asked for" in caplog.text
    assert (asked.width, asked.height, asked.fps) == (640, 360, 25)
    assert asked.read().image.shape == (360, 640, 3)
    asked.close()

    caplog.clear()
    with caplog.at_level(logging.WARNING, "peercam.peers.camera.sources"):
        default = CaptureDeviceSource(clip, fps=25)
    assert not caplog.records
    assert (default.width, default.height, default.fps) == (1280, 720, 25)
    default.close()


@pytest.mark.parametrize("spec, words", [
    ("/nonexistent/clip.mp4", "no such video file"),
    ("/dev/video99", "no camera"),
    ("99", "cannot open camera"),
])
def test_missing_sources_fail_clearly(spec, words):
    with pytest.raises(SourceError, match=words):
        open_source(spec, 640, 480, 30)


def test_unreadable_file_fails_clearly(tmp_path):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"this is not a video" * 100)
    with pytest.raises(SourceError, match="cannot read|no readable frames"):
        open_source(str(junk), 640, 480, 30)


@pytest.mark.parametrize("width, height, words", [
    (641, 480, "even"), (None, 0, "even"), (640, None, "stretch needs both"),
])
def test_bad_sizes_are_refused(width, height, words):
    with pytest.raises(SourceError, match=words):
        open_source("testsrc", width, height, 30, stretch=words.startswith("stretch"))
