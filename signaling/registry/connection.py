"""One client's signaling WebSocket, seen from the server."""

from __future__ import annotations

import asyncio
import fcntl
import logging
import secrets
import struct
import sys

from aiohttp import WSCloseCode, web
from peercam.signaling.relay.readers import RelayReader

from peercam.shared.protocol import PROTOCOL_VERSION, CameraStats, ViewerStats, encode

log = logging.getLogger(__name__)

#: ioctl: the bytes in a TCP socket's send queue that the peer has not acknowledged yet,
#: sent or not (linux/sockios.h: SIOCOUTQ, the same number as TIOCOUTQ).
_SIOCOUTQ = 0x5411
_SEND_QUEUE = struct.Struct("i")


class _BinaryFrames:
    """Unmasked binary WebSocket frames (RFC 6455 section 5.2), as a server sends them; the
    last one is kept, since the relay hands the same frame to each of its readers in turn."""

    def __init__(self) -> None:
        self._last: tuple[bytes, bytes] | None = None

    def frame(self, data: bytes) -> bytes:
        if self._last is not None and self._last[0] is data:
            return self._last[1]
        size = len(data)
        if size < 126:
            header = struct.pack("!BB", 0x82, size)
        elif size < 65536:
            header = struct.pack("!BBH", 0x82, 126, size)
        else:
            header = struct.pack("!BBQ", 0x82, 127, size)
        self._last = (data, header + data)
        return self._last[1]


_binary_frames = _BinaryFrames()


class Connection:
    """A connected client: an id, its role, and an outbox drained by one writer task.

    Sends never block the caller: a slow client fills its own bounded outbox and is
    disconnected, so it cannot slow the camera or the other viewers.
    """

    #: Connected to this instance (a RemoteClient is connected to another).
    is_local = True

    def __init__(self, ws: web.WebSocketResponse, remote: str, outbox_limit: int,
                 transport: asyncio.Transport | None = None) -> None:
        self.id = secrets.token_hex(6)  # unique across instances too (--redis: one namespace)
        self.remote = remote
        self.ws = ws
        self._transport = transport  # the connection under the WebSocket
        sock = transport.get_extra_info("socket") if transport is not None else None
        self._fd = sock.fileno() if sock is not None and sys.platform == "linux" else None
        #: "camera" or "viewer" once the client said publish or watch.
        self.role: str | None = None
        self.stream: str | None = None
        #: The protocol it speaks, as its publish or watch said: what it is sent is named so.
        self.protocol = PROTOCOL_VERSION
        #: Set while this viewer is on its stream's relay.
        self.relay_reader: RelayReader | None = None
        #: Display name (chat, viewer lists); may be empty.
        self.name = ""
        #: A camera that showed a valid publish token (it wins a reserved name).
        self.with_token = False
        #: A viewer that may ask for the floor (talk back: the server's --talk and its token).
        self.may_talk = False
        #: A viewer's choice: a layer's name or "auto", and a JPEG quality for the relay (None: auto).
        self.quality = "auto"
        self.jpeg_quality: int | None = None
        #: What it gets now (the camera's or the relay's latest `layer` message), and why.
        self.layer: str | None = None
        self.layer_reason = ""
        self.relay_jpeg_quality: int | None = None
        #: The latest stats report from this client, and when it came (time.time()).
        self.stats: ViewerStats | CameraStats | None = None
        self.stats_at = 0.0
        self._outbox: asyncio.Queue[str | None] = asyncio.Queue(outbox_limit)
        self._writer: asyncio.Task | None = None

    def __repr__(self) -> str:
        return f"<Connection {self.id} {self.role or 'idle'} {self.stream or ''} {self.remote}>"

    def undelivered_bytes(self) -> int:
        """Bytes written to this client's socket that it has not acknowledged yet (Linux's
        SIOCOUTQ), plus what the event loop still holds; 0 where it cannot tell.

        Sent but unacknowledged bytes count too: they are as late as unsent ones. A sender
        whose congestion control still believes in the bandwidth from before a cap (BBR, the
        default here, for many round trips) puts everything on the wire at once, the link's
        queue drops most of it, and its repair took 5 s of TCP retransmissions behind a
        600 kbit/s cap while the unsent queue stayed near empty."""
        if self._transport is None:
            return 0
        queued = self._transport.get_write_buffer_size()
        if self._fd is None:
            return queued
        try:
            return queued + _SEND_QUEUE.unpack(fcntl.ioctl(self._fd, _SIOCOUTQ, b"\0\0\0\0"))[0]
        except OSError:
            return queued

    def send_binary_now(self, data: bytes) -> bool:
        """Write a binary message (a relay frame) at once when nothing waits before it in
        the event loop's buffer; False when the socket is backed up or closing, and the
        caller takes the awaitable path (``ws.send_bytes``). The frame is built once for
        every reader of the same relay frame."""
        transport = self._transport
        if transport is None or self.ws.closed or transport.is_closing() or transport.get_write_buffer_size():
            return False
        transport.write(_binary_frames.frame(data))
        return True

    @property
    def relay_format(self) -> str | None:
        """What it reads on the relay ("jpeg" or "encoded"); None: it is not on the relay."""
        return self.relay_reader.format if self.relay_reader is not None else None

    def start(self) -> None:
        self._writer = asyncio.create_task(self._write_loop(), name=f"ws-writer-{self.id}")

    def send(self, message) -> None:
        self.send_text(encode(message, self.protocol))

    def send_text(self, text: str) -> None:
        """Send a message already encoded (one from another instance, say)."""
        if self.ws.closed:
            return
        try:
            self._outbox.put_nowait(text)
        except asyncio.QueueFull:
            log.warning("%r: outbox full, disconnecting a client that does not read", self)
            if self._writer is not None:
                self._writer.cancel()
            asyncio.create_task(
                self.ws.close(code=WSCloseCode.POLICY_VIOLATION, message=b"too slow: outbox full")
            )

    async def _write_loop(self) -> None:
        try:
            while True:
                text = await self._outbox.get()
                if text is None:
                    break
                await self.ws.send_str(text)
        except (ConnectionError, RuntimeError):
            pass

    async def close(self) -> None:
        """Flush what is queued, then stop the writer."""
        if self._writer is None:
            return
        try:
            self._outbox.put_nowait(None)
        except asyncio.QueueFull:
            self._writer.cancel()
        try:
            await asyncio.wait_for(self._writer, 2)
        except (asyncio.TimeoutError, asyncio.CancelledError):
            pass

    async def hang_up(self, reason: str, code: int = WSCloseCode.OK) -> None:
        """Close the socket once what is queued (the reason, say) has gone out."""
        await self.close()
        await self.ws.close(code=code, message=reason.encode()[:120])
