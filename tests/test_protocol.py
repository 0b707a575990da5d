"""signaling/protocol.py: the message definitions and their validation."""

import msgspec
import pytest

from signaling.protocol import (
    CLIENT_TYPES,
    MAX_TEXT_MESSAGE_BYTES,
    Candidate,
    ErrorCode,
    IceCandidate,
    Offer,
    ProtocolError,
    Publish,
    StreamInfo,
    Watch,
    Welcome,
    check_stream_name,
    decode_client_message,
    decode_server_message,
    encode,
)


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
