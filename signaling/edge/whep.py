"""WHEP (WebRTC-HTTP Egress Protocol): any WHEP player watches a stream over plain HTTP.

``POST /whep/{name}`` takes the player's offer and hands it to the stream's camera as a P2P
viewer's offer: the server runs no media peer, the camera answers (with all its candidates)
as it answers every viewer. The answer comes back as ``201 Created`` with the session's URL
(``Location``), its ``ETag`` and the ICE servers as ``Link`` headers. ``PATCH`` on the
session URL trickles the player's candidates on to the camera; ``DELETE`` ends the session.

A session is a viewer of the stream registry (WhepViewer): the camera, the limits, the
listings, the metrics and the other instances (``--redis``) see one more P2P viewer, in
mode "whep". It ends when the player deletes it, when the camera hangs up on it or leaves,
when it does not connect in time, and when the camera's reports stop showing it connected
(a player that went away without a word).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import msgspec
from aiohttp import web
from multidict import CIMultiDict
from peercam.signaling.registry.streams import StreamRegistry
from peercam.signaling.settings.limits import ConnectionsByAddress, TooManyConnections

from peercam.shared.protocol import (
    CameraStats,
    Candidate,
    ErrorCode,
    Offer,
    ProtocolError,
    Quality,
    check_stream_name,
)
from peercam.shared.ratelimit import TokenBucket

from .appkeys import CONFIG, CONNECTIONS_BY_ADDRESS, RECORDINGS, REGISTRY
from .gate import Access, requires
from .webrtchttp import (
    SDP,
    add_cors,
    add_options,
    check_origin,
    check_type,
    ice_server_links,
    read_text,
    read_trickle,
)
from .websocket import ice_servers
from .whepviewer import SessionEnded, WhepViewer

__all__ = ["ANSWER_SECONDS", "CONNECT_SECONDS", "RETRY_AFTER_SECONDS", "WhepSessions", "install", "routes"]

log = logging.getLogger(__name__)

routes = web.RouteTableDef()

#: Seconds the camera has to answer an offer before the POST gets 504 (it answers in
#: milliseconds on a LAN; gathering from STUN and TURN servers takes longer).
ANSWER_SECONDS = 10.0
#: Seconds a session has, after its POST, to show up connected in the camera's reports. The
#: camera hangs up first (its own connect timeout, 15 s); this catches a camera that never says.
CONNECT_SECONDS = 20.0
#: Camera reports in a row (one every 2 s) that show a connected session's peer connection
#: gone before the session ends: a player that closed without a DELETE.
MISSED_REPORTS = 3
#: How soon a player refused with 409 (the stream is not live) should try again.
RETRY_AFTER_SECONDS = 5
_CHECK_SECONDS = 1.0



@dataclass
class _Session:
    viewer: WhepViewer
    address: str
    #: Candidates a PATCH may trickle: a WebSocket viewer's message rate.
    candidates: TokenBucket
    watchdog: asyncio.Task | None = None


class WhepSessions:
    """This instance's open WHEP sessions by their URL, each counted against its player's
    address (``--max-connections-per-address``) and watched until it ends."""

    def __init__(self, registry: StreamRegistry, by_address: ConnectionsByAddress) -> None:
        self._registry = registry
        self._by_address = by_address
        self._sessions: dict[str, _Session] = {}

    def open(self, viewer: WhepViewer, address: str, bucket: TokenBucket) -> None:
        """``viewer`` watches now (the registry took it), from ``address`` (already counted)."""
        session = _Session(viewer, address, bucket)
        self._sessions[viewer.resource] = session
        session.watchdog = asyncio.create_task(self._watch(viewer), name=f"whep-{viewer.id}")
        log.info("%r opened (quality %s)", viewer, viewer.quality)

    def find(self, name: str, resource: str) -> _Session | None:
        session = self._sessions.get(resource)
        return session if session is not None and session.viewer.stream == name else None

    def ended(self, viewer: WhepViewer, reason: str) -> None:
        """WhepViewer.end's callback: forget the session; the camera is told (viewer-left)."""
        session = self._sessions.pop(viewer.resource, None)
        if session is None:
            return
        if session.watchdog is not None and session.watchdog is not asyncio.current_task():
            session.watchdog.cancel()
        self._by_address.release(session.address)
        self._registry.remove(viewer, reason)
        log.info("%r ended: %s", viewer, reason)

    async def _watch(self, viewer: WhepViewer) -> None:
        """End a session that never connects, or whose connection the camera's reports stop
        showing (every 2 s, with the round trip and loss of each P2P viewer it has)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + CONNECT_SECONDS
        seen_at: float | None = None
        missed = 0
        while viewer.ended is None:
            await asyncio.sleep(_CHECK_SECONDS)
            stream = self._registry.get(viewer.stream or "")
            camera = stream.camera if stream is not None else None
            report = camera.stats if camera is not None else None
            if isinstance(report, CameraStats) and camera.stats_at != seen_at:
                seen_at = camera.stats_at
                mine = next((v for v in report.viewers if v.id == viewer.id), None)
                stats = viewer.camera_saw(mine, seen_at, stream.info)
                if stats is not None:
                    missed = 0
                    self._registry.report_stats(viewer, stats)
                elif viewer.connected:
                    missed += 1
                    if missed >= MISSED_REPORTS:
                        viewer.end("its peer connection is gone (the camera's reports no longer show it)")
            if not viewer.connected and loop.time() > deadline:
                viewer.end(f"not connected within {CONNECT_SECONDS:g} s")

    async def close(self) -> None:
        """End every session (the server is shutting down)."""
        sessions = list(self._sessions.values())
        for session in sessions:
            session.viewer.end("the server is shutting down")  # a POST waiting for its answer: 422
            self.ended(session.viewer, "the server is shutting down")  # now, while /ws is still open
        watchdogs = [s.watchdog for s in sessions if s.watchdog is not None]
        await asyncio.gather(*watchdogs, return_exceptions=True)


SESSIONS = web.AppKey("whep_sessions", WhepSessions)


def install(app: web.Application) -> None:
    """The WHEP routes, their sessions, and CORS on their answers."""
    app[SESSIONS] = WhepSessions(app[REGISTRY], app[CONNECTIONS_BY_ADDRESS])
    app.router.add_routes(routes)
    add_cors(app, "/whep")
    app.on_shutdown.append(_close_sessions)


async def _close_sessions(app: web.Application) -> None:
    await app[SESSIONS].close()


def _media_sections(sdp: str) -> list[str]:
    """The offer's media sections' mids, in order, once it is known to be a WHEP offer the
    camera can answer: SDP with ICE credentials and a video section (400 or 422 otherwise)."""
    lines = [line.strip() for line in sdp.strip().splitlines()]
    kinds = [line[2:].split(" ", 1)[0] for line in lines if line.startswith("m=")]
    if not lines or lines[0] != "v=0" or not ({"video", "audio"} & set(kinds)):
        raise web.HTTPBadRequest(text="not an SDP offer with a video or audio section\n")
    if not any(line.startswith("a=ice-ufrag:") for line in lines) or not any(
            line.startswith("a=ice-pwd:") for line in lines):
        raise web.HTTPBadRequest(text="the offer has no ICE credentials (a=ice-ufrag, a=ice-pwd)\n")
    if "video" not in kinds:
        raise web.HTTPUnprocessableEntity(text="peercam streams are video: the offer needs a video "
                                               "section (recvonly), and may add one for sound\n")
    return [line[6:] for line in lines if line.startswith("a=mid:")]


def _quality(request: web.Request) -> str:
    try:
        return msgspec.convert(request.query.get("quality", "auto"), Quality)
    except msgspec.ValidationError:
        raise web.HTTPBadRequest(text="quality: a layer's name (e.g. 480p) or auto\n") from None


def _not_live(request: web.Request, name: str) -> web.HTTPException:
    """409 with Retry-After for a name the server knows but whose camera is not there, 404 for
    one it does not. Known: the registry holds it (reserved by an administrator, or watched
    by viewers waiting for the camera, on any instance), or, on a server that records, it
    is named by --record or was recorded. A name known nowhere may be a typo: a player should
    not poll it. (A camera that reconnects keeps its name known while anyone waits for it;
    reserve the name to keep it known while nobody does.)"""
    recordings = request.app.get(RECORDINGS)
    try:
        check_stream_name(name)
        known = (request.app[REGISTRY].get(name) is not None
                 or (recordings is not None and recordings.known(name)))
    except ProtocolError:
        known = False
    if not known:
        return web.HTTPNotFound(text=f"no stream named {name[:80]!r}\n")
    return web.HTTPConflict(headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
                            text=f"stream {name!r} is not live now: try again later\n")


@routes.post("/whep/{name}")
@requires(Access.VIEW)
async def offer(request: web.Request) -> web.Response:
    """The player's offer to the camera; 201 with the camera's answer."""
    check_origin(request)
    config, registry, sessions = request.app[CONFIG], request.app[REGISTRY], request.app[SESSIONS]
    name = request.match_info["name"]
    check_type(request, SDP)
    sdp = await read_text(request, config.limits.max_sdp_bytes)
    quality = _quality(request)
    mids = _media_sections(sdp)
    stream = registry.get(name)
    if stream is None or not stream.live:
        raise _not_live(request, name)
    address = request.remote or "?"
    by_address = request.app[CONNECTIONS_BY_ADDRESS]
    try:
        by_address.acquire(address)
    except TooManyConnections as exc:
        raise web.HTTPTooManyRequests(text=f"{exc}\n") from None
    viewer = WhepViewer(sdp, mids, quality, address, on_end=sessions.ended)
    servers = ice_servers(config, viewer.id)  # what `watching` gives a WebSocket viewer the gate let in
    try:
        registry.watch(viewer, name, ice_servers=servers, quality=quality)
    except ProtocolError as exc:
        by_address.release(address)
        if exc.code == ErrorCode.STREAM_FULL:
            raise web.HTTPServiceUnavailable(text=f"{exc.reason}\n") from None
        raise web.HTTPBadRequest(text=f"{exc.reason}\n") from None
    limits = config.limits
    sessions.open(viewer, address, TokenBucket(limits.messages_per_second, limits.message_burst))
    answered = False
    try:
        message = Offer(sdp=sdp)
        try:
            camera = registry.route_target(viewer, message)
        except ProtocolError:  # the camera left in between
            raise _not_live(request, name) from None
        message.sender = viewer.id
        camera.send(message)
        try:
            answer = await asyncio.wait_for(asyncio.shield(viewer.answer), ANSWER_SECONDS)
        except asyncio.TimeoutError:
            viewer.end(f"the camera did not answer within {ANSWER_SECONDS:g} s")
            raise web.HTTPGatewayTimeout(
                text=f"the camera did not answer the offer within {ANSWER_SECONDS:g} s\n") from None
        except SessionEnded as exc:
            if exc.stream_ended:
                raise _not_live(request, name) from None
            raise web.HTTPUnprocessableEntity(text=f"{exc}\n") from None
        answered = True
    finally:
        if not answered:
            viewer.end("no answer for the player")
    headers = CIMultiDict({"Location": f"/whep/{name}/{viewer.resource}", "ETag": viewer.etag})
    for link in ice_server_links(servers):
        headers.add("Link", link)
    return web.Response(status=201, body=answer.encode(), content_type=SDP, headers=headers)


@routes.head("/whep/{name}")
@requires(Access.VIEW)
async def endpoint(request: web.Request) -> web.Response:
    """Whether a POST would find the stream live (200), not yet (409) or unknown (404)."""
    name = request.match_info["name"]
    stream = request.app[REGISTRY].get(name)
    if stream is None or not stream.live:
        raise _not_live(request, name)
    return web.Response(headers={"Content-Type": SDP, "Accept-Post": SDP})


add_options(routes, "/whep")


def _session(request: web.Request) -> _Session:
    """The session of the request's URL, or 404."""
    session = request.app[SESSIONS].find(request.match_info["name"], request.match_info["session"])
    if session is None or session.viewer.ended is not None:
        raise web.HTTPNotFound(text="no such WHEP session (it ended, or never was)\n")
    return session


# The session URL is the session's key (128 random bits), as RFC 9725 has it: PATCH and DELETE
# need no token besides, so a session outlives the view token it started with.
@routes.patch("/whep/{name}/{session}")
@requires(Access.OPEN)
async def patch(request: web.Request) -> web.Response:
    """Trickled candidates, on to the camera (204); an ICE restart, refused (422)."""
    check_origin(request)
    session = _session(request)
    viewer = session.viewer
    ice = (viewer.ice_ufrag, viewer.ice_pwd)
    frag = await read_trickle(request, viewer.mids, ice, viewer.etag, "the camera's aiortc")
    registry = request.app[REGISTRY]
    for candidate in frag.candidates:
        if not session.candidates.take():
            raise web.HTTPTooManyRequests(text="slow down: too many candidates too fast\n")
        message = Candidate(candidate=candidate)
        try:
            camera = registry.route_target(viewer, message)
        except ProtocolError:  # the camera left: the session ends with it
            raise web.HTTPNotFound(text="no such WHEP session (its camera left)\n") from None
        message.sender = viewer.id
        camera.send(message)
    # An end of candidates is not passed on: the camera ignores it (see its ViewerConnection).
    return web.Response(status=204)


@routes.delete("/whep/{name}/{session}")
@requires(Access.OPEN)
async def delete(request: web.Request) -> web.Response:
    """End the session: the camera is told its viewer left."""
    check_origin(request)
    _session(request).viewer.end("the player ended the session")
    return web.Response(status=200)
