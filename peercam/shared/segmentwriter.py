"""Writes one stream's encoded video (and sound) into segment files, as it is: no decoding,
no encoding.

VP8 goes into WebM, H.264 (Annex B, SPS/PPS with each keyframe) into fragmented MP4; the
camera's Opus packets, when it has sound, go beside them into the same file (WebM: VP8 +
Opus; MP4: H.264 + Opus, which FFmpeg's MP4 muxer takes since 4.3). Both tracks are timed
from their capture times, on the camera's one clock, from the segment's first video frame:
they play in sync. Sound captured before a segment's first keyframe is not in it.
Both are written a second at a time (a WebM cluster, an MP4 fragment) and flushed to
the file as they go, so a segment cut short by a crash plays up to its last second.
Each segment starts on a keyframe and is named after its start, in UTC:
``DIR/STREAM/2026-12-02T17-43-34.webm`` (``...-34-1.webm`` if that name is taken).

The server records its relay's frames with it (signaling/recording/recordings.py); the camera
its own encoder's (``peercam camera --record``). Frames go to a thread of the writer's
own, so muxing and disk writes never hold up the caller (the camera's video and sound
come from two threads: a lock keeps their queueing in order). A frame that cannot be
written (a full disk, a directory that went away) stops the writer with the reason in
``error``; what is already written stays playable.

Nothing the camera sends, or fails to send, makes a file or the queue unbounded: a
segment is cut on time and on size even without a keyframe (the next one waits for a
keyframe, and what it drops meanwhile is counted), segments start at most once a
second, and a camera that sends frames but no keyframe for ``KEYFRAME_PATIENCE``
seconds stops the writer with the reason in ``error``.
"""

from __future__ import annotations

import datetime
import errno
import logging
import os
import queue
import re
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import av

log = logging.getLogger(__name__)

#: The container for each codec: (file extension, FFmpeg muxer, muxer options).
CONTAINERS = {
    # A cluster at least every second, each flushed to the file as it is written.
    "vp8": ("webm", "webm", {"cluster_time_limit": "1000", "flush_packets": "1"}),
    # Fragments of at most a second, each complete in itself: no index at the end to lose.
    "h264": ("mp4", "mp4", {"movflags": "frag_keyframe+empty_moov+default_base_moof",
                            "frag_duration": "1000000", "flush_packets": "1"}),
}
#: Bytes of frames waiting for the writer's thread (four of the largest WebSocket
#: messages); past this the writer drops to the next keyframe.
MAX_QUEUED_BYTES = 32 * 1024 * 1024
#: A segment's size bound unless retention sets a lower one (143 Mbit/s for a minute).
MAX_SEGMENT_BYTES = 1024 * 1024 * 1024
#: Seconds between segment starts of one stream, on the server's clock: keyframes that
#: alternate between sizes (or capture times that leap) cannot make a file per frame.
MIN_SEGMENT_INTERVAL = 1.0
#: Seconds a due segment keeps going while it waits for the keyframe it asked for (the
#: relay asks at most once a second); then it is cut without one.
KEYFRAME_GRACE = 3.0
#: Seconds of frames without a keyframe, while one is needed, before the writer stops:
#: a camera that ignores keyframe requests records nothing, rather than dropping forever.
KEYFRAME_PATIENCE = 10.0
_TIME_BASE = Fraction(1, 1000)
#: Opus is timed in samples at 48 kHz.
AUDIO_SAMPLE_RATE = 48000
_AUDIO_TIME_BASE = Fraction(1, AUDIO_SAMPLE_RATE)
#: Opus packets kept back in case a segment starts after them: a keyframe that takes longer
#: to encode than sound (tens of ms) arrives after the packets captured with it, which go
#: into its segment too (half a second of 20 ms packets).
HELD_AUDIO_PACKETS = 25
SEGMENT_NAME = re.compile(r"(\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d)(?:-(\d+))?\.(webm|mp4)")


def segment_start(file_name: str) -> datetime.datetime | None:
    """When a segment began, from its name (UTC); None for a name that is not a segment's."""
    match = SEGMENT_NAME.fullmatch(file_name)
    if match is None:
        return None
    return datetime.datetime.strptime(match[1], "%Y-%m-%dT%H-%M-%S").replace(tzinfo=datetime.timezone.utc)


def check_writable(directory: Path) -> None:
    """Make ``directory`` if need be and write a file in it, or raise OSError: a start-up
    check, so a recording that could not be written fails at once, not at its first segment."""
    if directory.exists() and not directory.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "Not a directory", str(directory))
    directory.mkdir(parents=True, exist_ok=True)
    tempfile.TemporaryFile(dir=directory).close()


def segment_order(path: Path) -> tuple[str, int]:
    """Sorts segments oldest first (``-34.webm`` before ``-34-1.webm``)."""
    match = SEGMENT_NAME.fullmatch(path.name)
    return (match[1], int(match[2] or 0)) if match else (path.name, 0)


class _Cut:
    """Queued in place of a frame: close the segment now (the next frame starts another)."""


_CUT = _Cut()


@dataclass
class _Frame:
    data: bytes
    keyframe: bool
    capture_time_us: int
    width: int
    height: int
    new_segment: bool


@dataclass
class _Audio:
    data: bytes  # one Opus packet
    capture_time_us: int  # of its first sample


def opus_samples(packet: bytes) -> int:
    """How many 48 kHz samples an Opus packet holds, from its TOC byte (RFC 6716, 3.1)."""
    if not packet:
        return 0
    config, code = packet[0] >> 3, packet[0] & 3
    if config < 12:  # SILK: 10, 20, 40, 60 ms
        frame = (480, 960, 1920, 2880)[config % 4]
    elif config < 16:  # hybrid: 10, 20 ms
        frame = (480, 960)[config % 2]
    else:  # CELT: 2.5, 5, 10, 20 ms
        frame = (120, 240, 480, 960)[config % 4]
    if code == 0:
        return frame
    if code in (1, 2):
        return 2 * frame
    return frame * (packet[1] & 0x3F if len(packet) > 1 else 0)


class SegmentWriter:
    """One stream's segments in ``directory/stream``: a new one every ``segment_seconds``
    (at the first keyframe after, which ``request_keyframe`` asks for), and whenever the
    picture changes size. A segment that reaches half of ``max_segment_bytes`` asks for a
    keyframe too; one that would pass it, or still has none ``KEYFRAME_GRACE`` seconds
    after it was due, is cut without one. One writer records one camera session: a camera
    that comes back gets a new writer (``last_start``: when the previous one last started
    a segment), so a gap in the video is a gap between files.

    With ``audio_channels`` (1 or 2) each segment has an Opus track too, fed by
    ``write_audio``: packets from the segment's first video frame on (by capture time), a
    gap in the video leaving the sound alone.

    ``write``, ``write_audio`` and ``gap`` may come from different threads (a lock orders
    them); ``request_keyframe`` is called from them. ``close`` waits for every queued frame
    to be written.
    """

    def __init__(self, directory: Path, stream: str, codec: str, segment_seconds: float = 60.0,
                 request_keyframe: Callable[[], None] | None = None,
                 on_segment: Callable[[Path], None] | None = None,
                 max_segment_bytes: int = MAX_SEGMENT_BYTES, last_start: float = -MIN_SEGMENT_INTERVAL,
                 clock: Callable[[], float] = time.monotonic, audio_channels: int | None = None) -> None:
        if codec not in CONTAINERS:
            raise ValueError(f"cannot record {codec!r}: use vp8 or h264")
        if audio_channels not in (None, 1, 2):
            raise ValueError(f"cannot record Opus of {audio_channels} channels: use 1 or 2")
        self.audio_channels = audio_channels
        self.directory = Path(directory) / stream
        self.stream = stream
        self.codec = codec
        self.segment_seconds = segment_seconds
        self.max_segment_bytes = max_segment_bytes
        self._request_keyframe = request_keyframe
        #: Called on the writer's thread with each segment it closes.
        self._on_segment = on_segment
        self._clock = clock
        self._lock = threading.Lock()
        self._closed = False
        # The caller's side: the current segment (if one is open) and what it holds.
        self._in_segment = False
        self._segment_began = 0  # capture time (us) of its first frame
        self._segment_opened = 0.0  # the server's clock then
        self._size: tuple[int, int] | None = None
        #: Bytes of frames given to the current segment (the file adds its container's).
        self.segment_bytes = 0
        #: The server's clock when this writer (or the one before) last started a segment.
        self.last_start = last_start
        self._wait_for_keyframe = True
        #: The server's clock when frames began to be dropped for want of a keyframe.
        self.waiting_since: float | None = None
        self._waiting_dropped = 0  # frames dropped in the current wait
        self._queued_bytes = 0  # given to the queue (the caller's count)
        self._taken_bytes = 0  # taken off it (the thread's count)
        self._recent_audio: deque[_Audio] = deque(maxlen=HELD_AUDIO_PACKETS)
        # Shared figures (written by one side, read by anyone).
        self.bytes_written = 0
        self.segments = 0  # segments opened
        self.frames_written = 0
        #: Never written: the queue was full, they followed a gap or a cut, a segment could
        #: not start yet, or a frame was larger than a segment may be. Each is followed by
        #: waiting for a keyframe.
        self.frames_dropped = 0
        #: Opus packets written (packets captured before a segment's first keyframe are not
        #: meant to be, and are not counted as dropped).
        self.audio_packets_written = 0
        self._audio_refused = 0  # the queue was full (the caller's count)
        self._audio_late = 0  # out of order, or before any segment (the thread's count)
        self.error: str | None = None
        self._broken = False  # the thread's disk failed: it writes nothing more
        self.current: Path | None = None
        self._segment_frames = 0  # written into the current segment
        self._segment_audio = 0
        self._queue: queue.Queue[_Frame | _Audio | _Cut | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name=f"record-{stream}", daemon=True)
        self._thread.start()

    @property
    def audio_packets_dropped(self) -> int:
        """Opus packets never written: the queue was full, or they came out of order."""
        return self._audio_refused + self._audio_late

    # The caller's side ------------------------------------------------------------

    def write(self, data: bytes, keyframe: bool, capture_time_us: int, width: int, height: int) -> None:
        """Queue one encoded frame; frames must come in decoding order."""
        with self._lock:
            self._write(data, keyframe, capture_time_us, width, height)

    def write_audio(self, data: bytes, capture_time_us: int) -> None:
        """Queue one Opus packet (``capture_time_us``: its first sample's) for the segment open
        now, if it began at or before that time; packets come in capture order."""
        with self._lock:
            if self.error is not None or self._closed or self.audio_channels is None:
                return
            packet = _Audio(data, capture_time_us)
            self._recent_audio.append(packet)
            if self._in_segment and capture_time_us >= self._segment_began:
                self._queue_audio(packet)

    def _queue_audio(self, packet: _Audio) -> None:
        if self._queued_bytes - self._taken_bytes + len(packet.data) > MAX_QUEUED_BYTES:
            self._audio_refused += 1  # the disk cannot keep up
            return
        self.segment_bytes += len(packet.data)
        self._queued_bytes += len(packet.data)
        self._queue.put(packet)

    def _write(self, data: bytes, keyframe: bool, capture_time_us: int, width: int, height: int) -> None:
        if self.error is not None or self._closed:
            return
        now, size = self._clock(), (width, height)
        if self._in_segment and self._must_end(len(data), keyframe, capture_time_us, size, now):
            self._end_segment(cut=not keyframe)
        if not keyframe and (self._wait_for_keyframe or not self._in_segment):
            self._drop(now)
            return
        if self._queued_bytes - self._taken_bytes + len(data) > MAX_QUEUED_BYTES:
            self._drop(now)  # the disk cannot keep up: a gap rather than a break
            return
        new_segment = not self._in_segment
        if new_segment:
            if now - self.last_start < MIN_SEGMENT_INTERVAL or len(data) > self.max_segment_bytes:
                self._drop(now)  # too soon for another file, or a frame too large for any
                return
            self._in_segment, self.last_start = True, now
            self._segment_began, self._segment_opened, self._size = capture_time_us, now, size
            self.segment_bytes = 0
        if self.waiting_since is not None:
            log.info("recording %s: keyframe after %d frames dropped waiting for it",
                     self.stream, self._waiting_dropped)
        self._wait_for_keyframe, self.waiting_since, self._waiting_dropped = False, None, 0
        self.segment_bytes += len(data)
        self._queued_bytes += len(data)
        self._queue.put(_Frame(data, keyframe, capture_time_us, width, height, new_segment))
        if new_segment:  # the sound captured with this keyframe, if it came before it
            for packet in [p for p in self._recent_audio if p.capture_time_us >= capture_time_us]:
                self._queue_audio(packet)

    def _must_end(self, length: int, keyframe: bool, capture_time_us: int, size: tuple[int, int],
                  now: float) -> bool:
        """Whether the open segment ends before this frame (asking for a keyframe when one is due)."""
        due = (capture_time_us - self._segment_began >= self.segment_seconds * 1_000_000
               or self.segment_bytes >= self.max_segment_bytes // 2)
        if due:
            self._ask_keyframe()
        if size != self._size or self.segment_bytes + length > self.max_segment_bytes:
            return True  # another size needs a file of its own; a file never passes its bound
        if keyframe:
            return due and now - self.last_start >= MIN_SEGMENT_INTERVAL
        return now - self._segment_opened >= self.segment_seconds + KEYFRAME_GRACE

    def _end_segment(self, cut: bool) -> None:
        """Close the open segment now; the next starts at a keyframe (``cut``: none is in hand)."""
        if cut:
            log.warning("recording %s: segment cut at %d bytes after %.1f s without a keyframe; "
                        "the next waits for one", self.stream, self.segment_bytes,
                        self._clock() - self._segment_opened)
        self._in_segment, self._wait_for_keyframe = False, True
        self._queue.put(_CUT)

    def _drop(self, now: float) -> None:
        """Drop this frame and wait for a keyframe; stop if none came for too long."""
        self.frames_dropped += 1
        self._wait_for_keyframe = True
        if self.waiting_since is None:
            self.waiting_since = now
        self._waiting_dropped += 1
        if now - self.waiting_since > KEYFRAME_PATIENCE:
            self.error = (f"no keyframe in {KEYFRAME_PATIENCE:g} s of frames "
                          f"({self._waiting_dropped} dropped): the camera ignores keyframe requests")
            log.error("recording %s stopped: %s", self.stream, self.error)
            self._in_segment = False
            self._queue.put(_CUT)
            return
        self._ask_keyframe()

    def gap(self) -> None:
        """Frames went missing before the next one: wait for a keyframe (the segment goes on)."""
        with self._lock:
            self._wait_for_keyframe = True
            self._ask_keyframe()

    def close(self) -> None:
        """Write what is queued, close the segment, and stop the thread (blocks until done);
        what comes after is not written."""
        with self._lock:
            self._closed = True
            self._queue.put(None)
        self._thread.join()

    def _ask_keyframe(self) -> None:
        if self._request_keyframe is not None:
            self._request_keyframe()

    # The writer's thread ------------------------------------------------------------

    # PyAV is imported here, where segments are written, not with the module: a server that
    # records nothing never loads it.

    def _run(self) -> None:
        import av

        container: av.container.OutputContainer | None = None
        stream = audio = None
        first_us, last_pts, last_audio_pts = 0, -1, -1
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    self._finish(container)
                    return
                if isinstance(item, _Cut):
                    container = self._finish(container)
                    continue
                self._taken_bytes += len(item.data)
                if self._broken:
                    continue
                if isinstance(item, _Audio):
                    # Samples since the segment's first video frame: the two tracks on one clock.
                    pts = (item.capture_time_us - first_us) * AUDIO_SAMPLE_RATE // 1_000_000
                    if container is None or audio is None or pts <= last_audio_pts:
                        self._audio_late += 1  # (a packet out of order: the muxer refuses it)
                        continue
                    last_audio_pts = pts
                    packet = av.Packet(item.data)
                    packet.pts = packet.dts = pts
                    packet.duration = opus_samples(item.data)
                    packet.time_base = _AUDIO_TIME_BASE
                    packet.stream = audio
                    container.mux(packet)
                    self.audio_packets_written += 1
                    self._segment_audio += 1
                    self.bytes_written += len(item.data)
                    continue
                if item.new_segment or container is None:
                    container = self._finish(container)
                    container, stream, audio = self._open(item)
                    first_us, last_pts, last_audio_pts = item.capture_time_us, -1, -1
                # Milliseconds since the segment began; never twice the same (the muxer refuses).
                pts = max((item.capture_time_us - first_us) // 1000, last_pts + 1)
                last_pts = pts
                packet = av.Packet(item.data)
                packet.pts = packet.dts = pts
                packet.time_base = _TIME_BASE
                packet.stream = stream
                packet.is_keyframe = item.keyframe
                container.mux(packet)
                self.frames_written += 1
                self._segment_frames += 1
                self.bytes_written += len(item.data)
            except (OSError, av.FFmpegError) as exc:
                self._fail(exc)
                container = self._abandon(container)

    def _open(self, first: _Frame) -> tuple[av.container.OutputContainer, av.video.stream.VideoStream,
                                            av.audio.stream.AudioStream | None]:
        import av

        extension, muxer, options = CONTAINERS[self.codec]
        self.directory.mkdir(parents=True, exist_ok=True)
        started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H-%M-%S")
        path = self.directory / f"{started}.{extension}"
        for suffix in range(1, 1000):
            if not path.exists():
                break
            path = self.directory / f"{started}-{suffix}.{extension}"
        container = av.open(str(path), mode="w", format=muxer, options=dict(options))
        self.current, self._segment_frames, self._segment_audio = path, 0, 0
        self.segments += 1
        stream = container.add_stream(self.codec)
        stream.width, stream.height = first.width, first.height
        stream.time_base = _TIME_BASE
        audio = None
        if self.audio_channels is not None:
            # An encoder context that only describes the track (its OpusHead: channels, and
            # the camera's low-delay look-ahead); the packets are the camera's, as they are.
            audio = container.add_stream("libopus", rate=AUDIO_SAMPLE_RATE)
            audio.codec_context.layout = "mono" if self.audio_channels == 1 else "stereo"
            audio.codec_context.format = "s16"
            audio.codec_context.options = {"application": "lowdelay"}
            audio.time_base = _AUDIO_TIME_BASE
        log.info("recording %s", path)
        return container, stream, audio

    def _finish(self, container: av.container.OutputContainer | None) -> None:
        """Close a segment: its trailer (the WebM index, the MP4 fragment index) goes in."""
        import av

        if container is None:
            return None
        path, self.current = self.current, None
        try:
            container.close()
        except (OSError, av.FFmpegError) as exc:
            self._fail(exc)
        if self.audio_channels is None:
            log.info("closed %s: %d frames", path, self._segment_frames)
        else:
            log.info("closed %s: %d frames, %d Opus packets", path, self._segment_frames, self._segment_audio)
        if path is not None and self._on_segment is not None:
            self._on_segment(path)
        return None

    def _abandon(self, container: av.container.OutputContainer | None) -> None:
        """After a failed write: close what can be closed; what was written stays."""
        import av

        self.current = None
        if container is not None:
            try:
                container.close()
            except (OSError, av.FFmpegError):
                pass  # the disk said no once already; the error says why
        return None

    def _fail(self, exc: Exception) -> None:
        self._broken = True
        if self.error is None:
            reason = os.strerror(exc.errno) if getattr(exc, "errno", None) else str(exc)
            self.error = f"{self.directory}: {reason}"
            log.error("recording stopped: %s", self.error)
