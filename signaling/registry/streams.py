"""Streams and who is on them: the server's state, behind one interface.

Everything the server knows about streams lives in a StreamRegistry. A viewer may watch
a name before its camera arrives: it waits and is told with ``stream-live`` when a camera
publishes, and with ``stream-ended`` when it leaves.

With ``--redis`` (signaling/cluster/cluster.py) the registry also holds the clients of the other
instances, as RemoteClients kept up to date from Redis, and tells a RegistryListener what
its own clients do. The rule that keeps instances from telling anyone twice: the registry
tells its own (local) clients what happens, whether the cause is local or remote;
messages one client addresses to another (offers, chat-send, quality) go to wherever
that client is.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Protocol, TypeGuard

import msgspec
from peercam.signaling.relay.hub import RelayHub
from peercam.signaling.relay.readers import RelayReader
from peercam.signaling.relay.renditions import Rendition
from peercam.signaling.relay.totals import RelayTotals
from peercam.signaling.settings.limits import Limits

from peercam.shared.protocol import (
    CAMERA_CHAT_NAME,
    CameraStats,
    ChatMessage,
    ErrorCode,
    IceServer,
    JpegRendition,
    LayerChanged,
    LayerInfo,
    ProtocolError,
    Published,
    RelayFrames,
    RelayKeyframe,
    RoutedMessage,
    StreamEnded,
    StreamInfo,
    StreamLive,
    Talking,
    ViewerJoined,
    ViewerLeft,
    ViewerQuality,
    ViewerRenamed,
    ViewerStats,
    Watching,
    check_display_name,
    check_stream_name,
    decode_server_message,
)
from peercam.shared.ratelimit import TokenBucket
from peercam.shared.relayframe import RelayFrameError, RelayFrameHeader, parse_relay_frame

from .client import Client
from .connection import Connection
from .remoteclient import RemoteClient

__all__ = ["MAX_OPUS_PACKET", "TALK_FRAMES_PER_SECOND", "RegistryListener", "Stream", "StreamRegistry"]

#: The largest Opus packet (RFC 6716): a talk frame's payload is at most this.
MAX_OPUS_PACKET = 1275
#: Talk frames a viewer may send a second: Opus packets of 20 ms are 50, and a little slack
#: for a late burst; with MAX_OPUS_PACKET, at most 76 kB/s from the one speaker a stream has.
#: Its own instance holds each viewer to it; the camera's, each stream's talk from elsewhere.
TALK_FRAMES_PER_SECOND = 60

log = logging.getLogger(__name__)


def _here(client: Client | None) -> TypeGuard[Connection]:
    """Is ``client`` connected to this instance? (Then it is one of its Connections.)"""
    return client is not None and client.is_local


def _elsewhere(client: Client | None) -> TypeGuard[RemoteClient]:
    """Is ``client`` connected to another instance? (Then it is mirrored as a RemoteClient.)"""
    return client is not None and not client.is_local


class RegistryListener(Protocol):
    """What the registry tells about its own clients, for other instances to know."""

    def client_changed(self, conn: Connection) -> None:
        """``conn`` published or watched, or changed what others see of it."""

    def client_gone(self, conn: Connection, reason: str) -> None: ...

    def chat(self, stream: str, message: ChatMessage) -> None:
        """A camera here shared a chat line: for its viewers elsewhere."""

    def relay_frame(self, stream: str, data: bytes) -> None:
        """A camera here sent a relay frame that readers elsewhere read."""

    def relay_renditions(self, stream: str, node: str, jpeg: list[JpegRendition]) -> None:
        """A camera here makes these JPEG renditions for every instance: for ``node``'s readers."""

    def talk_frame(self, node: str, stream: str, sender: str, data: bytes) -> bool:
        """Viewer ``sender`` here, holding the floor, talks to its stream's camera on instance
        ``node`` (``data``: a checked talk frame); returns whether it went on its way."""

    def reserved(self, stream: str) -> None: ...

    def ended(self, stream: str, reason: str) -> None: ...


@dataclass
class Stream:
    name: str
    camera: Client | None = None
    info: StreamInfo | None = None
    #: Unix time the current camera started.
    since: float | None = None
    viewers: dict[str, Client] = field(default_factory=dict)
    relay_totals: RelayTotals = field(default_factory=RelayTotals)
    #: Reserved by an administrator: publishing needs a token, whatever --auth says.
    reserved: bool = False
    #: MJPEG and snapshot readers: they count against --max-viewers like WebSocket viewers.
    http_readers: int = 0
    #: Who holds the floor, as the camera last said (talk back); None: it never said.
    talking: Talking | None = None
    #: Talk frames from other instances for the camera here: at most TALK_FRAMES_PER_SECOND
    #: (their instances hold their speakers to it; this one does not take their word).
    talk_from_elsewhere: TokenBucket = field(
        default_factory=lambda: TokenBucket(TALK_FRAMES_PER_SECOND, TALK_FRAMES_PER_SECOND / 2))
    relay: RelayHub = field(init=False)
    #: What relay readers on other instances read, by instance (when the camera is here),
    #: and the instances whose readers asked for the sound.
    remote_demand: dict[str, tuple[list[JpegRendition], list[str]]] = field(default_factory=dict)
    remote_audio: set[str] = field(default_factory=set)
    #: Tells an instance which JPEG renditions the camera here makes (stream, node, renditions).
    tell_renditions: Callable[[str, str, list[JpegRendition]], None] | None = None
    #: The JPEG renditions the camera here makes that readers elsewhere read (their own, or
    #: the nearest made), and what each instance was last told the camera makes.
    _read_elsewhere: set[JpegRendition] = field(init=False, default_factory=set)
    _told: dict[str, list[JpegRendition]] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.relay = RelayHub(self._relay_demand, self.relay_totals, on_keyframe=self._relay_keyframe)

    #: Layer or JPEG-quality changes of this stream's viewers (P2P and relay), for /metrics.
    layer_switches: Counter = field(default_factory=Counter)

    def _relay_demand(self, jpeg: list[JpegRendition], encoded: list[str], audio: bool) -> None:
        self.ask_camera_for_relay()

    def ask_camera_for_relay(self, asked_by: str | None = None) -> None:
        """Tell the camera what relay readers read: those here, and those on other instances
        (a camera elsewhere hears from this instance's readers through its own instance).
        The camera makes at most MAX_JPEG_RENDITIONS JPEG renditions in all: the other
        instances are told which (when it changed, and ``asked_by`` always), and their
        readers whose own is not among them read the nearest."""
        camera = self.camera
        if camera is None:
            return
        jpeg, encoded = self.relay.demand
        audio = self.relay.audio_demand
        if _elsewhere(camera):
            camera.ask_relay(jpeg, encoded, audio)
            return
        if self.remote_demand:
            jpeg, encoded = self.relay.demand_with(self.remote_demand.values())
        audio = audio or bool(self.remote_audio)
        camera.send(RelayFrames(jpeg=jpeg, encoded=encoded, audio=audio))
        self._read_elsewhere = {self.relay.nearest_made(jpeg, wanted) for wanted_there, _
                                in self.remote_demand.values() for wanted in wanted_there} if jpeg else set()
        self._told = {node: told for node, told in self._told.items() if node in self.remote_demand}
        for node, (wanted_there, _) in self.remote_demand.items():
            if wanted_there and (node == asked_by or self._told.get(node) != jpeg):
                self._told[node] = jpeg
                if self.tell_renditions is not None:
                    self.tell_renditions(self.name, node, jpeg)

    def _relay_keyframe(self, layer: str, urgent: bool) -> None:
        if self.camera is not None:
            self.camera.send(RelayKeyframe(layer=layer, urgent=urgent))

    def read_elsewhere(self, header: RelayFrameHeader) -> bool:
        """Do relay readers on other instances read this frame's rendition (or, for sound, listen)?"""
        if header.format == "audio":
            return bool(self.remote_audio)
        if not self.remote_demand or self.info is None:
            return False
        layers = self.info.layer_list()
        if header.layer >= len(layers):
            return False
        layer = layers[header.layer].name
        if header.codec is not None:
            return any(layer in encoded for _, encoded in self.remote_demand.values())
        return JpegRendition(layer, header.jpeg_quality) in self._read_elsewhere

    def live_message(self) -> StreamLive:
        """What viewers are told when this stream's camera is there."""
        assert self.camera is not None and self.info is not None
        return StreamLive(stream=self.name, camera_id=self.camera.id, info=self.info)

    @property
    def live(self) -> bool:
        return self.camera is not None

    @property
    def audience(self) -> int:
        """Everyone reading this stream: WebSocket viewers, MJPEG and snapshot readers."""
        return len(self.viewers) + self.http_readers

    def summary(self) -> dict:
        info = self.info
        camera = self.camera
        return {
            "name": self.name,
            "live": self.live,
            "viewer_count": len(self.viewers),
            "relay_viewers": sum(1 for v in self.viewers.values() if v.relay_format is not None),
            "relay": self.relay.summary(),
            "width": info.width if info else None,
            "height": info.height if info else None,
            "fps": info.fps if info else None,
            "codec": info.codec if info else None,
            "source": info.source if info else None,
            "layers": msgspec.to_builtins(info.layer_list()) if info else [],
            # Every field, defaults too: a script reads the codec and channels, always there.
            "audio": msgspec.structs.asdict(info.audio) if info and info.audio else None,
            "since": self.since,
            "talking": ({"peer_id": self.talking.peer_id, "name": self.talking.name,
                         "since": self.talking.since}
                        if self.talking is not None and self.talking.peer_id is not None else None),
            "camera": {
                "id": camera.id,
                "name": camera.name,
                "stats": msgspec.to_builtins(camera.stats) if camera.stats else None,
            } if camera else None,
            "viewers_by_mode": self.viewers_by_mode(),
            "viewers": [
                {
                    "id": viewer.id,
                    "name": viewer.name,
                    "mode": self.viewer_mode(viewer),
                    "quality": viewer.quality,
                    "layer": viewer.layer,
                    "layer_reason": viewer.layer_reason,
                    "relay_format": viewer.relay_format,
                    "stats": msgspec.to_builtins(viewer.stats) if viewer.stats else None,
                }
                for viewer in self.viewers.values()
            ],
        }

    @staticmethod
    def viewer_mode(viewer: Client) -> str:
        """How a viewer gets video: its own report when it has sent one, else by relay use."""
        if viewer.relay_format is not None:
            return "relay"
        return viewer.stats.mode if isinstance(viewer.stats, ViewerStats) else "p2p"

    def viewers_by_mode(self) -> dict[str, int]:
        counts = {"p2p": 0, "relay": 0, "whep": 0}
        for viewer in self.viewers.values():
            counts[self.viewer_mode(viewer)] += 1
        return counts


def _check_name_free(stream: Stream, conn: Connection, name: str) -> None:
    """Chat names are unique per stream, compared as casefold() compares them: none is the
    camera's (CAMERA_CHAT_NAME when it has none, and always), none another viewer's (here
    or on another instance). No name ('') is always free."""
    folded = name.casefold()
    if not folded:
        return
    cameras = {CAMERA_CHAT_NAME.casefold()}
    if stream.camera is not None:
        cameras.add(stream.camera.name.casefold())
    if folded in cameras:
        raise ProtocolError(ErrorCode.BAD_NAME, f"the name {name!r} is the camera's")
    if any(viewer is not conn and viewer.name.casefold() == folded for viewer in stream.viewers.values()):
        raise ProtocolError(ErrorCode.BAD_NAME, f"the name {name!r} is taken on this stream: pick another")


def _check_talk_frame(data: bytes) -> None:
    """A talk frame is an Opus relay frame (version 3) of one packet: else BAD_RELAY_FRAME."""
    try:
        header, payload = parse_relay_frame(data)
    except RelayFrameError as exc:
        raise ProtocolError(ErrorCode.BAD_RELAY_FRAME, str(exc)) from None
    if header.format != "audio" or len(payload) > MAX_OPUS_PACKET:
        raise ProtocolError(ErrorCode.BAD_RELAY_FRAME, "talk frames are Opus relay frames (version 3) "
                            f"of at most {MAX_OPUS_PACKET} bytes")


class StreamRegistry:
    """Streams by name; one camera each, any number of viewers."""

    def __init__(self, limits: Limits | None = None, clock: Callable[[], float] = time.time) -> None:
        self.limits = limits or Limits()
        #: Unix time, for when a camera started and when a client's stats came: both are
        #: shown, and compared with other instances' (tests pass a clock of their own).
        self._clock = clock
        self._streams: dict[str, Stream] = {}
        self.relay_totals = RelayTotals()
        #: Called with (stream, live) when a camera here arrives or leaves (recording).
        self.on_camera: list[Callable[[Stream, bool], None]] = []
        #: Told what this instance's clients do (--redis); None on a lone server.
        self.listener: RegistryListener | None = None

    def get(self, name: str) -> Stream | None:
        return self._streams.get(name)

    def live_streams(self) -> list[Stream]:
        return sorted((s for s in self._streams.values() if s.live), key=lambda s: s.name)

    def local_clients(self) -> Iterator[Connection]:
        """The cameras and viewers connected to this instance."""
        for stream in self._streams.values():
            if _here(stream.camera):
                yield stream.camera
            yield from (v for v in stream.viewers.values() if _here(v))

    def reserved_names(self) -> list[str]:
        return [s.name for s in self._streams.values() if s.reserved]

    def _changed(self, conn: Connection) -> None:
        if self.listener is not None:
            self.listener.client_changed(conn)

    def _enter(self, conn: Connection, name: str, display_name: str) -> Stream:
        """What publish and watch share: valid names, one role per connection, the stream."""
        check_stream_name(name)
        if conn.role is not None:
            raise ProtocolError(
                ErrorCode.WRONG_STATE, f"this connection is already a {conn.role} of {conn.stream!r}"
            )
        display_name = check_display_name(display_name)
        stream = self._stream(name)
        conn.name = display_name
        return stream

    def _stream(self, name: str) -> Stream:
        """The stream of this name, made if need be. Only streams with a camera or a
        reservation count against the limit (see _claim): watching made-up names takes
        no camera's place."""
        stream = self._streams.get(name)
        if stream is None:
            stream = self._streams[name] = Stream(name, relay_totals=self.relay_totals,
                                                  tell_renditions=self._tell_renditions)
        return stream

    def _tell_renditions(self, stream: str, node: str, jpeg: list[JpegRendition]) -> None:
        if self.listener is not None:
            self.listener.relay_renditions(stream, node, jpeg)

    def _claim(self, stream: Stream) -> None:
        """A camera or a reservation is about to hold ``stream``: is there room for one more?"""
        if stream.live or stream.reserved:
            return
        held = sum(1 for s in self._streams.values() if s.live or s.reserved)
        if held >= self.limits.streams:
            self._forget_if_unused(stream)
            raise ProtocolError(ErrorCode.TOO_MANY_STREAMS,
                                f"this server carries at most {self.limits.streams} streams")

    def publish(self, conn: Connection, name: str, info: StreamInfo, display_name: str = "",
                with_token: bool = False, ice_servers: list[IceServer] | None = None,
                talk: bool = False, talk_max: float = 60.0) -> Stream:
        """``with_token``: the camera showed a valid publish token. On a reserved name such a
        camera wins over one that holds the name without."""
        stream = self._enter(conn, name, display_name)
        holder = stream.camera
        if holder is not None:
            # (A holder on another instance is evicted there, by its own instance.)
            if not (stream.reserved and with_token and not holder.with_token and _here(holder)):
                raise ProtocolError(ErrorCode.STREAM_TAKEN, f"stream {name!r} already has a camera")
            self._evict(holder, "this name is reserved for the holder of its publish token")
        self._claim(stream)
        conn.role, conn.stream, conn.with_token = "camera", name, with_token
        conn.send(Published(stream=name, ice_servers=ice_servers or [], talk=talk, talk_max=talk_max))
        self._camera_arrives(stream, conn, info, self._clock())
        for callback in self.on_camera:
            callback(stream, True)
        self._changed(conn)
        return stream

    def _camera_arrives(self, stream: Stream, camera: Client, info: StreamInfo, since: float | None) -> None:
        """A camera, here or on another instance, now publishes ``stream``."""
        stream.camera, stream.info, stream.since = camera, info, since
        live = stream.live_message()
        for viewer in stream.viewers.values():
            if viewer.is_local:
                viewer.send(live)
            if camera.is_local:  # the camera meets those who waited
                camera.send(ViewerJoined(peer_id=viewer.id, name=viewer.name, quality=viewer.quality))
        stream.relay.camera_arrived(info.layer_list(), info.jpeg_quality, info.audio)

    def watch(self, conn: Connection, name: str, display_name: str = "",
              ice_servers: list[IceServer] | None = None, quality: str = "auto",
              jpeg_quality: int | None = None, talk: bool = False, talk_reason: str = "") -> Stream:
        """``talk``: this viewer may ask for the floor (the server's --talk and its token);
        ``talk_reason``: why not, when it may not."""
        stream = self._enter(conn, name, display_name)
        conn.quality, conn.jpeg_quality = quality, jpeg_quality
        camera = stream.camera
        try:
            _check_name_free(stream, conn, conn.name)
        except ProtocolError:
            self._forget_if_unused(stream)
            raise
        if stream.audience >= self.limits.viewers_per_stream:
            self._forget_if_unused(stream)
            raise ProtocolError(ErrorCode.STREAM_FULL,
                                f"stream {name!r} has its {self.limits.viewers_per_stream} viewers")
        stream.viewers[conn.id] = conn
        conn.send(Watching(stream=name, live=stream.live, ice_servers=ice_servers or [], talk=talk,
                           talk_reason=talk_reason))
        if stream.live:
            conn.send(stream.live_message())
            if stream.talking is not None and stream.talking.peer_id is not None:
                conn.send(stream.talking)  # someone holds the floor: the newcomer sees who
        conn.role, conn.stream = "viewer", name
        if camera is not None and camera.is_local:  # (a camera elsewhere hears from its instance)
            camera.send(ViewerJoined(peer_id=conn.id, name=conn.name, quality=conn.quality))
        self._changed(conn)
        return stream

    def set_quality(self, conn: Connection, quality: str, jpeg_quality: int | None) -> None:
        """A viewer picked another layer (or "auto") or JPEG quality: its relay reader moves now,
        its camera moves its sender at the layer's next keyframe."""
        stream = self._streams.get(conn.stream or "")
        if stream is None or conn.role != "viewer":
            raise ProtocolError(ErrorCode.WRONG_STATE, "watch a stream before picking a quality")
        conn.quality, conn.jpeg_quality = quality, jpeg_quality
        if conn.relay_reader is not None:
            stream.relay.choose(conn.relay_reader, quality, jpeg_quality)
        if stream.camera is not None:
            stream.camera.send(ViewerQuality(peer_id=conn.id, quality=quality))
        self._changed(conn)

    def layer_changed(self, viewer: Client, layer: str, reason: str) -> None:
        """The camera moved a P2P viewer to another layer (it tells the viewer; the server keeps
        it). A viewer on another instance is kept, and counted, by its own instance: the
        message carries the layer there."""
        if not _here(viewer):
            return
        stream = self._streams.get(viewer.stream or "")
        if viewer.layer is not None and viewer.layer != layer and stream is not None:
            stream.layer_switches["p2p"] += 1
        viewer.layer, viewer.layer_reason = layer, reason
        self._changed(viewer)

    def rename(self, conn: Connection, display_name: str) -> None:
        """A viewer's new display name; its camera is told (chat lines go out under it)."""
        stream = self._streams.get(conn.stream or "")
        if stream is None or conn.role != "viewer":
            raise ProtocolError(ErrorCode.WRONG_STATE, "watch a stream before picking a name")
        display_name = check_display_name(display_name)
        _check_name_free(stream, conn, display_name)
        camera = stream.camera
        conn.name = display_name
        if camera is not None:
            camera.send(ViewerRenamed(peer_id=conn.id, name=display_name))
        self._changed(conn)

    def add_http_reader(self, name: str) -> Stream:
        """An MJPEG or snapshot reader of a live stream, within the stream's --max-viewers."""
        stream = self._streams.get(name)
        if stream is None or not stream.live:
            raise ProtocolError(ErrorCode.NO_SUCH_STREAM, f"no live stream named {name[:80]!r}")
        if stream.audience >= self.limits.viewers_per_stream:
            raise ProtocolError(ErrorCode.STREAM_FULL,
                                f"stream {name!r} has its {self.limits.viewers_per_stream} viewers")
        stream.http_readers += 1
        return stream

    def remove_http_reader(self, stream: Stream) -> None:
        stream.http_readers -= 1
        if self._streams.get(stream.name) is stream:
            self._forget_if_unused(stream)

    def remove(self, conn: Client, reason: str = "camera disconnected") -> None:
        """Forget a client that left (here, or on another instance), telling whoever here
        needs to know."""
        stream = self._streams.get(conn.stream or "")
        if stream is None:
            return
        if conn.role == "camera" and stream.camera is conn:
            stream.camera, stream.info, stream.since = None, None, None
            stream.talking = None  # the floor goes with its keeper
            stream.remote_demand.clear()
            stream.remote_audio.clear()
            stream.relay.camera_left()
            ended = StreamEnded(stream=stream.name, reason=reason)
            for viewer in stream.viewers.values():
                if viewer.is_local:
                    viewer.send(ended)
            if conn.is_local:
                for callback in self.on_camera:
                    callback(stream, False)
        elif conn.role == "viewer" and stream.viewers.pop(conn.id, None) is conn:
            if _here(conn):
                self.set_relay(conn, False)
            if stream.camera is not None and stream.camera.is_local:
                stream.camera.send(ViewerLeft(peer_id=conn.id))
        else:
            self._forget_if_unused(stream)
            return
        if _here(conn) and self.listener is not None:
            self.listener.client_gone(conn, reason)
        self._forget_if_unused(stream)

    def attach(self, client: RemoteClient) -> bool:
        """A client of another instance arrived (its instance checked it). False: a camera
        here holds its stream (only while Redis was away can that be): not yet attached."""
        stream = self._stream(client.stream or "")
        if client.role == "viewer":
            stream.viewers[client.id] = client
            camera = stream.camera
            if camera is not None and camera.is_local:
                camera.send(ViewerJoined(peer_id=client.id, name=client.name, quality=client.quality))
        elif stream.camera is None and client.record.info is not None:
            self._camera_arrives(stream, client, client.record.info, client.record.since)
        else:
            log.warning("%r publishes %r, which %r holds here", client, stream.name, stream.camera)
            self._forget_if_unused(stream)
            return False
        return True

    def deliver(self, stream_name: str, to: str, text: str) -> Connection | None:
        """A message from another instance for a client here; returns it (None: gone)."""
        stream = self._streams.get(stream_name)
        if stream is None:
            return None
        conn = stream.viewers.get(to)
        if conn is None and stream.camera is not None and stream.camera.id == to:
            conn = stream.camera
        if not _here(conn):
            return None
        conn.send_text(text)
        return conn

    def chat_here(self, stream_name: str, text: str) -> None:
        """A camera's chat line (or its word on who talks) from another instance, for the
        viewers here."""
        stream = self._streams.get(stream_name)
        if stream is not None and '"type":"talking"' in text:
            # Who talks, known here too: for /api/streams, newcomers, and the speaker's talk frames.
            try:
                message = decode_server_message(text)
            except ProtocolError:
                message = None
            if isinstance(message, Talking):
                stream.talking = message
        for viewer in stream.viewers.values() if stream is not None else ():
            if _here(viewer):
                viewer.send_text(text)

    def set_remote_demand(self, stream_name: str, node: str, jpeg: list[JpegRendition],
                          encoded: list[str], audio: bool = False) -> None:
        """What ``node``'s relay readers read of a stream whose camera is here (``audio``:
        some of them listen too)."""
        stream = self._streams.get(stream_name)
        if stream is None or not _here(stream.camera):
            return
        heard = node in stream.remote_audio
        if audio:
            stream.remote_audio.add(node)
        else:
            stream.remote_audio.discard(node)
        if jpeg or encoded:
            stream.remote_demand[node] = (jpeg, encoded)
        elif stream.remote_demand.pop(node, None) is None and heard == audio:
            return
        stream.ask_camera_for_relay(asked_by=node)

    def set_renditions_made(self, stream_name: str, node: str, jpeg: list[JpegRendition]) -> None:
        """The JPEG renditions a camera on ``node`` makes for every instance: the relay
        readers here read their own, or the nearest made."""
        stream = self._streams.get(stream_name)
        if stream is None or not _elsewhere(stream.camera) or stream.camera.node != node:
            return  # (a camera that left, or one that moved to another instance)
        stream.relay.renditions_made(jpeg)

    def forget_demand_of(self, node: str) -> None:
        """``node`` is gone: its relay readers read nothing any more."""
        for stream in list(self._streams.values()):
            heard = node in stream.remote_audio
            stream.remote_audio.discard(node)
            if stream.remote_demand.pop(node, None) is not None or heard:
                stream.ask_camera_for_relay()

    def _forget_if_unused(self, stream: Stream) -> None:
        if (not stream.live and not stream.viewers and not len(stream.relay) and not stream.reserved
                and not stream.http_readers):
            del self._streams[stream.name]

    def reserve(self, name: str, here: bool = True) -> Stream:
        """Hold a name for a camera with a publish token (the admin API; ``here``: on this
        instance, False: on another). A camera here that holds the name without one is evicted."""
        check_stream_name(name)
        stream = self._stream(name)
        self._claim(stream)
        stream.reserved = True
        camera = stream.camera
        if _here(camera) and not camera.with_token:
            self._evict(camera, "this name is now reserved for the holder of its publish token")
        if here and self.listener is not None:
            self.listener.reserved(name)
        return stream

    def evict(self, name: str, reason: str) -> None:
        """Take a stream from its camera here, if it has one here."""
        stream = self._streams.get(name)
        if stream is not None and _here(stream.camera):
            self._evict(stream.camera, reason)

    def _evict(self, camera: Connection, reason: str) -> None:
        """Take a stream from its camera: it and the viewers are told, and its socket closes."""
        camera.send(StreamEnded(stream=camera.stream or "", reason=reason))
        self.remove(camera, reason)
        camera.role = camera.stream = None
        asyncio.get_running_loop().create_task(camera.hang_up(reason))

    def end(self, name: str, reason: str, here: bool = True) -> bool:
        """End a stream: its camera and viewers are told, its relay stops, its name is freed
        (``here``: asked on this instance; a camera elsewhere is ended by its own instance)."""
        stream = self._streams.get(name)
        if here and self.listener is not None and stream is not None:
            self.listener.ended(name, reason)
        if stream is None:
            return False
        stream.reserved = False
        if _here(stream.camera):
            self._evict(stream.camera, reason)
        else:
            self._forget_if_unused(stream)
        return True

    def set_relay(self, conn: Connection, enabled: bool, format: str = "jpeg", audio: bool = False) -> None:
        """Put a viewer on its stream's relay, reading ``format`` (and the sound, with
        ``audio``), or take it off."""
        stream = self._streams.get(conn.stream or "")
        if stream is None or conn.role != "viewer":
            raise ProtocolError(ErrorCode.WRONG_STATE, "watch a stream before asking for its relay")
        if enabled and conn.relay_reader is not None and conn.relay_reader.format != format:
            self.set_relay(conn, False)  # another format: a reader of its own
        if enabled and conn.relay_reader is None:
            def moved(rendition: Rendition, layer: LayerInfo, reason: str) -> None:
                jpeg_quality = rendition.jpeg_quality if isinstance(rendition, JpegRendition) else None
                now = (rendition.layer, jpeg_quality)
                if conn.layer is not None and (conn.layer, conn.relay_jpeg_quality) != now:
                    stream.layer_switches["relay"] += 1
                conn.layer, conn.layer_reason = rendition.layer, reason
                conn.relay_jpeg_quality = jpeg_quality
                conn.send(LayerChanged(layer=layer.name, width=layer.width, height=layer.height,
                                       reason=reason, jpeg_quality=jpeg_quality))
                self._changed(conn)

            conn.relay_reader = RelayReader(conn.id, conn.ws.send_bytes, format, on_rendition=moved,
                                            backlog=conn.undelivered_bytes, send_now=conn.send_binary_now,
                                            audio=audio)
            stream.relay.add(conn.relay_reader, conn.quality, conn.jpeg_quality)
        elif enabled and conn.relay_reader is not None:
            if (conn.relay_reader.audio is not None) != audio:
                stream.relay.hear(conn.relay_reader, audio)
            return
        elif not enabled and conn.relay_reader is not None:
            stream.relay.remove(conn.relay_reader)
            conn.relay_reader = None
        else:
            return
        if stream.viewers.get(conn.id) is conn:  # (not as it leaves)
            self._changed(conn)

    def report_stats(self, conn: Connection, stats: ViewerStats | CameraStats) -> None:
        """Keep a client's latest stats report: viewers report ViewerStats, cameras CameraStats."""
        expected = CameraStats if conn.role == "camera" else ViewerStats
        if conn.role is None or not isinstance(stats, expected):
            raise ProtocolError(ErrorCode.WRONG_STATE,
                                "report stats as a viewer (stats) or as a camera (camera-stats)")
        conn.stats, conn.stats_at = stats, self._clock()
        self._changed(conn)

    def broadcast_chat(self, conn: Connection, message: ChatMessage) -> None:
        """A stamped chat message from the camera, for every viewer of its stream."""
        stream = self._streams.get(conn.stream or "")
        if stream is None or conn.role != "camera":
            raise ProtocolError(ErrorCode.WRONG_STATE,
                                "only the camera shares chat messages; viewers send chat-send")
        for viewer in stream.viewers.values():
            if viewer.is_local:
                viewer.send(message)
        if self.listener is not None:
            self.listener.chat(stream.name, message)

    def talking(self, conn: Connection, message: Talking) -> None:
        """Who holds the floor, from the camera (its keeper), for every viewer of its stream."""
        stream = self._streams.get(conn.stream or "")
        if stream is None or conn.role != "camera":
            raise ProtocolError(ErrorCode.WRONG_STATE, "only the camera says who is talking")
        stream.talking = message
        for viewer in stream.viewers.values():
            if viewer.is_local:
                viewer.send(message)
        if self.listener is not None:
            self.listener.chat(stream.name, message)  # the other instances' viewers, as chat goes

    def relay_frame(self, conn: Connection, data: bytes) -> None:
        """A relay frame from a camera, for its stream's relay readers."""
        stream = self._streams.get(conn.stream or "")
        if stream is None or conn.role != "camera":
            raise ProtocolError(ErrorCode.BINARY_NOT_ALLOWED,
                                "binary messages are relay frames, and only a camera sends them")
        try:
            header = stream.relay.publish(data)
        except RelayFrameError as exc:
            raise ProtocolError(ErrorCode.BAD_RELAY_FRAME, str(exc)) from None
        if self.listener is not None and stream.read_elsewhere(header):
            self.listener.relay_frame(stream.name, data)

    def talk_frame(self, conn: Connection, data: bytes) -> bool:
        """An Opus relay frame (version 3) of talk back from a viewer, for its stream's camera:
        taken only from the viewer that holds the floor (the camera said so), and only when the
        camera's socket keeps up (a talk frame is dropped, never queued: it is late at once).
        For a camera on another instance it goes through Redis (the listener), checked there
        again. Returns whether it went out."""
        stream = self._streams.get(conn.stream or "")
        talking = stream.talking if stream is not None else None
        if conn.role != "viewer" or talking is None or talking.peer_id != conn.id:
            raise ProtocolError(ErrorCode.BINARY_NOT_ALLOWED, "a viewer sends binary messages only to talk "
                                "back (Opus relay frames), and only while it holds the floor")
        _check_talk_frame(data)
        camera = stream.camera
        if _here(camera):
            return self._to_camera(camera, data)
        if _elsewhere(camera) and self.listener is not None:
            return self.listener.talk_frame(camera.node, stream.name, conn.id, data)
        return False

    def talk_from_elsewhere(self, name: str, node: str, sender: str, data: bytes) -> bool:
        """A talk frame from viewer ``sender`` on instance ``node`` for a camera here. Its
        instance checked it; this one checks again what it knows itself: the sender is a
        viewer of the stream on ``node`` that holds the floor (frames still on their way when
        the floor moved on are dropped), the stream's rate, and that it is a talk frame.
        Returns whether it went out."""
        stream = self._streams.get(name)
        camera = stream.camera if stream is not None else None
        viewer = stream.viewers.get(sender) if stream is not None else None
        talking = stream.talking if stream is not None else None
        if (not _here(camera) or not _elsewhere(viewer) or viewer.node != node or talking is None
                or talking.peer_id != sender or not stream.talk_from_elsewhere.take()):
            self.relay_totals.talk_frames_dropped += 1
            return False
        try:
            _check_talk_frame(data)
        except ProtocolError as exc:
            self.relay_totals.talk_frames_dropped += 1
            log.warning("a talk frame for %r from instance %s is not one: %s", name, node, exc.reason)
            return False
        return self._to_camera(camera, data)

    def _to_camera(self, camera: Connection, data: bytes) -> bool:
        """A talk frame to the camera, if its socket takes it at once (for /metrics either way)."""
        sent = camera.send_binary_now(data)
        if sent:
            self.relay_totals.talk_frames_sent += 1
        else:
            self.relay_totals.talk_frames_dropped += 1
        return sent

    def relay_from_elsewhere(self, name: str, data: bytes) -> None:
        """A relay frame of a stream whose camera is on another instance, for the readers here."""
        stream = self._streams.get(name)
        if stream is None or not _elsewhere(stream.camera):
            return
        try:
            stream.relay.publish(data)
        except RelayFrameError as exc:
            log.warning("a relay frame of %r from Redis is not one: %s", name, exc)

    def route_target(self, sender: Connection, message: RoutedMessage) -> Client:
        """Who a routed message (offer/answer/candidate/...) from ``sender`` goes to.

        A viewer talks only to its stream's camera; a camera addresses one of its
        own viewers by id. Each type goes one way or both (``senders``). Anything
        else is refused.
        """
        stream = self._streams.get(sender.stream or "")
        if stream is None or sender.role is None:
            raise ProtocolError(ErrorCode.WRONG_STATE, "publish or watch a stream first")
        if sender.role not in message.senders:
            raise ProtocolError(ErrorCode.WRONG_STATE, f"a {sender.role} does not send "
                                f"{type(message).__struct_config__.tag!r}")
        to = message.to
        if sender.role == "viewer":
            camera = stream.camera
            if camera is None:
                raise ProtocolError(
                    ErrorCode.NO_SUCH_STREAM, f"stream {stream.name!r} has no camera right now"
                )
            if to is not None and to != camera.id:
                raise ProtocolError(
                    ErrorCode.UNKNOWN_PEER, f"peer {to[:40]!r} is not this stream's camera"
                )
            return camera
        if to is None:
            raise ProtocolError(ErrorCode.BAD_MESSAGE, "a camera must say which viewer: 'to'")
        viewer = stream.viewers.get(to)
        if viewer is None:
            raise ProtocolError(
                ErrorCode.UNKNOWN_PEER, f"peer {to[:40]!r} is not a viewer of {stream.name!r}"
            )
        return viewer
