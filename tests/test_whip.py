"""WHIP in (signaling/edge/whip.py, peers/ingest/): standard WHIP publishers publish to the
real server, and viewers play what they send, as it came.

Three publishers that exist on these machines: ffmpeg 9's whip muxer (PyPI's imageio-ffmpeg),
Debian's simple-whip-client (GStreamer webrtcbin, in a network namespace of its own), and
whip-whep's WHIPClient in headless Chromium (tests/support/whipwhep/). For each, a CLI
viewer and Chromium play the stream at the publisher's size, frames keep coming, the
server lists one camera and its viewers, and the top layer is passed through (the camera
encodes no frame of it). Then: a name passes from a publisher that says goodbye (DELETE)
and from one that vanishes to the next publisher, while a viewer plays on; every status
the endpoint answers bad input with; the limit on publishers and the deadline for one that
never connects; the TURN credentials in Link headers, for a valid token only; a WHIP stream
recorded by its instance and watched through another one of a cluster.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from aiortc import RTCPeerConnection
from peercam.peers.camera.capturetime import CaptureClock
from peercam.peers.ingest.publisher import CONNECT_TIMEOUT, MEDIA_TIMEOUT
from peercam.signaling.edge.auth import make_token

from .conftest import Lab, Process, chromium, free_port, get_json, require, wait_until
from .support.chromium import CONTEXT_OPTIONS, goto_player
from .support.whipclient import SERVER_ADDRESS, ClientNetwork, WhipClient, build_shim
from .support.whipclient import unavailable_reason as whip_client_unavailable
from .support.whipwhepsite import PageSite, ffmpeg_exe, ffmpeg_whip_command
from .test_chat import chat_lines
from .test_turn import SECRET as TURN_SECRET
from .test_turn import Coturn
from .test_whep import restart_frag, trickle_frag

SECRET = "whip-secret"
PUBLISH = make_token(SECRET, "*", "publish", 3600)
SDP = {"Content-Type": "application/sdp"}
SDPFRAG = {"Content-Type": "application/trickle-ice-sdpfrag"}
MAX_PUBLISHERS = 2
FAKE_MEDIA = ("--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream")
#: whip-whep's WHIPClient publishes the fake camera (640x480) and microphone to ?url= with ?token=.
def start_ffmpeg(lab: Lab, stream: str, seconds: float = 60, size: str = "640x360",
                 token: str | None = PUBLISH) -> subprocess.Popen:
    """ffmpeg's whip muxer publishing its test pattern (H.264 Constrained Baseline, a keyframe
    a second) and a stereo tone, as docs/standards.md gives the command."""
    require(ffmpeg_exe() is not None, "imageio-ffmpeg is not installed (pip install 'imageio-ffmpeg==0.8.1')")
    log = open(lab.log_dir / f"ffmpeg-{stream}-{time.monotonic_ns()}.log", "w")
    return subprocess.Popen(ffmpeg_whip_command(f"{lab.url}/whip/{stream}", seconds, size, token),
                            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)


def stop(proc: subprocess.Popen, sig: int = signal.SIGINT) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def stream_json(lab: Lab, name: str) -> dict:
    return get_json(f"{lab.url}/api/streams/{name}") or {}


def first_frame_after(viewer: Process, started: float, count: int = 1, timeout: float = 30) -> float:
    """Seconds from ``started`` (a publisher's start) until a waiting viewer logs its first frame."""
    viewer.wait_for_log("first frame after", timeout, count)
    return time.monotonic() - started


def assert_published_as_it_came(lab: Lab, name: str, width: int, height: int, codec: str) -> dict:
    """The stream is listed with the publisher's codec and size, from WHIP, and its top layer
    passes the publisher's frames through: the camera encodes none of them."""
    stream = wait_until(lambda: (s := stream_json(lab, name)).get("camera", {}) and
                        (s["camera"].get("stats") or {}).get("layers") and s, 15, "the camera's stats")
    assert stream["live"] and stream["source"] == "whip", stream
    assert (stream["width"], stream["height"], stream["codec"]) == (width, height, codec), stream
    top = stream["layers"][0]
    assert top["passthrough"] and (top["width"], top["height"]) == (width, height), stream["layers"]
    [layer] = [layer for layer in stream["camera"]["stats"]["layers"] if layer["name"] == top["name"]]
    assert layer["passthrough"] and not layer.get("frames_encoded"), layer
    return stream


def assert_plays(summary: dict, width: int, height: int, seconds: float) -> None:
    """A CLI viewer's summary: P2P, frames at the publisher's size all along, sound too."""
    assert summary["mode"] == "p2p", summary
    assert summary["frames"] >= 5 * seconds, summary  # at any rate: a busy machine lowers it
    assert (summary["width"], summary["height"]) == (width, height), summary
    assert summary["longest_gap_ms"] < 1500, summary
    assert summary["audio"] and summary["audio"]["packets"] > 0, summary


def assert_chromium_plays(lab: Lab, name: str, width: int, height: int, browser) -> None:
    """peercam's player page (P2P) in Chromium plays the stream at the publisher's size, and
    the server counts it as the stream's one viewer (the publisher is its camera)."""
    context = browser.new_context(**CONTEXT_OPTIONS)
    try:
        page = context.new_page()
        goto_player(page, f"{lab.url}/view/{name}?mode=p2p")
        page.wait_for_function("document.getElementById('video').getVideoPlaybackQuality()"
                               ".totalVideoFrames > 30", timeout=30_000)
        size = page.evaluate("[document.getElementById('video').videoWidth, "
                             "document.getElementById('video').videoHeight]")
        assert size == [width, height]
        stream = stream_json(lab, name)
        assert stream["viewer_count"] == 1 and stream["camera"] is not None, stream
    finally:
        context.close()


def wait_not_live(lab: Lab, name: str, timeout: float) -> None:
    wait_until(lambda: not stream_json(lab, name).get("live"), timeout, f"{name!r} to end")


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Iterator[PageSite]:
    """whip-whep's modules and the publishing page, on an origin of their own."""
    folder = tmp_path_factory.mktemp("whip-page")
    site = PageSite(folder)
    yield site
    site.close()


@pytest.fixture(scope="module")
def lab(tmp_path_factory, site) -> Iterator[Lab]:
    """One server for the module: publishing needs a token, the page's origin is allowed, at
    most MAX_PUBLISHERS WHIP publishers."""
    lab = Lab(tmp_path_factory.mktemp("whip"))
    try:
        lab.start_server("--ice-host", "127.0.0.1", "--auth", "publish", "--secret", SECRET,
                         "--allowed-origin", site.origin, "--max-whip-publishers", str(MAX_PUBLISHERS))
        yield lab
    finally:
        lab.stop()


def test_ffmpeg_publishes_and_a_cli_viewer_and_chromium_play(lab, chromium_keeper):
    viewer = lab.start_viewer("ff", "--wait", "30", "--duration", "4")
    started = time.monotonic()
    ffmpeg = start_ffmpeg(lab, "ff")
    try:
        first = first_frame_after(viewer, started)
        print(f"ffmpeg: publish to first viewer frame {first:.2f} s")
        assert_plays(viewer.summary(30), 640, 360, 4)
        assert_published_as_it_came(lab, "ff", 640, 360, "h264")
        with chromium_keeper.use() as browser:
            assert_chromium_plays(lab, "ff", 640, 360, browser)
    finally:
        stop(ffmpeg)  # it sends DELETE as it ends
    wait_not_live(lab, "ff", 10)
    assert "WHIP publisher of 'ff' ended: the publisher ended it" in lab.server.log()


def test_simple_whip_client_publishes_and_a_keyframe_comes_when_a_viewer_joins(tmp_path, chromium_keeper):
    """whip-client (GStreamer) in a namespace of its own, reaching the server over a veth
    pair. Its GOP is 20 s: a viewer that joins later starts within a second or two because
    the server forwards the camera's keyframe request to it as a PLI."""
    reason = whip_client_unavailable()
    require(reason is None, reason or "")
    network = ClientNetwork()
    lab = Lab(tmp_path)
    lab.url = f"http://{SERVER_ADDRESS}:{lab.port}"
    client = None
    try:
        lab.start_server("--host", SERVER_ADDRESS, "--ice-host", SERVER_ADDRESS, "--ice-host", "127.0.0.1",
                         "--secret", SECRET, "--auth", "publish")
        waiting = lab.start_viewer("wc", "--wait", "30", "--duration", "4")
        started = time.monotonic()
        client = WhipClient(network, build_shim(tmp_path), f"{lab.url}/whip/wc",
                            tmp_path / "whip-client.log", token=PUBLISH, keyframe_interval=600)
        first = first_frame_after(waiting, started)
        print(f"simple-whip-client: publish to first viewer frame {first:.2f} s")
        assert_plays(waiting.summary(30), 640, 360, 4)
        assert_published_as_it_came(lab, "wc", 640, 360, "h264")

        # Mid-GOP: its next keyframe of its own is some 13 s away.
        joined = time.monotonic()
        late = lab.start_viewer("wc", "--duration", "2")
        late.wait_for_log("first frame after", 30)
        print(f"simple-whip-client: a viewer joining mid-GOP (20 s) starts after "
              f"{time.monotonic() - joined:.2f} s")
        summary = late.summary(30)
        assert_plays(summary, 640, 360, 2)
        assert summary["time_to_first_frame_ms"] < 5000, summary
        with chromium_keeper.use() as browser:
            assert_chromium_plays(lab, "wc", 640, 360, browser)
        assert client.stop() == 0, client.log()[-2000:]  # it sends DELETE as it exits
        wait_not_live(lab, "wc", 10)
        assert "WHIP publisher of 'wc' ended: the publisher ended it" in lab.server.log()
    except BaseException:
        for log in [process.log_path for process in lab.processes] + [tmp_path / "whip-client.log"]:
            print(f"----- {log.name}\n{log.read_text(errors='replace')[-3000:] if log.exists() else ''}")
        raise
    finally:
        if client is not None:
            client.stop()
        lab.stop()
        network.remove()


def test_whip_whep_in_chromium_publishes_and_viewers_play(lab, site):
    """whip-whep's WHIPClient in a page on another origin: CORS, trickle PATCHes with
    If-Match, VP8 and Opus. Chromium's encoder makes keyframes only when asked: every viewer
    starts on one the server's PLI asked for, and PLIs stay bounded."""
    with chromium(*FAKE_MEDIA) as browser:
        context = browser.new_context(**CONTEXT_OPTIONS)
        publisher = context.new_page()
        errors: list[str] = []
        publisher.on("pageerror", lambda error: errors.append(str(error)))
        viewer = lab.start_viewer("page", "--wait", "30", "--duration", "4")
        started = time.monotonic()
        publisher.goto(f"{site.origin}/whip.html?url={lab.url}/whip/page&token={PUBLISH}")
        first = first_frame_after(viewer, started)
        print(f"whip-whep (Chromium): publish to first viewer frame {first:.2f} s")
        assert publisher.evaluate("window.publishing") == "ok"
        assert_plays(viewer.summary(30), 640, 480, 4)
        assert_published_as_it_came(lab, "page", 640, 480, "vp8")
        assert_chromium_plays(lab, "page", 640, 480, browser)
        sent = publisher.evaluate("window.sent()")
        elapsed = time.monotonic() - started
        assert sent["keyFramesEncoded"] >= 2 and 1 <= sent["pliCount"] <= elapsed + 2, sent
        publisher.evaluate("window.client.stop()")  # closes the connection (an RTCP BYE), then DELETE
        wait_not_live(lab, "page", 10)
        context.close()
        assert not errors, errors
    assert "WHIP publisher of 'page' ended: the publisher" in lab.server.log()


def test_a_name_passes_to_the_next_publisher_and_a_viewer_plays_on(lab):
    """The first publisher says goodbye (DELETE), the second vanishes (killed: no DELETE,
    its media stops); each time the viewer is told, and the next publisher takes the name.
    Pictures and sound resume each time, and the viewer chats with the third's camera."""
    viewer = lab.start_viewer("relay-race", "--wait", "60", "--chat", "--name", "fan", stdin=True)
    try:
        first = start_ffmpeg(lab, "relay-race", seconds=3)
        viewer.wait_for_log("first frame after", 30)
        first.wait(30)  # its -t is over: it sends DELETE
        viewer.wait_for_log("camera left 'relay-race'", 10)

        second = start_ffmpeg(lab, "relay-race", size="320x240")
        viewer.wait_for_log("video resumed", 30)
        viewer.wait_for_log("sound resumed", 10)
        vanished = time.monotonic()
        stop(second, signal.SIGKILL)
        viewer.wait_for_log("camera left 'relay-race'", MEDIA_TIMEOUT + 10, count=2)
        print(f"a vanished publisher's stream ended after {time.monotonic() - vanished:.1f} s")
        # The first said goodbye; the second's media stopped, or its connection failed first
        # (on loopback a dead port answers the server's checks at once): no DELETE. (The
        # server may log the ending just after the viewer hears of it.)
        lab.server.wait_for_log("WHIP publisher of 'relay-race' ended", 10, count=2)
        endings = re.findall(r"WHIP publisher of 'relay-race' ended: (.*)", lab.server.log())
        assert len(endings) == 2 and endings[0] == "the publisher ended it", endings
        assert re.match(r"no video came for|the publisher's (connection failed|video ended)", endings[1]), \
            endings

        third = start_ffmpeg(lab, "relay-race", seconds=30)
        viewer.wait_for_log("video resumed", 30, count=2)
        viewer.wait_for_log("sound resumed", 10, count=2)
        assert stream_json(lab, "relay-race")["width"] == 640
        viewer.type_line("hello, publisher")  # the chat hub runs in the server, with the camera
        lab.server.wait_for_log("chat #1", 10)
        stop(third)
        wait_not_live(lab, "relay-race", 10)
    finally:
        viewer.proc.send_signal(signal.SIGINT)
    code, stdout = viewer.result(15)
    summary = json.loads(stdout.strip().splitlines()[-1])
    assert code == 0 and summary["frames"] > 30 and summary["audio"]["packets"] > 0, summary
    assert [(line[1], line[2]) for line in chat_lines(stdout)] == [("fan", "hello, publisher")]


def test_a_whip_stream_is_recorded_and_watched_through_another_instance(redis_server, tmp_path):
    """Two instances on one Redis: ffmpeg publishes to one, which records the stream as it
    came; a viewer of the other plays it, and the other refuses the name to a second publisher."""
    lab = Lab(tmp_path)
    recordings = tmp_path / "recordings"

    def segments() -> list[Path]:
        return sorted((recordings / "far").glob("*.mp4"))

    ffmpeg = None
    try:
        urls = []
        records = ("--record-dir", str(recordings), "--record", "far", "--record-segment", "1")
        for letter, extra in (("a", records), ("b", ())):
            port = free_port()
            lab.start(f"server-{letter}", "serve", "--port", str(port), "--redis", redis_server.url,
                      "--ice-host", "127.0.0.1", *extra)
            urls.append(f"http://127.0.0.1:{port}")
        for url in urls:
            wait_until(lambda url=url: (get_json(f"{url}/healthz") or {}).get("cluster", {}).get("redis")
                       == "connected", 15, f"{url} to join Redis")
        a, b = urls
        lab.url = a
        ffmpeg = start_ffmpeg(lab, "far", token=None)
        wait_until(lambda: (get_json(f"{b}/api/streams/far") or {}).get("live"), 20,
                   "instance b to list the WHIP stream")
        viewer = lab.start("viewer-far", "view", "--server", b, "--stream", "far", "--json", "--ice-host",
                           "127.0.0.1", "--duration", "3")
        assert_plays(viewer.summary(30), 640, 360, 3)
        taken = urllib.request.Request(f"{b}/whip/far", data=b"v=0\r\n", headers=SDP, method="POST")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(taken, timeout=5)
        assert refused.value.code == 409
        wait_until(lambda: len(segments()) >= 3, 20, "three recorded segments")
    finally:
        if ffmpeg is not None:
            stop(ffmpeg)
        lab.stop()
    for segment in segments()[:-1]:  # the last one was cut when the publisher stopped
        probe = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=codec_name,width,height",
                                "-of", "csv=p=0", str(segment)], capture_output=True, text=True).stdout
        assert "h264,640,360" in probe and "opus" in probe, probe


async def raw_offer(video: bool = True, audio: bool = True) -> tuple[RTCPeerConnection, str]:
    """An aiortc publisher's offer that will never connect (its answer is never applied)."""
    pc = RTCPeerConnection()
    if video:
        pc.addTransceiver("video", direction="sendonly")
    if audio:
        pc.addTransceiver("audio", direction="sendonly")
    await pc.setLocalDescription(await pc.createOffer())
    return pc, pc.localDescription.sdp


async def test_what_the_endpoint_answers_good_and_bad_requests(lab, site, loopback_ice):
    pc, offer = await raw_offer()
    bearer = {"Authorization": f"Bearer {PUBLISH}"}
    cameras = []
    async with aiohttp.ClientSession(lab.url) as http:
        # OPTIONS: CORS for the allowed origin, Accept-Post; another origin is refused.
        options = await http.options("/whip/held", headers={"Origin": site.origin,
                                                            "Access-Control-Request-Method": "POST"})
        assert options.status == 204 and options.headers["Accept-Post"] == "application/sdp"
        assert options.headers["Access-Control-Allow-Origin"] == site.origin
        assert "PATCH" in options.headers["Access-Control-Allow-Methods"]
        assert "Authorization" in options.headers["Access-Control-Allow-Headers"]
        elsewhere = await http.options("/whip/held", headers={"Origin": "http://elsewhere.example"})
        assert elsewhere.status == 403

        # 401 without a token, 403 with one that does not grant publishing this name.
        missing = await http.post("/whip/held", data=offer, headers=SDP)
        assert missing.status == 401 and missing.headers["WWW-Authenticate"] == "Bearer"
        wrong_tokens = ("garbage", make_token(SECRET, "held", "view", 600),
                        make_token(SECRET, "other", "publish", 600), make_token("x", "held", "publish", 600))
        for token in wrong_tokens:
            wrong = await http.post("/whip/held", data=offer,
                                    headers={**SDP, "Authorization": f"Bearer {token}"})
            assert wrong.status == 403, token

        # 415, 413, 400.
        text = await http.post("/whip/held", data=offer, headers={"Content-Type": "text/plain", **bearer})
        assert text.status == 415 and "application/sdp" in await text.text()
        huge = await http.post("/whip/held", data="v=0\r\n" + "a=x\r\n" * 10_000, headers={**SDP, **bearer})
        assert huge.status == 413
        for bad in ("not sdp at all", "v=0\r\no=- 0 0 IN IP4 0.0.0.0\r\nm=video bogus\r\n",
                    (await raw_offer(video=False))[1], offer.replace("a=sendonly", "a=recvonly")):
            refused = await http.post("/whip/held", data=bad, headers={**SDP, **bearer})
            assert refused.status == 400, (refused.status, await refused.text())
        bad_name = await http.post("/whip/no%20spaces", data=offer, headers={**SDP, **bearer})
        assert bad_name.status in (400, 403)  # the gate may refuse first: no token names it

        # 201: the answer, its session URL and ETag.
        created = await http.post("/whip/held", data=offer, headers={**SDP, **bearer})
        assert created.status == 201, await created.text()
        answer = await created.text()
        location, etag = created.headers["Location"], created.headers["ETag"]
        assert created.content_type == "application/sdp" and location.startswith("/whip/held/")
        assert "a=group:BUNDLE" in answer and "a=rtcp-mux" in answer and "a=candidate:" in answer
        assert answer.count("a=recvonly") == 2 and "a=sendonly" not in answer

        # 409: the name is held, by this session or by a camera.
        taken = await http.post("/whip/held", data=offer, headers={**SDP, **bearer})
        assert taken.status == 409
        cameras.append(lab.start_camera("cam", "--token", PUBLISH, "--width", "320", "--height", "240",
                                        "--fps", "5", "--audio", "none"))
        by_camera = await http.post("/whip/cam", data=offer, headers={**SDP, **bearer})
        assert by_camera.status == 409

        # PATCH: trickle with or without If-Match (204); a wrong one 412; an ICE restart needs
        # If-Match (428), a matching one (412), and is then refused, the session kept (422).
        frag = trickle_frag(offer)
        assert (await http.patch(location, data=frag, headers={**SDPFRAG, "If-Match": etag})).status == 204
        assert (await http.patch(location, data=frag, headers=SDPFRAG)).status == 204
        wrong_tag = {**SDPFRAG, "If-Match": '"nope"'}
        assert (await http.patch(location, data=frag, headers=wrong_tag)).status == 412
        assert (await http.patch(location, data=restart_frag(), headers=SDPFRAG)).status == 428
        assert (await http.patch(location, data=restart_frag(), headers=wrong_tag)).status == 412
        refused = await http.patch(location, data=restart_frag(), headers={**SDPFRAG, "If-Match": "*"})
        assert refused.status == 422 and "restart" in await refused.text()
        assert (await http.patch(location, data=frag, headers={**SDPFRAG, "If-Match": etag})).status == 204
        assert (await http.patch(location, data=frag, headers={"Content-Type": "text/plain"})).status == 415
        assert (await http.patch(location, data="garbage", headers=SDPFRAG)).status == 400

        # 404: an unknown session, and this one once deleted.
        unknown = location.rsplit("/", 1)[0] + "/nosuchsession"
        assert (await http.patch(unknown, data=frag, headers=SDPFRAG)).status == 404
        assert (await http.delete(unknown)).status == 404
        assert (await http.delete(location)).status == 200
        assert (await http.delete(location)).status == 404
        assert (await http.patch(location, data=frag, headers=SDPFRAG)).status == 404
    for camera in cameras:
        camera.close()
    await pc.close()


async def test_past_the_limit_503_and_publishers_that_never_connect_are_dropped(lab, loopback_ice):
    bearer = {**SDP, "Authorization": f"Bearer {PUBLISH}"}
    pcs = []
    async with aiohttp.ClientSession(lab.url) as http:
        locations = []
        for index in range(MAX_PUBLISHERS):
            pc, offer = await raw_offer()
            pcs.append(pc)
            created = await http.post(f"/whip/limit-{index}", data=offer, headers=bearer)
            assert created.status == 201, await created.text()
            locations.append(created.headers["Location"])
        pc, offer = await raw_offer()
        pcs.append(pc)
        full = await http.post("/whip/limit-more", data=offer, headers=bearer)
        assert full.status == 503 and int(full.headers["Retry-After"]) > 0
        assert str(MAX_PUBLISHERS) in await full.text()

        # Neither session ever connects: each is dropped at the deadline, and its place is free.
        started = time.monotonic()
        while (response := await http.post("/whip/limit-more", data=offer, headers=bearer)).status == 503:
            assert time.monotonic() - started < CONNECT_TIMEOUT + 10, "the sessions were never dropped"
            await asyncio.sleep(0.5)
        assert response.status == 201, await response.text()
        for location in locations:
            assert (await http.delete(location)).status == 404
        assert (await http.delete(response.headers["Location"])).status == 200
    for pc in pcs:
        await pc.close()


async def test_link_headers_carry_turn_credentials_only_with_a_valid_token(tmp_path, loopback_ice):
    """--auth open with TURN (a real coturn): anyone may publish, but only a publisher with
    a valid publish token is handed TURN credentials."""
    require(shutil.which("turnserver") is not None, "coturn is not installed (apt-get install coturn)")
    coturn = Coturn(tmp_path)
    lab = Lab(tmp_path)
    try:
        lab.start_server("--ice-host", "127.0.0.1", "--secret", SECRET, "--turn-secret", TURN_SECRET,
                         "--turn-url", coturn.url())
        pc, offer = await raw_offer()
        async with aiohttp.ClientSession(lab.url) as http:
            for headers in ({}, {"Authorization": "Bearer garbage"},
                            {"Authorization": f"Bearer {make_token(SECRET, 'linked', 'view', 600)}"}):
                anyone = await http.post("/whip/linked", data=offer, headers={**SDP, **headers})
                assert anyone.status == 201, await anyone.text()
                assert "Link" not in anyone.headers, headers
                assert (await http.delete(anyone.headers["Location"])).status == 200
                await asyncio.sleep(0.2)  # the session's end frees the name
            with_token = await http.post("/whip/linked", data=offer,
                                         headers={**SDP, "Authorization": f"Bearer {PUBLISH}"})
            assert with_token.status == 201, await with_token.text()
            [link] = with_token.headers.getall("Link")
            parts = dict(part.strip().split("=", 1) for part in link.split(";")[1:])
            assert link.startswith(f"<{coturn.url()}>") and parts["rel"] == '"ice-server"', link
            expiry = int(parts["username"].strip('"').split(":")[0])
            assert parts["credential-type"] == '"password"' and expiry > time.time()
            assert (await http.delete(with_token.headers["Location"])).status == 200
        await pc.close()
    finally:
        lab.stop()
        coturn.stop()


def test_capture_times_follow_the_rtp_clock_not_the_arrivals():
    clock = CaptureClock(90000)
    base = 1_000_000.0
    # 30 fps; the second frame came 40 ms late, the fourth 5 ms sooner than the first did.
    arrivals = [0.0, 0.0733, 0.0667, 0.095, 0.1334]
    times = [clock.capture_time(3000 * i, base + arrival) for i, arrival in enumerate(arrivals)]
    assert times[:3] == pytest.approx([base, base + 1 / 30, base + 2 / 30], abs=1e-6)  # not the late arrival
    assert times[3:] == pytest.approx([base + 0.095, base + 0.095 + 1 / 30], abs=1e-6)  # the new anchor
    assert all(b > a for a, b in zip(times, times[1:], strict=False))
    assert all(t <= base + a + 1e-9 for t, a in zip(times, arrivals, strict=True))  # never after arrival


def test_a_slow_publisher_clock_moves_the_anchor_once_a_window_shows_it():
    clock = CaptureClock(90000, max_lag=0.5, window=10.0)
    base = 2_000_000.0
    # The publisher's clock runs 1% slow: every second of its timestamps takes 1.01 s to arrive.
    times = [clock.capture_time(9000 * tenth, base + 0.101 * tenth) for tenth in range(2000)]
    assert clock.jumps >= 1
    assert all(b > a for a, b in zip(times, times[1:], strict=False))  # never back
    lags = [base + 0.101 * tenth - t for tenth, t in enumerate(times)]
    assert max(lags) < 0.5 + 2 * 0.01 * 10 + 0.01  # max_lag, and what a window adds twice
