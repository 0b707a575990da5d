"""Several server instances as one deployment, sharing state through Redis
(``peercam serve --redis redis://HOST:6379/0``).

What lives where in Redis (every key starts with ``peercam:``):
- ``node:ID``: an instance's heartbeat, a key with a TTL it renews; ``nodes``: the set of
  instance ids;
- ``clients:ID``: a hash of that instance's cameras and viewers (ClientRecord as JSON);
- ``claims``: a hash of stream name to the camera that holds it, ``ID/CLIENT`` (the
  one-camera rule across instances); ``reserved``: the set of reserved names;
- channels: ``events`` (to every instance), ``to:ID`` (to one), ``relay:STREAM`` (the
  stream's relay frames, while another instance reads them), ``talk:ID`` (talk frames from
  viewers elsewhere for the cameras of instance ID).

Relay frames, and talk frames the other way, travel on Redis connections of their own,
apart from signaling: Redis closes a subscriber that falls 32 MB behind
(``client-output-buffer-limit pubsub``), and a camera's frames must not take its
instance's or a reader's instance's signaling with them.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections import deque
from collections.abc import Iterator

import msgspec
from peercam.signaling.registry.connection import Connection
from peercam.signaling.registry.mirror import Mirror
from peercam.signaling.registry.remoteclient import RemoteClient

from peercam.shared.errors import StartupError
from peercam.shared.protocol import (
    CameraStats,
    ChatMessage,
    JpegRendition,
    LayerChanged,
    ProtocolError,
    ViewerStats,
    encode,
)

from .messages import (
    Chat,
    ClientGone,
    ClientRecord,
    ClientUpdate,
    Deliver,
    End,
    Envelope,
    NodeLeaving,
    NodeSync,
    RelayDemand,
    RelayRenditions,
    Reserve,
    TalkFrame,
    decode_envelope,
    decode_record,
    decode_talk_frame,
    encode_envelope,
    encode_record,
    encode_talk_frame,
)

log = logging.getLogger(__name__)

PREFIX = "peercam:"
EVENTS = PREFIX + "events"
NODES = PREFIX + "nodes"
CLAIMS = PREFIX + "claims"
RESERVED = PREFIX + "reserved"
RELAY_CHANNEL = PREFIX + "relay:"
#: Talk frames for an instance's cameras. Its relay subscription always holds this channel,
#: which also keeps the subscription open while the instance reads no stream.
TALK_CHANNEL = PREFIX + "talk:"

#: An instance renews its heartbeat this often, and looks for instances that died.
HEARTBEAT_SECONDS = 0.5
#: A heartbeat not renewed for this long means the instance is gone.
NODE_TTL_MS = 2500
#: While Redis is away, try it again this often.
RECONNECT_SECONDS = 0.5
#: At start, Redis must answer within this.
START_TIMEOUT_SECONDS = 3.0
#: Bytes of messages and state waiting to go to Redis, past which new ones are dropped
#: (Redis is too slow); and of relay frames, past which the oldest are (readers skip to a
#: keyframe). A command counts its arguments' bytes and COMMAND_OVERHEAD_BYTES.
MAX_PENDING_BYTES = 16 * 1024 * 1024
MAX_PENDING_FRAME_BYTES = 8 * 1024 * 1024
COMMAND_OVERHEAD_BYTES = 128
#: The largest relay frame that goes to (or is taken from) other instances; larger ones
#: reach only readers on the camera's instance. A JPEG of 1080p at JPEG quality 90 is about
#: 0.5 MB; 16 frames at the cap fill a subscriber's 32 MB in Redis.
MAX_CLUSTER_FRAME_BYTES = 2 * 1024 * 1024
#: Talk frames waiting to go to Redis: at most this many bytes (the oldest go) and none
#: older than this (late sound is of no use), on a connection of their own (never behind
#: video). A TalkFrame on the talk channel is at most TALK_MESSAGE_BYTES.
MAX_PENDING_TALK_BYTES = 256 * 1024
MAX_TALK_FRAME_AGE_SECONDS = 0.5
TALK_MESSAGE_BYTES = 4096

#: Take a stream's name for a camera (KEYS: claims; ARGV: stream, holder, node key
#: prefix, this node): free, ours already, held by an instance that is gone, or left by
#: a camera of this instance (which has none on it now: Cluster.claim checks).
_CLAIM = """
local held = redis.call('HGET', KEYS[1], ARGV[1])
if held and held ~= ARGV[2] then
  local node = string.match(held, '^([^/]*)/')
  if node ~= ARGV[4] and redis.call('EXISTS', ARGV[3] .. node) == 1 then return 0 end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
"""
#: Let go of a name, if this camera still holds it (KEYS: claims; ARGV: stream, holder).
_RELEASE = """
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then redis.call('HDEL', KEYS[1], ARGV[1]) end
return 1
"""


def _node_key(node: str) -> str:
    return f"{PREFIX}node:{node}"


def _clients_key(node: str) -> str:
    return f"{PREFIX}clients:{node}"


def _node_channel(node: str) -> str:
    return f"{PREFIX}to:{node}"


def _command_bytes(command: tuple) -> int:
    return COMMAND_OVERHEAD_BYTES + sum(len(arg) if isinstance(arg, (bytes, str)) else 8 for arg in command)


class CommandQueue:
    """Commands for Redis, in order, bounded by their bytes (and, with ``max_age``, by the
    seconds they wait): what Redis does not take in time is dropped, never held without bound."""

    def __init__(self, limit: int, max_age: float | None = None) -> None:
        self.limit = limit
        self.max_age = max_age
        #: Bytes of the queued commands (see _command_bytes).
        self.bytes = 0
        #: Commands dropped at ``take`` because they waited longer than ``max_age``.
        self.expired = 0
        self._commands: deque[tuple[tuple, int, float]] = deque()

    def __len__(self) -> int:
        return len(self._commands)

    def put(self, command: tuple, drop_oldest: bool = False) -> int:
        """Queue ``command``; returns how many commands were dropped for it: the oldest
        ones with ``drop_oldest``, else ``command`` itself when it does not fit."""
        size = _command_bytes(command)
        dropped = 0
        while drop_oldest and self._commands and self.bytes + size > self.limit:
            self.bytes -= self._commands.popleft()[1]
            dropped += 1
        if self.bytes + size > self.limit:
            return dropped + 1
        self._commands.append((command, size, time.monotonic()))
        self.bytes += size
        return dropped

    def take(self, most: int) -> Iterator[tuple]:
        """Up to ``most`` commands, oldest first, out of the queue (those that waited longer
        than ``max_age`` are dropped, and counted in ``expired``)."""
        stale_before = time.monotonic() - self.max_age if self.max_age is not None else None
        taken = 0
        while self._commands and taken < most:
            command, size, queued_at = self._commands.popleft()
            self.bytes -= size
            if stale_before is not None and queued_at < stale_before:
                self.expired += 1
                continue
            taken += 1
            yield command

    def clear(self) -> None:
        self._commands.clear()
        self.bytes = 0


class RedisMissing(StartupError):
    """--redis without redis-py installed."""


class RedisUnreachable(StartupError):
    """--redis names a Redis that does not answer at start."""


class Cluster:
    """This server instance as one of several that share a deployment through Redis.

    Each instance owns its sockets. What its clients do goes out as events and into its
    hash of client records; the other instances mirror those clients as RemoteClients in
    their registries, so every instance lists every stream and viewer and applies the
    same rules. A message for a client elsewhere goes to its instance's channel; a
    stream's relay frames go on the stream's channel while another instance reads them, and
    a speaker's talk frames on the talk channel of its camera's instance.
    A heartbeat with a TTL says an instance lives: when it lapses, the others drop its
    clients and end its streams. Without Redis, an instance serves its own clients,
    reports not ready, and writes its state again when Redis returns.
    """

    def __init__(self, url: str, registry: Mirror) -> None:
        try:
            import redis.asyncio as aioredis
            from redis.exceptions import RedisError
        except ImportError:
            raise RedisMissing("--redis needs redis-py: pip install 'peercam[redis]'") from None
        self._errors = (RedisError, OSError, asyncio.TimeoutError)
        self.url = url
        self.node = secrets.token_hex(4)
        # Named, so that Redis's CLIENT LIST tells the instances and the two kinds apart.
        self._redis = aioredis.Redis.from_url(url, socket_connect_timeout=1.0, socket_keepalive=True,
                                              client_name=f"{PREFIX}{self.node}")
        #: Relay frames' own connections (a subscription, and one to publish on).
        self._relay_redis = aioredis.Redis.from_url(url, socket_connect_timeout=1.0, socket_keepalive=True,
                                                    client_name=f"{PREFIX}{self.node}:relay")
        self._registry = registry
        registry.listener = self
        self.connected = False
        #: Commands for Redis, in order (one writer sends them, pipelined), and relay frames
        #: apart, on their own connection: signaling never waits behind video.
        self._pending = CommandQueue(MAX_PENDING_BYTES)
        self._frames = CommandQueue(MAX_PENDING_FRAME_BYTES)
        self._talk = CommandQueue(MAX_PENDING_TALK_BYTES, max_age=MAX_TALK_FRAME_AGE_SECONDS)
        self._wake = asyncio.Event()
        self._frames_wake = asyncio.Event()
        self._talk_wake = asyncio.Event()
        #: Commands and relay frames dropped because Redis did not keep up (for /metrics).
        self.dropped = 0
        #: Relay frames larger than MAX_CLUSTER_FRAME_BYTES, not sent to (or taken from) Redis.
        self.frames_too_large = 0
        #: Times the relay frames' connection to Redis failed and was made again.
        self.relay_reconnects = 0
        #: Talk frames for cameras elsewhere dropped before Redis took them (see
        #: talk_frames_dropped); and messages on our talk channel that were no TalkFrame.
        self._talk_dropped = 0
        self._bad_talk_messages = 0
        #: Other instances' clients, by id.
        self._remote: dict[str, RemoteClient] = {}
        #: Streams whose camera is elsewhere and whose relay frames this instance reads.
        self._relay_streams: set[str] = set()
        self._pubsub = None
        #: The relay frames' subscription, while it is up.
        self._relay_pubsub = None
        self._synced_at = 0.0
        #: Names with a claim on its way: a second camera here waits for no answer.
        self._claiming: set[str] = set()
        self._task: asyncio.Task | None = None

    # -- life ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Reach Redis once, then keep in step with it in the background.

        Redis that does not answer at start is a setting to fix (RedisUnreachable); once
        joined, an outage is ridden out.
        """
        try:
            await asyncio.wait_for(self._redis.ping(), START_TIMEOUT_SECONDS)
        except self._errors as exc:
            await self._redis.aclose()
            await self._relay_redis.aclose()
            reason = str(exc).rstrip(".") or f"no answer within {START_TIMEOUT_SECONDS:g} s"
            raise RedisUnreachable(f"cannot reach Redis at {self.url} ({reason}): start it, "
                                   "or point --redis at one that runs") from exc
        self._task = asyncio.create_task(self._run(), name=f"cluster-{self.node}")

    async def close(self) -> None:
        """Leave the deployment: the others forget this instance's clients at once."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self.connected:
            try:
                async with self._redis.pipeline(transaction=False) as pipe:
                    pipe.publish(EVENTS, encode_envelope(NodeLeaving(node=self.node)))
                    pipe.delete(_node_key(self.node), _clients_key(self.node))
                    pipe.srem(NODES, self.node)
                    await pipe.execute()
                for stream in self._registry.live_streams():
                    if isinstance(stream.camera, Connection):
                        holder = self._holder(stream.camera)
                        await self._redis.eval(_RELEASE, 1, CLAIMS, stream.name, holder)
            except self._errors as exc:
                log.warning("leaving Redis: %s", exc)
        await self._redis.aclose()
        await self._relay_redis.aclose()

    @property
    def pending_bytes(self) -> int:
        """Bytes of messages and state waiting to go to Redis (at most MAX_PENDING_BYTES)."""
        return self._pending.bytes

    @property
    def pending_frame_bytes(self) -> int:
        """Bytes of relay frames waiting to go to Redis (at most MAX_PENDING_FRAME_BYTES)."""
        return self._frames.bytes

    @property
    def pending_talk_bytes(self) -> int:
        """Bytes of talk frames waiting to go to Redis (at most MAX_PENDING_TALK_BYTES)."""
        return self._talk.bytes

    @property
    def talk_frames_dropped(self) -> int:
        """Talk frames for cameras on other instances that never went to Redis: it did not
        take them in time (MAX_TALK_FRAME_AGE_SECONDS, MAX_PENDING_TALK_BYTES) or was away."""
        return self._talk_dropped + self._talk.expired

    def health(self) -> dict:
        return {"node": self.node, "redis": "connected" if self.connected else "unreachable"}

    async def _run(self) -> None:
        down_since: float | None = None
        while True:
            try:
                await self._sync()
            except self._errors as exc:
                await self._close_pubsub()
                if down_since is None:
                    down_since = time.monotonic()
                    log.error("Redis at %s is unreachable (%s): serving this instance's clients only, "
                              "retrying every %g s", self.url, exc, RECONNECT_SECONDS)
                await asyncio.sleep(RECONNECT_SECONDS)
                continue
            if down_since is not None:
                log.warning("Redis at %s is back after %.1f s: state written again",
                            self.url, time.monotonic() - down_since)
            else:
                log.info("Redis at %s: this instance is node %s", self.url, self.node)
            down_since = None
            done = await _until_one_fails(self._listen(), self._write(), self._heartbeat(), self._relay())
            failure = next((task.exception() for task in done if task.exception()), None)
            failure = failure or ConnectionError("the Redis subscription ended")
            if not isinstance(failure, self._errors):
                raise failure
            down_since = time.monotonic()
            self._lost(failure)
            await self._close_pubsub()

    async def _close_pubsub(self) -> None:
        """Let go of the subscription's connection (dead, or half set up); _sync makes a new one."""
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            try:
                await pubsub.aclose()
            except self._errors:
                pass

    def _lost(self, exc: BaseException) -> None:
        self.connected = False
        self._pending.clear()
        log.error("lost Redis at %s (%s): serving this instance's clients only; other instances' "
                  "clients stay listed until it returns", self.url, exc)

    async def _sync(self) -> None:
        """Join (or join again): renew the heartbeat, hold our cameras' names, write our
        clients, and read everyone else's."""
        await self._redis.ping()
        self._pubsub = self._redis.pubsub()
        await self._pubsub.subscribe(EVENTS, _node_channel(self.node))
        await self._redis.set(_node_key(self.node), self.node, px=NODE_TTL_MS)
        await self._redis.sadd(NODES, self.node)
        cameras = {s.name: s.camera for s in self._registry.live_streams()
                   if isinstance(s.camera, Connection)}
        # Names our cameras let go of while Redis was away are free again.
        ours = {self._holder(camera) for camera in cameras.values()}
        claims = await self._claims_of(self.node)
        stale = [stream for stream, holder in claims.items() if holder not in ours]
        if stale:
            await self._redis.hdel(CLAIMS, *stale)
        for name, camera in cameras.items():
            if not await self._claim(name, camera):
                self._registry.evict(name, "a camera on another server instance took this name "
                                           "while Redis was away")
        reserved = self._registry.reserved_names()
        if reserved:
            await self._redis.sadd(RESERVED, *reserved)
        for name in await self._redis.smembers(RESERVED):
            self._apply_safely(self._registry.reserve, name.decode(), here=False)
        for node in await self._redis.smembers(NODES):
            node = node.decode()
            if node != self.node:
                await self._read_node(node)
        self.connected = True
        self._synced_at = time.monotonic()
        self._write_own_state()
        for stream in self._registry.live_streams():
            if isinstance(stream.camera, RemoteClient):
                stream.ask_camera_for_relay()

    def _write_own_state(self) -> None:
        """Our clients' hash as it is now, queued behind what is already queued."""
        records = {conn.id: encode_record(self._record_of(conn)) for conn in self._registry.local_clients()}
        self._queue("DEL", _clients_key(self.node))
        if records:
            self._queue("HSET", _clients_key(self.node), *(x for pair in records.items() for x in pair))
        self._queue("PUBLISH", EVENTS, encode_envelope(NodeSync(node=self.node)))

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.set(_node_key(self.node), self.node, px=NODE_TTL_MS, xx=True)
                pipe.sadd(NODES, self.node)
                pipe.smembers(NODES)
                # A Redis that stops answering (a partition, not a closed socket) is lost too:
                # by then our heartbeat has lapsed for the others anyway.
                renewed, _, members = await asyncio.wait_for(pipe.execute(), NODE_TTL_MS / 1000)
            if not renewed:
                # Our heartbeat had lapsed (Redis restarted, or this process stalled): the
                # others may have dropped our clients. Say it all again.
                log.warning("this instance's heartbeat had lapsed in Redis: writing its state again")
                await self._redis.set(_node_key(self.node), self.node, px=NODE_TTL_MS)
                self._write_own_state()
                continue
            if time.monotonic() - self._synced_at < NODE_TTL_MS / 1000:
                continue  # after an outage the others need a moment to renew theirs
            # Members, and instances we still mirror whose membership Redis lost (a restart).
            others = sorted(({m.decode() for m in members} | {c.node for c in self._remote.values()})
                            - {self.node})
            if not others:
                continue
            alive = await self._redis.mget([_node_key(n) for n in others])
            for node, beat in zip(others, alive, strict=True):
                if beat is None:
                    await self._node_gone(node, "went away")

    async def _node_gone(self, node: str, how: str) -> None:
        """Another instance died: its clients leave, its names are free, its readers read nothing."""
        log.warning("server instance %s %s: dropping its clients", node, how)
        self._forget_node(node, f"the camera's server instance {how}")
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.srem(NODES, node)
            pipe.delete(_clients_key(node))
            await pipe.execute()
        stale = list(await self._claims_of(node))
        if stale:
            await self._redis.hdel(CLAIMS, *stale)

    def _forget_node(self, node: str, reason: str) -> None:
        for client in [c for c in self._remote.values() if c.node == node]:
            self._drop(client, reason)
        self._registry.forget_demand_of(node)

    async def _read_node(self, node: str) -> None:
        """Mirror another instance's clients exactly as its hash says."""
        records = {}
        for client_id, data in (await self._redis.hgetall(_clients_key(node))).items():
            try:
                records[client_id.decode()] = decode_record(data)
            except msgspec.DecodeError as exc:
                log.warning("instance %s: a client record Redis holds is not valid: %s", node, exc)
        for client in [c for c in self._remote.values() if c.node == node and c.id not in records]:
            self._drop(client, "the camera left")
        # Cameras first: their viewers then meet them as they arrive.
        for record in sorted(records.values(), key=lambda r: r.role != "camera"):
            self._mirror(node, record)

    # -- one camera per name ------------------------------------------------------------------

    def _holder(self, conn: Connection) -> str:
        return f"{self.node}/{conn.id}"

    async def _claims_of(self, node: str) -> dict[bytes, str]:
        """The names instance ``node``'s cameras hold: {stream: holder}."""
        claims = await self._redis.hgetall(CLAIMS)
        return {stream: holder.decode() for stream, holder in claims.items()
                if holder.decode().startswith(node + "/")}

    async def _claim(self, stream: str, conn: Connection) -> bool:
        return bool(await self._redis.eval(_CLAIM, 1, CLAIMS, stream, self._holder(conn),
                                           PREFIX + "node:", self.node))

    async def claim(self, stream: str, conn: Connection) -> bool:
        """Is ``stream`` free for this camera across the deployment (none here has it)? Held
        from now on if so. While Redis is away this instance decides alone, and checks
        again when it returns."""
        if stream in self._claiming:
            return False
        if not self.connected:
            return True
        self._claiming.add(stream)
        try:
            return await self._claim(stream, conn)
        except self._errors as exc:
            log.warning("claiming %r: %s; deciding alone", stream, exc)
            return True
        finally:
            self._claiming.discard(stream)

    def release(self, stream: str, conn: Connection) -> None:
        self._queue("EVAL", _RELEASE, 1, CLAIMS, stream, self._holder(conn))

    # -- what this instance's clients do (RegistryListener) --------------------------------------

    def client_changed(self, conn: Connection) -> None:
        if not self.connected:
            return
        record = self._record_of(conn)
        self._queue("HSET", _clients_key(self.node), conn.id, encode_record(record))
        self._queue("PUBLISH", EVENTS, encode_envelope(ClientUpdate(node=self.node, client=record)))

    def client_gone(self, conn: Connection, reason: str) -> None:
        if conn.role == "camera":
            self.release(conn.stream or "", conn)
        self._queue("HDEL", _clients_key(self.node), conn.id)
        self._queue("PUBLISH", EVENTS, encode_envelope(ClientGone(node=self.node, id=conn.id,
                                                                   stream=conn.stream or "", reason=reason)))

    def chat(self, stream: str, message: ChatMessage) -> None:
        if any(not v.is_local for v in self._registry.get(stream).viewers.values()):
            self._queue("PUBLISH", EVENTS, encode_envelope(Chat(node=self.node, stream=stream,
                                                                text=encode(message))))

    def relay_frame(self, stream: str, data: bytes) -> None:
        if self._relay_pubsub is None:  # (relay frames' connection down)
            return
        if not self._fits(stream, data, "to"):
            return
        self._dropped(self._frames.put(("PUBLISH", RELAY_CHANNEL + stream, data), drop_oldest=True))
        self._frames_wake.set()

    def talk_frame(self, node: str, stream: str, sender: str, data: bytes) -> bool:
        if self._relay_pubsub is None:  # (relay frames' connection down)
            self._talk_dropped += 1
            return False
        message = encode_talk_frame(TalkFrame(node=self.node, stream=stream, sender=sender, frame=data))
        self._talk_dropped += self._talk.put(("PUBLISH", TALK_CHANNEL + node, message), drop_oldest=True)
        self._talk_wake.set()
        return True

    def _fits(self, stream: str, data: bytes, way: str) -> bool:
        """Is a relay frame small enough for other instances (MAX_CLUSTER_FRAME_BYTES)?"""
        if len(data) <= MAX_CLUSTER_FRAME_BYTES:
            return True
        self.frames_too_large += 1
        if self.frames_too_large in (1, 100, 10_000):
            log.warning("a relay frame of %r of %d bytes not taken %s Redis: the limit between "
                        "instances is %d (%d such frames so far)", stream, len(data), way,
                        MAX_CLUSTER_FRAME_BYTES, self.frames_too_large)
        return False

    def relay_renditions(self, stream: str, node: str, jpeg: list[JpegRendition]) -> None:
        self._queue("PUBLISH", _node_channel(node), encode_envelope(RelayRenditions(
            node=self.node, stream=stream, jpeg=jpeg)))

    def reserved(self, stream: str) -> None:
        self._queue("SADD", RESERVED, stream)
        self._queue("PUBLISH", EVENTS, encode_envelope(Reserve(node=self.node, stream=stream)))

    def ended(self, stream: str, reason: str) -> None:
        self._queue("SREM", RESERVED, stream)
        self._queue("PUBLISH", EVENTS, encode_envelope(End(node=self.node, stream=stream, reason=reason)))

    # -- to clients and cameras elsewhere (RemoteClient) -----------------------------------------

    def _deliver(self, node: str, stream: str, to: str, message) -> None:
        layer = message if isinstance(message, LayerChanged) else None
        self._queue("PUBLISH", _node_channel(node), encode_envelope(Deliver(
            node=self.node, to=to, stream=stream, text=encode(message),
            layer=layer.layer if layer else None, layer_reason=layer.reason if layer else "")))

    def _ask_relay(self, node: str, stream: str, jpeg: list[JpegRendition], encoded: list[str],
                   audio: bool) -> None:
        self._queue("PUBLISH", _node_channel(node), encode_envelope(RelayDemand(
            node=self.node, stream=stream, jpeg=jpeg, encoded=encoded, audio=audio)))
        self._read_relay(stream, bool(jpeg or encoded or audio))

    def _read_relay(self, stream: str, wanted: bool) -> None:
        """Subscribe to a stream's relay frames while readers here want them."""
        if wanted == (stream in self._relay_streams):
            return
        channel = RELAY_CHANNEL + stream
        if wanted:
            self._relay_streams.add(stream)
        else:
            self._relay_streams.discard(stream)
        if self._relay_pubsub is not None:  # (else _relay subscribes when it connects)
            change = self._relay_pubsub.subscribe if wanted else self._relay_pubsub.unsubscribe
            asyncio.get_running_loop().create_task(self._quietly(change(channel)))

    async def _quietly(self, command) -> None:
        try:
            await command
        except self._errors as exc:  # the listener notices the loss too, and resubscribes
            log.debug("relay subscription: %s", exc)

    async def _relay(self) -> None:
        """Relay frames both ways, and talk frames to cameras here and elsewhere, on connections
        of their own. When Redis drops them (a subscriber too far behind) they are made again,
        and signaling goes on meanwhile; the frames in between are lost, and readers wait for
        a keyframe."""
        failing = False
        while True:
            pubsub = self._relay_redis.pubsub()
            self._relay_pubsub = pubsub
            try:
                await pubsub.subscribe(TALK_CHANNEL + self.node,
                                       *(RELAY_CHANNEL + s for s in self._relay_streams))
                if failing:
                    log.warning("relay frames: Redis connection back")
                failing = False
                done = await _until_one_fails(self._listen_relay(pubsub), self._write_frames(),
                                              self._write_talk())
                for task in done:
                    task.result()
            except self._errors as exc:
                self.relay_reconnects += 1
                if not failing:
                    log.warning("relay frames: Redis connection lost (%s): reconnecting every %g s "
                                "(signaling is not affected)", exc, RECONNECT_SECONDS)
                failing = True
            finally:
                self._relay_pubsub = None
                self._frames.clear()
                self._talk_dropped += len(self._talk)
                self._talk.clear()
                try:
                    await pubsub.aclose()
                except self._errors:
                    pass
            await asyncio.sleep(RECONNECT_SECONDS)

    async def _listen_relay(self, pubsub) -> None:
        talk_channel = (TALK_CHANNEL + self.node).encode()
        async for message in pubsub.listen():
            channel: bytes = message["channel"]
            if message["type"] == "message" and channel == talk_channel:
                self._hear_talk(message["data"])
                continue
            if message["type"] != "message" or not channel.startswith(RELAY_CHANNEL.encode()):
                continue
            stream = channel[len(RELAY_CHANNEL):].decode(errors="replace")
            if self._fits(stream, message["data"], "from"):
                self._registry.relay_from_elsewhere(stream, message["data"])
        raise ConnectionError("the relay subscription ended")

    async def _write_frames(self) -> None:
        """Send the queued relay frames, as many as wait in each round trip."""
        await _send_queued(self._relay_redis, self._frames, self._frames_wake, batch=None)

    async def _write_talk(self) -> None:
        """Send the queued talk frames on a connection of their own (never behind video)."""
        await _send_queued(self._relay_redis, self._talk, self._talk_wake, batch=None)

    def _hear_talk(self, data: bytes) -> None:
        """A talk frame from a viewer elsewhere for a camera here; the registry checks it again."""
        try:
            if len(data) > TALK_MESSAGE_BYTES:
                raise msgspec.ValidationError(f"{len(data)} bytes, over {TALK_MESSAGE_BYTES}")
            talk = decode_talk_frame(data)
        except msgspec.DecodeError as exc:  # (ValidationError is one)
            self._bad_talk_messages += 1
            if self._bad_talk_messages in (1, 100, 10_000):
                log.warning("ignoring a message on %s%s: %s (%d such so far)", TALK_CHANNEL, self.node,
                            exc, self._bad_talk_messages)
            return
        self._registry.talk_from_elsewhere(talk.stream, talk.node, talk.sender, talk.frame)

    # -- what other instances say ----------------------------------------------------------------

    async def _listen(self) -> None:
        assert self._pubsub is not None
        async for message in self._pubsub.listen():
            if message["type"] != "message":
                continue
            channel: bytes = message["channel"]
            try:
                envelope = decode_envelope(message["data"])
            except msgspec.DecodeError as exc:
                log.warning("ignoring a message on %s: %s", channel.decode(errors="replace"), exc)
                continue
            if envelope.node == self.node:
                continue
            try:
                await self._handle(envelope)
            except self._errors:
                raise
            except Exception:  # a bug, or an instance of another version: not the end of this one
                log.exception("could not follow %r", envelope)

    async def _handle(self, envelope: Envelope) -> None:
        node = envelope.node
        if isinstance(envelope, ClientUpdate):
            self._mirror(node, envelope.client)
        elif isinstance(envelope, ClientGone):
            client = self._remote.get(envelope.id)
            if client is not None and client.node == node:
                self._drop(client, envelope.reason)
        elif isinstance(envelope, Deliver):
            conn = self._registry.deliver(envelope.stream, envelope.to, envelope.text)
            if conn is not None and envelope.layer is not None:
                self._registry.layer_changed(conn, envelope.layer, envelope.layer_reason)
        elif isinstance(envelope, RelayDemand):
            self._registry.set_remote_demand(envelope.stream, node, envelope.jpeg, envelope.encoded,
                                             envelope.audio)
        elif isinstance(envelope, RelayRenditions):
            self._registry.set_renditions_made(envelope.stream, node, envelope.jpeg)
        elif isinstance(envelope, Chat):
            self._registry.chat_here(envelope.stream, envelope.text)
        elif isinstance(envelope, NodeSync):
            await self._read_node(node)
        elif isinstance(envelope, NodeLeaving):
            log.info("server instance %s shut down: dropping its clients", node)
            self._forget_node(node, "the camera's server instance shut down")
        elif isinstance(envelope, Reserve):
            self._apply_safely(self._registry.reserve, envelope.stream, here=False)
        elif isinstance(envelope, End):
            self._registry.end(envelope.stream, envelope.reason, here=False)

    def _apply_safely(self, change, *args, **kwargs) -> None:
        try:
            change(*args, **kwargs)
        except ProtocolError as exc:  # a limit here refuses what another instance allowed
            log.warning("could not follow another instance: %s", exc.reason)

    def _mirror(self, node: str, record: ClientRecord) -> None:
        client = self._remote.get(record.id)
        same = client is not None and (client.node, client.stream, client.role) == (node, record.stream,
                                                                                  record.role)
        if same:
            client.update(record)
            return
        if client is not None:
            self._drop(client, "")
        client = RemoteClient(node, record, self._deliver, self._ask_relay)
        if self._registry.attach(client):  # (else its next update tries again)
            self._remote[record.id] = client

    def _drop(self, client: RemoteClient, reason: str) -> None:
        if self._remote.get(client.id) is client:
            del self._remote[client.id]
        if client.role == "camera":
            self._read_relay(client.stream or "", False)
        self._registry.remove(client, reason)

    # -- to Redis ------------------------------------------------------------------------------

    def _queue(self, *command) -> None:
        if not self.connected:
            return
        self._dropped(self._pending.put(command))
        self._wake.set()

    def _dropped(self, count: int) -> None:
        before, self.dropped = self.dropped, self.dropped + count
        if any(before < mark <= self.dropped for mark in (1, 100, 10_000)):
            log.warning("Redis is not keeping up: %d messages dropped", self.dropped)

    async def _write(self) -> None:
        """Send the queued commands in order, up to 512 in each round trip."""
        await _send_queued(self._redis, self._pending, self._wake, batch=512)

    def _record_of(self, conn: Connection) -> ClientRecord:
        stats = conn.stats
        stream = self._registry.get(conn.stream or "")
        camera = stream is not None and stream.camera is conn
        return ClientRecord(
            id=conn.id, role=conn.role or "", stream=conn.stream or "", name=conn.name,
            quality=conn.quality, jpeg_quality=conn.jpeg_quality, with_token=conn.with_token,
            info=stream.info if camera else None, since=stream.since if camera else None,
            layer=conn.layer, layer_reason=conn.layer_reason, relay_format=conn.relay_format,
            viewer_stats=stats if isinstance(stats, ViewerStats) else None,
            camera_stats=stats if isinstance(stats, CameraStats) else None, stats_at=conn.stats_at)


async def _until_one_fails(*jobs) -> set[asyncio.Task]:
    """Run ``jobs`` together until one ends (they run forever unless they fail), cancel the
    others, and return the tasks that ended, for their exceptions."""
    tasks = [asyncio.create_task(job) for job in jobs]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return done


async def _send_queued(redis, queue: CommandQueue, wake: asyncio.Event, batch: int | None) -> None:
    """Whenever ``wake`` is set, send what ``queue`` holds in order, ``batch`` commands (all
    that wait, if None) in each round trip."""
    while True:
        await wake.wait()
        wake.clear()
        while queue:
            async with redis.pipeline(transaction=False) as pipe:
                for command in queue.take(batch or len(queue)):
                    pipe.execute_command(*command)
                await pipe.execute()
