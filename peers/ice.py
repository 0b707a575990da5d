"""ICE settings for the Python peers, applied to aiortc and aioice: which servers, which local
addresses (as people write them, they are checked in peers/icesettings.py).

Nothing here contacts a STUN or TURN server unless one was configured: aiortc's
built-in default (a public STUN server) is never used.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, get_args

import aioice.ice
import aioice.stun
import aioice.turn
from aiortc import RTCConfiguration, RTCIceCandidate, RTCIceServer
from aiortc.rtcconfiguration import RTCIceTransportPolicy
from aiortc.rtcicetransport import parse_stun_turn_uri
from aiortc.sdp import candidate_from_sdp

from peercam.shared.errors import UsageError
from peercam.shared.protocol import IceCandidate, IceServer, Welcome

from .icesettings import aioice_host_lookup, resolve_host_addresses

log = logging.getLogger(__name__)

#: Which ICE candidates a peer uses: "all", or "turn" (TURN relay candidates only).
IceTransport = Literal["all", "turn"]

#: aioice's own lookup, which restrict_host_addresses replaces (and puts back).
_aioice_host_addresses = aioice_host_lookup()


def restrict_host_addresses(hosts: Sequence[str]) -> None:
    """Offer only these local addresses (or interfaces) as ICE host candidates.

    aioice gathers from every interface but loopback and has no option for it, so
    this replaces its address lookup for the whole process. An empty list restores
    aioice's own behaviour.
    """
    if not hosts:
        aioice.ice.get_host_addresses = _aioice_host_addresses
        return
    hosts = list(hosts)
    resolve_host_addresses(hosts)  # fail now on a bad name, not at gathering

    def configured_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return [
            a for a in resolve_host_addresses(hosts)
            if (use_ipv4 and ipaddress.ip_address(a).version == 4)
            or (use_ipv6 and ipaddress.ip_address(a).version == 6)
        ]

    aioice.ice.get_host_addresses = configured_addresses


def rtc_configuration(servers: Sequence[IceServer], transport: IceTransport = "all") -> RTCConfiguration:
    """An aiortc configuration with exactly these ICE servers (possibly none); ``transport``
    "turn" allows TURN relay candidates only (WebRTC's policy "relay", not our relay)."""
    return RTCConfiguration(
        iceServers=[
            RTCIceServer(urls=list(s.urls), username=s.username, credential=s.credential)
            for s in servers
        ],
        iceTransportPolicy=RTCIceTransportPolicy.RELAY if transport == "turn" else RTCIceTransportPolicy.ALL,
    )


@dataclass
class IceOptions:
    """A peer's own ICE settings; where one is None the server's (from its welcome) apply.

    ``servers``: the STUN and TURN servers to use ([] for none). ``hosts``: the local
    addresses or network interfaces ICE may offer ("*": every interface but loopback).
    ``transport``: "turn" uses TURN relay candidates only. A bad host or transport raises
    UsageError here.
    """

    servers: list[IceServer] | None = None
    hosts: list[str] | None = None
    transport: IceTransport = "all"

    def __post_init__(self) -> None:
        if self.transport not in get_args(IceTransport):
            raise UsageError(f"ICE transport {self.transport!r}: use all or turn")
        if self.hosts is not None:
            resolve_host_addresses(self.hosts)  # fail now on a bad name, not when connecting

    def host_addresses(self, welcome: Welcome) -> list[str]:
        """The local addresses (or interfaces) ICE may offer under this welcome: the peer's own,
        else the server's, else [] (aioice's own choice). Pass them to restrict_host_addresses()."""
        if self.hosts is not None:
            return list(self.hosts)
        try:
            resolve_host_addresses(welcome.ice_hosts)
        except ValueError as exc:  # the server's list names interfaces this machine lacks
            log.warning("ignoring the server's ICE hosts: %s", exc)
            return []
        return list(welcome.ice_hosts)

    def configuration(self, welcome: Welcome) -> RTCConfiguration:
        """The configuration for peer connections made under this welcome."""
        servers = self.servers if self.servers is not None else welcome.ice_servers
        return rtc_configuration(servers, self.transport)


def aiortc_candidate(init: IceCandidate) -> RTCIceCandidate:
    """A trickled candidate (browser-shaped) as aiortc wants it."""
    candidate = candidate_from_sdp(init.candidate.split(":", 1)[-1])
    candidate.sdpMid = init.sdp_mid
    candidate.sdpMLineIndex = init.sdp_mline_index
    return candidate


async def turn_problem(configuration: RTCConfiguration, timeout: float = 5.0) -> str:
    """Why no TURN server gave a relay address (aioice drops that error silently)."""
    turn_urls = [
        (server, url)
        for server in configuration.iceServers or []
        for url in ([server.urls] if isinstance(server.urls, str) else server.urls)
        if url.startswith("turn")
    ]
    if not turn_urls:
        return "no TURN server is configured"
    problems = []
    for server, url in turn_urls:
        uri = parse_stun_turn_uri(url)
        try:
            transport, _ = await asyncio.wait_for(aioice.turn.create_turn_endpoint(
                asyncio.DatagramProtocol, server_addr=(uri["host"], uri["port"]),
                username=server.username, password=server.credential,
                ssl=uri["scheme"] == "turns", transport=uri["transport"]), timeout)
            transport.close()
            problems.append(f"{url} works now")
        except aioice.stun.TransactionFailed as exc:
            code, reason = exc.response.attributes.get("ERROR-CODE", (0, "error"))
            hint = " (wrong or expired credentials?)" if code == 401 else ""
            problems.append(f"{url} refused the allocation: {code} {reason}{hint}")
        except (asyncio.TimeoutError, OSError, ConnectionError) as exc:
            problems.append(f"{url} is unreachable: {exc or type(exc).__name__}")
    return "; ".join(problems)


async def relay_shortfall(configuration: RTCConfiguration, sdp: str) -> str | None:
    """With TURN-only ICE and no TURN (relay) candidate in ``sdp``: why, for the user. Else None."""
    if configuration.iceTransportPolicy != RTCIceTransportPolicy.RELAY or " typ relay" in sdp:
        return None
    return f"TURN-only ICE got no TURN address: {await turn_problem(configuration)}"
