"""How long recordings are kept: ``--record-keep 7d`` (by age), ``--record-keep 10GB``
(by the total size of every stream's segments), or both. The oldest go first."""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path

from .auth import parse_duration
from .segmentwriter import segment_order, segment_start

log = logging.getLogger(__name__)

_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([KMGT]?)i?B", re.IGNORECASE)
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


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

    def expired(self, segments: list[tuple[Path, float, int]], now: float | None = None) -> list[Path]:
        """Which of ``segments`` (path, last write, size), oldest first, are to go."""
        now = time.time() if now is None else now
        doomed = []
        total = sum(size for _, _, size in segments)
        for path, written, size in segments:
            too_old = self.max_age is not None and now - written > self.max_age
            too_much = self.max_bytes is not None and total > self.max_bytes
            if not (too_old or too_much):
                continue
            doomed.append(path)
            total -= size
        return doomed

    def sweep(self, directory: Path, current: set[Path]) -> list[Path]:
        """Delete the segments of every stream in ``directory`` that are to go, oldest first;
        ``current`` (being written) count towards the size but never go. Returns those deleted."""
        segments = []
        for path in directory.glob("*/*"):
            start = segment_start(path.name)
            if start is None or path in current:
                continue
            try:
                info = path.stat()
            except FileNotFoundError:
                continue  # deleted meanwhile
            segments.append((segment_order(path), path, info.st_mtime, info.st_size))
        segments.sort()
        written_now = sum(p.stat().st_size for p in current if p.exists())
        room = None if self.max_bytes is None else max(0, self.max_bytes - written_now)
        doomed = Retention(self.max_age, room).expired([(p, mtime, size) for _, p, mtime, size in segments])
        for path in doomed:
            path.unlink(missing_ok=True)
            log.info("recording retention: deleted %s", path)
        return doomed
