"""Talk back, the server's part (signaling/edge/websocket.py, registry/streams.py): who may ask
for the floor (--talk, the talk token role), and the camera's word on who holds it, passed to
every viewer and /api/streams. A camera here is a plain WebSocket client, as in test_websocket."""

from __future__ import annotations

import asyncio
import contextlib
import time

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from peercam.peers.ice import IceOptions
from peercam.signaling.cluster.messages import TalkFrame, encode_talk_frame
from peercam.signaling.edge.app import create_app
from peercam.signaling.edge.auth import make_token
from peercam.signaling.settings.config import ServerConfig

import peercam
from peercam.shared.relayframe import RelayFrameHeader

from .test_websocket import INFO, Client, assert_next_is_a_marker, connect_client, jpeg_relay_frame

SECRET = "talk-secret"


@contextlib.asynccontextmanager
async def talk_server(**settings):
    config = ServerConfig(ice_hosts=("127.0.0.1",), secret=SECRET, **settings)
    async with TestServer(create_app(config), host="127.0.0.1") as test_server:
        async with aiohttp.ClientSession() as session:
            async def connect() -> Client:
                return await connect_client(session, test_server.make_url("/ws"))

            async def api(name: str) -> dict:
                async with session.get(test_server.make_url(f"/api/streams/{name}")) as response:
                    return await response.json()

            yield connect, api


async def camera_and_viewers(connect, *tokens: str) -> tuple[Client, dict, list[Client], list[str]]:
    """A camera on "cam" (and its published), and a viewer per token ("" for none), each live, with
    its watching and its id as the camera knows it."""
    camera = await connect()
    await camera.send({"type": "publish", "stream": "cam", "info": INFO})
    published = await camera.expect("published")
    viewers, ids = [], []
    for number, token in enumerate(tokens):
        viewer = await connect()
        await viewer.send({"type": "watch", "stream": "cam", "name": f"v{number}", "token": token})
        viewer.watching = await viewer.expect("watching")
        await viewer.expect("stream-live")
        viewers.append(viewer)
        ids.append((await camera.expect("viewer-joined"))["peer_id"])
    return camera, published, viewers, ids


async def test_talk_is_off_by_default_and_a_request_is_refused_without_reaching_the_camera():
    async with talk_server() as (connect, _):
        camera, published, [viewer], _ = await camera_and_viewers(connect, "")
        assert "talk" not in published and "talk" not in viewer.watching  # false, left out
        await viewer.send({"type": "talk-start"})
        refused = await viewer.expect("talk-refused")
        assert "off on this server" in refused["reason"]
        await assert_next_is_a_marker(viewer, camera)  # the camera heard nothing of it


async def test_under_talk_token_only_a_token_with_the_talk_right_may_ask():
    view = make_token(SECRET, "cam", "view", 60)
    talk = make_token(SECRET, "cam", "talk", 60)
    async with talk_server(talk="token", talk_max=30) as (connect, _):
        camera, published, [plain, viewer, speaker], ids = await camera_and_viewers(connect, "", view, talk)
        assert published["talk"] is True and published["talk_max"] == 30
        assert [v.watching.get("talk", False) for v in (plain, viewer, speaker)] == [False, False, True]
        assert [v.watching.get("talk_reason", "") for v in (plain, viewer, speaker)] == [
            "your token does not carry the talk right (peercam token --role talk)"] * 2 + [""]
        for refused in (plain, viewer):
            await refused.send({"type": "talk-start"})
            assert "talk right" in (await refused.expect("talk-refused"))["reason"]
        await speaker.send({"type": "talk-start"})
        asked = await camera.expect("talk-start")  # the camera, the floor's keeper, decides
        assert asked["from"] == ids[2]


async def test_a_talk_token_views_too():
    talk = make_token(SECRET, "cam", "talk", 60)
    async with talk_server(auth="all", talk="token") as (connect, _):
        camera = await connect()
        await camera.send({"type": "publish", "stream": "cam", "info": INFO,
                           "token": make_token(SECRET, "cam", "publish", 60)})
        await camera.expect("published")
        viewer = await connect()
        await viewer.send({"type": "watch", "stream": "cam", "token": talk})
        assert (await viewer.expect("watching"))["talk"] is True


@pytest.mark.parametrize("talk", ["viewers"])
async def test_the_camera_s_word_on_the_floor_reaches_every_viewer_and_the_api(talk):
    async with talk_server(talk=talk) as (connect, api):
        camera, _, viewers, ids = await camera_and_viewers(connect, "", "")
        await viewers[0].send({"type": "talk-start"})
        assert (await camera.expect("talk-start"))["from"] == ids[0]
        await camera.send({"type": "talking", "peer_id": ids[0], "name": "v0", "since": 1.5e9})
        for viewer in viewers:
            said = await viewer.expect("talking")
            assert (said["peer_id"], said["name"]) == (ids[0], "v0")
        assert (await api("cam"))["talking"] == {"peer_id": ids[0], "name": "v0", "since": 1.5e9}
        # A newcomer sees who is talking, right after it sees the stream live.
        late = await connect()
        await late.send({"type": "watch", "stream": "cam"})
        await late.expect("watching")
        await late.expect("stream-live")
        assert (await late.expect("talking"))["peer_id"] == ids[0]
        await camera.expect("viewer-joined")
        # The camera refuses the second asker itself, and ends the turn.
        await viewers[1].send({"type": "talk-start"})
        await camera.expect("talk-start")
        await camera.send({"type": "talk-refused", "to": ids[1], "reason": "v0 is talking"})
        assert (await viewers[1].expect("talk-refused"))["reason"] == "v0 is talking"
        await camera.send({"type": "talk-stop", "to": ids[0], "reason": "the operator took the floor"})
        assert (await viewers[0].expect("talk-stop"))["reason"] == "the operator took the floor"
        await camera.send({"type": "talking", "peer_id": None})
        for viewer in viewers:
            assert (await viewer.expect("talking")).get("peer_id") is None
        assert (await api("cam"))["talking"] is None


async def test_only_the_camera_says_who_is_talking():
    async with talk_server(talk="viewers") as (connect, api):
        _, _, [viewer], _ = await camera_and_viewers(connect, "")
        await viewer.send({"type": "talking", "peer_id": "someone", "name": "x"})
        error = await viewer.expect("error")
        assert error["code"] == "wrong-state" and "only the camera" in error["reason"]
        assert (await api("cam"))["talking"] is None


async def test_the_camera_keeps_the_floor_one_speaker_at_a_time():
    """A real camera (the library's) is the floor's keeper: the first asker talks, the second is
    refused with the speaker's name; a stop, a departure, the turn's cap and the operator
    each end a turn; the chat records every turn."""
    async with await peercam.serve(port=0, talk="viewers", talk_max=1.0) as server:
        async with peercam.Camera(server.url, "cam", source="testsrc", width=160, height=120, audio="none",
                                  ice=IceOptions(hosts=["127.0.0.1"])) as camera:
            async with aiohttp.ClientSession() as session:
                async def viewer(name: str) -> Client:
                    client = Client(await session.ws_connect(server.url + "/ws"))
                    await client.expect("welcome")
                    await client.send({"type": "watch", "stream": "cam", "name": name})
                    assert (await client.expect("watching"))["talk"] is True
                    await client.expect("stream-live")
                    return client

                async def next_of(client: Client, type_: str, **fields) -> dict:
                    """The next message of ``type_`` with these fields (None: left out), skipping others."""
                    async with asyncio.timeout(5):
                        while True:
                            message = await client.receive(5)
                            wanted = all(message.get(k) == v for k, v in fields.items())
                            if message["type"] == type_ and wanted:
                                return message

                ann, bob = await viewer("ann"), await viewer("bob")
                await ann.send({"type": "talk-start"})
                talking = await next_of(bob, "talking")
                assert talking["name"] == "ann" and talking["peer_id"]
                await bob.send({"type": "talk-start"})
                assert (await next_of(bob, "talk-refused"))["reason"] == "ann is talking"
                await ann.send({"type": "talk-stop"})
                await next_of(bob, "talking", peer_id=None)
                # Bob's turn now; at the server's --talk-max (1 s) the camera ends it.
                await bob.send({"type": "talk-start"})
                await next_of(ann, "talking", name="bob")
                await next_of(bob, "talk-stop", reason="a turn lasts at most 1 s")
                await next_of(ann, "talking", peer_id=None)
                # The operator takes the floor from ann; then a speaker that leaves frees it.
                await ann.send({"type": "talk-start"})
                await next_of(bob, "talking", name="ann")
                camera.end_talk()
                assert "operator" in (await next_of(ann, "talk-stop"))["reason"]
                await bob.send({"type": "talk-start"})
                await next_of(ann, "talking", name="bob")
                await bob.ws.close()
                await next_of(ann, "talking", peer_id=None)
                history = [message.text for message in camera._peer.chat.history()]
    assert history == ["ann is talking", "ann stopped talking", "bob is talking", "bob stopped talking",
                       "ann is talking", "ann stopped talking", "bob is talking", "bob stopped talking"]


async def test_on_the_relay_only_the_speaker_s_opus_frames_reach_the_camera():
    async with talk_server(talk="viewers") as (connect, _):
        camera, _, [speaker, other], ids = await camera_and_viewers(connect, "", "")
        packet = RelayFrameHeader.audio(0, int(time.time() * 1e6), 48000, 1).pack(b"\xf8" + bytes(40))
        await speaker.ws.send_bytes(packet)  # not its turn yet
        assert (await speaker.expect("error"))["code"] == "binary-not-allowed"
        await camera.send({"type": "talking", "peer_id": ids[0], "name": "v0"})
        await speaker.expect("talking")
        await other.expect("talking")
        await speaker.ws.send_bytes(packet)
        got = await asyncio.wait_for(camera.ws.receive(), 3)
        assert got.type == aiohttp.WSMsgType.BINARY and got.data == packet
        await other.ws.send_bytes(packet)  # the floor is another's
        assert (await other.expect("error"))["code"] == "binary-not-allowed"
        for bad in (jpeg_relay_frame(0),  # a picture is no talk
                    RelayFrameHeader.audio(1, 0, 48000, 1).pack(bytes(2000))):  # no Opus packet is this big
            await speaker.ws.send_bytes(bad)
            assert (await speaker.expect("error"))["code"] == "bad-relay-frame"
        await assert_next_is_a_marker(speaker, camera)  # nothing else reached the camera


async def test_a_viewer_on_another_instance_asks_hears_who_talks_and_talks(redis_server):
    """Two instances on one Redis: the camera on one, viewers on the other. The right is
    checked where the viewer is; the floor is the camera's; its word reaches the viewers there,
    and that instance's /api/streams and newcomers know who talks. The speaker's relay talk
    frames cross to the camera's instance, which takes only the floor holder's."""
    import redis.asyncio as aioredis

    async with await peercam.serve(port=0, redis=redis_server.url, talk="viewers") as a, \
            await peercam.serve(port=0, redis=redis_server.url, talk="viewers") as b, \
            aiohttp.ClientSession() as session:
        async def ready(url: str) -> None:
            while (await (await session.get(f"{url}/healthz")).json()).get("status") != "ok":
                await asyncio.sleep(0.02)

        await asyncio.wait_for(asyncio.gather(ready(a.url), ready(b.url)), 10)

        async def connect(url: str) -> Client:
            return await connect_client(session, f"{url}/ws")

        camera = await connect(a.url)
        await camera.send({"type": "publish", "stream": "far", "info": INFO})
        assert (await camera.expect("published"))["talk"] is True
        viewer = await connect(b.url)
        await viewer.send({"type": "watch", "stream": "far", "name": "vic"})
        assert (await viewer.expect("watching"))["talk"] is True
        await viewer.expect("stream-live", timeout=5)
        await camera.expect("viewer-joined", timeout=5)
        await viewer.send({"type": "talk-start"})
        asked = await camera.expect("talk-start", timeout=5)
        assert asked["from"] == viewer.welcome["peer_id"]
        await camera.send({"type": "talking", "peer_id": asked["from"], "name": "vic", "since": 1.0})
        assert (await viewer.expect("talking", timeout=5))["name"] == "vic"
        async with session.get(f"{b.url}/api/streams/far") as response:
            assert (await response.json())["talking"]["name"] == "vic"

        # Its relay talk frames reach the camera through Redis, as they come.
        first, second = (RelayFrameHeader.audio(n, int(time.time() * 1e6), 48000, 1).pack(b"\xf8" + bytes(40))
                         for n in range(2))
        await viewer.ws.send_bytes(first)
        got = await asyncio.wait_for(camera.ws.receive(), 5)
        assert got.type == aiohttp.WSMsgType.BINARY and got.data == first
        # The camera's instance checks again what comes on its talk channel: garbage, a frame in
        # the name of a viewer without the floor or from the wrong instance, and no talk frame go
        # nowhere (Redis hands them to it before the speaker's next frame).
        node_a, node_b = [(await (await session.get(f"{url}/healthz")).json())["cluster"]["node"]
                          for url in (a.url, b.url)]

        def forged(**fields) -> bytes:
            talk = {"node": node_b, "stream": "far", "sender": asked["from"], "frame": first} | fields
            return encode_talk_frame(TalkFrame(**talk))

        redis = aioredis.Redis.from_url(redis_server.url)
        try:
            for data in (b"garbage", forged(sender=camera.welcome["peer_id"]), forged(node="elsewhere"),
                         forged(frame=RelayFrameHeader.audio(2, 0, 48000, 1).pack(bytes(2000))),
                         forged(frame=b"\x03" * 30), forged(stream="nowhere")):
                await redis.publish(f"peercam:talk:{node_a}", data)
        finally:
            await redis.aclose()
        await viewer.ws.send_bytes(second)
        got = await asyncio.wait_for(camera.ws.receive(), 5)
        assert got.type == aiohttp.WSMsgType.BINARY and got.data == second
        async with session.get(f"{a.url}/metrics") as response:
            metrics = await response.text()
        # Both of the speaker's frames went out; the five forged ones that decoded were dropped.
        assert "peercam_relay_talk_frames_sent_total 2.0" in metrics, metrics
        assert "peercam_relay_talk_frames_dropped_total 5.0" in metrics, metrics
        late = await connect(b.url)
        await late.send({"type": "watch", "stream": "far"})
        await late.expect("watching")
        await late.expect("stream-live")
        assert (await late.expect("talking"))["name"] == "vic"
