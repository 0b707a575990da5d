"""The built-in test pattern: moving texture that carries its own timing.

The pattern's beep mark, a square in the top-right corner, lights on the frames captured
while the test tone (peers/testtone.py) beeps: eye and ear can judge the sync.

Every frame embeds its capture time (Unix ms) and frame number as a grid of
black/white blocks, large enough to survive VP8/H.264 at 640x480, so any viewer
(Python or browser, see web/js/testpattern.js) can read them back and measure
glass-to-glass latency and dropped frames exactly on one machine's clock.

The code: 96 bits, six 16-bit words, most significant bit first:
time[47:32], time[31:16], time[15:0], frame[31:16], frame[15:0], and a check word:
the CRC-16/CCITT-FALSE of the other five, big-endian. (An XOR of the words let pictures
that are no stamp through: a bright stripe across the code, GStreamer's ball, draws equal
words, which an XOR passes. The CRC is not zero for zeros either, so a black band fails.)
They are drawn as 3 rows of 32 blocks, each block ``block_size(width)`` pixels square,
starting one block in from the top-left corner, on a black band. A block is 1 when its centre is bright.

The block size is a fraction of the width (width / 40, not rounded), and block k spans
pixels round(k * b) to round((k + 1) * b): a picture scaled to any other width keeps its
code readable at that width, so every quality layer of a test-pattern camera carries it.
"""

from __future__ import annotations

import binascii
import math
from dataclasses import dataclass

import numpy as np

from .testtone import beeping

BITS_PER_ROW = 32
ROWS = 3
_WORDS = 6


def block_size(width: int) -> float:
    """Side of one code block in pixels (16 at 640 wide; a fraction where width / 40 is one)."""
    return max(4.0, width / 40)


def _edge(k: int, b: float) -> int:
    """Where block k starts (and block k - 1 ends)."""
    return int(k * b + 0.5)


def code_region(width: int) -> tuple[int, int]:
    """(width, height) of the top-left band holding the code, border included."""
    b = block_size(width)
    return _edge(BITS_PER_ROW + 2, b), _edge(ROWS + 2, b)


@dataclass(frozen=True)
class Stamp:
    """What a frame of the test pattern says about itself."""

    time_ms: int
    frame: int


def _check(words: list[int]) -> int:
    """CRC-16/CCITT-FALSE of the five data words, big-endian."""
    return binascii.crc_hqx(b"".join(w.to_bytes(2, "big") for w in words), 0xFFFF)


def _words(stamp: Stamp) -> list[int]:
    t, f = stamp.time_ms, stamp.frame
    words = [(t >> 32) & 0xFFFF, (t >> 16) & 0xFFFF, t & 0xFFFF, (f >> 16) & 0xFFFF, f & 0xFFFF]
    return words + [_check(words)]


def draw_stamp(image: np.ndarray, stamp: Stamp) -> None:
    """Draw the code into a BGR or grey image, in place."""
    height, width = image.shape[:2]
    b = block_size(width)
    region_w, region_h = code_region(width)
    if region_w > width or region_h > height:
        raise ValueError(f"{width}x{height} is too small for the test pattern's code")
    image[:region_h, :region_w] = 0
    bits = "".join(f"{w:016b}" for w in _words(stamp))
    for i, bit in enumerate(bits):
        if bit == "1":
            row, col = divmod(i, BITS_PER_ROW)
            image[_edge(row + 1, b) : _edge(row + 2, b), _edge(col + 1, b) : _edge(col + 2, b)] = 255


def read_stamp(luma: np.ndarray) -> Stamp | None:
    """Read the code from a frame's luma plane (H x W, uint8); None if unreadable."""
    height, width = luma.shape[:2]
    b = block_size(width)
    region_w, region_h = code_region(width)
    if region_w > width or region_h > height:
        return None
    # Mean of each block's central half: edges blur under compression and scaling.
    starts = [k * b + b / 4 for k in range(1, BITS_PER_ROW + 1)]
    size = max(1, int(b / 2))
    ys = np.array([int(k * b + b / 4 + 0.5) for k in range(1, ROWS + 1)])[:, None] + np.arange(size)
    xs = np.array([int(x + 0.5) for x in starts])[:, None] + np.arange(size)
    cells = luma[ys.reshape(-1)][:, xs.reshape(-1)].astype(np.uint16)
    blocks = cells.reshape(ROWS, size, BITS_PER_ROW, size).mean(axis=(1, 3))
    bits = (blocks > 128).astype(np.uint8).ravel()
    words = [int("".join(map(str, bits[i * 16 : (i + 1) * 16])), 2) for i in range(_WORDS)]
    if _check(words[:5]) != words[5]:
        return None
    return Stamp(
        time_ms=(words[0] << 32) | (words[1] << 16) | words[2],
        frame=(words[3] << 16) | words[4],
    )


class TestPattern:
    """Renders frames of the test pattern: a sliding texture, a moving ball, the code."""

    __test__ = False  # not a pytest class

    # OpenCV is imported where the pattern is drawn: viewers read stamps without loading it.

    def __init__(self, width: int, height: int) -> None:
        import cv2

        self.width, self.height = width, height
        rng = np.random.default_rng(1234)
        # Smooth colour noise plus gradients: detailed enough that codecs do real work, as
        # compressible as camera content (each layer meets its bitrate), and the same
        # picture at every size (the noise's cells scale with the height).
        cell = max(24, height // 15)
        noise = rng.integers(0, 256, size=(height // cell + 1, 2 * width // cell + 1, 3), dtype=np.uint8)
        texture = cv2.resize(noise, (2 * width, height), interpolation=cv2.INTER_CUBIC)
        xs = np.linspace(0, 6 * math.pi, 2 * width, dtype=np.float32)
        ys = np.linspace(0, 4 * math.pi, height, dtype=np.float32)
        waves = (np.sin(xs)[None, :] * np.cos(ys)[:, None] * 60).astype(np.int16)
        self._texture = np.clip(texture.astype(np.int16) + waves[..., None], 0, 255).astype(np.uint8)
        self._radius = max(8, height // 12)

    def render(self, stamp: Stamp) -> np.ndarray:
        """A BGR frame for this stamp; motion follows the frame number."""
        import cv2

        n = stamp.frame
        offset = (n * 4) % self.width
        frame = self._texture[:, offset : offset + self.width].copy()
        t = n / 30.0
        cx = int(self.width / 2 + math.cos(t) * self.width / 3)
        cy = int(self.height / 2 + math.sin(1.3 * t) * self.height / 4)
        cv2.circle(frame, (cx, cy), self._radius, (40, 200, 250), -1, lineType=cv2.LINE_AA)
        label = f"peercam #{n}"
        scale = self.height / 480
        y = self.height - int(16 * scale)
        cv2.putText(frame, label, (int(12 * scale), y), cv2.FONT_HERSHEY_SIMPLEX, scale,
                    (0, 0, 0), max(1, int(4 * scale)), cv2.LINE_AA)
        cv2.putText(frame, label, (int(12 * scale), y), cv2.FONT_HERSHEY_SIMPLEX, scale,
                    (255, 255, 255), max(1, int(2 * scale)), cv2.LINE_AA)
        side = max(8, self.height // 10)
        lit = beeping(stamp.time_ms / 1000)
        cv2.rectangle(frame, (self.width - 2 * side, side), (self.width - side, 2 * side),
                      (255, 255, 255) if lit else (40, 40, 40), -1)
        draw_stamp(frame, stamp)
        return frame
