"""Relay frames over plain HTTP: an MJPEG stream and a snapshot, for <img>, ffplay, VLC.

Both read from the stream's relay hub, so they count as relay viewers: the camera
sends JPEG frames while one of them is open. Like WebSocket viewers, each counts
against the stream's --max-viewers and its address's connection limit.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web
from peercam.signaling.registry.streams import Stream
from peercam.signaling.relay.readers import RelayReader
from peercam.signaling.settings.limits import TooManyConnections

from peercam.shared.protocol import ErrorCode, ProtocolError
from peercam.shared.relayframe import parse_relay_frame

from .appkeys import CONFIG, CONNECTIONS_BY_ADDRESS, REGISTRY
from .gate import Access, requires

routes = web.RouteTableDef()

_BOUNDARY = "peercamframe"
_SNAPSHOT_TIMEOUT = 5.0


_QUALITY = re.compile(r"auto|[0-9]{2,5}p(@[0-9]{1,3}(\.[0-9]{1,3})?)?")


def _choice(request: web.Request) -> tuple[str, int | None]:
    """``?quality=LAYER`` (default: the top layer) and ``?jpeg_quality=1..100`` (default: the camera's)."""
    quality = request.query.get("quality", "auto")
    jpeg = request.query.get("jpeg_quality")
    if not _QUALITY.fullmatch(quality):
        raise web.HTTPBadRequest(text="quality: a layer's name (e.g. 480p) or auto\n")
    if jpeg is not None and not (jpeg.isdigit() and 1 <= int(jpeg) <= 100):
        raise web.HTTPBadRequest(text="jpeg_quality: a whole number from 1 to 100\n")
    return quality, int(jpeg) if jpeg is not None else None


@asynccontextmanager
async def _reading(request: web.Request) -> AsyncIterator[Stream]:
    """A live stream, held as one more reader from this address for as long as this lasts."""
    per_address = request.app[CONNECTIONS_BY_ADDRESS]
    address = request.remote or "?"
    try:
        per_address.acquire(address)
    except TooManyConnections as exc:
        raise web.HTTPTooManyRequests(text=f"{exc}\n") from None
    registry = request.app[REGISTRY]
    try:
        try:
            stream = registry.add_http_reader(request.match_info["name"])
        except ProtocolError as exc:
            status = web.HTTPNotFound if exc.code == ErrorCode.NO_SUCH_STREAM else web.HTTPServiceUnavailable
            raise status(text=f"{exc.reason}\n") from None
        try:
            yield stream
        finally:
            registry.remove_http_reader(stream)
    finally:
        per_address.release(address)


@routes.get("/streams/{name}/mjpeg")
@requires(Access.VIEW)
async def mjpeg(request: web.Request) -> web.StreamResponse:
    choice = _choice(request)
    async with _reading(request) as stream:
        return await _stream_mjpeg(request, stream, choice)


async def _stream_mjpeg(request: web.Request, stream: Stream, choice: tuple[str, int | None]
                        ) -> web.StreamResponse:
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
    stream.relay.add(reader, *choice)
    try:
        await reader.wait_closed()
    finally:
        stream.relay.remove(reader)
    return response


@routes.get("/streams/{name}/snapshot.jpg")
@requires(Access.VIEW)
async def snapshot(request: web.Request) -> web.Response:
    choice = _choice(request)
    async with _reading(request) as stream:
        rendition = stream.relay.rendition(*choice)
        if rendition is None:
            raise web.HTTPServiceUnavailable(text="the camera has not said what it sends yet\n")
        try:
            frame = await stream.relay.next_frame(rendition, _SNAPSHOT_TIMEOUT)
        except asyncio.TimeoutError:
            raise web.HTTPServiceUnavailable(
                text=f"the camera sent no frame within {_SNAPSHOT_TIMEOUT:g} s\n") from None
    _, jpeg = parse_relay_frame(frame)
    return web.Response(body=bytes(jpeg), content_type="image/jpeg",
                        headers={"Cache-Control": "no-cache, no-store"})
