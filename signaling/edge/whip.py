"""WHIP (WebRTC-HTTP Ingestion Protocol, RFC 9725): ffmpeg, GStreamer, OBS or a browser
page publishes a stream over plain HTTP.

``POST /whip/{name}`` takes the publisher's SDP offer and hands it to the server's Ingest,
which answers it with a receiving peer (all its candidates in the answer: the server does
not trickle): ``201 Created`` with the session's URL (``Location``), its ``ETag``, and the
ICE servers as ``Link`` headers. ``PATCH`` on the session URL trickles the publisher's
candidates (204); ``DELETE`` ends the session, and the stream with it.

The Ingest (peers/ingest/) runs in the server's process: the top package hands its maker
to ``create_app`` (this side never imports the peers), and it is made once the server
listens, with the server's own URL. Its camera publishes on the name over /ws like any
camera, so the stream is an ordinary one: listings, every viewing path, chat, recording,
the cluster.

One publisher per name (a camera or a WHIP session: 409), at most ``--max-whip-publishers``
at once (503). A session ends on DELETE, when the publisher goes without one (ICE consent,
no media), when it never connects, and when the server shuts down; its name is free again.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from aiohttp import web
from multidict import CIMultiDict
from peercam.signaling.settings.turn import turn_servers

from peercam.shared.protocol import IceCandidate, IceServer, ProtocolError, check_stream_name

from .appkeys import CONFIG, REGISTRY
from .gate import GRANT, Access, presented_token, requires
from .webrtchttp import (
    SDP,
    add_cors,
    add_options,
    check_origin,
    check_type,
    ice_credentials,
    ice_server_links,
    new_etag,
    read_text,
    read_trickle,
)

__all__ = ["PUBLISHERS", "Ingest", "IngestFactory", "IngestSession", "WhipPublishers", "install", "routes"]

log = logging.getLogger(__name__)

routes = web.RouteTableDef()

#: How soon a publisher refused for want of room (503) should try again.
RETRY_AFTER_SECONDS = 10



class IngestSession(Protocol):
    """One publisher's receiving peer, as the Ingest made it."""

    #: The SDP answer: recvonly, bundled, with every candidate.
    answer: str

    async def add_candidates(self, candidates: list[IceCandidate], end: bool) -> None:
        """Candidates the publisher trickled (``end``: it has no more)."""

    def close(self) -> None:
        """End the session soon (``wait_closed`` returns then); never blocks."""

    async def wait_closed(self) -> str:
        """Wait for the session's end; returns why it ended."""


class Ingest(Protocol):
    """Receives WHIP publishers (peers/ingest/ingest.py's WhipIngest)."""

    async def accept(self, stream: str, offer: str, token: str,
                     ice_servers: Sequence[IceServer]) -> IngestSession:
        """A receiving peer for ``offer`` that publishes on ``stream`` (with ``token``, as a
        camera would); raises ValueError, saying why, for an offer it cannot take."""

    async def close(self) -> None:
        """End every session (the server is shutting down)."""


#: Makes the server's Ingest once it listens, given the server's own URL (where the
#: publishers' cameras connect).
IngestFactory = Callable[[str], Ingest]


@dataclass
class _Publisher:
    stream: str
    #: The last part of the session's URL: 128 random bits, the session's key.
    resource: str
    etag: str
    ufrag: str | None
    pwd: str | None
    mids: list[str]
    session: IngestSession | None = None  # None while the offer is being answered
    watcher: asyncio.Task | None = None


class WhipPublishers:
    """This instance's WHIP sessions, by name and by URL, and the Ingest that receives them."""

    def __init__(self, make_ingest: IngestFactory | None) -> None:
        self._make_ingest = make_ingest
        #: None on a server started without one (``create_app()`` alone): POST gets 501.
        self.ingest: Ingest | None = None
        self._by_name: dict[str, _Publisher] = {}
        self._by_resource: dict[str, _Publisher] = {}

    def serve_on(self, url: str) -> None:
        """The server listens at ``url``: make the Ingest."""
        if self._make_ingest is not None and self.ingest is None:
            self.ingest = self._make_ingest(url)

    def __len__(self) -> int:
        return len(self._by_name)

    def holds(self, name: str) -> bool:
        return name in self._by_name

    def find(self, name: str, resource: str) -> _Publisher | None:
        publisher = self._by_resource.get(resource)
        return publisher if publisher is not None and publisher.stream == name else None

    def add(self, publisher: _Publisher) -> None:
        self._by_name[publisher.stream] = publisher
        self._by_resource[publisher.resource] = publisher

    def forget(self, publisher: _Publisher) -> None:
        if self._by_resource.get(publisher.resource) is publisher:
            del self._by_resource[publisher.resource]
            del self._by_name[publisher.stream]

    def watch(self, publisher: _Publisher) -> None:
        """Forget the session once it ends, whatever ends it."""
        publisher.watcher = asyncio.create_task(self._until_closed(publisher),
                                                name=f"whip-{publisher.stream}")

    async def _until_closed(self, publisher: _Publisher) -> None:
        assert publisher.session is not None
        try:
            why = await publisher.session.wait_closed()
        finally:
            self.forget(publisher)
        log.info("WHIP publisher of %r ended: %s", publisher.stream, why)

    async def close(self) -> None:
        """End every session (the server is shutting down)."""
        if self.ingest is not None:
            await self.ingest.close()
        watchers = [p.watcher for p in self._by_resource.values() if p.watcher is not None]
        await asyncio.gather(*watchers, return_exceptions=True)


PUBLISHERS = web.AppKey("whip_publishers", WhipPublishers)


def install(app: web.Application, make_ingest: IngestFactory | None) -> None:
    """The WHIP routes, their sessions, and CORS on their answers. Call before the app's
    other on_shutdown steps are added: the sessions end while /ws is still open, so their
    cameras leave as any camera does (their viewers are told)."""
    app[PUBLISHERS] = WhipPublishers(make_ingest)
    app.router.add_routes(routes)
    add_cors(app, "/whip")
    app.on_shutdown.append(_close_sessions)


async def _close_sessions(app: web.Application) -> None:
    await app[PUBLISHERS].close()


def _own_ice_servers(request: web.Request, resource: str) -> tuple[list[IceServer], list[IceServer]]:
    """The ICE servers for the server's receiving peer, and those the publisher is told of:
    TURN credentials only with a valid publish token (the gate's grant), as the issue's
    rule for ``Link`` headers has it; the configured servers (the welcome's) for anyone."""
    config = request.app[CONFIG]
    turn = turn_servers(config.turn, resource) if config.turn is not None else []
    servers = list(config.ice_servers) + turn
    return servers, servers if request.get(GRANT) is not None else list(config.ice_servers)


@routes.post("/whip/{name}")
@requires(Access.PUBLISH)
async def offer(request: web.Request) -> web.Response:
    """The publisher's offer; 201 with the receiving peer's answer."""
    check_origin(request)
    config, publishers = request.app[CONFIG], request.app[PUBLISHERS]
    name = request.match_info["name"]
    try:
        check_stream_name(name)
    except ProtocolError as exc:
        raise web.HTTPBadRequest(text=f"{exc.reason}\n") from None
    check_type(request, SDP)
    ingest = publishers.ingest
    if ingest is None:
        raise web.HTTPNotImplemented(text="this server takes no WHIP publishers\n")
    sdp = await read_text(request, config.limits.max_sdp_bytes)
    # From here to publishers.add nothing waits: two POSTs cannot both take the name.
    stream = request.app[REGISTRY].get(name)
    if publishers.holds(name) or (stream is not None and stream.camera is not None):
        raise web.HTTPConflict(text=f"stream {name!r} already has a camera\n")
    if len(publishers) >= config.limits.whip_publishers:
        raise web.HTTPServiceUnavailable(
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            text=f"this server takes at most {config.limits.whip_publishers} WHIP publishers at once\n")
    resource = secrets.token_urlsafe(16)
    ufrag, pwd = ice_credentials(sdp)
    mids = [line[6:].strip() for line in sdp.splitlines() if line.startswith("a=mid:")]
    publisher = _Publisher(name, resource, new_etag(), ufrag, pwd, mids)
    publishers.add(publisher)  # the name is held while the offer is answered
    own_servers, their_servers = _own_ice_servers(request, resource)
    try:
        publisher.session = await ingest.accept(name, sdp, presented_token(request), own_servers)
    except ValueError as exc:
        raise web.HTTPBadRequest(text=f"{exc}\n") from None
    finally:
        if publisher.session is None:
            publishers.forget(publisher)
    publishers.watch(publisher)
    log.info("WHIP publisher for %r from %s", name, request.remote)
    headers = CIMultiDict({"Location": f"/whip/{name}/{resource}", "ETag": publisher.etag})
    for link in ice_server_links(their_servers):
        headers.add("Link", link)
    answer = publisher.session.answer.encode()
    return web.Response(status=201, body=answer, content_type=SDP, headers=headers)


add_options(routes, "/whip")


def _publisher(request: web.Request) -> _Publisher:
    """The session of the request's URL, or 404."""
    publisher = request.app[PUBLISHERS].find(request.match_info["name"], request.match_info["session"])
    if publisher is None or publisher.session is None:
        raise web.HTTPNotFound(text="no such WHIP session (it ended, or never was)\n")
    return publisher


# The session URL is the session's key (128 random bits) that only the publisher the gate let
# in was told, as RFC 9725 has it: PATCH and DELETE need no token besides.
@routes.patch("/whip/{name}/{session}")
@requires(Access.OPEN)
async def patch(request: web.Request) -> web.Response:
    """Trickled candidates, to the receiving peer (204); an ICE restart, refused (422)."""
    check_origin(request)
    publisher = _publisher(request)
    ice = (publisher.ufrag, publisher.pwd)
    frag = await read_trickle(request, publisher.mids, ice, publisher.etag, "its aiortc")
    assert publisher.session is not None
    await publisher.session.add_candidates(frag.candidates, frag.end_of_candidates)
    return web.Response(status=204)


@routes.delete("/whip/{name}/{session}")
@requires(Access.OPEN)
async def delete(request: web.Request) -> web.Response:
    """End the session: the answer comes first, the peer connection closes after. (ffmpeg 9
    logs "Failed to read response from DELETE" whatever the answer: it opens the request
    for writing and never writes. The session ends all the same.)"""
    check_origin(request)
    publisher = _publisher(request)
    assert publisher.session is not None
    request.app[PUBLISHERS].forget(publisher)  # its URL is gone at once; its camera leaves soon after
    publisher.session.close()
    return web.Response(status=200)
