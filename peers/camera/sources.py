"""Video sources for the camera peer: the test pattern, a camera, a video file.

A source hands out BGR frames at its own pace from ``read()``, which blocks until
the next frame is due. It runs on the capture thread, never on the event loop.
Cameras and files keep their own shape: ``fit_size`` decides the size they publish.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass

import cv2
import numpy as np
from peercam.peers.testpattern import Stamp, TestPattern

from peercam.shared.errors import PeercamError, UsageError

log = logging.getLogger(__name__)

#: Cameras and files larger than this are scaled down to fit inside it, unless a bound is given.
DEFAULT_LIMIT = (1280, 720)
#: The test pattern's size when neither width nor height is given.
PATTERN_SIZE = (640, 480)


def even(x: float) -> int:
    """``x`` rounded to the nearest even integer (halves up), at least 2.

    Encoders take I420 pictures, whose chroma planes are half the size: both sides even.
    """
    return max(2, 2 * math.floor(x / 2 + 0.5))


def fit_size(src_w: int, src_h: int, width: int | None = None, height: int | None = None,
             stretch: bool = False, limit: tuple[int, int] | None = DEFAULT_LIMIT) -> tuple[int, int]:
    """The size a ``src_w`` x ``src_h`` source is published at.

    ``width`` and/or ``height`` bound the picture: it is scaled down to fit inside them,
    keeping its aspect ratio (a side not given is unbounded). With neither, ``limit`` is
    the bound (None: no bound). A picture that already fits is never scaled up.
    ``stretch`` forces exactly ``width`` x ``height`` (both needed), whatever the shape.
    Both sides come out even: the aspect ratio is kept to within the one pixel that
    rounding to even costs. Bounds are expected to be even.
    """
    if stretch:
        if width is None or height is None:
            raise ValueError("stretch needs both a width and a height")
        return even(width), even(height)
    if width is None and height is None and limit is not None:
        width, height = limit
    scale = min(1.0, width / src_w if width is not None else 1.0,
                height / src_h if height is not None else 1.0)
    return even(src_w * scale), even(src_h * scale)


def _sane_fps(fps: float) -> bool:
    """OpenCV reports 0, or nonsense such as 1000, when it does not know the rate."""
    return 1 <= fps <= 240


class SourceError(PeercamError):
    """The source cannot be opened or stopped producing frames."""


@dataclass
class CapturedFrame:
    image: np.ndarray  # BGR, the size the camera peer publishes
    capture_time: float  # Unix seconds
    number: int


class VideoSource(ABC):
    """Hands out frames of one size (``width`` x ``height``) at ``fps``."""

    def __init__(self, width: int, height: int, fps: float) -> None:
        self.width, self.height, self.fps = width, height, fps
        self._closed = threading.Event()

    @abstractmethod
    def read(self) -> CapturedFrame:
        """The next frame; raises SourceError when there is none to come."""

    def close(self) -> None:
        self._closed.set()

    def _fit(self, image: np.ndarray) -> np.ndarray:
        if image.shape[1] != self.width or image.shape[0] != self.height:
            image = cv2.resize(image, (self.width, self.height), interpolation=cv2.INTER_AREA)
        return image


class _Pacer:
    """Releases frames on a fixed clock, skipping ticks that were missed."""

    def __init__(self, fps: float, closed: threading.Event) -> None:
        self.interval = 1.0 / fps
        self._start = time.monotonic()
        self._closed = closed
        self.tick = -1

    def wait(self) -> int:
        """Sleep until the next tick; returns its number."""
        now = time.monotonic()
        # The latest tick already due, or the next one: ticks missed are skipped.
        self.tick = max(self.tick + 1, int((now - self._start) / self.interval))
        delay = self._start + self.tick * self.interval - now
        if delay > 0 and self._closed.wait(delay):
            raise SourceError("source closed")
        return self.tick


class TestPatternSource(VideoSource):
    """DESIGN.md's test pattern, stamped with capture time and frame number."""

    __test__ = False

    def __init__(self, width: int, height: int, fps: float) -> None:
        super().__init__(width, height, fps)
        self._pattern = TestPattern(width, height)
        self._pacer = _Pacer(fps, self._closed)

    def read(self) -> CapturedFrame:
        number = self._pacer.wait()
        now = time.time()
        image = self._pattern.render(Stamp(time_ms=int(now * 1000), frame=number))
        return CapturedFrame(image, now, number)


class PushSource(VideoSource):
    """Frames a program hands over with ``push()``, from any thread; the newest wins.

    ``push()`` never blocks: a frame the camera has not taken yet is replaced by the
    next one. Pictures of another size are scaled to the source's (on the capture
    thread, not the caller's).
    """

    def __init__(self, width: int, height: int, fps: float) -> None:
        super().__init__(width, height, fps)
        self._latest: tuple[np.ndarray, float] | None = None
        self._ready = threading.Condition()
        self._number = 0

    def push(self, image: np.ndarray) -> None:
        """Hand over a BGR picture (uint8, height x width x 3; a grey one is taken too)."""
        if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim not in (2, 3) or (
                image.ndim == 3 and image.shape[2] != 3):
            raise UsageError("a frame is a numpy uint8 array, height x width x 3 (BGR) or height x width")
        if self._closed.is_set():
            raise SourceError("the camera is closed")
        with self._ready:
            self._latest = (image, time.time())
            self._ready.notify()

    def read(self) -> CapturedFrame:
        with self._ready:
            while self._latest is None:
                if self._closed.is_set():
                    raise SourceError("source closed")
                self._ready.wait(0.5)
            (image, pushed), self._latest = self._latest, None
        if image.ndim == 2:
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        self._number += 1
        return CapturedFrame(self._fit(image), pushed, self._number)

    def close(self) -> None:
        super().close()
        with self._ready:
            self._ready.notify_all()


class CaptureDeviceSource(VideoSource):
    """An OpenCV camera (index or device path), in the mode it really delivers.

    The device is asked for ``width``/``height``/``fps``; it may pick another mode, and
    the stream then uses what it delivers (scaled to fit the bound, see ``fit_size``).
    """

    def __init__(self, device: int | str, width: int | None = None, height: int | None = None,
                 fps: float = 30.0, stretch: bool = False) -> None:
        # A camera that is not there is our one-line error below, not OpenCV's warnings.
        level = cv2.utils.logging.getLogLevel()
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
        try:
            self._capture = cv2.VideoCapture(device)
        finally:
            cv2.utils.logging.setLogLevel(level)
        if not self._capture.isOpened():
            raise SourceError(f"cannot open camera {device!r}: no such device, or it is busy "
                              "(see the cameras with: ls /dev/video*)")
        # No size asked for: the device's own default mode.
        if width is not None:
            self._capture.set(cv2.CAP_PROP_FRAME_WIDTH, width)
        if height is not None:
            self._capture.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
        self._capture.set(cv2.CAP_PROP_FPS, fps)
        # Drivers switch to the nearest mode they have, and not all report it: trust a frame.
        ok, first = self._capture.read()
        if not ok:
            self._capture.release()
            raise SourceError(f"camera {device!r} delivers no frames")
        delivered_h, delivered_w = first.shape[:2]
        delivered_fps = self._capture.get(cv2.CAP_PROP_FPS)
        actual_fps = delivered_fps if _sane_fps(delivered_fps) else fps
        if (width not in (None, delivered_w) or height not in (None, delivered_h)
                or abs(actual_fps - fps) >= 0.5):
            log.warning("camera %r delivers %dx%d@%g, not the %sx%s@%g asked for", device, delivered_w,
                        delivered_h, actual_fps, width or "any", height or "any", fps)
        super().__init__(*fit_size(delivered_w, delivered_h, width, height, stretch), actual_fps)
        self._device = device
        self._number = 0

    def read(self) -> CapturedFrame:
        if self._closed.is_set():
            raise SourceError("source closed")
        ok, image = self._capture.read()
        if not ok:
            raise SourceError(f"camera {self._device!r} stopped delivering frames")
        self._number += 1
        return CapturedFrame(self._fit(image), time.time(), self._number)

    def close(self) -> None:
        super().close()
        self._capture.release()


class FileSource(VideoSource):
    """A video file, looped forever and paced at its own frame rate.

    Published at its first frame's size, scaled to fit the bound (see ``fit_size``).
    OpenCV scales later frames of a file whose size changes mid-stream (concatenated
    clips) to the first frame's size, so such a file keeps playing at one size.
    """

    def __init__(self, path: str, width: int | None = None, height: int | None = None,
                 stretch: bool = False) -> None:
        self._capture = cv2.VideoCapture(path)
        if not self._capture.isOpened():
            raise SourceError(f"cannot read video file {path!r}")
        ok, first = self._capture.read()
        if not ok:
            raise SourceError(f"video file {path!r} has no readable frames")
        self._capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
        fps = self._capture.get(cv2.CAP_PROP_FPS)
        super().__init__(*fit_size(first.shape[1], first.shape[0], width, height, stretch),
                         fps if _sane_fps(fps) else 30.0)
        self._path = path
        self._pacer = _Pacer(self.fps, self._closed)

    def read(self) -> CapturedFrame:
        number = self._pacer.wait()
        ok, image = self._capture.read()
        if not ok:  # end of file: loop
            self._capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, image = self._capture.read()
            if not ok:
                raise SourceError(f"video file {self._path!r} cannot be read again")
        return CapturedFrame(self._fit(image), time.time(), number)

    def close(self) -> None:
        super().close()
        self._capture.release()


def _pattern_size(width: int | None, height: int | None) -> tuple[int, int]:
    """The test pattern is drawn at the size asked for: 640x480, or 4:3 around the one side given."""
    if width is None and height is None:
        return PATTERN_SIZE
    if width is None:
        return even(height * 4 / 3), height
    if height is None:
        return width, even(width * 3 / 4)
    return width, height


def open_source(spec: str, width: int | None = None, height: int | None = None, fps: float = 30.0,
                stretch: bool = False) -> VideoSource:
    """``testsrc``, a camera index (``0``), a device path (``/dev/video0``), or a file.

    ``width``/``height`` bound a camera's or a file's picture, which keeps its aspect
    ratio; ``stretch`` forces exactly that box (see ``fit_size``). The test pattern is
    drawn at the size given: 640x480 by default, 4:3 around one side given.
    """
    for side in (width, height):
        if side is not None and (side < 2 or side % 2):
            raise SourceError(f"{side}: width and height must be even, and 2 or more")
    if stretch and (width is None or height is None):
        raise SourceError("stretch needs both a width and a height")
    if spec == "testsrc":
        return TestPatternSource(*_pattern_size(width, height), fps)
    if spec.isdigit():
        return CaptureDeviceSource(int(spec), width, height, fps, stretch)
    if spec.startswith("/dev/"):
        if not os.path.exists(spec):
            raise SourceError(f"no camera at {spec} (see the cameras with: ls /dev/video*)")
        return CaptureDeviceSource(spec, width, height, fps, stretch)
    if not os.path.isfile(spec):
        raise SourceError(f"no such video file or camera: {spec!r} (give testsrc, a camera index such "
                          "as 0, a device such as /dev/video0, or a video file)")
    return FileSource(spec, width, height, stretch)
