"""peercam/shared/protocol.py: the message definitions and their validation."""

import json

import msgspec
import msgspec.inspect
import pytest
from peercam.signaling.cluster.messages import ClientRecord, Envelope

from peercam.shared.protocol import (
    CLIENT_TYPES,
    MAX_TEXT_MESSAGE_BYTES,
    Candidate,
    ClientMessage,
    DataChannelMessage,
    ErrorCode,
    IceCandidate,
    Offer,
    ProtocolError,
    Publish,
    ServerMessage,
    StreamInfo,
    Watch,
    Welcome,
    check_stream_name,
    decode_client_message,
    decode_server_message,
    encode,
)

from .test_websocket import publish, server  # noqa: F401 (a fixture)


def test_round_trip_keeps_every_field():
    publish = Publish(stream="cam-1", info=StreamInfo(640, 480, 30.0, "vp8"))
    assert decode_client_message(encode(publish)) == publish


def test_routed_messages_use_from_and_browser_candidate_names():
    offer = Offer(sdp="v=0", sender="abc")
    assert msgspec.json.decode(encode(offer)) == {"type": "offer", "sdp": "v=0", "from": "abc"}
    candidate = Candidate(candidate=IceCandidate("candidate:1 1 udp 1 127.0.0.1 9 typ host", "0", 0))
    wire = msgspec.json.decode(encode(candidate))
    assert wire["candidate"] == {"candidate": "candidate:1 1 udp 1 127.0.0.1 9 typ host",
                                 "sdpMid": "0", "sdpMLineIndex": 0}
    assert decode_client_message(encode(candidate)) == candidate


def test_end_of_candidates_is_null():
    assert decode_client_message('{"type": "candidate", "candidate": null}').candidate is None


def test_server_messages_decode():
    welcome = decode_server_message('{"type":"welcome","peer_id":"p","ice_servers":[],"protocol":1}')
    assert isinstance(welcome, Welcome) and welcome.ice_hosts == []


@pytest.mark.parametrize(
    "data, code, words",
    [
        ("{", ErrorCode.BAD_JSON, "JSON"),
        ('{"type": "watch", "stream": 1,', ErrorCode.BAD_JSON, "JSON"),  # wrong type, then broken
        ('{"type": "watch", "stream": "a", "name": 1e400}', ErrorCode.BAD_JSON, "JSON"),
        ("not json at all", ErrorCode.BAD_JSON, "JSON"),
        ("[1, 2]", ErrorCode.BAD_MESSAGE, "object"),
        ('"watch"', ErrorCode.BAD_MESSAGE, "object"),
        ('{"stream": "x"}', ErrorCode.BAD_MESSAGE, "type"),
        ('{"type": "dance"}', ErrorCode.UNKNOWN_TYPE, "dance"),
        ('{"type": 42}', ErrorCode.UNKNOWN_TYPE, "42"),
        ('{"type": "welcome", "peer_id": "x", "ice_servers": [], "protocol": 1}',
         ErrorCode.UNKNOWN_TYPE, "welcome"),
        ('{"type": "watch"}', ErrorCode.BAD_MESSAGE, "stream"),
        ('{"type": "watch", "stream": 7}', ErrorCode.BAD_MESSAGE, "stream"),
        ('{"type": "offer", "sdp": ["v=0"]}', ErrorCode.BAD_MESSAGE, "sdp"),
        ('{"type": "publish", "stream": "a", "info": {"width": 2}}', ErrorCode.BAD_MESSAGE, "height"),
        ('{"type": "publish", "stream": "a", "info": {"width": 2, "height": 2, "fps": 30, "codec": "av1"}}',
         ErrorCode.BAD_MESSAGE, "codec"),
        ('{"type": "candidate", "candidate": {"sdpMid": "0"}}', ErrorCode.BAD_MESSAGE, "candidate"),
    ],
)
def test_malformed_messages_get_a_code_and_a_reason(data, code, words):
    with pytest.raises(ProtocolError) as caught:
        decode_client_message(data)
    assert caught.value.code == code
    assert words in caught.value.reason


def test_oversized_message_is_refused_before_parsing():
    huge = '{"type": "watch", "stream": "' + "x" * MAX_TEXT_MESSAGE_BYTES + '"}'
    with pytest.raises(ProtocolError) as caught:
        decode_client_message(huge)
    assert caught.value.code == ErrorCode.TOO_LARGE
    assert str(MAX_TEXT_MESSAGE_BYTES) in caught.value.reason


def test_unknown_type_lists_the_known_ones():
    with pytest.raises(ProtocolError) as caught:
        decode_client_message('{"type": "nope"}')
    assert all(t in caught.value.reason for t in CLIENT_TYPES)


@pytest.mark.parametrize("name", ["demo", "cam-1", "lab.cam_2", "A" * 64])
def test_good_stream_names(name):
    check_stream_name(name)
    assert decode_client_message(encode(Watch(stream=name))).stream == name


@pytest.mark.parametrize("name", ["", "-x", "a b", "../etc", "x" * 65, "caméra", "a/b"])
def test_bad_stream_names(name):
    with pytest.raises(ProtocolError) as caught:
        check_stream_name(name)
    assert caught.value.code == ErrorCode.BAD_STREAM_NAME


def _patterns(info, seen: set) -> set[str]:
    """Every string pattern anywhere under a msgspec type."""
    if isinstance(info, msgspec.inspect.StrType):
        return {info.pattern} if info.pattern else set()
    if id(info) in seen:
        return set()
    seen.add(id(info))
    found = set()
    for name in ("fields", "types", "item_type", "key_type", "value_type", "item_types"):
        value = getattr(info, name, None)
        for item in value if isinstance(value, tuple) else [value]:
            item = getattr(item, "type", item)  # a struct's field
            if isinstance(item, msgspec.inspect.Type):
                found |= _patterns(item, seen)
    return found


def test_every_pattern_matches_the_whole_string():
    """msgspec searches a pattern: only \\A...\\Z holds it to the whole value ($ allows "\\n")."""
    types = msgspec.inspect.multi_type_info([ClientMessage, ServerMessage, DataChannelMessage,
                                             Envelope, ClientRecord])
    patterns = set().union(*(_patterns(info, set()) for info in types))
    assert len(patterns) == 2  # LayerName, Quality
    for pattern in patterns:
        assert pattern.startswith(r"\A") and pattern.endswith(r"\Z"), pattern


@pytest.mark.parametrize("kind, message", [
    ("Quality", {"type": "watch", "stream": "cam", "quality": "VALUE"}),
    ("Quality", {"type": "quality", "quality": "VALUE"}),
    ("LayerName", {"type": "layer", "to": "v", "layer": "VALUE", "width": 640, "height": 480}),
    ("LayerName", {"type": "publish", "stream": "cam", "info": {
        "width": 640, "height": 480, "fps": 30, "codec": "vp8",
        "layers": [{"name": "VALUE", "width": 640, "height": 480, "fps": 30}]}}),
])
@pytest.mark.parametrize("value", ["480p\n", "\n480p", "480p\r", "480p \n"])
def test_a_value_with_a_line_break_is_refused(kind, message, value):
    def shaped(text: str) -> str:
        return json.dumps(message).replace('"VALUE"', json.dumps(text))

    decode_client_message(shaped("480p"))  # the same message with a plain value passes
    with pytest.raises(ProtocolError) as caught:
        decode_client_message(shaped(value))
    assert caught.value.code == ErrorCode.BAD_MESSAGE
    assert "matching regex" in caught.value.reason and "$." in caught.value.reason


async def test_the_server_refuses_a_quality_with_a_newline_and_serves_the_next_viewer(server):  # noqa: F811
    camera = await publish(server)
    sneaky, plain = await server(), await server()
    await sneaky.send({"type": "watch", "stream": "cam", "quality": "480p\n"})
    error = await sneaky.expect("error")
    assert error["code"] == "bad-message" and "$.quality" in error["reason"]
    await plain.send({"type": "watch", "stream": "cam", "quality": "480p"})
    await plain.expect("watching")
    joined = await camera.expect("viewer-joined")
    assert joined["quality"] == "480p"
