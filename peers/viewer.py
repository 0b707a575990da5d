"""The Python viewer: watch a stream, measure it, record or show it."""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
from dataclasses import dataclass, field

import av
import cv2
import msgspec
import numpy as np
from aiortc import RTCConfiguration, RTCDataChannel, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError

from signaling.protocol import (
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
    Offer,
    ProtocolError,
    Relay,
    Stats,
    StreamEnded,
    StreamLive,
    ViewerStats,
    Watch,
    Watching,
    clean_text,
    decode_data_channel_message,
    encode,
)
from signaling.relayframe import RelayFrameError, parse_relay_frame

from .framereceiver import deliver_frames_when_complete
from .framestats import FrameStats
from .ice import IceOptions, aiortc_candidate, relay_shortfall
from .recorder import Recorder
from .signaling_client import Backoff, SignalingClient, SignalingError
from .testpattern import Stamp, read_stamp

log = logging.getLogger(__name__)

#: Errors after which waiting longer cannot help.
_FATAL_CODES = {ErrorCode.BAD_STREAM_NAME, ErrorCode.WRONG_STATE, ErrorCode.BAD_TOKEN, ErrorCode.BAD_NAME}


class ViewerError(Exception):
    """Why the viewer gave up: a one-line reason for the user."""


@dataclass
class ViewerOptions:
    server: str
    stream: str
    #: Seconds of video to receive (from the first frame); None: until interrupted.
    duration: float | None = None
    #: Seconds after the first frame left out of the figures (start-up transients).
    warmup: float = 0.0
    #: Give up when no frame arrived this long after the start.
    first_frame_timeout: float = 15.0
    #: How long a stream that is not live yet may take to appear (0: fail at once).
    wait: float = 0.0
    #: "p2p" (WebRTC only), "relay" (JPEG over the signaling WebSocket), or "auto":
    #: P2P, falling back to the relay when it does not connect, and back again.
    mode: str = "auto"
    #: A layer's name (e.g. "480p"), or "auto": the sender picks what the network carries.
    quality: str = "auto"
    #: JPEG quality on the relay; None: the camera's, adapted to the network.
    jpeg_quality: int | None = None
    #: A peer connection not connected by then counts as failed.
    connect_timeout: float = 5.0
    #: In auto mode on the relay, how often to try P2P again.
    p2p_retry: float = 30.0
    ice: IceOptions = field(default_factory=IceOptions)
    record: str | None = None
    show: bool = False
    #: Display name (chat, the stream's viewer list).
    name: str = ""
    #: A view token, when the server asks for one.
    token: str = ""
    #: CA certificate(s) for a wss:// server with a private CA.
    ca_file: str | None = None
    #: Print chat on stdout and send each line typed on stdin.
    chat: bool = False
    status_line: bool = False


def luma_plane(frame: av.VideoFrame) -> np.ndarray:
    """The Y plane as an (H, W) array, without converting the frame."""
    plane = frame.planes[0]
    rows = np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)
    return rows[: frame.height, : frame.width]


def _event(text: str) -> None:
    """A line for the person (and the tests) watching stderr."""
    print(f"peercam view: {clean_text(text)}", file=sys.stderr, flush=True)


class Viewer:
    def __init__(self, options: ViewerOptions, started: float | None = None) -> None:
        self.options = options
        self.stats = FrameStats(started if started is not None else time.monotonic(), options.warmup)
        #: How video arrives now: "p2p" or "relay".
        self.mode = "relay" if options.mode == "relay" else "p2p"
        self._client: SignalingClient | None = None
        self._rtc_configuration: RTCConfiguration | None = None
        self._pc: RTCPeerConnection | None = None
        self._live: StreamLive | None = None
        self._done: asyncio.Future[None] | None = None
        self._recorder = Recorder(options.record) if options.record else None
        self._window = self._open_window() if options.show else None
        self._tasks: set[asyncio.Task] = set()
        self._relay_frames_in_run = 0
        self._relay_rendition: tuple[int, int] | None = None
        self._layer_reason = ""
        #: The latest `layer` message of each path ("p2p", "relay").
        self._layers: dict[str, LayerChanged] = {}
        self._chat_channel: RTCDataChannel | None = None
        self._chat_seen: set[int] = set()
        self._frames_total = 0  # every frame, warm-up included (for live reports)
        self._pc_bytes_counted = 0  # of the open peer connection, already in stats.bytes_received

    # -- lifecycle ------------------------------------------------------------

    async def run(self) -> dict:
        """Watch until the duration is over; returns the summary or raises ViewerError."""
        loop = asyncio.get_running_loop()
        self._done = loop.create_future()
        first_frame_deadline = loop.call_at(
            loop.time() - (time.monotonic() - self.stats.started) + self.options.first_frame_timeout,
            self._no_video,
        )
        self._spawn(self._stay_connected())
        self._spawn(self._report_stats())
        if self.options.chat:
            self._spawn(self._send_typed_chat())
        try:
            await self._done
        finally:
            first_frame_deadline.cancel()
            for task in self._tasks:
                task.cancel()
            await self._close_pc()
            if self._client is not None:
                await self._client.close()
            if self.options.status_line:
                print(file=sys.stderr)
            if self._recorder is not None:
                await self._recorder.close()
        return self.stats.summary(self.mode)

    def _spawn(self, coro) -> asyncio.Task:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _finish(self, error: Exception | None = None) -> None:
        if self._done is None or self._done.done():
            return
        if error is None:
            self._done.set_result(None)
        else:
            self._done.set_exception(error)

    def _no_video(self) -> None:
        if self.stats.first_frame_at is None:
            self._finish(ViewerError(f"no video within {self.options.first_frame_timeout:g} s"))

    # -- signaling ------------------------------------------------------------

    async def _stay_connected(self) -> None:
        backoff = Backoff()
        connected_once = False
        while True:
            client = self._client = SignalingClient(self.options.server, self.options.ca_file)
            try:
                welcome = await client.connect()
                connected_once = True
                backoff.reset()
                self._rtc_configuration = self.options.ice.configuration(welcome)
                await client.send(Watch(stream=self.options.stream, name=self.options.name,
                                        token=self.options.token, quality=self.options.quality,
                                        jpeg_quality=self.options.jpeg_quality))
                if self.mode == "relay":
                    await client.send(Relay(enabled=True))
                async for message in client.messages():
                    if isinstance(message, bytes):
                        self._relay_frame_arrived(message)
                        continue
                    if isinstance(message, (IceServers, Watching)):
                        # The full list (with auth on, TURN credentials come only with watching),
                        # then fresh TURN credentials for the next P2P try.
                        welcome = msgspec.structs.replace(welcome, ice_servers=message.ice_servers)
                        self._rtc_configuration = self.options.ice.configuration(welcome)
                        if isinstance(message, IceServers):
                            continue
                    try:
                        await self._handle(message)
                    except SignalingError:
                        raise
                    except Exception as exc:  # e.g. a bad answer: one session fails, not the viewer
                        await self._p2p_failed(f"{type(message).__name__.lower()} failed: {exc!r}")
            except SignalingError as exc:
                if not connected_once:
                    self._finish(ViewerError(str(exc)))
                    return
                _event(f"{exc}; reconnecting")
            finally:
                await client.close()
            await backoff.wait()

    async def _handle(self, message: object) -> None:
        if isinstance(message, Watching):
            if not message.live:
                if self.options.wait <= 0 and self.stats.first_frame_at is None:
                    self._finish(ViewerError(f"no such stream: {message.stream!r} is not live"))
                    return
                _event(f"waiting for a camera on {message.stream!r}")
                if self.stats.first_frame_at is None:
                    asyncio.get_running_loop().call_later(self.options.wait, self._stream_never_came)
        elif isinstance(message, StreamLive):
            if self._live is None or self._live.publisher != message.publisher:
                self._chat_seen.clear()  # a new camera numbers its chat from 1 again
            self._live = message
            info = message.info
            _event(f"stream {message.stream!r} is live: {info.width}x{info.height}@{info.fps:g} {info.codec}")
            if self.options.mode != "relay" and (
                self._pc is None or self._pc.connectionState in ("failed", "closed")
            ):
                await self._offer()
        elif isinstance(message, StreamEnded):
            self._live = None
            _event(f"camera left {message.stream!r} ({message.reason}); waiting for it to come back")
            await self._close_pc()
            self.stats.stream_restarted()
            self._relay_frames_in_run = 0
        elif isinstance(message, Answer) and self._pc is not None:
            await self._pc.setRemoteDescription(RTCSessionDescription(sdp=message.sdp, type="answer"))
        elif isinstance(message, Candidate) and self._pc is not None and message.candidate:
            await self._pc.addIceCandidate(aiortc_candidate(message.candidate))
        elif isinstance(message, Hangup):
            await self._p2p_failed(f"camera hung up: {message.reason}")
        elif isinstance(message, (ChatMessage, ChatHistory, ChatNotice)):
            self._chat_received(message)
        elif isinstance(message, LayerChanged):
            self._layer_changed(message)
        elif isinstance(message, Error):
            if message.code in _FATAL_CODES:
                self._finish(ViewerError(message.reason))
            else:
                _event(f"server says {message.code}: {message.reason}")

    def _layer_changed(self, message: LayerChanged) -> None:
        # The camera says what P2P carries, the server (no "from") what the relay does.
        path = "relay" if message.sender is None else "p2p"
        self._layers[path] = message
        if path == self.mode:
            self._show_layer(message)

    def _show_layer(self, message: LayerChanged) -> None:
        previous = self.stats.layer
        step = 1
        if self._live is not None and message.sender is not None:  # P2P: capture numbers, every Nth
            fps = next((layer.fps for layer in self._live.info.layers if layer.name == message.layer), None)
            step = max(1, round(self._live.info.fps / fps)) if fps else 1
        self.stats.layer_changed(message.layer, message.jpeg_quality, step)
        self._layer_reason = message.reason
        what = f"{message.layer} ({message.width}x{message.height}"
        what += f", JPEG q{message.jpeg_quality})" if message.jpeg_quality else ")"
        if previous is None:
            _event(f"layer {what}")
        elif previous != message.layer or message.reason:
            _event(f"layer {previous} -> {what}{': ' + message.reason if message.reason else ''}")

    def _stream_never_came(self) -> None:
        if self._live is None and self.stats.first_frame_at is None:
            self._finish(ViewerError(
                f"no such stream: {self.options.stream!r} did not go live within {self.options.wait:g} s"))

    # -- peer connection ------------------------------------------------------

    async def _offer(self) -> None:
        await self._close_pc()
        pc = self._pc = RTCPeerConnection(self._rtc_configuration)
        # Decode each frame once its last packet is in, not when the next one starts.
        deliver_frames_when_complete(pc.addTransceiver("video", direction="recvonly").receiver)
        channel = self._chat_channel = pc.createDataChannel("chat")

        @channel.on("message")
        def on_chat(data: str | bytes) -> None:
            try:
                self._chat_received(decode_data_channel_message(data))
            except ProtocolError as exc:
                _event(f"ignoring a bad chat message: {exc.reason}")

        @pc.on("track")
        def on_track(track) -> None:
            self._spawn(self._receive(track))

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            if pc is not self._pc:
                return
            if pc.connectionState == "connected":
                _event("connected (p2p)")
            elif pc.connectionState in ("failed", "closed"):
                await self._p2p_failed(f"peer connection {pc.connectionState}")

        await pc.setLocalDescription(await pc.createOffer())
        shortfall = await relay_shortfall(self._rtc_configuration, pc.localDescription.sdp)
        if shortfall:
            self._finish(ViewerError(shortfall))
            return
        self._spawn(self._expect_connection(pc))
        if self._client is not None:
            await self._client.send(Offer(sdp=pc.localDescription.sdp))

    async def _expect_connection(self, pc: RTCPeerConnection) -> None:
        """aiortc takes about a minute to call ICE failed: decide much sooner."""
        await asyncio.sleep(self.options.connect_timeout)
        if pc is self._pc and pc.connectionState != "connected":
            if self._client is not None:
                await self._client.send(Hangup(reason="not connected in time"))
            await self._p2p_failed(f"p2p not connected within {self.options.connect_timeout:g} s")

    async def _p2p_failed(self, why: str) -> None:
        """P2P did not connect or broke: try again, or in auto mode use the relay meanwhile."""
        await self._close_pc()
        if self.options.mode == "auto":
            if self.mode != "relay":
                _event(f"{why}; switching to the relay")
                await self._switch_mode("relay")
            self._spawn(self._offer_again_later(self.options.p2p_retry))
        else:
            _event(f"{why}; trying again")
            self._spawn(self._offer_again_later(1.0))

    async def _switch_mode(self, mode: str) -> None:
        self.mode = mode
        self.stats.stream_restarted()  # frame numbering differs between the paths
        self._relay_frames_in_run = 0
        self._relay_rendition = None
        if mode in self._layers:
            self._show_layer(self._layers[mode])
        if self._client is not None:
            await self._client.send(Relay(enabled=mode == "relay"))

    async def _offer_again_later(self, delay: float) -> None:
        await asyncio.sleep(delay)
        if self._live is not None and self._pc is None:
            await self._offer()

    async def _close_pc(self) -> None:
        pc, self._pc = self._pc, None
        self._chat_channel = None
        if pc is None:
            return
        await self._read_pc_stats(pc)
        self._pc_bytes_counted = 0
        await pc.close()

    async def _read_pc_stats(self, pc: RTCPeerConnection) -> None:
        """Bytes, loss and jitter from aiortc (it measures no RTT on the receiving side)."""
        received = 0
        for report in (await pc.getStats()).values():
            if report.type == "transport":
                received += report.bytesReceived
            elif report.type == "inbound-rtp" and report.kind == "video":
                self.stats.packets_lost = max(0, report.packetsLost)  # duplicates can make it negative
                self.stats.jitter_ms = round(report.jitter / 90, 2)  # 90 kHz RTP clock
        self.stats.bytes_received += received - self._pc_bytes_counted
        self._pc_bytes_counted = received

    # -- chat -----------------------------------------------------------------

    def _chat_received(self, message: ChatMessage | ChatHistory | ChatNotice | ChatSend) -> None:
        """Chat from the data channel or the server: each message id is shown once."""
        if not self.options.chat:
            return
        if isinstance(message, ChatNotice):
            _event(f"chat: {message.reason}")
            return
        for line in message.messages if isinstance(message, ChatHistory) else [message]:
            if isinstance(line, ChatMessage) and line.id not in self._chat_seen:
                self._chat_seen.add(line.id)
                stamp = time.strftime("%H:%M:%S", time.localtime(line.time))
                # Cleaned when decoded; once more here, as nothing raw may reach a terminal.
                print(f"[{stamp}] #{line.id} {clean_text(line.name)}: {clean_text(line.text)}", flush=True)

    async def _send_typed_chat(self) -> None:
        """Each line typed on stdin becomes a chat message."""
        loop = asyncio.get_running_loop()
        lines: asyncio.Queue[str | None] = asyncio.Queue()

        def read_stdin() -> None:
            for line in sys.stdin:
                loop.call_soon_threadsafe(lines.put_nowait, line.rstrip("\n"))
            loop.call_soon_threadsafe(lines.put_nowait, None)

        threading.Thread(target=read_stdin, name="stdin", daemon=True).start()
        while (text := await lines.get()) is not None:
            if not text.strip():
                continue
            line = ChatSend(text=text)
            if self._chat_channel is not None and self._chat_channel.readyState == "open":
                self._chat_channel.send(encode(line))
            elif self._client is not None:
                await self._client.send(line)

    # -- stats ----------------------------------------------------------------

    async def _report_stats(self, every: float = 2.0) -> None:
        """Tell the server what this viewer gets, every few seconds."""
        last_frames, last_bytes = 0, 0
        while True:
            await asyncio.sleep(every)
            if self._pc is not None and self.mode == "p2p":
                await self._read_pc_stats(self._pc)
            frames, received = self._frames_total, self.stats.bytes_received
            latency = self.stats.recent_latency_ms()
            report = ViewerStats(
                mode=self.mode, fps=round((frames - last_frames) / every, 2), frames=frames,
                width=self.stats.width, height=self.stats.height,
                bitrate_kbps=round((received - last_bytes) * 8 / every / 1000, 1),
                # Below zero, the camera's clock and ours disagree: not a measurement.
                latency_ms=None if latency is None or latency < 0 else round(latency, 1),
                frames_dropped=self.stats.dropped if self.stats.stamped_frames else None,
                packets_lost=self.stats.packets_lost if self.mode == "p2p" else None,
                jitter_ms=self.stats.jitter_ms if self.mode == "p2p" else None,
                layer=self.stats.layer,
                layer_switches=self.stats.layer_switches,
                jpeg_quality=self.stats.jpeg_quality if self.mode == "relay" else None,
            )
            last_frames, last_bytes = frames, received
            if self.options.status_line:
                self._print_status(report, self._layer_reason)
            if self._client is not None:
                try:
                    await self._client.send(Stats(stats=report))
                except SignalingError:
                    pass

    # -- frames ---------------------------------------------------------------

    async def _receive(self, track) -> None:
        first_on_this_track = True
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            arrived = time.time()
            if self.mode == "relay":  # a P2P retry worked: the relay is no longer needed
                _event("p2p connected again; leaving the relay")
                await self._switch_mode("p2p")
            first_ever = self.stats.first_frame_at is None
            self.stats.add(frame.width, frame.height, read_stamp(luma_plane(frame)), arrived)
            self._frame_counted(first_ever, first_on_this_track)
            first_on_this_track = False
            if self._recorder is not None:
                self._recorder.write(frame, arrived)
            if self._window is not None:
                self._show(frame.to_ndarray(format="bgr24"))

    def _relay_frame_arrived(self, data: bytes) -> None:
        if self.mode != "relay":
            return  # still in flight after moving back to P2P
        arrived = time.time()
        try:
            header, jpeg = parse_relay_frame(data)
        except RelayFrameError as exc:
            _event(f"ignoring a bad relay frame: {exc}")
            return
        rendition = (header.layer, header.quality)
        if rendition != self._relay_rendition:  # each rendition numbers its own frames
            self._relay_rendition = rendition
            self.stats.stream_restarted()
        first_of_run = self._relay_frames_in_run == 0
        self._relay_frames_in_run += 1
        self.stats.bytes_received += len(data)
        first_ever = self.stats.first_frame_at is None
        self.stats.add(header.width, header.height,
                       Stamp(time_ms=header.capture_time_us // 1000, frame=header.sequence), arrived)
        self._frame_counted(first_ever, first_of_run)
        if self._recorder is not None or self._window is not None:
            image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
            if image is None:
                return
            if self._recorder is not None:
                self._recorder.write(av.VideoFrame.from_ndarray(image, format="bgr24"), arrived)
            if self._window is not None:
                self._show(image)

    def _frame_counted(self, first_ever: bool, first_of_run: bool) -> None:
        self._frames_total += 1
        if first_ever:
            _event(f"first frame after {(self.stats.first_frame_at - self.stats.started) * 1000:.0f} ms"
                   f" ({self.mode})")
            if self.options.duration is not None:
                asyncio.get_running_loop().call_later(self.options.warmup + self.options.duration,
                                                      self._finish)
        elif first_of_run:
            _event(f"video resumed ({self.mode})")

    @staticmethod
    def _print_status(report: ViewerStats, layer_reason: str) -> None:
        """One line, rewritten in place on the terminal."""
        layer = f"{report.layer or '?'}" + (f" ({clean_text(layer_reason)})" if layer_reason else "")
        parts = [report.mode, layer, f"{report.width}x{report.height}", f"{report.fps:4.1f} fps",
                 f"{report.bitrate_kbps:6.0f} kbps"]
        if report.latency_ms is not None:
            parts.append(f"latency {report.latency_ms:4.0f} ms")
        if report.frames_dropped is not None:
            parts.append(f"dropped {report.frames_dropped}")
        if report.packets_lost is not None:
            parts.append(f"lost {report.packets_lost} pkts")
        print(f"\r{'  '.join(parts):<110}", end="", file=sys.stderr, flush=True)

    # -- window ---------------------------------------------------------------

    def _open_window(self) -> str | None:
        title = f"peercam: {self.options.stream}"
        try:
            cv2.namedWindow(title, cv2.WINDOW_AUTOSIZE)
        except cv2.error:
            _event("--show needs OpenCV with GUI support (this one is the headless build: "
                   "pip install opencv-python); going on without a window")
            return None
        return title

    def _show(self, image: np.ndarray) -> None:
        cv2.imshow(self._window, image)
        if cv2.waitKey(1) in (ord("q"), 27):
            self._finish()
