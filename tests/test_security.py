"""The server as an attacker meets it: every read path behind one gate, nothing for
strangers, safe browser defaults, and clean text. Each refusal is checked together with
the legitimate client beside it, which must be unaffected.

Most checks run the real server in-process (signaling/edge/app.py: create_app) with raw clients;
those that need the real camera and viewers run them as processes (the lab fixture).
CI runs the whole suite inside a fresh network namespace (see .ci/run).
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import contextlib
import hashlib
import json
import os
import re
import select
import time
import urllib.error
import urllib.request
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from peercam.signaling.edge.app import create_app
from peercam.signaling.edge.auth import make_token
from peercam.signaling.settings.clientaddress import parse_networks
from peercam.signaling.settings.config import ServerConfig
from peercam.signaling.settings.limits import Limits
from peercam.signaling.settings.turn import TurnConfig

from .conftest import get_json, wait_until
from .support.chromium import goto_player
from .test_websocket import INFO, Client, assert_next_is_a_reply, jpeg_relay_frame

SECRET = "s3cret"
TURN = TurnConfig("turn-secret", ("turn:127.0.0.1:3478",), 600)


def token(stream: str, role: str, ttl: float = 600) -> str:
    return make_token(SECRET, stream, role, ttl)


def bearer(value: str) -> dict:
    return {"Authorization": f"Bearer {value}"}


class Server:
    """The real app on 127.0.0.1, with raw clients (kept open until the server stops)."""

    def __init__(self, test_server: TestServer, session: aiohttp.ClientSession) -> None:
        self.test_server = test_server
        self.session = session
        self.clients: list[Client] = []  # a client nobody holds would be closed when collected

    def url(self, path: str) -> str:
        return str(self.test_server.make_url(path))

    async def connect(self, headers: dict | None = None, welcome: bool = True) -> Client:
        client = Client(await self.session.ws_connect(self.url("/ws"), headers=headers or {}))
        self.clients.append(client)
        if welcome:
            client.welcome = await client.expect("welcome")
        return client

    async def camera(self, stream: str = "lab", publish_token: str = "", name: str = "") -> Client:
        camera = await self.connect()
        await camera.send({"type": "publish", "stream": stream, "info": INFO, "token": publish_token,
                           "name": name})
        await camera.expect("published")
        return camera

    async def viewer(self, stream: str = "lab", view_token: str = "", name: str = "") -> Client:
        viewer = await self.connect()
        await viewer.send({"type": "watch", "stream": stream, "token": view_token, "name": name})
        await viewer.expect("watching")
        return viewer

    async def get(self, path: str, headers: dict | None = None) -> tuple[int, str]:
        async with self.session.get(self.url(path), headers=headers or {}) as response:
            return response.status, await response.text()


@contextlib.asynccontextmanager
async def running(**config):
    app = create_app(ServerConfig(secret=SECRET, **config))
    async with TestServer(app, host="127.0.0.1") as test_server:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
            yield Server(test_server, session)


# -- every read path checks the same token -------------------------------------------


async def test_auth_all_guards_every_read_path_with_the_token_that_the_websocket_asks_for():
    async with running(auth="all") as server:
        camera = await server.camera("lab", token("lab", "publish"))
        await server.camera("other", token("other", "publish"))
        viewer = await server.viewer("lab", token("lab", "view"))
        await viewer.send({"type": "relay", "enabled": True})
        await wait_for_message(camera, "relay-frames", 3)
        await camera.ws.send_bytes(jpeg_relay_frame(1))

        lab, other, admin = token("lab", "view"), token("other", "view"), token("*", "admin")
        for path in ("/api/streams/lab", "/streams/lab/snapshot.jpg", "/streams/lab/mjpeg"):
            status, text = await server.get(path)
            assert status == 401 and "token" in text, (path, status, text)
            for wrong in (other, token("lab", "publish"), lab + "x", "garbage"):
                status, text = await server.get(path, bearer(wrong))
                assert status == 403 and "token" in text, (path, wrong, status, text)
        status, text = await server.get("/api/streams/lab", bearer(lab))
        assert status == 200 and json.loads(text)["viewers"][0]["id"]
        status, _ = await server.get(f"/api/streams/lab?token={lab}")
        assert status == 200
        snapshot = server.url("/streams/lab/snapshot.jpg")
        async with server.session.get(snapshot, headers=bearer(lab)) as response:
            assert response.status == 200 and (await response.read())[:2] == b"\xff\xd8"
        async with server.session.get(server.url(f"/streams/lab/mjpeg?token={lab}")) as response:
            assert response.status == 200
            await camera.ws.send_bytes(jpeg_relay_frame(2))
            assert b"image/jpeg" in await asyncio.wait_for(response.content.readuntil(b"\r\n\r\n"), 5)

        assert (await server.get("/api/streams"))[0] == 401
        assert (await server.get("/api/streams", bearer("garbage")))[0] == 403
        listed = {}
        for shown in (lab, admin, token("lab", "publish")):
            _, text = await server.get("/api/streams", bearer(shown))
            listed[shown] = [s["name"] for s in json.loads(text)]
        assert listed == {lab: ["lab"], admin: ["lab", "other"], token("lab", "publish"): []}

        status, text = await server.get("/metrics")
        assert status == 401 and "token" in text
        assert (await server.get("/metrics", bearer(token("lab", "view"))))[0] == 403
        status, text = await server.get("/metrics", bearer(admin))
        assert status == 200 and "peercam_live_streams 2.0" in text

        # Open paths stay open: the pages and what they load, and the health check.
        for path in ("/", "/view/lab", "/static/js/player.js", "/healthz"):
            assert (await server.get(path))[0] == 200, path


async def test_without_auth_all_the_read_paths_stay_open_and_admin_calls_need_an_admin_token():
    async with running(auth="publish") as server:
        await server.camera("lab", token("lab", "publish"))
        for path in ("/api/streams", "/api/streams/lab", "/metrics"):
            assert (await server.get(path))[0] == 200, path
        async with server.session.post(server.url("/api/streams"), json={"name": "x"}) as response:
            assert response.status == 401 and "token" in await response.text()
        async with server.session.post(server.url("/api/streams"), json={"name": "x"},
                                       headers=bearer(token("*", "view"))) as response:
            assert response.status == 403 and "token" in await response.text()
        async with server.session.post(server.url("/api/streams"), json={"name": "x"},
                                       headers=bearer(token("other", "admin"))) as response:
            assert response.status == 403 and "token" in await response.text()


async def test_mjpeg_and_snapshot_readers_count_against_max_viewers_and_the_address_limit():
    limits = Limits(viewers_per_stream=3, connections_per_address=5)
    async with running(limits=limits) as server:
        camera = await server.camera()
        await server.viewer()
        responses = []
        for _ in range(2):
            response = await server.session.get(server.url("/streams/lab/mjpeg"))
            assert response.status == 200
            responses.append(response)
        status, text = await server.get("/streams/lab/mjpeg")
        assert status == 503 and "viewers" in text
        status, _ = await server.get("/streams/lab/snapshot.jpg")
        assert status == 503
        late = await server.connect()
        await late.send({"type": "watch", "stream": "lab"})
        assert (await late.expect("error"))["code"] == "stream-full"
        # 1 camera + 1 viewer + 2 MJPEG + 1 late socket = 5 from this address: the sixth is refused.
        async with server.session.get(server.url("/streams/other/mjpeg")) as response:
            assert response.status == 429 and "per address" in await response.text()
        extra = await server.connect(welcome=False)
        assert (await extra.receive())["code"] == "too-many-connections"
        for response in responses:
            response.close()
        # A reader that hung up is noticed at the next frame: then its place is free again.
        for sequence in range(50):
            await camera.ws.send_bytes(jpeg_relay_frame(sequence))
            await late.send({"type": "watch", "stream": "lab"})
            if (await late.receive())["type"] == "watching":
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("the MJPEG readers' places never came free")


async def wait_for_message(client: Client, type_: str, timeout: float) -> dict:
    """The next message of a type, skipping others (errors a retry may have caused)."""
    deadline = time.monotonic() + timeout
    while True:
        message = await client.receive(max(0.1, deadline - time.monotonic()))
        if message["type"] == type_:
            return message


# -- strangers get nothing and create nothing ------------------------------------------


async def test_turn_credentials_only_for_those_who_watch_or_publish():
    async with running(auth="publish", turn=TURN) as server:
        stranger = await server.connect()
        assert all(not s.get("username") for s in stranger.welcome["ice_servers"])
        await stranger.send({"type": "watch", "stream": "lab"})
        watching = await stranger.expect("watching")
        assert [s["urls"] for s in watching["ice_servers"] if s.get("username")] == [["turn:127.0.0.1:3478"]]
        camera = await server.connect()
        await camera.send({"type": "publish", "stream": "lab", "info": INFO,
                           "token": token("lab", "publish")})
        published = await camera.expect("published")
        assert any(s.get("username") for s in published["ice_servers"])
    async with running(turn=TURN) as server:  # --auth open: in the welcome, as before
        assert any(s.get("username") for s in (await server.connect()).welcome["ice_servers"])


async def test_a_socket_that_neither_watches_nor_publishes_is_closed():
    async with running(limits=Limits(idle_seconds=1.0)) as server:
        viewer = await server.viewer()
        idle = await server.connect()  # after the viewer: its time is up after the viewer's
        error = await idle.expect("error", timeout=5)
        assert error["code"] == "idle-timeout"
        assert (await idle.ws.receive(timeout=5)).type == aiohttp.WSMsgType.CLOSE
        await viewer.send({"type": "relay", "enabled": True})  # the viewer's socket lives on
        await server.camera()
        await viewer.expect("stream-live")  # and it got nothing before: no error, no close
        assert not viewer.ws.closed


async def test_a_hundred_strangers_watching_made_up_names_leave_a_camera_free_to_publish():
    limits = Limits(streams=3, connections_per_address=200)
    async with running(auth="publish", limits=limits) as server:
        strangers = [await server.viewer(f"made-up-{n}") for n in range(100)]
        assert len(strangers) == 100
        for n in range(3):
            await server.camera(f"real-{n}", token(f"real-{n}", "publish"))
        fourth = await server.connect()
        await fourth.send({"type": "publish", "stream": "real-3", "info": INFO,
                           "token": token("real-3", "publish")})
        assert (await fourth.expect("error"))["code"] == "too-many-streams"  # the limit counts cameras


async def test_a_reserved_name_belongs_to_the_holder_of_its_publish_token():
    async with running() as server:  # --auth open: anyone may publish an unreserved name
        squatter = await server.camera("lab")
        viewer = await server.viewer("lab")
        await viewer.expect("stream-live")
        async with server.session.post(server.url("/api/streams"), json={"name": "lab", "ttl": "5m"},
                                       headers=bearer(token("*", "admin"))) as response:
            assert response.status == 201
            publish_token = (await response.json())["publish_token"]
        ended = await wait_for_message(squatter, "stream-ended", 3)
        assert "reserved" in ended["reason"]
        assert (await squatter.ws.receive(timeout=5)).type == aiohttp.WSMsgType.CLOSE
        assert (await viewer.expect("stream-ended"))["stream"] == "lab"
        again = await server.connect()
        await again.send({"type": "publish", "stream": "lab", "info": INFO})
        assert (await again.expect("error"))["code"] == "bad-token"
        await server.camera("lab", publish_token)
        assert (await viewer.expect("stream-live"))["stream"] == "lab"


async def test_cameras_are_rate_limited_generously():
    limits = Limits(messages_per_second=5, message_burst=5)
    async with running(limits=limits) as server:
        camera = await server.camera()
        for _ in range(40):  # far past a viewer's burst, within the camera's
            await camera.send({"type": "camera-stats", "stats": {"fps": 30, "encode_ms": 3}})
        await assert_next_is_a_reply(camera)  # no error came for any of them
        for _ in range(60):
            await camera.send({"type": "camera-stats", "stats": {"fps": 30, "encode_ms": 3}})
        assert (await camera.expect("error"))["code"] == "rate-limited"


async def test_the_address_limit_never_locks_out_a_camera_with_a_publish_token():
    async with running(limits=Limits(connections_per_address=2)) as server:
        await server.viewer("lab")
        await server.viewer("lab")
        refused = await server.connect(welcome=False)
        assert (await refused.receive())["code"] == "too-many-connections"
        camera = await server.connect(headers=bearer(token("lab", "publish")))
        await camera.send({"type": "publish", "stream": "lab", "info": INFO,
                           "token": token("lab", "publish")})
        await camera.expect("published")
        forged = await server.connect(headers=bearer("forged.token"), welcome=False)
        assert (await forged.receive())["code"] == "too-many-connections"


async def test_x_forwarded_for_counts_only_from_a_trusted_proxy():
    limits = Limits(connections_per_address=1)
    async with running(limits=limits, trusted_proxies=parse_networks(["127.0.0.1"])) as server:
        first = await server.connect(headers={"X-Forwarded-For": "203.0.113.7"})
        await server.connect(headers={"X-Forwarded-For": "203.0.113.8, 127.0.0.1"})
        same = await server.connect(headers={"X-Forwarded-For": "203.0.113.7"}, welcome=False)
        assert (await same.receive())["code"] == "too-many-connections"
        assert first.welcome["type"] == "welcome"
    async with running(limits=limits) as server:  # no trusted proxy: the header means nothing
        await server.connect(headers={"X-Forwarded-For": "203.0.113.7"})
        other = await server.connect(headers={"X-Forwarded-For": "203.0.113.8"}, welcome=False)
        assert (await other.receive())["code"] == "too-many-connections"


# -- safe defaults for browsers ---------------------------------------------------------


async def test_websockets_from_other_origins_are_refused_unless_allowed():
    async with running() as server:
        host = server.url("/").split("//")[1].rstrip("/")
        await server.connect(headers={"Origin": f"http://{host}"})  # the server's own pages
        await server.connect()  # no Origin: the Python peers
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await server.connect(headers={"Origin": "http://evil.example"})
        assert refused.value.status == 403
    async with running(allowed_origins=("*",)) as server:
        await server.connect(headers={"Origin": "http://evil.example"})
    async with running(allowed_origins=("https://cams.example.org",)) as server:
        await server.connect(headers={"Origin": "https://cams.example.org"})
        with pytest.raises(aiohttp.WSServerHandshakeError):
            await server.connect(headers={"Origin": "http://evil.example"})


async def test_a_loopback_server_answers_only_to_loopback_host_names():
    async with running() as server:
        port = server.test_server.port
        for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"app.localhost:{port}"):
            assert (await server.get("/healthz", {"Host": host}))[0] == 200, host
        status, text = await server.get("/healthz", {"Host": "rebound.example:80"})
        assert status == 403 and "--allowed-host" in text
        with pytest.raises(aiohttp.WSServerHandshakeError):
            await server.connect(headers={"Host": "rebound.example"})
    async with running(allowed_hosts=("cams.example.org",)) as server:
        assert (await server.get("/healthz", {"Host": "cams.example.org:8080"}))[0] == 200
    async with running(host="0.0.0.0") as server:  # listening on every interface: any name
        assert (await server.get("/healthz", {"Host": "cams.example.org"}))[0] == 200


def _inline_script_hash(page: str) -> str:
    html = (Path(__file__).resolve().parents[1] / "web" / page).read_text()
    [script] = re.findall(r"<script>(.*?)</script>", html, re.DOTALL)
    return base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()


async def test_every_response_carries_the_browser_security_headers():
    async with running() as server:
        for path in ("/", "/view/lab", "/static/js/player.js", "/api/streams", "/no/such/page"):
            async with server.session.get(server.url(path)) as response:
                headers = response.headers
                policy = headers["Content-Security-Policy"]
                assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy, path
                assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
                # The player's one inline script (its early socket) may run, named by its hash.
                hashes = re.findall(r"'sha256-([^']+)'", policy)
                assert hashes == ([_inline_script_hash("player.html")] if path == "/view/lab" else []), path
                assert headers["X-Content-Type-Options"] == "nosniff"
                assert headers["Referrer-Policy"] == "no-referrer"


# -- text that others will read ----------------------------------------------------------


@pytest.mark.parametrize("name", ["cam\n", "cam\r", "cam\x1b[31m", ".hidden", "..", "a" * 65, "", "cam/x"])
async def test_stream_names_are_matched_in_full(name):
    async with running() as server:
        await server.camera("cam")
        client = await server.connect()
        await client.send({"type": "watch", "stream": name})
        assert (await client.expect("error"))["code"] == "bad-stream-name"
        await client.send({"type": "publish", "stream": name, "info": INFO})
        assert (await client.expect("error"))["code"] == "bad-stream-name"
        async with server.session.post(server.url("/api/streams"), json={"name": name},
                                       headers=bearer(token("*", "admin"))) as response:
            assert response.status == 400 and "stream name" in await response.text()


@pytest.mark.parametrize("stats, code, words", [
    ('{"mode": "p2p", "fps": 1e300}', "bad-message", "fps"),
    ('{"mode": "p2p", "fps": 1e999}', "bad-json", "range"),  # beyond a double: not even JSON numbers
    ('{"mode": "p2p", "fps": 30, "latency_ms": -5}', "bad-message", "latency_ms"),
    ('{"mode": "p2p", "fps": 30, "frames": -1}', "bad-message", "frames"),
    ('{"mode": "p2p", "fps": 30, "decoder": "' + "x" * 65 + '"}', "bad-message", "decoder"),
    ('{"mode": "p2p", "fps": 30, "width": 1000000000}', "bad-message", "width"),
    ('{"mode": "ftp", "fps": 30}', "bad-message", "mode"),
])
async def test_absurd_viewer_stats_are_refused(stats, code, words):
    async with running() as server:
        await server.camera()
        viewer = await server.viewer()
        await viewer.send(f'{{"type": "stats", "stats": {stats}}}')
        error = await wait_for_message(viewer, "error", 3)
        assert error["code"] == code and words in error["reason"], error
        await viewer.send({"type": "stats", "stats": {"mode": "p2p", "fps": 30}})  # the socket lives on
        await assert_next_is_a_reply(viewer)  # and that report was taken


async def test_the_stream_details_stay_small_however_viewers_fill_their_reports():
    largest = {"mode": "relay", "fps": 1000, "frames": 2**53, "width": 16384, "height": 16384,
               "bitrate_kbps": 10_000_000, "latency_ms": 3_600_000, "frames_dropped": 2**53,
               "packets_lost": 2**53, "jitter_ms": 3_600_000, "rtt_ms": 3_600_000, "freezes": 2**53,
               "decoder": "d" * 64}
    async with running() as server:
        await server.camera()
        # 32 characters each, all different: names are unique per stream
        viewers = [await server.viewer(name=f"{i:02d}" + "n" * 30) for i in range(20)]
        for viewer in viewers:
            await viewer.send({"type": "stats", "stats": largest})
        deadline = time.monotonic() + 5
        while True:
            _, text = await server.get("/api/streams/lab")
            if all(v["stats"] for v in json.loads(text)["viewers"]) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        assert [v["stats"]["decoder"] for v in json.loads(text)["viewers"]] == ["d" * 64] * 20
        assert len(text) < 20 * 600, len(text)


@pytest.mark.parametrize("body", [b'{"name": 123}', b'{"name": "lab", "ttl": "inf"}',
                                  b'{"name": "lab", "ttl": "-1h"}', b'{"name": "lab", "ttl": "1e400"}',
                                  b'{"name": "lab", "ttl": 1e999}', b"not json", b"[]", b"{}",
                                  b'{"name": "lab", "extra": 1}'])
async def test_the_admin_api_answers_bad_input_with_400_and_a_reason(body):
    async with running() as server:
        async with server.session.post(server.url("/api/streams"), data=body,
                                       headers=bearer(token("*", "admin"))) as response:
            text = await response.text()
            assert response.status == 400 and len(text.strip()) > 10, (body, response.status, text)
        assert (await server.get("/healthz"))[0] == 200


async def test_a_viewer_cannot_take_the_cameras_name():
    async with running() as server:
        await server.camera(name="Lab Camera")
        viewer = await server.connect()
        await viewer.send({"type": "watch", "stream": "lab", "name": "lab camera"})
        assert (await viewer.expect("error"))["code"] == "bad-name"
        named = await server.viewer(name="alice")
        await named.expect("stream-live")
        await named.send({"type": "rename", "name": "Lab Camera"})
        assert (await named.expect("error"))["code"] == "bad-name"
        await named.send({"type": "rename", "name": "bob\x1b[2J"})
        assert (await named.expect("error"))["code"] == "bad-name"


def test_chat_names_control_characters_and_hangup_reasons_end_to_end(lab):
    """The real camera and CLI: a line with escape sequences reaches the terminal clean, under the
    name its sender watched with; a garbage offer gets a hangup in words."""
    lab.start_server()
    camera = lab.start_camera("lab", "--name", "Lab Camera")
    reader = lab.start_viewer("lab", "--mode", "relay", "--chat", "--name", "reader")
    reader.wait_for_log("first frame", timeout=20)

    async def attack() -> str:
        async with aiohttp.ClientSession() as session:
            ws = Client(await session.ws_connect(f"{lab.url}/ws"))
            await ws.expect("welcome")
            await ws.send({"type": "watch", "stream": "lab", "name": "mallory"})
            await wait_for_message(ws, "stream-live", 10)
            await ws.send({"type": "chat-send", "name": "Lab Camera",
                           "text": "\x1b[2J\x1b[31mred\r\n2026-12-02 fake log line\u202e"})
            await ws.send({"type": "offer", "sdp": "v=0\r\ngarbage\r\n"})
            return (await wait_for_message(ws, "hangup", 15))["reason"]

    reason = asyncio.run(attack())
    assert reason == "the camera could not answer your offer: its SDP is not a usable video offer"
    line = wait_until(lambda: next((x for x in _stdout_lines(reader) if "red" in x), None), 15,
                      "the chat line on the reader's stdout")
    assert "mallory: " in line and "Lab Camera" not in line
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f\u202e]", line), repr(line)
    camera.wait_for_log("chat #", timeout=5)
    assert "\x1b" not in camera.log() and "\u202e" not in camera.log()


def _stdout_lines(process) -> list[str]:
    """What a process has printed on stdout so far (read without blocking)."""
    fd = process.proc.stdout.fileno()
    os.set_blocking(fd, False)
    chunks = getattr(process, "_stdout_chunks", [])
    while select.select([fd], [], [], 0)[0]:
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        chunks.append(chunk.decode(errors="replace"))
    process._stdout_chunks = chunks
    return "".join(chunks).splitlines()


def test_a_real_camera_with_its_token_gets_past_a_full_address(lab):
    """Two viewers take this address's whole share; the camera, which shows its publish token
    as it connects, still publishes, and they play."""
    lab.start_server("--secret", SECRET, "--auth", "all", "--max-connections-per-address", "2")
    view = token("lab", "view")
    lab.token = view
    viewers = [lab.start_viewer("lab", "--wait", "30", "--duration", "1", "--token", view)
               for _ in range(2)]
    wait_until(lambda: all("waiting for a camera" in v.log() for v in viewers), 20, "both viewers to wait")
    lab.start_camera("lab", "--token", token("lab", "publish"))
    assert all(v.summary(timeout=40)["frames"] > 0 for v in viewers)


def _read_mjpeg(url: str, headers: dict, parts: int, timeout: float = 10) -> int:
    request = urllib.request.Request(url, headers=headers)
    seen = 0
    with urllib.request.urlopen(request, timeout=timeout) as response:
        while seen < parts:
            line = response.readline()
            if not line:
                break
            seen += line.startswith(b"Content-Type: image/jpeg")
    return seen


def test_mjpeg_with_a_view_token_streams_from_the_real_camera(lab):
    lab.start_server("--secret", SECRET, "--auth", "all")
    lab.token = token("lab", "view")
    lab.start_camera("lab", "--token", token("lab", "publish"))
    assert _read_mjpeg(f"{lab.url}/streams/lab/mjpeg", bearer(token("lab", "view")), parts=5) == 5
    with pytest.raises(urllib.error.HTTPError) as refused:
        _read_mjpeg(f"{lab.url}/streams/lab/mjpeg", {}, parts=1)
    assert refused.value.code == 401
    viewer = lab.start_viewer("lab", "--duration", "1", "--token", token("lab", "view"))
    assert viewer.summary(timeout=30)["frames"] > 0
    assert get_json(f"{lab.url}/api/streams/lab") is None  # no token: 401, no JSON


def test_the_pages_work_under_their_content_security_policy(lab, browser):
    """Without Playwright's CSP bypass: the dashboard lists and the player plays (P2P and relay)
    with no policy violation, and the dashboard passes its token on to thumbnails and links."""
    lab.start_server("--secret", SECRET, "--auth", "all")
    admin = token("*", "admin")
    lab.token = admin
    lab.start_camera("lab", "--token", token("lab", "publish"))
    context = browser.new_context()  # CSP enforced
    violations: list[str] = []
    context.add_init_script(
        "document.addEventListener('securitypolicyviolation', (e) =>"
        " (window.__violations ??= []).push(e.violatedDirective + ' ' + e.blockedURI))")
    try:
        page = context.new_page()
        page.goto(f"{lab.url}/?token={admin}")
        _poll(page, "document.querySelectorAll('li.stream').length === 1", 15)
        href = page.evaluate("document.querySelector('li.stream a.stream-name').getAttribute('href')")
        assert href == f"/view/lab?token={admin}"
        _poll(page, "document.querySelector('li.stream img').src.startsWith('blob:')", 15)
        violations += page.evaluate("window.__violations ?? []")
        for mode in ("p2p", "relay"):
            page.goto(f"{lab.url}/view/lab?mode={mode}&token={token('lab', 'view')}")
            # (no goto_player: its wait evaluates a string, which the policy refuses)
            _poll(page, "window.peercam?.state() === 'playing' && peercam.stats().frames > 10", 20)
            violations += page.evaluate("window.__violations ?? []")
        # The page's own inline script ran (the player took over its socket); another is refused.
        assert page.evaluate("window.peercamEarlySocket.socket.readyState") == 1
        page.evaluate("document.head.append(Object.assign(document.createElement('script'),"
                      " {textContent: 'window.__injected = 1'}))")
        _poll(page, "(window.__violations ?? []).some((v) => v.startsWith('script-src-elem inline'))", 5)
        assert page.evaluate("window.__injected") is None
    finally:
        context.close()
    assert violations == []


def _poll(page, expression: str, timeout: float) -> None:
    """wait_for_function without eval (the CSP forbids it): evaluate over CDP until true."""
    wait_until(lambda: page.evaluate(expression), timeout, expression, interval=0.2)


def test_the_page_chat_log_stays_bounded(lab, page):
    lab.start_server("--max-connections-per-address", "100")
    lab.start_camera("lab")
    goto_player(page, f"{lab.url}/view/lab?mode=relay&name=watcher")
    page.wait_for_function("peercam.state() === 'playing'", timeout=20_000)

    async def flood() -> None:
        async with aiohttp.ClientSession() as session:
            senders = []
            for n in range(26):  # the hub allows each sender a burst of 10
                ws = Client(await session.ws_connect(f"{lab.url}/ws"))
                await ws.expect("welcome")
                await ws.send({"type": "watch", "stream": "lab", "name": f"s{n}"})
                senders.append(ws)
            for ws in senders:
                await wait_for_message(ws, "stream-live", 10)
            for n, ws in enumerate(senders):
                for k in range(10):
                    await ws.send({"type": "chat-send", "text": f"line {n}-{k}"})
            for ws in senders:  # each sender sees the last line come back: all went through
                while (await wait_for_message(ws, "chat", 20))["id"] < 260:
                    pass

    # Playwright's sync API holds this thread's event loop: the raw clients get a thread of their own.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, flood()).result(timeout=60)
    page.wait_for_function("peercam.chat().length === 200 && peercam.chat().at(-1).id === 260",
                           timeout=30_000)
    assert page.evaluate("document.querySelectorAll('.chat-message').length") == 200
    assert page.evaluate("peercam.chat()[0].id") == 61

