"""The relay transport: the camera's frames through the server, over the signaling socket.

Same shape as P2PTransport (see peers/viewer/p2ptransport.py). Starting asks the server for
the relay, in a format; stopping leaves it. Relay frames arrive as binary messages;
each carries its capture time and sequence number in its header:
- encoded (the camera's VP8/H.264 frames, about the P2P bitrate): decoded with PyAV
  in order (peers/viewer/relaydecoder.py); a frame is handed over once decoded;
- JPEG: handed over as it arrives; the picture is decoded only when asked for.
Sound, when asked for (``relay`` with ``audio``), comes as Opus packets in relay frames
beside either: each is decoded with PyAV as it arrives (a packet decodes on its own).
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Literal

import av
import numpy as np

from peercam.shared.errors import UsageError
from peercam.shared.protocol import ChatSend, LayerInfo, Relay, RelayFormat
from peercam.shared.relayframe import RelayFrameError, RelayFrameHeader, parse_relay_frame

from .audioframe import AudioFrame, samples_of
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
    """Frames forwarded by the server's relay hub: encoded (in order) or JPEG (newest wins),
    and the sound's Opus packets when ``audio_channels`` (the stream's) says to ask for them."""

    mode = "relay"

    def __init__(self, send: Callable[[object], Awaitable[None]], layers: list[LayerInfo],
                 on_frame: Callable[[Frame], None], format: RelayFormat = "jpeg",
                 on_audio: Callable[[AudioFrame], None] = lambda frame: None,
                 audio_channels: int | None = None) -> None:
        self._send = send
        self._layers = layers
        self._on_frame = on_frame
        self._on_audio = on_audio
        #: "encoded" or "jpeg": what this transport asked the server for.
        self.format = format
        self._decoder: RelayDecoder | None = None
        self._stopped = False
        self._bytes = 0
        self._audio = _RelayAudio(audio_channels) if audio_channels is not None else None

    async def start(self) -> None:
        if self.format == "encoded":
            self._decoder = RelayDecoder(self._decoded)
        await self._send(Relay(enabled=True, format=self.format, audio=self._audio is not None))

    async def handle(self, message: object) -> None:
        if not isinstance(message, bytes) or self._stopped:
            return
        arrived = time.time()
        try:
            header, payload = parse_relay_frame(message)
        except RelayFrameError as exc:
            log.warning("ignoring a bad relay frame: %s", exc)
            return
        if header.format == "audio":
            if self._audio is not None:
                self._bytes += len(message)
                decoded = self._audio.decode(header, bytes(payload), arrived)
                if decoded is not None:
                    self._on_audio(decoded)
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
        figures = NetworkFigures(bytes_received=self._bytes)
        if self._audio is not None:
            figures.audio_packets = self._audio.packets
            figures.audio_packets_lost = self._audio.packets_lost
            figures.audio_jitter_ms = round(self._audio.jitter * 1000, 2) if self._audio.packets else None
        return figures

    async def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        if self._decoder is not None:
            self._decoder.close()
        await self._send(Relay(enabled=False))


class _RelayAudio:
    """The relay's Opus packets: decoded one by one, counted, and their jitter measured as
    RTP's is (RFC 3550), from each packet's capture time and arrival."""

    def __init__(self, channels: int) -> None:
        self._channels = channels
        self._context: av.CodecContext | None = None
        self._layout: tuple[int, int] | None = None  # (sample rate, channels) the decoder is for
        self._next: int | None = None  # the sequence number expected next
        self._transit: float | None = None
        self.packets = 0
        self.packets_lost = 0
        self.jitter = 0.0  # seconds

    def decode(self, header: RelayFrameHeader, payload: bytes, arrived: float) -> AudioFrame | None:
        capture_time = header.capture_time_us / 1_000_000
        if self._next is not None and 0 < (header.sequence - self._next) & 0xFFFFFFFF < 0x80000000:
            self.packets_lost += (header.sequence - self._next) & 0xFFFFFFFF  # the server skipped some
        self._next = (header.sequence + 1) & 0xFFFFFFFF
        self.packets += 1
        transit = arrived - capture_time
        if self._transit is not None:
            self.jitter += (abs(transit - self._transit) - self.jitter) / 16
        self._transit = transit
        if self._context is None or self._layout != (header.sample_rate, header.channels):
            self._layout = (header.sample_rate, header.channels)
            self._context = av.CodecContext.create("libopus", "r")
            self._context.sample_rate = header.sample_rate
            self._context.layout = "mono" if header.channels == 1 else "stereo"
            self._context.format = "s16"
        try:
            decoded = self._context.decode(av.Packet(payload))
        except av.FFmpegError as exc:
            log.warning("relay: sound packet %d did not decode: %s", header.sequence, exc)
            return None
        if not decoded:
            return None
        samples = [samples_of(frame, self._channels) for frame in decoded]
        return AudioFrame(samples[0] if len(samples) == 1 else np.concatenate(samples),
                          header.sample_rate, capture_time, "relay", time.time())
