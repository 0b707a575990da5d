"""Sound on the relay (signaling/relay/, issue 25): the camera's Opus packets in relay frames
(version 3) go to the readers that asked for them, before their pictures, bounded, and the
camera sends them only while someone listens. The hub's rules run on a clock the tests move;
then the real server, a real camera with the test tone, and readers on plain WebSockets."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import av
from peercam.peers.testtone import ToneReader
from peercam.signaling.relay.hub import MAX_AUDIO_PACKET_BYTES
from peercam.signaling.relay.readers import RelayReader
from peercam.signaling.relay.slots import MAX_QUEUED_AUDIO_SECONDS, MIN_BACKLOG_BYTES

from peercam.shared.protocol import PROTOCOL_VERSION, AudioInfo
from peercam.shared.relayframe import RelayFrameHeader, parse_relay_frame

from .conftest import wait_until
from .test_relay import Camera, make_hub, settle
from .test_relay_bounds import INFO, FakeCamera, jpeg_frame

#: Opus packets are 20 ms of sound.
PACKET_US = 20_000


def audio_frame(sequence: int, channels: int = 1, size: int = 120) -> bytes:
    """An audio relay frame: packet ``sequence`` of a 20 ms stream (its payload only a stand-in)."""
    return RelayFrameHeader.audio(sequence, 1_700_000_000_000_000 + sequence * PACKET_US, 48000,
                                  channels).pack(bytes([0xF8]) + bytes(size - 1))


class Listener:
    """A relay reader on the hub that records what it is sent, in order: ("audio"|"video", sequence).
    Its deliveries can be held up (a socket that takes nothing)."""

    def __init__(self, hub, name: str, audio: bool = True, backlog=None) -> None:
        self.got: list[tuple[str, int]] = []
        self.flowing = asyncio.Event()
        self.flowing.set()
        self.reader = RelayReader(name, self._deliver, "encoded", backlog=backlog, audio=audio)
        hub.add(self.reader, "480p")

    async def _deliver(self, frame: bytes) -> None:
        await self.flowing.wait()
        header, _ = parse_relay_frame(frame)
        self.got.append(("audio" if header.format == "audio" else "video", header.sequence))

    def heard(self) -> list[int]:
        return [sequence for kind, sequence in self.got if kind == "audio"]


async def test_sound_goes_to_the_readers_that_asked_before_their_pictures_while_anyone_listens():
    camera = Camera()
    hub = make_hub(camera, AudioInfo(channels=1))
    deaf = Listener(hub, "deaf", audio=False)  # an old client: it never asked
    assert camera.demand == ([], ["480p"]) and not camera.audio_demand
    hub.publish(audio_frame(0))  # nobody listens: dropped, counted
    assert hub.audio_packets_unread == 1
    ear = Listener(hub, "ear")
    assert camera.audio_demand  # the camera is asked for its sound now
    hub.publish(camera.frame(keyframe=True))
    await settle()
    hub.publish(audio_frame(1))
    await settle()
    # Its socket holds up one picture; meanwhile a picture and two packets wait: the packets
    # go first.
    ear.flowing.clear()
    hub.publish(camera.frame())
    await settle()
    hub.publish(camera.frame())
    hub.publish(audio_frame(2))
    hub.publish(audio_frame(3))
    ear.flowing.set()
    await settle()
    assert ear.got == [("video", 0), ("audio", 1), ("video", 1), ("audio", 2), ("audio", 3), ("video", 2)]
    assert deaf.got == [("video", 0), ("video", 1), ("video", 2)]
    # A newcomer's sound starts at the next packet: none is held for it.
    late = Listener(hub, "late")
    await settle()
    assert late.heard() == []
    hub.publish(audio_frame(4))
    await settle()
    assert late.heard() == [4] and ear.heard() == [1, 2, 3, 4]
    summary = hub.summary()
    assert summary["audio_readers"] == 2 and summary["audio_packets_in"] == 5
    # (the newcomer started at the last keyframe, with the frames since)
    assert summary["audio_packets_sent"] == 5 and summary["frames_sent"] == 3 * 3

    hub.remove(ear.reader)
    assert camera.audio_demand
    hub.remove(late.reader)
    assert not camera.audio_demand  # nobody listens: the camera stops sending sound
    hub.hear(deaf.reader, True)  # a viewer that asks for sound later gets it from then on
    assert camera.audio_demand
    hub.publish(audio_frame(5))
    await settle()
    assert deaf.heard() == [5]
    hub.remove(deaf.reader)
    assert camera.demand == ([], []) and not camera.audio_demand


async def test_a_reader_that_falls_behind_drops_pictures_not_sound_and_its_sound_waits_at_most_a_second():
    camera = Camera()
    hub = make_hub(camera, AudioInfo(channels=1))
    backlog = 0
    ear = Listener(hub, "ear", backlog=lambda: backlog)
    hub.publish(camera.frame(keyframe=True))
    await settle()
    backlog = 4 * MIN_BACKLOG_BYTES  # its socket holds far too much: pictures are dropped
    for sequence in range(20):
        hub.publish(camera.frame())
        hub.publish(audio_frame(sequence))
        await settle()
    assert ear.heard() == list(range(20))  # every packet, on a socket that takes no pictures
    assert ear.reader.slot.waiting == "behind" and ear.reader.frames_skipped > 10
    assert ear.reader.audio_packets_dropped == 0

    # A socket that takes nothing at all: its sound waits, within a second of capture time.
    ear.flowing.clear()
    for sequence in range(20, 120):  # two seconds of sound
        hub.publish(audio_frame(sequence))
        await settle()
    ear.flowing.set()
    await settle()
    after = ear.heard()[20:]
    kept = int(MAX_QUEUED_AUDIO_SECONDS * 1_000_000 / PACKET_US) + 1
    # The packet in its socket's hands when it stopped, then the newest second, in order.
    assert after == [20] + list(range(120 - kept, 120)), after
    assert ear.reader.audio_packets_dropped == 100 - len(after) == hub.summary()["audio_packets_dropped"]
    hub.remove(ear.reader)


# -- the real server and camera ---------------------------------------------------------------


class RelayListener:
    """A relay viewer on an aiohttp WebSocket: watches, asks for the relay (``audio``: its sound
    too; None: says nothing of it, as an old client), and keeps every relay frame it gets."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.pictures: list[RelayFrameHeader] = []
        self.packets: list[tuple[RelayFrameHeader, bytes]] = []
        self._task = asyncio.create_task(self._read())

    @classmethod
    async def watch(cls, session: aiohttp.ClientSession, port: int, stream: str, format: str = "encoded",
                    audio: bool | None = True) -> RelayListener:
        ws = await session.ws_connect(f"http://127.0.0.1:{port}/ws")
        await ws.receive_json()  # welcome
        await ws.send_json({"type": "watch", "stream": stream, "protocol": PROTOCOL_VERSION})
        listener = cls(ws)
        await listener.relay(format, audio)
        return listener

    async def relay(self, format: str, audio: bool | None) -> None:
        message = {"type": "relay", "enabled": True, "format": format}
        if audio is not None:
            message["audio"] = audio
        await self.ws.send_json(message)

    async def _read(self) -> None:
        async for msg in self.ws:
            if msg.type == aiohttp.WSMsgType.BINARY:
                header, payload = parse_relay_frame(msg.data)
                if header.format == "audio":
                    self.packets.append((header, bytes(payload)))
                else:
                    self.pictures.append(header)


async def until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


def assert_continuous(packets: list[tuple[RelayFrameHeader, bytes]], channels: int = 1) -> None:
    """Opus packets of the camera's announced kind, each the next in sequence (nothing lost
    between the camera and the reader) and captured after the one before (nothing repeated;
    20 ms later, or more where a camera starved of CPU skipped to the sound of now)."""
    headers = [header for header, _ in packets]
    kinds = {(h.codec, h.sample_rate, h.channels) for h in headers}
    assert kinds == {("opus", 48000, channels)}, kinds
    sequences = [h.sequence for h in headers]
    assert sequences == list(range(sequences[0], sequences[0] + len(sequences))), sequences
    steps = [b.capture_time_us - a.capture_time_us for a, b in zip(headers, headers[1:], strict=False)]
    assert min(steps) >= PACKET_US - 1000, sorted(set(steps))


def beep_offsets_ms(packets: list[tuple[RelayFrameHeader, bytes]]) -> list[float]:
    """The test tone's beeps in the packets, decoded: each beep's time in the packets' own
    capture times minus the capture time its time code says (0: the headers tell the truth)."""
    decoder = av.CodecContext.create("libopus", "r")
    decoder.layout, decoder.sample_rate = "mono", 48000
    reader, offsets = ToneReader(), []
    for header, payload in packets:
        for frame in decoder.decode(av.Packet(payload)):
            beeps = reader.feed(frame.to_ndarray().reshape(-1), header.capture_time_us / 1e6)
            offsets += [(beep.heard_time - beep.capture_time) * 1000 for beep in beeps]
    return offsets


def test_relay_readers_that_asked_for_sound_get_the_cameras_opus_all_along_and_others_none(lab):
    lab.start_server()
    camera = lab.start_camera("test")  # the test pattern, and the test tone with it
    quiet = lab.start_camera("quiet", "--audio", "none")
    assert lab.api("/api/streams/test")["audio"] == {"codec": "opus", "sample_rate": 48000, "channels": 1,
                                                    "bitrate": 48000}
    assert lab.api("/api/streams/quiet")["audio"] is None
    listed = {stream["name"]: stream["audio"] is not None for stream in lab.api("/api/streams")}
    assert listed == {"test": True, "quiet": False}

    async def listen() -> tuple[RelayListener, ...]:
        async with aiohttp.ClientSession() as session:
            ear = await RelayListener.watch(session, lab.port, "test")
            jpeg_ear = await RelayListener.watch(session, lab.port, "test", "jpeg")
            old = await RelayListener.watch(session, lab.port, "test", audio=None)
            quiet_ear = await RelayListener.watch(session, lab.port, "quiet")
            await until(lambda: len(ear.packets) >= 150, 20, "3 s of sound")
            assert lab.api("/api/streams/test")["relay"]["audio_readers"] == 2
            await old.relay("encoded", True)  # it asks for sound after all: from the next packet on
            await until(lambda: len(old.packets) >= 50, 10, "1 s of sound for the one that asked late")
            for listener in (ear, jpeg_ear, old, quiet_ear):
                await listener.ws.close()
            return ear, jpeg_ear, old, quiet_ear

    ear, jpeg_ear, old, quiet_ear = asyncio.run(listen())
    for listener in (ear, jpeg_ear, old):
        assert listener.pictures and listener.packets
        assert_continuous(listener.packets)
    # Before it asked, the old client got pictures only.
    first_packet = old.packets[0][0].capture_time_us
    assert any(h.capture_time_us < first_packet - 1_000_000 for h in old.pictures)
    assert quiet_ear.pictures and not quiet_ear.packets
    # It is the camera's tone, and the packets' capture times are its own.
    offsets = beep_offsets_ms(ear.packets)
    assert len(offsets) >= 4 and all(abs(offset) <= 30 for offset in offsets), offsets
    # The camera sent its sound while someone listened, and stopped when nobody did.
    def relay_lines() -> list[str]:
        return [line.split(" relay: ", 1)[1] for line in camera.log().splitlines() if " relay: " in line]

    assert any(line.endswith(", Opus") for line in relay_lines()), relay_lines()
    wait_until(lambda: relay_lines()[-1] == "stopped", 10, "the camera to stop its relay")
    assert " relay: " in quiet.log() and "Opus" not in quiet.log()
    assert "refused" not in lab.server.log()


def test_sound_a_camera_did_not_announce_is_refused_and_the_readers_beside_play_on(lab):
    lab.start_server()

    async def attack() -> None:
        async with aiohttp.ClientSession() as session:
            silent = await FakeCamera.publish(session, lab.port, "silent")  # announced no sound
            ws = await session.ws_connect(f"http://127.0.0.1:{lab.port}/ws")
            await ws.receive_json()
            await ws.send_json({"type": "publish", "stream": "mono", "protocol": PROTOCOL_VERSION,
                                "info": {**INFO, "audio": {"codec": "opus", "channels": 1}}})
            while (await ws.receive_json())["type"] != "published":
                pass
            mono = FakeCamera(ws)
            watchers = {name: await RelayListener.watch(session, lab.port, name, "jpeg")
                        for name in ("silent", "mono")}
            await mono.until(lambda: mono.demands and mono.demands[-1]["audio"], 5, "the demand for sound")
            assert silent.demands and not silent.demands[-1].get("audio")  # never asked for any
            lies = [(silent, audio_frame(0)), (mono, audio_frame(1, channels=2)),
                    (mono, audio_frame(2, size=MAX_AUDIO_PACKET_BYTES + 1))]
            for sequence, (camera, lie) in enumerate(lies):
                await camera.ws.send_bytes(lie)
                await camera.ws.send_bytes(jpeg_frame(0, 80, sequence=sequence))
            await mono.ws.send_bytes(audio_frame(3))  # an honest packet after the lies
            await until(lambda: len(silent.errors) == 1 and len(mono.errors) == 2, 5, "an error for each lie")
            assert all(e["code"] == "bad-relay-frame" for e in silent.errors + mono.errors)
            assert "from a camera that announced no sound" in silent.errors[0]["reason"]
            assert "of 2 channels: the camera announced 1" in mono.errors[0]["reason"]
            assert f"of {MAX_AUDIO_PACKET_BYTES + 1} bytes" in mono.errors[1]["reason"]
            await until(lambda: watchers["mono"].packets and len(watchers["mono"].pictures) == 2
                        and watchers["silent"].pictures, 5, "the honest frames")
            assert [h.sequence for h, _ in watchers["mono"].packets] == [3]
            assert not watchers["silent"].packets
            assert not silent.ws.closed and not mono.ws.closed  # refused frames, not refused cameras
            assert lab.api("/api/streams/mono")["relay"]["audio_packets_in"] == 1
            assert lab.api("/api/streams/silent")["audio"] is None

    asyncio.run(attack())
