"""Writes what a viewer receives to an MP4 or MKV file (H.264), off the event loop."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import tempfile
from fractions import Fraction

import av

log = logging.getLogger(__name__)

_CONTAINERS = {".mp4": "mp4", ".mkv": "matroska", ".m4v": "mp4"}


class Recorder:
    def __init__(self, path: str) -> None:
        ext = os.path.splitext(path)[1].lower()
        if ext not in _CONTAINERS:
            raise ValueError(f"--record {path!r}: use a .mp4 or .mkv file name")
        try:  # the container opens its file only with the first frame: fail now, not then
            tempfile.TemporaryFile(dir=os.path.dirname(path) or ".").close()
        except OSError as exc:
            raise ValueError(f"--record {path!r}: cannot write a file there ({exc.strerror or exc}): "
                             "choose a directory this user can write") from None
        self._container = av.open(path, mode="w", format=_CONTAINERS[ext])
        self._stream = None
        self._start: float | None = None
        self._last_pts = -1
        # One worker keeps frames in order and the event loop free.
        self._worker = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="recorder")

    def write(self, frame: av.VideoFrame, arrived: float) -> None:
        """Queue a decoded frame; ``arrived`` (seconds) sets its timestamp."""
        self._worker.submit(self._encode, frame, arrived).add_done_callback(self._check)

    @staticmethod
    def _check(done: concurrent.futures.Future) -> None:
        """A frame that could not be written is said in the log, not lost in silence."""
        if done.exception() is not None:
            log.warning("recording: a frame could not be written: %s", done.exception())

    def _encode(self, frame: av.VideoFrame, arrived: float) -> None:
        if self._stream is None:
            self._stream = self._container.add_stream("libx264", rate=30)
            self._stream.width, self._stream.height = frame.width, frame.height
            self._stream.pix_fmt = "yuv420p"
            # Millisecond timestamps for the encoder too: at 1/30 s, frames that arrive closer
            # together than a frame interval (a busy machine) would share a timestamp, and the
            # muxer would refuse them.
            self._stream.time_base = Fraction(1, 1000)
            self._stream.codec_context.time_base = Fraction(1, 1000)
            self._stream.codec_context.options = {"preset": "ultrafast", "tune": "zerolatency"}
            self._start = arrived
        if (frame.width, frame.height) != (self._stream.width, self._stream.height):
            frame = frame.reformat(width=self._stream.width, height=self._stream.height)
        pts = max(self._last_pts + 1, int((arrived - self._start) * 1000))
        self._last_pts = pts
        out = av.VideoFrame.from_ndarray(frame.to_ndarray(format="yuv420p"), format="yuv420p")
        out.pts, out.time_base = pts, Fraction(1, 1000)
        for packet in self._stream.encode(out):
            self._container.mux(packet)

    def _finish(self) -> None:
        if self._stream is not None:
            for packet in self._stream.encode(None):
                self._container.mux(packet)
        self._container.close()

    async def close(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self._worker, self._finish)
        self._worker.shutdown()
