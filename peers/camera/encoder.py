"""The camera peer's video encoder: PyAV, realtime settings, run once per frame."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
from av.video.frame import PictureType

#: RTP video clock; packets handed to aiortc carry pts in this time base.
RTP_TIME_BASE = Fraction(1, 90000)

_CODEC_OPTIONS = {
    # libvpx: realtime deadline, its fastest speed (16: half the CPU of 8 for 0.4 dB less
    # luma PSNR at 640x480, and the encode thread holds the GIL less), no lookahead.
    # A keyframe at most 3 frames' worth of bits, as real-time senders cap them: a first
    # 360p keyframe was 20 kB (12 frames' worth), a burst that a capped link's queue cut
    # every time (the picture sharpens over the next frames instead).
    "vp8": ("libvpx", {"deadline": "realtime", "cpu-used": "16", "lag-in-frames": "0",
                       "error-resilient": "1", "auto-alt-ref": "0", "max-intra-rate": "300"}),
    # x264: constrained baseline for every browser (Safari included), no lookahead,
    # and forced keyframes as IDR so a late joiner can start decoding from them.
    "h264": ("libx264", {"preset": "veryfast", "tune": "zerolatency", "profile": "baseline",
                         "level": "3.1", "forced-idr": "1"}),
}


class VideoEncoder:
    """Encodes I420 frames to packets, which peers/camera/fanout.py packetizes once for every viewer."""

    def __init__(self, codec: str, width: int, height: int, fps: float, bitrate: int) -> None:
        if codec not in _CODEC_OPTIONS:
            raise ValueError(f"unsupported codec {codec!r}: use vp8 or h264")
        name, options = _CODEC_OPTIONS[codec]
        self.codec = codec
        self.width, self.height = width, height
        ctx = av.codec.CodecContext.create(name, "w")
        ctx.width, ctx.height = width, height
        ctx.pix_fmt = "yuv420p"
        ctx.time_base = RTP_TIME_BASE
        ctx.framerate = Fraction(fps).limit_denominator(1001)
        ctx.bit_rate = bitrate
        # Keyframes come on demand (viewer joins, PLI/FIR); one every 10 s as a safety net.
        ctx.gop_size = max(1, int(fps * 10))
        ctx.options = dict(options)
        # One thread: each layer encodes on a thread of its own already. libvpx's default
        # (a thread per core in every encoder) made parallel layers fight over the cores:
        # measured with 8 viewers on 2 to 4 layers of 1280x720, 180% of the cores and 8 fps,
        # against 59-81% and 30 fps with one thread each (bench/layers/cpu.py).
        ctx.thread_count = 1
        ctx.open()
        self._context = ctx
        self._ticks_per_frame = int(90000 / fps)
        self._frames = 0

    def encode(self, i420: np.ndarray, pts: int, keyframe: bool) -> list[av.Packet]:
        """Encode one picture given as an I420 array (height * 3/2, width).

        ``pts`` (90 kHz, from the capture time) goes on the packets. The encoder
        itself sees a steady frame clock, so pauses with no viewer and skipped
        frames do not make its rate control spend a burst of bits.
        """
        frame = av.VideoFrame.from_ndarray(i420, format="yuv420p")
        frame.pts = self._frames * self._ticks_per_frame
        frame.time_base = RTP_TIME_BASE
        self._frames += 1
        if keyframe:
            frame.pict_type = PictureType.I
        packets = self._context.encode(frame)
        for packet in packets:
            packet.pts = pts
            packet.time_base = RTP_TIME_BASE
        return packets
