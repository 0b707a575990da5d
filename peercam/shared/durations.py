"""Durations as people write them on the command line: ``90``, ``90s``, ``15m``, ``1h``, ``7d``."""

from __future__ import annotations

import math

#: Longer than any token should live; also keeps expiry times far from overflowing.
MAX_DURATION = 10 * 365 * 86400


def parse_duration(text: str) -> float:
    """``90``, ``90s``, ``15m``, ``1h``, ``7d`` to seconds (positive and at most ten years)."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    text = text.strip().lower()
    try:
        if text and text[-1] in units:
            seconds = float(text[:-1]) * units[text[-1]]
        else:
            seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not 0 < seconds <= MAX_DURATION:  # also refuses nan and inf
        raise ValueError(f"bad duration {text[:40]!r}: use e.g. 90, 90s, 15m, 1h, 7d (up to 10 years)")
    return seconds
