"""Talk back from a Python viewer (``peercam view --talk FILE|DEVICE|tone``).

Once a transport delivers (P2P connected, or the relay) the viewer asks for the floor
(``talk-start``). When the camera's ``talking`` names it, the file's sound goes out: on
P2P on the connection's audio transceiver (``replaceTrack``, no renegotiation); on the
relay as talk frames up the WebSocket (Opus relay frames, version 3, encoded here). At
the file's end it stops sending and gives the floor back (``talk-stop``). A refusal, or a
turn the camera ends, is told as an event, and the view goes on. It talks once: one file,
one turn.
"""

from __future__ import annotations

import asyncio
import fractions
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Literal

import av

from peercam.shared.protocol import Talking, TalkRefused, TalkStart, TalkStop
from peercam.shared.relayframe import RelayFrameHeader

from .p2ptransport import P2PTransport
from .relaytransport import RelayTransport
from .talktrack import SAMPLE_RATE, TalkTrack

__all__ = ["Talker"]

log = logging.getLogger(__name__)


class Talker:
    """Asks for the floor once, talks while it holds it, gives it back at the sound's end.
    ``event(text)`` tells the person; raises UsageError for a file or device it cannot read."""

    def __init__(self, spec: str, send: Callable[[object], Awaitable[None]],
                 send_bytes: Callable[[bytes], Awaitable[None]], event: Callable[[str], None]) -> None:
        self._track = TalkTrack(spec)  # opened now: a bad file fails at the start, not later
        self._send = send
        self._send_bytes = send_bytes
        self._event = event
        self._transport: P2PTransport | RelayTransport | None = None
        self._ending: asyncio.Task | None = None
        self._pump: asyncio.Task | None = None  # on the relay: the sound, up the WebSocket
        self.state: Literal["idle", "asked", "talking", "done"] = "idle"

    async def ready(self, transport: P2PTransport | RelayTransport) -> None:
        """A transport delivers (P2P connected, or the relay): ask for the floor (once)."""
        if self.state != "idle":
            return
        self._transport = transport
        self.state = "asked"
        await self._send(TalkStart())

    async def handle(self, message: Talking | TalkRefused | TalkStop, my_id: str | None) -> None:
        if isinstance(message, TalkRefused):
            if self.state in ("asked", "talking"):
                await self._let_go()
                self.state = "done"
            self._event(f"talk refused: {message.reason}")
        elif isinstance(message, TalkStop):  # the camera ended the turn
            if self.state == "talking":
                await self._let_go()
                self.state = "done"
            self._event(f"talk stopped by the camera: {message.reason}" if message.reason
                        else "talk stopped by the camera")
        elif message.peer_id is not None and message.peer_id == my_id:
            if self.state == "asked" and self._transport is not None:
                if isinstance(self._transport, RelayTransport):
                    self._pump = asyncio.create_task(self._send_on_the_relay())
                elif not self._transport.set_talk_track(self._track):
                    return
                self.state = "talking"
                self._event(f"talking ({self._transport.mode})")
                self._ending = asyncio.create_task(self._end_at_the_sound_s_end())
        elif self.state == "talking":  # the floor went to someone else, or to nobody
            await self._let_go()
            self.state = "done"

    async def _end_at_the_sound_s_end(self) -> None:
        await self._track.ended.wait()
        if self.state == "talking":
            self.state = "done"
            await self._let_go()
            await self._send(TalkStop())
            self._event("stopped talking (the end of the sound)")

    async def _send_on_the_relay(self) -> None:
        """The sound as talk frames: libopus here, 20 ms a packet, each with its capture time."""
        encoder = av.CodecContext.create("libopus", "w")
        encoder.sample_rate, encoder.layout, encoder.format = SAMPLE_RATE, "mono", "s16"
        encoder.time_base = fractions.Fraction(1, SAMPLE_RATE)
        encoder.options = {"application": "voip", "frame_duration": "20"}
        started, sequence = time.time(), 0
        while not self._track.ended.is_set():
            frame = await self._track.recv()
            for packet in encoder.encode(frame):
                capture = started + (packet.pts or 0) / SAMPLE_RATE
                header = RelayFrameHeader.audio(sequence, round(capture * 1_000_000), SAMPLE_RATE, 1)
                sequence += 1
                await self._send_bytes(header.pack(bytes(packet)))

    async def _let_go(self) -> None:
        if self._pump is not None:
            self._pump.cancel()
            self._pump = None
        if isinstance(self._transport, P2PTransport):
            self._transport.set_talk_track(None)
        if self._ending is not None and self._ending is not asyncio.current_task():
            self._ending.cancel()

    def close(self) -> None:
        for task in (self._ending, self._pump):
            if task is not None:
                task.cancel()
        self._track.stop()
