"""The HTTP API: ``/api/streams``, ``/api/streams/{name}``, ``/healthz``."""

from __future__ import annotations

from aiohttp import web

from .appkeys import REGISTRY, SOCKETS

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
