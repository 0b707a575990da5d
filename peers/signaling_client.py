"""The Python peers' side of the signaling WebSocket."""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import aiohttp

from signaling.protocol import Error, ProtocolError, Welcome, decode_server_message, encode

log = logging.getLogger(__name__)


class SignalingError(Exception):
    """The server cannot be reached, or closed the connection."""


def websocket_url(server: str) -> str:
    """``http://host:port`` (or ``https://``) to the signaling WebSocket URL."""
    parts = urlsplit(server if "://" in server else f"http://{server}")
    if parts.scheme not in ("http", "https", "ws", "wss") or not parts.netloc:
        raise ValueError(f"bad server URL {server!r}: expected http://HOST:PORT")
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    return urlunsplit((scheme, parts.netloc, "/ws", "", ""))


class Backoff:
    """Delays for reconnecting: 0.5 s doubling to a cap, with jitter; reset on success."""

    def __init__(self, first: float = 0.5, cap: float = 5.0) -> None:
        self.first, self.cap = first, cap
        self._next = first

    def reset(self) -> None:
        self._next = self.first

    async def wait(self) -> None:
        delay = self._next * random.uniform(0.8, 1.2)
        self._next = min(self.cap, self._next * 2)
        await asyncio.sleep(delay)


class SignalingClient:
    """One signaling connection: typed messages in, typed messages out."""

    def __init__(self, server: str, ca_file: str | None = None, token: str = "") -> None:
        self.url = websocket_url(server)
        # Shown as the socket opens: a camera with a publish token is not held to its
        # address's connection limit. Messages carry the token too (publish, watch).
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        #: For wss:// with a private CA; None means the system's trusted CAs.
        self._ssl = ssl.create_default_context(cafile=ca_file) if ca_file else True
        self.welcome: Welcome | None = None
        self._session: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None

    async def connect(self, timeout: float = 10.0) -> Welcome:
        """Open the WebSocket and read the server's welcome."""
        self._session = aiohttp.ClientSession()
        try:
            self._ws = await self._session.ws_connect(
                self.url, heartbeat=10.0, timeout=aiohttp.ClientWSTimeout(ws_close=2.0),
                max_msg_size=0, ssl=self._ssl, headers=self._headers,
            )
            welcome = await asyncio.wait_for(self._receive(), timeout)
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as exc:
            await self.close()
            reason = str(exc) or type(exc).__name__
            raise SignalingError(f"cannot reach the signaling server at {self.url}: {reason}") from exc
        if not isinstance(welcome, Welcome):
            await self.close()
            raise SignalingError(f"expected a welcome from {self.url}, got {type(welcome).__name__}")
        self.welcome = welcome
        return welcome

    async def send(self, message) -> None:
        if self._ws is None or self._ws.closed:
            raise SignalingError("not connected to the signaling server")
        try:
            await self._ws.send_str(encode(message))
        except (ConnectionError, aiohttp.ClientError) as exc:
            raise SignalingError(f"lost the signaling server: {exc}") from exc

    async def send_bytes(self, data: bytes) -> None:
        if self._ws is None or self._ws.closed:
            raise SignalingError("not connected to the signaling server")
        try:
            await self._ws.send_bytes(data)
        except (ConnectionError, aiohttp.ClientError) as exc:
            raise SignalingError(f"lost the signaling server: {exc}") from exc

    async def _receive(self):
        assert self._ws is not None
        while True:
            msg = await self._ws.receive()
            if msg.type == aiohttp.WSMsgType.BINARY:
                return msg.data  # a relay frame
            if msg.type == aiohttp.WSMsgType.TEXT:
                try:
                    return decode_server_message(msg.data)
                except ProtocolError as exc:
                    log.warning("ignoring a message the server should not have sent: %s", exc.reason)
                    continue
            if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING,
                            aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                reason = msg.extra or self._ws.close_code
                raise SignalingError(f"the signaling server closed the connection ({reason})")

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
        if self._session is not None:
            await self._session.close()
            self._session = None
