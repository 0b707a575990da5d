"""The Python peers' side of the signaling WebSocket."""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
from collections.abc import AsyncIterator, Sequence
from urllib.parse import urlsplit, urlunsplit

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as websocket_connect
from websockets.exceptions import ConnectionClosed, WebSocketException

from peercam.shared.errors import UsageError
from peercam.shared.protocol import (
    PROTOCOL_VERSION,
    Error,
    ProtocolError,
    Welcome,
    decode_server_message,
    encode,
)

log = logging.getLogger(__name__)


class SignalingError(Exception):
    """The server cannot be reached, or closed the connection."""


def websocket_url(server: str) -> str:
    """``http://host:port`` (or ``https://``) to the signaling WebSocket URL."""
    parts = urlsplit(server if "://" in server else f"http://{server}")
    if parts.scheme not in ("http", "https", "ws", "wss") or not parts.netloc:
        raise UsageError(f"bad server URL {server!r}: expected http://HOST:PORT")
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    return urlunsplit((scheme, parts.netloc, "/ws", "", ""))


class Backoff:
    """Delays for reconnecting: 0.5 s doubling to a cap, with jitter; reset on success."""

    def __init__(self, first: float = 0.5, cap: float = 5.0) -> None:
        self.first, self.cap = first, cap
        self._next = first

    def reset(self) -> None:
        self._next = self.first

    def next_delay(self) -> float:
        """The delay before the next attempt (for a thread to wait on its own way)."""
        delay = self._next * random.uniform(0.8, 1.2)
        self._next = min(self.cap, self._next * 2)
        return delay

    async def wait(self) -> None:
        await asyncio.sleep(self.next_delay())


#: One signaling server's URL (``http://host:port``), or several to rotate through.
Servers = str | Sequence[str]


class ServerList:
    """The signaling servers a peer may use, and which one to try next.

    It starts at the first and stays on a server while it works. When a connection is
    lost or cannot be made, the next server is tried at once (round robin); the Backoff
    waits only once every server has failed since the last wait. So a dead server never
    delays reaching a live one, and no server is tried more than once per backoff delay,
    even when servers accept and drop a peer over and over.

    Raises UsageError (a ValueError) at once for an empty list or a bad URL.
    """

    def __init__(self, servers: Servers, backoff: Backoff | None = None) -> None:
        self.urls: tuple[str, ...] = (servers,) if isinstance(servers, str) else tuple(servers)
        if not self.urls:
            raise UsageError("no signaling server given")
        for url in self.urls:
            websocket_url(url)
        self._backoff = backoff or Backoff()
        self._index = 0
        self._failures = 0  # since the last wait

    @property
    def current(self) -> str:
        """The server to connect to now."""
        return self.urls[self._index]

    @property
    def all_failed(self) -> bool:
        """Every server has failed since the last wait (before any wait: none was reached)."""
        return self._failures >= len(self.urls)

    def succeeded(self) -> None:
        """A session on the current server worked: the next wait is the shortest again."""
        self._backoff.reset()

    def failed(self) -> None:
        """The current server was lost or could not be reached: the next one's turn."""
        self._failures += 1
        self._index = (self._index + 1) % len(self.urls)

    async def wait(self) -> None:
        """Before connecting again: at once to a server not tried since the last wait, else
        after the backoff."""
        if self.all_failed:
            self._failures = 0
            await self._backoff.wait()


_BEGIN, _END = "-----BEGIN CERTIFICATE-----", "-----END CERTIFICATE-----"


def _trusting_only(certificate_file: str) -> ssl.SSLContext:
    """A client context that accepts the file's first certificate (the server's own, its
    chain and key may follow) and nothing else, whatever name it is made out to."""
    with open(certificate_file, encoding="ascii", errors="replace") as file:
        pem = file.read()
    start = pem.find(_BEGIN)
    end = pem.find(_END, start)
    if start < 0 or end < 0:
        raise SignalingError(f"no certificate in {certificate_file}")
    context = ssl.create_default_context(cadata=pem[start : end + len(_END)])
    # The one certificate is the trust anchor: no CA above it, and no host name to match
    # (only that certificate's key can answer).
    context.check_hostname = False
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    return context


#: A message larger than this ends the connection (close code 1009): a relay frame of the
#: largest layer is well under it.
MAX_MESSAGE_BYTES = 64 * 1024 * 1024


def _reason(closed: ConnectionClosed) -> str:
    """The close code and what the server said as it closed."""
    frame = closed.rcvd or closed.sent
    if frame is None:
        return "no closing handshake"
    return f"{frame.code} {frame.reason}".strip()


class SignalingClient:
    """One signaling connection: typed messages in, typed messages out."""

    def __init__(self, server: str, ca_file: str | None = None, token: str = "",
                 server_certificate: str | None = None) -> None:
        """``ca_file``: CA certificates for wss:// with a private CA (else the system's).
        ``server_certificate``: the server's own certificate file, trusted as it is at any
        address, in place of a CA: for the server's in-process cameras, which reach it on
        loopback, where a certificate made out to its DNS name would not match."""
        self.url = websocket_url(server)
        # Shown as the socket opens: a camera with a publish token is not held to its
        # address's connection limit. Messages carry the token too (publish, watch).
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._ssl: ssl.SSLContext | None = None  # None: the system's trusted CAs, for wss://
        if server_certificate:
            self._ssl = _trusting_only(server_certificate)
        elif ca_file:
            self._ssl = ssl.create_default_context(cafile=ca_file)
        self.welcome: Welcome | None = None
        self._ws: ClientConnection | None = None

    async def connect(self, timeout: float = 10.0) -> Welcome:
        """Open the WebSocket and read the server's welcome."""
        # websockets, not aiohttp's client: importing that makes two TLS contexts with the
        # system's CAs, ~100 ms before `peercam view` could send its first message.
        secure = {"ssl": self._ssl or True} if self.url.startswith("wss:") else {}
        try:
            self._ws = await websocket_connect(
                self.url, additional_headers=self._headers, open_timeout=timeout, close_timeout=2.0,
                ping_interval=10.0, ping_timeout=5.0, max_size=MAX_MESSAGE_BYTES, compression=None,
                proxy=None, **secure)
            welcome = await asyncio.wait_for(self._receive(), timeout)
        except SignalingError:  # closed before its welcome
            await self.close()
            raise
        except (OSError, asyncio.TimeoutError, WebSocketException) as exc:
            await self.close()
            reason = str(exc) or type(exc).__name__
            raise SignalingError(f"cannot reach the signaling server at {self.url}: {reason}") from exc
        if not isinstance(welcome, Welcome):
            await self.close()
            raise SignalingError(f"expected a welcome from {self.url}, got {type(welcome).__name__}")
        if welcome.protocol < PROTOCOL_VERSION:  # its messages would not decode here
            await self.close()
            raise SignalingError(f"the signaling server at {self.url} speaks protocol {welcome.protocol}, "
                                 f"this peer {PROTOCOL_VERSION}: upgrade the server")
        self.welcome = welcome
        return welcome

    async def send(self, message) -> None:
        if self._ws is None:
            raise SignalingError("not connected to the signaling server")
        try:
            await self._ws.send(encode(message))
        except ConnectionClosed as exc:
            raise SignalingError(f"lost the signaling server at {self.url}: {exc}") from exc

    async def send_bytes(self, data: bytes) -> None:
        if self._ws is None:
            raise SignalingError("not connected to the signaling server")
        try:
            await self._ws.send(data)
        except ConnectionClosed as exc:
            raise SignalingError(f"lost the signaling server at {self.url}: {exc}") from exc

    async def _receive(self):
        assert self._ws is not None
        while True:
            try:
                data = await self._ws.recv()
            except ConnectionClosed as exc:
                raise SignalingError(f"the signaling server at {self.url} closed the connection "
                                     f"({_reason(exc)})") from None
            if isinstance(data, bytes):
                return data  # a relay frame
            try:
                return decode_server_message(data)
            except ProtocolError as exc:
                log.warning("ignoring a message the server should not have sent: %s", exc.reason)

    async def messages(self) -> AsyncIterator:
        """Server messages (and relay frames, as bytes) until the connection ends.

        Raises SignalingError when it ends.
        """
        while True:
            message = await self._receive()
            if isinstance(message, Error):
                log.warning("server says %s: %s", message.code, message.reason)
            yield message

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()
            self._ws = None
