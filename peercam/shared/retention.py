"""How long recordings are kept: ``--record-keep 7d`` (by age), ``--record-keep 10GB``
(by the total size of every stream's segments), or both.

By age, each stream's oldest go first. By size, segments go from the stream that uses
the most (its segment being written counts too), oldest first: one stream's recording,
however large, never takes another's. A segment may be at most a quarter of the size
limit (the writer cuts it there), so the largest stream always has a closed one to give.

A RetentionIndex keeps every closed segment's size, read from the directory once: each
new segment adds one entry and each decision takes what it deletes from it, with no
sweep of the directory.
"""

from __future__ import annotations

import logging
import re
import time
from collections import deque
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from .durations import parse_duration
from .segmentwriter import MAX_SEGMENT_BYTES, segment_order, segment_start

log = logging.getLogger(__name__)

_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([KMGT]?)i?B", re.IGNORECASE)
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
#: A segment is at most this share of ``--record-keep SIZE``.
SEGMENTS_PER_KEEP = 4


@dataclass(frozen=True)
class Retention:
    """Keep segments at most ``max_age`` seconds (after their last write) and, all
    streams together, at most ``max_bytes``; None: no limit of that kind."""

    max_age: float | None = None
    max_bytes: int | None = None

    @classmethod
    def parse(cls, rules: list[str]) -> Retention:
        """``["7d", "10GB"]``: each rule an age (90s, 15m, 1h, 7d) or a size (500MB, 10GB)."""
        age, size = None, None
        for rule in rules:
            match = _SIZE.fullmatch(rule.strip())
            if match is not None:
                size = int(float(match[1]) * _UNITS[match[2].upper()])
                if size <= 0:
                    raise ValueError(f"--record-keep {rule!r}: a size must be above zero")
                continue
            try:
                age = parse_duration(rule)
            except ValueError:
                raise ValueError(f"--record-keep {rule!r}: use an age (7d, 12h) "
                                 "or a size (10GB, 500MB)") from None
        return cls(age, size)

    @property
    def max_segment_bytes(self) -> int:
        """How large one segment may grow: a quarter of the size limit, at most MAX_SEGMENT_BYTES."""
        if self.max_bytes is None:
            return MAX_SEGMENT_BYTES
        return max(1, min(MAX_SEGMENT_BYTES, self.max_bytes // SEGMENTS_PER_KEEP))

    def sweep(self, directory: Path, current: set[Path]) -> list[Path]:
        """Delete the segments of every stream in ``directory`` that are to go; ``current``
        (being written) count towards their stream's size but never go. Returns those
        deleted. (A camera recording its own stream; the server keeps a RetentionIndex.)"""
        index = RetentionIndex(self)
        index.load(scan(directory, exclude=current))
        writing: dict[str, int] = {}
        for path in current:
            try:
                writing[path.parent.name] = writing.get(path.parent.name, 0) + path.stat().st_size
            except FileNotFoundError:
                continue
        doomed = index.expired(writing)
        delete(doomed)
        return doomed


@dataclass(frozen=True)
class Segment:
    """A closed segment as retention knows it."""

    path: Path
    written: float  # its last write (Unix time)
    size: int


def scan(directory: Path, exclude: Collection[Path] = ()) -> list[Segment]:
    """Every segment file in ``directory/*/`` but ``exclude`` (read once, at start)."""
    found = []
    for path in directory.glob("*/*"):
        if segment_start(path.name) is None or path in exclude:
            continue
        try:
            info = path.stat()
        except FileNotFoundError:
            continue  # deleted meanwhile
        found.append(Segment(path, info.st_mtime, info.st_size))
    return found


def delete(paths: list[Path]) -> None:
    for path in paths:
        path.unlink(missing_ok=True)
        log.info("recording retention: deleted %s", path)


class RetentionIndex:
    """Every stream's closed segments, oldest first, and their bytes: what retention
    decides on, kept up to date as segments close and go (one owner: not thread-safe)."""

    def __init__(self, retention: Retention) -> None:
        self.retention = retention
        self._segments: dict[str, deque[Segment]] = {}
        self._bytes: dict[str, int] = {}

    def __len__(self) -> int:
        return sum(len(segments) for segments in self._segments.values())

    def load(self, segments: list[Segment]) -> None:
        """Add segments found on disk (those added meanwhile stay once)."""
        streams = {segment.path.parent.name for segment in segments}
        for stream in streams:
            known = {segment.path: segment for segment in self._segments.get(stream, ())}
            known.update((s.path, s) for s in segments if s.path.parent.name == stream)
            ordered = sorted(known.values(), key=lambda s: segment_order(s.path))
            self._segments[stream] = deque(ordered)
            self._bytes[stream] = sum(s.size for s in ordered)

    def add(self, segment: Segment) -> None:
        """A segment just closed: the newest of its stream."""
        stream = segment.path.parent.name
        self._segments.setdefault(stream, deque()).append(segment)
        self._bytes[stream] = self._bytes.get(stream, 0) + segment.size

    def remove(self, path: Path) -> None:
        """A segment deleted otherwise (the API)."""
        segments = self._segments.get(path.parent.name, deque())
        for segment in segments:
            if segment.path == path:
                segments.remove(segment)
                self._take(path.parent.name, segment)
                return

    def usage(self, writing: dict[str, int]) -> dict[str, int]:
        """Bytes by stream: its closed segments plus ``writing`` (its segment being written)."""
        usage = dict(self._bytes)
        for stream, size in writing.items():
            usage[stream] = usage.get(stream, 0) + size
        return usage

    def expired(self, writing: dict[str, int], now: float | None = None) -> list[Path]:
        """The segments to delete now, taken out of the index: too old, then (while all
        streams together pass the size limit) the oldest of the stream that uses the most.
        ``writing``: bytes of each stream's segment being written, which count but never go."""
        now = time.time() if now is None else now
        doomed = []
        if self.retention.max_age is not None:
            for stream, segments in self._segments.items():
                while segments and now - segments[0].written > self.retention.max_age:
                    doomed.append(self._take(stream, segments.popleft()))
        if self.retention.max_bytes is not None:
            usage = self.usage(writing)
            total = sum(usage.values())
            while total > self.retention.max_bytes:
                # The largest; among equals, the one whose oldest segment is oldest.
                stream = min(usage, key=lambda s: (-usage[s], self._oldest_order(s)))
                segments = self._segments.get(stream)
                if not segments:
                    break  # its segment being written, within its bound, is all it has
                segment = segments.popleft()
                doomed.append(self._take(stream, segment))
                usage[stream] -= segment.size
                total -= segment.size
        for stream in [s for s, segments in self._segments.items() if not segments]:
            del self._segments[stream], self._bytes[stream]
        return doomed

    def _oldest_order(self, stream: str) -> tuple[str, int]:
        segments = self._segments.get(stream)
        return segment_order(segments[0].path) if segments else ("~", 0)

    def _take(self, stream: str, segment: Segment) -> Path:
        self._bytes[stream] -= segment.size
        return segment.path
