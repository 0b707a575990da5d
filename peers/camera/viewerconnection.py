"""One viewer's peer connection, on the camera's side."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import av
from aiortc import RTCConfiguration, RTCDataChannel, RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from peercam.peers.audioreceiver import deliver_audio_on_arrival
from peercam.peers.ice import aiortc_candidate, relay_shortfall

from peercam.shared.protocol import (
    Answer,
    CameraViewerStats,
    Candidate,
    ChatHistory,
    ChatMessage,
    ChatNotice,
    ChatSend,
    Hangup,
    LayerChanged,
    Offer,
    ProtocolError,
    decode_data_channel_message,
    encode,
)

from .audiofanout import AudioFanOutTrack
from .audiopipeline import AudioPipeline
from .fanout import FanOutTrack
from .layerchoice import Evidence, LayerChoice, LayerMove
from .layers import Layer
from .pipeline import MediaPipeline
from .rtxstream import RtxStream
from .senderreports import report_capture_times

log = logging.getLogger(__name__)

_MIME_TYPES = {"vp8": "video/VP8", "h264": "video/H264"}
_CLOSE_TIMEOUT = 3.0
#: Fewer packets sent in a second than this say too little about loss.
MIN_PACKETS = 20


def codec_preferences(codec: str, profile: str | None = None):
    """The camera's codec first and only (plus RTX): it sends just one.

    H.264: what the camera encodes is Baseline. A passthrough source's profile (Main) comes
    first where the viewer offers it, with Baseline after it for viewers that offer only
    that: their decoders take a Main stream all the same (Chromium's and FFmpeg's do).
    """
    wanted = {_MIME_TYPES[codec], "video/rtx"}
    codecs = [c for c in RTCRtpSender.getCapabilities("video").codecs if c.mimeType in wanted]
    if codec != "h264":
        return codecs

    def profile_idc(c) -> str:
        return c.parameters.get("profile-level-id", "")[:2]
    source = (profile or "42")[:2]
    kept = [c for c in codecs if c.mimeType == "video/rtx" or profile_idc(c) in ("42", source)]
    return sorted(kept, key=lambda c: (c.mimeType == "video/rtx", profile_idc(c) != source))


def audio_codec_preferences():
    """Opus only: the camera encodes its sound once, in Opus."""
    return [c for c in RTCRtpSender.getCapabilities("audio").codecs if c.mimeType == "audio/opus"]


def _offers_audio(sdp: str) -> bool:
    """Whether an offer has an audio section (a viewer that plays sound)."""
    return any(line.startswith("m=audio ") for line in sdp.splitlines())


def _video_senders(pc: RTCPeerConnection) -> list[RTCRtpSender]:
    """The video's sender: its receiver reports are the layer choice's evidence (the sound's,
    small and steady, would blur them)."""
    return [sender for sender in pc.getSenders() if sender.kind == "video"]


@dataclass(frozen=True)
class _ConnectTimeout:
    pc: RTCPeerConnection


#: What a viewer is told when the camera could not use what it sent.
_UNUSABLE = {
    Offer: "the camera could not answer your offer: its SDP is not a usable video offer",
    Candidate: "the camera could not use your ICE candidate",
    None: "the camera could not go on with this connection",
}


class ViewerConnection:
    """Answers one viewer's offer and feeds it from the shared encoder.

    Signaling messages for this viewer are handled one at a time, in order, on
    the connection's own task, so a candidate never overtakes its offer.
    """

    def __init__(
        self,
        viewer_id: str,
        pipeline: MediaPipeline,
        audio: AudioPipeline | None,
        configuration: Callable[[], RTCConfiguration],
        codec: str,
        send: Callable[[object], Awaitable[None]],
        connect_timeout: float,
        on_closed: Callable[[ViewerConnection], None],
        on_chat: Callable[[ViewerConnection, ChatSend | None], None] = lambda viewer, line: None,
        on_disconnected: Callable[[ViewerConnection], None] = lambda viewer: None,
        session: int = 0,
        quality: str = "auto",
        talk: Callable[[], bool] = lambda: False,
        on_talk: Callable[[str, av.AudioFrame], None] = lambda viewer_id, frame: None,
    ) -> None:
        self.viewer_id = viewer_id
        self._pipeline = pipeline
        self._audio = audio
        #: Which layer this viewer gets: its pick, or in auto what its network carries.
        self.choice = LayerChoice([layer.layer for layer in pipeline.layers], quality, self._sound_rate)
        self._layer_reason = ""
        self._configuration = configuration
        self._codec = codec
        self._send = send
        self._connect_timeout = connect_timeout
        self._on_closed = on_closed
        self._on_chat = on_chat
        self._on_disconnected = on_disconnected
        #: Whether viewers may talk back (``published.talk``): the sound is answered sendrecv.
        self._talk = talk
        self._on_talk = on_talk
        self._hearing: asyncio.Task | None = None
        #: The camera's signaling session this viewer's id belongs to.
        self.session = session
        self._chat_channel: RTCDataChannel | None = None
        self._pc: RTCPeerConnection | None = None
        self.track: FanOutTrack | None = None
        self.audio_track: AudioFanOutTrack | None = None
        self.rtx: RtxStream | None = None
        self._inbox: asyncio.Queue = asyncio.Queue()
        self._task = asyncio.create_task(self._run(), name=f"viewer-{viewer_id}")
        self._timeout: asyncio.TimerHandle | None = None
        self._adapter: asyncio.Task | None = None
        self._sends: set[asyncio.Task] = set()  # `layer` messages on their way
        self._sampled = (0, 0)  # the track's viewer keyframe requests and queue overflows at the last sample
        self._last_report: object = None  # the timestamp of the last receiver report used
        self._nack_sample = (0, 0)  # the RTX stream's counts at the last sample
        self.closed = False

    @property
    def pc(self) -> RTCPeerConnection | None:
        return self._pc

    @property
    def active(self) -> bool:
        """A peer connection that is up or on its way up."""
        return self._pc is not None and self._pc.connectionState in ("new", "connecting", "connected")

    def post(self, message: Offer | Candidate | Hangup | _ConnectTimeout) -> None:
        self._inbox.put_nowait(message)

    async def _run(self) -> None:
        while True:
            message = await self._inbox.get()
            try:
                if isinstance(message, Offer):
                    await self._answer(message.sdp)
                elif isinstance(message, Candidate):
                    try:
                        await self._add_candidate(message)
                    except ValueError as exc:  # one bad candidate: the others may still work
                        log.info("viewer %s: ignoring candidate: %s", self.viewer_id, exc)
                elif isinstance(message, Hangup):
                    log.info("viewer %s hung up: %s", self.viewer_id, message.reason)
                    await self._close_pc()
                elif message.pc is self._pc and message.pc.connectionState != "connected":
                    log.info("viewer %s: not connected within %.0f s", self.viewer_id, self._connect_timeout)
                    await self._close_pc()
                    await self._send(Hangup(to=self.viewer_id, reason="not connected in time"))
            except Exception as exc:  # a bad offer or candidate must not stop the camera
                # The details (aiortc's exception) stay in the camera's log; the viewer gets words.
                log.warning("viewer %s: %s: %s", self.viewer_id, type(exc).__name__, exc)
                reason = _UNUSABLE.get(type(message), _UNUSABLE[None])
                await self._send(Hangup(to=self.viewer_id, reason=reason))
                await self._close_pc()

    async def _answer(self, sdp: str) -> None:
        await self._close_pc()  # a new offer starts over
        configuration = self._configuration()
        pc = RTCPeerConnection(configuration)
        self._pc = pc

        @pc.on("datachannel")
        def on_datachannel(channel: RTCDataChannel) -> None:
            if channel.label == "chat":
                self._chat_channel = channel
                channel.on("message", self._chat_message)
                self._on_chat(self, None)  # open: time for the history

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            if track.kind == "audio" and pc is self._pc:
                if self._hearing is not None:
                    self._hearing.cancel()
                self._hearing = asyncio.create_task(self._hear(track), name=f"hear-{self.viewer_id}")

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            log.info("viewer %s: connection %s", self.viewer_id, pc.connectionState)
            if pc.connectionState == "connected" and self._timeout is not None:
                self._timeout.cancel()
            if pc.connectionState == "connected" and pc is self._pc and self._adapter is None:
                self._adapter = asyncio.create_task(self._adapt(pc), name=f"adapt-{self.viewer_id}")
            elif pc.connectionState in ("failed", "closed") and pc is self._pc:
                await self._close_pc()
                self._on_disconnected(self)

        # The sending transceiver exists before the offer is applied, so the offer's
        # video section binds to it and negotiation honours the camera's one codec.
        self.track = self._pipeline.subscribe(self.viewer_id, self.choice.layer.name)
        self._sampled, self._last_report, self._nack_sample = (0, 0), None, (0, 0)
        self.track.on_switched = self._switched
        transceiver = pc.addTransceiver(self.track, direction="sendonly")
        source = self._pipeline.layers[0].passthrough
        transceiver.setCodecPreferences(codec_preferences(self._codec, source.profile if source else None))
        self.rtx = RtxStream(transceiver.sender, self.choice.layer.bitrate)
        self.track.attach_sender(transceiver.sender, self.rtx)
        report_capture_times(transceiver.sender)  # the browser's lip sync reads the reports
        if self._audio is not None and _offers_audio(sdp):
            # Sound in the same connection, when the viewer's offer has an audio section. Only
            # then: aiortc cannot answer an offer that leaves a transceiver of ours unmatched.
            self.audio_track = self._audio_fanout(self.choice.layer.name).subscribe(self.viewer_id)
            # Sendrecv where viewers may talk back: a viewer's sendrecv offer then gets its voice
            # through (aiortc answers recvonly offers, older viewers', sendonly all the same).
            sound = pc.addTransceiver(self.audio_track, direction="sendrecv" if self._talk() else "sendonly")
            sound.setCodecPreferences(audio_codec_preferences())
            self.audio_track.attach_sender(sound.sender)
            report_capture_times(sound.sender)
        await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        if transceiver.mid is None:
            raise ValueError("the offer has no video section")
        if self._talk():
            # Talk back is played as it comes: no 80 ms wait in aiortc's jitter buffer.
            for audio in (t for t in pc.getTransceivers() if t.kind == "audio"):
                deliver_audio_on_arrival(audio.receiver)
        await pc.setLocalDescription(await pc.createAnswer())
        shortfall = await relay_shortfall(configuration, pc.localDescription.sdp)
        if shortfall:
            raise ValueError(shortfall)
        await self._send(Answer(to=self.viewer_id, sdp=pc.localDescription.sdp))
        self._timeout = asyncio.get_running_loop().call_later(
            self._connect_timeout, self._inbox.put_nowait, _ConnectTimeout(pc)
        )

    async def _hear(self, track: MediaStreamTrack) -> None:
        """Read the viewer's sound all along (aiortc would queue what nobody reads); the talk
        receiver keeps only the floor holder's."""
        while True:
            try:
                decoded = await track.recv()
            except MediaStreamError:
                return
            self._on_talk(self.viewer_id, decoded)

    def _chat_message(self, data: str | bytes) -> None:
        try:
            message = decode_data_channel_message(data)
        except ProtocolError as exc:
            self.send_chat(ChatNotice(reason=exc.reason))
            return
        if isinstance(message, ChatSend):
            self._on_chat(self, message)

    def set_quality(self, quality: str) -> None:
        """The viewer picked another layer (or "auto"): its sender moves at that layer's keyframe."""
        layer = self.choice.pick(quality)
        if layer is not None:
            self._move(layer, "")

    def _move(self, layer: Layer, reason: str, stop_now: bool = False) -> None:
        self._layer_reason = reason
        if self.track is not None:
            self.track.switch(self._pipeline.layer(layer.name).fanout, stop_now)
            log.info("viewer %s: -> %s%s", self.viewer_id, layer.name, f" ({reason})" if reason else "")

    def _switched(self, layer_name: str) -> None:
        """The sender now sends ``layer_name`` (from its first frame, or a switch at a keyframe)."""
        layer = self._pipeline.layer(layer_name).layer
        if self.rtx is not None:
            self.rtx.bitrate = layer.bitrate
        if self.audio_track is not None:
            self.audio_track.switch(self._audio_fanout(layer_name))
        message = LayerChanged(to=self.viewer_id, layer=layer.name, width=layer.width, height=layer.height,
                               reason=self._layer_reason)
        task = asyncio.get_running_loop().create_task(self._send(message))
        self._sends.add(task)
        task.add_done_callback(self._sends.discard)

    def _lowest(self, layer_name: str) -> bool:
        """Whether ``layer_name`` is the lowest layer of several: its viewer's link carries no more."""
        layers = self._pipeline.layers
        return len(layers) > 1 and layers[-1].layer.name == layer_name

    def _audio_fanout(self, layer_name: str):
        """The sound for a viewer on ``layer_name``: the low-rate rendition on the lowest layer
        (the sound must fit beside it), else the full one."""
        assert self._audio is not None
        return self._audio.fanout_for(low=self._lowest(layer_name))

    def _sound_rate(self, layer: Layer) -> int:
        """Bits per second this viewer's sound takes on its link beside ``layer`` (0: no sound)."""
        if self._audio is None or self._pc is None or self.audio_track is None:
            return 0
        return self._audio.wire_rate(low=self._lowest(layer.name))

    async def _adapt(self, pc: RTCPeerConnection, every: float = 1.0) -> None:
        """While connected, once a second: what the viewer's connection says, for its layer choice."""
        try:
            while pc is self._pc and pc.connectionState == "connected":
                await asyncio.sleep(every)
                if self.track is None:
                    continue
                evidence = await self._evidence(pc, self.track)
                log.debug("viewer %s: %s; rtx %s", self.viewer_id, evidence, self.rtx)
                move = self.choice.observe(time.monotonic(), evidence)
                if move is not None and move.up and self.rtx is not None and self.rtx.can_probe:
                    move = await self._probe(move)
                if move is not None:
                    self._move(move.layer, move.reason, stop_now=not move.up)
        finally:
            self._adapter = None

    async def _probe(self, move: LayerMove) -> LayerMove | None:
        """Padding up to the larger layer's rate first: a step up that the link would not
        carry costs padding, not pictures. The move, if it still stands."""
        probe = await self.rtx.probe(self.choice.probe_target(move.layer))
        if self.choice.layer is not move.layer:
            return None  # the viewer picked a layer meanwhile
        if not probe.fits:
            self.choice.probe_failed(time.monotonic())
            if self.track is not None:
                self.track.refresh()
            log.info("viewer %s: stays at %s (%s)", self.viewer_id, self.choice.layer.name, probe.reason)
            return None
        return dataclasses.replace(move, reason=f"{move.reason}; {probe.reason}")

    async def _evidence(self, pc: RTCPeerConnection, track: FanOutTrack) -> Evidence:
        fraction_lost, rtt = None, None
        for sender in _video_senders(pc):
            for item in (await sender.getStats()).values():
                if item.type == "remote-inbound-rtp":
                    rtt = item.roundTripTime
                    if item.timestamp != self._last_report:  # a new report: its loss is news
                        self._last_report = item.timestamp
                        fraction_lost = item.fractionLost / 256  # RTCP: 8-bit
        requests = track.viewer_keyframe_requests - self._sampled[0]
        drops = track.queue_overflows - self._sampled[1]
        self._sampled = (track.viewer_keyframe_requests, track.queue_overflows)
        return Evidence(fraction_lost=self._loss(fraction_lost), rtt=rtt, keyframe_requests=requests,
                        queue_drops=drops, estimate=track.bitrate_estimate)

    def _loss(self, reported: float | None) -> float | None:
        """The share of packets lost since the last sample: the receiver report's, or the share
        the viewer asked for again, whichever is larger. Chromium's reports count a packet that
        a retransmission brought as received: behind a cap, 720p repaired at great cost looked
        like 2% loss, and the picture froze for 6 s before the round trip moved it a layer."""
        (sent, nacked), (sent_before, nacked_before) = self.rtx.counts, self._nack_sample
        self._nack_sample = (sent, nacked)
        if sent - sent_before < MIN_PACKETS:
            return reported
        asked = (nacked - nacked_before) / (sent - sent_before)
        return asked if reported is None else max(reported, asked)

    async def stats(self) -> CameraViewerStats:
        """This viewer as the camera sees it: its queue, and RTCP receiver reports."""
        track, pc = self.track, self._pc
        report = CameraViewerStats(id=self.viewer_id, quality=self.choice.quality)
        if track is not None:
            report.frames_sent = track.frames_sent
            report.queue_drops = track.frames_dropped
            report.keyframe_requests = track.keyframe_requests
            report.layer = track.layer
            report.layer_switches = track.layer_switches
            if track.bitrate_estimate:
                report.bitrate_estimate_kbps = round(track.bitrate_estimate / 1000, 1)
        if self.audio_track is not None:
            report.audio_packets_sent = self.audio_track.packets_sent
            report.audio_packets_dropped = self.audio_track.packets_dropped
        if pc is not None and pc.connectionState == "connected":
            for sender in _video_senders(pc):
                for item in (await sender.getStats()).values():
                    if item.type == "remote-inbound-rtp":
                        if item.roundTripTime is not None:
                            report.rtt_ms = round(item.roundTripTime * 1000, 2)
                        report.packets_lost = max(0, item.packetsLost)  # signed in RTCP: duplicates
                        report.fraction_lost = round(item.fractionLost / 256, 4)  # RTCP: 8-bit
        return report

    @property
    def chat_open(self) -> bool:
        return self._chat_channel is not None and self._chat_channel.readyState == "open"

    def send_chat(self, message: ChatMessage | ChatHistory | ChatNotice) -> None:
        """Send on this viewer's chat data channel, if it is open."""
        if self.chat_open:
            self._chat_channel.send(encode(message))

    async def _add_candidate(self, message: Candidate) -> None:
        if self._pc is None:
            return
        init = message.candidate
        if init is None or not init.candidate:
            # End of candidates is not passed on. With it, aioice fails the connection as soon
            # as the pairs it has failed, before the viewer's own checks can add the
            # peer-reflexive pair that works (seen with Chromium on a host with a LAN address:
            # its LAN candidate answers from 127.0.0.1). The connect timeout ends a connection
            # that really fails.
            return
        await self._pc.addIceCandidate(aiortc_candidate(init))

    async def _close_pc(self) -> None:
        pc, self._pc = self._pc, None
        self._chat_channel = None
        if self._timeout is not None:
            self._timeout.cancel()
            self._timeout = None
        if self.track is not None:
            self.track.stop()
            self.track = None
        if self.audio_track is not None:
            self.audio_track.stop()
            self.audio_track = None
        if self._adapter is not None:
            self._adapter.cancel()
            self._adapter = None
        if self._hearing is not None:
            self._hearing.cancel()
            self._hearing = None
        if pc is not None:
            try:
                # aiortc can wait forever, or fail, closing a connection whose offer was
                # applied but never answered (a bad offer): neither may stop this viewer's
                # next offer. Shielded, so a caller that is cancelled does not leave it half-closed.
                await asyncio.wait_for(asyncio.shield(pc.close()), _CLOSE_TIMEOUT)
            except asyncio.TimeoutError:
                log.info("viewer %s: peer connection did not close in %g s", self.viewer_id, _CLOSE_TIMEOUT)
            except Exception as exc:
                log.warning("viewer %s: closing its peer connection failed: %r", self.viewer_id, exc)

    async def close(self) -> None:
        """The viewer left: tear everything down."""
        if self.closed:
            return
        self.closed = True
        self._on_closed(self)  # first: new messages for this viewer get a new connection
        if self._task is not asyncio.current_task():
            self._task.cancel()
        await self._close_pc()
        waiting = [t for t in (self._task, *self._sends) if t is not asyncio.current_task()]
        await asyncio.gather(*waiting, return_exceptions=True)
