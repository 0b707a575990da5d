"""The signaling WebSocket endpoint, ``GET /ws``: one connection per client."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import WSCloseCode, WSMsgType, web
from peercam.signaling.cluster.cluster import Cluster
from peercam.signaling.registry.connection import Connection
from peercam.signaling.registry.streams import TALK_FRAMES_PER_SECOND, StreamRegistry
from peercam.signaling.settings.config import ServerConfig
from peercam.signaling.settings.limits import AddressShare, TooManyConnections
from peercam.signaling.settings.turn import turn_servers

from peercam.shared.protocol import (
    PROTOCOL_VERSION,
    ROUTED_TYPES,
    Answer,
    CameraStatsReport,
    ChatMessage,
    ErrorCode,
    IceServer,
    IceServers,
    LayerChanged,
    Offer,
    ProtocolError,
    Publish,
    Relay,
    Rename,
    SetQuality,
    Stats,
    Talking,
    TalkRefused,
    TalkStart,
    Watch,
    Welcome,
    check_stream_name,
    decode_client_message,
    encode,
)
from peercam.shared.ratelimit import TokenBucket

from .appkeys import CLUSTER, CONFIG, CONNECTIONS_BY_ADDRESS, METRICS, REGISTRY, SOCKETS
from .auth import TokenError, check_token, read_token
from .browserpolicy import origin_allowed
from .gate import Access, presented_token, requires
from .metrics import Metrics

log = logging.getLogger(__name__)

#: Hard cap on one WebSocket message (aiohttp closes the socket past it). Text
#: messages have their own, smaller limit that gets an error reply instead.
MAX_WEBSOCKET_MESSAGE_BYTES = 8 * 1024 * 1024


@requires(Access.OPEN)  # every publish and watch on the socket carries its own token
async def websocket_handler(request: web.Request) -> web.WebSocketResponse:
    config = request.app[CONFIG]
    registry = request.app[REGISTRY]
    metrics = request.app[METRICS]
    cluster = request.app.get(CLUSTER)
    origin = request.headers.get("Origin")
    if not origin_allowed(config, origin, request.headers.get("Host")):
        # Browsers always send Origin: a page from elsewhere may not drive this server.
        raise web.HTTPForbidden(text=f"origin {origin[:100]!r} is not allowed here "
                                     "(the server's own origin is; see --allowed-origin)\n")
    ws = web.WebSocketResponse(
        heartbeat=config.heartbeat, max_msg_size=MAX_WEBSOCKET_MESSAGE_BYTES, compress=False
    )
    await ws.prepare(request)
    address = request.remote or "?"
    share = AddressShare(request.app[CONNECTIONS_BY_ADDRESS], address)
    try:
        share.enter(on_credit=_presents_publish_token(config, request))
    except TooManyConnections as exc:
        error = ProtocolError(ErrorCode.TOO_MANY_CONNECTIONS, str(exc))
        metrics.errors.labels(error.code).inc()
        await ws.send_str(encode(error.to_message()))
        await ws.close(code=WSCloseCode.TRY_AGAIN_LATER, message=b"too many connections")
        return ws
    conn = Connection(ws, address, config.outbox_limit, request.transport)
    conn.start()
    request.app[SOCKETS].add(ws)
    limits = config.limits
    viewer_bucket = TokenBucket(limits.messages_per_second, limits.message_burst)
    camera_bucket = TokenBucket(limits.messages_per_second * limits.camera_rate_factor,
                                limits.message_burst * limits.camera_rate_factor)
    frame_bucket = TokenBucket(limits.relay_frames_per_second, limits.relay_frame_burst)
    talk_bucket = TokenBucket(TALK_FRAMES_PER_SECOND, TALK_FRAMES_PER_SECOND / 2)
    rename_bucket = TokenBucket(1 / limits.rename_seconds, limits.rename_burst)
    # With auth on, TURN credentials go only to clients that watch or publish (see _dispatch).
    welcome_servers = ice_servers(config, conn.id) if config.auth == "open" else list(config.ice_servers)
    conn.send(Welcome(peer_id=conn.id, ice_servers=welcome_servers, protocol=PROTOCOL_VERSION,
                      ice_hosts=list(config.ice_hosts)))
    tasks = [asyncio.create_task(_close_if_idle(limits.idle_seconds, metrics, conn))]
    if config.turn:
        tasks.append(asyncio.create_task(_refresh_turn_credentials(config, conn)))
    log.info("%r connected", conn)
    try:
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                is_camera = conn.role == "camera"
                if not (camera_bucket if is_camera else viewer_bucket).take():
                    rate = limits.messages_per_second * (limits.camera_rate_factor if is_camera else 1)
                    _refuse(metrics, conn, ProtocolError(
                        ErrorCode.RATE_LIMITED, f"slow down: at most {rate:g} messages a second"))
                    continue
                await _handle_text(config, registry, cluster, metrics, conn, share, msg.data, rename_bucket)
            elif msg.type == WSMsgType.BINARY:
                try:
                    if conn.role == "viewer":  # talk back on the relay: its sound for the camera
                        if not talk_bucket.take():
                            raise ProtocolError(ErrorCode.RATE_LIMITED, "slow down: at most "
                                                f"{TALK_FRAMES_PER_SECOND} talk frames a second")
                        registry.talk_frame(conn, msg.data)
                        continue
                    if conn.role == "camera" and not frame_bucket.take():
                        raise ProtocolError(ErrorCode.RATE_LIMITED, "slow down: at most "
                                            f"{limits.relay_frames_per_second:g} relay frames a second")
                    registry.relay_frame(conn, msg.data)
                except ProtocolError as exc:
                    _refuse(metrics, conn, exc)
            elif msg.type == WSMsgType.ERROR:
                log.info("%r: %s", conn, ws.exception())
    finally:
        for task in tasks:
            task.cancel()
        share.leave()
        registry.remove(conn)
        request.app[SOCKETS].discard(ws)
        await conn.close()
        log.info("%r disconnected", conn)
    return ws


def _presents_publish_token(config: ServerConfig, request: web.Request) -> bool:
    token = presented_token(request)
    if not config.secret or not token:
        return False
    try:
        return read_token(config.secret, token).role in ("publish", "admin")
    except TokenError:
        return False


def ice_servers(config: ServerConfig, client_id: str) -> list[IceServer]:
    """The full ICE server list for one client: the configured ones and TURN credentials of its
    own (named after its client id, a WebSocket connection's or a WHEP viewer's)."""
    servers = list(config.ice_servers)
    if config.turn is not None:
        servers += turn_servers(config.turn, client_id)
    return servers


async def _refresh_turn_credentials(config: ServerConfig, conn: Connection) -> None:
    """A camera stays connected for days: hand out new TURN credentials at half their lifetime
    (with auth on, only to a client that watches or publishes)."""
    assert config.turn is not None
    while True:
        await asyncio.sleep(config.turn.ttl / 2)
        if config.auth == "open" or conn.role is not None:
            conn.send(IceServers(ice_servers=ice_servers(config, conn.id)))


async def _close_if_idle(seconds: float, metrics: Metrics, conn: Connection) -> None:
    """A socket that neither watches nor publishes in time is a stranger holding a slot."""
    await asyncio.sleep(seconds)
    if conn.role is None:
        _refuse(metrics, conn, ProtocolError(ErrorCode.IDLE_TIMEOUT,
                                             f"neither watched nor published within {seconds:g} s"))
        await conn.hang_up("idle", WSCloseCode.POLICY_VIOLATION)


async def _handle_text(config: ServerConfig, registry: StreamRegistry, cluster: Cluster | None,
                       metrics: Metrics, conn: Connection, share: AddressShare, data: str,
                       renames: TokenBucket) -> None:
    try:
        message = decode_client_message(data)
        metrics.messages.labels(type(message).__struct_config__.tag).inc()
        if isinstance(message, (Offer, Answer)) and len(message.sdp) > config.limits.max_sdp_bytes:
            raise ProtocolError(ErrorCode.TOO_LARGE, f"SDP of {len(message.sdp)} bytes; "
                                f"the limit is {config.limits.max_sdp_bytes}")
        if isinstance(message, (Publish, Watch)) and message.protocol != conn.protocol:
            conn.protocol = message.protocol  # what it is sent from now on is named as it knows
            log.info("%r speaks protocol %d", conn, message.protocol)
        if isinstance(message, Publish):
            await _publish(config, registry, cluster, conn, share, message)
        else:
            _dispatch(config, registry, conn, share, message, renames)
    except ProtocolError as exc:
        _refuse(metrics, conn, exc)


def _refuse(metrics: Metrics, conn: Connection, exc: ProtocolError) -> None:
    log.info("%r: refused: %s %s", conn, exc.code, exc.reason)
    metrics.errors.labels(exc.code).inc()
    conn.send(exc.to_message())


def _authorize(config: ServerConfig, registry: StreamRegistry, message: Publish | Watch) -> bool:
    """Check the token when --auth (or a reserved name) asks for one. Returns whether the
    message carried a valid token for what it asks (a reserved name's holder is the one that has)."""
    role = "publish" if isinstance(message, Publish) else "view"
    stream = registry.get(message.stream)
    needed = config.auth == "all" or (
        role == "publish" and (config.auth == "publish" or (stream is not None and stream.reserved))
    )
    try:
        if not config.secret:
            raise TokenError("this server has no --secret to check tokens with")
        check_token(config.secret, message.token, message.stream, role)
        return True
    except TokenError as exc:
        if needed:
            raise ProtocolError(ErrorCode.BAD_TOKEN, str(exc)) from None
        return False


_TALK_OFF = "talking back is off on this server (peercam serve --talk)"
_NO_TALK_RIGHT = "your token does not carry the talk right (peercam token --role talk)"


def _no_talk(config: ServerConfig) -> str:
    """Why a viewer may not talk (one that may not, under this server's --talk)."""
    return _TALK_OFF if config.talk == "off" else _NO_TALK_RIGHT


def _may_talk(config: ServerConfig, message: Watch) -> bool:
    """Whether a viewer may ask for the floor: any viewer under --talk viewers; under --talk
    token, one whose token grants talk (role talk or admin) on the stream."""
    if config.talk != "token":
        return config.talk == "viewers"
    try:
        check_token(config.secret or "", message.token, message.stream, "talk")
    except TokenError:
        return False
    return bool(config.secret)


def _count(share: AddressShare) -> None:
    try:
        share.count()
    except TooManyConnections as exc:
        raise ProtocolError(ErrorCode.TOO_MANY_CONNECTIONS, str(exc)) from None


async def _publish(config: ServerConfig, registry: StreamRegistry, cluster: Cluster | None,
                   conn: Connection, share: AddressShare, message: Publish) -> None:
    check_stream_name(message.stream)
    with_token = _authorize(config, registry, message)
    if not with_token:
        _count(share)
    stream = registry.get(message.stream)
    # Across instances, the name is claimed in Redis first (unless the rules here refuse anyway).
    claimed = cluster is not None and conn.role is None and (stream is None or stream.camera is None)
    if claimed and not await cluster.claim(message.stream, conn):
        raise ProtocolError(ErrorCode.STREAM_TAKEN,
                            f"stream {message.stream!r} already has a camera (on another server instance)")
    try:
        registry.publish(conn, message.stream, message.info, message.name, with_token=with_token,
                         ice_servers=ice_servers(config, conn.id), talk=config.talk != "off",
                         talk_max=config.talk_max)
    except ProtocolError:
        if claimed:
            cluster.release(message.stream, conn)
        raise
    if with_token:  # a camera: not counted against its address's share
        share.leave()
    log.info("%r publishes %dx%d@%g %s", conn, message.info.width,
             message.info.height, message.info.fps, message.info.codec)


def _dispatch(config: ServerConfig, registry: StreamRegistry, conn: Connection, share: AddressShare,
              message, renames: TokenBucket) -> None:
    if isinstance(message, Watch):
        check_stream_name(message.stream)
        _authorize(config, registry, message)
        _count(share)  # whatever token let it in: only publishing with one exempts a socket
        conn.may_talk = _may_talk(config, message)
        registry.watch(conn, message.stream, message.name, ice_servers=ice_servers(config, conn.id),
                       quality=message.quality, jpeg_quality=message.jpeg_quality, talk=conn.may_talk,
                       talk_reason="" if conn.may_talk else _no_talk(config))
    elif isinstance(message, SetQuality):
        registry.set_quality(conn, message.quality, message.jpeg_quality)
    elif isinstance(message, Rename):
        if not renames.take():  # every try counts: guessing at taken names is renaming too
            limits = config.limits
            raise ProtocolError(ErrorCode.RATE_LIMITED, f"slow down: at most {limits.rename_burst} "
                                f"renames at once, then one every {limits.rename_seconds:g} s")
        registry.rename(conn, message.name)
    elif isinstance(message, Relay):
        registry.set_relay(conn, message.enabled, message.format, message.audio)
    elif isinstance(message, (Stats, CameraStatsReport)):
        registry.report_stats(conn, message.stats)
    elif isinstance(message, ChatMessage):
        registry.broadcast_chat(conn, message)
    elif isinstance(message, Talking):
        registry.talking(conn, message)
    elif isinstance(message, TalkStart) and conn.role == "viewer" and not conn.may_talk:
        # Refused here, where the right is known; the camera (the floor's keeper) never hears of it.
        conn.send(TalkRefused(reason=_no_talk(config)))
    elif isinstance(message, ROUTED_TYPES):
        target = registry.route_target(conn, message)
        if isinstance(message, LayerChanged):
            registry.layer_changed(target, message.layer, message.reason)
        message.to, message.sender = None, conn.id
        target.send(message)
