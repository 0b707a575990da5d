"""The relay against a hostile camera or reader (issue 23, findings 2, 3, 7, 8): what the hub
keeps is bounded in bytes, keyframe requests in time, JPEG renditions in number, and the
size a viewer draws at by the picture itself; a legitimate reader beside the attacker is
unharmed. Each attack runs against the real server (and Chromium where the page is hit)."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import aiohttp
import cv2
import numpy as np
from peercam.signaling.relay.heldframes import MAX_HELD_BYTES
from peercam.signaling.relay.keyframes import KEYFRAME_INTERVAL
from peercam.signaling.relay.renditions import MAX_JPEG_RENDITIONS

from peercam.shared.protocol import PROTOCOL_VERSION, LayerInfo
from peercam.shared.relayframe import RelayFrameHeader, parse_relay_frame

from .conftest import get_json, wait_until
from .test_relay import RawRelayViewer, server_rss_kb
from .test_web_publish import go_live, media_browser  # noqa: F401 (a fixture)

LAYERS = [LayerInfo(name="480p", width=640, height=480, fps=30),
          LayerInfo(name="240p", width=320, height=240, fps=30)]
INFO = {"width": 640, "height": 480, "fps": 30, "codec": "vp8",
        "layers": [{"name": layer.name, "width": layer.width, "height": layer.height, "fps": layer.fps}
                   for layer in LAYERS]}


def jpeg_frame(layer: int, jpeg_quality: int, sequence: int = 0, padding: int = 0,
               claimed: tuple[int, int] | None = None, picture_size: tuple[int, int] | None = None) -> bytes:
    """A JPEG relay frame of ``layer``: a real picture of the layer's size (or ``picture_size``)
    with ``padding`` bytes after its end, under a header that claims ``claimed`` (default: the layer's)."""
    info = LAYERS[layer]
    width, height = picture_size or (info.width, info.height)
    _, picture = cv2.imencode(".jpg", np.full((height, width, 3), 90, np.uint8))
    width, height = claimed or (info.width, info.height)
    return RelayFrameHeader(sequence, int(time.time() * 1e6), width, height, jpeg_quality,
                            layer=layer).pack(picture.tobytes() + bytes(padding))


def encoded_frame(sequence: int, keyframe: bool, size: int) -> bytes:
    info = LAYERS[0]
    return RelayFrameHeader(sequence, int(time.time() * 1e6), info.width, info.height, layer=0,
                            codec="vp8", keyframe=keyframe).pack(bytes([keyframe]) * size)


class FakeCamera:
    """A camera on a plain WebSocket: publishes LAYERS, sends whatever frames a test makes, and
    keeps what the server tells it (relay-frames, relay-keyframe, errors)."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.demands: list[dict] = []
        self.keyframe_requests: list[float] = []  # when each relay-keyframe came
        self.errors: list[dict] = []
        self._task = asyncio.create_task(self._read())

    @classmethod
    async def publish(cls, session: aiohttp.ClientSession, port: int, stream: str) -> FakeCamera:
        ws = await session.ws_connect(f"http://127.0.0.1:{port}/ws")
        await ws.receive_json()  # welcome
        await ws.send_json({"type": "publish", "stream": stream, "info": INFO, "protocol": PROTOCOL_VERSION})
        while (await ws.receive_json())["type"] != "published":
            pass
        return cls(ws)

    async def _read(self) -> None:
        async for msg in self.ws:
            message = json.loads(msg.data)
            if message["type"] == "relay-frames":
                self.demands.append(message)
            elif message["type"] == "relay-keyframe":
                self.keyframe_requests.append(time.monotonic())
            elif message["type"] == "error":
                self.errors.append(message)

    async def until(self, predicate, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            await asyncio.sleep(0.02)


class Viewer:
    """A relay reader on an aiohttp WebSocket (it reads all the time), keeping each frame's header."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.headers: list[RelayFrameHeader] = []
        self._task = asyncio.create_task(self._read())

    @classmethod
    async def watch(cls, session: aiohttp.ClientSession, port: int, stream: str, format: str = "jpeg",
                    **choice) -> Viewer:
        ws = await session.ws_connect(f"http://127.0.0.1:{port}/ws", max_msg_size=16 * 1024 * 1024)
        await ws.receive_json()  # welcome
        await ws.send_json({"type": "watch", "stream": stream, "protocol": PROTOCOL_VERSION, **choice})
        await ws.send_json({"type": "relay", "enabled": True, "format": format})
        return cls(ws)

    async def _read(self) -> None:
        async for msg in self.ws:
            if msg.type == aiohttp.WSMsgType.BINARY:
                self.headers.append(parse_relay_frame(msg.data)[0])


def relay_summary(lab, stream: str) -> dict:
    return get_json(f"{lab.url}/api/streams/{stream}")["relay"]


# -- 2 and 8: what the camera sends is checked, and only what is read is kept -------------


def test_frames_nobody_reads_are_dropped_and_what_the_hub_keeps_is_bounded(lab):
    server = lab.start_server()

    async def attack() -> tuple[int, int]:
        async with aiohttp.ClientSession() as session:
            camera = await FakeCamera.publish(session, lab.port, "cam")
            viewer = await Viewer.watch(session, lab.port, "cam", quality="480p", jpeg_quality=80)
            await camera.until(lambda: camera.demands and camera.demands[-1]["jpeg"], 5, "the demand")
            rss_before = server_rss_kb(server.proc.pid)
            # 2 MB frames for 60 renditions nobody asked for, each after a frame the viewer reads.
            for jpeg_quality in range(1, 61):
                await camera.ws.send_bytes(jpeg_frame(0, 80, sequence=jpeg_quality))
                await camera.ws.send_bytes(jpeg_frame(jpeg_quality % 2, jpeg_quality, padding=2_000_000))
            # The viewer plays on: frames after the attack reach it (newest wins, so it skipped some).
            sequence, deadline = 61, time.monotonic() + 10
            while not (viewer.headers and viewer.headers[-1].sequence > 60):
                assert time.monotonic() < deadline, "the viewer got no frame after the attack"
                await camera.ws.send_bytes(jpeg_frame(0, 80, sequence=sequence))
                sequence += 1
                await asyncio.sleep(0.03)  # the camera's pace
            assert {h.jpeg_quality for h in viewer.headers} == {80}
            await camera.until(lambda: relay_summary(lab, "cam")["frames_unread"] == 60, 10,
                               "the server to count the 60 frames nobody reads")
            return rss_before, server_rss_kb(server.proc.pid)

    rss_before, rss_after = asyncio.run(attack())
    assert rss_after - rss_before < 30_000, (rss_before, rss_after)  # kept, they would be 120 MB


def test_the_hub_keeps_at_most_its_byte_budget_of_frames_read(lab):
    lab.start_server()

    async def attack() -> None:
        async with aiohttp.ClientSession() as session:
            camera = await FakeCamera.publish(session, lab.port, "cam")
            qualities = [10, 20, 30, 40]
            viewers = [await Viewer.watch(session, lab.port, "cam", quality="480p", jpeg_quality=q)
                       for q in qualities]
            await camera.until(lambda: camera.demands and len(camera.demands[-1]["jpeg"]) == 4, 5,
                               "the viewers' demand")
            for q in qualities:  # 7 MB each: 28 MB if the hub kept the newest of each
                await camera.ws.send_bytes(jpeg_frame(0, q, padding=7_000_000))
            await camera.until(lambda: all(v.headers for v in viewers), 20, "each viewer's frame")
            assert [v.headers[0].jpeg_quality for v in viewers] == qualities
            assert 0 < relay_summary(lab, "cam")["held_bytes"] <= MAX_HELD_BYTES

    asyncio.run(attack())


def test_a_frame_that_lies_about_its_rendition_is_refused_and_the_reader_beside_plays_on(lab):
    lab.start_server()
    lies = {
        "quality 0": jpeg_frame(0, 0),
        "quality 101": jpeg_frame(0, 101),
        "quality 255": jpeg_frame(0, 255),
        "layer 5": RelayFrameHeader(0, 0, 640, 480, 80, layer=5).pack(jpeg_frame(0, 80)[22:]),
        "header 16384x16384": jpeg_frame(0, 80, claimed=(16384, 16384)),
        "picture 64x48": jpeg_frame(0, 80, picture_size=(64, 48)),
        "encoded 16384x16384": RelayFrameHeader(0, 0, 16384, 16384, layer=0, codec="vp8",
                                                keyframe=True).pack(b"k"),
    }

    async def attack() -> None:
        async with aiohttp.ClientSession() as session:
            camera = await FakeCamera.publish(session, lab.port, "cam")
            viewer = await Viewer.watch(session, lab.port, "cam", quality="480p", jpeg_quality=80)
            await camera.until(lambda: camera.demands and camera.demands[-1]["jpeg"], 5, "the demand")
            for sequence, lie in enumerate(lies.values()):
                await camera.ws.send_bytes(lie)
                await camera.ws.send_bytes(jpeg_frame(0, 80, sequence=sequence))
                await camera.until(lambda n=sequence + 1: len(viewer.headers) == n, 5, "the honest frame")
            await camera.until(lambda: len(camera.errors) == len(lies), 5, "an error for each lie")
            reasons = [e["reason"] for e in camera.errors]
            assert all(e["code"] == "bad-relay-frame" for e in camera.errors), camera.errors
            assert "JPEG quality 0: the quality is 1 to 100" in reasons[0]
            assert "JPEG quality 101" in reasons[1] and "JPEG quality 255" in reasons[2]
            assert "layer 5: the camera announced 2 layers" in reasons[3]
            assert "16384x16384 for layer 480p, which is 640x480" in reasons[4]
            assert "64x48 for layer 480p, which is 640x480" in reasons[5]
            assert "16384x16384 for layer 480p" in reasons[6]
            assert ([(h.width, h.height, h.jpeg_quality) for h in viewer.headers]
                    == [(640, 480, 80)] * len(lies))
            assert not camera.ws.closed  # refused frames, not a refused camera

    asyncio.run(attack())


# -- 3: a stalled encoded reader --------------------------------------------------------


def test_a_stalled_encoded_reader_costs_an_obliging_camera_no_keyframes(lab):
    """The camera answers every relay-keyframe with a keyframe at once (the browser camera
    did): the hub itself must keep the requests to the limits."""
    lab.start_server()
    seconds, fps = 5, 30

    async def attack() -> tuple[FakeCamera, Viewer, float]:
        async with aiohttp.ClientSession() as session:
            camera = await FakeCamera.publish(session, lab.port, "cam")
            stalled = RawRelayViewer(lab.port, "cam", "encoded", quality="480p")
            try:
                await camera.until(lambda: camera.demands and camera.demands[-1]["encoded"], 5, "the demand")
                normal = None
                sequence, answered = 0, 0
                started = time.monotonic()
                while (elapsed := time.monotonic() - started) < seconds:
                    if normal is None and elapsed > 1:  # once the stalled reader has stalled
                        normal = await Viewer.watch(session, lab.port, "cam", "encoded", quality="480p")
                    keyframe = sequence == 0 or len(camera.keyframe_requests) > answered
                    answered = len(camera.keyframe_requests)
                    size = 60_000 if keyframe else 6_000
                    await camera.ws.send_bytes(encoded_frame(sequence, keyframe, size))
                    sequence += 1
                    await asyncio.sleep(1 / fps)
                return camera, normal, started
            finally:
                stalled.close()

    camera, normal, started = asyncio.run(attack())
    requests = camera.keyframe_requests
    # At most one request a second (the first ones: urgent, for the newcomers).
    assert len(requests) <= 2 + seconds / KEYFRAME_INTERVAL, [round(t - started, 2) for t in requests]
    # The normal reader got its frames at the camera's rate, from a keyframe on, with few others.
    headers = normal.headers
    assert headers and headers[0].keyframe
    assert len(headers) >= 0.7 * (seconds - 1) * fps, len(headers)
    assert [h.sequence for h in headers] == list(range(headers[0].sequence, headers[-1].sequence + 1))
    assert sum(h.keyframe for h in headers) <= 1 + (seconds - 1) / KEYFRAME_INTERVAL, headers


def test_browser_camera_beside_a_stalled_encoded_reader_sends_few_keyframes(lab, media_browser):  # noqa: F811
    lab.start_server()
    page, errors = go_live(media_browser, lab, "bcam")
    stalled = RawRelayViewer(lab.port, "bcam", "encoded")

    async def read(count: int) -> tuple[list[RelayFrameHeader], float]:
        async with aiohttp.ClientSession() as session:
            normal = await Viewer.watch(session, lab.port, "bcam", "encoded")
            await asyncio.wait_for(_until(lambda: normal.headers), 15)
            first = time.monotonic()
            await asyncio.wait_for(_until(lambda: len(normal.headers) > count), 30)
            return normal.headers[:count + 1], time.monotonic() - first

    try:
        wait_until(lambda: "encoded" in page.evaluate("peercam.relay()"), 15, "the browser camera to encode")
        with ThreadPoolExecutor(1) as thread:  # Playwright's loop runs in this one
            headers, seconds = thread.submit(asyncio.run, read(150)).result()  # 5 s at 30 fps
    finally:
        stalled.close()
    keyframes = sum(h.keyframe for h in headers)
    assert len(headers) / seconds > 5, seconds  # its rate, or a busy machine's share of it
    assert keyframes <= 2 + seconds / KEYFRAME_INTERVAL, (keyframes, seconds)  # was 128 of 160
    assert [h.sequence for h in headers] == list(range(headers[0].sequence, headers[-1].sequence + 1))
    assert not errors


async def _until(predicate) -> None:
    while not predicate():
        await asyncio.sleep(0.02)


def test_the_relay_feed_spaces_the_keyframes_it_is_asked_for(lab, media_browser):  # noqa: F811
    """relay-sender.js on its own: asked for a keyframe at every frame, it makes one a second
    (urgent: four)."""
    lab.start_server()
    page = media_browser.new_page()
    page.goto(f"{lab.url}/")
    counts = page.evaluate("""async () => {
        const { RelaySender } = await import('/static/js/relay-sender.js');
        const stream = await navigator.mediaDevices.getUserMedia({ video: { width: 320, height: 240 } });
        const video = document.createElement('video');
        video.srcObject = stream;
        video.muted = true;
        await video.play();
        const signaling = { bufferedAmount: 0, sendBinary: () => true };
        const layer = { name: '240p', width: 320, height: 240, fps: 30 };
        const result = {};
        for (const urgent of [false, true]) {
            const feed = new RelaySender({ track: stream.getVideoTracks()[0], video, layer, signaling });
            feed.setDemand({ encoded: ['240p'] });
            const timer = setInterval(() => feed.keyframe(urgent), 10);
            const started = performance.now();
            while (feed.counts.encoded < 60 && performance.now() - started < 20_000) {
                await new Promise((resolve) => setTimeout(resolve, 20));
            }
            clearInterval(timer);
            feed.stop();
            const seconds = (performance.now() - started) / 1000;
            result[urgent ? 'urgent' : 'normal'] = { ...feed.counts, seconds };
        }
        return result;
    }""")
    normal, urgent = counts["normal"], counts["urgent"]
    assert normal["encoded"] >= 60 and urgent["encoded"] >= 60, counts  # asked at every frame
    assert normal["keyframes"] <= 2 + normal["seconds"] / 1.0, counts  # the first, then one a second
    assert 2 <= urgent["keyframes"] <= 2 + urgent["seconds"] / 0.25, counts  # then one every 0.25 s
    assert urgent["keyframes"] < urgent["encoded"] / 2, counts


# -- 7: snapshots at many JPEG qualities -----------------------------------------------


def test_snapshots_at_many_qualities_stay_within_the_rendition_cap(lab):
    lab.start_server()
    camera = lab.start_camera()

    async def watch_q90(until) -> list[RelayFrameHeader]:
        async with aiohttp.ClientSession() as session:
            viewer = await Viewer.watch(session, lab.port, "test", quality="480p", jpeg_quality=90)
            await asyncio.wait_for(_until(lambda: viewer.headers), 15)
            await asyncio.get_running_loop().run_in_executor(None, until)
            await asyncio.wait_for(_until(lambda: len(viewer.headers) > 10), 15)
            return list(viewer.headers)

    def snapshots() -> list[tuple[int, bytes]]:
        def get(jpeg_quality: int) -> tuple[int, bytes]:
            url = f"{lab.url}/streams/test/snapshot.jpg?jpeg_quality={jpeg_quality}"
            with urllib.request.urlopen(url, timeout=15) as response:
                return response.status, response.read()

        with ThreadPoolExecutor(20) as pool:
            return list(pool.map(get, range(5, 101, 5)))

    results: list = []
    headers = asyncio.run(watch_q90(lambda: results.extend(snapshots())))
    assert [status for status, _ in results] == [200] * 20
    assert all(cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR).shape == (480, 640, 3)
               for _, body in results)
    assert {h.jpeg_quality for h in headers} == {90}  # the viewer's own JPEG quality all along
    # What the camera was asked for: never more than the cap, and never refused.
    demands = re.findall(r" relay: (.*)", camera.log())
    assert demands and max(d.count("JPEG q") for d in demands) <= MAX_JPEG_RENDITIONS, demands
    assert "should not have sent" not in camera.log() and "server says" not in camera.log()


# -- 8: the page draws at the picture's size ---------------------------------------------


def test_the_relay_canvas_takes_the_decoded_pictures_size_not_the_headers(lab, page):
    lab.start_server()
    page.goto(f"{lab.url}/")
    frame = base64.b64encode(jpeg_frame(0, 80, claimed=(16384, 16384), picture_size=(64, 48))).decode()
    size = page.evaluate("""async (frame) => {
        const { RelayTransport } = await import('/static/js/relay-transport.js');
        const { SignalingEvent } = await import('/static/js/signaling-client.js');
        const handlers = new Map();
        const signaling = {  // the socket's side: hands the page one binary frame
            on: (event, handler) => handlers.set(event, handler),
            off: (event) => handlers.delete(event),
            send: () => {},
        };
        const canvas = document.createElement('canvas');
        let drew;
        const drawn = new Promise((resolve) => { drew = resolve; });
        const transport = new RelayTransport({ signaling, canvas, codec: 'vp8', relayFormat: 'jpeg',
                                               onFrame: ({ width, height }) => drew({ width, height }) });
        transport.start();
        for (let i = 0; i < 100 && transport.format === null; i++) {
            await new Promise((resolve) => setTimeout(resolve, 20));
        }
        const bytes = Uint8Array.from(atob(frame), (c) => c.charCodeAt(0));
        handlers.get(SignalingEvent.BINARY)(bytes.buffer);
        const reported = await Promise.race([drawn, new Promise((resolve) => setTimeout(resolve, 5000))]);
        return { reported, canvas: { width: canvas.width, height: canvas.height } };
    }""", frame)
    assert size == {"reported": {"width": 64, "height": 48}, "canvas": {"width": 64, "height": 48}}, size
