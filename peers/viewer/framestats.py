"""What a viewer measures about the frames it gets: fps, latency, drops, timing."""

from __future__ import annotations

import time
from array import array

import numpy as np
from peercam.peers.testpattern import Stamp


class FrameStats:
    """Counts frames; test-pattern stamps give latency and dropped frames exactly.

    Frames in the first ``warmup`` seconds after the first one are left out of the
    figures (like iperf's --omit), so start-up does not blur a steady-state measure;
    the time to the first frame always counts.
    """

    def __init__(self, started: float, warmup: float = 0.0) -> None:
        self.started = started  # time.monotonic() at the start of the command
        self.warmup = warmup
        self.first_frame_at: float | None = None
        self.frames = 0  # frames measured (after the warm-up)
        self.window_start: float | None = None
        self.window_end: float | None = None
        #: The longest wait between two measured frames (seconds): a picture that froze.
        self.longest_gap = 0.0
        self.width = self.height = 0
        self.latencies_ms = array("f")  # 4 bytes a frame: an hour at 30 fps is 432 kB
        self.stamped_frames = 0
        self.dropped = 0
        self.bytes_received = 0
        # From the WebRTC stack, where it gives them (None: not measured).
        self.packets_lost: int | None = None
        self.jitter_ms: float | None = None
        self.rtt_ms: float | None = None
        self._last_number: int | None = None
        #: The layer being received (the sender's latest `layer` message) and how often it changed.
        self.layer: str | None = None
        self.layer_switches = 0
        self.jpeg_quality: int | None = None
        #: Capture frame numbers between two frames of the layer received (2 on a 15 fps layer
        #: of a 30 fps camera); P2P only: the relay numbers each rendition's frames itself.
        self.frame_step = 1

    def add(self, width: int, height: int, stamp: Stamp | None, arrived_unix: float) -> None:
        now = time.monotonic()
        if self.first_frame_at is None:
            self.first_frame_at = now
        self.width, self.height = width, height
        gap = 0
        if stamp is not None:
            last, self._last_number = self._last_number, stamp.frame
            if last is not None and stamp.frame > last:
                # A layer at a lower frame rate carries every step-th captured frame.
                gap = max(0, round((stamp.frame - last) / self.frame_step) - 1)
            # A number going backwards is a new camera: count from there.
        if now < self.first_frame_at + self.warmup:
            return
        if self.window_start is None:
            self.window_start = now
        if self.window_end is not None:
            self.longest_gap = max(self.longest_gap, now - self.window_end)
        self.window_end = now
        self.frames += 1
        if stamp is not None:
            self.stamped_frames += 1
            self.latencies_ms.append(arrived_unix * 1000 - stamp.time_ms)
            self.dropped += gap

    def layer_changed(self, layer: str, jpeg_quality: int | None, frame_step: int = 1) -> None:
        """The sender moved this viewer to ``layer`` (and on the relay, a JPEG quality)."""
        if self.layer is not None and layer != self.layer:
            self.layer_switches += 1
        self.layer, self.jpeg_quality, self.frame_step = layer, jpeg_quality, frame_step

    def stream_restarted(self) -> None:
        self._last_number = None

    @property
    def span(self) -> float:
        """Seconds between the first and last measured frames."""
        if self.window_start is None or self.window_end is None:
            return 0.0
        return self.window_end - self.window_start

    @property
    def fps(self) -> float:
        return (self.frames - 1) / self.span if self.frames > 1 and self.span > 0 else 0.0

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
        span = self.span
        return {
            "mode": mode,
            "frames": self.frames,
            "fps": round(self.fps, 2),
            "width": self.width,
            "height": self.height,
            "time_to_first_frame_ms": ttff,
            "latency_ms": latency,
            "frames_dropped": self.dropped if self.stamped_frames else None,
            "longest_gap_ms": round(self.longest_gap * 1000, 1),
            "bitrate_kbps": round(self.bytes_received * 8 / span / 1000, 1) if span > 0 else 0.0,
            "packets_lost": self.packets_lost,
            "jitter_ms": self.jitter_ms,
            "rtt_ms": self.rtt_ms,
            "layer": self.layer,
            "layer_switches": self.layer_switches,
        }
