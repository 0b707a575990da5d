"""ICE settings as people write them: STUN and TURN server URLs, and the local addresses or
interfaces ICE may offer. Checked here without aiortc, so that the server and the command
line's checks do not load it (peers/ice.py applies them to aiortc and aioice)."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Sequence
from urllib.parse import unquote

import ifaddr

from peercam.shared.errors import UsageError
from peercam.shared.protocol import IceServer

__all__ = ["aioice_host_lookup", "parse_ice_server", "resolve_host_addresses"]

_aioice_lookup: Callable[..., list[str]] | None = None


def aioice_host_lookup() -> Callable[..., list[str]]:
    """aioice's own choice of local addresses (every interface but loopback), as aioice has it
    before peers/ice.py's restrict_host_addresses replaces it; aioice is imported on first use."""
    global _aioice_lookup
    if _aioice_lookup is None:
        import aioice.ice

        _aioice_lookup = aioice.ice.get_host_addresses
    return _aioice_lookup


def parse_ice_server(url: str) -> IceServer:
    """``stun:HOST[:PORT]`` or ``turn[s]:USER:PASS@HOST[:PORT][?transport=tcp]``; UsageError if not."""
    scheme, sep, rest = url.partition(":")
    if not sep or scheme not in ("stun", "stuns", "turn", "turns") or not rest:
        raise UsageError(f"bad ICE server {url!r}: expected stun:HOST[:PORT] or turn:USER:PASS@HOST[:PORT]")
    if "@" not in rest:
        if scheme.startswith("turn"):
            raise UsageError(f"TURN server {url!r} needs credentials: turn:USER:PASS@HOST[:PORT]")
        return IceServer(urls=[url])
    credentials, _, address = rest.rpartition("@")
    username, colon, password = credentials.partition(":")
    if not colon:
        raise UsageError(f"bad ICE server {url!r}: credentials must be USER:PASS")
    return IceServer(urls=[f"{scheme}:{address}"], username=unquote(username), credential=unquote(password))


def resolve_host_addresses(hosts: Sequence[str]) -> list[str]:
    """Turn addresses, interface names and ``*`` (aioice's own choice) into addresses; UsageError
    for a name that is neither."""
    adapters = {a.nice_name: a for a in ifaddr.get_adapters()}
    addresses: list[str] = []
    for host in hosts:
        if host == "*":
            addresses += aioice_host_lookup()(use_ipv4=True, use_ipv6=True)
            continue
        try:
            addresses.append(str(ipaddress.ip_address(host)))
            continue
        except ValueError:
            pass
        adapter = adapters.get(host)
        if adapter is None:
            raise UsageError(f"--ice-host {host!r} is neither an IP address nor a network interface")
        addresses += [ip.ip if isinstance(ip.ip, str) else ip.ip[0] for ip in adapter.ips]
    return list(dict.fromkeys(addresses))
