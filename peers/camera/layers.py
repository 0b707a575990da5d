"""Quality layers: the few renditions a camera encodes, each once, for all its viewers.

``--layers 1080p,720p,480p,360p@15`` (or ``auto``) names them by height, with an
optional lower frame rate. Widths follow the capture's aspect ratio, rounded to even
numbers. Each layer has a bitrate that suits its size; ``--bitrate`` sets the top one's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from peercam.shared.errors import UsageError
from peercam.shared.protocol import LayerInfo

from .sources import even

#: ``auto`` adds these heights below the capture's own.
AUTO_HEIGHTS = (720, 480, 360)

#: Bitrates (kbit/s) that suit a 16:9 picture of this height at 30 fps: VP8 realtime at
#: these rates looks clean on camera content. Other heights interpolate by pixel count;
#: other shapes scale by their width; lower frame rates get less.
_BITRATE_16_9_KBPS = {180: 200, 240: 300, 360: 400, 480: 1200, 720: 2500, 1080: 4500, 1440: 8000, 2160: 15000}

_SPEC = re.compile(r"(\d{2,4})p(?:@(\d{1,3}(?:\.\d+)?))?")


class LayerError(UsageError):
    """A ``--layers`` list (``Camera(layers=...)``) that cannot be encoded from this source."""


@dataclass(frozen=True)
class Layer:
    """One rendition: a name viewers pick it by, its size, frame rate and bitrate."""

    name: str
    width: int
    height: int
    fps: float
    bitrate: int  # bits per second
    #: Take every ``step``-th captured frame (a layer at half the capture's rate: 2).
    step: int = 1

    @property
    def info(self) -> LayerInfo:
        return LayerInfo(name=self.name, width=self.width, height=self.height, fps=self.fps)


def default_bitrate(width: int, height: int, fps: float) -> int:
    """Bits per second that suit a picture of this size and rate."""
    pixels = width * height
    points = sorted((h * 16 / 9 * h, kbps) for h, kbps in _BITRATE_16_9_KBPS.items())
    if pixels <= points[0][0]:
        kbps = points[0][1] * pixels / points[0][0]
    elif pixels >= points[-1][0]:
        kbps = points[-1][1] * pixels / points[-1][0]
    else:
        for (p0, k0), (p1, k1) in zip(points, points[1:], strict=False):
            if p0 <= pixels <= p1:
                kbps = k0 + (k1 - k0) * (pixels - p0) / (p1 - p0)
                break
    # Half the frames need well over half the bits (each carries more change).
    return int(kbps * 1000 * min(1.0, fps / 30) ** 0.6)


def parse_layers(spec: str, width: int, height: int, fps: float,
                 top_bitrate: int | None = None) -> list[Layer]:
    """The layers of a ``width`` x ``height`` @ ``fps`` capture, top (largest) first.

    Raises LayerError with a reason: a malformed entry, a layer above the capture size
    (naming the largest possible), a repeated height, or a frame rate above the capture's.
    """
    spec = spec.strip().lower()
    if spec == "auto":
        entries = [(height, None)] + [(h, None) for h in AUTO_HEIGHTS if h < height]
    else:
        entries = []
        for part in (p.strip() for p in spec.split(",")):
            match = _SPEC.fullmatch(part)
            if not match:
                raise LayerError(f"bad layer {part!r}: use HEIGHTp or HEIGHTp@FPS, e.g. 720p or 360p@15")
            entries.append((int(match[1]), float(match[2]) if match[2] else None))
    if not entries:
        raise LayerError("no layers: give at least one, e.g. --layers 720p")
    layers: list[Layer] = []
    for layer_height, layer_fps in sorted(entries, key=lambda e: -e[0]):
        if layer_height > height:
            raise LayerError(f"layer {layer_height}p is above the capture size {width}x{height}: "
                             f"the largest possible layer is {height}p")
        if layer_height < 16:
            raise LayerError(f"layer {layer_height}p is too small")
        if any(layer.height == layer_height for layer in layers):
            raise LayerError(f"layer {layer_height}p is listed twice: one layer per height")
        if layer_fps is not None and not 0 < layer_fps <= fps:
            raise LayerError(f"layer {layer_height}p@{layer_fps:g}: the frame rate must be above 0 and "
                             f"at most the capture's {fps:g}")
        step = max(1, round(fps / layer_fps)) if layer_fps else 1
        layer_fps = fps / step
        layer_width = width if layer_height == height else even(layer_height * width / height)
        name = f"{layer_height}p" if step == 1 else f"{layer_height}p@{layer_fps:g}"
        layers.append(Layer(name, layer_width, layer_height, round(layer_fps, 3),
                            default_bitrate(layer_width, layer_height, layer_fps), step))
    if top_bitrate is not None:
        top = layers[0]
        layers[0] = Layer(top.name, top.width, top.height, top.fps, top_bitrate, top.step)
    return layers


def nearest(layers: list[Layer], name: str) -> Layer:
    """The layer called ``name``; for a name this camera does not have, the one nearest in height."""
    for layer in layers:
        if layer.name == name:
            return layer
    match = _SPEC.fullmatch(name.strip().lower())
    wanted = int(match[1]) if match else layers[0].height
    return min(layers, key=lambda layer: (abs(layer.height - wanted), -layer.height))
