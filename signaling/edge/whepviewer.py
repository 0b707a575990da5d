"""A WHEP player as the stream registry sees it: a viewer whose signaling is HTTP requests."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable

import msgspec

from peercam.shared.protocol import (
    Answer,
    CameraViewerStats,
    Hangup,
    ProtocolError,
    StreamEnded,
    StreamInfo,
    ViewerStats,
    decode_server_message,
)

from .webrtchttp import ice_credentials, new_etag

__all__ = ["SessionEnded", "WhepViewer"]


class SessionEnded(Exception):
    """The session ended before the camera answered; the message says why, ``stream_ended``
    whether its camera left (else it hung up on the offer)."""

    def __init__(self, reason: str, stream_ended: bool) -> None:
        super().__init__(reason)
        self.stream_ended = stream_ended


class WhepViewer:
    """One WHEP session: a viewer of the registry (a Client, like a WebSocket Connection) for
    whom the server watches and offers. The camera answers it as it answers any P2P viewer
    and never knows the difference, so it counts and shows like one: listings, limits,
    metrics, its stats (mode "whep").

    What the camera sends it comes to ``send``: the answer settles ``answer``; a hangup or
    the stream's end ends the session (``on_end``, called soon after, never from inside the
    registry's own loops). The rest (chat, layer news) has nowhere to go: a WHEP player has
    no signaling channel. The registry keeps ``layer`` up to date, as for any viewer.
    """

    #: Connected to this instance: its messages come here, from the camera wherever that is.
    is_local = True
    #: Never on the relay, never a camera, no JPEG quality (what the registry reads of a viewer).
    relay_reader = None
    relay_format = None
    with_token = False
    jpeg_quality = None

    def __init__(self, offer: str, mids: list[str], quality: str, remote: str,
                 on_end: Callable[[WhepViewer, str], None]) -> None:
        self.id = secrets.token_hex(6)  # unique across instances, as a Connection's
        #: The last part of its session URL (``Location``): unguessable, it is the session's key.
        self.resource = secrets.token_urlsafe(16)
        self.etag = new_etag()
        #: The offer's media sections in order, and its ICE credentials (a PATCH with others
        #: asks for an ICE restart).
        self.mids = mids
        self.ice_ufrag, self.ice_pwd = ice_credentials(offer)
        self.remote = remote
        self.role: str | None = None  # "viewer" once the registry took it
        self.stream: str | None = None
        self.name = ""
        self.quality = quality
        self.layer: str | None = None
        self.layer_reason = ""
        #: What the camera's reports say of it (the player itself reports nothing); the mode
        #: shows from the start.
        self.stats: ViewerStats = ViewerStats(mode="whep", fps=0.0)
        self.stats_at = 0.0
        #: Seen connected in a camera report (RTCP from the player reached the camera).
        self.connected = False
        self.answer: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.ended: str | None = None
        self._on_end = on_end
        self._counted: tuple[int, float] | None = None  # frames sent at the last report, and when

    def __repr__(self) -> str:
        return f"<WhepViewer {self.id} {self.stream or ''} {self.remote}>"

    def send(self, message: msgspec.Struct) -> None:
        if isinstance(message, Answer):
            if not self.answer.done():
                self.answer.set_result(message.sdp)
        elif isinstance(message, Hangup):
            self.end(f"the camera hung up: {message.reason}")
        elif isinstance(message, StreamEnded):
            self.end(f"the stream ended: {message.reason}", stream_ended=True)

    def send_text(self, text: str) -> None:
        """A message from the camera's instance (``--redis``), already encoded."""
        try:
            self.send(decode_server_message(text))
        except ProtocolError:
            pass  # a type this version does not know: nothing a WHEP session would act on

    def end(self, reason: str, stream_ended: bool = False) -> None:
        """End the session (once): a POST still waiting for the answer gets SessionEnded."""
        if self.ended is not None:
            return
        self.ended = reason
        if not self.answer.done():
            self.answer.set_exception(SessionEnded(reason, stream_ended))
            self.answer.exception()  # retrieved: the waiting POST, if any, reads it again
        asyncio.get_running_loop().call_soon(self._on_end, self, reason)

    def camera_saw(self, report: CameraViewerStats | None, at: float,
                   info: StreamInfo | None) -> ViewerStats | None:
        """The camera's latest word on this viewer (None: its report does not list it), as
        this viewer's stats; None unless it says the peer connection is up. Up means a
        receiver report came from the player: the camera measured a round trip or a loss."""
        if report is None or (report.rtt_ms is None and report.packets_lost is None):
            return None
        self.connected = True
        fps = 0.0
        if self._counted is not None and at > self._counted[1]:
            fps = max(0.0, (report.frames_sent - self._counted[0]) / (at - self._counted[1]))
        self._counted = (report.frames_sent, at)
        layers = info.layer_list() if info is not None else []
        layer = next((layer for layer in layers if layer.name == report.layer), None)
        return ViewerStats(
            mode="whep", fps=round(min(fps, 1000.0), 1), frames=report.frames_sent,
            width=layer.width if layer else 0, height=layer.height if layer else 0,
            rtt_ms=report.rtt_ms, packets_lost=report.packets_lost, layer=report.layer,
            layer_switches=report.layer_switches,
        )
