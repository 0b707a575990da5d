"""Writes one stream's encoded video into segment files, as it is: no decoding, no encoding.

VP8 goes into WebM, H.264 (Annex B, SPS/PPS with each keyframe) into fragmented MP4.
Both are written a second at a time (a WebM cluster, an MP4 fragment) and flushed to
the file as they go, so a segment cut short by a crash plays up to its last second.
Each segment starts on a keyframe and is named after its start, in UTC:
``DIR/STREAM/2026-12-02T17-43-34.webm`` (``...-34-1.webm`` if that name is taken).

The server records its relay's frames with it (signaling/recording.py); the camera
its own encoder's (``peercam camera --record``). Frames go to a thread of the writer's
own, so muxing and disk writes never hold up the caller. A frame that cannot be
written (a full disk, a directory that went away) stops the writer with the reason in
``error``; what is already written stays playable.
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
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

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
#: Frames waiting for the writer's thread; past this the writer drops to the next keyframe.
MAX_QUEUED_FRAMES = 300
_TIME_BASE = Fraction(1, 1000)
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


@dataclass
class _Frame:
    data: bytes
    keyframe: bool
    capture_time_us: int
    width: int
    height: int
    new_segment: bool


class SegmentWriter:
    """One stream's segments in ``directory/stream``: a new one every ``segment_seconds``
    (at the first keyframe after, which ``request_keyframe`` asks for), and whenever the
    picture changes size. One writer records one camera session: a camera that comes
    back gets a new writer, so a gap in the video is a gap between files.

    ``write``, ``gap`` and ``request_keyframe`` belong to one thread (the caller's);
    ``close`` waits for every queued frame to be written.
    """

    def __init__(self, directory: Path, stream: str, codec: str, segment_seconds: float = 60.0,
                 request_keyframe: Callable[[], None] | None = None,
                 on_segment: Callable[[Path], None] | None = None) -> None:
        if codec not in CONTAINERS:
            raise ValueError(f"cannot record {codec!r}: use vp8 or h264")
        self.directory = Path(directory) / stream
        self.codec = codec
        self.segment_seconds = segment_seconds
        self._request_keyframe = request_keyframe
        #: Called on the writer's thread with each segment it closes.
        self._on_segment = on_segment
        # The caller's side: where the current segment began and what it holds.
        self._segment_began: int | None = None  # capture time (us) of its first frame
        self._size: tuple[int, int] | None = None
        self._wait_for_keyframe = True
        # Shared figures (written by the thread, read by anyone).
        self.bytes_written = 0
        self.segments = 0  # segments opened
        self.frames_written = 0
        self.frames_dropped = 0  # never written: the queue was full, or they followed a gap
        self.error: str | None = None
        self.current: Path | None = None
        self._segment_frames = 0  # written into the current segment
        self._queue: queue.Queue[_Frame | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name=f"record-{stream}", daemon=True)
        self._thread.start()

    # The caller's side ------------------------------------------------------------

    def write(self, data: bytes, keyframe: bool, capture_time_us: int, width: int, height: int) -> None:
        """Queue one encoded frame; frames must come in decoding order."""
        if self.error is not None:
            return
        if self._wait_for_keyframe and not keyframe:
            self.frames_dropped += 1
            return
        if self._queue.qsize() >= MAX_QUEUED_FRAMES:
            # The disk cannot keep up: drop to the next keyframe, a gap rather than a break.
            self.frames_dropped += 1
            self._wait_for_keyframe = True
            self._ask_keyframe()
            return
        due = self._segment_began is not None and (
            capture_time_us - self._segment_began >= self.segment_seconds * 1_000_000)
        new_segment = self._segment_began is None or (keyframe and (due or (width, height) != self._size))
        if due and not keyframe:
            self._ask_keyframe()
        if (width, height) != self._size and not keyframe:
            self.frames_dropped += 1  # another size needs a segment of its own, from a keyframe
            self._ask_keyframe()
            return
        if new_segment:
            self._segment_began, self._size = capture_time_us, (width, height)
        self._wait_for_keyframe = False
        self._queue.put(_Frame(data, keyframe, capture_time_us, width, height, new_segment))

    def gap(self) -> None:
        """Frames went missing before the next one: wait for a keyframe (the segment goes on)."""
        self._wait_for_keyframe = True
        self._ask_keyframe()

    def close(self) -> None:
        """Write what is queued, close the segment, and stop the thread (blocks until done)."""
        self._queue.put(None)
        self._thread.join()

    def _ask_keyframe(self) -> None:
        if self._request_keyframe is not None:
            self._request_keyframe()

    # The writer's thread ------------------------------------------------------------

    def _run(self) -> None:
        container: av.container.OutputContainer | None = None
        stream = None
        first_us, last_pts = 0, -1
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    self._finish(container)
                    return
                if self.error is not None:
                    continue
                if item.new_segment or container is None:
                    container = self._finish(container)
                    container, stream = self._open(item)
                    first_us, last_pts = item.capture_time_us, -1
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

    def _open(self, first: _Frame) -> tuple[av.container.OutputContainer, av.video.stream.VideoStream]:
        extension, muxer, options = CONTAINERS[self.codec]
        self.directory.mkdir(parents=True, exist_ok=True)
        started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H-%M-%S")
        path = self.directory / f"{started}.{extension}"
        for suffix in range(1, 1000):
            if not path.exists():
                break
            path = self.directory / f"{started}-{suffix}.{extension}"
        container = av.open(str(path), mode="w", format=muxer, options=dict(options))
        self.current, self._segment_frames = path, 0
        self.segments += 1
        stream = container.add_stream(self.codec)
        stream.width, stream.height = first.width, first.height
        stream.time_base = _TIME_BASE
        log.info("recording %s", path)
        return container, stream

    def _finish(self, container: av.container.OutputContainer | None) -> None:
        """Close a segment: its trailer (the WebM index, the MP4 fragment index) goes in."""
        if container is None:
            return None
        path, self.current = self.current, None
        try:
            container.close()
        except (OSError, av.FFmpegError) as exc:
            self._fail(exc)
        log.info("closed %s: %d frames", path, self._segment_frames)
        if path is not None and self._on_segment is not None:
            self._on_segment(path)
        return None

    def _abandon(self, container: av.container.OutputContainer | None) -> None:
        """After a failed write: close what can be closed; what was written stays."""
        self.current = None
        if container is not None:
            try:
                container.close()
            except (OSError, av.FFmpegError):
                pass  # the disk said no once already; the error says why
        return None

    def _fail(self, exc: Exception) -> None:
        if self.error is None:
            reason = os.strerror(exc.errno) if getattr(exc, "errno", None) else str(exc)
            self.error = f"{self.directory}: {reason}"
            log.error("recording stopped: %s", self.error)
