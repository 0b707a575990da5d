"""Sound sources for the camera peer: the test tone, a file's audio track, an ALSA device, a program.

A source hands out 20 ms of sound at a time (``CHUNK`` samples at 48 kHz, int16,
``(CHUNK, channels)``) from ``read()``, which blocks until that chunk is due. It runs on the
audio thread, never on the event loop. Every source resamples to 48 kHz, Opus's own rate,
and keeps its channels (mono or stereo; more are mixed down to stereo).
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
from peercam.peers.testtone import tone

from peercam.shared.errors import UsageError

from .sources import SourceError

__all__ = [
    "CHUNK", "SAMPLE_RATE", "AudioSource", "AudioSourceError", "CapturedAudio", "DeviceAudioSource",
    "FileAudioSource", "OpusPacket", "PushAudioSource", "PushOpusSource", "ToneSource", "open_audio_source",
    "alsa_messages", "use_system_alsa_config",
]

log = logging.getLogger(__name__)

SAMPLE_RATE = 48000
#: Samples per chunk: 20 ms, one Opus packet.
CHUNK = 960
_LAYOUTS = {1: "mono", 2: "stereo"}


class AudioSourceError(SourceError):
    """The sound's source (``--audio``) cannot be opened."""


@dataclass
class CapturedAudio:
    samples: np.ndarray  # int16, (CHUNK, channels)
    capture_time: float  # Unix seconds, of the first sample


class AudioSource(ABC):
    """Hands out 20 ms chunks of 48 kHz sound, ``channels`` wide, as they are due."""

    def __init__(self, channels: int, description: str) -> None:
        self.channels = channels
        #: What it is, for the log and the stream's info ("tone", "file.mp4", "ALSA default").
        self.description = description
        self._closed = threading.Event()

    @abstractmethod
    def read(self) -> CapturedAudio:
        """The next chunk; raises SourceError when there is none to come."""

    def close(self) -> None:
        self._closed.set()


class _Clock:
    """Paces chunks on the wall clock: chunk k is due when its last sample is."""

    def __init__(self, closed: threading.Event) -> None:
        self._start = time.time()
        self._closed = closed
        self.chunks = 0

    def wait(self) -> float:
        """Sleep until the next chunk is due; returns its first sample's time. A source that
        fell behind (a stalled thread) skips ahead rather than send old sound late."""
        first = self._start + self.chunks * CHUNK / SAMPLE_RATE
        now = time.time()
        if now - first > 0.2:
            skipped = int((now - first) * SAMPLE_RATE / CHUNK) - 1
            self.chunks += skipped
            first = self._start + self.chunks * CHUNK / SAMPLE_RATE
        delay = first + CHUNK / SAMPLE_RATE - now
        if delay > 0 and self._closed.wait(delay):
            raise SourceError("source closed")
        self.chunks += 1
        return first


class ToneSource(AudioSource):
    """The test tone (peers/testtone.py), mono: beeps that carry their capture time."""

    def __init__(self) -> None:
        super().__init__(1, "tone")
        # Chunks start on whole 20 ms of Unix time: a chunk's first sample is a sample number.
        now = time.time()
        self._next = int(now * SAMPLE_RATE) // CHUNK * CHUNK + CHUNK
        #: How often it fell behind (its thread starved) and skipped ahead to the sound of now.
        self.skips = 0

    def read(self) -> CapturedAudio:
        first = self._next
        now = time.time()
        if now - first / SAMPLE_RATE > 0.2:  # fell behind: skip to the sound of now
            first = int(now * SAMPLE_RATE) // CHUNK * CHUNK
            self.skips += 1
        delay = (first + CHUNK) / SAMPLE_RATE - now
        if delay > 0 and self._closed.wait(delay):
            raise SourceError("source closed")
        self._next = first + CHUNK
        return CapturedAudio(tone(first, CHUNK).reshape(-1, 1), first / SAMPLE_RATE)


class _Chunker:
    """Resamples decoded frames to 48 kHz int16 of the source's channels, and cuts 20 ms chunks."""

    def __init__(self, channels: int) -> None:
        self.channels = channels
        self._resampler = av.AudioResampler(format="s16", layout=_LAYOUTS[channels], rate=SAMPLE_RATE)
        self._pending: deque[np.ndarray] = deque()
        self._count = 0

    def add(self, frame: av.AudioFrame | None) -> None:
        for out in self._resampler.resample(frame):
            # Packed s16: one row, channels interleaved.
            self._pending.append(out.to_ndarray().reshape(-1, self.channels))
            self._count += out.samples

    def take(self) -> np.ndarray | None:
        if self._count < CHUNK:
            return None
        whole = np.concatenate(list(self._pending))
        chunk, rest = whole[:CHUNK], whole[CHUNK:]
        self._pending.clear()
        if len(rest):
            self._pending.append(rest)
        self._count = len(rest)
        return chunk

    @property
    def buffered(self) -> int:
        return self._count


def _stream_channels(stream: av.audio.stream.AudioStream) -> int:
    channels = stream.codec_context.channels or 1
    return 2 if channels >= 2 else 1


class FileAudioSource(AudioSource):
    """An audio track of a file (a video file's own, or an audio file), looped forever and
    paced on the wall clock, like the video it plays with."""

    def __init__(self, path: str) -> None:
        try:
            self._container = av.open(path)
        except (av.FFmpegError, OSError) as exc:
            raise SourceError(f"cannot read audio file {path!r}: {exc}") from None
        if not self._container.streams.audio:
            self._container.close()
            raise SourceError(f"{path!r} has no audio track")
        self._stream = self._container.streams.audio[0]
        super().__init__(_stream_channels(self._stream), os.path.basename(path))
        self._path = path
        self._chunker = _Chunker(self.channels)
        self._frames = self._decode()
        self._clock = _Clock(self._closed)

    def _decode(self):
        return self._container.decode(self._stream)

    def _fill(self) -> np.ndarray:
        looped = False
        while (chunk := self._chunker.take()) is None:
            try:
                self._chunker.add(next(self._frames))
            except StopIteration:
                if looped:
                    raise SourceError(f"{self._path!r}: its audio track cannot be read again") from None
                looped = True
                self._container.seek(0)
                self._frames = self._decode()
            except av.FFmpegError as exc:
                raise SourceError(f"{self._path!r}: {exc}") from None
        return chunk

    def read(self) -> CapturedAudio:
        samples = self._fill()
        first = self._clock.wait()
        return CapturedAudio(samples, first)

    def close(self) -> None:
        super().close()
        self._container.close()


#: The system's ALSA configuration. PyAV's wheels bring an alsa-lib of their own, built to
#: look for it under their build's prefix, where it is not: without these it knows no
#: device by name.
_ALSA_CONFIG = {"ALSA_CONFIG_DIR": "/usr/share/alsa", "ALSA_CONFIG_PATH": "/usr/share/alsa/alsa.conf"}


def use_system_alsa_config() -> None:
    """Point PyAV's alsa-lib at the system's configuration (see _ALSA_CONFIG), unless set."""
    if Path(_ALSA_CONFIG["ALSA_CONFIG_PATH"]).is_file():
        for name, value in _ALSA_CONFIG.items():
            os.environ.setdefault(name, value)


@contextlib.contextmanager
def alsa_messages() -> Iterator[list[str]]:
    """What alsa-lib writes to the process's stderr meanwhile (from C, past Python's sys.stderr),
    taken into the list yielded: a device that fails is one line of ours, not ALSA's lines."""
    said: list[str] = []
    with tempfile.TemporaryFile() as captured:
        saved = os.dup(2)
        os.dup2(captured.fileno(), 2)
        try:
            yield said
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            said += [line.decode(errors="replace").strip() for line in captured if line.strip()]


class DeviceAudioSource(AudioSource):
    """An ALSA capture device (``default``, ``hw:1,0``, ...) through PyAV, at its own pace."""

    def __init__(self, device: str) -> None:
        use_system_alsa_config()
        try:
            with alsa_messages() as said:
                self._container = av.open(device, format="alsa",
                                          options={"sample_rate": str(SAMPLE_RATE), "channels": "1"})
        except (av.FFmpegError, OSError, ValueError) as exc:
            # ALSA's own last words name the cause ("Cannot get card index for 9"), FFmpeg's only the errno.
            why = said[-1].split(") ", 1)[-1] if said else str(exc)
            raise SourceError(f"cannot open audio device {device!r}: {why} "
                              "(see the devices with: arecord -L)") from None
        stream = self._container.streams.audio[0]
        super().__init__(_stream_channels(stream), f"ALSA {device}")
        self._device = device
        self._chunker = _Chunker(self.channels)
        self._packets = self._container.demux(stream)

    def read(self) -> CapturedAudio:
        while (chunk := self._chunker.take()) is None:
            if self._closed.is_set():
                raise SourceError("source closed")
            try:
                packet = next(self._packets)
            except (StopIteration, av.FFmpegError) as exc:
                raise SourceError(f"audio device {self._device!r} stopped delivering sound: "
                                  f"{exc!r}") from None
            for frame in packet.decode():
                self._chunker.add(frame)
        # The chunk's last sample was captured about now; what is still buffered came after it.
        first = time.time() - (CHUNK + self._chunker.buffered) / SAMPLE_RATE
        return CapturedAudio(chunk, first)

    def close(self) -> None:
        super().close()
        self._container.close()


class PushAudioSource(AudioSource):
    """Sound a program hands over with ``push()`` (``Camera.send_audio``), from any thread.

    Resampled to 48 kHz; what the camera has not taken within a second is dropped, oldest
    first (a program that pushes faster than real time cannot grow memory).
    """

    MAX_BUFFERED = SAMPLE_RATE  # samples: one second

    def __init__(self, channels: int, description: str = "pushed") -> None:
        if channels not in _LAYOUTS:
            raise UsageError(f"{channels} audio channels: use 1 or 2")
        super().__init__(channels, description)
        self._chunker = _Chunker(channels)
        self._ready = threading.Condition()
        self._first_time: float | None = None  # capture time of the first buffered sample
        self.samples_dropped = 0

    def push(self, samples: np.ndarray, sample_rate: int) -> None:
        array = np.asarray(samples)
        if array.ndim == 1:
            array = array.reshape(-1, 1)
        if array.dtype != np.int16 or array.ndim != 2 or array.shape[1] not in _LAYOUTS:
            raise UsageError("sound is a numpy int16 array, (samples,) or (samples, channels) "
                             "with 1 or 2 channels")
        if not 8000 <= sample_rate <= 192000:
            raise UsageError(f"sample rate {sample_rate}: use 8000 to 192000 Hz")
        if self._closed.is_set():
            raise SourceError("the camera is closed")
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(array).reshape(1, -1), format="s16",
                                           layout=_LAYOUTS[array.shape[1]])
        frame.sample_rate = sample_rate
        self.push_frame(frame)

    def push_frame(self, frame: av.AudioFrame) -> None:
        """Hand over decoded sound of any format, rate and layout (an RTSP camera's)."""
        if self._closed.is_set():
            raise SourceError("the camera is closed")
        with self._ready:
            if self._first_time is None or self._chunker.buffered == 0:
                self._first_time = time.time()
            self._chunker.add(frame)
            while self._chunker.buffered > self.MAX_BUFFERED:
                self._chunker.take()
                self.samples_dropped += CHUNK
                self._first_time += CHUNK / SAMPLE_RATE
            self._ready.notify()

    def read(self) -> CapturedAudio:
        with self._ready:
            while (chunk := self._chunker.take()) is None:
                if self._closed.is_set():
                    raise SourceError("source closed")
                self._ready.wait(0.5)
            first = self._first_time or time.time()
            self._first_time = first + CHUNK / SAMPLE_RATE
        return CapturedAudio(chunk, first)

    def close(self) -> None:
        super().close()
        with self._ready:
            self._ready.notify_all()


@dataclass(frozen=True)
class OpusPacket:
    payload: bytes  # one Opus packet, as it came
    capture_time: float  # Unix seconds, of its first sample (when it arrived)


class PushOpusSource(AudioSource):
    """Opus packets a receiver hands over (a WHIP publisher's sound), from any thread; the
    camera passes them through as they are (``read_packet``), and decodes them only for its
    low-rate rendition (``read``).

    Bounded: packets the camera has not taken within a second are dropped, oldest first.
    """

    MAX_PACKETS = 50  # one second of 20 ms packets

    def __init__(self, channels: int, description: str) -> None:
        if channels not in _LAYOUTS:
            raise UsageError(f"{channels} audio channels: use 1 or 2")
        super().__init__(channels, description)
        self._packets: deque[OpusPacket] = deque(maxlen=self.MAX_PACKETS)
        self._ready = threading.Condition()
        self._decoder: av.CodecContext | None = None
        self._chunker = _Chunker(channels)
        self._decoded_time = 0.0  # capture time of the first sample the chunker holds

    def push(self, payload: bytes, capture_time: float) -> None:
        """Queue a packet; never blocks. ``capture_time`` must advance as the sound does (the
        first packet's arrival plus its RTP timestamp's advance since, not each one's arrival):
        it becomes the RTP timestamp viewers play by."""
        with self._ready:
            self._packets.append(OpusPacket(payload, capture_time))
            self._ready.notify()

    def read_packet(self) -> OpusPacket:
        """The next packet as it came; raises SourceError once closed."""
        with self._ready:
            while not self._packets:
                if self._closed.is_set():
                    raise SourceError("source closed")
                self._ready.wait(0.5)
            return self._packets.popleft()

    def decode(self, packet: OpusPacket) -> list[CapturedAudio]:
        """The 20 ms chunks this packet completes, decoded (for a rendition of its own)."""
        if self._decoder is None:
            self._decoder = av.CodecContext.create("opus", "r")
            self._decoder.sample_rate = SAMPLE_RATE
            self._decoder.layout = _LAYOUTS[self.channels]
        if self._chunker.buffered == 0:
            self._decoded_time = packet.capture_time
        try:
            for frame in self._decoder.decode(av.Packet(packet.payload)):
                self._chunker.add(frame)
        except av.FFmpegError:
            return []  # a damaged packet: its sound is missing, as a lost one's would be
        chunks = []
        while (chunk := self._chunker.take()) is not None:
            chunks.append(CapturedAudio(chunk, self._decoded_time))
            self._decoded_time += CHUNK / SAMPLE_RATE
        return chunks

    def read(self) -> CapturedAudio:
        raise SourceError("an Opus source passes its packets through: read them with read_packet()")

    def close(self) -> None:
        super().close()
        with self._ready:
            self._ready.notify_all()


def _is_device(spec: str) -> bool:
    return spec == "default" or spec.split(":", 1)[0] in ("hw", "plughw", "sysdefault", "dsnoop", "pulse")


def open_audio_source(spec: str, video: str | None = None) -> AudioSource | None:
    """The sound for ``--audio SPEC`` next to the video source ``video``.

    ``none``; ``tone``; ``push:1`` or ``push:2`` (a program's ``send_audio``); an ALSA
    device (``default``, ``hw:1,0``, ...); or an audio (or video) file. ``auto``: the tone
    with the test pattern, a video file's own track (none, with a warning, when it has
    none), and none for cameras and pushed pictures.
    """
    if spec == "auto":
        if video == "testsrc":
            return ToneSource()
        if video is None or video.isdigit() or video.startswith("/dev/") or not os.path.isfile(video):
            return None
        try:
            return FileAudioSource(video)
        except SourceError as exc:
            log.warning("no sound: %s", exc)
            return None
    if spec == "none":
        return None
    if spec == "tone":
        return ToneSource()
    if spec.startswith("push"):
        channels = spec.partition(":")[2] or "1"
        if channels not in ("1", "2"):
            raise UsageError(f"--audio {spec}: use push:1 or push:2")
        return PushAudioSource(int(channels))
    if _is_device(spec):
        return DeviceAudioSource(spec)
    if not os.path.isfile(spec):
        raise SourceError(f"no such audio file or device: {spec!r} (give none, tone, an ALSA device "
                          "such as default or hw:1,0, or a file)")
    return FileAudioSource(spec)
