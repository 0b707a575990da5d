"""Who a request comes from, also behind a reverse proxy.

Limits count connections per client address. Behind a reverse proxy every request
comes from the proxy's address, so one address would hold every client. The
``X-Forwarded-For`` header names the real client, but anyone can write it: it is
honoured only when the request comes from an address listed with ``--trusted-proxy``.
The client is then the rightmost address in the header that is not a trusted proxy.

A request may carry the header on several lines, and they are one list, in order
(RFC 9110): HAProxy's ``option forwardfor`` adds a line of its own after whatever the
client sent, so the first line alone is the client's own claim.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

from aiohttp import web
from aiohttp.typedefs import Middleware

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(specs: Iterable[str]) -> tuple[Network, ...]:
    """``10.0.0.5``, ``10.0.0.0/8`` or ``::1`` to networks; raises ValueError with the bad one."""
    networks = []
    for spec in specs:
        try:
            networks.append(ipaddress.ip_network(spec.strip(), strict=False))
        except ValueError:
            raise ValueError(f"--trusted-proxy {spec!r} is not an IP address or network") from None
    return tuple(networks)


def _trusted(address: str, proxies: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in proxies)


def client_address(remote: str | None, forwarded_for: Sequence[str], proxies: tuple[Network, ...]) -> str:
    """The client's address: ``remote``, unless a trusted proxy forwarded the request.
    ``forwarded_for``: every ``X-Forwarded-For`` line of the request, in order."""
    address = remote or "?"
    if not forwarded_for or not _trusted(address, proxies):
        return address
    for hop in reversed([part.strip() for line in forwarded_for for part in line.split(",")]):
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            return address  # a garbled header: trust nothing in it
        if not _trusted(hop, proxies):
            return hop
    return address


def resolve_client_address(proxies: tuple[Network, ...]) -> Middleware:
    """A middleware after which ``request.remote`` is the real client."""

    @web.middleware
    async def middleware(request: web.Request, handler) -> web.StreamResponse:
        if proxies:
            address = client_address(request.remote, request.headers.getall("X-Forwarded-For", ()), proxies)
            if address != request.remote:
                request = request.clone(remote=address)
        return await handler(request)

    return middleware
