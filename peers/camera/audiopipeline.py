r"""The camera peer's sound: one reading thread, one Opus encoder for every viewer.

    audio source --audio thread--> Opus encoder (once) --> AudioFanOut (P2P viewers' senders)
                                 |                     \-> relay sink (Opus relay frames)
                                 |                     \-> recorder (the segments' Opus track)
                                 \-> low-rate Opus encoder --> AudioFanOut (P2P viewers on the lowest layer)

The source is read all the time (a device must be drained); each encoder runs while
anyone listens to it. Packets carry their first sample's capture time, on the camera's
clock, in their RTP timestamp (48 kHz) and relay header alike, as the video's frames do
(90 kHz), so a viewer can move between the two renditions at any packet.

Sound breaks last. On P2P, sound and pictures meet in the network's queue, not in the
camera's (aiortc hands each packet to the socket as it is made), so the camera keeps the
sound out of the video's way instead: a viewer whose video is on its lowest layer (its
link carries no more) gets the low-rate rendition, which fits beside that layer.
"""

from __future__ import annotations

import asyncio
import fractions
import logging
import threading
import time
from collections.abc import Callable

import av
import numpy as np

from peercam.shared.protocol import CameraAudioStats

from .audiofanout import AudioFanOut, EncodedAudio
from .audiosources import CHUNK, SAMPLE_RATE, AudioSource, CapturedAudio, PushOpusSource
from .opusbitrates import DEFAULT_AUDIO_BITRATE, MAX_OPUS_KBPS_PER_CHANNEL
from .sources import SourceError

__all__ = ["AudioPipeline", "AudioSink", "DEFAULT_AUDIO_BITRATE", "LOW_AUDIO_BITRATE",
           "MAX_OPUS_KBPS_PER_CHANNEL"]

log = logging.getLogger(__name__)

#: The rendition for viewers whose video is on the lowest layer. Measured behind a
#: 300 kbit/s cap (a 180p layer of 200 kbit/s): with 48 kbit/s of sound beside it, 5.6% of
#: the sound was lost; with 32, none, but 210 ms of queue stood; with 16, none, and no queue.
LOW_AUDIO_BITRATE = 16000

#: Bits per second of headers on a viewer's sound: RTP 12 (and a 4-byte extension), SRTP's
#: 10-byte tag, UDP 8 and IPv4 20 bytes on each of 50 packets a second.
PACKET_OVERHEAD = 54 * 8 * 50

#: Called on the event loop with each packet: the relay sender and recorders.
AudioSink = Callable[[EncodedAudio], None]


class OpusEncoder:
    """libopus through PyAV: 20 ms chunks in, one packet each out."""

    def __init__(self, channels: int, bitrate: int) -> None:
        self._context = av.CodecContext.create("libopus", "w")
        self._context.sample_rate = SAMPLE_RATE
        self._context.layout = "mono" if channels == 1 else "stereo"
        self._context.format = "s16"
        self._context.bit_rate = bitrate
        self._context.time_base = fractions.Fraction(1, SAMPLE_RATE)
        # Low delay: no look-ahead beyond what Opus needs; a lost packet is concealed by the decoder.
        self._context.options = {"application": "lowdelay", "frame_duration": "20"}
        self._layout = self._context.layout.name
        self._pts = 0

    def encode(self, chunk: CapturedAudio) -> list[tuple[av.Packet, float]]:
        """The packets this chunk completes, each with its first sample's capture time: libopus
        delays its output by its look-ahead, and the packet's pts says which samples it holds."""
        frame = av.AudioFrame.from_ndarray(chunk.samples.reshape(1, -1), format="s16", layout=self._layout)
        frame.sample_rate = SAMPLE_RATE
        frame.pts = self._pts
        self._pts += CHUNK
        return [(packet, chunk.capture_time + ((packet.pts or 0) - frame.pts) / SAMPLE_RATE)
                for packet in self._context.encode(frame)]


class AudioPipeline:
    """A sound source, read once and encoded once for every P2P viewer, the relay and recorders."""

    def __init__(self, source: AudioSource, loop: asyncio.AbstractEventLoop,
                 bitrate: int = DEFAULT_AUDIO_BITRATE) -> None:
        self.source = source
        self.loop = loop
        self.bitrate = bitrate
        #: The sound at ``bitrate``, and at LOW_AUDIO_BITRATE (where that is lower).
        self.fanout = AudioFanOut()
        self.low_fanout = AudioFanOut() if bitrate > LOW_AUDIO_BITRATE else self.fanout
        #: Set on the event loop: the relay's sink while relay readers listen; recorders' sinks.
        self.relay_sink: AudioSink | None = None
        self.recorders: list[AudioSink] = []
        #: Resolves with the source's error if it stops delivering sound.
        self.failed: asyncio.Future[SourceError] = loop.create_future()
        self.stopping = False
        #: Half-duplex talk back: while a viewer talks, the source is ducked to silence (set on
        #: the event loop, read by the audio thread); packets keep flowing, so viewers' sound
        #: clocks run on.
        self.muted = False
        self.packets_encoded = 0
        self.relay_packets = 0
        self.encode_ms = 0.0
        self._thread = threading.Thread(target=self._run, name="audio", daemon=True)

    @property
    def in_use(self) -> bool:
        return bool(len(self.fanout) or self.relay_sink is not None or self.recorders)

    def wire_rate(self, low: bool) -> int:
        """Bits per second a viewer's sound takes on its link: the rendition's Opus bitrate and
        each packet's RTP, SRTP, UDP and IP headers (about 54 bytes, 50 packets a second)."""
        return (min(self.bitrate, LOW_AUDIO_BITRATE) if low else self.bitrate) + PACKET_OVERHEAD

    def fanout_for(self, low: bool) -> AudioFanOut:
        """The rendition a P2P viewer gets: the low-rate one while its video is on the lowest layer."""
        return self.low_fanout if low else self.fanout

    def stats(self) -> CameraAudioStats:
        viewers = len(self.fanout) + (len(self.low_fanout) if self.low_fanout is not self.fanout else 0)
        return CameraAudioStats(codec="opus", channels=self.source.channels,
                                packets_encoded=self.packets_encoded, encode_ms=round(self.encode_ms, 3),
                                relay_packets=self.relay_packets, viewers=viewers)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.stopping = True
        self.source.close()
        self._thread.join(timeout=2)

    def _run(self) -> None:
        full = _Rendition(self, self.bitrate, self._deliver)
        low = _Rendition(self, LOW_AUDIO_BITRATE, self.low_fanout.publish)
        try:
            if isinstance(self.source, PushOpusSource):
                self._pass_through(self.source, low)
            while not self.stopping:
                chunk = self.source.read()
                if self.muted:
                    chunk = CapturedAudio(np.zeros_like(chunk.samples), chunk.capture_time)
                full.encode(chunk, self.in_use)
                if self.low_fanout is not self.fanout:
                    low.encode(chunk, bool(len(self.low_fanout)))
        except Exception as exc:  # a source that fails, or a bug: either way the sound stops
            if not self.stopping:
                error = exc if isinstance(exc, SourceError) else SourceError(f"audio failed: {exc!r}")
                self.loop.call_soon_threadsafe(self._settle, error)

    def _pass_through(self, source: PushOpusSource, low: _Rendition) -> None:
        """Opus that came encoded goes out as it is; only the low-rate rendition, while anyone
        listens to it, decodes and encodes it again."""
        number = 0
        while not self.stopping:
            packet = source.read_packet()
            if self.in_use:
                timestamp = int(round(packet.capture_time * SAMPLE_RATE)) & 0xFFFFFFFF
                encoded = EncodedAudio(packet.payload, timestamp, packet.capture_time, number)
                number += 1
                self.packets_encoded += 1
                self.loop.call_soon_threadsafe(self._deliver, encoded)
            if self.low_fanout is not self.fanout and len(self.low_fanout):
                for chunk in source.decode(packet):
                    low.encode(chunk, True)

    def encoded(self, elapsed_ms: float) -> None:
        """Count a packet (the audio thread), and its encoder's time in the moving average."""
        average = 0.95 * self.encode_ms + 0.05 * elapsed_ms
        self.encode_ms = average if self.packets_encoded else elapsed_ms
        self.packets_encoded += 1

    def _settle(self, error: SourceError) -> None:
        if not self.failed.done():
            self.failed.set_result(error)

    def _deliver(self, packet: EncodedAudio) -> None:
        """On the event loop: every reader of the packet, the same bytes."""
        self.fanout.publish(packet)
        if self.relay_sink is not None:
            self.relay_packets += 1
            self.relay_sink(packet)
        for recorder in self.recorders:
            recorder(packet)


class _Rendition:
    """One encoder of the sound, at one bitrate, that runs while someone listens to it."""

    def __init__(self, pipeline: AudioPipeline, bitrate: int, deliver: AudioSink) -> None:
        self._pipeline = pipeline
        self._bitrate = bitrate
        self._deliver = deliver
        self._encoder: OpusEncoder | None = None
        self._number = 0

    def encode(self, chunk: CapturedAudio, listened: bool) -> None:
        if not listened:
            self._encoder = None  # nobody listens: the next listener starts a fresh stream
            return
        if self._encoder is None:
            self._encoder = OpusEncoder(self._pipeline.source.channels, self._bitrate)
        start = time.perf_counter()
        packets = self._encoder.encode(chunk)
        elapsed_ms = (time.perf_counter() - start) * 1000
        for packet, capture_time in packets:
            encoded = EncodedAudio(bytes(packet), int(round(capture_time * SAMPLE_RATE)) & 0xFFFFFFFF,
                                   capture_time, self._number)
            self._number += 1
            self._pipeline.encoded(elapsed_ms)
            self._pipeline.loop.call_soon_threadsafe(self._deliver, encoded)
