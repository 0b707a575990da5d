"""The signaling WebSocket endpoint, ``GET /ws``: one connection per client."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import WSCloseCode, WSMsgType, web

from .appkeys import CONFIG, CONNECTIONS_BY_ADDRESS, METRICS, REGISTRY, SOCKETS
from .auth import TokenError, check_token
from .config import ServerConfig
from .connection import Connection
from .metrics import Metrics
from .protocol import (
    PROTOCOL_VERSION,
    ROUTED_TYPES,
    Answer,
    CameraStatsReport,
    ChatMessage,
    ErrorCode,
    IceServer,
    IceServers,
    Offer,
    ProtocolError,
    Publish,
    Relay,
    Stats,
    Watch,
    Welcome,
    decode_client_message,
    encode,
)
from .ratelimit import TokenBucket
from .streams import StreamRegistry
from .turn import turn_servers

log = logging.getLogger(__name__)

#: Hard cap on one WebSocket message (aiohttp closes the socket past it). Text
#: messages have their own, smaller limit that gets an error reply instead.
MAX_WEBSOCKET_MESSAGE_BYTES = 8 * 1024 * 1024


async def websocket_handler(request: web.Request) -> web.WebSocketResponse:
    config = request.app[CONFIG]
    registry = request.app[REGISTRY]
    metrics = request.app[METRICS]
    origin = request.headers.get("Origin")
    if config.allowed_origins and origin is not None and origin not in config.allowed_origins:
        # Browsers always send Origin: a page from elsewhere may not drive this server.
        raise web.HTTPForbidden(text=f"origin {origin[:100]!r} is not allowed here\n")
    ws = web.WebSocketResponse(
        heartbeat=config.heartbeat, max_msg_size=MAX_WEBSOCKET_MESSAGE_BYTES, compress=False
    )
    await ws.prepare(request)
    address = request.remote or "?"
    per_address = request.app[CONNECTIONS_BY_ADDRESS]
    if per_address[address] >= config.limits.connections_per_address:
        error = ProtocolError(ErrorCode.TOO_MANY_CONNECTIONS,
                              f"at most {config.limits.connections_per_address} connections per address")
        metrics.errors.labels(error.code).inc()
        await ws.send_str(encode(error.to_message()))
        await ws.close(code=WSCloseCode.TRY_AGAIN_LATER, message=b"too many connections")
        return ws
    per_address[address] += 1
    conn = Connection(ws, address, config.outbox_limit)
    conn.start()
    request.app[SOCKETS].add(ws)
    bucket = TokenBucket(config.limits.messages_per_second, config.limits.message_burst)
    conn.send(
        Welcome(peer_id=conn.id, ice_servers=_ice_servers(config, conn), protocol=PROTOCOL_VERSION,
                ice_hosts=list(config.ice_hosts))
    )
    refresher = asyncio.create_task(_refresh_turn_credentials(config, conn)) if config.turn else None
    log.info("%r connected", conn)
    try:
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                if conn.role != "publisher" and not bucket.take():
                    _refuse(metrics, conn, ProtocolError(
                        ErrorCode.RATE_LIMITED,
                        f"slow down: at most {config.limits.messages_per_second:g} messages a second"))
                    continue
                _handle_text(config, registry, metrics, conn, msg.data)
            elif msg.type == WSMsgType.BINARY:
                try:
                    registry.relay_frame(conn, msg.data)
                except ProtocolError as exc:
                    _refuse(metrics, conn, exc)
            elif msg.type == WSMsgType.ERROR:
                log.info("%r: %s", conn, ws.exception())
    finally:
        if refresher is not None:
            refresher.cancel()
        per_address[address] -= 1
        if not per_address[address]:
            del per_address[address]
        registry.remove(conn)
        request.app[SOCKETS].discard(ws)
        await conn.close()
        log.info("%r disconnected", conn)
    return ws


def _ice_servers(config: ServerConfig, conn: Connection) -> list[IceServer]:
    servers = list(config.ice_servers)
    if config.turn is not None:
        servers += turn_servers(config.turn, conn.id)
    return servers


async def _refresh_turn_credentials(config: ServerConfig, conn: Connection) -> None:
    """A camera stays connected for days: hand out new TURN credentials at half their lifetime."""
    assert config.turn is not None
    while True:
        await asyncio.sleep(config.turn.ttl / 2)
        conn.send(IceServers(ice_servers=_ice_servers(config, conn)))


def _handle_text(config: ServerConfig, registry: StreamRegistry, metrics: Metrics, conn: Connection,
                 data: str) -> None:
    try:
        message = decode_client_message(data)
        metrics.messages.labels(type(message).__struct_config__.tag).inc()
        if isinstance(message, (Publish, Watch)):
            _authorize(config, registry, message)
        if isinstance(message, (Offer, Answer)) and len(message.sdp) > config.limits.max_sdp_bytes:
            raise ProtocolError(ErrorCode.TOO_LARGE, f"SDP of {len(message.sdp)} bytes; "
                                f"the limit is {config.limits.max_sdp_bytes}")
        _dispatch(registry, conn, message)
    except ProtocolError as exc:
        _refuse(metrics, conn, exc)


def _refuse(metrics: Metrics, conn: Connection, exc: ProtocolError) -> None:
    log.info("%r: refused: %s %s", conn, exc.code, exc.reason)
    metrics.errors.labels(exc.code).inc()
    conn.send(exc.to_message())


def _authorize(config: ServerConfig, registry: StreamRegistry, message: Publish | Watch) -> None:
    """Check the token when --auth (or a reserved name) asks for one."""
    role = "publish" if isinstance(message, Publish) else "view"
    stream = registry.get(message.stream)
    needed = config.auth == "all" or (
        role == "publish" and (config.auth == "publish" or (stream is not None and stream.reserved))
    )
    if not needed:
        return
    try:
        check_token(config.secret or "", message.token, message.stream, role)
    except TokenError as exc:
        raise ProtocolError(ErrorCode.BAD_TOKEN, str(exc)) from None


def _dispatch(registry: StreamRegistry, conn: Connection, message) -> None:
    if isinstance(message, Publish):
        registry.publish(conn, message.stream, message.info, message.name)
        log.info("%r publishes %dx%d@%g %s", conn, message.info.width,
                 message.info.height, message.info.fps, message.info.codec)
    elif isinstance(message, Watch):
        registry.watch(conn, message.stream, message.name)
    elif isinstance(message, Relay):
        registry.set_relay(conn, message.enabled)
    elif isinstance(message, (Stats, CameraStatsReport)):
        registry.report_stats(conn, message.stats)
    elif isinstance(message, ChatMessage):
        registry.broadcast_chat(conn, message)
    elif isinstance(message, ROUTED_TYPES):
        target = registry.route_target(conn, message)
        message.to, message.sender = None, conn.id
        target.send(message)
