"""The browser camera's sound (/publish/NAME) in real headless Chromium: its fake microphone,
which beeps, reaches a Python viewer peer to peer and relay readers as Opus relay frames;
``?audio=0`` publishes none."""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from collections.abc import Iterator
from contextlib import contextmanager

import aiohttp
import av
import msgspec
import numpy as np
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError
from peercam.peers.ice import aiortc_candidate

from peercam.shared.protocol import PROTOCOL_VERSION, AudioInfo, CameraStats, IceCandidate
from peercam.shared.relayframe import RelayFrameHeader, parse_relay_frame

from .conftest import wait_until
from .test_web_publish import go_live, media_browser  # noqa: F401 (a fixture)

#: Opus's rate, at which both the raw receiver and PyAV decode.
SAMPLE_RATE = 48000
#: Windows of the energy envelope: 10 ms.
WINDOW = SAMPLE_RATE // 100
#: Seconds of sound a P2P listener takes: a dozen of the fake microphone's beeps, and long
#: enough for the camera's stats report (every 2 s) to come while it listens.
LISTEN_SECONDS = 6.0


async def _next(ws: aiohttp.ClientWebSocketResponse, kind: str, timeout: float = 15) -> dict:
    """The next JSON message of type ``kind`` (others are skipped)."""
    deadline = time.monotonic() + timeout
    while True:
        message = await asyncio.wait_for(ws.receive(), max(0.1, deadline - time.monotonic()))
        if message.type != aiohttp.WSMsgType.TEXT:
            if message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                raise AssertionError(f"the server closed the socket waiting for {kind}")
            continue
        data = message.json()
        if data["type"] == kind:
            return data


async def _watch(session: aiohttp.ClientSession, url: str, stream: str) -> tuple:
    """A viewer's socket on ``stream``, once its camera is live: (socket, stream-live)."""
    ws = await session.ws_connect(f"{url.replace('http', 'ws')}/ws", max_msg_size=0)
    await _next(ws, "welcome")
    await ws.send_json({"type": "watch", "stream": stream, "protocol": PROTOCOL_VERSION})
    return ws, await _next(ws, "stream-live")


async def listen_p2p(url: str, stream: str, seconds: float = LISTEN_SECONDS,
                     expect_sound: bool = True) -> dict:
    """A raw aiortc viewer (recvonly video and audio, as the Python viewer's quick check had
    it): the stream's info, the camera's answer, ``seconds`` of the sound it decoded (mono
    int16 at 48 kHz), the number of audio frames and of pictures, and its inbound-rtp
    reports by kind. Not ``expect_sound``: it stops after 30 pictures."""
    async with aiohttp.ClientSession() as session:
        ws, live = await _watch(session, url, stream)
        pc = RTCPeerConnection()
        pc.addTransceiver("video", direction="recvonly")
        pc.addTransceiver("audio", direction="recvonly")
        heard: list[np.ndarray] = []
        pictures = 0
        enough = asyncio.Event()

        async def read(track) -> None:
            nonlocal pictures
            while not enough.is_set():
                try:
                    frame = await track.recv()
                except MediaStreamError:
                    return
                if track.kind == "video":
                    pictures += 1
                    continue
                assert frame.sample_rate == SAMPLE_RATE, frame.sample_rate
                samples = frame.to_ndarray().reshape(-1, len(frame.layout.channels))
                heard.append(samples[:, 0].copy())
                if sum(map(len, heard)) >= seconds * SAMPLE_RATE:
                    enough.set()

        readers = []
        pc.on("track", lambda track: readers.append(asyncio.ensure_future(read(track))))
        try:
            await pc.setLocalDescription(await pc.createOffer())
            await ws.send_json({"type": "offer", "to": live["camera_id"], "sdp": pc.localDescription.sdp})
            answer = None
            deadline = time.monotonic() + seconds + 20
            while not enough.is_set() and time.monotonic() < deadline:
                if not expect_sound and pictures >= 30:
                    break
                try:
                    message = await asyncio.wait_for(ws.receive(), 0.2)
                except asyncio.TimeoutError:
                    continue
                if message.type != aiohttp.WSMsgType.TEXT:
                    continue
                data = message.json()
                if data["type"] == "answer":
                    answer = data["sdp"]
                    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
                elif data["type"] == "candidate" and data.get("candidate"):
                    candidate = IceCandidate(data["candidate"]["candidate"], data["candidate"].get("sdpMid"),
                                             data["candidate"].get("sdpMLineIndex"))
                    await pc.addIceCandidate(aiortc_candidate(candidate))
                elif data["type"] == "hangup":
                    raise AssertionError(f"the camera hung up: {data['reason']}")
            enough.set()
            stats = {report.kind: report for report in (await pc.getStats()).values()
                     if report.type == "inbound-rtp"}
        finally:
            for reader in readers:
                reader.cancel()
            await pc.close()
            await ws.close()
    samples = np.concatenate(heard) if heard else np.zeros(0, np.int16)
    return {"info": live["info"], "answer": answer, "samples": samples, "frames": len(heard),
            "pictures": pictures, "stats": stats}


async def read_relay(url: str, stream: str, packets: int = 150, expect_sound: bool = True) -> dict:
    """A raw relay reader of encoded frames that asks for the sound: ``packets`` Opus relay
    frames' headers, the sound PyAV decodes from them (mono int16 at 48 kHz), the number of
    pictures that came with them. Not ``expect_sound``: it stops after 60 pictures."""
    async with aiohttp.ClientSession() as session:
        ws, live = await _watch(session, url, stream)
        await ws.send_json({"type": "relay", "enabled": True, "format": "encoded", "audio": True})
        headers: list[RelayFrameHeader] = []
        payloads: list[bytes] = []
        pictures = 0
        deadline = time.monotonic() + 30
        while len(headers) < packets and time.monotonic() < deadline:
            try:
                message = await asyncio.wait_for(ws.receive(), 1)
            except asyncio.TimeoutError:
                continue
            if message.type != aiohttp.WSMsgType.BINARY:
                continue
            header, payload = parse_relay_frame(message.data)
            if header.format == "audio":
                headers.append(header)
                payloads.append(bytes(payload))
            else:
                pictures += 1
            if not expect_sound and pictures >= 60:
                break
        await ws.close()
    decoder = av.CodecContext.create("libopus", "r")
    decoder.sample_rate = SAMPLE_RATE
    to_mono = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
    decoded = [resampled.to_ndarray().reshape(-1)
               for payload in payloads for frame in decoder.decode(av.Packet(payload))
               for resampled in to_mono.resample(frame)]
    samples = np.concatenate(decoded) if decoded else np.zeros(0, np.int16)
    return {"info": live["info"], "headers": headers, "samples": samples, "pictures": pictures}


def envelope(samples: np.ndarray) -> np.ndarray:
    """The RMS level of int16 sound in 10 ms windows (of full scale, 0 to 1)."""
    samples = samples.astype(np.float64) / 32768
    count = len(samples) // WINDOW
    windows = samples[: count * WINDOW].reshape(count, WINDOW)
    return np.sqrt((windows ** 2).mean(axis=1))


def assert_beeps(samples: np.ndarray, seconds: float) -> None:
    """``seconds`` or more of sound, with the fake microphone's beeps in it (Chromium's beeps
    twice a second): loud bursts, quiet between them, coming again about every half second
    (not silence, not one click, not a steady hum)."""
    levels = envelope(samples)
    shown = levels.round(3).tolist()
    assert len(levels) >= seconds * 100 * 0.9, f"{len(levels) / 100:.2f} s of sound"
    loud = levels > 0.05
    assert loud.any(), f"silence: the loudest 10 ms is {levels.max():.4f} of full scale"
    assert np.percentile(levels, 50) < levels.max() / 20, f"no quiet between beeps: {shown}"
    onsets = np.flatnonzero(loud[1:] & ~loud[:-1]) + 1
    assert len(onsets) >= seconds * 2 - 2, f"{len(onsets)} beeps in {seconds:g} s: {shown}"
    spacing = np.median(np.diff(onsets)) / 100
    assert 0.3 < spacing < 0.7, f"beeps {spacing:.2f} s apart: {shown}"


@contextmanager
def in_background(coroutine) -> Iterator[concurrent.futures.Future]:
    """An asyncio coroutine on a thread of its own (Playwright's sync API holds this one's
    loop), while the test goes on with the pages."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        yield pool.submit(asyncio.run, coroutine)


def run(coroutine):
    with in_background(coroutine) as future:
        return future.result(timeout=90)


def _sound_report(stream: dict | None) -> dict | None:
    """The camera's latest report, once it says it sends one P2P viewer the sound."""
    stats = ((stream or {}).get("camera") or {}).get("stats") or {}
    viewers = stats.get("viewers") or []
    if (stats.get("audio") or {}).get("viewers") == 1 and viewers and viewers[0].get("audio_packets_sent"):
        return stats
    return None


def test_a_browser_cameras_microphone_reaches_a_python_viewer_p2p(lab, media_browser, loopback_ice):  # noqa: F811
    lab.start_server()
    page, errors = go_live(media_browser, lab, "mic")
    with in_background(listen_p2p(lab.url, "mic")) as listening:
        page.wait_for_function("Object.values(peercam.viewers()).some((v) => v.p2p && v.sound)",
                               timeout=20_000)
        # The camera's report says so too: one viewer is sent the sound, its packets counted.
        stats = wait_until(lambda: _sound_report(lab.api("/api/streams/mic")), 10,
                           "a camera-stats report with a P2P viewer's sound")
        heard = listening.result(timeout=90)

    # The announced sound (defaults are left out on the wire): Opus, mono, 32 kbit/s.
    assert msgspec.convert(heard["info"]["audio"], AudioInfo) == AudioInfo("opus", 48000, 1, 32000)
    sound = heard["answer"].split("m=audio")[1]
    assert "a=sendonly" in sound and "opus/48000" in sound, heard["answer"]
    assert_beeps(heard["samples"], LISTEN_SECONDS)
    assert heard["stats"]["audio"].packetsLost == 0, heard["stats"]
    assert heard["pictures"] > 1  # the picture beside it
    audio = msgspec.convert(stats, CameraStats).audio
    assert (audio.codec, audio.channels, audio.viewers) == ("opus", 1, 1), stats
    assert not errors, errors


def test_a_browser_camera_sends_opus_relay_frames_to_a_reader_that_asks(lab, media_browser):  # noqa: F811
    """With the screen this time: the microphone is asked for after it."""
    lab.start_server()
    page, errors = go_live(media_browser, lab, "micrelay", "source=screen&autostart=1")
    with in_background(read_relay(lab.url, "micrelay")) as reading:
        page.wait_for_function("peercam.relay().includes('Opus')", timeout=20_000)
        relay = reading.result(timeout=90)

    headers = relay["headers"]
    assert len(headers) >= 150, f"{len(headers)} Opus relay frames"
    assert {(h.codec, h.sample_rate, h.channels) for h in headers} == {("opus", 48000, 1)}
    sequences = [h.sequence for h in headers]
    assert sequences == list(range(sequences[0], sequences[0] + len(sequences))), "Opus relay frames lost"
    # 20 ms apart, stamped with the capture time of their first sample (Unix, this machine's clock).
    steps = np.diff([h.capture_time_us for h in headers]) / 1000
    assert abs(np.median(steps) - 20) < 1, steps
    assert 0 < time.time() * 1e6 - headers[-1].capture_time_us < 5e6
    assert_beeps(relay["samples"], len(headers) * 0.02 * 0.9)
    assert relay["pictures"] > 1  # the picture beside it
    assert not errors, errors


def test_a_browser_cameras_microphone_reaches_cli_viewers_on_both_paths(lab, media_browser):  # noqa: F811
    """``peercam view --json`` hears it continuously, P2P and on the encoded relay. (Chromium's
    beeps carry no time code, so no latency is read: the test tone's figures are for the
    Python camera.)"""
    lab.start_server()
    go_live(media_browser, lab, "cli")
    viewers = {mode: lab.start_viewer("cli", "--mode", mode, *extra, "--duration", "3", "--warmup", "1")
               for mode, extra in (("p2p", []), ("relay", ["--relay-format", "encoded"]))}
    for mode, viewer in viewers.items():  # side by side
        summary = viewer.summary(timeout=60)
        audio = summary["audio"]
        assert summary["mode"] == mode and summary["frames"] > 1, summary
        # 50 packets a second: most of 3 s, nothing lost.
        assert audio["codec"] == "opus" and audio["packets"] >= 100 and audio["packets_lost"] == 0, summary


def test_audio_0_publishes_no_sound(lab, media_browser, loopback_ice):  # noqa: F811
    lab.start_server()
    page, errors = go_live(media_browser, lab, "quiet", "source=camera&autostart=1&audio=0")
    heard = run(listen_p2p(lab.url, "quiet", expect_sound=False))
    relay = run(read_relay(lab.url, "quiet", expect_sound=False))

    assert heard["info"].get("audio") is None, heard["info"]
    # The offer's audio section is answered inactive: nothing is sent on it.
    assert "a=inactive" in heard["answer"].split("m=audio")[1], heard["answer"]
    assert heard["frames"] == 0 and heard["pictures"] >= 30
    assert relay["headers"] == [] and relay["pictures"] >= 60  # asked for, there is none
    assert page.evaluate("peercam.sound()") is None
    assert page.input_value("#microphone") == "off"
    assert page.inner_text("#sound-state") == "off"
    assert not errors, errors


def test_the_microphone_menu_lists_the_microphones_and_publishes_the_one_picked(lab, media_browser):  # noqa: F811
    lab.start_server()
    page, errors = go_live(media_browser, lab, "pick")
    assert page.inner_text("#sound-state").startswith("Opus mono 32 kbit/s")
    # Once the browser let the page use a microphone, the menu names them all.
    page.wait_for_function("document.querySelectorAll('#microphone option').length > 2", timeout=5_000)
    options = page.eval_on_selector_all("#microphone option", "(all) => all.map((o) => [o.value, o.text])")
    assert options[:2] == [["off", "off"], ["", "default"]], options
    assert [text for _, text in options[2:]] == ["Fake Audio Input 1", "Fake Audio Input 2"], options
    assert page.is_disabled("#microphone")  # not while live

    page.click("#stop")
    page.select_option("#microphone", options[3][0])
    page.click("#go-live")
    page.wait_for_function("peercam.state() === 'live'", timeout=15_000)
    assert page.inner_text("#sound-state") == "Opus mono 32 kbit/s (Fake Audio Input 2)"
    assert page.evaluate("peercam.sound()")["channels"] == 1
    assert not errors, errors


#: The browser camera's RelaySender with a real AudioPipeline (an oscillator's track, encoded
#: by WebCodecs) and a stand-in for its socket, full (16 MiB waiting) and then drained: what
#: it sends while the socket is full, and once it drains.
SOCKET_FULL = """
async () => {
  const { RelaySender } = await import('/static/js/relay-sender.js');
  const { AudioPipeline } = await import('/static/js/audio-pipeline.js');
  const { parseRelayFrame } = await import('/static/js/relay-frame.js');
  const context = new AudioContext({ sampleRate: 48000 });
  const oscillator = context.createOscillator();
  const output = context.createMediaStreamDestination();
  output.channelCount = 1;
  oscillator.connect(output);
  oscillator.start();
  const [track] = output.stream.getAudioTracks();
  // Its settings say 2 channels where its chunks have 1: the packets have what was announced.
  const audio = new AudioPipeline(track);
  const sent = [];
  const socket = {
    bufferedAmount: 16 * 1024 * 1024,
    sendBinary: (data) => { sent.push(data); return true; },
  };
  const picture = document.createElement('canvas').captureStream().getVideoTracks()[0];
  const relay = new RelaySender({
    track: picture, video: document.createElement('video'), signaling: socket,
    layer: { name: '480p', width: 640, height: 480, fps: 30 }, audio,
  });
  relay.setDemand({ audio: true });
  const until = async (test) => {
    const deadline = performance.now() + 10_000;
    while (!test()) {
      if (performance.now() > deadline) throw new Error(`timed out: ${test} ${JSON.stringify(relay.counts)}`);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  };
  await until(() => relay.counts.audioDropped >= 20); // a full socket: the queue holds 25, the oldest go
  const whileFull = sent.length;
  socket.bufferedAmount = 0;
  await until(() => sent.length >= 25);
  const frames = sent.slice(0, 25).map((data) => parseRelayFrame(data.buffer));
  const drained = frames.map((frame) => frame.sequence);
  const channels = [...new Set(frames.map((frame) => frame.height))];
  await until(() => sent.length >= 50); // and on it goes
  relay.stop();
  oscillator.stop();
  await context.close();
  return {
    whileFull, drained, dropped: relay.counts.audioDropped, describe: relay.describe(), channels,
    announced: audio.info.channels,
  };
}
"""


def test_the_relay_senders_sound_waits_bounded_for_a_full_socket(page_on_server):
    result = page_on_server.evaluate(SOCKET_FULL)
    assert result["whileFull"] == 0, result
    drained = result["drained"]
    # The newest 25 packets went, in order, at once; the ones before them were dropped.
    assert drained == list(range(drained[0], drained[0] + 25)), result
    assert drained[0] == result["dropped"] and drained[0] >= 20, result
    assert result["channels"] == [result["announced"]], result
    assert result["describe"] == "off", result
