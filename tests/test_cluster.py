"""Several server instances sharing a deployment through a real redis-server
(``peercam serve --redis``): cameras, viewers and pages on different instances see one
deployment, and it survives an instance's death and Redis going away."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import re
import signal
import time
import urllib.request

import aiohttp
from peercam.signaling.cluster.cluster import COMMAND_OVERHEAD_BYTES, MAX_CLUSTER_FRAME_BYTES, CommandQueue
from peercam.signaling.edge.auth import make_token
from peercam.signaling.edge.websocket import MAX_WEBSOCKET_MESSAGE_BYTES
from peercam.signaling.relay.renditions import MAX_JPEG_RENDITIONS

from peercam.shared.protocol import PROTOCOL_VERSION
from peercam.shared.relayframe import HEADER_SIZE, RelayFrameHeader, parse_relay_frame

from .conftest import LOOPBACK, free_port, get_json, wait_until
from .support.chromium import CONTEXT_OPTIONS, goto_player
from .test_auth import admin_request
from .test_chat import chat_lines
from .test_relay_audio import RelayListener, assert_continuous, until
from .test_relay_bounds import LAYERS as RELAY_LAYERS
from .test_relay_bounds import FakeCamera, Viewer, jpeg_frame
from .test_talk import assert_same_beeps, envelope, write_tone
from .test_websocket import INFO


def start_instances(lab, redis_server, count: int = 3, *extra: str) -> list[str]:
    """``count`` instances on their own ports, all on ``redis_server``; their URLs."""
    urls = []
    for letter in "abcdefgh"[:count]:
        port = free_port()
        lab.start(f"server-{letter}", "serve", "--port", str(port), "--redis", redis_server.url, *extra)
        urls.append(f"http://127.0.0.1:{port}")
    for url in urls:
        wait_until(lambda url=url: (get_json(f"{url}/healthz") or {}).get("cluster", {}).get("redis")
                   == "connected", 15, f"{url} to join Redis")
    return urls


def camera(lab, servers: list[str], stream: str, *extra: str):
    args = [a for url in servers for a in ("--server", url)]
    return lab.start(f"camera-{stream}", "camera", *args, "--stream", stream, *LOOPBACK, *extra)


def viewer(lab, server: str, stream: str, *extra: str, stdin: bool = False):
    return lab.start(f"viewer-{stream}", "view", "--server", server, "--stream", stream, "--json",
                         *LOOPBACK, *extra, stdin=stdin)


def stream_on(url: str, name: str) -> dict:
    return get_json(f"{url}/api/streams/{name}") or {}


def test_camera_viewers_and_a_page_on_three_instances_play_chat_and_are_listed_everywhere(
        redis_server, lab, browser):
    a, b, c = start_instances(lab, redis_server)
    cam = camera(lab, [a], "spread", "--name", "cam")
    wait_until(lambda: all(stream_on(url, "spread").get("live") for url in (a, b, c)), 15,
               "every instance to list the camera")
    pat = viewer(lab, b, "spread", "--mode", "p2p", "--chat", "--name", "pat", "--duration", "60",
                 stdin=True)
    rel = viewer(lab, c, "spread", "--mode", "relay", "--chat", "--name", "rel", "--duration", "60",
                 stdin=True)
    page = browser.new_context(**CONTEXT_OPTIONS).new_page()
    goto_player(page, f"{b}/view/spread?name=web")
    pat.wait_for_log("first frame", timeout=20)
    rel.wait_for_log("first frame", timeout=20)
    page.wait_for_function("peercam.state() === 'playing'", timeout=20_000)
    assert "(p2p)" in pat.log() and "(relay" in rel.log()

    # Every instance lists all three viewers, with their modes and stats.
    def listed(url: str):
        stream = stream_on(url, "spread")
        viewers = {v["name"]: v for v in stream.get("viewers", [])}
        complete = set(viewers) == {"pat", "rel", "web"} and all(v["stats"] for v in viewers.values())
        return viewers if complete else None

    for url in (a, b, c):
        viewers = wait_until(lambda url=url: listed(url), 20, f"{url} to list the three viewers")
        assert viewers["pat"]["mode"] == "p2p" and viewers["rel"]["mode"] == "relay", viewers
    # A snapshot from an instance without the camera: the relay's JPEG, through Redis.
    with urllib.request.urlopen(f"{c}/streams/spread/snapshot.jpg", timeout=10) as response:
        assert response.headers["Content-Type"] == "image/jpeg" and response.read(2) == b"\xff\xd8"

    # Chat: a CLI viewer on the data channel, one on the relay, and the page; all see all.
    pat.wait_for_log("connected (p2p)", timeout=10)
    pat.type_line("from pat on b")
    rel.type_line("from rel on c")
    page.evaluate("peercam.sendChat('from the page on b')")
    cam.wait_for_log("chat #3", timeout=15)
    page.wait_for_function("peercam.chat().length >= 3", timeout=10_000)
    pat.kill(signal.SIGINT)
    rel.kill(signal.SIGINT)
    texts = {"from pat on b", "from rel on c", "from the page on b"}
    assert {line[2] for line in chat_lines(pat.result(timeout=15)[1])} == texts
    assert {line[2] for line in chat_lines(rel.result(timeout=15)[1])} == texts
    assert {m["text"] for m in page.evaluate("peercam.chat()")} == texts
    page.context.close()


def test_a_name_held_on_one_instance_is_taken_on_every_other(redis_server, lab):
    a, _, c = start_instances(lab, redis_server)
    camera(lab, [a], "one")
    wait_until(lambda: stream_on(c, "one").get("live"), 15, "instance c to list the camera")
    second = camera(lab, [c], "one")
    code, _ = second.result(timeout=20)
    assert code != 0
    assert "stream-taken" in second.log() or "already has a camera" in second.log(), second.log()[-2000:]
    assert stream_on(a, "one")["camera"]["id"] == stream_on(c, "one")["camera"]["id"]


def test_a_name_reserved_on_one_instance_is_reserved_on_all_and_ended_from_any(redis_server, lab):
    secret = "cluster-secret"
    a, b, c = start_instances(lab, redis_server, 3, "--secret", secret)
    admin = make_token(secret, "*", "admin", 600)
    status, reply = admin_request(f"{b}/api/streams", "POST", admin, {"name": "held", "ttl": "5m"})
    assert status == 201
    wait_until(lambda: get_json(f"{a}/api/streams/held") and get_json(f"{c}/api/streams/held"), 10,
               "instances a and c to know the reservation")
    squatter = camera(lab, [a], "held")
    assert squatter.result(timeout=20)[0] != 0 and "token" in squatter.log()

    owner = camera(lab, [c], "held", "--token", reply["publish_token"])
    wait_until(lambda: stream_on(a, "held").get("live"), 15, "instance a to list the owner's camera")
    reader = viewer(lab, a, "held", "--mode", "relay", "--duration", "60")
    reader.wait_for_log("first frame", timeout=20)
    assert admin_request(f"{a}/api/streams/held", "DELETE", admin)[0] == 200  # asked where it is not
    reader.wait_for_log("ended by an administrator", timeout=5)
    assert owner.result(timeout=15)[0] != 0 and "ended" in owner.log()
    wait_until(lambda: not any(stream_on(url, "held").get("live") for url in (a, b, c)), 10,
               "every instance to see the stream end")
    # The name is free again, everywhere: a camera without a token takes it, and the reader
    # that waited on another instance plays it.
    camera(lab, [b], "held")
    reader.wait_for_log("video resumed", timeout=20)


def test_garbage_on_the_redis_channels_is_ignored(redis_server, lab):
    """Whatever else writes to Redis, the instances log it and go on."""
    import redis

    a, b = start_instances(lab, redis_server, count=2)
    camera(lab, [a], "sturdy")
    wait_until(lambda: stream_on(b, "sturdy").get("live"), 15, "instance b to list the camera")
    client = redis.Redis.from_url(redis_server.url)
    node_a = get_json(f"{a}/healthz")["cluster"]["node"]
    garbage = [b"", b"\xff\xfe", b"[]", b'{"op": "client", "node": "x"}', b'{"op": "nope", "node": "x"}',
               b'{"op": "deliver", "node": "x", "to": 5, "stream": "sturdy", "text": "hi"}',
               b'{"op": "gone", "node": "x", "id": "nobody", "stream": "sturdy"}',
               b'{"op": "relay-demand", "node": "x", "stream": "sturdy", "jpeg": [{"layer": 1}]}']
    reader = viewer(lab, b, "sturdy", "--mode", "relay", "--duration", "3")
    reader.wait_for_log("first frame", timeout=20)  # b now reads the relay channel
    for data in garbage:
        client.publish("peercam:events", data)
        client.publish(f"peercam:to:{node_a}", data)
        client.publish("peercam:relay:sturdy", data)
    client.close()
    summary = reader.summary(timeout=40)
    assert summary["frames"] > 1 and summary["frames_dropped"] == 0, summary
    assert all((get_json(f"{url}/healthz") or {}).get("status") == "ok" for url in (a, b))


def test_an_instance_killed_ends_its_streams_and_its_camera_comes_back_on_another(redis_server, lab):
    a, b, c = start_instances(lab, redis_server)
    cam = camera(lab, [a, b], "phoenix")
    wait_until(lambda: stream_on(b, "phoenix").get("live") and stream_on(c, "phoenix").get("live"), 15,
               "instances b and c to list the camera")
    on_b = viewer(lab, b, "phoenix", "--mode", "p2p", "--duration", "120")
    on_c = viewer(lab, c, "phoenix", "--mode", "relay", "--duration", "120")
    on_b.wait_for_log("first frame", timeout=20)
    on_c.wait_for_log("first frame", timeout=20)

    server_a = next(p for p in lab.processes if p.log_path.stem.endswith("server-a"))
    server_a.kill(signal.SIGKILL)
    killed_at = time.monotonic()
    on_b.wait_for_log("camera left", timeout=10)
    on_c.wait_for_log("camera left", timeout=10)
    assert time.monotonic() - killed_at < 5, "viewers learned of the dead instance too late"

    cam.wait_for_log(f"on {b}", timeout=20)  # publishing ... on the second URL
    on_b.wait_for_log("video resumed", timeout=20)
    on_c.wait_for_log("video resumed", timeout=20)
    assert stream_on(c, "phoenix")["live"]


def test_instances_ride_out_a_redis_outage_and_resync(redis_server, lab):
    a, b, c = start_instances(lab, redis_server)
    camera(lab, [a], "steady")
    wait_until(lambda: stream_on(c, "steady").get("live"), 15, "instance c to list the camera")
    before = viewer(lab, a, "steady", "--mode", "relay", "--name", "before", "--duration", "60")
    before.wait_for_log("first frame", timeout=20)

    redis_server.stop()
    outage_at = time.monotonic()
    for url in (a, b, c):  # each says so, and keeps serving
        wait_until(lambda url=url: get_json(f"{url}/healthz") is None, 5, f"{url} to report not ready")
    with urllib.request.urlopen(f"{a}/metrics", timeout=5) as response:
        assert "peercam_redis_connected 0.0" in response.read().decode()
    during = viewer(lab, a, "steady", "--mode", "p2p", "--name", "during", "--duration", "12")
    during.wait_for_log("first frame", timeout=20)
    time.sleep(max(0.0, 5 - (time.monotonic() - outage_at)))  # the outage lasts 5 s
    redis_server.start()

    for url in (a, b, c):
        wait_until(lambda url=url: (get_json(f"{url}/healthz") or {}).get("status") == "ok", 15,
                   f"{url} to be ready again")
    # Resynced: the others list what instance a kept serving, and play it again.
    wait_until(lambda: {v["name"] for v in stream_on(c, "steady").get("viewers", [])} >= {"before", "during"},
               15, "instance c to list the viewers of instance a again")
    after = viewer(lab, b, "steady", "--mode", "relay", "--name", "after", "--duration", "2")
    summary = after.summary(timeout=40)
    assert summary["frames"] > 1, summary
    during.kill(signal.SIGINT)  # it watched from the outage to the resync: its summary now
    summary = during.summary(timeout=40)  # it played through the outage, nothing lost
    assert summary["mode"] == "p2p" and summary["frames"] > 1 and summary["frames_dropped"] == 0, summary
    assert "stream ended" not in before.log() and "camera left" not in before.log(), before.log()[-2000:]


async def test_two_instances_in_one_program_route_every_message_once(redis_server):
    """peercam.serve(redis=...) twice: a camera on one, a viewer on the other, speaking the
    protocol by hand. Each message arrives once, where it should, stamped with its sender."""
    import aiohttp

    import peercam

    from .test_websocket import INFO, Client, assert_next_is_a_marker

    async with await peercam.serve(port=0, redis=redis_server.url) as a, \
            await peercam.serve(port=0, redis=redis_server.url) as b, aiohttp.ClientSession() as session:
        async def joined(url: str) -> None:
            while (await (await session.get(f"{url}/healthz")).json()).get("status") != "ok":
                await asyncio.sleep(0.02)

        await asyncio.wait_for(asyncio.gather(joined(a.url), joined(b.url)), 10)

        async def connect(url: str) -> Client:
            client = Client(await session.ws_connect(f"{url.replace('http', 'ws')}/ws"))
            client.welcome = await client.expect("welcome")
            return client

        camera, viewer = await connect(a.url), await connect(b.url)
        await viewer.send({"type": "watch", "stream": "hand", "name": "vic", "protocol": PROTOCOL_VERSION})
        assert (await viewer.expect("watching"))["live"] is False
        await camera.send({"type": "publish", "stream": "hand", "info": INFO, "name": "cam"})
        await camera.expect("published")
        # The viewer waited on the other instance: it hears the camera arrive, and the camera meets it.
        assert (await viewer.expect("stream-live", timeout=5))["camera_id"] == camera.welcome["peer_id"]
        joined_message = await camera.expect("viewer-joined", timeout=5)
        assert (joined_message["peer_id"], joined_message["name"]) == (viewer.welcome["peer_id"], "vic")

        await viewer.send({"type": "offer", "sdp": "v=0\r\n"})
        offer = await camera.expect("offer", timeout=5)
        assert offer["from"] == viewer.welcome["peer_id"] and "to" not in offer
        await camera.send({"type": "answer", "to": viewer.welcome["peer_id"], "sdp": "v=0\r\n"})
        assert (await viewer.expect("answer", timeout=5))["from"] == camera.welcome["peer_id"]
        await assert_next_is_a_marker(camera, viewer, viewer.welcome["peer_id"])  # once: no second copy
        await camera.send({"type": "answer", "to": "nobody", "sdp": "v=0\r\n"})
        assert (await camera.expect("error"))["code"] == "unknown-peer"

        await viewer.ws.close()
        assert (await camera.expect("viewer-left", timeout=5))["peer_id"] == viewer.welcome["peer_id"]
        late = await connect(b.url)
        await late.send({"type": "watch", "stream": "hand"})
        await late.expect("watching")
        await late.expect("stream-live")
        await camera.expect("viewer-joined", timeout=5)
        await camera.ws.close()
        assert (await late.expect("stream-ended", timeout=5))["stream"] == "hand"
        again = await connect(a.url)  # the same way as the camera before it
        await again.send({"type": "publish", "stream": "hand", "info": INFO})
        await again.expect("published")
        await late.expect("stream-live", timeout=5)  # the next thing it heard: one stream-ended


async def _next(ws, kind: str | None, timeout: float = 5.0) -> dict:
    """The next text message of this type (any type: None) on a socket, skipping binary frames."""
    async def find() -> dict:
        while True:
            message = await ws.receive()
            assert message.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY), message
            if message.type == aiohttp.WSMsgType.TEXT:
                data = json.loads(message.data)
                if kind is None or data["type"] == kind:
                    return data

    return await asyncio.wait_for(find(), timeout)


def _rss_bytes(pid: int) -> int:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for {pid}")


#: What the flooding camera's instance may grow by while it relays a flood across instances.
FLOOD_RSS_BOUND = 200 * 1024 * 1024


async def _subscribers(redis) -> dict[str, int]:
    """Redis's subscriber connections: {client name: connection id}."""
    clients = await redis.client_list(_type="pubsub")
    return {client["name"]: int(client["id"]) for client in clients}


async def test_a_camera_flooding_large_relay_frames_on_one_instance_keeps_the_other_on_redis(
        redis_server, lab):
    """A camera on instance a sends relay frames of 8 MiB (past the cap between instances)
    and just under the cap, as fast as it can, for a reader on instance b, while b stalls
    (a pause of its process): Redis closes b's relay subscription when it falls 32 MB
    behind, and only that one. b stays on Redis (signaling between a and b goes on, b
    never loses Redis), its relay comes back (a calm stream's relay reader on b gets frames
    again), and a's memory stays bounded."""
    import redis.asyncio as aioredis

    a, b = start_instances(lab, redis_server, 2)
    server_a = next(p for p in lab.processes if p.log_path.stem.endswith("server-a"))
    server_b = next(p for p in lab.processes if p.log_path.stem.endswith("server-b"))
    node_b = get_json(f"{b}/healthz")["cluster"]["node"]
    width, height = INFO["width"], INFO["height"]

    def frame(sequence: int, size: int) -> bytes:
        header = RelayFrameHeader(sequence, int(time.time() * 1e6), width, height, codec="vp8", keyframe=True)
        return header.pack(bytes(size - HEADER_SIZE))

    ids = {}
    redis = aioredis.Redis.from_url(redis_server.url)
    async with aiohttp.ClientSession() as session, redis:
        async def connect(url: str, *messages: dict) -> aiohttp.ClientWebSocketResponse:
            ws = await session.ws_connect(f"{url.replace('http', 'ws')}/ws", max_msg_size=0)
            ids[ws] = (await _next(ws, "welcome"))["peer_id"]
            for message in messages:
                await ws.send_json(message)
            return ws

        flooder = await connect(a, {"type": "publish", "stream": "flood", "info": INFO})
        calm = await connect(a, {"type": "publish", "stream": "calm", "info": INFO})
        await _next(flooder, "published")
        await _next(calm, "published")
        relay = [{"type": "relay", "enabled": True, "format": "encoded"}]
        flood_reader = await connect(b, {"type": "watch", "stream": "flood"}, *relay)
        calm_reader = await connect(b, {"type": "watch", "stream": "calm"}, *relay)
        p2p_viewer = await connect(b, {"type": "watch", "stream": "calm"})
        # Both cameras hear of b's relay readers (through Redis); the calm one meets the P2P viewer.
        while (await _next(flooder, "relay-frames"))["encoded"] != ["480p"]:
            pass
        expected = [{"type": "relay-frames", "encoded": ["480p"]},
                    {"type": "viewer-joined", "peer_id": ids[p2p_viewer]}]
        while expected:
            message = await _next(calm, None)
            expected = [e for e in expected if not e.items() <= message.items()]

        received = {"flood": [], "calm": 0}
        calm_tick = asyncio.Event()

        async def read_flood() -> None:
            async for message in flood_reader:
                if message.type == aiohttp.WSMsgType.BINARY:
                    received["flood"].append(len(message.data))

        async def read_calm() -> None:
            async for message in calm_reader:
                if message.type == aiohttp.WSMsgType.BINARY:
                    received["calm"] += 1
                    calm_tick.set()

        async def calm_frames(count: int) -> None:
            while received["calm"] < count:
                calm_tick.clear()
                await asyncio.wait_for(calm_tick.wait(), 5)

        async def send_calm() -> None:
            for sequence in itertools.count():
                await calm.send_bytes(frame(sequence, 2000))
                await asyncio.sleep(0.04)  # a camera's 25 fps

        rss = [_rss_bytes(server_a.proc.pid)]

        async def sample_rss() -> None:
            while True:
                rss.append(_rss_bytes(server_a.proc.pid))
                await asyncio.sleep(0.05)

        async def signal_across() -> float:
            """Signaling both ways between a and b, and b's health; how long it took."""
            started = time.monotonic()
            await p2p_viewer.send_json({"type": "offer", "sdp": "v=0\r\n"})
            await _next(calm, "offer", timeout=3)
            await calm.send_json({"type": "answer", "to": ids[p2p_viewer], "sdp": "v=0\r\n"})
            await _next(p2p_viewer, "answer", timeout=3)
            async with session.get(f"{b}/healthz") as response:
                health = await response.json()
                assert response.status == 200 and health["cluster"]["redis"] == "connected", health
            return time.monotonic() - started

        tasks = [asyncio.create_task(job()) for job in (read_flood, read_calm, send_calm, sample_rss)]
        try:
            await calm_frames(5)
            await signal_across()
            before = await _subscribers(redis)
            control, relay_before = before[f"peercam:{node_b}"], before[f"peercam:{node_b}:relay"]
            big, under_cap = MAX_WEBSOCKET_MESSAGE_BYTES - 1, MAX_CLUSTER_FRAME_BYTES - 64
            os.kill(server_b.proc.pid, signal.SIGSTOP)
            try:
                for sequence in range(80):  # until Redis drops b's relay subscription
                    await flooder.send_bytes(frame(sequence, big if sequence % 2 else under_cap))
                    if relay_before not in (await _subscribers(redis)).values():
                        break
            finally:
                os.kill(server_b.proc.pid, signal.SIGCONT)
            assert relay_before not in (await _subscribers(redis)).values(), "Redis kept b's relay subscriber"
            round_trips = [await signal_across() for _ in range(3)]
            calm_after = received["calm"]
            await calm_frames(calm_after + 10)  # b's relay is back
            after = await _subscribers(redis)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    assert after[f"peercam:{node_b}"] == control, "b's signaling subscription was dropped"
    assert max(received["flood"]) <= MAX_CLUSTER_FRAME_BYTES, received["flood"][:20]
    assert max(round_trips) < 3, round_trips
    assert max(rss) - rss[0] < FLOOD_RSS_BOUND, f"instance a grew by {(max(rss) - rss[0]) >> 20} MiB"
    for server in (server_a, server_b):
        assert "lost Redis" not in server.log(), server.log()[-3000:]
    with urllib.request.urlopen(f"{a}/metrics", timeout=5) as response:
        metrics = response.read().decode()
    too_large = re.search(r"^peercam_redis_relay_frames_too_large_total (\S+)$", metrics, re.M)
    assert too_large and float(too_large.group(1)) >= 1, metrics  # counted, and visible


def test_queues_for_redis_are_bounded_in_bytes_and_talk_frames_in_time():
    limit = 10 * COMMAND_OVERHEAD_BYTES
    signaling = CommandQueue(limit)
    dropped = [signaling.put(("PUBLISH", "c", b"x" * 100)) for _ in range(12)]
    assert signaling.bytes <= limit and dropped.count(1) == 12 - len(signaling), dropped
    assert [command[2] for command in signaling.take(2)] == [b"x" * 100] * 2  # oldest first, in order
    assert signaling.bytes == (len(signaling)) * (COMMAND_OVERHEAD_BYTES + 108)

    frames = CommandQueue(limit)
    for index in range(5):
        frames.put(("PUBLISH", "relay:s", bytes([index]) * 400), drop_oldest=True)
    assert frames.put(("PUBLISH", "relay:s", b"new" * 200), drop_oldest=True) >= 1
    kept = [command[2] for command in frames.take(100)]
    assert frames.bytes == 0 and kept[-1] == b"new" * 200 and kept[0][0] > 0  # the oldest went

    talk = CommandQueue(limit, max_age=0.05)
    talk.put(("PUBLISH", "talk:n", b"old"))
    waited_from = time.monotonic()
    while time.monotonic() - waited_from <= 0.05:  # the first frame's age runs out
        time.sleep(0.01)
    talk.put(("PUBLISH", "talk:n", b"new"))
    assert [command[2] for command in talk.take(10)] == [b"new"] and talk.expired == 1 and talk.bytes == 0


class _TellingViewer(Viewer):
    """A JPEG relay reader that also keeps what its server says it reads (``layer`` messages)."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.told: list[tuple[str, int]] = []
        super().__init__(ws)

    async def _read(self) -> None:
        async for msg in self.ws:
            if msg.type == aiohttp.WSMsgType.BINARY:
                self.headers.append(parse_relay_frame(msg.data)[0])
            elif (message := json.loads(msg.data))["type"] == "layer":
                self.told.append((message["layer"], message["jpeg_quality"]))

    def reads(self, rendition: tuple[str, int], frames: int = 3) -> bool:
        """Told it reads ``rendition``, and its last ``frames`` frames are of it."""
        recent = [(RELAY_LAYERS[h.layer].name, h.jpeg_quality) for h in self.headers[-frames:]]
        return self.told[-1:] == [rendition] and recent == [rendition] * frames


def _nearest(made: list[tuple[str, int]], wanted: tuple[str, int]) -> tuple[str, int]:
    """The JPEG rendition made nearest ``wanted``: the nearest layer, then the nearest JPEG quality."""
    index = [layer.name for layer in RELAY_LAYERS].index
    return min(made, key=lambda r: (abs(index(r[0]) - index(wanted[0])), abs(r[1] - wanted[1])))


async def test_jpeg_renditions_read_on_two_instances_stay_within_the_cap_and_every_reader_gets_frames(
        redis_server, lab):
    """Six distinct JPEG renditions read on two instances, three on each (issue 23, finding 7):
    the camera is never asked for more than MAX_JPEG_RENDITIONS in all. Its own instance's
    readers get theirs; on the other, the reader whose rendition is made gets exactly its own,
    and the others the nearest made, each viewer told which by a ``layer`` message. When a
    reader on the camera's instance leaves, a slot frees and a reader elsewhere moves back
    to the rendition it asked for."""
    a, b = start_instances(lab, redis_server, 2)
    port_a, port_b = (int(url.rsplit(":", 1)[1]) for url in (a, b))
    on_a = [("480p", 90), ("480p", 70), ("240p", 60)]
    on_b = [("480p", 40), ("240p", 30), ("240p", 85)]
    layer_index = {layer.name: i for i, layer in enumerate(RELAY_LAYERS)}
    async with aiohttp.ClientSession() as session:
        cam = await FakeCamera.publish(session, port_a, "shared")
        await cam.until(lambda: stream_on(b, "shared").get("live"), 15, "instance b to list the camera")

        def asked() -> list[tuple[str, int]]:
            """The JPEG renditions the camera is asked for now."""
            return [(r["layer"], r["jpeg_quality"]) for r in cam.demands[-1]["jpeg"]] if cam.demands else []

        async def film() -> None:
            """The camera: each JPEG rendition it is asked for, 25 times a second."""
            pictures = {}
            while True:
                for layer, jpeg_quality in asked():
                    if (layer, jpeg_quality) not in pictures:
                        pictures[layer, jpeg_quality] = jpeg_frame(layer_index[layer], jpeg_quality)
                    await cam.ws.send_bytes(pictures[layer, jpeg_quality])
                await asyncio.sleep(0.04)

        filming = asyncio.create_task(film())
        try:
            readers = {}
            for port, wanted in [(port_a, on_a), (port_b, on_b)]:
                for layer, jpeg_quality in wanted:
                    readers[layer, jpeg_quality] = await _TellingViewer.watch(
                        session, port, "shared", quality=layer, jpeg_quality=jpeg_quality)

            async def settle(what: str) -> list[tuple[str, int]]:
                """Wait until the camera is asked for all of a's renditions and only for what
                readers ask, and every reader reads its own (if made) or the nearest made;
                what is made."""
                def settled() -> bool:
                    made = asked()
                    if len(made) != MAX_JPEG_RENDITIONS or not set(on_a) <= set(made) <= set(readers):
                        return False
                    return all(reader.reads(_nearest(made, wanted)) for wanted, reader in readers.items())

                await cam.until(settled, 15, what)
                return asked()

            made = await settle("every reader on a and b to get frames within the cap")
            assert [w for w in on_b if w in made] != [], made  # one of b's is made: its own
            rounded = [w for w in on_b if w not in made]
            assert len(rounded) == 2, made
            for wanted in rounded:  # told why, and what it reads instead
                assert readers[wanted].told[-1] == _nearest(made, wanted) != wanted

            await readers["480p", 90].ws.close()
            del readers["480p", 90]
            on_a.remove(("480p", 90))
            made = await settle("a reader on b to move back to its own rendition when a slot freed")
            assert any(w in made for w in rounded), (rounded, made)
        finally:
            filming.cancel()
            await asyncio.gather(filming, return_exceptions=True)
    jpeg_counts = [len(demand["jpeg"]) for demand in cam.demands]
    assert max(jpeg_counts) <= MAX_JPEG_RENDITIONS, jpeg_counts
    assert not cam.errors, cam.errors


def test_a_cameras_sound_crosses_instances_to_the_readers_that_listen_and_only_while_they_do(
        redis_server, lab):
    """A camera with the test tone on instance a, relay readers on b: the one that asks for
    sound gets every Opus packet through Redis; the camera sends its sound only while it
    listens; the one that did not ask gets pictures only."""
    a, b = start_instances(lab, redis_server, 2)
    cam = camera(lab, [a], "loud")
    wait_until(lambda: stream_on(b, "loud").get("live"), 15, "instance b to list the camera")
    assert stream_on(b, "loud")["audio"]["codec"] == "opus"
    port_b = int(b.rsplit(":", 1)[1])

    def relay_lines() -> list[str]:
        return [line.split(" relay: ", 1)[1] for line in cam.log().splitlines() if " relay: " in line]

    async def listen() -> tuple[RelayListener, RelayListener]:
        async with aiohttp.ClientSession() as session:
            deaf = await RelayListener.watch(session, port_b, "loud", audio=False)
            await until(lambda: len(deaf.pictures) > 10, 20, "pictures through Redis")
            assert not any("Opus" in line for line in relay_lines()), relay_lines()
            ear = await RelayListener.watch(session, port_b, "loud")
            await until(lambda: len(ear.packets) >= 100, 20, "2 s of sound through Redis")
            assert relay_lines()[-1] == "480p encoded, Opus"
            await ear.ws.close()
            await until(lambda: relay_lines()[-1] == "480p encoded", 10, "the camera to stop its sound")
            seen = len(deaf.pictures)
            await until(lambda: len(deaf.pictures) > seen + 10, 10, "pictures after the sound stopped")
            await deaf.ws.close()
            return deaf, ear

    deaf, ear = asyncio.run(listen())
    assert_continuous(ear.packets)
    assert not deaf.packets


def test_a_viewer_on_another_instance_talks_into_the_camera_s_record_on_the_relay(
        redis_server, lab, tmp_path):
    """The camera on instance a records talk back (--talk-record); a viewer on b talks on the
    relay from a file of beeps: its talk frames cross through Redis, and the turn's file holds
    the beeps at their times. (P2P talk needs nothing of Redis but signaling, tested by
    test_talk_server; its sound goes peer to peer.)"""
    a, b = start_instances(lab, redis_server, 2, "--talk", "viewers")
    tone = write_tone(tmp_path / "tone.wav", beeps=(0.5, 1.1, 1.7, 2.3), seconds=2.8)
    record = tmp_path / "talk"
    # The viewer waits for the camera on b while both start.
    speaker = viewer(lab, b, "door", "--name", "Rel", "--mode", "relay", "--talk", str(tone), "--wait", "20")
    cam = camera(lab, [a], "door", "--talk-record", str(record))
    speaker.wait_for_log("peercam view: talking (relay)", timeout=20)
    speaker.wait_for_log("stopped talking (the end of the sound)", timeout=10)
    cam.wait_for_log("recorded the turn to", timeout=10)
    [path] = list(record.iterdir())
    assert path.stem.endswith("-Rel"), path
    assert_same_beeps(envelope(path), envelope(tone))
    metrics = urllib.request.urlopen(f"{a}/metrics", timeout=5).read().decode()
    sent = re.search(r"^peercam_relay_talk_frames_sent_total (\S+)$", metrics, re.M)
    assert sent and float(sent.group(1)) >= 0.9 * 50 * 2.8, metrics  # 20 ms frames, through Redis
