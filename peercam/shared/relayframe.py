"""The relay frame: one picture, or one packet of sound, in one binary WebSocket message.

A 22-byte header (network byte order), then the picture's (or sound's) bytes. The version
byte tells the three formats apart:

    offset size  field
    0      1     version: 1 JPEG picture, 2 encoded video frame, 3 encoded audio packet
    1      1     header length in bytes (22; a reader skips what it does not know)
    2      1     version 1: JPEG quality (1-100); versions 2 and 3: codec (1 VP8, 2 H.264; 1 Opus)
    3      1     flags: version 2: bit 0 set on a keyframe; versions 1 and 3: 0 (reserved)
    4      4     sequence number (uint32; +1 per frame of this rendition, gaps = frames not sent)
    8      8     capture time (uint64, microseconds since the Unix epoch)
    16     2     width; version 3: sample rate (Hz, 48000 for Opus)
    18     2     height; version 3: channels (1 or 2)
    20     1     layer: its index in the stream's info.layers (0: the top layer); version 3: 0
    21     1     reserved (0)

Version 1 carries a JPEG picture (decodable alone: a reader may skip any frame). A
reader that knows only its first 20 bytes (header length 20) reads layer 0.

Version 2 carries one frame exactly as the camera's encoder made it for that layer,
the same bytes its P2P viewers get: a VP8 frame, or H.264 as Annex B NAL units.
A frame decodes only after the frames before it, back to a keyframe: a reader that
misses a sequence number waits for the next keyframe.

Version 3 carries one Opus packet (20 ms of sound) exactly as the camera's encoder made it,
the same bytes its P2P viewers get; its capture time is that of its first sample. Every
packet decodes on its own (a gap in sequence numbers is sound lost, which the decoder
conceals). Only readers that asked for sound (``relay`` with ``audio``) get them.

web/js/relay-frame.js reads and writes the same layout, with these constants (generated into
web/js/protocol.js); tests/relayframe_cases.json runs against both.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

__all__ = [
    "AUDIO_CODECS", "AUDIO_VERSION", "BASE_HEADER_SIZE", "CODECS", "ENCODED_VERSION", "HEADER_SIZE",
    "JPEG_VERSION", "KEYFRAME_FLAG", "LAYER_OFFSET", "MAX_JPEG_QUALITY", "MIN_JPEG_QUALITY",
    "RelayFrameError", "RelayFrameHeader", "SAMPLE_RATES", "jpeg_size", "parse_relay_frame",
]

JPEG_VERSION = 1
ENCODED_VERSION = 2
AUDIO_VERSION = 3
#: The codec byte of an encoded frame.
CODECS = {"vp8": 1, "h264": 2}
_CODEC_NAMES = {number: name for name, number in CODECS.items()}
#: The codec byte of an audio packet.
AUDIO_CODECS = {"opus": 1}
_AUDIO_CODEC_NAMES = {number: name for name, number in AUDIO_CODECS.items()}
#: The sample rates and channel counts an audio packet may say.
SAMPLE_RATES = frozenset({48000})
#: The flags bit of an encoded keyframe.
KEYFRAME_FLAG = 0x01
#: A JPEG picture's quality byte.
MIN_JPEG_QUALITY, MAX_JPEG_QUALITY = 1, 100

_HEADER = struct.Struct("!BBBBIQHHBx")
#: The fields every frame has: a header this long carries no layer (it is layer 0).
BASE_HEADER_SIZE = 20
#: Where the layer byte is, in a longer header.
LAYER_OFFSET = 20
HEADER_SIZE = _HEADER.size


class RelayFrameError(ValueError):
    pass


@dataclass(frozen=True)
class RelayFrameHeader:
    sequence: int
    capture_time_us: int
    width: int
    height: int
    #: A JPEG picture's JPEG quality; 0 on encoded frames.
    jpeg_quality: int = 0
    layer: int = 0
    #: An encoded frame's codec ("vp8", "h264") or an audio packet's ("opus"); None on a JPEG picture.
    codec: str | None = None
    #: An encoded frame that decodes on its own (every JPEG picture and audio packet does).
    keyframe: bool = False

    @property
    def format(self) -> str:
        """"jpeg", "encoded" or "audio"."""
        if self.codec is None:
            return "jpeg"
        return "audio" if self.codec in AUDIO_CODECS else "encoded"

    @property
    def sample_rate(self) -> int:
        """An audio packet's sample rate (Hz): its ``width`` field."""
        return self.width

    @property
    def channels(self) -> int:
        """An audio packet's channel count: its ``height`` field."""
        return self.height

    @classmethod
    def audio(cls, sequence: int, capture_time_us: int, sample_rate: int, channels: int,
              codec: str = "opus") -> RelayFrameHeader:
        """The header of an audio packet."""
        return cls(sequence, capture_time_us, sample_rate, channels, codec=codec, keyframe=True)

    def pack(self, payload: bytes) -> bytes:
        if self.codec is None:
            version, byte2, flags = JPEG_VERSION, self.jpeg_quality, 0
        elif self.codec in AUDIO_CODECS:
            version, byte2, flags = AUDIO_VERSION, AUDIO_CODECS[self.codec], 0
        else:
            version, byte2, flags = ENCODED_VERSION, CODECS[self.codec], KEYFRAME_FLAG if self.keyframe else 0
        return _HEADER.pack(version, HEADER_SIZE, byte2, flags, self.sequence & 0xFFFFFFFF,
                            self.capture_time_us, self.width, self.height, self.layer) + payload


#: JPEG markers that start a frame header (SOFn: baseline, progressive, ...; not DHT, JPG, DAC).
_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_START_OF_SCAN, _END_OF_IMAGE = 0xDA, 0xD9


def jpeg_size(picture: bytes | memoryview) -> tuple[int, int]:
    """A JPEG picture's width and height, from its frame header (what a decoder allocates
    for, whatever the relay header says); RelayFrameError if it has none before its scan."""
    i = 2  # past SOI
    while i + 4 <= len(picture):
        if picture[i] != 0xFF:
            break
        marker = picture[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (_START_OF_SCAN, _END_OF_IMAGE):
            break
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:  # no length
            i += 2
            continue
        if marker in _SOF_MARKERS:
            if i + 9 > len(picture):
                break
            height, width = struct.unpack_from("!HH", picture, i + 5)
            return width, height
        i += 2 + struct.unpack_from("!H", picture, i + 2)[0]
    raise RelayFrameError("relay frame's JPEG picture has no frame header")


def parse_relay_frame(data: bytes) -> tuple[RelayFrameHeader, memoryview]:
    """The header and the picture's bytes; RelayFrameError if it is not a relay frame."""
    if len(data) < BASE_HEADER_SIZE:
        raise RelayFrameError(f"relay frame of {len(data)} bytes is shorter than its header")
    version, header_size, byte2, flags = data[0], data[1], data[2], data[3]
    if version not in (JPEG_VERSION, ENCODED_VERSION, AUDIO_VERSION) or not (
            BASE_HEADER_SIZE <= header_size <= len(data)):
        raise RelayFrameError(f"not a relay frame (version {JPEG_VERSION}, {ENCODED_VERSION} "
                              f"or {AUDIO_VERSION})")
    sequence, capture_us, width, height = struct.unpack_from("!IQHH", data, 4)
    layer = data[LAYER_OFFSET] if header_size > LAYER_OFFSET else 0
    payload = memoryview(data)[header_size:]
    if version == JPEG_VERSION:
        if not MIN_JPEG_QUALITY <= byte2 <= MAX_JPEG_QUALITY:
            raise RelayFrameError(f"relay frame of JPEG quality {byte2}: "
                                  f"the quality is {MIN_JPEG_QUALITY} to {MAX_JPEG_QUALITY}")
        if bytes(payload[:2]) != b"\xff\xd8":
            raise RelayFrameError("relay frame does not carry a JPEG picture")
        return RelayFrameHeader(sequence, capture_us, width, height, byte2, layer), payload
    if version == AUDIO_VERSION:
        codec = _AUDIO_CODEC_NAMES.get(byte2)
        if codec is None:
            raise RelayFrameError(f"audio relay frame of unknown codec {byte2}")
        if width not in SAMPLE_RATES or height not in (1, 2):
            raise RelayFrameError(f"audio relay frame of {width} Hz and {height} channels: "
                                  "Opus is 48000 Hz, 1 or 2 channels")
        if not payload:
            raise RelayFrameError("audio relay frame without a packet")
        return RelayFrameHeader.audio(sequence, capture_us, width, height, codec), payload
    codec = _CODEC_NAMES.get(byte2)
    if codec is None:
        raise RelayFrameError(f"encoded relay frame of unknown codec {byte2}")
    if not payload:
        raise RelayFrameError("encoded relay frame without a frame")
    keyframe = bool(flags & KEYFRAME_FLAG)
    return RelayFrameHeader(sequence, capture_us, width, height, 0, layer, codec, keyframe), payload
