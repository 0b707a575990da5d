"""Talk back's media (issue 27): `peercam view --talk FILE` speaks through a real camera,
with the real server, over P2P (its audio transceiver) and the relay (talk frames).

The speaker's file holds beeps at known times: the camera's --talk-record file for the turn
must hold them at the same times (their energy envelopes agree), decode with ffprobe, and
be the only file. Meanwhile another viewer is refused with the speaker's name; with
--talk off a viewer is refused and nothing is recorded; and while a viewer talks, a
listening viewer hears the camera's own sound ducked to silence (half duplex), and loud
again after. Camera.talk() hands the same sound to a program; a viewer that talks the test
tone (``--talk tone``) gives it mouth-to-speaker latencies, beep by beep.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np
import pytest
from peercam.peers.camera.sources import SourceError
from peercam.peers.camera.talkreceiver import TalkReceiver
from peercam.peers.testtone import PERIOD, Beep, ToneReader

import peercam

from .conftest import LOOPBACK, require, wait_until

RATE = 48000
#: 10 ms windows for the energy envelopes.
WINDOW = 480
#: Where the test file's beeps begin (seconds) and how long each lasts.
BEEPS = (0.5, 1.5, 2.5, 3.5)
BEEP_SECONDS = 0.3
TONE_SECONDS = 4.2
ICE = peercam.IceOptions(servers=[], hosts=["127.0.0.1"])


def write_tone(path: Path, beeps=BEEPS, seconds: float = TONE_SECONDS) -> Path:
    """A mono WAV of 440 Hz beeps at ``beeps`` (seconds), silent between them."""
    t = np.arange(int(seconds * RATE)) / RATE
    sound = np.zeros_like(t)
    for start in beeps:
        on = (t >= start) & (t < start + BEEP_SECONDS)
        sound[on] = 0.5 * np.sin(2 * np.pi * 440 * t[on])
    pcm = (sound * 32767).astype(np.int16)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=RATE)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = RATE
        frame.pts = 0
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


def envelope(path: Path) -> np.ndarray:
    """RMS (full scale 1.0) of each 10 ms of a file's first channel, resampled to 48 kHz."""
    chunks = []
    resampler = av.AudioResampler(format="s16", layout="mono", rate=RATE)
    with av.open(str(path)) as container:
        for frame in container.decode(audio=0):
            for out in resampler.resample(frame):
                chunks.append(out.to_ndarray().reshape(-1))
    samples = np.concatenate(chunks).astype(np.float64) / 32768
    count = len(samples) // WINDOW
    return np.sqrt((samples[:count * WINDOW].reshape(count, WINDOW) ** 2).mean(axis=1))


def assert_same_beeps(recorded: np.ndarray, original: np.ndarray) -> None:
    """The recording's loud windows are the original's, at one offset (the turn's start
    loses a little): at most 300 ms of shift, and 95% of the windows agree."""
    loud_recorded, loud_original = recorded > 0.05, original > 0.05
    best, best_shift = -1.0, 0
    for shift in range(-30, 31):  # 10 ms steps
        a = loud_original[max(0, shift):]
        b = loud_recorded[max(0, -shift):]
        n = min(len(a), len(b))
        agree = float(np.mean(a[:n] == b[:n]))
        if agree > best:
            best, best_shift = agree, shift
    assert best >= 0.95, (best, best_shift)
    # Every beep is there: as many loud stretches as the original's.
    assert _rises(loud_recorded) == _rises(loud_original) == len(BEEPS), _rises(loud_recorded)


def _rises(loud: np.ndarray) -> int:
    return int(np.sum(loud[1:] & ~loud[:-1]))


def ffprobe(path: Path) -> dict:
    require(shutil.which("ffprobe") is not None, "ffprobe is not installed")
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=codec_name,channels,sample_rate:"
                          "format=duration,format_name", "-of", "json", str(path)],
                         capture_output=True, text=True, timeout=20, check=True).stdout
    return json.loads(out)


@pytest.mark.parametrize("mode", ["p2p", "relay"])
def test_a_viewer_talks_into_the_camera_s_record_and_another_is_refused_meanwhile(lab, tmp_path, mode):
    tone = write_tone(tmp_path / "tone.wav")
    record = tmp_path / "talk"
    lab.start_server("--talk", "viewers")
    camera = lab.start_camera("test", "--talk-record", str(record))
    alice = lab.start_viewer("test", "--name", "Alice", "--mode", mode, "--talk", str(tone),
                             "--duration", "8")
    alice.wait_for_log(f"peercam view: talking ({mode})", timeout=20)
    bob = lab.start_viewer("test", "--name", "Bob", "--mode", mode, "--talk", str(tone), "--duration", "2")
    bob.wait_for_log("talk refused: Alice is talking", timeout=20)
    alice.wait_for_log("stopped talking (the end of the sound)", timeout=20)
    camera.wait_for_log("recorded the turn to", timeout=10)
    [path] = list(record.iterdir())
    assert path.suffix == ".opus" and path.stem.endswith("-Alice"), path
    probed = ffprobe(path)
    assert probed["streams"][0]["codec_name"] == "opus" and probed["format"]["format_name"] == "ogg", probed
    duration = float(probed["format"]["duration"])
    assert TONE_SECONDS - 0.5 <= duration <= TONE_SECONDS + 0.5, duration
    assert_same_beeps(envelope(path), envelope(tone))

    # The floor is free again (Alice still watching): the next viewer talks, into a second file.
    short = write_tone(tmp_path / "short.wav", (0.2,), 1.0)
    carol = lab.start_viewer("test", "--name", "Carol", "--mode", mode, "--talk", str(short),
                             "--duration", "3")
    # The view goes on after a refusal and after a turn: both end with their summaries.
    assert bob.summary(timeout=30)["frames"] > 0
    assert alice.summary(timeout=30)["frames"] > 0
    carol.wait_for_log("stopped talking (the end of the sound)", timeout=20)
    wait_until(lambda: len(list(record.iterdir())) == 2 and camera.log().count("recorded the turn to") == 2,
               10, "Carol's turn recorded")
    assert carol.summary(timeout=30)["frames"] > 0


def test_talk_off_refuses_and_nothing_is_recorded(lab, tmp_path):
    record = tmp_path / "talk"
    lab.start_server()  # --talk off, the default
    lab.start_camera("test", "--talk-record", str(record))
    viewer = lab.start_viewer("test", "--name", "Alice", "--talk", str(write_tone(tmp_path / "tone.wav")),
                              "--duration", "3")
    viewer.wait_for_log("talk refused: ", timeout=20)
    summary = viewer.summary(timeout=30)
    assert summary["frames"] > 0 and summary["audio"]["packets"] > 0, summary  # the view went on
    assert "peercam view: talking" not in viewer.log()
    assert not record.exists() or not list(record.iterdir())


def test_a_bad_talk_file_is_a_one_line_error(lab, tmp_path):
    lab.start_server("--talk", "viewers")
    code, _ = lab.start_viewer("test", "--talk", str(tmp_path / "missing.wav")).result(timeout=20)
    log = lab.processes[-1].log()
    assert code == 1 and "peercam view: error: --talk: cannot read audio file" in log, log
    assert "Traceback" not in log


async def test_half_duplex_ducks_the_camera_s_sound_while_a_viewer_talks(tmp_path):
    """A listening viewer's sound from the camera (the test tone, beeping twice a second) is
    silent while another viewer talks, and beeps again after; Camera.talk() gets the turn."""
    tone = write_tone(tmp_path / "tone.wav")
    async with await peercam.serve(port=0, talk="viewers") as server:
        async with peercam.Camera(server.url, "duck", source="testsrc", audio="tone", ice=ICE,
                                  talk_record=str(tmp_path / "talk")) as camera:
            heard: list[tuple[str, float]] = []

            async def read_talk() -> None:
                async for name, frame in camera.talk():
                    heard.append((name, float(np.abs(frame.samples).max())))

            reader = asyncio.create_task(read_talk())
            sound: list[tuple[float, int]] = []  # (arrived, loudest sample) of each 20 ms
            turn: dict[str, float] = {}
            async with peercam.watch(server.url, "duck", name="Listener", ice=ICE, mode="p2p") as listener:

                async def listen() -> None:
                    async for frame in listener.audio(keep=500):
                        sound.append((frame.arrived, int(np.abs(frame.samples).max())))

                async def follow() -> None:
                    async for happened in listener.events():
                        if happened.kind == "talk":
                            turn["start" if happened.text == "Alice is talking" else "end"] = time.time()

                tasks = [asyncio.create_task(listen()), asyncio.create_task(follow())]
                await _until(lambda: len(sound) > 100, 20, "the listener's sound")
                talker = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "peercam", "view", "--server", server.url, "--stream", "duck",
                    *LOOPBACK, "--name", "Alice", "--talk", str(tone), "--duration", "6",
                    stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
                try:
                    await _until(lambda: "end" in turn, 30, "Alice's turn to end")
                    after = time.time()
                    await _until(lambda: sound[-1][0] > after + 1.5, 10, "sound after the turn")
                finally:
                    for task in tasks:
                        task.cancel()
                    if talker.returncode is None:
                        talker.terminate()
                    await talker.communicate()
            reader.cancel()

    start, end = turn["start"], turn["end"]
    before = [peak for arrived, peak in sound if arrived < start - 0.2]
    during = [peak for arrived, peak in sound if start + 0.3 < arrived < end - 0.1]
    later = [peak for arrived, peak in sound if arrived > end + 0.3]
    assert len(during) >= 0.8 * 50 * (end - start - 0.4), (len(during), end - start)  # packets kept coming
    assert max(before) > 5000 and max(later) > 5000, (max(before), max(later))  # the tone's beeps
    assert max(during) < 100, max(during)  # ducked to silence
    # The camera's program heard the turn: Alice's name, and her beeps.
    assert heard and {name for name, _ in heard} == {"Alice"}, heard[:3]
    assert max(peak for _, peak in heard) > 5000
    assert len(list((tmp_path / "talk").iterdir())) == 1


async def test_the_test_tone_talks_over_p2p_and_the_relay_and_the_camera_reads_every_beep():
    """``peercam view --talk tone``: the test tone, made as it is sent, reaches Camera.talk()
    over P2P and over the relay; a ToneReader there reads consecutive beeps (none lost), each
    with its mouth-to-speaker latency (made by the viewer, heard by the camera: one clock).
    The speaker is a process of its own, as a viewer is: a stall of this test's event loop
    then delays the sound but cannot make its source skip."""
    async with await peercam.serve(port=0, talk="viewers") as server:
        async with peercam.Camera(server.url, "tone-talk", source="testsrc", width=160, height=120, fps=10,
                                  audio="none", ice=ICE) as camera:
            for mode in ("p2p", "relay"):
                reader = ToneReader()
                talker = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "peercam", "view", "--server", server.url, "--stream", "tone-talk",
                    *LOOPBACK, "--name", f"tone-{mode}", "--mode", mode, "--no-audio", "--talk", "tone",
                    "--duration", "20", stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
                try:
                    beeps, speakers = await asyncio.wait_for(_hear_beeps(camera, reader, 4), 20)
                    camera.end_talk()  # the floor is free for the next
                finally:
                    talker.terminate()
                    _, stderr = await talker.communicate()
                assert f"peercam view: talking ({mode})" in stderr.decode(), stderr.decode()
                assert speakers == {f"tone-{mode}"}, (mode, speakers)
                times = [beep.capture_time for beep in beeps]
                assert times == [times[0] + i * PERIOD for i in range(len(times))], (mode, times)
                latencies = [beep.latency for beep in beeps]
                assert all(0 < latency < 5 for latency in latencies), (mode, latencies)


async def _hear_beeps(camera: peercam.Camera, reader: ToneReader, count: int) -> tuple[list[Beep], set[str]]:
    """Camera.talk() read with ``reader`` until it heard ``count`` beeps: them, and who spoke."""
    beeps: list[Beep] = []
    speakers: set[str] = set()
    async for name, frame in camera.talk():
        speakers.add(name)
        beeps.extend(reader.feed(frame.samples, frame.arrived))
        if len(beeps) >= count:
            break
    return beeps, speakers


async def _until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def _alsa_null_available() -> bool:
    try:
        TalkReceiver(speaker="null").close()
    except SourceError:
        return False
    return True


def test_the_speaker_plays_the_floor_holder_s_sound_on_an_alsa_device():
    """ALSA's null device (this machine has no sound card) through PyAV's ALSA output: the
    holder's frames are all played, anyone else's none."""
    require(_alsa_null_available(), "ALSA's null device cannot be opened here")
    receiver = TalkReceiver(speaker="null")
    receiver.floor_changed("v1", "Alice")
    pcm = (np.sin(np.arange(960) / RATE * 2 * np.pi * 440) * 10000).astype(np.int16)
    for number in range(25):
        for viewer in ("v1", "v2"):
            frame = av.AudioFrame.from_ndarray(np.stack([pcm, pcm]).T.reshape(1, -1), format="s16",
                                               layout="stereo")
            frame.sample_rate, frame.pts = RATE, number * 960
            receiver.hear(viewer, frame)
    receiver.close()  # waits for the device to take what is queued
    assert receiver.frames_heard == 25 and receiver.frames_played == 25


def test_a_speaker_that_cannot_be_opened_is_a_one_line_error(lab):
    lab.start_server("--talk", "viewers")
    camera = lab.start_camera("test", "--speaker", "hw:9,9", wait=False)
    code, _ = camera.result(timeout=20)
    assert code == 1 and "peercam camera: error: cannot open speaker 'hw:9,9'" in camera.log(), camera.log()
    assert "Traceback" not in camera.log()


def test_a_camera_without_sound_takes_talk_back_from_a_viewer_that_wants_none(lab, tmp_path):
    """The viewer's audio section is there for its voice alone; the camera has none to send."""
    record = tmp_path / "talk"
    lab.start_server("--talk", "viewers")
    camera = lab.start_camera("test", "--audio", "none", "--talk-record", str(record))
    viewer = lab.start_viewer("test", "--name", "Alice", "--mode", "p2p", "--no-audio",
                              "--talk", str(write_tone(tmp_path / "tone.wav")), "--duration", "6")
    viewer.wait_for_log("stopped talking (the end of the sound)", timeout=20)
    summary = viewer.summary(timeout=30)
    assert summary["frames"] > 0 and summary["audio"] is None, summary
    camera.wait_for_log("recorded the turn to", timeout=10)
    [path] = list(record.iterdir())
    assert ffprobe(path)["streams"][0]["codec_name"] == "opus"
    assert_same_beeps(envelope(path), envelope(tmp_path / "tone.wav"))
