"""The relay transport: the camera's frames through the server, over the signaling socket.

Same shape as P2PTransport (see peers/p2ptransport.py). Starting asks the server for
the relay; stopping leaves it. Relay frames arrive as binary messages; each carries
its capture time and sequence number in its header, so nothing has to be decoded to
count frames or measure latency: the picture is decoded only when asked for.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from signaling.protocol import ChatSend, LayerInfo, Relay
from signaling.relayframe import RelayFrameError, parse_relay_frame

from .frame import Frame
from .p2ptransport import NetworkFigures

log = logging.getLogger(__name__)


class RelayTransport:
    """JPEG frames forwarded by the server's relay hub (newest frame wins)."""

    mode = "relay"

    def __init__(self, send: Callable[[object], Awaitable[None]], layers: list[LayerInfo],
                 on_frame: Callable[[Frame], None]) -> None:
        self._send = send
        self._layers = layers
        self._on_frame = on_frame
        self._stopped = False
        self._bytes = 0

    async def start(self) -> None:
        await self._send(Relay(enabled=True))

    async def handle(self, message: object) -> None:
        if not isinstance(message, bytes) or self._stopped:
            return
        arrived = time.time()
        try:
            header, jpeg = parse_relay_frame(message)
        except RelayFrameError as exc:
            log.warning("ignoring a bad relay frame: %s", exc)
            return
        self._bytes += len(message)
        layer = self._layers[header.layer].name if header.layer < len(self._layers) else None
        self._on_frame(Frame.from_jpeg(bytes(jpeg), header.width, header.height, arrived,
                                       header.capture_time_us / 1_000_000, header.sequence, layer,
                                       header.quality))

    def send_chat(self, message: ChatSend) -> bool:
        return False  # relay viewers chat through the server

    async def network(self) -> NetworkFigures:
        return NetworkFigures(bytes_received=self._bytes)

    async def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        await self._send(Relay(enabled=False))
