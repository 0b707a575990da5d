"""A relay reader: one WebSocket viewer, MJPEG response, snapshot or recorder of a stream's relay.

A reader has a slot (slots.py) and one task that delivers from it, so a slow reader never
delays the others. When its socket still holds too much, a JPEG reader skips the frame and an
encoded one falls behind to the next keyframe (the hub asks the camera for it). A reader
whose socket takes a frame at once is sent it from the hub's own loop, with no task to wake.

A reader whose viewer asked for sound has an AudioQueue beside its slot: its Opus packets go
before any picture, and are never dropped to make room for pictures (a socket that holds too
much drops pictures only); the queue drops its own oldest packets past its bounds.

A reader in ``auto`` adapts like the camera's P2P viewers, with the same Ladder
(peercam/shared/adaptation.py): its rungs are the renditions it may read, best first, and
once a second (``adapt``) the share of frames its slot skipped is the evidence. Which
rendition a rung is, and when it is read, is the hub's business.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from peercam.shared.adaptation import Ladder, Move
from peercam.shared.protocol import LayerInfo

from .renditions import EncodedRendition, Rendition
from .slots import AudioQueue, EncodedSlot, NewestFrameSlot
from .totals import RelayTotals

__all__ = ["PROBE_EVERY", "RelayReader"]

log = logging.getLogger(__name__)

#: A reader whose socket was empty at the last probe is probed every this many frames.
PROBE_EVERY = 4
#: A reader that skips this share of its frames in a second is in trouble.
_SKIPPING = 0.2


class RelayReader:
    """One reader of a relay (a WebSocket viewer, an MJPEG response, a snapshot)."""

    def __init__(self, name: str, deliver: Callable[[bytes], Awaitable[None]], format: str = "jpeg",
                 ends_with_camera: bool = False,
                 on_rendition: Callable[[Rendition, LayerInfo, str], None] | None = None,
                 backlog: Callable[[], int] | None = None,
                 send_now: Callable[[bytes], bool] | None = None, audio: bool = False) -> None:
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
        #: The renditions it may read, best first (set by the hub: ``use_rungs``), and the
        #: ladder that picks one when there is a choice.
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
        #: Its sound's Opus packets, while its viewer asked for sound (None: it gets none).
        self.audio: AudioQueue | None = AudioQueue() if audio else None
        self._ready = asyncio.Event()
        self._task: asyncio.Task | None = None
        self.frames_sent = 0
        self.bytes_sent = 0
        self.frames_skipped = 0  # never sent: replaced by a newer frame, or dropped to a keyframe
        self.rendition_switches = 0
        self.audio_packets_sent = 0
        self.audio_packets_dropped = 0  # pushed out of its AudioQueue by newer ones
        self._sampled = (0, 0)  # frames sent and skipped at the last adaptation sample

    def offer(self, frame: bytes, keyframe: bool = True) -> None:
        self._skipped(self.slot.put(frame, keyframe))
        if self._idle and self._send_now is not None:
            self._send_waiting()
        else:
            self._ready.set()

    def offer_audio(self, packet: bytes, capture_time_us: int) -> None:
        """An Opus packet (a relay frame), for a reader that asked for sound."""
        if self.audio is None:
            return
        dropped = self.audio.put(packet, capture_time_us)
        self.audio_packets_dropped += dropped
        self.totals.audio_packets_dropped += dropped
        if self._idle and self._send_now is not None:
            self._send_waiting()
        else:
            self._ready.set()

    def hear(self, audio: bool) -> None:
        """Start (True) or stop getting the sound; a newcomer's starts at the next packet."""
        if audio and self.audio is None:
            self.audio = AudioQueue()
        elif not audio:
            self.audio = None

    def _send_waiting(self) -> None:
        """Send what the slot holds (sound first) while the socket takes it at once; the
        task takes over when it would have to wait."""
        while True:
            packet = self.audio.peek() if self.audio is not None else None
            if packet is not None:
                if not self._send_now(packet):
                    self._ready.set()
                    return
                self.audio.take()
                self._sent_audio(packet)
                continue
            frame = self.slot.peek()
            if frame is None:
                return
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

    def _sent_audio(self, packet: bytes) -> None:
        self.audio_packets_sent += 1
        self.bytes_sent += len(packet)
        self.totals.audio_packets_sent += 1
        self.totals.bytes_sent += len(packet)

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
                while True:
                    packet = self.audio.take() if self.audio is not None else None
                    if packet is not None:  # sound first: it waits behind no picture
                        await self._deliver(packet)
                        self._sent_audio(packet)
                        continue
                    frame = self.slot.take()
                    if frame is None:
                        break
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

    def use_rungs(self, rungs: list[Rendition]) -> None:
        """The renditions it may read, best first. New ones get a new ladder (none for a
        single rung: nothing to choose), which starts at the best."""
        if rungs == self.rungs:
            return
        self.rungs = rungs
        # A relay reader can try a rung cheaply (no loss to wait out): it climbs faster
        # than a P2P viewer.
        self.ladder = Ladder(len(rungs), up_after=6, up_after_success=2, probe_seconds=2
                             ) if len(rungs) > 1 else None

    def rung(self) -> Rendition:
        """The rendition its ladder stands on (the only one without a ladder)."""
        return self.rungs[self.ladder.rung if self.ladder is not None else 0]

    def adapt(self, now: float) -> Move | None:
        """One sample for its ladder, once a second (``now`` in seconds): trouble if its slot
        skipped a fifth of the frames since the last sample (the more, the more rungs at
        once), else clean. A move to another rung, or None."""
        if self.ladder is None:
            return None
        skipped = self.skipping()
        if self.rendition is None:
            return None
        trouble, ceiling = None, None
        if skipped >= _SKIPPING:  # far behind: more than one rung at once
            trouble = f"{100 * skipped:.0f}% of frames skipped"
            ceiling = self.ladder.rung + (3 if skipped > 0.75 else 2 if skipped > 0.5 else 1)
        return self.ladder.observe(now, trouble, ceiling)

    def skipping(self) -> float:
        """The share of frames this reader skipped since the last call."""
        sent, skipped = self.frames_sent - self._sampled[0], self.frames_skipped - self._sampled[1]
        self._sampled = (self.frames_sent, self.frames_skipped)
        return skipped / (sent + skipped) if sent + skipped else 0.0
