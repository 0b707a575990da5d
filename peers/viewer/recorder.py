"""Writes what a viewer receives to an MP4 or MKV file (H.264, and Opus for the sound), off the event loop.

The pictures are encoded again (they arrive decoded, over P2P and the relay alike), and so
is the sound. Each is placed at the time it was decoded here, from the first picture on:
the file plays sound and picture as far apart as this viewer got them.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import tempfile
from fractions import Fraction

import av

from .audioframe import AudioFrame

log = logging.getLogger(__name__)

_CONTAINERS = {".mp4": "mp4", ".mkv": "matroska", ".m4v": "mp4"}
#: Sound that comes this much (seconds) later than where the last packet ended starts
#: afresh at its own time (lost packets, a new transport); less is jitter, and the sound
#: goes on seamlessly.
AUDIO_GAP = 0.1


class Recorder:
    """``write`` pictures and ``write_audio`` sound as they come; ``close`` finishes the file.

    The file's streams are set up with the first picture: the sound's if ``audio_channels``
    says by then that sound will come (sound before the first picture is not recorded).
    """

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
        self._audio_stream = None
        self._audio_fifo: av.AudioFifo | None = None
        self._audio_end: int | None = None  # where the sound written so far ends (samples)
        self._audio_pts = 0  # the timestamp of the fifo's next frame out
        self._start: float | None = None
        self._last_pts = -1
        #: The channel count of the sound to record, once known (before the first picture).
        self.audio_channels: int | None = None
        # One worker keeps frames in order and the event loop free.
        self._worker = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="recorder")

    def write(self, frame: av.VideoFrame, arrived: float) -> None:
        """Queue a decoded frame; ``arrived`` (seconds) sets its timestamp."""
        channels = self.audio_channels
        self._worker.submit(self._encode, frame, arrived, channels).add_done_callback(self._check)

    def write_audio(self, frame: AudioFrame) -> None:
        """Queue decoded sound; its ``arrived`` sets its timestamp."""
        self._worker.submit(self._encode_audio, frame).add_done_callback(self._check)

    @staticmethod
    def _check(done: concurrent.futures.Future) -> None:
        """A frame that could not be written is said in the log, not lost in silence."""
        if done.exception() is not None:
            log.warning("recording: a frame could not be written: %s", done.exception())

    def _open(self, frame: av.VideoFrame, arrived: float, channels: int | None) -> None:
        self._stream = self._container.add_stream("libx264", rate=30)
        self._stream.width, self._stream.height = frame.width, frame.height
        self._stream.pix_fmt = "yuv420p"
        # Millisecond timestamps for the encoder too: at 1/30 s, frames that arrive closer
        # together than a frame interval (a busy machine) would share a timestamp, and the
        # muxer would refuse them.
        self._stream.time_base = Fraction(1, 1000)
        self._stream.codec_context.time_base = Fraction(1, 1000)
        self._stream.codec_context.options = {"preset": "ultrafast", "tune": "zerolatency"}
        if channels is not None:
            # Every stream before the first packet: the container writes its header then.
            self._audio_stream = self._container.add_stream("libopus", rate=48000)
            self._audio_stream.layout = "mono" if channels == 1 else "stereo"
            self._audio_stream.format = "s16"
            self._audio_stream.time_base = Fraction(1, 48000)
        self._start = arrived

    def _encode(self, frame: av.VideoFrame, arrived: float, channels: int | None) -> None:
        if self._stream is None:
            self._open(frame, arrived, channels)
        if (frame.width, frame.height) != (self._stream.width, self._stream.height):
            frame = frame.reformat(width=self._stream.width, height=self._stream.height)
        pts = max(self._last_pts + 1, int((arrived - self._start) * 1000))
        self._last_pts = pts
        out = av.VideoFrame.from_ndarray(frame.to_ndarray(format="yuv420p"), format="yuv420p")
        out.pts, out.time_base = pts, Fraction(1, 1000)
        for packet in self._stream.encode(out):
            self._container.mux(packet)

    def _encode_audio(self, frame: AudioFrame) -> None:
        stream = self._audio_stream
        if stream is None or frame.sample_rate != stream.rate:
            return  # no sound in this file (or not yet: it begins with the first picture)
        channels = stream.layout.nb_channels
        samples = frame.samples[:, :channels]
        if samples.shape[1] < channels:  # mono sound in a stereo file
            samples = samples.repeat(channels, axis=1)
        at = round((frame.arrived - self._start) * frame.sample_rate)
        if at < 0:
            return
        if self._audio_end is None or at > self._audio_end + AUDIO_GAP * frame.sample_rate:
            self._drain_audio()  # what waited ends where it ends; the sound starts anew here
            self._audio_end = self._audio_pts = at
        audio = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout=stream.layout.name)
        audio.sample_rate = frame.sample_rate  # no pts: the fifo would want them from 0
        self._audio_end += len(samples)
        if self._audio_fifo is None:
            self._audio_fifo = av.AudioFifo()
        self._audio_fifo.write(audio)
        # The encoder takes frames of its own size (20 ms): the fifo cuts them.
        while (chunk := self._audio_fifo.read(self._frame_size())) is not None:
            self._mux_audio(chunk)

    def _drain_audio(self, last: bool = False) -> None:
        """The samples still waiting in the fifo, made up to a whole frame with silence
        (libopus takes a shorter frame only at the very end)."""
        fifo, self._audio_fifo = self._audio_fifo, None
        if fifo is None or not fifo.samples:
            return
        size = self._frame_size()
        if not last and fifo.samples < size:
            stream = self._audio_stream
            silence = av.AudioFrame(format="s16", layout=stream.layout.name, samples=size - fifo.samples)
            for plane in silence.planes:
                plane.update(bytes(plane.buffer_size))
            silence.sample_rate = stream.rate
            fifo.write(silence)
        self._mux_audio(fifo.read())

    def _frame_size(self) -> int:
        """The encoder's frame: 20 ms (it says only once open)."""
        assert self._audio_stream is not None
        return self._audio_stream.codec_context.frame_size or self._audio_stream.rate // 50

    def _mux_audio(self, chunk: av.AudioFrame) -> None:
        assert self._audio_stream is not None
        chunk.pts, chunk.time_base = self._audio_pts, Fraction(1, self._audio_stream.rate)
        self._audio_pts += chunk.samples
        for packet in self._audio_stream.encode(chunk):
            self._container.mux(packet)

    def _finish(self) -> None:
        if self._stream is not None:
            for packet in self._stream.encode(None):
                self._container.mux(packet)
        if self._audio_stream is not None:
            self._drain_audio(last=True)
            for packet in self._audio_stream.encode(None):
                self._container.mux(packet)
        self._container.close()

    async def close(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self._worker, self._finish)
        self._worker.shutdown()
