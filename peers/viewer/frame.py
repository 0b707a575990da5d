"""One received picture, as the library hands it over: decoded only when asked for."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import av
import numpy as np
from peercam.peers.testpattern import Stamp, read_stamp


def luma_plane(frame: av.VideoFrame) -> np.ndarray:
    """The Y plane of a decoded frame as an (H, W) array, without converting the frame."""
    plane = frame.planes[0]
    rows = np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)
    return rows[: frame.height, : frame.width]


@dataclass(eq=False)
class Frame:
    """A picture from the camera, over P2P or the relay.

    ``image`` is the picture as a numpy ``uint8`` array, height x width x 3, in BGR order
    (OpenCV's), made on first use: a consumer that only counts frames pays nothing for
    it. ``video`` is the picture as a PyAV ``av.VideoFrame``, for PyAV and aiortc code.
    ``capture_time`` (Unix seconds, the camera's clock) and ``number`` come from the
    test pattern's stamp or the relay frame's header, and are None where the source
    carries neither.
    """

    width: int
    height: int
    #: "p2p" or "relay": how this frame came.
    mode: Literal["p2p", "relay"]
    #: When it was whole on this side (Unix seconds, this machine's clock).
    arrived: float
    capture_time: float | None = None
    number: int | None = None
    #: The quality layer it belongs to, when the sender said, and on the relay its JPEG quality.
    layer: str | None = None
    jpeg_quality: int | None = None
    _video: av.VideoFrame | None = field(default=None, repr=False)
    _jpeg: bytes | None = field(default=None, repr=False)
    _image: np.ndarray | None = field(default=None, repr=False)

    @classmethod
    def from_video(cls, video: av.VideoFrame, mode: Literal["p2p", "relay"], arrived: float,
                   layer: str | None = None) -> Frame:
        """A decoded P2P frame; the test pattern's stamp is read from its luma plane."""
        stamp = read_stamp(luma_plane(video))
        return cls(video.width, video.height, mode, arrived,
                   capture_time=stamp.time_ms / 1000 if stamp else None,
                   number=stamp.frame if stamp else None, layer=layer, _video=video)

    @classmethod
    def from_jpeg(cls, jpeg: bytes, width: int, height: int, arrived: float, capture_time: float,
                  number: int, layer: str | None = None, jpeg_quality: int | None = None) -> Frame:
        """A relay frame: its header said when and which (``number`` is the relay's sequence
        number of this layer and JPEG quality); the JPEG is decoded on demand."""
        return cls(width, height, "relay", arrived, capture_time=capture_time, number=number, layer=layer,
                   jpeg_quality=jpeg_quality, _jpeg=jpeg)

    @classmethod
    def from_relay_video(cls, video: av.VideoFrame, arrived: float, capture_time: float, number: int,
                         layer: str | None = None) -> Frame:
        """A decoded frame of the encoded relay: its header said when and which (``number`` is
        the relay's sequence number of this layer)."""
        return cls(video.width, video.height, "relay", arrived, capture_time=capture_time, number=number,
                   layer=layer, _video=video)

    @property
    def stamp(self) -> Stamp | None:
        """The capture time (ms) and number as the stamp reader gives them, or None."""
        if self.capture_time is None or self.number is None:
            return None
        return Stamp(time_ms=round(self.capture_time * 1000), frame=self.number)

    @property
    def image(self) -> np.ndarray:
        """The picture, numpy uint8, height x width x 3, BGR (OpenCV's order); decoded on first use."""
        if self._image is None:
            if self._video is not None:
                self._image = self._video.to_ndarray(format="bgr24")
            else:
                assert self._jpeg is not None
                import cv2  # only for JPEG relay frames: a viewer that never decodes one never loads it

                decoded = cv2.imdecode(np.frombuffer(self._jpeg, np.uint8), cv2.IMREAD_COLOR)
                if decoded is None:  # a corrupt JPEG: a black picture of the right size
                    decoded = np.zeros((self.height, self.width, 3), np.uint8)
                self._image = decoded
        return self._image

    @property
    def video(self) -> av.VideoFrame:
        """The picture as a PyAV frame, for encoders, recorders and aiortc tracks.

        The decoder's own frame, not converted (yuv420p as a rule): over P2P aiortc's, with
        its RTP ``pts`` and ``time_base``; on the encoded relay PyAV's, without a ``pts``. On
        the JPEG relay, a bgr24 frame of ``image``, made on first use.
        """
        if self._video is None:
            self._video = av.VideoFrame.from_ndarray(self.image, format="bgr24")
        return self._video
