"""The relay transport: the camera's frames through the server, over the signaling socket.

Same shape as P2PTransport (see peers/viewer/p2ptransport.py). Starting asks the server for
the relay, in a format; stopping leaves it. Relay frames arrive as binary messages;
each carries its capture time and sequence number in its header:
- encoded (the camera's VP8/H.264 frames, about the P2P bitrate): decoded with PyAV
  in order (peers/viewer/relaydecoder.py); a frame is handed over once decoded;
- JPEG: handed over as it arrives; the picture is decoded only when asked for.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Literal

import av

from peercam.shared.errors import UsageError
from peercam.shared.protocol import ChatSend, LayerInfo, Relay, RelayFormat
from peercam.shared.relayframe import RelayFrameError, RelayFrameHeader, parse_relay_frame

from .frame import Frame
from .p2ptransport import NetworkFigures
from .relaydecoder import RelayDecoder, can_decode

log = logging.getLogger(__name__)

#: What `--relay-format` accepts: "auto" is encoded where PyAV decodes the camera's codec.
RELAY_FORMATS: tuple[RelayFormat | Literal["auto"], ...] = ("auto", "encoded", "jpeg")


@functools.cache  # one warning per codec, not one per stats report
def relay_format_for(wanted: RelayFormat | Literal["auto"], codec: str) -> RelayFormat:
    """The format to ask for: ``wanted`` ("auto", "encoded", "jpeg") for a camera's ``codec``."""
    if wanted not in RELAY_FORMATS:
        raise UsageError(f"relay format {wanted!r}: use one of {', '.join(RELAY_FORMATS)}")
    if wanted == "jpeg":
        return "jpeg"
    if can_decode(codec):
        return "encoded"
    if wanted == "encoded":
        log.warning("this PyAV cannot decode %s: the relay sends JPEG", codec)
    return "jpeg"


class RelayTransport:
    """Frames forwarded by the server's relay hub: encoded (in order) or JPEG (newest wins)."""

    mode = "relay"

    def __init__(self, send: Callable[[object], Awaitable[None]], layers: list[LayerInfo],
                 on_frame: Callable[[Frame], None], format: RelayFormat = "jpeg") -> None:
        self._send = send
        self._layers = layers
        self._on_frame = on_frame
        #: "encoded" or "jpeg": what this transport asked the server for.
        self.format = format
        self._decoder: RelayDecoder | None = None
        self._stopped = False
        self._bytes = 0

    async def start(self) -> None:
        if self.format == "encoded":
            self._decoder = RelayDecoder(self._decoded)
        await self._send(Relay(enabled=True, format=self.format))

    async def handle(self, message: object) -> None:
        if not isinstance(message, bytes) or self._stopped:
            return
        arrived = time.time()
        try:
            header, payload = parse_relay_frame(message)
        except RelayFrameError as exc:
            log.warning("ignoring a bad relay frame: %s", exc)
            return
        if header.format != self.format:
            return  # the other format's last frames, sent before the server heard us
        self._bytes += len(message)
        if self._decoder is not None:
            self._decoder.add(header, bytes(payload))
            return
        self._on_frame(Frame.from_jpeg(bytes(payload), header.width, header.height, arrived,
                                       header.capture_time_us / 1_000_000, header.sequence,
                                       self._layer_name(header), header.jpeg_quality))

    def _decoded(self, header: RelayFrameHeader, picture: av.VideoFrame, decoded_at: float) -> None:
        if not self._stopped:
            self._on_frame(Frame.from_relay_video(picture, decoded_at, header.capture_time_us / 1_000_000,
                                                  header.sequence, self._layer_name(header)))

    def _layer_name(self, header: RelayFrameHeader) -> str | None:
        return self._layers[header.layer].name if header.layer < len(self._layers) else None

    def send_chat(self, message: ChatSend) -> bool:
        return False  # relay viewers chat through the server

    async def network(self) -> NetworkFigures:
        return NetworkFigures(bytes_received=self._bytes)

    async def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        if self._decoder is not None:
            self._decoder.close()
        await self._send(Relay(enabled=False))
