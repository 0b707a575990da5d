"""peers/camera/playoutdelay.py: the camera answers Chromium's playout-delay extension and sends it."""

from __future__ import annotations

import json

from aiortc import rtp
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from peercam.peers.camera import playoutdelay

from .support.chromium import goto_player

MID = "urn:ietf:params:rtp-hdrext:sdes:mid"


def packed_extensions(*extensions: RTCRtpHeaderExtensionParameters) -> dict[int, bytes]:
    """What a sender with these negotiated extensions writes into a packet of mid "0"."""
    extension_map = rtp.HeaderExtensionsMap()
    extension_map.configure(RTCRtpParameters(headerExtensions=list(extensions)))
    return dict(rtp.unpack_header_extensions(*extension_map.set(rtp.HeaderExtensions(mid="0"))))


def test_each_packet_asks_for_no_delay_and_at_most_100_ms_once_negotiated():
    playoutdelay.enable()
    playoutdelay.enable()  # idempotent
    mid = RTCRtpHeaderExtensionParameters(id=1, uri=MID)
    negotiated = packed_extensions(mid, RTCRtpHeaderExtensionParameters(id=7, uri=playoutdelay.URI))
    assert negotiated == {1: b"0", 7: bytes([0x00, 0x00, 0x0A])}  # min 0, max 10 x 10 ms
    assert packed_extensions(mid) == {1: b"0"}  # a viewer that did not offer it gets none


def test_chromium_negotiates_it_with_the_camera(lab, page):
    lab.start_server()
    lab.start_camera("lab")
    answers = []

    def note_answer(data) -> None:
        if isinstance(data, str) and json.loads(data).get("type") == "answer":
            answers.append(json.loads(data))

    page.on("websocket", lambda ws: ws.on("framereceived", note_answer))
    goto_player(page, f"{lab.url}/view/lab?mode=p2p")
    page.wait_for_function("peercam.state() === 'playing'", timeout=15_000)
    [answer] = answers
    assert f" {playoutdelay.URI}" in answer["sdp"]
