"""What one server accepts before it says no (each refusal is an error and a metric)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    """What one server accepts before it says no: rates, sizes and counts."""

    #: Text messages a viewer (or a client that has not published) may send, per second.
    messages_per_second: float = 50.0
    message_burst: int = 200
    #: A camera answers every viewer and relays their chat: it gets ten times a viewer's
    #: rate, which its normal traffic never reaches, and binary (relay) frames of its own.
    camera_rate_factor: float = 10.0
    relay_frames_per_second: float = 1000.0
    relay_frame_burst: int = 2000
    #: Renames one viewer may make: a burst, then one every rename_seconds. Each one reaches
    #: the camera and every viewer list (across instances): a name is picked, not streamed.
    rename_burst: int = 3
    rename_seconds: float = 5.0
    #: Bytes of SDP in one offer or answer.
    max_sdp_bytes: int = 32 * 1024
    #: Readers of one stream: WebSocket and WHEP viewers plus MJPEG and snapshot readers.
    viewers_per_stream: int = 500
    #: Streams with a camera (or a reservation) at once; names watched while waiting
    #: for a camera do not count.
    streams: int = 100
    #: Open signaling WebSockets plus WHEP sessions, MJPEG and snapshot readers from one address.
    #: A socket that publishes with a valid token is not counted (see AddressShare).
    connections_per_address: int = 64
    #: Seconds an MJPEG reader's socket may take no bytes before it is dropped. (WebSocket
    #: readers that stop reading are dropped by the heartbeat.)
    stalled_reader_seconds: float = 20.0
    #: Seconds a WebSocket may stay without watching or publishing before it is closed.
    idle_seconds: float = 10.0
    #: WHIP publishers at once. Each one's media runs through this server's process (its
    #: receiving peer and camera, and its P2P viewers' streams): a few per core.
    whip_publishers: int = 4


class TooManyConnections(Exception):
    """An address already holds its share of connections."""


class ConnectionsByAddress:
    """Open connections (WebSockets, MJPEG, snapshots) per client address."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._open: Counter[str] = Counter()

    def acquire(self, address: str) -> None:
        """Count one more connection from ``address``; raises TooManyConnections past the limit."""
        if self._open[address] >= self.limit:
            raise TooManyConnections(f"at most {self.limit} connections per address")
        self._open[address] += 1

    def release(self, address: str) -> None:
        self._open[address] -= 1
        if self._open[address] <= 0:
            del self._open[address]

    def __getitem__(self, address: str) -> int:
        return self._open[address]


class AddressShare:
    """One WebSocket's place in its client address's share.

    Every socket counts, except one that publishes with a valid token: a camera is the
    one peer its stream cannot do without. So that a camera still gets in when its
    address's share is full, a socket that shows a publish or admin token as it connects
    may come in over the share, uncounted until it acts (and closed as idle if it does
    not). Publishing with a valid token keeps it uncounted; watching, or publishing
    without one, counts it, and is refused when the share is full.
    """

    def __init__(self, by_address: ConnectionsByAddress, address: str) -> None:
        self._by_address = by_address
        self._address = address
        self.counted = False

    def enter(self, on_credit: bool) -> None:
        """Count the new socket; raises TooManyConnections when the share is full, unless
        ``on_credit`` (it showed a publish or admin token)."""
        try:
            self.count()
        except TooManyConnections:
            if not on_credit:
                raise

    def count(self) -> None:
        """Count the socket (it watches); raises TooManyConnections when the share is full."""
        if not self.counted:
            self._by_address.acquire(self._address)
            self.counted = True

    def leave(self) -> None:
        """Give the place back: the socket closed, or publishes with a valid token."""
        if self.counted:
            self._by_address.release(self._address)
            self.counted = False
