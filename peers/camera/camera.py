"""The camera peer: publishes one stream and serves every viewer from one encoder."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Literal, get_args

import msgspec
from aiortc import RTCConfiguration
from peercam.peers.h264profiles import install_h264_profiles
from peercam.peers.ice import IceOptions, restrict_host_addresses
from peercam.peers.icecompletion import install_prompt_ice_completion
from peercam.peers.signaling_client import ServerList, Servers, SignalingClient, SignalingError

from peercam.shared.errors import PeercamError, UsageError
from peercam.shared.protocol import (
    PROTOCOL_VERSION,
    AudioInfo,
    CameraStats,
    CameraStatsReport,
    Candidate,
    ChatHistory,
    ChatMessage,
    ChatNotice,
    ChatSend,
    Codec,
    Error,
    ErrorCode,
    Hangup,
    IceServers,
    Offer,
    Publish,
    Published,
    RelayFrames,
    RelayKeyframe,
    StreamEnded,
    StreamInfo,
    TalkStart,
    TalkStop,
    ViewerJoined,
    ViewerLeft,
    ViewerQuality,
    ViewerRenamed,
)
from peercam.shared.recordingconfig import RecordingConfig

from . import playoutdelay
from .audiopipeline import DEFAULT_AUDIO_BITRATE, MAX_OPUS_KBPS_PER_CHANNEL, AudioPipeline
from .audiosources import AudioSource, AudioSourceError, PushAudioSource, open_audio_source
from .chathub import ChatHub, ChatRefused
from .encodedsources import EncodedVideoSource, passthrough_refusal
from .layers import Layer, default_bitrate, parse_layers
from .pipeline import MediaPipeline
from .relaysender import RelaySender
from .rtspsource import RtspSource, is_rtsp
from .sources import PushSource, SourceError, VideoSource, open_source
from .talkfloor import TalkFloor
from .talkreceiver import TalkFrame, TalkReceiver
from .viewerconnection import ViewerConnection

log = logging.getLogger(__name__)


def open_sources(source: str, audio: str = "auto", width: int | None = None, height: int | None = None,
                 fps: float = 30.0, stretch: bool = False, rtsp_transport: str = "tcp",
                 source_low: str | None = None,
                 ) -> tuple[VideoSource | EncodedVideoSource, AudioSource | None, EncodedVideoSource | None]:
    """The picture's source, the sound's (None: none) and a sub-stream's (``source_low``), as
    ``--source``, ``--audio`` and ``--source-low`` name them.

    An RTSP camera passes through at its own size (``width``/``height`` would need a decode
    and an encode: use ``--layers`` for smaller pictures), and ``audio="auto"`` is its own
    sound. Raises SourceError (UsageError for ``push`` sound) and closes what it opened.
    """
    rtsp = is_rtsp(source)
    if rtsp and (width or height or stretch):
        raise SourceError("an RTSP camera passes through at its own size: leave out --width, --height and "
                          "--stretch, and name smaller layers with --layers")
    if source_low is not None and not (rtsp and is_rtsp(source_low)):
        raise SourceError("--source-low is a camera's RTSP sub-stream, beside an RTSP --source")
    opened: list = []
    try:
        video = RtspSource(source, rtsp_transport, audio=audio == "auto") if rtsp else open_source(
            source, width, height, fps, stretch)
        opened.append(video)
        if isinstance(video, RtspSource) and audio == "auto":
            sound = video.audio
        else:
            try:
                sound = open_audio_source(audio, None if rtsp else source)
            except SourceError as exc:
                raise AudioSourceError(str(exc)) from None
        if sound is not None:
            opened.append(sound)
        low = RtspSource(source_low, rtsp_transport, audio=False) if source_low is not None else None
    except BaseException:
        for thing in opened:
            thing.close()
        raise
    return video, sound, low


class CameraError(PeercamError):
    """The camera peer cannot go on (its source failed, or its name is taken)."""


@dataclass
class CameraOptions:
    #: The signaling server's URL, or several: the camera moves to the next when one fails.
    server: Servers
    stream: str
    codec: Codec = "vp8"
    #: Quality layers (peers/camera/layers.py): "auto", or e.g. "720p,480p,360p@15".
    layers: str = "auto"
    #: The top layer's bitrate (bits per second); None: what suits its size.
    bitrate: int | None = None
    ice: IceOptions = field(default_factory=IceOptions)
    #: Close a viewer's peer connection that is not connected by then.
    connect_timeout: float = 15.0
    #: Display name in the stream list and chat.
    name: str = ""
    #: A publish token, when the server asks for one.
    token: str = ""
    #: CA certificate(s) for a wss:// server with a private CA.
    ca_file: str | None = None
    #: The server's own certificate, trusted at any address (its in-process cameras: WHIP).
    server_certificate: str | None = None
    #: Append every chat message to this file as a JSON line.
    chat_log: str | None = None
    jpeg_quality: int = 80
    #: Cap on relay frames per second (None: every captured frame).
    relay_fps: float | None = None
    #: Also record the top layer (and the sound) locally, in segments (``peercam camera --record DIR``).
    recording: RecordingConfig | None = None
    #: The sound's Opus bitrate (bits per second), when there is sound.
    audio_bitrate: int = DEFAULT_AUDIO_BITRATE
    #: Pass an encoded source's pictures through (False: decode and encode them, for keyframes
    #: on request and --bitrate, at the CPU's cost).
    passthrough: bool = True
    #: Talk back's sinks: one Ogg/Opus file per turn in this folder, and an ALSA playback device.
    talk_record: str | None = None
    speaker: str | None = None
    #: "half": while a viewer talks, the camera's own sound to viewers is ducked to silence
    #: (no echo of the speaker); "full": it is not (an echo-cancelling device).
    talk_duplex: Literal["half", "full"] = "half"


class CameraPeer:
    """Publishes one stream: captures once, encodes once per layer in use, answers every viewer.

    An encoded ``source`` (an RTSP camera, a WHIP publisher) is passed through as the top
    layer when viewers can take its codec and profile (the stream's codec is then the
    source's, whatever ``options.codec`` says), else decoded and encoded in ``options.codec``;
    ``low_source``, a camera's own sub-stream, is passed through as a lower layer.

    Raises UsageError at once for a bad server URL or codec, LayerError (a UsageError)
    when ``options.layers`` does not fit the source, and SourceError for a ``low_source``
    that cannot pass through beside it.
    """

    def __init__(self, options: CameraOptions, source: VideoSource | EncodedVideoSource,
                 audio: AudioSource | None = None, low_source: EncodedVideoSource | None = None) -> None:
        if options.codec not in get_args(Codec):
            raise UsageError(f"codec {options.codec!r}: use vp8 or h264")
        most = MAX_OPUS_KBPS_PER_CHANNEL * 1000 * (audio.channels if audio is not None else 2)
        if not 6000 <= options.audio_bitrate <= most:
            raise UsageError(f"audio bitrate {options.audio_bitrate // 1000} kbit/s: Opus takes 6 to "
                             f"{MAX_OPUS_KBPS_PER_CHANNEL} a channel")
        self.options = options
        self.source = source
        #: The sound source, if the stream has sound.
        self.audio_source = audio
        self.audio: AudioPipeline | None = None
        self._servers = ServerList(options.server)
        self.layers = parse_layers(options.layers, source.width, source.height, source.fps, options.bitrate)
        #: The layers whose pictures go out as their source's came.
        self.passthrough: dict[str, EncodedVideoSource] = {}
        self.codec = options.codec
        if isinstance(source, EncodedVideoSource) and options.passthrough:
            refusal = passthrough_refusal(source.codec, source.profile)
            if refusal is None:
                self.codec = source.codec
                self.passthrough[self.layers[0].name] = source
            else:
                log.warning("%s: %s, so its pictures are decoded and encoded again in %s", source.description,
                            refusal, options.codec)
        if low_source is not None:
            self._add_low_layer(low_source)
        self.viewers: dict[str, ViewerConnection] = {}
        self.pipeline: MediaPipeline | None = None
        self._rtc_configuration: RTCConfiguration | None = None
        self._client: SignalingClient | None = None
        #: Counts signaling connections: viewer ids are only valid within the one that made them.
        self._session = 0
        self.chat = ChatHub(options.chat_log, camera_name=options.name)
        #: Who talks back through the camera (peers/camera/talkfloor.py).
        self.talk_floor = TalkFloor(lambda message: self._spawn(self._send(message)), self.chat.name_of)
        self.talk_floor.on_change.append(self._talk_changed)
        if options.talk_duplex not in ("half", "full"):
            raise UsageError(f"talk duplex {options.talk_duplex!r}: use half or full")
        #: The floor holder's sound to the talk sinks (peers/camera/talkreceiver.py).
        self.talk = TalkReceiver(options.talk_record, options.speaker)
        self.talk_floor.on_change.append(self._talk_media)
        self._relay: RelaySender | None = None
        #: What each viewer asked for: a layer's name or "auto" (from viewer-joined, viewer-quality).
        self._qualities: dict[str, str] = {}
        #: Set once the server has accepted the stream (and again after each reconnect).
        self.published = asyncio.Event()
        self._tasks: set[asyncio.Task] = set()  # short jobs (sends, closing a viewer), awaited at the end

    def _add_low_layer(self, low: EncodedVideoSource) -> None:
        """The sub-stream as a layer of its own height, in place of an encoded one of that height."""
        if not self.passthrough or low.codec != self.codec or passthrough_refusal(low.codec, low.profile):
            why = passthrough_refusal(low.codec, low.profile) or f"it is {low.codec}"
            main = self.codec if self.passthrough else f"{self.codec}, decoded"
            raise SourceError(f"the low source {low.description} cannot pass through beside the main one "
                              f"({why}; the main stream is {main}): both must pass through, in one codec")
        top = self.layers[0]
        if low.height >= top.height:
            raise SourceError(f"the low source is {low.width}x{low.height}, not below the main {top.width}x"
                              f"{top.height}")
        layer = Layer(f"{low.height}p", low.width, low.height, round(low.fps, 3),
                      default_bitrate(low.width, low.height, low.fps))
        self.layers = sorted([other for other in self.layers if other.height != low.height] + [layer],
                             key=lambda other: -other.height)
        self.passthrough[layer.name] = low

    @property
    def stream_info(self) -> StreamInfo:
        audio = None
        if self.audio_source is not None:
            audio = AudioInfo(channels=self.audio_source.channels, bitrate=self.options.audio_bitrate)
        layers = [msgspec.structs.replace(layer.info, passthrough=layer.name in self.passthrough)
                  for layer in self.layers]
        source = self.source.description if isinstance(self.source, EncodedVideoSource) else ""
        return StreamInfo(width=self.source.width, height=self.source.height,
                          fps=round(self.source.fps, 3), codec=self.codec, layers=layers,
                          jpeg_quality=self.options.jpeg_quality, audio=audio, source=source)

    async def run(self) -> None:
        """Publish until cancelled; raises CameraError when it cannot go on."""
        playoutdelay.enable()
        install_prompt_ice_completion()  # process-wide, once: a joiner's ICE is up as its checks pass
        if self.passthrough:
            install_h264_profiles()  # a Main stream passes through as Main where viewers offer it
        loop = asyncio.get_running_loop()
        self.pipeline = MediaPipeline(self.source, self.layers, self.codec, loop,
                                      relay_fps=self.options.relay_fps, passthrough=self.passthrough)
        for name, source in self.passthrough.items():
            log.info("%s passes through as layer %s (%s, not encoded here): a viewer starts on it at the "
                     "source's next keyframe", source.description, name, source.codec)
        recorder = None
        if self.options.recording is not None:
            audio_channels = self.audio_source.channels if self.audio_source is not None else None
            recorder = self.pipeline.record(self.options.recording, self.options.stream, audio_channels)
        self.pipeline.start()
        failures = {self.pipeline.failed}
        if self.audio_source is not None:
            self.audio = AudioPipeline(self.audio_source, loop, self.options.audio_bitrate)
            if recorder is not None:  # the sound into the same segments, as it is encoded
                self.audio.recorders.append(
                    lambda packet: recorder.write_audio(packet.payload, int(packet.capture_time * 1_000_000)))
            failures.add(self.audio.failed)
            self.audio.start()
            channels = "mono" if self.audio_source.channels == 1 else "stereo"
            log.info("sound: %s, Opus %d kbit/s, %s", self.audio_source.description,
                     self.options.audio_bitrate // 1000, channels)
        self._relay = RelaySender(self.pipeline, self.audio)
        signaling = asyncio.create_task(self._stay_published())
        reporter = asyncio.create_task(self._report_stats())
        try:
            done, _ = await asyncio.wait({signaling, *failures}, return_when=asyncio.FIRST_COMPLETED)
            for failed in failures & done:
                raise CameraError(str(failed.result()))
            signaling.result()
        finally:
            signaling.cancel()
            reporter.cancel()
            await asyncio.gather(*(v.close() for v in list(self.viewers.values())))
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await asyncio.to_thread(self.pipeline.stop)
            if self.audio is not None:
                await asyncio.to_thread(self.audio.stop)
            self.chat.close()
            self.talk.close()

    async def _report_stats(self, every: float = 2.0, log_every: int = 5) -> None:
        """Tell the server how the camera is doing (and the log, now and then)."""
        assert self.pipeline is not None
        stats, layers = self.pipeline.stats, self.pipeline.layers
        last = (stats.frames_captured, stats.frames_encoded, stats.relay_frames)
        last_taken = [layer.frames_taken for layer in layers]
        last_time = time.monotonic()
        for round_number in itertools.count(1):
            await asyncio.sleep(every)
            now = (stats.frames_captured, stats.frames_encoded, stats.relay_frames)
            captured, encoded, relayed = (a - b for a, b in zip(now, last, strict=True))
            taken = [layer.frames_taken for layer in layers]
            # A busy event loop wakes late: divide by the time that really passed.
            current = time.monotonic()
            elapsed, last_time = current - last_time, current
            last = now
            report = CameraStats(
                # The rate of the fastest layer in use: what its viewers get.
                fps=round(max(a - b for a, b in zip(taken, last_taken, strict=True)) / elapsed, 2),
                encode_ms=round(stats.encode_ms, 2),
                frames_encoded=stats.frames_encoded,
                frames_skipped=stats.frames_skipped,
                keyframes=stats.keyframes,
                relay_frames=stats.relay_frames,
                viewers=[await viewer.stats() for viewer in list(self.viewers.values())],
                layers=self.pipeline.layer_stats(),
                audio=self.audio.stats() if self.audio is not None else None,
            )
            last_taken = taken
            if self.published.is_set():
                await self._send(CameraStatsReport(stats=report))
            if round_number % log_every == 0 and (self.viewers or relayed):
                log.info("%d P2P viewers; per second: %.1f captured, %.1f encoded, %.1f relay frames; "
                         "encode %.1f ms; %d keyframes so far", len(self.viewers), captured / elapsed,
                         encoded / elapsed, relayed / elapsed, stats.encode_ms, stats.keyframes)

    async def _stay_published(self) -> None:
        """Keep a signaling connection and the stream published, reconnecting (to the next
        server, if several) with backoff.

        Peer connections already up keep playing while the server is away.
        """
        ever_published = False
        while True:
            server = self._servers.current
            client = self._client = SignalingClient(server, self.options.ca_file, self.options.token,
                                                    server_certificate=self.options.server_certificate)
            relay_sender: asyncio.Task | None = None
            try:
                welcome = await client.connect()
                self._session += 1
                self._let_go_of_old_viewers()
                self.talk_floor.forget()
                self.chat.forget_everyone()  # the new session's viewer-joined names them again
                assert self._relay is not None
                relay_sender = asyncio.create_task(self._relay.run(client))
                restrict_host_addresses(self.options.ice.host_addresses(welcome))  # process-wide: aioice
                self._rtc_configuration = self.options.ice.configuration(welcome)
                await client.send(Publish(stream=self.options.stream, info=self.stream_info,
                                          name=self.options.name, token=self.options.token,
                                          protocol=PROTOCOL_VERSION))
                async for message in client.messages():
                    if isinstance(message, Published):
                        self.talk_floor.open, self.talk_floor.talk_max = message.talk, message.talk_max
                        # The full ICE server list (with auth on, TURN credentials come only now).
                        welcome = msgspec.structs.replace(welcome, ice_servers=message.ice_servers)
                        self._rtc_configuration = self.options.ice.configuration(welcome)
                        ever_published = True
                        self._servers.succeeded()
                        self.published.set()
                        info = self.stream_info
                        log.info("publishing %r (%dx%d@%g %s) on %s", message.stream, info.width,
                                 info.height, info.fps, info.codec, server)
                    elif isinstance(message, Error) and message.code == ErrorCode.STREAM_TAKEN:
                        if not ever_published:
                            raise CameraError(message.reason)
                        lost = message.reason
                        break  # our old connection may still be registered: retry soon
                    elif isinstance(message, Error) and not self.published.is_set():
                        raise CameraError(f"{message.code}: {message.reason}")  # cannot publish
                    elif isinstance(message, StreamEnded):
                        raise CameraError(f"the server ended the stream: {message.reason}")
                    elif isinstance(message, IceServers):
                        welcome = msgspec.structs.replace(welcome, ice_servers=message.ice_servers)
                        self._rtc_configuration = self.options.ice.configuration(welcome)
                    else:
                        self._handle(message)
            except SignalingError as exc:
                lost = str(exc)
            finally:
                if self._relay is not None:
                    self._relay.stop()
                if relay_sender is not None:
                    relay_sender.cancel()
                self.published.clear()
                self._client = None
                await client.close()
            self._servers.failed()
            log.warning("%s; reconnecting to %s", lost, self._servers.current)
            await self._servers.wait()

    def _handle(self, message: object) -> None:
        if isinstance(message, bytes):  # a talk frame: the floor holder's sound on the relay
            self.talk.relay_frame(message)
        elif isinstance(message, RelayFrames) and self._relay is not None:
            self._relay.set_demand(message)
        elif isinstance(message, RelayKeyframe) and self._relay is not None:
            self._relay.keyframe(message)
        elif isinstance(message, ViewerQuality):
            self._qualities[message.peer_id] = message.quality
            viewer = self.viewers.get(message.peer_id)
            if viewer is not None:
                viewer.set_quality(message.quality)
        elif isinstance(message, TalkStart) and message.sender:
            self.talk_floor.ask(message.sender)
        elif isinstance(message, TalkStop) and message.sender:
            self.talk_floor.release(message.sender)
        elif isinstance(message, ChatSend) and message.sender:
            self._chat_line(message.sender, message, reply=self._send_via_server(message.sender))
        elif isinstance(message, (Offer, Candidate, Hangup)) and message.sender:
            viewer = self.viewers.get(message.sender)
            if viewer is None and isinstance(message, Offer):  # only an offer starts a connection
                viewer = self._add_viewer(message.sender)
            if viewer is not None:
                viewer.post(message)
        elif isinstance(message, ViewerJoined):
            log.info("viewer %s joined", message.peer_id)
            history = self.chat.join(message.peer_id, message.name)
            if history:  # through the server: a relay viewer has no data channel
                self._spawn(self._send(ChatHistory(to=message.peer_id, messages=history)))
            self._qualities[message.peer_id] = message.quality
        elif isinstance(message, ViewerRenamed):
            self.chat.rename(message.peer_id, message.name)
        elif isinstance(message, ViewerLeft):
            self.talk_floor.release(message.peer_id)
            viewer = self.viewers.get(message.peer_id)
            self.chat.forget(message.peer_id)
            self._qualities.pop(message.peer_id, None)
            if viewer is not None:
                log.info("viewer %s left", message.peer_id)
                self._spawn(viewer.close())

    def _spawn(self, coro) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, message) -> None:
        """Send on the current signaling connection; dropped while reconnecting."""
        if self._client is None:
            return
        try:
            await self._client.send(message)
        except SignalingError as exc:
            log.info("could not send %s: %s", type(message).__name__, exc)

    def _send_via_server(self, viewer_id: str):
        def reply(notice: ChatNotice) -> None:
            notice.to = viewer_id
            self._spawn(self._send(notice))
        return reply

    def _chat_from_data_channel(self, viewer: ViewerConnection, line: ChatSend | None) -> None:
        if line is None:  # the channel just opened
            history = self.chat.history()
            if history:
                viewer.send_chat(ChatHistory(messages=history))
            return
        self._chat_line(viewer.viewer_id, line, reply=viewer.send_chat)

    def _talk_changed(self, holder: str | None, name: str) -> None:
        """The chat records each turn: a line of the camera's, to everyone."""
        text = f"{name} is talking" if holder is not None else f"{name} stopped talking"
        self._share_chat(self.chat.note(text))

    def _talk_media(self, holder: str | None, name: str) -> None:
        """The turn's sound to the sinks; half duplex: the camera's own sound ducked meanwhile."""
        self.talk.floor_changed(holder, name)
        if self.audio is not None and self.options.talk_duplex == "half":
            self.audio.muted = holder is not None

    def _share_chat(self, message: ChatMessage) -> None:
        for viewer in self.viewers.values():
            viewer.send_chat(message)
        self._spawn(self._send(message))

    def _chat_line(self, viewer_id: str, line: ChatSend, reply) -> None:
        """Stamp a viewer's line and share it: every data channel, and the server for the rest."""
        try:
            message = self.chat.stamp(viewer_id, line)
        except ChatRefused as exc:
            reply(ChatNotice(reason=str(exc)))
            return
        self._share_chat(message)

    def _viewer_closed(self, viewer: ViewerConnection) -> None:
        # Its chat name stays: a viewer whose P2P ended may go on chatting from the relay.
        if self.viewers.get(viewer.viewer_id) is viewer:
            del self.viewers[viewer.viewer_id]

    def _add_viewer(self, viewer_id: str) -> ViewerConnection:
        assert self.pipeline is not None
        viewer = ViewerConnection(
            viewer_id,
            self.pipeline,
            self.audio,
            lambda: self._rtc_configuration,
            self.codec,
            self._send,
            self.options.connect_timeout,
            on_closed=self._viewer_closed,
            on_chat=self._chat_from_data_channel,
            on_disconnected=self._viewer_disconnected,
            session=self._session,
            quality=self._qualities.get(viewer_id, "auto"),
            talk=lambda: self.talk_floor.open,
            on_talk=self.talk.hear,
        )
        self.viewers[viewer_id] = viewer
        return viewer

    def _viewer_disconnected(self, viewer: ViewerConnection) -> None:
        """Its peer connection ended: keep the viewer for a new offer, unless it can never send one."""
        if viewer.session != self._session:
            self._spawn(viewer.close())

    def _let_go_of_old_viewers(self) -> None:
        """A new signaling connection: viewers of the old one that lost their peer connection are gone
        for good (the new server never tells us they left); the rest play on until theirs ends."""
        for viewer in list(self.viewers.values()):
            if not viewer.active:
                self._spawn(viewer.close())


class Camera:
    """Publishes a stream from this program: frames it hands over with ``send()``, or a
    built-in source (``source="testsrc"``, a camera index such as ``"0"``, a device path, a
    video file, or an RTSP camera's URL).

    ``async with Camera(server, stream) as camera:`` publishes until the block ends;
    ``send(image)`` takes numpy BGR pictures from any thread, never blocks (the newest
    wins) and scales them to the camera's size.

    The leading parameters and those shared with ``watch()`` mean the same there:
    ``server``, a URL (``http://host:port``) or several, tried in turn whenever the one in
    use fails; ``stream``, its name; ``name``, the display name (stream list, chat);
    ``token``, a publish token when the server asks for one; ``ice``, which ICE servers and
    local addresses to use (default: the server's); ``ca_file``, CA certificate(s) for an
    https:// server with a private CA; ``connect_timeout``, seconds a viewer's peer
    connection may take to connect before it is closed.

    The camera's own: ``width``/``height``, the size published (pushed frames: 640x480
    unless given; a source keeps its own shape within them); ``fps``; ``codec``;
    ``layers``, the quality layers ("auto", or e.g. "720p,480p,360p@15"); ``bitrate``, the
    top layer's (bits per second; None: what suits its size); ``jpeg_quality``, of relay
    frames for viewers that pick none; ``recording``, also record the top layer (with the sound) here, in
    segments (``peercam camera --record``); ``audio``, the sound (``peercam camera
    --audio``): "auto" (the tone with "testsrc", a video file's own track, else none),
    "none", "tone", an ALSA device, an audio file, or "push" / "push:2" for sound this
    program hands over with ``send_audio()`` (mono / stereo); ``audio_bitrate``, its Opus
    bitrate (bits per second). An RTSP camera (``source="rtsp://..."``) passes its H.264
    through; ``rtsp_transport`` is "tcp" or "udp", and ``source_low`` the camera's own
    sub-stream's URL, passed through as a lower layer; ``passthrough=False`` decodes and
    encodes its pictures instead (keyframes on request, ``bitrate``, at the CPU's cost).
    Talk back (a server's ``--talk``): ``talk_record``, a folder for one Ogg/Opus file per
    turn; ``speaker``, an ALSA device that plays it; ``talk_duplex``, "half" (the camera's own
    sound is ducked to silence while a viewer talks) or "full"; ``talk()`` reads it.

    Raises UsageError here for a bad URL, codec or layer list (LayerError), SourceError for
    a source that cannot be opened; ``start()`` raises CameraError.
    """

    def __init__(self, server: Servers, stream: str, *, name: str = "", token: str | None = None,
                 ice: IceOptions | None = None, ca_file: str | None = None, connect_timeout: float = 15.0,
                 source: str | None = None, width: int | None = None, height: int | None = None,
                 fps: float = 30.0, codec: Codec = "vp8", layers: str = "auto", bitrate: int | None = None,
                 jpeg_quality: int = 80, recording: RecordingConfig | None = None, audio: str = "auto",
                 audio_bitrate: int = DEFAULT_AUDIO_BITRATE, rtsp_transport: str = "tcp",
                 source_low: str | None = None, passthrough: bool = True, talk_record: str | None = None,
                 speaker: str | None = None, talk_duplex: Literal["half", "full"] = "half") -> None:
        low: EncodedVideoSource | None = None
        if source is None:
            self._push: PushSource | None = PushSource(width or 640, height or 480, fps)
            video: VideoSource | EncodedVideoSource = self._push
            sound = open_audio_source(audio, source)
        else:
            self._push = None
            video, sound, low = open_sources(source, audio, width, height, fps, rtsp_transport=rtsp_transport,
                                             source_low=source_low)
        try:
            self._push_audio = sound if isinstance(sound, PushAudioSource) else None
            self._peer = CameraPeer(CameraOptions(
                server=server, stream=stream, name=name, token=token or "", ice=ice or IceOptions(),
                ca_file=ca_file, connect_timeout=connect_timeout, codec=codec, layers=layers,
                bitrate=bitrate, jpeg_quality=jpeg_quality, recording=recording,
                audio_bitrate=audio_bitrate, passthrough=passthrough, talk_record=talk_record,
                speaker=speaker, talk_duplex=talk_duplex), video, sound, low)
        except BaseException:
            for opened in (video, sound, low):  # a camera opened for nothing is let go at once
                if opened is not None:
                    opened.close()
            raise
        self._task: asyncio.Task | None = None

    @property
    def width(self) -> int:
        """The width of the pictures published (what send() scales to, or the source's)."""
        return self._peer.source.width

    @property
    def height(self) -> int:
        """The height of the pictures published, as ``width``."""
        return self._peer.source.height

    def send(self, image) -> None:
        """Publish this picture next (BGR uint8, height x width x 3); any thread, never blocks."""
        if self._push is None:
            raise CameraError("this camera publishes its own source: send() is for a Camera without one")
        self._push.push(image)

    async def talk(self, keep: int = 50) -> AsyncIterator[tuple[str, TalkFrame]]:
        """Talk back's sound: ``(speaker_name, TalkFrame)`` for each 20 ms the viewer holding
        the floor sends, from now on (nothing while nobody talks). A reader that falls
        ``keep`` frames behind loses the oldest."""
        async for item in self._peer.talk.frames(keep):
            yield item

    def send_audio(self, samples, sample_rate: int) -> None:
        """Publish this sound next (numpy int16, ``(n,)`` or ``(n, channels)``, at any rate from
        8 to 192 kHz: resampled to Opus's 48 kHz); any thread, never blocks. Needs
        ``audio="push"`` (or "push:2"); sound not yet sent after a second is dropped, oldest first."""
        if self._push_audio is None:
            raise CameraError('send_audio() is for a Camera made with audio="push" or "push:2"')
        self._push_audio.push(samples, sample_rate)

    def end_talk(self) -> None:
        """End the talk-back turn under way, if any: the operator takes the floor (the speaker
        is told, every viewer sees that nobody talks)."""
        self._peer.talk_floor.take()

    async def __aenter__(self) -> Camera:
        await self.start()
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self.close()

    async def start(self) -> None:
        """Publish; returns once the server has accepted the stream (raises CameraError if not)."""
        self._task = asyncio.create_task(self._peer.run(), name="peercam-camera")
        published = asyncio.create_task(self._peer.published.wait())
        try:
            await asyncio.wait({self._task, published}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            published.cancel()
        if self._task.done():
            self._task.result()  # raises why it could not publish

    async def close(self) -> None:
        """Stop publishing: viewers are told, the encoders and threads stop."""
        if self._task is None:
            return
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        self._task = None
