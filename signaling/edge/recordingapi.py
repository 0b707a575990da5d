"""The recording routes: switch a stream's recording, list its segments, serve and delete them.

| route                                   | access  |
|-----------------------------------------|---------|
| ``PUT /api/streams/{name}/recording``   | CONTROL (an admin token when --secret is set) |
| ``GET /api/streams/{name}/recordings``  | VIEW    |
| ``GET /recordings/{name}/{file}``       | VIEW (Range requests: a ``<video>`` seeks) |
| ``DELETE /recordings/{name}/{file}``    | CONTROL |

``PUT`` answers 404 for a stream the server does not know (Recordings.known).
"""

from __future__ import annotations

import msgspec
from aiohttp import web
from peercam.signaling.recording.recordings import Recordings, SegmentBusy

from peercam.shared.protocol import ProtocolError, check_stream_name

from .appkeys import RECORDINGS
from .gate import GRANT, Access, requires

routes = web.RouteTableDef()

_MEDIA_TYPES = {".webm": "video/webm", ".mp4": "video/mp4"}


class RecordingSwitch(msgspec.Struct, forbid_unknown_fields=True):
    """The body of ``PUT /api/streams/{name}/recording``."""

    enabled: bool


_switch_decoder = msgspec.json.Decoder(RecordingSwitch)


def _recordings(request: web.Request) -> Recordings:
    """The server's recordings, after checking the path's stream name; 409 when it records nothing."""
    name = request.match_info["name"]
    try:
        check_stream_name(name)
    except ProtocolError as exc:
        raise web.HTTPBadRequest(text=f"{exc.reason}\n") from None
    recordings = request.app.get(RECORDINGS)
    if recordings is None:
        raise web.HTTPConflict(text="this server records nothing: start it with --record-dir DIR\n")
    return recordings


def _require_control_of(request: web.Request, stream: str) -> None:
    grant = request.get(GRANT)
    if grant is not None and not grant.allows(stream, "admin"):
        raise web.HTTPForbidden(text=f"token is for stream {grant.stream!r}, not {stream!r}\n")


@routes.put("/api/streams/{name}/recording")
@requires(Access.CONTROL)
async def switch_recording(request: web.Request) -> web.Response:
    """Start or stop recording a stream (live or not yet); answers its recording state.
    A name the server does not know is refused: made-up names would each be remembered."""
    recordings = _recordings(request)
    name = request.match_info["name"]
    _require_control_of(request, name)
    if not recordings.known(name):
        raise web.HTTPNotFound(text=f"no stream {name!r}: it must be live, reserved, named by --record "
                                    "or recorded before\n")
    try:
        body = _switch_decoder.decode(await request.read())
    except msgspec.DecodeError as exc:
        raise web.HTTPBadRequest(text=f'expected JSON {{"enabled": true|false}}: {exc}\n') from None
    recordings.set_enabled(name, body.enabled)
    return web.json_response(recordings.state(name))


@routes.get("/api/streams/{name}/recordings")
@requires(Access.VIEW)
async def list_recordings(request: web.Request) -> web.Response:
    """A stream's segments, oldest first: ``file``, ``start``, ``duration``, ``size``,
    ``recording`` (being written now) and ``url``."""
    recordings = _recordings(request)
    name = request.match_info["name"]
    return web.json_response(await recordings.segments(name, f"/recordings/{name}"))


@routes.get("/recordings/{name}/{file}")
@requires(Access.VIEW)
async def get_recording(request: web.Request) -> web.StreamResponse:
    recordings = _recordings(request)
    try:
        path = recordings.segment_path(request.match_info["name"], request.match_info["file"])
    except FileNotFoundError:
        raise web.HTTPNotFound(text="no such recording\n") from None
    # A segment still being written grows: no caching of a partial copy.
    headers = {"Content-Type": _MEDIA_TYPES[path.suffix], "Cache-Control": "no-cache"}
    return web.FileResponse(path, headers=headers)


@routes.delete("/recordings/{name}/{file}")
@requires(Access.CONTROL)
async def delete_recording(request: web.Request) -> web.Response:
    recordings = _recordings(request)
    name, file = request.match_info["name"], request.match_info["file"]
    _require_control_of(request, name)
    try:
        await recordings.delete(name, file)
    except FileNotFoundError:
        raise web.HTTPNotFound(text="no such recording\n") from None
    except SegmentBusy as exc:
        raise web.HTTPConflict(text=f"{exc}\n") from None
    return web.json_response({"file": file, "deleted": True})
