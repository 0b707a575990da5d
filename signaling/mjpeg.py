"""Relay frames over plain HTTP: an MJPEG stream and a snapshot, for <img>, ffplay, VLC.

Both read from the stream's relay hub, so they count as relay viewers: the camera
sends JPEG frames while one of them is open.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from .appkeys import CONFIG, REGISTRY
from .relay import RelayReader
from .relayframe import parse_relay_frame
from .streams import Stream

routes = web.RouteTableDef()

_BOUNDARY = "peercamframe"
_SNAPSHOT_TIMEOUT = 5.0


def _live_stream(request: web.Request) -> Stream:
    name = request.match_info["name"]
    stream = request.app[REGISTRY].get(name)
    if stream is None or not stream.live:
        raise web.HTTPNotFound(text=f"no live stream named {name[:80]!r}\n")
    return stream


@routes.get("/streams/{name}/mjpeg")
async def mjpeg(request: web.Request) -> web.StreamResponse:
    stream = _live_stream(request)
    response = web.StreamResponse(headers={
        "Content-Type": f"multipart/x-mixed-replace; boundary={_BOUNDARY}",
        "Cache-Control": "no-cache, no-store",
    })
    await response.prepare(request)
    stall_limit = request.app[CONFIG].limits.stalled_reader_seconds

    async def deliver(frame: bytes) -> None:
        _, jpeg = parse_relay_frame(frame)
        part_header = (f"--{_BOUNDARY}\r\nContent-Type: image/jpeg\r\n"
                       f"Content-Length: {len(jpeg)}\r\n\r\n").encode()
        try:
            await asyncio.wait_for(response.write(part_header + jpeg + b"\r\n"), stall_limit)
        except asyncio.TimeoutError:
            raise ConnectionError(f"took no bytes for {stall_limit:g} s: dropped") from None

    reader = RelayReader(f"mjpeg-{request.remote}", deliver, ends_with_camera=True)
    stream.relay.add(reader)
    try:
        await reader.wait_closed()
    finally:
        stream.relay.remove(reader)
    return response


@routes.get("/streams/{name}/snapshot.jpg")
async def snapshot(request: web.Request) -> web.Response:
    stream = _live_stream(request)
    try:
        frame = await stream.relay.next_frame(_SNAPSHOT_TIMEOUT)
    except asyncio.TimeoutError:
        raise web.HTTPServiceUnavailable(
            text=f"the camera sent no frame within {_SNAPSHOT_TIMEOUT:g} s\n") from None
    _, jpeg = parse_relay_frame(frame)
    return web.Response(body=bytes(jpeg), content_type="image/jpeg",
                        headers={"Cache-Control": "no-cache, no-store"})
