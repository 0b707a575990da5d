"""The Python viewer's core: follows one stream and hands its frames, sound, chat and events over.

A Viewer keeps a signaling connection (reconnecting with backoff, to the next server
when given several), watches the stream, and lets its Delivery (peers/viewer/delivery.py)
pick the transport: P2P or the relay. It counts and measures every frame
(peers/viewer/framestats.py) and the sound (peers/viewer/audiostats.py), reports to the
server every 2 s, and hands frames, sound, chat lines and events to whoever reads them.
It prints nothing: `peercam view` (peercam/cli.py) and the library (`peercam.watch`) are
its consumers.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Literal, get_args

import msgspec
from aiortc import RTCConfiguration
from peercam.peers.ice import IceOptions, restrict_host_addresses
from peercam.peers.signaling_client import ServerList, Servers, SignalingClient, SignalingError

from peercam.shared.errors import PeercamError, UsageError
from peercam.shared.protocol import (
    PROTOCOL_VERSION,
    Answer,
    Candidate,
    ChatHistory,
    ChatMessage,
    ChatNotice,
    ChatSend,
    Error,
    ErrorCode,
    Hangup,
    IceServers,
    LayerChanged,
    RelayFormat,
    SetQuality,
    Stats,
    StreamEnded,
    StreamLive,
    Talking,
    TalkRefused,
    TalkStop,
    ViewerStats,
    Watch,
    Watching,
    clean_text,
)

from .audioframe import AudioFrame
from .audiostats import AudioStats
from .delivery import Delivery
from .frame import Frame
from .framestats import FrameStats
from .p2ptransport import P2PTransport
from .relaytransport import RELAY_FORMATS, RelayTransport, relay_format_for
from .talker import Talker

log = logging.getLogger(__name__)

#: Errors after which waiting longer cannot help.
_FATAL_CODES = {ErrorCode.BAD_STREAM_NAME, ErrorCode.WRONG_STATE, ErrorCode.BAD_TOKEN, ErrorCode.BAD_NAME}


#: How a viewer gets its frames: "p2p" (WebRTC, straight from the camera), "relay" (through
#: the server), or "auto" (P2P, falling back to the relay and back by itself).
Mode = Literal["auto", "p2p", "relay"]

#: What a ViewerEvent tells (see ViewerEvent).
EventKind = Literal["live", "waiting", "connected", "first-frame", "resumed", "sound", "session", "setback",
                    "camera-left", "reconnecting", "layer", "chat-notice", "server-error", "talk", "stats"]


class ViewerError(PeercamError):
    """Why the viewer gave up: a one-line reason for the user."""


@dataclass
class ViewerOptions:
    #: The signaling server's URL, or several: the viewer moves to the next when one fails.
    server: Servers
    stream: str
    #: Seconds after the first frame left out of the figures (start-up transients).
    warmup: float = 0.0
    #: Give up when no frame arrived this long after the start (None: never).
    first_frame_timeout: float | None = 15.0
    #: How long a stream that is not live yet may take to appear (0: fail at once).
    wait: float = 0.0
    #: "p2p" (WebRTC only), "relay" (through the server), or "auto" (see peers/viewer/delivery.py).
    mode: Mode = "auto"
    #: A layer's name (e.g. "480p"), or "auto": the sender picks what the network carries.
    quality: str = "auto"
    #: JPEG quality on the relay; None: the camera's, adapted to the network.
    jpeg_quality: int | None = None
    #: What the relay carries: "encoded" (the camera's own frames, decoded with PyAV),
    #: "jpeg", or "auto" (encoded where PyAV decodes the camera's codec).
    relay_format: RelayFormat | Literal["auto"] = "auto"
    #: A peer connection not connected by then counts as failed.
    connect_timeout: float = 5.0
    #: In auto mode on the relay, how often to try P2P again.
    p2p_retry: float = 30.0
    #: Receive the stream's sound, if it has any; False: P2P offers no audio and the relay
    #: is not asked for it.
    audio: bool = True
    ice: IceOptions = field(default_factory=IceOptions)
    #: Display name (chat, the stream's viewer list).
    name: str = ""
    #: A view token, when the server asks for one.
    token: str = ""
    #: CA certificate(s) for a wss:// server with a private CA.
    ca_file: str | None = None
    #: Talk back once from this audio file, ALSA device or "tone" (``peercam view --talk``).
    talk: str | None = None


@dataclass(frozen=True)
class ViewerEvent:
    """Something a person watching would want to know, in words (``text``).

    ``kind`` (EventKind): live, waiting, connected, first-frame, resumed, sound (the first
    sound of a transport), session (the transport in use changed), setback, camera-left,
    reconnecting, layer, chat-notice, server-error, talk (who talks back, and this viewer's
    own turn or refusal), stats (``report`` holds the ViewerStats just sent to the server).
    """

    kind: EventKind
    text: str = ""
    report: ViewerStats | None = None


@dataclass(frozen=True)
class ChatLine:
    """One stamped chat message: ``id`` orders them, ``time`` is the camera's Unix time."""

    id: int
    name: str
    text: str
    time: float


class _Feed:
    """One reader's queue; with ``keep`` items at most, the oldest give way (newest wins).
    (A reader that keeps every one bounds it by reading: the viewer cannot wait for it.)"""

    def __init__(self, keep: int | None) -> None:
        self._queue: asyncio.Queue = asyncio.Queue()
        self._keep = keep

    def put(self, item: object) -> None:
        if self._keep is not None:
            while self._queue.qsize() >= self._keep:
                self._queue.get_nowait()
        self._queue.put_nowait(item)

    async def get(self) -> object:
        return await self._queue.get()


_END = object()

#: AudioFrames (20 ms each) a reader of ``audio()`` may fall behind: one second.
AUDIO_KEPT = 50


class Viewer:
    """Watches one stream: ``async with Viewer(options) as viewer`` (or ``peercam.watch()``,
    which makes one) then ``frames()``, ``audio()``, ``chat()``, ``events()``, ``stats()``,
    ``send_chat()``, ``set_quality()``. A bad mode or relay format raises UsageError here."""

    def __init__(self, options: ViewerOptions, started: float | None = None) -> None:
        if options.mode not in get_args(Mode):
            raise UsageError(f"mode {options.mode!r}: use one of {', '.join(get_args(Mode))}")
        if options.relay_format not in RELAY_FORMATS:
            raise UsageError(f"relay format {options.relay_format!r}: use one of {', '.join(RELAY_FORMATS)}")
        self.options = options
        self._servers = ServerList(options.server)
        self.figures = FrameStats(started if started is not None else time.monotonic(), options.warmup)
        self.audio_figures = AudioStats(options.warmup)
        self._quality, self._jpeg_quality = options.quality, options.jpeg_quality
        self._client: SignalingClient | None = None
        self._rtc_configuration: RTCConfiguration | None = None
        self._live: StreamLive | None = None
        self._delivery = Delivery(options.mode, self._make_transport, options.p2p_retry, self._frame,
                                  self._session, self._setback, self._fatal, on_audio=self._audio)
        self._done: asyncio.Future[None] | None = None
        self._tasks: set[asyncio.Task] = set()
        self._feeds: dict[str, list[_Feed]] = {"frames": [], "audio": [], "chat": [], "events": []}
        self._frames_in_session = 0
        self._sound_in_session = False
        self._relay_rendition: tuple[str | None, int | None] | None = None
        #: The latest `layer` message of each path ("p2p", "relay"), and why the layer moved.
        self._layers: dict[str, LayerChanged] = {}
        self.layer_reason = ""
        self._chat_seen: set[int] = set()
        self._frames_total = 0  # every frame, warm-up included (for live reports)
        self._bytes_counted = 0  # of the transport in use, already in figures.bytes_received
        self._peer_id: str | None = None  # this viewer's id on the server, from its welcome
        self._talking: Talking | None = None  # the camera's latest word on who talks back
        self._talker = Talker(options.talk, self._send, self._send_bytes,
                              lambda text: self._event("talk", text)) if options.talk else None

    # -- the public face -------------------------------------------------------

    @property
    def mode(self) -> Literal["p2p", "relay"]:
        """How frames arrive now: "p2p" or "relay"."""
        return self._delivery.mode

    async def __aenter__(self) -> Viewer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self.close()

    async def start(self) -> None:
        """Connect and watch; frames, chat and events flow until close() or an error."""
        loop = asyncio.get_running_loop()
        self._done = loop.create_future()
        self._done.add_done_callback(self._ended)
        self._spawn(self._stay_connected())
        self._spawn(self._report_stats())
        if self.options.first_frame_timeout is not None:
            self._spawn(self._expect_video(self.options.first_frame_timeout))

    def stop(self) -> None:
        """End watching now (from the event loop's thread): wait() returns, the feeds end."""
        self._finish()

    async def wait(self) -> None:
        """Until the viewer ends: returns after close(), raises ViewerError if it gave up."""
        assert self._done is not None, "start() first"
        await asyncio.shield(self._done)

    async def close(self) -> None:
        """Stop everything this viewer started; no task or connection is left behind."""
        self._finish()
        tasks = [t for t in self._tasks if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._delivery.close()
        if self._talker is not None:
            self._talker.close()
        if self._client is not None:
            await self._client.close()

    async def frames(self, keep: int | None = 1) -> AsyncIterator[Frame]:
        """Each frame as it arrives. A reader slower than the video gets the newest
        (``keep`` frames wait at most; None: every one). Ends when the viewer does; raises
        ViewerError if it gave up."""
        async for frame in self._read("frames", keep):
            yield frame

    async def audio(self, keep: int = AUDIO_KEPT) -> AsyncIterator[AudioFrame]:
        """The stream's sound, each AudioFrame (20 ms) as it is decoded, without a playout
        buffer: a player adds its own. A reader that falls behind by more than ``keep``
        frames loses the oldest. Nothing comes when the stream has no sound or the viewer
        was made with ``audio=False``. Ends when the viewer does; raises ViewerError if it
        gave up."""
        async for frame in self._read("audio", keep):
            yield frame

    async def chat(self) -> AsyncIterator[ChatLine]:
        """Each chat message once (the history first, for a newcomer), in id order as they come."""
        async for line in self._read("chat", None):
            yield line

    async def events(self) -> AsyncIterator[ViewerEvent]:
        """Each ViewerEvent from now on, as it happens. Ends when the viewer does; raises
        ViewerError if it gave up."""
        async for event in self._read("events", None):
            yield event

    @property
    def relay_format(self) -> RelayFormat:
        """What the relay carries for this viewer, or would once on it: "encoded" or "jpeg"."""
        transport = self._delivery.transport
        if isinstance(transport, RelayTransport):
            return transport.format
        codec = self._live.info.codec if self._live is not None else "vp8"
        return relay_format_for(self.options.relay_format, codec)

    @property
    def audio_channels(self) -> int | None:
        """The channel count (1 or 2) of the sound this viewer gets; None: the stream has
        none (or no camera is live now), or the viewer was made not to want it."""
        if not self.options.audio or self._live is None or self._live.info.audio is None:
            return None
        return self._live.info.audio.channels

    def stats(self) -> dict:
        """The summary `peercam view --json` prints: mode, frames, fps, size, latency, ...,
        and ``audio`` (None without sound)."""
        heard = self.audio_channels is not None or self.audio_figures.packets > 0
        return {**self.figures.summary(self.mode),
                "relay_format": self.relay_format if self.mode == "relay" else None,
                "audio": self.audio_figures.summary() if heard else None}

    async def send_chat(self, text: str) -> None:
        """Send a chat line: on the P2P data channel when open, else through the server."""
        line = ChatSend(text=text)
        if not self._delivery.send_chat(line):
            await self._send(line)

    async def set_quality(self, quality: str, jpeg_quality: int | None = None) -> None:
        """Pick another layer (or "auto") and relay JPEG quality; the sender moves (P2P at the
        layer's next keyframe)."""
        self._quality, self._jpeg_quality = quality, jpeg_quality
        await self._send(SetQuality(quality=quality, jpeg_quality=jpeg_quality))

    # -- feeds ------------------------------------------------------------------

    async def _read(self, name: str, keep: int | None) -> AsyncIterator:
        feed = _Feed(keep)
        self._feeds[name].append(feed)
        try:
            while True:
                if self._done is not None and self._done.done() and feed._queue.empty():
                    break
                item = await feed.get()
                if item is _END:
                    break
                yield item
        finally:
            self._feeds[name].remove(feed)
        if self._done is not None and self._done.done() and self._done.exception() is not None:
            raise self._done.exception()

    def _publish(self, name: str, item: object) -> None:
        for feed in self._feeds[name]:
            feed.put(item)

    def _event(self, kind: EventKind, text: str = "", report: ViewerStats | None = None) -> None:
        self._publish("events", ViewerEvent(kind, clean_text(text), report))

    def _ended(self, done: asyncio.Future) -> None:
        for feeds in self._feeds.values():
            for feed in feeds:
                feed._keep = None  # the end marker must not push out what is still unread
                feed.put(_END)

    def _finish(self, error: Exception | None = None) -> None:
        if self._done is None or self._done.done():
            return
        if error is None:
            self._done.set_result(None)
        else:
            self._done.set_exception(error)
            self._done.exception()  # retrieved: wait() and the readers raise it

    def _spawn(self, coro) -> asyncio.Task:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _expect_video(self, timeout: float) -> None:
        await asyncio.sleep(max(0.0, self.figures.started + timeout - time.monotonic()))
        if self.figures.first_frame_at is None:
            self._finish(ViewerError(f"no video within {timeout:g} s"))

    # -- signaling ------------------------------------------------------------

    async def _send(self, message: object) -> None:
        """Send on the current signaling connection; dropped while reconnecting."""
        if self._client is None:
            return
        try:
            await self._client.send(message)
        except SignalingError:
            pass

    async def _send_bytes(self, data: bytes) -> None:
        """A binary message (a talk frame) on the current signaling connection; dropped while
        reconnecting."""
        if self._client is None:
            return
        try:
            await self._client.send_bytes(data)
        except SignalingError:
            pass

    async def _stay_connected(self) -> None:
        connected_once = False
        while True:
            client = self._client = SignalingClient(self._servers.current, self.options.ca_file)
            try:
                welcome = await client.connect()
                self._peer_id = welcome.peer_id
                connected_once = True
                self._servers.succeeded()
                restrict_host_addresses(self.options.ice.host_addresses(welcome))  # process-wide: aioice
                self._rtc_configuration = self.options.ice.configuration(welcome)
                await client.send(Watch(stream=self.options.stream, name=self.options.name,
                                        token=self.options.token, quality=self._quality,
                                        jpeg_quality=self._jpeg_quality, protocol=PROTOCOL_VERSION))
                async for message in client.messages():
                    if isinstance(message, (IceServers, Watching)):
                        # The full list (with auth on, TURN credentials come only with watching),
                        # then fresh TURN credentials for the next P2P try.
                        welcome = msgspec.structs.replace(welcome, ice_servers=message.ice_servers)
                        self._rtc_configuration = self.options.ice.configuration(welcome)
                    if not isinstance(message, IceServers):
                        await self._handle(message)
            except SignalingError as exc:
                self._servers.failed()
                if not connected_once and self._servers.all_failed:
                    self._finish(ViewerError(str(exc)))
                    return
                how = "reconnecting to" if connected_once else "trying"
                self._event("reconnecting", f"{exc}; {how} {self._servers.current}")
            finally:
                await client.close()
            await self._servers.wait()

    async def _handle(self, message: object) -> None:
        if isinstance(message, Watching):
            if not message.live:
                if self.options.wait <= 0 and self.figures.first_frame_at is None:
                    self._finish(ViewerError(f"no such stream: {message.stream!r} is not live"))
                    return
                self._event("waiting", f"waiting for a camera on {message.stream!r}")
                if self.figures.first_frame_at is None:
                    self._spawn(self._stream_never_came(self.options.wait))
        elif isinstance(message, StreamLive):
            await self._camera_live(message)
        elif isinstance(message, StreamEnded):
            self._live = None
            self._event("camera-left", f"camera left {message.stream!r} ({message.reason}); "
                                       "waiting for it to come back")
            await self._delivery.stop()
            self.figures.stream_restarted()
            self._frames_in_session = 0
            self._sound_in_session = False
        elif isinstance(message, (bytes, Answer, Candidate, Hangup)):
            await self._delivery.handle(message)
        elif isinstance(message, (ChatMessage, ChatHistory, ChatNotice)):
            self._chat_received(message)
        elif isinstance(message, LayerChanged):
            self._layer_changed(message)
        elif isinstance(message, (Talking, TalkRefused, TalkStop)):
            if isinstance(message, Talking):
                self._talking_changed(message)
            if self._talker is not None:
                await self._talker.handle(message, self._peer_id)
        elif isinstance(message, Error):
            if message.code in _FATAL_CODES:
                self._finish(ViewerError(message.reason))
            else:
                self._event("server-error", f"server says {message.code}: {message.reason}")

    def _talking_changed(self, message: Talking) -> None:
        """Who talks back through the camera, told when it changes (this viewer's own turn is
        its Talker's to tell)."""
        before, self._talking = self._talking, message
        if message.peer_id == (before.peer_id if before is not None else None):
            return
        if message.peer_id is not None and message.peer_id != self._peer_id:
            self._event("talk", f"{message.name} is talking")
        elif message.peer_id is None and before is not None and before.peer_id != self._peer_id:
            self._event("talk", f"{before.name} stopped talking")

    async def _camera_live(self, message: StreamLive) -> None:
        if self._live is None or self._live.camera_id != message.camera_id:
            self._chat_seen.clear()  # a new camera numbers its chat from 1 again
        self._live = message
        info = message.info
        self._event("live", f"stream {message.stream!r} is live: {info.width}x{info.height}@{info.fps:g} "
                            f"{info.codec}")
        # A P2P session that outlived a server restart plays on; anything else starts anew.
        if not self._delivery.p2p_connected:
            await self._delivery.start()

    async def _stream_never_came(self, wait: float) -> None:
        await asyncio.sleep(wait)
        if self._live is None and self.figures.first_frame_at is None:
            self._finish(ViewerError(
                f"no such stream: {self.options.stream!r} did not go live within {wait:g} s"))

    # -- transports ---------------------------------------------------------------

    def _make_transport(self, mode: str, on_frame, on_audio, on_failure) -> P2PTransport | RelayTransport:
        # When the viewer wants the stream's sound, the transport asks for it.
        channels = self.audio_channels
        if mode == "relay":
            layers = self._live.info.layer_list() if self._live is not None else []
            return RelayTransport(self._send, layers, on_frame, self.relay_format, on_audio, channels)
        def connected() -> None:
            self._event("connected", "connected (p2p)")
            if self._talker is not None:
                self._spawn(self._talker.ready(transport))

        transport = P2PTransport(self._send, self._rtc_configuration, self.options.connect_timeout,
                                 on_frame, on_failure, self._chat_received, on_connected=connected,
                                 on_audio=on_audio, audio_channels=channels, talk=self._talker is not None)
        camera_layer = self._layers.get("p2p")
        transport.layer = camera_layer.layer if camera_layer is not None else None
        return transport

    def _session(self, mode: str) -> None:
        """A transport delivers the picture from now on: its frames number afresh."""
        if self.figures.first_frame_at is not None:
            self._event("session", "p2p connected again; leaving the relay" if mode == "p2p"
                        else f"on the relay ({self.relay_format})")
        transport = self._delivery.transport
        if isinstance(transport, RelayTransport) and self._talker is not None:
            self._spawn(self._talker.ready(transport))
        self.figures.stream_restarted()  # frame numbering differs between the paths
        self.audio_figures.session_started()
        self._frames_in_session = 0
        self._sound_in_session = False
        self._relay_rendition = None
        self._bytes_counted = 0
        if mode in self._layers:
            self._show_layer(self._layers[mode])

    def _setback(self, text: str) -> None:
        self._event("setback", text)

    def _fatal(self, reason: str) -> None:
        self._finish(ViewerError(reason))

    # -- frames ---------------------------------------------------------------

    def _frame(self, frame: Frame) -> None:
        if frame.mode == "relay":
            rendition = (frame.layer, frame.jpeg_quality)
            if rendition != self._relay_rendition:  # each rendition numbers its own frames
                self._relay_rendition = rendition
                self.figures.stream_restarted()
        first_ever = self.figures.first_frame_at is None
        self.figures.add(frame.width, frame.height, frame.stamp, frame.arrived)
        self.audio_figures.picture(frame.arrived, frame.capture_time)
        self._frames_total += 1
        self._frames_in_session += 1
        how = f"relay, {self.relay_format}" if frame.mode == "relay" else frame.mode
        if first_ever:
            ms = (self.figures.first_frame_at - self.figures.started) * 1000
            self._event("first-frame", f"first frame after {ms:.0f} ms ({how})")
        elif self._frames_in_session == 1:
            self._event("resumed", f"video resumed ({how})")
        self._publish("frames", frame)

    def _audio(self, frame: AudioFrame) -> None:
        first_ever = self.audio_figures.first_at is None
        self.audio_figures.add(frame)
        if not self._sound_in_session:
            self._sound_in_session = True
            how = f"relay, {self.relay_format}" if frame.mode == "relay" else frame.mode
            if first_ever:
                ms = (self.audio_figures.first_at - self.figures.started) * 1000
                self._event("sound", f"first sound after {ms:.0f} ms ({how})")
            else:
                self._event("sound", f"sound resumed ({how})")
        self._publish("audio", frame)

    # -- layers ---------------------------------------------------------------

    def _layer_changed(self, message: LayerChanged) -> None:
        # The camera says what P2P carries, the server (no "from") what the relay does.
        path = "relay" if message.sender is None else "p2p"
        self._layers[path] = message
        transport = self._delivery.transport
        if path == "p2p" and isinstance(transport, P2PTransport):
            transport.layer = message.layer
        if path == self.mode:
            self._show_layer(message)

    def _show_layer(self, message: LayerChanged) -> None:
        previous = self.figures.layer
        step = 1
        if self._live is not None and message.sender is not None:  # P2P: capture numbers, every Nth
            fps = next((layer.fps for layer in self._live.info.layers if layer.name == message.layer), None)
            step = max(1, round(self._live.info.fps / fps)) if fps else 1
        self.figures.layer_changed(message.layer, message.jpeg_quality, step)
        self.layer_reason = message.reason
        what = f"{message.layer} ({message.width}x{message.height}"
        what += f", JPEG q{message.jpeg_quality})" if message.jpeg_quality else ")"
        if previous is None:
            self._event("layer", f"layer {what}")
        elif previous != message.layer or message.reason:
            why = f": {message.reason}" if message.reason else ""
            self._event("layer", f"layer {previous} -> {what}{why}")

    # -- chat -----------------------------------------------------------------

    def _chat_received(self, message: object) -> None:
        """Chat from the data channel or the server: each message id is handed over once."""
        if isinstance(message, ChatNotice):
            self._event("chat-notice", f"chat: {message.reason}")
            return
        if not isinstance(message, (ChatMessage, ChatHistory)):
            return
        for line in message.messages if isinstance(message, ChatHistory) else [message]:
            if line.id not in self._chat_seen:
                self._chat_seen.add(line.id)
                self._publish("chat", ChatLine(line.id, clean_text(line.name), clean_text(line.text),
                                               line.time))

    # -- stats ----------------------------------------------------------------

    async def _report_stats(self, every: float = 2.0) -> None:
        """Tell the server what this viewer gets, every few seconds."""
        last_frames, last_bytes = 0, 0
        while True:
            await asyncio.sleep(every)
            figures = await self._delivery.network()
            if figures is not None:
                self.figures.bytes_received += figures.bytes_received - self._bytes_counted
                self._bytes_counted = figures.bytes_received
                if self.mode == "p2p":
                    self.figures.packets_lost = figures.packets_lost
                    self.figures.jitter_ms = figures.jitter_ms
                self.audio_figures.network(figures.audio_packets_lost, figures.audio_jitter_ms)
            frames, received = self._frames_total, self.figures.bytes_received
            latency = self.figures.recent_latency_ms()
            report = ViewerStats(
                mode=self.mode, fps=round((frames - last_frames) / every, 2), frames=frames,
                width=self.figures.width, height=self.figures.height,
                bitrate_kbps=round(max(0, received - last_bytes) * 8 / every / 1000, 1),
                # Below zero, the camera's clock and ours disagree: not a measurement.
                latency_ms=None if latency is None or latency < 0 else round(latency, 1),
                frames_dropped=self.figures.dropped if self.figures.stamped_frames else None,
                packets_lost=self.figures.packets_lost if self.mode == "p2p" else None,
                jitter_ms=self.figures.jitter_ms if self.mode == "p2p" else None,
                layer=self.figures.layer,
                layer_switches=self.figures.layer_switches,
                jpeg_quality=self.figures.jpeg_quality if self.mode == "relay" else None,
                relay_format=self.relay_format if self.mode == "relay" else None,
                audio=self.audio_figures.report() if self.audio_channels is not None else None,
            )
            last_frames, last_bytes = frames, received
            self._event("stats", report=report)
            await self._send(Stats(stats=report))
