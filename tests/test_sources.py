"""peers/sources.py: test pattern pacing, video files, clear errors."""

import time

import av
import numpy as np
import pytest

from peers.sources import FileSource, SourceError, TestPatternSource, open_source
from peers.testpattern import read_stamp


def test_test_pattern_is_paced_and_stamped():
    source = TestPatternSource(320, 240, 50)
    start = time.monotonic()
    frames = [source.read() for _ in range(25)]
    elapsed = time.monotonic() - start
    assert 0.4 <= elapsed < 2.0
    stamp = read_stamp(frames[-1].image[..., 1])
    assert stamp is not None and stamp.frame == frames[-1].number


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


def test_video_file_loops_at_its_own_rate_and_is_resized(video_file):
    source = open_source(video_file, 320, 240, 30)
    assert isinstance(source, FileSource) and source.fps == 25
    frames = [source.read() for _ in range(25)]  # more than the file holds
    assert all(f.image.shape == (240, 320, 3) for f in frames)
    source.close()


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


def test_odd_sizes_are_refused():
    with pytest.raises(SourceError, match="even"):
        open_source("testsrc", 641, 480, 30)
