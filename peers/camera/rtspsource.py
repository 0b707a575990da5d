"""An RTSP camera (``--source rtsp://[user:pass@]host[:port]/path``) read through PyAV.

Its H.264 passes through (peers/camera/encodedsources.py); its sound passes through when it
is Opus, and is decoded for the camera's Opus encoder when it is AAC or G.711. One reader
thread demuxes both. When the camera drops (PyAV's demux just ends) or stalls, the reader
reconnects with the signaling connection's backoff; the stream and its viewers stay, and
pictures resume at the camera's next keyframe.

Credentials never leave this module: the description, the log and every error show the URL
without them (FFmpeg's own messages repeat the URL as given).
"""

from __future__ import annotations

import logging
import re
import threading
import time

import av
from peercam.peers.signaling_client import Backoff

from .audiosources import AudioSource, PushAudioSource, PushOpusSource
from .capturetime import CaptureClock
from .encodedsources import EncodedPicture, ParameterSets, PushEncodedSource, nal_units, picture_size
from .sources import SourceError

__all__ = ["RtspSource", "is_rtsp", "redact"]

log = logging.getLogger(__name__)

#: PyAV's wait for the camera: (opening, each read). A camera silent this long is dropped.
OPEN_TIMEOUT, READ_TIMEOUT = 5.0, 3.0

_USERINFO = re.compile(r"(rtsps?://)[^/@\s]*@", re.IGNORECASE)


def is_rtsp(spec: str) -> bool:
    return spec.lower().startswith(("rtsp://", "rtsps://"))


def redact(text: str) -> str:
    """``text`` with the credentials of every RTSP URL in it removed."""
    return _USERINFO.sub(r"\1", text)


def _why(exc: Exception) -> str:
    """What went wrong, without the URL FFmpeg's errors repeat (and its credentials)."""
    return redact(getattr(exc, "strerror", None) or str(exc))


def _slice_starts_picture(unit: bytes) -> bool:
    """Whether a VCL NAL unit begins a picture: its slice header's first_mb_in_slice (the
    first Exp-Golomb number) is 0, which is written as a single 1 bit."""
    return len(unit) > 1 and bool(unit[1] & 0x80)


class RtspSource(PushEncodedSource):
    """An RTSP camera's video as it came, and ``audio`` (its sound, or None).

    Opening it connects once, to learn the codec, size and profile, and raises SourceError
    (without the credentials) when it cannot. Then a reader thread keeps it connected.
    """

    def __init__(self, url: str, transport: str = "tcp", audio: bool = True) -> None:
        if transport not in ("tcp", "udp"):
            raise SourceError(f"RTSP transport {transport!r}: use tcp or udp")
        self._url = url
        self._transport = transport
        description = redact(url)
        container = self._open(description)
        try:
            video = container.streams.video[0]
            codec = video.codec_context.name
            extradata = bytes(video.codec_context.extradata or b"")
            self._parameter_sets = ParameterSets(extradata)
            width, height = video.codec_context.width, video.codec_context.height
            first: list[av.Packet] = []
            if not width or not height:  # no size in the SDP: the first keyframe tells it
                width, height = self._size_from_keyframe(container, video, first, description)
            rate = video.average_rate or video.guessed_rate
            fps = float(rate) if rate and 1 <= rate <= 240 else 30.0
        except BaseException:
            container.close()
            raise
        super().__init__(codec, width, height, fps,
                         self._parameter_sets.profile, description)
        #: The camera's sound, when it has some and ``audio`` asked for it.
        self.audio: AudioSource | None = self._audio_source(container, description) if audio else None
        self._container: av.container.InputContainer | None = container
        self._first = first
        #: Each stream's capture clock and its first timestamp, for the connection under way.
        self._clocks: dict[int, tuple[CaptureClock, int]] = {}
        self._numbers = 0
        #: Whether this camera's pictures come in more than one packet (slices): merged then.
        self._multi_slice: bool | None = None
        self._pending: EncodedPicture | None = None
        self.reconnects = 0
        self._reader = threading.Thread(target=self._read_forever, name="rtsp", daemon=True)
        self._reader.start()

    def _open(self, description: str) -> av.container.InputContainer:
        try:
            return av.open(self._url, options={"rtsp_transport": self._transport,
                                               "timeout": str(int(READ_TIMEOUT * 1_000_000))},
                           timeout=(OPEN_TIMEOUT, READ_TIMEOUT))
        except (av.FFmpegError, OSError) as exc:
            raise SourceError(f"cannot open {description}: {_why(exc)}") from None

    @staticmethod
    def _size_from_keyframe(container, video, first: list, description: str) -> tuple[int, int]:
        for packet in container.demux(video):
            if packet.size:
                first.append(packet)
            if packet.is_keyframe and (size := picture_size(video.codec_context.name, bytes(packet))):
                return size
            if len(first) > 300:
                break
        raise SourceError(f"{description} sent no picture whose size could be read")

    def _audio_source(self, container, description: str) -> AudioSource | None:
        if not container.streams.audio:
            return None
        stream = container.streams.audio[0]
        channels = 2 if (stream.codec_context.channels or 1) >= 2 else 1
        if stream.codec_context.name == "opus":
            return PushOpusSource(channels, f"{description} (Opus)")
        return PushAudioSource(channels, f"{description} ({stream.codec_context.name})")

    def close(self) -> None:
        super().close()
        if self.audio is not None:
            self.audio.close()

    # The reader thread -------------------------------------------------------------

    def _read_forever(self) -> None:
        backoff = Backoff()
        while not self._closed.is_set():
            container = self._container
            if container is None:
                try:
                    container = self._container = self._open(self.description)
                except SourceError as exc:
                    log.warning("%s; trying again", exc)
                    self._closed.wait(backoff.next_delay())
                    continue
                self.reconnects += 1
                log.info("%s: connected again", self.description)
            try:
                packets = 0
                for packet in self._demux(container):
                    if self._closed.is_set():
                        break
                    packets += 1
                    if packets == 30:
                        backoff.reset()  # it works again: a later drop starts the backoff afresh
                    self._take(packet)
                else:
                    if not self._closed.is_set():
                        log.warning("%s stopped sending; reconnecting", self.description)
            except (av.FFmpegError, OSError) as exc:
                if not self._closed.is_set():
                    log.warning("%s: %s; reconnecting", self.description, _why(exc))
            container.close()
            self._container = None
            self._flush()
            self._clocks.clear()
            self._multi_slice = None
            if not self._closed.is_set():
                self._closed.wait(backoff.next_delay())

    def _demux(self, container):
        first, self._first = self._first, []
        yield from first
        streams = [container.streams.video[0], *(container.streams.audio[:1] if self.audio else [])]
        yield from container.demux(streams)

    def _take(self, packet: av.Packet) -> None:
        if packet.size == 0:
            return
        if packet.stream.type == "video":
            self._take_video(packet)
        elif self.audio is not None:
            self._take_audio(packet)

    def _take_video(self, packet: av.Packet) -> None:
        data = bytes(packet)
        if self.codec != "h264":
            self.push(EncodedPicture(data, packet.is_keyframe, self._capture_time(packet),
                                      self._next_number()))
            return
        first_slice = next((unit for kind, unit in nal_units(data) if kind in (1, 5)), None)  # VCL
        continues = first_slice is not None and not _slice_starts_picture(first_slice)
        if continues:
            # A later slice of a picture: one picture goes out as one access unit (the RTP
            # marker bit ends it), so a camera that slices its pictures has each wait for
            # the packet after it (one frame's time); others go out as they come.
            self._multi_slice = True
            if self._pending is not None:
                self._pending = EncodedPicture(self._pending.data + data, self._pending.keyframe,
                                               self._pending.capture_time, self._pending.number)
                return
        elif self._pending is not None:
            if self._multi_slice is None:
                self._multi_slice = False  # the first picture came whole
            self._flush()
        picture = EncodedPicture(self._parameter_sets.complete(data), packet.is_keyframe,
                                 self._capture_time(packet), self._next_number())
        if self._multi_slice is False:
            self.push(picture)
        else:
            self._pending = picture  # until the next packet says whether more of it comes

    def _flush(self) -> None:
        if self._pending is not None:
            pending, self._pending = self._pending, None
            self.push(pending)

    def _capture_time(self, packet: av.Packet) -> float:
        """When the packet's content was captured, by its stream's timestamps (the first packet
        of a connection may have none: then when it arrived)."""
        arrival = time.time()
        if packet.pts is None or packet.time_base is None:
            return arrival
        entry = self._clocks.get(packet.stream.index)
        if entry is None:
            clock = CaptureClock(round(1 / packet.time_base))
            entry = self._clocks[packet.stream.index] = (clock, packet.pts)
        clock, first = entry
        return clock.capture_time(packet.pts - first, arrival)

    def _next_number(self) -> int:
        self._numbers += 1
        return self._numbers

    def _take_audio(self, packet: av.Packet) -> None:
        capture_time = self._capture_time(packet)
        if isinstance(self.audio, PushOpusSource):
            self.audio.push(bytes(packet), capture_time)
            return
        assert isinstance(self.audio, PushAudioSource)
        try:
            for frame in packet.decode():
                self.audio.push_frame(frame)
        except av.FFmpegError:
            pass  # a damaged packet: its sound is missing, as a lost one's would be
