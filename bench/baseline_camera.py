"""Usage: python3 -m bench.baseline_camera --server URL --stream NAME [--width 640 --height 480 --fps 30]

The fan-out benchmark's baseline camera: peercam's test pattern served the way
aiortc's webcam example serves a camera, so bench/fanout.py can compare like with like.
It speaks peercam's signaling protocol as a camera (publish, answer each viewer's
offer), but each viewer's peer connection gets its own ``MediaRelay().subscribe()``
proxy of one source track, so aiortc runs one VP8 encoder per viewer (aiortc's own
encoder, with its REMB-driven bitrate).

``buffered=False``: every proxy holds only the newest frame. The default
(``buffered=True``) queues frames without bound for a viewer whose encoder falls
behind, and latency then grows past seconds (WEBRTC-NOTES.md); without a buffer a slow
encoder skips frames instead, which the benchmark counts as drops.

The source runs on its own thread (like aiortc's MediaPlayer) and converts each frame
to I420 once: sharing a bgr24 frame between encoders that each reformat it crashed.
ICE offers 127.0.0.1 only, with no STUN or TURN server.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import threading

import av
import cv2
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription
from aiortc.contrib.media import MediaRelay
from peercam.peers.camera.encoder import RTP_TIME_BASE
from peercam.peers.camera.sources import SourceError, TestPatternSource
from peercam.peers.camera.viewerconnection import codec_preferences
from peercam.peers.ice import IceOptions, restrict_host_addresses
from peercam.peers.signaling_client import SignalingClient

from peercam.shared.protocol import (
    PROTOCOL_VERSION,
    Answer,
    Error,
    Hangup,
    Offer,
    Publish,
    Published,
    StreamInfo,
    ViewerLeft,
)

log = logging.getLogger("mediarelay-camera")


class TestPatternTrack(MediaStreamTrack):
    """The test pattern as a track: newest frame wins, I420 frames with capture-time pts."""

    kind = "video"

    def __init__(self, source: TestPatternSource) -> None:
        super().__init__()
        self._source = source
        self._loop = asyncio.get_running_loop()
        self._newest: asyncio.Queue[av.VideoFrame] = asyncio.Queue(maxsize=1)
        threading.Thread(target=self._capture, name="capture", daemon=True).start()

    def _capture(self) -> None:
        try:
            while True:
                captured = self._source.read()
                i420 = cv2.cvtColor(captured.image, cv2.COLOR_BGR2YUV_I420)
                frame = av.VideoFrame.from_ndarray(i420, format="yuv420p")
                frame.pts = int(captured.capture_time * 90000)  # like peercam's packets
                frame.time_base = RTP_TIME_BASE
                self._loop.call_soon_threadsafe(self._hand_over, frame)
        except SourceError:
            pass  # closed at shutdown

    def _hand_over(self, frame: av.VideoFrame) -> None:
        if self._newest.full():
            self._newest.get_nowait()
        self._newest.put_nowait(frame)

    async def recv(self) -> av.VideoFrame:
        return await self._newest.get()


class BaselineCamera:
    """Publishes one stream; every viewer gets its own relay proxy and so its own encoder."""

    def __init__(self, server: str, stream: str, source: TestPatternSource) -> None:
        self.server, self.stream, self.source = server, stream, source
        self.track = TestPatternTrack(source)
        self.relay = MediaRelay()
        self.viewers: dict[str, RTCPeerConnection] = {}
        self._answering: set[asyncio.Task] = set()

    async def run(self) -> None:
        client = SignalingClient(self.server)
        welcome = await client.connect()
        ice = IceOptions(servers=[], hosts=["127.0.0.1"])
        restrict_host_addresses(ice.host_addresses(welcome))
        configuration = ice.configuration(welcome)
        info = StreamInfo(width=self.source.width, height=self.source.height, fps=self.source.fps,
                          codec="vp8")
        await client.send(Publish(stream=self.stream, info=info, protocol=PROTOCOL_VERSION))
        try:
            async for message in client.messages():
                if isinstance(message, Published):
                    log.info("publishing %r", message.stream)
                elif isinstance(message, Error):
                    raise RuntimeError(f"{message.code}: {message.reason}")
                elif isinstance(message, Offer) and message.sender:
                    answer = self._answer(client, configuration, message.sender, message.sdp)
                    task = asyncio.create_task(answer)
                    self._answering.add(task)
                    task.add_done_callback(self._answering.discard)
                elif isinstance(message, Hangup) and message.sender:
                    await self._close(message.sender)
                elif isinstance(message, ViewerLeft):
                    await self._close(message.peer_id)
        finally:
            await asyncio.gather(*(self._close(viewer) for viewer in list(self.viewers)))
            await client.close()

    async def _answer(self, client: SignalingClient, configuration, viewer: str, sdp: str) -> None:
        await self._close(viewer)
        pc = self.viewers[viewer] = RTCPeerConnection(configuration)
        try:
            proxy = self.relay.subscribe(self.track, buffered=False)
            transceiver = pc.addTransceiver(proxy, direction="sendonly")
            transceiver.setCodecPreferences(codec_preferences("vp8"))
            await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
            await pc.setLocalDescription(await pc.createAnswer())
            await client.send(Answer(to=viewer, sdp=pc.localDescription.sdp))
        except Exception as exc:  # one viewer's failure must not stop the camera
            log.warning("viewer %s: %r", viewer, exc)
            await self._close(viewer)

    async def _close(self, viewer: str) -> None:
        pc = self.viewers.pop(viewer, None)
        if pc is not None:
            try:
                await asyncio.wait_for(asyncio.shield(pc.close()), 3)
            except asyncio.TimeoutError:
                log.info("viewer %s: peer connection did not close in 3 s", viewer)


async def serve(opts: argparse.Namespace) -> None:
    source = TestPatternSource(opts.width, opts.height, opts.fps)
    task = asyncio.create_task(BaselineCamera(opts.server, opts.stream, source).run())
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        await task
    except asyncio.CancelledError:
        pass
    finally:
        source.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--server", required=True, help="the signaling server, http://HOST:PORT")
    parser.add_argument("--stream", required=True)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--fps", type=float, default=30.0)
    opts = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    asyncio.run(serve(opts))


if __name__ == "__main__":
    main()
