"""What a viewer measures about the frames it gets: fps, latency, drops, timing."""

from __future__ import annotations

import time

import numpy as np

from .testpattern import Stamp


class FrameStats:
    """Counts frames; test-pattern stamps give latency and dropped frames exactly."""

    def __init__(self, started: float) -> None:
        self.started = started  # time.monotonic() at the start of the command
        self.frames = 0
        self.first_frame_at: float | None = None
        self.last_frame_at: float | None = None
        self.width = self.height = 0
        self.latencies_ms: list[float] = []
        self.stamped_frames = 0
        self.dropped = 0
        self.bytes_received = 0
        self._last_number: int | None = None

    def add(self, width: int, height: int, stamp: Stamp | None, arrived_unix: float) -> None:
        now = time.monotonic()
        if self.first_frame_at is None:
            self.first_frame_at = now
        self.last_frame_at = now
        self.frames += 1
        self.width, self.height = width, height
        if stamp is None:
            return
        self.stamped_frames += 1
        self.latencies_ms.append(arrived_unix * 1000 - stamp.time_ms)
        last, self._last_number = self._last_number, stamp.frame
        if last is not None and stamp.frame > last:
            self.dropped += stamp.frame - last - 1
        # A number going backwards is a new camera: count from there.

    def stream_restarted(self) -> None:
        self._last_number = None

    @property
    def fps(self) -> float:
        if self.frames < 2 or self.first_frame_at is None or self.last_frame_at is None:
            return 0.0
        span = self.last_frame_at - self.first_frame_at
        return (self.frames - 1) / span if span > 0 else 0.0

    def recent_latency_ms(self, count: int = 30) -> float | None:
        recent = self.latencies_ms[-count:]
        return float(np.median(recent)) if recent else None

    def summary(self, mode: str) -> dict:
        ttff = None
        if self.first_frame_at is not None:
            ttff = round((self.first_frame_at - self.started) * 1000, 1)
        latency = None
        if self.latencies_ms:
            p50, p95 = np.percentile(self.latencies_ms, [50, 95])
            latency = {"p50": round(float(p50), 1), "p95": round(float(p95), 1)}
        span = (self.last_frame_at or 0) - (self.first_frame_at or 0)
        return {
            "mode": mode,
            "frames": self.frames,
            "fps": round(self.fps, 2),
            "width": self.width,
            "height": self.height,
            "time_to_first_frame_ms": ttff,
            "latency_ms": latency,
            "frames_dropped": self.dropped if self.stamped_frames else None,
            "bitrate_kbps": round(self.bytes_received * 8 / span / 1000, 1) if span > 0 else 0.0,
        }
