"""The HTTP API: ``/api/streams``, ``/api/streams/{name}``, ``/healthz``, and the admin
calls (reserve and end a stream) that need an admin token."""

from __future__ import annotations

from aiohttp import web

from .appkeys import CONFIG, REGISTRY, SOCKETS
from .auth import TokenError, check_token, make_token, parse_duration
from .protocol import ProtocolError

routes = web.RouteTableDef()


@routes.get("/api/streams")
async def list_streams(request: web.Request) -> web.Response:
    registry = request.app[REGISTRY]
    return web.json_response([s.summary() for s in registry.live_streams()])


@routes.get("/api/streams/{name}")
async def get_stream(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    stream = request.app[REGISTRY].get(name)
    if stream is None:
        return web.json_response(
            {"error": "no-such-stream", "reason": f"no stream named {name[:80]!r}"}, status=404
        )
    return web.json_response(stream.summary())


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    return web.json_response(
        {
            "status": "ok",
            "streams": len(request.app[REGISTRY].live_streams()),
            "connections": len(request.app[SOCKETS]),
        }
    )


def _require_admin(request: web.Request, stream: str) -> str:
    """The server's secret, once the request's bearer token is an admin token."""
    secret = request.app[CONFIG].secret
    if not secret:
        raise web.HTTPForbidden(text="the admin API needs the server to run with --secret\n")
    header = request.headers.get("Authorization", "")
    token = header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else ""
    try:
        check_token(secret, token, stream, "admin")
    except TokenError as exc:
        raise web.HTTPUnauthorized(text=f"{exc}\n", headers={"WWW-Authenticate": "Bearer"}) from None
    return secret


@routes.post("/api/streams")
async def reserve_stream(request: web.Request) -> web.Response:
    """Reserve a name; the answer carries a publish token for it."""
    try:
        body = await request.json()
        name, ttl = body["name"], parse_duration(str(body.get("ttl", "1h")))
    except (ValueError, KeyError, TypeError):
        raise web.HTTPBadRequest(text='expected JSON {"name": NAME, "ttl": "1h"}\n') from None
    secret = _require_admin(request, name)
    try:
        request.app[REGISTRY].reserve(name)
    except ProtocolError as exc:
        raise web.HTTPBadRequest(text=f"{exc.reason}\n") from None
    token = make_token(secret, name, "publish", ttl)
    return web.json_response({"name": name, "publish_token": token}, status=201)


@routes.delete("/api/streams/{name}")
async def end_stream(request: web.Request) -> web.Response:
    """End a stream: its camera and viewers are told, and its relay stops."""
    name = request.match_info["name"]
    _require_admin(request, name)
    if not request.app[REGISTRY].end(name, "ended by an administrator"):
        raise web.HTTPNotFound(text=f"no stream named {name[:80]!r}\n")
    return web.json_response({"name": name, "ended": True})
