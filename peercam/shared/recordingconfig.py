"""What a server or a camera records, and for how long it keeps it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .retention import Retention


@dataclass(frozen=True)
class RecordingConfig:
    """``peercam serve --record-dir DIR [--record NAME ...] [--record-segment 60]
    [--record-keep 7d|10GB] [--record-layer LAYER]``."""

    directory: Path
    #: Names recorded whenever their camera is live; "*": every stream.
    streams: tuple[str, ...] = ()
    segment_seconds: float = 60.0
    retention: Retention = Retention()
    #: The layer recorded (the nearest the camera has); None: its top layer.
    layer: str | None = None
