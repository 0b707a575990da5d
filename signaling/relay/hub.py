"""The relay hub: one stream's relay frames, from its camera to every relay reader.

Each reader reads one rendition: a layer's encoded frames (the very frames its P2P
viewers get), or a layer as JPEG at one quality. The camera sends only the renditions
someone reads (the hub tells it through ``on_demand``), each frame once, and the hub
fans it out. Past ``max_renditions`` distinct JPEG ones, a new request rounds to the
nearest one in use; a snapshot rounds the same way. When the camera is on another
instance, that instance says which JPEG renditions the camera makes for all of them
(``renditions_made``): a reader here whose own is not among them reads the nearest that is,
and moves back when its own is made again.

What the camera sends is checked against what it announced (the layer, its size, the
JPEG quality), and a frame of a rendition nobody reads is dropped. What the hub keeps
for readers to come (each JPEG rendition's newest frame, each layer's frames since its
keyframe) stays within ``MAX_HELD_BYTES``.

Each reader has a slot and one task that delivers from it, so a slow reader never
delays the others or grows memory:
- a JPEG slot holds only the newest frame (any JPEG picture decodes alone);
- an encoded slot holds the frames in order, back to a keyframe. A reader that falls
  behind (its socket still holds too much, or too many frames wait) drops everything up
  to the next keyframe, which the hub asks the camera for, with requests merged and
  rate-limited (``on_keyframe``) like P2P viewers' PLI, whatever keyframes arrive. A
  reader whose socket still holds too much asks for none: it could not take one. A
  newcomer starts at a keyframe: the stream's last one, when recent, with the frames
  since; otherwise the next one.

A reader in ``auto`` whose slot keeps skipping steps down (JPEG quality first, then the
layer) and back up when clean: the same Ladder as the camera's P2P viewers. An encoded
reader moves to another layer at that layer's keyframe, so its picture never breaks.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from peercam.shared.adaptation import Ladder
from peercam.shared.protocol import JpegRendition, LayerInfo
from peercam.shared.relayframe import RelayFrameError, RelayFrameHeader, jpeg_size, parse_relay_frame

log = logging.getLogger(__name__)


@dataclass
class RelayTotals:
    """Server-wide relay counters (for /metrics); every stream's readers add to them."""

    frames_sent: int = 0
    bytes_sent: int = 0
    frames_skipped: int = 0


@dataclass(frozen=True, order=True)
class EncodedRendition:
    """A layer's encoded frames, exactly as the camera's encoder made them."""

    layer: str


Rendition = JpegRendition | EncodedRendition

#: JPEG qualities an ``auto`` reader steps through on one layer before the next layer down.
AUTO_QUALITY_STEPS = (50,)
#: A reader that skips this share of its frames in a second is in trouble.
_SKIPPING = 0.2
#: Frames (and bytes, past its first frame) an encoded slot may hold before its reader
#: counts as fallen behind.
MAX_QUEUED_FRAMES = 30
MAX_QUEUED_BYTES = 8 * 1024 * 1024
#: What a hub keeps for readers to come, per stream: the newest frame of each JPEG rendition
#: read, and each read layer's frames since its last keyframe. Past it the frames since a
#: keyframe go first (a newcomer asks for a keyframe instead), then the oldest JPEG frames.
MAX_HELD_BYTES = 16 * 1024 * 1024
#: Distinct JPEG renditions the camera is asked for at once (each costs it an encode per frame).
MAX_JPEG_RENDITIONS = 4
#: Why a reader reads another JPEG rendition than it asked for (its viewer is told).
SHARED_CAP_REASON = "the nearest of the JPEG renditions the camera makes for every server instance"
#: An encoded reader's socket may hold this much unsent, or twice the last keyframe if more.
MIN_BACKLOG_BYTES = 64 * 1024
#: The last keyframe (with the frames since) starts a newcomer at once if it is this recent.
GOP_REUSE_SECONDS = 0.5
#: At most one keyframe request per layer this often, counted from the last request (not
#: from the keyframe that answered it): for a newcomer or a layer switch (urgent), and for a
#: reader that fell behind (like a PLI). Cameras keep the same limits themselves.
URGENT_KEYFRAME_INTERVAL = 0.25
KEYFRAME_INTERVAL = 1.0
#: A reader whose socket was empty at the last probe is probed every this many frames.
PROBE_EVERY = 4


class NewestFrameSlot:
    """JPEG: only the newest frame waits; a newer one replaces it."""

    def __init__(self) -> None:
        self._frame: bytes | None = None

    def put(self, frame: bytes, keyframe: bool) -> int:
        """Keep ``frame``; returns how many frames it made the reader skip."""
        skipped = self._frame is not None
        self._frame = frame
        return int(skipped)

    def take(self) -> bytes | None:
        frame, self._frame = self._frame, None
        return frame

    def peek(self) -> bytes | None:
        return self._frame

    def too_much_unsent(self, backlog: int, frame: bytes) -> bool:
        # More than a frame still waits in the socket: this one would only queue behind it
        # and arrive stale. Skip it; the next may find the way clear.
        return backlog > len(frame)

    def fell_behind(self) -> int:
        """The frame in hand was not sent: the frames skipped."""
        return 1

    def clear(self) -> None:
        self._frame = None


class EncodedSlot:
    """Encoded frames: all of them in order, from a keyframe on, or none until the next one."""

    def __init__(self) -> None:
        self._queue: deque[bytes] = deque()
        self._queued_bytes = 0
        #: Why the reader waits for a keyframe ("new", "behind"), or None: it reads on.
        self.waiting: str | None = "new"
        self._keyframe_bytes = 0

    def put(self, frame: bytes, keyframe: bool) -> int:
        skipped = 0
        if keyframe:
            # Decoding restarts here: frames still queued before it would only add delay.
            skipped = len(self._queue)
            self._empty()
            self.waiting = None
            self._keyframe_bytes = len(frame)
        elif self.waiting is not None:
            return 1
        self._queue.append(frame)
        self._queued_bytes += len(frame)
        if len(self._queue) > MAX_QUEUED_FRAMES or (
                len(self._queue) > 1 and self._queued_bytes > MAX_QUEUED_BYTES):
            return skipped + self.fell_behind()
        return skipped

    def take(self) -> bytes | None:
        if not self._queue:
            return None
        frame = self._queue.popleft()
        self._queued_bytes -= len(frame)
        return frame

    def peek(self) -> bytes | None:
        return self._queue[0] if self._queue else None

    def too_much_unsent(self, backlog: int, frame: bytes) -> bool:
        return backlog > max(MIN_BACKLOG_BYTES, 2 * self._keyframe_bytes)

    def fell_behind(self) -> int:
        """Drop everything up to the next keyframe: the frames skipped (the one in hand too)."""
        skipped = len(self._queue) + 1
        self._empty()
        self.waiting = "behind"
        return skipped

    def clear(self) -> None:
        self._empty()
        self.waiting = "new"

    def _empty(self) -> None:
        self._queue.clear()
        self._queued_bytes = 0


class RelayReader:
    """One reader of a relay (a WebSocket viewer, an MJPEG response, a snapshot)."""

    def __init__(self, name: str, deliver: Callable[[bytes], Awaitable[None]], format: str = "jpeg",
                 ends_with_camera: bool = False,
                 on_rendition: Callable[[Rendition, LayerInfo, str], None] | None = None,
                 backlog: Callable[[], int] | None = None,
                 send_now: Callable[[bytes], bool] | None = None) -> None:
        if format not in ("jpeg", "encoded"):
            raise ValueError(f"relay format {format!r}: use jpeg or encoded")
        self.name = name
        self.format = format
        self.totals = RelayTotals()  # replaced by the hub's when added
        #: HTTP readers (MJPEG) end when the camera leaves; WebSocket viewers wait for the next one.
        self.ends_with_camera = ends_with_camera
        #: What it reads now, and (encoded) the rendition it moves to at that layer's next
        #: keyframe, with the reason; set by the hub.
        self.rendition: Rendition | None = None
        self.pending: tuple[EncodedRendition, str] | None = None
        #: What the hub asks the camera for on its behalf: ``rendition``, unless a camera on
        #: another instance makes it for none (the cap holds across instances).
        self.wanted: Rendition | None = None
        #: What it asked for: a layer name or "auto", and a JPEG quality or None (auto).
        self.quality = "auto"
        self.jpeg_quality: int | None = None
        self.ladder: Ladder | None = None
        self.rungs: list[Rendition] = []
        #: Set by the hub: an encoded reader fell behind and waits for a keyframe.
        self.on_behind: Callable[[RelayReader], None] | None = None
        self._on_rendition = on_rendition
        #: Bytes still queued for this reader below the application (its socket's send queue).
        self._backlog = backlog
        self._deliver = deliver
        #: Sends a frame at once if the socket takes it without waiting (False: it would
        #: wait). The hub's fan-out then sends from its own loop, with no task to wake.
        self._send_now = send_now
        self._idle = False  # the task waits for frames (it is not sending one)
        self._probe_skips = 0  # frames to send before probing the socket's backlog again
        self.slot: NewestFrameSlot | EncodedSlot = EncodedSlot() if format == "encoded" else NewestFrameSlot()
        self._ready = asyncio.Event()
        self._task: asyncio.Task | None = None
        self.frames_sent = 0
        self.bytes_sent = 0
        self.frames_skipped = 0  # never sent: replaced by a newer frame, or dropped to a keyframe
        self.rendition_switches = 0
        self._sampled = (0, 0)  # frames sent and skipped at the last adaptation sample

    def offer(self, frame: bytes, keyframe: bool = True) -> None:
        self._skipped(self.slot.put(frame, keyframe))
        if self._idle and self._send_now is not None:
            self._send_waiting()
        else:
            self._ready.set()

    def _send_waiting(self) -> None:
        """Send what the slot holds while the socket takes it at once; the task takes over
        when it would have to wait."""
        while (frame := self.slot.peek()) is not None:
            if self._too_much_unsent(frame, in_slot=True):
                continue
            if not self._send_now(frame):
                self._ready.set()
                return
            self.slot.take()
            self._sent(frame)

    def _too_much_unsent(self, frame: bytes, in_slot: bool = False) -> bool:
        """A reader whose socket still holds too much drops this frame (JPEG) or falls
        behind to the next keyframe (encoded). A socket found empty is probed again only
        every few frames (the probe is a system call per reader and frame); one that held
        anything, at every frame."""
        if self._backlog is None:
            return False
        if in_slot and self._probe_skips > 0:
            self._probe_skips -= 1
            return False
        backlog = self._backlog()
        self._probe_skips = PROBE_EVERY - 1 if backlog == 0 else 0
        if not self.slot.too_much_unsent(backlog, frame):
            return False
        if in_slot:
            self.slot.take()
        self._skipped(self.slot.fell_behind())
        if self.on_behind is not None and isinstance(self.slot, EncodedSlot):
            self.on_behind(self)
        return True

    def could_take_keyframe(self) -> bool:
        """Encoded: its socket holds little enough to take a keyframe now. One that holds too
        much (a reader that stopped reading) asks for none: it would only fall behind again."""
        return self._backlog is None or not self.slot.too_much_unsent(self._backlog(), b"")

    def _sent(self, frame: bytes) -> None:
        self.frames_sent += 1
        self.bytes_sent += len(frame)
        self.totals.frames_sent += 1
        self.totals.bytes_sent += len(frame)

    def offer_break(self) -> None:
        """Encoded: a frame never came, so none after it decodes until the next keyframe."""
        if isinstance(self.slot, EncodedSlot) and self.slot.waiting is None:
            self.slot.waiting = "behind"

    def _skipped(self, count: int) -> None:
        self.frames_skipped += count
        self.totals.frames_skipped += count

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"relay-{self.name}")

    async def _run(self) -> None:
        try:
            while True:
                self._idle = True
                await self._ready.wait()
                self._ready.clear()
                self._idle = False
                while (frame := self.slot.take()) is not None:
                    if self._too_much_unsent(frame):
                        continue
                    await self._deliver(frame)
                    self._sent(frame)
        except (ConnectionError, RuntimeError) as exc:
            log.info("relay reader %s: %s", self.name, exc)

    async def wait_closed(self) -> None:
        """Until delivery fails (the reader went away) or the reader is stopped."""
        if self._task is not None:
            await asyncio.wait({self._task})

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    def moved(self, rendition: Rendition, layer: LayerInfo, reason: str) -> None:
        """The hub put this reader on another rendition: tell its viewer."""
        if self.rendition is not None and rendition != self.rendition:
            self.rendition_switches += 1
            if isinstance(self.slot, NewestFrameSlot):
                self.slot.clear()  # a frame of the old rendition is no longer wanted
        self.rendition = rendition
        if self._on_rendition is not None:
            self._on_rendition(rendition, layer, reason)

    def skipping(self) -> float:
        """The share of frames this reader skipped since the last call."""
        sent, skipped = self.frames_sent - self._sampled[0], self.frames_skipped - self._sampled[1]
        self._sampled = (self.frames_sent, self.frames_skipped)
        return skipped / (sent + skipped) if sent + skipped else 0.0


class HeldFrames:
    """What a hub keeps for readers to come, counted in bytes and kept within ``budget``: the
    newest frame of each JPEG rendition (a newcomer or a snapshot gets it at once), and each
    encoded layer's frames since its last keyframe (a newcomer starts there). Past the
    budget the frames since a keyframe go first (a newcomer can ask for a keyframe
    instead), then the oldest JPEG frames; a frame larger than the budget is not kept."""

    def __init__(self, budget: int = MAX_HELD_BYTES) -> None:
        self.budget = budget
        self.bytes = 0
        self._latest: dict[JpegRendition, tuple[bytes, float]] = {}
        #: Per encoded layer: its last keyframe's arrival, and the frames from it on.
        self._gops: dict[str, tuple[float, list[bytes]]] = {}

    def latest(self, rendition: JpegRendition, max_age: float) -> bytes | None:
        """The rendition's newest frame, if it arrived within ``max_age`` seconds."""
        latest = self._latest.get(rendition)
        return latest[0] if latest is not None and time.monotonic() - latest[1] < max_age else None

    def keep_latest(self, rendition: JpegRendition, frame: bytes) -> None:
        self._drop_latest(rendition)
        if self._room(len(frame)):
            self._latest[rendition] = (frame, time.monotonic())
            self.bytes += len(frame)

    def gop(self, layer: str, max_age: float) -> list[bytes] | None:
        """The layer's frames from its last keyframe on, if that keyframe arrived within ``max_age``."""
        gop = self._gops.get(layer)
        return gop[1] if gop is not None and time.monotonic() - gop[0] < max_age else None

    def start_gop(self, layer: str, keyframe: bytes) -> None:
        self.drop_gop(layer)
        if self._room(len(keyframe)):
            self._gops[layer] = (time.monotonic(), [keyframe])
            self.bytes += len(keyframe)

    def extend_gop(self, layer: str, frame: bytes) -> None:
        """The next frame of the layer's GOP; past MAX_QUEUED_FRAMES (or the budget) the GOP is
        too long to start anyone from, and goes."""
        gop = self._gops.get(layer)
        if gop is None:
            return
        if len(gop[1]) >= MAX_QUEUED_FRAMES or self.bytes + len(frame) > self.budget:
            self.drop_gop(layer)
            return
        gop[1].append(frame)
        self.bytes += len(frame)

    def drop_gop(self, layer: str) -> None:
        gop = self._gops.pop(layer, None)
        if gop is not None:
            self.bytes -= sum(len(frame) for frame in gop[1])

    def keep_only(self, jpeg: set[JpegRendition], encoded: set[str]) -> None:
        """Forget what no reader reads any more."""
        for rendition in set(self._latest) - jpeg:
            self._drop_latest(rendition)
        for layer in set(self._gops) - encoded:
            self.drop_gop(layer)

    def clear(self) -> None:
        self._latest.clear()
        self._gops.clear()
        self.bytes = 0

    def _drop_latest(self, rendition: JpegRendition) -> None:
        latest = self._latest.pop(rendition, None)
        if latest is not None:
            self.bytes -= len(latest[0])

    def _room(self, size: int) -> bool:
        """Make room for ``size`` more bytes; False if it cannot fit at all."""
        if size > self.budget:
            return False
        while self.bytes + size > self.budget and self._gops:
            self.drop_gop(next(iter(self._gops)))
        while self.bytes + size > self.budget and self._latest:
            self._drop_latest(min(self._latest, key=lambda r: self._latest[r][1]))
        return True


class RelayHub:
    """One stream's relay: its renditions, their readers, and what the camera must send."""

    def __init__(self, on_demand: Callable[[list[JpegRendition], list[str]], None], totals: RelayTotals,
                 max_renditions: int = MAX_JPEG_RENDITIONS,
                 on_keyframe: Callable[[str, bool], None] | None = None) -> None:
        self._on_demand = on_demand
        self._on_keyframe = on_keyframe
        self._totals = totals
        self._max_renditions = max_renditions
        self._readers: set[RelayReader] = set()
        self._waiters: list[tuple[JpegRendition, asyncio.Future[bytes]]] = []
        self._held = HeldFrames()
        self._keyframe_asked: dict[str, float] = {}
        self._sequence: dict[str, int] = {}  # per encoded layer, the next frame's number
        self._demand: tuple[list[JpegRendition], list[str]] = ([], [])
        #: The JPEG renditions readers here get (those asked for, or the nearest made).
        self._read_jpeg: set[JpegRendition] = set()
        #: The JPEG renditions a camera on another instance makes for every instance, as its
        #: instance last said; None: this instance's readers decide (the camera is here, or
        #: its instance has not said yet).
        self._made: list[JpegRendition] | None = None
        self._layers: list[LayerInfo] = []
        self._default_quality = 80
        self._adapter: asyncio.Task | None = None
        self.frames_in = 0
        self.frames_unread = 0  # of a rendition nobody here reads: dropped

    def __len__(self) -> int:
        return len(self._readers)

    @property
    def demand(self) -> tuple[list[JpegRendition], list[str]]:
        """What the camera is asked to send now: JPEG renditions, and layers' encoded frames."""
        return list(self._demand[0]), list(self._demand[1])

    def demand_with(self, others: Iterable[tuple[list[JpegRendition], list[str]]]
                    ) -> tuple[list[JpegRendition], list[str]]:
        """What the camera is asked for when readers on other instances read it too: the union,
        within what the camera accepts: the announced layers, and ``max_renditions`` JPEG
        renditions (this instance's first, then those most asked for elsewhere)."""
        others = list(others)
        jpeg, encoded = self.demand
        known = {layer.name for layer in self._layers}
        elsewhere = Counter(r for other, _ in others for r in other if r not in jpeg and r.layer in known)
        jpeg += [r for r, _ in elsewhere.most_common(max(0, self._max_renditions - len(jpeg)))]
        layers = set(encoded) | {layer for _, other in others for layer in other if layer in known}
        return sorted(jpeg), sorted(layers, key=self._layer_index)

    def summary(self) -> dict:
        readers = list(self._readers)
        encoded = self._demand[1]
        renditions = [{"layer": r.layer, "format": "jpeg", "jpeg_quality": r.quality,
                       "readers": sum(1 for x in readers if x.rendition == r)}
                      for r in sorted(self._read_jpeg)]
        renditions += [{"layer": layer, "format": "encoded",
                        "readers": sum(1 for x in readers if x.rendition == EncodedRendition(layer))}
                       for layer in encoded]
        return {
            "readers": len(readers),
            "frames_in": self.frames_in,
            "frames_unread": self.frames_unread,
            "held_bytes": self._held.bytes,
            "frames_sent": sum(r.frames_sent for r in readers),
            "frames_skipped": sum(r.frames_skipped for r in readers),
            "bytes_sent": sum(r.bytes_sent for r in readers),
            "renditions": renditions,
        }

    def camera_arrived(self, layers: list[LayerInfo], default_quality: int) -> None:
        """A camera publishes with these layers: readers waiting for it are placed on them."""
        self._layers = list(layers)
        self._default_quality = default_quality
        self._made = None
        self._held.clear()
        self._keyframe_asked.clear()
        self._sequence.clear()
        for reader in list(self._readers):
            reader.rendition, reader.pending, reader.wanted = None, None, None
            reader.slot.clear()
            self._place(reader, "")
        self._update_demand()

    def rendition(self, quality: str = "auto", jpeg_quality: int | None = None) -> JpegRendition | None:
        """The JPEG rendition for a layer name (or "auto": the top) at a JPEG quality (None: the
        camera's), rounded like a reader's to one in use when there are already as many as
        the camera may encode."""
        if not self._layers:
            return None
        wanted = JpegRendition(self._layer_name(quality), jpeg_quality or self._default_quality)
        return self._served(self._round(wanted))

    def renditions_made(self, jpeg: list[JpegRendition]) -> None:
        """The camera's instance (another) says which JPEG renditions the camera makes for
        every instance: each reader here reads its own if made, else the nearest made (its
        viewer is told), and moves back when its own is made again."""
        known = {layer.name for layer in self._layers}
        made = [r for r in jpeg if r.layer in known]
        if made == self._made:
            return
        self._made = made
        for reader in list(self._readers):
            if isinstance(reader.wanted, JpegRendition):
                self._move(reader, reader.wanted, "")
        self._update_demand()

    def nearest_made(self, made: list[JpegRendition], wanted: JpegRendition) -> JpegRendition:
        """What a reader that asked for ``wanted`` reads when the camera makes only ``made``
        (not empty): ``wanted``, or the nearest (the same rounding as within the cap here)."""
        return wanted if wanted in made else self._nearest(made, wanted)

    def layer_for(self, quality: str) -> str:
        """The layer a choice means now: that layer, the nearest in height, or the top for auto."""
        return self._layer_name(quality)

    def request_keyframe(self, layer: str) -> None:
        """An encoded reader outside the hub's own rules needs a keyframe soon (a recorder
        starting a segment); merged with the others' requests, at most once a second."""
        self._ask_keyframe(layer, urgent=False)

    def _layer_name(self, quality: str) -> str:
        """The layer a viewer's choice means: that layer, the nearest in height, or the top for auto."""
        names = [layer.name for layer in self._layers]
        if quality in names:
            return quality
        if quality == "auto":
            return names[0]
        try:
            height = int(quality.split("p")[0])
        except ValueError:
            return names[0]
        return min(self._layers, key=lambda layer: (abs(layer.height - height), -layer.height)).name

    def add(self, reader: RelayReader, quality: str = "auto", jpeg_quality: int | None = None) -> None:
        reader.totals = self._totals
        reader.quality, reader.jpeg_quality = quality, jpeg_quality
        reader.on_behind = self._behind
        self._readers.add(reader)
        reader.start()
        self._place(reader, "")
        self._update_demand()
        if isinstance(reader.rendition, JpegRendition):
            latest = self._held.latest(reader.rendition, max_age=1.0)
            if latest is not None:
                reader.offer(latest)  # a fresh frame now rather than at the next one

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

    def _rungs(self, reader: RelayReader) -> list[Rendition]:
        """Best first: what an ``auto`` reader may step through. A layer or JPEG quality the
        viewer picked itself stays fixed."""
        layers = [layer.name for layer in self._layers]
        if reader.quality != "auto":
            layers = [self._layer_name(reader.quality)]
        if reader.format == "encoded":
            return [EncodedRendition(layer) for layer in layers]
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
            # A relay reader can try a rung cheaply (no loss to wait out): it climbs faster
            # than a P2P viewer.
            reader.ladder = Ladder(len(rungs), up_after=6, up_after_success=2, probe_seconds=2
                                   ) if len(rungs) > 1 else None
            if reader.ladder is not None:
                self._start_adapting()
        rung = reader.ladder.rung if reader.ladder is not None else 0
        self._move(reader, self._round(rungs[rung], reader), reason)

    def _round(self, wanted: Rendition, reader: RelayReader | None = None) -> Rendition:
        """``wanted``, or the nearest JPEG rendition in use (by others than ``reader``) when
        there are already ``max_renditions``: the camera is never asked for more."""
        if not isinstance(wanted, JpegRendition):
            return wanted  # one per layer at most: the camera encodes those layers anyway
        in_use = {r.wanted for r in self._readers
                  if r is not reader and isinstance(r.wanted, JpegRendition)}
        in_use |= {rendition for rendition, _ in self._waiters}
        if wanted in in_use or len(in_use) < self._max_renditions:
            return wanted
        return self._nearest(sorted(in_use), wanted)

    def _nearest(self, candidates: Iterable[JpegRendition], wanted: JpegRendition) -> JpegRendition:
        """The candidate nearest ``wanted``: the nearest layer first, then the nearest quality."""
        index = {layer.name: i for i, layer in enumerate(self._layers)}
        return min(candidates, key=lambda r: (abs(index.get(r.layer, 99) - index.get(wanted.layer, 0)),
                                              abs(r.quality - wanted.quality)))

    def _served(self, wanted: Rendition) -> Rendition:
        """What a reader that asked for ``wanted`` reads: ``wanted``, unless a camera on another
        instance makes JPEG renditions that do not include it (then the nearest of them)."""
        if not isinstance(wanted, JpegRendition) or not self._made:
            return wanted
        return self.nearest_made(self._made, wanted)

    def _info(self, layer: str) -> LayerInfo:
        return next(info for info in self._layers if info.name == layer)

    def _move(self, reader: RelayReader, wanted: Rendition, reason: str) -> None:
        """Put ``reader`` on ``wanted``, or on the nearest JPEG rendition made when the camera
        (on another instance) makes ``wanted`` for none."""
        reader.wanted = wanted
        rendition = self._served(wanted)
        if rendition != wanted:
            reason = SHARED_CAP_REASON
        if isinstance(rendition, EncodedRendition) and reader.rendition is not None:
            # The reader keeps its layer until the new one's keyframe: no broken picture.
            reader.pending = (rendition, reason) if rendition != reader.rendition else None
            if reader.pending is not None:
                self._ask_keyframe(rendition.layer, urgent=True)
            return
        if rendition != reader.rendition:
            reader.moved(rendition, self._info(rendition.layer), reason)
            if isinstance(rendition, EncodedRendition):
                self._start_encoded(reader, rendition.layer)

    def _start_encoded(self, reader: RelayReader, layer: str) -> None:
        """A newcomer: from the last keyframe if recent (with the frames since), else the next."""
        gop = self._held.gop(layer, max_age=GOP_REUSE_SECONDS)
        if gop is not None:
            for i, frame in enumerate(gop):
                reader.offer(frame, keyframe=i == 0)
        else:
            self._ask_keyframe(layer, urgent=True)

    def _behind(self, reader: RelayReader) -> None:
        if isinstance(reader.rendition, EncodedRendition) and reader.could_take_keyframe():
            self._ask_keyframe(reader.rendition.layer, urgent=False)

    def _ask_keyframe(self, layer: str, urgent: bool) -> None:
        """Merged: at most one request per layer per interval until a keyframe comes, whoever
        asks. (The camera spaces the keyframes themselves, as it does for PLI.)"""
        now = time.monotonic()
        interval = URGENT_KEYFRAME_INTERVAL if urgent else KEYFRAME_INTERVAL
        if now - self._keyframe_asked.get(layer, -interval) < interval:
            return
        self._keyframe_asked[layer] = now
        if self._on_keyframe is not None:
            self._on_keyframe(layer, urgent)

    def _update_demand(self) -> None:
        """Tell ``on_demand`` what readers here ask for (if it changed), and keep only what
        they read."""
        waiting = {rendition for rendition, _ in self._waiters}
        jpeg = {r.wanted for r in self._readers if isinstance(r.wanted, JpegRendition)} | waiting
        self._read_jpeg = {r.rendition for r in self._readers if isinstance(r.rendition, JpegRendition)}
        self._read_jpeg |= waiting
        encoded = {r.rendition.layer for r in self._readers if isinstance(r.rendition, EncodedRendition)}
        encoded |= {r.pending[0].layer for r in self._readers if r.pending is not None}
        demand = (sorted(jpeg), sorted(encoded, key=self._layer_index))
        if demand != self._demand:
            self._demand = demand
            self._on_demand(*demand)
        self._held.keep_only(self._read_jpeg, encoded)
        for layer in set(self._sequence) - encoded:
            del self._sequence[layer]  # numbered afresh when read again: no false gap

    def _layer_index(self, name: str) -> int:
        return next((i for i, layer in enumerate(self._layers) if layer.name == name), len(self._layers))

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

    def publish(self, frame: bytes) -> RelayFrameHeader:
        """Hand a relay frame to the readers of its rendition; its header, or RelayFrameError
        (before anything changed) when it is not a relay frame, or not one of a layer the
        camera announced, at that layer's size. A frame of a rendition nobody here reads is
        dropped (the camera may not have heard yet; readers elsewhere get it from the caller)."""
        header, picture = parse_relay_frame(frame)
        if header.layer >= len(self._layers):
            raise RelayFrameError(f"relay frame of layer {header.layer}: the camera announced "
                                  f"{len(self._layers)} layers")
        info = self._layers[header.layer]
        sizes = [(header.width, header.height)]
        if header.codec is None:
            sizes.append(jpeg_size(picture))  # what a reader's decoder allocates for
        for width, height in sizes:
            if (width, height) != (info.width, info.height):
                raise RelayFrameError(f"relay frame of {width}x{height} for layer {info.name}, "
                                      f"which is {info.width}x{info.height}")
        self.frames_in += 1
        encoded = self._demand[1]
        if header.codec is not None:
            if info.name not in encoded:
                self.frames_unread += 1
                return header
            self._publish_encoded(frame, info.name, header.keyframe, header.sequence)
            return header
        rendition = JpegRendition(info.name, header.quality)
        if rendition not in self._read_jpeg:
            self.frames_unread += 1
            return header
        self._held.keep_latest(rendition, frame)
        for reader in self._readers:
            if reader.rendition == rendition:
                reader.offer(frame)
        waiting = [(r, w) for r, w in self._waiters if r == rendition]
        for _, waiter in waiting:
            if not waiter.done():
                waiter.set_result(frame)
        return header

    def _publish_encoded(self, frame: bytes, layer: str, keyframe: bool, sequence: int) -> None:
        rendition = EncodedRendition(layer)
        expected = self._sequence.get(layer)
        self._sequence[layer] = (sequence + 1) & 0xFFFFFFFF
        if not keyframe and expected is not None and sequence != expected:
            # The camera could not send a frame: nothing decodes until the next keyframe.
            log.info("relay %s: frame %d missing; readers wait for a keyframe", layer, expected)
            self._held.drop_gop(layer)
            for reader in self._readers:
                if reader.rendition == rendition:
                    reader.offer_break()
        # A keyframe does not re-arm the requests: a reader that keeps falling behind would
        # otherwise ask again at every keyframe, and get one nearly every frame.
        if keyframe:
            self._held.start_gop(layer, frame)
        else:
            self._held.extend_gop(layer, frame)
        switched = False
        waiting: set[str] = set()  # why readers of this layer still wait for a keyframe
        for reader in self._readers:
            if reader.pending is not None and reader.pending[0] == rendition:
                if keyframe:
                    _, reason = reader.pending
                    reader.pending = None
                    reader.slot.clear()
                    reader.moved(rendition, self._info(layer), reason)
                    switched = True
                else:
                    waiting.add("new")
            if reader.rendition == rendition:
                reader.offer(frame, keyframe)
                if isinstance(reader.slot, EncodedSlot) and reader.slot.waiting is not None and (
                        reader.slot.waiting == "new" or reader.could_take_keyframe()):
                    waiting.add(reader.slot.waiting)
        if switched:
            self._update_demand()  # the layers they left may be read by nobody now
        if waiting:  # a request that was lost, or answered before the camera encoded this layer
            self._ask_keyframe(layer, urgent="new" in waiting)

    async def next_frame(self, rendition: JpegRendition, timeout: float) -> bytes:
        """A frame of ``rendition`` (rounded like a reader's) at most a second old: the latest,
        or the next to arrive."""
        rendition = self._served(self._round(rendition))
        latest = self._held.latest(rendition, max_age=1.0)
        if latest is not None:
            return latest
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
        self._held.clear()
        self._sequence.clear()
        self._layers = []
        self._made = None
        for reader in [r for r in self._readers if r.ends_with_camera]:
            self._readers.discard(reader)
            reader.stop()
        for reader in self._readers:
            reader.rendition, reader.pending, reader.wanted = None, None, None
            reader.slot.clear()
        self._update_demand()
