"""The relay hub: one stream's JPEG frames, from its camera to every relay reader.

Each reader reads one rendition: a layer at a JPEG quality. The camera encodes only
the renditions someone reads (the hub tells it through ``on_demand``), each once per
frame. Past ``max_renditions`` distinct ones, a new request rounds to the nearest one
in use. Each reader has a slot that holds only the newest frame and one task that
delivers it, so a slow reader skips frames instead of delaying the others or growing
memory. A reader in ``auto`` whose slot keeps skipping steps down (JPEG quality first,
then the layer) and back up when clean: the same Ladder as the camera's P2P viewers.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from .adaptation import Ladder
from .protocol import JpegRendition, LayerInfo
from .relayframe import parse_relay_frame

log = logging.getLogger(__name__)


@dataclass
class RelayTotals:
    """Server-wide relay counters (for /metrics); every stream's readers add to them."""

    frames_sent: int = 0
    bytes_sent: int = 0
    frames_skipped: int = 0


#: JPEG qualities an ``auto`` reader steps through on one layer before the next layer down.
AUTO_QUALITY_STEPS = (50,)
#: A reader that skips this share of its frames in a second is in trouble.
_SKIPPING = 0.2


class RelayReader:
    """One reader of a relay (a WebSocket viewer, an MJPEG response, a snapshot)."""

    def __init__(self, name: str, deliver: Callable[[bytes], Awaitable[None]],
                 ends_with_camera: bool = False,
                 on_rendition: Callable[[JpegRendition, LayerInfo, str], None] | None = None,
                 backlog: Callable[[], int] | None = None) -> None:
        self.name = name
        self.totals = RelayTotals()  # replaced by the hub's when added
        #: HTTP readers (MJPEG) end when the camera leaves; WebSocket viewers wait for the next one.
        self.ends_with_camera = ends_with_camera
        #: What it reads now; set by the hub.
        self.rendition: JpegRendition | None = None
        #: What it asked for: a layer name or "auto", and a JPEG quality or None (auto).
        self.quality = "auto"
        self.jpeg_quality: int | None = None
        self.ladder: Ladder | None = None
        self.rungs: list[JpegRendition] = []
        self._on_rendition = on_rendition
        #: Bytes still queued for this reader below the application (its socket's send queue).
        self._backlog = backlog
        self._deliver = deliver
        self._frame: bytes | None = None
        self._ready = asyncio.Event()
        self._task: asyncio.Task | None = None
        self.frames_sent = 0
        self.bytes_sent = 0
        self.frames_skipped = 0  # replaced by a newer frame before it could be sent
        self.rendition_switches = 0
        self._sampled = (0, 0)  # frames sent and skipped at the last adaptation sample

    def offer(self, frame: bytes) -> None:
        if self._frame is not None:
            self.frames_skipped += 1
            self.totals.frames_skipped += 1
        self._frame = frame
        self._ready.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"relay-{self.name}")

    async def _run(self) -> None:
        try:
            while True:
                await self._ready.wait()
                self._ready.clear()
                frame, self._frame = self._frame, None
                if frame is None:
                    continue
                if self._backlog is not None and self._backlog() > len(frame):
                    # More than a frame still waits in the socket: this one would only queue
                    # behind it and arrive stale. Skip it; the next may find the way clear.
                    self.frames_skipped += 1
                    self.totals.frames_skipped += 1
                    continue
                await self._deliver(frame)
                self.frames_sent += 1
                self.bytes_sent += len(frame)
                self.totals.frames_sent += 1
                self.totals.bytes_sent += len(frame)
        except (ConnectionError, RuntimeError) as exc:
            log.info("relay reader %s: %s", self.name, exc)

    async def wait_closed(self) -> None:
        """Until delivery fails (the reader went away) or the reader is stopped."""
        if self._task is not None:
            await asyncio.wait({self._task})

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    def moved(self, rendition: JpegRendition, layer: LayerInfo, reason: str) -> None:
        """The hub put this reader on another rendition: tell its viewer."""
        if self.rendition is not None and rendition != self.rendition:
            self.rendition_switches += 1
            self._frame = None  # a frame of the old rendition is no longer wanted
        self.rendition = rendition
        if self._on_rendition is not None:
            self._on_rendition(rendition, layer, reason)

    def skipping(self) -> float:
        """The share of frames this reader skipped since the last call."""
        sent, skipped = self.frames_sent - self._sampled[0], self.frames_skipped - self._sampled[1]
        self._sampled = (self.frames_sent, self.frames_skipped)
        return skipped / (sent + skipped) if sent + skipped else 0.0


class RelayHub:
    """One stream's relay: its renditions, their readers, and what the camera must send."""

    def __init__(self, on_demand: Callable[[list[JpegRendition]], None], totals: RelayTotals,
                 max_renditions: int = 4) -> None:
        self._on_demand = on_demand
        self._totals = totals
        self._max_renditions = max_renditions
        self._readers: set[RelayReader] = set()
        self._waiters: list[tuple[JpegRendition, asyncio.Future[bytes]]] = []
        self._latest: dict[JpegRendition, tuple[bytes, float]] = {}
        self._demand: list[JpegRendition] = []
        self._layers: list[LayerInfo] = []
        self._default_quality = 80
        self._adapter: asyncio.Task | None = None
        self.frames_in = 0

    def __len__(self) -> int:
        return len(self._readers)

    @property
    def demand(self) -> list[JpegRendition]:
        """The renditions the camera is asked to send now."""
        return list(self._demand)

    def summary(self) -> dict:
        readers = list(self._readers)
        return {
            "readers": len(readers),
            "frames_in": self.frames_in,
            "frames_sent": sum(r.frames_sent for r in readers),
            "frames_skipped": sum(r.frames_skipped for r in readers),
            "bytes_sent": sum(r.bytes_sent for r in readers),
            "renditions": [{"layer": r.layer, "jpeg_quality": r.quality,
                            "readers": sum(1 for x in readers if x.rendition == r)} for r in self._demand],
        }

    def camera_arrived(self, layers: list[LayerInfo], default_quality: int) -> None:
        """A camera publishes with these layers: readers waiting for it are placed on them."""
        self._layers = list(layers)
        self._default_quality = default_quality
        for reader in list(self._readers):
            self._place(reader, "")
        self._update_demand()

    def rendition(self, quality: str = "auto", jpeg_quality: int | None = None) -> JpegRendition | None:
        """The rendition for a layer name (or "auto": the top) at a JPEG quality (None: the camera's)."""
        if not self._layers:
            return None
        names = [layer.name for layer in self._layers]
        layer = quality if quality in names else self._nearest_layer(quality)
        return JpegRendition(layer, jpeg_quality or self._default_quality)

    def _nearest_layer(self, quality: str) -> str:
        if quality == "auto":
            return self._layers[0].name
        try:
            height = int(quality.split("p")[0])
        except ValueError:
            return self._layers[0].name
        return min(self._layers, key=lambda layer: (abs(layer.height - height), -layer.height)).name

    def add(self, reader: RelayReader, quality: str = "auto", jpeg_quality: int | None = None) -> None:
        reader.totals = self._totals
        reader.quality, reader.jpeg_quality = quality, jpeg_quality
        self._readers.add(reader)
        reader.start()
        self._place(reader, "")
        self._update_demand()
        latest = self._latest.get(reader.rendition) if reader.rendition else None
        if latest is not None and time.monotonic() - latest[1] < 1.0:
            reader.offer(latest[0])  # a fresh frame now rather than at the next one

    def choose(self, reader: RelayReader, quality: str, jpeg_quality: int | None) -> None:
        """A reader picked another layer (or "auto") or JPEG quality."""
        reader.quality, reader.jpeg_quality = quality, jpeg_quality
        if reader in self._readers:
            self._place(reader, "")
            self._update_demand()

    def remove(self, reader: RelayReader) -> None:
        if reader not in self._readers:
            return
        self._readers.discard(reader)
        reader.stop()
        self._update_demand()

    def _rungs(self, reader: RelayReader) -> list[JpegRendition]:
        """Best first: what an ``auto`` reader may step through. A layer or JPEG quality the
        viewer picked itself stays fixed."""
        layers = [layer.name for layer in self._layers]
        if reader.quality != "auto":
            layers = [self._nearest_layer(reader.quality) if reader.quality not in layers else reader.quality]
        top = reader.jpeg_quality or self._default_quality
        qualities = [top] if reader.jpeg_quality else [top] + [q for q in AUTO_QUALITY_STEPS if q < top]
        return [JpegRendition(layer, q) for layer in layers for q in qualities]

    def _place(self, reader: RelayReader, reason: str) -> None:
        """Put a reader on the rendition it asked for (or its ladder's rung), rounded to one in use
        when there are already as many as the camera may encode."""
        if not self._layers:
            return  # no camera yet: placed when one arrives
        rungs = self._rungs(reader)
        if rungs != reader.rungs:
            reader.rungs = rungs
            # A JPEG reader can try a rung cheaply (no keyframe to wait for): it climbs faster
            # than a P2P viewer.
            reader.ladder = Ladder(len(rungs), up_after=6, up_after_success=2, probe_seconds=2
                                   ) if len(rungs) > 1 else None
            if reader.ladder is not None:
                self._start_adapting()
        rung = reader.ladder.rung if reader.ladder is not None else 0
        self._move(reader, self._round(rungs[rung], reader), reason)

    def _round(self, wanted: JpegRendition, reader: RelayReader) -> JpegRendition:
        in_use = {r.rendition for r in self._readers if r is not reader and r.rendition is not None}
        in_use |= {rendition for rendition, _ in self._waiters}
        if wanted in in_use or len(in_use) < self._max_renditions:
            return wanted
        index = {layer.name: i for i, layer in enumerate(self._layers)}
        return min(in_use, key=lambda r: (abs(index.get(r.layer, 99) - index.get(wanted.layer, 0)),
                                          abs(r.quality - wanted.quality)))

    def _move(self, reader: RelayReader, rendition: JpegRendition, reason: str) -> None:
        if rendition != reader.rendition:
            layer = next(layer for layer in self._layers if layer.name == rendition.layer)
            reader.moved(rendition, layer, reason)

    def _update_demand(self) -> None:
        wanted = {r.rendition for r in self._readers if r.rendition is not None}
        wanted |= {rendition for rendition, _ in self._waiters}
        demand = sorted(wanted)
        if demand != self._demand:
            self._demand = demand
            self._on_demand(demand)
        if not demand:
            self._latest.clear()

    def _start_adapting(self) -> None:
        if self._adapter is None or self._adapter.done():
            self._adapter = asyncio.get_running_loop().create_task(self._adapt(), name="relay-adapt")

    async def _adapt(self, every: float = 1.0) -> None:
        """Once a second, each ``auto`` reader's ladder looks at its slot."""
        while any(r.ladder is not None for r in self._readers):
            await asyncio.sleep(every)
            now = time.monotonic()
            moved = False
            for reader in [r for r in self._readers if r.ladder is not None]:
                skipped = reader.skipping()
                if reader.rendition is None:
                    continue
                trouble, ceiling = None, None
                if skipped >= _SKIPPING:  # far behind: more than one rung at once
                    trouble = f"{100 * skipped:.0f}% of frames skipped"
                    ceiling = reader.ladder.rung + (3 if skipped > 0.75 else 2 if skipped > 0.5 else 1)
                move = reader.ladder.observe(now, trouble, ceiling)
                if move is not None:
                    self._move(reader, self._round(reader.rungs[move.rung], reader), move.reason)
                    moved = True
            if moved:
                self._update_demand()

    def publish(self, frame: bytes) -> None:
        header, _ = parse_relay_frame(frame)
        if header.layer >= len(self._layers):
            return  # a layer the camera did not announce
        rendition = JpegRendition(self._layers[header.layer].name, header.quality)
        self._latest[rendition] = (frame, time.monotonic())
        self.frames_in += 1
        for reader in self._readers:
            if reader.rendition == rendition:
                reader.offer(frame)
        waiting = [(r, w) for r, w in self._waiters if r == rendition]
        for _, waiter in waiting:
            if not waiter.done():
                waiter.set_result(frame)

    async def next_frame(self, rendition: JpegRendition, timeout: float) -> bytes:
        """A frame of ``rendition`` at most a second old: the latest, or the next to arrive."""
        latest = self._latest.get(rendition)
        if latest is not None and time.monotonic() - latest[1] < 1.0:
            return latest[0]
        waiter = asyncio.get_running_loop().create_future()
        entry = (rendition, waiter)
        self._waiters.append(entry)
        self._update_demand()
        try:
            return await asyncio.wait_for(waiter, timeout)
        finally:
            self._waiters.remove(entry)
            self._update_demand()

    def camera_left(self) -> None:
        """The publisher is gone: its last frames are no longer news, and HTTP readers end."""
        self._latest.clear()
        self._layers = []
        for reader in [r for r in self._readers if r.ends_with_camera]:
            self._readers.discard(reader)
            reader.stop()
        for reader in self._readers:
            reader.rendition = None
        self._update_demand()
