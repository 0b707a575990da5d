"""Recording on the server: each recorded stream's encoded video and sound, kept in segment files.

A recorder is one more reader of a stream's relay (signaling/relay/hub.py): it reads one
layer's encoded frames (the top one, or ``--record-layer``), the very bytes the P2P
viewers get, and the camera's Opus packets when it has sound, and a SegmentWriter muxes
them as they are, the two tracks timed from their capture times. The camera encodes nothing
more for it; its uplink carries that layer once more, unless a relay viewer reads it
already. A recorder lives as long as its camera: a camera that leaves ends the segment,
and the next camera on the name starts a new one.

Which streams record: ``--record NAME|'*'`` at start, changed at run time with
``PUT /api/streams/{name}/recording`` (signaling/edge/recordingapi.py). Retention
(peercam/shared/retention.py) runs after each segment and every minute, on an index of the
segments read from the directory once.

What a camera sends cannot take more than its share: its segments are bounded in time
and size and start at most once a second (peercam/shared/segmentwriter.py), retention takes
from the stream that uses the most, and the figures kept per stream name (which
``/metrics`` shows) are bounded in number.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path

from peercam.signaling.registry.streams import Stream, StreamRegistry
from peercam.signaling.relay.readers import RelayReader

from peercam.shared.protocol import check_stream_name
from peercam.shared.recordingconfig import RecordingConfig
from peercam.shared.relayframe import parse_relay_frame
from peercam.shared.retention import RetentionIndex, Segment, delete, scan
from peercam.shared.segmentwriter import (
    MIN_SEGMENT_INTERVAL,
    SEGMENT_NAME,
    SegmentWriter,
    segment_order,
    segment_start,
)

log = logging.getLogger(__name__)

_RETENTION_EVERY = 60.0
#: Stream names whose figures (and API switch) are remembered; past this, the least
#: recently touched of those not recording now are forgotten, so that made-up names
#: cannot grow memory or /metrics' label sets.
MAX_REMEMBERED_STREAMS = 1000


class SegmentBusy(Exception):
    """A segment that is being written cannot be deleted."""


@dataclass
class RecordingTotals:
    """One stream's recording figures, across its cameras' sessions."""

    bytes_written: int = 0
    frames_written: int = 0
    frames_dropped: int = 0
    audio_packets_written: int = 0
    audio_packets_dropped: int = 0
    segments: int = 0
    errors: int = 0
    error: str | None = None
    #: The server's clock when its last writer last started a segment (the next waits
    #: MIN_SEGMENT_INTERVAL after it: a camera that reconnects cannot make a file each time).
    last_start: float = -MIN_SEGMENT_INTERVAL


class StreamRecorder:
    """Records one camera session of a stream: a relay reader whose frames (and sound) a
    SegmentWriter muxes."""

    def __init__(self, stream: Stream, config: RecordingConfig, on_segment: Callable[[Path], None],
                 last_start: float) -> None:
        assert stream.info is not None
        self.stream = stream
        layers = stream.info.layer_list()
        self.layer = stream.relay.layer_for(config.layer or layers[0].name)
        audio = stream.info.audio
        self.writer = SegmentWriter(config.directory, stream.name, stream.info.codec, config.segment_seconds,
                                    request_keyframe=lambda: stream.relay.request_keyframe(self.layer),
                                    on_segment=on_segment,
                                    max_segment_bytes=config.retention.max_segment_bytes,
                                    last_start=last_start, audio_channels=audio.channels if audio else None)
        self._next_sequence: int | None = None
        self._written_before = 0
        self.reader = RelayReader(f"recorder:{stream.name}", self._deliver, "encoded", ends_with_camera=True,
                                  audio=audio is not None)
        stream.relay.add(self.reader, quality=self.layer)

    async def _deliver(self, frame: bytes) -> None:
        header, payload = parse_relay_frame(frame)
        if header.format == "audio":
            self.writer.write_audio(bytes(payload), header.capture_time_us)
            return
        if self._next_sequence not in (None, header.sequence) and not header.keyframe:
            self.writer.gap()  # frames missing (the hub drops to a keyframe; this guards it)
        self._next_sequence = (header.sequence + 1) & 0xFFFFFFFF
        self.writer.write(bytes(payload), header.keyframe, header.capture_time_us,
                          header.width, header.height)
        if self.writer.error is not None:
            raise RuntimeError(self.writer.error)  # ends the reader: nothing more to write

    @property
    def frames_dropped(self) -> int:
        return self.reader.frames_skipped + self.writer.frames_dropped

    @property
    def audio_packets_dropped(self) -> int:
        return self.reader.audio_packets_dropped + self.writer.audio_packets_dropped

    async def close(self) -> None:
        """Stop reading; the segment is closed with everything queued in it."""
        self.stream.relay.remove(self.reader)
        await asyncio.to_thread(self.writer.close)


@dataclass
class _Probe:
    key: tuple[int, float]
    duration: float | None


@dataclass
class Recordings:
    """Every stream's recording: who records, the recorders at work, the files, retention."""

    config: RecordingConfig
    registry: StreamRegistry
    _recorders: dict[str, StreamRecorder] = field(default_factory=dict)
    #: Recorders whose camera left, still writing what they queued.
    _closing: set[StreamRecorder] = field(default_factory=set)
    #: Recording switched on or off at run time; it outranks --record.
    _enabled: dict[str, bool] = field(default_factory=dict)
    _totals: dict[str, RecordingTotals] = field(default_factory=dict)
    _probes: dict[Path, _Probe] = field(default_factory=dict)
    _tasks: set[asyncio.Task] = field(default_factory=set)
    _retention_task: asyncio.Task | None = None

    def __post_init__(self) -> None:
        self._index = RetentionIndex(self.config.retention)
        self._index_loaded = False  # until the directory's segments are in it, nothing is decided

    def start(self) -> None:
        """Follow the registry's cameras and start retention (on the running loop)."""
        self.registry.on_camera.append(self._camera_changed)
        self._loop = asyncio.get_running_loop()
        self._retention_task = self._loop.create_task(self._retention_loop(), name="recording-retention")

    async def close(self) -> None:
        if self._retention_task is not None:
            self._retention_task.cancel()
        for name in list(self._recorders):
            self._stop(name)
        if self._tasks:
            await asyncio.wait(self._tasks)

    # Who records ------------------------------------------------------------------

    def enabled(self, name: str) -> bool:
        if name in self._enabled:
            return self._enabled[name]
        return "*" in self.config.streams or name in self.config.streams

    def known(self, name: str) -> bool:
        """A stream the server knows: in the registry (live, reserved or watched), named by
        --record, or recorded before. Only these may be switched."""
        return (self.registry.get(name) is not None or name in self.config.streams or name in self._totals
                or self.stream_directory(name).is_dir())

    def set_enabled(self, name: str, enabled: bool) -> None:
        """Switch a stream's recording on or off, live or not yet; a new start clears an error."""
        check_stream_name(name)
        self._remember(self._enabled, name, enabled)
        totals = self._figures(name)
        if enabled:
            totals.error = None
            stream = self.registry.get(name)
            if stream is not None and stream.live:
                self._start(stream)
        else:
            self._stop(name)

    def _camera_changed(self, stream: Stream, live: bool) -> None:
        self._stop(stream.name)  # a camera that left, or one replaced: its segment ends
        if live and self.enabled(stream.name):
            self._start(stream)

    def _start(self, stream: Stream) -> None:
        if stream.name in self._recorders:
            return
        loop = self._loop

        def segment_closed(path: Path) -> None:  # the writer's thread
            try:
                info = path.stat()
            except FileNotFoundError:
                return
            loop.call_soon_threadsafe(self._segment_closed, Segment(path, info.st_mtime, info.st_size))

        try:
            last_start = self._figures(stream.name).last_start
            recorder = StreamRecorder(stream, self.config, segment_closed, last_start)
        except (OSError, ValueError) as exc:
            self._failed(stream.name, str(exc))
            return
        self._recorders[stream.name] = recorder
        self._spawn(self._watch(recorder))

    async def _watch(self, recorder: StreamRecorder) -> None:
        """A recorder whose writer failed stops, and says why (the stream goes on)."""
        await recorder.reader.wait_closed()
        if recorder.writer.error is not None and self._recorders.get(recorder.stream.name) is recorder:
            self._failed(recorder.stream.name, recorder.writer.error)
            self._stop(recorder.stream.name)

    def _failed(self, name: str, reason: str) -> None:
        totals = self._figures(name)
        totals.errors += 1
        totals.error = reason
        log.error("recording %s stopped: %s", name, reason)

    def _stop(self, name: str) -> None:
        """The stream's recorder (if any) stops now and closes its segment in the background."""
        recorder = self._recorders.pop(name, None)
        if recorder is not None:
            self._figures(name).last_start = recorder.writer.last_start
            self._closing.add(recorder)
            self._spawn(self._close(recorder))

    async def _close(self, recorder: StreamRecorder) -> None:
        try:
            await recorder.close()
        finally:
            self._closing.discard(recorder)
            totals = self._figures(recorder.stream.name)
            totals.bytes_written += recorder.writer.bytes_written
            totals.frames_written += recorder.writer.frames_written
            totals.frames_dropped += recorder.frames_dropped
            totals.audio_packets_written += recorder.writer.audio_packets_written
            totals.audio_packets_dropped += recorder.audio_packets_dropped
            totals.segments += recorder.writer.segments

    def _figures(self, name: str) -> RecordingTotals:
        totals = self._totals.get(name)
        if totals is None:
            totals = RecordingTotals()
            self._remember(self._totals, name, totals)
        return totals

    def _remember(self, table: dict, name: str, value: object) -> None:
        """``table[name] = value``, as its newest entry; past MAX_REMEMBERED_STREAMS, the
        oldest entries of streams not recording now are forgotten."""
        table.pop(name, None)
        table[name] = value
        if len(table) > MAX_REMEMBERED_STREAMS:
            recording = set(self._recorders) | {r.stream.name for r in self._closing}
            for old in [n for n in table if n not in recording][:len(table) - MAX_REMEMBERED_STREAMS]:
                del table[old]

    def _spawn(self, coroutine: Coroutine) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # What is recorded ---------------------------------------------------------------

    def state(self, name: str) -> dict:
        """What ``/api/streams/{name}`` says of a stream's recording."""
        totals = self._totals.get(name, RecordingTotals())
        recorder = self._recorders.get(name)
        current = recorder.writer.current if recorder is not None else None
        working = [r for r in [*self._closing, recorder] if r is not None and r.stream.name == name]
        return {
            "enabled": self.enabled(name),
            "active": recorder is not None and recorder.writer.error is None,
            # Frames arrive but none is written until a keyframe comes (after a cut or a gap).
            "waiting_for_keyframe": recorder is not None and recorder.writer.waiting_since is not None,
            "layer": recorder.layer if recorder is not None else None,
            "file": current.name if current is not None else None,
            "bytes_written": totals.bytes_written + sum(r.writer.bytes_written for r in working),
            "frames_written": totals.frames_written + sum(r.writer.frames_written for r in working),
            # Frames the camera sent that never reached the file: the disk or the relay fell behind.
            "frames_dropped": totals.frames_dropped + sum(r.frames_dropped for r in working),
            # The camera's sound, beside the picture in the same segments (0 without sound).
            "audio_packets_written": (totals.audio_packets_written
                                      + sum(r.writer.audio_packets_written for r in working)),
            "audio_packets_dropped": (totals.audio_packets_dropped
                                      + sum(r.audio_packets_dropped for r in working)),
            "segments": totals.segments + sum(r.writer.segments for r in working),
            "errors": totals.errors,
            "error": totals.error,
        }

    def names(self) -> list[str]:
        """Streams with recording figures: recorded now or earlier in this server's life."""
        return sorted(set(self._totals) | set(self._recorders))

    def stream_directory(self, name: str) -> Path:
        check_stream_name(name)  # never a path of the caller's making
        return self.config.directory / name

    def segment_path(self, name: str, file: str) -> Path:
        """A segment's path; FileNotFoundError for any file name not a segment's (the stream
        name is checked as everywhere: ProtocolError)."""
        if SEGMENT_NAME.fullmatch(file) is None:
            raise FileNotFoundError(file)
        path = self.stream_directory(name) / file
        if not path.is_file():
            raise FileNotFoundError(file)
        return path

    def writing(self, path: Path) -> bool:
        return path in self._current()

    def _current(self) -> set[Path]:
        """The segments being written now."""
        recorders = [*self._recorders.values(), *self._closing]
        return {r.writer.current for r in recorders if r.writer.current is not None}

    async def segments(self, name: str, url_prefix: str) -> list[dict]:
        """A stream's segments, oldest first: start (UTC), duration (s), size, url."""
        directory = self.stream_directory(name)
        # Which segments are being written is read here, on the loop that owns the recorders,
        # once for the whole listing.
        return await asyncio.to_thread(self._list, directory, url_prefix, self._current())

    def _list(self, directory: Path, url_prefix: str, current: set[Path]) -> list[dict]:
        listed = []
        for path in sorted(directory.glob("*"), key=segment_order):
            start = segment_start(path.name)
            if start is None:
                continue
            try:
                info = path.stat()
            except FileNotFoundError:
                continue  # deleted meanwhile
            writing = path in current
            listed.append({
                "file": path.name,
                "start": start.isoformat().replace("+00:00", "Z"),
                "duration": None if writing else self._duration(path, info),
                "size": info.st_size,
                "recording": writing,
                "url": f"{url_prefix}/{path.name}",
            })
        return listed

    def _duration(self, path: Path, info: os.stat_result) -> float | None:
        """Seconds from the first frame to the end of the last (read once per file version)."""
        key = (info.st_size, info.st_mtime)
        probe = self._probes.get(path)
        if probe is None or probe.key != key:
            probe = self._probes[path] = _Probe(key, _probe_duration(path))
        return probe.duration

    async def delete(self, name: str, file: str) -> None:
        """Remove one segment; FileNotFoundError if there is none, SegmentBusy while it is written."""
        path = self.segment_path(name, file)
        if self.writing(path):
            raise SegmentBusy(f"{file} is being recorded: stop the recording first")
        await asyncio.to_thread(path.unlink)
        self._index.remove(path)
        self._probes.pop(path, None)

    # Retention ------------------------------------------------------------------------

    def _retains(self) -> bool:
        retention = self.config.retention
        return retention.max_age is not None or retention.max_bytes is not None

    async def _retention_loop(self) -> None:
        if self._retains():  # the segments already on disk: read once
            found = await asyncio.to_thread(scan, self.config.directory, self._current())
            self._index.load(found)
            self._index_loaded = True
        while True:
            await self._apply_retention()
            await asyncio.sleep(_RETENTION_EVERY)

    def _segment_closed(self, segment: Segment) -> None:
        if self._retains():
            self._index.add(segment)
            self._spawn(self._apply_retention())

    async def _apply_retention(self) -> None:
        """Decided on the loop from the index (one decision at a time), deleted in a thread."""
        if not self._index_loaded:
            return
        writing: dict[str, int] = {}
        for recorder in [*self._recorders.values(), *self._closing]:
            if recorder.writer.current is not None:
                name = recorder.stream.name
                writing[name] = writing.get(name, 0) + recorder.writer.segment_bytes
        doomed = self._index.expired(writing)
        if doomed:
            await asyncio.to_thread(delete, doomed)
        for path in doomed:
            self._probes.pop(path, None)


def _probe_duration(path: Path) -> float | None:
    """The time from a segment's first frame to its last, plus one frame; None if unreadable."""
    import av  # here, not with the module: a server that records nothing never loads PyAV

    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            first = last = None
            frames = 0
            for packet in container.demux(stream):
                if packet.pts is None:
                    continue
                first = packet.pts if first is None else first
                last, frames = packet.pts, frames + 1
            if first is None or last is None or stream.time_base is None:
                return None
            seconds = float((last - first) * stream.time_base)
            return round(seconds + (seconds / (frames - 1) if frames > 1 else 0), 3)
    except (OSError, av.FFmpegError, IndexError):
        return None

