"""The peer-to-peer transport: one RTCPeerConnection to the stream's camera.

Every transport has the same shape (web/js/p2p-transport.js has it too), so the
Delivery can switch between them:

    Transport(send, on_frame, on_audio, on_failure, ...)   each takes what it needs
    .mode              "p2p" or "relay"
    await .start()     begin; each received frame goes to on_frame(Frame), and when sound
                       was asked for (``audio_channels``), each decoded packet of it to
                       on_audio(AudioFrame)
    await .stop()      tear down; no callback fires afterwards
    await .handle(m)   an answer, candidate or hangup the camera sent (P2P), or a relay
                       frame (bytes) the server sent (relay)
    .send_chat(m)      send a chat line on the transport's own channel to the camera;
                       False when it has none open (then it goes through the server)
    await .network()   bytes received so far, and loss and jitter where the stack knows them
                       (the picture's, and the sound's packets)

``on_failure(reason, fatal)`` fires at most once, when the session cannot go on (fatal:
nothing will make it work, e.g. TURN-only ICE without a TURN address).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from peercam.peers.audioreceiver import AudioPacketBuffer, deliver_audio_on_arrival
from peercam.peers.ice import aiortc_candidate, relay_shortfall
from peercam.peers.icecompletion import install_prompt_ice_completion

from peercam.shared.protocol import (
    Answer,
    Candidate,
    ChatSend,
    Hangup,
    Offer,
    ProtocolError,
    decode_data_channel_message,
    encode,
)

from .audioframe import AudioFrame, samples_of
from .frame import Frame
from .framereceiver import deliver_frames_when_complete
from .senderclock import SenderClock, follow_sender_reports

log = logging.getLogger(__name__)

#: Opus's RTP clock: 48 kHz whatever the sound's own rate (RFC 7587).
OPUS_CLOCK_RATE = 48000


@dataclass
class NetworkFigures:
    """What a transport's network stack measured: bytes so far, and P2P's loss and jitter."""

    bytes_received: int = 0
    packets_lost: int | None = None
    jitter_ms: float | None = None
    #: The sound's packets received and lost, and its jitter; None: no sound on this transport.
    audio_packets: int | None = None
    audio_packets_lost: int | None = None
    audio_jitter_ms: float | None = None


class P2PTransport:
    """WebRTC from the camera: the viewer offers recvonly video, a "chat" channel and, when
    it wants the stream's sound (``audio_channels``: the stream's channel count) or may talk
    back (``talk``), sendrecv audio: nothing is sent until ``set_talk_track`` (no
    renegotiation), and a camera that takes no talk back answers it sendonly."""

    mode = "p2p"

    def __init__(self, send: Callable[[object], Awaitable[None]], configuration: RTCConfiguration,
                 connect_timeout: float, on_frame: Callable[[Frame], None],
                 on_failure: Callable[[str, bool], None], on_chat: Callable[[object], None],
                 on_connected: Callable[[], None] = lambda: None,
                 on_audio: Callable[[AudioFrame], None] = lambda frame: None,
                 audio_channels: int | None = None, talk: bool = False) -> None:
        self._send = send
        self._configuration = configuration
        self._connect_timeout = connect_timeout
        self._on_frame = on_frame
        self._on_audio = on_audio
        self._audio_channels = audio_channels
        self._talk = talk
        self._talk_sender = None
        self._on_failure = on_failure
        self._on_chat = on_chat
        self._on_connected = on_connected
        self._pc: RTCPeerConnection | None = None
        self._audio_buffer: AudioPacketBuffer | None = None
        self._sender_clock: SenderClock | None = None
        self._channel = None
        self._tasks: set[asyncio.Task] = set()
        self._stopped = False
        #: The layer the camera says it sends (its `layer` messages), stamped on each frame.
        self.layer: str | None = None

    @property
    def connected(self) -> bool:
        return self._pc is not None and self._pc.connectionState == "connected"

    async def start(self) -> None:
        install_prompt_ice_completion()  # process-wide, once: ICE returns as its checks complete
        pc = self._pc = RTCPeerConnection(self._configuration)
        # Decode each frame once its last packet is in, not when the next one starts.
        deliver_frames_when_complete(pc.addTransceiver("video", direction="recvonly").receiver)
        if self._audio_channels is not None or self._talk:
            transceiver = pc.addTransceiver("audio", direction="sendrecv")
            self._talk_sender = transceiver.sender
            if self._audio_channels is not None:
                sound = transceiver.receiver
                # Decode each packet as it comes (no prefetch), and read its capture time.
                self._audio_buffer = deliver_audio_on_arrival(sound)
                self._sender_clock = follow_sender_reports(sound, OPUS_CLOCK_RATE)
        channel = self._channel = pc.createDataChannel("chat")

        @channel.on("message")
        def on_chat(data: str | bytes) -> None:
            try:
                self._on_chat(decode_data_channel_message(data))
            except ProtocolError as exc:
                log.info("ignoring a bad chat message: %s", exc.reason)

        @pc.on("track")
        def on_track(track) -> None:
            self._spawn(self._receive_audio(track) if track.kind == "audio" else self._receive(track))

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            if pc is not self._pc or self._stopped:
                return
            if pc.connectionState == "connected":
                self._on_connected()
            elif pc.connectionState in ("failed", "closed"):
                self._fail(f"peer connection {pc.connectionState}")

        await pc.setLocalDescription(await pc.createOffer())
        shortfall = await relay_shortfall(self._configuration, pc.localDescription.sdp)
        if shortfall:
            self._fail(shortfall, fatal=True)
            return
        self._spawn(self._expect_connection(pc))
        await self._send(Offer(sdp=pc.localDescription.sdp))

    async def handle(self, message: object) -> None:
        pc = self._pc
        if pc is None or self._stopped:
            return
        try:
            if isinstance(message, Answer):
                await pc.setRemoteDescription(RTCSessionDescription(sdp=message.sdp, type="answer"))
            elif isinstance(message, Candidate) and message.candidate:
                await pc.addIceCandidate(aiortc_candidate(message.candidate))
            elif isinstance(message, Hangup):
                self._fail(f"camera hung up: {message.reason}")
        except Exception as exc:  # e.g. a bad answer: this session fails, not the viewer
            self._fail(f"{type(message).__name__.lower()} failed: {exc!r}")

    def set_talk_track(self, track: MediaStreamTrack | None) -> bool:
        """Send ``track``'s sound to the camera (None: stop sending); False without an audio
        section to send it in (made without ``talk``, or stopped)."""
        if self._talk_sender is None or self._pc is None or self._stopped:
            return False
        self._talk_sender.replaceTrack(track)
        return True

    def send_chat(self, message: ChatSend) -> bool:
        if self._channel is None or self._channel.readyState != "open":
            return False
        self._channel.send(encode(message))
        return True

    async def network(self) -> NetworkFigures:
        figures = NetworkFigures()
        if self._pc is None:
            return figures
        for report in (await self._pc.getStats()).values():
            if report.type == "transport":
                figures.bytes_received += report.bytesReceived
            elif report.type == "inbound-rtp" and report.kind == "video":
                figures.packets_lost = max(0, report.packetsLost)  # duplicates can make it negative
                figures.jitter_ms = round(report.jitter / 90, 2)  # 90 kHz RTP clock
            elif report.type == "inbound-rtp" and report.kind == "audio":
                figures.audio_packets = report.packetsReceived
                figures.audio_packets_lost = max(0, report.packetsLost)
                figures.audio_jitter_ms = round(report.jitter / (OPUS_CLOCK_RATE / 1000), 2)
        return figures

    async def stop(self) -> None:
        self._stopped = True
        for task in self._tasks:
            task.cancel()
        pc, self._pc, self._channel, self._talk_sender = self._pc, None, None, None
        if pc is not None:
            await pc.close()

    def _spawn(self, coro) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _fail(self, reason: str, fatal: bool = False) -> None:
        if not self._stopped:
            self._stopped = True
            self._on_failure(reason, fatal)

    async def _expect_connection(self, pc: RTCPeerConnection) -> None:
        """aiortc takes about a minute to call ICE failed: decide much sooner."""
        await asyncio.sleep(self._connect_timeout)
        if pc is self._pc and pc.connectionState != "connected" and not self._stopped:
            await self._send(Hangup(reason="not connected in time"))
            self._fail(f"p2p not connected within {self._connect_timeout:g} s")

    async def _receive(self, track) -> None:
        while True:
            try:
                video = await track.recv()
            except MediaStreamError:
                return
            if self._stopped:
                return
            self._on_frame(Frame.from_video(video, self.mode, time.time(), self.layer))

    async def _receive_audio(self, track) -> None:
        if self._audio_buffer is None or self._sender_clock is None:
            # Talk back without the camera's sound: read it all the same (aiortc would queue it).
            while not self._stopped:
                try:
                    await track.recv()
                except MediaStreamError:
                    return
            return
        channels = self._audio_channels or 1
        while True:
            try:
                decoded = await track.recv()
            except MediaStreamError:
                return
            if self._stopped:
                return
            arrived = time.time()
            capture_time = None
            first = self._audio_buffer.first_timestamp
            if decoded.pts is not None and first is not None:
                # aiortc counts pts from the first packet's RTP timestamp.
                capture_time = self._sender_clock.time_of((decoded.pts + first) & 0xFFFFFFFF)
            self._on_audio(AudioFrame(samples_of(decoded, channels), decoded.sample_rate, capture_time,
                                      self.mode, arrived))
