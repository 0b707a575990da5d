"""Talk back from a Python viewer (``peercam view --talk FILE|DEVICE``).

Once the P2P connection is up the viewer asks for the floor (``talk-start``). When the
camera's ``talking`` names it, the file's sound goes out on the connection's audio
transceiver (``replaceTrack``, no renegotiation); at the file's end it stops sending and
gives the floor back (``talk-stop``). A refusal, or a turn the camera ends, is told as an
event, and the view goes on. It talks once: one file, one turn.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Literal

from peercam.shared.protocol import Talking, TalkRefused, TalkStart, TalkStop

from .p2ptransport import P2PTransport
from .talktrack import TalkTrack

__all__ = ["Talker"]

log = logging.getLogger(__name__)


class Talker:
    """Asks for the floor once, talks while it holds it, gives it back at the sound's end.
    ``event(text)`` tells the person; raises UsageError for a file or device it cannot read."""

    def __init__(self, spec: str, send: Callable[[object], Awaitable[None]],
                 event: Callable[[str], None]) -> None:
        self._track = TalkTrack(spec)  # opened now: a bad file fails at the start, not later
        self._send = send
        self._event = event
        self._transport: P2PTransport | None = None
        self._ending: asyncio.Task | None = None
        self.state: Literal["idle", "asked", "talking", "done"] = "idle"

    async def connected(self, transport: P2PTransport) -> None:
        """A P2P connection is up: ask for the floor (once)."""
        if self.state != "idle":
            return
        self._transport = transport
        self.state = "asked"
        await self._send(TalkStart())

    def on_relay(self) -> None:
        """The viewer is on the relay: this viewer talks over P2P only (for now)."""
        if self.state == "idle":
            self._event("talk back from `peercam view` needs a P2P connection; on the relay it waits for one")

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
                if self._transport.set_talk_track(self._track):
                    self.state = "talking"
                    self._event("talking")
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

    async def _let_go(self) -> None:
        if self._transport is not None:
            self._transport.set_talk_track(None)
        if self._ending is not None and self._ending is not asyncio.current_task():
            self._ending.cancel()

    def close(self) -> None:
        if self._ending is not None:
            self._ending.cancel()
        self._track.stop()
