"""A client of another server instance, as this instance's registry sees it (``--redis``)."""

from __future__ import annotations

from collections.abc import Callable

import msgspec

from peercam.shared.protocol import CameraStats, JpegRendition, StreamInfo, ViewerStats


class ClientRecord(msgspec.Struct, omit_defaults=True):
    """A camera or viewer as its own instance sees it, for the others' mirrors (and
    /api/streams, /metrics there). Kept in the hash ``peercam:clients:NODE`` too."""

    id: str
    role: str  # "camera" or "viewer"
    stream: str
    name: str = ""
    quality: str = "auto"
    jpeg_quality: int | None = None
    with_token: bool = False
    info: StreamInfo | None = None  # a camera's stream
    since: float | None = None
    layer: str | None = None
    layer_reason: str = ""
    relay_format: str | None = None  # set while a viewer reads the relay
    viewer_stats: ViewerStats | None = None
    camera_stats: CameraStats | None = None
    stats_at: float = 0.0


class RemoteClient:
    """A camera or viewer connected to instance ``node``: it sits in this instance's
    streams like a local Connection, so the same rules (one camera, routing, limits,
    summaries) apply to it. What is sent to it goes through Redis to its own instance.

    Its fields are a mirror: only its own instance changes them (``update``).
    """

    is_local = False

    def __init__(self, node: str, record: ClientRecord, deliver: Callable[[str, str, str, object], None],
                 ask_relay: Callable[[str, str, list[JpegRendition], list[str], bool], None]) -> None:
        self.node = node
        self.id = record.id
        self._deliver = deliver
        self._ask_relay = ask_relay
        self.update(record)

    def __repr__(self) -> str:
        return f"<RemoteClient {self.id} {self.role} {self.stream} on {self.node}>"

    def update(self, record: ClientRecord) -> None:
        self.record = record
        self.role: str | None = record.role
        self.stream: str | None = record.stream
        self.name = record.name
        self.quality, self.jpeg_quality = record.quality, record.jpeg_quality
        self.with_token = record.with_token
        self.layer, self.layer_reason = record.layer, record.layer_reason
        self.relay_format = record.relay_format
        self.stats: ViewerStats | CameraStats | None = record.camera_stats or record.viewer_stats
        self.stats_at = record.stats_at

    def send(self, message) -> None:
        self._deliver(self.node, self.stream or "", self.id, message)

    def ask_relay(self, jpeg: list[JpegRendition], encoded: list[str], audio: bool) -> None:
        """This instance's relay readers of the camera's stream read these renditions (and
        listen to its sound, with ``audio``)."""
        self._ask_relay(self.node, self.stream or "", jpeg, encoded, audio)
