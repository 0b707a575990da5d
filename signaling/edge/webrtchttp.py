"""What WHIP (RFC 9725) and WHEP, the WebRTC-HTTP protocols, share: which pages may use them
(origins, CORS), the checks on a request's body and its reading, the OPTIONS answer, and ICE
over HTTP: trickle-ice-sdpfrag bodies (RFC 8840), ICE servers as ``Link`` headers, and the
ETag that names an ICE session."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from aiohttp import web

from peercam.shared.protocol import IceCandidate, IceServer

from .appkeys import CONFIG
from .browserpolicy import origin_allowed
from .gate import Access, requires

__all__ = ["SDP", "SDPFRAG", "SdpFrag", "SdpFragError", "add_cors", "add_options", "check_origin",
           "check_type", "ice_credentials", "ice_server_links", "if_match", "new_etag", "parse_sdpfrag",
           "read_text", "read_trickle"]

#: The media type of an offer (POST) and of its answer.
SDP = "application/sdp"
#: The media type of a PATCH that trickles candidates or restarts ICE.
SDPFRAG = "application/trickle-ice-sdpfrag"

_METHODS = "POST, PATCH, DELETE, OPTIONS"
_EXPOSED = "Location, ETag, Link, Retry-After, Accept-Post, Accept-Patch"


def _origin_allowed(request: web.Request) -> bool:
    """Publishers and players on other origins are browser pages like any other: the origins
    that may open ``/ws`` (the server's own, ``--allowed-origin``) may use WHIP and WHEP. Else
    any page its visitor opens could publish on, or watch and read the pictures of, a camera
    on the visitor's network. Tools (ffmpeg, GStreamer) send no Origin."""
    return origin_allowed(request.app[CONFIG], request.headers.get("Origin"), request.headers.get("Host"))


def check_origin(request: web.Request) -> None:
    """403 for a page from an origin that may not use WHIP or WHEP."""
    if not _origin_allowed(request):
        origin = request.headers.get("Origin", "")
        raise web.HTTPForbidden(text=f"origin {origin[:100]!r} is not allowed here "
                                     "(the server's own origin is; see --allowed-origin)\n")


def add_cors(app: web.Application, prefix: str) -> None:
    """Every answer under ``prefix`` (``/whip``, ``/whep``), errors too (the gate's 401 and 403
    among them), is readable by a page from an allowed origin, with the headers a client needs."""

    async def on_response_prepare(request: web.Request, response: web.StreamResponse) -> None:
        origin = request.headers.get("Origin")
        if origin is None or not request.path.startswith(prefix + "/") or not _origin_allowed(request):
            return
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Expose-Headers"] = _EXPOSED
        response.headers.add("Vary", "Origin")

    app.on_response_prepare.append(on_response_prepare)


def add_options(routes: web.RouteTableDef, prefix: str) -> None:
    """OPTIONS, a CORS preflight or not, on the endpoint ``{prefix}/{name}`` (``Accept-Post``)
    and on its sessions ``{prefix}/{name}/{session}`` (``Accept-Patch``). Call it between the
    endpoint's routes and the sessions' so that each path stays one resource."""

    @routes.options(prefix + "/{name}")
    @requires(Access.OPEN)  # a CORS preflight carries no token
    async def endpoint_options(request: web.Request) -> web.Response:
        return _options(request, {"Accept-Post": SDP})

    @routes.options(prefix + "/{name}/{session}")
    @requires(Access.OPEN)
    async def session_options(request: web.Request) -> web.Response:
        return _options(request, {"Accept-Patch": SDPFRAG})


def _options(request: web.Request, accept: dict[str, str]) -> web.Response:
    check_origin(request)
    return web.Response(status=204, headers={
        "Allow": _METHODS,
        "Access-Control-Allow-Methods": _METHODS,
        "Access-Control-Allow-Headers": "Content-Type, Authorization, If-Match",
        "Access-Control-Max-Age": "600",
        **accept,
    })


def check_type(request: web.Request, expected: str) -> None:
    """415 for a body of another media type than ``expected``."""
    if request.content_type != expected:
        raise web.HTTPUnsupportedMediaType(text=f"Content-Type must be {expected}, not "
                                                f"{request.content_type[:80]!r}\n")


async def read_text(request: web.Request, limit: int) -> str:
    """The body as text, at most ``limit`` bytes (413 past it; 400 if it is not UTF-8)."""
    too_large = web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=request.content_length or limit + 1,
                                              text=f"the body is larger than {limit} bytes\n")
    if request.content_length is not None and request.content_length > limit:
        raise too_large
    # Read as it comes, not trusting Content-Length (a chunked body has none).
    body = bytearray()
    async for chunk in request.content.iter_any():
        body += chunk
        if len(body) > limit:
            raise too_large
    try:
        return body.decode()
    except UnicodeDecodeError:
        raise web.HTTPBadRequest(text="the body is not UTF-8 text\n") from None


class SdpFragError(ValueError):
    """A body that is not an SDP fragment (RFC 8840); the message says why."""


@dataclass
class SdpFrag:
    """A PATCH body: the sender's ICE credentials (a new pair asks for an ICE restart), its
    candidates with their media section, and whether it has no more."""

    ufrag: str | None = None
    pwd: str | None = None
    candidates: list[IceCandidate] = field(default_factory=list)
    end_of_candidates: bool = False
    #: Candidates left out: TCP ones and lines that are not candidates peercam's peers use.
    skipped: int = 0


def ice_credentials(sdp: str) -> tuple[str | None, str | None]:
    """The first ``a=ice-ufrag`` and ``a=ice-pwd`` of an SDP (BUNDLE: one pair for all)."""
    ufrag = pwd = None
    for line in sdp.splitlines():
        if ufrag is None and line.startswith("a=ice-ufrag:"):
            ufrag = line[12:].strip()
        elif pwd is None and line.startswith("a=ice-pwd:"):
            pwd = line[10:].strip()
    return ufrag, pwd


def _usable(candidate: str) -> bool:
    """``candidate:F C udp P ADDRESS PORT typ T ...`` with numbers where they belong. TCP
    candidates are not used (aioice pairs UDP only), nor anything malformed."""
    fields = candidate.split()
    return (len(fields) >= 8 and fields[1].isdigit() and fields[2].lower() == "udp" and fields[3].isdigit()
            and fields[5].isdigit() and int(fields[5]) <= 65535 and fields[6] == "typ")


def parse_sdpfrag(text: str, mids: list[str]) -> SdpFrag:
    """Read a trickle-ice-sdpfrag body. ``mids``: the offer's media sections in order, for
    each candidate's ``sdpMLineIndex``. A candidate before any ``a=mid`` belongs to the first
    section (BUNDLE). Raises SdpFragError for what is not SDP lines at all."""
    frag = SdpFrag()
    mid: str | None = mids[0] if mids else None
    seen_line = False
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if len(line) < 2 or line[1] != "=" or not line[0].isalpha():
            raise SdpFragError(f"not an SDP line: {line[:60]!r}")
        seen_line = True
        if line.startswith("a=ice-ufrag:"):
            frag.ufrag = line[12:].strip()
        elif line.startswith("a=ice-pwd:"):
            frag.pwd = line[10:].strip()
        elif line.startswith("a=mid:"):
            mid = line[6:].strip()
        elif line.startswith("a=candidate:"):
            candidate = line[2:]
            if not _usable(candidate):
                frag.skipped += 1
                continue
            index = mids.index(mid) if mid in mids else None
            frag.candidates.append(IceCandidate(candidate=candidate, sdp_mid=mid, sdp_mline_index=index))
        elif line == "a=end-of-candidates":
            frag.end_of_candidates = True
    if not seen_line:
        raise SdpFragError("an empty fragment: expected a=ice-ufrag, a=ice-pwd and a=candidate lines")
    return frag


def _quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def ice_server_links(servers: list[IceServer]) -> list[str]:
    """One ``Link`` header value per STUN or TURN URL (RFC 9725 section 4.6): the ICE
    servers a WHEP player (or WHIP publisher) should use, with their credentials."""
    links = []
    for server in servers:
        for url in server.urls:
            link = f'<{url}>; rel="ice-server"'
            if server.username is not None and server.credential is not None:
                link += (f"; username={_quoted(server.username)}; credential={_quoted(server.credential)}"
                         '; credential-type="password"')
            links.append(link)
    return links


def new_etag() -> str:
    """A fresh, strong entity tag for an ICE session (it would change on an ICE restart)."""
    return f'"{secrets.token_urlsafe(12)}"'


def if_match(header: str, etag: str) -> bool:
    """Does an ``If-Match`` value match the session's ``etag``? ``*`` matches any. A tag
    sent without its quotes counts too: clients differ, and the tag is unguessable anyway."""
    if header.strip() == "*":
        return True
    bare = etag.strip('"')
    return any(tag.strip() in (etag, bare) for tag in header.split(","))


async def read_trickle(request: web.Request, mids: list[str], ice: tuple[str | None, str | None], etag: str,
                       ice_by: str) -> SdpFrag:
    """A session's PATCH body, read and checked like any body, as a fragment that trickles
    candidates. ``mids``, ``ice`` (ufrag, pwd) and ``etag``: the session's. An ICE restart
    (new credentials) is refused: 428 without If-Match, 412 with another session's tag, else
    422 naming ``ice_by``, whose aiortc runs the session's ICE ("its aiortc", "the camera's
    aiortc"). Returns a trickle's fragment."""
    check_type(request, SDPFRAG)
    body = await read_text(request, request.app[CONFIG].limits.max_sdp_bytes)
    try:
        frag = parse_sdpfrag(body, mids)
    except SdpFragError as exc:
        raise web.HTTPBadRequest(text=f"not a trickle-ice-sdpfrag: {exc}\n") from None
    match = request.headers.get("If-Match")
    if frag.ufrag is not None and (frag.ufrag, frag.pwd) != ice:
        if match is None:
            raise web.HTTPPreconditionRequired(text='an ICE restart needs If-Match: "*"\n')
        if not if_match(match, etag):
            raise web.HTTPPreconditionFailed(text="If-Match does not match this session's ETag\n")
        # aiortc starts ICE once per peer connection and never again (RTCIceTransport.start):
        # new credentials cannot be applied. The session goes on with the old ones.
        raise web.HTTPUnprocessableEntity(text=f"this server cannot restart ICE ({ice_by} cannot): "
                                               "DELETE this session and POST a new offer\n")
    # A trickle PATCH without If-Match is taken (simple-whip-client and whip-whep's WHIPClient
    # send one; Eyevinn's client and whip-whep's WHEPClient, which never keeps the POST's ETag,
    # send none); one that names another ICE session's tag is refused.
    if match is not None and not if_match(match, etag):
        raise web.HTTPPreconditionFailed(text="If-Match does not match this session's ETag\n")
    return frag
