"""The relay hub: one stream's relay frames, from its camera to every relay reader.

Each reader (readers.py) reads one rendition (renditions.py): a layer's encoded frames (the
very frames its P2P viewers get), or a layer as JPEG at one JPEG quality. The camera sends only
the renditions someone reads (the hub tells it through ``on_demand``), each frame once, and
the hub fans it out. Past ``max_renditions`` distinct JPEG ones, a new request rounds to the
nearest one in use; a snapshot rounds the same way. When the camera is on another instance,
that instance says which JPEG renditions the camera makes for all of them
(``renditions_made``): a reader here whose own is not among them reads the nearest that is,
and moves back when its own is made again.

What the camera sends is checked against what it announced (the layer, its size, the JPEG
quality), and a frame of a rendition nobody reads is dropped. What the hub keeps for readers
to come (heldframes.py) stays within ``MAX_HELD_BYTES``.

Each reader has a slot (slots.py) and a task of its own, so a slow reader never delays the
others or grows memory. An encoded reader that falls behind drops everything up to the next
keyframe, which the hub asks the camera for, merged and rate-limited (keyframes.py) like P2P
viewers' PLI, whatever keyframes arrive. A newcomer starts at a keyframe: the stream's last
one, when recent, with the frames since; otherwise the next one.

Sound: a camera that announced it (StreamInfo.audio) sends its Opus packets as relay frames
(version 3) while any reader here, or on another instance, asked for sound (``relay`` with
``audio``); old clients that did not ask get none (they could not read them). Each packet
goes to those readers at once, before their pictures, and is never held for readers to
come: a newcomer's sound starts at the next packet. A packet is checked against what the
camera announced (its channels, its size); a camera that announced no sound may send none.

A reader in ``auto`` whose slot keeps skipping steps down (JPEG quality first, then the
layer) and back up when clean: the same Ladder as the camera's P2P viewers. An encoded
reader moves to another layer at that layer's keyframe, so its picture never breaks.

The hub owns its readers and what it keeps; nothing below imports it. It reads time only
from ``clock`` (``time.monotonic`` unless a test drives it), and hands the clock down.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable

from peercam.shared.protocol import AudioInfo, JpegRendition, LayerInfo
from peercam.shared.relayframe import RelayFrameError, RelayFrameHeader, jpeg_size, parse_relay_frame

from .heldframes import GOP_REUSE_SECONDS, HeldFrames
from .keyframes import KeyframeRequests
from .readers import RelayReader
from .renditions import (
    MAX_JPEG_RENDITIONS,
    SHARED_CAP_REASON,
    EncodedRendition,
    Rendition,
    layer_name,
    nearest,
    rungs,
    within_cap,
)
from .slots import EncodedSlot
from .totals import RelayTotals

__all__ = ["MAX_AUDIO_PACKET_BYTES", "RelayHub"]

log = logging.getLogger(__name__)

#: The largest Opus packet the hub takes: 120 ms at Opus's highest bitrate (510 kbit/s) is
#: 7650 bytes; the camera's 20 ms packets are a few hundred.
MAX_AUDIO_PACKET_BYTES = 8 * 1024


class RelayHub:
    """One stream's relay: its renditions, their readers, and what the camera must send.

    ``on_demand(jpeg, layers, audio)`` hears what the camera must send when it changes;
    ``on_keyframe(layer, urgent)`` the keyframes it must make (merged, rate-limited);
    ``clock`` gives the time in seconds to all of it."""

    def __init__(self, on_demand: Callable[[list[JpegRendition], list[str], bool], None], totals: RelayTotals,
                 max_renditions: int = MAX_JPEG_RENDITIONS,
                 on_keyframe: Callable[[str, bool], None] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._on_demand = on_demand
        self._totals = totals
        self._max_renditions = max_renditions
        self._clock = clock
        self._readers: set[RelayReader] = set()
        self._waiters: list[tuple[JpegRendition, asyncio.Future[bytes]]] = []
        self._held = HeldFrames(clock=clock)
        self._keyframes = KeyframeRequests(on_keyframe, clock)
        self._sequence: dict[str, int] = {}  # per encoded layer, the next frame's number
        self._demand: tuple[list[JpegRendition], list[str]] = ([], [])
        self._audio_demand = False
        #: The JPEG renditions readers here get (those asked for, or the nearest made).
        self._read_jpeg: set[JpegRendition] = set()
        #: The JPEG renditions a camera on another instance makes for every instance, as its
        #: instance last said; None: this instance's readers decide (the camera is here, or
        #: its instance has not said yet).
        self._made: list[JpegRendition] | None = None
        self._layers: list[LayerInfo] = []
        self._audio: AudioInfo | None = None  # the camera's sound, as it announced it
        self._default_jpeg_quality = 80
        self._adapter: asyncio.Task | None = None
        self.frames_in = 0
        self.frames_unread = 0  # of a rendition nobody here reads: dropped
        self.audio_packets_in = 0
        self.audio_packets_unread = 0  # nobody here listens: dropped

    def __len__(self) -> int:
        return len(self._readers)

    @property
    def demand(self) -> tuple[list[JpegRendition], list[str]]:
        """What the camera is asked to send now: JPEG renditions, and layers' encoded frames."""
        return list(self._demand[0]), list(self._demand[1])

    @property
    def audio_demand(self) -> bool:
        """Whether the camera is asked for its sound: a reader here asked for it (and it has some)."""
        return self._audio_demand

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
        renditions = [{"layer": r.layer, "format": "jpeg", "jpeg_quality": r.jpeg_quality,
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
            "audio_readers": sum(1 for r in readers if r.audio is not None),
            "audio_packets_in": self.audio_packets_in,
            "audio_packets_unread": self.audio_packets_unread,
            "audio_packets_sent": sum(r.audio_packets_sent for r in readers),
            "audio_packets_dropped": sum(r.audio_packets_dropped for r in readers),
        }

    def camera_arrived(self, layers: list[LayerInfo], default_jpeg_quality: int,
                       audio: AudioInfo | None = None) -> None:
        """A camera publishes with these layers (and this sound, or none): readers waiting for
        it are placed on them."""
        self._layers = list(layers)
        self._audio = audio
        self._default_jpeg_quality = default_jpeg_quality
        self._made = None
        self._held.clear()
        self._keyframes.clear()
        self._sequence.clear()
        for reader in list(self._readers):
            reader.rendition, reader.pending, reader.wanted = None, None, None
            reader.slot.clear()
            if reader.audio is not None:
                reader.audio.clear()
            self._place(reader, "")
        self._update_demand()

    def rendition(self, quality: str = "auto", jpeg_quality: int | None = None) -> JpegRendition | None:
        """The JPEG rendition for a layer name (or "auto": the top) at a JPEG quality (None: the
        camera's), rounded like a reader's to one in use when there are already as many as
        the camera may encode."""
        if not self._layers:
            return None
        wanted = JpegRendition(layer_name(self._layers, quality), jpeg_quality or self._default_jpeg_quality)
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
        return wanted if wanted in made else nearest(self._layers, made, wanted)

    def layer_for(self, quality: str) -> str:
        """The layer a choice means now: that layer, the nearest in height, or the top for auto."""
        return layer_name(self._layers, quality)

    def request_keyframe(self, layer: str) -> None:
        """An encoded reader outside the hub's own rules needs a keyframe soon (a recorder
        starting a segment); merged with the others' requests, at most once a second."""
        self._keyframes.ask(layer, urgent=False)

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

    def hear(self, reader: RelayReader, audio: bool) -> None:
        """A reader asked for the sound (True) or no longer wants it."""
        reader.hear(audio)
        if reader in self._readers:
            self._update_demand()

    def remove(self, reader: RelayReader) -> None:
        if reader not in self._readers:
            return
        self._readers.discard(reader)
        reader.stop()
        self._update_demand()

    def _place(self, reader: RelayReader, reason: str) -> None:
        """Put a reader on the rendition it asked for (or its ladder's rung), rounded to one in use
        when there are already as many as the camera may encode."""
        if not self._layers:
            return  # no camera yet: placed when one arrives
        reader.use_rungs(rungs(self._layers, reader.quality, reader.format, reader.jpeg_quality,
                               self._default_jpeg_quality))
        if reader.ladder is not None:
            self._start_adapting()
        self._move(reader, self._round(reader.rung(), reader), reason)

    def _round(self, wanted: Rendition, reader: RelayReader | None = None) -> Rendition:
        """``wanted``, or the nearest JPEG rendition in use (by others than ``reader``) when
        there are already ``max_renditions``: the camera is never asked for more."""
        in_use = {r.wanted for r in self._readers
                  if r is not reader and isinstance(r.wanted, JpegRendition)}
        in_use |= {rendition for rendition, _ in self._waiters}
        return within_cap(self._layers, wanted, in_use, self._max_renditions)

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
                self._keyframes.ask(rendition.layer, urgent=True)
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
            self._keyframes.ask(layer, urgent=True)

    def _behind(self, reader: RelayReader) -> None:
        if isinstance(reader.rendition, EncodedRendition) and reader.could_take_keyframe():
            self._keyframes.ask(reader.rendition.layer, urgent=False)

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
        audio = self._audio is not None and any(r.audio is not None for r in self._readers)
        if (demand, audio) != (self._demand, self._audio_demand):
            self._demand, self._audio_demand = demand, audio
            self._on_demand(*demand, audio)
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
            now = self._clock()
            moved = False
            for reader in [r for r in self._readers if r.ladder is not None]:
                move = reader.adapt(now)
                if move is not None:
                    self._move(reader, self._round(reader.rungs[move.rung], reader), move.reason)
                    moved = True
            if moved:
                self._update_demand()

    def publish(self, frame: bytes) -> RelayFrameHeader:
        """Hand a relay frame to the readers of its rendition; its header, or RelayFrameError
        (before anything changed) when it is not a relay frame, or not one of a layer the
        camera announced, at that layer's size. A frame of a rendition nobody here reads is
        dropped (the camera may not have heard yet; readers elsewhere get it from the caller).
        An Opus packet goes to the readers that asked for sound."""
        header, picture = parse_relay_frame(frame)
        if header.format == "audio":
            self._publish_audio(frame, header, len(picture))
            return header
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
        rendition = JpegRendition(info.name, header.jpeg_quality)
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

    def _publish_audio(self, frame: bytes, header: RelayFrameHeader, size: int) -> None:
        if self._audio is None:
            raise RelayFrameError("an audio relay frame, from a camera that announced no sound "
                                  "(its publish info has no audio)")
        if header.channels != self._audio.channels:
            raise RelayFrameError(f"audio relay frame of {header.channels} channels: the camera "
                                  f"announced {self._audio.channels}")
        if size > MAX_AUDIO_PACKET_BYTES:
            raise RelayFrameError(f"audio relay frame of {size} bytes: an Opus packet here is at "
                                  f"most {MAX_AUDIO_PACKET_BYTES}")
        self.audio_packets_in += 1
        if not self._audio_demand:
            self.audio_packets_unread += 1
            return
        for reader in self._readers:
            reader.offer_audio(frame, header.capture_time_us)

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
            self._keyframes.ask(layer, urgent="new" in waiting)

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
        """The camera is gone: its last frames are no longer news, and HTTP readers end."""
        self._held.clear()
        self._sequence.clear()
        self._layers = []
        self._audio = None
        self._made = None
        for reader in [r for r in self._readers if r.ends_with_camera]:
            self._readers.discard(reader)
            reader.stop()
        for reader in self._readers:
            reader.rendition, reader.pending, reader.wanted = None, None, None
            reader.slot.clear()
            if reader.audio is not None:
                reader.audio.clear()
        self._update_demand()
