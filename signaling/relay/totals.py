"""The relay's server-wide counters.

Every stream's readers add to one RelayTotals, so /metrics can say what the relay sent and
skipped in all, whichever streams came and went.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["RelayTotals"]


@dataclass
class RelayTotals:
    """Server-wide relay counters (for /metrics); every stream's readers add to them."""

    frames_sent: int = 0
    bytes_sent: int = 0
    frames_skipped: int = 0
    #: Opus packets (relay frames of sound, not counted in frames_*) sent, and dropped by
    #: readers too far behind; their bytes count in bytes_sent.
    audio_packets_sent: int = 0
    audio_packets_dropped: int = 0
    #: Talk frames (a viewer's voice, relay frames up to a camera) sent to cameras here, and
    #: dropped: the camera's socket was backed up, or the floor had moved on while they came
    #: from another instance.
    talk_frames_sent: int = 0
    talk_frames_dropped: int = 0
