"""The relay (signaling/relay/, signaling/edge/mjpeg.py, the camera's relay frames): encoded and
JPEG frames over WebSocket, JPEG over HTTP. The hub's own rules run on a clock the tests move."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import struct
import time
import urllib.error
import urllib.request

import aiohttp
import av
import cv2
import numpy as np
from peercam.peers.testpattern import read_stamp
from peercam.peers.viewer.frame import luma_plane
from peercam.signaling.relay.heldframes import GOP_REUSE_SECONDS
from peercam.signaling.relay.hub import RelayHub
from peercam.signaling.relay.keyframes import KEYFRAME_INTERVAL, URGENT_KEYFRAME_INTERVAL
from peercam.signaling.relay.readers import RelayReader
from peercam.signaling.relay.renditions import SHARED_CAP_REASON
from peercam.signaling.relay.slots import MAX_QUEUED_FRAMES
from peercam.signaling.relay.totals import RelayTotals

from peercam.shared.protocol import AudioInfo, JpegRendition, LayerInfo
from peercam.shared.relayframe import AUDIO_VERSION, RelayFrameHeader, parse_relay_frame

from .conftest import assert_plays, get_json, wait_until


class RawRelayViewer:
    """A relay viewer on a raw socket, so that it can stop reading (an aiohttp client reads its
    socket all the time): says watch + relay, then reads only when told to. A small receive
    buffer makes the server see at once that it stopped (but slows it down for good)."""

    def __init__(self, port: int, stream: str, format: str = "jpeg", quality: str = "auto",
                 small_buffer: bool = True, audio: bool = False) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        if small_buffer:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                           "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        for message in ({"type": "watch", "stream": stream, "quality": quality},
                        {"type": "relay", "enabled": True, "format": format, "audio": audio}):
            self._send_text(json.dumps(message).encode())
        self._buffer = b""
        self._upgraded = False

    def _send_text(self, payload: bytes) -> None:
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(struct.pack("!BB", 0x81, 0x80 | len(payload)) + mask + masked)

    def read_frames(self, seconds: float) -> list[tuple[float, bytes]]:
        """The relay frames (binary messages) that arrive within ``seconds``, with arrival times."""
        frames, deadline = [], time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                break
            assert data, "the server closed the socket"
            self._buffer += data
            frames += [(time.time(), payload) for opcode, payload in self._messages() if opcode == 2]
        return frames

    def _messages(self) -> list[tuple[int, bytes]]:
        if not self._upgraded:
            head, found, rest = self._buffer.partition(b"\r\n\r\n")
            if not found:
                return []
            assert head.startswith(b"HTTP/1.1 101"), head
            self._buffer, self._upgraded = rest, True
        messages = []
        while len(self._buffer) >= 2:
            opcode, length, start = self._buffer[0] & 0x0F, self._buffer[1] & 0x7F, 2
            if length >= 126:
                size = 2 if length == 126 else 8
                if len(self._buffer) < 2 + size:
                    break
                length, start = int.from_bytes(self._buffer[2:2 + size], "big"), 2 + size
            if len(self._buffer) < start + length:
                break
            messages.append((opcode, self._buffer[start:start + length]))
            self._buffer = self._buffer[start + length:]
        return messages

    def close(self) -> None:
        self.sock.close()


def server_rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))


async def relay_clients(port: int, stream: str, count: int, seconds: float) -> list[dict]:
    """``count`` relay viewers in this process; per client: frames, fps and sequence gaps.

    A client that gets no frame for 5 s fails (asyncio.TimeoutError): frames kept coming.
    """

    async def client(session: aiohttp.ClientSession) -> dict:
        async with session.ws_connect(f"http://127.0.0.1:{port}/ws") as ws:
            await ws.receive_json()
            await ws.send_json({"type": "watch", "stream": stream})
            await ws.send_json({"type": "relay", "enabled": True})
            frames, gaps, last, first_at = 0, 0, None, None
            deadline = None
            while deadline is None or time.monotonic() < deadline:
                msg = await asyncio.wait_for(ws.receive(), 5)
                if msg.type != aiohttp.WSMsgType.BINARY:
                    continue
                header, _ = parse_relay_frame(msg.data)
                if first_at is None:
                    first_at, deadline = time.monotonic(), time.monotonic() + seconds
                frames += 1
                if last is not None:
                    gaps += max(0, header.sequence - last - 1)
                last = header.sequence
            return {"frames": frames, "fps": (frames - 1) / (time.monotonic() - first_at), "gaps": gaps}

    async with aiohttp.ClientSession() as session:
        return await asyncio.gather(*(client(session) for _ in range(count)))


def test_forced_relay_viewer_gets_frames_with_latency(lab):
    lab.start_server()
    lab.start_camera()
    summary = lab.start_viewer("test", "--mode", "relay", "--duration", "4").summary(timeout=30)
    assert_plays(summary, "relay")
    # From the frame header: the capture time (in ms, on this machine's clock) and the sequence number.
    assert 0 <= summary["latency_ms"]["p50"] < 10_000 and summary["frames_dropped"] is not None
    assert summary["bitrate_kbps"] > 0 and summary["time_to_first_frame_ms"] > 0


def test_camera_sends_relay_frames_only_while_someone_reads_them(lab):
    lab.start_server()
    camera = lab.start_camera()

    def relay_lines() -> list[str]:
        """What the camera logged about its relay renditions: "480p JPEG q80", "480p encoded", "stopped"."""
        return [line.split("relay: ", 1)[1] for line in camera.log().splitlines() if " relay: " in line]

    assert not relay_lines()
    jpeg = lab.start_viewer("test", "--mode", "relay", "--relay-format", "jpeg", "--duration", "1")
    jpeg.summary(timeout=30)
    wait_until(lambda: any("JPEG q" in line for line in relay_lines()) and relay_lines()[-1] == "stopped", 5,
               "the camera to encode JPEG for the relay viewer, then stop")
    lab.start_viewer("test", "--mode", "relay", "--duration", "1").summary(timeout=30)
    # The viewer asks for the camera's sound too (the tone): Opus packets while it reads.
    wait_until(lambda: relay_lines()[-2:] == ["480p encoded, Opus", "stopped"], 5,
               "the camera to send its encoded frames and sound to the relay viewer, then stop")
    assert not any("JPEG" in line for line in relay_lines()[-2:])


def test_twenty_relay_viewers_keep_getting_frames_beside_one_that_reads_nothing(lab):
    server = lab.start_server()
    lab.start_camera("big", "--width", "1280", "--height", "720")
    stalled = RawRelayViewer(lab.port, "big")
    try:
        def relay() -> dict:
            return get_json(f"{lab.url}/api/streams/big")["relay"]

        wait_until(lambda: relay()["frames_in"] > 10, 10, "relay frames to flow")
        rss_before = server_rss_kb(server.proc.pid)
        # Each gets frames all along (none waits 5 s for one), at whatever rate the machine allows.
        results = asyncio.run(relay_clients(lab.port, "big", 20, seconds=6))
        assert all(r["frames"] > 1 for r in results), results
        stream = get_json(f"{lab.url}/api/streams/big")
        assert stream["relay_viewers"] >= 1  # the stalled one is still connected
        # Now only the stalled reader counts: it was sent what its socket took, and skips the rest.
        # Had it queued those instead, the server would hold them: wait until they come to 25 MB
        # (about 260 frames of 720p JPEG), however long a busy machine takes to make them.
        frame_bytes = relay()["bytes_sent"] / relay()["frames_sent"]
        wait_until(lambda: relay()["frames_skipped"] * frame_bytes > 25_000_000, 90,
                   "the stalled reader to skip 25 MB of frames", interval=0.5)
        assert server_rss_kb(server.proc.pid) - rss_before < 15_000
    finally:
        stalled.close()


def _read_mjpeg_parts(url: str, seconds: float) -> int:
    with urllib.request.urlopen(url, timeout=5) as response:
        assert response.headers["Content-Type"].startswith("multipart/x-mixed-replace")
        parts, deadline, buffer = 0, time.monotonic() + seconds, b""
        while time.monotonic() < deadline:
            buffer += response.read1(65536)
            parts += buffer.count(b"--peercamframe\r\n")
            buffer = buffer[-20:]
        return parts


def test_mjpeg_and_snapshot_unaffected_by_a_stalled_mjpeg_reader(lab):
    lab.start_server()
    lab.start_camera()
    stalled = socket.create_connection(("127.0.0.1", lab.port))
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.sendall(f"GET /streams/test/mjpeg HTTP/1.1\r\nHost: 127.0.0.1:{lab.port}\r\n\r\n".encode())
    try:
        # Parts keep coming (a read that waits 5 s for one fails), at whatever rate the machine allows.
        parts = _read_mjpeg_parts(f"{lab.url}/streams/test/mjpeg", seconds=4)
        assert parts > 1, parts
        with urllib.request.urlopen(f"{lab.url}/streams/test/snapshot.jpg", timeout=10) as response:
            assert response.headers["Content-Type"] == "image/jpeg"
            image = cv2.imdecode(np.frombuffer(response.read(), np.uint8), cv2.IMREAD_COLOR)
        assert image is not None and image.shape == (480, 640, 3)
        viewer = lab.start_viewer("test", "--mode", "relay", "--duration", "3")
        assert_plays(viewer.summary(timeout=30), "relay")
    finally:
        stalled.close()


def test_an_mjpeg_reader_that_takes_nothing_is_dropped(lab):
    lab.start_server("--stalled-reader-timeout", "2")
    lab.start_camera()
    stalled = socket.create_connection(("127.0.0.1", lab.port))
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.sendall(f"GET /streams/test/mjpeg HTTP/1.1\r\nHost: 127.0.0.1:{lab.port}\r\n\r\n".encode())
    try:
        def relay_readers() -> int:
            return get_json(f"{lab.url}/api/streams/test")["relay"]["readers"]

        wait_until(lambda: relay_readers() == 1, 10, "the MJPEG reader to count")
        wait_until(lambda: relay_readers() == 0, 15, "the stalled MJPEG reader to be dropped")
        wait_until(lambda: "took no bytes for 2 s" in lab.server.log(), 5, "the server to say why")
    finally:
        stalled.close()


def test_mjpeg_of_an_unknown_stream_is_404(lab):
    lab.start_server()
    for path in ("/streams/nope/mjpeg", "/streams/nope/snapshot.jpg"):
        try:
            urllib.request.urlopen(f"{lab.url}{path}", timeout=5)
            raise AssertionError(f"{path} should be 404")
        except urllib.error.HTTPError as exc:
            assert exc.code == 404


def test_relay_frame_rate_cap_and_quality(lab):
    lab.start_server()
    lab.start_camera("test", "--relay-fps", "10", "--jpeg-quality", "30")
    results = asyncio.run(relay_clients(lab.port, "test", 1, seconds=3))
    # A cap bounds the rate from above only (a busy machine may make fewer frames): it lets
    # frames 90 ms apart through (11.1 a second), and a reader that joins gets the newest
    # frame at once; arrival jitter at either end of 3 s adds a little more.
    assert 0 < results[0]["fps"] <= 12.5, results
    with urllib.request.urlopen(f"{lab.url}/streams/test/snapshot.jpg", timeout=10) as response:
        assert len(response.read()) < 25_000  # JPEG quality 30: well under the ~36 kB of 80


# -- the hub's encoded slots, with real readers on the event loop ---------------------

LAYERS = [LayerInfo(name="480p", width=640, height=480, fps=30),
          LayerInfo(name="240p", width=320, height=240, fps=30)]


#: A frame's time at 32 fps: a power of two, so that times add up exactly.
FRAME_SECONDS = 1 / 32


class Clock:
    """The hub's clock, which only the test moves."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Camera:
    """What the hub asks of the camera (relay-frames, relay-keyframe), and encoded frames to publish."""

    def __init__(self) -> None:
        self.clock = Clock()  # the hub's too
        self.demand: tuple[list, list[str]] = ([], [])
        self.audio_demand = False
        self.keyframe_requests: list[tuple[str, bool]] = []
        self.asked_at: list[float] = []  # when each request came, on the hub's clock
        self.sequence = {0: 0, 1: 0}

    def ask_keyframe(self, layer: str, urgent: bool) -> None:
        self.keyframe_requests.append((layer, urgent))
        self.asked_at.append(self.clock())

    def frame(self, keyframe: bool = False, layer: int = 0, skip: int = 0) -> bytes:
        """The next encoded frame of ``layer`` (``skip``: as if that many were never sent)."""
        self.sequence[layer] += skip
        header = RelayFrameHeader(self.sequence[layer], int(time.time() * 1e6), LAYERS[layer].width,
                                  LAYERS[layer].height, layer=layer, codec="vp8", keyframe=keyframe)
        self.sequence[layer] += 1
        return header.pack(b"K" if keyframe else b"d")


def jpeg_frame(layer: LayerInfo, jpeg_quality: int, index: int = 0, sequence: int = 0,
               width: int | None = None, height: int | None = None) -> bytes:
    """A JPEG relay frame of a ``layer``-sized grey picture; ``width``/``height`` as the header claims."""
    _, picture = cv2.imencode(".jpg", np.full((layer.height, layer.width, 3), 128, np.uint8),
                               [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
    return RelayFrameHeader(sequence, int(time.time() * 1e6), width or layer.width, height or layer.height,
                            jpeg_quality, layer=index).pack(picture.tobytes())


def make_hub(camera: Camera, audio: AudioInfo | None = None) -> RelayHub:
    def demand(jpeg: list, encoded: list[str], audio: bool) -> None:
        camera.demand, camera.audio_demand = (jpeg, encoded), audio

    hub = RelayHub(demand, RelayTotals(), on_keyframe=camera.ask_keyframe, clock=camera.clock)
    hub.camera_arrived(LAYERS, 80, audio)
    return hub


class Reader:
    """A relay reader whose deliveries can be held up (a slow socket), recording what it got."""

    def __init__(self, hub: RelayHub, name: str, quality: str = "auto", format: str = "encoded") -> None:
        self.got: list[tuple[int, int, bool]] = []  # (layer, sequence, keyframe)
        self.layers: list[tuple[str, str]] = []  # (layer, reason) from each move
        self.flowing = asyncio.Event()
        self.flowing.set()
        self.reader = RelayReader(name, self._deliver, format, on_rendition=self._moved)
        hub.add(self.reader, quality)

    def _moved(self, rendition: object, layer: LayerInfo, reason: str) -> None:
        self.layers.append((layer.name, reason))

    async def _deliver(self, frame: bytes) -> None:
        await self.flowing.wait()
        header, _ = parse_relay_frame(frame)
        self.got.append((header.layer, header.sequence, header.keyframe))


async def settle() -> None:
    """Let the readers' delivery tasks run (they only wait on the event loop here)."""
    for _ in range(5):
        await asyncio.sleep(0)


async def deltas_until_asked(hub: RelayHub, camera: Camera,
                             timeout: float = 3.0) -> tuple[tuple[str, bool], float]:
    """Publish deltas of layer 0 (one a frame's time apart on the hub's clock) until the hub asks
    for a keyframe: the request, and the seconds since the one before it."""
    before = len(camera.keyframe_requests)
    for _ in range(round(timeout / FRAME_SECONDS)):
        hub.publish(camera.frame())
        if len(camera.keyframe_requests) > before:
            await settle()
            return camera.keyframe_requests[-1], camera.asked_at[-1] - camera.asked_at[-2]
        camera.clock.advance(FRAME_SECONDS)
    raise AssertionError(f"no keyframe request within {timeout} s")


async def test_a_newcomer_starts_at_the_last_keyframe_when_recent_else_at_one_it_asks_for():
    camera = Camera()
    hub = make_hub(camera)
    first = Reader(hub, "first")
    assert camera.demand == ([], ["480p"]) and camera.keyframe_requests == [("480p", True)]
    for keyframe in (True, False, False):
        hub.publish(camera.frame(keyframe))
    late = Reader(hub, "late")  # the keyframe is fresh: from it, with the frames since, at once
    hub.publish(camera.frame())
    await settle()
    assert first.got == late.got == [(0, 0, True), (0, 1, False), (0, 2, False), (0, 3, False)]
    assert camera.keyframe_requests == [("480p", True)]  # nobody had to ask again

    camera.clock.advance(GOP_REUSE_SECONDS - FRAME_SECONDS)
    still = Reader(hub, "still")  # the keyframe is still recent enough
    camera.clock.advance(FRAME_SECONDS)
    later = Reader(hub, "later")  # too long since the keyframe: it waits for the next, and asks
    hub.publish(camera.frame())
    await settle()
    assert still.got == first.got and later.got == []
    assert camera.keyframe_requests == [("480p", True)] * 2
    hub.publish(camera.frame(keyframe=True))
    await settle()
    assert later.got == [(0, 5, True)] and first.got[-2:] == [(0, 4, False), (0, 5, True)]


async def test_keyframe_requests_of_many_readers_are_merged():
    camera = Camera()
    hub = make_hub(camera)
    readers = [Reader(hub, f"r{i}") for i in range(20)]
    for _ in range(10):  # deltas while they all wait: one urgent request
        hub.publish(camera.frame())
    assert camera.keyframe_requests == [("480p", True)]
    # Still waiting, they ask again: one request, URGENT_KEYFRAME_INTERVAL after the last.
    camera.clock.advance(URGENT_KEYFRAME_INTERVAL - FRAME_SECONDS)
    hub.publish(camera.frame())
    assert len(camera.keyframe_requests) == 1
    camera.clock.advance(FRAME_SECONDS)
    for _ in range(10):
        hub.publish(camera.frame())
    assert camera.keyframe_requests == [("480p", True)] * 2
    assert camera.asked_at == [0.0, URGENT_KEYFRAME_INTERVAL]
    hub.publish(camera.frame(keyframe=True))
    await settle()
    assert all(r.got == [(0, 21, True)] for r in readers)


async def test_a_reader_that_falls_behind_drops_to_the_next_keyframe_without_delaying_the_others():
    camera = Camera()
    hub = make_hub(camera)
    quick, slow = Reader(hub, "quick"), Reader(hub, "slow")
    hub.publish(camera.frame(keyframe=True))
    await settle()
    slow.flowing.clear()  # its socket takes nothing more
    for _ in range(MAX_QUEUED_FRAMES + 5):
        hub.publish(camera.frame())
        await settle()
    assert [seq for _, seq, _ in quick.got] == list(range(MAX_QUEUED_FRAMES + 6))  # every one, in order
    assert slow.reader.slot.waiting == "behind" and slow.reader.slot.peek() is None  # holds nothing
    # Like a PLI: at most once a second, counted from the newcomers' request (the keyframe
    # that answered it re-arms nothing).
    assert camera.keyframe_requests == [("480p", True)]
    request, waited = await deltas_until_asked(hub, camera)
    assert request == ("480p", False) and waited == KEYFRAME_INTERVAL
    slow.flowing.set()
    hub.publish(camera.frame())  # not decodable without what it missed: not sent
    keyframe_sequence = camera.sequence[0]
    hub.publish(camera.frame(keyframe=True))
    hub.publish(camera.frame())
    await settle()
    after = slow.got[slow.got.index((0, 1, False)) + 1:] if (0, 1, False) in slow.got else slow.got[1:]
    keyframe_at = [k for _, _, k in after].index(True)
    resumed = after[keyframe_at:]
    assert resumed == [(0, keyframe_sequence, True), (0, keyframe_sequence + 1, False)]
    assert slow.reader.frames_skipped > MAX_QUEUED_FRAMES


async def test_a_frame_the_camera_never_sent_makes_readers_wait_for_a_keyframe():
    camera = Camera()
    hub = make_hub(camera)
    reader = Reader(hub, "r")
    hub.publish(camera.frame(keyframe=True))
    hub.publish(camera.frame())
    await settle()
    hub.publish(camera.frame(skip=1))  # frame 2 was lost between the camera and the server
    request, waited = await deltas_until_asked(hub, camera)  # a second after the last request
    assert request == ("480p", False) and waited == KEYFRAME_INTERVAL
    keyframe_sequence = camera.sequence[0]
    hub.publish(camera.frame(keyframe=True))
    await settle()
    assert reader.got == [(0, 0, True), (0, 1, False), (0, keyframe_sequence, True)]


async def test_an_encoded_reader_moves_to_another_layer_at_its_keyframe():
    camera = Camera()
    hub = make_hub(camera)
    reader = Reader(hub, "r", quality="480p")
    hub.publish(camera.frame(keyframe=True))
    await settle()
    hub.choose(reader.reader, "240p", None)
    assert camera.demand == ([], ["480p", "240p"])  # both, until the new layer's keyframe
    assert camera.keyframe_requests[-1] == ("240p", True)
    hub.publish(camera.frame(layer=1))  # a delta of the new layer: not decodable from here
    hub.publish(camera.frame())  # the old layer goes on meanwhile
    await settle()
    hub.publish(camera.frame(keyframe=True, layer=1))
    hub.publish(camera.frame())  # the old layer's frames no longer go to it
    hub.publish(camera.frame(layer=1))
    await settle()
    assert reader.got == [(0, 0, True), (0, 1, False), (1, 1, True), (1, 2, False)]
    assert reader.layers == [("480p", ""), ("240p", "")] and camera.demand == ([], ["240p"])


async def test_jpeg_and_encoded_readers_share_a_stream():
    camera = Camera()
    hub = make_hub(camera)
    encoded, jpeg = Reader(hub, "e"), Reader(hub, "j", quality="240p", format="jpeg")
    assert camera.demand == ([JpegRendition("240p", 80)], ["480p"])
    hub.publish(camera.frame(keyframe=True))
    hub.publish(jpeg_frame(LAYERS[1], 80, index=1))
    await settle()
    assert encoded.got == [(0, 0, True)] and jpeg.got == [(1, 0, False)]
    summary = hub.summary()["renditions"]
    assert {(r["layer"], r["format"], r["readers"]) for r in summary} == {
        ("240p", "jpeg", 1), ("480p", "encoded", 1)}
    hub.remove(encoded.reader)
    hub.remove(jpeg.reader)
    assert camera.demand == ([], [])


async def test_a_reader_whose_rendition_another_instances_camera_does_not_make_reads_the_nearest():
    """The camera's instance (another) says which JPEG renditions the camera makes for every
    instance: a reader here whose own is not among them reads the nearest made, and is told
    why; it still asks for its own, and moves back to it once it is made."""
    camera = Camera()
    hub = make_hub(camera)
    got, moves = [], []  # the qualities delivered; (rendition, reason) of each move

    async def deliver(frame: bytes) -> None:
        got.append(parse_relay_frame(frame)[0].jpeg_quality)

    reader = RelayReader("r", deliver, "jpeg",
                         on_rendition=lambda rendition, layer, reason: moves.append((rendition, reason)))
    own, nearest = JpegRendition("480p", 40), JpegRendition("480p", 70)
    hub.add(reader, "480p", 40)
    hub.renditions_made([JpegRendition("240p", 40), nearest, JpegRendition("480p", 95)])
    assert moves[-1] == (nearest, SHARED_CAP_REASON)
    assert camera.demand == ([own], [])
    hub.publish(jpeg_frame(LAYERS[0], 40))  # not made for this instance: nobody here reads it
    hub.publish(jpeg_frame(LAYERS[0], 70))
    await settle()
    assert got == [70] and hub.frames_unread == 1

    hub.renditions_made([own, nearest])
    assert moves[-1] == (own, "")
    hub.publish(jpeg_frame(LAYERS[0], 40))
    await settle()
    assert got == [70, 40]
    hub.remove(reader)


async def test_a_snapshot_is_the_newest_frame_if_under_a_second_old_else_the_next():
    camera = Camera()
    hub = make_hub(camera)
    rendition = JpegRendition("480p", 80)
    reader = Reader(hub, "j", quality="480p", format="jpeg")  # what it reads, the hub keeps
    hub.publish(jpeg_frame(LAYERS[0], 80, sequence=1))
    camera.clock.advance(1 - FRAME_SECONDS)
    assert parse_relay_frame(await hub.next_frame(rendition, 5))[0].sequence == 1
    camera.clock.advance(FRAME_SECONDS)
    waiting = asyncio.ensure_future(hub.next_frame(rendition, 5))
    await settle()
    assert not waiting.done()  # a second old: no longer news
    hub.publish(jpeg_frame(LAYERS[0], 80, sequence=2))
    assert parse_relay_frame(await waiting)[0].sequence == 2
    hub.remove(reader.reader)


async def test_an_auto_reader_that_keeps_skipping_steps_down_and_probes_back_up_once_clean():
    """The reader's ladder on its own, sampled once a (test) second as the hub does."""
    delivered: list[bytes] = []

    async def deliver(frame: bytes) -> None:
        delivered.append(frame)

    reader = RelayReader("r", deliver, "jpeg")
    reader.use_rungs([JpegRendition("480p", 80), JpegRendition("480p", 50)])
    reader.moved(reader.rung(), LAYERS[0], "")
    moves = {}
    for second in range(2):
        for _ in range(10):  # its task is not running: each frame replaces the last, unsent
            reader.offer(b"jpeg")
        moves[second] = reader.adapt(float(second))
    assert moves[0] is None  # one bad second may be a blip; two are not
    assert moves[1] is not None and moves[1].rung == 1 and moves[1].reason == "100% of frames skipped"
    assert reader.rung() == JpegRendition("480p", 50)

    reader.start()
    await settle()  # the frame it held goes out
    for second in range(2, 10):  # it keeps up now
        reader.offer(b"jpeg")
        await settle()
        moves[second] = reader.adapt(float(second))
    reader.stop()
    # After the move, 2 s pass before it counts (the old rung's last seconds); clean from
    # then on for 6 s, it tries the rung above.
    assert [s for s, m in moves.items() if m is not None] == [1, 9]
    assert moves[9].rung == 0 and moves[9].reason == "clean for 6 s"
    assert reader.rung() == JpegRendition("480p", 80)
    assert len(delivered) == 1 + 8 and reader.frames_skipped == 19


# -- the encoded relay, end to end -------------------------------------------------


def test_encoded_relay_viewers_get_every_frame_at_about_the_p2p_bitrate_beside_jpeg_readers(lab):
    lab.start_server()
    lab.start_camera()
    first = lab.start_viewer("test", "--mode", "relay", "--duration", "8", "--warmup", "1")
    first.wait_for_log("first frame", timeout=20)
    # A late joiner, a P2P viewer of the same layer, and JPEG readers (a viewer, MJPEG) beside it.
    late = lab.start_viewer("test", "--mode", "relay", "--duration", "3")
    p2p = lab.start_viewer("test", "--mode", "p2p", "--duration", "5", "--warmup", "1")
    jpeg = lab.start_viewer("test", "--mode", "relay", "--relay-format", "jpeg", "--duration", "3")
    assert _read_mjpeg_parts(f"{lab.url}/streams/test/mjpeg", seconds=3) > 1
    encoded, late, p2p, jpeg = (v.summary(timeout=60) for v in (first, late, p2p, jpeg))
    for summary in (encoded, late):
        assert_plays(summary, "relay")
        assert summary["relay_format"] == "encoded" and summary["frames_dropped"] == 0, summary
    assert late["time_to_first_frame_ms"] < 1000, late  # a newcomer starts at a keyframe at once
    assert_plays(p2p, "p2p")
    assert_plays(jpeg, "relay")
    assert jpeg["relay_format"] == "jpeg", jpeg
    # The camera's own frames: about the P2P bitrate (JPEG is several times more), every frame.
    assert encoded["bitrate_kbps"] < 2 * p2p["bitrate_kbps"] < jpeg["bitrate_kbps"], (encoded, p2p, jpeg)
    assert encoded["fps"] > 0.8 * p2p["fps"], (encoded, p2p)


def test_an_encoded_reader_that_stops_reading_resumes_at_a_keyframe_with_whole_pictures(lab):
    """It listens to the camera's sound too: pictures are dropped to catch up, its sound never."""
    server = lab.start_server()
    lab.start_camera()
    reader = RawRelayViewer(lab.port, "test", "encoded", quality="480p", small_buffer=False, audio=True)
    try:
        frames = reader.read_frames(seconds=1)
        assert frames, "no encoded relay frame within 1 s"
        rss_before, rss_most = server_rss_kb(server.proc.pid), 0
        stall_ends = time.monotonic() + 5  # the scenario: 5 s without reading
        while time.monotonic() < stall_ends:
            rss_most = max(rss_most, server_rss_kb(server.proc.pid))
            time.sleep(0.2)
        frames += reader.read_frames(seconds=3)
        relay = get_json(f"{lab.url}/api/streams/test")["relay"]
    finally:
        reader.close()
    sound = [parse_relay_frame(data)[0] for _, data in frames if data[0] == AUDIO_VERSION]
    frames = [(arrived, data) for arrived, data in frames if data[0] != AUDIO_VERSION]
    # Every packet of sound, before, during and after the stall: none lost, none dropped.
    assert [h.sequence for h in sound] == list(range(sound[0].sequence, sound[0].sequence + len(sound)))
    assert sound[-1].capture_time_us - sound[0].capture_time_us > 7_000_000, "sound all along"
    assert relay["audio_packets_dropped"] == 0 and relay["frames_skipped"] > 0, relay
    headers = [parse_relay_frame(data)[0] for _, data in frames]
    assert headers[0].keyframe and all(h.codec == "vp8" and h.layer == 0 for h in headers)
    gaps = [i for i in range(1, len(headers)) if headers[i].sequence != headers[i - 1].sequence + 1]
    assert gaps and all(headers[i].keyframe for i in gaps), "after what it missed, it resumes at a keyframe"
    # Every picture whole: each decodes, and its test-pattern stamp reads back its header's capture time.
    decoder = av.CodecContext.create("vp8", "r")
    for header, (_, data) in zip(headers, frames, strict=True):
        pictures = decoder.decode(av.Packet(bytes(parse_relay_frame(data)[1])))
        assert len(pictures) == 1
        stamp = read_stamp(luma_plane(pictures[0]))
        assert stamp is not None and abs(stamp.time_ms - header.capture_time_us / 1000) <= 1, header
    arrived, data = frames[-1]
    assert arrived - parse_relay_frame(data)[0].capture_time_us / 1e6 < 1.0  # caught up: current again
    assert rss_most - rss_before < 15_000  # what it did not read was dropped, not kept
