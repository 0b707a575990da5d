"""Safe defaults for browsers: which hosts and origins may use the server, and the
headers every response carries.

- Host: a server that listens on loopback answers only to loopback names and
  addresses (and ``--allowed-host``), so a web page cannot reach it through a DNS name
  that it rebinds to 127.0.0.1 (DNS rebinding).
- Origin: a browser page may open ``/ws`` from the server's own origin, or from one listed
  with ``--allowed-origin`` (``*``: any). Clients that send no Origin (the Python peers,
  curl) are not browsers, and are let in.
- Headers: scripts only from this server and none inline (but a page's own, allowed by
  their hashes: ``content_security_policy``), no sniffing of content types, no Referer
  (tokens ride in URLs), and no framing by other sites.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
from urllib.parse import urlsplit

from aiohttp import web
from peercam.signaling.settings.config import ServerConfig

from .appkeys import CONFIG

_SCRIPT_SRC = "script-src 'self'"
CONTENT_SECURITY_POLICY = "; ".join((
    "default-src 'self'",
    _SCRIPT_SRC,
    "style-src 'self'",
    "img-src 'self' blob: data:",
    "media-src 'self' blob:",
    "connect-src 'self'",
    "worker-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
))

SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


def content_security_policy(inline_scripts: list[str]) -> str:
    """The policy for a page whose own inline scripts (their text, as between the tags) may
    run: each is named by its SHA-256, so no other inline script can."""
    digests = (hashlib.sha256(script.encode()).digest() for script in inline_scripts)
    allowed = "".join(f" 'sha256-{base64.b64encode(digest).decode()}'" for digest in digests)
    return CONTENT_SECURITY_POLICY.replace(_SCRIPT_SRC, _SCRIPT_SRC + allowed, 1)


def _is_loopback(host: str) -> bool:
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _hostname(host_header: str) -> str:
    """``example.org:8080`` or ``[::1]:8080`` to the host alone, lower-case."""
    return (urlsplit(f"//{host_header}").hostname or "").lower()


def host_allowed(config: ServerConfig, host_header: str | None) -> bool:
    """Whether a request's Host may reach this server (see the module's docstring)."""
    if not _is_loopback(config.host):
        return True
    host = _hostname(host_header or "")
    return _is_loopback(host) or host in config.allowed_hosts


def origin_allowed(config: ServerConfig, origin: str | None, host_header: str | None) -> bool:
    """Whether a WebSocket with this Origin may connect (see the module's docstring)."""
    if origin is None or "*" in config.allowed_origins or origin in config.allowed_origins:
        return True
    netloc = urlsplit(origin).netloc.lower()
    return bool(netloc) and netloc == (host_header or "").lower()


@web.middleware
async def check_host(request: web.Request, handler) -> web.StreamResponse:
    if not host_allowed(request.app[CONFIG], request.headers.get("Host")):
        host = (request.headers.get("Host") or "")[:100]
        raise web.HTTPForbidden(text=f"host {host!r} is not allowed: this server listens on loopback "
                                     f"and answers to loopback names only (see --allowed-host)\n")
    return await handler(request)


async def add_security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: every response, pages and errors alike, carries the headers."""
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
