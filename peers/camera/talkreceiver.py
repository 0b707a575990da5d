"""Talk back's sound on the camera: the floor holder's voice, to the camera's sinks.

Every viewer's incoming audio track is read (drained: aiortc would queue what nobody
reads), and only the floor holder's decoded frames come here; on the relay, the holder's
talk frames (Opus relay frames, version 3, which the server takes from the holder only)
are decoded here. The sinks:

    --talk-record DIR   one Ogg/Opus file per turn, DIR/YYYYmmdd-HHMMSS-SPEAKER.opus
    --speaker DEVICE    ALSA playback through PyAV, on a thread of its own
    Camera.talk()       (speaker_name, TalkFrame), an async iterator

Each is bounded: a turn lasts at most --talk-max (so a file's size is bounded by the
bitrate), the speaker's and each reader's queue drop their oldest frames.
"""

from __future__ import annotations

import asyncio
import collections
import fractions
import logging
import os
import queue
import re
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import av
import numpy as np

from peercam.shared.relayframe import RelayFrameError, parse_relay_frame

from .audiosources import alsa_messages, use_system_alsa_config
from .sources import SourceError

__all__ = ["TalkFrame", "TalkReceiver"]

log = logging.getLogger(__name__)

SAMPLE_RATE = 48000
#: Frames (20 ms each) a slow reader or speaker may fall behind before the oldest are dropped.
QUEUE_LIMIT = 50
#: A gap in the speaker's timestamps up to this long (seconds) is written as silence; longer
#: ones (a stalled sender) are left out.
MAX_GAP = 2.0
_RECORD_BITRATE = 32000


@dataclass(frozen=True)
class TalkFrame:
    """Talk back's sound, as ``Camera.talk()`` hands it over with the speaker's name: 20 ms
    of what the viewer holding the floor says, decoded. ``samples`` is numpy int16
    ``(n, 1)``, mono, at ``sample_rate`` Hz (48000); ``arrived`` is when the camera decoded
    it (Unix seconds, this machine's clock)."""

    samples: np.ndarray
    sample_rate: int
    arrived: float

    @property
    def duration(self) -> float:
        """Seconds of sound."""
        return len(self.samples) / self.sample_rate


def _mono(decoded: av.AudioFrame) -> np.ndarray:
    """A decoded frame's sound as int16 ``(n, 1)`` at 48 kHz: the first channel (aiortc's
    Opus decoder gives a mono speaker's sound twice, as stereo)."""
    if decoded.format.name not in ("s16", "s16p") or decoded.sample_rate != SAMPLE_RATE:
        resampler = av.AudioResampler(format="s16", layout=decoded.layout.name, rate=SAMPLE_RATE)
        frames = resampler.resample(decoded)
        if not frames:
            return np.zeros((0, 1), np.int16)
        decoded = frames[0]
    array = decoded.to_ndarray()
    channels = len(decoded.layout.channels)
    first = array[0] if decoded.format.is_planar else array.reshape(-1, channels)[:, 0]
    return np.ascontiguousarray(first, dtype=np.int16).reshape(-1, 1)


def _safe_name(name: str) -> str:
    """A speaker's display name as a file name's part: letters, digits, - and _ only."""
    return re.sub(r"[^A-Za-z0-9_-]+", "_", name).strip("_")[:40] or "viewer"


class _TurnFile:
    """One turn's Ogg/Opus file, written as the sound comes (its pts: samples since the turn began)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._container = av.open(path, "w", format="ogg")
        self._stream = self._container.add_stream("libopus", rate=SAMPLE_RATE)
        self._stream.layout = "mono"
        self._stream.bit_rate = _RECORD_BITRATE
        self._stream.time_base = fractions.Fraction(1, SAMPLE_RATE)
        self._samples = 0
        self._first_pts: int | None = None

    def write(self, samples: np.ndarray, pts: int | None) -> None:
        if pts is not None:
            if self._first_pts is None:
                self._first_pts = pts
            gap = pts - self._first_pts - self._samples
            if 0 < gap <= MAX_GAP * SAMPLE_RATE:  # a lost or late stretch: silence keeps the times true
                self._encode(np.zeros((gap, 1), np.int16))
        self._encode(samples)

    def _encode(self, samples: np.ndarray) -> None:
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = SAMPLE_RATE
        frame.pts = self._samples
        frame.time_base = fractions.Fraction(1, SAMPLE_RATE)
        self._samples += len(samples)
        for packet in self._stream.encode(frame):
            self._container.mux(packet)

    def close(self) -> None:
        try:
            for packet in self._stream.encode(None):
                self._container.mux(packet)
        finally:
            self._container.close()


class _Speaker:
    """ALSA playback on a thread of its own (the device takes the sound at its own pace)."""

    def __init__(self, device: str) -> None:
        use_system_alsa_config()
        try:
            with alsa_messages() as said:
                self._container = av.open(device, "w", format="alsa")
                self._stream = self._container.add_stream("pcm_s16le", rate=SAMPLE_RATE)
                self._stream.layout = "mono"
                self._container.start_encoding()  # opens the device now: a bad one fails here
        except (av.FFmpegError, OSError, ValueError) as exc:
            if getattr(self, "_container", None) is not None:
                self._container.close()
            # ALSA's own last words name the cause, FFmpeg's only the errno.
            why = said[-1].split(") ", 1)[-1] if said else str(exc)
            raise SourceError(f"cannot open speaker {device!r}: {why} "
                              "(see the devices with: aplay -L)") from None
        self._device = device
        self._queue: queue.Queue[np.ndarray | None] = queue.Queue(QUEUE_LIMIT)
        self.frames_dropped = 0
        #: Frames handed to the device.
        self.frames_played = 0
        self._thread = threading.Thread(target=self._run, name="speaker", daemon=True)
        self._thread.start()

    def play(self, samples: np.ndarray) -> None:
        while True:
            try:
                self._queue.put_nowait(samples)
                return
            except queue.Full:
                try:
                    self._queue.get_nowait()  # the oldest gives way
                    self.frames_dropped += 1
                except queue.Empty:
                    pass

    def _run(self) -> None:
        pts = 0
        try:
            while (samples := self._queue.get()) is not None:
                frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
                frame.sample_rate = SAMPLE_RATE
                frame.pts = pts
                pts += len(samples)
                for packet in self._stream.encode(frame):
                    self._container.mux(packet)
                self.frames_played += 1
        except (av.FFmpegError, OSError) as exc:
            log.warning("speaker %s stopped: %s", self._device, exc)
        finally:
            self._container.close()

    def close(self) -> None:
        self.play(None)  # type: ignore[arg-type]  # the end marker
        self._thread.join(timeout=2)


class TalkReceiver:
    """The floor holder's sound to ``--talk-record`` (``record_dir``), ``--speaker``
    (``speaker``) and ``frames()`` readers. ``floor_changed`` follows the floor
    (TalkFloor.on_change); ``hear`` takes every viewer's decoded frames and keeps the
    holder's. Raises SourceError for a speaker that cannot be opened."""

    def __init__(self, record_dir: str | None = None, speaker: str | None = None) -> None:
        if record_dir is not None:
            os.makedirs(record_dir, exist_ok=True)
        self._record_dir = record_dir
        self._speaker = _Speaker(speaker) if speaker else None
        self.holder: str | None = None
        self.holder_name = ""
        self._turn: _TurnFile | None = None
        self._relay_decoder: av.CodecContext | None = None  # the turn's talk frames' Opus
        self._readers: list[collections.deque] = []
        self._wakeups: list[asyncio.Event] = []
        #: The files written, one a turn, in order.
        self.recordings: list[str] = []
        self.frames_heard = 0

    @property
    def frames_played(self) -> int:
        """Frames handed to the ``speaker`` device so far (0 without one)."""
        return self._speaker.frames_played if self._speaker is not None else 0

    def floor_changed(self, holder: str | None, name: str) -> None:
        """A turn ends (its file closes), and maybe another begins."""
        self._end_turn()
        self._relay_decoder = None
        self.holder, self.holder_name = holder, name
        if holder is not None and self._record_dir is not None:
            stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime())
            path = os.path.join(self._record_dir, f"{stamp}-{_safe_name(name)}.opus")
            suffix = 1
            while os.path.exists(path):  # two turns in one second
                suffix += 1
                path = os.path.join(self._record_dir, f"{stamp}-{_safe_name(name)}-{suffix}.opus")
            try:
                self._turn = _TurnFile(path)
                self.recordings.append(path)
            except (av.FFmpegError, OSError) as exc:
                log.warning("cannot record the turn to %s: %s", path, exc)

    def hear(self, viewer_id: str, decoded: av.AudioFrame) -> None:
        """A viewer's decoded sound (on the event loop); dropped unless it holds the floor."""
        if viewer_id != self.holder:
            return
        samples = _mono(decoded)
        if not len(samples):
            return
        self.frames_heard += 1
        if self._turn is not None:
            try:
                self._turn.write(samples, decoded.pts)
            except (av.FFmpegError, OSError) as exc:
                log.warning("recording the turn to %s failed: %s", self._turn.path, exc)
                self._turn = None
        if self._speaker is not None:
            self._speaker.play(samples)
        if self._readers:
            frame = TalkFrame(samples, SAMPLE_RATE, time.time())
            for reader, wakeup in zip(self._readers, self._wakeups, strict=True):
                reader.append((self.holder_name, frame))  # a full deque drops its oldest
                wakeup.set()

    def relay_frame(self, data: bytes) -> None:
        """A talk frame on the relay, which the server passes on from the floor holder only."""
        if self.holder is None:
            return  # late, after the turn
        try:
            header, payload = parse_relay_frame(data)
        except RelayFrameError as exc:
            log.info("ignoring a talk frame: %s", exc)
            return
        if header.codec != "opus" or header.sample_rate != SAMPLE_RATE or header.channels not in (1, 2):
            log.info("ignoring a talk frame: %s at %d Hz", header.codec, header.sample_rate)
            return
        if self._relay_decoder is None:
            self._relay_decoder = av.CodecContext.create("opus", "r")
            self._relay_decoder.sample_rate = SAMPLE_RATE
            self._relay_decoder.layout = "mono" if header.channels == 1 else "stereo"
        try:
            decoded = self._relay_decoder.decode(av.Packet(bytes(payload)))
        except av.FFmpegError:
            return  # a damaged packet: its sound is missing, as a lost one's would be
        # Its capture time on the speaker's clock places it in the turn (gaps become silence).
        pts = round(header.capture_time_us * SAMPLE_RATE / 1_000_000)
        for frame in decoded:
            frame.pts = pts
            pts += frame.samples
            self.hear(self.holder, frame)

    async def frames(self, keep: int = QUEUE_LIMIT) -> AsyncIterator[tuple[str, TalkFrame]]:
        """Each ``(speaker_name, TalkFrame)`` of the floor holder's sound from now on; a reader
        that falls ``keep`` frames behind loses the oldest."""
        reader: collections.deque = collections.deque(maxlen=keep)
        wakeup = asyncio.Event()
        self._readers.append(reader)
        self._wakeups.append(wakeup)
        try:
            while True:
                while reader:
                    yield reader.popleft()
                wakeup.clear()
                await wakeup.wait()
        finally:
            index = next(i for i, other in enumerate(self._readers) if other is reader)
            del self._readers[index], self._wakeups[index]

    def _end_turn(self) -> None:
        turn, self._turn = self._turn, None
        if turn is not None:
            try:
                turn.close()
            except (av.FFmpegError, OSError) as exc:
                log.warning("closing %s failed: %s", turn.path, exc)
            else:
                log.info("recorded the turn to %s", turn.path)

    def close(self) -> None:
        self._end_turn()
        if self._speaker is not None:
            self._speaker.close()
