"""What server instances tell each other through Redis (``--redis``): typed, validated.

Two kinds of channel carry them. ``peercam:events`` goes to every instance: clients
arriving, changing and leaving, chat lines, reservations, ends. ``peercam:to:ID`` goes
to one instance: a message for one of its clients, relay demand for its camera, or
(the other way) which JPEG renditions that camera makes for every instance.
Relay frames travel raw on ``peercam:relay:STREAM``; they are binary, not these. A viewer's
talk frames go to the camera's instance on ``peercam:talk:ID``, each in a TalkFrame (msgpack:
the frame stays bytes).
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from peercam.signaling.registry.remoteclient import ClientRecord
from peercam.signaling.relay.renditions import MAX_JPEG_RENDITIONS

from peercam.shared.protocol import JpegRendition


class _Event(msgspec.Struct, tag_field="op", kw_only=True):
    node: str  # the instance that sends it


class ClientUpdate(_Event, tag="client"):
    """A client of ``node`` published, watched, or changed (quality, name, relay, stats)."""

    client: ClientRecord


class ClientGone(_Event, tag="gone"):
    """A client of ``node`` left (``reason`` goes to a camera's viewers)."""

    id: str
    stream: str
    reason: str = ""


class NodeSync(_Event, tag="sync"):
    """``node`` rewrote its clients hash (it started, or Redis came back): read it again."""


class NodeLeaving(_Event, tag="leaving"):
    """``node`` shuts down gracefully: forget its clients now, not when its heartbeat ends."""


class Chat(_Event, tag="chat"):
    """A camera's chat line (an encoded ``chat`` message) for every viewer of ``stream``."""

    stream: str
    text: str


class Reserve(_Event, tag="reserve"):
    """An administrator reserved ``stream`` on ``node``."""

    stream: str


class End(_Event, tag="end"):
    """An administrator ended ``stream`` on ``node``."""

    stream: str
    reason: str


class Deliver(_Event, tag="deliver"):
    """An encoded server message for client ``to`` of ``stream``, on the receiver's instance.
    A ``layer`` message also says so in ``layer``: the viewer's own instance keeps its layer."""

    to: str
    stream: str
    text: str
    layer: str | None = None
    layer_reason: str = ""


class RelayDemand(_Event, tag="relay-demand"):
    """What ``node``'s relay readers of ``stream`` read, for the camera's instance to merge
    (``audio``: some of them listen to its sound)."""

    stream: str
    jpeg: list[JpegRendition] = []
    encoded: list[str] = []
    audio: bool = False


class RelayRenditions(_Event, tag="relay-renditions"):
    """The JPEG renditions ``node``'s camera of ``stream`` makes for every instance (at most
    MAX_JPEG_RENDITIONS in all), for an instance whose relay readers asked (RelayDemand):
    a reader whose own rendition is not among them reads the nearest that is."""

    stream: str
    jpeg: Annotated[list[JpegRendition], msgspec.Meta(max_length=MAX_JPEG_RENDITIONS)] = []


class TalkFrame(msgspec.Struct, kw_only=True):
    """A talk frame (an Opus relay frame, version 3) from viewer ``sender`` of ``stream`` on
    instance ``node``, for the stream's camera on the instance whose talk channel it is on."""

    node: str
    stream: str
    sender: str
    frame: bytes


Envelope = (ClientUpdate | ClientGone | NodeSync | NodeLeaving | Chat | Reserve | End | Deliver | RelayDemand
            | RelayRenditions)

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Envelope)
_record_decoder = msgspec.json.Decoder(ClientRecord)
_talk_encoder = msgspec.msgpack.Encoder()
_talk_decoder = msgspec.msgpack.Decoder(TalkFrame)


def encode_envelope(envelope: Envelope) -> bytes:
    return _encoder.encode(envelope)


def decode_envelope(data: bytes) -> Envelope:
    """Raises msgspec.DecodeError (or ValidationError) on anything else."""
    return _decoder.decode(data)


def encode_record(record: ClientRecord) -> bytes:
    return _encoder.encode(record)


def decode_record(data: bytes) -> ClientRecord:
    return _record_decoder.decode(data)


def encode_talk_frame(talk: TalkFrame) -> bytes:
    return _talk_encoder.encode(talk)


def decode_talk_frame(data: bytes) -> TalkFrame:
    """Raises msgspec.DecodeError (or ValidationError) on anything else."""
    return _talk_decoder.decode(data)
