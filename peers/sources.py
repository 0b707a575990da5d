"""Video sources for the camera peer: the test pattern, a camera, a video file.

A source hands out BGR frames at its own pace from ``read()``, which blocks until
the next frame is due. It runs on the capture thread, never on the event loop.
"""

from __future__ import annotations

import os
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass

import cv2
import numpy as np

from .testpattern import Stamp, TestPattern


class SourceError(Exception):
    """The source cannot be opened or stopped producing frames."""


@dataclass
class CapturedFrame:
    image: np.ndarray  # BGR, the size the camera peer publishes
    capture_time: float  # Unix seconds
    number: int


class VideoSource(ABC):
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


class CaptureDeviceSource(VideoSource):
    """An OpenCV camera (index or device path)."""

    def __init__(self, device: int | str, width: int, height: int, fps: float) -> None:
        super().__init__(width, height, fps)
        self._capture = cv2.VideoCapture(device)
        if not self._capture.isOpened():
            raise SourceError(f"cannot open camera {device!r}: no such device, or it is busy")
        self._capture.set(cv2.CAP_PROP_FRAME_WIDTH, width)
        self._capture.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
        self._capture.set(cv2.CAP_PROP_FPS, fps)
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
    """A video file, looped forever and paced at its own frame rate."""

    def __init__(self, path: str, width: int, height: int) -> None:
        self._capture = cv2.VideoCapture(path)
        if not self._capture.isOpened():
            raise SourceError(f"cannot read video file {path!r}")
        ok, first = self._capture.read()
        if not ok:
            raise SourceError(f"video file {path!r} has no readable frames")
        self._capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
        fps = self._capture.get(cv2.CAP_PROP_FPS)
        super().__init__(width, height, fps if 1 <= fps <= 240 else 30.0)
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


def open_source(spec: str, width: int, height: int, fps: float) -> VideoSource:
    """``testsrc``, a camera index (``0``), a device path (``/dev/video0``), or a file."""
    if width % 2 or height % 2:
        raise SourceError(f"{width}x{height}: width and height must be even")
    if spec == "testsrc":
        return TestPatternSource(width, height, fps)
    if spec.isdigit():
        return CaptureDeviceSource(int(spec), width, height, fps)
    if spec.startswith("/dev/"):
        if not os.path.exists(spec):
            raise SourceError(f"no camera at {spec}")
        return CaptureDeviceSource(spec, width, height, fps)
    if not os.path.isfile(spec):
        raise SourceError(f"no such video file or camera: {spec!r}")
    return FileSource(spec, width, height)
