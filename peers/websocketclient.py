"""A small WebSocket client (RFC 6455) for the peers' signaling socket, on asyncio streams.

Why not aiohttp's: importing aiohttp's client makes two TLS contexts with the system's
trusted CAs at import time, about 100 ms on a small machine, before `peercam view` could
send its first message. This client makes a TLS context only for a wss:// server. It
does what the signaling socket needs and no more: text and binary messages, ping and
pong, a heartbeat, the closing handshake; no extensions, subprotocols or proxies.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import os
import ssl
import struct
import time
from urllib.parse import urlsplit

__all__ = ["MAX_MESSAGE_BYTES", "WebSocket", "WebSocketClosed", "connect"]

#: A message (all its fragments) larger than this ends the connection (close code 1009).
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
#: The server's HTTP response to the opening handshake, at most.
MAX_HANDSHAKE_BYTES = 16 * 1024
#: The stream's read buffer (it stops reading from the socket at twice this).
_READ_BUFFER_BYTES = 256 * 1024
_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_CONTINUATION, _TEXT, _BINARY, _CLOSE, _PING, _PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
#: Payloads from this size on are masked with numpy (C speed; imported on first use).
_NUMPY_MASK_BYTES = 4096


class WebSocketClosed(ConnectionError):
    """The connection is closed, or could not be opened; ``str()`` says why."""


async def connect(url: str, *, headers: dict[str, str] | None = None,
                  ssl_context: ssl.SSLContext | None = None, heartbeat: float = 10.0,
                  close_timeout: float = 2.0) -> WebSocket:
    """Open a ws:// or wss:// URL (wss:// without ``ssl_context``: the system's trusted CAs).

    Raises OSError for a server that cannot be reached, WebSocketClosed for one that
    does not open a WebSocket (its HTTP status in the message). No timeout of its own:
    wrap it in one.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise ValueError(f"not a WebSocket URL: {url!r}")
    secure = parts.scheme == "wss"
    port = parts.port or (443 if secure else 80)
    if secure and ssl_context is None:
        ssl_context = _system_trusted_context()
    reader, writer = await asyncio.open_connection(
        parts.hostname, port, ssl=ssl_context if secure else None, limit=_READ_BUFFER_BYTES,
        server_hostname=parts.hostname if secure else None)
    try:
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [f"GET {parts.path or '/'}{'?' + parts.query if parts.query else ''} HTTP/1.1",
                 f"Host: {parts.netloc.rpartition('@')[2]}", "Upgrade: websocket", "Connection: Upgrade",
                 f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13",
                 *(f"{name}: {value}" for name, value in (headers or {}).items())]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.LimitOverrunError:
            raise WebSocketClosed("the server's handshake response is too long") from None
        except asyncio.IncompleteReadError:
            raise WebSocketClosed("the server closed the connection during the handshake") from None
        if len(head) > MAX_HANDSHAKE_BYTES:
            raise WebSocketClosed("the server's handshake response is too long")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        status = status_line.split(" ", 2)
        if len(status) < 2 or status[1] != "101":
            raise WebSocketClosed(f"the server answered {' '.join(status[1:]) or status_line!r}, "
                                  "not a WebSocket")
        response = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            response[name.strip().lower()] = value.strip()
        accept = base64.b64encode(hashlib.sha1((key + _GUID).encode()).digest()).decode()
        if response.get("sec-websocket-accept") != accept:
            raise WebSocketClosed("the server's handshake has a wrong Sec-WebSocket-Accept")
        if response.get("sec-websocket-extensions"):
            raise WebSocketClosed("the server chose an extension this client did not offer")
    except BaseException:
        writer.close()
        raise
    return WebSocket(reader, writer, heartbeat, close_timeout)


class WebSocket:
    """An open client WebSocket. One task receives at a time; any task may send.

    A heartbeat pings the server after ``heartbeat`` seconds without a frame from it, and
    drops the connection when no frame comes within half that again while a receive waits.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, heartbeat: float,
                 close_timeout: float) -> None:
        self._reader, self._writer = reader, writer
        self._close_timeout = close_timeout
        self._closed_reason: str | None = None
        self._close_sent = False
        self._close_received = asyncio.Event()
        self._receiving = False
        self._last_frame = time.monotonic()
        self._heartbeat = asyncio.get_running_loop().create_task(self._beat(heartbeat)) if heartbeat else None

    @property
    def closed(self) -> bool:
        return self._closed_reason is not None

    async def send_text(self, text: str) -> None:
        await self._send(_TEXT, text.encode())

    async def send_bytes(self, data: bytes) -> None:
        await self._send(_BINARY, data)

    async def receive(self) -> str | bytes:
        """The next message: str (text) or bytes (binary). Raises WebSocketClosed once closed."""
        if self._receiving:
            raise RuntimeError("another task is receiving from this WebSocket")
        self._receiving = True
        try:
            return await self._receive()
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError) as exc:
            if not isinstance(exc, WebSocketClosed):
                self._abort(self._closed_reason or "the server dropped the connection")
            raise WebSocketClosed(self._closed_reason) from None
        finally:
            self._receiving = False

    async def close(self, code: int = 1000) -> None:
        """The closing handshake (waiting up to close_timeout for the server's reply), then the socket."""
        if self._closed_reason is None:
            self._closed_reason = "closed by this peer"
            try:
                await asyncio.wait_for(self._closing_handshake(code), self._close_timeout)
            except (asyncio.TimeoutError, asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
                pass
        self._abort(self._closed_reason)
        try:
            await asyncio.wait_for(self._writer.wait_closed(), self._close_timeout)
        except (asyncio.TimeoutError, ConnectionError, ssl.SSLError):
            pass

    async def _closing_handshake(self, code: int) -> None:
        await self._send_close(code)
        if self._receiving:  # that task's receive reads the server's reply
            await self._close_received.wait()
            return
        self._receiving = True
        try:
            while not self._close_received.is_set():
                await self._read_frame()
        finally:
            self._receiving = False

    # Frames ------------------------------------------------------------------------------

    async def _receive(self) -> str | bytes:
        message_opcode, parts, size = None, [], 0
        while True:
            if self._closed_reason is not None:
                raise WebSocketClosed(self._closed_reason)
            fin, opcode, payload = await self._read_frame()
            if opcode == _CLOSE:
                continue  # _read_frame closed the connection: the loop raises
            if opcode in (_PING, _PONG):
                continue
            if opcode == _CONTINUATION:
                if message_opcode is None:
                    await self._fail(1002, "a continuation frame without a message to continue")
            elif message_opcode is not None:
                await self._fail(1002, "a new message inside a fragmented one")
            else:
                message_opcode = opcode
            size += len(payload)
            if size > MAX_MESSAGE_BYTES:
                await self._fail(1009, f"a message over {MAX_MESSAGE_BYTES} bytes")
            parts.append(payload)
            if fin:
                data = b"".join(parts)
                if message_opcode == _BINARY:
                    return data
                try:
                    return data.decode()
                except UnicodeDecodeError:
                    await self._fail(1007, "a text message that is not UTF-8")

    async def _read_frame(self) -> tuple[bool, int, bytes]:
        """One frame; answers pings, and a close (after which the connection is closed)."""
        first, second = await self._reader.readexactly(2)
        fin, opcode, length = bool(first & 0x80), first & 0x0F, second & 0x7F
        if first & 0x70:
            await self._fail(1002, "a frame with reserved bits set (no extension was agreed)")
        if second & 0x80:
            await self._fail(1002, "a masked frame from the server")
        if opcode not in (_CONTINUATION, _TEXT, _BINARY, _CLOSE, _PING, _PONG):
            await self._fail(1002, f"an unknown opcode {opcode}")
        if opcode >= _CLOSE and (length > 125 or not fin):
            await self._fail(1002, "a control frame that is fragmented or too long")
        if length == 126:
            (length,) = struct.unpack("!H", await self._reader.readexactly(2))
        elif length == 127:
            (length,) = struct.unpack("!Q", await self._reader.readexactly(8))
        if length > MAX_MESSAGE_BYTES:
            await self._fail(1009, f"a frame over {MAX_MESSAGE_BYTES} bytes")
        payload = await self._reader.readexactly(length)
        self._last_frame = time.monotonic()
        if opcode == _PING and self._closed_reason is None:
            await self._send(_PONG, payload)
        elif opcode == _CLOSE:
            code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
            reason = payload[2:].decode(errors="replace")
            self._close_received.set()
            if self._closed_reason is None:
                self._closed_reason = f"{code} {reason}".strip() if reason else str(code)
                await self._send_close(code if code not in (1005, 1006, 1015) else 1000)
            self._abort(self._closed_reason)
        return fin, opcode, payload

    async def _fail(self, code: int, reason: str) -> None:
        """The server broke the protocol: close with ``code`` and raise."""
        self._closed_reason = f"protocol error: {reason}"
        try:
            await self._send_close(code)
        except ConnectionError:
            pass
        self._abort(self._closed_reason)
        raise WebSocketClosed(self._closed_reason)

    async def _send_close(self, code: int) -> None:
        if not self._close_sent:
            self._close_sent = True
            await self._send(_CLOSE, struct.pack("!H", code), closing=True)

    async def _send(self, opcode: int, payload: bytes, closing: bool = False) -> None:
        if (self._closed_reason is not None and not closing) or self._writer.is_closing():
            raise WebSocketClosed(self._closed_reason or "the connection is closed")
        length = len(payload)
        if length < 126:
            header = struct.pack("!BB", 0x80 | opcode, 0x80 | length)
        elif length < 1 << 16:
            header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, length)
        else:
            header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, length)
        key = os.urandom(4)
        self._writer.write(header + key + _mask(payload, key))
        await self._writer.drain()

    def _abort(self, reason: str) -> None:
        self._closed_reason = self._closed_reason or reason
        if self._heartbeat is not None and self._heartbeat is not asyncio.current_task():
            self._heartbeat.cancel()
        self._writer.close()

    async def _beat(self, interval: float) -> None:
        while self._closed_reason is None:
            await asyncio.sleep(max(0.0, self._last_frame + interval - time.monotonic()))
            if time.monotonic() - self._last_frame < interval:
                continue
            pinged = time.monotonic()
            try:
                await self._send(_PING, b"")
            except (ConnectionError, ssl.SSLError):
                return
            await asyncio.sleep(interval / 2)
            # Only while a receive waits: frames no task reads yet still prove the server alive.
            if self._last_frame < pinged and self._receiving and self._closed_reason is None:
                self._abort(f"no answer from the server within {interval * 1.5:g} s")
                return


@functools.cache
def _system_trusted_context() -> ssl.SSLContext:
    """Made once (loading the system's CAs takes tens of ms), on the first wss:// connect."""
    return ssl.create_default_context()


def _mask(payload: bytes, key: bytes) -> bytes:
    length = len(payload)
    if length >= _NUMPY_MASK_BYTES:
        import numpy as np

        keys = np.frombuffer(key * (length // 4 + 1), np.uint8)[:length]
        return (np.frombuffer(payload, np.uint8) ^ keys).tobytes()
    repeated = key * (length // 4) + key[:length % 4]
    return (int.from_bytes(payload, "little") ^ int.from_bytes(repeated, "little")).to_bytes(length, "little")
