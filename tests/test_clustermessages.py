"""signaling/cluster/messages.py: what instances tell each other round-trips, and anything
else is refused by the decoder."""

from __future__ import annotations

import msgspec
import pytest
from peercam.signaling.cluster.messages import (
    Chat,
    ClientGone,
    ClientRecord,
    ClientUpdate,
    Deliver,
    End,
    NodeLeaving,
    NodeSync,
    RelayDemand,
    RelayRenditions,
    Reserve,
    TalkFrame,
    decode_envelope,
    decode_record,
    decode_talk_frame,
    encode_envelope,
    encode_record,
    encode_talk_frame,
)
from peercam.signaling.relay.renditions import MAX_JPEG_RENDITIONS

from peercam.shared.protocol import CameraStats, JpegRendition, LayerInfo, StreamInfo, ViewerStats

CAMERA = ClientRecord(id="c1", role="camera", stream="cam", name="Cam", with_token=True,
                      info=StreamInfo(width=640, height=480, fps=30, codec="vp8",
                                      layers=[LayerInfo(name="480p", width=640, height=480, fps=30)]),
                      since=1700000000.5, camera_stats=CameraStats(fps=30, encode_ms=3.5),
                      stats_at=1700000001.0)
VIEWER = ClientRecord(id="v1", role="viewer", stream="cam", name="pat", quality="360p", jpeg_quality=60,
                      layer="360p", layer_reason="pick", relay_format="encoded",
                      viewer_stats=ViewerStats(mode="relay", fps=29.5), stats_at=1700000002.0)

ENVELOPES = [
    ClientUpdate(node="n1", client=CAMERA),
    ClientUpdate(node="n1", client=VIEWER),
    ClientGone(node="n1", id="v1", stream="cam", reason="camera disconnected"),
    NodeSync(node="n1"),
    NodeLeaving(node="n1"),
    Chat(node="n1", stream="cam", text='{"type":"chat"}'),
    Reserve(node="n1", stream="cam"),
    End(node="n1", stream="cam", reason="ended by an administrator"),
    Deliver(node="n1", to="v1", stream="cam", text='{"type":"answer"}', layer="360p", layer_reason="pick"),
    RelayDemand(node="n1", stream="cam", jpeg=[JpegRendition("480p", 80)], encoded=["360p"]),
    RelayRenditions(node="n1", stream="cam", jpeg=[JpegRendition("480p", q) for q in range(10, 50, 10)]),
    RelayRenditions(node="n1", stream="cam"),
]


@pytest.mark.parametrize("envelope", ENVELOPES, ids=lambda e: type(e).__name__)
def test_every_envelope_round_trips(envelope):
    assert decode_envelope(encode_envelope(envelope)) == envelope


def test_client_records_round_trip_with_their_stats():
    for record in (CAMERA, VIEWER):
        assert decode_record(encode_record(record)) == record


@pytest.mark.parametrize("data", [
    b"", b"\xff", b"[]", b"{}", b'{"op": "nope", "node": "n"}', b'{"op": "sync"}',
    b'{"op": "deliver", "node": "n", "to": 5, "stream": "s", "text": "t"}',
    b'{"op": "client", "node": "n", "client": {"id": "x"}}',
    b'{"op": "relay-demand", "node": "n", "stream": "s", "jpeg": [{"layer": 1}]}',
    b'{"op": "relay-renditions", "node": "n", "stream": "s", "jpeg": [{"layer": "480p", "jpeg_quality": 0}]}',
    b'{"op": "relay-renditions", "node": "n", "stream": "s", "jpeg": {}}',
    b'{"op": "relay-renditions", "node": "n", "jpeg": []}',
])
def test_anything_else_is_refused(data):
    with pytest.raises(msgspec.DecodeError):
        decode_envelope(data)


def test_the_renditions_a_camera_makes_are_at_most_its_cap():
    """An instance is never told of more JPEG renditions than a camera makes in all."""
    made = [{"layer": "480p", "jpeg_quality": q} for q in range(10, 10 + 10 * (MAX_JPEG_RENDITIONS + 1), 10)]
    data = msgspec.json.encode({"op": "relay-renditions", "node": "n", "stream": "s", "jpeg": made})
    with pytest.raises(msgspec.ValidationError):
        decode_envelope(data)


def test_talk_frames_round_trip_as_bytes_and_anything_else_is_refused():
    talk = TalkFrame(node="n1", stream="cam", sender="v1", frame=bytes(range(256)))
    data = encode_talk_frame(talk)
    assert decode_talk_frame(data) == talk and len(data) < 256 + 64  # the frame stays bytes
    for bad in (b"", b"garbage", encode_envelope(NodeSync(node="n1")),
                msgspec.msgpack.encode({"node": "n1", "stream": "cam", "sender": "v1", "frame": "text"}),
                msgspec.msgpack.encode({"node": "n1", "stream": "cam", "frame": b"x"})):
        with pytest.raises(msgspec.DecodeError):
            decode_talk_frame(bad)
