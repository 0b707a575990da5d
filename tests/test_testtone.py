"""peers/testtone.py: the test tone's reader hears the shared cases (tests/testtone_cases.json) as
they say; web/js/testtone.js hears the same samples (tests/test_web_testtone.py)."""

from __future__ import annotations

import fractions
import json
import math
from pathlib import Path

import av
import numpy as np
import pytest
from peercam.peers.testtone import (
    BIT_SECONDS,
    CODE_START,
    ONE_HZ,
    SAMPLE_RATE,
    ZERO_HZ,
    ToneReader,
    code_bits,
    tone,
)

CASES_PATH = Path(__file__).resolve().parent / "testtone_cases.json"
CASES = json.loads(CASES_PATH.read_text())["cases"]
#: Times agree to within this (seconds): the case file rounds them to 10 µs.
TOLERANCE = 1e-5


def _through_opus(samples: np.ndarray, bitrate: int) -> np.ndarray:
    """Encoded as the camera does (libopus, low delay, 20 ms packets) and decoded as a viewer
    does: as many samples out as went in."""
    encoder = av.CodecContext.create("libopus", "w")
    encoder.sample_rate = SAMPLE_RATE
    encoder.layout = "mono"
    encoder.format = "s16"
    encoder.bit_rate = bitrate
    encoder.time_base = fractions.Fraction(1, SAMPLE_RATE)
    encoder.options = {"application": "lowdelay", "frame_duration": "20"}
    decoder = av.CodecContext.create("opus", "r")
    decoder.sample_rate = SAMPLE_RATE
    decoder.layout = "mono"
    out = []
    frames = [samples[i:i + 960] for i in range(0, len(samples), 960)]
    for pts, chunk in enumerate(frames):
        frame = av.AudioFrame.from_ndarray(chunk.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = SAMPLE_RATE
        frame.pts = pts * 960
        for packet in encoder.encode(frame):
            for decoded in decoder.decode(packet):
                out.append(decoded.to_ndarray().reshape(-1))
    decoded = np.concatenate(out)
    if decoded.dtype.kind == "f":
        decoded = np.round(np.clip(decoded, -1, 1) * 32767)
    decoded = decoded.astype(np.int16)
    return np.concatenate([decoded, np.zeros(max(0, len(samples) - len(decoded)), np.int16)])[:len(samples)]


def case_samples(case: dict) -> np.ndarray:
    """A case's sound, as both readers get it: int16 or float32, (n,) or (n, channels)."""
    first = round(case["start"] * SAMPLE_RATE)
    count = round(case["seconds"] * SAMPLE_RATE)
    sound = tone(first, count).astype(np.float64)
    bit_length = int(BIT_SECONDS * SAMPLE_RATE)
    for beep, bit in case.get("flip_bits", []):
        start = round((beep + CODE_START) * SAMPLE_RATE) + bit * bit_length - first
        n = np.arange(first + start, first + start + bit_length)
        frequency = ZERO_HZ if code_bits(round(beep * 2))[bit] else ONE_HZ
        sound[start:start + bit_length] = np.round(
            0.25 * 32767 * np.sin(2 * math.pi * frequency * (n % SAMPLE_RATE) / SAMPLE_RATE))
    if "opus" in case:
        sound = _through_opus(sound.astype(np.int16), case["opus"]).astype(np.float64)
    sound *= case.get("gain", 1.0)
    if "noise" in case:
        amplitude, seed = case["noise"]
        sound += np.random.default_rng(seed).uniform(-amplitude, amplitude, len(sound)) * 32767
    for start, end in case.get("silence", []):
        sound[max(0, round(start * SAMPLE_RATE) - first):max(0, round(end * SAMPLE_RATE) - first)] = 0
    sound = np.clip(np.round(sound), -32768, 32767)
    if case.get("float"):
        sound = (sound / 32767).astype(np.float32)
    else:
        sound = sound.astype(np.int16)
    channels = case.get("channels", 1)
    return sound if channels == 1 else np.repeat(sound.reshape(-1, 1), channels, axis=1)


def case_chunks(case: dict) -> list[tuple[np.ndarray, float]]:
    """The case's sound cut into chunks, each with its arrival time (Unix seconds)."""
    samples = case_samples(case)
    chunk = case["chunk"]
    return [(samples[i:i + chunk], case["start"] + i / SAMPLE_RATE + case["delay"])
            for i in range(0, len(samples), chunk)]


def run_case_in_python(case: dict) -> dict:
    reader = ToneReader()
    beeps = [[beep.capture_time, beep.heard_time]
             for samples, arrived in case_chunks(case) for beep in reader.feed(samples, arrived)]
    return {"beeps": beeps, "unread": reader.beeps_unread}


def same_beeps(heard: list, expected: list) -> bool:
    """The same beeps, [capture time, heard time] each, to within TOLERANCE."""
    if len(heard) != len(expected):
        return False
    pairs = zip(heard, expected, strict=True)
    return all(abs(a - b) <= TOLERANCE for got, wanted in pairs for a, b in zip(got, wanted, strict=True))


def check_case(case: dict, heard: dict) -> None:
    """What a reader heard is what the case expects."""
    expect = case["expect"]
    assert heard["unread"] == expect["unread"], (case["name"], heard)
    assert same_beeps(heard["beeps"], expect["beeps"]), (case["name"], heard)


@pytest.mark.parametrize("case", CASES, ids=[case["name"] for case in CASES])
def test_shared_cases_on_the_python_reader(case):
    check_case(case, run_case_in_python(case))


def test_a_beep_is_heard_in_the_chunk_that_holds_its_first_sample():
    """Every case that hears a beep hears it in the chunk its first sample falls in: captured
    at the beep's own instant, heard at that chunk's arrival."""
    for case in CASES:
        for capture, heard in case["expect"]["beeps"]:
            index = round((capture - case["start"]) * SAMPLE_RATE)
            chunk_start = index // case["chunk"] * case["chunk"]
            expected = case["start"] + chunk_start / SAMPLE_RATE + case["delay"]
            assert heard == pytest.approx(expected, abs=TOLERANCE), case["name"]
            assert capture * 2 == round(capture * 2), case["name"]  # on a half second
