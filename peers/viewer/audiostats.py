"""What a viewer measures about the sound it gets: packets, loss, jitter, latency, A/V offset.

Latency (mouth to ear) is the test tone's own: each beep's time code says when it was
captured, and the time its first sample was decoded here says when it was heard
(peers/testtone.py). The A/V offset is that latency minus the picture's, the picture's
from the test pattern's stamps (or the relay header) of the pictures decoded around the
beep: a beep and the pictures captured with it reach the viewer that far apart
(positive: the sound is late). Sound that is not the test tone gives neither figure.
"""

from __future__ import annotations

import time
from array import array
from collections import deque

import numpy as np
from peercam.peers.testtone import ToneReader

from peercam.shared.protocol import Percentiles, ViewerAudioStats

from .audioframe import AudioFrame

__all__ = ["AudioStats", "PICTURE_WINDOW"]

#: Pictures decoded this close (seconds) to a beep's decoding are compared with it.
PICTURE_WINDOW = 0.25
#: Beeps in the recent figures of a stats report (two a second).
RECENT_BEEPS = 10


def _percentiles(values: array) -> Percentiles | None:
    if not values:
        return None
    p50, p95 = np.percentile(values, [50, 95])
    return Percentiles(p50=round(float(p50), 1), p95=round(float(p95), 1))


class AudioStats:
    """Counts the sound's packets and reads the test tone in it.

    Beeps heard in the first ``warmup`` seconds after the first sound are left out of the
    figures, as FrameStats leaves out the first frames.
    """

    def __init__(self, warmup: float = 0.0) -> None:
        self.warmup = warmup
        self.codec = "opus"
        self.packets = 0
        #: Lost and jitter as the transports measure them (P2P: RTP's; relay: the headers').
        self.packets_lost = 0
        self.jitter_ms: float | None = None
        self._lost_counted = 0  # of the transport in use, already in packets_lost
        self.first_at: float | None = None
        self._last_at: float | None = None
        #: The longest wait between two decoded packets (seconds), after the warm-up.
        self.longest_gap = 0.0
        self.latencies_ms = array("f")
        self.av_offsets_ms = array("f")
        self._reader = ToneReader()
        #: (decoded at, latency in ms) of the recent pictures: the A/V offset's other half.
        self._pictures: deque[tuple[float, float]] = deque()

    @property
    def beeps(self) -> int:
        return len(self.latencies_ms)

    def add(self, frame: AudioFrame) -> None:
        """A decoded packet of sound."""
        now = time.monotonic()
        if self.first_at is None:
            self.first_at = now
        warm = now >= self.first_at + self.warmup
        if warm and self._last_at is not None:
            self.longest_gap = max(self.longest_gap, now - self._last_at)
        self._last_at = now
        self.packets += 1
        for beep in self._reader.feed(frame.samples, frame.arrived):
            if not warm:
                continue
            latency_ms = beep.latency * 1000
            self.latencies_ms.append(latency_ms)
            around = [ms for at, ms in self._pictures if abs(at - beep.heard_time) <= PICTURE_WINDOW]
            if around:
                self.av_offsets_ms.append(latency_ms - float(np.median(around)))

    def picture(self, arrived: float, capture_time: float | None) -> None:
        """A decoded picture, for the A/V offset: when it was decoded and captured."""
        if capture_time is None:
            return
        self._pictures.append((arrived, (arrived - capture_time) * 1000))
        while self._pictures and self._pictures[0][0] < arrived - 4 * PICTURE_WINDOW:
            self._pictures.popleft()

    def network(self, packets_lost: int | None, jitter_ms: float | None) -> None:
        """The transport's figures so far (lost packets count from its start)."""
        if packets_lost is not None:
            self.packets_lost += max(0, packets_lost - self._lost_counted)
            self._lost_counted = packets_lost
        if jitter_ms is not None:
            self.jitter_ms = jitter_ms

    def session_started(self) -> None:
        """Another transport: its loss counts from zero."""
        self._lost_counted = 0

    def report(self) -> ViewerAudioStats:
        """The figures for a stats report: the latest beeps'."""
        return ViewerAudioStats(codec=self.codec, packets=self.packets, packets_lost=self.packets_lost,
                                jitter_ms=self.jitter_ms,
                                latency_ms=_percentiles(self.latencies_ms[-RECENT_BEEPS:]),
                                av_offset_ms=_percentiles(self.av_offsets_ms[-RECENT_BEEPS:]))

    def summary(self) -> dict:
        """What `peercam view --json` prints under "audio": every beep's figures."""
        latency, offset = _percentiles(self.latencies_ms), _percentiles(self.av_offsets_ms)
        return {
            "codec": self.codec,
            "packets": self.packets,
            "packets_lost": self.packets_lost,
            "jitter_ms": self.jitter_ms,
            "latency_ms": {"p50": latency.p50, "p95": latency.p95} if latency else None,
            "av_offset_ms": {"p50": offset.p50, "p95": offset.p95} if offset else None,
            "beeps": self.beeps,
            "longest_gap_ms": round(self.longest_gap * 1000, 1),
        }
