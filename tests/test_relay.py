"""The relay (signaling/relay.py, mjpeg.py, peers' JPEG stage): JPEG over WebSocket and HTTP."""

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
import cv2
import numpy as np

from signaling.relayframe import parse_relay_frame

from .conftest import assert_plays, get_json, wait_until


class StalledWebSocket:
    """A relay viewer that never reads: a raw socket that says watch + relay, then stops."""

    def __init__(self, port: int, stream: str) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                           "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        for message in ({"type": "watch", "stream": stream}, {"type": "relay", "enabled": True}):
            self._send_text(json.dumps(message).encode())

    def _send_text(self, payload: bytes) -> None:
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(struct.pack("!BB", 0x81, 0x80 | len(payload)) + mask + masked)

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


def test_forced_relay_viewer_gets_frames_with_latency(cluster):
    cluster.start_server()
    cluster.start_camera()
    summary = cluster.start_viewer("test", "--mode", "relay", "--duration", "4").summary(timeout=30)
    assert_plays(summary, "relay")
    # From the frame header: the capture time (in ms, on this machine's clock) and the sequence number.
    assert 0 <= summary["latency_ms"]["p50"] < 10_000 and summary["frames_dropped"] is not None
    assert summary["bitrate_kbps"] > 0 and summary["time_to_first_frame_ms"] > 0


def test_camera_sends_jpeg_only_while_someone_is_on_the_relay(cluster):
    cluster.start_server()
    camera = cluster.start_camera()

    def relay_lines() -> list[str]:
        """What the camera logged about its JPEG renditions: "480p JPEG q80", "stopped"."""
        return [line.split("relay: ", 1)[1] for line in camera.log().splitlines() if " relay: " in line]

    assert not any("JPEG" in line for line in relay_lines())
    cluster.start_viewer("test", "--mode", "relay", "--duration", "1").summary(timeout=30)
    wait_until(lambda: any("JPEG q" in line for line in relay_lines()) and relay_lines()[-1] == "stopped", 5,
               "the camera to encode JPEG for the relay viewer, then stop")


def test_twenty_relay_viewers_keep_getting_frames_beside_one_that_reads_nothing(cluster):
    server = cluster.start_server()
    cluster.start_camera("big", "--width", "1280", "--height", "720")
    stalled = StalledWebSocket(cluster.port, "big")
    try:
        def relay() -> dict:
            return get_json(f"{cluster.url}/api/streams/big")["relay"]

        wait_until(lambda: relay()["frames_in"] > 10, 10, "relay frames to flow")
        rss_before = server_rss_kb(server.proc.pid)
        # Each gets frames all along (none waits 5 s for one), at whatever rate the machine allows.
        results = asyncio.run(relay_clients(cluster.port, "big", 20, seconds=6))
        assert all(r["frames"] > 1 for r in results), results
        stream = get_json(f"{cluster.url}/api/streams/big")
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


def test_mjpeg_and_snapshot_unaffected_by_a_stalled_mjpeg_reader(cluster):
    cluster.start_server()
    cluster.start_camera()
    stalled = socket.create_connection(("127.0.0.1", cluster.port))
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.sendall(f"GET /streams/test/mjpeg HTTP/1.1\r\nHost: 127.0.0.1:{cluster.port}\r\n\r\n".encode())
    try:
        # Parts keep coming (a read that waits 5 s for one fails), at whatever rate the machine allows.
        parts = _read_mjpeg_parts(f"{cluster.url}/streams/test/mjpeg", seconds=4)
        assert parts > 1, parts
        with urllib.request.urlopen(f"{cluster.url}/streams/test/snapshot.jpg", timeout=10) as response:
            assert response.headers["Content-Type"] == "image/jpeg"
            image = cv2.imdecode(np.frombuffer(response.read(), np.uint8), cv2.IMREAD_COLOR)
        assert image is not None and image.shape == (480, 640, 3)
        viewer = cluster.start_viewer("test", "--mode", "relay", "--duration", "3")
        assert_plays(viewer.summary(timeout=30), "relay")
    finally:
        stalled.close()


def test_an_mjpeg_reader_that_takes_nothing_is_dropped(cluster):
    cluster.start_server("--stalled-reader-timeout", "2")
    cluster.start_camera()
    stalled = socket.create_connection(("127.0.0.1", cluster.port))
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.sendall(f"GET /streams/test/mjpeg HTTP/1.1\r\nHost: 127.0.0.1:{cluster.port}\r\n\r\n".encode())
    try:
        def relay_readers() -> int:
            return get_json(f"{cluster.url}/api/streams/test")["relay"]["readers"]

        wait_until(lambda: relay_readers() == 1, 10, "the MJPEG reader to count")
        wait_until(lambda: relay_readers() == 0, 15, "the stalled MJPEG reader to be dropped")
        wait_until(lambda: "took no bytes for 2 s" in cluster.server.log(), 5, "the server to say why")
    finally:
        stalled.close()


def test_mjpeg_of_an_unknown_stream_is_404(cluster):
    cluster.start_server()
    for path in ("/streams/nope/mjpeg", "/streams/nope/snapshot.jpg"):
        try:
            urllib.request.urlopen(f"{cluster.url}{path}", timeout=5)
            raise AssertionError(f"{path} should be 404")
        except urllib.error.HTTPError as exc:
            assert exc.code == 404


def test_relay_frame_rate_cap_and_quality(cluster):
    cluster.start_server()
    cluster.start_camera("test", "--relay-fps", "10", "--jpeg-quality", "30")
    results = asyncio.run(relay_clients(cluster.port, "test", 1, seconds=3))
    # A cap bounds the rate from above only (a busy machine may make fewer frames): it lets
    # frames 90 ms apart through (11.1 a second), and a reader that joins gets the newest
    # frame at once; arrival jitter at either end of 3 s adds a little more.
    assert 0 < results[0]["fps"] <= 12.5, results
    with urllib.request.urlopen(f"{cluster.url}/streams/test/snapshot.jpg", timeout=10) as response:
        assert len(response.read()) < 25_000  # quality 30: well under the ~36 kB of quality 80
