"""peers/camera/senderreports.py: the camera's RTCP sender reports say when the media was
captured, so that a receiver maps RTP timestamps to capture times (as browsers do for lip
sync), and the round-trip time is still measured.

A real camera (the library's, with the test tone) and a real P2P viewer: each AudioFrame's
capture_time comes from the camera's sender reports; the beeps the tone reader hears say
when they were captured on their own. aiortc's reports (the send time) put the frames
about a packet (20 ms) late, after the beep they hold.
"""

from __future__ import annotations

import asyncio
import json
import typing
import urllib.request

import pytest
from peercam.peers.testtone import ToneReader

import peercam

LOOPBACK = peercam.IceOptions(servers=[], hosts=["127.0.0.1"])


@pytest.fixture
async def server() -> typing.AsyncIterator[peercam.Server]:
    async with await peercam.serve(port=0) as running:
        yield running


async def _camera_viewers(server: peercam.Server) -> list[dict]:
    def read() -> dict:
        with urllib.request.urlopen(f"{server.url}/api/streams/lab", timeout=2) as response:
            return json.load(response)
    stream = await asyncio.to_thread(read)
    return ((stream.get("camera") or {}).get("stats") or {}).get("viewers") or []


async def test_a_frame_s_capture_time_from_the_sender_reports_is_that_of_its_sound(server):
    async with peercam.Camera(server.url, "lab", source="testsrc", width=320, height=240, audio="tone",
                              ice=LOOPBACK):
        async with peercam.watch(server.url, "lab", mode="p2p", ice=LOOPBACK) as viewer:
            reader = ToneReader()
            frames: dict[float, peercam.AudioFrame] = {}  # by arrival: a beep names its frame so
            offsets = []  # the beep's capture time within its frame's (s): 0 to 20 ms if both are true

            async def read() -> None:
                async for frame in viewer.audio(keep=None):
                    frames[frame.arrived] = frame
                    for beep in reader.feed(frame.samples, frame.arrived):
                        heard_in = frames[beep.heard_time]
                        if heard_in.capture_time is not None:  # a report came before it
                            offsets.append(beep.capture_time - heard_in.capture_time)
                    if len(offsets) >= 6:
                        return

            await asyncio.wait_for(read(), 30)
            # The reports' round trips still match: the camera measures the viewer's RTT.
            async def rtt_measured() -> None:
                while not any(v.get("rtt_ms") is not None for v in await _camera_viewers(server)):
                    await asyncio.sleep(0.2)

            await asyncio.wait_for(rtt_measured(), 15)
    duration = 960 / 48000
    tolerance = 0.003  # the reader finds an onset to within a millisecond or two
    assert all(-tolerance <= offset <= duration + tolerance for offset in offsets), offsets
