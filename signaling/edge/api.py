"""The HTTP API: ``/api/streams``, ``/api/streams/{name}``, ``/healthz``, and the admin
calls (reserve and end a stream) that need an admin token."""

from __future__ import annotations

import msgspec
from aiohttp import web
from peercam.signaling.registry.streams import Stream

from peercam.shared.durations import parse_duration
from peercam.shared.protocol import ProtocolError, check_stream_name

from .appkeys import CLUSTER, CONFIG, RECORDINGS, REGISTRY, SOCKETS
from .auth import make_token
from .gate import GRANT, Access, may_view, requires

routes = web.RouteTableDef()


class ReserveRequest(msgspec.Struct, forbid_unknown_fields=True):
    """The body of ``POST /api/streams``."""

    name: str
    ttl: str | float = "1h"  # "90s", "15m", "1h", "7d", or seconds


_reserve_decoder = msgspec.json.Decoder(ReserveRequest)


def _bad_request(reason: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(text=f"{reason}\n")


@routes.get("/api/streams")
@requires(Access.LIST)
async def list_streams(request: web.Request) -> web.Response:
    """Live streams; under --auth all only those the presented token may view."""
    registry = request.app[REGISTRY]
    return web.json_response([_summary(request, s) for s in registry.live_streams()
                              if may_view(request, s.name)])


@routes.get("/api/streams/{name}")
@requires(Access.VIEW)
async def get_stream(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    stream = request.app[REGISTRY].get(name)
    if stream is None:
        return web.json_response(
            {"error": "no-such-stream", "reason": f"no stream named {name[:80]!r}"}, status=404
        )
    return web.json_response(_summary(request, stream))


def _summary(request: web.Request, stream: Stream) -> dict:
    """A stream's summary, with its recording's state when the server records."""
    recordings = request.app.get(RECORDINGS)
    return {**stream.summary(), "recording": recordings.state(stream.name) if recordings else None}


@routes.get("/healthz")
@requires(Access.OPEN)
async def healthz(request: web.Request) -> web.Response:
    """200 while this instance can take clients; 503 while its Redis (--redis) is away: it
    still serves the clients it has, but a balancer should send new ones elsewhere."""
    cluster = request.app.get(CLUSTER)
    ready = cluster is None or cluster.connected
    return web.json_response(
        {
            "status": "ok" if ready else "not-ready",
            "streams": len(request.app[REGISTRY].live_streams()),
            "connections": len(request.app[SOCKETS]),
            **({"cluster": cluster.health()} if cluster is not None else {}),
        },
        status=200 if ready else 503,
    )


def _require_admin_of(request: web.Request, stream: str) -> None:
    """The gate checked the admin token; it must also cover this stream."""
    if not request[GRANT].allows(stream, "admin"):
        raise web.HTTPForbidden(text=f"token is for stream {request[GRANT].stream!r}, not {stream!r}\n")


@routes.post("/api/streams")
@requires(Access.ADMIN)
async def reserve_stream(request: web.Request) -> web.Response:
    """Reserve a name; the answer carries a publish token for it."""
    try:
        body = _reserve_decoder.decode(await request.read())
    except msgspec.DecodeError as exc:
        raise _bad_request(f'expected JSON {{"name": NAME, "ttl": "1h"}}: {exc}') from None
    try:
        check_stream_name(body.name)
        ttl = parse_duration(str(body.ttl))
    except ProtocolError as exc:
        raise _bad_request(exc.reason) from None
    except ValueError as exc:
        raise _bad_request(f"ttl: {exc}") from None
    _require_admin_of(request, body.name)
    try:
        request.app[REGISTRY].reserve(body.name)
    except ProtocolError as exc:
        raise _bad_request(exc.reason) from None
    token = make_token(request.app[CONFIG].secret or "", body.name, "publish", ttl)
    return web.json_response({"name": body.name, "publish_token": token}, status=201)


@routes.delete("/api/streams/{name}")
@requires(Access.ADMIN)
async def end_stream(request: web.Request) -> web.Response:
    """End a stream: its camera and viewers are told, and its relay stops."""
    name = request.match_info["name"]
    _require_admin_of(request, name)
    if not request.app[REGISTRY].end(name, "ended by an administrator"):
        raise web.HTTPNotFound(text=f"no stream named {name[:80]!r}\n")
    return web.json_response({"name": name, "ended": True})
