"""NTP timestamps (RTCP sender reports) to and from Unix time: the camera writes them, viewers read them."""

from __future__ import annotations

__all__ = ["NTP_TO_UNIX", "from_ntp", "to_ntp"]

#: Seconds from the NTP epoch (1900) to the Unix epoch (1970).
NTP_TO_UNIX = 2_208_988_800


def to_ntp(unix: float) -> int:
    """Unix seconds as a 64-bit NTP timestamp (32 bits of seconds, 32 of fraction)."""
    seconds = int(unix)
    return ((seconds + NTP_TO_UNIX) << 32) | int((unix - seconds) * 2**32)


def from_ntp(ntp: int) -> float:
    """A 64-bit NTP timestamp as Unix seconds."""
    return (ntp >> 32) - NTP_TO_UNIX + (ntp & 0xFFFFFFFF) / 2**32
