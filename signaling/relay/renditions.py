"""Renditions, and which one a relay reader reads.

A rendition is what one relay reader reads: a layer's encoded frames (EncodedRendition: the
very frames its P2P viewers get), or a layer as JPEG at one JPEG quality (JpegRendition, from the
protocol). The camera encodes each JPEG rendition read once per frame, so the choice is
bounded: past ``MAX_JPEG_RENDITIONS`` distinct ones a new request rounds to the nearest in use
(``within_cap``), the nearest layer first, then the nearest JPEG quality (``nearest``). An ``auto``
reader steps through its ``rungs``: the JPEG qualities of a layer, then the layers below.

These are plain functions of the camera's layers, so the hub's rules can be read (and
tested) apart from its readers.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from peercam.shared.protocol import JpegRendition, LayerInfo

__all__ = ["AUTO_JPEG_QUALITY_STEPS", "MAX_JPEG_RENDITIONS", "SHARED_CAP_REASON", "EncodedRendition",
           "Rendition", "layer_name", "nearest", "rungs", "within_cap"]

#: JPEG qualities an ``auto`` reader steps through on one layer before the next layer down.
AUTO_JPEG_QUALITY_STEPS = (50,)
#: Distinct JPEG renditions the camera is asked for at once (each costs it an encode per frame).
MAX_JPEG_RENDITIONS = 4
#: Why a reader reads another JPEG rendition than it asked for (its viewer is told).
SHARED_CAP_REASON = "the nearest of the JPEG renditions the camera makes for every server instance"


@dataclass(frozen=True, order=True)
class EncodedRendition:
    """A layer's encoded frames, exactly as the camera's encoder made them."""

    layer: str


Rendition = JpegRendition | EncodedRendition


def layer_name(layers: list[LayerInfo], quality: str) -> str:
    """The layer a viewer's choice means: that layer, the nearest in height, or the top for auto."""
    names = [layer.name for layer in layers]
    if quality in names:
        return quality
    if quality == "auto":
        return names[0]
    try:
        height = int(quality.split("p")[0])
    except ValueError:
        return names[0]
    return min(layers, key=lambda layer: (abs(layer.height - height), -layer.height)).name


def rungs(layers: list[LayerInfo], quality: str, format: str, jpeg_quality: int | None,
          default_jpeg_quality: int) -> list[Rendition]:
    """Best first: what a reader that asked for ``quality`` (a layer or "auto") and
    ``jpeg_quality`` (None: auto) may step through. A layer or JPEG quality the viewer picked
    itself stays fixed; ``default_jpeg_quality`` is the camera's."""
    names = [layer.name for layer in layers]
    if quality != "auto":
        names = [layer_name(layers, quality)]
    if format == "encoded":
        return [EncodedRendition(name) for name in names]
    top = jpeg_quality or default_jpeg_quality
    jpeg_qualities = [top] if jpeg_quality else [top] + [q for q in AUTO_JPEG_QUALITY_STEPS if q < top]
    return [JpegRendition(name, q) for name in names for q in jpeg_qualities]


def nearest(layers: list[LayerInfo], candidates: Iterable[JpegRendition],
            wanted: JpegRendition) -> JpegRendition:
    """The candidate nearest ``wanted``: the nearest layer first, then the nearest JPEG quality."""
    index = {layer.name: i for i, layer in enumerate(layers)}
    return min(candidates, key=lambda r: (abs(index.get(r.layer, 99) - index.get(wanted.layer, 0)),
                                          abs(r.jpeg_quality - wanted.jpeg_quality)))


def within_cap(layers: list[LayerInfo], wanted: Rendition, in_use: set[JpegRendition],
               max_renditions: int) -> Rendition:
    """``wanted``, or the nearest JPEG rendition ``in_use`` when there are already
    ``max_renditions``: the camera is never asked for more."""
    if not isinstance(wanted, JpegRendition):
        return wanted  # one per layer at most: the camera encodes those layers anyway
    if wanted in in_use or len(in_use) < max_renditions:
        return wanted
    return nearest(layers, sorted(in_use), wanted)
