"""One viewer's retransmissions, within a budget, and the padding that probes its link.

aiortc's sender answers every NACK at once, from a history of 128 packets, however
often the same packet is asked for. Its own receiver asks again for every missing packet
in that window each time another one goes missing. On a link that is already full
(a layer above what it carries) that is a storm: each loss brings retransmissions of
everything still missing, they are lost in turn, and the link never drains. Measured
under a 600 kbit/s cap: after moving a viewer from 720p to 360p (which alone fits) the
storm kept the loss above 60% and no frame of the new layer was decoded for 15 s.

``RtxStream`` takes over a sender's retransmissions, as real-time stacks bound theirs:
- a packet older than the last keyframe sent is never sent again: the viewer's decoder
  starts over at that keyframe (a layer move is one), so it cannot use it;
- the same packet goes again at most once per round trip, and at most ``MAX_RESENDS`` times;
- all retransmissions together stay within a share of the layer's bitrate: ``RTX_SHARE``
  while they help, less while loss lasts (the link is full, and repairs then take the
  video's place).

The same RTX stream carries probes: before a viewer moves up a layer, ``probe()`` sends
copies of packets at least 0.3 s old (the receiver drops them as duplicates) on top of the
video, up to the next layer's bitrate, and gives up as soon as the viewer reports loss.
A move up that would not fit costs padding (and on a link that the current layer nearly
fills, some repair of what the padding's overflow took), not a broken picture.

It reads and replaces private parts of aiortc's RTCRtpSender (its packet history, RTX
numbering and ``_retransmit``), on this one sender only; aiortc is pinned (>=1.16,<1.17)
and tests/test_rtxstream.py checks them against a real sender.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

from aiortc import RTCRtpSender
from aiortc import clock as aiortc_clock
from aiortc.rtp import RTP_HISTORY_SIZE, RtpPacket, wrap_rtx
from aiortc.utils import uint16_add, uint16_gt

#: Retransmissions may add this share of the layer's bitrate, in a bucket of one second...
RTX_SHARE = 0.5
#: ...while they help. Loss that lasts means the link is full, and repairs then crowd out
#: the video they repair: 360p at 500 kbit/s under a 600 kbit/s cap, with 200 kbit/s of
#: repairs on top, kept 20-28% of its packets lost for 8 s after a move down. A second in
#: which the viewer asked again for more than BACKOFF_LOSS of the packets halves the share,
#: down to MIN_SHARE; a second below CLEAN_LOSS adds SHARE_STEP back. (10%: a link that
#: loses 5% at random, full or not, keeps its repairs.)
BACKOFF_LOSS, CLEAN_LOSS = 0.10, 0.01
MIN_SHARE, SHARE_STEP = 0.1, 0.05
#: A packet is sent again at most this often (Chromium asks up to 10 times, and waits 3 s
#: for a packet that never comes before it asks for a keyframe)...
MAX_RESENDS = 8
#: ...and not again within a round trip (this long when none is known yet), between MIN_GAP
#: and MAX_GAP. Sooner, copies still in the queue crowd a full link (0.15 s did, behind a
#: cap whose queue made the round trip 350 ms); much later, aiortc's smoothed estimate,
#: which falls slowly once a queue drains (350 to 50 ms over 20 s), would keep a repair
#: back longer than a receiver waits.
DEFAULT_RTT, MIN_GAP, MAX_GAP = 0.1, 0.02, 0.4
#: A probe lasts at most this long, and fails when the viewer asks again for more than
#: this share of the video packets sent during it. Long enough to fill a link's queue:
#: under a 1200 kbit/s cap (16 kB burst, 150 ms of queue) a 1 s probe to 1413 kbit/s
#: passed, its excess held in the queue, and each move to 480p that followed lost 35-48%
#: and came back down, three times a minute.
PROBE_SECONDS = 2.5
PROBE_LOSS = 0.02
#: How long a probe waits for the viewer's receiver report that covers its end (aiortc
#: sends one every 0.5 to 1.5 s, Chromium about every second).
REPORT_WAIT = 2.0
#: Padding repeats packets sent at least this long before (see ``_pad``).
PAD_DELAY = 0.3
#: The video's own rate, which a probe pads up from, is measured over at least this long.
RATE_SPAN = 0.25
_PROBE_TICK = 0.02


class _History(dict):
    """aiortc's packet history (sequence number % 128 -> packet), noting where the newest
    keyframe starts: the sender stores each packet here just before sending it."""

    def __init__(self) -> None:
        super().__init__()
        self.keyframe_next = False  # the next frame handed to the sender is a keyframe
        self.frame_started = True
        self.keyframe_start: int | None = None  # the sequence number of its first packet
        self.sent = 0  # packets sent
        self.last: RtpPacket | None = None
        self.sent_at: dict[int, float] = {}  # key -> when its packet was sent

    def frame(self, keyframe: bool) -> None:
        self.keyframe_next, self.frame_started = keyframe, False

    def __setitem__(self, key: int, packet: RtpPacket) -> None:
        if not self.frame_started:
            self.frame_started = True
            if self.keyframe_next:
                self.keyframe_start = packet.sequence_number
        self.sent += 1
        self.last = packet
        self.sent_at[key] = time.monotonic()
        super().__setitem__(key, packet)


@dataclass(frozen=True)
class ProbeResult:
    """What a probe found: ``fits`` or not, and why, for people."""

    fits: bool
    reason: str


class RtxStream:
    """One viewer's retransmissions and probe padding (see the module's doc)."""

    def __init__(self, sender: RTCRtpSender, bitrate: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._sender = sender
        self._clock = clock
        self._history = _History()
        sender._RTCRtpSender__rtp_history = self._history  # type: ignore[attr-defined]
        sender._retransmit = self._retransmit  # type: ignore[method-assign]
        self._resent: dict[int, tuple[float | None, int]] = {}  # asked for: seq -> (last sent, times)
        #: The layer's bitrate (bits a second), which the budget is a share of.
        self.bitrate = bitrate
        self.share = RTX_SHARE  # of the bitrate, for retransmissions now
        self._tokens = RTX_SHARE * bitrate / 8  # full: the first keyframe may need repair at once
        self._filled_at = clock()
        self._assessed = (clock(), 0, 0)  # when the share was last set, and counts() then
        self._nacked = 0  # distinct packets the viewer asked for
        self.retransmitted = 0
        self.refused = 0  # asked for, not sent: obsolete, too soon, too often or over budget

    def __repr__(self) -> str:
        return (f"<RtxStream sent {self._history.sent} nacked {self._nacked} resent "
                f"{self.retransmitted} refused {self.refused} share {self.share:.2f}>")

    @property
    def counts(self) -> tuple[int, int]:
        """(packets sent, distinct packets the viewer asked for again) so far."""
        return self._history.sent, self._nacked

    def frame(self, keyframe: bool) -> None:
        """The sender is about to send a frame (called from its track's ``pack``)."""
        self._history.frame(keyframe)
        self._assess(self._clock())

    def _assess(self, now: float) -> None:
        """Once a second: the share for retransmissions, by the loss in that second."""
        then, sent_then, nacked_then = self._assessed
        if now - then < 1.0:
            return
        sent, nacked = self._history.sent - sent_then, self._nacked - nacked_then
        self._assessed = (now, self._history.sent, self._nacked)
        if sent and nacked > BACKOFF_LOSS * sent:
            self.share = max(MIN_SHARE, self.share / 2)
        elif nacked <= CLEAN_LOSS * sent:
            self.share = min(RTX_SHARE, self.share + SHARE_STEP)

    def _refill(self, now: float) -> None:
        rate = self.share * self.bitrate / 8  # bytes a second; the bucket holds one second
        self._tokens = min(rate, self._tokens + (now - self._filled_at) * rate)
        self._filled_at = now

    def _rtt(self) -> float:
        rtt = getattr(self._sender, "_RTCRtpSender__rtt", None)
        return min(MAX_GAP, max(MIN_GAP, rtt if rtt is not None else DEFAULT_RTT))

    async def _retransmit(self, sequence_number: int) -> None:
        """The viewer lost this packet (a NACK): send it again if it can still help."""
        now = self._clock()
        packet = self._history.get(sequence_number % RTP_HISTORY_SIZE)
        if packet is None or packet.sequence_number != sequence_number:
            return  # never sent, or long gone
        if sequence_number not in self._resent:
            self._nacked += 1  # once, however often it is asked for (it may be refused below)
            self._resent[sequence_number] = (None, 0)
            if len(self._resent) > 2 * RTP_HISTORY_SIZE:
                self._forget_old()
        last, times = self._resent[sequence_number]
        start = self._history.keyframe_start
        if start is not None and uint16_gt(start, sequence_number):
            self.refused += 1  # before the newest keyframe: the viewer's decoder starts there
            return
        if times >= MAX_RESENDS or (last is not None and now - last < self._rtt()):
            self.refused += 1
            return
        self._refill(now)
        if self._tokens < len(packet.payload):
            self.refused += 1
            return
        self._tokens -= len(packet.payload)
        self._resent[sequence_number] = (now, times + 1)
        self.retransmitted += 1
        await self._send_rtx(packet)

    def _forget_old(self) -> None:
        """Packets that left the history cannot be asked for again."""
        kept = {p.sequence_number for p in self._history.values()}
        self._resent = {s: v for s, v in self._resent.items() if s in kept}

    def _pad_candidates(self, now: float) -> list[RtpPacket]:
        """Packets sent at least PAD_DELAY ago, the most recent first."""
        history = self._history
        aged = [(sent, key) for key, sent in history.sent_at.items()
                if now - sent >= PAD_DELAY and key in history]
        return [history[key] for _, key in sorted(aged, reverse=True)]

    async def _send_rtx(self, packet: RtpPacket) -> None:
        sender = self._sender
        payload_type = sender._RTCRtpSender__rtx_payload_type  # type: ignore[attr-defined]
        if payload_type is not None:
            number = sender._RTCRtpSender__rtx_sequence_number  # type: ignore[attr-defined]
            packet = wrap_rtx(packet, payload_type=payload_type, sequence_number=number,
                              ssrc=sender._rtx_ssrc)
            sender._RTCRtpSender__rtx_sequence_number = uint16_add(number, 1)  # type: ignore[attr-defined]
        data = packet.serialize(sender._RTCRtpSender__rtp_header_extensions_map)  # type: ignore[attr-defined]
        await sender.transport._send_rtp(data)

    @property
    def can_probe(self) -> bool:
        """Probes need RTX, so that the viewer can tell padding from video."""
        return getattr(self._sender, "_RTCRtpSender__rtx_payload_type", None) is not None

    async def probe(self, target: int, seconds: float = PROBE_SECONDS) -> ProbeResult:
        """Send padding on top of the video, rising over half of ``seconds`` until the link
        carries ``target`` bits a second in all, then holding there; fails at the first sign
        that it does not fit. Rising, so that a link that does not fit fills its queue late
        and little is lost by the time the viewer's NACKs say so.

        The verdict waits for the viewer's first receiver report after the padding: the
        last of it is still in the link's queue when it stops, and its losses show only there.
        """
        start = last = self._clock()
        before = (self._history.sent, self._nacked)
        owed = planned = 0.0
        padded = 0
        while (now := self._clock()) - start < seconds:
            if (lost := self._nacks_since(before)) is not None:
                return ProbeResult(False, f"{lost} while probing {target / 1000:.0f} kbit/s")
            # On top of what the video sends (measured: an encoder often stays well below its
            # layer's bitrate, and padding up to that bitrate alone passed a 300 kbit/s link
            # on a probe of 471), so that the link carries ``target`` in all.
            extra = max(0.0, target / 8 - self._video_rate())
            due = (now - last) * extra * min(1.0, 2 * (now - start) / seconds)
            planned += due
            last = now
            owed, sent = await self._pad(owed + due)
            padded += sent
            await asyncio.sleep(_PROBE_TICK)
        if padded < planned / 2:  # too young a history to copy: nothing was tried
            return ProbeResult(False, f"only {padded} of {planned:.0f} bytes of padding to send")
        padded_until = aiortc_clock.current_datetime()
        deadline = self._clock() + REPORT_WAIT
        while self._clock() < deadline:
            if (lost := self._nacks_since(before)) is not None:
                return ProbeResult(False, f"{lost} after probing {target / 1000:.0f} kbit/s")
            fraction_lost = await self._report_after(padded_until)
            if fraction_lost is not None:
                if fraction_lost > PROBE_LOSS:
                    return ProbeResult(False, f"{100 * fraction_lost:.0f}% loss after probing "
                                              f"{target / 1000:.0f} kbit/s")
                return ProbeResult(True, f"{target / 1000:.0f} kbit/s got through")
            await asyncio.sleep(_PROBE_TICK)
        return ProbeResult(False, "no receiver report after the probe")

    def _video_rate(self) -> float:
        """Bytes a second of video sent lately: the packets in the history (128: most of a
        second at 720p, seconds at 180p) over the time since the oldest. The layer's bitrate
        while they span less than RATE_SPAN (a keyframe's burst is no rate)."""
        history = self._history
        sent = [(history.sent_at[key], len(packet.payload)) for key, packet in history.items()
                if key in history.sent_at]
        span = time.monotonic() - min(at for at, _ in sent) if sent else 0.0
        if span < RATE_SPAN:
            return self.bitrate / 8
        return sum(size for _, size in sent) / span

    def _nacks_since(self, before: tuple[int, int]) -> str | None:
        """Says how many packets the viewer asked for again since ``before``, if that is too many."""
        sent, nacked = self._history.sent - before[0], self._nacked - before[1]
        return f"{nacked} of {sent} packets lost" if nacked > PROBE_LOSS * sent else None

    async def _report_after(self, moment) -> float | None:
        """The loss in the viewer's newest receiver report, if it came after ``moment``."""
        for item in (await self._sender.getStats()).values():
            if item.type == "remote-inbound-rtp" and item.timestamp > moment:
                return item.fractionLost / 256  # RTCP: 8-bit
        return None

    async def _pad(self, owed: float) -> tuple[float, int]:
        """Send copies of recent packets, up to ``owed`` bytes; returns what is still owed
        and the bytes sent.

        Copies of what was sent PAD_DELAY before: late enough that a packet the probe's own
        overflow lost has been asked for again by then (the verdict counts it: Chromium's
        receiver reports count a packet that a copy brought as received, and copies 50 ms
        behind let a probe pass on a link that could not carry it), and soon enough that the
        copy may still bring it where the request was lost (the picture is spared).
        """
        sent = 0
        for packet in self._pad_candidates(time.monotonic()):
            if owed < len(packet.payload):
                break
            owed -= len(packet.payload)
            sent += len(packet.payload)
            await self._send_rtx(packet)
        # A packet's worth owed at most: a short history must not build a burst.
        return min(owed, 1500.0), sent
