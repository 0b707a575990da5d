"""How the picture gets here: which transport runs, and when to change it.

The rules, the same as the page's (web/js/delivery.js; tests/delivery_cases.json runs against both):
  p2p    P2P only, offering again after each failure;
  relay  the relay only;
  auto   P2P, and the relay when P2P has no video within the connect timeout or breaks;
         meanwhile P2P is tried again in the background every so often, and takes over
         (the relay stops) once it shows its first frame.
The sound, when the viewer wants it, comes through the same transports: only the one in
use is heard, and a P2P attempt in the background is heard once it takes over.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Callable

from .audioframe import AudioFrame
from .frame import Frame
from .p2ptransport import NetworkFigures, P2PTransport
from .relaytransport import RelayTransport

log = logging.getLogger(__name__)

#: Pause before trying again after a failed session, so a broken camera is not hammered.
RETRY_DELAY = 1.0

Transport = P2PTransport | RelayTransport


class DeliveryMode(str, enum.Enum):
    """The modes a viewer can choose."""

    AUTO = "auto"
    P2P = "p2p"
    RELAY = "relay"


class Delivery:
    """Runs the transport the chosen mode calls for, and moves between them.

    ``make(mode, on_frame, on_audio, on_failure)`` builds a transport for the camera that is
    live now; the Delivery starts and stops it. Callbacks: ``on_frame(frame)`` for each frame
    of the transport in use, ``on_audio(frame)`` for each AudioFrame of it,
    ``on_session(mode)`` when a transport starts delivering the picture,
    ``on_setback(text)`` when a session failed and the next attempt is under way,
    ``on_fatal(reason)`` when nothing can work.
    """

    def __init__(self, mode: str, make: Callable[..., Transport], p2p_retry: float,
                 on_frame: Callable[[Frame], None], on_session: Callable[[str], None],
                 on_setback: Callable[[str], None], on_fatal: Callable[[str], None],
                 on_audio: Callable[[AudioFrame], None] = lambda frame: None) -> None:
        self.chosen = DeliveryMode(mode)
        self._make = make
        self._p2p_retry = p2p_retry
        self._on_frame = on_frame
        self._on_audio = on_audio
        self._on_session = on_session
        self._on_setback = on_setback
        self._on_fatal = on_fatal
        #: How frames arrive now (or will, once the camera is live): "p2p" or "relay".
        self.mode = self._first_mode()
        self._transport: Transport | None = None
        self._probe: P2PTransport | None = None  # auto, on the relay: P2P trying in the background
        self._timer: asyncio.TimerHandle | None = None
        self._live = False
        self._tasks: set[asyncio.Task] = set()

    @property
    def transport(self) -> Transport | None:
        return self._transport

    @property
    def p2p_connected(self) -> bool:
        return isinstance(self._transport, P2PTransport) and self._transport.connected

    def _first_mode(self) -> str:
        return "relay" if self.chosen is DeliveryMode.RELAY else "p2p"

    async def start(self) -> None:
        """The camera is live: deliver its picture, staying on the relay if auto fell back to it."""
        await self.stop()
        self._live = True
        await self._use(self.mode)
        # A camera that came back may well be reachable: try at once, not in p2p_retry.
        if self.mode == "relay" and self.chosen is DeliveryMode.AUTO:
            await self._probe_p2p()

    async def stop(self) -> None:
        """The camera left (or the server): stop until start() is called again."""
        self._live = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        transport, probe, self._transport, self._probe = self._transport, self._probe, None, None
        for running in (transport, probe):
            if running is not None:
                await running.stop()

    async def close(self) -> None:
        """Stop for good: no task of the Delivery's is left running."""
        await self.stop()
        tasks = [t for t in self._tasks if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def handle(self, message: object) -> None:
        """A message for the transports: P2P signals, relay frames."""
        for transport in (self._transport, self._probe):
            if transport is not None:
                await transport.handle(message)

    def send_chat(self, message) -> bool:
        return self._transport.send_chat(message) if self._transport is not None else False

    async def network(self) -> NetworkFigures | None:
        return await self._transport.network() if self._transport is not None else None

    async def _use(self, mode: str) -> None:
        self.mode = mode
        transport = self._transport = self._new(mode)
        self._on_session(mode)
        await transport.start()

    async def _probe_p2p(self) -> None:
        probe = self._probe = self._new("p2p")
        await probe.start()

    def _new(self, mode: str) -> Transport:
        transport: Transport

        def frame(frame: Frame) -> None:
            self._frame_from(transport, frame)

        def audio(frame: AudioFrame) -> None:
            if transport is self._transport:
                self._on_audio(frame)

        def failed(reason: str, fatal: bool) -> None:
            self._spawn(self._failed(transport, reason, fatal))

        transport = self._make(mode, frame, audio, failed)
        return transport

    def _frame_from(self, transport: Transport, frame: Frame) -> None:
        if transport is self._probe:
            # P2P works again: it takes over, and the relay stops.
            old, self._transport, self._probe = self._transport, transport, None
            self.mode = "p2p"
            if old is not None:
                self._spawn(old.stop())
            self._on_session("p2p")
        if transport is self._transport:
            self._on_frame(frame)

    async def _failed(self, transport: Transport, reason: str, fatal: bool) -> None:
        if fatal:
            self._on_fatal(reason)
            return
        if transport is self._probe:
            log.info("p2p still failing (%s); staying on the relay", reason)
            self._probe = None
            await transport.stop()
            self._later(self._probe_p2p, self._p2p_retry)
            return
        if transport is not self._transport:
            return  # an old session's last word
        self._transport = None
        await transport.stop()
        if self.chosen is DeliveryMode.AUTO and transport.mode == "p2p":
            self._on_setback(f"{reason}; switching to the relay")
            await self._use("relay")
            self._later(self._probe_p2p, self._p2p_retry)
        else:
            self._on_setback(f"{reason}; trying again")
            self._later(lambda: self._use(transport.mode), RETRY_DELAY)

    def _later(self, attempt, delay: float) -> None:
        if self._timer is not None:
            self._timer.cancel()

        def run() -> None:
            self._timer = None
            if self._live:
                self._spawn(attempt())

        self._timer = asyncio.get_running_loop().call_later(delay, run)

    def _spawn(self, coro) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
