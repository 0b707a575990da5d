"""ICE over HTTP, as WHEP (and WHIP, RFC 9725) carry it: trickle-ice-sdpfrag bodies
(RFC 8840), ICE servers as ``Link`` headers, and the ETag that names an ICE session."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from peercam.shared.protocol import IceCandidate, IceServer

__all__ = ["SDPFRAG", "SdpFrag", "SdpFragError", "ice_credentials", "ice_server_links", "if_match",
           "new_etag", "parse_sdpfrag"]

#: The media type of a PATCH that trickles candidates or restarts ICE.
SDPFRAG = "application/trickle-ice-sdpfrag"


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
