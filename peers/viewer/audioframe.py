"""One decoded stretch of the camera's sound, as the library hands it over."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import av
import numpy as np

__all__ = ["AudioFrame", "samples_of"]


def samples_of(decoded: av.AudioFrame, channels: int) -> np.ndarray:
    """A decoded frame's samples as int16 ``(n, channels)``: the decoder's s16 (packed or
    planar), its first ``channels`` channels (an Opus decoder set up for stereo gives a mono
    stream's sound twice)."""
    if decoded.format.name not in ("s16", "s16p"):
        decoded = av.AudioResampler(format="s16", layout=decoded.layout.name,
                                    rate=decoded.sample_rate).resample(decoded)[0]
    array = decoded.to_ndarray()
    count = len(decoded.layout.channels)
    if decoded.format.is_planar:
        array = array.T  # (channels, n) -> (n, channels)
    else:
        array = array.reshape(-1, count)
    return np.ascontiguousarray(array[:, :min(channels, count)], dtype=np.int16)


@dataclass(eq=False)
class AudioFrame:
    """Sound from the camera, over P2P or the relay: one Opus packet's worth (20 ms), decoded.

    ``samples`` is numpy ``int16``, ``(n, channels)``, at ``sample_rate`` Hz (48000).
    ``capture_time`` is when its first sample was captured (Unix seconds, the camera's
    clock): from the relay frame's header on the relay; on P2P from its RTP timestamp and
    the camera's RTCP sender reports, None until the first report came (within about a
    second).
    """

    samples: np.ndarray
    sample_rate: int
    capture_time: float | None
    #: "p2p" or "relay": how this sound came.
    mode: Literal["p2p", "relay"]
    #: When it was decoded on this side (Unix seconds, this machine's clock).
    arrived: float

    @property
    def channels(self) -> int:
        """1 (mono) or 2 (stereo), as the stream has it."""
        return self.samples.shape[1]

    @property
    def duration(self) -> float:
        """Seconds of sound."""
        return len(self.samples) / self.sample_rate
