"""Which layer one P2P viewer gets: the one it picked, or in ``auto`` what its network carries.

The camera decides for every viewer, browser or Python alike, from what the viewer's
own connection tells the sender once a second (``Evidence``): RTCP receiver reports
(fraction lost, round-trip time), the viewer's REMB estimate where it sends one,
keyframe requests and the sender's queue drops. peercam/shared/adaptation.py's Ladder turns
that into moves, with hysteresis; a manual pick always wins over it.

The viewer's sound shares its link: a layer fits a measured rate only with the sound that
goes with it (``sound``: bits per second on the wire, per layer) beside it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from peercam.shared.adaptation import Ladder

from .layers import Layer, nearest

#: Loss in a receiver report above this is trouble, and above LOSS_SEVERE it cannot wait
#: for a second report. Below it is what NACK repairs, and random loss that a smaller
#: layer would not cure (WebRTC's loss-based estimate also holds between 2 and 10%).
LOSS_TROUBLE = 0.10
LOSS_SEVERE = 0.2
#: Round-trip time this far above the connection's best means queues are filling.
RTT_GROWTH = 0.08
#: A layer fits a measured rate with this much room to spare.
HEADROOM = 0.85
#: Failed probes back off up to this: at most two a minute on a link that stays capped.
MAX_PROBE_WAIT = 30.0


@dataclass(frozen=True)
class LayerMove:
    """Move to ``layer`` because of ``reason``; ``up`` to a larger one, which a sender may
    probe for first (``LayerChoice.probe_failed`` when the link would not carry it)."""

    layer: Layer
    reason: str
    up: bool


@dataclass(frozen=True)
class Evidence:
    """What the sender saw of one viewer since the last sample."""

    fraction_lost: float | None = None  # from a receiver report that arrived since
    rtt: float | None = None  # seconds
    keyframe_requests: int = 0
    queue_drops: int = 0
    estimate: int | None = None  # the viewer's REMB, bits per second


class LayerChoice:
    """One viewer's layer: ``quality`` is a layer's name or "auto"; ``sound`` gives the bits per
    second the viewer's sound takes on its link beside a layer (none without sound)."""

    def __init__(self, layers: list[Layer], quality: str,
                 sound: Callable[[Layer], int] = lambda layer: 0) -> None:
        self.layers = layers
        self.quality = quality
        self.sound = sound
        self._ladder: Ladder | None = None
        self._best_rtt: float | None = None
        self.layer = self._start()

    def _start(self) -> Layer:
        if self.quality == "auto":
            self._ladder = Ladder(len(self.layers), max_wait=MAX_PROBE_WAIT) if len(self.layers) > 1 else None
            return self.layers[0]
        self._ladder = None
        return nearest(self.layers, self.quality)

    def pick(self, quality: str) -> Layer | None:
        """The viewer picked another layer or "auto"; returns the layer to move to, if another."""
        self.quality = quality
        if quality == "auto":
            rung = self.layers.index(self.layer)
            self._ladder = (Ladder(len(self.layers), start=rung, max_wait=MAX_PROBE_WAIT)
                            if len(self.layers) > 1 else None)
            return None  # auto starts from where it is
        return self._go(nearest(self.layers, quality))

    def observe(self, now: float, evidence: Evidence) -> LayerMove | None:
        """One sample in auto; returns a move when the viewer should make one."""
        if evidence.rtt is not None:
            self._best_rtt = evidence.rtt if self._best_rtt is None else min(self._best_rtt, evidence.rtt)
        if self._ladder is None:
            return None
        trouble = self._trouble(evidence)
        severe = bool(evidence.queue_drops) or (evidence.fraction_lost or 0) >= LOSS_SEVERE
        move = self._ladder.observe(now, trouble, self._ceiling(evidence) if trouble else None, severe)
        if move is None:
            return None
        before = self.layers.index(self.layer)
        layer = self._go(self.layers[move.rung])
        return LayerMove(layer, move.reason, move.rung < before) if layer is not None else None

    def probe_failed(self, now: float) -> None:
        """The step up that ``observe`` just gave was probed, and the link would not carry it:
        stay where the viewer was, and wait longer before the next try."""
        if self._ladder is not None:
            self._ladder.probe_failed(now)
            self.layer = self.layers[self._ladder.rung]

    def _go(self, layer: Layer) -> Layer | None:
        if layer == self.layer:
            return None
        self.layer = layer
        return layer

    def _trouble(self, evidence: Evidence) -> str | None:
        if evidence.fraction_lost is not None and evidence.fraction_lost >= LOSS_TROUBLE:
            return f"{100 * evidence.fraction_lost:.0f}% loss"
        if evidence.queue_drops:
            return "send queue overflow"
        best = self._best_rtt
        if evidence.rtt is not None and best is not None and evidence.rtt > max(2 * best, best + RTT_GROWTH):
            return f"round trip {1000 * evidence.rtt:.0f} ms"
        if evidence.keyframe_requests >= 3:
            return f"{evidence.keyframe_requests} keyframe requests"
        return None

    def _ceiling(self, evidence: Evidence) -> int | None:
        """The best rung a measured rate allows: what got through when a report counted the
        loss (with the sound beside it), else the viewer's REMB (aiortc's runs low, so it only
        speaks when loss cannot)."""
        if evidence.fraction_lost is not None:
            rate = (self.layer.bitrate + self.sound(self.layer)) * (1 - evidence.fraction_lost)
        elif evidence.estimate:
            rate = evidence.estimate
        else:
            return None
        rate *= HEADROOM
        for rung, layer in enumerate(self.layers):
            if layer.bitrate + self.sound(layer) <= rate:
                return rung
        return len(self.layers) - 1

    def probe_target(self, layer: Layer) -> int:
        """What a probe for ``layer`` must get through, in bits per second of video and padding:
        the layer with room to spare, and the sound it comes with beyond the sound sent now
        (which flows beside the probe)."""
        return int((layer.bitrate + self.sound(layer)) / HEADROOM - self.sound(self.layer))
