"""Encode once, send to all: each viewer's sender track reads the shared packets.

Each frame of a layer is encoded once and split into RTP payloads once
(``RtpPacketizer``); each viewer gets a FanOutTrack that hands those same payloads to its
RTCRtpSender, which then only numbers, encrypts and sends them, in the fan-out's one pass
over its viewers (packetsender.py: no task wake-up per viewer per frame). aiortc would
otherwise make an encoder per sender and packetize every frame again for every viewer.

Keyframes: a track starts at a keyframe, asking for one when its sender starts (the
connection is up); it honours the viewer's PLI/FIR; and when its link does not keep up
(its socket's backlog full: a slow viewer) it drops the frame and waits for the next
keyframe rather than lag behind or grow.

Layers: a track reads one layer's FanOut and can move to another without
renegotiation. It asks the new layer for a keyframe at once, goes on sending the old
layer until that keyframe comes (unless the move is away from a layer the link does not
carry: then the old layer stops at once, so that the link's queue drains before the new
keyframe comes), and switches there (or at the next one, when that one
shows an earlier moment than the old layer already sent: a just-started encoder lags).
The sender keeps numbering RTP packets in one sequence, and for VP8 the track renumbers
picture ids so that they continue too: a decoder that sees a gap in them would wait for
frames that never come.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass

import av
from aiortc import MediaStreamTrack, RTCRtpSender
from aiortc.codecs.h264 import H264Encoder
from aiortc.codecs.vpx import Vp8Encoder

from .packetsender import PacketSender
from .rtxstream import RtxStream

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EncodedFrame:
    payloads: list[bytes]  # RTP payloads, shared by every viewer's sender
    timestamp: int  # RTP timestamp, 90 kHz
    keyframe: bool
    capture_time: float  # Unix seconds
    number: int
    layer: str = ""


#: VP8 payload descriptors as aiortc writes them: X and I set, a 15-bit picture id (M set)
#: in bytes 2-3.
_VP8_PICTURE_ID_FLAGS = 0x80


def vp8_picture_id(payload: bytes) -> int | None:
    """The picture id of an aiortc VP8 payload, or None if the descriptor has none."""
    if len(payload) >= 4 and payload[0] & 0x80 and payload[1] & 0x80 and payload[2] & 0x80:
        return ((payload[2] & 0x7F) << 8) | payload[3]
    return None


def renumber_vp8(payloads: list[bytes], picture_id: int) -> list[bytes]:
    """The same payloads carrying another picture id."""
    id_bytes = bytes(((picture_id >> 8) & 0x7F | 0x80, picture_id & 0xFF))
    return [p[:2] + id_bytes + p[4:] for p in payloads]


class RtpPacketizer:
    """Splits each encoded packet into RTP payloads, once for all viewers.

    aiortc's own packetizers do the work. VP8's carries a picture id that counts frames,
    so every viewer sees one sequence of ids, as it would from its own sender.
    """

    def __init__(self, codec: str) -> None:
        self._packer = Vp8Encoder() if codec == "vp8" else H264Encoder()

    def packetize(self, packet: av.Packet) -> tuple[list[bytes], int]:
        return self._packer.pack(packet)


class _Prepacketized:
    """Stands in for the encoder RTCRtpSender makes for itself: frames arrive packetized.

    Set through a private attribute (aiortc is pinned; tests/test_fanout.py plays real
    video through it). The viewer's REMB bitrate estimate lands in ``target_bitrate``: it
    never changes a shared encoder, but the viewer's layer choice reads it. The sender
    calls ``pack`` just before it sends a frame's packets: the viewer's RTX stream learns
    there where keyframes begin.
    """

    def __init__(self, rtx: RtxStream) -> None:
        self.target_bitrate = 0
        self._rtx = rtx

    def pack(self, frame: EncodedFrame) -> tuple[list[bytes], int]:
        self._rtx.frame(frame.keyframe)
        return frame.payloads, frame.timestamp


def _take_keyframe_request(sender: RTCRtpSender) -> bool:
    """Read and clear the flag aiortc sets on PLI/FIR.

    aiortc only consults it when encoding raw frames itself, so in passthrough the
    request would be lost. This is a private attribute: aiortc is pinned for it and
    tests/test_fanout.py checks that a PLI reaches the encoder.
    """
    requested = getattr(sender, "_RTCRtpSender__force_keyframe", False)
    if requested:
        sender._RTCRtpSender__force_keyframe = False  # type: ignore[attr-defined]
    return requested


class FanOutTrack(MediaStreamTrack):
    """One viewer's view of the shared encoded stream: one layer at a time."""

    kind = "video"

    def __init__(self, fanout: FanOut, viewer_id: str) -> None:
        super().__init__()
        self.viewer_id = viewer_id
        self._fanout = fanout
        #: The layer this track moves to at its next keyframe, while a switch is under way.
        self._pending: FanOut | None = None
        self._sender: RTCRtpSender | None = None
        self._prepacketized: _Prepacketized | None = None
        self._packet_sender: PacketSender | None = None
        self._need_keyframe = True
        #: VP8 picture ids: the last one sent, and what to add to the layer's own.
        self._last_picture_id: int | None = None
        self._picture_id_offset = 0
        self._last_timestamp: int | None = None
        self._last_number: int | None = None  # the capture frame number last sent
        self._passed_stale_keyframe = False  # in the switch under way
        self._old_layer_stopped = False  # in the switch under way: nothing more of the old layer
        self.frames_sent = 0
        self.frames_dropped = 0
        self.keyframe_requests = 0
        #: Of those, the ones the viewer sent (PLI/FIR), and how often its backlog was full.
        self.viewer_keyframe_requests = 0
        self.queue_overflows = 0
        self.layer_switches = 0
        #: Called with the layer's name when the first frame goes out, and after each switch.
        self.on_switched: Callable[[str], None] | None = None
        fanout.add(self)

    @property
    def layer(self) -> str:
        """The layer this track sends now."""
        return self._fanout.layer

    @property
    def switching_to(self) -> str | None:
        return self._pending.layer if self._pending is not None else None

    @property
    def bitrate_estimate(self) -> int | None:
        """The viewer's latest REMB estimate (bits per second), if it sends them."""
        estimate = self._prepacketized.target_bitrate if self._prepacketized is not None else 0
        return estimate or None

    def attach_sender(self, sender: RTCRtpSender, rtx: RtxStream) -> None:
        """Send through ``sender``, whose retransmissions ``rtx`` has taken over, from when
        aiortc starts it."""
        self._sender = sender
        self._prepacketized = _Prepacketized(rtx)
        sender._RTCRtpSender__encoder = self._prepacketized  # type: ignore[attr-defined]
        self._packet_sender = PacketSender(sender, on_started=self._wait_for_keyframe)

    @property
    def _sending(self) -> bool:
        return self._packet_sender is not None and self._packet_sender.sending

    def switch(self, fanout: FanOut, stop_now: bool = False) -> None:
        """Move to another layer at its next keyframe (asked for now); no renegotiation.
        ``stop_now``: send nothing more of the current layer meanwhile (the link does not
        carry it: what is sent of it only delays the new layer's keyframe)."""
        if self._pending is not None:
            self._pending.remove(self)
            self._pending = None
        if fanout is self._fanout:
            return
        self._pending = fanout
        self._passed_stale_keyframe = False
        self._old_layer_stopped = stop_now
        fanout.add(self)
        if self._sending:
            fanout.request_keyframe()

    def refresh(self) -> None:
        """Send a keyframe soon, holding nothing back meanwhile: for a viewer whose link just
        lost a burst of packets (a probe that did not fit), a fresh picture may come sooner
        than the old one's repair through the same full queue."""
        (self._pending or self._fanout).request_keyframe()

    def push(self, frame: EncodedFrame) -> None:
        """Called for every encoded frame of the layers this track reads: sends it now, if it
        is this viewer's to send; never blocks."""
        if not self._sending:
            return  # not connected yet, or no more
        if self._sender is not None and _take_keyframe_request(self._sender):
            self.keyframe_requests += 1
            self.viewer_keyframe_requests += 1
            (self._pending or self._fanout).request_keyframe(urgent=self._need_keyframe)
        frame = self._next(frame)
        if frame is None:
            return
        if self._packet_sender.send(frame):  # type: ignore[union-attr]
            self.frames_sent += 1
            if self.frames_sent == 1 and self.on_switched is not None:
                self.on_switched(self.layer)
        elif self._sending:  # the viewer's backlog is full: what follows needs a keyframe
            self.queue_overflows += 1
            self.frames_dropped += 1
            self._wait_for_keyframe()

    def _wait_for_keyframe(self) -> None:
        self._need_keyframe = True
        self.keyframe_requests += 1
        (self._pending or self._fanout).request_keyframe()

    def _next(self, frame: EncodedFrame) -> EncodedFrame | None:
        """The frame as this viewer's sender must send it, or None if it is not to be sent:
        another layer's, or not a keyframe where one is needed."""
        pending = self._pending
        if pending is not None and frame.layer == pending.layer:
            if not frame.keyframe:
                return None  # the new layer starts at its keyframe
            if self._stale(frame):
                # Its encoder just started and lags the layer being sent: this keyframe
                # would take the picture back in time. Its next one, warm, keeps up.
                self._passed_stale_keyframe = True
                pending.request_keyframe()
                return None
            self._fanout.remove(self)
            self._fanout, self._pending = pending, None
            self._need_keyframe = False
            self.layer_switches += 1
            self._continue_picture_ids(frame)
            if self.on_switched is not None:
                self.on_switched(self.layer)
        elif frame.layer != self._fanout.layer or (pending is not None and self._old_layer_stopped):
            return None  # the old layer's, after a switch began, or stopped
        if self._need_keyframe and not frame.keyframe:
            self.frames_dropped += 1
            return None
        self._need_keyframe = False
        self._last_number = frame.number
        return self._numbered(frame)

    async def recv(self) -> EncodedFrame:
        raise RuntimeError("a FanOutTrack is sent through attach_sender(), not read")

    def _stale(self, keyframe: EncodedFrame) -> bool:
        """A new layer's keyframe older than the frame last sent (passed over once a switch:
        the next one is taken whatever it shows, so a switch always ends)."""
        return (not self._passed_stale_keyframe and self._last_number is not None
                and keyframe.number < self._last_number)

    def _continue_picture_ids(self, keyframe: EncodedFrame) -> None:
        """A new layer counts its own picture ids: carry on from the last one sent."""
        first = vp8_picture_id(keyframe.payloads[0]) if keyframe.payloads else None
        if first is not None and self._last_picture_id is not None:
            self._picture_id_offset = (self._last_picture_id + 1 - first) % 0x8000

    def _numbered(self, frame: EncodedFrame) -> EncodedFrame:
        """The frame as this viewer's sender must see it: later than the one before, and for
        VP8 with the next picture id. Untouched (shared) unless a layer switch moved them."""
        changes: dict = {}
        last = self._last_timestamp
        # The layers encode in parallel: the old layer's frame N+1 may have gone out before
        # the new layer's keyframe N. A decoder drops a frame older than one it has shown.
        if last is not None and not 0 < (frame.timestamp - last) % 2**32 < 2**31:
            changes["timestamp"] = (last + 1) % 2**32
        self._last_timestamp = changes.get("timestamp", frame.timestamp)
        picture_id = vp8_picture_id(frame.payloads[0]) if frame.payloads else None
        if picture_id is not None:  # VP8 (H.264 has no picture ids)
            picture_id = (picture_id + self._picture_id_offset) % 0x8000
            self._last_picture_id = picture_id
            if self._picture_id_offset:
                changes["payloads"] = renumber_vp8(frame.payloads, picture_id)
        return dataclasses.replace(frame, **changes) if changes else frame

    def stop(self) -> None:
        super().stop()
        self._fanout.remove(self)
        if self._pending is not None:
            self._pending.remove(self)


class FanOut:
    """One layer's encoded stream and the tracks that read it."""

    def __init__(self, request_keyframe: Callable[..., None], layer: str = "") -> None:
        self.request_keyframe = request_keyframe
        self.layer = layer
        self._tracks: set[FanOutTrack] = set()

    def __len__(self) -> int:
        return len(self._tracks)

    def subscribe(self, viewer_id: str) -> FanOutTrack:
        return FanOutTrack(self, viewer_id)

    def add(self, track: FanOutTrack) -> None:
        self._tracks.add(track)

    def remove(self, track: FanOutTrack) -> None:
        self._tracks.discard(track)

    def publish(self, frame: EncodedFrame) -> None:
        """Sends ``frame`` to every viewer whose track reads this layer, in one pass."""
        for track in list(self._tracks):
            try:
                track.push(frame)
            except Exception:  # one viewer's failure is its own
                log.exception("sending a frame to viewer %s failed", track.viewer_id)
