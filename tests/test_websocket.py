"""signaling/edge/websocket.py and streams.py: the real server over a real socket."""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp
import cv2
import numpy as np
import pytest
from aiohttp.test_utils import TestServer
from peercam.signaling.edge.app import create_app
from peercam.signaling.settings.config import ServerConfig
from peercam.signaling.settings.turn import TurnConfig

from peercam.shared.protocol import MAX_TEXT_MESSAGE_BYTES, PROTOCOL_VERSION, IceServer
from peercam.shared.relayframe import RelayFrameHeader

INFO = {"width": 640, "height": 480, "fps": 30, "codec": "vp8"}


def jpeg_relay_frame(sequence: int, jpeg_quality: int = 80) -> bytes:
    """A relay frame as INFO's camera sends it: a real JPEG of the layer's size (the hub
    checks the picture's own size against the layer)."""
    ok, jpeg = cv2.imencode(".jpg", np.zeros((INFO["height"], INFO["width"], 3), np.uint8))
    assert ok
    return RelayFrameHeader(sequence, int(time.time() * 1e6), INFO["width"], INFO["height"],
                            jpeg_quality).pack(jpeg.tobytes())


class Client:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.welcome: dict = {}

    async def send(self, message) -> None:
        await self.ws.send_str(message if isinstance(message, str) else json.dumps(message))

    async def receive(self, timeout: float = 3.0) -> dict:
        msg = await asyncio.wait_for(self.ws.receive(), timeout)
        assert msg.type == aiohttp.WSMsgType.TEXT, msg
        return json.loads(msg.data)

    async def expect(self, type_: str, timeout: float = 3.0) -> dict:
        message = await self.receive(timeout)
        assert message["type"] == type_, message
        return message



#: The reason of a hangup that closes nothing: tests send it to show that nothing came before it.
MARKER = "marker"


async def assert_next_is_a_marker(sender: Client, receiver: Client, to: str | None = None,
                                  timeout: float = 5.0) -> None:
    """``sender`` routes a marker hangup to ``receiver`` (a camera says ``to`` which viewer), and it is
    the next message ``receiver`` gets.

    Absence without waiting for it: the server handles each connection's messages in order and
    sends each connection its messages in order, so whatever the test's earlier messages made it
    send ``receiver`` would have come first.
    """
    await sender.send({"type": "hangup", "reason": MARKER, **({"to": to} if to else {})})
    hangup = await receiver.expect("hangup", timeout)
    assert hangup["reason"] == MARKER, hangup


async def assert_next_is_a_reply(client: Client) -> None:
    """``client`` asks for a sure reply (a hangup to a peer that is not there: refused) and it is the
    next message ``client`` gets: nothing its earlier messages made the server send it is still to
    come (the server answers each connection's messages in order). A viewer needs its camera there."""
    await client.send({"type": "hangup", "reason": MARKER, "to": MARKER})
    error = await client.expect("error")
    assert error["code"] == "unknown-peer" and repr(MARKER) in error["reason"], error


async def connect_client(session: aiohttp.ClientSession, url) -> Client:
    """A WebSocket client of the server at ``url`` (its /ws), past its welcome."""
    client = Client(await session.ws_connect(url))
    client.welcome = await client.expect("welcome")
    return client


@pytest.fixture
async def server():
    config = ServerConfig(ice_servers=(IceServer(urls=["stun:127.0.0.1:3478"]),), ice_hosts=("127.0.0.1",))
    async with TestServer(create_app(config), host="127.0.0.1") as test_server:
        async with aiohttp.ClientSession() as session:
            async def connect() -> Client:
                return await connect_client(session, test_server.make_url("/ws"))

            yield connect


async def publish(connect, stream: str = "cam", protocol: int | None = PROTOCOL_VERSION) -> Client:
    """A camera of ``protocol`` (None: one from before protocol 4, which does not say)."""
    camera = await connect()
    await camera.send({"type": "publish", "stream": stream, "info": INFO,
                       **({"protocol": protocol} if protocol is not None else {})})
    await camera.expect("published")
    return camera


async def watch(connect, stream: str = "cam", protocol: int | None = PROTOCOL_VERSION) -> Client:
    """A viewer of ``protocol`` (None: one from before protocol 4, which does not say)."""
    viewer = await connect()
    await viewer.send({"type": "watch", "stream": stream,
                       **({"protocol": protocol} if protocol is not None else {})})
    return viewer


async def camera_with_viewer(connect) -> tuple[Client, Client, str]:
    """A camera on "cam" and a viewer that has seen it go live; the viewer's id as the camera knows it."""
    camera = await publish(connect)
    viewer = await watch(connect)
    await viewer.expect("watching")
    await viewer.expect("stream-live")
    return camera, viewer, (await camera.expect("viewer-joined"))["peer_id"]


async def test_welcome_hands_out_ice_settings(server):
    client = await server()
    assert client.welcome["ice_servers"] == [{"urls": ["stun:127.0.0.1:3478"]}]
    assert client.welcome["ice_hosts"] == ["127.0.0.1"]
    assert client.welcome["protocol"] == PROTOCOL_VERSION and client.welcome["peer_id"]


async def test_offer_answer_and_candidates_are_routed_by_peer_id(server):
    camera = await publish(server)
    viewer = await watch(server)
    assert (await viewer.expect("watching"))["live"] is True
    live = await viewer.expect("stream-live")
    assert live["camera_id"] == camera.welcome["peer_id"] and live["info"] == INFO
    viewer_id = (await camera.expect("viewer-joined"))["peer_id"]
    assert viewer_id == viewer.welcome["peer_id"]

    await viewer.send({"type": "offer", "sdp": "v=0 offer"})
    assert await camera.expect("offer") == {"type": "offer", "sdp": "v=0 offer", "from": viewer_id}
    await camera.send({"type": "answer", "sdp": "v=0 answer", "to": viewer_id})
    assert (await viewer.expect("answer"))["from"] == camera.welcome["peer_id"]
    candidate = {"candidate": "candidate:1 1 udp 2 127.0.0.1 5000 typ host",
                 "sdpMid": "0", "sdpMLineIndex": 0}
    await viewer.send({"type": "candidate", "candidate": candidate})
    assert (await camera.expect("candidate"))["candidate"] == candidate
    await viewer.send({"type": "candidate", "candidate": None})
    assert (await camera.expect("candidate")).get("candidate") is None


async def test_viewer_before_camera_waits_and_is_told(server):
    viewer = await watch(server)
    assert (await viewer.expect("watching"))["live"] is False
    camera = await publish(server)
    assert (await viewer.expect("stream-live"))["camera_id"] == camera.welcome["peer_id"]


async def test_cameras_and_viewers_of_protocol_3_get_its_names_and_the_others_protocol_4s(server):
    """Peers from before protocol 4 say no ``protocol`` in publish and watch. The server serves them
    still, naming what it sends them as they know it: stream-live's camera_id is ``publisher``, a
    JPEG rendition's jpeg_quality (relay-frames) ``quality``. A peer that says 4 gets the new names."""
    old_camera = await publish(server, protocol=None)
    old_viewer, new_viewer = await watch(server, protocol=None), await watch(server)
    for viewer in (old_viewer, new_viewer):
        assert (await viewer.expect("watching"))["live"] is True
    old_live, new_live = await old_viewer.expect("stream-live"), await new_viewer.expect("stream-live")
    assert old_live == {"type": "stream-live", "stream": "cam", "info": INFO,
                        "publisher": old_camera.welcome["peer_id"]}
    assert new_live == {"type": "stream-live", "stream": "cam", "info": INFO,
                        "camera_id": old_camera.welcome["peer_id"]}
    for _ in range(2):
        await old_camera.expect("viewer-joined")
    await old_viewer.send({"type": "relay", "enabled": True, "format": "jpeg"})
    assert (await old_camera.expect("relay-frames", timeout=5))["jpeg"] == [{"layer": "480p", "quality": 80}]
    assert (await old_viewer.expect("layer"))["jpeg_quality"] == 80  # named so in protocol 3 too

    new_camera = await publish(server, "new")
    old_viewer = await watch(server, "new", protocol=None)
    await old_viewer.expect("watching")
    assert (await old_viewer.expect("stream-live"))["publisher"] == new_camera.welcome["peer_id"]
    await new_camera.expect("viewer-joined")
    await old_viewer.send({"type": "relay", "enabled": True, "format": "jpeg"})
    assert (await new_camera.expect("relay-frames", timeout=5))["jpeg"] == [
        {"layer": "480p", "jpeg_quality": 80}]


async def test_a_protocol_older_than_3_is_refused_naming_the_field(server):
    for message in ({"type": "watch", "stream": "cam", "protocol": 2},
                    {"type": "publish", "stream": "cam", "info": INFO, "protocol": 2}):
        client = await server()
        await client.send(message)
        error = await client.expect("error")
        assert error["code"] == "bad-message" and ">= 3 - at `$.protocol`" in error["reason"], error


async def test_second_camera_is_refused_and_first_keeps_working(server):
    camera = await publish(server)
    intruder = await server()
    await intruder.send({"type": "publish", "stream": "cam", "info": INFO})
    error = await intruder.expect("error")
    assert error["code"] == "stream-taken" and "cam" in error["reason"]
    viewer = await watch(server)
    await viewer.expect("watching")
    await viewer.expect("stream-live")
    await camera.expect("viewer-joined")


async def test_leaving_is_announced_both_ways(server):
    camera, viewer, viewer_id = await camera_with_viewer(server)
    await viewer.ws.close()
    assert (await camera.expect("viewer-left"))["peer_id"] == viewer_id

    other = await watch(server)
    await other.expect("watching")
    await other.expect("stream-live")
    await camera.ws.close()
    ended = await other.expect("stream-ended")
    assert ended["stream"] == "cam" and ended["reason"]


@pytest.mark.parametrize(
    "bad, code",
    [
        ("{not json", "bad-json"),
        ('["a list"]', "bad-message"),
        ('{"no": "type"}', "bad-message"),
        ('{"type": "teleport"}', "unknown-type"),
        ('{"type": "watch"}', "bad-message"),
        ('{"type": "watch", "stream": 12}', "bad-message"),
        ('{"type": "watch", "stream": "../../etc/passwd"}', "bad-stream-name"),
        ('{"type": "watch", "stream": "cam", "name": "' + "n" * 40 + '"}', "bad-name"),
        ('{"type": "offer", "sdp": "v=0"}', "wrong-state"),
        ('{"type": "watch", "stream": "' + "x" * (MAX_TEXT_MESSAGE_BYTES + 1) + '"}', "too-large"),
    ],
    ids=lambda value: value if len(value) < 40 else f"{value[:20]}...({len(value)} bytes)",
)
async def test_bad_input_gets_an_error_and_nobody_else_notices(server, bad, code):
    camera, viewer, viewer_id = await camera_with_viewer(server)

    rogue = await server()
    await rogue.send(bad)
    error = await rogue.expect("error")
    assert error["code"] == code and error["reason"]
    # The rogue socket is still usable, and the others saw nothing.
    await rogue.send({"type": "watch", "stream": "cam"})
    assert (await rogue.expect("watching"))["live"] is True
    await camera.expect("viewer-joined")  # the next thing the camera heard
    await assert_next_is_a_marker(camera, viewer, viewer_id)


async def test_binary_is_refused_with_an_error(server):
    client = await server()
    await client.ws.send_bytes(b"\x00\x01 not a frame")
    assert (await client.expect("error"))["code"] == "binary-not-allowed"


async def test_message_to_a_peer_outside_the_stream_is_refused(server):
    camera_a = await publish(server, "a")
    camera_b = await publish(server, "b")
    viewer_b = await watch(server, "b")
    await viewer_b.expect("watching")
    await viewer_b.expect("stream-live")
    outsider = viewer_b.welcome["peer_id"]
    assert (await camera_b.expect("viewer-joined"))["peer_id"] == outsider

    await camera_a.send({"type": "answer", "sdp": "v=0", "to": outsider})
    error = await camera_a.expect("error")
    assert error["code"] == "unknown-peer" and outsider in error["reason"]
    await camera_a.send({"type": "answer", "sdp": "v=0"})
    assert (await camera_a.expect("error"))["code"] == "bad-message"
    viewer_a = await watch(server, "a")
    await viewer_a.expect("watching")
    await viewer_a.expect("stream-live")
    await viewer_a.send({"type": "offer", "sdp": "v=0", "to": camera_b.welcome["peer_id"]})
    assert (await viewer_a.expect("error"))["code"] == "unknown-peer"
    await assert_next_is_a_marker(camera_b, viewer_b, outsider)
    await assert_next_is_a_marker(viewer_b, camera_b)


async def test_each_routed_type_goes_only_its_own_way(server):
    camera, viewer, viewer_id = await camera_with_viewer(server)
    for message in ({"type": "answer", "sdp": "v=0"}, {"type": "chat-history", "messages": []},
                    {"type": "chat-notice", "reason": "spoofed"}):
        await viewer.send(message)
        error = await viewer.expect("error")
        assert error["code"] == "wrong-state" and message["type"] in error["reason"], error
    for message in ({"type": "offer", "sdp": "v=0"}, {"type": "chat-send", "text": "hi"}):
        await camera.send({**message, "to": viewer_id})
        error = await camera.expect("error")
        assert error["code"] == "wrong-state" and message["type"] in error["reason"], error
    await assert_next_is_a_marker(camera, viewer, viewer_id)
    await viewer.send({"type": "hangup", "reason": "both ways"})  # and the camera's next is this
    assert (await camera.expect("hangup"))["from"] == viewer_id


async def test_turn_credentials_are_renewed_at_half_their_lifetime():
    config = ServerConfig(turn=TurnConfig("secret", ("turn:127.0.0.1:3478",), ttl=2))
    async with TestServer(create_app(config), host="127.0.0.1") as test_server:
        async with aiohttp.ClientSession() as session:
            client = Client(await session.ws_connect(test_server.make_url("/ws")))
            [first] = (await client.expect("welcome"))["ice_servers"]
            [renewed] = (await client.expect("ice-servers", timeout=3))["ice_servers"]
    expiry = int(first["username"].split(":")[0])
    assert int(renewed["username"].split(":")[0]) > expiry
    assert renewed["urls"] == first["urls"] and renewed["credential"] != first["credential"]


async def test_a_connection_has_one_role(server):
    camera = await publish(server)
    await camera.send({"type": "watch", "stream": "cam"})
    assert (await camera.expect("error"))["code"] == "wrong-state"


async def test_relay_needs_watch_first(server):
    client = await server()
    await client.send({"type": "relay", "enabled": True})
    assert (await client.expect("error"))["code"] == "wrong-state"


async def test_only_a_camera_sends_relay_frames_and_they_must_be_valid(server):
    camera = await publish(server)
    viewer = await watch(server)
    await viewer.expect("watching")
    await viewer.expect("stream-live")
    await camera.expect("viewer-joined")
    await viewer.ws.send_bytes(b"\x01\x14" + b"\x00" * 30)
    assert (await viewer.expect("error"))["code"] == "binary-not-allowed"
    await viewer.send({"type": "relay", "enabled": True})
    # The camera is asked for the top layer at its own JPEG quality; the viewer is told so.
    assert (await camera.expect("relay-frames"))["jpeg"] == [{"layer": "480p", "jpeg_quality": 80}]
    assert (await viewer.expect("layer"))["layer"] == "480p"
    await camera.ws.send_bytes(b"not a relay frame at all")
    error = await camera.expect("error")
    assert error["code"] == "bad-relay-frame" and error["reason"]
    await camera.ws.send_bytes(RelayFrameHeader(7, 1_000_000, 2, 2, 80).pack(b"\xff\xd8 jpeg bytes"))
    error = await camera.expect("error")  # not a JPEG picture
    assert error["code"] == "bad-relay-frame" and "JPEG" in error["reason"], error
    frame = jpeg_relay_frame(8)
    await camera.ws.send_bytes(frame)
    msg = await asyncio.wait_for(viewer.ws.receive(), 3)
    assert msg.type == aiohttp.WSMsgType.BINARY and msg.data == frame
    await viewer.send({"type": "relay", "enabled": False})
    assert (await camera.expect("relay-frames")).get("jpeg", []) == []


async def test_sockets_refuse_per_message_compression():
    """Relay frames are JPEG: compressing them costs CPU for nothing (browsers offer it)."""
    async with TestServer(create_app(), host="127.0.0.1") as test_server, aiohttp.ClientSession() as session:
        async with session.ws_connect(test_server.make_url("/ws"), compress=15) as ws:
            assert ws.compress == 0


async def test_a_camera_meets_the_viewers_who_waited_for_it(server):
    viewer = await watch(server)
    assert (await viewer.expect("watching"))["live"] is False
    camera = await publish(server)
    assert (await camera.expect("viewer-joined"))["peer_id"] == viewer.welcome["peer_id"]
