"""The camera's side of the relay: the frames the server asks for, sent over the signaling socket."""

from __future__ import annotations

import asyncio
import logging
from collections import deque

from peercam.peers.signaling_client import SignalingClient, SignalingError

from peercam.shared.protocol import RelayFrames, RelayKeyframe
from peercam.shared.relayframe import RelayFrameHeader

from .audiofanout import EncodedAudio
from .audiopipeline import AudioPipeline
from .audiosources import SAMPLE_RATE
from .pipeline import MediaPipeline

log = logging.getLogger(__name__)

#: Encoded frames of one layer that may wait for the socket; past that, the layer's queue
#: drops to its next keyframe (which it asks its encoder for).
MAX_QUEUED_FRAMES = 30
#: Audio packets (20 ms each) that may wait for the socket; past that the oldest go.
MAX_QUEUED_AUDIO = 25


class RelaySender:
    """Sends what the server's relay hub asks for (``relay-frames``): each frame once.

    JPEG renditions keep only their newest frame while the socket is busy. Encoded frames
    go in order, each layer from a keyframe on, since a frame decodes only after the
    ones before it. ``relay-keyframe`` asks a layer's encoder for a keyframe, under the
    same rate limits as a P2P viewer's request. Sound, when asked for, goes first: each
    round sends the Opus packets waiting before any picture, so that on a busy socket
    sound breaks last.
    """

    def __init__(self, pipeline: MediaPipeline, audio: AudioPipeline | None = None) -> None:
        self._pipeline = pipeline
        self._audio_pipeline = audio
        self._audio: deque[bytes] = deque(maxlen=MAX_QUEUED_AUDIO)
        self._audio_sequence = 0
        self._known = {layer.layer.name for layer in pipeline.layers}
        self._jpeg: dict[tuple[str, int], bytes] = {}
        self._encoded: dict[str, deque[bytes]] = {}
        #: Layers whose queue overflowed: nothing more of them until their next keyframe.
        self._to_keyframe: set[str] = set()
        self._ready = asyncio.Event()
        self._described = "stopped"

    def set_demand(self, message: RelayFrames) -> None:
        """Encode (and send) exactly these renditions; none: the relay encoders stop."""
        jpeg = {(r.layer, r.jpeg_quality) for r in message.jpeg if r.layer in self._known}
        encoded = {layer for layer in message.encoded if layer in self._known}
        self._pipeline.set_relay_renditions(jpeg, encoded)
        self._pipeline.relay_sink = self._queue_jpeg if jpeg else None
        self._pipeline.encoded_relay_sink = self._queue_encoded if encoded else None
        self._jpeg = {key: frame for key, frame in self._jpeg.items() if key in jpeg}
        self._encoded = {layer: queue for layer, queue in self._encoded.items() if layer in encoded}
        audio = message.audio and self._audio_pipeline is not None
        if self._audio_pipeline is not None:
            self._audio_pipeline.relay_sink = self._queue_audio if audio else None
        if not audio:
            self._audio.clear()
        described = [f"{layer} JPEG q{q}" for layer, q in sorted(jpeg)]
        described += [f"{layer} encoded" for layer in encoded]
        described += ["Opus"] if audio else []
        # Logged on change only: a (re)connection's reset of an idle relay says nothing new.
        if (description := ", ".join(described) or "stopped") != self._described:
            self._described = description
            log.info("relay: %s", description)

    def stop(self) -> None:
        self.set_demand(RelayFrames())

    def keyframe(self, message: RelayKeyframe) -> None:
        if message.layer in self._known:
            self._pipeline.layer(message.layer).request_keyframe(urgent=message.urgent)

    def _queue_jpeg(self, layer: str, jpeg_quality: int, frame: bytes) -> None:
        self._jpeg[layer, jpeg_quality] = frame
        self._ready.set()

    def _queue_encoded(self, layer: str, frame: bytes, keyframe: bool) -> None:
        queue = self._encoded.setdefault(layer, deque())
        if keyframe:
            queue.clear()  # decoding restarts here: what still waits before it is stale
            self._to_keyframe.discard(layer)
        elif layer in self._to_keyframe:
            return
        queue.append(frame)
        if len(queue) > MAX_QUEUED_FRAMES:
            log.info("relay: %s fell behind; dropping to its next keyframe", layer)
            queue.clear()
            self._to_keyframe.add(layer)
            self._pipeline.layer(layer).request_keyframe(urgent=False)
        self._ready.set()

    def _queue_audio(self, packet: EncodedAudio) -> None:
        assert self._audio_pipeline is not None
        header = RelayFrameHeader.audio(self._audio_sequence, int(packet.capture_time * 1_000_000),
                                        SAMPLE_RATE, self._audio_pipeline.source.channels)
        self._audio_sequence += 1
        self._audio.append(header.pack(packet.payload))  # full: the oldest goes
        self._ready.set()

    async def run(self, client: SignalingClient) -> None:
        """Send until cancelled."""
        while True:
            await self._ready.wait()
            self._ready.clear()
            frames = list(self._audio)
            self._audio.clear()
            frames += [frame for queue in self._encoded.values() for frame in queue]
            for queue in self._encoded.values():
                queue.clear()
            frames += self._jpeg.values()
            self._jpeg = {}
            for frame in frames:
                try:
                    await client.send_bytes(frame)
                except (SignalingError, ConnectionError) as exc:
                    log.info("relay frame not sent: %s", exc)  # the next one may go through
