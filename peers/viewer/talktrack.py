"""What a Python viewer says when it talks back: a file's sound, an ALSA device's, or the
test tone (``tone``).

The sound is resampled to 48 kHz mono and handed out in 20 ms frames, a file's paced on
the wall clock (a device keeps its own pace), to aiortc's sender on the viewer's audio
transceiver (``replaceTrack``: no renegotiation). At a file's end ``ended`` is set and
silence follows until the sender lets go of the track: a ``recv`` that never returned would
hold aiortc's sender. The test tone (peers/testtone.py) is made as it is due, as the
camera's ``--audio tone`` is: its time codes are the real capture times, so a reader of the
camera's talk back measures mouth-to-speaker latency.
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
from peercam.peers.testtone import tone

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
    """A file's (or an ALSA device's, or the test tone's) sound as an aiortc audio track:
    20 ms, 48 kHz, mono. Raises UsageError for a file or device that cannot be read."""

    kind = "audio"

    def __init__(self, spec: str) -> None:
        super().__init__()
        #: Set when a file's sound has all been handed out (never for a device or the tone).
        self.ended = asyncio.Event()
        self._start: float | None = None
        self._sent = 0
        # A device is read on a thread: closing waits for a read under way to end.
        self._reading = threading.Lock()
        self._closed = False
        self.tone = spec == "tone"
        self.device = not self.tone and is_alsa_device(spec)
        self._container = None
        # The tone's next chunk and its first, in samples since the Unix epoch (none yet).
        self._next_sample = 0
        self._first_sample: int | None = None
        if self.tone:
            return
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

    async def _next_tone_chunk(self) -> int:
        """Wait until the tone's next 20 ms is due (its last sample); returns its first sample
        (samples since the Unix epoch). Chunks start on whole 20 ms of Unix time; one that
        fell behind (a stalled loop) skips to the sound of now, as the camera's tone does."""
        now = time.time()
        first = self._next_sample or int(now * SAMPLE_RATE) // CHUNK * CHUNK + CHUNK
        if now - first / SAMPLE_RATE > 0.2:
            first = int(now * SAMPLE_RATE) // CHUNK * CHUNK
        delay = (first + CHUNK) / SAMPLE_RATE - now
        if delay > 0:
            await asyncio.sleep(delay)
        self._next_sample = first + CHUNK
        return first

    async def recv(self) -> av.AudioFrame:
        if self._start is None:
            self._start = time.time()
        if self.tone:
            first = await self._next_tone_chunk()
            if self._first_sample is None:
                self._first_sample = first
            samples, pts = tone(first, CHUNK), first - self._first_sample  # a skip shows as a gap
        else:
            samples, pts = await self._next_chunk(), self._sent * CHUNK
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = SAMPLE_RATE
        frame.pts = pts
        frame.time_base = fractions.Fraction(1, SAMPLE_RATE)
        self._sent += 1
        return frame

    async def _next_chunk(self) -> np.ndarray:
        """A file's or a device's next 20 ms (silence after a file's end)."""
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
            return np.zeros(CHUNK, np.int16)
        return self._take()

    def stop(self) -> None:
        super().stop()
        with self._reading:
            if not self._closed:
                self._closed = True
                if self._container is not None:
                    self._container.close()
