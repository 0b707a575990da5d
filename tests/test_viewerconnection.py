"""peers/camera/viewerconnection.py: the camera's side of one viewer, against a real aiortc viewer."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
from aioice import stun
from aiortc import RTCPeerConnection, RTCSessionDescription
from peercam.peers.camera.layers import parse_layers
from peercam.peers.camera.pipeline import MediaPipeline
from peercam.peers.camera.sources import TestPatternSource
from peercam.peers.camera.viewerconnection import ViewerConnection
from peercam.peers.ice import rtc_configuration

from peercam.shared.protocol import Candidate, IceCandidate, Offer


@pytest.fixture
async def pipeline() -> AsyncIterator[MediaPipeline]:
    """A running 320x240 test-pattern pipeline: the camera's encoder and fan-out."""
    layers = parse_layers("240p,120p", 320, 240, 30)
    running = MediaPipeline(TestPatternSource(320, 240, 30), layers, "vp8", asyncio.get_running_loop(),
                            min_keyframe_interval=0.1)
    running.start()
    yield running
    await asyncio.to_thread(running.stop)


@contextlib.asynccontextmanager
async def camera_and_viewer(pipeline: MediaPipeline, sent: asyncio.Queue,
                            ) -> AsyncIterator[tuple[ViewerConnection, RTCPeerConnection, asyncio.Future]]:
    """The camera's side of one viewer, and a real aiortc viewer with its offer made.

    Yields (camera side, viewer, future of the viewer's track); what the camera side
    sends (its answer, hangups) goes to ``sent``.
    """
    camera_side = ViewerConnection("v1", pipeline, None, lambda: rtc_configuration([]), "vp8", sent.put,
                                   connect_timeout=10, on_closed=lambda v: None)
    viewer = RTCPeerConnection(rtc_configuration([]))
    try:
        viewer.addTransceiver("video", direction="recvonly")
        got_track: asyncio.Future = asyncio.get_running_loop().create_future()
        viewer.on("track", got_track.set_result)
        await viewer.setLocalDescription(await viewer.createOffer())
        yield camera_side, viewer, got_track
    finally:
        await viewer.close()
        await camera_side.close()


class RefusingStunServer(asyncio.DatagramProtocol):
    """Answers every STUN binding request with 400 Bad Request: an ICE check that fails at once.

    Signed with the ICE password the checks use (``password``), or aioice would ignore it.
    """

    password = b""

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        request = stun.parse_message(data)
        response = stun.Message(stun.Method.BINDING, stun.Class.ERROR, request.transaction_id)
        response.attributes["ERROR-CODE"] = (400, "Bad Request")
        response.add_message_integrity(self.password)
        response.add_fingerprint()
        self.transport.sendto(bytes(response), addr)


async def test_a_viewer_found_only_by_its_own_checks_still_connects(loopback_ice, pipeline):
    """The viewer's one signalled candidate fails at once, then it signals end of candidates.

    Its own checks show the camera where it really is (a peer-reflexive candidate), as a
    browser's LAN candidate on a host that answers from 127.0.0.1 does. The camera must
    not give up before that pair is tried.
    """
    loop = asyncio.get_running_loop()
    refusing, refuser = await loop.create_datagram_endpoint(RefusingStunServer, local_addr=("127.0.0.1", 0))
    refusing_port = refusing.get_extra_info("sockname")[1]
    sent: asyncio.Queue = asyncio.Queue()
    async with camera_and_viewer(pipeline, sent) as (camera_side, viewer, got_track):
        refuser.password = next(line.split(":", 1)[1].strip().encode() for line in
                                viewer.localDescription.sdp.splitlines() if line.startswith("a=ice-pwd:"))
        sdp = "".join(line for line in viewer.localDescription.sdp.splitlines(keepends=True)
                      if not line.startswith(("a=candidate:", "a=end-of-candidates")))
        camera_side.post(Offer(sdp=sdp))
        camera_side.post(Candidate(candidate=IceCandidate(
            candidate=f"candidate:1 1 udp 2130706431 127.0.0.1 {refusing_port} typ host",
            sdp_mid="0", sdp_mline_index=0)))
        camera_side.post(Candidate(candidate=None))
        answer = await asyncio.wait_for(sent.get(), 10)
        await viewer.setRemoteDescription(RTCSessionDescription(answer.sdp, "answer"))
        track = await asyncio.wait_for(got_track, 10)
        await asyncio.wait_for(track.recv(), 10)
        assert camera_side.pc is not None and camera_side.pc.connectionState == "connected"
    refusing.close()
