"""What a Python viewer says when it talks back: a file's sound, or an ALSA device's.

The sound is resampled to 48 kHz mono and handed out in 20 ms frames, a file's paced on
the wall clock (a device keeps its own pace), to aiortc's sender on the viewer's audio
transceiver (``replaceTrack``: no renegotiation). At a file's end ``ended`` is set and
silence follows until the sender lets go of the track: a ``recv`` that never returned would
hold aiortc's sender.
"""

from __future__ import annotations

import asyncio
import fractions
import os
import threading
import time
from pathlib import Path

import av
import numpy as np
from aiortc.mediastreams import MediaStreamTrack

from peercam.shared.errors import UsageError

__all__ = ["TalkTrack", "is_alsa_device"]

SAMPLE_RATE = 48000
#: Samples per frame: 20 ms, one Opus packet.
CHUNK = 960
#: The system's ALSA configuration, for PyAV's own alsa-lib (as the camera's audio sources do).
_ALSA_CONFIG = {"ALSA_CONFIG_DIR": "/usr/share/alsa", "ALSA_CONFIG_PATH": "/usr/share/alsa/alsa.conf"}


def is_alsa_device(spec: str) -> bool:
    """Whether ``--talk SPEC`` names an ALSA capture device rather than a file."""
    return spec in ("default", "null") or spec.split(":", 1)[0] in (
        "hw", "plughw", "sysdefault", "dsnoop", "pulse")


class TalkTrack(MediaStreamTrack):
    """A file's (or an ALSA device's) sound as an aiortc audio track: 20 ms, 48 kHz, mono.
    Raises UsageError for a file or device that cannot be read."""

    kind = "audio"

    def __init__(self, spec: str) -> None:
        super().__init__()
        self.device = is_alsa_device(spec)
        try:
            if self.device:
                if Path(_ALSA_CONFIG["ALSA_CONFIG_PATH"]).is_file():
                    for name, value in _ALSA_CONFIG.items():
                        os.environ.setdefault(name, value)
                self._container = av.open(spec, format="alsa", options={"sample_rate": str(SAMPLE_RATE),
                                                                          "channels": "1"})
            else:
                self._container = av.open(spec)
        except (av.FFmpegError, OSError, ValueError) as exc:
            what = "audio device" if self.device else "audio file"
            raise UsageError(f"--talk: cannot read {what} {spec!r}: {exc}") from None
        if not self._container.streams.audio:
            self._container.close()
            raise UsageError(f"--talk: {spec!r} has no audio track")
        self._stream = self._container.streams.audio[0]
        self._packets = self._container.demux(self._stream)
        self._resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE, frame_size=CHUNK)
        self._pending: list[np.ndarray] = []
        self._buffered = 0
        self._source_done = False
        #: Set when a file's sound has all been handed out (never for a device).
        self.ended = asyncio.Event()
        self._start: float | None = None
        self._sent = 0
        # A device is read on a thread: closing waits for a read under way to end.
        self._reading = threading.Lock()
        self._closed = False

    def _read_more(self) -> None:
        """Decode the next packet (or flush at the end) into the pending samples."""
        with self._reading:
            if self._closed:
                self._source_done = True
                return
            self._decode_next()

    def _decode_next(self) -> None:
        try:
            packet = next(self._packets)
            frames = [] if packet.size == 0 and packet.dts is None else packet.decode()
        except StopIteration:
            packet, frames = None, [None]
        except av.FFmpegError:
            packet, frames = None, [None]  # a damaged or stopped source ends as its end would
        for decoded in frames:
            for out in self._resampler.resample(decoded):
                samples = out.to_ndarray().reshape(-1)
                self._pending.append(samples)
                self._buffered += len(samples)
        if packet is None or (packet.size == 0 and packet.dts is None):
            self._source_done = True

    def _take(self) -> np.ndarray:
        whole = np.concatenate(self._pending) if self._pending else np.zeros(0, np.int16)
        chunk, rest = whole[:CHUNK], whole[CHUNK:]
        self._pending = [rest] if len(rest) else []
        self._buffered = len(rest)
        if len(chunk) < CHUNK:
            chunk = np.concatenate([chunk, np.zeros(CHUNK - len(chunk), np.int16)])
        return chunk

    async def recv(self) -> av.AudioFrame:
        if self._start is None:
            self._start = time.time()
        if self.device:
            while self._buffered < CHUNK and not self._source_done:
                await asyncio.to_thread(self._read_more)
        else:
            while self._buffered < CHUNK and not self._source_done:
                self._read_more()
            # Paced: frame k goes once its last sample is due.
            delay = self._start + (self._sent + 1) * CHUNK / SAMPLE_RATE - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
        if self._source_done and self._buffered == 0:
            self.ended.set()
            samples = np.zeros(CHUNK, np.int16)
        else:
            samples = self._take()
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = SAMPLE_RATE
        frame.pts = self._sent * CHUNK
        frame.time_base = fractions.Fraction(1, SAMPLE_RATE)
        self._sent += 1
        return frame

    def stop(self) -> None:
        super().stop()
        with self._reading:
            if not self._closed:
                self._closed = True
                self._container.close()
