"""The relay frame: one JPEG picture in one binary WebSocket message.

A 22-byte header (network byte order), then the JPEG bytes:

    offset size  field
    0      1     version (1)
    1      1     header length in bytes (22; a reader skips what it does not know)
    2      1     JPEG quality (1-100)
    3      1     flags (0; reserved)
    4      4     sequence number (uint32; +1 per frame of this layer and quality, gaps = drops)
    8      8     capture time (uint64, microseconds since the Unix epoch)
    16     2     width
    18     2     height
    20     1     layer: its index in the stream's info.layers (0: the top layer)
    21     1     reserved (0)

A reader that knows only the first 20 bytes (header length 20) reads layer 0.
web/js/relay-frame.js reads the same layout.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

RELAY_FRAME_VERSION = 1
_HEADER = struct.Struct("!BBBBIQHHBx")
_BASE_HEADER_SIZE = 20
HEADER_SIZE = _HEADER.size


class RelayFrameError(ValueError):
    pass


@dataclass(frozen=True)
class RelayFrameHeader:
    sequence: int
    capture_time_us: int
    width: int
    height: int
    quality: int
    layer: int = 0

    def pack(self, jpeg: bytes) -> bytes:
        return _HEADER.pack(RELAY_FRAME_VERSION, HEADER_SIZE, self.quality, 0,
                            self.sequence & 0xFFFFFFFF, self.capture_time_us,
                            self.width, self.height, self.layer) + jpeg


def parse_relay_frame(data: bytes) -> tuple[RelayFrameHeader, memoryview]:
    """The header and the JPEG bytes; RelayFrameError if it is not a relay frame."""
    if len(data) < _BASE_HEADER_SIZE:
        raise RelayFrameError(f"relay frame of {len(data)} bytes is shorter than its header")
    version, header_size, quality = data[0], data[1], data[2]
    if version != RELAY_FRAME_VERSION or header_size < _BASE_HEADER_SIZE or header_size > len(data):
        raise RelayFrameError(f"not a version {RELAY_FRAME_VERSION} relay frame")
    if header_size >= HEADER_SIZE:
        *_, sequence, capture_us, width, height, layer = _HEADER.unpack_from(data)
    else:
        *_, sequence, capture_us, width, height = struct.unpack_from("!BBBBIQHH", data)
        layer = 0
    jpeg = memoryview(data)[header_size:]
    if bytes(jpeg[:2]) != b"\xff\xd8":
        raise RelayFrameError("relay frame does not carry a JPEG picture")
    return RelayFrameHeader(sequence, capture_us, width, height, quality, layer), jpeg
