"""WHEP out (signaling/edge/whep.py): WHEP players watch a real camera through the real server.

A player written here with aiortc plays and meets every status the endpoint answers; the
whip-whep package's WHEPClient (tests/support/whipwhep/) plays in headless Chromium from a
page on another origin; a camera on a plain WebSocket shows what the server forwards to it;
a server with --auth all and TURN hands out Link headers only with a valid token; and a
player on one instance of a cluster watches a camera on another.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import shutil
import time
from collections.abc import Iterator

import aiohttp
import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError
from peercam.signaling.edge.auth import make_token
from peercam.signaling.edge.whep import ANSWER_SECONDS, RETRY_AFTER_SECONDS
from peercam.signaling.settings.limits import Limits

from peercam.shared.protocol import PROTOCOL_VERSION

from .conftest import (
    TESTSRC_LAYERS,
    Lab,
    decoded_frames,
    get_json,
    require,
    wait_for_frames,
    wait_until,
)
from .support.chromium import goto_player
from .support.whipwhepsite import PageSite
from .test_cluster import camera as cluster_camera
from .test_cluster import start_instances, stream_on
from .test_turn import SECRET as TURN_SECRET
from .test_turn import Coturn
from .test_websocket import INFO

STREAM = "cam"
SDP = {"Content-Type": "application/sdp"}
SDPFRAG = {"Content-Type": "application/trickle-ice-sdpfrag"}
@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Iterator[PageSite]:
    site = PageSite(tmp_path_factory.mktemp("whep-page"))
    yield site
    site.close()


@pytest.fixture(scope="module")
def lab(tmp_path_factory, site) -> Iterator[Lab]:
    """One server (two viewers a stream at most; the test page's origin allowed) and a
    camera on STREAM (the test pattern: 480p and 360p, with the test tone), for the module."""
    lab = Lab(tmp_path_factory.mktemp("whep"))
    try:
        lab.start_server("--max-viewers", "2", "--allowed-origin", site.origin)
        # A viewer that never connects is hung up on in 5 s (by default 15).
        lab.start_camera(STREAM, "--connect-timeout", "5")
        yield lab
    finally:
        lab.stop()


def whep_viewers(lab_url: str, stream: str = STREAM) -> list[dict]:
    return [v for v in (get_json(f"{lab_url}/api/streams/{stream}") or {}).get("viewers", [])
            if v["mode"] == "whep"]


def no_viewers_left(lab_url: str, stream: str = STREAM) -> bool:
    """Nobody watches, and the camera's latest report lists no viewer either."""
    summary = get_json(f"{lab_url}/api/streams/{stream}") or {}
    stats = (summary.get("camera") or {}).get("stats") or {}
    return summary.get("viewer_count") == 0 and not stats.get("viewers")


async def until(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out after {timeout:g} s waiting for {what}"
        await asyncio.sleep(0.1)


class Player:
    """A WHEP player made with aiortc: recvonly video (and sound), every frame noted."""

    def __init__(self, audio: bool = True, video: bool = True) -> None:
        self.pc = RTCPeerConnection()
        if video:
            self.pc.addTransceiver("video", direction="recvonly")
        if audio:
            self.pc.addTransceiver("audio", direction="recvonly")
        self.frames: list[tuple[float, int, int]] = []  # (arrival, width, height)
        self.sound = 0  # audio frames
        self._readers: list[asyncio.Task] = []
        self.pc.on("track", lambda track: self._readers.append(asyncio.create_task(self._read(track))))
        self.location = self.etag = ""

    async def offer(self) -> str:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return self.pc.localDescription.sdp

    async def post(self, http: aiohttp.ClientSession, url: str, **headers: str) -> aiohttp.ClientResponse:
        """POST the offer; on 201 apply the answer and keep the session's URL and ETag."""
        response = await http.post(url, data=await self.offer(), headers={**SDP, **headers})
        if response.status == 201:
            self.location, self.etag = response.headers["Location"], response.headers["ETag"]
            await self.pc.setRemoteDescription(RTCSessionDescription(await response.text(), "answer"))
        return response

    async def _read(self, track) -> None:
        try:
            while True:
                frame = await track.recv()
                if track.kind == "video":
                    self.frames.append((time.monotonic(), frame.width, frame.height))
                else:
                    self.sound += 1
        except MediaStreamError:
            pass

    async def play_for(self, seconds: float, at_least: int = 20) -> list[tuple[float, int, int]]:
        """Frames that arrive over ``seconds`` after the first; asserts they kept coming."""
        await until(lambda: self.frames, 20, "the first frame")
        start, sound = len(self.frames), self.sound
        await asyncio.sleep(seconds)
        frames = self.frames[start:]
        assert len(frames) >= at_least, f"{len(frames)} frames in {seconds:g} s"
        gaps = [b[0] - a[0] for a, b in zip(frames, frames[1:], strict=False)]
        assert max(gaps) < 1.5, f"a gap of {max(gaps):.2f} s between frames"
        assert self.sound > sound, "no sound arrived"
        return frames

    async def close(self) -> None:
        await self.pc.close()
        for reader in self._readers:
            reader.cancel()


def restart_frag() -> str:
    """New ICE credentials: an ICE restart."""
    return "\r\n".join(["a=ice-ufrag:newU", "a=ice-pwd:newpasswordnewpassword12",
                        "m=video 9 UDP/TLS/RTP/SAVPF 0", "a=mid:0", ""])


def trickle_frag(offer: str) -> str:
    """The offer's own credentials, one of its candidates again, a TCP one (dropped) and the end."""
    lines = offer.splitlines()
    ufrag = next(line for line in lines if line.startswith("a=ice-ufrag:"))
    pwd = next(line for line in lines if line.startswith("a=ice-pwd:"))
    candidate = next(line for line in lines if line.startswith("a=candidate:"))
    return "\r\n".join([ufrag, pwd, "m=video 9 UDP/TLS/RTP/SAVPF 0", "a=mid:0", candidate,
                        "a=candidate:9 1 tcp 1518280447 127.0.0.1 9 typ host tcptype active",
                        "a=end-of-candidates", ""])


async def test_a_whep_player_plays_is_listed_and_meets_the_session_rules(lab, loopback_ice):
    player = Player()
    async with aiohttp.ClientSession(lab.url) as http:
        response = await player.post(http, f"/whep/{STREAM}")
        assert response.status == 201, await response.text()
        assert response.headers["Content-Type"] == "application/sdp"
        assert player.location.startswith(f"/whep/{STREAM}/") and len(player.location) > 25
        assert player.etag.startswith('"') and player.etag.endswith('"')
        assert "Link" not in response.headers  # no STUN or TURN configured: nothing to offer
        frames = await player.play_for(4)
        assert {(w, h) for _, w, h in frames} <= set(TESTSRC_LAYERS.values()), frames[:3]

        # Listed, counted and measured like any viewer: from the camera's reports.
        listed = await until(lambda: [v for v in whep_viewers(lab.url) if (v["stats"] or {}).get("frames")],
                             15, "the WHEP viewer's stats from the camera's reports")
        assert listed[0]["layer"] in TESTSRC_LAYERS and listed[0]["stats"]["mode"] == "whep", listed
        summary = lab.api(f"/api/streams/{STREAM}")
        assert summary["viewers_by_mode"] == {"p2p": 0, "relay": 0, "whep": 1}, summary
        async with http.get("/metrics") as metrics:
            assert f'peercam_viewers{{mode="whep",stream="{STREAM}"}} 1.0' in await metrics.text()

        session = player.location
        offer = player.pc.localDescription.sdp
        assert (await http.patch(session, data=trickle_frag(offer), headers=SDPFRAG)).status == 204
        assert (await http.patch(session, data=trickle_frag(offer),
                                 headers={**SDPFRAG, "If-Match": player.etag})).status == 204
        assert (await http.patch(session, data=trickle_frag(offer),
                                 headers={**SDPFRAG, "If-Match": '"another"'})).status == 412
        assert (await http.patch(session, data=trickle_frag(offer),
                                 headers={"Content-Type": "application/sdp"})).status == 415
        assert (await http.patch(session, data="not a fragment", headers=SDPFRAG)).status == 400

        # An ICE restart asks for If-Match; then the camera cannot do it, and the session goes on.
        assert (await http.patch(session, data=restart_frag(), headers=SDPFRAG)).status == 428
        assert (await http.patch(session, data=restart_frag(),
                                 headers={**SDPFRAG, "If-Match": '"stale"'})).status == 412
        refused = await http.patch(session, data=restart_frag(), headers={**SDPFRAG, "If-Match": "*"})
        assert refused.status == 422 and "restart" in await refused.text()
        await player.play_for(2)
        assert len(whep_viewers(lab.url)) == 1

        deleted = await http.delete(session)
        assert deleted.status == 200
        await until(lambda: no_viewers_left(lab.url), 15, "the camera to drop the viewer")
        assert (await http.delete(session)).status == 404
        assert (await http.patch(session, data=trickle_frag(offer), headers=SDPFRAG)).status == 404
    await player.close()


async def test_quality_puts_the_player_on_that_layer(lab, loopback_ice):
    await until(lambda: no_viewers_left(lab.url), 15, "the stream to have no viewers")
    player = Player()
    async with aiohttp.ClientSession(lab.url) as http:
        assert (await http.post(f"/whep/{STREAM}?quality=huge", data=await player.offer(),
                                headers=SDP)).status == 400
        response = await player.post(http, f"/whep/{STREAM}?quality=360p")
        assert response.status == 201, await response.text()
        frames = await player.play_for(3)
        assert {(w, h) for _, w, h in frames[5:]} == {TESTSRC_LAYERS["360p"]}, frames[-3:]
        [viewer] = whep_viewers(lab.url)
        assert viewer["quality"] == "360p" and viewer["layer"] == "360p", viewer
        assert (await http.delete(player.location)).status == 200
    await player.close()


async def test_what_the_endpoint_refuses(lab, site, loopback_ice):
    await until(lambda: no_viewers_left(lab.url), 15, "the stream to have no viewers")
    offerer, audio_offerer = Player(), Player(video=False)
    offer, audio_only = await offerer.offer(), await audio_offerer.offer()
    limit = Limits().max_sdp_bytes
    async with aiohttp.ClientSession(lab.url) as http:
        async def post(path: str, body: str, content_type: str = "application/sdp", **headers):
            return await http.post(path, data=body, headers={"Content-Type": content_type, **headers})

        assert (await post(f"/whep/{STREAM}", offer, "text/plain")).status == 415
        assert (await post(f"/whep/{STREAM}", "hello")).status == 400
        assert (await post(f"/whep/{STREAM}", "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\n")).status == 400
        no_ice = "\r\n".join(line for line in offer.splitlines() if not line.startswith("a=ice-"))
        assert (await post(f"/whep/{STREAM}", no_ice)).status == 400
        assert (await post(f"/whep/{STREAM}", audio_only)).status == 422
        assert (await post(f"/whep/{STREAM}", offer + "a=x-padding:" + "x" * limit + "\r\n")).status == 413
        assert (await post("/whep/nobody", offer)).status == 404
        assert (await post("/whep/-bad", offer)).status == 404  # not a stream name
        assert (await http.head("/whep/nobody")).status == 404
        head = await http.head(f"/whep/{STREAM}")
        assert head.status == 200 and head.headers["Accept-Post"] == "application/sdp"

        # A name the server knows, without its camera: a viewer waits for it on the WebSocket.
        async with http.ws_connect("/ws") as waiting:
            await waiting.receive_json()  # welcome
            await waiting.send_json({"type": "watch", "stream": "later", "protocol": PROTOCOL_VERSION})
            assert (await waiting.receive_json())["type"] == "watching"
            not_live = await post("/whep/later", offer)
            assert not_live.status == 409 and not_live.headers["Retry-After"] == str(RETRY_AFTER_SECONDS)
            assert (await http.head("/whep/later")).status == 409

        # CORS: a page from an allowed origin may, one from elsewhere may not.
        preflight = await http.options(f"/whep/{STREAM}", headers={
            "Origin": site.origin, "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type, authorization"})
        assert preflight.status == 204 and preflight.headers["Access-Control-Allow-Origin"] == site.origin
        assert "PATCH" in preflight.headers["Access-Control-Allow-Methods"]
        allowed = preflight.headers["Access-Control-Allow-Headers"]
        assert all(h in allowed for h in ("Content-Type", "Authorization", "If-Match")), allowed
        assert preflight.headers["Accept-Post"] == "application/sdp"
        session_preflight = await http.options(f"/whep/{STREAM}/whatever", headers={"Origin": site.origin})
        assert session_preflight.headers["Accept-Patch"] == "application/trickle-ice-sdpfrag"
        elsewhere = {"Origin": "http://evil.example"}
        assert (await http.options(f"/whep/{STREAM}", headers=elsewhere)).status == 403
        assert (await post(f"/whep/{STREAM}", offer, **elsewhere)).status == 403
        unknown = await post("/whep/nobody", offer, Origin=site.origin)
        assert unknown.headers["Access-Control-Allow-Origin"] == site.origin
        assert "Location" in unknown.headers["Access-Control-Expose-Headers"]

        assert (await http.patch(f"/whep/{STREAM}/made-up", data="a=end-of-candidates", headers=SDPFRAG)
                ).status == 404
        assert (await http.delete(f"/whep/{STREAM}/made-up")).status == 404

        # --max-viewers 2: two sessions (they need not connect for that), then 503.
        first, second = Player(), Player()
        for player in (first, second):
            assert (await player.post(http, f"/whep/{STREAM}")).status == 201
        assert (await post(f"/whep/{STREAM}", offer)).status == 503
        for player in (first, second):
            assert (await http.delete(player.location)).status == 200
            await player.close()
        await until(lambda: no_viewers_left(lab.url), 15, "the camera to drop both viewers")
        third = Player()
        assert (await third.post(http, f"/whep/{STREAM}")).status == 201
        assert (await http.delete(third.location)).status == 200
    for player in (third, offerer, audio_offerer):
        await player.close()


async def test_sessions_that_never_connect_or_go_silent_are_ended(lab, loopback_ice):
    await until(lambda: no_viewers_left(lab.url), 15, "the stream to have no viewers")
    silent, never = Player(), Player()
    async with aiohttp.ClientSession(lab.url) as http:
        assert (await silent.post(http, f"/whep/{STREAM}")).status == 201
        await silent.play_for(1, at_least=5)
        await until(lambda: [v for v in whep_viewers(lab.url) if v["stats"].get("frames")],
                    15, "the camera to report the player connected")
        # Gone without a DELETE: only the camera's reports tell.
        await silent.close()
        # Never applies the answer: the camera hangs up at its connect timeout (5 s here).
        response = await http.post(f"/whep/{STREAM}", data=await never.offer(), headers=SDP)
        assert response.status == 201
        await until(lambda: not whep_viewers(lab.url), 12, "both sessions to end")
        for location in (silent.location, response.headers["Location"]):
            assert (await http.delete(location)).status == 404
    await never.close()
    await until(lambda: no_viewers_left(lab.url), 15, "the camera to drop both viewers")


class FakeCamera:
    """A camera on a plain WebSocket that keeps what the server routes to it, and answers
    (or hangs up on) the offers it is told to."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.messages: list[dict] = []
        self.reply: dict | None = None  # to the next offer: {"type": "answer"...} or a hangup
        self._task = asyncio.create_task(self._read())

    @classmethod
    async def publish(cls, http: aiohttp.ClientSession, stream: str) -> FakeCamera:
        ws = await http.ws_connect("/ws")
        await ws.receive_json()  # welcome
        await ws.send_json({"type": "publish", "stream": stream, "info": INFO, "protocol": PROTOCOL_VERSION})
        while (await ws.receive_json())["type"] != "published":
            pass
        return cls(ws)

    async def _read(self) -> None:
        async for msg in self.ws:
            message = json.loads(msg.data)
            self.messages.append(message)
            if message["type"] == "offer" and self.reply is not None:
                await self.ws.send_json({**self.reply, "to": message["from"]})

    def of_type(self, kind: str) -> list[dict]:
        return [m for m in self.messages if m["type"] == kind]


async def test_what_the_camera_gets_and_says(lab, loopback_ice):
    """Through a camera that shows its messages: the offer as a viewer's, the player's
    trickled candidates (UDP only), viewer-left on DELETE; 504 when it never answers, 422
    when it hangs up on the offer, and a hangup later ends the session."""
    player = Player()
    offer = await player.offer()
    async with aiohttp.ClientSession(lab.url) as http:
        camera = await FakeCamera.publish(http, "fake")
        await until(lambda: (lab.api("/api/streams/fake") or {}).get("live"), 10, "the fake camera")
        started = time.monotonic()
        unanswered = asyncio.create_task(http.post("/whep/fake", data=offer, headers=SDP))

        await until(lambda: camera.of_type("offer"), 10, "the offer to reach the camera")
        [joined], [first_offer] = camera.of_type("viewer-joined"), camera.of_type("offer")
        assert first_offer["from"] == joined["peer_id"] and first_offer["sdp"] == offer
        camera.reply = {"type": "hangup", "reason": "not a usable video offer"}
        refused = await http.post("/whep/fake", data=offer, headers=SDP)
        assert refused.status == 422 and "not a usable video offer" in await refused.text()

        camera.reply = {"type": "answer", "sdp": "v=0\r\n"}  # the server passes it on as it is
        answered = await http.post("/whep/fake", data=offer, headers=SDP)
        assert answered.status == 201 and await answered.text() == "v=0\r\n"
        session, viewer_id = answered.headers["Location"], camera.of_type("offer")[-1]["from"]
        frag = "\r\n".join(["a=ice-ufrag:" + offer.split("a=ice-ufrag:")[1].split()[0],
                            "a=ice-pwd:" + offer.split("a=ice-pwd:")[1].split()[0],
                            "m=video 9 UDP/TLS/RTP/SAVPF 0", "a=mid:0",
                            "a=candidate:1 1 udp 2122260223 127.0.0.1 50001 typ host",
                            "a=candidate:2 1 TCP 1518280447 127.0.0.1 9 typ host tcptype active",
                            "a=candidate:3 1 udp 1686052607 192.0.2.7 50002 typ srflx raddr 0.0.0.0 rport 0",
                            "a=end-of-candidates", ""])
        assert (await http.patch(session, data=frag, headers=SDPFRAG)).status == 204
        await until(lambda: len(camera.of_type("candidate")) >= 2, 10, "the candidates at the camera")
        candidates = camera.of_type("candidate")
        assert [c["candidate"]["candidate"].split()[0] for c in candidates] == ["candidate:1", "candidate:3"]
        assert all(c["from"] == viewer_id and c["candidate"]["sdpMid"] == "0"
                   and c["candidate"]["sdpMLineIndex"] == 0 for c in candidates), candidates
        await camera.ws.send_json({"type": "hangup", "to": viewer_id, "reason": "not connected in time"})
        await until(lambda: any(m["type"] == "viewer-left" and m["peer_id"] == viewer_id
                                for m in camera.messages), 10, "viewer-left after the camera's hangup")
        assert (await http.delete(session)).status == 404

        response = await unanswered
        assert response.status == 504 and "did not answer" in await response.text()
        assert time.monotonic() - started >= ANSWER_SECONDS
        joined = {m["peer_id"] for m in camera.of_type("viewer-joined")}
        await until(lambda: {m["peer_id"] for m in camera.of_type("viewer-left")} == joined, 10,
                    "viewer-left for every session")  # nobody is left behind at the camera
        await camera.ws.close()
    await player.close()


def _turn_password(username: str) -> str:
    """What coturn's use-auth-secret expects for ``username``."""
    return base64.b64encode(hmac.new(TURN_SECRET.encode(), username.encode(), hashlib.sha1).digest()).decode()


async def test_tokens_and_the_link_headers_under_auth_all(tmp_path, loopback_ice):
    require(shutil.which("turnserver") is not None, "coturn is not installed (apt-get install coturn)")
    coturn = Coturn(tmp_path)
    lab = Lab(tmp_path)
    secret = "whep-secret"
    try:
        lab.start_server("--auth", "all", "--secret", secret, "--turn-secret", TURN_SECRET,
                         "--turn-url", coturn.url())
        lab.token = make_token(secret, "*", "view", 600)
        lab.start_camera(STREAM, "--token", make_token(secret, STREAM, "publish", 600))
        player = Player()
        offer = await player.offer()
        async with aiohttp.ClientSession(lab.url) as http:
            missing = await http.post(f"/whep/{STREAM}", data=offer, headers=SDP)
            assert missing.status == 401 and missing.headers["WWW-Authenticate"] == "Bearer"
            assert "Link" not in missing.headers
            for token in ("garbage", make_token(secret, "other", "view", 600),
                          make_token("another secret", STREAM, "view", 600)):
                wrong = await http.post(f"/whep/{STREAM}", data=offer,
                                        headers={**SDP, "Authorization": f"Bearer {token}"})
                assert wrong.status == 403 and "Link" not in wrong.headers
            view = make_token(secret, STREAM, "view", 600)
            response = await player.post(http, f"/whep/{STREAM}", Authorization=f"Bearer {view}")
            assert response.status == 201, await response.text()
            [link] = response.headers.getall("Link")
            parts = dict(part.strip().split("=", 1) for part in link.split(";")[1:])
            assert link.startswith(f"<{coturn.url()}>") and parts["rel"] == '"ice-server"', link
            username, credential = parts["username"].strip('"'), parts["credential"].strip('"')
            assert credential == _turn_password(username) and parts["credential-type"] == '"password"'
            assert int(username.split(":")[0]) > time.time()
            await player.play_for(2)
            # The session's URL is its key: trickling and ending need no token besides.
            trickled = await http.patch(player.location, data=trickle_frag(offer), headers=SDPFRAG)
            assert trickled.status == 204
            assert (await http.delete(player.location)).status == 200
        await player.close()
    finally:
        lab.stop()
        coturn.stop()


async def test_a_player_on_one_instance_watches_a_camera_on_another(redis_server, tmp_path, loopback_ice):
    lab = Lab(tmp_path)
    try:
        a, b = start_instances(lab, redis_server, 2)
        cluster_camera(lab, [a], "far")
        await until(lambda: stream_on(b, "far").get("live"), 15, "instance b to list the camera")
        player = Player()
        async with aiohttp.ClientSession(b) as http:
            response = await player.post(http, "/whep/far")
            assert response.status == 201, await response.text()
            await player.play_for(3)
            for url in (a, b):  # listed as a WHEP viewer on both instances, with the camera's figures
                await until(lambda url=url: [v for v in whep_viewers(url, "far") if v["stats"].get("frames")],
                            15, f"{url} to list the WHEP viewer")
            assert (await http.delete(player.location)).status == 200
        await until(lambda: no_viewers_left(a, "far"), 15, "the camera on a to drop the viewer")
        await player.close()
    finally:
        lab.stop()


def test_whip_whep_plays_in_chromium_from_another_origin(lab, site, page):
    """whip-whep's WHEPClient, as a page on another origin uses it: CORS preflights, trickle
    PATCHes without If-Match, DELETE on stop. Frames keep coming; the server lists it."""
    wait_until(lambda: no_viewers_left(lab.url), 15, "the stream to have no viewers")
    started = time.monotonic()
    page.goto(f"{site.origin}/whep.html?url={lab.url}/whep/{STREAM}")
    page.wait_for_function("document.getElementById('video').getVideoPlaybackQuality().totalVideoFrames > 0",
                           timeout=30_000)
    whep_first = time.monotonic() - started
    assert page.evaluate("window.viewing") == "ok"
    wait_for_frames(page, decoded_frames(page) + 30, timeout=20)  # and they keep coming
    assert page.evaluate("window.framesDecoded()") > 30
    [viewer] = wait_until(lambda: [v for v in whep_viewers(lab.url) if (v["stats"] or {}).get("frames")],
                          15, "the server to list the page's WHEP session")
    assert viewer["mode"] == "whep"
    dashboard = page.context.new_page()
    dashboard.goto(f"{lab.url}/")
    dashboard.wait_for_function(f"document.querySelector('li.stream[data-stream={STREAM}] .viewers-by-mode')"
                                "?.textContent === '0 p2p · 0 relay · 1 whep'", timeout=10_000)
    dashboard.close()
    page.evaluate("window.client.stop()")
    wait_until(lambda: no_viewers_left(lab.url), 15, "the camera to drop the page's viewer")

    # The same camera on peercam's own player page (P2P), for comparison.
    started = time.monotonic()
    goto_player(page, f"{lab.url}/view/{STREAM}?mode=p2p")
    page.wait_for_function("document.getElementById('video').getVideoPlaybackQuality().totalVideoFrames > 0",
                           timeout=30_000)
    print(f"first frame: WHEP (whip-whep) {whep_first:.2f} s, the player page (P2P) "
          f"{time.monotonic() - started:.2f} s")
