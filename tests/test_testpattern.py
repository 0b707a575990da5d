"""peers/testpattern.py: the embedded stamp survives real VP8 and H.264 coding, and reads as the
shared cases (tests/testpattern_cases.json) say."""

import json
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from peercam.peers.camera.encoder import VideoEncoder
from peercam.peers.testpattern import BITS_PER_ROW, Stamp, TestPattern, block_size, read_stamp


def test_stamp_reads_back_from_raw_pixels():
    pattern = TestPattern(640, 480)
    stamp = Stamp(time_ms=1_763_700_000_123, frame=123_456)
    grey = cv2.cvtColor(pattern.render(stamp), cv2.COLOR_BGR2GRAY)
    assert read_stamp(grey) == stamp


def test_corrupted_code_is_rejected_not_misread():
    pattern = TestPattern(640, 480)
    grey = cv2.cvtColor(pattern.render(Stamp(1_000_000, 7)), cv2.COLOR_BGR2GRAY)
    b = int(block_size(640))
    grey[b : 2 * b, b : 2 * b] = 255 - grey[b : 2 * b, b : 2 * b]  # flip one bit
    assert read_stamp(grey) is None


def test_frames_move():
    pattern = TestPattern(320, 240)
    a, b = pattern.render(Stamp(0, 1)), pattern.render(Stamp(0, 2))
    assert np.mean(np.abs(a.astype(int) - b.astype(int))) > 5


@pytest.mark.parametrize("codec, decoder", [("vp8", "vp8"), ("h264", "h264")])
@pytest.mark.parametrize("size", [(640, 480), (320, 240), (1280, 720)])
def test_stamp_survives_the_codec(codec, decoder, size):
    width, height = size
    pattern = TestPattern(width, height)
    encoder = VideoEncoder(codec, width, height, 30, 800_000)
    decode = av.codec.CodecContext.create(decoder, "r")
    read = []
    for n in range(60):
        stamp = Stamp(time_ms=1_763_700_000_000 + n * 33, frame=n)
        i420 = cv2.cvtColor(pattern.render(stamp), cv2.COLOR_BGR2YUV_I420)
        for packet in encoder.encode(i420, n * 3000, keyframe=n == 0):
            for frame in decode.decode(packet):
                read.append(read_stamp(frame.to_ndarray(format="gray")))
    expected = [Stamp(1_763_700_000_000 + n * 33, n) for n in range(60)]
    assert read == expected


def test_a_black_code_area_is_no_stamp():
    assert read_stamp(np.zeros((480, 640), np.uint8)) is None


@pytest.mark.parametrize("size, layer_width", [((1280, 720), 854), ((1280, 720), 640), ((1920, 1080), 1280),
                                               ((640, 480), 480), ((1280, 720), 320)])
def test_the_code_survives_scaling_to_a_layer(size, layer_width):
    """Every quality layer of a test-pattern camera carries a readable code (widths of any ratio)."""
    width, height = size
    frame = TestPattern(width, height).render(Stamp(1_700_000_000_123, 4242))
    layer = cv2.resize(frame, (layer_width, round(layer_width * height / width / 2) * 2),
                       interpolation=cv2.INTER_AREA)
    assert read_stamp(cv2.cvtColor(layer, cv2.COLOR_BGR2GRAY)) == Stamp(1_700_000_000_123, 4242)


# The shared cases: the same pictures are read by web/js/testpattern.js (tests/test_web_testpattern.py).

CASES_PATH = Path(__file__).resolve().parent / "testpattern_cases.json"
CASES = json.loads(CASES_PATH.read_text())["cases"]


def case_picture(case: dict) -> np.ndarray:
    """A case's picture, grey (H x W, uint8): what both readers read."""
    width, height = case["size"]
    if case.get("black"):
        grey = np.zeros((height, width), np.uint8)
    else:
        frame = TestPattern(width, height).render(Stamp(*case["stamp"]))
        grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    b = block_size(width)
    for bit in case.get("flip_bits", []):
        row, col = divmod(bit, BITS_PER_ROW)
        y0, y1, x0, x1 = (int(k * b + 0.5) for k in (row + 1, row + 2, col + 1, col + 2))
        grey[y0:y1, x0:x1] = 255 - grey[y0:y1, x0:x1]
    if "scale_to" in case:
        grey = cv2.resize(grey, tuple(case["scale_to"]), interpolation=cv2.INTER_AREA)
    return grey


def expected_stamp(case: dict) -> Stamp | None:
    return Stamp(*case["expect"]) if case["expect"] is not None else None


@pytest.mark.parametrize("case", CASES, ids=[case["name"] for case in CASES])
def test_shared_cases_on_the_python_reader(case):
    assert read_stamp(case_picture(case)) == expected_stamp(case)
