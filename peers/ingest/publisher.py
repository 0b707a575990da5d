r"""One WHIP publisher received in the server's process: its peer connection, and the
camera that publishes what it sends.

    publisher --RTP--> RTCPeerConnection (recvonly) --whole frames (FrameTap)--> PushEncodedSource
                                                                             \-> PushOpusSource
                       CameraPeer(PushEncodedSource, PushOpusSource) --/ws--> the server, like any camera

The publisher's frames are never decoded here: the camera passes them through as its top
layer (peers/camera/pipeline.py). It starts at the publisher's first keyframe, whose size
it publishes; until then viewers have nothing to start from anyway. A keyframe a viewer's
arrival needs becomes a PLI to the publisher, at most one a second: a publisher that
ignores them makes only its own viewers wait for its next keyframe.

A session ends on DELETE, when the publisher goes (ICE consent lapses, DTLS closes, an
RTCP BYE), when no frame came for MEDIA_TIMEOUT seconds, when it never connects or never
sends a keyframe in time, or when the camera cannot publish (the name was taken).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.rtcconfiguration import RTCBundlePolicy
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtcrtpreceiver import RTCRtpReceiver
from aiortc.sdp import MediaDescription, SessionDescription
from peercam.peers.camera.audiosources import PushOpusSource
from peercam.peers.camera.camera import CameraError, CameraOptions, CameraPeer
from peercam.peers.camera.capturetime import CaptureClock
from peercam.peers.camera.encodedsources import (
    NAL_IDR,
    EncodedPicture,
    ParameterSets,
    PushEncodedSource,
    picture_size,
)
from peercam.peers.ice import aiortc_candidate, rtc_configuration

from peercam.shared.protocol import IceCandidate, IceServer

from .frametap import FrameTap, tap_receiver

__all__ = ["CONNECT_TIMEOUT", "KEYFRAME_TIMEOUT", "MAX_CANDIDATES", "MEDIA_TIMEOUT", "PLI_INTERVAL",
           "OfferError", "PublisherPeer"]

log = logging.getLogger(__name__)

#: Seconds a publisher has to connect (ICE and DTLS) after its offer was answered.
CONNECT_TIMEOUT = 15.0
#: Seconds after connecting within which its first keyframe must come (PLIs ask for one).
KEYFRAME_TIMEOUT = 10.0
#: Seconds without a single video frame after which a publisher counts as gone. ICE consent
#: (RFC 7675) would notice a vanished one too, but only after 30 s.
MEDIA_TIMEOUT = 10.0
#: Seconds between PLIs sent to the publisher: a keyframe is many frames' worth of bits.
PLI_INTERVAL = 1.0
#: Trickled candidates a session takes, at most (a publisher has a few per interface).
MAX_CANDIDATES = 32
#: Pictures from the first keyframe on that measure the publisher's frame rate (by their
#: RTP timestamps) before the camera starts: 5 at 30 fps take 133 ms.
_RATE_PICTURES = 5

_VIDEO_CODECS = {"video/VP8": "vp8", "video/H264": "h264"}


class OfferError(ValueError):
    """The publisher's offer cannot be taken; the message says why (an HTTP 400)."""


def _keyframe(codec: str, data: bytes, nal_kinds: set[int]) -> bool:
    if codec == "vp8":
        return bool(data) and not data[0] & 1  # the frame tag's inverse key frame flag
    return NAL_IDR in nal_kinds


def _media_ssrc(media: MediaDescription) -> int | None:
    """The SSRC a publisher sends a kind of media with (not its retransmissions')."""
    for group in media.ssrc_group:
        if group.semantic == "FID" and group.items:
            return int(group.items[0])
    return media.ssrc[0].ssrc if media.ssrc else None


def _read_offer(sdp: str) -> SessionDescription:
    """The offer parsed and checked for what a WHIP publisher sends: one video and at most
    one audio section, sending, bundled on one transport. Raises OfferError."""
    if not sdp.startswith("v=0"):
        raise OfferError("the body is not an SDP offer (it must start with v=0)")
    try:
        offer = SessionDescription.parse(sdp)
    except Exception as exc:  # aiortc's parser raises whatever the text trips it on
        raise OfferError(f"the SDP offer does not parse ({type(exc).__name__}: {exc})") from None
    kinds = [media.kind for media in offer.media]
    if sorted(kinds) not in (["video"], ["audio", "video"]):
        raise OfferError(f"the offer has {', '.join(kinds) or 'no media'}: a WHIP publisher to peercam "
                         "sends one video and at most one audio section")
    for media in offer.media:
        if media.direction not in ("sendonly", "sendrecv", None):  # none said: sendrecv
            raise OfferError(f"the offer's {media.kind} is {media.direction}: a publisher sends (sendonly)")
        if media.ice is None or media.dtls is None:
            raise OfferError(f"the offer's {media.kind} has no ICE credentials or DTLS fingerprint")
    bundle = next((group for group in offer.group if group.semantic == "BUNDLE"), None)
    if len(offer.media) > 1 and (bundle is None or
                                 {str(m.rtp.muxId) for m in offer.media} - {str(i) for i in bundle.items}):
        raise OfferError("the offer does not bundle its sections: WHIP takes one transport (max-bundle)")
    return offer


class PublisherPeer:
    """Receives one WHIP publisher and publishes it on ``stream`` as a camera (see the
    module's docstring): ``start()`` with its offer, then ``answer`` holds the SDP answer;
    ``wait_closed()`` returns why it ended."""

    def __init__(self, stream: str, *, server: str, token: str = "", server_certificate: str | None = None,
                 ice_servers: Sequence[IceServer] = (), connect_timeout: float = CONNECT_TIMEOUT) -> None:
        self.stream = stream
        self._server, self._token, self._server_certificate = server, token, server_certificate
        self._connect_timeout = connect_timeout
        configuration = rtc_configuration(list(ice_servers))
        self._pc = RTCPeerConnection(RTCConfiguration(iceServers=configuration.iceServers,
                                                      bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))
        self._pc.on("connectionstatechange", self._connection_changed)
        self._connected = asyncio.Event()
        self._gone = asyncio.Event()
        self._why_gone = ""
        self._first_mid: str | None = None
        self._candidates = 0
        self._taps: list[FrameTap] = []
        # Video
        self._video_receiver: RTCRtpReceiver | None = None
        self._video_ssrc: int | None = None
        self._codec: str | None = None
        self._parameter_sets = ParameterSets()
        self._video_clock = CaptureClock(90000)
        self._starting: list[tuple[EncodedPicture, int]] = []  # from the first keyframe, with RTP times
        self._size: tuple[int, int] | None = None
        self._pictures = 0
        self._last_frame = time.monotonic()
        self.video: PushEncodedSource | None = None
        self._ready = asyncio.Event()  # the video source is made: the camera may start
        # Sound
        self._audio_clock = CaptureClock(48000)
        self._stereo: bool | None = None  # from the offer, else the first packet's TOC
        self.audio: PushOpusSource | None = None
        # Keyframe requests
        self._last_pli = float("-inf")
        self._pli_pending: asyncio.TimerHandle | None = None
        self._loop = asyncio.get_running_loop()
        self.camera: CameraPeer | None = None
        #: The SDP answer, once started.
        self.answer = ""
        self._task: asyncio.Task[str] | None = None

    async def start(self, offer_sdp: str) -> None:
        """Answer the offer (``answer``), then receive in the background until the session
        ends. Raises OfferError for an offer it cannot take (and then holds nothing)."""
        try:
            self.answer = await self._answer(offer_sdp)
        except BaseException:
            await self._pc.close()
            raise
        self._task = asyncio.create_task(self._run(), name=f"whip-{self.stream}")

    async def wait_closed(self) -> str:
        """Wait for the session's end; returns why it ended."""
        assert self._task is not None, "start() first"
        return await asyncio.shield(self._task)

    async def _answer(self, offer_sdp: str) -> str:
        """The SDP answer to the publisher's offer, with every candidate (the server cannot
        trickle): recvonly, bundled, rtcp-mux. Raises OfferError for an offer it cannot take."""
        offer = _read_offer(offer_sdp)
        transceivers = {}
        for media in offer.media:  # in the offer's order: the first carries the bundle
            transceiver = self._pc.addTransceiver(media.kind, direction="recvonly")
            if media.kind == "audio":  # sound passes through as Opus only
                opus = [c for c in RTCRtpReceiver.getCapabilities("audio").codecs if c.name.lower() == "opus"]
                transceiver.setCodecPreferences(opus)
                stereo = next((c.parameters for c in media.rtp.codecs if c.name.lower() == "opus"), {})
                if stereo.get("sprop-stereo") == 1 or stereo.get("stereo") == 1:
                    self._stereo = True
            else:
                self._video_ssrc = _media_ssrc(media)
            transceivers[media.kind] = transceiver
        try:
            await self._pc.setRemoteDescription(RTCSessionDescription(offer_sdp, "offer"))
        except Exception as exc:  # aiortc raises ValueError, OperationError, ... with its reason
            raise OfferError(f"the offer cannot be taken: {exc or type(exc).__name__} (peercam takes VP8 "
                             "or H.264 video, and Opus sound)") from None
        self._first_mid = self._pc.getTransceivers()[0].mid
        video = transceivers["video"]
        self._video_receiver = video.receiver
        self._taps.append(tap_receiver(video.receiver, self._video_frame,
                                       lambda: self._end("the publisher's video ended")))
        if "audio" in transceivers:
            self._taps.append(tap_receiver(transceivers["audio"].receiver, self._audio_packet, lambda: None))
        await self._pc.setLocalDescription(await self._pc.createAnswer())
        return self._pc.localDescription.sdp

    async def add_candidates(self, candidates: list[IceCandidate], end: bool) -> None:
        """Trickled candidates (a PATCH); every one goes to the one bundled transport.
        Those it cannot use (TCP, unresolvable names) are skipped, and so is every one past
        MAX_CANDIDATES: each costs connectivity checks."""
        for init in candidates:
            if self._candidates >= MAX_CANDIDATES or self._gone.is_set():
                break
            try:
                candidate = aiortc_candidate(init)
            except Exception:  # a line it cannot read: skipped, as the RFC says
                log.debug("%s: skipped a candidate it cannot read: %.100s", self.stream, init.candidate)
                continue
            if candidate.protocol.lower() != "udp":
                continue
            candidate.sdpMid, candidate.sdpMLineIndex = self._first_mid, 0
            self._candidates += 1
            try:
                await self._pc.addIceCandidate(candidate)
            except Exception as exc:  # aioice refuses what it cannot use
                log.debug("%s: skipped a candidate (%s)", self.stream, exc)
        if end and not self._gone.is_set():
            try:
                await self._pc.addIceCandidate(None)
            except Exception as exc:  # a connection that closed meanwhile
                log.debug("%s: end of candidates not taken (%s)", self.stream, exc)

    def _connection_changed(self) -> None:
        state = self._pc.connectionState
        if state == "connected":
            self._connected.set()
        elif state in ("failed", "closed"):
            self._end(f"the publisher's connection {state}")

    def _end(self, why: str) -> None:
        if not self._gone.is_set():
            self._why_gone = why
            self._gone.set()

    # The publisher's media, on the event loop --------------------------------------------

    def _video_frame(self, codec: RTCRtpCodecParameters, data: bytes, timestamp: int) -> None:
        arrival = time.time()
        self._last_frame = time.monotonic()
        name = _VIDEO_CODECS.get(codec.mimeType)
        if name is None or not data:
            return
        if self._codec is None:
            self._codec = name
        elif name != self._codec:  # a publisher that changed codec: the camera cannot follow
            self._end(f"the publisher changed codec from {self._codec} to {name}")
            return
        kinds: set[int] = set()
        if name == "h264":
            kinds = self._parameter_sets.learn(data)
            data = self._parameter_sets.complete(data)
        keyframe = _keyframe(name, data, kinds)
        picture = EncodedPicture(data, keyframe, self._video_clock.capture_time(timestamp, arrival),
                                 self._pictures)
        self._pictures += 1
        if self.video is not None:
            self.video.push(picture)
        elif self._starting or keyframe:
            self._start_with(picture, timestamp)
        else:
            self._request_keyframe()  # the publisher's first frames may precede our joining

    def _start_with(self, picture: EncodedPicture, timestamp: int) -> None:
        """Gather the first pictures from a keyframe: its size, and the rate they come at."""
        if not self._starting:
            size = picture_size(self._codec or "", picture.data)
            if size is None:
                log.info("%s: a keyframe that does not decode; waiting for the next", self.stream)
                self._request_keyframe()
                return
            self._size = size
        self._starting.append((picture, timestamp))
        span = (self._starting[-1][1] - self._starting[0][1]) / 90000
        if len(self._starting) < _RATE_PICTURES and span < 0.5:
            return
        fps = (len(self._starting) - 1) / span if span > 0 else 30.0
        fps = min(120.0, max(1.0, round(fps, 1)))
        profile = self._parameter_sets.profile if self._codec == "h264" else None
        assert self._size is not None and self._codec is not None
        self.video = PushEncodedSource(self._codec, *self._size, fps, profile, "whip")
        self.video.on_keyframe_request = self._keyframe_wanted
        for starting, _ in self._starting:
            self.video.push(starting)
        self._starting.clear()
        self._ready.set()

    def _audio_packet(self, codec: RTCRtpCodecParameters, data: bytes, timestamp: int) -> None:
        if not data or codec.name.lower() != "opus":
            return
        arrival = time.time()
        if self._stereo is None:
            self._stereo = bool(data[0] & 0x04)  # the TOC byte's stereo flag
        capture_time = self._audio_clock.capture_time(timestamp, arrival)
        if self.audio is not None:
            self.audio.push(data, capture_time)

    # Keyframe requests -------------------------------------------------------------------

    def _keyframe_wanted(self) -> None:
        """The camera wants a keyframe (from any thread)."""
        self._loop.call_soon_threadsafe(self._request_keyframe)

    def _request_keyframe(self) -> None:
        """A PLI now, or when the interval since the last one is over (requests merge)."""
        if self._pli_pending is not None:
            return
        wait = self._last_pli + PLI_INTERVAL - time.monotonic()
        if wait > 0:
            self._pli_pending = self._loop.call_later(wait, self._send_pli)
        else:
            self._send_pli()

    def _send_pli(self) -> None:
        self._pli_pending = None
        receiver = self._video_receiver
        if receiver is None or self._gone.is_set():
            return
        ssrc = self._video_ssrc
        if ssrc is None:  # an offer without a=ssrc: the source the packets came from
            sources = receiver.getSynchronizationSources()
            if not sources:
                return
            ssrc = sources[0].source
        self._last_pli = time.monotonic()
        # aiortc's own PLI sender (protected; aiortc is pinned for it): it has no public one.
        asyncio.ensure_future(receiver._send_rtcp_pli(ssrc))

    # The session's life ------------------------------------------------------------------

    async def _run(self) -> str:
        """Connect, wait for the first keyframe, publish, until the publisher goes or
        ``close()``; returns why it ended. Raises nothing: the server goes on."""
        try:
            why = await self._until(self._connected, self._connect_timeout,
                                    f"did not connect within {self._connect_timeout:g} s")
            if why:
                return why
            self._request_keyframe()
            why = await self._until(self._ready, KEYFRAME_TIMEOUT,
                                    f"sent no keyframe within {KEYFRAME_TIMEOUT:g} s of connecting")
            return why or await self._publish()
        except Exception as exc:  # one publisher's failure ends its session only
            log.exception("%s: the WHIP session failed", self.stream)
            return f"it failed: {exc or type(exc).__name__}"
        finally:
            await self._shut()

    async def _publish(self) -> str:
        """Publish the publisher's media as a camera until either goes."""
        video = self.video
        assert video is not None
        if self._taps[1:]:
            self.audio = PushOpusSource(2 if self._stereo else 1, "whip")
        options = CameraOptions(server=self._server, stream=self.stream, codec=video.codec,
                                token=self._token, server_certificate=self._server_certificate)
        self.camera = CameraPeer(options, video, self.audio)
        log.info("%s: WHIP publisher sends %s %dx%d@%g%s", self.stream, video.codec, video.width,
                 video.height, video.fps, " with Opus sound" if self.audio else "")
        camera_task = asyncio.create_task(self.camera.run(), name=f"whip-camera-{self.stream}")
        watchdog = asyncio.create_task(self._watch_media())
        gone = asyncio.create_task(self._gone.wait())
        try:
            await asyncio.wait({camera_task, gone, watchdog}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (camera_task, watchdog, gone):
                task.cancel()
            await asyncio.gather(camera_task, watchdog, gone, return_exceptions=True)
        if camera_task.done() and not camera_task.cancelled() and camera_task.exception() is not None:
            exc = camera_task.exception()
            if not isinstance(exc, CameraError):
                log.error("%s: the camera failed", self.stream, exc_info=exc)
            return f"the camera could not publish: {exc}"
        return self._why_gone

    async def _until(self, event: asyncio.Event, timeout: float, late: str) -> str | None:
        """None once ``event`` is set; why not, when the publisher went or took too long."""
        waiting = asyncio.create_task(event.wait())
        gone = asyncio.create_task(self._gone.wait())
        try:
            await asyncio.wait({waiting, gone}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiting.cancel()
            gone.cancel()
        if self._gone.is_set():
            return self._why_gone
        return None if event.is_set() else f"the publisher {late}"

    async def _watch_media(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            if time.monotonic() - self._last_frame > MEDIA_TIMEOUT:
                self._end(f"no video came for {MEDIA_TIMEOUT:g} s")
                return

    async def _shut(self) -> None:
        self._end("closed")
        if self._pli_pending is not None:
            self._pli_pending.cancel()
        for source in (self.video, self.audio):
            if source is not None:
                source.close()
        await self._pc.close()

    def close(self, why: str = "the publisher ended it") -> None:
        """End the session (DELETE, the server's shutdown): ``wait_closed()`` returns soon after."""
        self._end(why)
