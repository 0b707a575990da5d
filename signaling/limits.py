"""What one server accepts before it says no (each refusal is an error and a metric)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    #: Text messages a viewer (or a client that has not published) may send, per second.
    messages_per_second: float = 50.0
    message_burst: int = 200
    #: Bytes of SDP in one offer or answer.
    max_sdp_bytes: int = 32 * 1024
    viewers_per_stream: int = 500
    #: Stream names in use at once (live, reserved, or watched while waiting).
    streams: int = 100
    #: Open signaling WebSockets from one client address.
    connections_per_address: int = 64
    #: Seconds an MJPEG reader's socket may take no bytes before it is dropped. (WebSocket
    #: readers that stop reading are dropped by the heartbeat.)
    stalled_reader_seconds: float = 20.0
